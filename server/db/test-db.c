/*
 * Integration tests for db/ against a real PostgreSQL (run-with-pg.sh starts one and sets
 * TRSTCTL_POSTGRES_DSN; without it the test skips with 77). Covers statements and bytea,
 * the SQLSTATE mapping as PostgreSQL really reports it, migrations (idempotent, racing,
 * changed checksum, unknown version), transaction retry, the group-commit writer (partial
 * failure, hook failure, retry, timeout, 64 concurrent writers) and PostgreSQL stopping
 * and coming back while the pool is in use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "db-internal.h"

static const char *dsn;

static struct db *open_dsn(const char *d, int max_conns)
{
	struct db_config cfg = { .dsn = d, .max_conns = max_conns, .connect_timeout_ms = 3000,
				 .statement_timeout_ms = 10000 };
	struct db *db = NULL;
	int r = db_open(&cfg, &db);

	if (r < 0)
		fail_msg("db_open: %s", strerror(-r));
	return db;
}

static void exec_ok(struct db *db, const char *sql)
{
	struct db_conn *c;
	int r;

	assert_int_equal(db_acquire(db, 5000, &c), 0);
	r = db_exec(c, sql, NULL, 0, NULL);
	if (r < 0)
		fail_msg("%s: %s (%s)", sql, strerror(-r), c->last_error);
	db_release(db, c);
}

static long long query_int(struct db *db, const char *sql)
{
	struct db_rows *rows = NULL;
	struct db_conn *c;
	long long v;

	assert_int_equal(db_acquire(db, 5000, &c), 0);
	assert_int_equal(db_exec(c, sql, NULL, 0, &rows), 0);
	db_release(db, c);
	assert_non_null(db_rows_get(rows, 0, 0));
	v = atoll(db_rows_get(rows, 0, 0));
	db_rows_free(rows);
	return v;
}

/* A fresh database name on the test server, and a DSN for it (caller frees). */
static char *fresh_database(const char *name)
{
	struct db *db = open_dsn(dsn, 1);
	char sql[128], *d;

	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", name);
	exec_ok(db, sql);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
	exec_ok(db, sql);
	db_close(db);
	assert_true(asprintf(&d, "%s dbname=%s", dsn, name) > 0);
	return d;
}

/* Statements ------------------------------------------------------------------------ */

static void test_open_errors(void **state)
{
	struct db_config cfg = { .max_conns = 2, .connect_timeout_ms = 2000 };
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	struct db *db = NULL;
	char refused[128];
	char *nodb;
	int64_t t0;
	int fd;

	cfg.dsn = "bogus_keyword=1";
	assert_int_equal(db_open(&cfg, &db), -EINVAL);
	cfg.dsn = "this is not a dsn";
	assert_int_equal(db_open(&cfg, &db), -EINVAL);

	/* a loopback port nobody listens on */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	snprintf(refused, sizeof(refused), "host=127.0.0.1 port=%d dbname=x user=postgres",
		 ntohs(sa.sin_port));
	cfg.dsn = refused;
	t0 = db_now_ms();
	assert_int_equal(db_open(&cfg, &db), -ECONNREFUSED);
	assert_true(db_now_ms() - t0 < 1000);
	cfg.dsn = "host=/nonexistent-trstctl dbname=x";
	assert_int_equal(db_open(&cfg, &db), -ECONNREFUSED);

	assert_true(asprintf(&nodb, "%s dbname=no_such_db", dsn) > 0);
	cfg.dsn = nodb;
	assert_int_equal(db_open(&cfg, &db), -ENOENT);
	free(nodb);
	assert_null(db);
	cfg.dsn = dsn;
	cfg.max_conns = 0;
	assert_int_equal(db_open(&cfg, &db), -EINVAL);
}

static void test_exec_roundtrip(void **state)
{
	static const char bytes[] = { 'a', 0, 'b', 0, 0, (char)0xff, '\\', 'x' };
	struct db *db = open_dsn(dsn, 2);
	struct db_rows *rows = NULL;
	struct db_conn *c;
	unsigned n_stmts;
	struct db_param p[4] = { DB_TEXT("1"), DB_TEXT("h\xc3\xa9llo 'quoted'"),
				 DB_BYTES(bytes, sizeof(bytes)), DB_NULL };

	exec_ok(db, "DROP TABLE IF EXISTS rt");
	exec_ok(db, "CREATE TABLE rt (id int PRIMARY KEY, t text, b bytea, n text)");
	assert_int_equal(db_acquire(db, 1000, &c), 0);
	n_stmts = c->n_stmts;
	assert_int_equal(db_exec(c, "INSERT INTO rt VALUES ($1, $2, $3, $4)", p, 4, &rows), 0);
	assert_int_equal(rows->affected, 1);
	assert_int_equal(rows->n_rows, 0);
	rows = db_rows_free(rows);
	p[0] = DB_TEXT("2");
	p[2] = DB_BYTES(NULL, 0); /* empty, not NULL */
	assert_int_equal(db_exec(c, "INSERT INTO rt VALUES ($1, $2, $3, $4)", p, 4, NULL), 0);
	assert_int_equal(c->n_stmts, n_stmts + 1); /* prepared once, reused */

	assert_int_equal(db_exec(c, "SELECT id, t, b, n FROM rt ORDER BY id", NULL, 0, &rows), 0);
	assert_int_equal(rows->n_rows, 2);
	assert_int_equal(rows->n_cols, 4);
	assert_int_equal(rows->affected, 0);
	assert_string_equal(rows->col_names[2], "b");
	assert_string_equal(db_rows_get(rows, 0, 0), "1");
	assert_string_equal(db_rows_get(rows, 0, 1), "h\xc3\xa9llo 'quoted'");
	assert_int_equal(rows->lengths[2], sizeof(bytes));
	assert_memory_equal(db_rows_get(rows, 0, 2), bytes, sizeof(bytes));
	assert_null(db_rows_get(rows, 0, 3));
	assert_non_null(db_rows_get(rows, 1, 2));
	assert_int_equal(rows->lengths[4 + 2], 0);
	assert_null(db_rows_get(rows, 2, 0));
	assert_null(db_rows_get(rows, 0, 4));
	rows = db_rows_free(rows);

	/* more parameters than the on-stack arrays hold */
	assert_int_equal(db_exec(c, "SELECT concat($1::text,$2::text,$3::text,$4::text,$5::text,"
				    "$6::text,$7::text,$8::text,$9::text,$10::text,$11::text,"
				    "$12::text,$13::text,$14::text,$15::text,$16::text,$17::text,"
				    "$18::text,$19::text,$20::text)",
			     (struct db_param[20]){ DB_TEXT("a"), [19] = DB_TEXT("z") }, 20, &rows),
			 0);
	assert_string_equal(db_rows_get(rows, 0, 0), "az");
	rows = db_rows_free(rows);

	/* UPDATE ... RETURNING counts as affected rows and returns rows */
	assert_int_equal(db_exec(c, "UPDATE rt SET n = 'x' RETURNING id", NULL, 0, &rows), 0);
	assert_int_equal(rows->affected, 2);
	assert_int_equal(rows->n_rows, 2);
	db_rows_free(rows);
	db_release(db, c);
	db_close(db);
}

static void test_errors(void **state)
{
	struct db *db = open_dsn(dsn, 1);
	struct db_param p[1] = { DB_TEXT("k") };
	struct db_conn *c;

	exec_ok(db, "DROP TABLE IF EXISTS uq");
	exec_ok(db, "CREATE TABLE uq (k text PRIMARY KEY, n int CHECK (n > 0))");
	assert_int_equal(db_acquire(db, 1000, &c), 0);
	assert_int_equal(db_exec(c, "INSERT INTO uq (k) VALUES ($1)", p, 1, NULL), 0);
	assert_int_equal(db_exec(c, "INSERT INTO uq (k) VALUES ($1)", p, 1, NULL), -EEXIST);
	assert_int_equal(db_exec(c, "INSERT INTO uq VALUES ('j', 0)", NULL, 0, NULL), -EINVAL);
	assert_int_equal(db_exec(c, "SELEC 1", NULL, 0, NULL), -EINVAL);
	assert_int_equal(db_exec(c, "SELECT 'x'::int", NULL, 0, NULL), -EINVAL);
	assert_int_equal(db_exec(c, "SELECT pg_sleep(0.2)", NULL, 0, NULL), 0);
	assert_int_equal(db_exec(c, "SET statement_timeout = 100", NULL, 0, NULL), 0);
	assert_int_equal(db_exec(c, "SELECT pg_sleep(2)", NULL, 0, NULL), -ETIME);
	/* still usable after errors, and nothing leaked into a transaction */
	assert_int_equal(db_exec(c, "SELECT 1", NULL, 0, NULL), 0);
	assert_int_equal(db_exec(c, NULL, NULL, 0, NULL), -EINVAL);
	db_release(db, c);
	assert_int_equal(query_int(db, "SELECT count(*) FROM uq"), 1);
	db_close(db);
}

static void test_pool_wait(void **state)
{
	struct db *db = open_dsn(dsn, 2);
	struct db_conn *a, *b, *c;
	int64_t t0;

	assert_int_equal(db_acquire(db, 100, &a), 0);
	assert_int_equal(db_acquire(db, 100, &b), 0);
	assert_ptr_not_equal(a, b);
	t0 = db_now_ms();
	assert_int_equal(db_acquire(db, 150, &c), -ETIMEDOUT);
	assert_true(db_now_ms() - t0 >= 140);
	db_release(db, a);
	assert_int_equal(db_acquire(db, 100, &c), 0);
	assert_ptr_equal(a, c);
	db_release(db, b);
	db_release(db, c);
	db_release(db, NULL);
	db_close(db);
}

/* Migrations ------------------------------------------------------------------------ */

static void test_migrate(void **state)
{
	char *d = fresh_database("mig_a"), *text = NULL, *err = NULL;
	struct db *db = open_dsn(d, 2);
	struct db_migration *list;
	struct db_rows *rows = NULL;
	size_t n;
	struct db_conn *c;
	int applied = -1;

	assert_int_equal(db_migrate_status(db, &text), 0);
	assert_non_null(strstr(text, "0001 base pending\n"));
	free(text);

	assert_int_equal(db_migrate(db, &applied), 0);
	assert_int_equal(applied, (int)db_n_migrations);
	assert_int_equal(db_migrate(db, &applied), 0);
	assert_int_equal(applied, 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM tenants WHERE tenant_id = '"
				       DB_DEFAULT_TENANT "'"), 1);
	assert_int_equal(db_acquire(db, 1000, &c), 0);
	assert_int_equal(db_exec(c, "SELECT sequence, hash FROM audit_head", NULL, 0, &rows), 0);
	db_release(db, c);
	assert_int_equal(rows->n_rows, 1);
	assert_string_equal(db_rows_get(rows, 0, 0), "0");
	assert_int_equal(rows->lengths[1], 32);
	assert_memory_equal(db_rows_get(rows, 0, 1), (char[32]){ 0 }, 32);
	db_rows_free(rows);

	assert_int_equal(db_migrate_status(db, &text), 0);
	assert_true(strncmp(text, "0001 base 20", 12) == 0);
	assert_null(strstr(text, "pending"));
	free(text);

	/* a later migration: pending, then applied once (versions after the embedded ones) */
	n = db_n_migrations;
	list = calloc(n + 2, sizeof(*list));
	memcpy(list, db_migrations, n * sizeof(*list));
	list[n] = (struct db_migration){ 9001, "extra", "c1", "CREATE TABLE extra (tenant_id uuid)" };
	assert_int_equal(db_migrate_status_list(db, list, n + 1, &text), 0);
	if (!strstr(text, "9001 extra pending\n"))
		fail_msg("status: %s", text);
	free(text);
	assert_int_equal(db_migrate_list(db, list, n + 1, &applied, NULL), 0);
	assert_int_equal(applied, 1);

	/* a failing migration leaves nothing behind and says which one */
	list[n + 1] = (struct db_migration){ 9002, "bad", "c2", "CREATE TABLE bad (x int); CREAT x" };
	assert_int_equal(db_migrate_list(db, list, n + 2, &applied, &err), -EINVAL);
	assert_non_null(strstr(err, "migration 9002_bad failed: syntax error"));
	free(err);
	err = NULL;
	assert_int_equal(query_int(db, "SELECT count(*) FROM schema_migrations"), (long long)n + 1);
	assert_int_equal(query_int(db, "SELECT count(*) FROM pg_tables WHERE tablename = 'bad'"),
			 0);

	/* the binary does not know 9001: refused */
	assert_int_equal(db_migrate_msg(db, &applied, &err), -EPROTO);
	assert_non_null(strstr(err, "database has migration 9001_extra"));
	free(err);
	err = NULL;
	assert_int_equal(db_migrate_status(db, &text), 0);
	assert_non_null(strstr(text, "9001 extra 20"));
	assert_non_null(strstr(text, "(unknown to this trstctl)"));
	free(text);

	/* a changed file: refused */
	list[n].checksum = "changed";
	assert_int_equal(db_migrate_list(db, list, n + 1, &applied, &err), -EBADMSG);
	assert_string_equal(err, "migration 9001_extra was changed after it was applied");
	free(err);
	free(list);
	err = NULL;
	exec_ok(db, "UPDATE schema_migrations SET checksum = 'x' WHERE version = 1");
	assert_int_equal(db_migrate_msg(db, &applied, &err), -EBADMSG);
	assert_string_equal(err, "migration 0001_base was changed after it was applied");
	free(err);
	db_close(db);
	free(d);
}

struct migrator {
	const char *dsn;
	pthread_barrier_t *barrier;
	int applied;
	int result;
};

static void *migrate_thread(void *arg)
{
	struct migrator *m = arg;
	struct db *db = open_dsn(m->dsn, 1);

	pthread_barrier_wait(m->barrier);
	m->result = db_migrate(db, &m->applied);
	db_close(db);
	return NULL;
}

static void test_migrate_concurrent(void **state)
{
	char *d = fresh_database("mig_b");
	struct migrator m[4];
	pthread_t th[4];
	pthread_barrier_t barrier;
	struct db *db;
	int total = 0;

	pthread_barrier_init(&barrier, NULL, 4);
	for (int i = 0; i < 4; i++) {
		m[i] = (struct migrator){ .dsn = d, .barrier = &barrier };
		pthread_create(&th[i], NULL, migrate_thread, &m[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(m[i].result, 0);
		total += m[i].applied;
	}
	pthread_barrier_destroy(&barrier);
	assert_int_equal(total, (int)db_n_migrations);
	db = open_dsn(d, 1);
	assert_int_equal(query_int(db, "SELECT count(*) FROM schema_migrations"),
			 (long long)db_n_migrations);
	assert_int_equal(query_int(db, "SELECT count(*) FROM tenants"), 1);
	db_close(db);
	free(d);
}

/* Transactions ---------------------------------------------------------------------- */

struct txcase {
	struct db *db;
	int calls;
	int fail_with;
};

/* Reads the row, lets another session update it, then writes it: 40001 the first time. */
static int tx_conflict(struct db_conn *conn, void *ud)
{
	struct txcase *t = ud;
	struct db_conn *other;
	int r;

	t->calls++;
	r = db_exec(conn, "SELECT v FROM acct WHERE id = 1", NULL, 0, NULL);
	if (r < 0)
		return r;
	if (t->calls == 1) {
		assert_int_equal(db_acquire(t->db, 1000, &other), 0);
		assert_int_equal(db_exec(other, "UPDATE acct SET v = v + 1 WHERE id = 1", NULL, 0,
					 NULL), 0);
		db_release(t->db, other);
	}
	r = db_exec(conn, "UPDATE acct SET v = v + 10 WHERE id = 1", NULL, 0, NULL);
	if (r < 0)
		return r;
	return t->fail_with ? t->fail_with : 7;
}

static void test_transaction_retry(void **state)
{
	struct db *db = open_dsn(dsn, 2);
	struct txcase t = { .db = db };

	exec_ok(db, "DROP TABLE IF EXISTS acct");
	exec_ok(db, "CREATE TABLE acct (id int PRIMARY KEY, v int NOT NULL)");
	exec_ok(db, "INSERT INTO acct VALUES (1, 0)");
	assert_int_equal(db_transaction(db, true, tx_conflict, &t), 7);
	assert_int_equal(t.calls, 2);
	assert_int_equal(query_int(db, "SELECT v FROM acct"), 11);

	/* another error is not retried and rolls back */
	t = (struct txcase){ .db = db, .calls = 1, .fail_with = -EPERM };
	assert_int_equal(db_transaction(db, false, tx_conflict, &t), -EPERM);
	assert_int_equal(t.calls, 2);
	assert_int_equal(query_int(db, "SELECT v FROM acct"), 11);
	db_close(db);
}

/* Group commit ---------------------------------------------------------------------- */

static atomic_int items_freed;
static atomic_int hook_calls;
static atomic_int hook_items;
static int hook_result;     /* what the hook returns ... */
static int hook_fail_times; /* ... this many times, then 0 */
static char hook_seen[64][16];

static void item_free(void *item)
{
	atomic_fetch_add(&items_freed, 1);
	free(item);
}

static int record_hook(struct db_conn *conn, void *const *items, size_t n, int *results,
		       void *ud)
{
	atomic_fetch_add(&hook_calls, 1);
	atomic_fetch_add(&hook_items, (int)n);
	for (size_t i = 0; i < n && i < 64; i++) {
		struct db_param p[1] = { DB_TEXT(items[i]) };
		int r;

		snprintf(hook_seen[i], sizeof(hook_seen[i]), "%s", (char *)items[i]);
		r = db_exec(conn, "INSERT INTO gc_items (k) VALUES ($1)", p, 1, NULL);
		if (r < 0)
			return r;
	}
	if (hook_fail_times > 0) {
		hook_fail_times--;
		return hook_result;
	}
	return 0;
}

/* The post-commit hook: what it saw (items still alive: not yet freed). */
static atomic_int post_calls;
static int post_items;
static char post_seen[64][16];

static void post_hook(void *const *items, size_t n, void *ud)
{
	atomic_fetch_add(&post_calls, 1);
	for (size_t i = 0; i < n && post_items < 64; i++)
		snprintf(post_seen[post_items++], sizeof(post_seen[0]), "%s", (char *)items[i]);
}

enum { CH_OK, CH_REFUSE, CH_DUP };
#define CHG(k, m) { .key = k, .mode = m }

struct chg {
	char key[16];
	int mode;
	atomic_int calls;
};

static int gc_change(struct db_tx *tx, void *ud)
{
	struct chg *ch = ud;
	struct db_param p[1] = { DB_TEXT(ch->key) };
	int r;

	atomic_fetch_add(&ch->calls, 1);
	r = db_tx_exec(tx, "INSERT INTO gc (k) VALUES ($1)", p, 1, NULL);
	if (r < 0)
		return r;
	r = db_tx_attach(tx, DB_ITEM_AUDIT, strdup(ch->key), item_free);
	if (r < 0)
		return r;
	if (ch->mode == CH_REFUSE)
		return -EPERM;
	if (ch->mode == CH_DUP)
		return db_tx_exec(tx, "INSERT INTO gc (k) VALUES ('dup')", NULL, 0, NULL);
	return 1;
}

struct gate {
	struct db *db;
	atomic_bool running;
	atomic_bool release;
};

/* Holds the writer until released (or 5 s): changes queued meanwhile form the next batch. */
static int gate_change(struct db_tx *tx, void *ud)
{
	struct gate *g = ud;
	int64_t t0 = db_now_ms();

	atomic_store(&g->running, true);
	while (!atomic_load(&g->release) && db_now_ms() - t0 < 5000)
		usleep(1000);
	return 0;
}

struct writer_job {
	struct db *db;
	db_change_fn fn;
	void *ud;
	int timeout_ms;
	int result;
	pthread_t th;
};

static void *write_thread(void *arg)
{
	struct writer_job *j = arg;

	j->result = db_write(j->db, j->fn, j->ud, j->timeout_ms);
	return NULL;
}

/* Runs the changes as one batch (behind a gate) and sets each result. */
static void run_as_batch(struct db *db, struct chg *chs, size_t n, int *results)
{
	struct gate g = { .db = db };
	struct writer_job gj = { .db = db, .fn = gate_change, .ud = &g, .timeout_ms = 10000 };
	struct writer_job jobs[16];

	assert_true(n <= 16);
	pthread_create(&gj.th, NULL, write_thread, &gj);
	while (!atomic_load(&g.running))
		usleep(500);
	for (size_t i = 0; i < n; i++) {
		jobs[i] = (struct writer_job){ .db = db, .fn = gc_change, .ud = &chs[i],
					       .timeout_ms = 10000 };
		pthread_create(&jobs[i].th, NULL, write_thread, &jobs[i]);
		/* queue them in order, so that batch order is known */
		while (db_writer_queued(db) < i + 1)
			usleep(200);
	}
	atomic_store(&g.release, true);
	pthread_join(gj.th, NULL);
	assert_int_equal(gj.result, 0);
	for (size_t i = 0; i < n; i++) {
		pthread_join(jobs[i].th, NULL);
		results[i] = jobs[i].result;
	}
}

static struct db *gc_setup(void)
{
	struct db *db = open_dsn(dsn, 3);

	exec_ok(db, "DROP TABLE IF EXISTS gc, gc_items");
	exec_ok(db, "CREATE TABLE gc (k text PRIMARY KEY)");
	exec_ok(db, "CREATE TABLE gc_items (k text NOT NULL)");
	exec_ok(db, "INSERT INTO gc VALUES ('dup')");
	assert_int_equal(db_set_precommit(db, DB_ITEM_AUDIT, record_hook, NULL), 0);
	assert_int_equal(db_set_postcommit(db, DB_ITEM_AUDIT, post_hook, NULL), 0);
	assert_int_equal(db_set_postcommit(db, DB_ITEM_KINDS, post_hook, NULL), -EINVAL);
	atomic_store(&post_calls, 0);
	post_items = 0;
	atomic_store(&items_freed, 0);
	atomic_store(&hook_calls, 0);
	atomic_store(&hook_items, 0);
	hook_result = 0;
	hook_fail_times = 0;
	return db;
}

static void test_batch_partial_failure(void **state)
{
	struct db *db = gc_setup();
	struct chg chs[5] = { CHG("a", CH_OK), CHG("b", CH_REFUSE), CHG("c", CH_OK), CHG("d", CH_DUP),
			      CHG("e", CH_OK) };
	struct db_writer_stats st;
	int results[5];

	run_as_batch(db, chs, 5, results);
	assert_int_equal(results[0], 1);
	assert_int_equal(results[1], -EPERM);
	assert_int_equal(results[2], 1);
	assert_int_equal(results[3], -EEXIST);
	assert_int_equal(results[4], 1);
	assert_int_equal(atomic_load(&hook_calls), 1);
	assert_int_equal(atomic_load(&hook_items), 3);
	assert_string_equal(hook_seen[0], "a");
	assert_string_equal(hook_seen[1], "c");
	assert_string_equal(hook_seen[2], "e");
	/* after the commit: the committed changes' items only, in batch order */
	assert_int_equal(atomic_load(&post_calls), 1); /* not for the gate's batch: no item */
	assert_int_equal(post_items, 3);
	assert_string_equal(post_seen[0], "a");
	assert_string_equal(post_seen[1], "c");
	assert_string_equal(post_seen[2], "e");
	assert_int_equal(atomic_load(&items_freed), 5);
	assert_int_equal(query_int(db, "SELECT count(*) FROM gc WHERE k IN ('a','c','e')"), 3);
	assert_int_equal(query_int(db, "SELECT count(*) FROM gc WHERE k IN ('b','d')"), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM gc_items"), 3);
	db_writer_stats(db, &st);
	assert_int_equal(st.max_batch, 5);
	assert_int_equal(st.changes, 1 + 3);
	db_close(db);
}

static void test_hook_failure(void **state)
{
	struct db *db = gc_setup();
	struct chg chs[3] = { CHG("a", CH_OK), CHG("b", CH_OK), CHG("c", CH_REFUSE) };
	int results[3];

	hook_result = -EIO;
	hook_fail_times = 1;
	run_as_batch(db, chs, 3, results);
	assert_int_equal(results[0], -EIO);
	assert_int_equal(results[1], -EIO);
	assert_int_equal(results[2], -EPERM);
	assert_int_equal(atomic_load(&items_freed), 3);
	assert_int_equal(query_int(db, "SELECT count(*) FROM gc"), 1); /* only 'dup' */
	assert_int_equal(post_items, 0); /* nothing committed, nothing observed */
	assert_int_equal(query_int(db, "SELECT count(*) FROM gc_items"), 0);
	db_close(db);
}

static void test_batch_retry(void **state)
{
	struct db *db = gc_setup();
	struct chg chs[3] = { CHG("a", CH_OK), CHG("b", CH_REFUSE), CHG("c", CH_OK) };
	int results[3];

	hook_result = -EAGAIN; /* as a deadlock or serialization failure would */
	hook_fail_times = 1;
	run_as_batch(db, chs, 3, results);
	assert_int_equal(results[0], 1);
	assert_int_equal(results[1], -EPERM);
	assert_int_equal(results[2], 1);
	assert_int_equal(atomic_load(&chs[0].calls), 2); /* ran again after the rollback */
	assert_int_equal(post_items, 2); /* the attempt that committed, once */
	assert_string_equal(post_seen[0], "a");
	assert_string_equal(post_seen[1], "c");
	assert_int_equal(atomic_load(&hook_calls), 2);
	assert_int_equal(atomic_load(&items_freed), 6);
	assert_int_equal(query_int(db, "SELECT count(*) FROM gc"), 3);
	assert_int_equal(query_int(db, "SELECT count(*) FROM gc_items"), 2);

	/* always -EAGAIN: the batch fails after its attempts, nothing written */
	struct chg more[1] = { CHG("x", CH_OK) };

	hook_fail_times = 100;
	run_as_batch(db, more, 1, results);
	assert_int_equal(results[0], -EAGAIN);
	assert_int_equal(atomic_load(&more[0].calls), 3);
	assert_int_equal(query_int(db, "SELECT count(*) FROM gc WHERE k = 'x'"), 0);
	db_close(db);
}

static void test_write_timeout(void **state)
{
	struct db *db = gc_setup();
	struct gate g = { .db = db };
	struct writer_job gj = { .db = db, .fn = gate_change, .ud = &g, .timeout_ms = 10000 };
	struct chg ch = CHG("late", CH_OK);
	int64_t t0;

	pthread_create(&gj.th, NULL, write_thread, &gj);
	while (!atomic_load(&g.running))
		usleep(500);
	t0 = db_now_ms();
	assert_int_equal(db_write(db, gc_change, &ch, 200), -ETIMEDOUT);
	assert_true(db_now_ms() - t0 < 1000);
	atomic_store(&g.release, true);
	pthread_join(gj.th, NULL);
	assert_int_equal(gj.result, 0);
	assert_int_equal(atomic_load(&ch.calls), 0); /* removed from the queue, never ran */
	assert_int_equal(query_int(db, "SELECT count(*) FROM gc WHERE k = 'late'"), 0);
	assert_int_equal(db_write(NULL, gc_change, &ch, 0), -EINVAL);
	db_close(db);
}

#define CONC_THREADS 64
#define CONC_WRITES 100

struct conc {
	struct db *db;
	int id;
	int i;
	int failures;
};

static int conc_change(struct db_tx *tx, void *ud)
{
	struct conc *c = ud;
	char a[16], b[16];
	struct db_param p[2] = { DB_TEXT(a), DB_TEXT(b) };
	int r;

	snprintf(a, sizeof(a), "%d", c->id);
	snprintf(b, sizeof(b), "%d", c->i);
	r = db_tx_exec(tx, "INSERT INTO conc (t, i) VALUES ($1, $2)", p, 2, NULL);
	if (r < 0)
		return r;
	return db_tx_attach(tx, DB_ITEM_EVENT, malloc(1), item_free);
}

static int count_hook(struct db_conn *conn, void *const *items, size_t n, int *results,
		      void *ud)
{
	atomic_fetch_add(&hook_items, (int)n);
	return 0;
}

static void *conc_thread(void *arg)
{
	struct conc *c = arg;

	for (c->i = 0; c->i < CONC_WRITES; c->i++)
		if (db_write(c->db, conc_change, c, 30000) < 0)
			c->failures++;
	return NULL;
}

static void test_concurrency(void **state)
{
	struct db *db = open_dsn(dsn, 4);
	struct conc cs[CONC_THREADS];
	pthread_t th[CONC_THREADS];
	struct db_writer_stats st;
	int64_t t0;

	exec_ok(db, "DROP TABLE IF EXISTS conc");
	exec_ok(db, "CREATE TABLE conc (t int, i int, PRIMARY KEY (t, i))");
	atomic_store(&hook_items, 0);
	atomic_store(&items_freed, 0);
	assert_int_equal(db_set_precommit(db, DB_ITEM_EVENT, count_hook, NULL), 0);
	t0 = db_now_ms();
	for (int i = 0; i < CONC_THREADS; i++) {
		cs[i] = (struct conc){ .db = db, .id = i };
		pthread_create(&th[i], NULL, conc_thread, &cs[i]);
	}
	for (int i = 0; i < CONC_THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(cs[i].failures, 0);
	}
	db_writer_stats(db, &st);
	printf("# %d writes in %lld ms: %llu batches, largest %llu\n", CONC_THREADS * CONC_WRITES,
	       (long long)(db_now_ms() - t0), (unsigned long long)st.batches,
	       (unsigned long long)st.max_batch);
	assert_int_equal(query_int(db, "SELECT count(*) FROM conc"), CONC_THREADS * CONC_WRITES);
	assert_int_equal(st.changes, CONC_THREADS * CONC_WRITES);
	assert_true(st.max_batch > 1);
	assert_true(st.batches < CONC_THREADS * CONC_WRITES);
	assert_int_equal(atomic_load(&hook_items), CONC_THREADS * CONC_WRITES);
	assert_int_equal(atomic_load(&items_freed), CONC_THREADS * CONC_WRITES);
	db_close(db);
}

/*
 * Two writer threads: every write lands once, with its item, and batches overlap; a
 * refused change in one writer's batch leaves the rest of that batch alone.
 */
static void test_two_writers(void **state)
{
	struct db_config cfg = { .dsn = dsn, .max_conns = 4, .connect_timeout_ms = 3000,
				 .writers = DB_WRITERS_MAX + 1 };
	struct db *db = NULL;
	struct conc cs[CONC_THREADS];
	pthread_t th[CONC_THREADS];
	struct chg bad = CHG("dup", CH_DUP);
	struct db_writer_stats st;

	assert_int_equal(db_open(&cfg, &db), -EINVAL);
	cfg.writers = -1;
	assert_int_equal(db_open(&cfg, &db), -EINVAL);
	cfg.writers = 2;
	assert_int_equal(db_open(&cfg, &db), 0);
	assert_int_equal(db->n_started, 2);
	exec_ok(db, "DROP TABLE IF EXISTS conc, gc");
	exec_ok(db, "CREATE TABLE conc (t int, i int, PRIMARY KEY (t, i))");
	exec_ok(db, "CREATE TABLE gc (k text PRIMARY KEY)");
	exec_ok(db, "INSERT INTO gc VALUES ('dup')");
	atomic_store(&hook_items, 0);
	atomic_store(&items_freed, 0);
	assert_int_equal(db_set_precommit(db, DB_ITEM_EVENT, count_hook, NULL), 0);
	for (int i = 0; i < CONC_THREADS; i++) {
		cs[i] = (struct conc){ .db = db, .id = i };
		pthread_create(&th[i], NULL, conc_thread, &cs[i]);
	}
	assert_int_equal(db_write(db, gc_change, &bad, 30000), -EEXIST);
	for (int i = 0; i < CONC_THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(cs[i].failures, 0);
	}
	db_writer_stats(db, &st);
	assert_int_equal(query_int(db, "SELECT count(*) FROM conc"), CONC_THREADS * CONC_WRITES);
	assert_int_equal(st.changes, CONC_THREADS * CONC_WRITES);
	assert_int_equal(atomic_load(&hook_items), CONC_THREADS * CONC_WRITES);
	assert_int_equal(atomic_load(&items_freed), CONC_THREADS * CONC_WRITES);
	db_close(db);
}

/* Hooks that refuse changes ------------------------------------------------------------ */

static atomic_int later_items;

/* Kind 0: writes each key into rf, refuses keys that start with "no". */
static int refusing_hook(struct db_conn *conn, void *const *items, size_t n, int *results,
			 void *ud)
{
	for (size_t i = 0; i < n; i++) {
		struct db_param p[1] = { DB_TEXT(items[i]) };
		int r;

		if (!strncmp(items[i], "no", 2)) {
			results[i] = -EPERM;
			continue;
		}
		r = db_exec(conn, "INSERT INTO rf (k) VALUES ($1)", p, 1, NULL);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Kind 1: counts the items that reach it. */
static int later_hook(struct db_conn *conn, void *const *items, size_t n, int *results,
		      void *ud)
{
	atomic_fetch_add(&later_items, (int)n);
	return 0;
}

struct rf_change {
	struct db *db;
	char key[16];
	bool statement; /* also run a statement of its own */
	int kind;	/* the refusing hook's kind */
	int result;
};

static int rf_change_fn(struct db_tx *tx, void *ud)
{
	struct rf_change *c = ud;
	int r;

	if (c->statement) {
		struct db_param p[1] = { DB_TEXT(c->key) };

		r = db_tx_exec(tx, "INSERT INTO rf_own (k) VALUES ($1)", p, 1, NULL);
		if (r < 0)
			return r;
	}
	r = db_tx_attach(tx, c->kind, strdup(c->key), free);
	if (r >= 0)
		r = db_tx_attach(tx, DB_ITEM_AUDIT, strdup(c->key), free);
	return r;
}

static void *rf_thread(void *arg)
{
	struct rf_change *c = arg;

	c->result = db_write(c->db, rf_change_fn, c, 30000);
	return NULL;
}

/*
 * A hook refuses the changes of some of its items: their callers get its error, none of their
 * items reaches a later hook, and the other changes of the batch commit. Refusing a change
 * that ran a statement of its own (its rows cannot be taken back alone) fails the batch.
 */
static void test_hook_refusal(void **state)
{
	struct db *db = open_dsn(dsn, 4);
	struct rf_change cs[16];
	pthread_t th[16];
	struct rf_change own = { .key = "no-own", .statement = true };
	int kind = -1, again = -1;

	exec_ok(db, "DROP TABLE IF EXISTS rf, rf_own");
	exec_ok(db, "CREATE TABLE rf (k text PRIMARY KEY)");
	exec_ok(db, "CREATE TABLE rf_own (k text PRIMARY KEY)");
	assert_int_equal(db_add_precommit(db, refusing_hook, NULL, &kind), 0);
	assert_int_equal(kind, 0); /* the first domain kind, before the audit hook's */
	assert_int_equal(db_add_precommit(db, refusing_hook, NULL, &again), 0);
	assert_int_equal(again, kind); /* registered again: the same kind */
	own.kind = kind;
	assert_int_equal(db_set_precommit(db, DB_ITEM_AUDIT, later_hook, NULL), 0);
	atomic_store(&later_items, 0);
	for (int i = 0; i < 16; i++) {
		cs[i] = (struct rf_change){ .db = db, .kind = kind };
		snprintf(cs[i].key, sizeof(cs[i].key), "%s%d", i % 4 == 0 ? "no" : "ok", i);
		pthread_create(&th[i], NULL, rf_thread, &cs[i]);
	}
	for (int i = 0; i < 16; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(cs[i].result, i % 4 == 0 ? -EPERM : 0);
	}
	assert_int_equal(query_int(db, "SELECT count(*) FROM rf"), 12);
	assert_int_equal(query_int(db, "SELECT count(*) FROM rf WHERE k LIKE 'no%'"), 0);
	assert_int_equal(atomic_load(&later_items), 12);

	own.db = db;
	assert_int_equal(db_write(db, rf_change_fn, &own, 30000), -EPROTO);
	assert_int_equal(query_int(db, "SELECT count(*) FROM rf_own"), 0);
	db_close(db);
}

/* PostgreSQL going away and coming back --------------------------------------------- */

static int pg_ctl(const char *what)
{
	const char *ctl = getenv("TRSTCTL_TEST_PG_CTL"), *dir = getenv("TRSTCTL_TEST_PG_DIR");
	char cmd[1024];

	if (!ctl || !dir)
		return -1;
	snprintf(cmd, sizeof(cmd), "'%s' --ctl %s '%s'", ctl, what, dir);
	return system(cmd);
}

static int one_row(struct db_tx *tx, void *ud)
{
	return db_tx_exec(tx, "INSERT INTO gc (k) VALUES (gen_random_uuid()::text)", NULL, 0, NULL);
}

static int tx_select(struct db_conn *conn, void *ud)
{
	return db_exec(conn, "SELECT 1", NULL, 0, NULL);
}

static void test_pg_restart(void **state)
{
	struct db *db;
	struct db_conn *c;
	int64_t t0;
	int r;

	if (!getenv("TRSTCTL_TEST_PG_CTL")) {
		skip(); /* run without run-with-pg.sh: cannot stop the server */
		return;
	}
	db = gc_setup();
	assert_int_equal(db_write(db, one_row, NULL, 5000), 0);
	assert_int_equal(db_acquire(db, 1000, &c), 0);
	assert_int_equal(pg_ctl("stop"), 0);

	t0 = db_now_ms();
	r = db_exec(c, "SELECT 1", NULL, 0, NULL);
	assert_true(r == -ECONNRESET || r == -ECONNREFUSED);
	db_release(db, c);
	r = db_write(db, one_row, NULL, 3000);
	assert_true(r == -ECONNRESET || r == -ECONNREFUSED);
	assert_int_equal(db_acquire(db, 1000, &c), -ECONNREFUSED);
	assert_int_equal(db_transaction(db, false, tx_select, NULL), -ECONNREFUSED);
	assert_true(db_now_ms() - t0 < 3000);

	assert_int_equal(pg_ctl("start"), 0);
	assert_int_equal(db_write(db, one_row, NULL, 5000), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM gc"), 3);
	db_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_exec_roundtrip),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_pool_wait),
		cmocka_unit_test(test_migrate),
		cmocka_unit_test(test_migrate_concurrent),
		cmocka_unit_test(test_transaction_retry),
		cmocka_unit_test(test_batch_partial_failure),
		cmocka_unit_test(test_hook_failure),
		cmocka_unit_test(test_batch_retry),
		cmocka_unit_test(test_write_timeout),
		cmocka_unit_test(test_concurrency),
		cmocka_unit_test(test_two_writers),
		cmocka_unit_test(test_hook_refusal),
		cmocka_unit_test(test_pg_restart),
	};

	dsn = getenv("TRSTCTL_POSTGRES_DSN");
	if (!dsn || !*dsn) {
		printf("SKIP: TRSTCTL_POSTGRES_DSN is not set (run through run-with-pg.sh)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
