#pragma once
/*
 * net: parsers and classifiers of network addresses, prefixes, host names and URLs, shared
 * by cfg (validation) and guard (policy, enforcement). Pure functions over libc: nothing
 * here resolves a name, opens a socket or reads the configuration, so both modules can sit
 * above it (docs/architecture.md: a parser two modules need lives below both).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum net_addr_class {
	NET_ADDR_LOOPBACK,   /* 127/8, ::1, and 0.0.0.0, :: (they reach this host) */
	NET_ADDR_PRIVATE,    /* 10/8, 172.16/12, 192.168/16, fc00::/7 */
	NET_ADDR_LINK_LOCAL, /* 169.254/16, fe80::/10 */
	NET_ADDR_METADATA,   /* 169.254.169.254, fd00:ec2::254: only an explicit CIDR allows */
	NET_ADDR_PUBLIC,     /* everything else, CGNAT 100.64/10 included */
};

/* An address, normalised: IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::/96) become IPv4. */
struct net_addr {
	int family;       /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network order; IPv4 in the first 4 bytes, the rest zero */
};

/* A prefix with an optional port. */
struct net_prefix {
	int family;         /* AF_INET or AF_INET6 */
	uint8_t addr[16];   /* network byte order, host bits zero; IPv4 in the first 4 bytes */
	uint8_t prefix_len; /* 0-32 for AF_INET, 0-128 for AF_INET6 */
	uint16_t port;      /* 0 = any port, else the only port (host order) */
};

/* Parses an IP literal (no brackets; an IPv6 zone "%eth0" is accepted and ignored). */
int net_addr_parse(const char *s, struct net_addr *ret_addr);
/* Converts a struct sockaddr_in/_in6; *ret_port is host order. -EAFNOSUPPORT otherwise. */
int net_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct net_addr *ret_addr,
			   uint16_t *ret_port);
/* Mapped and NAT64 IPv6 addresses become IPv4, in place. */
void net_addr_normalize(struct net_addr *a);
/* Formats an address ("10.0.0.1", "fd00::1") into buf (at least 46 bytes). */
const char *net_addr_format(const struct net_addr *a, char *buf, size_t len);
enum net_addr_class net_addr_classify(const struct net_addr *a);
/* "loopback", "private", "link-local", "metadata", "public". */
const char *net_addr_class_name(enum net_addr_class c);
/* True when the first len bits of a (of the given family) equal those of addr. */
bool net_addr_in(const struct net_addr *a, int family, const uint8_t *addr, unsigned len);
/*
 * The prefixes that make up class c (metadata: one /32 or /128 per address; public: none).
 * Borrowed static storage; returns how many.
 */
size_t net_class_prefixes(enum net_addr_class c, const struct net_prefix **ret_prefixes);

/*
 * Parses an allow_cidrs entry: "a.b.c.d/n", "a.b.c.d/n:port", "x::/n" or "[x::/n]:port".
 * Host bits are cleared; an IPv4-mapped prefix of length >= 96 becomes IPv4. On -EINVAL,
 * *ret_why (if not NULL) points at a static reason ("missing \"/<length>\"", ...).
 */
int net_prefix_parse(const char *s, struct net_prefix *ret_prefix, const char **ret_why);
/* True when prefix p contains address a (same family). */
bool net_prefix_contains(const struct net_prefix *p, const struct net_addr *a);

/* Normalises a host: trim, lowercase, strip [] and one trailing dot. Returns -EINVAL if empty. */
int net_host_normalize(const char *host, char *buf, size_t len);

/*
 * True for a DNS name a certificate may carry as a subjectAltName: labels of 1..63 letters,
 * digits or hyphens that neither start nor end with a hyphen, the last label not all digits
 * (an address is no DNS name), at most 253 bytes, no trailing dot; a leftmost "*." is a
 * wildcard. False for NULL. (ca validates identities with it, cfg the server's own names.)
 */
bool net_dns_name_valid(const char *name);

/*
 * Splits "host:port" / "[v6]:port" / ":port". *ret_host is malloc'd ("" for the wildcard),
 * *ret_port 0..65535 (0: the kernel picks). Returns 0 or -EINVAL (-ENOMEM).
 */
int net_split_hostport(const char *s, char **ret_host, int *ret_port);

/*
 * Parts of an absolute URL, split without resolving anything. host is normalised (lowercase,
 * no brackets, no trailing dot); port is the explicit port or the scheme default (http 80,
 * https 443, nats/tls 4222, postgres 5432, else 0). has_userinfo reports "user[:pass]@".
 */
struct net_url {
	char scheme[16];
	char host[256];
	uint16_t port;
	bool has_userinfo;
};
/* Returns 0, -EINVAL (not an absolute URL) or -EDESTADDRREQ (no host). */
int net_url_parse(const char *url, struct net_url *ret_url);

/*
 * A connection gate: what a client of the server (the PostgreSQL pool, the NATS relay) asks
 * right before it connects to host:port, and on every reconnect. net only names the type:
 * guard implements it (guard_run_gate) and server/app.c hands it to db and bus, which sit
 * below guard. fn resolves host itself and judges every address; it returns
 *   1             not gated: connect by name as usual (the kernel guard, or none, rules),
 *                 whatever host is (so an empty host asks only "are you gating?");
 *   0             connect only to ret_addrs[0..*ret_n) (1 <= *ret_n <= max), the admitted
 *                 addresses in the resolver's order;
 *   -EPERM        refused by the egress policy (counted and reported by the gate);
 *   -EHOSTUNREACH the name did not resolve;
 * with a one-line reason in why (why_len bytes; no secret) on failure. Thread-safe.
 */
typedef int (*net_gate_fn)(void *arg, const char *host, uint16_t port, struct net_addr *ret_addrs,
			   size_t max, size_t *ret_n, char *why, size_t why_len);

struct net_gate {
	net_gate_fn fn; /* NULL: no gate (connect by name) */
	void *arg;      /* borrowed; outlives every client that holds the gate */
};
