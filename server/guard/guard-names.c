/*
 * guard-names.c: the outbound endpoints of the configuration (postgres.dsn hosts, nats.url
 * hosts, otlp.endpoint, ai.model.endpoint) under air-gap. An IP literal, "localhost" or an
 * allow_hosts entry is decided by the policy alone, as before. Any other name is resolved
 * (getaddrinfo_a, bounded wait) and allowed only when every address it resolves to is
 * allowed by the policy on the endpoint's port: one public (or otherwise refused) address
 * refuses the name, and a name that does not resolve is refused too, because nothing could
 * be said about where it leads. The addresses found are what the kernel guard allows for
 * the name (guard-run.c loads them as /32 and /128 entries and re-resolves periodically).
 *
 * The resolution lives here and not in cfg: cfg sits below guard and does no DNS. The
 * check reaches cfg_load through cfg_load_checked(), so its errors join cfg's in the one
 * "trstctl: configuration: <errors>" line.
 */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfg.h"
#include "guard-internal.h"
#include "guard.h"
#include "net.h"

struct guard_names {
	struct guard_name *v;
	size_t n;
};

/*
 * Waits for the lookups of list (NULL entries skipped) by polling gai_error() every 2 ms,
 * not with gai_suspend(): glibc 2.36's gai_suspend with a timeout leaves its wait entries
 * reachable from the requests after it returns, and the resolver thread's notification
 * then writes into a dead stack frame (seen as a SIGSEGV in __gai_notify, about one
 * --check-config in ten with MALLOC_PERTURB_ set). A few milliseconds of latency on a
 * start-up or periodic lookup cost nothing.
 */
int guard_lookup_wait(struct gaicb **list, size_t n, int timeout_ms)
{
	struct timespec start, t;
	const struct timespec tick = { 0, 2000000 };

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		bool busy = false;
		int64_t ms;

		for (size_t i = 0; i < n && !busy; i++)
			busy = list[i] && gai_error(list[i]) == EAI_INPROGRESS;
		if (!busy)
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &t);
		ms = (int64_t)(t.tv_sec - start.tv_sec) * 1000 + (t.tv_nsec - start.tv_nsec) / 1000000;
		if (ms >= timeout_ms)
			return -ETIMEDOUT;
		nanosleep(&tick, NULL);
	}
}

/* ---- collecting ------------------------------------------------------------------- */

struct collect {
	struct guard_names *names;
	const struct guard_policy *pol;
	const char *key;
	struct guard_errs *e;
};

void guard_errs_add(struct guard_errs *e, const char *fmt, ...)
{
	char *s = NULL, *joined = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (!s || asprintf(&joined, "%s%s%s", e->buf ? e->buf : "", e->buf ? "; " : "", s) < 0) {
		e->oom = true;
		free(s);
		return;
	}
	free(s);
	free(e->buf);
	e->buf = joined;
	e->n++;
}

static bool is_localhost(const char *h)
{
	size_t n = strlen(h);

	return strcmp(h, "localhost") == 0 || (n > 10 && strcmp(h + n - 10, ".localhost") == 0);
}

static int collect_host(const char *host, int port, void *ud)
{
	struct collect *x = ud;
	struct guard_name *v, *nm;
	struct net_addr a;
	char buf[256];

	if (net_host_normalize(host, buf, sizeof(buf)) < 0 ||
	    net_addr_parse(buf, &a) == 0 || is_localhost(buf)) {
		/* decided by the policy alone, no DNS */
		if (!guard_policy_allows_host(x->pol, host, (uint16_t)port))
			guard_errs_add(x->e, "%s host \"%s\" is not allowed in air-gap mode", x->key,
				       host);
		return 0;
	}
	v = realloc(x->names->v, (x->names->n + 1) * sizeof(*v));
	if (!v) {
		x->e->oom = true;
		return -ENOMEM;
	}
	x->names->v = v;
	nm = &v[x->names->n++];
	memset(nm, 0, sizeof(*nm));
	nm->key = x->key;
	memcpy(nm->host, buf, strlen(buf) + 1);
	nm->port = (uint16_t)port;
	nm->listed = guard_policy_allows_host(x->pol, buf, (uint16_t)port);
	return 0;
}

static void collect_url(struct collect *x, const char *key, const char *url, uint16_t def_port)
{
	struct net_url u;

	x->key = key;
	if (url && net_url_parse(url, &u) == 0)
		collect_host(u.host, u.port ? u.port : def_port, x);
}

int guard_names_collect(const struct cfg *c, const struct guard_policy *pol,
			struct guard_names **ret_names, struct guard_errs *e)
{
	struct guard_names *names = calloc(1, sizeof(*names));
	struct collect x = { names, pol, "postgres.dsn", e };

	if (!names)
		return -ENOMEM;
	if (c->air_gap.enabled) {
		if (c->postgres.dsn)
			cfg_dsn_hosts(c->postgres.dsn, collect_host, &x);
		for (const char *p = c->nats.url; p;) {
			size_t len = strcspn(p, ",");
			char *one = strndup(p, len);

			if (!one)
				e->oom = true;
			collect_url(&x, "nats.url", one, 4222);
			free(one);
			p = p[len] ? p + len + 1 : NULL;
		}
		if (c->otlp.enabled)
			collect_url(&x, "otlp.endpoint", c->otlp.endpoint, 0);
		if (c->ai_model.mode == CFG_AI_LOCAL)
			collect_url(&x, "ai.model.endpoint", c->ai_model.endpoint, 0);
	}
	if (e->oom) {
		guard_names_free(names);
		return -ENOMEM;
	}
	*ret_names = names;
	return 0;
}

/* ---- resolving and judging -------------------------------------------------------- */

static void keep_answer(struct guard_name *nm, const struct addrinfo *res)
{
	nm->n_addrs = 0;
	for (const struct addrinfo *ai = res; ai && nm->n_addrs < GUARD_NAME_ADDRS;
	     ai = ai->ai_next) {
		struct net_addr a;
		size_t i;

		if (net_addr_from_sockaddr(ai->ai_addr, ai->ai_addrlen, &a, NULL) < 0)
			continue;
		for (i = 0; i < nm->n_addrs; i++)
			if (nm->addrs[i].family == a.family && !memcmp(nm->addrs[i].addr, a.addr, 16))
				break;
		if (i == nm->n_addrs)
			nm->addrs[nm->n_addrs++] = a;
	}
}

int guard_names_resolve(struct guard_names *names, bool listed_too, int timeout_ms)
{
	size_t n = names->n;
	struct gaicb *cbs = calloc(n ? n : 1, sizeof(*cbs));
	struct gaicb **list = calloc(n ? n : 1, sizeof(*list));
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	int ret = 0;

	if (!cbs || !list) {
		free(cbs);
		free(list);
		return -ENOMEM;
	}
	size_t m = 0;

	for (size_t i = 0; i < n; i++) {
		if (names->v[i].listed && !listed_too)
			continue;
		cbs[i].ar_name = names->v[i].host;
		cbs[i].ar_request = &hints;
		list[m++] = &cbs[i];
	}
	if (m && getaddrinfo_a(GAI_NOWAIT, list, (int)m, NULL) != 0)
		ret = -EAGAIN; /* every name reports EAI_AGAIN */
	if (ret == 0)
		guard_lookup_wait(list, m, timeout_ms);
	for (size_t i = 0; i < n; i++) {
		struct guard_name *nm = &names->v[i];
		int r;

		if (!cbs[i].ar_name)
			continue; /* not looked up */
		r = ret ? EAI_AGAIN : gai_error(&cbs[i]);

		if (r == EAI_INPROGRESS) {
			gai_cancel(&cbs[i]);
			/* glibc may still own it: wait for it to let go before freeing */
			struct gaicb *one[1] = { &cbs[i] };

			while (guard_lookup_wait(one, 1, 1000) < 0)
				;
			r = EAI_AGAIN;
			nm->timed_out = true;
		}
		nm->error = r;
		if (r == 0)
			keep_answer(nm, cbs[i].ar_result);
		if (r == 0 && nm->n_addrs == 0)
			nm->error = EAI_NODATA;
		if (cbs[i].ar_result)
			freeaddrinfo(cbs[i].ar_result);
	}
	free(cbs);
	free(list);
	return 0;
}

int guard_name_judge(const struct guard_name *nm, const struct guard_policy *pol, char *why,
		     size_t len)
{
	if (nm->listed)
		return 0;
	if (nm->error) {
		snprintf(why, len,
			 "%s host \"%s\" does not resolve (%s); in air-gap mode a name is allowed "
			 "only when every address it resolves to is allowed",
			 nm->key, nm->host,
			 nm->timed_out ? "no answer in time" : gai_strerror(nm->error));
		return -ENOENT;
	}
	for (size_t i = 0; i < nm->n_addrs; i++) {
		char buf[64];
		enum net_addr_class k;

		if (guard_policy_allows_addr(pol, &nm->addrs[i], nm->port))
			continue;
		k = net_addr_classify(&nm->addrs[i]);
		net_addr_format(&nm->addrs[i], buf, sizeof(buf));
		if (k == NET_ADDR_PUBLIC)
			snprintf(why, len,
				 "%s host \"%s\" resolves to %s, a public address, not allowed in "
				 "air-gap mode",
				 nm->key, nm->host, buf);
		else
			snprintf(why, len,
				 "%s host \"%s\" resolves to %s, a %s address that air_gap "
				 "(allow_private, allow_cidrs) does not allow on port %u",
				 nm->key, nm->host, buf, net_addr_class_name(k), (unsigned)nm->port);
		return -EPERM;
	}
	return 0;
}

size_t guard_names_get(const struct guard_names *names, const struct guard_name **ret_v)
{
	*ret_v = names ? names->v : NULL;
	return names ? names->n : 0;
}

struct guard_names *guard_names_free(struct guard_names *names)
{
	if (!names)
		return NULL;
	free(names->v);
	free(names);
	return NULL;
}

int guard_names_print(const struct guard_names *names, FILE *f)
{
	for (size_t i = 0; names && i < names->n; i++) {
		const struct guard_name *nm = &names->v[i];
		char buf[64];

		fprintf(f, "resolved: %s %s ->", nm->key, nm->host);
		if (nm->error)
			fprintf(f, " (%s)", nm->timed_out ? "no answer in time" :
							       gai_strerror(nm->error));
		for (size_t j = 0; !nm->error && j < nm->n_addrs; j++)
			fprintf(f, "%s %s", j ? "," : "",
				net_addr_format(&nm->addrs[j], buf, sizeof(buf)));
		fprintf(f, "%s\n", nm->listed ? " (allow_hosts)" : "");
	}
	return ferror(f) ? -EIO : 0;
}

int guard_config_check(const struct cfg *c, void *arg, char **ret_errors)
{
	struct guard_names **keep = arg, *names = NULL;
	struct guard_policy *pol = NULL;
	struct guard_errs e = { 0 };
	int r;

	if (!c->air_gap.enabled)
		return 0;
	r = guard_policy_new(c, &pol);
	if (r == -EINVAL)
		return 0; /* a bad allow list: cfg has reported it */
	if (r < 0)
		return r;
	r = guard_names_collect(c, pol, &names, &e);
	if (r == 0)
		/* allow_hosts names are allowed whatever they resolve to: looked up only to
		 * be printed */
		r = guard_names_resolve(names, keep != NULL, GUARD_RUN_LOOKUP_MS);
	for (size_t i = 0; r == 0 && i < names->n; i++) {
		char why[512];

		if (guard_name_judge(&names->v[i], pol, why, sizeof(why)) < 0)
			guard_errs_add(&e, "%s", why);
	}
	guard_policy_free(pol);
	if (r == 0 && e.oom)
		r = -ENOMEM;
	if (r == 0 && keep && !e.n)
		*keep = names;
	else
		guard_names_free(names);
	if (r < 0) {
		free(e.buf);
		return r;
	}
	if (e.n) {
		*ret_errors = e.buf;
		return -EINVAL;
	}
	return 0;
}
