#pragma once
/*
 * Helpers shared by the guard's kernel tests: a private network namespace with only lo up,
 * a private bpffs, a throw-away cgroup, a probe table (one outbound attempt per entry),
 * and a small prefix-list builder standing in for guard_policy_prefixes().
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "enforcer.h"

enum probe_op {
	PROBE_CONNECT,  /* socket + connect */
	PROBE_SENDTO,   /* unconnected sendto */
	PROBE_SENDMMSG, /* unconnected sendmmsg, two messages */
	PROBE_TFO,      /* TCP Fast Open: sendto(MSG_FASTOPEN) */
	PROBE_SOCKET,   /* socket() only (raw, ping) */
	PROBE_URING,    /* IORING_OP_CONNECT */
};

#define PROBE_NOT_EPERM (-1) /* expectation: any result but EPERM */
#define PROBE_SKIPPED 200    /* probe result when the facility is missing (io_uring off) */

struct probe {
	const char *name;
	enum probe_op op;
	int family;       /* socket family */
	int type;         /* SOCK_STREAM, SOCK_DGRAM, SOCK_RAW */
	int protocol;
	const char *addr; /* numeric, parsed for the socket family */
	uint16_t port;
	int expect;       /* errno (0 = success) or PROBE_NOT_EPERM */
	const char *hook; /* counter expected to move by one on a denial, NULL = none */
};

/* Run one probe in a child that joins cgroup (when not NULL) and a fresh netns with lo
 * up; returns 0, the errno, PROBE_SKIPPED, or -1 when the child itself failed. */
int probe_run(const struct probe *p, const char *cgroup);

/* Enter a private net + mount namespace with lo up; 0 or -errno. */
int probe_isolate(void);

/* Mount a private bpffs on a fresh temporary folder; 0 or -errno. */
int probe_bpffs(char *ret_dir, size_t size);

/* Create <cgroup2 mount>/<name>; 0 or -errno. probe_cgroup_remove moves any leftover
 * process out and removes it. */
int probe_cgroup_create(const char *name, char *ret_path, size_t size);
void probe_cgroup_remove(const char *path);

/* Stand-in for the policy: loopback, private (optional), 169.254/16 with the metadata
 * address denied, 198.51.100.0/24, 192.0.2.10:443, 2001:db8:1::/48. Returns the count. */
size_t probe_prefixes(bool allow_private, struct guard_prefix *out, size_t max);

/* Pick the counter named hook ("total", "connect4", ..., "tripwire"). */
uint64_t probe_counter(const struct guard_counters *c, const char *hook);
