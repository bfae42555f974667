#pragma once
/*
 * audit: the tamper-evident audit log (docs/architecture.md §2, §5; schema tables audit_events,
 * audit_head, audit_checkpoints, sealed_keys).
 *
 * Every mutation attaches its record to its group-commit change with audit_record(). Just
 * before the batch commits, a pre-commit hook locks each tenant's chain head
 * (SELECT ... FOR UPDATE: how several servers sharing one database take turns, so the
 * chain never forks and never skips a number), numbers the records head+1, head+2, ... in
 * batch order, chains their hashes and inserts them with one statement.
 *
 * Hash of a record (all integers big-endian):
 *
 *   hash = SHA-256( prev_hash (32 bytes)
 *                   || field("trstctl.audit.v1")
 *                   || field(tenant_id)   lowercase 8-4-4-4-12 uuid text
 *                   || field(sequence)    8 bytes, signed
 *                   || field(id)          lowercase uuid text
 *                   || field(type) || field(time) || field(actor) || field(resource)
 *                   || field(outcome) || field(data_json) )
 *   field(x) = u32(length of x) || x
 *
 * time is RFC 3339 UTC with exactly six fraction digits, "2026-11-28T17:13:47.123456Z"
 * (PostgreSQL keeps microseconds, so the stored value formats back to the same bytes). The
 * first record of a tenant has prev_hash = 32 zero bytes. time is when the change ran and
 * sequence when its batch committed, so with several servers two neighbours' times may be
 * out of order by up to a batch's latency; the sequence is the order of the log.
 *
 * Signed checkpoint (Ed25519, the audit key of sealed_keys kind 'audit', name 'audit' in
 * the default tenant, private key sealed by the KEK):
 *
 *   signature = Ed25519( field("trstctl.audit.checkpoint.v1") || field(tenant_id)
 *                        || field(sequence) || field(hash) )
 *
 * A checkpoint is written for every record whose sequence is a multiple of
 * checkpoint_every, and every checkpoint_interval_ms for a head that moved since.
 *
 * Witnesses. A checkpoint in the table proves nothing about records deleted after it
 * together with it (the newest records, their checkpoints and the head row are a
 * consistent shorter chain). So every checkpoint_interval_ms (and when the server stops)
 * the newest checkpoint of each tenant is also written where the database's users cannot
 * reach: appended to a local file (checkpoint_file, one JSON line each, 0600, fsync'd) and
 * published as event audit.checkpoint through the outbox (JetStream keeps it). Verifying to
 * the head compares the chain with the newest witness found in the file and, when NATS
 * answers within two seconds, in the stream: a witnessed sequence past the head is
 * reported as truncation, one whose hash differs from its record as a rewrite, and one
 * whose signature no audit key of the database verifies as foreign.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net.h"

struct db;
struct db_tx;
struct kek;
struct rpc_server;
struct audit;

#define AUDIT_HASH_LEN 32
#define AUDIT_TIME_LEN 27 /* "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" */
#define AUDIT_UUID_LEN 36
#define AUDIT_MAX_TYPE 128	   /* bytes of type */
#define AUDIT_MAX_FIELD 4096	   /* bytes of actor or resource */
#define AUDIT_MAX_DATA (64u << 10) /* bytes of data_json */
#define AUDIT_PAGE_DEFAULT 100
#define AUDIT_PAGE_MAX 1000

struct json_t; /* jansson's json_t */

/* What a mutation records. Strings are borrowed (copied by audit_record). */
struct audit_entry {
	const char *tenant_id; /* uuid; NULL = DB_DEFAULT_TENANT */
	const char *type;      /* "owner.created", "auth.denied": [a-z0-9._-], 1..128 bytes */
	const char *actor;     /* token id and name ("tok_1 ci"); NULL = "" (the server) */
	const char *resource;  /* what was acted on; NULL = "" */
	const char *outcome;   /* "ok", "denied" or "error"; NULL = "ok" */
	const char *data_json; /* a JSON object, never a secret value; NULL = "{}" */
	/* or the object itself (jansson's json_t): printed here, not parsed (data_json unused) */
	const struct json_t *data;
};

struct audit_config {
	int64_t checkpoint_every;	/* records between checkpoints, default (0) 1000 */
	int64_t checkpoint_interval_ms; /* sign a moved head this often, default (0) 60000, <0 off */
	const char *checkpoint_file;	/* the local witness (appended by a server, read by
					 * verify); NULL: none */
	const char *nats_url;		/* where the published checkpoints are read back by
					 * verify; NULL: not read */
	const char *nats_stream;	/* its stream; NULL: BUS_DEFAULT_STREAM */
	struct net_gate nats_gate;	/* egress gate of that connection (bus.h); { NULL }: none */
};

/* A stored record. */
struct audit_event {
	int64_t sequence; /* 1, 2, ... per tenant, no gaps */
	char tenant_id[AUDIT_UUID_LEN + 1];
	char id[AUDIT_UUID_LEN + 1];   /* uuid v4 */
	char time[AUDIT_TIME_LEN + 1]; /* RFC 3339 UTC, microseconds */
	int64_t time_us;	       /* the same, microseconds since the epoch */
	char *type, *actor, *resource, *outcome, *data_json; /* NUL-terminated, owned */
	uint8_t prev_hash[AUDIT_HASH_LEN];
	uint8_t hash[AUDIT_HASH_LEN];
};

/* Filters and paging of audit_list. */
struct audit_query {
	int64_t after_sequence;	 /* records with a larger sequence, >= 0 */
	const char *type_prefix; /* NULL or "" = every type */
	int page_size;		 /* 0 = 100, at most 1000 (larger values are clamped) */
	const char *page_token;	 /* NULL/"" or a next_page_token from an earlier page */
};

struct audit_page {
	struct audit_event *events; /* n events in sequence order */
	size_t n;
	char *next_page_token; /* NULL on the last page */
	int64_t scanned_to;    /* every matching record <= this sequence is in this or an
				* earlier page (the head when the page is the last) */
};

struct audit_verify_result {
	bool ok;
	int64_t checked;		   /* records whose hash was recomputed */
	int64_t checkpoints;		   /* checkpoint signatures verified */
	int64_t first_bad_sequence;	   /* 0 when ok */
	int64_t head_sequence;		   /* last record checked */
	uint8_t head_hash[AUDIT_HASH_LEN]; /* its hash (zeros when none) */
	int64_t witnessed;		   /* newest checkpoint found outside the table (0: none) */
	char detail[512];		   /* what was wrong, or a summary */
};

/*
 * Opens the audit log on db. With kek (a server): loads the audit signing key, or creates
 * it (sealed by the KEK; two servers creating it at once agree on one), registers the
 * DB_ITEM_AUDIT pre-commit hook (call before the first db_write) and starts the checkpoint
 * timer. With kek NULL (operator commands): read-only, audit_list/watch/verify work and
 * checkpoints are verified with the stored public keys. cfg may be NULL (defaults).
 * Returns -EINVAL (bad config), -ENOKEY/-EBADMSG/-EPROTO (the stored key does not open with
 * this KEK), db errors, -ENOMEM.
 */
int audit_open(struct db *db, const struct kek *kek, const struct audit_config *cfg,
	       struct audit **ret_audit);
/*
 * Stops the timer and frees. The db must outlive the audit, and an rpc_server it was
 * registered with must be freed first. Afterwards a db_write whose change attaches an audit
 * record fails with -ESHUTDOWN (never commits unaudited). Accepts NULL, returns NULL.
 */
struct audit *audit_close(struct audit *a);

/*
 * Attaches a record of e to the change tx (same transaction as the change). Fixes the
 * record's id (uuid v4, CSPRNG) and time (server clock, UTC, microseconds); its sequence
 * and hash are assigned when the batch commits. Rejects with -EINVAL a bad tenant uuid,
 * type, outcome, invalid UTF-8, data_json that is not a JSON object, or a field too long.
 * Works without struct audit: the hook registered by audit_open numbers the records.
 */
int audit_record(struct db_tx *tx, const struct audit_entry *e);

/*
 * The same in two steps, so that the checks and copies (JSON parsing included) run on the
 * caller's thread and the group-commit writer, which runs every change one after another,
 * only copies memory: audit_prepare checks e (same errors as audit_record) and returns a
 * record owned by the caller; audit_attach attaches a copy of it to the change (with its own
 * id and time), and may be called again when the writer runs the change again.
 */
struct audit_record;
int audit_prepare(const struct audit_entry *e, struct audit_record **ret_rec);
int audit_attach(struct db_tx *tx, const struct audit_record *rec);
/* Frees a prepared record. Accepts NULL, returns NULL. */
struct audit_record *audit_record_free(struct audit_record *rec);
/* A prepared record's data: a JSON object, compact (as jansson printed it when the entry
 * carried an object). Borrowed from rec. */
const char *audit_record_data(const struct audit_record *rec);

/*
 * A record on its own (a denied call, a guard denial: nothing else changes), through the
 * group-commit writer; returns once it is durable (>= 0) or -errno as db_write.
 */
int audit_write(struct db *db, const struct audit_entry *e, int timeout_ms);

/*
 * Observes the log: called for every record once its batch committed (never for one that
 * did not), in the order of the batch, on the group-commit writer thread, which waits for
 * it: copy what is needed and return. ev and its strings are borrowed for the call.
 */
typedef void (*audit_commit_fn)(const struct audit_event *ev, void *ud);

/*
 * Sets (fn NULL: clears) the commit hook of a server's audit log (opened with a kek; else
 * -EINVAL). Set it before the first write; it stays until audit_close. Returns 0 or -EINVAL.
 */
int audit_set_commit_hook(struct audit *a, audit_commit_fn fn, void *ud);

/*
 * One page of a tenant's records (NULL = default tenant) matching q, in sequence order.
 * -EINVAL "invalid page_token" style errors for a malformed token or a negative
 * after_sequence; set *ret_page (free with audit_page_free).
 */
int audit_list(struct audit *a, const char *tenant_id, const struct audit_query *q,
	       struct audit_page **ret_page);
struct audit_page *audit_page_free(struct audit_page *p);

/*
 * Live tail: calls send() for each record after after_sequence (matching type_prefix),
 * first the history in pages, then new records as they commit, polling every poll_ms
 * (wait() sleeps up to that long and returns true to stop). It always continues from the
 * last sequence it scanned, so no record is missed or sent twice across the switch. Returns
 * 0 when wait() said stop, send()'s negative result, or a db error.
 */
typedef int (*audit_send_fn)(const struct audit_event *ev, void *ud);
typedef bool (*audit_wait_fn)(void *ud, int timeout_ms);
int audit_watch(struct audit *a, const char *tenant_id, int64_t after_sequence,
		const char *type_prefix, int poll_ms, audit_send_fn send, audit_wait_fn wait,
		void *ud);

/*
 * Verifies a tenant's chain from..to (from <= 0: 1; to <= 0: the head): recomputes every
 * hash, checks the prev_hash links, that no sequence is missing, the head row, and every
 * checkpoint in range (signature and hash); to the head, also the witnesses (above): the
 * newest checkpoint of the local file and of the stream must be signed by this database's
 * audit key and match its record, which must exist. Returns 0 with the verdict in *ret (ok
 * false and first_bad_sequence set on a broken chain: the first missing record when the
 * tail was cut), -EDOM when from is past the head (there is nothing to verify; an empty
 * chain verifies from 0 or 1), or -errno when it could not check. A witness that cannot
 * be read (no file yet, NATS down) is not compared, and detail says so.
 */
int audit_verify(struct audit *a, const char *tenant_id, int64_t from, int64_t to,
		 struct audit_verify_result *ret);

/* What audit_recent_outcome found. */
#define AUDIT_RECENT_WINDOW_MAX 1000000
struct audit_type_count {
	char type[AUDIT_MAX_TYPE + 1];
	int64_t n;
};
struct audit_recent {
	int64_t scanned;		/* records looked at: the last window (or all, if fewer) */
	int64_t total;			/* of them, those with the outcome */
	struct audit_type_count *types; /* how many of each type, most frequent first */
	size_t n_types;			/* at most 32 types (the rest only in total) */
	struct audit_event *events;	/* the newest of them, newest first */
	size_t n_events;
};

/*
 * The records of a tenant (NULL: default) with the given outcome ("denied") among its last
 * window records (1..AUDIT_RECENT_WINDOW_MAX): counts by type and the newest max of them
 * (0..AUDIT_PAGE_MAX). Sets *ret (free with audit_recent_free); -EINVAL, db errors.
 */
int audit_recent_outcome(struct audit *a, const char *tenant_id, const char *outcome,
			 int64_t window, int max, struct audit_recent **ret);
struct audit_recent *audit_recent_free(struct audit_recent *r);

/* Writes a checkpoint for each tenant whose head moved since its last one (the timer's
 * work; exported for tests and shutdown). Returns how many were written, or -errno. */
int audit_checkpoint_now(struct audit *a);
/* Witnesses the newest checkpoint of each tenant not witnessed yet (the timer's work after
 * audit_checkpoint_now): appends it to the checkpoint file and publishes it. Returns how
 * many were witnessed, or -errno (what failed is tried again next time). */
int audit_witness_now(struct audit *a);

/* Pure helpers (exported for tests and the CLI) ---------------------------------------- */

/* hash = SHA-256(prev || canonical(ev)) as documented above; ev->prev_hash is ignored. */
int audit_hash(const uint8_t prev[AUDIT_HASH_LEN], const struct audit_event *ev,
	       uint8_t ret_hash[AUDIT_HASH_LEN]);
/* Formats microseconds since the epoch as the hashed time text (AUDIT_TIME_LEN + 1 bytes). */
int audit_format_time(int64_t time_us, char *ret_buf, size_t len);
/* Parses that text back; -EINVAL for anything else. */
int audit_parse_time(const char *s, int64_t *ret_time_us);
/* Lowercase hex of n bytes into ret (2n + 1 bytes). */
void audit_hex(const uint8_t *p, size_t n, char *ret);

/* gRPC: registers trstctl.v1.Audit (ListEvents, WatchEvents, VerifyChain). a is borrowed. */
int audit_rpc_register(struct rpc_server *s, struct audit *a);

