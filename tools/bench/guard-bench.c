/*
 * guard-bench: what the eBPF egress guard costs on the hooked syscalls. Root only; runs in
 * its own network namespace (only lo up), so every packet stays on loopback.
 *
 * Three sibling cgroups: one without any program ("none"), one with an empty program on
 * the same hooks ("floor": what any cgroup sock_addr program costs), one with the guard
 * holding 10k extra /24 CIDRs ("guard"). The process moves itself between them and, in
 * each round, measures in a rotating order:
 *   tcp-connect   connect() of a TCP socket to a loopback listener (socket and close apart)
 *   udp-sendto    unconnected sendto() of one byte to loopback
 *   udp-connect   connect() of a UDP socket (sends nothing)
 * It prints the median over rounds per path and the ratios against "none" and the floor,
 * then the time to refresh (swap in) a 10k-entry rule set. Not a timed test: `--smoke`
 * only checks that it runs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "ebpf/empty.skel.h"
#include "enforcer-int.h"
#include "enforcer.h"
#include "probe.h"

enum { MODE_NONE, MODE_FLOOR, MODE_GUARD, MODES };
enum { W_TCP, W_UDP_SENDTO, W_UDP_CONNECT, WORKLOADS };

static const char *const mode_names[MODES] = { "none", "floor", "guard" };
static const char *const work_names[WORKLOADS] = { "tcp-connect", "udp-sendto", "udp-connect" };

struct bench {
	char cgroups[MODES][PATH_MAX];
	struct sockaddr_in tcp_addr;
	struct sockaddr_in udp_addr;
	int rounds;
	int iters[WORKLOADS];
	double *samples[MODES][WORKLOADS]; /* ns per call, one per round */
};

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void *acceptor(void *arg)
{
	int lfd = *(int *)arg;

	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd >= 0)
			close(fd);
	}
	return NULL;
}

/* ns per connect(); the client resets on close so no TIME_WAIT piles up. */
static double run_tcp(struct bench *b, int n)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	double total = 0;

	for (int i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		double t0;

		if (fd < 0)
			return -1;
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		t0 = now_ns();
		if (connect(fd, (struct sockaddr *)&b->tcp_addr, sizeof(b->tcp_addr)) < 0) {
			close(fd);
			return -1;
		}
		total += now_ns() - t0;
		close(fd);
	}
	return total / n;
}

static double run_udp_sendto(struct bench *b, int n)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	double t0, t;

	if (fd < 0)
		return -1;
	t0 = now_ns();
	for (int i = 0; i < n; i++)
		if (sendto(fd, "x", 1, 0, (struct sockaddr *)&b->udp_addr, sizeof(b->udp_addr)) < 0 &&
		    errno != ENOBUFS && errno != EAGAIN) {
			close(fd);
			return -1;
		}
	t = now_ns() - t0;
	close(fd);
	return t / n;
}

static double run_udp_connect(struct bench *b, int n)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	double t0, t;

	if (fd < 0)
		return -1;
	t0 = now_ns();
	for (int i = 0; i < n; i++)
		if (connect(fd, (struct sockaddr *)&b->udp_addr, sizeof(b->udp_addr)) < 0) {
			close(fd);
			return -1;
		}
	t = now_ns() - t0;
	close(fd);
	return t / n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* 10k /24s in 20.0.0.0 onwards (never contacted: the bench only talks to loopback). */
static size_t many_prefixes(struct guard_prefix *out, size_t n0, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		struct guard_prefix *p = &out[n0 + i];

		memset(p, 0, sizeof(*p));
		p->family = AF_INET;
		p->addr[0] = 20 + i / 65536;
		p->addr[1] = (i / 256) % 256;
		p->addr[2] = i % 256;
		p->prefix_len = 24;
	}
	return n0 + count;
}

static int setup_listeners(struct bench *b)
{
	static int lfd;
	socklen_t len = sizeof(b->tcp_addr);
	pthread_t th;
	int ufd;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ufd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || ufd < 0)
		return -errno;
	b->tcp_addr.sin_family = AF_INET;
	b->tcp_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	b->udp_addr = b->tcp_addr;
	if (bind(lfd, (struct sockaddr *)&b->tcp_addr, len) < 0 || listen(lfd, 4096) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&b->tcp_addr, &len) < 0)
		return -errno;
	len = sizeof(b->udp_addr);
	if (bind(ufd, (struct sockaddr *)&b->udp_addr, len) < 0 ||
	    getsockname(ufd, (struct sockaddr *)&b->udp_addr, &len) < 0)
		return -errno;
	/* ufd stays open and unread: datagrams past its buffer are dropped, sendto succeeds. */
	return -pthread_create(&th, NULL, acceptor, &lfd);
}

static int measure(struct bench *b)
{
	for (int r = 0; r < b->rounds; r++) {
		for (int k = 0; k < MODES; k++) {
			int m = (r + k) % MODES;

			if (guard_cgroup_join(b->cgroups[m]) < 0)
				return -1;
			for (int w = 0; w < WORKLOADS; w++) {
				int ww = (w + r) % WORKLOADS;
				double v = ww == W_TCP	      ? run_tcp(b, b->iters[ww])
					   : ww == W_UDP_SENDTO ? run_udp_sendto(b, b->iters[ww])
								: run_udp_connect(b, b->iters[ww]);

				if (v < 0) {
					fprintf(stderr, "%s in %s failed: %s\n", work_names[ww],
						mode_names[m], strerror(errno));
					return -1;
				}
				b->samples[m][ww][r] = v;
			}
		}
	}
	return 0;
}

static void report(struct bench *b)
{
	static const double target[WORKLOADS] = { 1.02, 1.15, 0 };

	printf("%-12s %12s %16s %16s %14s %s\n", "path", "none (ns)", "floor", "guard",
	       "guard-floor", "target");
	for (int w = 0; w < WORKLOADS; w++) {
		double none = median(b->samples[MODE_NONE][w], b->rounds);
		double floor_ = median(b->samples[MODE_FLOOR][w], b->rounds);
		double guard = median(b->samples[MODE_GUARD][w], b->rounds);
		char t[32] = "-";

		if (target[w] > 0)
			snprintf(t, sizeof(t), "<= x%.2f %s", target[w],
				 guard / none <= target[w] ? "met" : "MISSED");
		printf("%-12s %12.0f   x%.3f (%+5.0f)   x%.3f (%+5.0f) %+10.0f ns   %s\n",
		       work_names[w], none, floor_ / none, floor_ - none, guard / none,
		       guard - none, guard - floor_, t);
	}
}

static int bench_refresh(struct guard_enforcer *e, struct guard_prefix *pfx, size_t n, int reps)
{
	double v[16];

	if (reps > 16)
		reps = 16;
	for (int i = 0; i < reps; i++) {
		double t0 = now_ns();

		if (guard_enforcer_update(e, pfx, n) < 0)
			return -1;
		v[i] = now_ns() - t0;
	}
	printf("refresh of %zu entries: median %.1f ms over %d (target < 50 ms: %s)\n", n,
	       median(v, reps) / 1e6, reps, median(v, reps) < 50e6 ? "met" : "MISSED");
	return 0;
}

int main(int argc, char **argv)
{
	struct bench b = { .rounds = 21, .iters = { 2000, 20000, 20000 } };
	struct guard_enforcer_config cfg = { .pin_path = "" };
	struct guard_empty_bpf *floor_skel = NULL;
	struct bpf_link *floor_links[4] = { NULL };
	struct guard_enforcer *e = NULL;
	struct guard_prefix *pfx;
	char err[256] = "", mnt_check[PATH_MAX];
	int ret = 1, cgfd = -1;
	size_t n;

	if (argc > 1 && !strcmp(argv[1], "--smoke")) {
		b.rounds = 1;
		b.iters[W_TCP] = 50;
		b.iters[W_UDP_SENDTO] = b.iters[W_UDP_CONNECT] = 200;
	} else if (argc > 1) {
		b.rounds = atoi(argv[1]);
		if (b.rounds < 1 || b.rounds > 1000 || (argc > 2 && atoi(argv[2]) < 10)) {
			fprintf(stderr, "usage: guard-bench [--smoke | rounds [udp-iterations]]\n");
			return 2;
		}
		if (argc > 2) {
			b.iters[W_UDP_SENDTO] = b.iters[W_UDP_CONNECT] = atoi(argv[2]);
			b.iters[W_TCP] = atoi(argv[2]) / 10;
		}
	}
	if (geteuid() != 0 || guard_cgroup2_mount(mnt_check, sizeof(mnt_check)) < 0) {
		printf("SKIP: needs root and cgroup v2\n");
		return 77;
	}
	if (probe_isolate() < 0) {
		printf("SKIP: cannot enter a private network namespace\n");
		return 77;
	}
	for (int m = 0; m < MODES; m++) {
		char name[64];

		snprintf(name, sizeof(name), "trstctl-bench-%s.%d", mode_names[m], (int)getpid());
		if (probe_cgroup_create(name, b.cgroups[m], sizeof(b.cgroups[m])) < 0) {
			printf("SKIP: cannot create cgroups\n");
			goto out;
		}
		for (int w = 0; w < WORKLOADS; w++)
			b.samples[m][w] = calloc(b.rounds, sizeof(double));
	}

	pfx = calloc(64 + 10000, sizeof(*pfx));
	n = many_prefixes(pfx, probe_prefixes(true, pfx, 64), 10000);
	cfg.cgroup_path = b.cgroups[MODE_GUARD];
	cfg.err = err;
	cfg.err_size = sizeof(err);
	ret = guard_enforcer_start(&cfg, pfx, n, &e);
	if (ret == -EPERM || ret == -EOPNOTSUPP) {
		printf("SKIP: %s\n", err);
		ret = 77;
		goto out;
	} else if (ret < 0) {
		fprintf(stderr, "guard-bench: %s\n", err);
		ret = 1;
		goto out;
	}
	floor_skel = guard_empty_bpf__open_and_load();
	cgfd = floor_skel ? open(b.cgroups[MODE_FLOOR], O_RDONLY | O_DIRECTORY) : -1;
	if (cgfd < 0) {
		fprintf(stderr, "guard-bench: cannot load the empty program\n");
		ret = 1;
		goto out;
	}
	floor_links[0] = bpf_program__attach_cgroup(floor_skel->progs.empty_connect4, cgfd);
	floor_links[1] = bpf_program__attach_cgroup(floor_skel->progs.empty_connect6, cgfd);
	floor_links[2] = bpf_program__attach_cgroup(floor_skel->progs.empty_sendmsg4, cgfd);
	floor_links[3] = bpf_program__attach_cgroup(floor_skel->progs.empty_sendmsg6, cgfd);
	if (!floor_links[0] || !floor_links[1] || !floor_links[2] || !floor_links[3]) {
		fprintf(stderr, "guard-bench: cannot attach the empty program\n");
		ret = 1;
		goto out;
	}
	if (setup_listeners(&b) < 0) {
		fprintf(stderr, "guard-bench: loopback listeners: %s\n", strerror(errno));
		ret = 1;
		goto out;
	}

	printf("guard-bench: %d rounds, %d TCP connects, %d UDP sendto, %d UDP connects per round "
	       "and mode; guard holds %zu prefixes\n",
	       b.rounds, b.iters[W_TCP], b.iters[W_UDP_SENDTO], b.iters[W_UDP_CONNECT], n);
	ret = measure(&b) < 0 || bench_refresh(e, pfx, n, b.rounds < 5 ? 1 : 9) < 0;
	if (!ret)
		report(&b);
	free(pfx);
out:
	/* Leave the bench cgroups before removing them. */
	if (mnt_check[0])
		guard_cgroup_join(mnt_check);
	for (int i = 0; i < 4; i++)
		bpf_link__destroy(floor_links[i]);
	guard_empty_bpf__destroy(floor_skel);
	if (cgfd >= 0)
		close(cgfd);
	e = guard_enforcer_stop(e);
	for (int m = 0; m < MODES; m++) {
		probe_cgroup_remove(b.cgroups[m]);
		for (int w = 0; w < WORKLOADS; w++)
			free(b.samples[m][w]);
	}
	return ret;
}
