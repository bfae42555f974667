#pragma once
/*
 * otel: OpenTelemetry export over OTLP/HTTP with protobuf bodies (docs/telemetry.md
 * "OpenTelemetry export (OTLP)"). A span per served gRPC call (fed by the rpc completion
 * hook) goes to <otlp.endpoint>/v1/traces, a log record per committed audit record (fed by
 * the audit commit hook) to <otlp.endpoint>/v1/logs. The hooks only copy into a bounded
 * queue per signal (a full queue drops the item and counts it); one exporter thread
 * batches, sends through the guarded HTTP client (guard/, the egress policy) and retries.
 * Nothing here ever makes a call wait for the collector. No token or secret is logged or
 * exported: a span carries the principal's token id, never a token.
 */
#include <stddef.h>
#include <stdint.h>

struct audit_event;
struct cfg_otlp;
struct guard_policy;
struct http_server;
struct rpc_call_done;
struct otel;

enum otel_signal {
	OTEL_TRACES, /* spans, to /v1/traces */
	OTEL_LOGS,   /* log records, to /v1/logs */
	OTEL_SIGNALS
};

/* Counters of one signal since start. */
struct otel_signal_stats {
	uint64_t sent;	   /* items the collector accepted (2xx, less a partial rejection) */
	uint64_t failed;   /* items given up: refused, rejected, or retried past the budget */
	uint64_t dropped;  /* items never sent: the queue was full, or left at shutdown */
	uint64_t retries;  /* requests sent again after a retryable failure */
	uint64_t requests; /* requests sent, retries included */
	uint64_t queued;   /* items waiting now */
};

/*
 * Starts the exporter for c (c->enabled; c is borrowed and must outlive the exporter),
 * sending through the egress policy p (borrowed, must outlive it). version is the
 * service.version resource attribute and goes into the User-Agent. Reads otlp.token_file
 * now. Returns 0 and *ret_otel, or -errno with a one-line reason in err (errlen bytes; never
 * a token or header value): -EINVAL for an empty token file or a token or header value with
 * a control character, -errno of the token file, -ENOMEM.
 */
int otel_start(const struct cfg_otlp *c, struct guard_policy *p, const char *version,
	       struct otel **ret_otel, char *err, size_t errlen);

/*
 * Stops: what is still queued is sent once more (no retry; at most otlp.timeout in all),
 * what is left is counted as dropped; then frees, wiping the token. Call it after the
 * hooks that feed it were removed. Accepts NULL, returns NULL.
 */
struct otel *otel_stop(struct otel *o);

/*
 * An rpc_done_fn (otel is the struct otel): queues a span of the finished call. Takes a
 * lock for a copy and returns; never waits for the exporter.
 */
void otel_rpc_done(const struct rpc_call_done *d, void *otel);

/* An audit_commit_fn (otel is the struct otel): queues a log record of ev, as above. */
void otel_audit_committed(const struct audit_event *ev, void *otel);

/* The counters of signal s. */
void otel_stats(struct otel *o, enum otel_signal s, struct otel_signal_stats *ret_stats);

/* Adds the trstctl_otlp_* families to /metrics (before http_server_start). */
int otel_metrics_register(struct otel *o, struct http_server *h);
