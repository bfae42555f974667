/*
 * CreateIdentity's batched path against a real PostgreSQL (run-with-pg.sh): creates held
 * behind a gate in the group-commit writer so that they form one batch in a known order, and
 * the create hook (ca_store_ident.c) deciding each of them: good creates beside ones whose
 * owner is missing, two creates with one request_id (the first wins, the second gets its
 * reply), a request_id reused for another request, an owner deleted while the batch waits
 * for its lock, and a batch that runs twice (a later hook fails it once with -EAGAIN).
 * Whatever a refused create asked for leaves nothing: no row, no audit record, no event,
 * no stored reply.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit.h"
#include "bus.h"
#include "ca-internal.h"
#include "db.h"
#include "kek.h"

#define METHOD "/trstctl.v1.CA/CreateIdentity"
#define NOBODY "00000000-0000-4000-8000-00000000dead" /* no such owner */

static struct {
	struct db *db;
	struct kek *kek;
	struct audit *audit;
	struct bus *bus;
	struct ca_service *svc;
	char owner[CA_ID_LEN + 1];
} E;

/* Helpers ------------------------------------------------------------------------------- */

static int64_t sql_count(const char *sql, const char *arg)
{
	struct db_conn *c = NULL;
	struct db_rows *rows = NULL;
	struct db_param p = DB_TEXT(arg);
	int64_t n;

	assert_int_equal(db_acquire(E.db, 5000, &c), 0);
	assert_true(db_exec(c, sql, &p, arg ? 1 : 0, &rows) >= 0);
	n = strtoll(db_rows_get(rows, 0, 0), NULL, 10);
	db_rows_free(rows);
	db_release(E.db, c);
	return n;
}

/* What a create of name left behind: identities, audit records, events, stored replies. */
static void assert_left(const char *name, int64_t n)
{
	char like[160];

	snprintf(like, sizeof(like), "%%\"name\":\"%s\"%%", name);
	assert_int_equal(sql_count("SELECT count(*) FROM identities WHERE name = $1", name), n);
	assert_int_equal(sql_count("SELECT count(*) FROM audit_events WHERE type = "
				   "'identity.created' AND data_json LIKE $1",
				   like),
			 n);
	assert_int_equal(sql_count("SELECT count(*) FROM outbox WHERE type = 'identity.created' "
				   "AND convert_from(payload, 'UTF8') LIKE $1",
				   like),
			 n);
}

/* The reply a create stores: a stand-in for the protobuf one, enough to compare. */
static int pack_identity(const void *result, uint8_t **ret, size_t *ret_len, void *ud)
{
	const struct ca_identity *i = result;
	char *s = NULL;
	int n;

	(void)ud;
	n = asprintf(&s, "%s|%s|%s|%lld", i->id, i->name, i->owner_id, (long long)i->create_time);
	if (n < 0)
		return -ENOMEM;
	*ret = (uint8_t *)s;
	*ret_len = (size_t)n;
	return 0;
}

/* One CreateIdentity on a thread of its own. */
struct creator {
	const char *name, *owner, *request_id; /* request_id NULL: none */
	int result;
	char err[CA_ERR_LEN];
	char id[CA_ID_LEN + 1];
	uint8_t *reply; /* its own reply packed, or the replayed one */
	size_t reply_len;
	pthread_t th;
};

static void *create_thread(void *p)
{
	struct creator *c = p;
	struct change_key key = { .principal = "tester",
				  .method = METHOD,
				  .request_id = c->request_id };
	struct ca_ctx ctx = {
		.actor = "tester", .key = &key, .pack = pack_identity, .timeout_ms = 20000
	};
	struct ca_identity_spec s = { .kind = "", .name = c->name, .owner_id = c->owner };
	struct ca_identity out = { 0 };
	char req[256];

	/* the request's bytes: its name and owner */
	/* no cmocka assertion on this thread: the test checks result after the join */
	snprintf(req, sizeof(req), "%s|%s", c->name, c->owner);
	c->result = change_fingerprint(NULL, req, strlen(req), &key);
	if (c->result < 0)
		return NULL;
	c->result = ca_identity_create(E.svc, &ctx, &s, &out);
	snprintf(c->err, sizeof(c->err), "%s", ctx.err);
	if (c->result == 0) {
		snprintf(c->id, sizeof(c->id), "%s", out.id);
		if (pack_identity(&out, &c->reply, &c->reply_len, NULL) < 0)
			c->result = -ENOMEM;
		ca_identity_clear(&out);
	} else if (c->result == 1) {
		c->reply = ctx.replayed;
		c->reply_len = ctx.replayed_len;
		ctx.replayed = NULL;
	}
	ca_ctx_clear(&ctx);
	return NULL;
}

/* Holds the writer until released (or 10 s): changes queued meanwhile form the next batch. */
struct gate {
	atomic_bool running, release;
	int result;
	pthread_t th;
};

static int gate_change(struct db_tx *tx, void *ud)
{
	struct gate *g = ud;

	(void)tx;
	atomic_store(&g->running, true);
	for (int ms = 0; !atomic_load(&g->release) && ms < 10000; ms++)
		usleep(1000);
	return 0;
}

static void *gate_thread(void *p)
{
	struct gate *g = p;

	g->result = db_write(E.db, gate_change, g, 20000);
	return NULL;
}

/* A change of the batch that only attaches an item of kind (the retry test's hook). */
struct extra {
	int kind;
	int result;
	pthread_t th;
};

static int extra_change(struct db_tx *tx, void *ud)
{
	struct extra *x = ud;

	return db_tx_attach(tx, x->kind, x, NULL);
}

static void *extra_thread(void *p)
{
	struct extra *x = p;

	x->result = db_write(E.db, extra_change, x, 20000);
	return NULL;
}

/* Waits until the writer's queue holds n changes. */
static void wait_queued(size_t n)
{
	for (int ms = 0; db_writer_queued(E.db) < n; ms++) {
		assert_true(ms < 10000);
		usleep(1000);
	}
}

/*
 * Runs the creates as one batch, in order, behind a gate (then x's change, when x); between
 * queueing and releasing, meanwhile(ud) when given. Asserts that they shared one batch.
 */
static void run_as_batch(struct creator *c, size_t n, struct extra *x, void (*meanwhile)(void *ud),
			 void *ud)
{
	struct gate g = { 0 };
	struct db_writer_stats before, after;

	db_writer_stats(E.db, &before);
	pthread_create(&g.th, NULL, gate_thread, &g);
	while (!atomic_load(&g.running))
		usleep(500);
	for (size_t i = 0; i < n; i++) {
		pthread_create(&c[i].th, NULL, create_thread, &c[i]);
		wait_queued(i + 1);
	}
	if (x) {
		pthread_create(&x->th, NULL, extra_thread, x);
		wait_queued(n + 1);
	}
	if (meanwhile)
		meanwhile(ud);
	atomic_store(&g.release, true);
	pthread_join(g.th, NULL);
	assert_int_equal(g.result, 0);
	for (size_t i = 0; i < n; i++)
		pthread_join(c[i].th, NULL);
	if (x)
		pthread_join(x->th, NULL);
	db_writer_stats(E.db, &after);
	assert_int_equal(after.batches - before.batches, 2); /* the gate's and theirs */
}

static void creators_free(struct creator *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(c[i].reply);
}

static void unique(char *buf, size_t len, const char *what)
{
	static int seq;

	snprintf(buf, len, "%s-%d-%d", what, (int)getpid(), ++seq);
}

/* Setup --------------------------------------------------------------------------------- */

static int setup(void **state)
{
	struct audit_config ac = { .checkpoint_interval_ms = -1 };
	struct db_config dc = { .dsn = getenv("TRSTCTL_POSTGRES_DSN"),
				.max_conns = 8,
				.connect_timeout_ms = 5000 };
	struct ca_config cc = { .max_ttl_seconds = 90 * 86400, .crl_interval_ms = 3600000 };
	struct ca_ctx ctx = { 0 };
	struct ca_owner o = { 0 };
	uint8_t key[KEK_LEN];

	(void)state;
	memset(key, 7, sizeof(key));
	if (kek_new(key, sizeof(key), &E.kek) < 0 || db_open(&dc, &E.db) < 0 ||
	    db_migrate(E.db, NULL) < 0 || bus_open(E.db, NULL, &E.bus) < 0 ||
	    audit_open(E.db, E.kek, &ac, &E.audit) < 0 ||
	    ca_service_open(E.db, E.kek, E.bus, &cc, &E.svc) < 0)
		return -1;
	if (ca_owner_create(E.svc, &ctx, "team", "batch-owner", "", &o) < 0)
		return -1;
	snprintf(E.owner, sizeof(E.owner), "%s", o.id);
	ca_owner_clear(&o);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	E.svc = ca_service_close(E.svc);
	E.audit = audit_close(E.audit);
	E.bus = bus_close(E.bus);
	E.db = db_close(E.db);
	E.kek = kek_free(E.kek);
	return 0;
}

/* Tests --------------------------------------------------------------------------------- */

/* Good creates and creates of a missing owner in one batch: each gets its own answer. */
static void test_mixed_batch(void **state)
{
	char names[6][64], want[128];
	struct creator c[6];
	struct ca_identity cached = { 0 };

	(void)state;
	for (int i = 0; i < 6; i++)
		unique(names[i], sizeof(names[i]), "mixed");
	c[0] = (struct creator){ .name = names[0], .owner = E.owner, .request_id = "mixed-a" };
	c[1] = (struct creator){ .name = names[1], .owner = E.owner };
	c[2] = (struct creator){ .name = names[2], .owner = NOBODY };
	c[3] = (struct creator){ .name = names[3], .owner = E.owner, .request_id = "mixed-d" };
	c[4] = (struct creator){ .name = names[4], .owner = NOBODY, .request_id = "mixed-e" };
	c[5] = (struct creator){ .name = names[5], .owner = E.owner };
	run_as_batch(c, 6, NULL, NULL, NULL);
	snprintf(want, sizeof(want), "owner %s not found", NOBODY);
	for (int i = 0; i < 6; i++) {
		bool good = c[i].owner == E.owner;

		if (!good) {
			assert_int_equal(c[i].result, -ENOENT);
			assert_string_equal(c[i].err, want);
			assert_left(names[i], 0);
			continue;
		}
		assert_int_equal(c[i].result, 0);
		assert_left(names[i], 1);
		assert_int_equal(sql_count("SELECT count(*) FROM identities WHERE id = $1 AND "
					   "state = 'requested' AND key_type = 'ecdsa-p256'",
					   c[i].id),
				 1);
		/* the identity cache has it (an issuance starts from it) */
		assert_int_equal(
			change_guess_get(E.svc->idents, DB_DEFAULT_TENANT, c[i].id, &cached), 0);
		assert_string_equal(cached.name, names[i]);
		ca_identity_clear(&cached);
	}
	/* the stored replies are the creates' own, and nothing for the refused one */
	for (int i = 0; i < 4; i += 3)
		assert_int_equal(
			sql_count("SELECT count(*) FROM idempotency WHERE request_id IN "
				  "('mixed-a', 'mixed-d') AND reply = convert_to($1, 'UTF8')",
				  (const char *)c[i].reply),
			1);
	assert_int_equal(
		sql_count("SELECT count(*) FROM idempotency WHERE request_id = $1", "mixed-e"), 0);
	creators_free(c, 6);
}

/*
 * Two creates with one request_id in one batch: the first is written, the second answers
 * with its stored reply; a third that reuses the request_id for another request is told so.
 */
static void test_twins_in_batch(void **state)
{
	char name[64], other[64], good[64];
	struct creator c[4];

	(void)state;
	unique(name, sizeof(name), "twin");
	unique(other, sizeof(other), "twin-other");
	unique(good, sizeof(good), "twin-good");
	c[0] = (struct creator){ .name = name, .owner = E.owner, .request_id = "twin-1" };
	c[1] = (struct creator){ .name = good, .owner = E.owner };
	c[2] = (struct creator){ .name = name, .owner = E.owner, .request_id = "twin-1" };
	c[3] = (struct creator){ .name = other, .owner = E.owner, .request_id = "twin-1" };
	run_as_batch(c, 4, NULL, NULL, NULL);
	assert_int_equal(c[0].result, 0);
	assert_int_equal(c[1].result, 0);
	assert_int_equal(c[2].result, 1);
	assert_int_equal(c[2].reply_len, c[0].reply_len);
	assert_memory_equal(c[2].reply, c[0].reply, c[0].reply_len);
	assert_int_equal(c[3].result, -EINVAL);
	assert_string_equal(c[3].err, "request_id twin-1 was used for a different request; use "
				      "a new request_id for a new request");
	assert_left(name, 1);
	assert_left(good, 1);
	assert_left(other, 0);
	assert_int_equal(
		sql_count("SELECT count(*) FROM idempotency WHERE request_id = $1", "twin-1"), 1);
	creators_free(c, 4);
	/* a retry in a later batch: the stored reply, nothing written */
	c[0] = (struct creator){ .name = name, .owner = E.owner, .request_id = "twin-1" };
	c[1] = (struct creator){ .name = good, .owner = E.owner, .request_id = "twin-2" };
	run_as_batch(c, 2, NULL, NULL, NULL);
	assert_int_equal(c[0].result, 1);
	assert_int_equal(c[1].result, 0);
	assert_left(name, 1);
	assert_left(good, 2);
	creators_free(c, 2);
}

/* A transaction that deletes an owner, holding its row while the batch runs. */
struct deleter {
	const char *owner;
	bool commit;
	struct db_conn *conn;
	int result; /* of the COMMIT or ROLLBACK */
	pthread_t th;
};

static void *delete_end(void *ud)
{
	struct deleter *d = ud;

	usleep(300 * 1000); /* the batch waits for the owner's row meanwhile */
	d->result = db_exec(d->conn, d->commit ? "COMMIT" : "ROLLBACK", NULL, 0, NULL);
	return NULL;
}

/* Deletes the owner in a transaction left open; delete_end ends it on its own thread. */
static void delete_meanwhile(void *ud)
{
	struct deleter *d = ud;
	struct db_param p = DB_TEXT(d->owner);

	assert_int_equal(db_acquire(E.db, 5000, &d->conn), 0);
	assert_true(db_exec(d->conn, "BEGIN", NULL, 0, NULL) >= 0);
	assert_true(db_exec(d->conn, "DELETE FROM owners WHERE id = $1", &p, 1, NULL) >= 0);
	pthread_create(&d->th, NULL, delete_end, d);
}

/*
 * An owner being deleted while the batch locks it: rolled back, its creates are written;
 * committed, they are refused (NOT_FOUND) and the rest of the batch is written.
 */
static void test_owner_deleted_meanwhile(void **state)
{
	struct ca_ctx ctx = { 0 };
	struct ca_owner o = { 0 };
	char names[3][64], oname[64], want[128];
	struct creator c[3];

	(void)state;
	unique(oname, sizeof(oname), "doomed");
	assert_int_equal(ca_owner_create(E.svc, &ctx, "user", oname, "", &o), 0);
	for (int commit = 0; commit < 2; commit++) {
		struct deleter d = { .owner = o.id, .commit = commit };

		for (int i = 0; i < 3; i++)
			unique(names[i], sizeof(names[i]), "doomed-ident");
		c[0] = (struct creator){ .name = names[0], .owner = o.id };
		c[1] = (struct creator){ .name = names[1], .owner = E.owner };
		c[2] = (struct creator){ .name = names[2], .owner = o.id };
		run_as_batch(c, 3, NULL, delete_meanwhile, &d);
		pthread_join(d.th, NULL);
		assert_true(d.result >= 0);
		db_release(E.db, d.conn);
		assert_int_equal(c[1].result, 0);
		assert_left(names[1], 1);
		snprintf(want, sizeof(want), "owner %s not found", o.id);
		for (int i = 0; i < 3; i += 2) {
			assert_int_equal(c[i].result, commit ? -ENOENT : 0);
			if (commit)
				assert_string_equal(c[i].err, want);
			assert_left(names[i], commit ? 0 : 1);
		}
		creators_free(c, 3);
		if (!commit) /* the owner can go once its identities went */
			assert_int_equal(
				sql_count("WITH d AS (DELETE FROM identities WHERE "
					  "owner_id = $1 RETURNING 1) SELECT count(*) FROM d",
					  o.id),
				2);
	}
	ca_owner_clear(&o);
}

static atomic_int retry_calls;

static int fail_once_hook(struct db_conn *conn, void *const *items, size_t n, int *results,
			  void *ud)
{
	(void)conn, (void)items, (void)n, (void)results, (void)ud;
	return atomic_fetch_add(&retry_calls, 1) == 0 ? -EAGAIN : 0;
}

/* A batch that runs twice (a serialization failure after the create hook wrote): once. */
static void test_batch_retried(void **state)
{
	char names[3][64];
	struct creator c[3];
	struct extra x = { 0 };

	(void)state;
	assert_int_equal(db_add_precommit(E.db, fail_once_hook, NULL, &x.kind), 0);
	assert_true(x.kind > E.svc->create_kind); /* runs after the create hook */
	for (int i = 0; i < 3; i++)
		unique(names[i], sizeof(names[i]), "retried");
	c[0] = (struct creator){ .name = names[0], .owner = E.owner, .request_id = "retried-a" };
	c[1] = (struct creator){ .name = names[1], .owner = NOBODY };
	c[2] = (struct creator){ .name = names[2], .owner = E.owner };
	run_as_batch(c, 3, &x, NULL, NULL);
	assert_int_equal(atomic_load(&retry_calls), 2);
	assert_int_equal(x.result, 0);
	assert_int_equal(c[0].result, 0);
	assert_int_equal(c[1].result, -ENOENT);
	assert_int_equal(c[2].result, 0);
	assert_left(names[0], 1);
	assert_left(names[1], 0);
	assert_left(names[2], 1);
	assert_int_equal(
		sql_count("SELECT count(*) FROM idempotency WHERE request_id = $1", "retried-a"),
		1);
	assert_int_equal(db_set_precommit(E.db, x.kind, NULL, NULL), 0);
	creators_free(c, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mixed_batch),
		cmocka_unit_test(test_twins_in_batch),
		cmocka_unit_test(test_owner_deleted_meanwhile),
		cmocka_unit_test(test_batch_retried),
	};

	if (!getenv("TRSTCTL_POSTGRES_DSN")) {
		printf("SKIP: TRSTCTL_POSTGRES_DSN not set (run through run-with-pg.sh)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
