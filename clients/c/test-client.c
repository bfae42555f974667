/*
 * Unit tests of the libtrstctl runtime without a trstctl server: status names and the
 * errno table, configuration checks, and calls (raw, typed unary, typed stream, over
 * plaintext and TLS) against a closed port (UNAVAILABLE) and against a socket that
 * accepts TCP but never speaks HTTP/2 (DEADLINE_EXCEEDED). Calls against a served
 * trstctl are in tests/served/.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "trstctl-client-gen.h"

/* Port 1 on loopback: nothing listens there, connections are refused at once. */
#define CLOSED_ADDR "127.0.0.1:1"

static void test_status_names(void **state)
{
	assert_string_equal(trstctl_status_code_name(0), "OK");
	assert_string_equal(trstctl_status_code_name(12), "UNIMPLEMENTED");
	assert_string_equal(trstctl_status_code_name(16), "UNAUTHENTICATED");
	assert_string_equal(trstctl_status_code_name(17), "UNKNOWN_CODE");
	assert_string_equal(trstctl_status_code_name(-1), "UNKNOWN_CODE");
	assert_int_equal(trstctl_status_code_parse("unimplemented"), 12);
	assert_int_equal(trstctl_status_code_parse("RESOURCE_EXHAUSTED"), 8);
	assert_int_equal(trstctl_status_code_parse("14"), 14);
	assert_int_equal(trstctl_status_code_parse("17"), -EINVAL);
	assert_int_equal(trstctl_status_code_parse("4x"), -EINVAL);
	assert_int_equal(trstctl_status_code_parse(""), -EINVAL);
	assert_int_equal(trstctl_status_code_parse(NULL), -EINVAL);
	assert_int_equal(trstctl_status_errno(0), 0);
	assert_int_equal(trstctl_status_errno(4), -ETIMEDOUT);
	assert_int_equal(trstctl_status_errno(12), -EOPNOTSUPP);
	assert_int_equal(trstctl_status_errno(14), -ECONNREFUSED);
	assert_int_equal(trstctl_status_errno(99), -EIO);
	trstctl_status_clear(NULL);
}

static void test_config_rejected(void **state)
{
	struct trstctl_client *c = NULL;
	struct trstctl_client_config cfg = { .addr = CLOSED_ADDR };

	assert_int_equal(trstctl_client_new(NULL, &c), -EINVAL);
	cfg.addr = "";
	assert_int_equal(trstctl_client_new(&cfg, &c), -EINVAL);
	cfg.addr = CLOSED_ADDR;
	cfg.cert_file = "/nonexistent/cert.pem";
	assert_int_equal(trstctl_client_new(&cfg, &c), -EINVAL); /* no key_file */
	cfg.cert_file = NULL;
	cfg.transport = (enum trstctl_transport)42;
	assert_int_equal(trstctl_client_new(&cfg, &c), -EINVAL);
	cfg.transport = TRSTCTL_TLS;
	cfg.deadline_ms = -1;
	assert_int_equal(trstctl_client_new(&cfg, &c), -EINVAL);
	cfg.deadline_ms = 0;
	cfg.ca_file = "/nonexistent/ca.pem";
	assert_int_equal(trstctl_client_new(&cfg, &c), -ENOENT);
	assert_null(c);
	assert_null(trstctl_client_free(NULL));
}

static struct trstctl_client *client(enum trstctl_transport t, int64_t deadline_ms)
{
	struct trstctl_client_config cfg = {
		.addr = CLOSED_ADDR, .transport = t, .token = "trst_test", .deadline_ms = deadline_ms,
	};
	struct trstctl_client *c = NULL;

	assert_int_equal(trstctl_client_new(&cfg, &c), 0);
	assert_non_null(c);
	return c;
}

static void test_raw_unavailable(void **state)
{
	struct trstctl_client *c = client(TRSTCTL_PLAINTEXT, 5000);
	struct trstctl_status st = { 0 };
	uint8_t *resp = NULL;
	size_t len = 0;
	int r;

	r = trstctl_call_raw(c, "/grpc.health.v1.Health/Check", "\xff\xff\xff", 3, NULL,
			     &resp, &len, &st);
	assert_int_equal(r, -ECONNREFUSED);
	assert_int_equal(st.code, 14);
	assert_non_null(st.message);
	assert_true(strlen(st.message) > 0);
	assert_null(resp);

	/* A bad path is refused locally, and the old message is replaced. */
	r = trstctl_call_raw(c, "no-slash", "", 0, NULL, &resp, &len, &st);
	assert_int_equal(r, -EINVAL);
	assert_int_equal(st.code, 3);
	trstctl_status_clear(&st);
	assert_null(st.message);
	c = trstctl_client_free(c);
}

static int count_msg(const Grpc__Health__V1__HealthCheckResponse *msg, void *userdata)
{
	(*(int *)userdata)++;
	return 0;
}

static void typed_unavailable(enum trstctl_transport t)
{
	struct trstctl_client *c = client(t, 5000);
	Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	Grpc__Health__V1__HealthCheckResponse *resp = NULL;
	struct trstctl_status st = { 0 };
	int n = 0;

	assert_int_equal(trstctl_health_check(c, &req, NULL, &resp, &st), -ECONNREFUSED);
	assert_int_equal(st.code, 14);
	assert_null(resp);
	assert_int_equal(trstctl_health_watch(c, &req, NULL, count_msg, &n, &st), -ECONNREFUSED);
	assert_int_equal(st.code, 14);
	assert_int_equal(n, 0);
	/* NULL request or reply pointer: refused before any I/O. */
	assert_int_equal(trstctl_health_check(c, NULL, NULL, &resp, &st), -EINVAL);
	assert_int_equal(trstctl_health_check(c, &req, NULL, NULL, &st), -EINVAL);
	assert_int_equal(trstctl_health_watch(c, &req, NULL, NULL, NULL, &st), -EINVAL);
	trstctl_status_clear(&st);
	c = trstctl_client_free(c);
}

static void test_typed_unavailable_plaintext(void **state)
{
	typed_unavailable(TRSTCTL_PLAINTEXT);
}

static void test_typed_unavailable_tls(void **state)
{
	typed_unavailable(TRSTCTL_TLS);
}

static void test_typed_unavailable_tls_no_verify(void **state)
{
	typed_unavailable(TRSTCTL_TLS_NO_VERIFY);
}

/* A socket that completes TCP handshakes (backlog) but never answers. */
static int silent_listener(int *ret_port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	*ret_port = ntohs(a.sin_port);
	return fd;
}

static void test_deadline(void **state)
{
	struct trstctl_client_config cfg = { .transport = TRSTCTL_PLAINTEXT, .deadline_ms = 60000 };
	struct trstctl_call_opts opts = { .deadline_ms = 300 };
	Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	Grpc__Health__V1__HealthCheckResponse *resp = NULL;
	struct trstctl_status st = { 0 };
	struct trstctl_client *c = NULL;
	char addr[64];
	int port, fd = silent_listener(&port), n = 0;

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	cfg.addr = addr;
	assert_int_equal(trstctl_client_new(&cfg, &c), 0);
	/* The per-call deadline (300 ms) overrides the client's (60 s). */
	assert_int_equal(trstctl_health_check(c, &req, &opts, &resp, &st), -ETIMEDOUT);
	assert_int_equal(st.code, 4);
	assert_int_equal(trstctl_health_watch(c, &req, &opts, count_msg, &n, &st), -ETIMEDOUT);
	assert_int_equal(st.code, 4);
	trstctl_status_clear(&st);
	c = trstctl_client_free(c);
	close(fd);
}

static void test_method_table(void **state)
{
	const struct trstctl_method *m;

	/* 12 CA + 8 Secrets + 3 Audit + 8 Policy + 3 Guard + 1 Assist + 2 Health. */
	assert_int_equal(trstctl_n_methods, 37);
	m = trstctl_method_find("/trstctl.v1.Audit/WatchEvents");
	assert_non_null(m);
	assert_true(m->server_streaming);
	assert_false(m->client_streaming);
	assert_ptr_equal(m->input, &trstctl__v1__watch_events_request__descriptor);
	assert_ptr_equal(m->output, &trstctl__v1__audit_event__descriptor);
	m = trstctl_method_find("/trstctl.v1.CA/GetCABundle");
	assert_non_null(m);
	assert_false(m->server_streaming);
	assert_ptr_equal(m->output, &trstctl__v1__cabundle__descriptor);
	assert_null(trstctl_method_find("/trstctl.v1.CA/Nope"));
	assert_null(trstctl_method_find(NULL));
	for (size_t i = 0; i < trstctl_n_methods; i++)
		assert_int_equal(trstctl_methods[i].path[0], '/');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_config_rejected),
		cmocka_unit_test(test_raw_unavailable),
		cmocka_unit_test(test_typed_unavailable_plaintext),
		cmocka_unit_test(test_typed_unavailable_tls),
		cmocka_unit_test(test_typed_unavailable_tls_no_verify),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_method_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
