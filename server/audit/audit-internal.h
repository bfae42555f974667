#pragma once
/*
 * Shared between the files of audit/ only: the struct behind the handle, the item that
 * audit_record() attaches, the signing key helpers and the SELECT list of a record.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit.h"

struct db_conn;
struct db_rows;

/* The DB_ITEM_AUDIT item: one allocation, the strings point into buf. */
struct audit_record {
	struct audit_event ev; /* sequence, prev_hash, hash: set by the pre-commit hook */
	size_t size;	       /* of the whole allocation (audit_attach copies it) */
	char buf[];
};

/* A public key of the audit key, by version. */
struct audit_pub {
	int version;
	void *pkey; /* EVP_PKEY * (kept out of the header so it needs no OpenSSL) */
};

struct audit {
	struct db *db;
	int64_t every;		   /* checkpoint every so many records */
	int64_t interval_ms;	   /* timer period, 0 = no timer */
	void *sign_key;		   /* EVP_PKEY *, NULL when read-only */
	int sign_version;	   /* version of sign_key in sealed_keys */
	bool hooked;		   /* the pre-commit hook is registered */
	audit_commit_fn commit_fn; /* observer of committed records, or NULL */
	void *commit_ud;
	void *rpc_handlers; /* struct rpc_method_handler[] of audit_rpc_register, or NULL */

	pthread_mutex_t key_mu; /* guards pubs (reloaded when an unknown version shows up) */
	struct audit_pub *pubs;
	size_t n_pubs;

	char *witness_file;	      /* audit_config.checkpoint_file (owned), or NULL */
	char *nats_url, *nats_stream; /* where verify reads the published witness, or NULL */
	struct net_gate nats_gate;    /* audit_config.nats_gate */
	pthread_mutex_t witness_mu;   /* guards seen (the timer and shutdown witness) */
	struct audit_seen *seen;      /* per tenant: what was witnessed last */
	size_t n_seen;

	pthread_mutex_t timer_mu; /* guards stop; timer_cv wakes the timer */
	pthread_cond_t timer_cv;
	bool stop;
	bool timer_running;
	pthread_t timer;
};

/* Columns of a record, in this order, from audit_events aliased e (see audit_row_event). */
#define AUDIT_EVENT_COLS                                                            \
	"e.sequence, e.id, e.type, "                                                \
	"to_char(e.time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), " \
	"e.actor, e.resource, e.outcome, e.data_json, e.prev_hash, e.hash"
#define AUDIT_EVENT_NCOLS 10

/* Fills ev from the AUDIT_EVENT_COLS starting at column col of row. -EPROTO on bad data. */
int audit_row_event(const struct db_rows *rows, size_t row, size_t col, const char *tenant,
		    struct audit_event *ev);
/* Frees the strings of ev (not ev). */
void audit_event_clear(struct audit_event *ev);

/* Validates a tenant uuid and writes it lowercase (NULL = default). -EINVAL. */
int audit_tenant(const char *in, char ret[AUDIT_UUID_LEN + 1]);

/* Key: load or create (kek != NULL) and load public keys. */
int audit_key_load(struct audit *a, const struct kek *kek);
void audit_key_free(struct audit *a);
/* Signs the checkpoint (tenant, sequence, hash) with the current key. */
int audit_key_sign(struct audit *a, const char *tenant, int64_t sequence,
		   const uint8_t hash[AUDIT_HASH_LEN], uint8_t sig[64]);
/* 0 when sig is a valid signature by key version; -EBADMSG when not; -ENOKEY unknown key. */
int audit_key_verify(struct audit *a, struct db_conn *conn, int version, const char *tenant,
		     int64_t sequence, const uint8_t hash[AUDIT_HASH_LEN], const uint8_t *sig,
		     size_t sig_len);
/* Inserts a checkpoint row (ON CONFLICT DO NOTHING) through conn. */
int audit_checkpoint_insert(struct audit *a, struct db_conn *conn, const char *tenant,
			    int64_t sequence, const uint8_t hash[AUDIT_HASH_LEN]);

/* audit_read.c: marks res broken at seq with a message. */
void audit_verify_bad(struct audit_verify_result *res, int64_t seq, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* audit_witness.c: compares the chain, verified up to its head (sequence head), with the
 * witnesses; marks res broken and returns 0, or returns -errno when it could not check. */
int audit_witness_check(struct audit *a, struct db_conn *conn, const char *tenant, int64_t head,
			struct audit_verify_result *res);
/* Frees what the witness keeps in a. */
void audit_witness_free(struct audit *a);
