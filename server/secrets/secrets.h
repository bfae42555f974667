#pragma once
/*
 * secrets: the native secret store (issue 7; tables secrets and secret_versions of
 * migration 0003). Versioned values sealed by the KEK envelope with additional data
 * "<tenant>:secret:<name>:<version>", so sealed bytes moved onto another row never open.
 * Every change goes through the group-commit writer with its audit record (carrying an
 * HMAC of the value, never the value) and its event (secret.created, .rotated, .deleted,
 * .recovered, .destroyed) in the same transaction. A request_id makes a change idempotent.
 *
 * Errors are -errno with a message safe to show in ctx->err (never a value):
 *   -EINVAL invalid name, label, version or page token; -EMSGSIZE value too large;
 *   -EEXIST duplicate name; -ENOENT no such secret or version, a deleted secret, a
 *   destroyed version; -ESTALE expected_version differs; -EILSEQ wrong state (recover a
 *   live secret, destroy a destroyed version); -EBADMSG sealed bytes fail to open (logged).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct kek;
struct bus;
struct rpc_server;
struct secrets;

#define SECRETS_NAME_MAX 256
#define SECRETS_LABELS_MAX 64	     /* labels per secret */
#define SECRETS_LABEL_KEY_MAX 63     /* bytes of a label key, [A-Za-z0-9._/-] */
#define SECRETS_LABEL_VALUE_MAX 256  /* bytes of a label value, printable UTF-8 */
#define SECRETS_PAGE_DEFAULT 100
#define SECRETS_PAGE_MAX 1000
#define SECRETS_DEFAULT_MAX_VALUE 65536
#define SECRETS_DEFAULT_RETAIN 10
#define SECRETS_DEFAULT_CACHE 10000

struct secrets_config {
	size_t max_value_bytes; /* largest value, 0 = SECRETS_DEFAULT_MAX_VALUE */
	int retain_versions;	/* versions kept with their value, 0 = all (cfg default 10) */
	int write_timeout_ms;	/* db_write bound, 0 = 10000 */
	int cache_entries;	/* GetSecret read cache (sealed rows), 0 = SECRETS_DEFAULT_CACHE,
				 * -1 = none; see secrets_cache.c for its consistency */
};

/* One call: who asks, in which tenant, and where the error message goes. */
struct secrets_ctx {
	const char *tenant_id;	/* NULL = DB_DEFAULT_TENANT */
	const char *actor;	/* for audit and events; NULL = "anonymous" */
	const char *request_id; /* NULL or "": not idempotent (callers without a key) */
	const struct change_key *key; /* the request's key (change room), overrides request_id */
	bool replayed;		/* set when the reply is the stored reply of request_id */
	int timeout_ms;		/* bound of a write (a call's time left); 0: the store's */
	char err[256];		/* set with a safe message when a call fails */
};

struct change_key;
struct secrets_label {
	char *key;
	char *value;
};

/* Metadata of a secret (never its value). */
struct secrets_meta {
	char name[SECRETS_NAME_MAX + 1];
	int64_t version;		/* the current version */
	int64_t create_us, update_us;	/* microseconds since the epoch */
	bool deleted;
	int64_t delete_us;		/* 0 unless deleted */
	struct secrets_label *labels;	/* n_labels, owned (secrets_meta_clear), sorted by key */
	size_t n_labels;
};

/* A value read by secrets_get. */
struct secrets_value {
	int64_t version;
	uint8_t *value; /* n bytes in locked memory; wiped by secrets_value_clear */
	size_t n;
};

/* One version in secrets_versions. */
struct secrets_version {
	int64_t version;
	bool destroyed;
	int64_t create_us, destroy_us; /* destroy_us 0 unless destroyed */
};

/*
 * Opens the store on db (migrated), kek (borrowed, seals and opens values), bus (borrowed,
 * may be NULL: events are still written to the outbox when bus_open ran on db, the relay
 * is just not kicked). audit_open and bus_open must have registered their hooks on db.
 * cfg may be NULL (defaults). Unless cfg->cache_entries is -1 it starts the read cache's
 * listener (one more PostgreSQL connection, LISTEN trstctl_secrets); the cache is used
 * once that connection listens. Returns -EINVAL, -ENOMEM or -EAGAIN.
 */
int secrets_open(struct db *db, const struct kek *kek, struct bus *bus,
		 const struct secrets_config *cfg, struct secrets **ret);
/* Frees. An rpc_server it was registered with must be freed first. Accepts NULL. */
struct secrets *secrets_close(struct secrets *s);

/* Checks a name: 1-256 bytes of [A-Za-z0-9._/-], no empty segment, no "..". Returns 0 or
 * -EINVAL with the rule broken in err (errlen bytes). */
int secrets_check_name(const char *name, char *err, size_t errlen);

/* CreateSecret: version 1 of name with value (n bytes) and labels. Fills *ret_meta. */
int secrets_create(struct secrets *s, struct secrets_ctx *ctx, const char *name,
		   const uint8_t *value, size_t n, const struct secrets_label *labels,
		   size_t n_labels, struct secrets_meta *ret_meta);
/* RotateSecret: version current + 1; expected_version > 0 must equal current (-ESTALE). */
int secrets_rotate(struct secrets *s, struct secrets_ctx *ctx, const char *name,
		   const uint8_t *value, size_t n, int64_t expected_version,
		   struct secrets_meta *ret_meta);
/* GetSecret: version 0 = current. Fills *ret_value (secrets_value_clear). */
int secrets_get(struct secrets *s, struct secrets_ctx *ctx, const char *name, int64_t version,
		struct secrets_value *ret_value);
/* DeleteSecret (soft), RecoverSecret. */
int secrets_delete(struct secrets *s, struct secrets_ctx *ctx, const char *name,
		   struct secrets_meta *ret_meta);
int secrets_recover(struct secrets *s, struct secrets_ctx *ctx, const char *name,
		    struct secrets_meta *ret_meta);
/* DestroySecretVersion: erases the sealed bytes of version (>= 1); metadata stays. */
int secrets_destroy(struct secrets *s, struct secrets_ctx *ctx, const char *name,
		    int64_t version, struct secrets_meta *ret_meta);

/*
 * ListSecrets: names starting with prefix ("" = all) in bytewise order, after page_token
 * (NULL/"" = from the start; else a next_page_token), at most page_size (0 = 100, at most
 * 1000). Deleted secrets only with show_deleted. *ret_metas (n) and *ret_next (NULL on the
 * last page) are malloc'd: free with secrets_metas_free and free().
 */
int secrets_list(struct secrets *s, struct secrets_ctx *ctx, const char *prefix, int page_size,
		 const char *page_token, bool show_deleted, struct secrets_meta **ret_metas,
		 size_t *ret_n, char **ret_next);
/* ListSecretVersions: every version, oldest first (deleted secrets too). *ret malloc'd. */
int secrets_versions(struct secrets *s, struct secrets_ctx *ctx, const char *name,
		     struct secrets_version **ret, size_t *ret_n);

/* How many secrets tenant_id (NULL: the default tenant) holds, deleted ones not counted
 * (for summaries: telemetry). Returns 0 with *ret_n, or a db error. */
int secrets_count(struct secrets *s, const char *tenant_id, int64_t *ret_n);

/* The GetSecret read cache's counters (secrets_read_stats). */
struct secrets_cache_stats {
	uint64_t hits, misses;	/* lookups while enabled */
	uint64_t invalidations;	/* names invalidated (local changes and notifications) */
	uint64_t flushes;	/* listener up or down */
	size_t entries;
	bool enabled;		/* the listener is up and the cache is used */
};
/* Fills *ret (all zero without a cache). */
void secrets_read_stats(struct secrets *s, struct secrets_cache_stats *ret);

void secrets_meta_clear(struct secrets_meta *m);
struct secrets_meta *secrets_metas_free(struct secrets_meta *m, size_t n);
void secrets_value_clear(struct secrets_value *v);

/* gRPC: registers trstctl.v1.Secrets. s is borrowed and must outlive the server. */
int secrets_rpc_register(struct rpc_server *srv, struct secrets *s);

