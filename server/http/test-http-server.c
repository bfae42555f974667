/*
 * test-http-server: the operations listener on a kernel-chosen loopback port, fetched with
 * libcurl: /metrics writers in order and their failure (500), /healthz, /readyz with the
 * server flag and a failing check, 404, 405, the label escaping, a bad address.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

static bool ready_check(void *arg)
{
	(void)arg;
	return check_ready;
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
	assert_int_equal(http_server_start(s, &port), 0);
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
	assert_string_equal(b.buf, "not ready: server check\n");
	http_server_set_ready(s, true);
	assert_int_equal(fetch(port, "GET", "/readyz", &b), 503);
	assert_string_equal(b.buf, "not ready: check\n");
	check_ready = true;
	assert_int_equal(fetch(port, "GET", "/readyz", &b), 200);
	assert_string_equal(b.buf, "ready\n");
	assert_int_equal(fetch(port, "GET", "/nope", &b), 404);
	assert_int_equal(fetch(port, "POST", "/metrics", &b), 405);
	s = http_server_free(s);
	assert_null(s);
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
	assert_null(http_server_free(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server),
		cmocka_unit_test(test_bad_addr),
	};

	curl_global_init(CURL_GLOBAL_DEFAULT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
