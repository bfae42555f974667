#pragma once
/*
 * change: the mutation protocol of trstctl, written once (docs/architecture.md, "The change
 * room"). Every mutating RPC goes through it: the request's key, the idempotency check,
 * the domain's apply step inside a group-commit change, its audit record and its event
 * attached to the same transaction, the stored reply, and the guess-and-verify retry.
 * Domains keep their validation and their own SQL; nothing else of the protocol is theirs.
 *
 * Idempotency. A request is keyed by (tenant, principal, method, request_id) and carries a
 * fingerprint of its serialized bytes. The first call that commits stores its reply under
 * the key (table idempotency, written and read only by this module). Later calls with the
 * same key:
 *   - same fingerprint: the stored reply, byte for byte, and nothing runs again;
 *   - another fingerprint: -EINVAL, "request_id X was used for a different request".
 * Another principal's request_id is another key: it never sees nor suppresses anyone
 * else's reply. Two calls racing the same key: the primary key lets exactly one commit;
 * the other finds the stored reply (or the mismatch) when it looks again.
 * Stored replies live at least the retention (default 24 h); a purge removes older ones.
 *
 * Above db/, audit/ and bus/; below the domains (policy/, ca/, secrets/). No protobuf, no
 * gRPC: replies are bytes packed by the caller's pack function.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

struct bus;
struct kek;
struct json_t;

#define CHANGE_FP_LEN 32			/* SHA-256 / HMAC-SHA256 */
#define CHANGE_RETENTION_DEFAULT_S 86400	/* stored replies: 24 h */
#define CHANGE_REQUEST_ID_MAX 128		/* bytes of a request_id */
#define CHANGE_ERR_MAX 256

/* The identity of one mutating request. Strings are borrowed. */
struct change_key {
	const char *tenant;		    /* NULL: DB_DEFAULT_TENANT */
	const char *principal;		    /* the caller (token id); NULL or "": "anonymous" */
	const char *method;		    /* full gRPC method, "/trstctl.v1.CA/CreateOwner" */
	const char *request_id;		    /* NULL or "": not idempotent, nothing is stored */
	uint8_t fingerprint[CHANGE_FP_LEN]; /* change_fingerprint() of the request's bytes */
};

/* True when the key carries a request_id (its reply is stored). */
bool change_key_idempotent(const struct change_key *k);
/* The tenant of k, or DB_DEFAULT_TENANT. */
const char *change_tenant(const struct change_key *k);
/* The principal of k, or "anonymous". */
const char *change_principal(const struct change_key *k);

/*
 * Fingerprint of a request's serialized bytes into k->fingerprint: SHA-256, or with kek
 * HMAC-SHA256 under a key derived from it (requests that carry secret values: the table
 * then holds nothing that helps guess them). 0, -ENOMEM or -EIO.
 */
int change_fingerprint(const struct kek *kek, const void *bytes, size_t len,
		       struct change_key *k);

/*
 * Checks a key's request_id: empty is fine (not idempotent); otherwise 1-128 bytes of
 * printable ASCII. -EINVAL with a message in err.
 */
int change_key_check(const struct change_key *k, char *err, size_t errlen);

/*
 * Stores reply under k inside the change (nothing when k is not idempotent). -EEXIST when
 * a call with the same key committed first (the caller looks again: change_run does).
 */
int change_store(struct db_tx *tx, const struct change_key *k, const uint8_t *reply,
		 size_t len);

/* Audit and events ------------------------------------------------------------------- */

/*
 * What one change leaves behind: an audit record, and (unless no_event) an event on the
 * outbox, in the change's transaction. Strings are borrowed.
 */
struct change_record {
	const char *tenant;	/* NULL: DB_DEFAULT_TENANT */
	const char *type;	/* audit type, "owner.created" */
	const char *actor;	/* who: "<token id> <name>", "kernel", ...; NULL "anonymous" */
	const char *resource;	/* "owners/<id>" */
	const char *outcome;	/* "ok" (NULL), "denied" or "error" */
	const char *data_json;	/* the audit record's data (a JSON object), NULL "{}" */
	const struct json_t *data; /* or the object itself (jansson's; then data_json unused
				    * and the event carries the same data) */
	const char *event_type; /* NULL: type */
	const char *event_json; /* the event's data; NULL: data_json */
	bool no_event;		/* audit only */
};

/* Attaches the audit record and the event of rec to the change. -errno of audit/bus. */
int change_record(struct db_tx *tx, const struct change_record *rec);

/*
 * The same, prepared on the caller's thread (so that the writer only attaches them): for
 * changes whose rows a pre-commit hook writes. Free with change_prepared_free.
 */
struct change_prepared;
int change_prepare(const struct change_record *rec, struct change_prepared **ret);
int change_attach(struct db_tx *tx, const struct change_prepared *p);
struct change_prepared *change_prepared_free(struct change_prepared *p);

/* The protocol of one change ------------------------------------------------------- */

/*
 * One mutation. The caller fills the inputs; change_run fills the outputs.
 *   apply: the domain's step, inside the change: its own SQL (db_tx_exec), its items
 *          (pre-commit hooks) and its change_record. May run more than once (the writer
 *          retries a batch on a serialization failure): it resets what it produces first.
 *          A negative return undoes the change (-errno, message in err).
 *   pack:  the reply bytes stored under the key (malloc'd); NULL when nothing is stored
 *          for this method (then a retry with the key is told it ran already, -EALREADY).
 */
struct change {
	struct db *db;		  /* where */
	struct bus *bus;	  /* kicked after a commit; may be NULL */
	const struct change_key *key;
	int (*apply)(struct db_tx *tx, void *ud, char *err, size_t errlen);
	int (*pack)(void *ud, uint8_t **ret, size_t *ret_len);
	void *ud;
	int timeout_ms;		  /* of the write; 0: 30 s */
	bool skip_lookup;	  /* the caller already looked the key up (change_check) */
	bool no_store;		  /* apply's hook item stores the reply (change_batch_*) */
	/* outputs */
	uint8_t *replayed;	  /* the stored reply when change_run returned 1 (owned) */
	size_t replayed_len;
	char err[CHANGE_ERR_MAX]; /* a message safe to show, for a negative return */
	bool lost_race;		  /* internal: the reply's insert met a twin's */
};

/*
 * Runs ch: looks the key up (1 with ch->replayed: a retry, nothing ran), else writes the
 * change (apply, pack, store) and waits for its commit (0). A twin that committed first
 * while this one ran turns into its stored reply (1) or -EINVAL (different request).
 * Errors: apply's, the writer's, -EINVAL for a bad or reused request_id (ch->err says).
 */
int change_run(struct change *ch);
/*
 * Checks ch->key (-EINVAL, message in ch->err) and looks it up on a pooled connection of
 * ch->db: 1 with ch->replayed, 0 when new, -EINVAL when used for a different request. For
 * callers that must answer a retry before their own checks, then change_run with
 * skip_lookup.
 */
int change_check(struct change *ch);
/*
 * After a twin with ch->key committed first (change_store's or a hook's -EEXIST): the
 * twin's answer: 1 with its reply in ch->replayed, -EINVAL when it was a different request,
 * or -EBUSY "in progress; retry" while it is not visible yet.
 */
int change_twin(struct change *ch);
/* Frees ch's outputs. Accepts NULL. */
void change_clear(struct change *ch);

/* Pre-commit hooks ------------------------------------------------------------------- */

/*
 * Registers a domain's pre-commit hook (db_precommit_fn) for a new item kind, which runs
 * before the audit and outbox hooks, so that it may refuse an item's change; sets
 * *ret_kind for db_tx_attach. At most DB_DOMAIN_KINDS domains. -ENOSPC, -EINVAL.
 */
int change_hook_register(struct db *db, db_precommit_fn fn, void *ud, int *ret_kind);

/*
 * Set-based idempotency for hooks that write a whole batch in one statement. The hook
 * reserves CHANGE_BATCH_N consecutive columns of its own (struct db_array cols[]), adds
 * one row per item with change_batch_add (the reply's bytes go to the hook's blob, whose
 * parameter it names in CHANGE_BATCH_STORE_SQL), lists CHANGE_BATCH_NAMES in its unnest()
 * alias where those columns are, and embeds CHANGE_BATCH_STORE_SQL as one of its CTEs.
 */
enum { CHANGE_BATCH_N = 6 }; /* principal, method, request_id, fingerprint, reply off, len */
/*
 * Adds k and its reply as the next row of the CHANGE_BATCH_N arrays at cols. An item
 * without a request_id adds empty strings and no bytes (nothing is stored for it).
 */
void change_batch_add(struct db_array *cols, struct db_blob *blob, const struct change_key *k,
		      const uint8_t *reply, size_t len);
/* The types of those columns in an unnest() argument list, from parameter $n on. */
#define CHANGE_BATCH_TYPES(n1, n2, n3, n4, n5, n6)                                           \
	"$" #n1 "::text[], $" #n2 "::text[], $" #n3 "::text[], $" #n4 "::text[], $" #n5      \
	"::int[], $" #n6 "::int[]"
/* Their names in the hook's ordinality alias, after the hook's own columns. */
#define CHANGE_BATCH_NAMES "ch_principal, ch_method, ch_request_id, ch_fp, ch_off, ch_len"
/*
 * A CTE named `idem` that stores the replies of the rows of `src` (a CTE of the hook's
 * that has tenant_id and the CHANGE_BATCH_NAMES columns) whose request_id is not empty;
 * `blob` is the hook's bytea parameter ("$18"). RETURNING the keys it stored: a row with
 * a request_id that is not among them lost to a twin (the hook refuses it, -EEXIST).
 */
#define CHANGE_BATCH_STORE_SQL(src, blob)                                                     \
	"idem AS (INSERT INTO idempotency (tenant_id, principal, method, request_id, "       \
	"fingerprint, reply) SELECT tenant_id, ch_principal, ch_method, ch_request_id, "      \
	"decode(ch_fp, 'hex'), substring(" blob "::bytea FROM ch_off + 1 FOR ch_len) FROM " src \
	" WHERE ch_request_id <> '' ON CONFLICT DO NOTHING RETURNING tenant_id, principal, "  \
	"method, request_id)"
/* A condition true when row `r` of the hook stored its reply or needs none. */
#define CHANGE_BATCH_STORED(r)                                                                \
	"(" r ".ch_request_id = '' OR EXISTS (SELECT 1 FROM idem d WHERE d.tenant_id = " r    \
	".tenant_id AND d.principal = " r ".ch_principal AND d.method = " r ".ch_method AND " \
	"d.request_id = " r ".ch_request_id))"
/*
 * A key carried inside a hook's item: fixed size, so the item may be copied with memcpy.
 * The tenant stays the item's own.
 */
#define CHANGE_PRINCIPAL_MAX 64
#define CHANGE_METHOD_MAX 128
struct change_item_key {
	char principal[CHANGE_PRINCIPAL_MAX + 1];
	char method[CHANGE_METHOD_MAX + 1];
	char request_id[CHANGE_REQUEST_ID_MAX + 1]; /* "": not idempotent */
	uint8_t fingerprint[CHANGE_FP_LEN];
};
/* Copies k (NULL: not idempotent) into ik. -EINVAL when a string is too long. */
int change_item_key_set(struct change_item_key *ik, const struct change_key *k);
/* A view of ik as a key of tenant (borrowing ik's strings). */
struct change_key change_item_key_get(const struct change_item_key *ik, const char *tenant);

/* Attaches a copy (size bytes, one allocation without pointers) of a hook's item. */
int change_attach_copy(struct db_tx *tx, int kind, const void *item, size_t size);

/* True when two keys are the same key (a batch refuses the second of twins). */
bool change_key_same(const struct change_key *a, const struct change_key *b);

/* Retention ------------------------------------------------------------------------- */

/*
 * Deletes stored replies older than retention_s (> 0) seconds, at most limit rows per
 * statement until none is left; *ret_purged (may be NULL) gets how many. -errno of db.
 */
int change_purge(struct db *db, int64_t retention_s, int64_t *ret_purged);

/* A thread that purges every interval_ms and counts what it removed. */
struct change_purger;
int change_purger_start(struct db *db, int64_t retention_s, int interval_ms,
			struct change_purger **ret);
/* Replies purged since start (the trstctl_idempotency_keys_purged_total metric). */
uint64_t change_purger_count(const struct change_purger *p);
struct change_purger *change_purger_stop(struct change_purger *p);

/* Guess and verify ------------------------------------------------------------------ */

/*
 * The retry of changes that start from this server's last copy of a row (a guess) and
 * let the database verify it under the row lock: attempt(ud, use_guess) runs with
 * use_guess true first; when it reports (ret_guessed) that it used a guess and failed
 * with an error for which guess_failed(ud, r) is true (the row moved on elsewhere, a twin,
 * a retried request_id), it runs once more from a fresh read. Returns the last result.
 */
int change_guess_run(int (*attempt)(void *ud, bool use_guess, bool *ret_guessed),
		     bool (*guess_failed)(void *ud, int r), void *ud);

/* From a gRPC call (change-rpc.c) ----------------------------------------------------- */

struct rpc_call;
struct ProtobufCMessage;
/*
 * Fills k for a mutating call: tenant (borrowed), the call's principal and full method,
 * request_id (borrowed), and the fingerprint of req's serialized bytes (keyed by kek when
 * not NULL: requests that carry secret values; none without a request_id, which stores
 * nothing). 0, -ENOMEM, -EIO.
 */
int change_key_from_call(struct change_key *k, struct rpc_call *call,
			 const struct ProtobufCMessage *req, const char *tenant,
			 const char *request_id, const struct kek *kek);

/* This server's last copy of rows (change-guess.c) ------------------------------------ */

/*
 * The copy of a row this server last wrote (a secret's metadata, an identity), so that the
 * next change of that row can start without reading it: a guess that the change's hook
 * verifies under the row lock (change_guess_run retries a refused guess from a fresh read).
 * Bounded and 4-way set-associative: a key's hash (tenant and key) picks a set of four slots;
 * a put into a full set replaces one of them in turn. A mutex guards it; values are copied
 * in and out with ops.
 */
struct change_guess_ops {
	size_t size;				 /* bytes of one value (a struct) */
	int (*copy)(void *dst, const void *src); /* a deep copy into dst; -ENOMEM */
	void (*clear)(void *v);			 /* frees what copy allocated in v */
};
struct change_guess;
/* A cache of at least slots (rounded up to a power of two, at most 2^20). -ENOMEM. */
int change_guess_new(size_t slots, const struct change_guess_ops *ops,
		     struct change_guess **ret);
struct change_guess *change_guess_free(struct change_guess *g);
/* Copies the value of (tenant, key) into ret: 0, or -ENOENT (also for g NULL), -ENOMEM. */
int change_guess_get(struct change_guess *g, const char *tenant, const char *key, void *ret);
/* Stores a copy of v for (tenant, key); nothing when a copy cannot be made. */
void change_guess_put(struct change_guess *g, const char *tenant, const char *key,
		      const void *v);
/* Forgets (tenant, key). */
void change_guess_drop(struct change_guess *g, const char *tenant, const char *key);
