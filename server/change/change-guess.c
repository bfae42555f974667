/*
 * This server's last copy of rows, for changes that start from a guess (change.h). A copy
 * is only ever a guess: the domain's pre-commit hook checks the row's version or state
 * under its lock, and a refused guess costs one round from a fresh read. So no
 * invalidation protocol is needed for correctness: entries are put after this server's
 * own changes and dropped when a change of another kind touches the row.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "change.h"

struct slot {
	char *tenant, *key; /* NULL: empty */
	void *value;	    /* ops.size bytes, a deep copy */
};

struct change_guess {
	pthread_mutex_t lock;
	struct change_guess_ops ops;
	struct slot *slots;
	size_t n; /* a power of two */
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
	if (!g->slots) {
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
	pthread_mutex_destroy(&g->lock);
	free(g);
	return NULL;
}

static struct slot *slot_of(struct change_guess *g, const char *tenant, const char *key)
{
	size_t h = 14695981039346656037ULL; /* FNV-1a */

	for (const char *p = key; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	for (const char *p = tenant; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return &g->slots[h & (g->n - 1)];
}

static bool slot_is(const struct slot *s, const char *tenant, const char *key)
{
	return s->key && !strcmp(s->key, key) && !strcmp(s->tenant, tenant);
}

int change_guess_get(struct change_guess *g, const char *tenant, const char *key, void *ret)
{
	struct slot *s;
	int r = -ENOENT;

	if (!g || !tenant || !key)
		return -ENOENT;
	pthread_mutex_lock(&g->lock);
	s = slot_of(g, tenant, key);
	if (slot_is(s, tenant, key))
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
	pthread_mutex_lock(&g->lock);
	s = slot_of(g, tenant, key);
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
	s = slot_of(g, tenant, key);
	if (slot_is(s, tenant, key))
		old = slot_take(s);
	pthread_mutex_unlock(&g->lock);
	value_free(g, old);
}
