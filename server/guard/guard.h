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

#include "net.h"

struct cfg;
struct cfg_air_gap;
struct guard_policy;

/* Room for any message guard_policy_check_url() writes. */
#define GUARD_ERR_MAX 320

/* net_prefix_parse() into a guard_prefix (deny false). */
int guard_prefix_parse(const char *s, struct guard_prefix *ret_prefix, const char **ret_why);
/* True when prefix p contains address a (same family). */
bool guard_prefix_contains(const struct guard_prefix *p, const struct net_addr *a);

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
bool guard_policy_allows_addr(const struct guard_policy *p, const struct net_addr *a,
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
/*
 * ---- In-process refusals (userspace trips) -----------------------------------------
 *
 * The server's own clients: each outbound connection they make is checked in the process
 * (guard_run_gate for PostgreSQL and NATS in userspace enforcement; the guarded HTTP client
 * always). Every refusal counts one userspace trip of its client and is told to the
 * policy's observer (the running guard logs, lists and audits it, rate-limited).
 */
enum guard_client {
	GUARD_CLIENT_POSTGRES,
	GUARD_CLIENT_NATS,
	GUARD_CLIENT_HTTP,
	GUARD_CLIENTS,
};

/* "postgres", "nats", "http" ("?" out of range). */
const char *guard_client_name(int client);

/* One in-process refusal. Strings are borrowed for the duration of the observer call. */
struct guard_refusal {
	enum guard_client client;
	const char *host;    /* the destination as the client named it; "" when unknown */
	const char *address; /* the refused address (numeric); "" when refused before DNS */
	uint16_t port;       /* 0 when unknown */
	const char *reason;  /* the one-line message, "egress blocked: ..." */
};

/* Called on the refusing thread; must return quickly and must not call back into p. */
typedef void (*guard_refusal_fn)(const struct guard_refusal *r, void *arg);

/* Counts one userspace trip of r->client and passes r to the observer (when set). */
void guard_policy_trip(struct guard_policy *p, const struct guard_refusal *r);
/* Counts one trip of the HTTP client without details (kept for older callers). */
void guard_policy_count_trip(struct guard_policy *p);
/* Sets the observer (fn NULL clears it). Call before the policy is shared with threads. */
void guard_policy_set_observer(struct guard_policy *p, guard_refusal_fn fn, void *arg);
/* All userspace trips, and those of one client (enum guard_client). */
uint64_t guard_policy_userspace_trips(const struct guard_policy *p);
uint64_t guard_policy_client_trips(const struct guard_policy *p, int client);
void guard_policy_reset_trips(struct guard_policy *p);

/*
 * May a connection to address a, which host resolved to, be made on port? An address the
 * policy allows by itself, yes (guard_policy_allows_addr). Otherwise only when host is an
 * allow_hosts name, and then never to a metadata address, nor to a private, link-local or
 * loopback answer unless allow_private (DNS rebinding; the kernel's allow_hosts resolver
 * drops the same answers). "localhost" names reach only what the policy allows by address.
 * An IP literal host is judged by its address alone.
 */
bool guard_policy_admits(const struct guard_policy *p, const char *host, const struct net_addr *a,
			 uint16_t port);
/*
 * Judges the answer addrs[0..n) of host for client: keeps the admitted addresses, in order,
 * in ret_kept (room for n) and sets *ret_n_kept. When an address is refused, counts one
 * trip (guard_policy_trip, the reason naming the first refused address and its class) and
 * writes the reason to why. Returns 0 (at least one kept), or -EPERM (none; a trip counted).
 * A disabled policy keeps everything.
 */
int guard_policy_admit_answer(struct guard_policy *p, enum guard_client client, const char *host,
			      uint16_t port, const struct net_addr *addrs, size_t n,
			      struct net_addr *ret_kept, size_t *ret_n_kept, char *why, size_t len);

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
	/*
	 * url is an outbound endpoint of the configuration (otlp.endpoint) that
	 * guard_config_check admitted at start-up: its host, when a name that is not
	 * allowlisted, passes the name check (on every hop to that same host) and is resolved;
	 * only the addresses the policy allows are used (docs/airgap.md "Private names"). An IP
	 * literal and any other host are judged as usual.
	 */
	bool configured_endpoint;
};

struct guard_http_response {
	long status;      /* HTTP status of the last hop */
	char *body;       /* NUL-terminated, malloc'd */
	size_t body_len;
	char *final_url;  /* URL of the last hop, malloc'd */
	long retry_after_s; /* the last hop's Retry-After in seconds (either form), 0 = none */
};

/* Initialises libcurl (curl_global_init) once, before any thread. Returns 0 or -EIO. */
int guard_http_init(void);
/* Releases what guard_http_init took, after the last request. */
void guard_http_fini(void);

/*
 * Performs the request. Returns 0 and fills *ret_resp (free with guard_http_response_free);
 * -EPERM when the egress policy blocked a hop (message in err); -EIO, -ETIMEDOUT, -EFBIG,
 * -ELOOP (too many redirects), -EHOSTUNREACH (no allowed address) with a message in err.
 */
int guard_http_do(struct guard_policy *p, const struct guard_http_request *req,
		  struct guard_http_response *ret_resp, char *err, size_t errlen);
void guard_http_response_free(struct guard_http_response *r);

/*
 * ---- The guard of the running server (guard-run.c, guard-caps.c) --------------------
 *
 * guard_run_start() puts the air_gap block of the configuration into force, per
 * air_gap.enforcer: "ebpf" loads the kernel guard (enforcer.h) and fails when it cannot
 * load, attach, be confirmed or pass the tripwire; "pinned" loads nothing and uses the
 * guard `trstctl guard attach` pinned at air_gap.bpf_pin_path (counters and rule maps
 * through the pins, no capability; start fails without the pins or when the tripwire is
 * not refused; not ready while a pin is missing; no watchdog thread; every capability
 * dropped); "auto" does what ebpf does but, when the kernel refuses BPF here (-EPERM, -EOPNOTSUPP), falls back to the in-process policy with
 * a loud warning; "userspace" runs the in-process policy only. air_gap.enabled false: the
 * enforcer is "off" and nothing is loaded. With the kernel guard it then drops every
 * capability but CAP_NET_ADMIN (the watchdog's BPF_PROG_QUERY) and, on request,
 * CAP_NET_BIND_SERVICE, in every thread; starts a resolver thread for allow_hosts names
 * (refreshed every GUARD_RUN_REFRESH_S, answers kept GUARD_RUN_GRACE_S after they were last
 * seen, a failed lookup keeps the last good set) and a watchdog thread that asks the
 * kernel every GUARD_RUN_WATCHDOG_MS whether the programs are still attached and ends the
 * process (exit status 1, pins left armed) when they are not. Denials read from the
 * kernel are logged (one JSON line each) and kept in a bounded recent-denials list.
 */
#include <time.h>

#define GUARD_RUN_REFRESH_S 60      /* allow_hosts re-resolved this often */
#define GUARD_RUN_GRACE_S 600       /* a resolved address stays allowed this long unseen */
#define GUARD_RUN_LOOKUP_MS 3000    /* one round of lookups waits at most this long */
#define GUARD_RUN_WATCHDOG_MS 2000  /* kernel confirmation period */
#define GUARD_RUN_DENIALS 256       /* recent denials kept */
#define GUARD_RUN_HOOKS 5           /* connect4, connect6, sendmsg4, sendmsg6, sock_create */
#define GUARD_RUN_REPORT_S 60       /* userspace refusals: one listed per key this often */
#define GUARD_RUN_REPORT_BURST 20   /* ... and at most this many listed in all per period */
#define GUARD_RUN_REPORT_KEYS 32    /* keys (client, host, address, port) remembered */

enum guard_run_mode {
	GUARD_RUN_OFF,       /* air_gap.enabled false */
	GUARD_RUN_USERSPACE, /* in-process checks only (chosen, or the auto fallback) */
	GUARD_RUN_EBPF,      /* kernel guard loaded, attached, confirmed */
};

/*
 * One denial of real traffic (tripwire hits are counted, not listed): a kernel denial, or
 * an in-process refusal of one of the server's own clients (hook "userspace"), of which at
 * most one per client, host, address and port is listed per GUARD_RUN_REPORT_S and at most
 * GUARD_RUN_REPORT_BURST in all per GUARD_RUN_REPORT_S; the others are only counted.
 */
struct guard_run_denial {
	uint64_t seq;          /* 1, 2, 3 ... in arrival order; the ListDenials page token */
	struct timespec time;  /* CLOCK_REALTIME */
	uint32_t pid;
	uint32_t uid;
	char comm[16];         /* "" when the kernel could not record it (no CAP_PERFMON) */
	char address[46];      /* numeric; IPv4-mapped and NAT64 destinations as IPv4; "" when
				* a userspace refusal came before DNS */
	uint16_t port;         /* 0 for a refused socket */
	const char *protocol;  /* "tcp", "udp", "icmp", "raw" or "other" (static) */
	const char *hook;      /* "connect4" ... "sock_create", or "userspace" (static) */
	const char *client;    /* userspace: "postgres", "nats", "http" (static); else NULL */
	char host[256];        /* userspace: the destination as the client named it; else "" */
	char reason[GUARD_ERR_MAX]; /* userspace: the refusal's message; else "" */
	uint64_t suppressed;   /* userspace: refusals of the same key since the last listed one
				* that were counted but not listed (rate limit) */
};

struct guard_run_status {
	bool enabled;             /* air_gap.enabled */
	enum guard_run_mode mode;
	bool armed;               /* kernel guard confirmed and its last tripwire refused */
	uint64_t trips;           /* kernel denials, tripwire hits excluded */
	uint64_t trips_by_hook[GUARD_RUN_HOOKS]; /* order of guard_run_hook_name() */
	uint64_t tripwire_hits;
	uint64_t userspace_trips; /* in-process refusals (guard_policy_check_url ...) */
	uint64_t userspace_trips_by_client[GUARD_CLIENTS]; /* the same by enum guard_client */
	const char *coverage;     /* "kernel", "own_clients" or "none" (static) */
	const char *coverage_detail; /* one sentence saying what is checked (static) */
	uint64_t events_dropped;  /* denials the ring buffer had no room for */
	const char *pin_path;     /* bpffs folder of the pins; NULL when unpinned */
	const char *cgroup_path;  /* guarded cgroup; NULL without the kernel guard */
	size_t resolved;          /* addresses allowed for allow_hosts names right now */
};

struct guard_run;

/* Called on the enforcer's reader thread for each denial (after it was logged and listed);
 * must return quickly and must not call guard_run_* functions other than the getters. */
typedef void (*guard_denial_hook_fn)(const struct guard_run_denial *d, void *arg);

/*
 * Starts the guard from c->air_gap (c is borrowed and must outlive the guard). Call it
 * before any thread or socket of the server exists: the kernel guard may move the whole
 * process into a child cgroup, and the capability drop must reach every thread.
 * keep_net_bind: keep CAP_NET_BIND_SERVICE (a listener port below 1024 follows).
 * Returns 0 and *ret_g, or -errno with a one-line reason in err (errlen bytes); the caller
 * logs it and exits. On failure a guard pinned by an earlier run stays armed.
 */
int guard_run_start(const struct cfg *c, bool keep_net_bind, struct guard_run **ret_g,
		    char *err, size_t errlen);
/*
 * `trstctl guard attach` (the pod's init container): with air-gap on, loads the kernel
 * guard with the rules serve would load (endpoint and allow_hosts names resolved now),
 * attaches it to the cgroup directory cgroup_path, pins links and maps under
 * air_gap.bpf_pin_path (which must be on a bpffs), gives `trips` and the rule map pins to
 * owner:group (mode 0600; link pins stay root's), runs the tripwire from a child that
 * joins the cgroup when that is possible (else the pinned server proves it), and returns
 * with everything left attached and pinned. Returns 0, or -errno with a reason in err.
 */
int guard_run_attach(const struct cfg *c, const char *cgroup_path, unsigned int owner,
		     unsigned int group, char *err, size_t errlen);

/* `trstctl guard attach ...` (argv[0] "guard", argv[1] "attach"): exit status 0, 1 or 2. */
int guard_attach_cli(int argc, char **argv, const struct cfg *c);

/*
 * Orderly shutdown: stops the threads, detaches and unpins, and removes the child cgroup
 * that start created for the process (guard_enforcer_stop). Accepts NULL; returns NULL.
 */
struct guard_run *guard_run_stop(struct guard_run *g);

/* The policy in force (borrowed; lives as long as g): for the guarded HTTP client. */
struct guard_policy *guard_run_policy(struct guard_run *g);
/* The air_gap block the guard was started from (borrowed from the cfg). */
const struct cfg_air_gap *guard_run_air_gap(struct guard_run *g);
const char *guard_run_mode_name(enum guard_run_mode m); /* "off", "userspace", "ebpf" */
const char *guard_run_hook_name(int i);                 /* 0..GUARD_RUN_HOOKS-1 */
/* Current status; strings borrowed from g. Returns 0 or -errno (counters unreadable). */
int guard_run_status(struct guard_run *g, struct guard_run_status *ret_status);
/* True unless the kernel guard is required and not armed (for /readyz). */
bool guard_run_ready(struct guard_run *g);
/*
 * Copies up to max listed denials with seq < before (0 = from the newest), newest first.
 * Returns how many were copied.
 */
size_t guard_run_denials(struct guard_run *g, uint64_t before, struct guard_run_denial *out,
			 size_t max);
/*
 * Runs the tripwire now. Returns 0 when the kernel refused it (armed), -EOPNOTSUPP without
 * a kernel guard, -EPROTO when it was not refused, or -errno; a line for people in detail.
 */
int guard_run_tripwire(struct guard_run *g, char *detail, size_t len);
/*
 * Asks the resolver to look up the endpoint and allow_hosts names again now (say, before a
 * reconnect), instead of at the next GUARD_RUN_REFRESH_S. Does not wait. Accepts NULL.
 */
void guard_run_refresh(struct guard_run *g);
/*
 * Sets (or with fn NULL clears) the denial hook; see guard_denial_hook_fn. The hook also
 * receives the listed userspace refusals, on the refusing client's thread.
 */
void guard_set_denial_hook(struct guard_run *g, guard_denial_hook_fn fn, void *arg);

/*
 * The connection gate of one of the server's own clients (GUARD_CLIENT_POSTGRES or
 * GUARD_CLIENT_NATS), for db and bus (net.h struct net_gate; borrowed from g, valid until
 * guard_run_stop). In userspace enforcement (chosen, or the auto fallback) the gate resolves
 * the name itself (getaddrinfo), judges every address with guard_policy_admit_answer() and
 * returns only the admitted ones, to which the client then connects by address; a refusal
 * is counted for the client, logged, listed and passed to the denial hook (rate-limited as
 * guard_run_denial says). With the kernel guard, or with air-gap off, it answers 1 (not
 * gated): the kernel, or nothing, judges the client's own connects. Returns 0 or -EINVAL.
 */
int guard_run_gate(struct guard_run *g, enum guard_client client, struct net_gate *ret_gate);
/*
 * In userspace enforcement, a sentence for people (/readyz) saying that only the server's
 * own clients are checked; NULL in every other mode. Static.
 */
const char *guard_run_note(struct guard_run *g);

/*
 * Drops every capability of every thread of the process (effective, permitted,
 * inheritable, ambient, and the bounding set where CAP_SETPCAP allows) except the ones in
 * keep (a mask of 1ULL << CAP_*), then checks /proc/self/task/<tid>/status of each thread.
 * Other threads are reached with a real-time signal (SIGRTMIN + 4) whose handler runs the
 * same syscalls; they must not block it. Returns 0, or -errno when a thread kept more.
 */
int guard_caps_drop(uint64_t keep);

/*
 * ---- Endpoint names (guard-names.c) -----------------------------------------------
 *
 * With air-gap on, an outbound endpoint of the configuration (postgres.dsn hosts, nats.url
 * hosts, otlp.endpoint, ai.model.endpoint) that is a name, not an IP literal, localhost or
 * an allow_hosts entry, is resolved and allowed only when every address it resolves to is
 * allowed by the policy on the endpoint's port. The running guard loads exactly those
 * addresses into the kernel allow map and re-resolves them (guard_run_refresh).
 */
#include <stdio.h>

struct guard_names;

/*
 * A cfg_check_fn (pass it to cfg_load_checked): checks every outbound endpoint of c against
 * the egress policy, resolving names (at most GUARD_RUN_LOOKUP_MS). arg: NULL, or a
 * struct guard_names ** that receives the names and what they resolved to (on success;
 * free with guard_names_free); only then are allow_hosts endpoint names looked up too
 * (for --check-config: they are allowed whatever they resolve to). Returns 0, -EINVAL with *ret_errors ("postgres.dsn host
 * \"pg.internal\" resolves to 8.8.8.8, a public address, not allowed in air-gap mode"),
 * or -ENOMEM.
 */
int guard_config_check(const struct cfg *c, void *arg, char **ret_errors);
/* One "resolved: <key> <host> -> <addr>, <addr>" line per name (for --check-config). */
int guard_names_print(const struct guard_names *names, FILE *f);
struct guard_names *guard_names_free(struct guard_names *names);

/* ---- Exposure (guard_rpc.c, guard-metrics.c; built with the rpc and http modules) ---- */
struct rpc_server;
struct http_server;

/* Registers trstctl.v1.Guard (GetStatus, ListDenials, RunTripwire) on s for g (borrowed). */
int guard_rpc_register(struct rpc_server *s, struct guard_run *g);
/* Adds the trstctl_egress_guard_* metrics and the "guard" readiness check to h. */
int guard_metrics_register(struct http_server *h, struct guard_run *g);
