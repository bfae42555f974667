/*
 * Unauthenticated calls, summarized (authz-int.h, docs/api.md "Audit log"). A call
 * without a valid token used to leave an audit record of its own, so a client could grow
 * the chain, which is kept forever, by a row (and a kilobyte of its own text) per call.
 * Now the gate counts it (authz_unauth_note: a mutex and a counter, so it is answered on
 * the completion-queue thread too) and a thread writes, every interval, one auth.denied
 * record per source with what that source did (unauth-table.c). All summaries of an
 * interval go in one transaction through audit_record, as every other record; when the
 * write fails they go back into the table for the next interval, and the last flush at
 * authz_close (the server stops) logs what it could not write. A crash loses at most one
 * interval's summaries; the counters of /metrics say how many calls there were.
 * Denials of a valid token (policy.denied) are not summarized: each keeps its record.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "audit.h"
#include "authz-int.h"
#include "db.h"
#include "http.h"
#include "log.h"
#include "rpc.h"

void authz_unauth_note(struct authz *a, struct rpc_call *call, const char *resource,
		       const char *token_id, enum unauth_reason reason)
{
	const struct authz_method *m = authz_method_find(a, rpc_call_method(call));
	struct unauth_call c = {
		.peer = rpc_call_peer(call),
		.method = m ? (uint16_t)(m - a->methods) : UNAUTH_NO_METHOD,
		.reason = reason,
		.token_id = token_id,
		.resource = resource,
		.now_us = authz_now_us(),
	};

	unauth_note(a->unauth, &c);
}

/* The record's data of s, methods named by their paths ("/trstctl.v1.CA/GetOwner"). */
static json_t *summary_json(const struct authz *a, const struct unauth_summary *s)
{
	const char **paths = calloc(a->n_methods + 1, sizeof(*paths));
	json_t *o;

	if (!paths)
		return NULL;
	for (size_t i = 0; i < a->n_methods; i++)
		paths[i] = a->methods[i].path;
	o = unauth_summary_json(s, paths, a->n_methods, a->unauth_interval_ms);
	free(paths);
	return o;
}

/* The summaries of one flush, as audit records of one change. */
struct flush {
	struct authz *a;
	const struct unauth_summary *s;
	json_t **data; /* one per summary */
	size_t n;
};

static int flush_apply(struct db_tx *tx, void *ud)
{
	const struct flush *f = ud;

	for (size_t i = 0; i < f->n; i++) {
		struct audit_entry e = { .tenant_id = f->a->tenant,
					 .type = "auth.denied",
					 .actor = "",
					 .resource = "",
					 .outcome = "denied",
					 .data = f->data[i] };
		int r = audit_record(tx, &e);

		if (r < 0)
			return r;
	}
	return 0;
}

int authz_unauth_flush(struct authz *a)
{
	struct unauth_summary *s = NULL;
	struct flush f = { .a = a };
	int r;

	if (!a || !a->unauth)
		return -EINVAL;
	r = unauth_take(a->unauth, &s, &f.n);
	if (r < 0 || f.n == 0)
		return r;
	f.s = s;
	f.data = calloc(f.n, sizeof(*f.data));
	r = f.data ? 0 : -ENOMEM;
	for (size_t i = 0; r >= 0 && i < f.n; i++) {
		f.data[i] = summary_json(a, &s[i]);
		if (!f.data[i])
			r = -ENOMEM;
	}
	if (r >= 0)
		r = db_write(a->db, flush_apply, &f, AUTHZ_AUDIT_TIMEOUT_MS);
	if (r < 0) /* counted, not written: back into the table for the next flush */
		for (size_t i = 0; i < f.n; i++)
			unauth_merge(a->unauth, &s[i]);
	for (size_t i = 0; f.data && i < f.n; i++)
		json_decref(f.data[i]);
	free(f.data);
	free(s);
	return r < 0 ? r : (int)f.n;
}

static void *flusher_main(void *p)
{
	struct authz *a = p;
	bool failing = false;

	pthread_mutex_lock(&a->flush_mu);
	while (!a->flush_stop) {
		struct timespec ts;
		int r;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += a->unauth_interval_ms / 1000;
		ts.tv_nsec += (long)(a->unauth_interval_ms % 1000) * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		while (!a->flush_stop &&
		       pthread_cond_timedwait(&a->flush_cv, &a->flush_mu, &ts) == 0)
			;
		if (a->flush_stop)
			break;
		pthread_mutex_unlock(&a->flush_mu);
		r = authz_unauth_flush(a);
		if (r < 0 && !failing)
			log_warn("cannot audit the unauthenticated calls' summaries; kept for the "
				 "next interval",
				 "error", "%s", strerror(-r));
		else if (r >= 0 && failing)
			log_info("unauthenticated calls' summaries audited again");
		failing = r < 0;
		pthread_mutex_lock(&a->flush_mu);
	}
	pthread_mutex_unlock(&a->flush_mu);
	return NULL;
}

int authz_unauth_start(struct authz *a, int64_t interval_ms, size_t max_sources)
{
	int r;

	a->unauth_interval_ms = interval_ms > 0 ? interval_ms : UNAUTH_DEFAULT_INTERVAL_MS;
	r = unauth_table_new(max_sources ? max_sources : UNAUTH_DEFAULT_MAX_SOURCES, &a->unauth);
	if (r < 0 || interval_ms < 0) /* < 0: no thread (tests flush themselves) */
		return r;
	r = -pthread_create(&a->flusher, NULL, flusher_main, a);
	a->flusher_running = r >= 0;
	return r;
}

/* What a last flush could not write is logged: it is all that is left of those calls. */
static void log_unwritten(struct authz *a, int err)
{
	struct unauth_summary *s = NULL;
	size_t n = 0;

	if (unauth_take(a->unauth, &s, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		json_t *o = summary_json(a, &s[i]);
		char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

		log_error("cannot audit a summary of unauthenticated calls at shutdown", "error",
			  "%s", strerror(-err), "summary", "%s", text ? text : s[i].source);
		free(text);
		json_decref(o);
	}
	free(s);
}

void authz_unauth_stop(struct authz *a)
{
	int r;

	if (a->flusher_running) {
		pthread_mutex_lock(&a->flush_mu);
		a->flush_stop = true;
		pthread_cond_broadcast(&a->flush_cv);
		pthread_mutex_unlock(&a->flush_mu);
		pthread_join(a->flusher, NULL);
		a->flusher_running = false;
	}
	if (!a->unauth)
		return;
	r = authz_unauth_flush(a);
	if (r < 0)
		log_unwritten(a, r);
	a->unauth = unauth_table_free(a->unauth);
}

/* /metrics ----------------------------------------------------------------------------- */

static int unauth_metrics(struct http_metrics *m, void *arg)
{
	struct authz *a = arg;
	uint64_t reasons[UNAUTH_N_REASONS], folded;
	char labels[64];

	unauth_totals(a->unauth, reasons, &folded);
	http_metrics_family(m, "trstctl_unauthenticated_calls_total", "counter",
			    "Calls refused UNAUTHENTICATED, by reason (audited as one summary "
			    "per source per interval).");
	for (int i = 0; i < UNAUTH_N_REASONS; i++) {
		snprintf(labels, sizeof(labels), "reason=\"%s\"", unauth_reason_name(i));
		http_metrics_sample(m, "trstctl_unauthenticated_calls_total", labels, reasons[i]);
	}
	http_metrics_family(m, "trstctl_unauthenticated_calls_folded_total", "counter",
			    "Unauthenticated calls summarized under \"other\" because the table "
			    "of sources was full.");
	http_metrics_sample(m, "trstctl_unauthenticated_calls_folded_total", NULL, folded);
	return 0;
}

int authz_metrics_register(struct authz *a, struct http_server *h)
{
	return a && h ? http_server_add_metrics(h, unauth_metrics, a) : -EINVAL;
}
