#pragma once
/*
 * Shared by the files of secrets/: the store's context and the helpers that turn result
 * rows into metadata.
 */
#include <stdarg.h>

#include "change.h"
#include "db.h"
#include "secrets.h"

struct secrets {
	struct db *db;		/* borrowed */
	const struct kek *kek;	/* borrowed */
	struct bus *bus;	/* borrowed, may be NULL */
	size_t max_value;	/* > 0 */
	int retain;		/* >= 0, 0 = keep every version's value */
	int timeout_ms;		/* > 0 */
	void *rpc_handlers;	/* struct rpc_method_handler[], once registered */
	struct secrets_cache *cache;	/* NULL: no read cache (cache_entries -1) */
	struct db_listen *listen;	/* invalidates cache from other servers' changes */
	struct change_guess *guess;	/* metadata this server last wrote (secrets_guess.c) */
	int rotation_kind;		/* item kind of the rotation hook (change_hook_register) */
};

/*
 * The metadata columns every query selects, in this order (secrets_meta_from_row):
 * name, current_version, created_us, updated_us, deleted, deleted_us, labels.
 */
#define SECRETS_META_COLS                                                                  \
	"name, current_version, (extract(epoch FROM created_at) * 1000000)::bigint AS c_us, " \
	"(extract(epoch FROM updated_at) * 1000000)::bigint AS u_us, "                        \
	"deleted_at IS NOT NULL AS deleted, "                                                  \
	"coalesce((extract(epoch FROM deleted_at) * 1000000)::bigint, 0) AS d_us, "           \
	"labels::text AS labels"
#define SECRETS_META_NCOLS 7

/* Fills m from the SECRETS_META_COLS starting at column col of row. -EPROTO, -ENOMEM. */
int secrets_meta_from_row(const struct db_rows *rows, size_t row, size_t col,
			  struct secrets_meta *m);
/* Parses labels JSON text (an object of strings) into m. -EPROTO, -ENOMEM. */
int secrets_labels_parse(const char *json, struct secrets_meta *m);
/* The additional data binding a sealed value to its row. */
void secrets_aad(const char *tenant, const char *name, int64_t version, char *buf, size_t len);
/*
 * The reply of a change as stored under its request key: the SecretMeta message the client
 * gets (secrets_rpc.c), so that a retry receives the same bytes. -ENOMEM; unpack -EPROTO.
 */
int secrets_reply_pack(const struct secrets_meta *m, uint8_t **ret, size_t *ret_len);
int secrets_reply_unpack(const uint8_t *p, size_t n, struct secrets_meta *ret);
/* snprintf into ctx->err; returns err. */
int secrets_fail(char *buf, size_t len, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* A tenant id or the default one. */
const char *secrets_tenant(const struct secrets_ctx *ctx);
/* The current version of a live secret (one read); -ENOENT when missing or deleted. */
int secrets_current_version(struct secrets *s, const struct secrets_ctx *ctx, const char *name,
			    int64_t *ret);

/* Read cache (secrets_cache.c) --------------------------------------------------------- */

#define SECRETS_CACHE_CHANNEL "trstctl_secrets"	/* pg_notify channel of every change */
#define SECRETS_CACHE_SEALED_MAX 4096		/* larger sealed values are not cached */
#define SECRETS_CACHE_TTL_MS 30000		/* an entry is trusted this long after its read */

struct secrets_cache;

/* A cache of at most max_entries (> 0), disabled until secrets_cache_set_enabled. */
int secrets_cache_new(size_t max_entries, struct secrets_cache **ret);
struct secrets_cache *secrets_cache_free(struct secrets_cache *c);
/*
 * Copies the sealed bytes cached for (tenant, name, key_version: 0 = current) into buf
 * (len bytes) and sets *ret_len and *ret_version. 1 on a hit, 0 on a miss or while disabled.
 */
int secrets_cache_get(struct secrets_cache *c, const char *tenant, const char *name,
		      int64_t key_version, uint8_t *buf, size_t len, size_t *ret_len,
		      int64_t *ret_version);
/* The generation to take before a read whose row may be inserted with secrets_cache_put. */
uint64_t secrets_cache_generation(struct secrets_cache *c);
/* Inserts a row read by a reader that took gen first; nothing when disabled, when an
 * invalidation happened since gen, or when the value is larger than the cache takes. */
void secrets_cache_put(struct secrets_cache *c, const char *tenant, const char *name,
		       int64_t key_version, int64_t version, const uint8_t *sealed, size_t len,
		       uint64_t gen);
/* Drops every entry of name (every version, every tenant) and bumps the generation. */
void secrets_cache_invalidate(struct secrets_cache *c, const char *name);
/* Enables or disables (the listener is up or down); flushes either way. */
void secrets_cache_set_enabled(struct secrets_cache *c, bool on);
void secrets_cache_stats(struct secrets_cache *c, struct secrets_cache_stats *ret);
/* db_listen callback on SECRETS_CACHE_CHANNEL; ud is the cache. */
void secrets_cache_on_listen(void *ud, enum db_listen_event ev, const char *payload);
/*
 * GetSecret from the cache only (the inline path of the gRPC handler): 0 and *ret_value on
 * a hit, -EWOULDBLOCK on a miss (the caller reruns secrets_get where it may block), or the
 * errors of secrets_get for a bad name or version.
 */
int secrets_get_cached(struct secrets *s, struct secrets_ctx *ctx, const char *name,
		       int64_t version, struct secrets_value *ret_value);

/*
 * One rotation (a the rotation kind item), prepared on the caller's thread for the version it
 * read: the secret moves from version current to current + 1 (sealed for that version),
 * updated_at becomes now_us, versions older than the retention limit keep (0: none) are
 * destroyed, and the reply is stored under request_id ("" none). secrets_rotation_hook
 * writes every rotation of a batch with two set-based statements, so the writer runs no
 * statement per rotation. One allocation; strings and bytes in buf, reached by offset.
 */
struct secrets_rotation {
	size_t size; /* of the whole allocation */
	char tenant[40];
	char name[SECRETS_NAME_MAX + 1];
	int64_t current, now_us;
	int keep;
	int kind;			/* the hook's item kind */
	struct change_item_key key;	/* the request's key ("" request_id: none) */
	size_t sealed_off, sealed_len, reply_off, reply_len;
	uint8_t buf[];
};
struct secrets_rotation_spec {
	const char *tenant, *name;
	int64_t current, now_us;
	int keep;
	int kind;			/* secrets->rotation_kind */
	const struct change_key *key;	/* NULL: not idempotent */
	const uint8_t *sealed, *reply;
	size_t sealed_len, reply_len;
};
int secrets_rotation_new(const struct secrets_rotation_spec *spec, struct secrets_rotation **ret);
/* Attaches a copy to the change (the writer frees it). */
int secrets_rotation_attach(struct db_tx *tx, const struct secrets_rotation *rot);
/*
 * The pre-commit hook of the rotation kind: locks the batch's secrets in key order, refuses
 * (results[i]) a rotation whose secret is missing (-ENOENT), deleted or no longer at
 * `current` (-ESTALE), rotated twice in one batch (-EBUSY), or whose request_id was stored
 * meanwhile (-EEXIST); writes the others in one statement (with pg_notify for the caches).
 */
int secrets_rotation_hook(struct db_conn *c, void *const *items, size_t n, int *results,
			  void *ud);
/* What a rotation reads first: 0 with the secret's metadata, or -ENOENT. */
int secrets_rotation_read(struct secrets *s, const char *tenant, const char *name,
			  struct secrets_meta *ret);

/*
 * The metadata this server last wrote per secret (a change_guess keyed by tenant and name,
 * values struct secrets_meta; ops in secrets_guess.c): a rotation starts from it without a
 * read; the rotation hook checks version and liveness under the row lock.
 */
#define SECRETS_GUESS_SLOTS 16384
extern const struct change_guess_ops secrets_guess_ops;
/* Remembers m as this server's last copy of secret m->name of tenant. */
void secrets_guess_put(struct secrets *s, const char *tenant, const struct secrets_meta *m);
