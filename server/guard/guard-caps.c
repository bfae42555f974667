/*
 * guard-caps.c: the capability drop after the kernel guard is attached. Linux keeps
 * capabilities per thread (capset(2) changes the calling thread only), so every thread
 * that exists at the time must drop its own: the caller runs the drop itself and sends
 * every other thread of the process a real-time signal whose handler runs the same raw
 * syscalls, then checks each thread's CapEff/CapPrm in /proc. Threads created afterwards
 * inherit the reduced sets. No libcap: the two capset words are set directly.
 */
#include <dirent.h>
#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "guard.h"

static _Atomic uint64_t drop_keep;
static atomic_int drop_acks;
static atomic_int drop_failures;

/* Runs in one thread (also from the signal handler): only raw syscalls. */
static int drop_self(uint64_t keep)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];
	int cap;

	if (syscall(SYS_capget, &hdr, data) < 0)
		return -errno;
	/* The bounding set needs CAP_SETPCAP; without it nothing can regain a capability
	 * anyway, since the process never execs. */
	if ((data[CAP_SETPCAP / 32].effective >> (CAP_SETPCAP % 32)) & 1)
		for (cap = 0; cap <= 63; cap++)
			if (!((keep >> cap) & 1) && syscall(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 &&
			    errno == EINVAL)
				break; /* past the last capability this kernel knows */
	syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	for (int i = 0; i < 2; i++) {
		uint32_t k = (uint32_t)(keep >> (32 * i));

		data[i].permitted &= k;
		data[i].effective = data[i].permitted;
		data[i].inheritable = 0;
	}
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -errno;
	return 0;
}

static void on_drop_signal(int sig)
{
	int saved = errno;

	(void)sig;
	if (drop_self(atomic_load(&drop_keep)) < 0)
		atomic_fetch_add(&drop_failures, 1);
	atomic_fetch_add(&drop_acks, 1);
	errno = saved;
}

/* CapEff and CapPrm of one thread; -errno when unreadable. */
static int thread_caps(pid_t tid, uint64_t *ret_eff, uint64_t *ret_prm)
{
	char path[64], line[256];
	unsigned long long eff = 0, prm = 0;
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		found += sscanf(line, "CapEff: %llx", &eff) == 1;
		found += sscanf(line, "CapPrm: %llx", &prm) == 1;
	}
	fclose(f);
	if (found != 2)
		return -EIO;
	*ret_eff = eff;
	*ret_prm = prm;
	return 0;
}

/* Calls fn for every thread of the process but the caller; returns the count or -errno. */
static int for_other_threads(int (*fn)(pid_t tid, void *arg), void *arg)
{
	pid_t self = (pid_t)syscall(SYS_gettid);
	struct dirent *de;
	int n = 0, ret = 0;
	DIR *d;

	d = opendir("/proc/self/task");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		pid_t tid = (pid_t)atoi(de->d_name);

		if (tid <= 0 || tid == self)
			continue;
		ret = fn(tid, arg);
		if (ret < 0)
			break;
		n++;
	}
	closedir(d);
	return ret < 0 ? ret : n;
}

static int signal_thread(pid_t tid, void *arg)
{
	int sig = *(int *)arg;

	if (syscall(SYS_tgkill, getpid(), tid, sig) < 0)
		return errno == ESRCH ? 0 : -errno; /* a thread that ended needs nothing */
	return 0;
}

static int check_thread(pid_t tid, void *arg)
{
	uint64_t keep = *(uint64_t *)arg, eff, prm;
	int ret = thread_caps(tid, &eff, &prm);

	if (ret == -ENOENT)
		return 0;
	if (ret < 0)
		return ret;
	return (eff & ~keep) || (prm & ~keep) ? -EPERM : 0;
}

int guard_caps_drop(uint64_t keep)
{
	struct sigaction sa = { .sa_handler = on_drop_signal }, old;
	int sig = SIGRTMIN + 4, sent, ret;
	sigset_t set, oldset;

	atomic_store(&drop_keep, keep);
	atomic_store(&drop_acks, 0);
	atomic_store(&drop_failures, 0);
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sigaction(sig, &sa, &old) < 0)
		return -errno;
	sigemptyset(&set);
	sigaddset(&set, sig);
	pthread_sigmask(SIG_UNBLOCK, &set, &oldset);

	ret = drop_self(keep);
	sent = ret < 0 ? ret : for_other_threads(signal_thread, &sig);
	if (sent > 0) {
		/*
		 * Wait (at most 3 s) until every signalled thread ran its handler or ended. A
		 * thread that blocks every signal never runs it: glibc's getaddrinfo_a helpers,
		 * started by the guard's name lookups, end by themselves after about a second
		 * idle. So the wait also ends once no other thread keeps a capability, which is
		 * what the check below proves anyway.
		 */
		for (int i = 0; i < 3000 && atomic_load(&drop_acks) < sent; i++) {
			if (i % 50 == 49 && for_other_threads(check_thread, &keep) >= 0)
				break;
			nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
		}
	}
	pthread_sigmask(SIG_SETMASK, &oldset, NULL);
	/* A handler still pending somewhere must not meet the default action (terminate). */
	if (sent <= 0 || atomic_load(&drop_acks) >= sent)
		sigaction(sig, &old, NULL);
	if (sent < 0)
		return sent;
	if (atomic_load(&drop_failures) > 0)
		return -EPERM;
	ret = check_thread((pid_t)syscall(SYS_gettid), &keep);
	if (ret == 0)
		ret = for_other_threads(check_thread, &keep);
	if (ret < 0 && atomic_load(&drop_acks) < sent)
		return -ETIMEDOUT; /* a thread neither ran the handler nor ended */
	return ret < 0 ? ret : 0;
}
