/*
 * guard-attach.c: `trstctl guard attach [--cgroup PATH] [--owner UID[:GID]]`, the step that
 * holds the BPF rights (a pod's init container, or root before a capability-less server).
 * The cgroup is --cgroup, else TRSTCTL_AIRGAP_CGROUP: an absolute path as it is, a name
 * under the cgroup2 mount; or, with --pod-uid UID, the Kubernetes pod cgroup found under
 * --cgroup-root (the node's cgroup2 hierarchy, as a hostPath mount in the init container):
 * the directory "pod<UID>" (kubelet cgroupfs driver) or "...-pod<UID with _ for ->.slice"
 * (systemd driver). It must exist: attach creates nothing there. Exit 0 when the
 * guard is attached and pinned, 1 with one line on stderr otherwise, 2 for bad usage.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cfg.h"
#include "enforcer-int.h"
#include "guard.h"
#include "log.h"

static void attach_usage(FILE *f)
{
	fprintf(f, "usage: trstctl guard attach [--cgroup PATH | --pod-uid UID [--cgroup-root DIR]]\n"
		   "                            [--owner UID[:GID]]\n"
		   "  Loads the egress guard of the air_gap configuration, attaches it to\n"
		   "  the cgroup (--cgroup, else TRSTCTL_AIRGAP_CGROUP: a path, or a name under the\n"
		   "  cgroup2 mount), pins it under TRSTCTL_AIRGAP_BPF_PIN_PATH, gives the counters\n"
		   "  and rule maps to UID (mode 0600) and exits, leaving it armed.\n"
		   "  Operator command (root with CAP_BPF and CAP_NET_ADMIN): it reads the server's\n"
		   "  configuration (the air_gap settings), which must be complete, as for serve.\n");
}

/* Depth-first search for the pod cgroup directory below dir (at most depth levels). */
static int find_pod(const char *dir, const char *want1, const char *want2, int depth,
		    char *out, size_t len)
{
	struct dirent *d;
	DIR *dp;
	int ret = -ENOENT;

	if (depth <= 0)
		return -ENOENT;
	dp = opendir(dir);
	if (!dp)
		return -errno;
	while (ret == -ENOENT && (d = readdir(dp))) {
		char sub[PATH_MAX];
		size_t n = strlen(d->d_name), n2 = strlen(want2);

		if (d->d_type != DT_DIR || d->d_name[0] == '.')
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%s", dir, d->d_name) >= (int)sizeof(sub))
			continue;
		if (strcmp(d->d_name, want1) == 0 ||
		    (n > n2 && strcmp(d->d_name + n - n2, want2) == 0 &&
		     d->d_name[n - n2 - 1] == '-')) {
			ret = snprintf(out, len, "%s", sub) >= (int)len ? -ENAMETOOLONG : 0;
			break;
		}
		ret = find_pod(sub, want1, want2, depth - 1, out, len);
		if (ret != -ENOENT && ret != -EACCES)
			break;
		ret = -ENOENT;
	}
	closedir(dp);
	return ret;
}

static int pod_cgroup(const char *root, const char *uid, char *out, size_t len)
{
	char want1[128], want2[128], *q;

	if (!*uid || strlen(uid) > 64 || strchr(uid, '/'))
		return -EINVAL;
	snprintf(want1, sizeof(want1), "pod%s", uid);
	snprintf(want2, sizeof(want2), "pod%s.slice", uid);
	for (q = want2; *q; q++)
		if (*q == '-')
			*q = '_';
	return find_pod(root, want1, want2, 5, out, len);
}

static int parse_id(const char *s, unsigned int *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || (*end && *end != ':') || v > 0xfffffffeUL)
		return -EINVAL;
	*ret = (unsigned int)v;
	return 0;
}

int guard_attach_cli(int argc, char **argv, const struct cfg *c)
{
	const char *cgroup = NULL, *pod_uid = NULL, *cgroup_root = NULL;
	unsigned int owner = 0, group = 0;
	char path[PATH_MAX], mnt[PATH_MAX], err[1024];
	struct stat st;
	int i, ret;

	/* argv[0] "guard", argv[1] "attach" */
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--cgroup") == 0 && i + 1 < argc) {
			cgroup = argv[++i];
		} else if (strcmp(argv[i], "--pod-uid") == 0 && i + 1 < argc) {
			pod_uid = argv[++i];
		} else if (strcmp(argv[i], "--cgroup-root") == 0 && i + 1 < argc) {
			cgroup_root = argv[++i];
		} else if (strcmp(argv[i], "--owner") == 0 && i + 1 < argc) {
			const char *colon;

			i++;
			colon = strchr(argv[i], ':');
			if (parse_id(argv[i], &owner) < 0 ||
			    (colon ? parse_id(colon + 1, &group) : (group = owner, 0)) < 0) {
				fprintf(stderr, "trstctl: guard attach: bad --owner %s\n", argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			attach_usage(stdout);
			return 0;
		} else {
			attach_usage(stderr);
			return 2;
		}
	}
	if (log_setup(c->log.level, c->log.format) < 0) {
		fprintf(stderr, "trstctl: configuration: bad log level or format\n");
		return 1;
	}
	if (pod_uid) {
		if (cgroup) {
			fprintf(stderr, "trstctl: guard attach: --cgroup and --pod-uid exclude each "
					"other\n");
			return 2;
		}
		if (!cgroup_root) {
			ret = guard_cgroup2_mount(mnt, sizeof(mnt));
			if (ret < 0) {
				fprintf(stderr, "trstctl: guard attach: no cgroup v2 hierarchy is "
						"mounted (name one with --cgroup-root)\n");
				return 1;
			}
			cgroup_root = mnt;
		}
		ret = pod_cgroup(cgroup_root, pod_uid, path, sizeof(path));
		if (ret < 0) {
			fprintf(stderr, "trstctl: guard attach: no cgroup of pod %s under %s: %s "
					"(mount the node's cgroup2 hierarchy there)\n", pod_uid,
				cgroup_root, strerror(-ret));
			return 1;
		}
		cgroup = path;
	}
	if (!cgroup)
		cgroup = c->air_gap.cgroup;
	if (!cgroup || !*cgroup) {
		fprintf(stderr, "trstctl: guard attach: no cgroup (--cgroup or "
				"TRSTCTL_AIRGAP_CGROUP)\n");
		return 1;
	}
	if (cgroup == path) {
		ret = 0;
	} else if (cgroup[0] == '/') {
		ret = snprintf(path, sizeof(path), "%s", cgroup);
	} else {
		ret = guard_cgroup2_mount(mnt, sizeof(mnt));
		if (ret < 0) {
			fprintf(stderr, "trstctl: guard attach: no cgroup v2 hierarchy is mounted\n");
			return 1;
		}
		ret = snprintf(path, sizeof(path), "%s/%s", mnt, cgroup);
	}
	if (ret < 0 || ret >= (int)sizeof(path)) {
		fprintf(stderr, "trstctl: guard attach: cgroup path too long\n");
		return 1;
	}
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "trstctl: guard attach: cgroup %s does not exist (create it, or "
				"name another with --cgroup)\n", path);
		return 1;
	}
	ret = guard_run_attach(c, path, owner, group, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "trstctl: guard attach: %s\n", *err ? err : strerror(-ret));
		return 1;
	}
	return 0;
}
