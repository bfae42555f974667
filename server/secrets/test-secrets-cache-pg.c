/*
 * The GetSecret read cache of trstctl.v1.Secrets, served on loopback over a real
 * PostgreSQL (the fixture: test-secrets-pg-env.c): every kind of change is seen at once on
 * the same server; a second store on its own struct db (a second server) sees a rotation
 * and a deletion within 2 s and never returns a value that does not belong to its version;
 * a rotation that starts from a stale guess of this server's metadata reads the row and
 * goes on; when the second server's listener's backend is killed, a change made meanwhile
 * is still seen and caching resumes once it listens again; finally the scan of the log,
 * the audit table and the outbox for every value written.
 */
#include "test-secrets-pg.h"

/* Read cache ------------------------------------------------------------------------ */

static struct secrets_cache_stats cstats(struct secrets *s)
{
	struct secrets_cache_stats st;

	secrets_read_stats(s, &st);
	return st;
}

/* Waits (up to 5 s) until s's listener is up and its cache in use. */
static void wait_cache_on(struct secrets *s)
{
	for (int i = 0; i < 500 && !cstats(s).enabled; i++)
		usleep(10000);
	assert_true(cstats(s).enabled);
}

/* Gets name through the served store and checks code, version and value (value NULL: any). */
static void get_is(const char *name, int64_t version, int code, int64_t want_version,
		   const char *value)
{
	struct res r = c_get(name, version);

	if (r.code != code)
		fail_msg("GetSecret %s v%lld: code %d (%s), want %d", name, (long long)version,
			 r.code, r.msg, code);
	if (code == 0) {
		assert_int_equal(r.version, want_version);
		assert_int_equal(r.value_len, strlen(value));
		assert_memory_equal(r.value, value, r.value_len);
	}
}

static void test_cache_same_server(void **state)
{
	const char *v1 = new_value("cache1"), *v2 = new_value("cache2");
	uint64_t hits;
	struct res r;

	(void)state;
	wait_cache_on(E.s);
	assert_int_equal(c_create("cache/a", v1, strlen(v1), NULL, NULL).code, 0);
	get_is("cache/a", 0, 0, 1, v1);
	get_is("cache/a", 1, 0, 1, v1);
	/* answered from the cache (the change's own notification, delivered after its
	 * commit, may drop the entry once more: allow a few rounds) */
	for (int i = 0; i < 100; i++) {
		hits = cstats(E.s).hits;
		get_is("cache/a", 0, 0, 1, v1);
		get_is("cache/a", 1, 0, 1, v1);
		if (cstats(E.s).hits >= hits + 2)
			break;
		usleep(10000);
	}
	assert_true(cstats(E.s).hits >= hits + 2);

	/* rotate: the very next read is the new version, also as a cache hit afterwards */
	assert_int_equal(c_rotate("cache/a", v2, strlen(v2), 0, NULL).version, 2);
	get_is("cache/a", 0, 0, 2, v2);
	for (int i = 0; i < 100; i++) {
		hits = cstats(E.s).hits;
		get_is("cache/a", 0, 0, 2, v2);
		if (cstats(E.s).hits > hits)
			break;
		usleep(10000);
	}
	assert_true(cstats(E.s).hits > hits);
	get_is("cache/a", 1, 0, 1, v1);

	/* delete: NOT_FOUND at once, for the current and explicit versions */
	assert_int_equal(c_simple("delete", "cache/a", 0, NULL).code, 0);
	r = c_get("cache/a", 0);
	assert_int_equal(r.code, 5);
	assert_non_null(strstr(r.msg, "is deleted"));
	assert_int_equal(c_get("cache/a", 1).code, 5);

	/* recover: readable again */
	assert_int_equal(c_simple("recover", "cache/a", 0, NULL).code, 0);
	get_is("cache/a", 0, 0, 2, v2);
	get_is("cache/a", 0, 0, 2, v2);

	/* destroy the current version (cached): NOT_FOUND destroyed; version 1 stays */
	assert_int_equal(c_simple("destroy", "cache/a", 2, NULL).code, 0);
	r = c_get("cache/a", 0);
	assert_int_equal(r.code, 5);
	assert_non_null(strstr(r.msg, "was destroyed"));
	assert_int_equal(c_get("cache/a", 2).code, 5);
	get_is("cache/a", 1, 0, 1, v1);

	/* a retention destroy through another store's rotation (s3, same database) */
	assert_int_equal(c_create("cache/ret", v1, strlen(v1), NULL, NULL).code, 0);
	get_is("cache/ret", 1, 0, 1, v1);
	get_is("cache/ret", 1, 0, 1, v1);
	for (int i = 0; i < 3; i++) {
		struct secrets_ctx ctx = { .actor = "test" };
		struct secrets_meta m = { 0 };

		assert_int_equal(secrets_rotate(E.s3, &ctx, "cache/ret", (const uint8_t *)v2,
						strlen(v2), 0, &m),
				 0);
		secrets_meta_clear(&m);
	}
	/* s learns it from the notification: poll up to 2 s */
	for (int i = 0; i < 200 && c_get("cache/ret", 1).code == 0; i++)
		usleep(10000);
	assert_int_equal(c_get("cache/ret", 1).code, 5);
}

/* A second server: its own pool and listener on the same database. */
struct server2 {
	struct db *db;
	struct secrets *s;
};

static void server2_open(struct server2 *b)
{
	struct db_config dc = { .dsn = getenv("TRSTCTL_POSTGRES_DSN"),
				.max_conns = 4,
				.connect_timeout_ms = 5000 };

	assert_int_equal(db_open(&dc, &b->db), 0);
	assert_int_equal(secrets_open(b->db, E.kek, NULL, NULL, &b->s), 0);
	wait_cache_on(b->s);
}

static void server2_close(struct server2 *b)
{
	b->s = secrets_close(b->s);
	b->db = db_close(b->db);
}

/* Reads name on b: returns the version (0 when not found); the value must be the one
 * written for that version (vals[version - 1]). */
static int64_t read2(struct server2 *b, const char *name, const char *const *vals, size_t n)
{
	struct secrets_ctx ctx = { 0 };
	struct secrets_value v = { 0 };
	int r = secrets_get(b->s, &ctx, name, 0, &v);
	int64_t ver;

	if (r == -ENOENT)
		return 0;
	if (r != 0)
		fail_msg("second server: %s: %d %s", name, r, ctx.err);
	ver = v.version;
	assert_true(ver >= 1 && (size_t)ver <= n);
	assert_int_equal(v.n, strlen(vals[ver - 1]));
	assert_memory_equal(v.value, vals[ver - 1], v.n);
	secrets_value_clear(&v);
	return ver;
}

static void test_cache_second_server(void **state)
{
	const char *vals[] = { new_value("srv2a"), new_value("srv2b") };
	struct server2 b = { 0 };
	int64_t ver = 0;
	uint64_t hits;
	int i;

	(void)state;
	server2_open(&b);
	assert_int_equal(c_create("cache/b", vals[0], strlen(vals[0]), NULL, NULL).code, 0);
	assert_int_equal(read2(&b, "cache/b", vals, 2), 1);
	/* the second server caches it; the create's notification may reach its listener
	 * after that first read and drop the entry once, so allow a few reads */
	for (i = 0; i < 100; i++) {
		hits = cstats(b.s).hits;
		assert_int_equal(read2(&b, "cache/b", vals, 2), 1);
		if (cstats(b.s).hits > hits)
			break;
		usleep(10000);
	}
	assert_true(i < 100);

	assert_int_equal(c_rotate("cache/b", vals[1], strlen(vals[1]), 0, NULL).version, 2);
	for (i = 0; i < 200 && (ver = read2(&b, "cache/b", vals, 2)) != 2; i++)
		usleep(10000);
	assert_int_equal(ver, 2);
	print_message("# second server saw the rotation after %d polls of 10 ms\n", i);
	assert_int_equal(read2(&b, "cache/b", vals, 2), 2); /* and stays there */

	assert_int_equal(c_simple("delete", "cache/b", 0, NULL).code, 0);
	for (i = 0; i < 200 && (ver = read2(&b, "cache/b", vals, 2)) != 0; i++)
		usleep(10000);
	assert_int_equal(ver, 0);
	server2_close(&b);
}

/*
 * A rotation on the server that last wrote a secret starts from that server's metadata;
 * when another server rotated meanwhile, the hook refuses the guess and the rotation reads
 * the row and goes on: versions stay gap-free, expected_version and request_id still hold.
 */
static void test_guess_second_server(void **state)
{
	const char *v = new_value("guess");
	struct secrets_ctx ctx = { .actor = "test" };
	struct secrets_meta m = { 0 };
	struct server2 b = { 0 };
	struct res r1, r2;

	(void)state;
	server2_open(&b);
	assert_int_equal(c_create("guess/a", v, strlen(v), NULL, NULL).code, 0);
	assert_int_equal(secrets_rotate(b.s, &ctx, "guess/a", (const uint8_t *)v, strlen(v), 0, &m),
			 0);
	assert_int_equal(m.version, 2);
	secrets_meta_clear(&m);
	/* this server guessed 1: refused, read 2, wrote 3 */
	assert_int_equal(c_rotate("guess/a", v, strlen(v), 0, NULL).version, 3);
	assert_int_equal(c_rotate("guess/a", v, strlen(v), 3, NULL).version, 4);
	assert_int_equal(secrets_rotate(b.s, &ctx, "guess/a", (const uint8_t *)v, strlen(v), 0, &m),
			 0);
	assert_int_equal(m.version, 5);
	secrets_meta_clear(&m);
	/* the guess (4) agrees with expected_version, the row does not */
	r1 = c_rotate("guess/a", v, strlen(v), 4, NULL);
	assert_int_equal(r1.code, RPC_FAILED_PRECONDITION);
	assert_string_equal(r1.msg, "expected version 4, current is 5");
	/* a retried request_id is answered from its stored reply */
	r1 = c_rotate("guess/a", v, strlen(v), 0, "guess-r1");
	r2 = c_rotate("guess/a", v, strlen(v), 0, "guess-r1");
	assert_int_equal(r1.code, 0);
	assert_int_equal(r2.code, 0);
	assert_int_equal(r1.version, 6);
	assert_int_equal(r2.version, 6);
	assert_int_equal(count("SELECT count(*) FROM secret_versions WHERE name = 'guess/a'"), 6);
	assert_int_equal(count("SELECT max(version) FROM secret_versions WHERE name = 'guess/a'"),
			 6);
	server2_close(&b);
}

static void test_cache_listener_lost(void **state)
{
	const char *vals[] = { new_value("lost1"), new_value("lost2"), new_value("lost3") };
	struct server2 b = { 0 };
	char sql[128];
	uint64_t hits;
	int pid, i;

	(void)state;
	server2_open(&b);
	assert_int_equal(c_create("cache/c", vals[0], strlen(vals[0]), NULL, NULL).code, 0);
	assert_int_equal(read2(&b, "cache/c", vals, 3), 1);
	assert_int_equal(read2(&b, "cache/c", vals, 3), 1);
	assert_true(cstats(b.s).entries >= 1);

	/* kill the listener's backend, then change the secret before it can listen again
	 * (reconnection waits at least 100 ms): the notification is lost for sure */
	pid = db_listen_backend_pid(b.s->listen);
	assert_true(pid > 0);
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid);
	exec(sql);
	assert_int_equal(c_rotate("cache/c", vals[1], strlen(vals[1]), 0, NULL).version, 2);
	/* whatever the listener's state, the answer is never older than that change once
	 * the loss was noticed; once it listens again the cache is fresh */
	for (i = 0; i < 500; i++) {
		int now = db_listen_backend_pid(b.s->listen);

		if (now > 0 && now != pid && cstats(b.s).enabled)
			break;
		usleep(10000);
	}
	assert_true(i < 500);
	assert_int_equal(read2(&b, "cache/c", vals, 3), 2);

	/* caching resumed: hits again, and notifications arrive again */
	hits = cstats(b.s).hits;
	assert_int_equal(read2(&b, "cache/c", vals, 3), 2);
	assert_true(cstats(b.s).hits > hits);
	assert_int_equal(c_rotate("cache/c", vals[2], strlen(vals[2]), 0, NULL).version, 3);
	for (i = 0; i < 200 && read2(&b, "cache/c", vals, 3) != 3; i++)
		usleep(10000);
	assert_int_equal(read2(&b, "cache/c", vals, 3), 3);
	server2_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache_same_server),
		cmocka_unit_test(test_cache_second_server),
		cmocka_unit_test(test_guess_second_server),
		cmocka_unit_test(test_cache_listener_lost),
		cmocka_unit_test(test_no_values_anywhere),
	};

	if (!getenv("TRSTCTL_POSTGRES_DSN")) {
		printf("SKIP: TRSTCTL_POSTGRES_DSN is not set (run through run-with-pg.sh)\n");
		return 77;
	}
	E.scan_min_rows = 10; /* fewer changes here than in test-secrets-pg.c */
	return cmocka_run_group_tests(tests, setup, teardown);
}
