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
#include "net.h"

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
	atomic_uint_fast64_t trips[GUARD_CLIENTS]; /* userspace trips by client */
	guard_refusal_fn observer;		   /* set before sharing, else read only */
	void *observer_arg;
};

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

static struct guard_prefix range_prefix(const struct net_prefix *r)
{
	struct guard_prefix p = { .family = r->family, .prefix_len = r->prefix_len, .port = r->port };

	memcpy(p.addr, r->addr, 16);
	return p;
}

/* Pushes every prefix of class c. */
static int push_class(struct entry **v, size_t *n, enum net_addr_class c)
{
	const struct net_prefix *r;
	size_t k = net_class_prefixes(c, &r);
	int ret = 0;

	for (size_t i = 0; i < k && ret == 0; i++) {
		struct guard_prefix q = range_prefix(&r[i]);

		ret = push(v, n, &q, false);
	}
	return ret;
}

int guard_prefix_parse(const char *s, struct guard_prefix *ret_prefix, const char **ret_why)
{
	struct net_prefix p;
	int r = net_prefix_parse(s, &p, ret_why);

	if (r < 0)
		return r;
	*ret_prefix = range_prefix(&p);
	return 0;
}

bool guard_prefix_contains(const struct guard_prefix *p, const struct net_addr *a)
{
	return net_addr_in(a, p->family, p->addr, p->prefix_len);
}

/* The most specific entry of v[0..n) containing a, with length below max_len, or NULL. */
static const struct entry *lpm(const struct entry *v, size_t n, const struct net_addr *a,
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

	r = push_class(&v, &n, NET_ADDR_LOOPBACK);
	if (r == 0 && ag->allow_private)
		r = push_class(&v, &n, NET_ADDR_PRIVATE);
	if (r == 0 && ag->allow_private)
		r = push_class(&v, &n, NET_ADDR_LINK_LOCAL);
	/* explicit entries: IP-literal hosts and CIDRs */
	for (size_t i = 0; i < p->n_names && r == 0; i++) {
		struct net_addr a;
		struct guard_prefix q = { 0 };

		if (net_addr_parse(p->names[i], &a) < 0)
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
	const struct net_prefix *md;
	size_t n_md = net_class_prefixes(NET_ADDR_METADATA, &md);

	for (size_t i = 0; i < n_md && r == 0; i++) {
		struct guard_prefix q = range_prefix(&md[i]);
		struct net_addr m = { .family = q.family };
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
		struct net_addr a = { .family = v[i].p.family };

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
	for (int i = 0; i < GUARD_CLIENTS; i++)
		atomic_init(&p->trips[i], 0);
	p->enabled = ag->enabled;
	p->allow_private = ag->allow_private;
	p->names = calloc(ag->n_allow_hosts + 1, sizeof(*p->names));
	p->dns_names = calloc(ag->n_allow_hosts + 1, sizeof(*p->dns_names));
	if (!p->names || !p->dns_names)
		goto fail;
	for (size_t i = 0; i < ag->n_allow_hosts; i++) {
		char buf[256];
		struct net_addr a;

		if (net_host_normalize(ag->allow_hosts[i], buf, sizeof(buf)) < 0)
			continue; /* validation reports it; a bad entry allows nothing */
		p->names[p->n_names] = strdup(buf);
		if (!p->names[p->n_names])
			goto fail;
		if (net_addr_parse(buf, &a) < 0)
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

bool guard_policy_allows_addr(const struct guard_policy *p, const struct net_addr *a,
			      uint16_t port)
{
	struct net_addr x = *a;
	const struct entry *e;

	if (!p->enabled)
		return true;
	net_addr_normalize(&x);
	if (net_addr_classify(&x) == NET_ADDR_LOOPBACK)
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
	struct net_addr a;

	if (!p->enabled)
		return true;
	if (net_host_normalize(host, buf, sizeof(buf)) < 0)
		return false;
	for (size_t i = 0; i < p->n_names; i++)
		if (strcmp(p->names[i], buf) == 0)
			return true;
	if (net_addr_parse(buf, &a) == 0)
		return guard_policy_allows_addr(p, &a, port);
	return is_localhost(buf);
}

const char *guard_client_name(int client)
{
	static const char *const names[GUARD_CLIENTS] = { "postgres", "nats", "http" };

	return client >= 0 && client < GUARD_CLIENTS ? names[client] : "?";
}

void guard_policy_trip(struct guard_policy *p, const struct guard_refusal *r)
{
	int c = r->client >= 0 && r->client < GUARD_CLIENTS ? (int)r->client : GUARD_CLIENT_HTTP;

	atomic_fetch_add(&p->trips[c], 1);
	if (p->observer)
		p->observer(r, p->observer_arg);
}

void guard_policy_count_trip(struct guard_policy *p)
{
	const struct guard_refusal r = {
		.client = GUARD_CLIENT_HTTP, .host = "", .address = "", .reason = "egress blocked"
	};

	guard_policy_trip(p, &r);
}

void guard_policy_set_observer(struct guard_policy *p, guard_refusal_fn fn, void *arg)
{
	p->observer = fn;
	p->observer_arg = fn ? arg : NULL;
}

uint64_t guard_policy_client_trips(const struct guard_policy *p, int client)
{
	if (client < 0 || client >= GUARD_CLIENTS)
		return 0;
	return atomic_load(&((struct guard_policy *)p)->trips[client]);
}

uint64_t guard_policy_userspace_trips(const struct guard_policy *p)
{
	uint64_t n = 0;

	for (int i = 0; i < GUARD_CLIENTS; i++)
		n += guard_policy_client_trips(p, i);
	return n;
}

void guard_policy_reset_trips(struct guard_policy *p)
{
	for (int i = 0; i < GUARD_CLIENTS; i++)
		atomic_store(&p->trips[i], 0);
}

bool guard_policy_admits(const struct guard_policy *p, const char *host, const struct net_addr *a,
			 uint16_t port)
{
	struct net_addr x = *a, lit;
	enum net_addr_class c;
	char buf[256];

	if (!p->enabled || guard_policy_allows_addr(p, &x, port))
		return true;
	net_addr_normalize(&x);
	c = net_addr_classify(&x);
	if (c == NET_ADDR_METADATA || net_host_normalize(host, buf, sizeof(buf)) < 0 ||
	    net_addr_parse(buf, &lit) == 0 || is_localhost(buf))
		return false;
	/* an allow_hosts name: its public answers, and private ones only with allow_private */
	if (c != NET_ADDR_PUBLIC && !p->allow_private)
		return false;
	for (size_t i = 0; i < p->n_dns_names; i++)
		if (strcmp(p->dns_names[i], buf) == 0)
			return true;
	return false;
}

int guard_policy_admit_answer(struct guard_policy *p, enum guard_client client, const char *host,
			      uint16_t port, const struct net_addr *addrs, size_t n,
			      struct net_addr *ret_kept, size_t *ret_n_kept, char *why, size_t len)
{
	const struct net_addr *refused = NULL;
	size_t kept = 0;
	char abuf[64], reason[GUARD_ERR_MAX];

	for (size_t i = 0; i < n; i++) {
		if (guard_policy_admits(p, host, &addrs[i], port))
			ret_kept[kept++] = addrs[i];
		else if (!refused)
			refused = &addrs[i];
	}
	*ret_n_kept = kept;
	if (!refused)
		return 0;
	{
		struct net_addr x = *refused, lit;

		net_addr_normalize(&x);
		net_addr_format(&x, abuf, sizeof(abuf));
		if (net_addr_parse(host, &lit) == 0)
			snprintf(reason, sizeof(reason),
				 "egress blocked: %s address %s is a %s address the egress policy "
				 "does not allow on port %u",
				 guard_client_name(client), abuf,
				 net_addr_class_name(net_addr_classify(&x)), (unsigned)port);
		else
			snprintf(reason, sizeof(reason),
				 "egress blocked: %s host \"%s\" resolves to %s, a %s address the "
				 "egress policy does not allow on port %u%s",
				 guard_client_name(client), host, abuf,
				 net_addr_class_name(net_addr_classify(&x)), (unsigned)port,
				 kept ? " (connecting to its other addresses only)" : "");
	}
	if (why && len)
		snprintf(why, len, "%s", reason);
	guard_policy_trip(p, &(struct guard_refusal){ .client = client,
						      .host = host,
						      .address = abuf,
						      .port = port,
						      .reason = reason });
	return kept ? 0 : -EPERM;
}

/* Writes the message (fmt with arg) to err and counts an HTTP trip for host. -EPERM. */
static int blocked(struct guard_policy *p, const char *host, char *err, size_t errlen,
		   const char *fmt, const char *arg)
{
	char reason[GUARD_ERR_MAX];

	/* fmt is one of the fixed formats below */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	snprintf(reason, sizeof(reason), fmt, arg);
#pragma GCC diagnostic pop
	if (err && errlen)
		snprintf(err, errlen, "%s", reason);
	if (p->enabled)
		guard_policy_trip(p, &(struct guard_refusal){ .client = GUARD_CLIENT_HTTP,
							      .host = host,
							      .address = "",
							      .reason = reason });
	return -EPERM;
}

int guard_policy_check_url(struct guard_policy *p, const char *url, char *err, size_t errlen)
{
	struct net_url u;
	int r = net_url_parse(url, &u);

	if (r == -EINVAL)
		return blocked(p, "", err, errlen, "egress blocked: invalid URL%s", "");
	if (!p->enabled)
		return 0;
	if (r == -EDESTADDRREQ)
		return blocked(p, "", err, errlen, "egress blocked: missing destination host%s",
			       "");
	if (strcmp(u.scheme, "http") && strcmp(u.scheme, "https"))
		return blocked(p, u.host, err, errlen,
			       "egress blocked: unsupported outbound scheme \"%s\"", u.scheme);
	if (!guard_policy_allows_host(p, u.host, u.port))
		return blocked(p, u.host, err, errlen, "egress blocked: %s is not allowlisted",
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
