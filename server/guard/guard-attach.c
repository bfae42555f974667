/*
 * guard-attach.c: `trstctl guard attach [--cgroup PATH] [--owner UID[:GID]]`, the step that
 * holds the BPF rights (a pod's init container, or root before a capability-less server).
 * The cgroup is --cgroup, else TRSTCTL_AIRGAP_CGROUP: an absolute path as it is, a name
 * under the cgroup2 mount. It must exist: attach creates nothing there. Exit 0 when the
 * guard is attached and pinned, 1 with one line on stderr otherwise, 2 for bad usage.
 */
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
	fprintf(f, "usage: trstctl guard attach [--cgroup PATH] [--owner UID[:GID]]\n"
		   "  Loads the egress guard of the air_gap configuration, attaches it to\n"
		   "  the cgroup (--cgroup, else TRSTCTL_AIRGAP_CGROUP: a path, or a name under the\n"
		   "  cgroup2 mount), pins it under TRSTCTL_AIRGAP_BPF_PIN_PATH, gives the counters\n"
		   "  and rule maps to UID (mode 0600) and exits, leaving it armed.\n");
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
	const char *cgroup = NULL;
	unsigned int owner = 0, group = 0;
	char path[PATH_MAX], mnt[PATH_MAX], err[1024];
	struct stat st;
	int i, ret;

	/* argv[0] "guard", argv[1] "attach" */
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--cgroup") == 0 && i + 1 < argc) {
			cgroup = argv[++i];
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
	if (!cgroup)
		cgroup = c->air_gap.cgroup;
	if (!cgroup || !*cgroup) {
		fprintf(stderr, "trstctl: guard attach: no cgroup (--cgroup or "
				"TRSTCTL_AIRGAP_CGROUP)\n");
		return 1;
	}
	if (cgroup[0] == '/') {
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
