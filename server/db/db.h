#pragma once
/*
 * db: the only module that sees libpq. A pool of connections, transactions with retry on
 * serialization failure and deadlock, embedded migrations applied under an advisory lock,
 * one SQLSTATE -> -errno table, and the group-commit writer through which every mutation
 * of trstctl goes (docs/architecture.md §2): changes from many calls run in one
 * transaction, each under its own savepoint, and commit together.
 *
 * Values cross this edge as text (PostgreSQL's text format) or bytes (bytea), never as
 * PGresult: results are copied into a struct db_rows owned by the caller.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net.h"

struct db;      /* a pool, shared by threads */
struct db_conn; /* one leased connection: used by one thread at a time */
struct db_tx;   /* one change inside a group-commit batch (a savepoint of it) */

/* One parameter of a statement. A NULL text with is_bytes false is SQL NULL. */
struct db_param {
	const char *text;  /* text value, NUL-terminated; or the bytes when is_bytes */
	size_t len;        /* byte length when is_bytes */
	bool is_bytes;     /* send as binary (bytea) */
};

#define DB_TEXT(s) ((struct db_param){ .text = (s) })
#define DB_BYTES(p, n) ((struct db_param){ .text = (const char *)(p), .len = (n), .is_bytes = true })
#define DB_NULL ((struct db_param){ .text = NULL })

/* The rows of a query, copied out of libpq. Text values; bytea columns are decoded. */
struct db_rows {
	size_t n_rows;
	size_t n_cols;
	char **values;      /* n_rows * n_cols entries, row-major; NULL for SQL NULL */
	size_t *lengths;    /* byte length of each value (bytea may contain NUL) */
	char **col_names;   /* n_cols names */
	int64_t affected;   /* rows affected by INSERT/UPDATE/DELETE, else 0 */
};

struct db_config {
	const char *dsn;        /* libpq connection string (URL or key=value); a secret */
	int max_conns;          /* pool size, >= 1 */
	int connect_timeout_ms; /* per connection attempt (handshake and session setup); 0: 5 s */
	/*
	 * The longest the server waits for PostgreSQL to answer one statement (0 = no bound:
	 * the command-line tools). PostgreSQL itself is told to cancel a statement a little
	 * earlier (statement_timeout: this minus a fifth, at most 1 s less), so that a slow
	 * statement fails cleanly (-ETIME) on a connection that stays usable. An answer that
	 * has not come by the bound means PostgreSQL is not answering (stopped, hung,
	 * unreachable): the connection is dropped and the statement fails with -ETIME; until
	 * PostgreSQL answers again every db_acquire fails at once with -ETIME (callers are not
	 * each held for the bound) while a thread of the pool tries a fresh connection every
	 * second. The same holds for a connection attempt that gets no answer.
	 */
	int statement_timeout_ms;
	/*
	 * Group-commit writer threads, 1..4 (0 = 1). Each runs its own batches, one
	 * transaction and one commit each, so their round trips overlap: db-write-bench at 64
	 * in flight doubles with 2. The cost: a change may wait for a row locked by another
	 * writer's uncommitted batch, and two batches that lock two rows in opposite orders
	 * deadlock until PostgreSQL aborts one (deadlock_timeout, then the batch is retried),
	 * as with several servers on one database. Audit order is kept (heads are locked in
	 * tenant order inside each batch).
	 */
	int writers;
	/*
	 * Asked before every connection, the first and each reconnection (pool slots and
	 * LISTEN): in userspace egress enforcement it resolves and checks each TCP host of the
	 * DSN, and libpq is then pinned to the admitted addresses (hostaddr, with host kept
	 * for TLS name checks). A refused host is left out; with none left the attempt fails
	 * as -ECONNREFUSED. { NULL }: connect by the DSN as it is.
	 */
	struct net_gate gate;
};

/*
 * Connections: every connection is made with TCP keepalives and tcp_user_timeout (a
 * silent peer of an idle TCP connection is noticed in about 10 s; the DSN may set its own
 * keepalives, keepalives_idle, keepalives_interval, keepalives_count, tcp_user_timeout),
 * its socket is nonblocking and every wait on it is a poll with a deadline, so that a
 * unix socket, where keepalives do not apply, is bounded too. A backend whose client
 * dropped it stops its statement within a second (client_connection_check_interval).
 *
 * -ETIME, from any function below that talks to PostgreSQL, means "PostgreSQL did not
 * answer in time": a statement (or a connection attempt) got no answer within its bound,
 * PostgreSQL cancelled a statement at its statement_timeout (SQLSTATE 57014), or
 * PostgreSQL has not been answering since an earlier wait ran out. For a write whose
 * COMMIT was sent, the outcome is unknown (see db_write).
 */

/*
 * Opens the pool (connections are made lazily, one is made now to check the DSN).
 * Returns -ECONNREFUSED when PostgreSQL does not answer (the caller retries with backoff
 * and says so), -EINVAL for a DSN libpq rejects, -EACCES for an authentication failure.
 */
int db_open(const struct db_config *config, struct db **ret_db);
/* Closes every connection; waits for the writer to finish its batch. Accepts NULL. */
struct db *db_close(struct db *db);

/*
 * Applies the embedded migrations that are not yet applied, in order, each in its own
 * transaction, under a cluster-wide advisory lock so that servers starting together do
 * not race. Sets *ret_applied to how many were applied now (may be NULL).
 */
int db_migrate(struct db *db, int *ret_applied);
/*
 * As db_migrate; on failure also sets *ret_error (may be NULL; caller frees) to a message
 * safe to show, e.g. "migration 0001_base was changed after it was applied" (-EBADMSG),
 * "database has migration 0009_x, which this trstctl does not know ..." (-EPROTO),
 * "migration 0002_ca failed: <PostgreSQL's message>".
 */
int db_migrate_msg(struct db *db, int *ret_applied, char **ret_error);
/* Writes "version name applied_at|pending" lines for `trstctl migrate --status`. */
int db_migrate_status(struct db *db, char **ret_text);

/*
 * Leases a connection, waiting up to timeout_ms for a free one (-ETIMEDOUT); connects one
 * that is not connected (or broke) within the connect timeout (-ECONNREFUSED, -EACCES,
 * -ENOENT; -ETIME when PostgreSQL did not answer). -ETIME at once while PostgreSQL is not
 * answering (db_config.statement_timeout_ms).
 */
int db_acquire(struct db *db, int timeout_ms, struct db_conn **ret_conn);
/* Returns a connection to the pool. Accepts NULL. */
void db_release(struct db *db, struct db_conn *conn);

/*
 * Runs one statement with parameters ($1..$n). Statements are prepared once per
 * connection and cached by their text. On success sets *ret_rows (may be NULL when the
 * caller needs nothing back; free with db_rows_free). Errors: the SQLSTATE table
 * (23505 unique -> -EEXIST, 23503 fk -> -ENOENT, 40001/40P01 -> -EAGAIN, 57014 -> -ETIME,
 * 08xxx connection -> -ECONNRESET, 22xxx data -> -EINVAL, 23514 check -> -EINVAL, ...), and
 * -ETIME when no answer came within the statement timeout (the connection is dropped; a
 * later statement of the same lease fails with -ETIME at once).
 */
int db_exec(struct db_conn *conn, const char *sql, const struct db_param *params,
	    size_t n_params, struct db_rows **ret_rows);

/* Frees rows. Accepts NULL, returns NULL. */
struct db_rows *db_rows_free(struct db_rows *rows);
/* The value at (row, col), or NULL (SQL NULL or out of range). */
const char *db_rows_get(const struct db_rows *rows, size_t row, size_t col);

/*
 * Runs fn inside BEGIN ... COMMIT on a leased connection (isolation READ COMMITTED, or
 * SERIALIZABLE when serializable). Retries the whole transaction on -EAGAIN
 * (serialization failure, deadlock) up to 5 times with jitter. Returns fn's result, or the
 * commit error. Use for reads that need a snapshot and for administrative work; service
 * mutations go through db_write.
 */
int db_transaction(struct db *db, bool serializable,
		   int (*fn)(struct db_conn *conn, void *ud), void *ud);

/* Group commit ----------------------------------------------------------------------- */

/*
 * A change: runs inside the writer's batch transaction under its own savepoint (taken before
 * its first statement; a change that only attaches items takes none). It runs its
 * statements with db_tx_exec and may attach items (audit records, events) with
 * db_tx_attach. A negative return rolls back to the savepoint: the change's rows and
 * attached items vanish, the other changes of the batch commit.
 */
typedef int (*db_change_fn)(struct db_tx *tx, void *ud);

/*
 * Runs once per batch just before COMMIT, with the attached items of every surviving
 * change in batch order; hooks run in ascending kind order. The audit chain uses one to lock
 * the chain head, number and hash the records, and insert them; the outbox to insert the
 * events; the CA to write the issuances and the new identities of a batch with set-based
 * statements.
 * results has n_items entries, 0 on entry: a hook may set results[i] to a negative errno to
 * refuse item i's change (it then writes none of that item's rows): the change fails with
 * that error, its items stay out of the later hooks, the other changes commit. Only a change
 * that ran no statement of its own and has no item of an earlier kind can be refused, which
 * is why such kinds come first (anything else fails the batch with -EPROTO). A negative
 * return aborts the whole batch (every waiting call gets the error).
 */
typedef int (*db_precommit_fn)(struct db_conn *conn, void *const *items, size_t n_items,
			       int *results, void *ud);

/*
 * Reads the verdicts of a hook's check statement: one row per item whose results[i] is
 * still >= 0, in item order, column 0 "ok", "gone" (-ENOENT), "stale" (-ESTALE) or "twin"
 * (-EEXIST, a request_id stored meanwhile). Sets results[] of the refused ones and *ret_ok
 * to the number of "ok". -EPROTO when rows are missing.
 */
int db_hook_verdicts(const struct db_rows *rows, int *results, size_t n, size_t *ret_ok);

/* Registers a pre-commit hook for items of kind (small integer < 8). Before db_write runs. */
int db_set_precommit(struct db *db, int kind, db_precommit_fn fn, void *ud);

/*
 * Runs after a batch committed, on the writer thread, with the attached items of kind of
 * every change that committed, in batch order, as the pre-commit hooks left them (audit
 * records numbered and chained). Never for a batch or a change that did not commit. The
 * next batch waits for it: copy what is needed and return. The items are freed after it.
 */
typedef void (*db_postcommit_fn)(void *const *items, size_t n_items, void *ud);

/* Registers (fn NULL: removes) the post-commit hook of kind. -EINVAL for a bad kind. */
int db_set_postcommit(struct db *db, int kind, db_postcommit_fn fn, void *ud);

/*
 * Submits a change to the group-commit writer and waits until its batch committed (or
 * failed). Returns fn's result when the batch committed (so >= 0 means durable), fn's
 * error when fn refused (nothing of it was written), or the batch error (-ECONNRESET,
 * -EAGAIN after retries, ...) when the commit failed; then nothing of it was written
 * either, with one exception: -ETIME, when PostgreSQL stopped answering, may come after
 * the COMMIT was sent, and then the change may have committed (it is never reported as
 * done, and a batch that got no answer is never run again). timeout_ms bounds the wait
 * (-ETIMEDOUT; the change may still commit later). Both are why mutating requests carry
 * request_id: a retry with it finds the stored reply of a change that did commit.
 */
int db_write(struct db *db, db_change_fn fn, void *ud, int timeout_ms);

/* Runs a statement inside the change (same errors as db_exec). */
int db_tx_exec(struct db_tx *tx, const char *sql, const struct db_param *params,
	       size_t n_params, struct db_rows **ret_rows);
/*
 * Attaches an item of kind to the change; takes item. free_fn releases it after the
 * batch (committed or not), or at once when the change rolls back.
 */
int db_tx_attach(struct db_tx *tx, int kind, void *item, void (*free_fn)(void *item));
/* The connection of the batch, for modules that run their own statements through it. */
struct db_conn *db_tx_conn(struct db_tx *tx);

/* Health ------------------------------------------------------------------------------ */

/* What the pool knows about PostgreSQL answering, without asking it. */
struct db_health {
	int64_t silent_ms;  /* for how long PostgreSQL has not answered: since the start of a
			     * wait that ran out unanswered (0: it answers) */
	int64_t waiting_ms; /* the oldest wait for an answer in progress now (0: none) */
};
void db_health(struct db *db, struct db_health *ret);

/*
 * Whether PostgreSQL answers now (readiness probes): leases a connection and runs
 * SELECT 1, every wait (for a free connection, connecting, the answer) bounded by what is
 * left of timeout_ms. 0 when it answered, and also when every connection stayed leased for
 * timeout_ms while no wait on PostgreSQL was older than that (a busy pool is a working
 * database). Else -ETIME or the connection's error, with a reason in why (len bytes, never
 * the DSN): "PostgreSQL has not answered for 6 s", "PostgreSQL did not answer within
 * 1000 ms", "cannot connect to PostgreSQL (Connection refused)".
 */
int db_ping(struct db *db, int timeout_ms, char *why, size_t len);

/* Writer statistics: batches committed, changes committed, largest batch. */
struct db_writer_stats {
	uint64_t batches;
	uint64_t changes;
	uint64_t max_batch;
};
void db_writer_stats(struct db *db, struct db_writer_stats *ret_stats);
/* Changes queued and not yet taken by a writer (tests use it to build a batch they know). */
size_t db_writer_queued(struct db *db);

/* The tenant of a single-tenant install; every table carries tenant_id
 * (docs/architecture.md §5). */
#define DB_DEFAULT_TENANT "00000000-0000-0000-0000-000000000000"

/*
 * Kinds of attached items (db_tx_attach), one pre-commit hook each, run in ascending kind
 * order: first the domains' kinds (0 .. DB_DOMAIN_KINDS - 1, handed out by
 * db_add_precommit; their hooks may refuse a change), then the audit chain, then the outbox.
 */
enum { DB_DOMAIN_KINDS = 4 };
enum db_item_kind {
	DB_ITEM_AUDIT = DB_DOMAIN_KINDS, /* struct audit_record *, chained by audit/ */
	DB_ITEM_EVENT,			 /* struct bus_event *, inserted into the outbox by bus/ */
};

/*
 * Registers a domain's hook under the first free domain kind (or the kind it already has:
 * registering the same fn again only replaces ud) and sets *ret_kind. -ENOSPC when every
 * domain kind is taken. Before db_write runs. Domains call it through change_hook_register.
 */
int db_add_precommit(struct db *db, db_precommit_fn fn, void *ud, int *ret_kind);

/* Array literals (array.c) ------------------------------------------------------------- */

/*
 * A PostgreSQL array literal ({"a","b"}) built one element at a time, to pass a whole
 * column as one text parameter (unnest($1::text[]) and the like). Start from
 * `struct db_array a = { 0 };`. Every element is double-quoted with '"' and '\' escaped, so
 * any text (NULs excepted) goes in as it is. An allocation failure sticks: later calls do
 * nothing and db_array_end returns NULL.
 */
struct db_array {
	char *text;  /* the literal so far, NUL-terminated; owned, released by db_array_clear */
	size_t len;  /* bytes in text */
	size_t cap;  /* bytes allocated */
	size_t n;    /* elements added */
	bool failed; /* an allocation failed: the literal is incomplete */
};

/* Appends s[0..len) as the next element. */
void db_array_add(struct db_array *a, const char *s, size_t len);
/* Closes the literal ("{}" when empty); returns a->text, or NULL after a failed allocation. */
const char *db_array_end(struct db_array *a);
/* Frees the text; a may be reused. */
void db_array_clear(struct db_array *a);
/* Appends a NUL-terminated string, or the decimal text of v. */
void db_array_add_text(struct db_array *a, const char *s);
void db_array_add_int(struct db_array *a, int64_t v);

/*
 * Many byte strings as one bytea parameter: their bytes one after another, and where each
 * starts and how long it is appended to two int[] columns of the caller's, for
 * `substring($n FROM off + 1 FOR len)` beside the other unnest()ed columns. Start from
 * `struct db_blob b = { 0 };`; an allocation failure sticks (db_exec_columns then fails
 * with -ENOMEM).
 */
struct db_blob {
	uint8_t *data;
	size_t len, cap;
	bool failed;
};
void db_blob_add(struct db_blob *b, struct db_array *offs, struct db_array *lens, const void *p,
		 size_t n);
/* Frees the bytes; b may be reused. */
void db_blob_clear(struct db_blob *b);

/*
 * Runs sql with the n_cols array literals as $1..$n_cols (closed here) and the blob's bytes
 * as $n_cols + 1 (when blob is not NULL), then clears the arrays and the blob: the batch
 * statements of the pre-commit hooks. n_cols <= 30. Errors as db_exec, or -ENOMEM.
 */
int db_exec_columns(struct db_conn *conn, const char *sql, struct db_array *cols, size_t n_cols,
		    struct db_blob *blob, struct db_rows **ret_rows);

/* LISTEN (listen.c) ----------------------------------------------------------------------- */

/* What a listener reports to its callback (on the listener's own thread). */
enum db_listen_event {
	DB_LISTEN_UP,	  /* LISTEN is in effect: every commit from now on will be delivered */
	DB_LISTEN_DOWN,	  /* the connection is lost: notifications may be missed until UP */
	DB_LISTEN_NOTIFY, /* a notification of the channel; payload is its text */
};

/* payload is NULL except for DB_LISTEN_NOTIFY; borrowed for the call. Must not block long:
 * it runs on the thread that reads the connection. */
typedef void (*db_listen_fn)(void *ud, enum db_listen_event ev, const char *payload);

struct db_listen;

/*
 * Starts a thread that holds one dedicated connection to db's PostgreSQL (its DSN, not a
 * pool slot), runs LISTEN channel ([a-z0-9_], 1-63 bytes) and calls fn for every
 * notification, reconnecting with backoff when the connection is lost (DOWN, later UP).
 * Returns at once: fn learns when LISTEN is in effect. db must outlive the listener.
 * Returns -EINVAL, -ENOMEM, -EAGAIN.
 */
int db_listen_open(struct db *db, const char *channel, db_listen_fn fn, void *ud,
		   struct db_listen **ret);
/* Stops the thread (no callback runs after it returns) and frees. Accepts NULL, returns NULL. */
struct db_listen *db_listen_close(struct db_listen *l);
/* The PostgreSQL backend pid of the listening connection, 0 while not listening (tests). */
int db_listen_backend_pid(const struct db_listen *l);
