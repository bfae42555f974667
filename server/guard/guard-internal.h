#pragma once
/*
 * Private to server/guard: the endpoint names of the configuration (guard-names.c), shared
 * by the configuration check and the running guard (guard-run.c), and its unit test.
 */
#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guard.h"
#include "net.h"

#define GUARD_NAME_ADDRS 16 /* addresses kept per name */

/* One outbound endpoint host of the configuration that is a name (not a literal). */
struct guard_name {
	const char *key;    /* "postgres.dsn", "nats.url", "otlp.endpoint", "ai.model.endpoint" */
	char host[256];     /* normalised */
	uint16_t port;      /* the endpoint's port */
	bool listed;        /* an allow_hosts entry: allowed whatever it resolves to */
	int error;          /* 0, or the EAI_* code of the last lookup */
	bool timed_out;     /* the last lookup got no answer in time */
	size_t n_addrs;     /* valid when error == 0; at least 1 then */
	struct net_addr addrs[GUARD_NAME_ADDRS];
};

/* Collected errors, "a; b". */
struct guard_errs {
	char *buf;
	size_t n;
	bool oom;
};
void guard_errs_add(struct guard_errs *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * The endpoint names of c when air-gap is on (none when off). A literal or localhost
 * endpoint the policy refuses is reported in e instead ("... is not allowed in air-gap
 * mode"). Returns 0 or -ENOMEM.
 */
int guard_names_collect(const struct cfg *c, const struct guard_policy *pol,
			struct guard_names **ret_names, struct guard_errs *e);
/*
 * Resolves the names at once (allow_hosts names only with listed_too), waiting at most
 * timeout_ms; sets error/addrs of each name looked up. Returns 0 or -ENOMEM.
 */
int guard_names_resolve(struct guard_names *names, bool listed_too, int timeout_ms);
/*
 * Whether a resolved name may be reached: 0, or -ENOENT (did not resolve) / -EPERM (an
 * address the policy refuses on its port) with the message in why.
 */
int guard_name_judge(const struct guard_name *nm, const struct guard_policy *pol, char *why,
		     size_t len);
/* The names (borrowed); returns how many. */
size_t guard_names_get(const struct guard_names *names, const struct guard_name **ret_v);

/*
 * Resolves host (getaddrinfo, any family, TCP) into at most max distinct addresses, in the
 * resolver's order. Returns 0 with *ret_n >= 1, or -EHOSTUNREACH with the reason in why
 * ("cannot resolve <host>: <gai_strerror>"). guard-gate.c.
 */
int guard_resolve(const char *host, uint16_t port, struct net_addr *ret_addrs, size_t max,
		  size_t *ret_n, char *why, size_t len);

/* Waits until none of list[0..n) (NULL entries skipped) is in progress, or timeout_ms. */
int guard_lookup_wait(struct gaicb **list, size_t n, int timeout_ms);
