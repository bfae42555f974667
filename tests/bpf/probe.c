/*
 * probe.c: the outbound attempts of the guard's kernel tests, and their sandbox. Every
 * attempt runs in a forked child that first joins the guarded cgroup and then a network
 * namespace of its own with only lo up, so that even a broken guard sends nothing beyond
 * loopback: public and private destinations fail with ENETUNREACH there, the guard's
 * denial with EPERM. io_uring is driven through raw syscalls (no liburing here).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "enforcer-int.h"
#include "probe.h"

static int lo_up(void)
{
	struct ifreq ifr;
	int fd, ret = 0;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
		ret = -errno;
	} else {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
			ret = -errno;
	}
	close(fd);
	return ret;
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (write(fd, text, strlen(text)) < 0)
			perror(path);
		close(fd);
	}
}

int probe_isolate(void)
{
	if (unshare(CLONE_NEWNET | CLONE_NEWNS) < 0)
		return -errno;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	return lo_up();
}

int probe_bpffs(char *ret_dir, size_t size)
{
	char tmpl[] = "/tmp/trstctl-bpffs.XXXXXX";

	if (!mkdtemp(tmpl))
		return -errno;
	if (mount("bpf", tmpl, "bpf", 0, "mode=0700") < 0) {
		int ret = -errno;

		rmdir(tmpl);
		return ret;
	}
	snprintf(ret_dir, size, "%s", tmpl);
	return 0;
}

int probe_cgroup_create(const char *name, char *ret_path, size_t size)
{
	char mnt[PATH_MAX];
	int ret;

	ret = guard_cgroup2_mount(mnt, sizeof(mnt));
	if (ret < 0)
		return ret;
	snprintf(ret_path, size, "%s/%s", mnt, name);
	if (mkdir(ret_path, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

void probe_cgroup_remove(const char *path)
{
	char file[PATH_MAX + 32], mnt[PATH_MAX], line[64];
	FILE *f;

	if (!path || !*path)
		return;
	/* Move stragglers to the hierarchy root, then remove the cgroup. */
	snprintf(file, sizeof(file), "%s/cgroup.procs", path);
	f = fopen(file, "re");
	if (f && guard_cgroup2_mount(mnt, sizeof(mnt)) == 0) {
		char root_procs[PATH_MAX + 32];

		snprintf(root_procs, sizeof(root_procs), "%s/cgroup.procs", mnt);
		while (fgets(line, sizeof(line), f))
			write_file(root_procs, line);
	}
	if (f)
		fclose(f);
	if (rmdir(path) < 0 && errno != ENOENT)
		fprintf(stderr, "warning: cannot remove cgroup %s: %s\n", path, strerror(errno));
}

static socklen_t probe_addr(const struct probe *p, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (p->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(p->port);
		if (inet_pton(AF_INET, p->addr, &sin->sin_addr) != 1)
			return 0;
		return sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(p->port);
		if (inet_pton(AF_INET6, p->addr, &sin6->sin6_addr) != 1)
			return 0;
		return sizeof(*sin6);
	}
}

/* One IORING_OP_CONNECT; the cqe result, or PROBE_SKIPPED when io_uring is unavailable. */
static int uring_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct io_uring_params prm;
	struct io_uring_sqe *sqes, *sqe;
	struct io_uring_cqe *cqes;
	size_t sq_size, cq_size;
	unsigned int *tail, *mask, *array, *chead;
	void *sq, *cq;
	int ring, res;

	memset(&prm, 0, sizeof(prm));
	ring = syscall(__NR_io_uring_setup, 4, &prm);
	if (ring < 0)
		return PROBE_SKIPPED;
	sq_size = prm.sq_off.array + prm.sq_entries * sizeof(unsigned int);
	cq_size = prm.cq_off.cqes + prm.cq_entries * sizeof(struct io_uring_cqe);
	if (prm.features & IORING_FEAT_SINGLE_MMAP)
		sq_size = cq_size = sq_size > cq_size ? sq_size : cq_size;
	sq = mmap(NULL, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
		  IORING_OFF_SQ_RING);
	cq = (prm.features & IORING_FEAT_SINGLE_MMAP)
		     ? sq
		     : mmap(NULL, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
			    IORING_OFF_CQ_RING);
	sqes = mmap(NULL, prm.sq_entries * sizeof(*sqes), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED)
		return PROBE_SKIPPED;
	tail = (unsigned int *)((char *)sq + prm.sq_off.tail);
	mask = (unsigned int *)((char *)sq + prm.sq_off.ring_mask);
	array = (unsigned int *)((char *)sq + prm.sq_off.array);
	sqe = &sqes[*tail & *mask];
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_CONNECT;
	sqe->fd = fd;
	sqe->addr = (uint64_t)(uintptr_t)sa;
	sqe->off = len;
	array[*tail & *mask] = *tail & *mask;
	__atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		return PROBE_SKIPPED;
	chead = (unsigned int *)((char *)cq + prm.cq_off.head);
	cqes = (struct io_uring_cqe *)((char *)cq + prm.cq_off.cqes);
	res = cqes[*chead & *(unsigned int *)((char *)cq + prm.cq_off.ring_mask)].res;
	close(ring);
	return res < 0 ? -res : 0;
}

/* The attempt itself, in the sandboxed child: 0 or an errno. */
static int probe_do(const struct probe *p)
{
	struct sockaddr_storage ss;
	struct mmsghdr msgs[2];
	struct iovec iov = { .iov_base = "x", .iov_len = 1 };
	socklen_t len = 0;
	int fd, ret = 0;

	if (p->op != PROBE_SOCKET) {
		len = probe_addr(p, &ss);
		if (!len)
			return EINVAL;
	}
	fd = socket(p->family, p->type | SOCK_CLOEXEC, p->protocol);
	if (fd < 0)
		return errno;
	switch (p->op) {
	case PROBE_CONNECT:
		ret = connect(fd, (struct sockaddr *)&ss, len) < 0 ? errno : 0;
		break;
	case PROBE_SENDTO:
		ret = sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, len) < 0 ? errno : 0;
		break;
	case PROBE_SENDMMSG:
		memset(msgs, 0, sizeof(msgs));
		for (int i = 0; i < 2; i++) {
			msgs[i].msg_hdr.msg_name = &ss;
			msgs[i].msg_hdr.msg_namelen = len;
			msgs[i].msg_hdr.msg_iov = &iov;
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		ret = sendmmsg(fd, msgs, 2, 0) < 0 ? errno : 0;
		break;
	case PROBE_TFO:
		ret = sendto(fd, "x", 1, MSG_FASTOPEN, (struct sockaddr *)&ss, len) < 0 ? errno : 0;
		break;
	case PROBE_SOCKET:
		break;
	case PROBE_URING:
		ret = uring_connect(fd, (struct sockaddr *)&ss, len);
		break;
	}
	close(fd);
	return ret;
}

int probe_run(const struct probe *p, const char *cgroup)
{
	int status;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_NAME, "guard-probe");
		if (cgroup && guard_cgroup_join(cgroup) < 0)
			_exit(255);
		/* Sockets are policed by the cgroup that created them: join first. */
		if (unshare(CLONE_NEWNET) < 0 || lo_up() < 0)
			_exit(255);
		/* Ping sockets are refused by the kernel before any hook unless allowed. */
		write_file("/proc/sys/net/ipv4/ping_group_range", "0 2147483647");
		_exit(probe_do(p) & 0xff);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) == 255)
		return -1;
	return WEXITSTATUS(status);
}

static size_t add(struct guard_prefix *out, size_t n, size_t max, const char *addr,
		  unsigned int len, uint16_t port, bool deny)
{
	struct guard_prefix *p;

	if (n >= max)
		return n;
	p = &out[n];
	memset(p, 0, sizeof(*p));
	p->family = strchr(addr, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(p->family, addr, p->addr) != 1) {
		fprintf(stderr, "bad test prefix %s\n", addr);
		abort();
	}
	p->prefix_len = len;
	p->port = port;
	p->deny = deny;
	return n + 1;
}

size_t probe_prefixes(bool allow_private, struct guard_prefix *out, size_t max)
{
	size_t n = 0;

	n = add(out, n, max, "127.0.0.0", 8, 0, false);
	n = add(out, n, max, "0.0.0.0", 32, 0, false);
	n = add(out, n, max, "::1", 128, 0, false);
	n = add(out, n, max, "::", 128, 0, false);
	if (allow_private) {
		n = add(out, n, max, "10.0.0.0", 8, 0, false);
		n = add(out, n, max, "172.16.0.0", 12, 0, false);
		n = add(out, n, max, "192.168.0.0", 16, 0, false);
		n = add(out, n, max, "100.64.0.0", 10, 0, false);
		n = add(out, n, max, "fc00::", 7, 0, false);
		n = add(out, n, max, "fe80::", 10, 0, false);
		n = add(out, n, max, "fd00:ec2::254", 128, 0, true);
	}
	/* A broad allow with a specific deny inside it: the metadata address. */
	n = add(out, n, max, "169.254.0.0", 16, 0, false);
	n = add(out, n, max, "169.254.169.254", 32, 0, true);
	n = add(out, n, max, "198.51.100.0", 24, 0, false);
	n = add(out, n, max, "192.0.2.10", 32, 443, false);
	n = add(out, n, max, "2001:db8:1::", 48, 0, false);
	return n;
}

uint64_t probe_counter(const struct guard_counters *c, const char *hook)
{
	static const struct {
		const char *name;
		size_t off;
	} map[] = {
		{ "total", offsetof(struct guard_counters, total) },
		{ "connect4", offsetof(struct guard_counters, connect4) },
		{ "connect6", offsetof(struct guard_counters, connect6) },
		{ "sendmsg4", offsetof(struct guard_counters, sendmsg4) },
		{ "sendmsg6", offsetof(struct guard_counters, sendmsg6) },
		{ "sock_create", offsetof(struct guard_counters, sock_create) },
		{ "v4mapped", offsetof(struct guard_counters, v4mapped) },
		{ "nat64", offsetof(struct guard_counters, nat64) },
		{ "tripwire", offsetof(struct guard_counters, tripwire) },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(map[i].name, hook))
			return *(const uint64_t *)((const char *)c + map[i].off);
	abort();
}
