/*
 * Address, prefix, host and URL parsing (net.h). Everything here is a pure function of its
 * arguments: no DNS, no sockets, no configuration. IPv4-mapped and NAT64 IPv6 addresses are
 * normalised to IPv4 wherever an address is parsed, so that every caller judges them by
 * the IPv4 address they reach. The address classes follow the egress policy's needs:
 * link-local IPv4 is kept apart from private because the cloud metadata address lives
 * there.
 */
#include "net.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t nat64_prefix[12] = { 0x00, 0x64, 0xff, 0x9b };
static const uint8_t mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Normalises an IPv6 address in place: mapped and NAT64 forms become IPv4. */
void net_addr_normalize(struct net_addr *a)
{
	if (a->family != AF_INET6)
		return;
	if (memcmp(a->addr, mapped_prefix, 12) == 0 || memcmp(a->addr, nat64_prefix, 12) == 0) {
		memmove(a->addr, a->addr + 12, 4);
		memset(a->addr + 4, 0, 12);
		a->family = AF_INET;
	}
}

int net_addr_parse(const char *s, struct net_addr *ret_addr)
{
	struct net_addr a = { 0 };
	char buf[64];
	size_t n;

	if (!s)
		return -EINVAL;
	n = strcspn(s, "%");
	if (n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = 0;
	if (s[n] == '%' && (!strchr(buf, ':') || !s[n + 1]))
		return -EINVAL; /* a zone only on IPv6, and not empty */
	if (inet_pton(AF_INET, buf, a.addr) == 1)
		a.family = AF_INET;
	else if (inet_pton(AF_INET6, buf, a.addr) == 1)
		a.family = AF_INET6;
	else
		return -EINVAL;
	net_addr_normalize(&a);
	*ret_addr = a;
	return 0;
}

int net_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct net_addr *ret_addr,
			     uint16_t *ret_port)
{
	struct net_addr a = { 0 };
	uint16_t port;

	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		a.family = AF_INET;
		memcpy(a.addr, &in->sin_addr, 4);
		port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		a.family = AF_INET6;
		memcpy(a.addr, &in6->sin6_addr, 16);
		port = ntohs(in6->sin6_port);
	} else {
		return -EAFNOSUPPORT;
	}
	net_addr_normalize(&a);
	*ret_addr = a;
	if (ret_port)
		*ret_port = port;
	return 0;
}

const char *net_addr_format(const struct net_addr *a, char *buf, size_t len)
{
	if (!inet_ntop(a->family, a->addr, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

static bool bits_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned bytes = bits / 8, rem = bits % 8;

	if (memcmp(a, b, bytes))
		return false;
	if (rem) {
		uint8_t mask = (uint8_t)(0xff << (8 - rem));

		return (a[bytes] & mask) == (b[bytes] & mask);
	}
	return true;
}

static const struct net_prefix loopback_ranges[] = {
	{ AF_INET, { 127 }, 8, 0 },
	{ AF_INET, { 0 }, 32, 0 },
	{ AF_INET6, { [15] = 1 }, 128, 0 },
	{ AF_INET6, { 0 }, 128, 0 },
};

static const struct net_prefix private_ranges[] = {
	{ AF_INET, { 10 }, 8, 0 },
	{ AF_INET, { 172, 16 }, 12, 0 },
	{ AF_INET, { 192, 168 }, 16, 0 },
	{ AF_INET6, { 0xfc }, 7, 0 },
};

static const struct net_prefix link_local_ranges[] = {
	{ AF_INET, { 169, 254 }, 16, 0 },
	{ AF_INET6, { 0xfe, 0x80 }, 10, 0 },
};

static const struct net_prefix metadata_addrs[] = {
	{ AF_INET, { 169, 254, 169, 254 }, 32, 0 },
	{ AF_INET6,
	  { 0xfd, 0x00, 0x0e, 0xc2, [14] = 0x02, [15] = 0x54 },
	  128, 0 }, /* fd00:ec2::254 (AWS) */
};

#define N(x) (sizeof(x) / sizeof((x)[0]))

static bool in_ranges(const struct net_addr *a, const struct net_prefix *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (net_prefix_contains(&r[i], a))
			return true;
	return false;
}

enum net_addr_class net_addr_classify(const struct net_addr *a)
{
	if (in_ranges(a, loopback_ranges, N(loopback_ranges)))
		return NET_ADDR_LOOPBACK;
	if (in_ranges(a, metadata_addrs, N(metadata_addrs)))
		return NET_ADDR_METADATA;
	if (in_ranges(a, private_ranges, N(private_ranges)))
		return NET_ADDR_PRIVATE;
	if (in_ranges(a, link_local_ranges, N(link_local_ranges)))
		return NET_ADDR_LINK_LOCAL;
	return NET_ADDR_PUBLIC;
}

const char *net_addr_class_name(enum net_addr_class c)
{
	static const char *const names[] = { "loopback", "private", "link-local", "metadata",
					     "public" };

	return (unsigned)c < N(names) ? names[c] : "?";
}

bool net_addr_in(const struct net_addr *a, int family, const uint8_t *addr, unsigned len)
{
	return a->family == family && bits_match(a->addr, addr, len);
}

size_t net_class_prefixes(enum net_addr_class c, const struct net_prefix **ret_prefixes)
{
	switch (c) {
	case NET_ADDR_LOOPBACK:
		*ret_prefixes = loopback_ranges;
		return N(loopback_ranges);
	case NET_ADDR_PRIVATE:
		*ret_prefixes = private_ranges;
		return N(private_ranges);
	case NET_ADDR_LINK_LOCAL:
		*ret_prefixes = link_local_ranges;
		return N(link_local_ranges);
	case NET_ADDR_METADATA:
		*ret_prefixes = metadata_addrs;
		return N(metadata_addrs);
	default:
		*ret_prefixes = NULL;
		return 0;
	}
}

int net_split_hostport(const char *s, char **ret_host, int *ret_port)
{
	const char *colon, *hs = s, *he;
	char *end;
	long port;

	if (!s)
		return -EINVAL;
	if (*s == '[') {
		he = strchr(s, ']');
		if (!he || he[1] != ':')
			return -EINVAL;
		hs = s + 1;
		colon = he + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -EINVAL;
		he = colon;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 0 || port > 65535)
		return -EINVAL;
	*ret_host = strndup(hs, (size_t)(he - hs));
	if (!*ret_host)
		return -ENOMEM;
	*ret_port = (int)port;
	return 0;
}

static void mask_bits(uint8_t *addr, unsigned len)
{
	for (unsigned i = 0; i < 16; i++) {
		if (len >= 8) {
			len -= 8;
			continue;
		}
		addr[i] &= (uint8_t)(0xff << (8 - len));
		len = 0;
	}
}

static int parse_port(const char *s, uint16_t *ret)
{
	char *end;
	long x;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	x = strtol(s, &end, 10);
	if (errno || *end || x < 1 || x > 65535)
		return -EINVAL;
	*ret = (uint16_t)x;
	return 0;
}

#define WHY(s)                        \
	do {                          \
		if (ret_why)          \
			*ret_why = s; \
		return -EINVAL;       \
	} while (0)

int net_prefix_parse(const char *s, struct net_prefix *ret_prefix, const char **ret_why)
{
	struct net_prefix p = { 0 };
	char buf[80];
	const char *port_s = NULL;
	char *slash, *end;
	bool bracketed = false;
	long len;

	if (!s || !*s)
		WHY("empty");
	if (strlen(s) >= sizeof(buf))
		WHY("too long");
	strcpy(buf, s);
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');

		if (!close)
			WHY("missing \"]\"");
		if (close[1] == ':')
			port_s = close + 2;
		else if (close[1])
			WHY("want [prefix]:port after \"]\"");
		*close = 0;
		memmove(buf, buf + 1, strlen(buf + 1) + 1);
		bracketed = true;
	}
	slash = strchr(buf, '/');
	if (!slash)
		WHY("missing \"/<length>\" (write 10.0.0.0/8, or 10.0.0.1/32 for one address)");
	*slash = 0;
	if (strchr(buf, '%'))
		WHY("a prefix cannot carry an IPv6 zone");
	if (inet_pton(AF_INET, buf, p.addr) == 1)
		p.family = AF_INET;
	else if (inet_pton(AF_INET6, buf, p.addr) == 1)
		p.family = AF_INET6;
	else
		WHY("not an IP address before \"/\"");
	if (!bracketed && strchr(slash + 1, ':')) {
		if (p.family == AF_INET6)
			WHY("an IPv6 prefix with a port must be written [x::/n]:port");
		*strchr(slash + 1, ':') = 0;
		port_s = slash + 1 + strlen(slash + 1) + 1;
	}
	if (!isdigit((unsigned char)slash[1]))
		WHY("bad prefix length");
	errno = 0;
	len = strtol(slash + 1, &end, 10);
	if (errno || *end || len < 0 || len > (p.family == AF_INET ? 32 : 128))
		WHY("prefix length out of range");
	if (port_s && parse_port(port_s, &p.port) < 0)
		WHY("bad port (want 1-65535)");
	p.prefix_len = (uint8_t)len;
	if (p.family == AF_INET6 && len >= 96 &&
	    (memcmp(p.addr, mapped_prefix, 12) == 0 || memcmp(p.addr, nat64_prefix, 12) == 0)) {
		memmove(p.addr, p.addr + 12, 4);
		memset(p.addr + 4, 0, 12);
		p.family = AF_INET;
		p.prefix_len = (uint8_t)(len - 96);
	}
	mask_bits(p.addr, p.prefix_len);
	*ret_prefix = p;
	return 0;
}

bool net_prefix_contains(const struct net_prefix *p, const struct net_addr *a)
{
	return p->family == a->family && bits_match(a->addr, p->addr, p->prefix_len);
}

bool net_dns_name_valid(const char *name)
{
	const char *p = name, *label;
	size_t n = name ? strlen(name) : 0;
	bool numeric = false;

	if (n == 0 || n > 253)
		return false;
	if (!strncmp(p, "*.", 2))
		p += 2;
	do {
		label = p;
		while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		       (*p >= '0' && *p <= '9') || *p == '-')
			p++;
		if (p == label || p - label > 63 || *label == '-' || p[-1] == '-' ||
		    (*p && *p != '.'))
			return false;
		numeric = strspn(label, "0123456789") == (size_t)(p - label);
	} while (*p && *++p);
	/* A trailing dot, or an all-numeric last label (an IP address). */
	return p[-1] != '.' && !numeric;
}

int net_host_normalize(const char *host, char *buf, size_t len)
{
	const char *s = host, *e;
	size_t n;

	if (!host)
		return -EINVAL;
	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	if (e > s && *s == '[') {
		const char *close = memchr(s, ']', (size_t)(e - s));

		if (!close)
			return -EINVAL;
		/* "[v6]" or "[v6]:port" */
		if (close + 1 != e && (close[1] != ':' || close + 2 == e))
			return -EINVAL;
		s++;
		e = close;
	} else {
		const char *colon = memchr(s, ':', (size_t)(e - s));

		/* "host:port" (one colon, digits after) loses its port */
		if (colon && !memchr(colon + 1, ':', (size_t)(e - colon - 1)) && colon + 1 < e) {
			const char *d = colon + 1;

			while (d < e && isdigit((unsigned char)*d))
				d++;
			if (d == e)
				e = colon;
		}
	}
	if (e > s && e[-1] == '.')
		e--;
	n = (size_t)(e - s);
	if (n == 0)
		return -EINVAL;
	if (n >= len)
		return -ENAMETOOLONG;
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)tolower((unsigned char)s[i]);
	buf[n] = 0;
	return 0;
}

static uint16_t default_port(const char *scheme)
{
	if (strcmp(scheme, "http") == 0 || strcmp(scheme, "ws") == 0)
		return 80;
	if (strcmp(scheme, "https") == 0 || strcmp(scheme, "wss") == 0)
		return 443;
	if (strcmp(scheme, "nats") == 0 || strcmp(scheme, "tls") == 0)
		return 4222;
	if (strcmp(scheme, "postgres") == 0 || strcmp(scheme, "postgresql") == 0)
		return 5432;
	return 0;
}

static bool reg_name_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_' || c == '~';
}

int net_url_parse(const char *url, struct net_url *ret_url)
{
	struct net_url u = { 0 };
	const char *p = url, *auth, *auth_end, *at, *hs, *he, *ps = NULL;
	bool literal = false; /* the host is a bracketed IPv6 address */
	size_t n;

	if (!url || !isalpha((unsigned char)*p))
		return -EINVAL;
	while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
		p++;
	n = (size_t)(p - url);
	if (strncmp(p, "://", 3) != 0 || n >= sizeof(u.scheme))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		u.scheme[i] = (char)tolower((unsigned char)url[i]);
	auth = p + 3;
	auth_end = auth + strcspn(auth, "/?#");
	for (const char *q = url; *q; q++)
		if ((unsigned char)*q <= ' ' || *q == '\\' || (unsigned char)*q == 0x7f)
			return -EINVAL;
	at = memrchr(auth, '@', (size_t)(auth_end - auth));
	u.has_userinfo = at != NULL;
	hs = at ? at + 1 : auth;
	if (hs < auth_end && *hs == '[') {
		char buf[64];
		struct net_addr a;

		he = memchr(hs, ']', (size_t)(auth_end - hs));
		if (!he)
			return -EINVAL;
		if (he + 1 < auth_end) {
			if (he[1] != ':')
				return -EINVAL;
			ps = he + 2;
		}
		hs++;
		n = (size_t)(he - hs);
		if (n == 0 || n >= sizeof(buf))
			return -EINVAL;
		memcpy(buf, hs, n);
		buf[n] = 0;
		/* RFC 6874 writes the zone as %25 */
		if (strstr(buf, "%25"))
			memmove(strstr(buf, "%25") + 1, strstr(buf, "%25") + 3,
				strlen(strstr(buf, "%25") + 3) + 1);
		if (net_addr_parse(buf, &a) < 0 || !strchr(buf, ':'))
			return -EINVAL;
		/* a zone is an interface name: 1-15 unreserved characters (RFC 6874), kept as
		 * written (interface names are case-sensitive) */
		if (strchr(buf, '%')) {
			const char *z = strchr(buf, '%') + 1;

			if (!*z || strlen(z) > 15)
				return -EINVAL;
			for (; *z; z++)
				if (!reg_name_char(*z))
					return -EINVAL;
		}
		literal = true;
		memcpy(u.host, buf, strlen(buf) + 1);
	} else {
		he = memchr(hs, ':', (size_t)(auth_end - hs));
		if (he)
			ps = he + 1;
		else
			he = auth_end;
		for (const char *q = hs; q < he; q++)
			if (!reg_name_char(*q))
				return -EINVAL;
		n = (size_t)(he - hs);
		if (n >= sizeof(u.host))
			return -EINVAL;
		/* No empty label: only the root's one trailing dot may stand alone (it is
		 * dropped below), so "a..b", ".a" and "a.." are not hosts. */
		if (n && (*hs == '.' || memmem(hs, n, "..", 2)))
			return -EINVAL;
		memcpy(u.host, hs, n);
		u.host[n] = 0;
	}
	if (ps && ps < auth_end) {
		char pbuf[8];

		n = (size_t)(auth_end - ps);
		if (n >= sizeof(pbuf))
			return -EINVAL;
		memcpy(pbuf, ps, n);
		pbuf[n] = 0;
		if (parse_port(pbuf, &u.port) < 0)
			return -EINVAL;
	} else {
		u.port = default_port(u.scheme);
	}
	n = strlen(u.host);
	if (n && u.host[n - 1] == '.' && !literal) /* the root's dot of a name */
		u.host[--n] = 0;
	for (size_t i = 0; i < n && u.host[i] != '%'; i++)
		u.host[i] = (char)tolower((unsigned char)u.host[i]);
	if (n == 0)
		return -EDESTADDRREQ;
	*ret_url = u;
	return 0;
}
