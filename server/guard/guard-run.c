/*
 * guard-run.c: the egress guard of the running server (the run-time half of guard.h).
 * Start-up chooses the enforcer (off, userspace, ebpf; auto = ebpf, else a loud fallback
 * to userspace when the kernel refuses BPF), proves the kernel guard with the tripwire,
 * drops capabilities, and starts two threads: the resolver, which turns allow_hosts names
 * into /32 and /128 allow entries with getaddrinfo_a (bounded waits; an unanswered lookup
 * keeps its last good set and is collected on a later round), and the watchdog, which
 * asks the kernel every GUARD_RUN_WATCHDOG_MS that the programs are still attached and
 * ends the process when they are not: a server whose guard vanished must not keep
 * running, and exiting leaves any pinned links armed for the restart to take over.
 *
 * Denials arrive on the enforcer's reader thread (run_on_denial): each is logged as one
 * JSON line, kept in a bounded list numbered by seq, and passed to the denial hook.
 * Assumes the cfg outlives the guard.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "enforcer.h"
#include "guard-internal.h"
#include "guard-run-internal.h"
#include "guard.h"
#include "log.h"

#define CAP_NET_BIND_SERVICE_ 10
#define CAP_NET_ADMIN_ 12

static const char *const hook_names[GUARD_RUN_HOOKS] = {
	"connect4", "connect6", "sendmsg4", "sendmsg6", "sock_create",
};

const char *guard_run_mode_name(enum guard_run_mode m)
{
	return m == GUARD_RUN_EBPF ? "ebpf" : m == GUARD_RUN_USERSPACE ? "userspace" : "off";
}

const char *guard_run_hook_name(int i)
{
	return i >= 0 && i < GUARD_RUN_HOOKS ? hook_names[i] : "?";
}

/* ---- denials ---------------------------------------------------------------------- */

static const char *protocol_name(const struct guard_denial *d)
{
	if (d->type == SOCK_RAW)
		return "raw";
	switch (d->protocol) {
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return "icmp";
	default:
		return "other";
	}
}

static void run_on_denial(const struct guard_denial *d, void *arg)
{
	struct guard_run *g = arg;
	struct guard_run_denial r = { .time = d->time, .pid = d->pid, .uid = d->uid,
				      .port = d->port, .protocol = protocol_name(d),
				      .hook = d->hook };
	guard_denial_hook_fn hook;
	void *hook_arg;

	memcpy(r.comm, d->comm, sizeof(r.comm));
	r.comm[sizeof(r.comm) - 1] = '\0';
	if (d->family == AF_INET || d->family == AF_INET6)
		inet_ntop(d->family, d->addr, r.address, sizeof(r.address));
	if (d->tripwire) {
		log_info("egress guard tripwire refused", "address", "%s", r.address, "port", "%u",
			 (unsigned)r.port, "pid", "%u", r.pid);
		return;
	}
	pthread_mutex_lock(&g->lock);
	hook = guard_run_list_locked(g, &r, &hook_arg);
	pthread_mutex_unlock(&g->lock);
	log_warn("egress denied", "pid", "%u", r.pid, "uid", "%u", r.uid, "comm", "%s", r.comm,
		 "address", "%s", r.address, "port", "%u", (unsigned)r.port, "protocol", "%s",
		 r.protocol, "hook", "%s", r.hook, "seq", "%llu", (unsigned long long)r.seq);
	if (hook)
		hook(&r, hook_arg);
}

guard_denial_hook_fn guard_run_list_locked(struct guard_run *g, struct guard_run_denial *d,
					   void **ret_arg)
{
	d->seq = ++g->seq;
	g->denials[g->head] = *d;
	g->head = (g->head + 1) % GUARD_RUN_DENIALS;
	if (g->count < GUARD_RUN_DENIALS)
		g->count++;
	*ret_arg = g->hook_arg;
	return g->hook;
}

size_t guard_run_denials(struct guard_run *g, uint64_t before, struct guard_run_denial *out,
			 size_t max)
{
	size_t i, n = 0;

	if (!g || !out || !g->denials)
		return 0;
	pthread_mutex_lock(&g->lock);
	for (i = 0; i < g->count && n < max; i++) {
		const struct guard_run_denial *d =
			&g->denials[(g->head + GUARD_RUN_DENIALS - 1 - i) % GUARD_RUN_DENIALS];

		if (before == 0 || d->seq < before)
			out[n++] = *d;
	}
	pthread_mutex_unlock(&g->lock);
	return n;
}

void guard_run_refresh(struct guard_run *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	g->refresh = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

void guard_set_denial_hook(struct guard_run *g, guard_denial_hook_fn fn, void *arg)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	g->hook = fn;
	g->hook_arg = fn ? arg : NULL;
	pthread_mutex_unlock(&g->lock);
}

/* ---- watchdog --------------------------------------------------------------------- */

static void *watchdog_main(void *arg)
{
	struct guard_run *g = arg;
	int ret;

	while (!guard_run_wait_or_stop(g, GUARD_RUN_WATCHDOG_MS, false)) {
		ret = guard_enforcer_confirm(g->enf);
		if (ret == 0)
			continue;
		atomic_store(&g->armed, false);
		log_error("EGRESS GUARD LOST: the kernel no longer lists the eBPF guard on the "
			  "cgroup; exiting",
			  "cgroup", "%s", g->cgroup_path, "error", "%s", strerror(-ret));
		_exit(1);
	}
	return NULL;
}

/* ---- start and stop --------------------------------------------------------------- */

/* Splits "addr:port" of air_gap.tripwire_addr for the enforcer. */
static int tripwire_split(const char *s, char *host, size_t len, uint16_t *ret_port)
{
	char *h = NULL;
	int port = 0, ret;

	if (!s)
		return 0;
	ret = net_split_hostport(s, &h, &port);
	if (ret < 0)
		return ret;
	if (!*h || snprintf(host, len, "%s", h) >= (int)len)
		ret = -EINVAL;
	free(h);
	*ret_port = (uint16_t)port;
	return ret;
}

/*
 * Loads and attaches the kernel guard. attach_cgroup NULL: serve (the process's own
 * cgroup, proven with the tripwire here). Else `trstctl guard attach`: that cgroup, the
 * pin folder required (a bpffs), and the tripwire left to the caller.
 */
static int start_ebpf(struct guard_run *g, const struct cfg *c, const char *attach_cgroup,
		      char *err, size_t errlen)
{
	const struct cfg_air_gap *ag = &c->air_gap;
	struct guard_enforcer_config ec = {
		/* The built-in default pins when a bpffs is there and runs unpinned when not;
		 * any other folder must be a bpffs. */
		.pin_path = attach_cgroup ? (ag->bpf_pin_path ? ag->bpf_pin_path
							       : GUARD_ENFORCER_PIN_DEFAULT) :
			    ag->bpf_pin_path && strcmp(ag->bpf_pin_path, GUARD_ENFORCER_PIN_DEFAULT)
				    ? ag->bpf_pin_path : NULL,
		.cgroup_path = attach_cgroup,
		.cgroup_name = ag->cgroup,
		.on_denial = run_on_denial,
		.on_denial_arg = g,
		.err = err,
		.err_size = errlen,
	};
	struct guard_enforcer_info info;
	struct guard_prefix *rules;
	size_t n_rules;
	char tw[64] = "";
	int ret;

	ret = tripwire_split(ag->tripwire_addr, tw, sizeof(tw), &ec.tripwire_port);
	if (ret < 0) {
		snprintf(err, errlen, "air_gap.tripwire_addr is not addr:port: %s", ag->tripwire_addr);
		return -EINVAL;
	}
	ec.tripwire_addr = *tw ? tw : NULL;
	ret = guard_run_build_rules(g, &rules, &n_rules);
	if (ret < 0)
		return ret;
	ret = guard_enforcer_start(&ec, rules, n_rules, &g->enf);
	free(rules);
	if (ret < 0)
		return ret;
	guard_enforcer_info(g->enf, &info);
	snprintf(g->cgroup_path, sizeof(g->cgroup_path), "%s", info.cgroup_path);
	if (info.pin_path)
		snprintf(g->pin_path, sizeof(g->pin_path), "%s", info.pin_path);
	g->mode = GUARD_RUN_EBPF;
	log_info("egress guard attached", "cgroup", "%s", info.cgroup_path, "moved", "%s",
		 info.moved ? "true" : "false", "pin_path", "%s",
		 info.pin_path ? info.pin_path : "", "took_over", "%d", info.took_over, "comm",
		 "%s", info.comm ? "true" : "false");
	if (!info.pin_path)
		log_warn("egress guard not pinned (no bpffs at the pin path): it ends with this "
			 "process, so the supervisor must end the whole cgroup with it",
			 "pin_path", "%s", ag->bpf_pin_path ? ag->bpf_pin_path : "");
	if (attach_cgroup)
		return 0;
	ret = guard_enforcer_tripwire(g->enf);
	if (ret < 0) {
		snprintf(err, errlen, "the tripwire (%s) was not refused by the kernel guard: %s",
			 ag->tripwire_addr ? ag->tripwire_addr : GUARD_ENFORCER_TRIPWIRE_DEFAULT,
			 ret == -EPROTO ? "guard not armed" : strerror(-ret));
		return ret;
	}
	atomic_store(&g->armed, true);
	return 0;
}

/* The process's cgroup as /proc/self/cgroup names it ("0::" line), for the status. */
static void self_cgroup_path(char *buf, size_t len)
{
	char line[4096];
	FILE *f = fopen("/proc/self/cgroup", "re");

	snprintf(buf, len, "?");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(buf, len, "%s", line + 3);
			break;
		}
	fclose(f);
}

/*
 * enforcer pinned: the guard `trstctl guard attach` loaded, attached and pinned. Opens the
 * pinned counters (no capability on Linux 6.5+), proves the guard with the tripwire from
 * this process (which must sit in the guarded cgroup), and drops whatever capabilities
 * the process still has. Loads, attaches and detaches nothing; starts no thread.
 */
static int start_pinned(struct guard_run *g, const struct cfg *c, bool keep_net_bind,
			char *err, size_t errlen)
{
	const struct cfg_air_gap *ag = &c->air_gap;
	const char *pin = ag->bpf_pin_path ? ag->bpf_pin_path : GUARD_ENFORCER_PIN_DEFAULT;
	char tw[64] = "";
	uint16_t port = 0;
	int ret;

	ret = tripwire_split(ag->tripwire_addr, tw, sizeof(tw), &port);
	if (ret < 0) {
		snprintf(err, errlen, "air_gap.tripwire_addr is not addr:port: %s", ag->tripwire_addr);
		return -EINVAL;
	}
	ret = guard_pinned_open(pin, *tw ? tw : NULL, port, &g->pinned, err, errlen);
	if (ret < 0)
		return ret;
	snprintf(g->pin_path, sizeof(g->pin_path), "%s", pin);
	self_cgroup_path(g->cgroup_path, sizeof(g->cgroup_path));
	g->mode = GUARD_RUN_EBPF;
	atomic_store(&g->pins_ok, true);
	ret = guard_pinned_tripwire(g->pinned);
	if (ret < 0) {
		snprintf(err, errlen,
			 "the tripwire (%s) was not refused by the pinned guard %s: %s (is this "
			 "process in the cgroup `trstctl guard attach` guarded?)",
			 ag->tripwire_addr ? ag->tripwire_addr : GUARD_ENFORCER_TRIPWIRE_DEFAULT,
			 pin, ret == -EPROTO ? "guard not armed here" : strerror(-ret));
		return ret;
	}
	atomic_store(&g->armed, true);
	ret = guard_caps_drop(keep_net_bind ? 1ULL << CAP_NET_BIND_SERVICE_ : 0);
	if (ret < 0) {
		snprintf(err, errlen, "dropping capabilities: %s", strerror(-ret));
		return ret;
	}
	/* The names: resolved now (attach loaded the same ones a moment ago), then refreshed. */
	guard_run_resolve_round(g, GUARD_RUN_LOOKUP_MS);
	if (g->n_hosts || g->n_names) {
		ret = -pthread_create(&g->resolver, NULL, guard_run_resolver_main, g);
		if (ret < 0) {
			snprintf(err, errlen, "starting the resolver thread: %s", strerror(-ret));
			return ret;
		}
		g->resolver_started = true;
	}
	log_info("egress guard armed", "enforcer", "%s", "pinned", "tripwire", "%s", "refused",
		 "pin_path", "%s", pin, "cgroup", "%s", g->cgroup_path, "capabilities", "%s",
		 keep_net_bind ? "cap_net_bind_service" : "none");
	return 0;
}

static int hosts_init(struct guard_run *g)
{
	const char *const *names;
	size_t n, i;
	int ret;

	ret = guard_policy_hosts(g->policy, &names, &n);
	if (ret < 0)
		return ret;
	g->hosts = calloc(n ? n : 1, sizeof(*g->hosts));
	if (!g->hosts)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		g->hosts[i].name = names[i];
	g->n_hosts = n;
	return 0;
}

/*
 * The endpoint names, resolved now: start-up refuses a name that does not resolve or
 * resolves to an address the policy refuses (the configuration check said the same a
 * moment ago, unless DNS changed since).
 */
static int names_init(struct guard_run *g, const struct cfg *c, char *err, size_t errlen)
{
	struct guard_errs e = { 0 };
	const struct guard_name *v;
	int ret = guard_names_collect(c, g->policy, &g->names, &e);

	if (ret == 0 && e.n) {
		snprintf(err, errlen, "%s", e.buf);
		ret = -EPERM;
	}
	free(e.buf);
	if (ret < 0)
		return ret;
	g->n_names = guard_names_get(g->names, &v);
	g->allowed = calloc(g->n_names ? g->n_names : 1, sizeof(*g->allowed));
	if (!g->allowed)
		return -ENOMEM;
	for (size_t i = 0; i < g->n_names; i++)
		g->allowed[i] = (struct guard_name){ .key = v[i].key, .port = v[i].port };
	guard_run_names_round(g, true);
	for (size_t i = 0; i < g->n_names; i++) {
		if (guard_name_judge(&v[i], g->policy, err, errlen) < 0)
			return -EPERM;
	}
	return 0;
}

/*
 * What serve and `guard attach` share: the policy, and with air-gap on the allow list, the
 * allow_hosts slots and the endpoint names (resolved now). Returns 0 and *ret_g, or
 * -errno with the reason in err (nothing kept).
 */
static int run_prepare(const struct cfg *c, struct guard_run **ret_g, char *err, size_t errlen)
{
	const struct cfg_air_gap *ag = &c->air_gap;
	struct guard_run *g;
	int ret;

	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->ag = ag;
	pthread_mutex_init(&g->lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&g->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	g->denials = calloc(GUARD_RUN_DENIALS, sizeof(*g->denials));
	ret = g->denials ? guard_policy_new(c, &g->policy) : -ENOMEM;
	if (ret < 0) {
		snprintf(err, errlen, "building the egress policy: %s", strerror(-ret));
		goto fail;
	}
	guard_run_gates_init(g);
	if (ag->enabled) {
		ret = guard_policy_prefixes(g->policy, &g->base, &g->n_base);
		if (ret == 0)
			ret = hosts_init(g);
		if (ret < 0) {
			snprintf(err, errlen, "building the allow list: %s", strerror(-ret));
			goto fail;
		}
		ret = names_init(g, c, err, errlen);
		if (ret < 0)
			goto fail;
	}
	*ret_g = g;
	return 0;
fail:
	guard_run_stop(g);
	return ret;
}

/*
 * Without a kernel guard the server needs no capability (but binding a port below 1024):
 * started as root, it keeps none, as it keeps only CAP_NET_ADMIN with the guard. Before any
 * thread exists, like the guard's own drop. Not root: nothing to drop.
 */
static int drop_unneeded(bool keep_net_bind, char *err, size_t errlen)
{
	int ret = guard_caps_drop(keep_net_bind ? 1ULL << CAP_NET_BIND_SERVICE_ : 0);

	if (ret < 0)
		snprintf(err, errlen, "dropping capabilities: %s", strerror(-ret));
	return ret;
}

int guard_run_start(const struct cfg *c, bool keep_net_bind, struct guard_run **ret_g,
		    char *err, size_t errlen)
{
	const struct cfg_air_gap *ag;
	struct guard_run *g;
	uint64_t keep;
	int ret;

	if (!c || !ret_g || !err || !errlen)
		return -EINVAL;
	*err = '\0';
	ag = &c->air_gap;
	ret = run_prepare(c, &g, err, errlen);
	if (ret < 0)
		return ret;
	if (!ag->enabled) {
		g->mode = GUARD_RUN_OFF;
		log_info("egress guard off", "air_gap.enabled", "%s", "false");
		ret = drop_unneeded(keep_net_bind, err, errlen);
		if (ret < 0)
			goto fail;
		*ret_g = g;
		return 0;
	}
	if (ag->enforcer == CFG_ENFORCER_USERSPACE) {
		g->mode = GUARD_RUN_USERSPACE;
		log_warn("EGRESS GUARD: userspace enforcement only (air_gap.enforcer=userspace): "
			 "only this server's own clients (PostgreSQL, NATS, HTTP) are checked, "
			 "before each connection; the kernel does not enforce");
		ret = drop_unneeded(keep_net_bind, err, errlen);
		if (ret < 0)
			goto fail;
		*ret_g = g;
		return 0;
	}
	if (ag->enforcer == CFG_ENFORCER_PINNED) {
		ret = start_pinned(g, c, keep_net_bind, err, errlen);
		if (ret < 0)
			goto fail;
		*ret_g = g;
		return 0;
	}
	ret = start_ebpf(g, c, NULL, err, errlen);
	if (ret < 0 && g->mode != GUARD_RUN_EBPF && ag->enforcer == CFG_ENFORCER_AUTO &&
	    (ret == -EPERM || ret == -EOPNOTSUPP)) {
		g->mode = GUARD_RUN_USERSPACE;
		log_warn(
			"EGRESS GUARD DEGRADED: the eBPF guard cannot load here, falling back to "
			"userspace enforcement (air_gap.enforcer=auto): only this server's own "
			"clients (PostgreSQL, NATS, HTTP) are checked, before each connection; set "
			"air_gap.enforcer=ebpf to refuse to start instead",
			"reason", "%s", *err ? err : strerror(-ret));
		*err = '\0';
		*ret_g = g;
		return 0;
	}
	if (ret < 0) {
		if (!*err)
			snprintf(err, errlen, "%s", strerror(-ret));
		goto fail;
	}

	/* Attached and proven: keep only what the running guard needs. */
	keep = 1ULL << CAP_NET_ADMIN_;
	if (keep_net_bind)
		keep |= 1ULL << CAP_NET_BIND_SERVICE_;
	ret = guard_caps_drop(keep);
	if (ret < 0) {
		snprintf(err, errlen, "dropping capabilities after attaching: %s", strerror(-ret));
		goto fail;
	}
	/* The first lookups before serving, so that allowed names work from the start. */
	guard_run_resolve_round(g, GUARD_RUN_LOOKUP_MS);
	ret = -pthread_create(&g->watchdog, NULL, watchdog_main, g);
	if (ret == 0) {
		g->watchdog_started = true;
		if (g->n_hosts || g->n_names) {
			ret = -pthread_create(&g->resolver, NULL, guard_run_resolver_main, g);
			g->resolver_started = ret == 0;
		}
	}
	if (ret < 0) {
		snprintf(err, errlen, "starting the guard threads: %s", strerror(-ret));
		goto fail;
	}
	log_info("egress guard armed", "enforcer", "%s", "ebpf", "tripwire", "%s", "refused",
		 "allow_hosts", "%zu", g->n_hosts, "resolved", "%zu", g->n_resolved, "capabilities",
		 "%s", keep_net_bind ? "cap_net_admin,cap_net_bind_service" : "cap_net_admin");
	*ret_g = g;
	return 0;
fail:
	if (!g->enf) {
		/* Nothing reached the kernel: release everything. */
		guard_run_stop(g);
		return ret < 0 ? ret : -EIO;
	}
	/* Not an orderly stop: whatever got pinned stays armed (fail closed). */
	if (g->watchdog_started || g->resolver_started) {
		pthread_mutex_lock(&g->lock);
		g->stopping = true;
		pthread_cond_broadcast(&g->cond);
		pthread_mutex_unlock(&g->lock);
		if (g->watchdog_started)
			pthread_join(g->watchdog, NULL);
		if (g->resolver_started)
			pthread_join(g->resolver, NULL);
	}
	return ret < 0 ? ret : -EIO;
}

struct guard_run *guard_run_stop(struct guard_run *g)
{
	size_t h;

	if (!g)
		return NULL;
	pthread_mutex_lock(&g->lock);
	g->stopping = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
	if (g->watchdog_started)
		pthread_join(g->watchdog, NULL);
	if (g->resolver_started)
		pthread_join(g->resolver, NULL);
	g->enf = guard_enforcer_stop(g->enf);
	g->pinned = guard_pinned_close(g->pinned); /* never unpins: the pins are not ours */
	for (h = 0; h < g->n_hosts; h++) {
		struct host_slot *s = &g->hosts[h];

		if (s->busy && gai_cancel(&s->cb) != EAI_CANCELED) {
			struct gaicb *one[1] = { &s->cb };

			if (guard_lookup_wait(one, 1, 5000) < 0)
				return NULL; /* glibc still owns the slot: leak rather than corrupt */
		}
		if (s->cb.ar_result)
			freeaddrinfo(s->cb.ar_result);
	}
	free(g->hosts);
	free(g->resolved);
	free(g->allowed);
	guard_names_free(g->names);
	free(g->base);
	free(g->denials);
	guard_policy_free(g->policy);
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
	free(g);
	return NULL;
}

/*
 * `trstctl guard attach`: load, fill (endpoint and allow_hosts names resolved now), attach
 * to cgroup_path, pin under air_gap.bpf_pin_path, hand the counters and rule maps to
 * owner:group, run the tripwire from inside the cgroup when a child can join it, and
 * leave everything pinned and attached.
 */
int guard_run_attach(const struct cfg *c, const char *cgroup_path, unsigned int owner,
		     unsigned int group, char *err, size_t errlen)
{
	struct guard_run *g = NULL;
	int ret;

	if (!c || !cgroup_path || !err || !errlen)
		return -EINVAL;
	*err = '\0';
	if (!c->air_gap.enabled) {
		snprintf(err, errlen, "air-gap is off (TRSTCTL_AIRGAP_ENABLED=false): nothing to attach");
		return -EINVAL;
	}
	ret = run_prepare(c, &g, err, errlen);
	if (ret < 0)
		return ret;
	ret = start_ebpf(g, c, cgroup_path, err, errlen);
	if (ret < 0) {
		if (!*err)
			snprintf(err, errlen, "%s", strerror(-ret));
		goto out;
	}
	if (!g->pin_path[0]) {
		ret = -EINVAL;
		snprintf(err, errlen, "the guard was not pinned: nothing would outlive this command");
		goto out;
	}
	/* allow_hosts names into the rule set before anyone relies on it */
	guard_run_resolve_round(g, GUARD_RUN_LOOKUP_MS);
	ret = guard_enforcer_handover(g->enf, owner, group);
	if (ret < 0) {
		snprintf(err, errlen, "handing the pins of %s to %u:%u: %s", g->pin_path, owner,
			 group, strerror(-ret));
		goto out;
	}
	ret = guard_enforcer_tripwire(g->enf);
	if (ret == -EPROTO) {
		snprintf(err, errlen, "the tripwire was not refused in cgroup %s: guard not armed",
			 g->cgroup_path);
		goto out;
	}
	if (ret < 0)
		log_warn("tripwire not run from inside the cgroup (the server proves the guard "
			 "at start-up)", "cgroup", "%s", g->cgroup_path, "error", "%s",
			 strerror(-ret));
	else
		log_info("egress guard tripwire refused", "cgroup", "%s", g->cgroup_path);
	log_info("egress guard attached and pinned", "cgroup", "%s", g->cgroup_path, "pin_path",
		 "%s", g->pin_path, "owner", "%u", owner, "rules", "%zu",
		 g->n_base + g->n_resolved);
	ret = 0;
out:
	/* Never an orderly stop: what got attached and pinned stays (fail closed). */
	g->enf = guard_enforcer_release(g->enf);
	guard_run_stop(g);
	return ret;
}

/* ---- queries ---------------------------------------------------------------------- */

struct guard_policy *guard_run_policy(struct guard_run *g)
{
	return g ? g->policy : NULL;
}

const struct cfg_air_gap *guard_run_air_gap(struct guard_run *g)
{
	return g ? g->ag : NULL;
}

bool guard_run_ready(struct guard_run *g)
{
	char why[512];
	bool ok;

	if (!g)
		return false;
	if (!g->pinned)
		return g->mode != GUARD_RUN_EBPF || atomic_load(&g->armed);
	/* Pinned: every pin must still be there (a removed link pin means no guard). */
	ok = guard_pinned_check(g->pinned, why, sizeof(why)) == 0;
	if (atomic_exchange(&g->pins_ok, ok) != ok) {
		if (ok)
			log_info("egress guard pins back", "pin_path", "%s", g->pin_path);
		else
			log_error("EGRESS GUARD PIN MISSING: not ready", "reason", "%s", why);
	}
	return ok && atomic_load(&g->armed);
}

int guard_run_status(struct guard_run *g, struct guard_run_status *ret_status)
{
	struct guard_run_status s = { 0 };
	struct guard_counters k;
	int ret;

	if (!g || !ret_status)
		return -EINVAL;
	s.enabled = g->ag->enabled;
	s.mode = g->mode;
	s.userspace_trips = guard_policy_userspace_trips(g->policy);
	for (int c = 0; c < GUARD_CLIENTS; c++)
		s.userspace_trips_by_client[c] = guard_policy_client_trips(g->policy, c);
	switch (g->mode) {
	case GUARD_RUN_EBPF:
		s.coverage = "kernel";
		s.coverage_detail = "the kernel guard checks every connect() and sendmsg() of "
				    "every process in the guarded cgroup";
		break;
	case GUARD_RUN_USERSPACE:
		s.coverage = "own_clients";
		s.coverage_detail = guard_run_note(g);
		break;
	default:
		s.coverage = "none";
		s.coverage_detail = "air-gap is off: no outbound destination is checked";
	}
	if (g->mode == GUARD_RUN_EBPF) {
		ret = g->pinned ? guard_pinned_counters(g->pinned, &k)
				: guard_enforcer_counters(g->enf, &k);
		if (ret < 0)
			return ret;
		s.armed = atomic_load(&g->armed);
		s.trips = k.total;
		s.trips_by_hook[0] = k.connect4;
		s.trips_by_hook[1] = k.connect6;
		s.trips_by_hook[2] = k.sendmsg4;
		s.trips_by_hook[3] = k.sendmsg6;
		s.trips_by_hook[4] = k.sock_create;
		s.tripwire_hits = k.tripwire;
		s.events_dropped = k.events_dropped;
		s.pin_path = g->pin_path[0] ? g->pin_path : NULL;
		s.cgroup_path = g->cgroup_path;
		pthread_mutex_lock(&g->lock);
		s.resolved = g->n_resolved;
		pthread_mutex_unlock(&g->lock);
	}
	*ret_status = s;
	return 0;
}

int guard_run_tripwire(struct guard_run *g, char *detail, size_t len)
{
	struct guard_counters k;
	int ret;

	if (!g)
		return -EINVAL;
	if (g->mode != GUARD_RUN_EBPF) {
		snprintf(detail, len, "no kernel guard (enforcer %s): nothing to trip",
			 guard_run_mode_name(g->mode));
		return -EOPNOTSUPP;
	}
	if (g->pinned) {
		char why[256] = "";

		ret = guard_pinned_check(g->pinned, why, sizeof(why));
		if (ret == 0)
			ret = guard_pinned_tripwire(g->pinned);
		if (ret < 0) {
			atomic_store(&g->armed, false);
			snprintf(detail, len, "tripwire NOT refused: %s",
				 *why ? why : ret == -EPROTO ? "the pinned guard let it through" :
							       strerror(-ret));
			log_error("egress guard tripwire failed", "error", "%s", detail);
			return ret;
		}
		atomic_store(&g->armed, true);
		guard_pinned_counters(g->pinned, &k);
		snprintf(detail, len,
			 "refused with EPERM by the pinned kernel guard %s (tripwire hits %llu)",
			 g->pin_path, (unsigned long long)k.tripwire);
		return 0;
	}
	ret = guard_enforcer_confirm(g->enf);
	if (ret == 0)
		ret = guard_enforcer_tripwire(g->enf);
	if (ret < 0) {
		atomic_store(&g->armed, false);
		snprintf(detail, len, "tripwire NOT refused: %s",
			 ret == -EPROTO ? "the kernel guard let it through" : strerror(-ret));
		log_error("egress guard tripwire failed", "error", "%s", detail);
		return ret;
	}
	atomic_store(&g->armed, true);
	guard_enforcer_counters(g->enf, &k);
	snprintf(detail, len, "refused with EPERM by the kernel guard on %s (tripwire hits %llu)",
		 g->cgroup_path, (unsigned long long)k.tripwire);
	return 0;
}
