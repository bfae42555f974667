/*
 * Integration tests of audit/ against a real PostgreSQL (TRSTCTL_POSTGRES_DSN, started by
 * db/run-with-pg.sh): the chain under concurrent group-commit writers, tampering with every
 * column of a record, deleted records, tampered checkpoints, two pools (two servers) on one
 * chain, the tail cut from the tables and caught by the witness file, the live tail across
 * the history/live switch, paging, the recent records of one outcome, the sealed key, and
 * the throughput of durable audited writes (printed, not asserted).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libgen.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit.h"
#include "db.h"
#include "kek.h"

#define EVERY 50
#define TENANT_B "0b000000-0000-4000-8000-00000000000b"
#define TENANT_C "0c000000-0000-4000-8000-00000000000c"
#define TENANT_D "0d000000-0000-4000-8000-00000000000d"
#define TENANT_E "0e000000-0000-4000-8000-00000000000e"
#define TENANT_F "0f000000-0000-4000-8000-00000000000f"
#define TENANT_G "06000000-0000-4000-8000-000000000006"

struct env {
	struct db *db, *db2;
	struct kek *kek;
	struct audit *a, *a2;
};

static struct env E;

static int open_db(struct db **ret)
{
	struct db_config c = { .dsn = getenv("TRSTCTL_POSTGRES_DSN"),
			       .max_conns = 8,
			       .connect_timeout_ms = 5000 };

	return db_open(&c, ret);
}

struct opener {
	struct db *db;
	struct audit **ret;
	int r;
};

static void *open_main(void *p)
{
	struct opener *o = p;
	struct audit_config ac = { .checkpoint_every = EVERY, .checkpoint_interval_ms = -1 };

	o->r = audit_open(o->db, E.kek, &ac, o->ret);
	return NULL;
}

/* Two servers start at once on an empty database: both may generate an audit key; they
 * must end up signing with the same one (test_two_servers checks their checkpoints). */
static int setup(void **state)
{
	uint8_t key[KEK_LEN];
	struct opener o1, o2;
	pthread_t t1, t2;

	(void)state;
	memset(key, 0x5a, sizeof(key));
	if (open_db(&E.db) < 0 || db_migrate(E.db, NULL) < 0 || open_db(&E.db2) < 0 ||
	    kek_new(key, sizeof(key), &E.kek) < 0)
		return -1;
	o1 = (struct opener){ E.db, &E.a, -1 };
	o2 = (struct opener){ E.db2, &E.a2, -1 };
	if (pthread_create(&t1, NULL, open_main, &o1) || pthread_create(&t2, NULL, open_main, &o2))
		return -1;
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	return o1.r < 0 || o2.r < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	E.a = audit_close(E.a);
	E.a2 = audit_close(E.a2);
	E.db = db_close(E.db);
	E.db2 = db_close(E.db2);
	E.kek = kek_free(E.kek);
	return 0;
}

/* Helpers ------------------------------------------------------------------------------ */

struct change {
	const char *tenant;
	const char *type;
	int n; /* records per change */
};

static int change_fn(struct db_tx *tx, void *ud)
{
	const struct change *c = ud;

	for (int i = 0; i < c->n; i++) {
		struct audit_entry e = { .tenant_id = c->tenant,
					 .type = c->type,
					 .actor = "tok_t test",
					 .resource = "things/1",
					 .data_json = "{\"k\":\"v \\\"q\\\" \\\\ {}\"}" };
		int r = audit_record(tx, &e);

		if (r < 0)
			return r;
	}
	return 0;
}

static void write_n(struct db *db, const char *tenant, const char *type, int n)
{
	struct change c = { tenant, type, 1 };

	for (int i = 0; i < n; i++)
		assert_int_equal(db_write(db, change_fn, &c, 10000), 0);
}

struct writer_arg {
	struct db *db;
	const char *tenant;
	int n;
	int failures;
};

static void *writer_main(void *p)
{
	struct writer_arg *w = p;
	struct change c = { w->tenant, "thing.written", 1 };

	for (int i = 0; i < w->n; i++)
		if (db_write(w->db, change_fn, &c, 30000) < 0)
			w->failures++;
	return NULL;
}

/* Runs threads writers (alternating between the two pools when two) of n writes each. */
static double run_writers(int threads, int n, bool two_pools, const char *tenant)
{
	pthread_t *t = calloc((size_t)threads, sizeof(*t));
	struct writer_arg *w = calloc((size_t)threads, sizeof(*w));
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < threads; i++) {
		w[i] = (struct writer_arg){ two_pools && i % 2 ? E.db2 : E.db, tenant, n, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	free(t);
	free(w);
	return (double)threads * n /
	       ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}

static void exec(const char *sql)
{
	struct db_conn *c = NULL;

	assert_int_equal(db_acquire(E.db, 5000, &c), 0);
	if (db_exec(c, sql, NULL, 0, NULL) < 0)
		fail_msg("statement failed: %s", sql);
	db_release(E.db, c);
}

static int64_t head_of(const char *tenant)
{
	struct audit_verify_result r;

	assert_int_equal(audit_verify(E.a, tenant, 0, 0, &r), 0);
	assert_true(r.ok);
	return r.head_sequence;
}

static void expect_ok(const char *tenant, int64_t checked)
{
	struct audit_verify_result r;

	assert_int_equal(audit_verify(E.a, tenant, 0, 0, &r), 0);
	if (!r.ok)
		fail_msg("chain broken at %" PRId64 ": %s", r.first_bad_sequence, r.detail);
	if (checked >= 0)
		assert_int_equal(r.checked, checked);
}

static void expect_bad(const char *tenant, int64_t seq, const char *what)
{
	struct audit_verify_result r;

	assert_int_equal(audit_verify(E.a, tenant, 0, 0, &r), 0);
	if (r.ok || r.first_bad_sequence != seq)
		fail_msg("%s: expected first bad %" PRId64 ", got ok=%d bad=%" PRId64 " (%s)", what,
			 seq, r.ok, r.first_bad_sequence, r.detail);
	printf("# %s -> bad at %" PRId64 ": %s\n", what, seq, r.detail);
}

/* Tests -------------------------------------------------------------------------------- */

static void test_concurrent_chain(void **state)
{
	struct change multi = { NULL, "multi.record", 3 };
	struct db_writer_stats st;
	struct audit_verify_result r;

	(void)state;
	run_writers(16, 100, false, NULL);
	assert_int_equal(db_write(E.db, change_fn, &multi, 10000), 0);
	expect_ok(NULL, 1603);
	assert_int_equal(audit_verify(E.a, NULL, 0, 0, &r), 0);
	assert_int_equal(r.checkpoints, 1603 / EVERY);
	db_writer_stats(E.db, &st);
	printf("# %" PRIu64 " changes in %" PRIu64 " batches, largest %" PRIu64 "\n", st.changes,
	       st.batches, st.max_batch);
	assert_true(st.max_batch > 1);
	/* A partial range verifies too. */
	assert_int_equal(audit_verify(E.a, NULL, 500, 800, &r), 0);
	assert_true(r.ok);
	assert_int_equal(r.checked, 301);
}

/* A refused change leaves no record and no gap. */
static int refuse_fn(struct db_tx *tx, void *ud)
{
	struct audit_entry e = { .type = "refused.change" };

	(void)ud;
	audit_record(tx, &e);
	return -EPERM;
}

static void test_refused_and_invalid(void **state)
{
	int64_t before = head_of(NULL);
	struct change bad_type = { NULL, "Bad Type", 1 };
	struct audit_entry denied = { .type = "auth.denied",
				      .actor = "tok_x",
				      .outcome = "denied",
				      .data_json = "{\"reason\":\"no policy\"}" };
	struct audit_entry bad_outcome = { .type = "auth.denied", .outcome = "nope" };
	struct audit_entry bad_json = { .type = "auth.denied", .data_json = "[1]" };
	struct audit_entry bad_utf8 = { .type = "auth.denied", .actor = "\xc0\x80" };
	struct audit_entry bad_tenant = { .tenant_id = "not-a-uuid", .type = "auth.denied" };

	(void)state;
	assert_int_equal(db_write(E.db, refuse_fn, NULL, 10000), -EPERM);
	assert_int_equal(db_write(E.db, change_fn, &bad_type, 10000), -EINVAL);
	assert_int_equal(audit_write(E.db, &bad_outcome, 10000), -EINVAL);
	assert_int_equal(audit_write(E.db, &bad_json, 10000), -EINVAL);
	assert_int_equal(audit_write(E.db, &bad_utf8, 10000), -EINVAL);
	assert_int_equal(audit_write(E.db, &bad_tenant, 10000), -EINVAL);
	write_n(E.db, NULL, "after.refusal", 1);
	assert_int_equal(audit_write(E.db, &denied, 10000), 0);
	assert_int_equal(head_of(NULL), before + 2);
	expect_ok(NULL, before + 2);
}

/* The commit hook: what it saw (copied: ev is borrowed for the call). */
struct seen {
	int64_t sequence;
	char tenant[AUDIT_UUID_LEN + 1];
	char id[AUDIT_UUID_LEN + 1];
	char type[32];
	uint8_t hash[AUDIT_HASH_LEN];
};
static struct seen seen[16];
static int n_seen;

static void on_commit(const struct audit_event *ev, void *ud)
{
	(void)ud;
	if (n_seen < 16) {
		struct seen *s = &seen[n_seen];

		s->sequence = ev->sequence;
		snprintf(s->tenant, sizeof(s->tenant), "%s", ev->tenant_id);
		snprintf(s->id, sizeof(s->id), "%s", ev->id);
		snprintf(s->type, sizeof(s->type), "%s", ev->type);
		memcpy(s->hash, ev->hash, AUDIT_HASH_LEN);
	}
	n_seen++;
}

/*
 * The commit hook sees every committed record once, numbered and chained as stored, in
 * order; a refused change's record never. Only the server whose writer committed it sees it.
 */
static void test_commit_hook(void **state)
{
	struct change three = { TENANT_E, "hook.three", 3 };
	struct audit_entry denied = {
		.tenant_id = TENANT_E, .type = "auth.denied", .actor = "tok_h", .outcome = "denied"
	};
	struct audit_query q = { .type_prefix = "hook.", .page_size = 10 };
	int64_t before = head_of(TENANT_E);
	struct audit_page *pg = NULL;

	(void)state;
	assert_int_equal(audit_set_commit_hook(E.a, on_commit, NULL), 0);
	n_seen = 0;
	assert_int_equal(db_write(E.db, change_fn, &three, 10000), 0);
	assert_int_equal(db_write(E.db, refuse_fn, NULL, 10000), -EPERM);
	assert_int_equal(audit_write(E.db, &denied, 10000), 0);
	write_n(E.db2, TENANT_E, "hook.other", 1); /* the other server's writer */
	assert_int_equal(n_seen, 4);
	q.after_sequence = before;
	assert_int_equal(audit_list(E.a, TENANT_E, &q, &pg), 0);
	assert_int_equal(pg->n, 4);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(seen[i].sequence, before + 1 + i);
		assert_string_equal(seen[i].tenant, TENANT_E);
		assert_string_equal(seen[i].type, "hook.three");
		assert_string_equal(seen[i].id, pg->events[i].id);
		assert_memory_equal(seen[i].hash, pg->events[i].hash, AUDIT_HASH_LEN);
	}
	assert_string_equal(seen[3].type, "auth.denied");
	audit_page_free(pg);

	assert_int_equal(audit_set_commit_hook(E.a, NULL, NULL), 0);
	write_n(E.db, TENANT_E, "hook.after", 1);
	assert_int_equal(n_seen, 4);
}

static const struct {
	const char *column;
	const char *set;
	const char *restore;
} tampers[] = {
	{ "actor", "actor = actor || 'x'", "actor = left(actor, -1)" },
	{ "type", "type = 'forged.type'", "type = 'thing.written'" },
	{ "time", "time = time + interval '1 microsecond'",
	  "time = time - interval '1 microsecond'" },
	{ "resource", "resource = 'things/2'", "resource = 'things/1'" },
	{ "outcome", "outcome = 'denied'", "outcome = 'ok'" },
	{ "data_json", "data_json = '{}'", "data_json = '{\"k\":\"v \\\"q\\\" \\\\ {}\"}'" },
	{ "id", "id = '99999999-9999-4999-8999-999999999999'", NULL },
	{ "prev_hash", "prev_hash = set_byte(prev_hash, 0, get_byte(prev_hash, 0) # 1)",
	  "prev_hash = set_byte(prev_hash, 0, get_byte(prev_hash, 0) # 1)" },
	{ "hash", "hash = set_byte(hash, 31, get_byte(hash, 31) # 128)",
	  "hash = set_byte(hash, 31, get_byte(hash, 31) # 128)" },
	{ "hash-length", "hash = hash || '\\x00'::bytea", "hash = substr(hash, 1, 32)" },
	{ "sequence", "sequence = sequence + 1000000", NULL },
	{ "tenant_id", "tenant_id = '" TENANT_C "'", NULL },
};

static void test_tamper_each_column(void **state)
{
	int64_t head = head_of(NULL);

	(void)state;
	for (size_t i = 0; i < sizeof(tampers) / sizeof(tampers[0]); i++) {
		int64_t k = 1 + (int64_t)((i * 137 + 11) % (uint64_t)(head - 1));
		char sql[512], id[64] = "";
		struct audit_query q = { .after_sequence = k - 1, .page_size = 1 };
		struct audit_page *p = NULL;

		if (strcmp(tampers[i].column, "data_json") == 0 ||
		    strcmp(tampers[i].column, "type") == 0 ||
		    strcmp(tampers[i].column, "actor") == 0)
			k = 1 + (int64_t)i; /* records written by change_fn (type thing.written) */
		assert_int_equal(audit_list(E.a, NULL, &q, &p), 0);
		assert_int_equal(p->n, 1);
		snprintf(id, sizeof(id), "%s", p->events[0].id);
		audit_page_free(p);

		snprintf(
			sql, sizeof(sql),
			"UPDATE audit_events SET %s WHERE tenant_id = '%s' AND sequence = %" PRId64,
			tampers[i].set, DB_DEFAULT_TENANT, k);
		exec(sql);
		expect_bad(NULL, k, tampers[i].column);
		if (tampers[i].restore) {
			snprintf(
				sql, sizeof(sql),
				"UPDATE audit_events SET %s WHERE tenant_id = '%s' AND sequence = %" PRId64,
				tampers[i].restore, DB_DEFAULT_TENANT, k);
		} else if (strcmp(tampers[i].column, "id") == 0) {
			snprintf(
				sql, sizeof(sql),
				"UPDATE audit_events SET id = '%s' WHERE tenant_id = '%s' AND sequence = %" PRId64,
				id, DB_DEFAULT_TENANT, k);
		} else if (strcmp(tampers[i].column, "sequence") == 0) {
			snprintf(sql, sizeof(sql),
				 "UPDATE audit_events SET sequence = %" PRId64
				 " WHERE tenant_id = '%s' AND sequence = %" PRId64,
				 k, DB_DEFAULT_TENANT, k + 1000000);
		} else {
			snprintf(
				sql, sizeof(sql),
				"UPDATE audit_events SET tenant_id = '%s' WHERE tenant_id = '" TENANT_C
				"' AND sequence = %" PRId64,
				DB_DEFAULT_TENANT, k);
		}
		exec(sql);
		expect_ok(NULL, head);
	}
}

static void test_checkpoint_tamper(void **state)
{
	int64_t head = head_of(NULL);

	(void)state;
	exec("UPDATE audit_checkpoints SET signature = set_byte(signature, 0, get_byte(signature, 0) # 1) "
	     "WHERE tenant_id = '00000000-0000-0000-0000-000000000000' AND sequence = 100");
	expect_bad(NULL, 100, "checkpoint signature");
	exec("UPDATE audit_checkpoints SET signature = set_byte(signature, 0, get_byte(signature, 0) # 1) "
	     "WHERE tenant_id = '00000000-0000-0000-0000-000000000000' AND sequence = 100");
	exec("UPDATE audit_checkpoints SET hash = set_byte(hash, 0, get_byte(hash, 0) # 1) "
	     "WHERE tenant_id = '00000000-0000-0000-0000-000000000000' AND sequence = 150");
	expect_bad(NULL, 150, "checkpoint hash");
	exec("UPDATE audit_checkpoints SET hash = set_byte(hash, 0, get_byte(hash, 0) # 1) "
	     "WHERE tenant_id = '00000000-0000-0000-0000-000000000000' AND sequence = 150");
	exec("UPDATE audit_checkpoints SET key_version = 7 "
	     "WHERE tenant_id = '00000000-0000-0000-0000-000000000000' AND sequence = 200");
	expect_bad(NULL, 200, "checkpoint key version");
	exec("UPDATE audit_checkpoints SET key_version = 1 "
	     "WHERE tenant_id = '00000000-0000-0000-0000-000000000000' AND sequence = 200");
	/* Rewriting a whole tail consistently (recomputed hashes) is caught by the checkpoint
	 * that covers it: simulated by moving the head record's hash and its checkpoint apart. */
	expect_ok(NULL, head);
	/* The timer's checkpoint of a head that moved. */
	assert_true(audit_checkpoint_now(E.a) >= 0);
	assert_int_equal(audit_checkpoint_now(E.a), 0);
	expect_ok(NULL, head);
}

static void test_delete(void **state)
{
	(void)state;
	write_n(E.db, TENANT_B, "b.event", 30);
	expect_ok(TENANT_B, 30);
	exec("DELETE FROM audit_events WHERE tenant_id = '" TENANT_B "' AND sequence = 17");
	expect_bad(TENANT_B, 17, "deleted record 17");
	exec("DELETE FROM audit_events WHERE tenant_id = '" TENANT_B "' AND sequence = 30");
	expect_bad(TENANT_B, 17, "deleted records 17 and 30");

	write_n(E.db, TENANT_C, "c.event", 5);
	exec("DELETE FROM audit_events WHERE tenant_id = '" TENANT_C "' AND sequence = 5");
	expect_bad(TENANT_C, 5, "deleted last record");
	exec("DELETE FROM audit_events WHERE tenant_id = '" TENANT_C "' AND sequence = 1");
	expect_bad(TENANT_C, 1, "deleted first record");
}

/* Deleting the newest records and checkpoints and moving the head back leaves a shorter
 * chain that passes every check on the tables; the witness file remembers the head. */
static void test_witness(void **state)
{
	char dir[] = "/tmp/trstctl-witness.XXXXXX", path[128], line[512];
	struct audit_config ac = { .checkpoint_interval_ms = -1 };
	struct audit_verify_result r;
	struct audit *w = NULL;
	struct stat st;
	FILE *f;
	int lines = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sub/checkpoints", dir);
	ac.checkpoint_file = path;
	assert_int_equal(audit_open(E.db, NULL, &ac, &w), 0); /* read-only: witnesses, verifies */
	write_n(E.db, TENANT_D, "d.event", 20);
	assert_true(audit_checkpoint_now(E.a) >= 1);
	assert_true(audit_witness_now(w) >= 1);
	assert_int_equal(audit_witness_now(w), 0); /* nothing newer: nothing written */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		lines += strstr(line, TENANT_D) != NULL;
	fclose(f);
	assert_int_equal(lines, 1);

	/* untouched: the witness matches */
	assert_int_equal(audit_verify(w, TENANT_D, 0, 0, &r), 0);
	assert_true(r.ok);
	assert_int_equal(r.witnessed, 20);
	assert_non_null(strstr(r.detail, "witnessed checkpoint (sequence 20, local file) matches"));

	/* the tail cut in the tables: the tables alone still verify, the witness does not */
	exec("DELETE FROM audit_events WHERE tenant_id = '" TENANT_D "' AND sequence > 12");
	exec("DELETE FROM audit_checkpoints WHERE tenant_id = '" TENANT_D "' AND sequence > 12");
	exec("UPDATE audit_head SET sequence = 12, hash = (SELECT hash FROM audit_events WHERE "
	     "tenant_id = '" TENANT_D "' AND sequence = 12) WHERE tenant_id = '" TENANT_D "'");
	expect_ok(TENANT_D, 12);
	assert_int_equal(audit_verify(w, TENANT_D, 0, 0, &r), 0);
	assert_false(r.ok);
	assert_int_equal(r.first_bad_sequence, 13);
	assert_non_null(strstr(r.detail, "records missing after sequence 12"));
	assert_non_null(strstr(r.detail, "expects the head at sequence 20"));
	printf("# truncated tail -> %s\n", r.detail);
	/* a head the witness does not move back: a new, lower checkpoint is not witnessed */
	assert_true(audit_checkpoint_now(E.a) >= 1);
	assert_int_equal(audit_witness_now(w) >= 0, 1);
	assert_int_equal(audit_verify(w, TENANT_D, 0, 0, &r), 0);
	assert_false(r.ok);

	/* new records past the cut: the chain reaches 20 again, with other hashes */
	write_n(E.db, TENANT_D, "d.again", 10);
	expect_ok(TENANT_D, 22);
	assert_int_equal(audit_verify(w, TENANT_D, 0, 0, &r), 0);
	assert_false(r.ok);
	assert_int_equal(r.first_bad_sequence, 20);
	assert_non_null(strstr(r.detail, "chain was rewritten"));

	/* a line that no audit key signed (another database's file) */
	f = fopen(path, "a");
	fprintf(f,
		"{\"tenant_id\":\"%s\",\"sequence\":21,\"hash\":\"%064d\",\"key_version\":1,"
		"\"signature\":\"%0128d\",\"time\":\"x\"}\n",
		TENANT_D, 0, 0);
	fprintf(f, "{\"tenant_id\":\"%s\",\"sequence\":99,\"cut", TENANT_D); /* crash mid-line */
	fclose(f);
	assert_int_equal(audit_verify(w, TENANT_D, 0, 0, &r), 0);
	assert_false(r.ok);
	assert_int_equal(r.first_bad_sequence, 21);
	assert_non_null(strstr(r.detail, "not signed by an audit key of this database"));

	/* no file (yet): nothing to compare, and detail says so */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(audit_verify(w, TENANT_D, 0, 0, &r), 0);
	assert_true(r.ok);
	assert_int_equal(r.witnessed, 0);
	assert_non_null(strstr(r.detail, "holds no witness"));
	audit_close(w);
	rmdir(dirname(path));
	rmdir(dir);
}

static void test_two_servers(void **state)
{
	int64_t before = head_of(NULL);
	double rate;

	(void)state;
	rate = run_writers(16, 100, true, NULL);
	printf("# two pools, 16 writers: %.0f audited writes/s\n", rate);
	expect_ok(NULL, before + 1600);
}

/* Live tail ------------------------------------------------------------------------- */

struct watch_state {
	int64_t last;
	int64_t got;
	int64_t want;
	int dups_or_gaps;
	int polls;
};

static int watch_send(const struct audit_event *ev, void *ud)
{
	struct watch_state *w = ud;

	if (ev->sequence != w->last + 1)
		w->dups_or_gaps++;
	w->last = ev->sequence;
	w->got++;
	return 0;
}

static bool watch_wait(void *ud, int timeout_ms)
{
	struct watch_state *w = ud;
	struct timespec ts = { 0, (long)timeout_ms * 1000000 };

	w->polls++;
	if (w->got >= w->want)
		return true;
	nanosleep(&ts, NULL);
	return w->polls > 500;
}

struct watch_thread {
	struct watch_state w;
	int64_t after;
	int r;
};

static void *watch_main(void *p)
{
	struct watch_thread *t = p;

	t->r = audit_watch(E.a2, NULL, t->after, NULL, 20, watch_send, watch_wait, &t->w);
	return NULL;
}

static void test_watch_switch(void **state)
{
	int64_t head = head_of(NULL);
	struct watch_thread t = { .after = head - 2500 };
	pthread_t th;

	(void)state;
	/* 2500 records of history (three pages of 1000), then 600 written live while the tail
	 * runs, from both pools. */
	t.w.last = t.after;
	t.w.want = 2500 + 600;
	assert_int_equal(pthread_create(&th, NULL, watch_main, &t), 0);
	run_writers(6, 100, true, NULL);
	pthread_join(th, NULL);
	assert_int_equal(t.r, 0);
	assert_int_equal(t.w.dups_or_gaps, 0);
	assert_int_equal(t.w.got, 3100);
	assert_int_equal(t.w.last, head + 600);
	printf("# watch: %" PRId64 " records, %d polls\n", t.w.got, t.w.polls);
}

static void test_list_paging(void **state)
{
	struct audit_query q = { .type_prefix = "b.", .page_size = 7 };
	struct audit_page *p = NULL;
	char *tok = NULL;
	int64_t total = 0, last = 0;

	(void)state;
	do {
		q.page_token = tok;
		assert_int_equal(audit_list(E.a, TENANT_B, &q, &p), 0);
		for (size_t i = 0; i < p->n; i++) {
			assert_true(p->events[i].sequence > last);
			assert_string_equal(p->events[i].type, "b.event");
			last = p->events[i].sequence;
		}
		total += (int64_t)p->n;
		free(tok);
		tok = p->next_page_token ? strdup(p->next_page_token) : NULL;
		p = audit_page_free(p);
	} while (tok);
	assert_int_equal(total, 28); /* 30 written, 2 deleted */

	q = (struct audit_query){ .page_token = "abc" };
	assert_int_equal(audit_list(E.a, NULL, &q, &p), -EINVAL);
	q.page_token = "-5";
	assert_int_equal(audit_list(E.a, NULL, &q, &p), -EINVAL);
	q.page_token = "99999999999999999999";
	assert_int_equal(audit_list(E.a, NULL, &q, &p), -EINVAL);
	q = (struct audit_query){ .after_sequence = -1 };
	assert_int_equal(audit_list(E.a, NULL, &q, &p), -EINVAL);
	q = (struct audit_query){ .type_prefix = "no.such." };
	assert_int_equal(audit_list(E.a, NULL, &q, &p), 0);
	assert_int_equal(p->n, 0);
	assert_null(p->next_page_token);
	audit_page_free(p);
}

/* audit_recent_outcome: counts by type and the newest records, within the window only. */
static void test_recent_outcome(void **state)
{
	static const struct {
		const char *type, *outcome;
	} recs[] = { { "secret.created", "ok" },    { "auth.denied", "denied" },
		     { "auth.denied", "denied" },   { "policy.denied", "denied" },
		     { "auth.denied", "denied" },   { "policy.denied", "denied" },
		     { "secret.rotated", "ok" } };
	struct audit_recent *r = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
		struct audit_entry e = { .tenant_id = TENANT_F, .type = recs[i].type,
					 .outcome = recs[i].outcome, .resource = "secret/x" };

		assert_true(audit_write(E.db, &e, 10000) >= 0);
	}
	assert_int_equal(audit_recent_outcome(E.a, TENANT_F, "denied", 100, 2, &r), 0);
	assert_int_equal(r->scanned, 7);
	assert_int_equal(r->total, 5);
	assert_int_equal(r->n_types, 2);
	assert_string_equal(r->types[0].type, "auth.denied");
	assert_int_equal(r->types[0].n, 3);
	assert_string_equal(r->types[1].type, "policy.denied");
	assert_int_equal(r->types[1].n, 2);
	assert_int_equal(r->n_events, 2);
	assert_int_equal(r->events[0].sequence, 6);
	assert_string_equal(r->events[0].type, "policy.denied");
	assert_int_equal(r->events[1].sequence, 5);
	r = audit_recent_free(r);
	/* only the last two records: one denial */
	assert_int_equal(audit_recent_outcome(E.a, TENANT_F, "denied", 2, 10, &r), 0);
	assert_int_equal(r->scanned, 2);
	assert_int_equal(r->total, 1);
	assert_int_equal(r->n_events, 1);
	assert_int_equal(r->events[0].sequence, 6);
	r = audit_recent_free(r);
	/* an empty chain, and bad arguments */
	assert_int_equal(audit_recent_outcome(E.a, TENANT_G, "denied", 100, 10, &r), 0);
	assert_int_equal(r->scanned, 0);
	assert_int_equal(r->total, 0);
	assert_int_equal(r->n_events, 0);
	r = audit_recent_free(r);
	assert_int_equal(audit_recent_outcome(E.a, TENANT_F, "denied", 0, 10, &r), -EINVAL);
	assert_int_equal(audit_recent_outcome(E.a, "nope", "denied", 10, 10, &r), -EINVAL);
	assert_int_equal(audit_recent_outcome(E.a, TENANT_F, "denied", 10, -1, &r), -EINVAL);
}

static void test_key_reopen(void **state)
{
	uint8_t other[KEK_LEN];
	struct kek *wrong = NULL;
	struct audit *a = NULL;
	struct audit_config ac = { .checkpoint_interval_ms = -1 };
	int r;

	(void)state;
	memset(other, 0x33, sizeof(other));
	assert_int_equal(kek_new(other, sizeof(other), &wrong), 0);
	r = audit_open(E.db, wrong, &ac, &a);
	assert_true(r == -ENOKEY || r == -EBADMSG);
	assert_null(a);
	kek_free(wrong);
	/* Swapping the sealed blob into another row is refused (aad binds the version). */
	exec("UPDATE sealed_keys SET version = 2 WHERE kind = 'audit'");
	assert_int_equal(audit_open(E.db, E.kek, &ac, &a), -EBADMSG);
	exec("UPDATE sealed_keys SET version = 1 WHERE kind = 'audit'");
	/* Read-only verification needs no KEK. */
	assert_int_equal(audit_open(E.db, NULL, NULL, &a), 0);
	{
		struct audit_verify_result res;

		assert_int_equal(audit_verify(a, NULL, 0, 0, &res), 0);
		assert_true(res.ok);
		assert_true(res.checkpoints > 0);
	}
	a = audit_close(a);
	/* The hook of E.a is still the one registered (read-only open registers none). */
	write_n(E.db, NULL, "after.reopen", 1);
	expect_ok(NULL, -1);
}

/* After audit_close, a change that carries an audit record is refused, never committed
 * without it; one without records still commits. */
static int plain_fn(struct db_tx *tx, void *ud)
{
	(void)ud;
	return db_tx_exec(tx, "SELECT 1", NULL, 0, NULL);
}

static void test_closed(void **state)
{
	struct audit_config ac = { .checkpoint_interval_ms = -1 };
	struct change c = { NULL, "after.close", 1 };
	struct db *db = NULL;
	struct audit *a = NULL;
	int64_t before = head_of(NULL);

	(void)state;
	assert_int_equal(open_db(&db), 0);
	assert_int_equal(audit_open(db, E.kek, &ac, &a), 0);
	assert_int_equal(db_write(db, change_fn, &c, 10000), 0);
	a = audit_close(a);
	assert_int_equal(db_write(db, change_fn, &c, 10000), -ESHUTDOWN);
	assert_int_equal(db_write(db, plain_fn, NULL, 10000), 0);
	db_close(db);
	expect_ok(NULL, before + 1);
}

static void test_throughput(void **state)
{
	static const int inflight[] = { 1, 16, 64 };

	(void)state;
	for (size_t i = 0; i < sizeof(inflight) / sizeof(inflight[0]); i++) {
		int n = inflight[i] == 1 ? 300 : 6400 / inflight[i];
		double rate = run_writers(inflight[i], n, false, NULL);

		printf("# %d in flight: %.0f durable audited writes/s\n", inflight[i], rate);
	}
	expect_ok(NULL, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_chain),
		cmocka_unit_test(test_refused_and_invalid),
		cmocka_unit_test(test_commit_hook),
		cmocka_unit_test(test_tamper_each_column),
		cmocka_unit_test(test_checkpoint_tamper),
		cmocka_unit_test(test_delete),
		cmocka_unit_test(test_witness),
		cmocka_unit_test(test_two_servers),
		cmocka_unit_test(test_watch_switch),
		cmocka_unit_test(test_list_paging),
		cmocka_unit_test(test_recent_outcome),
		cmocka_unit_test(test_key_reopen),
		cmocka_unit_test(test_closed),
		cmocka_unit_test(test_throughput),
	};

	if (!getenv("TRSTCTL_POSTGRES_DSN")) {
		printf("SKIP: TRSTCTL_POSTGRES_DSN not set (run through run-with-pg.sh)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
