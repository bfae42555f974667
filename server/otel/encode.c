/*
 * The OTLP encoder: queued spans and audit log records into ExportTraceServiceRequest and
 * ExportLogsServiceRequest bytes, built with the protobuf-c code generated from
 * api/otlp/ (the OTLP definitions). One resource (service.name, service.version) and one
 * instrumentation scope ("trstctl") per request. Attribute names follow the OpenTelemetry
 * semantic conventions for RPC spans (rpc.system, rpc.service, rpc.method,
 * rpc.grpc.status_code) and the trstctl.* names of docs/telemetry.md. Also the retry rules
 * of the exporter, as pure functions. Assumes every string it is given is valid UTF-8 (an
 * OTLP string must be): method paths come from the descriptors, audit fields were checked
 * when recorded, service.name at start.
 */
#include "otel-internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.pb-c.h"
#include "logs.pb-c.h"
#include "logs_service.pb-c.h"
#include "resource.pb-c.h"
#include "rpc.h" /* the code values only */
#include "trace.pb-c.h"
#include "trace_service.pb-c.h"

/* The generated names are long. */
#define OTLP_ANY Opentelemetry__Proto__Common__V1__AnyValue
#define OTLP_KV Opentelemetry__Proto__Common__V1__KeyValue
#define OTLP_LOG Opentelemetry__Proto__Logs__V1__LogRecord
#define OTLP_LOGS_REQ Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest
#define OTLP_LOGS_RESP Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceResponse
#define OTLP_RESOURCE Opentelemetry__Proto__Resource__V1__Resource
#define OTLP_RESOURCE_LOGS Opentelemetry__Proto__Logs__V1__ResourceLogs
#define OTLP_RESOURCE_SPANS Opentelemetry__Proto__Trace__V1__ResourceSpans
#define OTLP_SCOPE Opentelemetry__Proto__Common__V1__InstrumentationScope
#define OTLP_SCOPE_LOGS Opentelemetry__Proto__Logs__V1__ScopeLogs
#define OTLP_SCOPE_SPANS Opentelemetry__Proto__Trace__V1__ScopeSpans
#define OTLP_SPAN Opentelemetry__Proto__Trace__V1__Span
#define OTLP_STATUS Opentelemetry__Proto__Trace__V1__Status
#define OTLP_TRACES_REQ Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest
#define OTLP_TRACES_RESP Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse
#define OT_INIT(x) OPENTELEMETRY__PROTO__##x##__INIT

#define SCOPE_NAME "trstctl"
#define SPAN_ATTRS 5 /* rpc.system, rpc.service, rpc.method, rpc.grpc.status_code, principal */
#define LOG_ATTRS 9  /* type, id, sequence, tenant, actor, resource, outcome, hash, data */

/* The allocations of one request: freed together. */
struct scratch {
	void *blocks[8];
	int n;
	bool failed;
};

static void *scratch_alloc(struct scratch *s, size_t n, size_t size)
{
	void *p;

	if (s->failed || s->n == (int)(sizeof(s->blocks) / sizeof(s->blocks[0]))) {
		s->failed = true;
		return NULL;
	}
	p = calloc(n ? n : 1, size);
	if (!p) {
		s->failed = true;
		return NULL;
	}
	s->blocks[s->n++] = p;
	return p;
}

static void scratch_free(struct scratch *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->blocks[i]);
}

/* The attributes of one item: key-values, their pointers and values, side by side. */
struct attrs {
	OTLP_KV *kv;
	OTLP_KV **ptr;
	OTLP_ANY *val;
	size_t n;
};

static OTLP_ANY *attr_add(struct attrs *a, const char *key)
{
	OTLP_KV *kv = &a->kv[a->n];
	OTLP_ANY *v = &a->val[a->n];

	*kv = (OTLP_KV)OT_INIT(COMMON__V1__KEY_VALUE);
	*v = (OTLP_ANY)OT_INIT(COMMON__V1__ANY_VALUE);
	kv->key = (char *)key;
	kv->value = v;
	a->ptr[a->n++] = kv;
	return v;
}

static void attr_str(struct attrs *a, const char *key, const char *value)
{
	OTLP_ANY *v = attr_add(a, key);

	v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
	v->string_value = (char *)value;
}

static void attr_int(struct attrs *a, const char *key, int64_t value)
{
	OTLP_ANY *v = attr_add(a, key);

	v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
	v->int_value = value;
}

/* Room for n items of per attributes each; false when out of memory. */
static bool attrs_alloc(struct scratch *s, struct attrs *a, size_t n, size_t per)
{
	a->kv = scratch_alloc(s, n * per, sizeof(*a->kv));
	a->ptr = scratch_alloc(s, n * per, sizeof(*a->ptr));
	a->val = scratch_alloc(s, n * per, sizeof(*a->val));
	a->n = 0;
	return !s->failed;
}

/* The resource and scope, in storage of the caller's frame. */
struct envelope {
	OTLP_RESOURCE resource;
	OTLP_SCOPE scope;
	OTLP_KV kv[2];
	OTLP_KV *ptr[2];
	OTLP_ANY val[2];
};

static void envelope_init(struct envelope *e, const struct otel_resource *res)
{
	struct attrs a = { e->kv, e->ptr, e->val, 0 };

	attr_str(&a, "service.name", res->service_name);
	attr_str(&a, "service.version", res->service_version);
	e->resource = (OTLP_RESOURCE)OT_INIT(RESOURCE__V1__RESOURCE);
	e->resource.n_attributes = a.n;
	e->resource.attributes = a.ptr;
	e->scope = (OTLP_SCOPE)OT_INIT(COMMON__V1__INSTRUMENTATION_SCOPE);
	e->scope.name = SCOPE_NAME;
	e->scope.version = (char *)res->service_version;
}

static int pack(const ProtobufCMessage *m, uint8_t **ret_buf, size_t *ret_len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(n ? n : 1);

	if (!buf)
		return -ENOMEM;
	*ret_len = protobuf_c_message_pack(m, buf);
	*ret_buf = buf;
	return 0;
}

/* Codes the semantic conventions count as a server's error; others leave the status unset. */
static bool server_error(int code)
{
	switch (code) {
	case RPC_UNKNOWN:
	case RPC_DEADLINE_EXCEEDED:
	case RPC_UNIMPLEMENTED:
	case RPC_INTERNAL:
	case RPC_UNAVAILABLE:
	case RPC_DATA_LOSS:
		return true;
	default:
		return false;
	}
}

/*
 * One span: name "trstctl.v1.CA/CreateOwner" (the path without its leading '/'), kind
 * SERVER. service (OTEL_METHOD_MAX bytes) receives the service part of the path.
 */
static void span_fill(OTLP_SPAN *sp, OTLP_STATUS *st, struct attrs *a, const struct otel_span *in,
		      const uint8_t *ids, char *service)
{
	const char *path = in->method[0] == '/' ? in->method + 1 : in->method;
	const char *slash = strrchr(path, '/');
	size_t first = a->n;

	snprintf(service, OTEL_METHOD_MAX, "%.*s", slash ? (int)(slash - path) : 0, path);
	*sp = (OTLP_SPAN)OT_INIT(TRACE__V1__SPAN);
	sp->trace_id = (ProtobufCBinaryData){ 16, (uint8_t *)ids };
	sp->span_id = (ProtobufCBinaryData){ 8, (uint8_t *)ids + 16 };
	sp->name = (char *)path;
	sp->kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER;
	sp->start_time_unix_nano = (uint64_t)in->start_ns;
	sp->end_time_unix_nano = (uint64_t)in->end_ns;
	attr_str(a, "rpc.system", "grpc");
	attr_str(a, "rpc.service", service);
	attr_str(a, "rpc.method", slash ? slash + 1 : path);
	attr_int(a, "rpc.grpc.status_code", in->code);
	if (in->principal[0])
		attr_str(a, "trstctl.principal.id", in->principal);
	sp->n_attributes = a->n - first;
	sp->attributes = a->ptr + first;
	if (server_error(in->code)) {
		*st = (OTLP_STATUS)OT_INIT(TRACE__V1__STATUS);
		st->code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
		st->message = (char *)in->code_name;
		sp->status = st;
	}
}

int otel_encode_traces(const struct otel_resource *res, struct otel_span *const *spans, size_t n,
		       const uint8_t *ids, uint8_t **ret_buf, size_t *ret_len)
{
	OTLP_TRACES_REQ req = OT_INIT(COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST);
	OTLP_RESOURCE_SPANS rs = OT_INIT(TRACE__V1__RESOURCE_SPANS), *rsp = &rs;
	OTLP_SCOPE_SPANS ss = OT_INIT(TRACE__V1__SCOPE_SPANS), *ssp = &ss;
	struct scratch s = { 0 };
	struct envelope env;
	struct attrs a;
	OTLP_SPAN *sp = scratch_alloc(&s, n, sizeof(*sp));
	OTLP_SPAN **spp = scratch_alloc(&s, n, sizeof(*spp));
	OTLP_STATUS *st = scratch_alloc(&s, n, sizeof(*st));
	char *services = scratch_alloc(&s, n, OTEL_METHOD_MAX);
	int r = -ENOMEM;

	if (!attrs_alloc(&s, &a, n, SPAN_ATTRS))
		goto out;
	envelope_init(&env, res);
	for (size_t i = 0; i < n; i++) {
		span_fill(&sp[i], &st[i], &a, spans[i], ids + i * OTEL_ID_BYTES,
			  services + i * OTEL_METHOD_MAX);
		spp[i] = &sp[i];
	}
	ss.scope = &env.scope;
	ss.n_spans = n;
	ss.spans = spp;
	rs.resource = &env.resource;
	rs.n_scope_spans = 1;
	rs.scope_spans = &ssp;
	req.n_resource_spans = 1;
	req.resource_spans = &rsp;
	r = pack(&req.base, ret_buf, ret_len);
out:
	scratch_free(&s);
	return r;
}

/* Severity of an audit outcome: ok INFO, denied WARN, error ERROR. */
static void severity(const char *outcome, OTLP_LOG *lr)
{
	if (strcmp(outcome, "denied") == 0) {
		lr->severity_number =
			OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_WARN;
		lr->severity_text = "WARN";
	} else if (strcmp(outcome, "error") == 0) {
		lr->severity_number =
			OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_ERROR;
		lr->severity_text = "ERROR";
	} else {
		lr->severity_number =
			OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_INFO;
		lr->severity_text = "INFO";
	}
}

/* One log record: event "trstctl.audit", body the record's type. hex: 65 bytes. */
static void log_fill(OTLP_LOG *lr, OTLP_ANY *body, struct attrs *a, const struct otel_log *in,
		     int64_t observed_ns, char *hex)
{
	size_t first = a->n;

	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", in->hash[i]);
	*lr = (OTLP_LOG)OT_INIT(LOGS__V1__LOG_RECORD);
	lr->time_unix_nano = (uint64_t)in->time_us * 1000;
	lr->observed_time_unix_nano = (uint64_t)observed_ns;
	severity(in->outcome, lr);
	lr->event_name = "trstctl.audit";
	*body = (OTLP_ANY)OT_INIT(COMMON__V1__ANY_VALUE);
	body->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
	body->string_value = (char *)in->type;
	lr->body = body;
	attr_str(a, "trstctl.audit.type", in->type);
	attr_str(a, "trstctl.audit.id", in->id);
	attr_int(a, "trstctl.audit.sequence", in->sequence);
	attr_str(a, "trstctl.tenant.id", in->tenant_id);
	attr_str(a, "trstctl.audit.actor.subject", in->actor);
	attr_str(a, "trstctl.audit.resource", in->resource);
	attr_str(a, "trstctl.audit.outcome", in->outcome);
	attr_str(a, "trstctl.audit.hash", hex);
	if (strcmp(in->data_json, "{}") != 0)
		attr_str(a, "trstctl.audit.data", in->data_json);
	lr->n_attributes = a->n - first;
	lr->attributes = a->ptr + first;
}

int otel_encode_logs(const struct otel_resource *res, struct otel_log *const *logs, size_t n,
		     int64_t observed_ns, uint8_t **ret_buf, size_t *ret_len)
{
	OTLP_LOGS_REQ req = OT_INIT(COLLECTOR__LOGS__V1__EXPORT_LOGS_SERVICE_REQUEST);
	OTLP_RESOURCE_LOGS rl = OT_INIT(LOGS__V1__RESOURCE_LOGS), *rlp = &rl;
	OTLP_SCOPE_LOGS sl = OT_INIT(LOGS__V1__SCOPE_LOGS), *slp = &sl;
	struct scratch s = { 0 };
	struct envelope env;
	struct attrs a;
	OTLP_LOG *lr = scratch_alloc(&s, n, sizeof(*lr));
	OTLP_LOG **lrp = scratch_alloc(&s, n, sizeof(*lrp));
	OTLP_ANY *body = scratch_alloc(&s, n, sizeof(*body));
	char *hex = scratch_alloc(&s, n, 65);
	int r = -ENOMEM;

	if (!attrs_alloc(&s, &a, n, LOG_ATTRS))
		goto out;
	envelope_init(&env, res);
	for (size_t i = 0; i < n; i++) {
		log_fill(&lr[i], &body[i], &a, logs[i], observed_ns, hex + i * 65);
		lrp[i] = &lr[i];
	}
	sl.scope = &env.scope;
	sl.n_log_records = n;
	sl.log_records = lrp;
	rl.resource = &env.resource;
	rl.n_scope_logs = 1;
	rl.scope_logs = &slp;
	req.n_resource_logs = 1;
	req.resource_logs = &rlp;
	r = pack(&req.base, ret_buf, ret_len);
out:
	scratch_free(&s);
	return r;
}

size_t otel_rejected(enum otel_signal s, const uint8_t *body, size_t len, size_t n)
{
	int64_t rejected = 0;

	if (!body || !len)
		return 0;
	if (s == OTEL_TRACES) {
		OTLP_TRACES_RESP *m =
			opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
				NULL, len, body);

		if (m && m->partial_success)
			rejected = m->partial_success->rejected_spans;
		opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(
			m, NULL);
	} else {
		OTLP_LOGS_RESP *m =
			opentelemetry__proto__collector__logs__v1__export_logs_service_response__unpack(
				NULL, len, body);

		if (m && m->partial_success)
			rejected = m->partial_success->rejected_log_records;
		opentelemetry__proto__collector__logs__v1__export_logs_service_response__free_unpacked(
			m, NULL);
	}
	if (rejected <= 0)
		return 0;
	return (uint64_t)rejected > n ? n : (size_t)rejected;
}

bool otel_status_retryable(long status)
{
	return status == 429 || status == 502 || status == 503 || status == 504;
}

int64_t otel_retry_delay_ms(int attempt, long retry_after_s, uint32_t rnd)
{
	int64_t d = OTEL_BACKOFF_FIRST_MS;

	if (retry_after_s > 0)
		return retry_after_s > 86400 ? 86400000 : (int64_t)retry_after_s * 1000;
	for (int i = 0; i < attempt && d < OTEL_BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > OTEL_BACKOFF_MAX_MS)
		d = OTEL_BACKOFF_MAX_MS;
	return d - (int64_t)(rnd % (uint32_t)(d / 2 + 1));
}
