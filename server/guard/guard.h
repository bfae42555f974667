#pragma once
/*
 * guard: the egress guard. policy.c decides which destinations may be reached (the one
 * place that decides); the kernel enforcer loads that decision into eBPF maps; the
 * guarded HTTP client checks every outbound URL the server opens itself.
 */
#include <stdbool.h>
#include <stdint.h>

/* One prefix of the allow (or specific deny) list, as loaded into the kernel maps. */
struct guard_prefix {
	int family;         /* AF_INET or AF_INET6 */
	uint8_t addr[16];   /* network byte order; IPv4 in the first 4 bytes */
	uint8_t prefix_len; /* 0-32 for AF_INET, 0-128 for AF_INET6 */
	uint16_t port;      /* 0 = any port, else the only allowed port (host order) */
	bool deny;          /* a specific deny that beats a broader allow (metadata address) */
};

/*
 * Egress policy (policy.c): the one place that decides which destinations may be reached.
 * Built from the cfg air_gap block; immutable after construction except the trip counter,
 * so it may be shared by threads. Host names are never resolved here.
 */
#include <stddef.h>
#include <sys/socket.h>

struct cfg;
struct cfg_air_gap;
struct guard_policy;

/* Room for any message guard_policy_check_url() writes. */
#define GUARD_ERR_MAX 320

enum guard_addr_class {
	GUARD_ADDR_LOOPBACK,   /* 127/8, ::1, and 0.0.0.0, :: (they reach this host) */
	GUARD_ADDR_PRIVATE,    /* 10/8, 172.16/12, 192.168/16, fc00::/7 */
	GUARD_ADDR_LINK_LOCAL, /* 169.254/16, fe80::/10 */
	GUARD_ADDR_METADATA,   /* 169.254.169.254, fd00:ec2::254: only an explicit CIDR allows */
	GUARD_ADDR_PUBLIC,     /* everything else, CGNAT 100.64/10 included */
};

/* An address, normalised: IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::/96) become IPv4. */
struct guard_addr {
	int family;       /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network order; IPv4 in the first 4 bytes, the rest zero */
};

/* Parses an IP literal (no brackets; an IPv6 zone "%eth0" is accepted and ignored). */
int guard_addr_parse(const char *s, struct guard_addr *ret_addr);
/* Converts a struct sockaddr_in/_in6; *ret_port is host order. -EAFNOSUPPORT otherwise. */
int guard_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct guard_addr *ret_addr,
			     uint16_t *ret_port);
/* Formats an address ("10.0.0.1", "fd00::1") into buf (at least 46 bytes). */
const char *guard_addr_format(const struct guard_addr *a, char *buf, size_t len);
enum guard_addr_class guard_addr_classify(const struct guard_addr *a);
const char *guard_addr_class_name(enum guard_addr_class c);

/*
 * Parses an allow_cidrs entry: "a.b.c.d/n", "a.b.c.d/n:port", "x::/n" or "[x::/n]:port".
 * Host bits are cleared; an IPv4-mapped prefix of length >= 96 becomes IPv4. On -EINVAL,
 * *ret_why (if not NULL) points at a static reason ("missing \"/<length>\"", ...).
 */
int guard_prefix_parse(const char *s, struct guard_prefix *ret_prefix, const char **ret_why);
/* True when prefix p contains address a (same family). */
bool guard_prefix_contains(const struct guard_prefix *p, const struct guard_addr *a);

/* Normalises a host: trim, lowercase, strip [] and one trailing dot. Returns -EINVAL if empty. */
int guard_host_normalize(const char *host, char *buf, size_t len);

/*
 * Parts of an absolute URL, split without resolving anything. host is normalised (lowercase,
 * no brackets, no trailing dot); port is the explicit port or the scheme default (http 80,
 * https 443, else 0). has_userinfo reports a "user[:pass]@" part.
 */
struct guard_url {
	char scheme[16];
	char host[256];
	uint16_t port;
	bool has_userinfo;
};
/* Returns 0, -EINVAL (not an absolute URL) or -EDESTADDRREQ (no host). */
int guard_url_parse(const char *url, struct guard_url *ret_url);

/* Builds the policy from the air_gap block of c (air_gap.enabled false: allows everything). */
int guard_policy_new(const struct cfg *c, struct guard_policy **ret_policy);
int guard_policy_new_air_gap(const struct cfg_air_gap *ag, struct guard_policy **ret_policy);
struct guard_policy *guard_policy_free(struct guard_policy *p);
bool guard_policy_enabled(const struct guard_policy *p);

/*
 * Decides an address: loopback always; otherwise the most specific prefix of
 * guard_policy_prefixes() decides (the kernel enforcer's longest-prefix match), so the two
 * layers agree by construction. port 0 matches only entries that allow any port.
 */
bool guard_policy_allows_addr(const struct guard_policy *p, const struct guard_addr *a,
			      uint16_t port);
/*
 * Decides a destination by name: an exact allow_hosts entry; an IP literal by
 * guard_policy_allows_addr(); "localhost" and "*.localhost". No DNS. Does not count trips.
 */
bool guard_policy_allows_host(const struct guard_policy *p, const char *host, uint16_t port);
/*
 * Checks an outbound URL before any DNS or connect. Returns 0, or -EPERM with the message
 * ("egress blocked: invalid URL", "... missing destination host", "... unsupported outbound
 * scheme \"ftp\"", "... <host> is not allowlisted") in err (GUARD_ERR_MAX bytes, may be NULL),
 * and counts one userspace trip (when enabled). A disabled policy blocks only invalid URLs.
 */
int guard_policy_check_url(struct guard_policy *p, const char *url, char *err, size_t errlen);
/* Counts one userspace trip (used by the HTTP client when a connect is refused). */
void guard_policy_count_trip(struct guard_policy *p);
uint64_t guard_policy_userspace_trips(const struct guard_policy *p);
void guard_policy_reset_trips(struct guard_policy *p);

/*
 * The address allow list the kernel enforcer loads, sorted by family then prefix length:
 * loopback always (127/8, ::1, 0.0.0.0/32, ::/128); 10/8, 172.16/12, 192.168/16,
 * 169.254/16, fc00::/7, fe80::/10 when allow_private; IP-literal allow_hosts; allow_cidrs
 * (identical prefixes merged, any port wins); and for each metadata address a /32 (/128)
 * deny entry, or an allow entry when an explicit CIDR contains it. A port-restricted entry
 * inside an any-port allow entry is dropped (the broader allow already covers it).
 * The caller frees *ret_prefixes. Returns 0 or -ENOMEM.
 */
int guard_policy_prefixes(const struct guard_policy *p, struct guard_prefix **ret_prefixes,
			  size_t *ret_n);
/* The allow_hosts names that are not IP literals (the enforcer resolves them). Borrowed. */
int guard_policy_hosts(const struct guard_policy *p, const char *const **ret_hosts,
		       size_t *ret_n);

/*
 * Guarded HTTP client (http.c, libcurl). Every hop (the first URL and each redirect) is
 * checked by guard_policy_check_url() before DNS; names are resolved once by the client,
 * the resolved addresses are checked, and curl is pinned to them (CURLOPT_RESOLVE) and
 * refused any other socket address. Only http and https. Proxies from the environment are
 * ignored. Every block counts a userspace trip.
 */
struct guard_http_request {
	const char *method;            /* "GET" (default when NULL) or "POST" ... */
	const char *url;
	const char *const *headers;    /* "Name: value" strings, NULL-terminated, may be NULL */
	const void *body;              /* request body, may be NULL */
	size_t body_len;
	long timeout_ms;               /* whole request including redirects; 0 = 30000 */
	int max_redirects;             /* 0 = do not follow, < 0 = default 5 */
	size_t max_response_bytes;     /* 0 = 1 MiB */
	const char *ca_file;           /* extra CA bundle for https, may be NULL */
};

struct guard_http_response {
	long status;      /* HTTP status of the last hop */
	char *body;       /* NUL-terminated, malloc'd */
	size_t body_len;
	char *final_url;  /* URL of the last hop, malloc'd */
};

/*
 * Performs the request. Returns 0 and fills *ret_resp (free with guard_http_response_free);
 * -EPERM when the egress policy blocked a hop (message in err); -EIO, -ETIMEDOUT, -EFBIG,
 * -ELOOP (too many redirects), -EHOSTUNREACH (no allowed address) with a message in err.
 */
int guard_http_do(struct guard_policy *p, const struct guard_http_request *req,
		  struct guard_http_response *ret_resp, char *err, size_t errlen);
void guard_http_response_free(struct guard_http_response *r);
