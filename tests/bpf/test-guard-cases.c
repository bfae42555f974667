/*
 * test-guard-cases: the egress policy (server/guard/policy.c) and the kernel enforcer
 * judged against the same table, tests/egress-cases.txt. For each `policy` block the
 * policy is built from an air_gap block, its guard_policy_prefixes() list is loaded into
 * the kernel guard, and every case is asked of both: guard_policy_allows_addr(), and a
 * TCP connect from a probe in the guarded cgroup (EPERM = denied, anything else = allowed;
 * each probe in a fresh network namespace with only lo up, so an allowed public address
 * ends in ENETUNREACH). Root only; exits 77 saying why when BPF cannot load here.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cfg.h"
#include "enforcer.h"
#include "guard.h"
#include "probe.h"

#define MAX_LIST 16

static char cgroup_main[4096];
static int failures, checked;

/* One `policy` line, split into an air_gap block (strings point into buf). */
struct policy_line {
	char buf[1024];
	char *cidrs[MAX_LIST];
	char *hosts[MAX_LIST];
	struct cfg_air_gap ag;
};

static void cleanup(void)
{
	probe_cgroup_remove(cgroup_main);
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static size_t split_list(char *s, char **out)
{
	size_t n = 0;

	if (!strcmp(s, "-"))
		return 0;
	for (char *tok = strtok(s, ","); tok && n < MAX_LIST; tok = strtok(NULL, ","))
		out[n++] = tok;
	return n;
}

static int parse_policy(const char *line, struct policy_line *pl)
{
	char *priv, *cidrs, *hosts;

	memset(pl, 0, sizeof(*pl));
	snprintf(pl->buf, sizeof(pl->buf), "%s", line);
	priv = strstr(pl->buf, "allow_private=");
	cidrs = strstr(pl->buf, "cidrs=");
	hosts = strstr(pl->buf, "hosts=");
	if (!priv || !cidrs || !hosts)
		return -EINVAL;
	pl->ag.enabled = true;
	pl->ag.allow_private = !strncmp(priv + 14, "true", 4);
	cidrs += 6;
	hosts += 6;
	cidrs[strcspn(cidrs, " \n")] = '\0';
	hosts[strcspn(hosts, " \n")] = '\0';
	pl->ag.n_allow_cidrs = split_list(cidrs, pl->cidrs);
	pl->ag.allow_cidrs = pl->cidrs;
	pl->ag.n_allow_hosts = split_list(hosts, pl->hosts);
	pl->ag.allow_hosts = pl->hosts;
	return 0;
}

/* Loads a policy block into the kernel guard (start on the first, update afterwards). */
static int load_policy(const struct policy_line *pl, struct guard_policy **p,
		       struct guard_enforcer **e, char *err, size_t errlen)
{
	struct guard_enforcer_config cfg = { .pin_path = "", .cgroup_path = cgroup_main,
					      .err = err, .err_size = errlen };
	struct guard_prefix *prefixes = NULL;
	size_t n = 0;
	int ret;

	*p = guard_policy_free(*p);
	ret = guard_policy_new_air_gap(&pl->ag, p);
	if (ret == 0)
		ret = guard_policy_prefixes(*p, &prefixes, &n);
	if (ret == 0)
		ret = *e ? guard_enforcer_update(*e, prefixes, n) :
			   guard_enforcer_start(&cfg, prefixes, n, e);
	free(prefixes);
	return ret;
}

static void check_case(struct guard_policy *p, const char *addr, unsigned int port, bool allow,
		       int lineno)
{
	struct probe pr = { .op = PROBE_CONNECT, .type = SOCK_STREAM, .addr = addr,
			    .port = (uint16_t)port, .expect = allow ? PROBE_NOT_EPERM : EPERM,
			    .name = addr };
	struct net_addr a;
	bool user;
	int r;

	pr.family = strchr(addr, ':') ? AF_INET6 : AF_INET;
	if (net_addr_parse(addr, &a) < 0) {
		printf("not ok line %d: cannot parse %s\n", lineno, addr);
		failures++;
		return;
	}
	user = guard_policy_allows_addr(p, &a, (uint16_t)port);
	r = probe_run(&pr, cgroup_main);
	checked++;
	if (user != allow) {
		printf("not ok line %d: %s port %u: policy says %s, table says %s\n", lineno, addr,
		       port, user ? "allow" : "deny", allow ? "allow" : "deny");
		failures++;
	}
	if (r < 0 || (allow ? r == EPERM : r != EPERM)) {
		printf("not ok line %d: %s port %u: kernel gave %s, table says %s\n", lineno, addr,
		       port, r < 0 ? "probe failure" : r ? strerror(r) : "success",
		       allow ? "allow" : "deny");
		failures++;
	}
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : EGRESS_CASES;
	struct guard_enforcer *e = NULL;
	struct guard_policy *p = NULL;
	struct policy_line pl;
	char line[1024], err[256] = "", name[64];
	int lineno = 0, ret;
	FILE *f;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		printf("SKIP: needs root (network namespaces, cgroups, BPF)\n");
		return 77;
	}
	ret = probe_isolate();
	if (ret < 0) {
		printf("SKIP: cannot enter a private network namespace: %s\n", strerror(-ret));
		return 77;
	}
	f = fopen(path, "re");
	if (!f) {
		printf("not ok cannot open %s: %s\n", path, strerror(errno));
		return 1;
	}
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	snprintf(name, sizeof(name), "trstctl-test-cases.%d", (int)getpid());
	ret = probe_cgroup_create(name, cgroup_main, sizeof(cgroup_main));
	if (ret < 0) {
		printf("SKIP: no cgroup v2 to create a test cgroup in: %s\n", strerror(-ret));
		return 77;
	}

	while (fgets(line, sizeof(line), f)) {
		char addr[64], verdict[16];
		unsigned int port;

		lineno++;
		if (line[0] == '#' || line[strspn(line, " \t\n")] == '\0')
			continue;
		if (!strncmp(line, "policy ", 7)) {
			if (parse_policy(line + 7, &pl) < 0) {
				printf("not ok line %d: bad policy line\n", lineno);
				failures++;
				break;
			}
			ret = load_policy(&pl, &p, &e, err, sizeof(err));
			if (!e && (ret == -EPERM || ret == -EOPNOTSUPP)) {
				printf("SKIP: the eBPF guard cannot load here: %s\n", err);
				fclose(f);
				return 77;
			}
			if (ret < 0) {
				printf("not ok line %d: loading the policy: %s (%s)\n", lineno,
				       strerror(-ret), err);
				failures++;
				break;
			}
			printf("# line %d: %s", lineno, line);
			continue;
		}
		if (sscanf(line, "%63s %u %15s", addr, &port, verdict) != 3 || !p ||
		    (strcmp(verdict, "allow") && strcmp(verdict, "deny"))) {
			printf("not ok line %d: bad case line\n", lineno);
			failures++;
			continue;
		}
		check_case(p, addr, port, !strcmp(verdict, "allow"), lineno);
	}
	fclose(f);
	e = guard_enforcer_stop(e);
	guard_policy_free(p);
	printf("%s: %d cases, %d failure(s)\n", failures ? "FAIL" : "PASS", checked, failures);
	return failures || checked == 0 ? 1 : 0;
}
