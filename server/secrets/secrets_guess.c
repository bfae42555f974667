/*
 * The metadata this server last wrote for each secret (after a create or a rotation), so
 * that the next rotation here can start without reading the row: a secret's creation time
 * and labels never change, and its current version and liveness are checked again under
 * the row lock by the rotation hook (secrets_rotate.c). A guess another server made stale
 * only costs a refused round: the rotation then reads the row and tries again. Every other
 * change on this server (delete, recover, destroy) drops the name.
 *
 * Direct-mapped and bounded: a name has one slot (hash of tenant and name); a put replaces
 * whatever the slot held. A mutex guards it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secrets-internal.h"

struct slot {
	bool used;
	char tenant[40];
	struct secrets_meta meta;
};

struct secrets_guess {
	pthread_mutex_t lock;
	struct slot *slots;
	size_t n; /* a power of two */
};

int secrets_guess_new(size_t slots, struct secrets_guess **ret)
{
	struct secrets_guess *g = calloc(1, sizeof(*g));
	size_t n = 64;

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
	pthread_mutex_init(&g->lock, NULL);
	*ret = g;
	return 0;
}

struct secrets_guess *secrets_guess_free(struct secrets_guess *g)
{
	if (!g)
		return NULL;
	for (size_t i = 0; i < g->n; i++)
		secrets_meta_clear(&g->slots[i].meta);
	free(g->slots);
	pthread_mutex_destroy(&g->lock);
	free(g);
	return NULL;
}

static struct slot *slot_of(struct secrets_guess *g, const char *tenant, const char *name)
{
	size_t h = 14695981039346656037ULL;

	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	for (const char *p = tenant; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return &g->slots[h & (g->n - 1)];
}

/* A deep copy of src (labels included). */
static int meta_copy(struct secrets_meta *dst, const struct secrets_meta *src)
{
	*dst = *src;
	dst->labels = NULL;
	dst->n_labels = 0;
	if (!src->n_labels)
		return 0;
	dst->labels = calloc(src->n_labels, sizeof(*dst->labels));
	if (!dst->labels)
		return -ENOMEM;
	for (size_t i = 0; i < src->n_labels; i++) {
		dst->labels[i].key = strdup(src->labels[i].key);
		dst->labels[i].value = strdup(src->labels[i].value);
		dst->n_labels = i + 1;
		if (!dst->labels[i].key || !dst->labels[i].value) {
			secrets_meta_clear(dst);
			return -ENOMEM;
		}
	}
	return 0;
}

int secrets_guess_get(struct secrets_guess *g, const char *tenant, const char *name,
		      struct secrets_meta *ret)
{
	struct slot *s;
	int r = -ENOENT;

	if (!g)
		return -ENOENT;
	pthread_mutex_lock(&g->lock);
	s = slot_of(g, tenant, name);
	if (s->used && !strcmp(s->tenant, tenant) && !strcmp(s->meta.name, name))
		r = meta_copy(ret, &s->meta);
	pthread_mutex_unlock(&g->lock);
	return r;
}

void secrets_guess_put(struct secrets_guess *g, const char *tenant, const struct secrets_meta *m)
{
	struct secrets_meta copy, old = { 0 };
	struct slot *s;

	if (!g || strlen(tenant) >= sizeof(s->tenant) || meta_copy(&copy, m) < 0)
		return;
	pthread_mutex_lock(&g->lock);
	s = slot_of(g, tenant, m->name);
	if (s->used)
		old = s->meta;
	s->used = true;
	strcpy(s->tenant, tenant);
	s->meta = copy;
	pthread_mutex_unlock(&g->lock);
	secrets_meta_clear(&old);
}

void secrets_guess_drop(struct secrets_guess *g, const char *tenant, const char *name)
{
	struct secrets_meta old = { 0 };
	struct slot *s;

	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	s = slot_of(g, tenant, name);
	if (s->used && !strcmp(s->tenant, tenant) && !strcmp(s->meta.name, name)) {
		old = s->meta;
		memset(&s->meta, 0, sizeof(s->meta));
		s->used = false;
	}
	pthread_mutex_unlock(&g->lock);
	secrets_meta_clear(&old);
}
