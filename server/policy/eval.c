/*
 * The policy set and the evaluator. Writers (put, remove; rare) work under a mutex on a
 * private list of entries and publish each change as a new immutable snapshot: an
 * open-addressing table from policy name to compiled document. Readers never lock: they
 * announce themselves on one of two in-flight counters (chosen by an epoch bit), load the
 * current snapshot, evaluate, and leave. A writer swaps the snapshot pointer, then flips
 * the epoch and waits for each counter in turn to drain, after which no reader can still
 * hold the old snapshot, so it and any replaced document are freed at once (the flip keeps
 * new readers off the counter being waited for, so a busy server cannot starve a writer).
 * Evaluation allocates nothing: the action is resolved to its index once, and each of the
 * principal's documents hands over, for that index, only the (rule, resource) candidates
 * that name the action (compiled by policy.c); most are turned away by the literal prefix
 * of their glob before the segment matcher runs.
 */
#include "policy.h"
#include "policy-int.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct slot {
	uint64_t hash;
	const char *name; /* NULL: empty slot */
	size_t len;
	const struct policy_doc *doc;
	const uint32_t *act_off;      /* doc->act_off, one load closer */
	const struct pol_cand *cands; /* doc->cands */
};

struct snap {
	struct slot *slots;
	size_t mask; /* slots has mask + 1 entries, a power of two, at most half full */
};

/* Reader state, kept apart so that readers can be handed a const set. */
struct rcu {
	_Atomic(struct snap *) cur;
	atomic_ulong inflight[2];
	atomic_uint epoch;
	atomic_uint_fast64_t generation;
};

struct entry {
	char *name;
	uint64_t version;
	struct policy_doc *doc;
};

struct action {
	const char *name; /* into policy_set.actions */
	int idx;
};

struct policy_set {
	pthread_mutex_t lock; /* serialises writers; readers never take it */
	struct entry *entries;
	size_t n_entries;
	struct rcu *rcu;
	char **actions; /* the known-action list, in the caller's order */
	size_t n_actions;
	struct action *sorted; /* the same, sorted by name, for lookup */
	uint64_t actions_fp;
};

static const char admin_doc[] =
	"{\"description\": \"built-in: everything\", \"rules\": "
	"[{\"effect\": \"allow\", \"actions\": [\"*\"], \"resources\": [\"*\"]}]}";

static uint64_t name_hash(const char *s, size_t len)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ len, w;

	for (; len >= 8; s += 8, len -= 8) {
		memcpy(&w, s, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	w = 0;
	memcpy(&w, s, len);
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 29);
}

static struct snap *snap_free(struct snap *s)
{
	if (s)
		free(s->slots);
	free(s);
	return NULL;
}

/* The slots and a copy of every name share one allocation, so that a lookup stays within
 * a few cache lines. */
static struct snap *snap_build(const struct policy_set *set)
{
	struct snap *s = calloc(1, sizeof(*s));
	size_t size = 8, names = 0;
	char *arena;

	while (size < 2 * set->n_entries)
		size *= 2;
	for (size_t i = 0; i < set->n_entries; i++)
		names += strlen(set->entries[i].name) + 1;
	if (!s || !(s->slots = calloc(1, size * sizeof(*s->slots) + names)))
		return snap_free(s);
	s->mask = size - 1;
	arena = (char *)(s->slots + size);
	for (size_t i = 0; i < set->n_entries; i++) {
		const struct entry *e = &set->entries[i];
		size_t len = strlen(e->name);
		uint64_t h = name_hash(e->name, len);
		size_t k = h & s->mask;

		memcpy(arena, e->name, len + 1);
		while (s->slots[k].name)
			k = (k + 1) & s->mask;
		s->slots[k] = (struct slot){ .hash = h,
					     .name = arena,
					     .len = len,
					     .doc = e->doc,
					     .act_off = e->doc->act_off,
					     .cands = e->doc->cands };
		arena += len + 1;
	}
	return s;
}

static bool name_equal(const char *a, const char *b, size_t len)
{
	uint64_t x, y;

	for (; len >= 8; a += 8, b += 8, len -= 8) {
		memcpy(&x, a, 8);
		memcpy(&y, b, 8);
		if (x != y)
			return false;
	}
	for (; len; a++, b++, len--)
		if (*a != *b)
			return false;
	return true;
}

static const struct slot *snap_find(const struct snap *s, const char *name)
{
	size_t len = strlen(name);
	uint64_t h = name_hash(name, len);

	for (size_t k = h & s->mask; s->slots[k].name; k = (k + 1) & s->mask)
		if (s->slots[k].hash == h && s->slots[k].len == len &&
		    name_equal(s->slots[k].name, name, len))
			return &s->slots[k];
	return NULL;
}

/* Publishes the entries as a new snapshot and waits until no reader holds the old one.
 * Called with the lock held. */
static int publish(struct policy_set *set)
{
	struct rcu *rcu = set->rcu;
	struct snap *s = snap_build(set), *old;

	if (!s)
		return -ENOMEM;
	old = atomic_exchange(&rcu->cur, s);
	for (int k = 0; k < 2; k++) {
		unsigned e = atomic_fetch_xor(&rcu->epoch, 1u) & 1u;

		while (atomic_load(&rcu->inflight[e]) != 0)
			sched_yield();
	}
	atomic_fetch_add(&rcu->generation, 1);
	snap_free(old);
	return 0;
}

static struct entry *entry_find(struct policy_set *set, const char *name)
{
	for (size_t i = 0; i < set->n_entries; i++)
		if (strcmp(set->entries[i].name, name) == 0)
			return &set->entries[i];
	return NULL;
}

static int action_cmp(const void *a, const void *b)
{
	return strcmp(((const struct action *)a)->name, ((const struct action *)b)->name);
}

static bool action_valid(const char *s)
{
	const char *dot = s ? strchr(s, '.') : NULL;

	return dot && dot != s && dot[1] && !strchr(dot + 1, '.') && !strchr(s, '*');
}

int policy_set_new(const char *const *known_actions, size_t n, struct policy_set **ret_set)
{
	struct policy_set *set;
	struct policy_doc *admin = NULL;
	int r;

	if (!known_actions || n == 0 || !ret_set)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!action_valid(known_actions[i]))
			return -EINVAL;
	set = calloc(1, sizeof(*set));
	if (!set)
		return -ENOMEM;
	pthread_mutex_init(&set->lock, NULL);
	set->rcu = calloc(1, sizeof(*set->rcu));
	set->actions = calloc(n, sizeof(*set->actions));
	set->sorted = calloc(n, sizeof(*set->sorted));
	set->entries = calloc(1, sizeof(*set->entries));
	if (!set->rcu || !set->actions || !set->sorted || !set->entries)
		goto nomem;
	set->n_actions = n;
	for (size_t i = 0; i < n; i++) {
		set->actions[i] = strdup(known_actions[i]);
		if (!set->actions[i])
			goto nomem;
		set->sorted[i] = (struct action){ .name = set->actions[i], .idx = (int)i };
	}
	qsort(set->sorted, n, sizeof(*set->sorted), action_cmp);
	for (size_t i = 1; i < n; i++)
		if (strcmp(set->sorted[i - 1].name, set->sorted[i].name) == 0) {
			policy_set_free(set);
			return -EINVAL;
		}
	set->actions_fp = pol_actions_fp(known_actions, n);
	r = policy_parse(admin_doc, known_actions, n, &admin, NULL, 0);
	if (r < 0) {
		policy_set_free(set);
		return r;
	}
	set->entries[0] = (struct entry){ .name = strdup(POLICY_ADMIN), .doc = admin };
	set->n_entries = 1;
	if (!set->entries[0].name)
		goto nomem;
	r = publish(set);
	if (r < 0)
		goto nomem;
	*ret_set = set;
	return 0;
nomem:
	policy_set_free(set);
	return -ENOMEM;
}

struct policy_set *policy_set_free(struct policy_set *set)
{
	if (!set)
		return NULL;
	for (size_t i = 0; i < set->n_entries; i++) {
		free(set->entries[i].name);
		policy_doc_free(set->entries[i].doc);
	}
	free(set->entries);
	for (size_t i = 0; set->actions && i < set->n_actions; i++)
		free(set->actions[i]);
	free(set->actions);
	free(set->sorted);
	if (set->rcu)
		snap_free(atomic_load(&set->rcu->cur));
	free(set->rcu);
	pthread_mutex_destroy(&set->lock);
	free(set);
	return NULL;
}

int policy_set_put(struct policy_set *set, const char *name, uint64_t version,
		   struct policy_doc *doc)
{
	struct policy_doc *old;
	struct entry *e;
	int r;

	if (!set || !doc || !policy_name_valid(name) || version == 0 ||
	    doc->actions_fp != set->actions_fp || doc->n_actions != set->n_actions) {
		policy_doc_free(doc);
		return -EINVAL;
	}
	if (strcmp(name, POLICY_ADMIN) == 0) {
		policy_doc_free(doc);
		return -EPERM;
	}
	pthread_mutex_lock(&set->lock);
	e = entry_find(set, name);
	if (e && e->version >= version) {
		pthread_mutex_unlock(&set->lock);
		policy_doc_free(doc);
		return 0;
	}
	if (!e) {
		struct entry *l = realloc(set->entries, (set->n_entries + 1) * sizeof(*l));
		char *copy = strdup(name);

		if (l)
			set->entries = l;
		if (!l || !copy) {
			pthread_mutex_unlock(&set->lock);
			free(copy);
			policy_doc_free(doc);
			return -ENOMEM;
		}
		e = &set->entries[set->n_entries++];
		*e = (struct entry){ .name = copy };
	}
	old = e->doc;
	e->doc = doc;
	e->version = version;
	r = publish(set);
	if (r < 0) {
		e->doc = old;
		old = doc;
		if (!e->doc) { /* it was new: drop it again */
			free(e->name);
			set->n_entries--;
		}
	}
	pthread_mutex_unlock(&set->lock);
	policy_doc_free(old);
	return r < 0 ? r : 1;
}

int policy_set_remove(struct policy_set *set, const char *name)
{
	struct entry *e, saved;
	int r;

	if (!set || !name)
		return -EINVAL;
	if (strcmp(name, POLICY_ADMIN) == 0)
		return -EPERM;
	pthread_mutex_lock(&set->lock);
	e = entry_find(set, name);
	if (!e) {
		pthread_mutex_unlock(&set->lock);
		return -ENOENT;
	}
	saved = *e;
	*e = set->entries[--set->n_entries];
	r = publish(set);
	if (r < 0) {
		set->entries[set->n_entries++] = *e;
		*e = saved;
	}
	pthread_mutex_unlock(&set->lock);
	if (r < 0)
		return r;
	free(saved.name);
	policy_doc_free(saved.doc);
	return 0;
}

int policy_set_version(struct policy_set *set, const char *name, uint64_t *ret_version)
{
	struct entry *e;
	int r = -ENOENT;

	if (!set || !name || !ret_version)
		return -EINVAL;
	pthread_mutex_lock(&set->lock);
	e = entry_find(set, name);
	if (e) {
		*ret_version = e->version;
		r = 0;
	}
	pthread_mutex_unlock(&set->lock);
	return r;
}

uint64_t policy_set_generation(const struct policy_set *set)
{
	return set ? atomic_load(&set->rcu->generation) : 0;
}

/* ---- matching ---- */

/* `*` wildcards within one segment: greedy, backtracking to the last star. */
static bool seg_glob(const char *p, size_t pl, const char *s, size_t sl)
{
	size_t pi = 0, si = 0, star = SIZE_MAX, mark = 0;

	while (si < sl) {
		if (pi < pl && p[pi] == '*') {
			star = pi++;
			mark = si;
		} else if (pi < pl && p[pi] == s[si]) {
			pi++;
			si++;
		} else if (star != SIZE_MAX) {
			pi = star + 1;
			si = ++mark;
		} else {
			return false;
		}
	}
	while (pi < pl && p[pi] == '*')
		pi++;
	return pi == pl;
}

static bool seg_match(const struct pol_seg *g, const char *s, size_t sl)
{
	switch (g->kind) {
	case POL_SEG_LIT:
		return g->len == sl && memcmp(g->text, s, sl) == 0;
	case POL_SEG_STAR:
		return true;
	case POL_SEG_GLOB:
		return seg_glob(g->text, g->len, s, sl);
	default:
		return false;
	}
}

static const char *seg_next(const char *s)
{
	const char *slash = strchr(s, '/');

	return slash ? slash + 1 : NULL;
}

/* Segments are items and `**` is a star over them, so the same greedy scheme applies. */
static bool glob_match(const struct pol_glob *g, const char *res)
{
	size_t p = 0, star = SIZE_MAX;
	const char *s = res, *star_s = NULL;

	if (g->all)
		return true;
	while (s) {
		const char *slash = strchr(s, '/');
		size_t sl = slash ? (size_t)(slash - s) : strlen(s);

		if (p < g->n_segs && g->segs[p].kind == POL_SEG_DSTAR) {
			star = p++;
			star_s = s;
		} else if (p < g->n_segs && seg_match(&g->segs[p], s, sl)) {
			p++;
			s = slash ? slash + 1 : NULL;
		} else if (star != SIZE_MAX) {
			p = star + 1;
			star_s = seg_next(star_s);
			s = star_s;
		} else {
			return false;
		}
	}
	while (p < g->n_segs && g->segs[p].kind == POL_SEG_DSTAR)
		p++;
	return p == g->n_segs;
}

static bool dns_match(const struct pol_dns *d, const char *name)
{
	size_t n = strlen(name);

	if (!d->wildcard)
		return n == d->len && strncasecmp(name, d->text, n) == 0;
	return n > d->len && strncasecmp(name + n - d->len, d->text, d->len) == 0 &&
	       !memchr(name, '.', n - d->len);
}

static bool dns_any(const struct pol_rule *r, const char *name)
{
	for (size_t i = 0; i < r->n_dns; i++)
		if (dns_match(&r->dns[i], name))
			return true;
	return false;
}

static bool ip_any(const struct pol_rule *r, const char *ip)
{
	struct net_addr a;

	if (!ip || net_addr_parse(ip, &a) < 0)
		return false;
	for (size_t i = 0; i < r->n_ips; i++)
		if (net_prefix_contains(&r->ips[i], &a))
			return true;
	return false;
}

/*
 * The SAN conditions (a rule with dns_names, ip_addresses or both). Allow: every requested
 * DNS name matches a pattern and every address lies in a CIDR; a kind of SAN the rule does
 * not name is not allowed at all (dns_names alone allows no IP SAN). Deny: some requested
 * name or address matches. An address that does not parse matches nothing.
 */
static bool sans_hold(const struct pol_rule *r, const struct policy_request *q)
{
	for (size_t i = 0; i < q->n_dns_names; i++) {
		bool m = (r->cond & POL_COND_DNS) && q->dns_names[i] && dns_any(r, q->dns_names[i]);

		if (r->deny && m)
			return true;
		if (!r->deny && !m)
			return false;
	}
	for (size_t i = 0; i < q->n_ip_addresses; i++) {
		bool m = (r->cond & POL_COND_IPS) && ip_any(r, q->ip_addresses[i]);

		if (r->deny && m)
			return true;
		if (!r->deny && !m)
			return false;
	}
	return !r->deny;
}

#define ABSENT (-2)
#define UNRESOLVED (-3)

/* Attributes resolved once per request: vocabulary index, -1 unknown value, ABSENT. */
struct attrs {
	int state;
	int key_type;
};

static int attr_index(const char *v, const char *const *vocab, size_t n)
{
	return (!v || !*v) ? ABSENT : pol_lookup(vocab, n, v);
}

static bool in_mask(int idx, uint32_t mask, bool deny)
{
	return idx == ABSENT ? deny : (idx >= 0 && ((mask >> idx) & 1u));
}

/* The rules of policy.h, "Conditions and the two checks". */
static bool cond_hold(const struct pol_rule *r, const struct policy_request *q, struct attrs *a)
{
	if (!r->cond)
		return true;
	if (q->gate)
		return !r->deny;
	if (a->state == UNRESOLVED) {
		a->state = attr_index(q->to_state, pol_states, pol_n_states);
		a->key_type = attr_index(q->key_type, pol_key_types, pol_n_key_types);
	}
	if ((r->cond & POL_COND_TO_STATES) && !in_mask(a->state, r->to_states, r->deny))
		return false;
	if ((r->cond & POL_COND_KEY_TYPES) && !in_mask(a->key_type, r->key_types, r->deny))
		return false;
	if ((r->cond & POL_COND_MAX_TTL) && (q->ttl_seconds == 0 || q->ttl_seconds > r->max_ttl))
		return false;
	if (r->cond & POL_COND_SANS)
		return sans_hold(r, q);
	return true;
}

/* The literal prefix rejects most non-matching globs: first its length and its last 8
 * bytes, which sit in the candidate itself and are where names under one parent
 * (team-001, team-002) differ, then the rest of it and the segments. */
static bool cand_match(const struct pol_cand *c, const char *res, size_t res_len)
{
	if (c->lit_len > res_len)
		return false;
	if (c->lit_len >= 8) {
		uint64_t w;

		memcpy(&w, res + c->lit_len - 8, 8);
		if (w != c->tail)
			return false;
	}
	if (memcmp(res, c->glob->lit, c->lit_len) != 0)
		return false;
	return glob_match(c->glob, res);
}

static int action_index(const struct policy_set *set, const char *action)
{
	size_t lo = 0, hi = set->n_actions;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(set->sorted[mid].name, action);

		if (c == 0)
			return set->sorted[mid].idx;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* ---- the decision's text, built without printf on the hot path ---- */

struct text {
	char *p;
	size_t n, cap;
};

static void text_add(struct text *t, const char *s)
{
	size_t l = strlen(s);

	if (l > t->cap - 1 - t->n)
		l = t->cap - 1 - t->n;
	memcpy(t->p + t->n, s, l);
	t->n += l;
	t->p[t->n] = '\0';
}

static void text_num(struct text *t, unsigned v)
{
	char buf[12], *p = buf + sizeof(buf) - 1;

	*p = '\0';
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	text_add(t, p);
}

static void decide(struct policy_decision *d, bool allowed, const char *policy, int rule,
		   bool conditional)
{
	struct text t = { .p = d->reason, .cap = sizeof(d->reason) };

	d->allowed = allowed;
	d->conditional = conditional;
	d->matched_rule = rule;
	d->matched_policy[0] = '\0';
	strncat(d->matched_policy, policy, POLICY_NAME_MAX);
	text_add(&t, allowed ? "allowed by policy " : "denied by policy ");
	text_add(&t, policy);
	text_add(&t, " rule ");
	text_num(&t, (unsigned)rule);
	if (conditional)
		text_add(&t, " (conditions checked by the handler)");
}

static void no_match(struct policy_decision *d, const struct policy_request *q, bool known)
{
	struct text t = { .p = d->reason, .cap = sizeof(d->reason) };

	*d = (struct policy_decision){ .matched_rule = -1 };
	if (!known) {
		text_add(&t, "unknown action ");
		text_add(&t, q->action);
		return;
	}
	text_add(&t, "no policy allows ");
	text_add(&t, q->action);
	text_add(&t, " on ");
	text_add(&t, q->resource);
}

/* What the scan found so far: the first matching allow and deny in scan order. */
struct verdict {
	const char *allow_policy, *deny_policy;
	int allow_rule, deny_rule;
	bool allow_cond;
};

/* Scans one policy's candidates for action act. */
static void policy_scan(const struct slot *sl, const char *name, int act,
			const struct policy_request *req, size_t res_len, struct attrs *a,
			struct verdict *v)
{
	uint32_t done = UINT32_MAX; /* the rule last decided: skip its other resources */

	for (uint32_t k = sl->act_off[act]; k < sl->act_off[act + 1]; k++) {
		const struct pol_cand *c = &sl->cands[k];

		if (c->rule == done || (!c->deny && v->allow_policy) ||
		    !cand_match(c, req->resource, res_len))
			continue;
		done = c->rule;
		if (c->cond && !cond_hold(&sl->doc->rules[c->rule], req, a))
			continue;
		if (c->deny) {
			v->deny_policy = name;
			v->deny_rule = (int)c->rule;
			return;
		}
		v->allow_policy = name;
		v->allow_rule = (int)c->rule;
		v->allow_cond = c->cond;
	}
}

/* Names are resolved CHUNK at a time and the memory each scan will read is prefetched
 * first, so that the cache misses of many policies overlap instead of queueing. */
#define CHUNK 16

int policy_eval(const struct policy_set *set, const char *const *policy_names, size_t n_names,
		const struct policy_request *req, struct policy_decision *ret)
{
	struct rcu *rcu;
	const struct snap *s;
	struct attrs a = { .state = UNRESOLVED };
	struct verdict v = { .allow_rule = -1, .deny_rule = -1 };
	size_t res_len;
	unsigned e;
	int act;

	if (!set || !req || !req->action || !req->resource || !ret || (n_names && !policy_names) ||
	    (req->n_dns_names && !req->dns_names) || (req->n_ip_addresses && !req->ip_addresses))
		return -EINVAL;
	act = action_index(set, req->action);
	if (act < 0) {
		no_match(ret, req, false);
		return 0;
	}
	res_len = strlen(req->resource);
	rcu = set->rcu;
	e = atomic_load(&rcu->epoch) & 1u;
	atomic_fetch_add(&rcu->inflight[e], 1);
	s = atomic_load(&rcu->cur);
	for (size_t base = 0; base < n_names && !v.deny_policy; base += CHUNK) {
		const struct slot *found[CHUNK];
		size_t n = n_names - base < CHUNK ? n_names - base : CHUNK;

		for (size_t i = 0; i < n; i++) {
			const char *name = policy_names[base + i];

			found[i] = name ? snap_find(s, name) : NULL;
			if (found[i])
				__builtin_prefetch(&found[i]->act_off[act]);
		}
		for (size_t i = 0; i < n; i++)
			if (found[i])
				__builtin_prefetch(&found[i]->cands[found[i]->act_off[act]]);
		for (size_t i = 0; i < n && !v.deny_policy; i++)
			if (found[i])
				policy_scan(found[i], policy_names[base + i], act, req, res_len, &a,
					    &v);
	}
	atomic_fetch_sub(&rcu->inflight[e], 1);
	if (v.deny_policy)
		decide(ret, false, v.deny_policy, v.deny_rule, false);
	else if (v.allow_policy)
		decide(ret, true, v.allow_policy, v.allow_rule, v.allow_cond && req->gate);
	else
		no_match(ret, req, true);
	return 0;
}
