/*
 * Unit tests for the egress policy: address classification, prefix and URL parsing, host
 * decisions, the exact "egress blocked" messages and the trip counter, and the shared
 * decision table tests/egress-cases.txt. Every case of the table is decided twice: by
 * guard_policy_allows_addr() and by a plain longest-prefix lookup over
 * guard_policy_prefixes(), the way the kernel enforcer looks up its maps; both must give
 * the expected answer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cfg.h"
#include "guard.h"

#ifndef EGRESS_CASES
#define EGRESS_CASES "tests/egress-cases.txt"
#endif

static void split(const char *csv, char ***ret, size_t *ret_n)
{
	char **l = NULL;
	size_t n = 0;
	char *copy, *tok, *save;

	*ret = NULL;
	*ret_n = 0;
	if (!csv || strcmp(csv, "-") == 0)
		return;
	copy = strdup(csv);
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		l = realloc(l, (n + 1) * sizeof(*l));
		l[n++] = strdup(tok);
	}
	free(copy);
	*ret = l;
	*ret_n = n;
}

static void free_list(char **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

static struct guard_policy *policy(bool enabled, bool allow_private, const char *cidrs,
				   const char *hosts)
{
	struct cfg c = { 0 };
	struct guard_policy *p = NULL;

	c.air_gap.enabled = enabled;
	c.air_gap.allow_private = allow_private;
	split(cidrs, &c.air_gap.allow_cidrs, &c.air_gap.n_allow_cidrs);
	split(hosts, &c.air_gap.allow_hosts, &c.air_gap.n_allow_hosts);
	assert_int_equal(guard_policy_new(&c, &p), 0);
	free_list(c.air_gap.allow_cidrs, c.air_gap.n_allow_cidrs);
	free_list(c.air_gap.allow_hosts, c.air_gap.n_allow_hosts);
	return p;
}

/* The kernel's view: the most specific prefix decides; deny, or a port that differs, denies. */
static bool lpm_decide(const struct guard_prefix *v, size_t n, const struct net_addr *a,
		       uint16_t port)
{
	const struct guard_prefix *best = NULL;

	for (size_t i = 0; i < n; i++)
		if (guard_prefix_contains(&v[i], a) &&
		    (!best || v[i].prefix_len > best->prefix_len))
			best = &v[i];
	return best && !best->deny && (!best->port || best->port == port);
}

static void test_case_table(void **state)
{
	FILE *f = fopen(EGRESS_CASES, "r");
	struct guard_policy *p = NULL;
	struct guard_prefix *prefixes = NULL;
	size_t n_prefixes = 0, lineno = 0, cases = 0;
	char line[512];

	(void)state;
	if (!f)
		fail_msg("cannot open %s", EGRESS_CASES);
	while (fgets(line, sizeof(line), f)) {
		char a[128], b[512], c[512], want[16];
		unsigned port;

		lineno++;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "policy allow_private=%127s cidrs=%511s hosts=%511s", a, b, c) ==
		    3) {
			guard_policy_free(p);
			free(prefixes);
			p = policy(true, strcmp(a, "true") == 0, b, c);
			assert_int_equal(guard_policy_prefixes(p, &prefixes, &n_prefixes), 0);
			continue;
		}
		if (sscanf(line, "%127s %u %15s", a, &port, want) == 3 && p) {
			struct net_addr addr;
			bool exp = strcmp(want, "allow") == 0;

			if (net_addr_parse(a, &addr) < 0)
				fail_msg("%s:%zu: bad address %s", EGRESS_CASES, lineno, a);
			if (guard_policy_allows_addr(p, &addr, (uint16_t)port) != exp)
				fail_msg("%s:%zu: policy says %s for %s %u", EGRESS_CASES, lineno,
					 exp ? "deny" : "allow", a, port);
			if (lpm_decide(prefixes, n_prefixes, &addr, (uint16_t)port) != exp)
				fail_msg("%s:%zu: prefix list says %s for %s %u", EGRESS_CASES,
					 lineno, exp ? "deny" : "allow", a, port);
			cases++;
			continue;
		}
		fail_msg("%s:%zu: cannot parse: %s", EGRESS_CASES, lineno, line);
	}
	fclose(f);
	guard_policy_free(p);
	free(prefixes);
	assert_true(cases > 50);
}

static void test_classify(void **state)
{
	static const struct {
		const char *addr;
		enum net_addr_class c;
	} cases[] = {
		{ "127.0.0.1", NET_ADDR_LOOPBACK },
		{ "::1", NET_ADDR_LOOPBACK },
		{ "0.0.0.0", NET_ADDR_LOOPBACK },
		{ "::", NET_ADDR_LOOPBACK },
		{ "::ffff:127.0.0.9", NET_ADDR_LOOPBACK },
		{ "10.9.9.9", NET_ADDR_PRIVATE },
		{ "172.20.0.1", NET_ADDR_PRIVATE },
		{ "192.168.0.1", NET_ADDR_PRIVATE },
		{ "fd12::1", NET_ADDR_PRIVATE },
		{ "169.254.0.1", NET_ADDR_LINK_LOCAL },
		{ "fe80::1%eth0", NET_ADDR_LINK_LOCAL },
		{ "169.254.169.254", NET_ADDR_METADATA },
		{ "::ffff:169.254.169.254", NET_ADDR_METADATA },
		{ "64:ff9b::a9fe:a9fe", NET_ADDR_METADATA },
		{ "fd00:ec2::254", NET_ADDR_METADATA },
		{ "100.64.0.1", NET_ADDR_PUBLIC },
		{ "8.8.8.8", NET_ADDR_PUBLIC },
		{ "64:ff9b::808:808", NET_ADDR_PUBLIC },
		{ "2001:db8::1", NET_ADDR_PUBLIC },
		{ "fec0::1", NET_ADDR_PUBLIC },
	};
	static const char *const bad[] = { "",	    "1.2.3",	    "1.2.3.4.5", "example.com",
					   "[::1]", "1.2.3.4%eth0", "fe80::1%",	 "::1/128" };
	struct net_addr a;
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(net_addr_parse(cases[i].addr, &a), 0);
		if (net_addr_classify(&a) != cases[i].c)
			fail_msg("%s: got %s want %s", cases[i].addr,
				 net_addr_class_name(net_addr_classify(&a)),
				 net_addr_class_name(cases[i].c));
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(net_addr_parse(bad[i], &a), -EINVAL);
	assert_int_equal(net_addr_parse("::ffff:10.1.2.3", &a), 0);
	assert_int_equal(a.family, AF_INET);
	assert_string_equal(net_addr_format(&a, buf, sizeof(buf)), "10.1.2.3");
}

static void test_sockaddr(void **state)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(443) };
	struct sockaddr_un_like {
		sa_family_t family;
	} su = { AF_UNIX };
	struct net_addr a;
	uint16_t port;

	(void)state;
	inet_pton(AF_INET6, "::ffff:8.8.4.4", &s6.sin6_addr);
	assert_int_equal(net_addr_from_sockaddr((struct sockaddr *)&s6, sizeof(s6), &a, &port),
			 0);
	assert_int_equal(a.family, AF_INET);
	assert_int_equal(port, 443);
	assert_int_equal(net_addr_from_sockaddr((struct sockaddr *)&su, sizeof(su), &a, &port),
			 -EAFNOSUPPORT);
}

static void test_prefix_parse(void **state)
{
	static const struct {
		const char *s;
		int family, len, port;
		const char *net;
	} ok[] = {
		{ "10.0.0.0/8", AF_INET, 8, 0, "10.0.0.0" },
		{ "10.1.2.3/8", AF_INET, 8, 0, "10.0.0.0" },
		{ "10.0.0.0/8:5432", AF_INET, 8, 5432, "10.0.0.0" },
		{ "[fd00::/8]:443", AF_INET6, 8, 443, "fd00::" },
		{ "fd00::/8", AF_INET6, 8, 0, "fd00::" },
		{ "[fd00::/8]", AF_INET6, 8, 0, "fd00::" },
		{ "::ffff:10.0.0.0/104", AF_INET, 8, 0, "10.0.0.0" },
		{ "0.0.0.0/0", AF_INET, 0, 0, "0.0.0.0" },
		{ "203.0.113.7/32:1", AF_INET, 32, 1, "203.0.113.7" },
	};
	static const struct {
		const char *s, *why;
	} bad[] = {
		{ "not-a-cidr", "missing \"/<length>\"" },
		{ "10.0.0.1", "missing \"/<length>\"" },
		{ "10.0.0.0/33", "prefix length out of range" },
		{ "fd00::/129", "prefix length out of range" },
		{ "10.0.0.0/", "bad prefix length" },
		{ "10.0.0.0/x", "bad prefix length" },
		{ "10.0.0.0/8:", "bad port" },
		{ "10.0.0.0/8:65536", "bad port" },
		{ "fd00::/8:443", "an IPv6 prefix with a port must be written [x::/n]:port" },
		{ "[fd00::/8", "missing \"]\"" },
		{ "[fd00::/8]443", "want [prefix]:port" },
		{ "fe80::%eth0/64", "a prefix cannot carry an IPv6 zone" },
		{ "host.example/24", "not an IP address" },
		{ "", "empty" },
	};
	struct guard_prefix p;
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct net_addr a = { 0 };

		if (guard_prefix_parse(ok[i].s, &p, NULL) != 0)
			fail_msg("%s: rejected", ok[i].s);
		assert_int_equal(p.family, ok[i].family);
		assert_int_equal(p.prefix_len, ok[i].len);
		assert_int_equal(p.port, ok[i].port);
		a.family = p.family;
		memcpy(a.addr, p.addr, 16);
		assert_string_equal(net_addr_format(&a, buf, sizeof(buf)), ok[i].net);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = NULL;

		if (guard_prefix_parse(bad[i].s, &p, &why) != -EINVAL)
			fail_msg("%s: accepted", bad[i].s);
		if (!why || strncmp(why, bad[i].why, strlen(bad[i].why)))
			fail_msg("%s: why \"%s\", want \"%s\"", bad[i].s, why ? why : "",
				 bad[i].why);
	}
}

static void test_url_parse(void **state)
{
	static const struct {
		const char *url;
		const char *scheme, *host;
		int port;
		bool userinfo;
	} ok[] = {
		{ "https://Telemetry.TRSTCTL.com./v1/usage", "https", "telemetry.trstctl.com", 443,
		  false },
		{ "HTTP://127.0.0.1:4318/v1/traces", "http", "127.0.0.1", 4318, false },
		{ "http://[::1]:8080", "http", "::1", 8080, false },
		{ "http://[fe80::1%25eth0]/", "http", "fe80::1%eth0", 80, false },
		{ "https://u:p@example.com", "https", "example.com", 443, true },
		{ "https://example.com@evil.example/x", "https", "evil.example", 443, true },
		{ "ftp://files.example.com/x", "ftp", "files.example.com", 0, false },
		{ "nats://nats:4222", "nats", "nats", 4222, false },
		{ "https://example.com?q=a@b", "https", "example.com", 443, false },
	};
	static const struct {
		const char *url;
		int r;
	} bad[] = {
		{ "", -EINVAL },
		{ "example.com", -EINVAL },
		{ "http:/example.com", -EINVAL },
		{ "://example.com", -EINVAL },
		{ "http://exa mple.com", -EINVAL },
		{ "http://example.com\\@evil.com", -EINVAL },
		{ "http://[::1", -EINVAL },
		{ "http://[example.com]/", -EINVAL },
		{ "http://example.com:99999", -EINVAL },
		{ "http://example.com:80:80", -EINVAL },
		{ "http://exa%6dple.com", -EINVAL },
		{ "http://", -EDESTADDRREQ },
		{ "http:///path", -EDESTADDRREQ },
		{ "http://user@/path", -EDESTADDRREQ },
	};
	struct net_url u;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (net_url_parse(ok[i].url, &u) != 0)
			fail_msg("%s: rejected", ok[i].url);
		assert_string_equal(u.scheme, ok[i].scheme);
		assert_string_equal(u.host, ok[i].host);
		assert_int_equal(u.port, ok[i].port);
		assert_int_equal(u.has_userinfo, ok[i].userinfo);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (net_url_parse(bad[i].url, &u) != bad[i].r)
			fail_msg("%s: want %d", bad[i].url, bad[i].r);
}

static void test_hosts(void **state)
{
	struct guard_policy *p = policy(true, true, "203.0.113.0/24", "Collector.AirGap.Local.");
	struct guard_policy *np = policy(true, false, "-", "-");
	struct guard_policy *off = policy(false, false, "-", "-");
	const char *const *names;
	size_t n;

	(void)state;
	assert_true(guard_policy_allows_host(p, "collector.airgap.local", 443));
	assert_true(guard_policy_allows_host(p, "COLLECTOR.airgap.local.", 443));
	assert_false(guard_policy_allows_host(p, "x.collector.airgap.local", 443)); /* exact */
	assert_false(guard_policy_allows_host(p, "pg.internal", 5432));		    /* no DNS */
	assert_true(guard_policy_allows_host(p, "localhost", 80));
	assert_true(guard_policy_allows_host(p, "api.localhost", 80));
	assert_false(guard_policy_allows_host(p, "localhost.example.com", 80));
	assert_true(guard_policy_allows_host(p, "203.0.113.77", 80));
	assert_true(guard_policy_allows_host(p, "[fd00::1]", 80));
	assert_false(guard_policy_allows_host(p, "198.51.100.10", 443));
	assert_false(guard_policy_allows_host(p, "169.254.169.254", 80));
	assert_false(guard_policy_allows_host(p, "", 80));
	/* loopback never leaves the host: allowed even without allow_private */
	assert_true(guard_policy_allows_host(np, "127.0.0.1", 80));
	assert_true(guard_policy_allows_host(np, "localhost", 80));
	assert_false(guard_policy_allows_host(np, "10.0.0.1", 80));
	assert_true(guard_policy_allows_host(off, "example.com", 443));
	assert_int_equal(guard_policy_hosts(p, &names, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(names[0], "collector.airgap.local");
	guard_policy_free(p);
	guard_policy_free(np);
	guard_policy_free(off);
}

static void test_check_url_messages(void **state)
{
	static const struct {
		const char *url;
		const char *msg; /* NULL = allowed */
	} cases[] = {
		{ "https://telemetry.trstctl.com/v1/usage",
		  "egress blocked: telemetry.trstctl.com is not allowlisted" },
		{ "http://127.0.0.1:4318/v1/traces", NULL },
		{ "https://collector.airgap.local/v1/logs", NULL },
		{ "https://203.0.113.5/", NULL },
		{ "https://198.51.100.10/status",
		  "egress blocked: 198.51.100.10 is not allowlisted" },
		{ "https://updates.example.com",
		  "egress blocked: updates.example.com is not allowlisted" },
		{ "http://[2001:db8::1]:8080/", "egress blocked: 2001:db8::1 is not allowlisted" },
		{ "ftp://127.0.0.1/x", "egress blocked: unsupported outbound scheme \"ftp\"" },
		{ "FILE://localhost/etc/passwd",
		  "egress blocked: unsupported outbound scheme \"file\"" },
		{ "not a url", "egress blocked: invalid URL" },
		{ "http:///nohost", "egress blocked: missing destination host" },
		{ "http://169.254.169.254/latest/meta-data",
		  "egress blocked: 169.254.169.254 is not allowlisted" },
		{ "http://10.0.0.1/", NULL },
		{ "http://user@evil.example/", "egress blocked: evil.example is not allowlisted" },
	};
	struct guard_policy *p = policy(true, true, "203.0.113.0/24", "collector.airgap.local");
	struct guard_policy *off = policy(false, true, "-", "-");
	uint64_t trips = 0;
	char err[GUARD_ERR_MAX];

	(void)state;
	assert_int_equal(guard_policy_userspace_trips(p), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r;

		err[0] = 0;
		r = guard_policy_check_url(p, cases[i].url, err, sizeof(err));
		if (!cases[i].msg) {
			if (r != 0)
				fail_msg("%s: blocked: %s", cases[i].url, err);
			continue;
		}
		assert_int_equal(r, -EPERM);
		assert_string_equal(err, cases[i].msg);
		trips++;
		assert_int_equal(guard_policy_userspace_trips(p), trips);
	}
	guard_policy_reset_trips(p);
	assert_int_equal(guard_policy_userspace_trips(p), 0);
	assert_int_equal(guard_policy_check_url(p, "https://x.example", NULL, 0), -EPERM);
	assert_int_equal(guard_policy_userspace_trips(p), 1);
	/* a disabled guard allows everything but an invalid URL, and counts nothing */
	assert_int_equal(guard_policy_check_url(off, "https://telemetry.trstctl.com/", err, 8), 0);
	assert_int_equal(guard_policy_check_url(off, "ftp://x/", err, sizeof(err)), 0);
	assert_int_equal(guard_policy_check_url(off, "::", err, sizeof(err)), -EPERM);
	assert_string_equal(err, "egress blocked: invalid URL");
	assert_int_equal(guard_policy_userspace_trips(off), 0);
	guard_policy_free(p);
	guard_policy_free(off);
}

static bool has(const struct guard_prefix *v, size_t n, const char *cidr, bool deny)
{
	struct guard_prefix want;

	assert_int_equal(guard_prefix_parse(cidr, &want, NULL), 0);
	for (size_t i = 0; i < n; i++)
		if (v[i].family == want.family && v[i].prefix_len == want.prefix_len &&
		    !memcmp(v[i].addr, want.addr, 16) && v[i].port == want.port &&
		    v[i].deny == deny)
			return true;
	return false;
}

static void test_prefix_list(void **state)
{
	struct guard_policy *p = policy(true, true, "-", "-");
	struct guard_policy *q = policy(true, false, "169.254.169.254/32:80,198.51.100.0/24", "-");
	struct guard_prefix *v;
	size_t n;

	(void)state;
	assert_int_equal(guard_policy_prefixes(p, &v, &n), 0);
	assert_int_equal(n, 12);
	assert_true(has(v, n, "127.0.0.0/8", false));
	assert_true(has(v, n, "0.0.0.0/32", false));
	assert_true(has(v, n, "::1/128", false));
	assert_true(has(v, n, "::/128", false));
	assert_true(has(v, n, "10.0.0.0/8", false));
	assert_true(has(v, n, "172.16.0.0/12", false));
	assert_true(has(v, n, "192.168.0.0/16", false));
	assert_true(has(v, n, "169.254.0.0/16", false));
	assert_true(has(v, n, "fc00::/7", false));
	assert_true(has(v, n, "fe80::/10", false));
	assert_true(has(v, n, "169.254.169.254/32", true));
	assert_true(has(v, n, "fd00:ec2::254/128", true));
	/* sorted by family, then prefix length */
	for (size_t i = 1; i < n; i++)
		assert_true(
			v[i - 1].family < v[i].family ||
			(v[i - 1].family == v[i].family && v[i - 1].prefix_len <= v[i].prefix_len));
	free(v);
	assert_int_equal(guard_policy_prefixes(q, &v, &n), 0);
	assert_false(has(v, n, "10.0.0.0/8", false));
	assert_true(has(v, n, "169.254.169.254/32:80", false));
	assert_false(has(v, n, "169.254.169.254/32", true));
	assert_true(has(v, n, "198.51.100.0/24", false));
	assert_true(has(v, n, "fd00:ec2::254/128", true));
	free(v);
	guard_policy_free(p);
	guard_policy_free(q);
	assert_null(guard_policy_free(NULL));
}

/* The observer of test_admit: counts and keeps the last refusal's client and address. */
static int observed;
static char observed_addr[64];
static enum guard_client observed_client;

static void observe(const struct guard_refusal *r, void *arg)
{
	(void)arg;
	observed++;
	observed_client = r->client;
	snprintf(observed_addr, sizeof(observed_addr), "%s", r->address);
}

/* guard_policy_admits / guard_policy_admit_answer: a table, then the counting. */
static void test_admit(void **state)
{
	static const struct {
		const char *host, *addr;
		uint16_t port;
		bool private_on, private_off; /* admitted with allow_private on, off */
	} cases[] = {
		{ "db.internal", "10.1.2.3", 5432, true, false },
		{ "db.internal", "198.51.100.7", 5432, false, false },
		{ "db.internal", "127.0.0.1", 5432, true, true },	 /* loopback always */
		{ "db.internal", "::ffff:10.1.2.3", 5432, true, false }, /* mapped: its IPv4 */
		{ "db.internal", "169.254.169.254", 80, false, false },
		{ "api.listed", "198.51.100.9", 443, true, true },  /* allow_hosts: public */
		{ "API.Listed.", "198.51.100.9", 443, true, true }, /* normalised */
		{ "api.listed", "10.9.9.9", 443, true, false },	    /* rebinding */
		{ "api.listed", "169.254.169.254", 443, false, false },
		{ "api.listed", "fd00:ec2::254", 443, false, false },
		{ "evil.localhost", "198.51.100.7", 80, false, false },
		{ "localhost", "::1", 80, true, true },
		{ "198.51.100.7", "198.51.100.7", 443, false, false }, /* a literal: its address */
		{ "203.0.113.5", "203.0.113.5", 443, true, true },     /* inside allow_cidrs */
		{ "db.internal", "203.0.113.5", 5432, true, true },
	};
	struct guard_policy *on = policy(true, true, "203.0.113.0/24", "api.listed");
	struct guard_policy *off = policy(true, false, "203.0.113.0/24", "api.listed");
	struct guard_policy *disabled = policy(false, false, "-", "-");
	struct net_addr a[3], kept[3];
	char why[GUARD_ERR_MAX];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(net_addr_parse(cases[i].addr, &a[0]), 0);
		if (guard_policy_admits(on, cases[i].host, &a[0], cases[i].port) !=
			    cases[i].private_on ||
		    guard_policy_admits(off, cases[i].host, &a[0], cases[i].port) !=
			    cases[i].private_off)
			fail_msg("%s -> %s:%u: want %d/%d", cases[i].host, cases[i].addr,
				 cases[i].port, cases[i].private_on, cases[i].private_off);
		assert_true(guard_policy_admits(disabled, cases[i].host, &a[0], cases[i].port));
	}

	guard_policy_set_observer(off, observe, NULL);
	assert_int_equal(net_addr_parse("198.51.100.7", &a[0]), 0);
	assert_int_equal(net_addr_parse("10.1.2.3", &a[1]), 0);
	assert_int_equal(net_addr_parse("127.0.0.1", &a[2]), 0);
	/* every address refused: -EPERM, one trip of the client, the first refused named */
	assert_int_equal(guard_policy_admit_answer(off, GUARD_CLIENT_NATS, "bus.internal", 4222, a,
						   2, kept, &n, why, sizeof(why)),
			 -EPERM);
	assert_int_equal(n, 0);
	assert_string_equal(why, "egress blocked: nats host \"bus.internal\" resolves to "
				 "198.51.100.7, a public address the egress policy does not allow "
				 "on port 4222");
	assert_int_equal(guard_policy_client_trips(off, GUARD_CLIENT_NATS), 1);
	assert_int_equal(observed, 1);
	assert_int_equal(observed_client, GUARD_CLIENT_NATS);
	assert_string_equal(observed_addr, "198.51.100.7");
	/* some admitted: those are kept in order, the refusal still counts */
	assert_int_equal(guard_policy_admit_answer(off, GUARD_CLIENT_POSTGRES, "db.internal", 5432,
						   a, 3, kept, &n, why, sizeof(why)),
			 0);
	assert_int_equal(n, 1);
	assert_memory_equal(&kept[0], &a[2], sizeof(a[2]));
	assert_int_equal(guard_policy_client_trips(off, GUARD_CLIENT_POSTGRES), 1);
	assert_int_equal(observed, 2);
	/* nothing refused: no trip, no observer */
	assert_int_equal(guard_policy_admit_answer(off, GUARD_CLIENT_POSTGRES, "db.internal", 5432,
						   &a[2], 1, kept, &n, why, sizeof(why)),
			 0);
	assert_int_equal(observed, 2);
	assert_int_equal(guard_policy_userspace_trips(off), 2);
	assert_int_equal(guard_policy_admit_answer(off, GUARD_CLIENT_HTTP, "198.51.100.7", 443, a,
						   1, kept, &n, why, sizeof(why)),
			 -EPERM);
	assert_string_equal(why, "egress blocked: http address 198.51.100.7 is a public address "
				 "the egress policy does not allow on port 443");
	assert_string_equal(guard_client_name(GUARD_CLIENT_POSTGRES), "postgres");
	assert_string_equal(guard_client_name(GUARD_CLIENTS), "?");
	guard_policy_free(on);
	guard_policy_free(off);
	guard_policy_free(disabled);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_admit),	     cmocka_unit_test(test_case_table),
		cmocka_unit_test(test_classify),     cmocka_unit_test(test_sockaddr),
		cmocka_unit_test(test_prefix_parse), cmocka_unit_test(test_url_parse),
		cmocka_unit_test(test_hosts),	     cmocka_unit_test(test_check_url_messages),
		cmocka_unit_test(test_prefix_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
