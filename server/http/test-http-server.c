/*
 * test-http-server: the operations listener on a kernel-chosen loopback port, fetched with
 * libcurl: /metrics writers in order and their failure (500), /healthz, /readyz with the
 * server flag and a failing check, 404, 405, the label escaping, a bad address. Then the
 * connection rules, with raw sockets: a connection that sends nothing or half a request
 * line is closed after the read timeout, and half-open connections beyond the limit do not
 * keep a probe out (the one idle longest is closed for it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "http.h"

struct body {
	char buf[4096];
	size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct body *b = arg;
	size_t len = size * n;

	if (b->len + len >= sizeof(b->buf))
		return 0;
	memcpy(b->buf + b->len, p, len);
	b->len += len;
	b->buf[b->len] = '\0';
	return len;
}

/* Fetches path; returns the HTTP status and the body in b. */
static long fetch(int port, const char *method, const char *path, struct body *b)
{
	char url[128];
	long status = 0;
	CURL *c = curl_easy_init();

	assert_non_null(c);
	memset(b, 0, sizeof(*b));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	return status;
}

static int fail_metrics;
static bool check_ready;

static int metrics_a(struct http_metrics *m, void *arg)
{
	char esc[64];
	char labels[96];

	(void)arg;
	http_metrics_family(m, "test_things_total", "counter", "Things counted.");
	snprintf(labels, sizeof(labels), "kind=\"%s\"",
		 http_metrics_escape("a\"b\\c\nd", esc, sizeof(esc)));
	http_metrics_sample(m, "test_things_total", labels, 7);
	return 0;
}

static int metrics_b(struct http_metrics *m, void *arg)
{
	http_metrics_family(m, "test_up", "gauge", "Always one.");
	http_metrics_sample(m, "test_up", NULL, *(uint64_t *)arg);
	return fail_metrics ? -EIO : 0;
}

static bool ready_check(void *arg, char *why, size_t len)
{
	(void)arg;
	if (!check_ready && arg)
		snprintf(why, len, "%s", (const char *)arg);
	return check_ready;
}

static const char *note_text;

static const char *note(void *arg)
{
	(void)arg;
	return note_text;
}

static void test_server(void **state)
{
	struct http_server_config cfg = { .addr = "127.0.0.1:0" };
	struct http_server *s = NULL;
	uint64_t one = 1;
	struct body b;
	int port = 0;

	(void)state;
	assert_int_equal(http_server_new(&cfg, &s), 0);
	assert_int_equal(http_server_add_metrics(s, metrics_a, NULL), 0);
	assert_int_equal(http_server_add_metrics(s, metrics_b, &one), 0);
	assert_int_equal(http_server_add_ready(s, "check", ready_check, NULL), 0);
	assert_int_equal(http_server_add_ready(s, "why", ready_check, "it says why"), 0);
	assert_int_equal(http_server_add_note(s, "guard", note, NULL), 0);
	assert_int_equal(http_server_start(s, &port), 0);
	assert_int_equal(http_server_add_note(s, "late", note, NULL), -EINVAL);
	assert_true(port > 0);
	assert_int_equal(http_server_add_metrics(s, metrics_a, NULL), -EINVAL);

	assert_int_equal(fetch(port, "GET", "/metrics", &b), 200);
	assert_string_equal(b.buf, "# HELP test_things_total Things counted.\n"
				   "# TYPE test_things_total counter\n"
				   "test_things_total{kind=\"a\\\"b\\\\c\\nd\"} 7\n"
				   "# HELP test_up Always one.\n"
				   "# TYPE test_up gauge\n"
				   "test_up 1\n");
	fail_metrics = 1;
	assert_int_equal(fetch(port, "GET", "/metrics", &b), 500);
	fail_metrics = 0;

	assert_int_equal(fetch(port, "GET", "/healthz", &b), 200);
	assert_int_equal(fetch(port, "GET", "/readyz", &b), 503);
	assert_string_equal(b.buf, "not ready: server check why (it says why)\n");
	http_server_set_ready(s, true);
	assert_int_equal(fetch(port, "GET", "/readyz", &b), 503);
	assert_string_equal(b.buf, "not ready: check why (it says why)\n");
	check_ready = true;
	assert_int_equal(fetch(port, "GET", "/readyz", &b), 200);
	assert_string_equal(b.buf, "ready\n");
	/* a note qualifies the answer without changing it */
	note_text = "userspace enforcement only";
	assert_int_equal(fetch(port, "GET", "/readyz", &b), 200);
	assert_string_equal(b.buf, "ready\nguard: userspace enforcement only\n");
	check_ready = false;
	assert_int_equal(fetch(port, "GET", "/readyz", &b), 503);
	assert_string_equal(b.buf,
			    "not ready: check why (it says why)\nguard: userspace enforcement only\n");
	check_ready = true;
	note_text = NULL;
	assert_int_equal(fetch(port, "GET", "/nope", &b), 404);
	assert_int_equal(fetch(port, "POST", "/metrics", &b), 405);
	s = http_server_free(s);
	assert_null(s);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A loopback TCP connection to port that has sent partial (may be ""). */
static int half_open(int port, const char *partial)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (*partial)
		assert_int_equal(send(fd, partial, strlen(partial), 0), (ssize_t)strlen(partial));
	return fd;
}

/* Waits up to timeout_s for the server to close fd; true when it did (EOF or reset). */
static bool closed_within(int fd, double timeout_s)
{
	double until = now_s() + timeout_s;
	char buf[256];

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int left = (int)((until - now_s()) * 1000);
		ssize_t n;

		if (left < 0 || poll(&p, 1, left) <= 0)
			return false;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		/* a reply (an error page for half a request) is not a close: read on */
	}
}

static void test_read_timeout(void **state)
{
	struct http_server_config cfg = { .addr = "127.0.0.1:0", .read_timeout_ms = 1000 };
	struct http_server *s = NULL;
	int port = 0, quiet, partial;
	struct body b;
	double t0, took;

	(void)state;
	assert_int_equal(http_server_new(&cfg, &s), 0);
	assert_int_equal(http_server_start(s, &port), 0);
	t0 = now_s();
	quiet = half_open(port, "");
	partial = half_open(port, "GET /heal");
	/* a whole request is still answered at once */
	assert_int_equal(fetch(port, "GET", "/healthz", &b), 200);
	assert_true(closed_within(quiet, 10));
	assert_true(closed_within(partial, 10));
	took = now_s() - t0;
	print_message("half-open connections closed after %.2f s (read timeout 1 s)\n", took);
	assert_true(took >= 0.9);
	assert_true(took < 5); /* generous: the timeout is checked on the listener's next turn */
	close(quiet);
	close(partial);
	s = http_server_free(s);
}

static void test_half_open_flood(void **state)
{
	enum { LIMIT = 8, FLOOD = 40 };
	/* a read timeout far beyond curl's 5 s: only eviction can let the probe in */
	struct http_server_config cfg = { .addr = "127.0.0.1:0",
					  .read_timeout_ms = 60000,
					  .max_connections = LIMIT };
	struct http_server *s = NULL;
	int port = 0, fds[FLOOD], closed = 0;
	struct body b;
	double t0;

	(void)state;
	assert_int_equal(http_server_new(&cfg, &s), 0);
	assert_int_equal(http_server_start(s, &port), 0);
	for (int i = 0; i < FLOOD; i++)
		fds[i] = half_open(port, "GET /metrics HTTP/1.1\r\nHost: x");
	t0 = now_s();
	assert_int_equal(fetch(port, "GET", "/healthz", &b), 200);
	assert_string_equal(b.buf, "ok\n");
	assert_int_equal(fetch(port, "GET", "/metrics", &b), 200);
	print_message("%d half-open connections over a limit of %d: /healthz and /metrics "
		      "answered in %.3f s\n", FLOOD, LIMIT, now_s() - t0);
	/* everything but the last LIMIT - 1 half-open ones was closed to make room */
	for (int i = 0; i < FLOOD; i++)
		closed += closed_within(fds[i], i < FLOOD - LIMIT ? 5 : 0.01);
	print_message("%d of %d half-open connections closed by the server\n", closed, FLOOD);
	assert_true(closed >= FLOOD - LIMIT);
	for (int i = 0; i < FLOOD; i++)
		close(fds[i]);
	s = http_server_free(s);
}

static void test_bad_addr(void **state)
{
	struct http_server *s = NULL;
	const char *bad[] = { "nonsense", "127.0.0.1:99999", "999.1.1.1:80", NULL };

	(void)state;
	for (int i = 0; bad[i]; i++) {
		struct http_server_config cfg = { .addr = bad[i] };

		assert_true(http_server_new(&cfg, &s) < 0);
	}
	{
		struct http_server_config one = { .addr = "127.0.0.1:0", .max_connections = 1 };
		struct http_server_config neg = { .addr = "127.0.0.1:0", .read_timeout_ms = -1 };

		assert_int_equal(http_server_new(&one, &s), -EINVAL);
		assert_int_equal(http_server_new(&neg, &s), -EINVAL);
	}
	assert_null(http_server_free(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server),
		cmocka_unit_test(test_bad_addr),
		cmocka_unit_test(test_read_timeout),
		cmocka_unit_test(test_half_open_flood),
	};

	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
