/*
 * Tests of the guarded HTTP client against a loopback HTTP server started here
 * (/usr/bin/python3 http.server with a few redirecting paths). The test first moves itself
 * into a new network namespace with only lo up, so that even a broken guard cannot send a
 * packet anywhere but loopback; without the privilege for that it exits 77.
 */
#include <curl/curl.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "guard.h"
#include "test-netns.h"

static const char server_py[] =
	"import http.server, sys\n"
	"class H(http.server.BaseHTTPRequestHandler):\n"
	"    def log_message(self, *a):\n"
	"        sys.stderr.write('server: %s\\n' % self.path)\n"
	"    def go(self, where):\n"
	"        self.send_response(302)\n"
	"        self.send_header('Location', where)\n"
	"        self.send_header('Content-Length', '0')\n"
	"        self.end_headers()\n"
	"    def reply(self, body, code=200):\n"
	"        self.send_response(code)\n"
	"        self.send_header('Content-Length', str(len(body)))\n"
	"        self.end_headers()\n"
	"        self.wfile.write(body)\n"
	"    def do_GET(self):\n"
	"        p = self.path\n"
	"        if p == '/ok': return self.reply(b'hello')\n"
	"        if p == '/redirect-local': return self.go('/ok')\n"
	"        if p == '/redirect-localhost': return self.go('http://localhost:%d/ok' % port)\n"
	"        if p == '/redirect-public': return self.go('http://203.0.113.1/steal')\n"
	"        if p == '/redirect-metadata': return self.go('http://169.254.169.254/latest')\n"
	"        if p == '/redirect-ftp': return self.go('ftp://127.0.0.1/x')\n"
	"        if p == '/loop': return self.go('/loop')\n"
	"        if p == '/big': return self.reply(b'x' * 100000)\n"
	"        if p == '/redirect-name': return self.go('http://not-allowed.example:%d/ok' % port)\n"
	"        if p == '/busy':\n"
	"            self.send_response(503)\n"
	"            self.send_header('Retry-After', '7')\n"
	"            self.send_header('Content-Length', '0')\n"
	"            self.end_headers()\n"
	"            return\n"
	"        self.reply(b'missing', 404)\n"
	"    def do_POST(self):\n"
	"        n = int(self.headers.get('Content-Length', '0'))\n"
	"        body = self.rfile.read(n)\n"
	"        if self.path == '/see-other': return self.go('/ok')\n"
	"        self.reply(b'got:' + body + b':' + self.headers.get('X-Test', '').encode())\n"
	"s = http.server.HTTPServer(('127.0.0.1', 0), H)\n"
	"port = s.server_address[1]\n"
	"print(port, flush=True)\n"
	"s.serve_forever()\n";

static pid_t server_pid;
static int server_port;

static int start_server(void **state)
{
	const char *py = getenv("PYTHON3") ? getenv("PYTHON3") : "/usr/bin/python3";
	int pfd[2];
	FILE *f;

	(void)state;
	if (pipe(pfd) < 0)
		return -1;
	server_pid = fork();
	if (server_pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		execl(py, py, "-c", server_py, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	f = fdopen(pfd[0], "r");
	if (!f || fscanf(f, "%d", &server_port) != 1) {
		fprintf(stderr, "the python HTTP server did not start\n");
		return -1;
	}
	fclose(f);
	return 0;
}

static int stop_server(void **state)
{
	(void)state;
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}
	return 0;
}

static struct guard_policy *policy(bool enabled, bool allow_private)
{
	struct cfg c = { 0 };
	struct guard_policy *p = NULL;

	c.air_gap.enabled = enabled;
	c.air_gap.allow_private = allow_private;
	assert_int_equal(guard_policy_new(&c, &p), 0);
	return p;
}

static int get(struct guard_policy *p, const char *path_or_url, struct guard_http_response *resp,
	       char *err)
{
	char url[256];
	struct guard_http_request req = { .max_redirects = -1, .timeout_ms = 10000 };

	if (strstr(path_or_url, "://"))
		snprintf(url, sizeof(url), "%s", path_or_url);
	else
		snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", server_port, path_or_url);
	req.url = url;
	memset(resp, 0, sizeof(*resp));
	return guard_http_do(p, &req, resp, err, GUARD_ERR_MAX);
}

static void test_allowed(void **state)
{
	struct guard_policy *p = policy(true, false);
	struct guard_http_response resp;
	char err[GUARD_ERR_MAX] = "", url[128];

	(void)state;
	assert_int_equal(get(p, "/ok", &resp, err), 0);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body, "hello");
	guard_http_response_free(&resp);

	/* a name: resolved once by the client and pinned to loopback */
	snprintf(url, sizeof(url), "http://localhost:%d/ok", server_port);
	if (get(p, url, &resp, err) != 0)
		fail_msg("localhost: %s", err);
	assert_string_equal(resp.body, "hello");
	guard_http_response_free(&resp);

	assert_int_equal(get(p, "/redirect-local", &resp, err), 0);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body, "hello");
	assert_non_null(strstr(resp.final_url, "/ok"));
	guard_http_response_free(&resp);

	assert_int_equal(get(p, "/redirect-localhost", &resp, err), 0);
	assert_string_equal(resp.body, "hello");
	guard_http_response_free(&resp);

	assert_int_equal(get(p, "/missing", &resp, err), 0);
	assert_int_equal(resp.status, 404);
	guard_http_response_free(&resp);
	assert_int_equal(guard_policy_userspace_trips(p), 0);
	guard_policy_free(p);
}

static void test_blocked(void **state)
{
	static const struct {
		const char *path;
		const char *msg;
	} cases[] = {
		{ "/redirect-public", "egress blocked: 203.0.113.1 is not allowlisted" },
		{ "/redirect-metadata", "egress blocked: 169.254.169.254 is not allowlisted" },
		{ "/redirect-ftp", "egress blocked: unsupported outbound scheme \"ftp\"" },
		{ "https://telemetry.trstctl.com/v1/usage",
		  "egress blocked: telemetry.trstctl.com is not allowlisted" },
		{ "gopher://127.0.0.1/", "egress blocked: unsupported outbound scheme \"gopher\"" },
		{ "http://10.0.0.1:80/", "egress blocked: 10.0.0.1 is not allowlisted" },
		{ "http://", "egress blocked: missing destination host" },
		{ "http://a b/", "egress blocked: invalid URL" },
	};
	struct guard_policy *p = policy(true, false);
	struct guard_http_response resp;
	char err[GUARD_ERR_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = 0;
		assert_int_equal(get(p, cases[i].path, &resp, err), -EPERM);
		assert_string_equal(err, cases[i].msg);
		assert_int_equal(guard_policy_userspace_trips(p), i + 1);
	}
	guard_policy_free(p);
}

static void test_limits(void **state)
{
	struct guard_policy *p = policy(true, true);
	struct guard_http_response resp;
	struct guard_http_request req = { 0 };
	char err[GUARD_ERR_MAX], url[128];
	const char *hdrs[] = { "X-Test: yes", NULL };

	(void)state;
	assert_int_equal(get(p, "/loop", &resp, err), -ELOOP);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/redirect-local", server_port);
	req.url = url;
	req.max_redirects = 0;
	assert_int_equal(guard_http_do(p, &req, &resp, err, sizeof(err)), 0);
	assert_int_equal(resp.status, 302);
	guard_http_response_free(&resp);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/big", server_port);
	req.max_response_bytes = 1000;
	assert_int_equal(guard_http_do(p, &req, &resp, err, sizeof(err)), -EFBIG);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", server_port);
	req.max_response_bytes = 0;
	req.method = "POST";
	req.body = "ping";
	req.body_len = 4;
	req.headers = hdrs;
	assert_int_equal(guard_http_do(p, &req, &resp, err, sizeof(err)), 0);
	assert_string_equal(resp.body, "got:ping:yes");
	guard_http_response_free(&resp);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/see-other", server_port);
	req.max_redirects = -1;
	assert_int_equal(guard_http_do(p, &req, &resp, err, sizeof(err)), 0);
	assert_string_equal(resp.body, "hello");
	guard_http_response_free(&resp);
	assert_int_equal(guard_policy_userspace_trips(p), 0);
	guard_policy_free(p);
}

/*
 * A configured endpoint (otlp.endpoint) whose name is not allowlisted: admitted by name on
 * its own host only, and still connected only to allowed addresses. The name is this
 * host's own (it resolves to loopback through /etc/hosts here).
 */
static void test_configured_endpoint(void **state)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	struct guard_policy *p = policy(true, false);
	struct guard_http_request req = { .max_redirects = -1, .timeout_ms = 10000 };
	struct guard_http_response resp = { 0 };
	char host[64] = "", url[256], err[GUARD_ERR_MAX] = "";
	bool loopback = true;

	(void)state;
	if (gethostname(host, sizeof(host) - 1) < 0 || !strcmp(host, "localhost") ||
	    getaddrinfo(host, NULL, &hints, &res) != 0) {
		guard_policy_free(p);
		skip();
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
		loopback &=
			ai->ai_family == AF_INET &&
			((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr == htonl(0x7f000001);
	freeaddrinfo(res);
	if (!loopback) {
		guard_policy_free(p);
		skip();
	}
	snprintf(url, sizeof(url), "http://%s:%d/ok", host, server_port);
	req.url = url;
	assert_int_equal(guard_http_do(p, &req, &resp, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "is not allowlisted"));
	assert_int_equal(guard_policy_userspace_trips(p), 1);

	req.configured_endpoint = true;
	if (guard_http_do(p, &req, &resp, err, sizeof(err)) != 0)
		fail_msg("%s: %s", url, err);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body, "hello");
	guard_http_response_free(&resp);

	/* the pass is for that host only: a redirect elsewhere is judged as usual */
	snprintf(url, sizeof(url), "http://%s:%d/redirect-name", host, server_port);
	assert_int_equal(guard_http_do(p, &req, &resp, err, sizeof(err)), -EPERM);
	assert_string_equal(err, "egress blocked: not-allowed.example is not allowlisted");
	/* and never for an address */
	req.url = "http://10.0.0.1:80/";
	assert_int_equal(guard_http_do(p, &req, &resp, err, sizeof(err)), -EPERM);
	assert_string_equal(err, "egress blocked: 10.0.0.1 is not allowlisted");
	assert_int_equal(guard_policy_userspace_trips(p), 3);
	guard_policy_free(p);
}

/* Retry-After of an answer is handed back (OTLP honours it). */
static void test_retry_after(void **state)
{
	struct guard_policy *p = policy(true, false);
	struct guard_http_response resp;
	char err[GUARD_ERR_MAX] = "";

	(void)state;
	assert_int_equal(get(p, "/busy", &resp, err), 0);
	assert_int_equal(resp.status, 503);
	assert_int_equal(resp.retry_after_s, 7);
	guard_http_response_free(&resp);
	assert_int_equal(get(p, "/ok", &resp, err), 0);
	assert_int_equal(resp.retry_after_s, 0);
	guard_http_response_free(&resp);
	guard_policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed),	    cmocka_unit_test(test_blocked),
		cmocka_unit_test(test_limits),	    cmocka_unit_test(test_configured_endpoint),
		cmocka_unit_test(test_retry_after),
	};
	const char *py = getenv("PYTHON3") ? getenv("PYTHON3") : "/usr/bin/python3";
	int r = test_netns_enter();

	if (r < 0) {
		printf("SKIP: cannot create a network namespace with lo up (%s); this test needs "
		       "root\n",
		       strerror(-r));
		return 77;
	}
	if (access(py, X_OK) < 0) {
		printf("SKIP: %s not found\n", py);
		return 77;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, start_server, stop_server) +
	       (curl_global_cleanup(), 0);
}
