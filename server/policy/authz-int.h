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

	void *rpc_handlers; /* the Policy service's handler table (policy_rpc_register) */
};

/* authz.c */
int64_t authz_now_us(void);
const struct authz_method *authz_method_find(const struct authz *a, const char *path);
/*
 * The resource a request of action names (the table in authz.c), written to buf (len
 * bytes). Returns 0, -ENOENT when the action has no mapping (such calls are denied), or
 * -ENAMETOOLONG.
 */
int authz_resource(const char *action, const ProtobufCMessage *req, char *buf, size_t len);
/* The caller's token: parses the call's authorization header and copies its id and
 * policies into call memory. Returns 0 or -EACCES (no valid token), db errors. */
int authz_caller(struct authz *a, struct rpc_call *call, const char **ret_id,
		 const char *const **ret_policies, size_t *ret_n);
/* A denial a handler decides (beyond the gate: a token's bounds, self-escalation): audited
 * like the gate's (policy.denied, the caller, the call's action, resource, msg as the
 * reason), answered PERMISSION_DENIED with msg. Returns the rpc_call_error result. */
int authz_deny(struct authz *a, struct rpc_call *call, const char *resource, const char *msg);
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
