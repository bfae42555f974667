/*
 * enforcer-cgroup.c: the cgroup v2 and capability plumbing of the guard enforcer. Finds the
 * cgroup2 mount (/proc/self/mountinfo: "/sys/fs/cgroup" on most hosts,
 * "/sys/fs/cgroup/unified" on hybrid ones), the process's own cgroup (the "0::" line of
 * /proc/self/cgroup), refuses the host root (the root directory of the hierarchy has no
 * cgroup.type; the root of a cgroup namespace, such as a container's, does), and moves the
 * process into a child cgroup when it would otherwise guard the whole host.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "enforcer-int.h"

#define CGROUP2_MAGIC_ 0x63677270
#define CAP_NET_ADMIN_ 12
#define CAP_SYS_ADMIN_ 21
#define CAP_PERFMON_ 38
#define CAP_BPF_ 39

static int seterr(char *err, size_t size, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int seterr(char *err, size_t size, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && size) {
		va_start(ap, fmt);
		vsnprintf(err, size, fmt, ap);
		va_end(ap);
	}
	return ret;
}

int guard_caps_check(void)
{
	char line[256];
	unsigned long long eff = 0;
	bool found = false;
	FILE *f;

	f = fopen("/proc/self/status", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1) {
			found = true;
			break;
		}
	fclose(f);
	if (!found)
		return -EPERM;
#define HAS(c) ((eff >> (c)) & 1ULL)
	if (!HAS(CAP_SYS_ADMIN_) && !(HAS(CAP_BPF_) && HAS(CAP_NET_ADMIN_)))
		return -EPERM;
	return HAS(CAP_SYS_ADMIN_) || HAS(CAP_PERFMON_);
#undef HAS
}

int guard_cgroup2_mount(char *buf, size_t size)
{
	char line[4096];
	int ret = -EOPNOTSUPP;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char mnt[PATH_MAX], *sep;

		/* "id parent maj:min root mountpoint options ... - fstype source superopts" */
		sep = strstr(line, " - ");
		if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0)
			continue;
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 || strchr(mnt, '\\'))
			continue;
		if (snprintf(buf, size, "%s", mnt) >= (int)size) {
			ret = -ENAMETOOLONG;
			continue;
		}
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

/* The path of the process's cgroup relative to the cgroup2 mount ("/" for the root). */
static int self_cgroup(char *buf, size_t size)
{
	char line[4096];
	int ret = -ENOENT;
	FILE *f;

	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) != 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		ret = snprintf(buf, size, "%s", line + 3) >= (int)size ? -ENAMETOOLONG : 0;
		break;
	}
	fclose(f);
	return ret;
}

uint64_t guard_cgroup_self_id(void)
{
	char mnt[PATH_MAX], rel[PATH_MAX], path[2 * PATH_MAX + 1];
	struct stat st;

	if (guard_cgroup2_mount(mnt, sizeof(mnt)) < 0 || self_cgroup(rel, sizeof(rel)) < 0)
		return 0;
	snprintf(path, sizeof(path), "%s%s", mnt, rel);
	return stat(path, &st) < 0 ? 0 : (uint64_t)st.st_ino;
}

int guard_cgroup_join(const char *path)
{
	char file[PATH_MAX + 32], pid[32];
	int fd, len, ret = 0;

	snprintf(file, sizeof(file), "%s/cgroup.procs", path);
	fd = open(file, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (write(fd, pid, len) != len)
		ret = -errno;
	close(fd);
	return ret;
}

int guard_cgroup_leave(const char *path)
{
	char file[PATH_MAX + 32], parent[PATH_MAX], pid[32];
	char *slash;
	FILE *f;
	int ret = 0;

	snprintf(parent, sizeof(parent), "%s", path);
	slash = strrchr(parent, '/');
	if (!slash || slash == parent)
		return -EINVAL;
	*slash = '\0';
	/* Only an empty cgroup can go: anyone but us in it keeps it (and us) in place. */
	snprintf(file, sizeof(file), "%s/cgroup.procs", path);
	f = fopen(file, "re");
	if (!f)
		return -errno;
	while (ret == 0 && fgets(pid, sizeof(pid), f))
		if (atoi(pid) != (int)getpid())
			ret = -EBUSY;
	fclose(f);
	if (ret < 0)
		return ret;
	ret = guard_cgroup_join(parent);
	if (ret < 0)
		return ret;
	return rmdir(path) < 0 ? -errno : 0;
}

/* The root of the whole hierarchy has no cgroup.type; every other cgroup (and the root of
 * a cgroup namespace seen from inside, which is not the host root) does. */
static bool is_host_root(const char *path)
{
	char file[PATH_MAX + 16];

	snprintf(file, sizeof(file), "%s/cgroup.type", path);
	return access(file, F_OK) < 0 && errno == ENOENT;
}

static bool valid_name(const char *name)
{
	return *name && strlen(name) < NAME_MAX && !strchr(name, '/') && strcmp(name, ".") &&
	       strcmp(name, "..");
}

int guard_cgroup_resolve(const char *path, const char *name, struct guard_cgroup *ret_cg,
			 char *err, size_t err_size)
{
	struct guard_cgroup cg = { .fd = -1 };
	char mnt[PATH_MAX], rel[PATH_MAX];
	struct statfs sfs;
	struct stat st;
	int ret;

	if (!name)
		name = "trstctl";
	if (path) {
		if (snprintf(cg.path, sizeof(cg.path), "%s", path) >= (int)sizeof(cg.path))
			return seterr(err, err_size, -ENAMETOOLONG, "cgroup path too long");
	} else {
		ret = guard_cgroup2_mount(mnt, sizeof(mnt));
		if (ret < 0)
			return seterr(err, err_size, ret, "no cgroup2 hierarchy is mounted");
		ret = self_cgroup(rel, sizeof(rel));
		if (ret < 0)
			return seterr(err, err_size, ret, "no cgroup v2 entry in /proc/self/cgroup");
		if (snprintf(cg.path, sizeof(cg.path), "%s%s", mnt, strcmp(rel, "/") ? rel : "") >=
		    (int)sizeof(cg.path))
			return seterr(err, err_size, -ENAMETOOLONG, "cgroup path too long");
		if (is_host_root(cg.path)) {
			/* Never guard the whole host: move into a child cgroup of our own. */
			if (!valid_name(name))
				return seterr(err, err_size, -EINVAL, "bad cgroup name: %s", name);
			if (snprintf(cg.path, sizeof(cg.path), "%s/%s", mnt, name) >=
			    (int)sizeof(cg.path))
				return seterr(err, err_size, -ENAMETOOLONG, "cgroup path too long");
			if (mkdir(cg.path, 0755) == 0)
				cg.created = true;
			else if (errno != EEXIST)
				return seterr(err, err_size, -errno, "creating cgroup %s: %s",
					      cg.path, strerror(errno));
			ret = guard_cgroup_join(cg.path);
			if (ret < 0)
				return seterr(err, err_size, ret, "moving into cgroup %s: %s",
					      cg.path, strerror(-ret));
			cg.moved = true;
		}
	}
	if (statfs(cg.path, &sfs) < 0 || sfs.f_type != CGROUP2_MAGIC_)
		return seterr(err, err_size, -EOPNOTSUPP, "%s is not a cgroup v2 directory",
			      cg.path);
	if (is_host_root(cg.path))
		return seterr(err, err_size, -EINVAL,
			      "refusing to guard the host root cgroup %s", cg.path);
	cg.fd = open(cg.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg.fd < 0)
		return seterr(err, err_size, -errno, "opening cgroup %s: %s", cg.path,
			      strerror(errno));
	if (fstat(cg.fd, &st) < 0) {
		ret = -errno;
		close(cg.fd);
		return ret;
	}
	cg.id = st.st_ino;
	*ret_cg = cg;
	return 0;
}

int guard_tripwire_connect(int family, const uint8_t *addr, uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int fd, ret;

	if (family == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, addr, 4);
		len = sizeof(*sin);
	} else {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, addr, 16);
		len = sizeof(*sin6);
	}
	fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ret = connect(fd, (struct sockaddr *)&ss, len) == 0 ? -EPROTO : -errno;
	close(fd);
	return ret;
}
