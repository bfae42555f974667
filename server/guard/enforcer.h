#pragma once
/*
 * guard enforcer: loads the eBPF egress guard (ebpf/guard.bpf.c), fills its rule maps from
 * the egress policy's prefix list, attaches it to a cgroup with bpf_links, pins links and
 * counters, and reads denials from its ring buffer. libbpf types never leave enforcer.c.
 * Built only when meson found clang and bpftool (have_bpf); otherwise every call returns
 * -EOPNOTSUPP (enforcer-none.c).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "guard.h"

#define GUARD_ENFORCER_PIN_DEFAULT "/sys/fs/bpf/trstctl"
#define GUARD_ENFORCER_CGROUP_DEFAULT "trstctl"
#define GUARD_ENFORCER_TRIPWIRE_DEFAULT "203.0.113.1"
#define GUARD_ENFORCER_TRIPWIRE_PORT_DEFAULT 443
#define GUARD_ENFORCER_DENIALS_DEFAULT 256

/* One denial read from the kernel ring buffer. */
struct guard_denial {
	struct timespec time; /* CLOCK_REALTIME of the denial */
	uint64_t cgroup_id;   /* cgroup of the denied task */
	uint32_t pid;         /* process (thread group) id */
	uint32_t tid;         /* thread id */
	uint32_t uid;
	char comm[16];        /* task name; "" when loaded without CAP_PERFMON */
	int family;           /* AF_INET or AF_INET6 as judged; 0 for a refused socket */
	uint8_t addr[16];     /* network order; IPv4 (also v4-mapped and NAT64) in addr[0..3] */
	uint16_t port;        /* host order; 0 for a refused socket */
	uint8_t protocol;     /* IPPROTO_* of the socket */
	uint8_t type;         /* SOCK_* of the socket */
	const char *hook;     /* "connect4", "connect6", "sendmsg4", "sendmsg6", "sock_create" */
	bool tripwire;        /* the configured tripwire destination (not a trip) */
	bool v4mapped;        /* was ::ffff:a.b.c.d on an IPv6 socket */
	bool nat64;           /* was 64:ff9b::a.b.c.d */
};

/* Called on the enforcer's reader thread; must not call back into the enforcer. */
typedef void (*guard_denial_fn)(const struct guard_denial *d, void *arg);

struct guard_enforcer_config {
	const char *pin_path;      /* bpffs folder for links and `trips`; NULL = default,
				    * "" = do not pin (links die with the process) */
	const char *cgroup_path;   /* cgroup directory to guard (must not be the host root);
				    * NULL = the process's own cgroup, see guard_enforcer_start */
	const char *cgroup_name;   /* child created when the process sits in the host root;
				    * NULL = GUARD_ENFORCER_CGROUP_DEFAULT; a single name */
	const char *tripwire_addr; /* numeric IPv4 or IPv6; NULL = GUARD_ENFORCER_TRIPWIRE_DEFAULT */
	uint16_t tripwire_port;    /* 0 = GUARD_ENFORCER_TRIPWIRE_PORT_DEFAULT */
	bool allow_raw;            /* false (default): refuse raw and ICMP ping sockets */
	size_t denial_capacity;    /* recent denials kept in memory; 0 = the default */
	guard_denial_fn on_denial; /* optional, see guard_denial_fn */
	void *on_denial_arg;
	char *err;                 /* optional: receives a one-line reason when start fails */
	size_t err_size;
};

/* Counters of the pinned `trips` map (layout documented in ebpf/guard.h). */
struct guard_counters {
	uint64_t total;       /* all trips; never includes tripwire hits */
	uint64_t connect4;
	uint64_t connect6;
	uint64_t sendmsg4;
	uint64_t sendmsg6;
	uint64_t sock_create;
	uint64_t v4mapped;    /* part of connect6 + sendmsg6 */
	uint64_t nat64;       /* part of connect6 + sendmsg6 */
	uint64_t tripwire;
	uint64_t events_dropped;
};

/* What start did; strings stay valid until guard_enforcer_stop. */
struct guard_enforcer_info {
	const char *cgroup_path; /* absolute path of the guarded cgroup */
	uint64_t cgroup_id;
	bool moved;              /* the process moved itself into a new child cgroup */
	const char *pin_path;    /* NULL when nothing is pinned (no bpffs, or pinning off) */
	int took_over;           /* pinned links adopted with an atomic program update */
	bool comm;               /* denials carry comm (CAP_PERFMON) */
};

struct guard_enforcer;

/*
 * Load the programs, fill the rule maps from prefixes[0..n) (borrowed), attach to the
 * cgroup and confirm the attachment with the kernel. With cfg->cgroup_path NULL the
 * process's own cgroup (/proc/self/cgroup, cgroup2 mount from /proc/self/mountinfo) is
 * guarded; when that is the host root, a child cgroup cfg->cgroup_name is created and the
 * whole process moves into it first: call this before any socket exists. Pinned links of
 * a previous run on the same cgroup are taken over without a gap. Returns 0, -EPERM
 * (missing CAP_BPF+CAP_NET_ADMIN or CAP_SYS_ADMIN), -EOPNOTSUPP (no cgroup2 or no BPF
 * support), -EINVAL (bad prefix or config, host root cgroup) or another -errno. A failed
 * start unpins nothing: a guard pinned by a previous run stays armed (fail closed).
 */
int guard_enforcer_start(const struct guard_enforcer_config *cfg, const struct guard_prefix *prefixes,
			 size_t n, struct guard_enforcer **ret_e);

/*
 * Replace the whole rule set with prefixes[0..n): the inactive of two rule sets is brought
 * up to date, then one map update makes it the active one for both families, so a lookup
 * sees either the old or the new set. Not thread-safe against itself (one refresher).
 * Returns 0, -EINVAL for a bad prefix, -E2BIG for more than GUARD_RULE_PORTS ports on
 * one prefix.
 */
int guard_enforcer_update(struct guard_enforcer *e, const struct guard_prefix *prefixes, size_t n);

/* Read the kernel counters. */
int guard_enforcer_counters(struct guard_enforcer *e, struct guard_counters *ret_counters);

/*
 * UDP connect() to the tripwire address from inside the guarded cgroup (a forked child
 * when the caller is not in it). Returns 0 when it failed with EPERM and the tripwire
 * counter moved, -EPROTO when the connect was not refused (guard not armed), or -errno.
 */
int guard_enforcer_tripwire(struct guard_enforcer *e);

/* Ask the kernel that all five programs are still effective on the cgroup: 0 or -ENOLINK. */
int guard_enforcer_confirm(struct guard_enforcer *e);

/* Read pending ring-buffer records now (the reader thread does it every 100 ms). */
int guard_enforcer_flush(struct guard_enforcer *e);

/* Copy up to max recent denials, newest first; returns how many were copied. */
size_t guard_enforcer_denials(struct guard_enforcer *e, struct guard_denial *out, size_t max);

int guard_enforcer_info(struct guard_enforcer *e, struct guard_enforcer_info *ret_info);

/*
 * Orderly shutdown: unpin and detach the links, unpin the counters, remove the pin folder
 * when empty. When start created the child cgroup it moved into (host root case), the
 * process moves back to the parent and removes it, unless another process is in it. A
 * process that dies without calling this leaves the pinned guard armed.
 * Accepts NULL; returns NULL.
 */
struct guard_enforcer *guard_enforcer_stop(struct guard_enforcer *e);

/*
 * ---- The pod layout (trstctl guard attach, TRSTCTL_AIRGAP_ENFORCER=pinned) ----------
 *
 * guard_enforcer_handover() pins the rule maps next to `trips` (rules4_a, rules4_b,
 * rules6_a, rules6_b, rules_active; a pin of an earlier attach is replaced), gives `trips`
 * and those pins to owner:group with mode 0600, and makes the pin folder 0755 (root's):
 * the owner may read the counters and update the rules but cannot remove a link pin,
 * which stays root's with mode 0600 (removing the last reference would detach). Requires
 * a pinned enforcer: -EINVAL otherwise.
 */
int guard_enforcer_handover(struct guard_enforcer *e, unsigned int owner, unsigned int group);

/*
 * Frees e without unpinning or detaching anything: the pinned guard stays armed after the
 * process exits (the end of `trstctl guard attach`). Accepts NULL; returns NULL.
 */
struct guard_enforcer *guard_enforcer_release(struct guard_enforcer *e);

/*
 * A guard pinned by another process, used without any capability (enforcer-pinned.c):
 * opens <pin_path>/trips with BPF_OBJ_GET (read permission on the pin is enough on Linux
 * 6.5 and later), reads its counters, checks that every pin is still there and proves
 * the guard with the tripwire from the calling process (which must sit in the guarded
 * cgroup). Loads and attaches nothing.
 */
struct guard_pinned;

#define GUARD_PINNED_LINKS 5 /* link_connect4 ... link_sock_create */

/* Returns 0, or -errno with a one-line reason in err ("no pinned guard at ..."). */
int guard_pinned_open(const char *pin_path, const char *tripwire_addr, uint16_t tripwire_port,
		      struct guard_pinned **ret_p, char *err, size_t errlen);
int guard_pinned_counters(struct guard_pinned *p, struct guard_counters *ret_counters);
/* 0 when `trips` and every link pin are present, else -ENOENT with the missing pin in why. */
int guard_pinned_check(struct guard_pinned *p, char *why, size_t len);
/*
 * UDP connect() to the tripwire address from the calling process: 0 when refused with
 * EPERM and the pinned tripwire counter moved; -EPROTO when not refused; else -errno.
 */
int guard_pinned_tripwire(struct guard_pinned *p);
/*
 * Replaces the pinned rule set with prefixes[0..n) (as guard_enforcer_update does), through
 * the rule map pins (opened on first use; read-write permission is enough on 6.5+).
 * Not thread-safe against itself (one refresher). Returns 0 or -errno.
 */
int guard_pinned_update(struct guard_pinned *p, const struct guard_prefix *prefixes, size_t n);
struct guard_pinned *guard_pinned_close(struct guard_pinned *p);
