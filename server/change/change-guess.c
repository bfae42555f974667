/*
 * This server's last copy of rows, for changes that start from a guess (change.h). A copy
 * is only ever a guess: the domain's pre-commit hook checks the row's version or state
 * under its lock, and a refused guess costs one round from a fresh read. So no
 * invalidation protocol is needed for correctness: entries are put after this server's
 * own changes and dropped when a change of another kind touches the row.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "change.h"

/*
 * Set-associative: a key's hash picks a set of WAYS slots; a put fills an empty slot of the
 * set or, when the set is full, the one after the set's last victim (round robin). With one
 * slot per key (direct-mapped), a quarter-full cache already lost about one key in eight to
 * a collision, and a lost guess costs two reads; with four ways the loss is negligible until
 * the cache is nearly full.
 */
#define WAYS 4

struct slot {
	char *tenant, *key; /* NULL: empty */
	void *value;	    /* ops.size bytes, a deep copy */
};

struct change_guess {
	pthread_mutex_t lock;
	struct change_guess_ops ops;
	struct slot *slots;   /* n slots: n / WAYS sets of WAYS */
	uint8_t *victim;      /* per set: the way a full set gives up next */
	size_t n;	      /* a power of two, at least WAYS */
};

int change_guess_new(size_t slots, const struct change_guess_ops *ops,
		     struct change_guess **ret)
{
	struct change_guess *g;
	size_t n = 64;

	if (!ops || !ops->size || !ops->copy || !ops->clear || !ret)
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	while (n < slots && n < ((size_t)1 << 20))
		n <<= 1;
	g->slots = calloc(n, sizeof(*g->slots));
	g->victim = calloc(n / WAYS, 1);
	if (!g->slots || !g->victim) {
		free(g->slots);
		free(g->victim);
		free(g);
		return -ENOMEM;
	}
	g->n = n;
	g->ops = *ops;
	pthread_mutex_init(&g->lock, NULL);
	*ret = g;
	return 0;
}

/* Empties s; returns its value for the caller to clear and free outside the lock. */
static void *slot_take(struct slot *s)
{
	void *v = s->value;

	free(s->tenant);
	free(s->key);
	s->tenant = s->key = NULL;
	s->value = NULL;
	return v;
}

static void value_free(const struct change_guess *g, void *v)
{
	if (v) {
		g->ops.clear(v);
		free(v);
	}
}

struct change_guess *change_guess_free(struct change_guess *g)
{
	if (!g)
		return NULL;
	for (size_t i = 0; i < g->n; i++)
		value_free(g, slot_take(&g->slots[i]));
	free(g->slots);
	free(g->victim);
	pthread_mutex_destroy(&g->lock);
	free(g);
	return NULL;
}

/* The index of the set of (tenant, key). */
static size_t set_of(const struct change_guess *g, const char *tenant, const char *key)
{
	size_t h = 14695981039346656037ULL; /* FNV-1a */

	for (const char *p = key; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	for (const char *p = tenant; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h & (g->n / WAYS - 1);
}

static bool slot_is(const struct slot *s, const char *tenant, const char *key)
{
	return s->key && !strcmp(s->key, key) && !strcmp(s->tenant, tenant);
}

/* The slot holding (tenant, key) in its set, or NULL. */
static struct slot *find(struct change_guess *g, size_t set, const char *tenant, const char *key)
{
	struct slot *s = &g->slots[set * WAYS];

	for (int w = 0; w < WAYS; w++)
		if (slot_is(&s[w], tenant, key))
			return &s[w];
	return NULL;
}

/* Where a put of a key not in the set goes: an empty slot, else the next victim. */
static struct slot *place(struct change_guess *g, size_t set)
{
	struct slot *s = &g->slots[set * WAYS];

	for (int w = 0; w < WAYS; w++)
		if (!s[w].key)
			return &s[w];
	g->victim[set] = (uint8_t)((g->victim[set] + 1) % WAYS);
	return &s[g->victim[set]];
}

int change_guess_get(struct change_guess *g, const char *tenant, const char *key, void *ret)
{
	struct slot *s;
	int r = -ENOENT;

	if (!g || !tenant || !key)
		return -ENOENT;
	pthread_mutex_lock(&g->lock);
	s = find(g, set_of(g, tenant, key), tenant, key);
	if (s)
		r = g->ops.copy(ret, s->value);
	pthread_mutex_unlock(&g->lock);
	return r;
}

void change_guess_put(struct change_guess *g, const char *tenant, const char *key,
		      const void *v)
{
	char *t, *k;
	void *copy, *old;
	struct slot *s;
	size_t set;

	if (!g || !tenant || !key || !v)
		return;
	t = strdup(tenant);
	k = strdup(key);
	copy = malloc(g->ops.size);
	if (!t || !k || !copy || g->ops.copy(copy, v) < 0) {
		free(t);
		free(k);
		free(copy);
		return;
	}
	set = set_of(g, tenant, key);
	pthread_mutex_lock(&g->lock);
	s = find(g, set, tenant, key);
	if (!s)
		s = place(g, set);
	old = slot_take(s);
	s->tenant = t;
	s->key = k;
	s->value = copy;
	pthread_mutex_unlock(&g->lock);
	value_free(g, old);
}

void change_guess_drop(struct change_guess *g, const char *tenant, const char *key)
{
	void *old = NULL;
	struct slot *s;

	if (!g || !tenant || !key)
		return;
	pthread_mutex_lock(&g->lock);
	s = find(g, set_of(g, tenant, key), tenant, key);
	if (s)
		old = slot_take(s);
	pthread_mutex_unlock(&g->lock);
	value_free(g, old);
}
