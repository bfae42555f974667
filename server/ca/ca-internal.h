#pragma once
/*
 * Shared by the files of the CA service (ca_store.c, ca_service.c, ca_rpc.c, ca_cli.c):
 * the service struct and the SQL of ca_store.c. Not a public header.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ca.h"
#include "db.h"

#define CA_KEY_NAME "issuing" /* sealed_keys name of the issuing CA (kind 'ca') */
#define CA_CSR_KIND "ca-csr"  /* a key waiting for `ca import-signed` */

struct ca_service {
	struct db *db;
	const struct kek *kek;
	struct bus *bus;
	struct ca_config cfg;
	struct crypto_ca *ca;
	ca_issuance_check_fn check;
	void *check_ud;
	void *rpc_handlers; /* struct rpc_method_handler[], ca_rpc.c */

	pthread_mutex_t crl_lock;    /* the fields below */
	pthread_cond_t crl_cond;     /* a CRL build finished */
	pthread_cond_t timer_cond;   /* stopping */
	uint64_t crl_want, crl_done; /* refresh requests asked for / served */
	bool crl_running;
	bool stopping;
	bool timer_started;
	pthread_t timer;
};

/* Unix microseconds now. */
int64_t ca_now_us(void);
/* A fresh uuid v4 (CA_ID_LEN + 1 bytes). */
int ca_uuid(char *ret);
/* True for a lowercase or uppercase 8-4-4-4-12 uuid. */
bool ca_is_uuid(const char *s);
/* PEM of a DER blob with the given label ("CERTIFICATE"); malloc'd. */
char *ca_pem_from_der(const char *label, const uint8_t *der, size_t len);

/* ca_store.c: the rows. conn for reads, tx for changes. -errno of db. */
int ca_store_owner_insert(struct db_tx *tx, const char *tenant, const struct ca_owner *o);
int ca_store_owner_get(struct db_conn *c, const char *tenant, const char *id, struct ca_owner *ret);
int ca_store_owner_list(struct db_conn *c, const char *tenant, const char *kind, int limit,
			const char *after, struct ca_owner **ret, size_t *ret_n);

int ca_store_identity_insert(struct db_tx *tx, const char *tenant, const struct ca_identity *i);
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
/* An issuance: the edge the certificate was signed for, and the request_id's reply. */
struct ca_store_issue {
	enum ca_state from, to;
	int64_t now_us;
	const struct crypto_issued *cert;
	const char *request_id; /* NULL: none */
	const char *method;
	const uint8_t *reply;
	size_t reply_len;
};
/*
 * Moves the identity from is->from to is->to with a new current certificate that
 * supersedes the previous one, and stores the reply: one statement. Sets the state and
 * serial the locked row had. -ESTALE (nothing written) when that state was not is->from,
 * -EEXIST when the request_id was stored meanwhile, -ENOENT.
 */
int ca_store_identity_issue(struct db_tx *tx, const char *tenant, const char *id,
			    const struct ca_store_issue *is, enum ca_state *ret_locked,
			    char *ret_old_serial);
/* Marks every unrevoked certificate of the identity revoked. */
int ca_store_certs_revoke(struct db_tx *tx, const char *tenant, const char *identity_id,
			  int64_t now_us, int reason);

int ca_store_cert_get(struct db_conn *c, const char *tenant, const char *serial,
		      struct ca_cert *ret);
int ca_store_cert_list(struct db_conn *c, const char *tenant, const char *identity_id, int limit,
		       const char *after, struct ca_cert **ret, size_t *ret_n);

/* A stored reply of request_id outside any change (the fast path of a retry): 1 and the
 * bytes, 0 when new, -EINVAL when another method used it. */
int ca_store_idem_get(struct db_conn *c, const char *tenant, const char *request_id,
		      const char *method, uint8_t **ret_reply, size_t *ret_len);

/* The issuing CA's newest sealed row: version, chain PEM and sealed key (-ENOENT). */
int ca_store_key_get(struct db_conn *c, const char *tenant, const char *kind, int *ret_version,
		     char **ret_chain_pem, uint8_t **ret_sealed, size_t *ret_sealed_len);
/* Seals key_pem for (tenant, kind, version) and inserts it beside chain_pem
 * (ON CONFLICT DO NOTHING). */
int ca_store_key_put(struct db_conn *c, const struct kek *kek, const char *tenant, const char *kind,
		     int version, const char *chain_pem, const char *key_pem);
/* Opens a sealed key of (tenant, kind, version); *ret is kek_open's plaintext. */
int ca_store_key_open(const struct kek *kek, const char *tenant, const char *kind, int version,
		      const uint8_t *sealed, size_t len, uint8_t **ret, size_t *ret_n);
