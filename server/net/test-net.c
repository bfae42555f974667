/* Unit tests of net.h: table-driven cases for the classifier and each parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <netinet/in.h>

#include "net.h"

static void test_classify(void **state)
{
	static const struct {
		const char *s;
		enum net_addr_class k;
	} cases[] = {
		{ "127.0.0.1", NET_ADDR_LOOPBACK },	{ "::1", NET_ADDR_LOOPBACK },
		{ "0.0.0.0", NET_ADDR_LOOPBACK },	{ "10.1.2.3", NET_ADDR_PRIVATE },
		{ "172.31.0.1", NET_ADDR_PRIVATE },	{ "172.32.0.1", NET_ADDR_PUBLIC },
		{ "192.168.9.9", NET_ADDR_PRIVATE },	{ "fd00::5", NET_ADDR_PRIVATE },
		{ "169.254.1.1", NET_ADDR_LINK_LOCAL }, { "fe80::1%eth0", NET_ADDR_LINK_LOCAL },
		{ "169.254.169.254", NET_ADDR_METADATA }, { "fd00:ec2::254", NET_ADDR_METADATA },
		{ "8.8.8.8", NET_ADDR_PUBLIC },		{ "100.64.0.1", NET_ADDR_PUBLIC },
		{ "::ffff:10.0.0.1", NET_ADDR_PRIVATE }, { "64:ff9b::8.8.8.8", NET_ADDR_PUBLIC },
		{ "2001:db8::1", NET_ADDR_PUBLIC },
	};
	struct net_addr a;
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(net_addr_parse(cases[i].s, &a), 0);
		if (net_addr_classify(&a) != cases[i].k)
			fail_msg("%s: class %s", cases[i].s,
				 net_addr_class_name(net_addr_classify(&a)));
	}
	assert_int_equal(net_addr_parse("::ffff:10.0.0.1", &a), 0);
	assert_int_equal(a.family, AF_INET);
	assert_string_equal(net_addr_format(&a, buf, sizeof(buf)), "10.0.0.1");
	assert_int_equal(net_addr_parse("pg.internal", &a), -EINVAL);
	assert_int_equal(net_addr_parse("10.0.0.1%eth0", &a), -EINVAL);
}

static void test_class_prefixes(void **state)
{
	const struct net_prefix *p;
	struct net_addr a;

	(void)state;
	assert_int_equal(net_class_prefixes(NET_ADDR_PRIVATE, &p), 4);
	assert_int_equal(net_addr_parse("172.20.1.1", &a), 0);
	assert_true(net_prefix_contains(&p[1], &a));
	assert_int_equal(net_class_prefixes(NET_ADDR_PUBLIC, &p), 0);
	assert_int_equal(net_class_prefixes(NET_ADDR_METADATA, &p), 2);
}

static void test_prefix(void **state)
{
	struct net_prefix p;
	const char *why = NULL;

	(void)state;
	assert_int_equal(net_prefix_parse("10.1.2.3/8:4222", &p, NULL), 0);
	assert_int_equal(p.prefix_len, 8);
	assert_int_equal(p.port, 4222);
	assert_int_equal(p.addr[1], 0);
	assert_int_equal(net_prefix_parse("[fd00::/8]:443", &p, NULL), 0);
	assert_int_equal(p.family, AF_INET6);
	assert_int_equal(net_prefix_parse("::ffff:10.0.0.0/104", &p, NULL), 0);
	assert_int_equal(p.family, AF_INET);
	assert_int_equal(p.prefix_len, 8);
	assert_int_equal(net_prefix_parse("not-a-cidr", &p, &why), -EINVAL);
	assert_non_null(strstr(why, "missing"));
	assert_int_equal(net_prefix_parse("10.0.0.0/33", &p, &why), -EINVAL);
}

static void test_host_and_url(void **state)
{
	struct net_url u;
	char buf[64], *h;
	int port;

	(void)state;
	assert_int_equal(net_host_normalize(" PG.Internal.:5432 ", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "pg.internal");
	assert_int_equal(net_host_normalize("[fd00::1]:5", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "fd00::1");
	assert_int_equal(net_host_normalize("  ", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(net_url_parse("nats://u:p@Relay.svc", &u), 0);
	assert_string_equal(u.host, "relay.svc");
	assert_int_equal(u.port, 4222);
	assert_true(u.has_userinfo);
	assert_int_equal(net_url_parse("https://[fd00::1]:8443/x", &u), 0);
	assert_string_equal(u.host, "fd00::1");
	assert_int_equal(u.port, 8443);
	assert_int_equal(net_url_parse("http:///x", &u), -EDESTADDRREQ);
	assert_int_equal(net_url_parse("no-scheme", &u), -EINVAL);
	/* The root's trailing dot goes; an empty label is no host (found by fuzz-net:
	 * "x://../" gave the host ".", which still ended in a dot). */
	assert_int_equal(net_url_parse("https://Api.Example.COM.:8443/", &u), 0);
	assert_string_equal(u.host, "api.example.com");
	assert_int_equal(net_url_parse("ii.i://../..-/", &u), -EINVAL);
	assert_int_equal(net_url_parse("https://a..b/", &u), -EINVAL);
	assert_int_equal(net_url_parse("https://.a/", &u), -EINVAL);
	assert_int_equal(net_url_parse("https://a../", &u), -EINVAL);
	assert_int_equal(net_url_parse("https://u@.:443/", &u), -EINVAL);
	/* An IPv6 zone is an interface name: kept as written (no dot stripped, no lowercase),
	 * 1-15 unreserved characters (found by fuzz-net: "[f::1%25e..]" kept a trailing dot,
	 * and any byte passed). */
	assert_int_equal(net_url_parse("https://[FE80::1%25Eth0.100]:8443/", &u), 0);
	assert_string_equal(u.host, "fe80::1%Eth0.100");
	assert_int_equal(net_url_parse("postgres://u:p@[f::1%25e..]:543/db", &u), 0);
	assert_string_equal(u.host, "f::1%e..");
	assert_int_equal(net_url_parse("https://[fe80::1%25eth\xe4]/", &u), -EINVAL);
	assert_int_equal(net_url_parse("https://[fe80::1%25a/b]/", &u), -EINVAL);
	assert_int_equal(net_url_parse("https://[fe80::1%25]/", &u), -EINVAL);
	assert_int_equal(net_url_parse("https://[fe80::1%25abcdefghijklmnop]/", &u), -EINVAL);
	assert_int_equal(net_split_hostport("[::1]:80", &h, &port), 0);
	assert_string_equal(h, "::1");
	assert_int_equal(port, 80);
	free(h);
	assert_int_equal(net_split_hostport("::1:80", &h, &port), -EINVAL);
	assert_int_equal(net_split_hostport("host:65536", &h, &port), -EINVAL);
}

/* The SAN rule for DNS names, shared by ca (identities) and cfg (server.tls.sans). */
static void test_dns_name(void **state)
{
	static const struct {
		const char *name;
		bool valid;
	} cases[] = {
		{ "localhost", true },
		{ "trstctl.ns.svc.cluster.local", true },
		{ "*.ns.svc", true },
		{ "a-b.example", true },
		{ "xn--nxasmq6b.example", true },
		{ "1.example", true },
		{ "", false },
		{ "a..b", false },
		{ "-a.example", false },
		{ "a-.example", false },
		{ "a.example.", false },
		{ "bad_name.example", false },
		{ "10.0.0.1", false }, /* an address, not a name */
		{ "a.*.example", false },
		{ "*", false },
		{ "https://x.example", false },
	};
	char label64[70], long254[260];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (net_dns_name_valid(cases[i].name) != cases[i].valid)
			fail_msg("\"%s\": want %s", cases[i].name, cases[i].valid ? "valid" : "invalid");
	assert_false(net_dns_name_valid(NULL));
	memset(label64, 'a', 64);
	strcpy(label64 + 64, ".com");
	assert_false(net_dns_name_valid(label64)); /* a label of 64 bytes */
	for (size_t i = 0; i < 254; i++)
		long254[i] = i % 2 ? '.' : 'a';
	long254[253] = 'a';
	long254[254] = '\0';
	assert_false(net_dns_name_valid(long254)); /* 254 bytes */
	long254[253] = '\0';
	assert_true(net_dns_name_valid(long254)); /* 253 bytes */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_class_prefixes),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_host_and_url),
		cmocka_unit_test(test_dns_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
