/*
 * test-guard-enforcer: the eBPF egress guard against the real kernel. Root only; the whole
 * test runs in its own network and mount namespaces (only lo up, a private bpffs for the
 * pins), each probe in a further netns of its own, in a throw-away cgroup removed at the
 * end, also on failure. Exits 77 with a reason when BPF cannot be loaded here.
 *
 * Cases: the deny matrix (each denial EPERM and counted exactly once, in the right hook
 * counter), the allow matrix (never EPERM), an atomic rule update (allow_private off),
 * the tripwire counted apart, the ring buffer, the pinned counters read by bpftool,
 * take-over of pinned links after a crash, orderly stop, the host-root cgroup move, and
 * start-up without capabilities.
 */
#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "enforcer-int.h"
#include "enforcer.h"
#include "probe.h"

static int failures;
static char bpffs_dir[PATH_MAX];
static char cgroup_main[PATH_MAX];
static char cgroup_self[PATH_MAX];

#define CHECK(cond, ...)                                                                   \
	do {                                                                               \
		if (!(cond)) {                                                             \
			failures++;                                                        \
			printf("not ok %s:%d: ", __FILE__, __LINE__);                      \
			printf(__VA_ARGS__);                                               \
			printf("\n");                                                      \
		}                                                                          \
	} while (0)

static void cleanup(void)
{
	probe_cgroup_remove(cgroup_main);
	probe_cgroup_remove(cgroup_self);
	if (bpffs_dir[0]) {
		umount2(bpffs_dir, MNT_DETACH);
		rmdir(bpffs_dir);
	}
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static const struct probe deny_matrix[] = {
	{ "tcp4 public", PROBE_CONNECT, AF_INET, SOCK_STREAM, 0, "8.8.8.8", 443, EPERM, "connect4" },
	{ "udp4 connect public", PROBE_CONNECT, AF_INET, SOCK_DGRAM, 0, "8.8.8.8", 53, EPERM,
	  "connect4" },
	{ "tcp6 public", PROBE_CONNECT, AF_INET6, SOCK_STREAM, 0, "2001:4860:4860::8888", 443,
	  EPERM, "connect6" },
	{ "udp6 connect public", PROBE_CONNECT, AF_INET6, SOCK_DGRAM, 0, "2001:4860:4860::8888", 53,
	  EPERM, "connect6" },
	{ "tcp6 v4-mapped public", PROBE_CONNECT, AF_INET6, SOCK_STREAM, 0, "::ffff:8.8.8.8", 443,
	  EPERM, "v4mapped" },
	{ "tcp6 nat64 public", PROBE_CONNECT, AF_INET6, SOCK_STREAM, 0, "64:ff9b::8.8.8.8", 443,
	  EPERM, "nat64" },
	{ "udp4 sendto public", PROBE_SENDTO, AF_INET, SOCK_DGRAM, 0, "8.8.8.8", 53, EPERM,
	  "sendmsg4" },
	{ "udp6 sendto public", PROBE_SENDTO, AF_INET6, SOCK_DGRAM, 0, "2001:4860:4860::8888", 53,
	  EPERM, "sendmsg6" },
	{ "udp6 sendto v4-mapped public", PROBE_SENDTO, AF_INET6, SOCK_DGRAM, 0, "::ffff:8.8.8.8",
	  53, EPERM, "total" },
	{ "udp6 sendto nat64 public", PROBE_SENDTO, AF_INET6, SOCK_DGRAM, 0, "64:ff9b::8.8.4.4", 53,
	  EPERM, "nat64" },
	{ "udp4 sendmmsg public", PROBE_SENDMMSG, AF_INET, SOCK_DGRAM, 0, "8.8.8.8", 53, EPERM,
	  "sendmsg4" },
	{ "tcp4 fast open public", PROBE_TFO, AF_INET, SOCK_STREAM, 0, "8.8.8.8", 443, EPERM,
	  "connect4" },
	{ "raw4 socket", PROBE_SOCKET, AF_INET, SOCK_RAW, IPPROTO_ICMP, NULL, 0, EPERM,
	  "sock_create" },
	{ "raw6 socket", PROBE_SOCKET, AF_INET6, SOCK_RAW, IPPROTO_ICMPV6, NULL, 0, EPERM,
	  "sock_create" },
	{ "ping4 socket", PROBE_SOCKET, AF_INET, SOCK_DGRAM, IPPROTO_ICMP, NULL, 0, EPERM,
	  "sock_create" },
	{ "ping6 socket", PROBE_SOCKET, AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6, NULL, 0, EPERM,
	  "sock_create" },
	{ "metadata address inside an allowed range", PROBE_CONNECT, AF_INET, SOCK_STREAM, 0,
	  "169.254.169.254", 80, EPERM, "connect4" },
	{ "allowed address, other port", PROBE_CONNECT, AF_INET, SOCK_STREAM, 0, "192.0.2.10", 80,
	  EPERM, "connect4" },
	{ "public next to an allowed /24", PROBE_CONNECT, AF_INET, SOCK_STREAM, 0, "198.51.101.1",
	  443, EPERM, "connect4" },
	{ "ULA metadata (IMDSv6) denied", PROBE_CONNECT, AF_INET6, SOCK_STREAM, 0, "fd00:ec2::254",
	  80, EPERM, "connect6" },
	{ "io_uring connect public", PROBE_URING, AF_INET, SOCK_STREAM, 0, "8.8.8.8", 443, EPERM,
	  "connect4" },
};

static const struct probe allow_matrix[] = {
	{ "tcp4 loopback", PROBE_CONNECT, AF_INET, SOCK_STREAM, 0, "127.0.0.1", 1, ECONNREFUSED, NULL },
	{ "tcp6 loopback", PROBE_CONNECT, AF_INET6, SOCK_STREAM, 0, "::1", 1, ECONNREFUSED, NULL },
	{ "tcp6 v4-mapped loopback", PROBE_CONNECT, AF_INET6, SOCK_STREAM, 0, "::ffff:127.0.0.1", 1,
	  ECONNREFUSED, NULL },
	{ "udp4 sendto loopback", PROBE_SENDTO, AF_INET, SOCK_DGRAM, 0, "127.0.0.1", 9, 0, NULL },
	{ "udp6 sendto loopback", PROBE_SENDTO, AF_INET6, SOCK_DGRAM, 0, "::1", 9, 0, NULL },
	{ "tcp4 private 10/8", PROBE_CONNECT, AF_INET, SOCK_STREAM, 0, "10.1.2.3", 443,
	  PROBE_NOT_EPERM, NULL },
	{ "udp4 sendto private 192.168/16", PROBE_SENDTO, AF_INET, SOCK_DGRAM, 0, "192.168.1.1", 53,
	  PROBE_NOT_EPERM, NULL },
	{ "tcp6 ULA", PROBE_CONNECT, AF_INET6, SOCK_STREAM, 0, "fd12::1", 443, PROBE_NOT_EPERM, NULL },
	{ "tcp6 v4-mapped private", PROBE_CONNECT, AF_INET6, SOCK_STREAM, 0, "::ffff:10.0.0.1", 443,
	  PROBE_NOT_EPERM, NULL },
	{ "link-local outside the metadata address", PROBE_CONNECT, AF_INET, SOCK_STREAM, 0,
	  "169.254.1.1", 80, PROBE_NOT_EPERM, NULL },
	{ "allowed CIDR", PROBE_CONNECT, AF_INET, SOCK_STREAM, 0, "198.51.100.7", 22,
	  PROBE_NOT_EPERM, NULL },
	{ "allowed CIDR, udp sendto", PROBE_SENDTO, AF_INET, SOCK_DGRAM, 0, "198.51.100.7", 53,
	  PROBE_NOT_EPERM, NULL },
	{ "allowed CIDR with its port", PROBE_CONNECT, AF_INET, SOCK_STREAM, 0, "192.0.2.10", 443,
	  PROBE_NOT_EPERM, NULL },
	{ "allowed v6 CIDR", PROBE_CONNECT, AF_INET6, SOCK_DGRAM, 0, "2001:db8:1::5", 443,
	  PROBE_NOT_EPERM, NULL },
	{ "nat64 of an allowed v4 CIDR", PROBE_CONNECT, AF_INET6, SOCK_STREAM, 0,
	  "64:ff9b::198.51.100.9", 443, PROBE_NOT_EPERM, NULL },
	{ "tcp socket", PROBE_SOCKET, AF_INET, SOCK_STREAM, 0, NULL, 0, 0, NULL },
};

static const struct probe private_off_matrix[] = {
	{ "tcp4 private with allow_private off", PROBE_CONNECT, AF_INET, SOCK_STREAM, 0, "10.1.2.3",
	  443, EPERM, "connect4" },
	{ "tcp6 ULA with allow_private off", PROBE_CONNECT, AF_INET6, SOCK_STREAM, 0, "fd12::1", 443,
	  EPERM, "connect6" },
	{ "udp6 sendto v4-mapped private off", PROBE_SENDTO, AF_INET6, SOCK_DGRAM, 0,
	  "::ffff:192.168.1.1", 53, EPERM, "total" },
	{ "loopback still allowed", PROBE_CONNECT, AF_INET, SOCK_STREAM, 0, "127.0.0.1", 1,
	  ECONNREFUSED, NULL },
	{ "allowed CIDR still allowed", PROBE_CONNECT, AF_INET, SOCK_STREAM, 0, "198.51.100.7", 22,
	  PROBE_NOT_EPERM, NULL },
};

/* Run a table; returns the number of denials the kernel should have counted. */
static int run_matrix(struct guard_enforcer *e, const struct probe *t, size_t n)
{
	int denials = 0;

	for (size_t i = 0; i < n; i++) {
		const struct probe *p = &t[i];
		struct guard_counters before, after;
		int r;

		CHECK(guard_enforcer_counters(e, &before) == 0, "counters");
		r = probe_run(p, cgroup_main);
		CHECK(guard_enforcer_counters(e, &after) == 0, "counters");
		if (r == PROBE_SKIPPED) {
			printf("skip %s: not available on this kernel\n", p->name);
			continue;
		}
		if (p->expect == PROBE_NOT_EPERM)
			CHECK(r >= 0 && r != EPERM, "%s: got %s, want anything but EPERM", p->name,
			      r < 0 ? "probe failure" : strerror(r));
		else
			CHECK(r == p->expect, "%s: got %s, want %s", p->name,
			      r < 0 ? "probe failure" : strerror(r), strerror(p->expect));
		if (p->expect == EPERM) {
			denials++;
			CHECK(after.total == before.total + 1, "%s: total moved by %llu, want 1",
			      p->name, (unsigned long long)(after.total - before.total));
			CHECK(probe_counter(&after, p->hook) == probe_counter(&before, p->hook) + 1,
			      "%s: counter %s did not move by one", p->name, p->hook);
		} else {
			CHECK(after.total == before.total, "%s: allowed but counted", p->name);
		}
		CHECK(after.tripwire == before.tripwire, "%s: tripwire moved", p->name);
		if (r != PROBE_SKIPPED)
			printf("ok %s -> %s\n", p->name, r == 0 ? "success" : strerror(r));
	}
	return denials;
}

/* bpftool's view of the pinned counters, as a monitor reads them. */
static long long bpftool_total(const char *pin)
{
	char cmd[PATH_MAX + 64], buf[4096];
	long long total = -1;
	size_t len;
	char *p;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "bpftool -j map dump pinned %s/trips 2>/dev/null", pin);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	len = fread(buf, 1, sizeof(buf) - 1, f);
	buf[len] = '\0';
	if (pclose(f) != 0)
		return -2;
	p = strstr(buf, "\"total\":");
	if (p)
		total = strtoll(p + 8, NULL, 10);
	return total;
}

static bool exists(const char *dir, const char *name)
{
	char path[PATH_MAX * 2];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0;
}

static void test_matrix(const char *pin)
{
	struct guard_prefix prefixes[64];
	struct guard_denial d[512];
	struct guard_enforcer_config cfg = { 0 };
	struct guard_enforcer_info info;
	struct guard_counters c;
	struct guard_enforcer *e = NULL;
	const struct probe tcp_public = deny_matrix[0];
	char err[256] = "";
	int denials = 0, ret;
	size_t n, nd, i;
	bool found_probe = false, found_tripwire = false;

	cfg.pin_path = pin;
	cfg.cgroup_path = cgroup_main;
	cfg.denial_capacity = 512;
	cfg.err = err;
	cfg.err_size = sizeof(err);
	n = probe_prefixes(true, prefixes, 64);
	ret = guard_enforcer_start(&cfg, prefixes, n, &e);
	CHECK(ret == 0, "start: %s (%s)", strerror(-ret), err);
	if (ret < 0)
		return;
	CHECK(guard_enforcer_info(e, &info) == 0 && !info.moved && info.took_over == 0,
	      "fresh start");
	CHECK(guard_enforcer_confirm(e) == 0, "confirm after start");
	CHECK(exists(pin, "trips") && exists(pin, "link_connect4") &&
		      exists(pin, "link_sock_create"),
	      "pins under %s", pin);

	denials += run_matrix(e, deny_matrix, sizeof(deny_matrix) / sizeof(deny_matrix[0]));
	denials += run_matrix(e, allow_matrix, sizeof(allow_matrix) / sizeof(allow_matrix[0]));

	/* allow_private off: a whole new rule set, swapped in atomically. */
	n = probe_prefixes(false, prefixes, 64);
	CHECK(guard_enforcer_update(e, prefixes, n) == 0, "update");
	denials += run_matrix(e, private_off_matrix,
			      sizeof(private_off_matrix) / sizeof(private_off_matrix[0]));
	/* Same list again: now written over the first set, whose private entries must go. */
	CHECK(guard_enforcer_update(e, prefixes, n) == 0, "second update");
	denials += run_matrix(e, private_off_matrix,
			      sizeof(private_off_matrix) / sizeof(private_off_matrix[0]));
	/* A bad list is refused and leaves the active rules alone. */
	prefixes[n] = prefixes[0];
	prefixes[n].prefix_len = 33;
	CHECK(guard_enforcer_update(e, prefixes, n + 1) == -EINVAL, "prefix /33 refused");
	denials += run_matrix(e, private_off_matrix, 1);

	/* The tripwire is refused and counted apart. */
	ret = guard_enforcer_tripwire(e);
	CHECK(ret == 0, "tripwire: %s", strerror(-ret));
	CHECK(guard_enforcer_counters(e, &c) == 0, "counters");
	CHECK(c.tripwire == 1, "tripwire counter %llu, want 1", (unsigned long long)c.tripwire);
	CHECK(c.total == (uint64_t)denials, "total %llu, want %d (the number of denials)",
	      (unsigned long long)c.total, denials);
	CHECK(c.total == c.connect4 + c.connect6 + c.sendmsg4 + c.sendmsg6 + c.sock_create,
	      "total is the sum of the hooks");
	CHECK(c.events_dropped == 0, "no events dropped");
	printf("ok counters: total %llu (connect4 %llu connect6 %llu sendmsg4 %llu sendmsg6 %llu "
	       "sock_create %llu v4mapped %llu nat64 %llu) tripwire %llu\n",
	       (unsigned long long)c.total, (unsigned long long)c.connect4,
	       (unsigned long long)c.connect6, (unsigned long long)c.sendmsg4,
	       (unsigned long long)c.sendmsg6, (unsigned long long)c.sock_create,
	       (unsigned long long)c.v4mapped, (unsigned long long)c.nat64,
	       (unsigned long long)c.tripwire);

	/* bpftool reads the same numbers from the pin. */
	long long bt = bpftool_total(pin);

	if (bt == -2)
		printf("skip bpftool check: bpftool did not run\n");
	else
		CHECK(bt == (long long)c.total, "bpftool total %lld, want %llu", bt,
		      (unsigned long long)c.total);

	/* The ring buffer saw every denial, the tripwire marked as such. */
	CHECK(guard_enforcer_flush(e) == 0, "flush");
	nd = guard_enforcer_denials(e, d, 512);
	CHECK(nd == c.total + c.tripwire, "%zu denials recorded, want %llu", nd,
	      (unsigned long long)(c.total + c.tripwire));
	for (i = 0; i < nd; i++) {
		if (d[i].tripwire && d[i].family == AF_INET && d[i].port == 443 &&
		    !memcmp(d[i].addr, "\xcb\x00\x71\x01", 4))
			found_tripwire = true;
		if (!d[i].tripwire && d[i].family == AF_INET && d[i].port == 443 &&
		    !memcmp(d[i].addr, "\x08\x08\x08\x08", 4) && !strcmp(d[i].hook, "connect4") &&
		    d[i].protocol == IPPROTO_TCP && d[i].pid != 0 && d[i].time.tv_sec > 0 &&
		    (!info.comm || !strcmp(d[i].comm, "guard-probe")))
			found_probe = true;
	}
	CHECK(found_tripwire, "tripwire in the ring buffer (newest: %s)", nd ? d[0].hook : "-");
	CHECK(found_probe, "tcp 8.8.8.8:443 denial in the ring buffer with pid and comm");

	/* A crash keeps the pinned guard armed; a restart takes the links over. */
	pid_t pid = fork();

	if (pid == 0) {
		struct guard_enforcer *e2 = NULL;
		struct guard_enforcer_info i2;

		if (guard_enforcer_start(&cfg, prefixes, n, &e2) < 0 ||
		    guard_enforcer_info(e2, &i2) < 0 || i2.took_over != 5 ||
		    guard_enforcer_confirm(e2) < 0)
			_exit(1);
		_exit(0); /* "crash": no stop, the pins stay */
	}
	int status = 0;

	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "restart took over 5 pinned links");
	CHECK(probe_run(&tcp_public, cgroup_main) == EPERM, "guard armed after the loader crashed");
	CHECK(guard_enforcer_counters(e, &c) == 0 && c.total == (uint64_t)denials + 1,
	      "counters kept across the restart (%llu)", (unsigned long long)c.total);

	/* Orderly stop: links detached, pins gone, traffic no longer refused. */
	e = guard_enforcer_stop(e);
	CHECK(!exists(pin, "trips") && !exists(pin, "link_connect4"), "pins removed on stop");
	CHECK(access(pin, F_OK) < 0, "pin folder removed on stop");
	ret = probe_run(&tcp_public, cgroup_main);
	CHECK(ret == ENETUNREACH, "after stop: %s, want ENETUNREACH", strerror(ret));
}

/* A process in the host root moves itself into a child cgroup before attaching. */
static void test_self_cgroup(void)
{
	struct guard_prefix prefixes[64];
	char mnt[PATH_MAX - 128], procs[PATH_MAX], name[64];
	int status = 0;
	pid_t pid;

	if (guard_cgroup2_mount(mnt, sizeof(mnt)) < 0)
		return;
	snprintf(name, sizeof(name), "trstctl-test-self.%d", (int)getpid());
	snprintf(cgroup_self, sizeof(cgroup_self), "%s/%s", mnt, name);
	snprintf(procs, sizeof(procs), "%s", mnt);
	pid = fork();
	if (pid == 0) {
		struct guard_enforcer_config cfg = { .pin_path = "", .cgroup_name = name };
		const struct probe p = deny_matrix[0];
		struct guard_enforcer_info info;
		struct guard_enforcer *e = NULL;
		size_t n = probe_prefixes(true, prefixes, 64);
		int r;

		/* Start from the host root, as on a bare VM. */
		if (guard_cgroup_join(procs) < 0)
			_exit(2);
		if (guard_enforcer_start(&cfg, prefixes, n, &e) < 0)
			_exit(3);
		if (guard_enforcer_info(e, &info) < 0 || !info.moved ||
		    strcmp(info.cgroup_path, cgroup_self) != 0 || info.pin_path)
			_exit(4);
		if (guard_cgroup_self_id() != info.cgroup_id)
			_exit(5);
		if (guard_enforcer_tripwire(e) < 0)
			_exit(6);
		r = probe_run(&p, NULL); /* the child inherits our cgroup */
		e = guard_enforcer_stop(e);
		/* the orderly stop moved us back and removed the cgroup it had created */
		if (access(cgroup_self, F_OK) == 0)
			_exit(8);
		guard_cgroup_join(procs);
		_exit(r == EPERM ? 0 : 7);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "host root: moved into %s, guarded, removed on stop (child status %d)", cgroup_self,
	      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	probe_cgroup_remove(cgroup_self);
	cgroup_self[0] = '\0';
}

/* Without CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN start reports -EPERM, nothing else. */
static void test_no_caps(void)
{
	struct guard_prefix prefixes[64];
	int status = 0;
	pid_t pid;

	pid = fork();
	if (pid == 0) {
		struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
		struct __user_cap_data_struct data[2];
		struct guard_enforcer_config cfg = { .pin_path = "", .cgroup_path = cgroup_main };
		struct guard_enforcer *e = NULL;
		size_t n = probe_prefixes(true, prefixes, 64);

		if (syscall(SYS_capget, &hdr, data) < 0)
			_exit(2);
		data[CAP_SYS_ADMIN / 32].effective &= ~(1U << (CAP_SYS_ADMIN % 32));
		data[CAP_NET_ADMIN / 32].effective &= ~(1U << (CAP_NET_ADMIN % 32));
		data[CAP_BPF / 32].effective &= ~(1U << (CAP_BPF % 32));
		if (syscall(SYS_capset, &hdr, data) < 0)
			_exit(3);
		_exit(guard_enforcer_start(&cfg, prefixes, n, &e) == -EPERM ? 0 : 4);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "no capabilities -> -EPERM (%d)",
	      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

int main(void)
{
	struct guard_enforcer_config probe_cfg = { .pin_path = "" };
	struct guard_prefix prefixes[64];
	struct guard_enforcer *e = NULL;
	char pin[PATH_MAX + 8], name[64], err[256] = "";
	int ret;

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
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGSEGV, on_signal);
	signal(SIGABRT, on_signal);

	snprintf(name, sizeof(name), "trstctl-test-bpf.%d", (int)getpid());
	ret = probe_cgroup_create(name, cgroup_main, sizeof(cgroup_main));
	if (ret < 0) {
		printf("SKIP: no cgroup v2 to create a test cgroup in: %s\n", strerror(-ret));
		return 77;
	}

	/* Preflight: can this machine load and attach the guard at all? */
	probe_cfg.cgroup_path = cgroup_main;
	probe_cfg.err = err;
	probe_cfg.err_size = sizeof(err);
	ret = guard_enforcer_start(&probe_cfg, prefixes, probe_prefixes(true, prefixes, 64), &e);
	if (ret == -EPERM || ret == -EOPNOTSUPP) {
		printf("SKIP: the eBPF guard cannot load here: %s\n", err);
		return 77;
	}
	if (ret < 0) {
		printf("not ok preflight: %s\n", err);
		return 1;
	}
	e = guard_enforcer_stop(e);

	ret = probe_bpffs(bpffs_dir, sizeof(bpffs_dir));
	if (ret < 0) {
		printf("not ok cannot mount a private bpffs: %s\n", strerror(-ret));
		return 1;
	}
	snprintf(pin, sizeof(pin), "%s/trstctl", bpffs_dir);

	test_matrix(pin);
	test_self_cgroup();
	test_no_caps();

	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
