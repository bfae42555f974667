/*
 * enforcer-pinned.c: a guard pinned by `trstctl guard attach`, used by a server that holds
 * no capability (TRSTCTL_AIRGAP_ENFORCER=pinned). It only opens the pinned `trips` map
 * (BPF_OBJ_GET: on Linux 6.5 and later an inode permission check, no CAP_BPF), looks its
 * one element up, checks with stat() that the link pins are still there (they are root's,
 * mode 0600: this process may not open them, and must not be able to remove them), and
 * runs the tripwire from its own process, and replaces the rules through the pinned rule
 * maps when names resolve anew. It never loads, attaches or detaches anything.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "ebpf/guard.h"
#include "enforcer.h"
#include "enforcer-int.h"
#include "enforcer-rules.h"

static const char *const link_pins[GUARD_PINNED_LINKS] = {
	"link_connect4", "link_connect6", "link_sendmsg4", "link_sendmsg6", "link_sock_create",
};

struct guard_pinned {
	int trips_fd;
	struct guard_rules *rules; /* opened on the first update */
	char path[PATH_MAX - 64];
	int family;
	uint8_t addr[16];
	uint16_t port;
};

int guard_pinned_open(const char *pin_path, const char *tripwire_addr, uint16_t tripwire_port,
		      struct guard_pinned **ret_p, char *err, size_t errlen)
{
	struct bpf_map_info info = { 0 };
	uint32_t len = sizeof(info);
	const char *a = tripwire_addr ? tripwire_addr : GUARD_ENFORCER_TRIPWIRE_DEFAULT;
	struct guard_pinned *p;
	char path[PATH_MAX];
	char why[256];
	int ret;

	if (!pin_path || pin_path[0] != '/' || !ret_p)
		return snprintf(err, errlen, "the pin path must be an absolute path"), -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->trips_fd = -1;
	if (snprintf(p->path, sizeof(p->path), "%s", pin_path) >= (int)sizeof(p->path)) {
		ret = -ENAMETOOLONG;
		snprintf(err, errlen, "pin path too long: %s", pin_path);
		goto fail;
	}
	p->port = tripwire_port ? tripwire_port : GUARD_ENFORCER_TRIPWIRE_PORT_DEFAULT;
	if (inet_pton(AF_INET, a, p->addr) == 1) {
		p->family = AF_INET;
	} else if (inet_pton(AF_INET6, a, p->addr) == 1) {
		p->family = AF_INET6;
	} else {
		ret = -EINVAL;
		snprintf(err, errlen, "tripwire address is not a numeric IP address: %s", a);
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/trips", p->path);
	p->trips_fd = bpf_obj_get(path);
	if (p->trips_fd < 0) {
		ret = -errno;
		snprintf(err, errlen,
			 "no pinned guard at %s (%s): run `trstctl guard attach` first, and "
			 "give this user the `trips` pin (--owner)",
			 path, strerror(errno));
		goto fail;
	}
	if (bpf_obj_get_info_by_fd(p->trips_fd, &info, &len) < 0 ||
	    info.type != BPF_MAP_TYPE_ARRAY || info.key_size != sizeof(uint32_t) ||
	    info.value_size != sizeof(struct guard_trips) || info.max_entries != 1) {
		ret = -EPROTO;
		snprintf(err, errlen, "%s is not the guard's trips map (another trstctl version?)",
			 path);
		goto fail;
	}
	ret = guard_pinned_check(p, why, sizeof(why));
	if (ret < 0) {
		snprintf(err, errlen, "%s", why);
		goto fail;
	}
	*ret_p = p;
	return 0;
fail:
	guard_pinned_close(p);
	return ret;
}

int guard_pinned_counters(struct guard_pinned *p, struct guard_counters *ret_counters)
{
	if (!p || !ret_counters)
		return -EINVAL;
	return guard_trips_read(p->trips_fd, ret_counters);
}

int guard_pinned_check(struct guard_pinned *p, char *why, size_t len)
{
	char path[PATH_MAX];
	struct stat st;
	int i;

	if (!p)
		return -EINVAL;
	snprintf(path, sizeof(path), "%s/trips", p->path);
	if (stat(path, &st) < 0)
		return snprintf(why, len, "pin %s missing: %s", path, strerror(errno)), -ENOENT;
	for (i = 0; i < GUARD_PINNED_LINKS; i++) {
		snprintf(path, sizeof(path), "%s/%s", p->path, link_pins[i]);
		if (stat(path, &st) < 0)
			return snprintf(why, len, "pin %s missing: %s", path, strerror(errno)),
			       -ENOENT;
	}
	return 0;
}

int guard_pinned_tripwire(struct guard_pinned *p)
{
	struct guard_counters before, after;
	int ret;

	if (!p)
		return -EINVAL;
	ret = guard_pinned_counters(p, &before);
	if (ret < 0)
		return ret;
	ret = guard_tripwire_connect(p->family, p->addr, p->port);
	if (ret != -EPERM)
		return ret;
	ret = guard_pinned_counters(p, &after);
	if (ret < 0)
		return ret;
	/* EPERM from the guard of these pins, not from some other program or rule. */
	return after.tripwire > before.tripwire ? 0 : -EPROTO;
}

int guard_pinned_update(struct guard_pinned *p, const struct guard_prefix *prefixes, size_t n)
{
	int ret;

	if (!p)
		return -EINVAL;
	if (!p->rules) {
		ret = guard_rules_open_pinned(p->path, &p->rules);
		if (ret < 0)
			return ret;
	}
	return guard_rules_install(p->rules, prefixes, n);
}

struct guard_pinned *guard_pinned_close(struct guard_pinned *p)
{
	if (!p)
		return NULL;
	guard_rules_free(p->rules);
	if (p->trips_fd >= 0)
		close(p->trips_fd);
	free(p);
	return NULL;
}
