/*
 * guard-gate.c: userspace enforcement of the server's own clients. When the kernel guard is
 * not in force (air_gap.enforcer userspace, or the auto fallback), nothing below the
 * process stops a connect(), so the clients ask first: the PostgreSQL pool and the NATS
 * relay call their gate (net.h struct net_gate) before every connection and reconnection,
 * and the guarded HTTP client (http.c) checks every hop and every socket address. The gate
 * resolves the name here (getaddrinfo), judges each address with the one policy
 * (guard_policy_admit_answer) and hands back only the admitted addresses; the client then
 * connects to those by address, so a second resolution inside the library cannot lead
 * elsewhere.
 *
 * Every refusal reaches the policy's observer (run_on_refusal): it is counted by client
 * (the policy does that), logged, listed with the kernel denials (hook "userspace") and
 * passed to the denial hook, which audits it. A client that retries in a loop would
 * flood the log and the audit chain, so listing is rate-limited: one refusal per (client,
 * host, address, port) per GUARD_RUN_REPORT_S, at most GUARD_RUN_REPORT_BURST in all per
 * period; the next listed one of a key carries how many were suppressed meanwhile. The
 * counters always count every refusal.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "guard-internal.h"
#include "guard-run-internal.h"
#include "guard.h"
#include "log.h"

int guard_resolve(const char *host, uint16_t port, struct net_addr *ret_addrs, size_t max,
		  size_t *ret_n, char *why, size_t len)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
	char port_s[8];
	size_t n = 0;
	int r;

	snprintf(port_s, sizeof(port_s), "%u", (unsigned)port);
	r = getaddrinfo(host, port_s, &hints, &res);
	if (r != 0) {
		if (why && len)
			snprintf(why, len, "cannot resolve %s: %s", host, gai_strerror(r));
		return -EHOSTUNREACH;
	}
	for (const struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
		struct net_addr a;
		size_t i;

		if (net_addr_from_sockaddr(ai->ai_addr, ai->ai_addrlen, &a, NULL) < 0)
			continue;
		for (i = 0; i < n; i++)
			if (ret_addrs[i].family == a.family &&
			    !memcmp(ret_addrs[i].addr, a.addr, 16))
				break;
		if (i == n)
			ret_addrs[n++] = a;
	}
	freeaddrinfo(res);
	if (n == 0) {
		if (why && len)
			snprintf(why, len, "cannot resolve %s: no IP address", host);
		return -EHOSTUNREACH;
	}
	*ret_n = n;
	return 0;
}

/* ---- the gate --------------------------------------------------------------------- */

static int gate_admit(void *arg, const char *host, uint16_t port, struct net_addr *ret_addrs,
		      size_t max, size_t *ret_n, char *why, size_t why_len)
{
	const struct gate_ctx *x = arg;
	struct net_addr found[GUARD_NAME_ADDRS];
	size_t n = 0;
	int r;

	if (x->g->mode != GUARD_RUN_USERSPACE)
		return 1;
	if (!host || !*host || !max) {
		snprintf(why, why_len, "no destination host");
		return -EHOSTUNREACH;
	}
	if (net_addr_parse(host, &found[0]) == 0)
		n = 1; /* a literal: judged by its address */
	else if ((r = guard_resolve(host, port, found, GUARD_NAME_ADDRS, &n, why, why_len)) < 0)
		return r;
	if (n > max)
		n = max;
	return guard_policy_admit_answer(x->g->policy, x->client, host, port, found, n, ret_addrs,
					 ret_n, why, why_len);
}

int guard_run_gate(struct guard_run *g, enum guard_client client, struct net_gate *ret_gate)
{
	if (!g || !ret_gate || (int)client < 0 || client >= GUARD_CLIENTS)
		return -EINVAL;
	*ret_gate = (struct net_gate){ .fn = gate_admit, .arg = &g->gates[client] };
	return 0;
}

/* ---- refusals: counted by the policy, logged, listed and audited here --------------- */

static time_t mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* The key of r, or a slot for it (a free one, else the one listed longest ago). */
static struct report_key *report_slot(struct guard_run *g, const struct guard_refusal *r,
				      bool *ret_found)
{
	struct report_key *oldest = &g->reports[0];

	for (size_t i = 0; i < GUARD_RUN_REPORT_KEYS; i++) {
		struct report_key *k = &g->reports[i];

		if (k->client == (int)r->client && k->port == r->port &&
		    !strcmp(k->host, r->host) && !strcmp(k->address, r->address)) {
			*ret_found = true;
			return k;
		}
		if (k->client < 0 || (oldest->client >= 0 && k->last < oldest->last))
			oldest = k;
	}
	*ret_found = false;
	return oldest;
}

/*
 * Decides under g->lock whether r is listed now; if so fills d (suppressed: the key's
 * refusals since its last listed one) and restarts the key. Unlisted refusals add to their
 * key's suppressed count (a key pushed out of the table loses that count; the counters
 * keep every refusal).
 */
static bool report_admit_locked(struct guard_run *g, const struct guard_refusal *r,
				struct guard_run_denial *d)
{
	time_t now = mono_s();
	bool found;
	struct report_key *k = report_slot(g, r, &found);

	if (now - g->report_window >= g->report_period_s) {
		g->report_window = now;
		g->report_listed = 0;
	}
	if (found && now - k->last < g->report_period_s) {
		k->suppressed++;
		return false;
	}
	if (g->report_listed >= GUARD_RUN_REPORT_BURST) {
		if (found)
			k->suppressed++;
		return false;
	}
	d->suppressed = found ? k->suppressed : 0;
	*k = (struct report_key){ .client = (int)r->client, .port = r->port, .last = now };
	snprintf(k->host, sizeof(k->host), "%s", r->host);
	snprintf(k->address, sizeof(k->address), "%s", r->address);
	g->report_listed++;
	return true;
}

static void run_on_refusal(const struct guard_refusal *r, void *arg)
{
	struct guard_run *g = arg;
	struct guard_run_denial d = { .pid = (uint32_t)getpid(),
				      .uid = (uint32_t)getuid(),
				      .port = r->port,
				      .protocol = "tcp",
				      .hook = "userspace",
				      .client = guard_client_name(r->client) };
	guard_denial_hook_fn hook = NULL;
	void *hook_arg = NULL;
	bool listed;

	clock_gettime(CLOCK_REALTIME, &d.time);
	(void)prctl(PR_GET_NAME, d.comm, 0, 0, 0); /* the refusing thread's name */
	d.comm[sizeof(d.comm) - 1] = '\0';
	snprintf(d.address, sizeof(d.address), "%s", r->address ? r->address : "");
	snprintf(d.host, sizeof(d.host), "%s", r->host ? r->host : "");
	snprintf(d.reason, sizeof(d.reason), "%s", r->reason ? r->reason : "egress blocked");
	pthread_mutex_lock(&g->lock);
	listed = report_admit_locked(g,
				     &(struct guard_refusal){ .client = r->client,
							      .host = d.host,
							      .address = d.address,
							      .port = r->port },
				     &d);
	if (listed)
		hook = guard_run_list_locked(g, &d, &hook_arg);
	pthread_mutex_unlock(&g->lock);
	if (!listed) {
		log_debug("egress refused (userspace; not listed again yet)", "client", "%s",
			  d.client, "host", "%s", d.host, "address", "%s", d.address);
		return;
	}
	log_warn("egress refused", "enforcer", "%s", guard_run_mode_name(g->mode), "client", "%s",
		 d.client, "host", "%s", d.host, "address", "%s", d.address, "port", "%u",
		 (unsigned)d.port, "reason", "%s", d.reason, "suppressed", "%llu",
		 (unsigned long long)d.suppressed, "seq", "%llu", (unsigned long long)d.seq);
	if (hook)
		hook(&d, hook_arg);
}

void guard_run_gates_init(struct guard_run *g)
{
	for (int i = 0; i < GUARD_CLIENTS; i++)
		g->gates[i] = (struct gate_ctx){ .g = g, .client = (enum guard_client)i };
	for (size_t i = 0; i < GUARD_RUN_REPORT_KEYS; i++)
		g->reports[i].client = -1;
	g->report_period_s = GUARD_RUN_REPORT_S;
	g->report_window = mono_s();
	if (g->ag->enabled)
		guard_policy_set_observer(g->policy, run_on_refusal, g);
}

/* ---- what is checked ---------------------------------------------------------------- */

const char *guard_run_note(struct guard_run *g)
{
	if (!g || g->mode != GUARD_RUN_USERSPACE)
		return NULL;
	return "userspace enforcement: only this server's own clients are checked "
	       "(PostgreSQL, NATS, and the HTTP client of OTLP, AI and telemetry), before each "
	       "connection; other code in the process, child processes and DNS lookups are not, "
	       "and the kernel does not enforce";
}
