#pragma once
/*
 * Internal to the guard enforcer (enforcer.c, enforcer-cgroup.c and tests/bpf): capability
 * and cgroup v2 helpers. Nothing here knows about libbpf.
 */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A cgroup opened for attaching. */
struct guard_cgroup {
	int fd;               /* O_RDONLY|O_DIRECTORY, owned by the caller */
	uint64_t id;          /* cgroup id (inode number of the directory) */
	bool moved;           /* the process moved itself into a new child cgroup */
	bool created;         /* ... which it created (mkdir), so it may remove it */
	char path[PATH_MAX];  /* absolute path under the cgroup2 mount */
};

/*
 * Effective capabilities: -EPERM without CAP_SYS_ADMIN or CAP_BPF+CAP_NET_ADMIN, 1 when
 * CAP_PERFMON (or CAP_SYS_ADMIN) also lets the programs record comm, else 0.
 */
int guard_caps_check(void);

/* Mount point of the cgroup2 hierarchy from /proc/self/mountinfo; -EOPNOTSUPP if none. */
int guard_cgroup2_mount(char *buf, size_t size);

/*
 * Open the cgroup to guard: path when given (not the host root), else the process's own;
 * when that is the host root, create <mount>/<name> and move the whole process into it.
 * A failure reason goes to err (optional).
 */
int guard_cgroup_resolve(const char *path, const char *name, struct guard_cgroup *ret_cg,
			 char *err, size_t err_size);

/* Cgroup id of the calling process's cgroup, 0 when unknown. */
uint64_t guard_cgroup_self_id(void);

/* Move the calling process into the cgroup directory path. */
int guard_cgroup_join(const char *path);

/*
 * Undo the move of guard_cgroup_resolve: when the child cgroup path holds no process but
 * the caller, move the caller back to the parent and remove path. Returns 0, -EBUSY when
 * another process is in it (then the caller stays), or -errno.
 */
int guard_cgroup_leave(const char *path);

/*
 * The rule maps of a guard pinned by another process (enforcer.c): opens the pins
 * rules4_a, rules4_b, rules6_a, rules6_b and rules_active under pin_path (read-write
 * permission on them is enough on Linux 6.5+) and reads which set is active. Install
 * replaces the whole rule set as guard_enforcer_update does (the inactive set is cleared
 * first, since its content is unknown here). Returns 0 or -errno.
 */
struct guard_prefix;
struct guard_rules;
int guard_rules_open_pinned(const char *pin_path, struct guard_rules **ret_r);
int guard_rules_install(struct guard_rules *r, const struct guard_prefix *prefixes, size_t n);
void guard_rules_free(struct guard_rules *r);

/*
 * The tripwire's probe: a UDP connect() to the reserved address (family AF_INET with 4
 * bytes of addr, else AF_INET6 with 16), which sends nothing. -EPERM when the guard refused
 * it, -EPROTO when it went through, else -errno.
 */
int guard_tripwire_connect(int family, const uint8_t *addr, uint16_t port);
