#pragma once
/*
 * The running guard's state, shared by guard-run.c (start, stop, status, watchdog) and
 * guard-resolve.c (the resolver thread). Only inside guard/.
 */
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "guard-internal.h"
#include "guard.h"
#include "net.h"

/* One allowed address of an allow_hosts name. */
struct resolved {
	size_t host;          /* index into hosts */
	struct net_addr addr;
	time_t last_seen;     /* CLOCK_MONOTONIC seconds of the last answer holding it */
};

/* One allow_hosts name and its lookup; busy while getaddrinfo_a owns cb. */
struct host_slot {
	const char *name;
	struct gaicb cb;
	struct addrinfo hints;
	bool busy;
};

/* One key of the userspace refusal rate limit (guard-gate.c). */
struct report_key {
	int client;           /* enum guard_client; -1 = free slot */
	char host[256];
	char address[46];
	uint16_t port;
	time_t last;          /* CLOCK_MONOTONIC seconds of the last listed refusal */
	uint64_t suppressed;  /* refusals since then that were not listed */
};

/* The argument of one client's gate. */
struct gate_ctx {
	struct guard_run *g;
	enum guard_client client;
};

struct guard_run {
	const struct cfg_air_gap *ag;
	enum guard_run_mode mode;
	struct guard_policy *policy;
	struct guard_enforcer *enf;
	struct guard_pinned *pinned; /* enforcer pinned: the guard `guard attach` left */
	atomic_bool armed;
	atomic_bool pins_ok;         /* pinned: every pin was there at the last check */
	char pin_path[4096];
	char cgroup_path[4096];

	/* resolver (resolver thread only, after start; n_resolved read under lock) */
	struct guard_prefix *base; /* guard_policy_prefixes() */
	size_t n_base;
	struct host_slot *hosts;
	size_t n_hosts;
	struct resolved *resolved;
	size_t n_resolved;
	/* endpoint names (guard-names.c) and, per name, the last set the policy allowed */
	struct guard_names *names;
	struct guard_name *allowed; /* copies; n_addrs 0 until a good answer */
	size_t n_names;
	bool refresh; /* guard_run_refresh asked for a round now (under lock) */

	pthread_t resolver, watchdog;
	bool resolver_started, watchdog_started;
	pthread_mutex_t lock; /* stopping, the denial list, the hook, n_resolved */
	pthread_cond_t cond;
	bool stopping;

	struct guard_run_denial *denials; /* circular, GUARD_RUN_DENIALS entries */
	size_t head, count;
	uint64_t seq;
	guard_denial_hook_fn hook;
	void *hook_arg;

	/* userspace refusals (guard-gate.c), under lock */
	struct gate_ctx gates[GUARD_CLIENTS];
	struct report_key reports[GUARD_RUN_REPORT_KEYS];
	int report_period_s;    /* GUARD_RUN_REPORT_S (its unit test shortens it) */
	time_t report_window;   /* start of the current period */
	unsigned report_listed; /* refusals listed in that period */
};

/* Lists one denial (the seq is set here) and returns the hook to call after unlocking. */
guard_denial_hook_fn guard_run_list_locked(struct guard_run *g, struct guard_run_denial *d,
					   void **ret_arg);
/* Sets up the gates and the policy's observer (guard-gate.c); at start-up, before threads. */
void guard_run_gates_init(struct guard_run *g);

/* The rules for the kernel: the policy's prefixes plus the resolved names. -ENOMEM. */
int guard_run_build_rules(struct guard_run *g, struct guard_prefix **ret_p, size_t *ret_n);
/* Re-resolves the endpoint names (first: at start-up); true when the allowed set changed. */
bool guard_run_names_round(struct guard_run *g, bool first);
/* One resolver round: lookups for idle names, up to timeout_ms, merged and pushed. */
void guard_run_resolve_round(struct guard_run *g, int timeout_ms);
/* Waits ms, or until stop (or, with refresh, a guard_run_refresh); true when stopping. */
bool guard_run_wait_or_stop(struct guard_run *g, long ms, bool refresh);
/* The resolver thread. */
void *guard_run_resolver_main(void *arg);
