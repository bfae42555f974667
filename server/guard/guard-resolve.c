/*
 * guard-resolve.c: the resolver of the running guard (guard-run.c starts it): allow_hosts
 * names turned into /32 and /128 allow entries with getaddrinfo_a (bounded waits; an
 * unanswered lookup keeps its last good set and is collected on a later round), the
 * endpoint names re-resolved, and the rules pushed to the kernel (or to the pinned maps).
 * Runs on the resolver thread after start; the shared state is struct guard_run
 * (guard-run-internal.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfg.h"
#include "enforcer.h"
#include "guard-internal.h"
#include "guard-run-internal.h"
#include "guard.h"
#include "log.h"

#define RESOLVED_PER_HOST 64

static time_t mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* ---- allow_hosts resolver --------------------------------------------------------- */

/* Whether an answer may enter the kernel allow map (DNS rebinding is refused). */
static bool answer_acceptable(const struct guard_run *g, const struct net_addr *a)
{
	enum net_addr_class c = net_addr_classify(a);

	if (c == NET_ADDR_METADATA)
		return false;
	return c == NET_ADDR_PUBLIC || g->ag->allow_private;
}

/* Merge one successful answer of host h; returns true when the allowed set changed. */
static bool merge_answer(struct guard_run *g, size_t h, const struct addrinfo *res, time_t now)
{
	bool changed = false;
	size_t i, kept = 0;

	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		struct net_addr a;
		char buf[64];
		uint16_t port;

		if (net_addr_from_sockaddr(ai->ai_addr, ai->ai_addrlen, &a, &port) < 0)
			continue;
		if (!answer_acceptable(g, &a)) {
			log_warn("allow_hosts answer ignored (not a public address)", "host", "%s",
				 g->hosts[h].name, "address", "%s",
				 net_addr_format(&a, buf, sizeof(buf)), "class", "%s",
				 net_addr_class_name(net_addr_classify(&a)));
			continue;
		}
		for (i = 0; i < g->n_resolved; i++)
			if (g->resolved[i].host == h && g->resolved[i].addr.family == a.family &&
			    !memcmp(g->resolved[i].addr.addr, a.addr, 16))
				break;
		if (i < g->n_resolved) {
			g->resolved[i].last_seen = now;
			continue;
		}
		for (i = 0, kept = 0; i < g->n_resolved; i++)
			kept += g->resolved[i].host == h;
		if (kept >= RESOLVED_PER_HOST)
			continue;
		struct resolved *n = realloc(g->resolved, (g->n_resolved + 1) * sizeof(*n));

		if (!n)
			break;
		g->resolved = n;
		g->resolved[g->n_resolved++] = (struct resolved){ h, a, now };
		log_info("allow_hosts address allowed", "host", "%s", g->hosts[h].name, "address",
			 "%s", net_addr_format(&a, buf, sizeof(buf)));
		changed = true;
	}
	/* Addresses this host no longer answers with leave after the grace period. */
	for (i = 0; i < g->n_resolved;) {
		struct resolved *r = &g->resolved[i];
		char buf[64];

		if (r->host == h && now - r->last_seen > GUARD_RUN_GRACE_S) {
			log_info("allow_hosts address expired", "host", "%s", g->hosts[h].name,
				 "address", "%s", net_addr_format(&r->addr, buf, sizeof(buf)));
			*r = g->resolved[--g->n_resolved];
			changed = true;
			continue;
		}
		i++;
	}
	return changed;
}

static struct guard_prefix host_prefix(const struct net_addr *a, uint16_t port)
{
	struct guard_prefix e = { .family = a->family, .port = port };

	memcpy(e.addr, a->addr, 16);
	e.prefix_len = e.family == AF_INET ? 32 : 128;
	return e;
}

/*
 * The rule set: policy prefixes, allow_hosts answers, and the allowed addresses of the
 * endpoint names. An endpoint address keeps the port of the policy entry that allows it
 * (any port only when the policy allows any port there), so it never widens the policy.
 */
int guard_run_build_rules(struct guard_run *g, struct guard_prefix **ret_p, size_t *ret_n)
{
	size_t n = g->n_base + g->n_resolved, i, k;
	struct guard_prefix *p;

	for (i = 0; i < g->n_names; i++)
		n += g->allowed[i].n_addrs;
	p = calloc(n ? n : 1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	memcpy(p, g->base, g->n_base * sizeof(*p));
	k = g->n_base;
	for (i = 0; i < g->n_resolved; i++)
		p[k++] = host_prefix(&g->resolved[i].addr, 0);
	for (i = 0; i < g->n_names; i++) {
		const struct guard_name *nm = &g->allowed[i];

		for (size_t j = 0; j < nm->n_addrs; j++)
			p[k++] = host_prefix(&nm->addrs[j],
					     guard_policy_allows_addr(g->policy, &nm->addrs[j], 0) ?
						     0 : nm->port);
	}
	*ret_p = p;
	*ret_n = k;
	return 0;
}

/* Loads policy prefixes + resolved addresses into the kernel. */
static int push_rules(struct guard_run *g)
{
	struct guard_prefix *p;
	size_t n;
	int ret = guard_run_build_rules(g, &p, &n);

	if (ret < 0)
		return ret;
	ret = g->pinned ? guard_pinned_update(g->pinned, p, n) : guard_enforcer_update(g->enf, p, n);
	free(p);
	return ret;
}

/*
 * Looks the endpoint names up again; a name whose answer the policy allows gets exactly
 * that answer; a refused answer is logged and the last allowed set stays (the kernel keeps
 * denying the refused address); a failed lookup keeps the last set. Returns true when a
 * set changed. Only the resolver thread (or start, before it exists) calls this.
 */
bool guard_run_names_round(struct guard_run *g, bool first)
{
	const struct guard_name *v;
	bool changed = false;

	if (!g->n_names || guard_names_resolve(g->names, false, GUARD_RUN_LOOKUP_MS) < 0)
		return false;
	guard_names_get(g->names, &v);
	for (size_t i = 0; i < g->n_names; i++) {
		struct guard_name *a = &g->allowed[i];
		char why[512], buf[64];

		if (v[i].listed)
			continue; /* an allow_hosts name: the allow_hosts resolver's business */
		if (guard_name_judge(&v[i], g->policy, why, sizeof(why)) < 0) {
			if (!first)
				log_error("endpoint name refused; keeping its last allowed addresses",
					  "error", "%s", why);
			continue;
		}
		if (a->n_addrs == v[i].n_addrs &&
		    !memcmp(a->addrs, v[i].addrs, v[i].n_addrs * sizeof(v[i].addrs[0])))
			continue;
		*a = v[i];
		changed = true;
		for (size_t j = 0; j < a->n_addrs; j++)
			log_info("endpoint name resolved", "key", "%s", a->key, "host", "%s",
				 a->host, "address", "%s",
				 net_addr_format(&a->addrs[j], buf, sizeof(buf)));
	}
	return changed;
}

/* One round: start lookups for idle names, wait up to timeout_ms, merge what came back. */
void guard_run_resolve_round(struct guard_run *g, int timeout_ms)
{
	struct gaicb *list[g->n_hosts ? g->n_hosts : 1];
	time_t now;
	bool changed = false;
	size_t h, m = 0;
	int ret;

	for (h = 0; h < g->n_hosts; h++) {
		struct host_slot *s = &g->hosts[h];

		if (s->busy)
			continue; /* still running from an earlier round */
		memset(&s->cb, 0, sizeof(s->cb));
		s->hints = (struct addrinfo){ .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
		s->cb.ar_name = s->name;
		s->cb.ar_request = &s->hints;
		s->busy = true;
		list[m++] = &s->cb;
	}
	if (m && (ret = getaddrinfo_a(GAI_NOWAIT, list, (int)m, NULL)) != 0)
		log_warn("allow_hosts lookups not started", "error", "%s", gai_strerror(ret));

	{
		struct gaicb *wait[g->n_hosts ? g->n_hosts : 1];

		for (h = 0; h < g->n_hosts; h++)
			wait[h] = g->hosts[h].busy ? &g->hosts[h].cb : NULL;
		guard_lookup_wait(wait, g->n_hosts, timeout_ms);
	}

	now = mono_s();
	pthread_mutex_lock(&g->lock);
	for (h = 0; h < g->n_hosts; h++) {
		struct host_slot *s = &g->hosts[h];

		if (!s->busy)
			continue;
		ret = gai_error(&s->cb);
		if (ret == EAI_INPROGRESS) {
			log_warn("allow_hosts lookup timed out; keeping the last good addresses",
				 "host", "%s", s->name, "timeout_ms", "%d", timeout_ms);
			continue;
		}
		s->busy = false;
		if (ret == 0 && s->cb.ar_result)
			changed |= merge_answer(g, h, s->cb.ar_result, now);
		else
			log_warn("allow_hosts lookup failed; keeping the last good addresses",
				 "host", "%s", s->name, "error", "%s",
				 ret == 0 ? "no address" : gai_strerror(ret));
		if (s->cb.ar_result)
			freeaddrinfo(s->cb.ar_result);
		s->cb.ar_result = NULL;
	}
	pthread_mutex_unlock(&g->lock);
	changed |= guard_run_names_round(g, false);
	if (changed) {
		ret = push_rules(g);
		if (ret < 0)
			log_error("cannot load the allow_hosts addresses into the kernel guard",
				  "error", "%s", strerror(-ret));
	}
}

/* Waits ms, or until stop (or, with refresh, a guard_run_refresh); true when stopping. */
bool guard_run_wait_or_stop(struct guard_run *g, long ms, bool refresh)
{
	struct timespec ts;
	bool stop;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&g->lock);
	while (!g->stopping && !(refresh && g->refresh) &&
	       pthread_cond_timedwait(&g->cond, &g->lock, &ts) == 0)
		;
	stop = g->stopping;
	if (refresh)
		g->refresh = false;
	pthread_mutex_unlock(&g->lock);
	return stop;
}

void *guard_run_resolver_main(void *arg)
{
	struct guard_run *g = arg;

	while (!guard_run_wait_or_stop(g, GUARD_RUN_REFRESH_S * 1000L, true))
		guard_run_resolve_round(g, GUARD_RUN_LOOKUP_MS);
	return NULL;
}

