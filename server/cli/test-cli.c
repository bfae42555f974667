/*
 * cli: the connection flags (table-driven, last transport flag wins), the RFC 3339 time
 * format, and cli_client_open's choices that fail before any call: an address no client
 * can reach (-EDESTADDRREQ, exit 2), an unreadable --token-file, and a missing bootstrap
 * token file, which is not an error. libtrstctl connects lazily, so a client opens
 * without a server.
 */
#include <errno.h>
#include <getopt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "cli.h"
#include "trstctl-client.h"

static void test_flags(void **state)
{
	static const struct {
		const char *name, *value;
		int ret;
	} cases[] = {
		{ "--addr", "h:1", 2 },
		{ "addr", "h:2", 2 },
		{ "--plaintext", "x", 1 },
		{ "--insecure-tls", NULL, 1 },
		{ "--tls-ca", "ca.pem", 2 },
		{ "--cert", "c", 2 },
		{ "--key", "k", 2 },
		{ "--token", "t", 2 },
		{ "--token-file", "f", 2 },
		{ "--addr", NULL, -EINVAL },
		{ "--token-file", NULL, -EINVAL },
		{ "--json", "x", 0 },
		{ "--tokens", "x", 0 },
		{ "--cert-out", "x", 0 },
	};
	struct cli_client_opts o = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(cli_client_flag(&o, cases[i].name, cases[i].value), cases[i].ret);
	assert_string_equal(o.addr, "h:2");
	assert_int_equal(o.transport, CLI_TRANSPORT_TLS); /* --tls-ca came last */
	assert_string_equal(o.tls_ca, "ca.pem");
	assert_string_equal(o.cert, "c");
	assert_string_equal(o.key, "k");
	assert_string_equal(o.token, "t");
	assert_string_equal(o.token_file, "f");
	assert_int_equal(cli_client_flag(&o, "plaintext", NULL), 1);
	assert_int_equal(o.transport, CLI_TRANSPORT_PLAINTEXT);
}

/* The getopt_long entries name the same flags. */
static void test_longopts(void **state)
{
	static const struct option longopts[] = { CLI_CLIENT_LONGOPTS, { NULL, 0, NULL, 0 } };
	struct cli_client_opts o = { 0 };

	(void)state;
	for (int i = 0; longopts[i].name; i++) {
		assert_int_equal(longopts[i].val, CLI_CLIENT_OPT);
		assert_int_equal(cli_client_flag(&o, longopts[i].name, "v"),
				 longopts[i].has_arg == required_argument ? 2 : 1);
	}
}

static void test_time(void **state)
{
	char buf[CLI_TIME_LEN];

	(void)state;
	assert_string_equal(cli_fmt_time(1700000000, buf, sizeof(buf)), "2023-11-14T22:13:20Z");
	assert_string_equal(cli_fmt_time(951782400, buf, sizeof(buf)), "2000-02-29T00:00:00Z");
	assert_string_equal(cli_fmt_time(0, buf, sizeof(buf)), "-");
}

static struct cfg *load(const char *tls_mode, const char *addr, const char *token_file)
{
	char m[64], a[128], t[256];
	char *env[] = { m,
			a,
			t,
			"TRSTCTL_DEV_ALLOW_PLAINTEXT=true",
			"TRSTCTL_POSTGRES_DSN=host=/nonexistent",
			"TRSTCTL_STATE_DIR=/nonexistent",
			NULL };
	struct cfg *c = NULL;
	char *errs = NULL;

	snprintf(m, sizeof(m), "TRSTCTL_SERVER_TLS_MODE=%s", tls_mode);
	snprintf(a, sizeof(a), "TRSTCTL_SERVER_ADDR=%s", addr);
	snprintf(t, sizeof(t), "TRSTCTL_BOOTSTRAP_TOKEN_FILE=%s", token_file);
	if (cfg_load(env, &c, &errs) < 0) {
		fprintf(stderr, "cfg_load: %s\n", errs ? errs : "?");
		free(errs);
		return NULL;
	}
	return c;
}

static void test_open(void **state)
{
	struct cli_client_opts o = { 0 };
	struct trstctl_client *cl = NULL;
	char tok[] = "/tmp/test-cli-token.XXXXXX", err[256];
	struct cfg *c;
	int fd;

	(void)state;
	fd = mkstemp(tok);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "trst_x\n", 7), 7);
	close(fd);

	/* a kernel-chosen port cannot be reached from here: usage error, unless --addr */
	c = load("disabled", "127.0.0.1:0", "/nonexistent/bootstrap-token");
	assert_non_null(c);
	assert_int_equal(cli_client_open(c, &o, &cl, err, sizeof(err)), -EDESTADDRREQ);
	assert_non_null(strstr(err, "--addr"));
	assert_int_equal(cli_client_exit_status(-EDESTADDRREQ), 2);
	o.addr = "127.0.0.1:1";
	/* no bootstrap token file: no token, not an error */
	assert_int_equal(cli_client_open(c, &o, &cl, err, sizeof(err)), 0);
	cl = trstctl_client_free(cl);
	/* an explicit --token-file must be readable */
	o.token_file = "/nonexistent/token";
	assert_int_equal(cli_client_open(c, &o, &cl, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/token"));
	assert_int_equal(cli_client_exit_status(-ENOENT), 1);
	o.token_file = tok;
	assert_int_equal(cli_client_open(c, &o, &cl, err, sizeof(err)), 0);
	cl = trstctl_client_free(cl);
	/* half an mTLS pair is refused by libtrstctl */
	o.cert = tok;
	o.transport = CLI_TRANSPORT_INSECURE;
	assert_true(cli_client_open(c, &o, &cl, err, sizeof(err)) < 0);
	assert_null(cl);
	cfg_free(c);

	/* a wildcard host becomes loopback (internal TLS, no certificate there: unverified);
	 * the bootstrap token file is read when there */
	c = load("internal", "0.0.0.0:8443", tok);
	assert_non_null(c);
	memset(&o, 0, sizeof(o));
	assert_int_equal(cli_client_open(c, &o, &cl, err, sizeof(err)), 0);
	cl = trstctl_client_free(cl);
	cfg_free(c);
	unlink(tok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_longopts),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_open),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
