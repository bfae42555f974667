/*
 * guard_rpc.c: the trstctl.v1.Guard handlers (protobuf <-> guard_run). GetStatus reads the
 * counters (one bpf syscall: inline on the completion-queue thread); ListDenials pages
 * over the in-memory recent-denials list, newest first, the page token being the seq of
 * the last denial returned (stable while new denials arrive; denials that fell out of the
 * bounded list are gone); RunTripwire may fork a child into the guarded cgroup, so it runs
 * on the worker pool. Replies live in call memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "guard.h"
#include "guard.pb-c.h"
#include "rpc.h"
#include "timestamp.pb-c.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX 500

static int get_status(struct rpc_call *call, const ProtobufCMessage *req,
		      ProtobufCMessage **ret_resp, void *user)
{
	struct guard_run *g = user;
	const struct cfg_air_gap *ag;
	struct guard_run_status st;
	Trstctl__V1__GuardStatus *m;
	int ret, i;

	(void)req;
	ret = guard_run_status(g, &st);
	if (ret < 0)
		return rpc_call_error(call, RPC_INTERNAL, "cannot read the guard counters: %s",
				      strerror(-ret));
	m = (Trstctl__V1__GuardStatus *)rpc_call_new_message(call,
							      &trstctl__v1__guard_status__descriptor);
	m->enabled = st.enabled;
	m->enforcer = rpc_call_strdup(call, guard_run_mode_name(st.mode));
	m->armed = st.armed;
	m->trips = st.trips;
	m->tripwire_hits = st.tripwire_hits;
	m->userspace_trips = st.userspace_trips;
	m->pin_path = rpc_call_strdup(call, st.pin_path ? st.pin_path : "");
	ag = guard_run_air_gap(g);
	m->allow_private = ag->allow_private;
	m->n_allow_cidrs = ag->n_allow_cidrs;
	m->allow_cidrs = ag->n_allow_cidrs ? ag->allow_cidrs : NULL; /* borrowed, read only */
	m->n_allow_hosts = ag->n_allow_hosts;
	m->allow_hosts = ag->n_allow_hosts ? ag->allow_hosts : NULL;
	m->n_trips_by_hook = GUARD_RUN_HOOKS;
	m->trips_by_hook = rpc_call_alloc(call, GUARD_RUN_HOOKS * sizeof(*m->trips_by_hook));
	for (i = 0; i < GUARD_RUN_HOOKS; i++) {
		Trstctl__V1__GuardStatus__TripsByHookEntry *e;

		e = (void *)rpc_call_new_message(
			call, &trstctl__v1__guard_status__trips_by_hook_entry__descriptor);
		e->key = rpc_call_strdup(call, guard_run_hook_name(i));
		e->value = st.trips_by_hook[i];
		m->trips_by_hook[i] = e;
	}
	m->coverage = rpc_call_strdup(call, st.coverage);
	m->coverage_detail = rpc_call_strdup(call, st.coverage_detail);
	m->n_userspace_trips_by_client = GUARD_CLIENTS;
	m->userspace_trips_by_client =
		rpc_call_alloc(call, GUARD_CLIENTS * sizeof(*m->userspace_trips_by_client));
	for (i = 0; i < GUARD_CLIENTS; i++) {
		Trstctl__V1__GuardStatus__UserspaceTripsByClientEntry *e;

		e = (void *)rpc_call_new_message(
			call,
			&trstctl__v1__guard_status__userspace_trips_by_client_entry__descriptor);
		e->key = rpc_call_strdup(call, guard_client_name(i));
		e->value = st.userspace_trips_by_client[i];
		m->userspace_trips_by_client[i] = e;
	}
	*ret_resp = &m->base;
	return 0;
}

static int list_denials(struct rpc_call *call, const ProtobufCMessage *req,
			ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__ListDenialsRequest *r = (const void *)req;
	struct guard_run *g = user;
	Trstctl__V1__ListDenialsResponse *m;
	struct guard_run_denial *d;
	uint64_t before = 0;
	size_t size, n, i;
	char tok[24];

	if (r->page_size < 0)
		return rpc_call_error(call, RPC_INVALID_ARGUMENT, "page_size must not be negative");
	size = r->page_size == 0 ? PAGE_DEFAULT : r->page_size > PAGE_MAX ? PAGE_MAX :
									   (size_t)r->page_size;
	if (r->page_token && *r->page_token) {
		char *end;

		errno = 0;
		before = strtoull(r->page_token, &end, 10);
		if (errno || *end || before == 0 || r->page_token[0] == '-')
			return rpc_call_error(call, RPC_INVALID_ARGUMENT, "invalid page_token");
	}
	/* One more than asked, to know whether another page follows. */
	d = rpc_call_alloc(call, (size + 1) * sizeof(*d));
	n = guard_run_denials(g, before, d, size + 1);
	m = (void *)rpc_call_new_message(call, &trstctl__v1__list_denials_response__descriptor);
	m->n_denials = n > size ? size : n;
	m->denials = rpc_call_alloc(call, (m->n_denials ? m->n_denials : 1) * sizeof(*m->denials));
	for (i = 0; i < m->n_denials; i++) {
		Trstctl__V1__Denial *x = (void *)rpc_call_new_message(call,
								       &trstctl__v1__denial__descriptor);
		Google__Protobuf__Timestamp *t = (void *)rpc_call_new_message(
			call, &google__protobuf__timestamp__descriptor);

		t->seconds = d[i].time.tv_sec;
		t->nanos = (int32_t)d[i].time.tv_nsec;
		x->time = t;
		x->pid = d[i].pid;
		x->uid = d[i].uid;
		x->comm = rpc_call_strdup(call, d[i].comm);
		x->address = rpc_call_strdup(call, d[i].address);
		x->port = d[i].port;
		x->protocol = rpc_call_strdup(call, d[i].protocol);
		x->hook = rpc_call_strdup(call, d[i].hook);
		x->client = rpc_call_strdup(call, d[i].client ? d[i].client : "");
		x->host = rpc_call_strdup(call, d[i].host);
		x->reason = rpc_call_strdup(call, d[i].reason);
		x->suppressed = d[i].suppressed;
		m->denials[i] = x;
	}
	if (n > size) {
		snprintf(tok, sizeof(tok), "%llu", (unsigned long long)d[size - 1].seq);
		m->next_page_token = rpc_call_strdup(call, tok);
	} else {
		m->next_page_token = rpc_call_strdup(call, "");
	}
	*ret_resp = &m->base;
	return 0;
}

static int run_tripwire(struct rpc_call *call, const ProtobufCMessage *req,
			ProtobufCMessage **ret_resp, void *user)
{
	Trstctl__V1__TripwireResult *m;
	char detail[256] = "";
	int ret;

	(void)req;
	ret = guard_run_tripwire(user, detail, sizeof(detail));
	m = (void *)rpc_call_new_message(call, &trstctl__v1__tripwire_result__descriptor);
	m->armed = ret == 0;
	m->detail = rpc_call_strdup(call, detail);
	*ret_resp = &m->base;
	return 0;
}

int guard_rpc_register(struct rpc_server *s, struct guard_run *g)
{
	const ProtobufCServiceDescriptor *d = &trstctl__v1__guard__descriptor;
	/* Borrowed by the server for its lifetime; the same for every server. */
	static struct rpc_method_handler h[8];
	unsigned int i;

	if (!s || !g)
		return -EINVAL;
	if (d->n_methods > sizeof(h) / sizeof(h[0]))
		return -E2BIG;
	for (i = 0; i < d->n_methods; i++) {
		if (!strcmp(d->methods[i].name, "GetStatus"))
			h[i] = (struct rpc_method_handler){ .unary = get_status, .inline_ok = true };
		else if (!strcmp(d->methods[i].name, "ListDenials"))
			h[i] = (struct rpc_method_handler){ .unary = list_denials, .inline_ok = true };
		else if (!strcmp(d->methods[i].name, "RunTripwire"))
			h[i] = (struct rpc_method_handler){ .unary = run_tripwire };
	}
	return rpc_server_add_service(s, d, h, g);
}
