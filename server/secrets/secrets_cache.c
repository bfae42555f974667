/*
 * The read cache of GetSecret: the SEALED bytes of a version (never plaintext: every hit is
 * opened by kek_open as a miss is) and the version number, keyed by (tenant, name, 0) for
 * the current version and (tenant, name, v) for an explicit one. Bounded (max entries;
 * when full one entry is evicted, walking the buckets round-robin), values of at most
 * SECRETS_CACHE_SEALED_MAX sealed bytes only. Only live, readable versions are cached:
 * deleted secrets and destroyed or missing versions are answered by PostgreSQL.
 *
 * Consistency. On this server it is exact: every change of the store (create, rotate with
 * its retention destroy, delete, recover, destroy) invalidates the name after its commit
 * and before its reply, so a reader never sees a state older than a write this server
 * answered. Across servers sharing the database it is prompt: each change also runs
 * pg_notify('trstctl_secrets', '<tenant>:<name>') in its statement, PostgreSQL delivers it
 * after the commit to every server's listener (db_listen), and the listener invalidates
 * the name (typically within a millisecond or two of the commit). While the listener is not
 * connected (start-up, PostgreSQL restart, lost connection) notifications could be missed,
 * so the cache is flushed and bypassed: it is enabled only once LISTEN is in effect again.
 *
 * The load race: a reader that missed takes the generation before its query and inserts
 * what it read only if no invalidation or flush happened since (every invalidation, flush,
 * enable and disable bumps the generation under the write lock). So a row read before a
 * commit cannot be inserted after that commit's invalidation. An invalidation drops every
 * entry of the name in every tenant (the bucket is chosen by name alone), which is safe
 * (only more misses) and spares comparing tenant spellings.
 *
 * Changes made outside trstctl (SQL by hand) send no notification: an entry is used for at
 * most SECRETS_CACHE_TTL_MS after it was read, which bounds how long such a change is
 * unseen; then the row is read again.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "secrets-internal.h"

struct cache_entry {
	struct cache_entry *next;	/* same bucket */
	int64_t key_version;		/* 0: the current version */
	int64_t version;		/* the version the sealed bytes belong to */
	int64_t born_ms;		/* monotonic; older than SECRETS_CACHE_TTL_MS: a miss */
	size_t sealed_len;		/* <= SECRETS_CACHE_SEALED_MAX */
	char *tenant, *name;		/* in the same allocation, after sealed */
	uint8_t sealed[];
};

struct secrets_cache {
	pthread_rwlock_t lock;		/* guards buckets, n, cursor */
	struct cache_entry **buckets;	/* n_buckets (a power of two) chains */
	size_t n_buckets, n, max;
	size_t cursor;			/* next bucket to evict from */
	atomic_bool enabled;		/* the listener is up: entries may be used and added */
	atomic_uint_fast64_t gen;	/* bumped (under the write lock) by every invalidation */
	atomic_uint_fast64_t hits, misses, invalidations, flushes;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t name_hash(const char *name)
{
	uint64_t h = 1469598103934665603ULL;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h;
}

static struct cache_entry *entry_free(struct cache_entry *e)
{
	if (e) {
		OPENSSL_cleanse(e->sealed, e->sealed_len);
		free(e);
	}
	return NULL;
}

int secrets_cache_new(size_t max_entries, struct secrets_cache **ret)
{
	struct secrets_cache *c;
	size_t nb = 64;

	if (max_entries == 0 || !ret)
		return -EINVAL;
	while (nb < max_entries && nb < ((size_t)1 << 24))
		nb <<= 1;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->buckets = calloc(nb, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return -ENOMEM;
	}
	c->n_buckets = nb;
	c->max = max_entries;
	pthread_rwlock_init(&c->lock, NULL);
	*ret = c;
	return 0;
}

/* Write lock held. */
static void flush_locked(struct secrets_cache *c)
{
	for (size_t b = 0; b < c->n_buckets; b++)
		while (c->buckets[b]) {
			struct cache_entry *e = c->buckets[b];

			c->buckets[b] = e->next;
			entry_free(e);
		}
	c->n = 0;
	atomic_fetch_add(&c->gen, 1);
}

struct secrets_cache *secrets_cache_free(struct secrets_cache *c)
{
	if (!c)
		return NULL;
	flush_locked(c);
	pthread_rwlock_destroy(&c->lock);
	free(c->buckets);
	free(c);
	return NULL;
}

static bool entry_is(const struct cache_entry *e, const char *tenant, const char *name,
		     int64_t key_version)
{
	return e->key_version == key_version && strcmp(e->name, name) == 0 &&
	       strcmp(e->tenant, tenant) == 0;
}

int secrets_cache_get(struct secrets_cache *c, const char *tenant, const char *name,
		      int64_t key_version, uint8_t *buf, size_t len, size_t *ret_len,
		      int64_t *ret_version)
{
	const struct cache_entry *e;
	int r = 0;

	if (!c || !atomic_load_explicit(&c->enabled, memory_order_acquire))
		return 0;
	pthread_rwlock_rdlock(&c->lock);
	for (e = c->buckets[name_hash(name) & (c->n_buckets - 1)]; e; e = e->next)
		if (entry_is(e, tenant, name, key_version))
			break;
	if (e && e->sealed_len <= len && now_ms() - e->born_ms < SECRETS_CACHE_TTL_MS) {
		memcpy(buf, e->sealed, e->sealed_len);
		*ret_len = e->sealed_len;
		*ret_version = e->version;
		r = 1;
	}
	pthread_rwlock_unlock(&c->lock);
	atomic_fetch_add_explicit(r ? &c->hits : &c->misses, 1, memory_order_relaxed);
	return r;
}

uint64_t secrets_cache_generation(struct secrets_cache *c)
{
	return c ? atomic_load(&c->gen) : 0;
}

/* Write lock held: drops one entry, walking the buckets round-robin. */
static void evict_one_locked(struct secrets_cache *c)
{
	for (size_t i = 0; i < c->n_buckets; i++) {
		size_t b = (c->cursor + i) & (c->n_buckets - 1);
		struct cache_entry *e = c->buckets[b];

		if (e) {
			c->buckets[b] = e->next;
			entry_free(e);
			c->n--;
			c->cursor = b + 1;
			return;
		}
	}
}

void secrets_cache_put(struct secrets_cache *c, const char *tenant, const char *name,
		       int64_t key_version, int64_t version, const uint8_t *sealed, size_t len,
		       uint64_t gen)
{
	size_t tl = strlen(tenant) + 1, nl = strlen(name) + 1;
	struct cache_entry *e, **pp;
	size_t b;

	if (!c || len > SECRETS_CACHE_SEALED_MAX || !atomic_load(&c->enabled) ||
	    atomic_load(&c->gen) != gen)
		return;
	e = malloc(sizeof(*e) + len + tl + nl);
	if (!e)
		return;
	e->key_version = key_version;
	e->version = version;
	e->born_ms = now_ms();
	e->sealed_len = len;
	memcpy(e->sealed, sealed, len);
	e->tenant = (char *)e->sealed + len;
	e->name = e->tenant + tl;
	memcpy(e->tenant, tenant, tl);
	memcpy(e->name, name, nl);
	b = name_hash(name) & (c->n_buckets - 1);
	pthread_rwlock_wrlock(&c->lock);
	/* checked again under the lock: an invalidation since the reader's query wins */
	if (!atomic_load(&c->enabled) || atomic_load(&c->gen) != gen) {
		pthread_rwlock_unlock(&c->lock);
		entry_free(e);
		return;
	}
	for (pp = &c->buckets[b]; *pp; pp = &(*pp)->next)
		if (entry_is(*pp, tenant, name, key_version))
			break;
	if (*pp) { /* read again (expired, or another reader was first): the newer read */
		struct cache_entry *old = *pp;

		*pp = old->next;
		entry_free(old);
		c->n--;
	}
	if (c->n >= c->max)
		evict_one_locked(c);
	e->next = c->buckets[b];
	c->buckets[b] = e;
	c->n++;
	pthread_rwlock_unlock(&c->lock);
}

void secrets_cache_invalidate(struct secrets_cache *c, const char *name)
{
	struct cache_entry **pp;

	if (!c)
		return;
	pthread_rwlock_wrlock(&c->lock);
	pp = &c->buckets[name_hash(name) & (c->n_buckets - 1)];
	while (*pp) {
		struct cache_entry *e = *pp;

		if (strcmp(e->name, name) == 0) {
			*pp = e->next;
			entry_free(e);
			c->n--;
		} else {
			pp = &e->next;
		}
	}
	atomic_fetch_add(&c->gen, 1);
	pthread_rwlock_unlock(&c->lock);
	atomic_fetch_add_explicit(&c->invalidations, 1, memory_order_relaxed);
}

void secrets_cache_set_enabled(struct secrets_cache *c, bool on)
{
	if (!c)
		return;
	pthread_rwlock_wrlock(&c->lock);
	atomic_store(&c->enabled, on);
	flush_locked(c);
	pthread_rwlock_unlock(&c->lock);
	atomic_fetch_add_explicit(&c->flushes, 1, memory_order_relaxed);
}

void secrets_cache_stats(struct secrets_cache *c, struct secrets_cache_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (!c)
		return;
	pthread_rwlock_rdlock(&c->lock);
	ret->entries = c->n;
	pthread_rwlock_unlock(&c->lock);
	ret->enabled = atomic_load(&c->enabled);
	ret->hits = atomic_load(&c->hits);
	ret->misses = atomic_load(&c->misses);
	ret->invalidations = atomic_load(&c->invalidations);
	ret->flushes = atomic_load(&c->flushes);
}

void secrets_read_stats(struct secrets *s, struct secrets_cache_stats *ret)
{
	secrets_cache_stats(s ? s->cache : NULL, ret);
}

/* The listener's callback: UP enables (after a flush), DOWN flushes and bypasses, a
 * notification "<tenant>:<name>" invalidates the name (anything else: a flush). */
void secrets_cache_on_listen(void *ud, enum db_listen_event ev, const char *payload)
{
	struct secrets_cache *c = ud;
	const char *colon;

	switch (ev) {
	case DB_LISTEN_UP:
		secrets_cache_set_enabled(c, true);
		break;
	case DB_LISTEN_DOWN:
		secrets_cache_set_enabled(c, false);
		break;
	case DB_LISTEN_NOTIFY:
		colon = payload ? strchr(payload, ':') : NULL;
		if (colon && colon[1]) {
			secrets_cache_invalidate(c, colon + 1);
		} else {
			pthread_rwlock_wrlock(&c->lock);
			flush_locked(c);
			pthread_rwlock_unlock(&c->lock);
		}
		break;
	}
}
