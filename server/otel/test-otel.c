/*
 * Unit tests of otel/: the encoder, decoded back with the protobuf-c code of api/otlp/
 * field by field; the retry rules; and the exporter against a loopback HTTP server
 * (/usr/bin/python3) that keeps every request it gets in a folder: batching, a 503 with
 * Retry-After retried once, a partial success counted, headers (content type, bearer
 * token, otlp.headers, user agent), a full queue dropping without waiting, start-up
 * errors that never show a token.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "cfg.h"
#include "guard.h"
#include "logs_service.pb-c.h"
#include "otel-internal.h"
#include "rpc.h"
#include "trace_service.pb-c.h"

#define OTLP_ANY Opentelemetry__Proto__Common__V1__AnyValue
#define OTLP_KV Opentelemetry__Proto__Common__V1__KeyValue
#define OTLP_LOG Opentelemetry__Proto__Logs__V1__LogRecord
#define OTLP_LOGS_REQ Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest
#define OTLP_RESOURCE Opentelemetry__Proto__Resource__V1__Resource
#define OTLP_SCOPE_LOGS Opentelemetry__Proto__Logs__V1__ScopeLogs
#define OTLP_SCOPE_SPANS Opentelemetry__Proto__Trace__V1__ScopeSpans
#define OTLP_SPAN Opentelemetry__Proto__Trace__V1__Span
#define OTLP_TRACES_PARTIAL Opentelemetry__Proto__Collector__Trace__V1__ExportTracePartialSuccess
#define OTLP_TRACES_REQ Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest
#define OTLP_TRACES_RESP Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse

/*
 * The collector: every POST is kept as <dir>/<n>.body and <n>.head ("path", then the
 * headers lowercased). /a/v1/traces answers 503 with Retry-After: 1 the first time, then
 * 200 with a partial success that rejects one span; everything else 200, empty.
 */
static const char server_py[] =
	"import http.server, os, sys\n"
	"d = sys.argv[1]\n"
	"seen = {}\n"
	"class H(http.server.BaseHTTPRequestHandler):\n"
	"    def log_message(self, *a): pass\n"
	"    def do_POST(self):\n"
	"        body = self.rfile.read(int(self.headers.get('Content-Length', '0')))\n"
	"        k = len(os.listdir(d)) // 2\n"
	"        open(os.path.join(d, '%d.body' % k), 'wb').write(body)\n"
	"        hs = ''.join('%s: %s\\n' % (a.lower(), b) for a, b in self.headers.items())\n"
	"        open(os.path.join(d, '%d.head' % k), 'w').write(self.path + '\\n' + hs)\n"
	"        seen[self.path] = seen.get(self.path, 0) + 1\n"
	"        if self.path == '/a/v1/traces' and seen[self.path] == 1:\n"
	"            self.send_response(503)\n"
	"            self.send_header('Retry-After', '1')\n"
	"            self.send_header('Content-Length', '0')\n"
	"            self.end_headers()\n"
	"            return\n"
	"        out = b'\\x0a\\x02\\x08\\x01' if self.path == '/a/v1/traces' else b''\n"
	"        self.send_response(200)\n"
	"        self.send_header('Content-Type', 'application/x-protobuf')\n"
	"        self.send_header('Content-Length', str(len(out)))\n"
	"        self.end_headers()\n"
	"        self.wfile.write(out)\n"
	"s = http.server.HTTPServer(('127.0.0.1', 0), H)\n"
	"print(s.server_address[1], flush=True)\n"
	"s.serve_forever()\n";

static pid_t server_pid;
static int server_port;
static char spool[64] = "/tmp/trstctl-otel-XXXXXX";

static int start_server(void **state)
{
	const char *py = getenv("PYTHON3") ? getenv("PYTHON3") : "/usr/bin/python3";
	int pfd[2];
	FILE *f;

	(void)state;
	if (!mkdtemp(spool) || pipe(pfd) < 0)
		return -1;
	server_pid = fork();
	if (server_pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		execl(py, py, "-c", server_py, spool, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	f = fdopen(pfd[0], "r");
	if (!f || fscanf(f, "%d", &server_port) != 1)
		return -1;
	fclose(f);
	return 0;
}

static int stop_server(void **state)
{
	char cmd[128];

	(void)state;
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", spool);
	return system(cmd) == 0 ? 0 : -1;
}

static struct guard_policy *air_gap_policy(void)
{
	struct cfg c = { 0 };
	struct guard_policy *p = NULL;

	c.air_gap.enabled = true; /* loopback only */
	assert_int_equal(guard_policy_new(&c, &p), 0);
	return p;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const OTLP_ANY *attr(OTLP_KV **kv, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(kv[i]->key, key) == 0)
			return kv[i]->value;
	return NULL;
}

static void expect_str(OTLP_KV **kv, size_t n, const char *key, const char *want)
{
	const OTLP_ANY *v = attr(kv, n, key);

	if (!v)
		fail_msg("attribute %s missing", key);
	assert_int_equal(v->value_case,
			 OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE);
	assert_string_equal(v->string_value, want);
}

static void expect_int(OTLP_KV **kv, size_t n, const char *key, int64_t want)
{
	const OTLP_ANY *v = attr(kv, n, key);

	if (!v)
		fail_msg("attribute %s missing", key);
	assert_int_equal(v->value_case,
			 OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE);
	assert_int_equal(v->int_value, want);
}

static void expect_resource(const OTLP_RESOURCE *r, const char *name, const char *version)
{
	assert_non_null(r);
	assert_int_equal(r->n_attributes, 2);
	expect_str(r->attributes, r->n_attributes, "service.name", name);
	expect_str(r->attributes, r->n_attributes, "service.version", version);
}

static struct otel_span *span(const char *method, const char *principal, int code, int64_t t0)
{
	struct otel_span *s = calloc(1, sizeof(*s));

	snprintf(s->method, sizeof(s->method), "%s", method);
	snprintf(s->principal, sizeof(s->principal), "%s", principal);
	s->code = code;
	s->code_name = rpc_code_name((enum rpc_code)code);
	s->start_ns = t0;
	s->end_ns = t0 + 1500;
	return s;
}

/* Encoder ---------------------------------------------------------------------------- */

static void test_encode_traces(void **state)
{
	struct otel_resource res = { "svc", "9.9" };
	struct otel_span *sp[3] = {
		span("/trstctl.v1.CA/CreateOwner", "tok_abc", RPC_OK, 1000),
		span("/trstctl.v1.Secrets/GetSecret", "", RPC_PERMISSION_DENIED, 2000),
		span("/grpc.health.v1.Health/Check", "", RPC_INTERNAL, 3000),
	};
	uint8_t ids[3 * OTEL_ID_BYTES], *buf = NULL;
	size_t len = 0;
	OTLP_TRACES_REQ *req;
	OTLP_SCOPE_SPANS *ss;

	(void)state;
	for (size_t i = 0; i < sizeof(ids); i++)
		ids[i] = (uint8_t)(i + 1);
	assert_int_equal(otel_encode_traces(&res, sp, 3, ids, &buf, &len), 0);
	req = opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
		NULL, len, buf);
	assert_non_null(req);
	assert_int_equal(req->n_resource_spans, 1);
	expect_resource(req->resource_spans[0]->resource, "svc", "9.9");
	assert_int_equal(req->resource_spans[0]->n_scope_spans, 1);
	ss = req->resource_spans[0]->scope_spans[0];
	assert_string_equal(ss->scope->name, "trstctl");
	assert_string_equal(ss->scope->version, "9.9");
	assert_int_equal(ss->n_spans, 3);
	for (size_t i = 0; i < 3; i++) {
		OTLP_SPAN *s = ss->spans[i];

		assert_int_equal(s->trace_id.len, 16);
		assert_memory_equal(s->trace_id.data, ids + i * OTEL_ID_BYTES, 16);
		assert_int_equal(s->span_id.len, 8);
		assert_memory_equal(s->span_id.data, ids + i * OTEL_ID_BYTES + 16, 8);
		assert_int_equal(s->parent_span_id.len, 0);
		assert_int_equal(
			s->kind,
			OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER);
		assert_int_equal(s->start_time_unix_nano, 1000 * (i + 1));
		assert_int_equal(s->end_time_unix_nano, 1000 * (i + 1) + 1500);
		expect_str(s->attributes, s->n_attributes, "rpc.system", "grpc");
	}
	assert_string_equal(ss->spans[0]->name, "trstctl.v1.CA/CreateOwner");
	expect_str(ss->spans[0]->attributes, ss->spans[0]->n_attributes, "rpc.service",
		   "trstctl.v1.CA");
	expect_str(ss->spans[0]->attributes, ss->spans[0]->n_attributes, "rpc.method",
		   "CreateOwner");
	expect_int(ss->spans[0]->attributes, ss->spans[0]->n_attributes, "rpc.grpc.status_code", 0);
	expect_str(ss->spans[0]->attributes, ss->spans[0]->n_attributes, "trstctl.principal.id",
		   "tok_abc");
	assert_int_equal(ss->spans[0]->n_attributes, 5);
	assert_null(ss->spans[0]->status);
	/* unauthenticated: no principal attribute; a client's error leaves the status unset */
	assert_int_equal(ss->spans[1]->n_attributes, 4);
	assert_null(attr(ss->spans[1]->attributes, 4, "trstctl.principal.id"));
	expect_int(ss->spans[1]->attributes, 4, "rpc.grpc.status_code", 7);
	assert_null(ss->spans[1]->status);
	/* a server's error: status ERROR with the code's name */
	assert_string_equal(ss->spans[2]->name, "grpc.health.v1.Health/Check");
	expect_str(ss->spans[2]->attributes, 4, "rpc.service", "grpc.health.v1.Health");
	assert_non_null(ss->spans[2]->status);
	assert_int_equal(ss->spans[2]->status->code,
			 OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR);
	assert_string_equal(ss->spans[2]->status->message, "INTERNAL");
	opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(
		req, NULL);
	free(buf);
	for (int i = 0; i < 3; i++)
		free(sp[i]);
}

static struct otel_log *record(int64_t seq, const char *type, const char *outcome, const char *data)
{
	struct otel_log *l = calloc(1, sizeof(*l) + 256);
	char *at = l->buf;

	l->sequence = seq;
	l->time_us = 1700000000123456LL;
	snprintf(l->tenant_id, sizeof(l->tenant_id), "00000000-0000-0000-0000-000000000000");
	snprintf(l->id, sizeof(l->id), "1b4e28ba-2fa1-41d2-883f-0016d3cca427");
	memset(l->hash, 0xab, sizeof(l->hash));
	l->type = strcpy(at, type);
	at += strlen(at) + 1;
	l->actor = strcpy(at, "tok_1 ci");
	at += strlen(at) + 1;
	l->resource = strcpy(at, "owner/7");
	at += strlen(at) + 1;
	l->outcome = strcpy(at, outcome);
	at += strlen(at) + 1;
	l->data_json = strcpy(at, data);
	return l;
}

static void test_encode_logs(void **state)
{
	struct otel_resource res = { "svc", "9.9" };
	struct otel_log *l[2] = { record(41, "owner.created", "ok", "{\"kind\":\"team\"}"),
				  record(42, "auth.denied", "denied", "{}") };
	OTLP_LOGS_REQ *req;
	OTLP_SCOPE_LOGS *sl;
	OTLP_LOG *r;
	char hex[65];
	uint8_t *buf = NULL;
	size_t len = 0;

	(void)state;
	memset(hex, 'a', 64);
	for (int i = 0; i < 32; i++)
		memcpy(hex + 2 * i, "ab", 2);
	hex[64] = '\0';
	assert_int_equal(otel_encode_logs(&res, l, 2, 1700000001000000000LL, &buf, &len), 0);
	req = opentelemetry__proto__collector__logs__v1__export_logs_service_request__unpack(
		NULL, len, buf);
	assert_non_null(req);
	assert_int_equal(req->n_resource_logs, 1);
	expect_resource(req->resource_logs[0]->resource, "svc", "9.9");
	sl = req->resource_logs[0]->scope_logs[0];
	assert_string_equal(sl->scope->name, "trstctl");
	assert_int_equal(sl->n_log_records, 2);
	r = sl->log_records[0];
	assert_int_equal(r->time_unix_nano, 1700000000123456000ULL);
	assert_int_equal(r->observed_time_unix_nano, 1700000001000000000ULL);
	assert_int_equal(r->severity_number,
			 OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_INFO);
	assert_string_equal(r->severity_text, "INFO");
	assert_string_equal(r->event_name, "trstctl.audit");
	assert_string_equal(r->body->string_value, "owner.created");
	expect_str(r->attributes, r->n_attributes, "trstctl.audit.type", "owner.created");
	expect_str(r->attributes, r->n_attributes, "trstctl.audit.id",
		   "1b4e28ba-2fa1-41d2-883f-0016d3cca427");
	expect_int(r->attributes, r->n_attributes, "trstctl.audit.sequence", 41);
	expect_str(r->attributes, r->n_attributes, "trstctl.tenant.id",
		   "00000000-0000-0000-0000-000000000000");
	expect_str(r->attributes, r->n_attributes, "trstctl.audit.actor.subject", "tok_1 ci");
	expect_str(r->attributes, r->n_attributes, "trstctl.audit.resource", "owner/7");
	expect_str(r->attributes, r->n_attributes, "trstctl.audit.outcome", "ok");
	expect_str(r->attributes, r->n_attributes, "trstctl.audit.hash", hex);
	expect_str(r->attributes, r->n_attributes, "trstctl.audit.data", "{\"kind\":\"team\"}");
	assert_int_equal(r->n_attributes, 9);
	assert_int_equal(r->trace_id.len, 0);
	r = sl->log_records[1];
	assert_int_equal(r->severity_number,
			 OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_WARN);
	assert_string_equal(r->severity_text, "WARN");
	assert_int_equal(r->n_attributes, 8); /* no data attribute for "{}" */
	assert_null(attr(r->attributes, r->n_attributes, "trstctl.audit.data"));
	opentelemetry__proto__collector__logs__v1__export_logs_service_request__free_unpacked(req,
											      NULL);
	free(buf);
	free(l[0]);
	free(l[1]);
}

static void test_rejected(void **state)
{
	OTLP_TRACES_PARTIAL ps =
		OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
	OTLP_TRACES_RESP resp =
		OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
	uint8_t buf[64];
	size_t n;

	(void)state;
	resp.partial_success = &ps;
	ps.rejected_spans = 3;
	n = protobuf_c_message_pack(&resp.base, buf);
	assert_int_equal(otel_rejected(OTEL_TRACES, buf, n, 10), 3);
	assert_int_equal(otel_rejected(OTEL_TRACES, buf, n, 2), 2); /* never more than sent */
	assert_int_equal(otel_rejected(OTEL_TRACES, NULL, 0, 10), 0);
	assert_int_equal(otel_rejected(OTEL_TRACES, (const uint8_t *)"\xff\xff", 2, 10), 0);
	ps.rejected_spans = -4;
	n = protobuf_c_message_pack(&resp.base, buf);
	assert_int_equal(otel_rejected(OTEL_TRACES, buf, n, 10), 0);
}

static void test_retry_rules(void **state)
{
	static const struct {
		int attempt;
		long retry_after;
		uint32_t rnd;
		int64_t want;
	} cases[] = {
		{ 0, 0, 0, 1000 },     { 0, 0, 500, 500 },  { 0, 0, 501, 1000 },
		{ 1, 0, 0, 2000 },     { 2, 0, 0, 4000 },   { 4, 0, 0, 16000 },
		{ 5, 0, 0, 30000 },    { 30, 0, 0, 30000 }, { 30, 0, 15000, 15000 },
		{ 0, 7, 12345, 7000 }, { 9, 2, 0, 2000 },   { 0, 999999, 0, 86400000 },
	};
	static const long retryable[] = { 429, 502, 503, 504 };
	static const long final[] = { 200, 400, 401, 403, 404, 413, 500, 501, 301 };

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (otel_retry_delay_ms(cases[i].attempt, cases[i].retry_after, cases[i].rnd) !=
		    cases[i].want)
			fail_msg("case %zu: %lld, want %lld", i,
				 (long long)otel_retry_delay_ms(cases[i].attempt,
								cases[i].retry_after, cases[i].rnd),
				 (long long)cases[i].want);
	for (size_t i = 0; i < sizeof(retryable) / sizeof(retryable[0]); i++)
		assert_true(otel_status_retryable(retryable[i]));
	for (size_t i = 0; i < sizeof(final) / sizeof(final[0]); i++)
		assert_false(otel_status_retryable(final[i]));
}

/* The exporter ---------------------------------------------------------------------------- */

static struct cfg_otlp base_cfg(char *endpoint, size_t len, const char *path)
{
	struct cfg_otlp c = { .enabled = true,
			      .insecure = true,
			      .timeout_ms = 5000,
			      .queue_size = 100,
			      .batch_size = 2,
			      .batch_interval_ms = 200,
			      .retry_max_elapsed_ms = 20000,
			      .service_name = "svc-test" };

	snprintf(endpoint, len, "http://127.0.0.1:%d%s", server_port, path);
	c.endpoint = endpoint;
	return c;
}

static void wait_for(struct otel *o, enum otel_signal s, uint64_t done, int64_t max_ms)
{
	struct otel_signal_stats st;
	int64_t t0 = mono_ms();

	for (;;) {
		otel_stats(o, s, &st);
		if (st.sent + st.failed >= done)
			return;
		if (mono_ms() - t0 > max_ms)
			fail_msg("signal %d: %llu of %llu done after %lld ms", s,
				 (unsigned long long)(st.sent + st.failed),
				 (unsigned long long)done, (long long)max_ms);
		usleep(20000);
	}
}

/* The request the collector got as n-th, its body (malloc'd) and header text. */
static uint8_t *request(int n, size_t *ret_len, char *head, size_t headlen)
{
	char path[128];
	uint8_t *body = malloc(1 << 20);
	FILE *f;

	snprintf(path, sizeof(path), "%s/%d.head", spool, n);
	f = fopen(path, "r");
	assert_non_null(f);
	head[fread(head, 1, headlen - 1, f)] = '\0';
	fclose(f);
	snprintf(path, sizeof(path), "%s/%d.body", spool, n);
	f = fopen(path, "rb");
	assert_non_null(f);
	*ret_len = fread(body, 1, 1 << 20, f);
	fclose(f);
	return body;
}

static void test_export(void **state)
{
	char endpoint[128], head[4096], *headers[] = { "X-Tenant=t1", NULL };
	struct cfg_otlp c = base_cfg(endpoint, sizeof(endpoint), "/a/");
	struct guard_policy *p = air_gap_policy();
	struct rpc_call_done d = { .method = "/trstctl.v1.Policy/CreateToken",
				   .code = RPC_OK,
				   .start_unix_ns = 1700000000000000000LL,
				   .end_unix_ns = 1700000000002000000LL,
				   .principal = "tok_admin" };
	struct audit_event ev = { .sequence = 5,
				  .tenant_id = "00000000-0000-0000-0000-000000000000",
				  .id = "2b4e28ba-2fa1-41d2-883f-0016d3cca427",
				  .time_us = 1700000000000001LL,
				  .type = "token.created",
				  .actor = "tok_admin bootstrap",
				  .resource = "token/tok_new",
				  .outcome = "ok",
				  .data_json = "{\"name\":\"ci\"}" };
	struct otel_signal_stats st;
	char err[256] = "";
	struct otel *o = NULL;
	bool saw_traces = false, saw_logs = false;
	int requests = 0;

	(void)state;
	c.token = "tok-secret-123";
	c.headers = headers;
	c.n_headers = 1;
	if (otel_start(&c, p, "1.2.3", &o, err, sizeof(err)) < 0)
		fail_msg("otel_start: %s", err);
	otel_rpc_done(&d, o);
	d.principal = NULL;
	d.code = RPC_UNAUTHENTICATED;
	otel_rpc_done(&d, o); /* the second span makes the batch: sent at once */
	otel_audit_committed(&ev, o);
	wait_for(o, OTEL_TRACES, 2, 15000);
	wait_for(o, OTEL_LOGS, 1, 15000);

	otel_stats(o, OTEL_TRACES, &st);
	assert_int_equal(st.requests, 2); /* 503 with Retry-After, then 200 */
	assert_int_equal(st.retries, 1);
	assert_int_equal(st.sent, 1); /* the partial success rejected one */
	assert_int_equal(st.failed, 1);
	assert_int_equal(st.dropped, 0);
	otel_stats(o, OTEL_LOGS, &st);
	assert_int_equal(st.sent, 1);
	assert_int_equal(st.requests, 1);
	o = otel_stop(o);

	for (int i = 0; i < 8; i++) {
		char path[128];
		size_t len = 0;
		uint8_t *body;

		snprintf(path, sizeof(path), "%s/%d.head", spool, i);
		if (access(path, F_OK) < 0)
			break;
		requests++;
		body = request(i, &len, head, sizeof(head));
		assert_non_null(strstr(head, "content-type: application/x-protobuf\n"));
		assert_non_null(strstr(head, "authorization: Bearer tok-secret-123\n"));
		assert_non_null(strstr(head, "x-tenant: t1\n"));
		assert_non_null(strstr(head, "user-agent: trstctl/1.2.3\n"));
		if (strncmp(head, "/a/v1/traces\n", 13) == 0) {
			OTLP_TRACES_REQ *req =
				opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
					NULL, len, body);
			OTLP_SCOPE_SPANS *ss;

			assert_non_null(req);
			expect_resource(req->resource_spans[0]->resource, "svc-test", "1.2.3");
			ss = req->resource_spans[0]->scope_spans[0];
			assert_int_equal(ss->n_spans, 2);
			assert_string_equal(ss->spans[0]->name, "trstctl.v1.Policy/CreateToken");
			expect_str(ss->spans[0]->attributes, ss->spans[0]->n_attributes,
				   "trstctl.principal.id", "tok_admin");
			expect_int(ss->spans[1]->attributes, ss->spans[1]->n_attributes,
				   "rpc.grpc.status_code", RPC_UNAUTHENTICATED);
			assert_int_equal(ss->spans[0]->end_time_unix_nano -
						 ss->spans[0]->start_time_unix_nano,
					 2000000);
			opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(
				req, NULL);
			saw_traces = true;
		} else {
			OTLP_LOGS_REQ *req =
				opentelemetry__proto__collector__logs__v1__export_logs_service_request__unpack(
					NULL, len, body);
			OTLP_LOG *r;

			assert_string_equal(strtok(head, "\n"), "/a/v1/logs");
			assert_non_null(req);
			r = req->resource_logs[0]->scope_logs[0]->log_records[0];
			expect_str(r->attributes, r->n_attributes, "trstctl.audit.type",
				   "token.created");
			expect_int(r->attributes, r->n_attributes, "trstctl.audit.sequence", 5);
			expect_str(r->attributes, r->n_attributes, "trstctl.audit.actor.subject",
				   "tok_admin bootstrap");
			opentelemetry__proto__collector__logs__v1__export_logs_service_request__free_unpacked(
				req, NULL);
			saw_logs = true;
		}
		free(body);
	}
	assert_int_equal(requests, 3);
	assert_true(saw_traces && saw_logs);
	guard_policy_free(p);
}

/* Nobody listens: a full queue drops at once, and the hooks never wait. */
static void test_full_queue_drops(void **state)
{
	char endpoint[128], err[256] = "";
	struct cfg_otlp c = base_cfg(endpoint, sizeof(endpoint), "");
	struct guard_policy *p = air_gap_policy();
	struct rpc_call_done d = { .method = "/trstctl.v1.CA/GetOwner", .code = RPC_OK };
	struct otel_signal_stats st;
	struct otel *o = NULL;
	int64_t t0;

	(void)state;
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:1");
	c.queue_size = 3;
	c.batch_size = 100;
	c.batch_interval_ms = 3600000;
	assert_int_equal(otel_start(&c, p, "1", &o, err, sizeof(err)), 0);
	t0 = mono_ms();
	for (int i = 0; i < 10; i++)
		otel_rpc_done(&d, o);
	assert_true(mono_ms() - t0 < 2000); /* generous: the point is no network wait */
	otel_stats(o, OTEL_TRACES, &st);
	assert_int_equal(st.queued, 3);
	assert_int_equal(st.dropped, 7);
	assert_int_equal(st.requests, 0); /* nothing due yet */
	otel_stop(o);			  /* one try at shutdown: refused, counted failed */
	guard_policy_free(p);
}

static void test_start_errors(void **state)
{
	char endpoint[128], err[256], tokfile[128];
	struct cfg_otlp c = base_cfg(endpoint, sizeof(endpoint), "");
	char *bad_header[] = { "X-A=1\r\nX-Injected: yes", NULL };
	struct guard_policy *p = air_gap_policy();
	struct otel *o = NULL;
	FILE *f;

	(void)state;
	c.token_file = "/nonexistent/otlp-token";
	assert_int_equal(otel_start(&c, p, "1", &o, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "otlp.token_file \"/nonexistent/otlp-token\": No such file or "
				 "directory");
	snprintf(tokfile, sizeof(tokfile), "%s/empty-token", spool);
	f = fopen(tokfile, "w");
	fputs("\n", f);
	fclose(f);
	c.token_file = tokfile;
	assert_int_equal(otel_start(&c, p, "1", &o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "is empty"));
	/* a token file: first line, trailing blanks cut */
	f = fopen(tokfile, "w");
	fputs("file-token-456  \nsecond line\n", f);
	fclose(f);
	assert_int_equal(otel_start(&c, p, "1", &o, err, sizeof(err)), 0);
	o = otel_stop(o);
	unlink(tokfile);

	c.token_file = NULL;
	c.token = "tok\x01secret";
	assert_int_equal(otel_start(&c, p, "1", &o, err, sizeof(err)), -EINVAL);
	assert_null(strstr(err, "secret"));
	c.token = NULL;
	c.headers = bad_header;
	c.n_headers = 1;
	assert_int_equal(otel_start(&c, p, "1", &o, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "otlp.headers entry \"X-A\" has a control character in its value");
	assert_null(o);
	guard_policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_traces), cmocka_unit_test(test_encode_logs),
		cmocka_unit_test(test_rejected),      cmocka_unit_test(test_retry_rules),
		cmocka_unit_test(test_export),	      cmocka_unit_test(test_full_queue_drops),
		cmocka_unit_test(test_start_errors),
	};
	const char *py = getenv("PYTHON3") ? getenv("PYTHON3") : "/usr/bin/python3";

	if (access(py, X_OK) < 0) {
		printf("SKIP: %s not found\n", py);
		return 77;
	}
	return cmocka_run_group_tests(tests, start_server, stop_server);
}
