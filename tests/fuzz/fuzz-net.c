/*
 * libFuzzer target for the address, prefix, host and URL parsers of server/net (what cfg
 * and the egress guard apply to configured endpoints, allow-lists and dialled URLs). The
 * input, cut at its first NUL as a C string, goes to every parser. Properties:
 *   - an address that parses formats to text that parses back to the same address, and
 *     its class is one of the five;
 *   - a prefix that parses has its length in range and no host bits, contains its own
 *     network address, and prints back to a prefix that parses the same;
 *   - host:port gives a port in 0..65535 and a host without the port's colon;
 *   - a normalised host is lowercase, not empty, fits, and normalising it again is stable;
 *   - a parsed URL has a lowercase scheme and a lowercase host without a trailing dot.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_addr(const char *s)
{
	struct net_addr a, b;
	char buf[64];

	if (net_addr_parse(s, &a) < 0)
		return;
	if (a.family != AF_INET && a.family != AF_INET6)
		abort();
	net_addr_format(&a, buf, sizeof(buf));
	if (net_addr_parse(buf, &b) < 0 || memcmp(&a, &b, sizeof(a)) != 0)
		abort();
	if ((unsigned)net_addr_classify(&a) > NET_ADDR_PUBLIC)
		abort();
}

static bool host_bits_zero(const struct net_prefix *p)
{
	unsigned bits = p->family == AF_INET ? 32 : 128;

	for (unsigned i = p->prefix_len; i < bits; i++)
		if (p->addr[i / 8] & (0x80 >> (i % 8)))
			return false;
	return true;
}

static void check_prefix(const char *s)
{
	struct net_prefix p, q;
	struct net_addr a = { 0 };
	const char *why = NULL;
	char buf[80], txt[64];

	if (net_prefix_parse(s, &p, &why) < 0) {
		if (!why || !*why)
			abort(); /* every refusal says why */
		return;
	}
	if ((p.family != AF_INET || p.prefix_len > 32) &&
	    (p.family != AF_INET6 || p.prefix_len > 128))
		abort();
	if (!host_bits_zero(&p))
		abort();
	a.family = p.family;
	memcpy(a.addr, p.addr, sizeof(a.addr));
	if (!net_prefix_contains(&p, &a))
		abort();
	inet_ntop(p.family, p.addr, txt, sizeof(txt));
	if (p.port)
		snprintf(buf, sizeof(buf), p.family == AF_INET ? "%s/%u:%u" : "[%s/%u]:%u", txt,
			 p.prefix_len, p.port);
	else
		snprintf(buf, sizeof(buf), "%s/%u", txt, p.prefix_len);
	if (net_prefix_parse(buf, &q, &why) < 0 || memcmp(&p, &q, sizeof(p)) != 0)
		abort();
}

static void check_hostport(const char *s)
{
	char *host = NULL;
	int port = -1;

	if (net_split_hostport(s, &host, &port) < 0)
		return;
	if (!host || port < 0 || port > 65535 || strlen(host) >= strlen(s))
		abort();
	if (s[0] != '[' && strchr(host, ':'))
		abort();
	free(host);
}

static void check_host(const char *s)
{
	char buf[256], again[256];
	int r = net_host_normalize(s, buf, sizeof(buf));

	if (r < 0) {
		if (r != -EINVAL && r != -ENAMETOOLONG)
			abort();
		return;
	}
	if (!buf[0] || strlen(buf) >= sizeof(buf))
		abort();
	for (const char *p = buf; *p; p++)
		if (isupper((unsigned char)*p))
			abort();
	/* A normalised host keeps its form, unless it is still "host:port"-like or ends in a
	 * dot (then one more round strips one more layer); it never grows. */
	if (net_host_normalize(buf, again, sizeof(again)) == 0 && strlen(again) > strlen(buf))
		abort();
}

static void check_url(const char *s)
{
	struct net_url u;
	const char *zone;
	size_t n;
	int r = net_url_parse(s, &u);

	if (r < 0) {
		if (r != -EINVAL && r != -EDESTADDRREQ)
			abort();
		return;
	}
	n = strnlen(u.host, sizeof(u.host));
	zone = memchr(u.host, '%', n);
	/* a name loses its root dot and is lowercase; an IPv6 zone (an interface name) is
	 * kept as written, of unreserved characters */
	if (n == 0 || n >= sizeof(u.host) || (!zone && u.host[n - 1] == '.') ||
	    strnlen(u.scheme, sizeof(u.scheme)) >= sizeof(u.scheme))
		abort();
	for (size_t i = 0; i < n; i++)
		if ((!zone || u.host + i < zone) ? isupper((unsigned char)u.host[i]) :
						   (u.host + i > zone &&
						    !isalnum((unsigned char)u.host[i]) &&
						    !strchr("-._~", u.host[i])))
			abort();
	for (const char *p = u.scheme; *p; p++)
		if (isupper((unsigned char)*p))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	s = fuzz_cstring(data, size, 4096);
	if (!s)
		return 0;
	check_addr(s);
	check_prefix(s);
	check_hostport(s);
	check_host(s);
	check_url(s);
	free(s);
	return 0;
}
