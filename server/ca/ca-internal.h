#pragma once
/*
 * Shared by the files of the CA service (ca_store.c, ca_store_ident.c, ca_op.c, ca_owner.c, ca_identity.c,
 * ca_issue.c, ca_crl.c, ca_bootstrap.c, ca_rpc.c, ca_admin.c): the service struct, the
 * mutation plumbing of ca_op.c, the functions the service files call across, and the SQL of
 * ca_store.c. Not a public header.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "audit.h"
#include "bus.h"
#include "ca.h"
#include "change.h"
#include "db.h"

#define CA_KEY_NAME "issuing" /* sealed_keys name of the issuing CA (kind 'ca') */
#define CA_CSR_KIND "ca-csr"  /* a key waiting for `ca import-signed` */
#define CA_TLS_KIND "tls"     /* the server's own TLS certificates (ca_tls.c) */

struct ca_service {
	struct db *db;
	const struct kek *kek;
	struct bus *bus;
	struct ca_config cfg;
	struct crypto_ca *ca;
	ca_issuance_check_fn check;
	void *check_ud;
	void *rpc_handlers;	       /* struct rpc_method_handler[], ca_rpc.c */
	struct change_guess *idents;   /* identities this server knows (ca_cache.c) */
	int issue_kind;		       /* item kind of the issuance hook (change room) */
	int create_kind;	       /* item kind of the identity-create hook */

	pthread_mutex_t crl_lock;    /* the fields below */
	pthread_cond_t crl_cond;     /* a CRL build finished */
	pthread_cond_t timer_cond;   /* stopping */
	uint64_t crl_want, crl_done; /* refresh requests asked for / served */
	bool crl_running;
	bool stopping;
	bool timer_started;
	pthread_t timer;
};

/*
 * Identities this server created or issued, as it last wrote them (a change_guess keyed by
 * tenant and id, values struct ca_identity without certificate; ops in ca_cache.c): an
 * issuance starts from such a copy without a read; the issuance hook checks its state and
 * serial under the row lock, and a refused guess is retried from a fresh read.
 */
#define CA_IDENT_CACHE_MAX 100000
extern const struct change_guess_ops ca_ident_guess_ops;

/* ca_op.c: the mutation plumbing and the helpers the service files share. --------------- */

/* A mutation, run by the change room: apply() runs inside the change, after the key's
 * lookup. */
struct ca_op {
	struct ca_service *svc;
	struct ca_ctx *ctx;
	int (*apply)(struct ca_op *op, struct db_tx *tx);
	void *result;		    /* what pack() gets */
	struct ca_cert *key_holder; /* its key_pem is hidden from pack() */
	bool hook_stores;	    /* apply's hook item carries the reply (issuance) */
	void *ud;
};

/* The caller's tenant (the default tenant when it has none). */
const char *ca_tenant_of(const struct ca_ctx *ctx);
/* The caller's principal, or "anonymous". */
const char *ca_actor_of(const struct ca_ctx *ctx);
/* Whether the call carries a request_id (its key is idempotent). */
bool ca_has_request_id(const struct ca_ctx *ctx);
/* Writes the message into ctx->err (when ctx) and returns r. */
int ca_fail(struct ca_ctx *ctx, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Leases a pooled connection for a read (db_release it). */
int ca_with_conn(struct ca_service *svc, struct db_conn **ret);
/* Audit record and event of one change (change room), same type, same data; takes data. */
int ca_record(struct db_tx *tx, const struct ca_ctx *ctx, const char *type, const char *resource,
	      json_t *data);
/* The same from the data's JSON text. */
int ca_record_text(struct db_tx *tx, const struct ca_ctx *ctx, const char *type,
		   const char *resource, const char *js);
/* An audit record and event prepared on the caller's thread, for change_attach inside the
 * change; data is borrowed. */
int ca_prep_record(const struct ca_ctx *ctx, const char *type, const char *resource,
		   const json_t *data, struct change_prepared **ret);
/* The reply of op for its request_id (never with a private key); *ret NULL when none. */
int ca_op_pack(struct ca_op *op, uint8_t **ret, size_t *ret_len);
/* Before a mutation: 1 with the stored reply of its request_id in ctx, 0 to go on, -errno. */
int ca_replayed(struct ca_service *svc, struct ca_ctx *ctx);
/* After a hook refused the change as a twin's (-EEXIST): change_twin's answer, in ctx. */
int ca_twin(struct ca_service *svc, struct ca_ctx *ctx);
/*
 * For a mutation that did not look its key up first (its checks before the change are of
 * the request alone, and its change stores the reply under the key, so a retry of a
 * committed call fails or conflicts inside the change): after a failure r, the stored
 * reply answers when there is one (1, or -EINVAL for a request_id used for another
 * request); otherwise r stands. r >= 0 is returned as is.
 */
int ca_replayed_on_failure(struct ca_service *svc, struct ca_ctx *ctx, int r);
/* Runs op through the writer. Returns 0, 1 (replayed) or -errno. */
int ca_op_write(struct ca_op *op);
/* A list's limit from the requested page size (default and maximum of ca.h). */
int ca_page_limit(int page_size);
/* The next page token: a copy of the last key when the page is full, else NULL. */
int ca_next_token(size_t n, int limit, const char *last, char **ret_next);

/* ca_identity.c and ca_issue.c: transitions. -------------------------------------------- */

/* A transition being written: the identity as read, the edge, and what goes with it. */
struct ca_transition {
	struct ca_identity *ident;    /* as read; updated to the outcome by apply */
	enum ca_state from, to;	      /* from: the state read, which an issuance was signed for */
	int reason;		      /* revoked: RFC 5280 code */
	const char *note;	      /* the request's reason text */
	struct crypto_issued *issued; /* the signed certificate, or NULL */
	struct ca_cert *cert;	      /* the reply's certificate, or NULL */
	bool guessed;		      /* ident came from the cache: a refusal is returned as
				       * it is (the caller reads again and retries) */
};

/* Reads an identity; with_cert adds its current certificate. -ENOENT with a message. */
int ca_identity_read(struct ca_service *svc, struct ca_ctx *ctx, const char *id, bool with_cert,
		     struct ca_identity *ret);
/* ca_replayed then ca_identity_read: 1 with the stored reply, 0 with the identity read
 * into *ret, or -errno. */
int ca_read_for_write(struct ca_service *svc, struct ca_ctx *ctx, const char *id,
		      struct ca_identity *ret);
/* Whether the edge issues a certificate. */
bool ca_edge_issues(enum ca_state from, enum ca_state to);
/* Sets the identity of t to the outcome (fixed fields only: apply may rerun). */
void ca_transition_outcome(struct ca_transition *t, int64_t now);
/* The data of a transition's audit record and event, and of the certificate.recorded ones
 * when it issued (*ret_cert; NULL otherwise). locked: the state the change moved from. */
int ca_transition_data(const struct ca_op *op, const struct ca_transition *t, enum ca_state locked,
		       const char *old_serial, json_t **ret_data, json_t **ret_cert);
/* The apply of an edge that issues nothing (op->ud is the transition). */
int ca_transition_apply(struct ca_op *op, struct db_tx *tx);
/* Checks (policy) and signs an issuance for identity i moving to `to`. */
/*
 * The SANs an identity's certificate carries: its DNS names and addresses, or its name as
 * the one DNS name when it has neither and the name is a DNS name (borrowed from i).
 */
void ca_identity_sans(const struct ca_identity *i, const char *const **ret_dns,
		      size_t *ret_n_dns);
/* The installed policy check of what (none: allowed). Returns 0, or -errno with
 * ctx->check_failed set (the check answered the call). */
int ca_policy_check(struct ca_service *svc, struct ca_ctx *ctx, const struct ca_issuance *what);
int ca_prepare_issue(struct ca_service *svc, struct ca_ctx *ctx, struct ca_identity *i,
		     enum ca_state to, const char *csr_pem, int64_t ttl, struct crypto_issued *ret);
/* Writes transition t of the identity read in t->ident; fills t->cert on issuance; after (may
 * be NULL) runs before the reply is packed; result: the reply's object (NULL: t->cert). */
int ca_transition_write(struct ca_service *svc, struct ca_ctx *ctx, struct ca_transition *t,
			void *result, int (*after)(struct ca_transition *t));
/* The identity an issuance starts from: this server's cached copy when use_cache and it has
 * one (*guessed), else ca_read_for_write. */
int ca_issue_source(struct ca_service *svc, struct ca_ctx *ctx, const char *id, bool use_cache,
		    struct ca_identity *ret, bool *guessed);
/* After a guessed attempt that returned r: true when the answer must come from a fresh read. */
bool ca_guess_failed(struct ca_service *svc, struct ca_ctx *ctx, const char *id, int r);

/* ca_crl.c: the CRL timer thread (started by ca_service_open). */
void *ca_crl_timer(void *ud);

/* A malloc'd copy of n strings (free each and the array). */
int ca_strv_dup(const char *const *v, size_t n, char ***ret);
/* Unix microseconds now. */
int64_t ca_now_us(void);

/* ca_store.c: the rows. conn for reads, tx for changes. -errno of db. */
int ca_store_owner_insert(struct db_tx *tx, const char *tenant, const struct ca_owner *o);
int ca_store_owner_get(struct db_conn *c, const char *tenant, const char *id, struct ca_owner *ret);
int ca_store_owner_list(struct db_conn *c, const char *tenant, const char *kind, int limit,
			const char *after, struct ca_owner **ret, size_t *ret_n);

int ca_store_identity_get(struct db_conn *c, const char *tenant, const char *id,
			  struct ca_identity *ret);
int ca_store_identity_list(struct db_conn *c, const char *tenant, const char *owner_id,
			   const char *state, int limit, const char *after,
			   struct ca_identity **ret, size_t *ret_n);
/* SELECT ... FOR UPDATE: the state and current serial as this change sees them. -ENOENT. */
int ca_store_identity_lock(struct db_tx *tx, const char *tenant, const char *id,
			   enum ca_state *ret_state, char *ret_serial);
/* Sets state, update time and (revoked) the reason name. */
int ca_store_identity_set_state(struct db_tx *tx, const char *tenant, const char *id,
				enum ca_state to, int64_t now_us, const char *reason_name);
/*
 * One issuance (a issuance item): the identity moves from `from`, with current
 * certificate old_serial ("" for none), to `to` with a new current certificate that
 * supersedes the old one, and the reply is stored under request_id. Built and checked on
 * the caller's thread (ca_issue_item_new); the change only attaches a copy, and
 * ca_store_issue_hook writes every issuance of a batch with one set-based statement.
 * One allocation: strings and bytes live in buf, reached by offset, so a copy is a memcpy.
 */
struct ca_issue_item {
	size_t size; /* of the whole allocation */
	char tenant[CA_ID_LEN + 1];
	char id[CA_ID_LEN + 1];
	enum ca_state from, to;
	char old_serial[CRYPTO_SERIAL_HEX_LEN + 1];
	char serial[CRYPTO_SERIAL_HEX_LEN + 1];
	char fingerprint[65];
	char key_algorithm[CRYPTO_KEY_ALG_LEN];
	int64_t now_us, not_before, not_after;
	int kind;		    /* the issuance hook's item kind */
	struct change_item_key key; /* the request's key ("" request_id: none) */
	size_t der_off, der_len, reply_off, reply_len;
	uint8_t buf[];
};
/* The fields of an issuance item, gathered by the service. */
struct ca_issue_spec {
	const char *tenant, *id;
	enum ca_state from, to;
	const char *old_serial;
	int64_t now_us;
	const struct crypto_issued *cert;
	int kind;			/* svc->issue_kind */
	const struct change_key *key;	/* NULL: not idempotent */
	const uint8_t *reply;
	size_t reply_len;
};
int ca_issue_item_new(const struct ca_issue_spec *spec, struct ca_issue_item **ret);
/* Attaches a copy of item to the change (the writer frees it). */
int ca_issue_item_attach(struct db_tx *tx, const struct ca_issue_item *item);
/*
 * The pre-commit hook of issuance: locks the identities of the batch in key order,
 * refuses (results[i]) an issuance whose identity is no longer in `from` with old_serial
 * (-ESTALE), is gone (-ENOENT), is issued twice in one batch (-EBUSY), or whose request_id
 * was stored meanwhile (-EEXIST); writes the others (identity, certificate, superseded
 * mark, reply) in one statement.
 */
int ca_store_issue_hook(struct db_conn *c, void *const *items, size_t n, int *results, void *ud);
/*
 * One CreateIdentity (ca_store_ident.c): the new identity's row and the reply stored under
 * its request_id. Built on the caller's thread (ca_ident_item_new); the change only attaches
 * a copy, and ca_store_create_hook writes every create of a batch with one set-based
 * statement. One allocation: the name, the DNS names and addresses (each list joined by ','),
 * and the reply live in buf, reached by offset, so a copy is a memcpy.
 */
struct ca_ident_item {
	size_t size; /* of the whole allocation */
	int kind;    /* the create hook's item kind */
	char tenant[CA_ID_LEN + 1];
	char id[CA_ID_LEN + 1];
	char owner_id[CA_ID_LEN + 1]; /* a lowercase uuid */
	enum ca_identity_kind ident_kind;
	enum crypto_key_type key_type;
	int64_t ttl_seconds;
	int64_t now_us;		    /* created_at = updated_at */
	struct change_item_key key; /* the request's key ("" request_id: none) */
	size_t name_off, dns_off, ips_off, reply_off, reply_len;
	uint8_t buf[];
};
/* The fields of a create item, gathered by the service. */
struct ca_ident_spec {
	const char *tenant;
	const struct ca_identity *ident; /* id, kind, name, owner, SANs, key type, ttl, times */
	int kind;			 /* svc->create_kind */
	const struct change_key *key;	 /* NULL: not idempotent */
	const uint8_t *reply;
	size_t reply_len;
};
/* -ENOMEM, or -EINVAL when the key's strings do not fit an item. */
int ca_ident_item_new(const struct ca_ident_spec *spec, struct ca_ident_item **ret);
/* Attaches a copy of item to the change (the writer frees it). */
int ca_ident_item_attach(struct db_tx *tx, const struct ca_ident_item *item);
/*
 * The pre-commit hook of CreateIdentity: refuses (results[i]) a create whose owner does not
 * exist (-ENOENT; the owners are locked FOR KEY SHARE, so one deleted meanwhile is missing,
 * not an error of the batch), or whose request_id a twin stored first, in this batch or
 * before (-EEXIST); inserts the others' identities and stores their replies in one statement.
 */
int ca_store_create_hook(struct db_conn *c, void *const *items, size_t n, int *results, void *ud);
/* Marks every unrevoked certificate of the identity revoked. */
int ca_store_certs_revoke(struct db_tx *tx, const char *tenant, const char *identity_id,
			  int64_t now_us, int reason);

int ca_store_cert_get(struct db_conn *c, const char *tenant, const char *serial,
		      struct ca_cert *ret);
int ca_store_cert_list(struct db_conn *c, const char *tenant, const char *identity_id, int limit,
		       const char *after, struct ca_cert **ret, size_t *ret_n);

/* The newest sealed_keys row of (tenant, kind, name): version, chain PEM (the public_key
 * column) and sealed key (-ENOENT). */
int ca_store_key_get(struct db_conn *c, const char *tenant, const char *kind, const char *name,
		     int *ret_version, char **ret_chain_pem, uint8_t **ret_sealed,
		     size_t *ret_sealed_len);
/* Seals key_pem for (tenant, kind, name, version): the row's additional data. */
int ca_store_key_seal(const struct kek *kek, const char *tenant, const char *kind, const char *name,
		      int version, const char *key_pem, uint8_t **ret_sealed, size_t *ret_len);
/* Seals key_pem for (tenant, kind, name, version) and inserts it beside chain_pem
 * (ON CONFLICT DO NOTHING). */
int ca_store_key_put(struct db_conn *c, const struct kek *kek, const char *tenant, const char *kind,
		     const char *name, int version, const char *chain_pem, const char *key_pem);
/* Opens a sealed key of (tenant, kind, name, version); *ret is kek_open's plaintext. */
int ca_store_key_open(const struct kek *kek, const char *tenant, const char *kind, const char *name,
		      int version, const uint8_t *sealed, size_t len, uint8_t **ret, size_t *ret_n);
/* Inserts version of the server certificate `name` (kind CA_TLS_KIND) inside a change:
 * 1, or 0 when that version exists already (another server stored it first). */
int ca_store_tls_insert(struct db_tx *tx, const char *tenant, const char *name, int version,
			const char *chain_pem, const uint8_t *sealed, size_t sealed_len);
/* Deletes the versions of `name` below version, and every server certificate of other
 * names stored more than max_age_seconds ago (no server renewing it any more). */
int ca_store_tls_prune(struct db_tx *tx, const char *tenant, const char *name, int version,
		       int64_t max_age_seconds);
