/*
 * trstctl.v1.Audit over gRPC: ListEvents and VerifyChain (unary; they wait on PostgreSQL,
 * so they run on the worker pool) and WatchEvents (server-streaming: history then live
 * tail through audit_watch, polling every 200 ms; rpc_call_wait returns at once when the
 * client cancels or the server shuts down). Every call reads the default tenant until
 * tenants reach the principal. Streaming messages are built on the stack, not in call
 * memory, since a tail can run for days.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "audit-internal.h"
#include "audit.pb-c.h"
#include "rpc.h"
#include "timestamp.pb-c.h"

#define WATCH_POLL_MS 200

/* Fills msg from ev; strings borrow ev's, hex and time go into the caller's buffers. */
static void to_proto(const struct audit_event *ev, Trstctl__V1__AuditEvent *msg,
		     Google__Protobuf__Timestamp *ts, char prev_hex[2 * AUDIT_HASH_LEN + 1],
		     char hash_hex[2 * AUDIT_HASH_LEN + 1])
{
	rpc_timestamp_set(ts, ev->time_us);
	audit_hex(ev->prev_hash, AUDIT_HASH_LEN, prev_hex);
	audit_hex(ev->hash, AUDIT_HASH_LEN, hash_hex);
	msg->sequence = ev->sequence;
	msg->id = (char *)ev->id;
	msg->type = ev->type;
	msg->time = ts;
	msg->actor = ev->actor;
	msg->resource = ev->resource;
	msg->outcome = ev->outcome;
	msg->data_json = ev->data_json;
	msg->prev_hash = prev_hex;
	msg->hash = hash_hex;
}

static int list_events(struct rpc_call *call, const ProtobufCMessage *req_msg,
		       ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__ListEventsRequest *req = (const void *)req_msg;
	Trstctl__V1__ListEventsResponse *resp;
	struct audit_query q = { .after_sequence = req->after_sequence,
				 .type_prefix = req->type_prefix,
				 .page_size = req->page_size,
				 .page_token = req->page_token };
	struct audit_page *page = NULL;
	int r;

	if (req->after_sequence < 0)
		return rpc_call_error(call, RPC_INVALID_ARGUMENT, "after_sequence must be >= 0");
	if (req->page_size < 0)
		return rpc_call_error(call, RPC_INVALID_ARGUMENT, "page_size must be >= 0");
	r = audit_list(user, NULL, &q, &page);
	if (r == -EINVAL)
		return rpc_call_error(call, RPC_INVALID_ARGUMENT, "invalid page_token");
	if (r < 0)
		return r;
	resp = (void *)rpc_call_new_message(call, &trstctl__v1__list_events_response__descriptor);
	resp->n_events = page->n;
	resp->events = rpc_call_alloc(call, (page->n ? page->n : 1) * sizeof(*resp->events));
	for (size_t i = 0; i < page->n; i++) {
		Trstctl__V1__AuditEvent *m =
			(void *)rpc_call_new_message(call, &trstctl__v1__audit_event__descriptor);
		Google__Protobuf__Timestamp *ts = (void *)rpc_call_new_message(
			call, &google__protobuf__timestamp__descriptor);
		char *prev = rpc_call_alloc(call, 2 * AUDIT_HASH_LEN + 1);
		char *hash = rpc_call_alloc(call, 2 * AUDIT_HASH_LEN + 1);
		struct audit_event *ev = &page->events[i];

		to_proto(ev, m, ts, prev, hash);
		m->id = rpc_call_strdup(call, ev->id);
		m->type = rpc_call_strdup(call, ev->type);
		m->actor = rpc_call_strdup(call, ev->actor);
		m->resource = rpc_call_strdup(call, ev->resource);
		m->outcome = rpc_call_strdup(call, ev->outcome);
		m->data_json = rpc_call_strdup(call, ev->data_json);
		resp->events[i] = m;
	}
	if (page->next_page_token)
		resp->next_page_token = rpc_call_strdup(call, page->next_page_token);
	audit_page_free(page);
	*ret_resp = &resp->base;
	return 0;
}

struct watch_ctx {
	struct rpc_call *call;
};

static int watch_send(const struct audit_event *ev, void *ud)
{
	struct watch_ctx *w = ud;
	Trstctl__V1__AuditEvent msg = TRSTCTL__V1__AUDIT_EVENT__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	char prev[2 * AUDIT_HASH_LEN + 1], hash[2 * AUDIT_HASH_LEN + 1];

	to_proto(ev, &msg, &ts, prev, hash);
	return rpc_call_send(w->call, &msg.base);
}

static bool watch_wait(void *ud, int timeout_ms)
{
	struct watch_ctx *w = ud;

	return rpc_call_wait(w->call, timeout_ms);
}

static int watch_events(struct rpc_call *call, const ProtobufCMessage *req_msg, void *user)
{
	const Trstctl__V1__WatchEventsRequest *req = (const void *)req_msg;
	struct watch_ctx w = { .call = call };
	int r;

	if (req->after_sequence < 0)
		return rpc_call_error(call, RPC_INVALID_ARGUMENT, "after_sequence must be >= 0");
	r = audit_watch(user, NULL, req->after_sequence, req->type_prefix, WATCH_POLL_MS,
			watch_send, watch_wait, &w);
	/* The client went away or the server stops: the stream simply ends. */
	return r == -ECANCELED ? rpc_call_error(call, RPC_CANCELLED, "watch cancelled") : r;
}

static int verify_chain(struct rpc_call *call, const ProtobufCMessage *req_msg,
			ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__VerifyChainRequest *req = (const void *)req_msg;
	Trstctl__V1__VerifyChainResponse *resp;
	struct audit_verify_result res;
	int r;

	if (req->from_sequence < 0 || req->to_sequence < 0)
		return rpc_call_error(call, RPC_INVALID_ARGUMENT,
				      "from_sequence and to_sequence must be >= 0");
	if (req->to_sequence > 0 && req->from_sequence > req->to_sequence)
		return rpc_call_error(call, RPC_INVALID_ARGUMENT,
				      "from_sequence must not exceed to_sequence");
	r = audit_verify(user, NULL, req->from_sequence, req->to_sequence, &res);
	if (r == -EDOM)
		return rpc_call_error(call, RPC_INVALID_ARGUMENT,
				      "from_sequence %lld is past the head of the audit chain",
				      (long long)req->from_sequence);
	if (r < 0)
		return r;
	resp = (void *)rpc_call_new_message(call, &trstctl__v1__verify_chain_response__descriptor);
	resp->ok = res.ok;
	resp->checked = res.checked;
	resp->first_bad_sequence = res.first_bad_sequence;
	resp->head_hash = rpc_call_alloc(call, 2 * AUDIT_HASH_LEN + 1);
	if (res.head_sequence > 0)
		audit_hex(res.head_hash, AUDIT_HASH_LEN, resp->head_hash);
	resp->detail = rpc_call_strdup(call, res.detail);
	*ret_resp = &resp->base;
	return 0;
}

int audit_rpc_register(struct rpc_server *s, struct audit *a)
{
	const ProtobufCServiceDescriptor *d = &trstctl__v1__audit__descriptor;
	struct rpc_method_handler *h;

	if (!s || !a)
		return -EINVAL;
	if (!a->rpc_handlers) {
		a->rpc_handlers = calloc(d->n_methods, sizeof(*h));
		if (!a->rpc_handlers)
			return -ENOMEM;
	}
	h = a->rpc_handlers;
	/* By name: the table follows desc->methods[], whatever order protoc-c chose. */
	for (unsigned i = 0; i < d->n_methods; i++) {
		const char *name = d->methods[i].name;

		if (strcmp(name, "ListEvents") == 0)
			h[i] = (struct rpc_method_handler){ .unary = list_events };
		else if (strcmp(name, "WatchEvents") == 0)
			h[i] = (struct rpc_method_handler){ .stream = watch_events };
		else if (strcmp(name, "VerifyChain") == 0)
			h[i] = (struct rpc_method_handler){ .unary = verify_chain };
	}
	return rpc_server_add_service(s, d, h, a);
}
