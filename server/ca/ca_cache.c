/*
 * The identities this server knows, for issuance without a read: an identity's names,
 * addresses, key type, TTL and kind never change after it is created, and its state and
 * current serial are checked again under the row lock by the issuance hook
 * (ca_store_issue_hook: the identity must still be in `from` with old_serial). So a cached
 * copy is only ever a guess: when another server (or call) moved the identity on, the hook
 * refuses the issuance, nothing is written, and the service drops the entry and does the
 * issuance again from a fresh read (which also answers a retried request_id). No
 * invalidation protocol is needed for correctness; entries are added when this server
 * creates an identity, replaced when it issues, dropped on any other transition.
 *
 * Bounded (max entries): when full, one bucket chain is dropped, walking the buckets
 * round-robin. A mutex guards it; copies are made under it (a few small allocations).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca-internal.h"

struct entry {
	struct entry *next;
	char tenant[CA_ID_LEN + 1];
	struct ca_identity ident; /* without cert */
};

struct ca_ident_cache {
	pthread_mutex_t lock;
	struct entry **buckets;
	size_t n_buckets, n, max, cursor;
};

int ca_ident_cache_new(size_t max, struct ca_ident_cache **ret)
{
	struct ca_ident_cache *c = calloc(1, sizeof(*c));
	size_t nb = 1024;

	if (!c)
		return -ENOMEM;
	while (nb < max && nb < ((size_t)1 << 20))
		nb <<= 1;
	c->buckets = calloc(nb, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return -ENOMEM;
	}
	c->n_buckets = nb;
	c->max = max ? max : 1;
	pthread_mutex_init(&c->lock, NULL);
	*ret = c;
	return 0;
}

static void entry_free(struct entry *e)
{
	ca_identity_clear(&e->ident);
	free(e);
}

struct ca_ident_cache *ca_ident_cache_free(struct ca_ident_cache *c)
{
	if (!c)
		return NULL;
	for (size_t b = 0; b < c->n_buckets; b++)
		while (c->buckets[b]) {
			struct entry *e = c->buckets[b];

			c->buckets[b] = e->next;
			entry_free(e);
		}
	free(c->buckets);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return NULL;
}

static size_t bucket(const struct ca_ident_cache *c, const char *tenant, const char *id)
{
	size_t h = 14695981039346656037ULL;

	for (const char *p = id; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	for (const char *p = tenant; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h & (c->n_buckets - 1);
}

static struct entry **find(struct ca_ident_cache *c, const char *tenant, const char *id)
{
	struct entry **p = &c->buckets[bucket(c, tenant, id)];

	while (*p && (strcmp((*p)->ident.id, id) || strcmp((*p)->tenant, tenant)))
		p = &(*p)->next;
	return p;
}

/* A deep copy of src without its certificate. */
static int ident_copy(struct ca_identity *dst, const struct ca_identity *src)
{
	*dst = *src;
	dst->cert = NULL;
	dst->name = NULL;
	dst->dns_names = dst->ip_addresses = NULL;
	dst->n_dns_names = dst->n_ip_addresses = 0;
	dst->name = strdup(src->name ? src->name : "");
	if (!dst->name || ca_strv_dup((const char *const *)src->dns_names, src->n_dns_names,
				      &dst->dns_names) < 0)
		goto fail;
	dst->n_dns_names = src->n_dns_names;
	if (ca_strv_dup((const char *const *)src->ip_addresses, src->n_ip_addresses,
			&dst->ip_addresses) < 0)
		goto fail;
	dst->n_ip_addresses = src->n_ip_addresses;
	return 0;
fail:
	ca_identity_clear(dst);
	return -ENOMEM;
}

int ca_ident_cache_get(struct ca_ident_cache *c, const char *tenant, const char *id,
		       struct ca_identity *ret)
{
	struct entry *e;
	int r = -ENOENT;

	if (!c || !id)
		return -ENOENT;
	pthread_mutex_lock(&c->lock);
	e = *find(c, tenant, id);
	if (e)
		r = ident_copy(ret, &e->ident);
	pthread_mutex_unlock(&c->lock);
	return r;
}

void ca_ident_cache_drop(struct ca_ident_cache *c, const char *tenant, const char *id)
{
	struct entry **p, *e;

	if (!c || !id)
		return;
	pthread_mutex_lock(&c->lock);
	p = find(c, tenant, id);
	e = *p;
	if (e) {
		*p = e->next;
		c->n--;
	}
	pthread_mutex_unlock(&c->lock);
	if (e)
		entry_free(e);
}

/* Drops one bucket chain (lock held); returns the entries to free outside the lock. */
static struct entry *evict(struct ca_ident_cache *c)
{
	for (size_t k = 0; k < c->n_buckets; k++) {
		size_t b = c->cursor++ & (c->n_buckets - 1);
		struct entry *chain = c->buckets[b];

		if (!chain)
			continue;
		c->buckets[b] = NULL;
		for (struct entry *e = chain; e; e = e->next)
			c->n--;
		return chain;
	}
	return NULL;
}

void ca_ident_cache_put(struct ca_ident_cache *c, const char *tenant, const struct ca_identity *i)
{
	struct entry *e, *old, *gone = NULL, **p;

	if (!c || !i)
		return;
	e = calloc(1, sizeof(*e));
	if (!e)
		return;
	snprintf(e->tenant, sizeof(e->tenant), "%s", tenant);
	if (ident_copy(&e->ident, i) < 0) {
		free(e);
		return;
	}
	pthread_mutex_lock(&c->lock);
	p = find(c, tenant, i->id);
	old = *p;
	if (old) {
		*p = old->next;
		c->n--;
	} else if (c->n >= c->max) {
		gone = evict(c);
	}
	p = &c->buckets[bucket(c, tenant, i->id)];
	e->next = *p;
	*p = e;
	c->n++;
	pthread_mutex_unlock(&c->lock);
	if (old)
		entry_free(old);
	while (gone) {
		struct entry *next = gone->next;

		entry_free(gone);
		gone = next;
	}
}
