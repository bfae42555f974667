/*
 * enforcer-none.c: the guard enforcer of a build without eBPF (meson -Dbpf=disabled, or no
 * clang/bpftool). Every entry point reports -EOPNOTSUPP, so `TRSTCTL_AIRGAP_ENFORCER=ebpf`
 * fails start-up loudly and `auto` falls back to the userspace guard.
 */
#include <errno.h>
#include <stdio.h>

#include "enforcer.h"
#include "enforcer-int.h"

int guard_enforcer_start(const struct guard_enforcer_config *cfg, const struct guard_prefix *prefixes,
			 size_t n, struct guard_enforcer **ret_e)
{
	if (cfg && cfg->err && cfg->err_size)
		snprintf(cfg->err, cfg->err_size, "this trstctl was built without the eBPF guard");
	return -EOPNOTSUPP;
}

int guard_enforcer_update(struct guard_enforcer *e, const struct guard_prefix *prefixes, size_t n)
{
	return -EOPNOTSUPP;
}

int guard_enforcer_counters(struct guard_enforcer *e, struct guard_counters *ret_counters)
{
	return -EOPNOTSUPP;
}

int guard_enforcer_tripwire(struct guard_enforcer *e)
{
	return -EOPNOTSUPP;
}

int guard_enforcer_confirm(struct guard_enforcer *e)
{
	return -EOPNOTSUPP;
}

int guard_enforcer_flush(struct guard_enforcer *e)
{
	return -EOPNOTSUPP;
}

size_t guard_enforcer_denials(struct guard_enforcer *e, struct guard_denial *out, size_t max)
{
	return 0;
}

int guard_enforcer_info(struct guard_enforcer *e, struct guard_enforcer_info *ret_info)
{
	return -EOPNOTSUPP;
}

struct guard_enforcer *guard_enforcer_stop(struct guard_enforcer *e)
{
	return NULL;
}

int guard_enforcer_handover(struct guard_enforcer *e, unsigned int owner, unsigned int group)
{
	return -EOPNOTSUPP;
}

struct guard_enforcer *guard_enforcer_release(struct guard_enforcer *e)
{
	return NULL;
}

int guard_pinned_open(const char *pin_path, const char *tripwire_addr, uint16_t tripwire_port,
		      struct guard_pinned **ret_p, char *err, size_t errlen)
{
	snprintf(err, errlen, "this trstctl was built without the eBPF guard");
	return -EOPNOTSUPP;
}

int guard_pinned_counters(struct guard_pinned *p, struct guard_counters *ret_counters)
{
	return -EOPNOTSUPP;
}

int guard_pinned_check(struct guard_pinned *p, char *why, size_t len)
{
	return -EOPNOTSUPP;
}

int guard_pinned_tripwire(struct guard_pinned *p)
{
	return -EOPNOTSUPP;
}

struct guard_pinned *guard_pinned_close(struct guard_pinned *p)
{
	return NULL;
}

int guard_cgroup2_mount(char *buf, size_t size)
{
	return -EOPNOTSUPP;
}

int guard_pinned_update(struct guard_pinned *p, const struct guard_prefix *prefixes, size_t n)
{
	return -EOPNOTSUPP;
}
