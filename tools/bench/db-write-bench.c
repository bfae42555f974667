/*
 * db-write-bench: durable writes per second through db's group-commit writer (db_write) at
 * several numbers of writes in flight, against a floor measured in the same run on the
 * same database: pgbench running the same INSERT, one transaction (one commit) each, with
 * as many clients. Each trstctl write is that INSERT plus one attached item, which the
 * pre-commit hook inserts into a second table with one multi-row INSERT per batch (the
 * shape of an audit record), so trstctl does more work per write than the floor.
 *
 *   db-write-bench [--seconds N] [--levels 1,16,64] [--writers N] [--smoke]
 *
 * --writers sets db_config.writers (default 1, as the server runs by default).
 *
 * The DSN comes from TRSTCTL_POSTGRES_DSN; server/db/run-with-pg.sh provides a throwaway
 * PostgreSQL: `server/db/run-with-pg.sh build/tools/bench/db-write-bench`. --smoke runs
 * briefly and only checks that writes succeed; the figures mean nothing then.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"

#define MAX_LEVEL 256

struct bench {
	struct db *db;
	atomic_bool stop;
	atomic_long ok;
	atomic_long failed;
	atomic_long next_k;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int exec_sql(struct db *db, const char *sql)
{
	struct db_conn *c;
	int r = db_acquire(db, 5000, &c);

	if (r < 0)
		return r;
	r = db_exec(c, sql, NULL, 0, NULL);
	db_release(db, c);
	return r;
}

/* The pre-commit hook: the batch's items in one multi-row INSERT. */
static int items_hook(struct db_conn *conn, void *const *items, size_t n, int *results,
		      void *ud)
{
	size_t cap = n * 21 + 3, len = 0;
	char *arr = malloc(cap);
	int r;

	if (!arr)
		return -ENOMEM;
	arr[len++] = '{';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(arr + len, cap - len, "%s%" PRId64, i ? "," : "",
					*(const int64_t *)items[i]);
	snprintf(arr + len, cap - len, "}");
	struct db_param p[2] = { DB_TEXT(DB_DEFAULT_TENANT), DB_TEXT(arr) };

	r = db_exec(conn, "INSERT INTO bench_items (tenant_id, k) SELECT $1, unnest($2::bigint[])",
		    p, 2, NULL);
	free(arr);
	return r;
}

static int write_change(struct db_tx *tx, void *ud)
{
	struct bench *b = ud;
	int64_t *k = malloc(sizeof(*k));
	char ks[24];
	int r;

	if (!k)
		return -ENOMEM;
	*k = atomic_fetch_add(&b->next_k, 1);
	snprintf(ks, sizeof(ks), "%" PRId64, *k);
	struct db_param p[3] = { DB_TEXT(DB_DEFAULT_TENANT), DB_TEXT(ks),
				 DB_TEXT("payload-0123456789") };

	r = db_tx_exec(tx, "INSERT INTO bench_rows (tenant_id, k, payload) VALUES ($1, $2, $3)",
		       p, 3, NULL);
	if (r < 0) {
		free(k);
		return r;
	}
	return db_tx_attach(tx, DB_ITEM_AUDIT, k, free);
}

static void *writer_thread(void *arg)
{
	struct bench *b = arg;

	while (!atomic_load(&b->stop)) {
		if (db_write(b->db, write_change, b, 10000) >= 0)
			atomic_fetch_add(&b->ok, 1);
		else
			atomic_fetch_add(&b->failed, 1);
	}
	return NULL;
}

/* Writes through db_write with n threads for secs; returns writes/s (< 0 on failures). */
static double run_trstctl(struct bench *b, int n, double secs)
{
	pthread_t th[MAX_LEVEL];
	double t0, t1;

	atomic_store(&b->stop, false);
	atomic_store(&b->ok, 0);
	atomic_store(&b->failed, 0);
	t0 = now_s();
	for (int i = 0; i < n; i++)
		pthread_create(&th[i], NULL, writer_thread, b);
	usleep((useconds_t)(secs * 1e6));
	atomic_store(&b->stop, true);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	t1 = now_s();
	if (atomic_load(&b->failed)) {
		fprintf(stderr, "db-write-bench: %ld writes failed\n", atomic_load(&b->failed));
		return -1;
	}
	return (double)atomic_load(&b->ok) / (t1 - t0);
}

/* The floor: pgbench, same INSERT, one commit per row, n clients. Returns tps or < 0. */
static double run_pgbench(const char *dsn, int n, int secs)
{
	char script[] = "/tmp/db-write-bench-XXXXXX", line[512];
	char *cmd = NULL, *quoted;
	double tps = -1;
	size_t qlen = 0;
	FILE *f;
	int fd;

	fd = mkstemp(script);
	if (fd < 0)
		return -1;
	dprintf(fd, "\\set k random(1, 1000000000000)\n"
		    "INSERT INTO bench_rows (tenant_id, k, payload) VALUES ('%s', :k, "
		    "'payload-0123456789');\n", DB_DEFAULT_TENANT);
	close(fd);
	/* the DSN in single quotes for sh; it holds no secret in the test set-up */
	quoted = malloc(strlen(dsn) * 4 + 3);
	if (!quoted)
		goto out;
	quoted[qlen++] = '\'';
	for (const char *p = dsn; *p; p++) {
		if (*p == '\'') {
			memcpy(quoted + qlen, "'\\''", 4);
			qlen += 4;
		} else {
			quoted[qlen++] = *p;
		}
	}
	quoted[qlen++] = '\'';
	quoted[qlen] = '\0';
	if (asprintf(&cmd, "pgbench -n -M prepared -c %d -j %d -T %d -f %s %s 2>&1", n,
		     n < 2 ? n : 2, secs, script, quoted) < 0)
		cmd = NULL;
	free(quoted);
	f = cmd ? popen(cmd, "r") : NULL;
	if (!f)
		goto out;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "tps = %lf", &tps) == 1)
			break;
	}
	while (fgets(line, sizeof(line), f))
		;
	if (pclose(f) != 0)
		tps = -1;
out:
	free(cmd);
	unlink(script);
	return tps;
}

int main(int argc, char **argv)
{
	const char *dsn = getenv("TRSTCTL_POSTGRES_DSN"), *levels_arg = "1,16,64";
	int levels[16], n_levels = 0, secs = 5, writers = 1;
	bool smoke = false;
	struct bench b = { 0 };
	struct db_writer_stats st0, st1;
	int r, rc = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--smoke") == 0) {
			smoke = true;
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			secs = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--levels") == 0 && i + 1 < argc) {
			levels_arg = argv[++i];
		} else if (strcmp(argv[i], "--writers") == 0 && i + 1 < argc) {
			writers = atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: db-write-bench [--seconds N] [--levels 1,16,64] "
					"[--writers N] [--smoke]\n");
			return 2;
		}
	}
	if (smoke) {
		secs = 1;
		levels_arg = "1,8";
	}
	for (const char *p = levels_arg; p && *p && n_levels < 16; p = strchr(p, ',')) {
		p += *p == ',';
		levels[n_levels] = atoi(p);
		if (levels[n_levels] < 1 || levels[n_levels] > MAX_LEVEL || secs < 1) {
			fprintf(stderr, "db-write-bench: levels are 1..%d, seconds >= 1\n", MAX_LEVEL);
			return 2;
		}
		n_levels++;
	}
	if (writers < 1 || writers > 4) {
		fprintf(stderr, "db-write-bench: --writers is 1..4\n");
		return 2;
	}
	if (!dsn || !*dsn) {
		fprintf(stderr, "db-write-bench: set TRSTCTL_POSTGRES_DSN (or run it through "
				"server/db/run-with-pg.sh)\n");
		return 77;
	}
	struct db_config cfg = { .dsn = dsn,
				 .max_conns = 4 + writers,
				 .connect_timeout_ms = 5000,
				 .writers = writers };

	r = db_open(&cfg, &b.db);
	if (r < 0) {
		fprintf(stderr, "db-write-bench: cannot connect to PostgreSQL: %s\n", strerror(-r));
		return 1;
	}
	r = exec_sql(b.db, "CREATE TABLE IF NOT EXISTS bench_rows (tenant_id uuid NOT NULL, "
			   "k bigint NOT NULL, payload text NOT NULL)");
	if (r >= 0)
		r = exec_sql(b.db, "CREATE TABLE IF NOT EXISTS bench_items (tenant_id uuid NOT NULL, "
				   "k bigint NOT NULL)");
	if (r >= 0)
		r = db_set_precommit(b.db, DB_ITEM_AUDIT, items_hook, NULL);
	if (r < 0) {
		fprintf(stderr, "db-write-bench: set-up failed: %s\n", strerror(-r));
		db_close(b.db);
		return 1;
	}
	printf("durable writes/s: trstctl (db_write: INSERT + attached item, group commit) vs "
	       "floor (pgbench: same INSERT, one commit each), %d s each\n", secs);
	for (int i = 0; i < n_levels; i++) {
		double floor_tps, ours;
		int n = levels[i];

		exec_sql(b.db, "TRUNCATE bench_rows, bench_items");
		floor_tps = run_pgbench(dsn, n, secs);
		exec_sql(b.db, "TRUNCATE bench_rows, bench_items");
		db_writer_stats(b.db, &st0);
		ours = run_trstctl(&b, n, secs);
		db_writer_stats(b.db, &st1);
		if (ours < 0) {
			rc = 1;
			break;
		}
		if (floor_tps <= 0) {
			printf("in flight %3d: trstctl %8.0f/s  floor: pgbench failed\n", n, ours);
			rc = smoke ? rc : 1;
			continue;
		}
		printf("in flight %3d: trstctl %8.0f/s (%" PRIu64 " batches, mean %.1f, largest %"
		       PRIu64 ")  floor %8.0f/s  ratio = %.2f\n", n, ours, st1.batches - st0.batches,
		       (double)(st1.changes - st0.changes) /
			       (double)(st1.batches - st0.batches ? st1.batches - st0.batches : 1),
		       st1.max_batch, floor_tps, ours / floor_tps);
	}
	db_close(b.db);
	return rc;
}
