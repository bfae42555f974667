/*
 * Tests of userspace enforcement (guard-gate.c) through the running guard: the gate that
 * the PostgreSQL pool and the NATS relay ask, the guarded HTTP client, the counters by
 * client, and the listing of refusals (denial hook, rate limit, suppressed counts).
 *
 * Names come from a private /etc/hosts: the test moves into new network and mount
 * namespaces (only lo up, so that even a broken guard sends nothing), bind-mounts its own
 * hosts file over /etc/hosts, and runs there; without the privilege for that it exits 77.
 */
#include <curl/curl.h>
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "guard-run-internal.h"
#include "guard.h"
#include "test-netns.h"

static const char hosts[] = "127.0.0.1 localhost\n"
			    "127.0.0.1 pg.test\n"
			    "198.51.100.7 public.test\n"
			    "198.51.100.7 evil.localhost\n"
			    "10.1.2.3 private.test\n"
			    "169.254.169.254 meta.test\n"
			    "198.51.100.9 listed.test\n"
			    "10.9.9.9 listedpriv.test\n"
			    "127.0.0.1 mixed.test\n"
			    "198.51.100.8 mixed.test\n";

static char hosts_path[] = "/tmp/trstctl-test-gate-hosts.XXXXXX";

/* What the denial hook saw. */
static struct guard_run_denial seen[64];
static size_t n_seen;

static void on_denial(const struct guard_run_denial *d, void *arg)
{
	(void)arg;
	if (n_seen < sizeof(seen) / sizeof(seen[0]))
		seen[n_seen] = *d;
	n_seen++;
}

static struct guard_run *start(enum cfg_enforcer enforcer, bool enabled, bool allow_private)
{
	static char *allow[] = { "listed.test", "listedpriv.test" };
	static struct cfg c;
	struct guard_run *g = NULL;
	char err[512] = "";

	memset(&c, 0, sizeof(c));
	c.air_gap.enabled = enabled;
	c.air_gap.allow_private = allow_private;
	c.air_gap.enforcer = enforcer;
	c.air_gap.allow_hosts = allow;
	c.air_gap.n_allow_hosts = 2;
	if (guard_run_start(&c, false, &g, err, sizeof(err)) < 0)
		fail_msg("guard_run_start: %s", err);
	n_seen = 0;
	guard_set_denial_hook(g, on_denial, NULL);
	return g;
}

/* Asks the gate of client for host:port; the admitted addresses go to out (formatted). */
static int ask(struct guard_run *g, enum guard_client client, const char *host, uint16_t port,
	       char *out, size_t len, char *why)
{
	struct net_gate gate;
	struct net_addr a[8];
	size_t n = 0;
	int r;

	assert_int_equal(guard_run_gate(g, client, &gate), 0);
	why[0] = '\0';
	r = gate.fn(gate.arg, host, port, a, 8, &n, why, 320);
	out[0] = '\0';
	for (size_t i = 0; r == 0 && i < n; i++) {
		char buf[64];

		snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? "," : "",
			 net_addr_format(&a[i], buf, sizeof(buf)));
	}
	return r;
}

static void test_not_gated(void **state)
{
	struct guard_run *off = start(CFG_ENFORCER_USERSPACE, false, true);
	char out[128], why[320];

	(void)state;
	/* air-gap off: clients connect by name, nothing is counted */
	assert_int_equal(
		ask(off, GUARD_CLIENT_POSTGRES, "public.test", 5432, out, sizeof(out), why), 1);
	assert_null(guard_run_note(off));
	guard_run_stop(off);
}

static void test_gate(void **state)
{
	struct guard_run *g = start(CFG_ENFORCER_USERSPACE, true, true);
	struct guard_run_status st;
	char out[128], why[320];

	(void)state;
	assert_non_null(strstr(guard_run_note(g), "only this server's own clients"));
	assert_int_equal(ask(g, GUARD_CLIENT_POSTGRES, "pg.test", 5432, out, sizeof(out), why), 0);
	assert_string_equal(out, "127.0.0.1");
	assert_int_equal(ask(g, GUARD_CLIENT_POSTGRES, "private.test", 5432, out, sizeof(out), why),
			 0);
	assert_string_equal(out, "10.1.2.3");
	assert_int_equal(ask(g, GUARD_CLIENT_NATS, "listed.test", 4222, out, sizeof(out), why), 0);
	assert_string_equal(out, "198.51.100.9");
	assert_int_equal(ask(g, GUARD_CLIENT_NATS, "127.0.0.1", 4222, out, sizeof(out), why), 0);
	assert_int_equal(n_seen, 0);

	assert_int_equal(ask(g, GUARD_CLIENT_POSTGRES, "public.test", 5432, out, sizeof(out), why),
			 -EPERM);
	assert_string_equal(why, "egress blocked: postgres host \"public.test\" resolves to "
				 "198.51.100.7, a public address the egress policy does not "
				 "allow on port 5432");
	assert_int_equal(ask(g, GUARD_CLIENT_NATS, "meta.test", 4222, out, sizeof(out), why),
			 -EPERM);
	assert_non_null(strstr(why, "169.254.169.254, a metadata address"));
	assert_int_equal(ask(g, GUARD_CLIENT_NATS, "198.51.100.7", 4222, out, sizeof(out), why),
			 -EPERM);
	/* a mixed answer: only the allowed address is handed out, the refusal still counts */
	assert_int_equal(ask(g, GUARD_CLIENT_POSTGRES, "mixed.test", 5432, out, sizeof(out), why),
			 0);
	assert_string_equal(out, "127.0.0.1");
	assert_non_null(strstr(why, "198.51.100.8"));
	/* a name that does not resolve is no refusal */
	assert_int_equal(
		ask(g, GUARD_CLIENT_POSTGRES, "nosuch.invalid", 5432, out, sizeof(out), why),
		-EHOSTUNREACH);

	assert_int_equal(guard_run_status(g, &st), 0);
	assert_int_equal(st.mode, GUARD_RUN_USERSPACE);
	assert_string_equal(st.coverage, "own_clients");
	assert_int_equal(st.userspace_trips_by_client[GUARD_CLIENT_POSTGRES], 2);
	assert_int_equal(st.userspace_trips_by_client[GUARD_CLIENT_NATS], 2);
	assert_int_equal(st.userspace_trips_by_client[GUARD_CLIENT_HTTP], 0);
	assert_int_equal(st.userspace_trips, 4);

	/* each refusal listed once, with what a person needs to know */
	assert_int_equal(n_seen, 4);
	assert_string_equal(seen[0].hook, "userspace");
	assert_string_equal(seen[0].client, "postgres");
	assert_string_equal(seen[0].host, "public.test");
	assert_string_equal(seen[0].address, "198.51.100.7");
	assert_int_equal(seen[0].port, 5432);
	assert_string_equal(seen[0].protocol, "tcp");
	assert_true(seen[0].pid > 0);
	assert_non_null(strstr(seen[0].reason, "a public address"));
	assert_string_equal(seen[1].client, "nats");
	{
		struct guard_run_denial d[8];

		assert_int_equal(guard_run_denials(g, 0, d, 8), 4);
		assert_string_equal(d[0].host, "mixed.test"); /* newest first */
	}
	guard_run_stop(g);
}

static void test_rate_limit(void **state)
{
	struct guard_run *g = start(CFG_ENFORCER_USERSPACE, true, true);
	char out[128], why[320];

	(void)state;
	g->report_period_s = 2;
	/* a reconnect loop: every refusal counted, one listed per period and key */
	for (int i = 0; i < 10; i++)
		assert_int_equal(
			ask(g, GUARD_CLIENT_POSTGRES, "public.test", 5432, out, sizeof(out), why),
			-EPERM);
	assert_int_equal(guard_policy_client_trips(guard_run_policy(g), GUARD_CLIENT_POSTGRES), 10);
	assert_int_equal(n_seen, 1);
	assert_int_equal(seen[0].suppressed, 0);
	sleep(3);
	assert_int_equal(ask(g, GUARD_CLIENT_POSTGRES, "public.test", 5432, out, sizeof(out), why),
			 -EPERM);
	assert_int_equal(n_seen, 2);
	assert_int_equal(seen[1].suppressed, 9); /* the ones not listed in between */

	/* many keys at once: at most GUARD_RUN_REPORT_BURST listed per period */
	sleep(3);
	n_seen = 0;
	for (int i = 0; i < GUARD_RUN_REPORT_BURST + 10; i++)
		ask(g, GUARD_CLIENT_NATS, "public.test", (uint16_t)(10000 + i), out, sizeof(out),
		    why);
	assert_int_equal(n_seen, GUARD_RUN_REPORT_BURST);
	assert_int_equal(guard_policy_client_trips(guard_run_policy(g), GUARD_CLIENT_NATS),
			 GUARD_RUN_REPORT_BURST + 10);
	guard_run_stop(g);
}

static void test_http(void **state)
{
	struct guard_run *g = start(CFG_ENFORCER_USERSPACE, true, false);
	struct guard_http_request req = { .max_redirects = -1, .timeout_ms = 5000 };
	struct guard_http_response resp = { 0 };
	struct guard_run_status st;
	char err[GUARD_ERR_MAX];

	(void)state;
	/* before DNS: a public literal, a name not allowlisted */
	req.url = "http://198.51.100.7:4318/v1/traces";
	assert_int_equal(guard_http_do(guard_run_policy(g), &req, &resp, err, sizeof(err)), -EPERM);
	assert_string_equal(err, "egress blocked: 198.51.100.7 is not allowlisted");
	req.url = "https://public.test/v1/traces";
	assert_int_equal(guard_http_do(guard_run_policy(g), &req, &resp, err, sizeof(err)), -EPERM);
	/* after DNS, before connecting: a localhost name that resolves to a public address */
	req.url = "http://evil.localhost:4318/v1/traces";
	assert_int_equal(guard_http_do(guard_run_policy(g), &req, &resp, err, sizeof(err)), -EPERM);
	assert_string_equal(err,
			    "egress blocked: evil.localhost resolves to no allowlisted address");
	/* an allow_hosts name whose answer is private while allow_private is off (rebinding) */
	req.url = "http://listedpriv.test:4318/";
	assert_int_equal(guard_http_do(guard_run_policy(g), &req, &resp, err, sizeof(err)), -EPERM);

	assert_int_equal(guard_run_status(g, &st), 0);
	assert_int_equal(st.userspace_trips_by_client[GUARD_CLIENT_HTTP], 4);
	assert_int_equal(st.userspace_trips_by_client[GUARD_CLIENT_POSTGRES], 0);
	assert_int_equal(n_seen, 4);
	assert_string_equal(seen[0].client, "http");
	assert_string_equal(seen[0].host, "198.51.100.7");
	assert_string_equal(seen[0].address, "");
	assert_string_equal(seen[2].host, "evil.localhost");
	assert_string_equal(seen[2].address, "198.51.100.7");
	assert_int_equal(seen[2].port, 4318);
	assert_string_equal(seen[3].address, "10.9.9.9");
	guard_run_stop(g);
}

/* New network and mount namespaces, lo up, and the private hosts file over /etc/hosts. */
static int private_world(void)
{
	int fd;

	if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	if (test_netns_enter() < 0)
		return -EPERM;
	fd = mkstemp(hosts_path);
	if (fd < 0 || write(fd, hosts, sizeof(hosts) - 1) != (ssize_t)(sizeof(hosts) - 1))
		return -EIO;
	close(fd);
	if (mount(hosts_path, "/etc/hosts", "none", MS_BIND, NULL) < 0)
		return -errno;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_not_gated),
		cmocka_unit_test(test_gate),
		cmocka_unit_test(test_rate_limit),
		cmocka_unit_test(test_http),
	};
	int r = private_world();

	if (r < 0) {
		printf("SKIP: cannot make private network and mount namespaces with their own "
		       "/etc/hosts (%s); this test needs root\n",
		       strerror(-r));
		unlink(hosts_path);
		return 77;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	umount("/etc/hosts");
	unlink(hosts_path);
	return r;
}
