/*
 * The egress policy: the one place that decides which destinations the server may reach.
 * An address is decided by a longest-prefix match over one prefix list, the same list the
 * kernel enforcer loads into its LPM maps (guard_policy_prefixes), so the in-process check
 * and the kernel agree by construction. Names are decided without DNS: an exact allow_hosts
 * entry, an IP literal by its address, or "localhost"/"*.localhost". Loopback (and the
 * unspecified addresses, which reach this host) is always allowed: it never leaves the
 * machine, and NATS or PostgreSQL sidecars live there. IPv4-mapped and NAT64 addresses are
 * judged by their IPv4 address. Cloud metadata addresses are denied unless an explicit
 * CIDR or host entry names them. The policy is immutable after construction apart from the
 * atomic trip counter.
 */
#include "guard.h"
#include "cfg.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	struct guard_prefix p;
	bool metadata; /* generated for a metadata address: never dropped */
};

struct guard_policy {
	bool enabled;
	bool allow_private;
	char **names; /* normalised allow_hosts entries (all of them) */
	size_t n_names;
	const char **dns_names; /* the entries that are not IP literals (borrowed from names) */
	size_t n_dns_names;
	struct entry *entries; /* the prefix list, sorted by family, length, address */
	size_t n_entries;
	atomic_uint_fast64_t trips;
};

static const uint8_t nat64_prefix[12] = { 0x00, 0x64, 0xff, 0x9b };
static const uint8_t mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Normalises an IPv6 address in place: mapped and NAT64 forms become IPv4. */
static void addr_normalize(struct guard_addr *a)
{
	if (a->family != AF_INET6)
		return;
	if (memcmp(a->addr, mapped_prefix, 12) == 0 || memcmp(a->addr, nat64_prefix, 12) == 0) {
		memmove(a->addr, a->addr + 12, 4);
		memset(a->addr + 4, 0, 12);
		a->family = AF_INET;
	}
}

int guard_addr_parse(const char *s, struct guard_addr *ret_addr)
{
	struct guard_addr a = { 0 };
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
	addr_normalize(&a);
	*ret_addr = a;
	return 0;
}

int guard_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct guard_addr *ret_addr,
			     uint16_t *ret_port)
{
	struct guard_addr a = { 0 };
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
	addr_normalize(&a);
	*ret_addr = a;
	if (ret_port)
		*ret_port = port;
	return 0;
}

const char *guard_addr_format(const struct guard_addr *a, char *buf, size_t len)
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

struct range {
	int family;
	uint8_t addr[16];
	unsigned len;
};

static const struct range loopback_ranges[] = {
	{ AF_INET, { 127 }, 8 },
	{ AF_INET, { 0 }, 32 },
	{ AF_INET6, { [15] = 1 }, 128 },
	{ AF_INET6, { 0 }, 128 },
};

static const struct range private_ranges[] = {
	{ AF_INET, { 10 }, 8 },
	{ AF_INET, { 172, 16 }, 12 },
	{ AF_INET, { 192, 168 }, 16 },
	{ AF_INET6, { 0xfc }, 7 },
};

static const struct range link_local_ranges[] = {
	{ AF_INET, { 169, 254 }, 16 },
	{ AF_INET6, { 0xfe, 0x80 }, 10 },
};

static const struct range metadata_addrs[] = {
	{ AF_INET, { 169, 254, 169, 254 }, 32 },
	{ AF_INET6,
	  { 0xfd, 0x00, 0x0e, 0xc2, [14] = 0x02, [15] = 0x54 },
	  128 }, /* fd00:ec2::254 (AWS) */
};

#define N(x) (sizeof(x) / sizeof((x)[0]))

static bool in_ranges(const struct guard_addr *a, const struct range *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (r[i].family == a->family && bits_match(a->addr, r[i].addr, r[i].len))
			return true;
	return false;
}

enum guard_addr_class guard_addr_classify(const struct guard_addr *a)
{
	if (in_ranges(a, loopback_ranges, N(loopback_ranges)))
		return GUARD_ADDR_LOOPBACK;
	if (in_ranges(a, metadata_addrs, N(metadata_addrs)))
		return GUARD_ADDR_METADATA;
	if (in_ranges(a, private_ranges, N(private_ranges)))
		return GUARD_ADDR_PRIVATE;
	if (in_ranges(a, link_local_ranges, N(link_local_ranges)))
		return GUARD_ADDR_LINK_LOCAL;
	return GUARD_ADDR_PUBLIC;
}

const char *guard_addr_class_name(enum guard_addr_class c)
{
	static const char *const names[] = { "loopback", "private", "link-local", "metadata",
					     "public" };

	return (unsigned)c < N(names) ? names[c] : "?";
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

int guard_prefix_parse(const char *s, struct guard_prefix *ret_prefix, const char **ret_why)
{
	struct guard_prefix p = { 0 };
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

bool guard_prefix_contains(const struct guard_prefix *p, const struct guard_addr *a)
{
	return p->family == a->family && bits_match(a->addr, p->addr, p->prefix_len);
}

int guard_host_normalize(const char *host, char *buf, size_t len)
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

int guard_url_parse(const char *url, struct guard_url *ret_url)
{
	struct guard_url u = { 0 };
	const char *p = url, *auth, *auth_end, *at, *hs, *he, *ps = NULL;
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
		struct guard_addr a;

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
		if (guard_addr_parse(buf, &a) < 0 || !strchr(buf, ':'))
			return -EINVAL;
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
	if (n && u.host[n - 1] == '.')
		u.host[--n] = 0;
	for (size_t i = 0; i < n; i++)
		u.host[i] = (char)tolower((unsigned char)u.host[i]);
	if (n == 0)
		return -EDESTADDRREQ;
	*ret_url = u;
	return 0;
}

static int entry_cmp(const void *pa, const void *pb)
{
	const struct entry *a = pa, *b = pb;

	if (a->p.family != b->p.family)
		return a->p.family - b->p.family;
	if (a->p.prefix_len != b->p.prefix_len)
		return a->p.prefix_len - b->p.prefix_len;
	return memcmp(a->p.addr, b->p.addr, 16);
}

static int push(struct entry **v, size_t *n, const struct guard_prefix *p, bool metadata)
{
	struct entry *nv;

	/* identical prefixes merge: a deny stays a deny, else any port (0) wins */
	for (size_t i = 0; i < *n; i++) {
		struct guard_prefix *q = &(*v)[i].p;

		if (q->family == p->family && q->prefix_len == p->prefix_len &&
		    memcmp(q->addr, p->addr, 16) == 0) {
			if (q->deny != p->deny) {
				if (q->deny)
					*q = *p; /* an explicit allow replaces a generated deny */
			} else if (!p->port || !q->port) {
				q->port = 0;
			}
			(*v)[i].metadata |= metadata;
			return 0;
		}
	}
	nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n].p = *p;
	nv[*n].metadata = metadata;
	(*n)++;
	return 0;
}

static struct guard_prefix range_prefix(const struct range *r)
{
	struct guard_prefix p = { .family = r->family, .prefix_len = (uint8_t)r->len };

	memcpy(p.addr, r->addr, 16);
	return p;
}

/* The most specific entry of v[0..n) containing a, with length below max_len, or NULL. */
static const struct entry *lpm(const struct entry *v, size_t n, const struct guard_addr *a,
			       unsigned max_len)
{
	const struct entry *best = NULL;

	for (size_t i = 0; i < n; i++) {
		if (v[i].p.prefix_len >= max_len || !guard_prefix_contains(&v[i].p, a))
			continue;
		if (!best || v[i].p.prefix_len > best->p.prefix_len)
			best = &v[i];
	}
	return best;
}

static int build_entries(struct guard_policy *p, const struct cfg_air_gap *ag)
{
	struct entry *v = NULL, *explicit = NULL;
	size_t n = 0, n_explicit = 0, kept = 0;
	int r = 0;

	for (size_t i = 0; i < N(loopback_ranges) && r == 0; i++) {
		struct guard_prefix q = range_prefix(&loopback_ranges[i]);

		r = push(&v, &n, &q, false);
	}
	for (size_t i = 0; ag->allow_private && i < N(private_ranges) && r == 0; i++) {
		struct guard_prefix q = range_prefix(&private_ranges[i]);

		r = push(&v, &n, &q, false);
	}
	for (size_t i = 0; ag->allow_private && i < N(link_local_ranges) && r == 0; i++) {
		struct guard_prefix q = range_prefix(&link_local_ranges[i]);

		r = push(&v, &n, &q, false);
	}
	/* explicit entries: IP-literal hosts and CIDRs */
	for (size_t i = 0; i < p->n_names && r == 0; i++) {
		struct guard_addr a;
		struct guard_prefix q = { 0 };

		if (guard_addr_parse(p->names[i], &a) < 0)
			continue;
		q.family = a.family;
		memcpy(q.addr, a.addr, 16);
		q.prefix_len = a.family == AF_INET ? 32 : 128;
		r = push(&explicit, &n_explicit, &q, false);
	}
	for (size_t i = 0; i < ag->n_allow_cidrs && r == 0; i++) {
		struct guard_prefix q;

		if (guard_prefix_parse(ag->allow_cidrs[i], &q, NULL) < 0) {
			r = -EINVAL;
			break;
		}
		r = push(&explicit, &n_explicit, &q, false);
	}
	/* metadata: denied, unless an explicit entry names it (then on that entry's port) */
	for (size_t i = 0; i < N(metadata_addrs) && r == 0; i++) {
		struct guard_prefix q = range_prefix(&metadata_addrs[i]);
		struct guard_addr m = { .family = q.family };
		const struct entry *e;

		memcpy(m.addr, q.addr, 16);
		e = lpm(explicit, n_explicit, &m, 129);
		if (e)
			q.port = e->p.port;
		else
			q.deny = true;
		for (size_t j = 0; e && j < n_explicit; j++)
			if (!explicit[j].p.port && guard_prefix_contains(&explicit[j].p, &m))
				q.port = 0;
		r = push(&v, &n, &q, true);
	}
	for (size_t i = 0; i < n_explicit && r == 0; i++)
		r = push(&v, &n, &explicit[i].p, false);
	free(explicit);
	if (r < 0) {
		free(v);
		return r;
	}
	/* drop port-restricted allows that sit inside an any-port allow (already covered) */
	qsort(v, n, sizeof(*v), entry_cmp);
	for (size_t i = 0; i < n; i++) {
		const struct entry *outer;
		struct guard_addr a = { .family = v[i].p.family };

		memcpy(a.addr, v[i].p.addr, 16);
		outer = lpm(v, kept, &a, v[i].p.prefix_len);
		if (v[i].p.port && !v[i].p.deny && !v[i].metadata && outer && !outer->p.deny &&
		    !outer->p.port)
			continue;
		v[kept++] = v[i];
	}
	p->entries = v;
	p->n_entries = kept;
	return 0;
}

int guard_policy_new_air_gap(const struct cfg_air_gap *ag, struct guard_policy **ret_policy)
{
	struct guard_policy *p = calloc(1, sizeof(*p));
	int r = -ENOMEM;

	if (!p)
		return -ENOMEM;
	atomic_init(&p->trips, 0);
	p->enabled = ag->enabled;
	p->allow_private = ag->allow_private;
	p->names = calloc(ag->n_allow_hosts + 1, sizeof(*p->names));
	p->dns_names = calloc(ag->n_allow_hosts + 1, sizeof(*p->dns_names));
	if (!p->names || !p->dns_names)
		goto fail;
	for (size_t i = 0; i < ag->n_allow_hosts; i++) {
		char buf[256];
		struct guard_addr a;

		if (guard_host_normalize(ag->allow_hosts[i], buf, sizeof(buf)) < 0)
			continue; /* validation reports it; a bad entry allows nothing */
		p->names[p->n_names] = strdup(buf);
		if (!p->names[p->n_names])
			goto fail;
		if (guard_addr_parse(buf, &a) < 0)
			p->dns_names[p->n_dns_names++] = p->names[p->n_names];
		p->n_names++;
	}
	r = build_entries(p, ag);
	if (r < 0)
		goto fail;
	*ret_policy = p;
	return 0;
fail:
	guard_policy_free(p);
	return r;
}

int guard_policy_new(const struct cfg *c, struct guard_policy **ret_policy)
{
	return guard_policy_new_air_gap(&c->air_gap, ret_policy);
}

struct guard_policy *guard_policy_free(struct guard_policy *p)
{
	if (!p)
		return NULL;
	for (size_t i = 0; i < p->n_names; i++)
		free(p->names[i]);
	free(p->names);
	free(p->dns_names);
	free(p->entries);
	free(p);
	return NULL;
}

bool guard_policy_enabled(const struct guard_policy *p)
{
	return p && p->enabled;
}

bool guard_policy_allows_addr(const struct guard_policy *p, const struct guard_addr *a,
			      uint16_t port)
{
	struct guard_addr x = *a;
	const struct entry *e;

	if (!p->enabled)
		return true;
	addr_normalize(&x);
	if (guard_addr_classify(&x) == GUARD_ADDR_LOOPBACK)
		return true;
	e = lpm(p->entries, p->n_entries, &x, 129);
	if (!e || e->p.deny)
		return false;
	return e->p.port == 0 || e->p.port == port;
}

static bool is_localhost(const char *h)
{
	size_t n = strlen(h);

	return strcmp(h, "localhost") == 0 || (n > 10 && strcmp(h + n - 10, ".localhost") == 0);
}

bool guard_policy_allows_host(const struct guard_policy *p, const char *host, uint16_t port)
{
	char buf[256];
	struct guard_addr a;

	if (!p->enabled)
		return true;
	if (guard_host_normalize(host, buf, sizeof(buf)) < 0)
		return false;
	for (size_t i = 0; i < p->n_names; i++)
		if (strcmp(p->names[i], buf) == 0)
			return true;
	if (guard_addr_parse(buf, &a) == 0)
		return guard_policy_allows_addr(p, &a, port);
	return is_localhost(buf);
}

void guard_policy_count_trip(struct guard_policy *p)
{
	atomic_fetch_add(&p->trips, 1);
}

uint64_t guard_policy_userspace_trips(const struct guard_policy *p)
{
	return atomic_load(&((struct guard_policy *)p)->trips);
}

void guard_policy_reset_trips(struct guard_policy *p)
{
	atomic_store(&p->trips, 0);
}

static int blocked(struct guard_policy *p, bool count, char *err, size_t errlen, const char *fmt,
		   const char *arg)
{
	if (err && errlen) {
		/* fmt is one of the fixed formats below */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		snprintf(err, errlen, fmt, arg);
#pragma GCC diagnostic pop
	}
	if (count && p->enabled)
		guard_policy_count_trip(p);
	return -EPERM;
}

int guard_policy_check_url(struct guard_policy *p, const char *url, char *err, size_t errlen)
{
	struct guard_url u;
	int r = guard_url_parse(url, &u);

	if (r == -EINVAL)
		return blocked(p, true, err, errlen, "egress blocked: invalid URL%s", "");
	if (!p->enabled)
		return 0;
	if (r == -EDESTADDRREQ)
		return blocked(p, true, err, errlen, "egress blocked: missing destination host%s",
			       "");
	if (strcmp(u.scheme, "http") && strcmp(u.scheme, "https"))
		return blocked(p, true, err, errlen,
			       "egress blocked: unsupported outbound scheme \"%s\"", u.scheme);
	if (!guard_policy_allows_host(p, u.host, u.port))
		return blocked(p, true, err, errlen, "egress blocked: %s is not allowlisted",
			       u.host);
	return 0;
}

int guard_policy_prefixes(const struct guard_policy *p, struct guard_prefix **ret_prefixes,
			  size_t *ret_n)
{
	struct guard_prefix *out = calloc(p->n_entries ? p->n_entries : 1, sizeof(*out));

	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_entries; i++)
		out[i] = p->entries[i].p;
	*ret_prefixes = out;
	*ret_n = p->n_entries;
	return 0;
}

int guard_policy_hosts(const struct guard_policy *p, const char *const **ret_hosts, size_t *ret_n)
{
	*ret_hosts = p->dns_names;
	*ret_n = p->n_dns_names;
	return 0;
}
