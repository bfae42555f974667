#pragma once
/*
 * Shared by the files of the policy service (authz.c, store.c, policy_rpc.c,
 * token_admin.c); not part of the module's interface.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "authz.h"
#include "policy.h"

struct db;
struct db_tx;
struct db_rows;

#define AUTHZ_TOK_BUCKETS 1024
#define AUTHZ_TOK_MAX 8192		/* cached tokens beyond which the cache starts over */
#define AUTHZ_TOUCH_US (60 * 1000000LL) /* last_used_time is written at most this often */
#define AUTHZ_TOUCH_QUEUE 256 /* last_used_time writes waiting for the poller */
#define AUTHZ_AUDIT_TIMEOUT_MS 10000
#define AUTHZ_DB_TIMEOUT_MS 5000
#define AUTHZ_MAX_POLICIES 64 /* policies one token may be bound to */
#define AUTHZ_NAME_MAX 128    /* bytes of a token name */
#define AUTHZ_UNAUTH_MSG "missing or invalid bearer token"

/* A token as stored (never its text). */
struct store_token {
	char id[POLICY_TOKEN_ID_LEN + 1];
	uint8_t hash[POLICY_HASH_LEN];
	char *name;
	char **policies; /* n_policies names, each malloc'd */
	size_t n_policies;
	int64_t create_us, expire_us, last_used_us; /* microseconds since the epoch; 0: none */
	bool revoked;
	char parent_id[POLICY_TOKEN_ID_LEN + 1]; /* the token that created it; "": a root */
};

/* A policy as stored. */
struct store_policy {
	char *name;
	char *document;
	int64_t version;
	int64_t update_us;
	bool deleted;
};

/* A cached token: what authentication needs, read under authz.tok_lock. */
struct tok_entry {
	uint8_t hash[POLICY_HASH_LEN];
	char id[POLICY_TOKEN_ID_LEN + 1];
	char *name;
	char **policies;
	size_t n_policies;
	int64_t expire_us;	  /* 0: never */
	_Atomic int64_t touch_us; /* last_used_time as last written (by anyone we know of) */
	struct tok_entry *next;
};

/* One served method: its path and its action. */
struct authz_method {
	char *path;   /* "/trstctl.v1.CA/CreateOwner" */
	char *action; /* "CA.CreateOwner" */
	const ProtobufCMessageDescriptor *input;
};

struct authz {
	struct db *db;
	struct audit *audit;
	struct bus *bus;
	const char *tenant;
	char *bootstrap_file;
	enum authz_bootstrap bootstrapped;

	struct authz_method *methods; /* every method of the five services */
	const char **actions;	      /* the same, as the known-actions list of the set */
	size_t n_methods;
	struct policy_set *set;

	pthread_rwlock_t tok_lock; /* guards the cache below; held for reading during eval */
	struct tok_entry *tok[AUTHZ_TOK_BUCKETS];
	size_t n_tok;
	uint64_t tok_epoch; /* bumped on every drop: a lookup that raced a drop inserts nothing */

	pthread_mutex_t reload_mu; /* one reload at a time; guards generation */
	int64_t generation;	   /* last generation seen; -1: none yet */

	pthread_mutex_t poll_mu;
	pthread_cond_t poll_cv;
	pthread_t poller;
	bool poller_running, stop;
	int poll_ms;
	bool poll_failing; /* the last poll failed: log the recovery once */
	/* tokens whose last_used_time the poller writes at its next poll (poll_mu): a call
	 * never waits for that write, so a slow database does not hold up calls it is not
	 * needed for; a full queue drops a write (the token is touched again a minute later) */
	char touch_ids[AUTHZ_TOUCH_QUEUE][POLICY_TOKEN_ID_LEN + 1];
	size_t n_touch;

	void *rpc_handlers; /* the Policy service's handler table (policy_rpc_register) */

	/* unauthenticated calls: counted and summarized (unauth.c) */
	struct unauth_table *unauth;
	int64_t unauth_interval_ms; /* one summary per source per this long */
	pthread_mutex_t flush_mu;   /* guards flush_stop; flush_cv wakes the flusher */
	pthread_cond_t flush_cv;
	bool flush_stop, flusher_running;
	pthread_t flusher;
};

/*
 * Unauthenticated calls (a missing, malformed, unknown, expired or revoked token). Each is
 * counted (trstctl_unauthenticated_calls_total{reason}) and noted in a table keyed by its
 * source (the peer's address without the port); every interval, and at shutdown, the
 * table becomes one auth.denied audit record per source. unauth-table.c is the table (no
 * database, no gRPC: unit-tested alone), unauth.c the flusher and the metrics.
 */
enum unauth_reason {
	UNAUTH_MISSING,	  /* no authorization header */
	UNAUTH_MALFORMED, /* a header that is not `Bearer trst_<43 characters>` */
	UNAUTH_UNKNOWN,	  /* well-formed, but no such token */
	UNAUTH_EXPIRED,
	UNAUTH_REVOKED,
	UNAUTH_N_REASONS
};
#define UNAUTH_SOURCE_MAX 64		  /* bytes of a source as kept */
#define UNAUTH_METHODS 16		  /* distinct methods kept per source */
#define UNAUTH_TOKENS 4			  /* distinct presented token ids kept per source */
#define UNAUTH_SAMPLE_MAX 64		  /* bytes of caller text kept (before escaping) */
#define UNAUTH_CLEAN_LEN(n) (6 * (n) + 4) /* room for n bytes cleaned (authz_text_clean) */
#define UNAUTH_NO_METHOD UINT16_MAX	  /* a call whose method has no name */
#define UNAUTH_DEFAULT_INTERVAL_MS (60 * 1000LL)
#define UNAUTH_DEFAULT_MAX_SOURCES 1024

/* "missing", "malformed", "unknown", "expired", "revoked". */
const char *unauth_reason_name(enum unauth_reason r);
/* The reason of a name above; UNAUTH_UNKNOWN for anything else. */
enum unauth_reason unauth_reason_from(const char *name);

/* What one source did in one interval. */
struct unauth_summary {
	char source[UNAUTH_CLEAN_LEN(UNAUTH_SOURCE_MAX)]; /* address, cleaned; "other" */
	bool other;		   /* calls of sources beyond the table's cap, folded together */
	uint64_t count;		   /* calls; > 0 */
	int64_t first_us, last_us; /* first and last call, microseconds since the epoch */
	uint64_t reasons[UNAUTH_N_REASONS];
	size_t n_methods;
	struct {
		uint16_t idx; /* index into the caller's method names, or UNAUTH_NO_METHOD */
		uint64_t count;
	} methods[UNAUTH_METHODS];
	uint64_t other_methods; /* calls of methods beyond the first UNAUTH_METHODS */
	size_t n_tokens;
	char tokens[UNAUTH_TOKENS][POLICY_TOKEN_ID_LEN + 1]; /* presented ids (hex) */
	uint64_t other_tokens; /* calls presenting an id beyond the first UNAUTH_TOKENS */
	char sample[UNAUTH_CLEAN_LEN(UNAUTH_SAMPLE_MAX)]; /* the first call's resource, cleaned */
	size_t sample_bytes; /* the length of that resource before truncation */
};

/* One unauthenticated call. Strings are borrowed. */
struct unauth_call {
	const char *peer; /* gRPC's peer, "ipv4:10.0.0.1:5555" */
	uint16_t method;  /* index of the method, or UNAUTH_NO_METHOD */
	enum unauth_reason reason;
	const char *token_id; /* the presented token's id (hex), or NULL/"" */
	const char *resource; /* the call's resource: caller text, NULL/"" */
	int64_t now_us;
};

struct unauth_table;
/* A table of at most max_sources (>= 1) sources besides the "other" entry. -EINVAL, -ENOMEM. */
int unauth_table_new(size_t max_sources, struct unauth_table **ret);
struct unauth_table *unauth_table_free(struct unauth_table *t);
/* Counts c (under the table's mutex; allocates only for a new source, never blocks on I/O). */
void unauth_note(struct unauth_table *t, const struct unauth_call *c);
/* Adds s back (a summary taken and not written): counts add up, times widen. */
void unauth_merge(struct unauth_table *t, const struct unauth_summary *s);
/* Moves every summary out (the "other" entry last) and empties the table. *ret (free()) may
 * be NULL when *ret_n is 0. -ENOMEM (the table is left as it was). */
int unauth_take(struct unauth_table *t, struct unauth_summary **ret, size_t *ret_n);
/* Totals since the table was made: calls per reason, and calls folded into "other". */
void unauth_totals(struct unauth_table *t, uint64_t ret_reasons[UNAUTH_N_REASONS],
		   uint64_t *ret_folded);
/* The audit record's data of s: names[idx] names a method (idx >= n_names: "(none)"). */
struct json_t *unauth_summary_json(const struct unauth_summary *s, const char *const *names,
				   size_t n_names, int64_t interval_ms);

/*
 * The source of a gRPC peer: "ipv4:10.0.0.1:5555" -> "10.0.0.1", "ipv6:[::1]:5" (or
 * "%5B::1%5D") -> "::1" (an IPv4-mapped address as IPv4); anything else cleaned and cut at
 * UNAUTH_SOURCE_MAX bytes. Writes buf (at least UNAUTH_CLEAN_LEN(UNAUTH_SOURCE_MAX) bytes).
 */
void authz_peer_source(const char *peer, char *buf, size_t len);
/*
 * Caller text made safe to store and show: at most max_in bytes of in (never cutting a
 * UTF-8 sequence; "..." marks a cut), printable UTF-8 kept, a backslash doubled, every
 * control character (C0, DEL, C1), bidirectional or invisible format character and
 * invalid byte escaped (\xNN for a byte, \u{XXXX} for a character). out holds at least
 * UNAUTH_CLEAN_LEN(max_in) bytes (outlen; less is cut short). Returns strlen(out).
 */
size_t authz_text_clean(const char *in, size_t max_in, char *out, size_t outlen);

/* unauth.c: the table, its flusher thread (interval_ms > 0) and the final flush. */
int authz_unauth_start(struct authz *a, int64_t interval_ms, size_t max_sources);
void authz_unauth_stop(struct authz *a);
/* Notes an unauthenticated call (never blocks: callable inline). */
void authz_unauth_note(struct authz *a, struct rpc_call *call, const char *resource,
		       const char *token_id, enum unauth_reason reason);
/* Writes the table's summaries now (one transaction); on failure they go back into the
 * table. Returns how many records were written, or -errno. */
int authz_unauth_flush(struct authz *a);

/* authz.c */
int64_t authz_now_us(void);
const struct authz_method *authz_method_find(const struct authz *a, const char *path);
/*
 * The resource a request of action names (the table in authz.c), written to buf (len
 * bytes). Returns 0, -ENOENT when the action has no mapping (such calls are denied), or
 * -ENAMETOOLONG.
 */
int authz_resource(const char *action, const ProtobufCMessage *req, char *buf, size_t len);
/* The request field authz_resource reads for action ("the request" when none). */
const char *authz_resource_field(const char *action);
/* The caller's token: parses the call's authorization header and copies its id and
 * policies into call memory. Returns 0 or -EACCES (no valid token), db errors. */
int authz_caller(struct authz *a, struct rpc_call *call, const char **ret_id,
		 const char *const **ret_policies, size_t *ret_n);
/* A denial a handler decides (beyond the gate: a token's bounds, self-escalation): audited
 * like the gate's (policy.denied, the caller, the call's action, resource, msg as the
 * reason), answered PERMISSION_DENIED with msg. Returns the rpc_call_error result. */
int authz_deny(struct authz *a, struct rpc_call *call, const char *resource, const char *msg);
/* A call a handler finds without a valid token after all (why: a reason's name): counted
 * like the gate's (unauth.c), answered UNAUTHENTICATED. Returns the rpc_call_error result. */
int authz_deny_unauthenticated(struct authz *a, struct rpc_call *call, const char *why);
/* Builds the known-actions list from the five service descriptors (tests use it too).
 * Frees with authz_methods_free. */
int authz_methods_build(struct authz_method **ret_methods, const char ***ret_actions,
			size_t *ret_n);
void authz_methods_free(struct authz_method *m, const char **actions, size_t n);

/* store.c: reads lease a pool connection; store_tx_* run inside a db_write change. */
void store_token_clear(struct store_token *t);
void store_policy_clear(struct store_policy *p);
int store_generation(struct db *db, const char *tenant, int64_t *ret_gen);
int store_policies_all(struct db *db, const char *tenant, struct store_policy **ret, size_t *ret_n);
void store_policies_free(struct store_policy *p, size_t n);
int store_policy_get(struct db *db, const char *tenant, const char *name, struct store_policy *ret);
int store_policy_list(struct db *db, const char *tenant, const char *after, int limit,
		      struct store_policy **ret, size_t *ret_n);
int store_token_by_hash(struct db *db, const char *tenant, const uint8_t hash[POLICY_HASH_LEN],
			struct store_token *ret);
int store_token_by_id(struct db *db, const char *tenant, const char *id, struct store_token *ret);
int store_token_list(struct db *db, const char *tenant, const char *after, int limit,
		     struct store_token **ret, size_t *ret_n);
void store_tokens_free(struct store_token *t, size_t n);
int store_token_touch(struct db *db, const char *tenant, const char *id);
int store_tx_bump(struct db_tx *tx, const char *tenant);
int store_tx_policy_put(struct db_tx *tx, const char *tenant, const char *name, const char *doc,
			struct store_policy *ret);
int store_tx_policy_delete(struct db_tx *tx, const char *tenant, const char *name,
			   struct store_policy *ret);
/* -ENOENT and *ret_missing (borrowed from names) when a named policy is not stored. */
int store_tx_policies_exist(struct db_tx *tx, const char *tenant, const char *const *names,
			    size_t n, const char **ret_missing);
/* Takes the bootstrap advisory lock (until the transaction ends); 1 when a token exists. */
int store_tx_bootstrap_lock(struct db_tx *tx, const char *tenant);
/* Inserts t (its parent_id; a non-zero expire_us caps the expiry: the parent's). */
int store_tx_token_insert(struct db_tx *tx, const char *tenant, const struct store_token *t,
			  int64_t ttl_seconds, struct store_token *ret);
int store_tx_token_revoke(struct db_tx *tx, const char *tenant, const char *id,
			  struct store_token *ret);
/* Revokes every descendant of token id not revoked yet; *ret_n: how many. */
int store_tx_token_revoke_descendants(struct db_tx *tx, const char *tenant, const char *id,
				      int64_t *ret_n);
/* Reads token id and locks its row against a concurrent revocation (FOR SHARE). -ENOENT. */
int store_tx_token_lock(struct db_tx *tx, const char *tenant, const char *id,
			struct store_token *ret);
/* Attaches the change's audit record (type, actor, resource, data) and its
 * events.policy.changed event (bus may be NULL: none). Takes data and event (jansson
 * objects; NULL is -ENOMEM). */
struct json_t;
int store_tx_record(struct db_tx *tx, struct bus *bus, const char *tenant, const char *type,
		    const char *actor, const char *resource, struct json_t *data,
		    struct json_t *event);

/*
 * Token creation shared by the Policy service, the CLI and the bootstrap: validates,
 * inserts, bumps the generation, audits (actor), emits policy.changed (bus may be NULL).
 * token is in/out: "" on entry: a new token is made there; else that token (made by
 * policy_token_new) is stored. The text is a secret: the caller shows it once and wipes
 * it. Returns 0; -EINVAL with err; -ENOENT with err naming a policy that is not stored;
 * -EALREADY when bootstrap found a token, or when request_id was used before (then
 * ret_meta->id names the token that request made); db errors.
 */
struct change_key;
struct authz_token_req {
	const char *tenant;
	const char *name;
	const char *const *policies;
	size_t n_policies;
	int64_t ttl_seconds; /* 0: never expires */
	const char *parent_id; /* the creating token (CreateToken); NULL: a root (CLI,
				* bootstrap). The child's expiry and policies must stay within
				* the parent's (else -EPERM with err naming the bound) */
	const char *actor;
	const struct change_key *key; /* the request's key (change room); NULL: none */
	bool bootstrap;		/* only when the tenant has no token (advisory lock) */
};
int authz_token_create(struct db *db, struct bus *bus, const struct authz_token_req *req,
		       char token[POLICY_TOKEN_LEN + 1], struct store_token *ret_meta, char *err,
		       size_t errlen);
/* Revokes token id through the change room (key NULL: no request key): 0 when revoked now
 * (audited, event), 1 when it already was or key is a retry (nothing written), -ENOENT,
 * -EINVAL for a malformed id or a reused request_id (err); fills ret_meta. */
int authz_token_revoke(struct db *db, struct bus *bus, const char *tenant, const char *id,
		       const char *actor, const struct change_key *key,
		       struct store_token *ret_meta, char *err, size_t errlen);
