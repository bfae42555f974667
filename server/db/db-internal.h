#pragma once
/*
 * db internals shared by the files of db/ (pool and statements in db.c, the group-commit
 * writer in writer.c, migrations in migrate.c, the SQLSTATE table in sqlstate.c, what waits
 * tell about PostgreSQL in health.c, the start of every connection through the egress gate
 * in connect.c) and by db/'s own tests. Nothing outside db/ includes this header: libpq
 * stays in this room.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "db.h"

#define DB_ITEM_KINDS 8       /* kinds of attached items are 0 .. DB_ITEM_KINDS - 1 */
#define DB_STMT_BUCKETS 64    /* hash buckets of a connection's prepared statements */
#define DB_STMT_MAX 1024      /* beyond this many, statements run unprepared */
#define DB_WRITERS_MAX 4      /* writer threads of one struct db */
#define DB_CONNECT_DEFAULT_MS 5000
/*
 * Connection parameters given before the DSN (which may override them): TCP keepalives
 * notice a silent peer of an idle connection after 5 + 2 * 2 s; data left unacknowledged
 * for DB_TCP_USER_TIMEOUT_MS (or the statement timeout, when longer) closes the
 * connection. A backend checks every DB_CLIENT_CHECK_MS whether its client left, so that
 * the statement of a connection dropped here does not run on (PostgreSQL 14 and later).
 */
#define DB_KEEPALIVES_IDLE "5"
#define DB_KEEPALIVES_INTERVAL "2"
#define DB_KEEPALIVES_COUNT "2"
#define DB_TCP_USER_TIMEOUT_MS 10000
#define DB_CLIENT_CHECK_MS 1000

/* A prepared statement of one connection, found by its SQL text. */
struct db_stmt {
	struct db_stmt *next; /* same bucket */
	uint64_t hash;        /* FNV-1a of sql */
	char name[16];        /* "trst_<n>", unique within the connection */
	char sql[];           /* the text it was prepared from */
};

/* One slot of the pool. pg is NULL until the slot is first leased (lazy connect). */
struct db_conn {
	struct db *db;
	PGconn *pg;             /* NULL when not connected */
	bool leased;            /* guarded by db->lock */
	bool broken;            /* a call saw the connection fail: dropped at release */
	bool pipeline;          /* in libpq pipeline mode (the writer's batches) */
	int deferred;           /* commands sent in pipeline mode whose results are unread */
	int last_errno;         /* the last statement error (-errno), 0 after success */
	int wait_ms;            /* bound of each wait for an answer on this lease (0: none):
				 * the statement timeout, a migration's longer one */
	int64_t deadline;       /* the lease's own deadline (db_now_ms), -1: none (db_ping) */
	_Atomic int64_t wait_since; /* when the wait for an answer in progress began, 0: none */
	char last_error[256];   /* its primary message (our SQL only; no values) */
	unsigned n_stmts;
	unsigned stmt_seq;
	struct db_stmt *stmts[DB_STMT_BUCKETS];
};

struct db_change;

struct db_hook {
	db_precommit_fn fn;
	void *ud;
};

struct db_post {
	db_postcommit_fn fn;
	void *ud;
};

struct db {
	char *dsn;                 /* a secret: wiped at close, never logged */
	struct net_gate gate;      /* db_config.gate: asked before every connection */
	int connect_timeout_ms;    /* > 0 */
	int statement_timeout_ms;  /* bound of each wait for an answer; 0: none */
	int pg_timeout_ms;         /* PostgreSQL's statement_timeout: a little less; 0: none */
	_Atomic int64_t silent_since; /* start of a wait that ran out unanswered, 0: answering */

	/* the prober (health.c): tries PostgreSQL while it is silent; guarded by plock */
	pthread_mutex_t plock;
	pthread_cond_t pwake;      /* silence began, or stop */
	bool p_started, p_stop;
	pthread_t p_thread;

	pthread_mutex_t lock;      /* the pool */
	pthread_cond_t returned;   /* a connection came back */
	int n_conns;
	struct db_conn *conns;

	/* group-commit writer (writer.c), all guarded by wlock */
	pthread_mutex_t wlock;
	pthread_cond_t wwork;      /* the writer waits here for changes */
	struct db_change *q_head, *q_tail;
	size_t q_len;
	bool w_started, w_stop;
	int n_writers;             /* writer threads to run (db_config.writers) */
	int n_started;             /* writer threads running */
	pthread_t w_threads[DB_WRITERS_MAX];
	struct db_writer_stats stats;
	struct db_hook hooks[DB_ITEM_KINDS];
	struct db_post posts[DB_ITEM_KINDS];
};

/* One embedded migration (db-migrations.c is generated from migrations/). */
struct db_migration {
	int version;
	const char *name;     /* "base" for 0001_base.sql */
	const char *checksum; /* SHA-256 of the file, hex */
	const char *sql;
};

extern const struct db_migration db_migrations[];
extern const size_t db_n_migrations;

/* sqlstate.c: SQLSTATE (5 characters; NULL when none) -> -errno. */
int db_sqlstate_errno(const char *sqlstate);

/*
 * connect.c: starts a connection (PQconnectStartParams, to poll with the caller's deadline)
 * with application_name app, the pool's keepalives and timeouts, then the DSN, through
 * db->gate: with a gate that gates, host, hostaddr and port lists of the admitted addresses
 * are added after the DSN. Every connection of db/ starts here: the pool's slots, the
 * prober's probes and the listener. Returns 0 and *ret_pg, -ECONNREFUSED (every host
 * refused or unresolved), -EINVAL (the DSN names a service but no host; host lists of
 * different lengths), -ENOMEM.
 */
int db_connect_start(struct db *db, const char *app, PGconn **ret_pg);

/* db.c */
int64_t db_now_ms(void);
/* Polls fd for events until deadline (db_now_ms, -1 none): the revents, 0 at the deadline. */
int db_poll(int fd, short events, int64_t deadline);
/* db_acquire with every wait of the lease (the free slot too) bounded by deadline. */
int db_acquire_until(struct db *db, int64_t deadline, struct db_conn **ret_conn);
/* Runs SQL without parameters (may hold several statements); the result is discarded. */
int db_exec_simple(struct db_conn *conn, const char *sql);
/*
 * Pipeline mode, for the writer: db_exec_defer queues a statement without waiting; its
 * result is read (and its error reported) with the next statement that waits, so a
 * savepoint costs no round trip. Only single statements are allowed in pipeline mode.
 */
int db_conn_pipeline_begin(struct db_conn *conn);
void db_conn_pipeline_end(struct db_conn *conn);
int db_exec_defer(struct db_conn *conn, const char *sql);
/* Closes a connection of a leased slot (it reconnects at its next lease). */
void db_conn_drop(struct db_conn *conn);

/* health.c */
/* PostgreSQL answered (any byte, a connection, a refusal): it is not silent. */
void db_heard(struct db *db);
/* A wait that began at since ran out with nothing heard: PostgreSQL is silent. */
void db_silent(struct db *db, int64_t since);
/* Starts the prober thread (pools with a statement timeout) / stops it. */
int db_prober_start(struct db *db);
void db_prober_stop(struct db *db);

/* writer.c */
int db_writer_start(struct db *db);
void db_writer_stop(struct db *db);

/* migrate.c: applies list (sorted by version); the embedded list is db_migrations. */
int db_migrate_list(struct db *db, const struct db_migration *list, size_t n,
		    int *ret_applied, char **ret_error);
int db_migrate_status_list(struct db *db, const struct db_migration *list, size_t n,
			   char **ret_text);
