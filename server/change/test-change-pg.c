/*
 * The change room against a real PostgreSQL (TRSTCTL_POSTGRES_DSN, from run-with-pg.sh):
 * the idempotency table through change_run, table-driven (first call, the same bytes again,
 * other bytes, another principal, another method, a bad request_id), a crash between the
 * commit and the reply (a second server with its own pool gets the committed reply), two
 * servers racing one key, audit + event attachment, a failed apply leaving nothing, and the
 * purge.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit.h"
#include "bus.h"
#include "change.h"
#include "kek.h"

#define TENANT DB_DEFAULT_TENANT
#define METHOD "/trstctl.v1.Test/Count"

struct env {
	struct db *db, *db2; /* two servers: two pools, each with its own writer */
	struct kek *kek;
	struct audit *a, *a2;
	struct bus *b, *b2;
};
static struct env E;

static int open_server(struct db **db, struct audit **a, struct bus **b)
{
	struct db_config c = { .dsn = getenv("TRSTCTL_POSTGRES_DSN"),
			       .max_conns = 8,
			       .connect_timeout_ms = 5000 };
	struct audit_config ac = { .checkpoint_interval_ms = -1 };

	if (db_open(&c, db) < 0 || db_migrate(*db, NULL) < 0)
		return -1;
	if (audit_open(*db, E.kek, &ac, a) < 0 || bus_open(*db, NULL, b) < 0)
		return -1;
	return 0;
}

static int exec(struct db *db, const char *sql, struct db_rows **ret)
{
	struct db_conn *c = NULL;
	int r = db_acquire(db, 5000, &c);

	if (r >= 0)
		r = db_exec(c, sql, NULL, 0, ret);
	db_release(db, c);
	return r;
}

static int64_t count(const char *sql)
{
	struct db_rows *rows = NULL;
	int64_t n = -1;

	if (exec(E.db, sql, &rows) >= 0)
		n = strtoll(db_rows_get(rows, 0, 0), NULL, 10);
	db_rows_free(rows);
	return n;
}

static int setup(void **state)
{
	uint8_t key[KEK_LEN];

	(void)state;
	memset(key, 0x33, sizeof(key));
	if (kek_new(key, sizeof(key), &E.kek) < 0 || open_server(&E.db, &E.a, &E.b) < 0 ||
	    open_server(&E.db2, &E.a2, &E.b2) < 0)
		return -1;
	return exec(E.db,
		    "CREATE TABLE IF NOT EXISTS change_test (k text PRIMARY KEY, n int NOT NULL)",
		    NULL) < 0 ?
		       -1 :
		       0;
}

static int teardown(void **state)
{
	(void)state;
	E.b = bus_close(E.b);
	E.b2 = bus_close(E.b2);
	E.a = audit_close(E.a);
	E.a2 = audit_close(E.a2);
	E.db = db_close(E.db);
	E.db2 = db_close(E.db2);
	E.kek = kek_free(E.kek);
	return 0;
}

/* The domain of the test: a counter per k, bumped by every change that runs. */
struct counter {
	const char *k;
	int fail;	  /* apply returns this (after writing) when negative */
	int n;		  /* the counter's value after this change */
	int runs;	  /* how often apply ran */
};

static int count_apply(struct db_tx *tx, void *ud, char *err, size_t errlen)
{
	struct counter *c = ud;
	struct db_param p[1] = { DB_TEXT(c->k) };
	struct db_rows *rows = NULL;
	struct change_record rec = { .type = "test.counted", .actor = "tok_test tester",
				     .resource = c->k, .data_json = "{\"k\":1}" };
	int r;

	c->runs++;
	r = db_tx_exec(tx,
		       "INSERT INTO change_test (k, n) VALUES ($1, 1) ON CONFLICT (k) DO UPDATE "
		       "SET n = change_test.n + 1 RETURNING n",
		       p, 1, &rows);
	if (r < 0)
		return r;
	c->n = atoi(db_rows_get(rows, 0, 0));
	db_rows_free(rows);
	r = change_record(tx, &rec);
	if (r >= 0 && c->fail < 0) {
		snprintf(err, errlen, "refused by the test");
		return c->fail;
	}
	return r;
}

static int count_pack(void *ud, uint8_t **ret, size_t *ret_len)
{
	struct counter *c = ud;
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "%s=%d", c->k, c->n);

	*ret = malloc((size_t)n);
	if (!*ret)
		return -ENOMEM;
	memcpy(*ret, buf, (size_t)n);
	*ret_len = (size_t)n;
	return 0;
}

/* Runs one change on db: the request's bytes are body. */
static int run(struct db *db, struct bus *b, const char *principal, const char *method,
	       const char *rid, const char *body, struct counter *c, struct change *ch)
{
	struct change_key *key = malloc(sizeof(*key));

	*key = (struct change_key){ .tenant = TENANT, .principal = principal, .method = method,
				    .request_id = rid };
	assert_int_equal(change_fingerprint(NULL, body, strlen(body), key), 0);
	*ch = (struct change){ .db = db, .bus = b, .key = key, .apply = count_apply,
			       .pack = count_pack, .ud = c };
	return change_run(ch);
}

static void done(struct change *ch)
{
	free((void *)ch->key);
	change_clear(ch);
}

/* The table of the idempotency rules: each row runs after the ones before it. */
static void test_table(void **state)
{
	static const struct {
		const char *what, *principal, *method, *rid, *body;
		int want;	  /* change_run's result */
		int want_n;	  /* the counter after it */
		const char *reply; /* the reply the caller sees, NULL: none */
		const char *err;   /* part of the message, for errors */
	} cases[] = {
		{ "first call runs", "tok_a", METHOD, "r-1", "body-1", 0, 1, "t1=1", NULL },
		{ "same bytes: the stored reply", "tok_a", METHOD, "r-1", "body-1", 1, 1, "t1=1",
		  NULL },
		{ "other bytes: refused", "tok_a", METHOD, "r-1", "body-2", -EINVAL, 1, NULL,
		  "request_id r-1 was used for a different request" },
		{ "another principal's request_id is a new key", "tok_b", METHOD, "r-1",
		  "body-2", 0, 2, "t1=2", NULL },
		{ "and its retry sees its own reply", "tok_b", METHOD, "r-1", "body-2", 1, 2,
		  "t1=2", NULL },
		{ "another method is a new key", "tok_a", "/trstctl.v1.Test/Other", "r-1",
		  "body-1", 0, 3, "t1=3", NULL },
		{ "no request_id: runs every time", "tok_a", METHOD, "", "body-1", 0, 4, NULL,
		  NULL },
		{ "no request_id again", "tok_a", METHOD, NULL, "body-1", 0, 5, NULL, NULL },
		{ "a request_id with a space", "tok_a", METHOD, "r 1", "body-1", -EINVAL, 5, NULL,
		  "request_id must be printable ASCII" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct counter c = { .k = "t1" };
		struct change ch;
		int r = run(E.db, E.b, cases[i].principal, cases[i].method, cases[i].rid,
			    cases[i].body, &c, &ch);

		print_message("case %zu: %s -> %d (%s)\n", i, cases[i].what, r, ch.err);
		assert_int_equal(r, cases[i].want);
		assert_int_equal(count("SELECT n FROM change_test WHERE k = 't1'"),
				 cases[i].want_n);
		if (cases[i].want == 1) {
			assert_int_equal(c.runs, 0);
			assert_int_equal(ch.replayed_len, strlen(cases[i].reply));
			assert_memory_equal(ch.replayed, cases[i].reply, ch.replayed_len);
		}
		if (cases[i].err)
			assert_non_null(strstr(ch.err, cases[i].err));
		done(&ch);
	}
}

/* The commit happened, the reply was lost (the server died): a retry on another server
 * (its own pool) gets the committed reply and nothing runs again. */
static void test_crash_between_commit_and_reply(void **state)
{
	struct counter c = { .k = "t2" }, c2 = { .k = "t2" };
	struct change ch, ch2;

	(void)state;
	assert_int_equal(run(E.db, E.b, "tok_a", METHOD, "crash-1", "x", &c, &ch), 0);
	done(&ch); /* the reply never reached the client */
	assert_int_equal(run(E.db2, E.b2, "tok_a", METHOD, "crash-1", "x", &c2, &ch2), 1);
	assert_int_equal(c2.runs, 0);
	assert_int_equal(ch2.replayed_len, 4);
	assert_memory_equal(ch2.replayed, "t2=1", 4);
	assert_int_equal(count("SELECT n FROM change_test WHERE k = 't2'"), 1);
	done(&ch2);
}

/* A refused apply leaves nothing: no row, no audit record, no event, no stored reply, and
 * the same key may then run. */
static void test_failed_apply_leaves_nothing(void **state)
{
	struct counter c = { .k = "t3", .fail = -EPERM }, c2 = { .k = "t3" };
	struct change ch;
	int64_t audits = count("SELECT count(*) FROM audit_events");
	int64_t events = count("SELECT count(*) FROM outbox");

	(void)state;
	assert_int_equal(run(E.db, E.b, "tok_a", METHOD, "fail-1", "x", &c, &ch), -EPERM);
	assert_string_equal(ch.err, "refused by the test");
	done(&ch);
	assert_int_equal(count("SELECT count(*) FROM change_test WHERE k = 't3'"), 0);
	assert_int_equal(count("SELECT count(*) FROM audit_events"), audits);
	assert_int_equal(count("SELECT count(*) FROM outbox"), events);
	assert_int_equal(count("SELECT count(*) FROM idempotency WHERE request_id = 'fail-1'"),
			 0);
	assert_int_equal(run(E.db, E.b, "tok_a", METHOD, "fail-1", "x", &c2, &ch), 0);
	done(&ch);
	/* the one that ran left one audit record and one event, with the change's type */
	assert_int_equal(count("SELECT count(*) FROM audit_events"), audits + 1);
	assert_int_equal(count("SELECT count(*) FROM outbox WHERE type = 'test.counted'") > 0, 1);
	assert_int_equal(count("SELECT count(*) FROM idempotency WHERE request_id = 'fail-1' "
			       "AND principal = 'tok_a' AND method = '" METHOD "' AND "
			       "octet_length(fingerprint) = 32"),
			 1);
}

struct racer {
	struct db *db;
	struct bus *b;
	const char *rid;
	struct counter c;
	struct change ch;
	int r;
};

static void *race_main(void *p)
{
	struct racer *x = p;

	x->r = run(x->db, x->b, "tok_a", METHOD, x->rid, "race", &x->c, &x->ch);
	return NULL;
}

/* Two servers send the same key at once, many times: exactly one change commits each
 * time, and both callers get its reply. */
static void test_two_servers_race(void **state)
{
	(void)state;
	for (int i = 0; i < 40; i++) {
		char rid[32];
		struct racer x1 = { .db = E.db, .b = E.b, .rid = rid, .c = { .k = "t4" } };
		struct racer x2 = { .db = E.db2, .b = E.b2, .rid = rid, .c = { .k = "t4" } };
		pthread_t t1, t2;
		int64_t before = count("SELECT coalesce(max(n), 0) FROM change_test WHERE k='t4'");

		snprintf(rid, sizeof(rid), "race-%d", i);
		pthread_create(&t1, NULL, race_main, &x1);
		pthread_create(&t2, NULL, race_main, &x2);
		pthread_join(t1, NULL);
		pthread_join(t2, NULL);
		assert_true(x1.r >= 0 && x2.r >= 0);
		assert_true(x1.r + x2.r == 1); /* one ran (0), one replayed (1) */
		assert_int_equal(count("SELECT n FROM change_test WHERE k = 't4'"), before + 1);
		{
			struct racer *ran = x1.r == 0 ? &x1 : &x2, *rep = x1.r == 0 ? &x2 : &x1;
			char want[32];
			int n = snprintf(want, sizeof(want), "t4=%d", ran->c.n);

			assert_int_equal(rep->ch.replayed_len, (size_t)n);
			assert_memory_equal(rep->ch.replayed, want, (size_t)n);
		}
		done(&x1.ch);
		done(&x2.ch);
	}
}

/* Keyed fingerprints differ from plain ones and from other keys' (nothing guessable). */
static void test_fingerprint(void **state)
{
	struct change_key a = { 0 }, b = { 0 };

	(void)state;
	assert_int_equal(change_fingerprint(NULL, "v", 1, &a), 0);
	assert_int_equal(change_fingerprint(E.kek, "v", 1, &b), 0);
	assert_memory_not_equal(a.fingerprint, b.fingerprint, CHANGE_FP_LEN);
	/* SHA-256("v") */
	assert_int_equal(a.fingerprint[0], 0x4c);
	assert_int_equal(a.fingerprint[1], 0x94);
}

/* Replies older than the retention are purged; newer ones stay; the purger counts. */
static void test_purge(void **state)
{
	struct counter c = { .k = "t5" };
	struct change ch;
	struct change_purger *p = NULL;
	int64_t n = -1;

	(void)state;
	for (int i = 0; i < 3; i++) {
		char rid[16];

		snprintf(rid, sizeof(rid), "old-%d", i);
		assert_int_equal(run(E.db, E.b, "tok_p", METHOD, rid, "x", &c, &ch), 0);
		done(&ch);
	}
	assert_int_equal(run(E.db, E.b, "tok_p", METHOD, "new-0", "x", &c, &ch), 0);
	done(&ch);
	assert_int_equal(exec(E.db, "UPDATE idempotency SET created_at = now() - interval "
				    "'25 hours' WHERE request_id LIKE 'old-%'",
			      NULL),
			 0);
	assert_int_equal(change_purge(E.db, CHANGE_RETENTION_DEFAULT_S, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(count("SELECT count(*) FROM idempotency WHERE principal = 'tok_p'"), 1);
	/* a purged key is new again */
	assert_int_equal(run(E.db, E.b, "tok_p", METHOD, "old-0", "y", &c, &ch), 0);
	done(&ch);
	assert_int_equal(exec(E.db, "UPDATE idempotency SET created_at = now() - interval "
				    "'2 days' WHERE principal = 'tok_p'",
			      NULL),
			 0);
	assert_int_equal(change_purger_start(E.db, CHANGE_RETENTION_DEFAULT_S, 50, &p), 0);
	for (int i = 0; i < 200 && change_purger_count(p) < 2; i++)
		usleep(10000);
	assert_int_equal(change_purger_count(p), 2);
	p = change_purger_stop(p);
	assert_int_equal(change_purge(E.db, 0, &n), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_crash_between_commit_and_reply),
		cmocka_unit_test(test_failed_apply_leaves_nothing),
		cmocka_unit_test(test_two_servers_race),
		cmocka_unit_test(test_fingerprint),
		cmocka_unit_test(test_purge),
	};

	if (!getenv("TRSTCTL_POSTGRES_DSN")) {
		printf("SKIP: TRSTCTL_POSTGRES_DSN is not set (run under run-with-pg.sh)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
