/*
 * enforcer-rules.c: the kernel guard's rule maps (enforcer.c loads and attaches the
 * programs): prefixes normalised into LPM entries, the two rule sets of each family written
 * in turn and switched with one write of rules_active (the programs never see a half-written
 * set), stale entries removed after the switch. Works on map fds, so a capability-less server
 * can update the maps that `trstctl guard attach` pinned (guard_rules_open_pinned); and
 * the one read of the trips map, for a loaded guard and a pinned one alike.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "ebpf/guard.h"
#include "enforcer.h"
#include "enforcer-int.h"
#include "enforcer-rules.h"

/* ---- rule maps -------------------------------------------------------------------- */

static int rule_cmp(const void *pa, const void *pb)
{
	const struct rule_ent *a = pa, *b = pb;

	if (a->family != b->family)
		return a->family - b->family;
	if (a->rule.prefixlen != b->rule.prefixlen)
		return (int)a->rule.prefixlen - (int)b->rule.prefixlen;
	return memcmp(a->addr, b->addr, sizeof(a->addr));
}

static const uint8_t nat64_pfx[12] = { 0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 };

/* Validate one prefix and bring it to the form the programs look up. */
static int rule_from_prefix(const struct guard_prefix *p, struct rule_ent *ret)
{
	struct rule_ent r = { .family = p->family };
	unsigned int len = p->prefix_len, max, i;

	if (p->family == AF_INET)
		max = 32;
	else if (p->family == AF_INET6)
		max = 128;
	else
		return -EINVAL;
	if (len > max)
		return -EINVAL;
	memcpy(r.addr, p->addr, max / 8);
	if (p->family == AF_INET6 && len >= 96 &&
	    (!memcmp(r.addr, guard_v4mapped_pfx, 12) || !memcmp(r.addr, nat64_pfx, 12))) {
		/* The IPv6 programs judge these by the embedded IPv4 address. */
		memmove(r.addr, r.addr + 12, 4);
		memset(r.addr + 4, 0, 12);
		r.family = AF_INET;
		len -= 96;
		max = 32;
	}
	for (i = 0; i < 16; i++) {
		unsigned int bits = i * 8;

		if (bits >= len)
			r.addr[i] = 0;
		else if (len - bits < 8)
			r.addr[i] &= (uint8_t)(0xff00 >> (len - bits));
	}
	r.rule.prefixlen = len;
	r.rule.deny = p->deny;
	if (p->port) {
		r.rule.nports = 1;
		r.rule.ports[0] = p->port;
	}
	*ret = r;
	return 0;
}

/* Fold b into a (same prefix): a deny wins over an allow; ports are united, 0 = any. */
static int rule_merge(struct guard_rule *a, const struct guard_rule *b)
{
	unsigned int i, j;

	if (a->deny != b->deny) {
		if (b->deny)
			*a = *b;
		return 0;
	}
	if (a->nports == 0 || b->nports == 0) {
		a->nports = 0;
		return 0;
	}
	for (i = 0; i < b->nports; i++) {
		for (j = 0; j < a->nports; j++)
			if (a->ports[j] == b->ports[i])
				break;
		if (j < a->nports)
			continue;
		if (a->nports == GUARD_RULE_PORTS)
			return -E2BIG;
		a->ports[a->nports++] = b->ports[i];
	}
	return 0;
}

/*
 * Write (or, with del, remove) the entries of one family in one rule map, batched (one
 * syscall) where the kernel allows it, one by one otherwise.
 */
static int rules_apply(int fd, int family, const struct rule_ent *ents, size_t n, bool del)
{
	size_t ksize = family == AF_INET ? sizeof(struct guard_key4) : sizeof(struct guard_key6);
	struct guard_rule *vals = NULL;
	uint8_t *keys = NULL;
	size_t i, m = 0;
	uint32_t count;
	int ret = 0;

	for (i = 0; i < n; i++)
		m += ents[i].family == family;
	if (!m)
		return 0;
	keys = calloc(m, ksize);
	vals = calloc(m, sizeof(*vals));
	if (!keys || !vals) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0, m = 0; i < n; i++) {
		struct guard_key6 k6 = { .prefixlen = ents[i].rule.prefixlen };
		struct guard_key4 k4 = { .prefixlen = ents[i].rule.prefixlen };

		if (ents[i].family != family)
			continue;
		memcpy(&k4.addr, ents[i].addr, 4);
		memcpy(k6.addr, ents[i].addr, 16);
		memcpy(keys + m * ksize, family == AF_INET ? (void *)&k4 : (void *)&k6, ksize);
		vals[m++] = ents[i].rule;
	}
	count = m;
	if (del ? bpf_map_delete_batch(fd, keys, &count, NULL) == 0
		: bpf_map_update_batch(fd, keys, vals, &count, NULL) == 0)
		goto out;
	/* No batch operations for LPM tries on this kernel (or a partial batch): one by one. */
	for (i = 0; i < m; i++) {
		if (del ? bpf_map_delete_elem(fd, keys + i * ksize) < 0 && errno != ENOENT
			: bpf_map_update_elem(fd, keys + i * ksize, &vals[i], BPF_ANY) < 0) {
			ret = -errno;
			break;
		}
	}
out:
	free(keys);
	free(vals);
	return ret;
}

/* Empty a rule map whose content is unknown (after a failed install). */
static int rules_clear(int fd)
{
	uint8_t key[sizeof(struct guard_key6)];

	while (bpf_map_get_next_key(fd, NULL, key) == 0)
		if (bpf_map_delete_elem(fd, key) < 0)
			return -errno;
	return errno == ENOENT ? 0 : -errno;
}

/* Entries of old that new lacks; both sorted by rule_cmp. */
static size_t rules_stale(const struct rule_set *old, const struct rule_ent *new, size_t n,
			  struct rule_ent *ret_stale)
{
	size_t i = 0, j = 0, k = 0;

	while (i < old->n) {
		int c = j < n ? rule_cmp(&old->ents[i], &new[j]) : -1;

		if (c < 0)
			ret_stale[k++] = old->ents[i++];
		else if (c > 0)
			j++;
		else
			i++, j++;
	}
	return k;
}

/* Fill the inactive rule set from the prefix list, then make it the active one. */
static int rules_install(struct guard_rules *e, const struct guard_prefix *prefixes, size_t n)
{
	struct rule_ent *ents = NULL, *stale = NULL;
	struct rule_set *set;
	size_t i, m = 0, nstale = 0;
	uint32_t zero = 0, slot;
	int fd4, fd6, ret;

	if (n > 2 * (size_t)GUARD_RULES_MAX || (n && !prefixes))
		return -EINVAL;
	ents = calloc(n ? n : 1, sizeof(*ents));
	if (!ents)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		ret = rule_from_prefix(&prefixes[i], &ents[i]);
		if (ret < 0)
			goto out;
	}
	qsort(ents, n, sizeof(*ents), rule_cmp);
	for (i = 0; i < n; i++) {
		if (m && !rule_cmp(&ents[m - 1], &ents[i])) {
			ret = rule_merge(&ents[m - 1].rule, &ents[i].rule);
			if (ret < 0)
				goto out;
			continue;
		}
		ents[m++] = ents[i];
	}

	/* Nothing reads the inactive set: write it in any order. */
	slot = e->installed ? 1 - e->active : 0;
	set = &e->sets[slot];
	fd4 = e->fd4[slot];
	fd6 = e->fd6[slot];
	if (set->dirty) {
		ret = rules_clear(fd4);
		if (ret == 0)
			ret = rules_clear(fd6);
		if (ret < 0)
			goto out;
		free(set->ents);
		*set = (struct rule_set){ 0 };
	}
	stale = calloc(set->n ? set->n : 1, sizeof(*stale));
	if (!stale) {
		ret = -ENOMEM;
		goto out;
	}
	nstale = rules_stale(set, ents, m, stale);
	set->dirty = true;
	ret = rules_apply(fd4, AF_INET, ents, m, false);
	if (ret == 0)
		ret = rules_apply(fd6, AF_INET6, ents, m, false);
	if (ret == 0)
		ret = rules_apply(fd4, AF_INET, stale, nstale, true);
	if (ret == 0)
		ret = rules_apply(fd6, AF_INET6, stale, nstale, true);
	if (ret < 0)
		goto out;
	/* The switch: one array update, seen by the next program run on every CPU. */
	if (bpf_map_update_elem(e->active_fd, &zero, &slot, BPF_ANY) < 0) {
		ret = -errno;
		goto out;
	}
	free(set->ents);
	set->ents = ents;
	set->n = m;
	set->dirty = false;
	ents = NULL;
	e->active = slot;
	e->installed = true;
	ret = 0;
out:
	free(stale);
	free(ents);
	return ret;
}


int guard_rules_open_pinned(const char *pin_path, struct guard_rules **ret_r)
{
	static const char *const names[5] = { "rules4_a", "rules4_b", "rules6_a", "rules6_b",
					      "rules_active" };
	struct guard_rules *r;
	int fds[5], i, ret = 0;
	uint32_t zero = 0;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (i = 0; i < 5; i++)
		fds[i] = -1;
	for (i = 0; i < 5 && ret == 0; i++) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/%s", pin_path, names[i]);
		fds[i] = bpf_obj_get(path);
		if (fds[i] < 0)
			ret = -errno;
	}
	r->fd4[0] = fds[0];
	r->fd4[1] = fds[1];
	r->fd6[0] = fds[2];
	r->fd6[1] = fds[3];
	r->active_fd = fds[4];
	r->own_fds = true;
	if (ret == 0 && bpf_map_lookup_elem(r->active_fd, &zero, &r->active) < 0)
		ret = -errno;
	if (ret < 0 || r->active > 1) {
		guard_rules_free(r);
		return ret < 0 ? ret : -EPROTO;
	}
	/* Another process filled them: both sets' content is unknown here. */
	r->installed = true;
	r->sets[0].dirty = r->sets[1].dirty = true;
	*ret_r = r;
	return 0;
}

int guard_rules_install(struct guard_rules *r, const struct guard_prefix *prefixes, size_t n)
{
	return r ? rules_install(r, prefixes, n) : -EINVAL;
}

void guard_rules_free(struct guard_rules *r)
{
	if (!r)
		return;
	if (r->own_fds) {
		int fds[5] = { r->fd4[0], r->fd4[1], r->fd6[0], r->fd6[1], r->active_fd };

		for (int i = 0; i < 5; i++)
			if (fds[i] >= 0)
				close(fds[i]);
	}
	free(r->sets[0].ents);
	free(r->sets[1].ents);
	free(r);
}


int guard_trips_read(int fd, struct guard_counters *ret_counters)
{
	struct guard_trips t;
	uint32_t zero = 0;

	if (bpf_map_lookup_elem(fd, &zero, &t) < 0)
		return -errno;
	*ret_counters = (struct guard_counters){
		.total = t.total,
		.connect4 = t.connect4,
		.connect6 = t.connect6,
		.sendmsg4 = t.sendmsg4,
		.sendmsg6 = t.sendmsg6,
		.sock_create = t.sock_create,
		.v4mapped = t.v4mapped,
		.nat64 = t.nat64,
		.tripwire = t.tripwire,
		.events_dropped = t.events_dropped,
	};
	return 0;
}
