/*
 * trstctl.v1.Secrets served on loopback (plaintext, kernel-chosen port) over a real
 * PostgreSQL with the audit chain and the outbox hooks, called with libtrstctl (the fixture:
 * test-secrets-pg-env.c):
 *   - every rule of issue 7 as a table of steps (code, message, version);
 *   - retention through the domain API with a limit of 3;
 *   - check-and-set races: 16 rotators, versions gap-free, each rotation won once or
 *     failed cleanly; 16 rotators without a check all win, again gap-free;
 *   - seal binding: sealed bytes copied onto another row -> DATA_LOSS and a log line;
 *   - idempotent retries with the same request_id;
 *   - finally a scan of the log, the audit table and the outbox for every value written.
 * The read cache is tested in test-secrets-cache-pg.c.
 */
#include "test-secrets-pg.h"

/* Rules, as a table ---------------------------------------------------------------- */

enum step_op { CREATE, ROTATE, GET, DELETE, RECOVER, DESTROY, VERSIONS, LIST, LISTDEL };

struct step {
	enum step_op op;
	const char *name;
	int64_t arg;	  /* version / expected_version / page size */
	int value;	  /* index into vals[] (-1 = none; -2 = MAX_VALUE + 1 bytes; -3 = MAX) */
	int code;	  /* expected gRPC code */
	const char *msg;  /* substring of the message, or NULL */
	int64_t version;  /* expected version (or count for lists), -1 = don't check */
	int same_as;	  /* GET: expected value index, -1 = none */
	const char *text; /* VERSIONS / LIST: expected listing, or NULL */
};

static void test_rules(void **state)
{
	static const struct step steps[] = {
		/* create and names */
		{ CREATE, "app/db/password", 0, 0, 0, NULL, 1, -1, NULL },
		{ CREATE, "app/db/password", 0, 1, 6, "already exists; rotate it instead", -1, -1, NULL },
		{ CREATE, "", 0, 1, 3, "1-256 bytes", -1, -1, NULL },
		{ CREATE, "a b", 0, 1, 3, "[A-Za-z0-9._/-]", -1, -1, NULL },
		{ CREATE, "a//b", 0, 1, 3, "empty segment", -1, -1, NULL },
		{ CREATE, "/a", 0, 1, 3, "empty segment", -1, -1, NULL },
		{ CREATE, "a/../b", 0, 1, 3, "\"..\"", -1, -1, NULL },
		{ CREATE, "app/big", 0, -2, 8, "more than the maximum of 4096", -1, -1, NULL },
		{ CREATE, "app/max", 0, -3, 0, NULL, 1, -1, NULL },
		{ GET, "app/max", 0, -1, 0, NULL, 1, -3, NULL },
		/* get */
		{ GET, "app/db/password", 0, -1, 0, NULL, 1, 0, NULL },
		{ GET, "app/db/password", 1, -1, 0, NULL, 1, 0, NULL },
		{ GET, "app/db/password", 2, -1, 5, "has no version 2", -1, -1, NULL },
		{ GET, "app/db/password", -1, -1, 3, "version must be >= 0", -1, -1, NULL },
		{ GET, "app/none", 0, -1, 5, "secret \"app/none\" not found", -1, -1, NULL },
		{ GET, "a//b", 0, -1, 3, "empty segment", -1, -1, NULL },
		/* rotate and check-and-set */
		{ ROTATE, "app/db/password", 1, 1, 0, NULL, 2, -1, NULL },
		{ ROTATE, "app/db/password", 1, 2, 9, "expected version 1, current is 2", -1, -1, NULL },
		{ VERSIONS, "app/db/password", 0, -1, 0, NULL, 2, -1, "1e,2e" },
		{ ROTATE, "app/db/password", 0, 2, 0, NULL, 3, -1, NULL },
		{ ROTATE, "app/db/password", 3, -2, 8, "more than the maximum", -1, -1, NULL },
		{ ROTATE, "app/db/password", -1, 2, 3, "expected_version must be >= 0", -1, -1, NULL },
		{ ROTATE, "app/none", 0, 2, 5, "not found", -1, -1, NULL },
		{ GET, "app/db/password", 0, -1, 0, NULL, 3, 2, NULL },
		{ GET, "app/db/password", 1, -1, 0, NULL, 1, 0, NULL },
		{ GET, "app/db/password", 2, -1, 0, NULL, 2, 1, NULL },
		/* destroy */
		{ DESTROY, "app/db/password", 1, -1, 0, NULL, 3, -1, NULL },
		{ GET, "app/db/password", 1, -1, 5, "version 1 of secret \"app/db/password\" was destroyed", -1, -1, NULL },
		{ DESTROY, "app/db/password", 1, -1, 9, "already destroyed", -1, -1, NULL },
		{ DESTROY, "app/db/password", 9, -1, 5, "has no version 9", -1, -1, NULL },
		{ DESTROY, "app/db/password", 0, -1, 3, "version must be >= 1", -1, -1, NULL },
		{ DESTROY, "app/none", 1, -1, 5, "not found", -1, -1, NULL },
		{ VERSIONS, "app/db/password", 0, -1, 0, NULL, 3, -1, "1d,2e,3e" },
		{ VERSIONS, "app/none", 0, -1, 5, "not found", -1, -1, NULL },
		/* delete and recover */
		{ DELETE, "app/db/password", 0, -1, 0, NULL, 3, -1, NULL },
		{ GET, "app/db/password", 0, -1, 5, "is deleted", -1, -1, NULL },
		{ GET, "app/db/password", 2, -1, 5, "is deleted", -1, -1, NULL },
		{ ROTATE, "app/db/password", 0, 3, 5, "is deleted", -1, -1, NULL },
		{ DELETE, "app/db/password", 0, -1, 9, "already deleted", -1, -1, NULL },
		{ CREATE, "app/db/password", 0, 3, 6, "deleted; recover it instead", -1, -1, NULL },
		{ LIST, "app/", 0, -1, 0, NULL, 1, -1, "app/max" },
		{ LISTDEL, "app/", 0, -1, 0, NULL, 2, -1, "app/db/password,app/max" },
		{ RECOVER, "app/db/password", 0, -1, 0, NULL, 3, -1, NULL },
		{ RECOVER, "app/db/password", 0, -1, 9, "is not deleted", -1, -1, NULL },
		{ RECOVER, "app/none", 0, -1, 5, "not found", -1, -1, NULL },
		{ GET, "app/db/password", 0, -1, 0, NULL, 3, 2, NULL },
		/* list arguments */
		{ LIST, "app", 0, -1, 0, NULL, 2, -1, "app/db/password,app/max" },
		{ LIST, "ap p", 0, -1, 3, "prefix must be", -1, -1, NULL },
		{ LIST, "", -1, -1, 3, "page_size must be >= 0", -1, -1, NULL },
	};
	const char *vals[4];
	char big[MAX_VALUE + 2];
	int64_t audits0 = count("SELECT count(*) FROM audit_events WHERE type LIKE 'secret.%'");
	int64_t ok_writes = 0;

	(void)state;
	for (int i = 0; i < 4; i++)
		vals[i] = new_value("rule");
	memset(big, 'B', sizeof(big));
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		const struct step *t = &steps[i];
		const char *v = t->value >= 0 ? vals[t->value] : big;
		size_t vl = t->value >= 0 ? strlen(v) : t->value == -2 ? MAX_VALUE + 1 : MAX_VALUE;
		int64_t before = count("SELECT count(*) FROM secret_versions");
		struct res r;

		switch (t->op) {
		case CREATE: r = c_create(t->name, v, vl, NULL, NULL); break;
		case ROTATE: r = c_rotate(t->name, v, vl, t->arg, NULL); break;
		case GET: r = c_get(t->name, t->arg); break;
		case DELETE: r = c_simple("delete", t->name, 0, NULL); break;
		case RECOVER: r = c_simple("recover", t->name, 0, NULL); break;
		case DESTROY: r = c_simple("destroy", t->name, t->arg, NULL); break;
		case VERSIONS: r = c_versions(t->name); break;
		case LIST: r = c_list(t->name, (int)t->arg, NULL, false); break;
		default: r = c_list(t->name, (int)t->arg, NULL, true); break;
		}
		if (r.code != t->code)
			fail_msg("step %zu: code %d (%s), want %d", i, r.code, r.msg, t->code);
		if (t->msg && !strstr(r.msg, t->msg))
			fail_msg("step %zu: message \"%s\" lacks \"%s\"", i, r.msg, t->msg);
		if (t->version >= 0 && r.version != t->version)
			fail_msg("step %zu: version %" PRId64 ", want %" PRId64, i, r.version,
				 t->version);
		if (t->same_as != -1) {
			const char *w = t->same_as >= 0 ? vals[t->same_as] : big;
			size_t wl = t->same_as >= 0 ? strlen(w) : MAX_VALUE;

			if (r.value_len != wl || memcmp(r.value, w, wl) != 0)
				fail_msg("step %zu: wrong value", i);
		}
		if (t->text && strcmp(r.value, t->text) != 0)
			fail_msg("step %zu: listing \"%s\", want \"%s\"", i, r.value, t->text);
		/* a refused rotation or creation writes nothing */
		if (t->code != 0 && (t->op == ROTATE || t->op == CREATE))
			assert_int_equal(count("SELECT count(*) FROM secret_versions"), before);
		if (t->code == 0 && t->op != GET && t->op != VERSIONS && t->op != LIST &&
		    t->op != LISTDEL)
			ok_writes++;
	}
	/* exactly one audit record per change that succeeded */
	assert_int_equal(count("SELECT count(*) FROM audit_events WHERE type LIKE 'secret.%'"),
			 audits0 + ok_writes);
}

static void test_labels_and_paging(void **state)
{
	const char *const labels[] = { "team", "payments", "env", "prod", NULL };
	const char *const bad[] = { "bad key", "x", NULL };
	char name[64], token[600] = "";
	struct res r;
	int pages = 0, total = 0;

	(void)state;
	r = c_create("lab/one", "label-value-xyz1", 16, NULL, labels);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.labels, "env=prod,team=payments");
	r = c_create("lab/two", "label-value-xyz2", 16, NULL, bad);
	assert_int_equal(r.code, 3);
	assert_non_null(strstr(r.msg, "label key"));
	for (int i = 0; i < 25; i++) {
		snprintf(name, sizeof(name), "page/s%02d", i);
		assert_int_equal(c_create(name, new_value("page"), 27, NULL, NULL).code, 0);
	}
	assert_int_equal(c_create("page2/x", new_value("page"), 27, NULL, NULL).code, 0);
	do {
		r = c_list("page/", 10, token, false);
		assert_int_equal(r.code, 0);
		total += (int)r.version;
		pages++;
		snprintf(token, sizeof(token), "%s", r.msg);
		if (pages == 1)
			assert_true(strncmp(r.value, "page/s00,page/s01", 17) == 0);
	} while (token[0] && pages < 10);
	assert_int_equal(pages, 3);
	assert_int_equal(total, 25);
	r = c_list("page/", 10, "not a token", false);
	assert_int_equal(r.code, 3);
	assert_string_equal(r.msg, "invalid page_token");
}

/* Retention through the domain API: a limit of 3 destroys older values on rotate. */
static void test_retention(void **state)
{
	struct secrets_ctx ctx = { .actor = "test" };
	struct secrets_meta m = { 0 };
	struct secrets_value v = { 0 };
	const char *val;

	(void)state;
	val = new_value("ret");
	assert_int_equal(secrets_create(E.s3, &ctx, "ret/x", (const uint8_t *)val, strlen(val),
					NULL, 0, &m), 0);
	secrets_meta_clear(&m);
	for (int i = 0; i < 5; i++) {
		val = new_value("ret");
		assert_int_equal(secrets_rotate(E.s3, &ctx, "ret/x", (const uint8_t *)val,
						strlen(val), 0, &m), 0);
		assert_int_equal(m.version, i + 2);
		secrets_meta_clear(&m);
	}
	assert_string_equal(c_versions("ret/x").value, "1d,2d,3d,4e,5e,6e");
	assert_int_equal(secrets_get(E.s3, &ctx, "ret/x", 4, &v), 0);
	secrets_value_clear(&v);
	assert_int_equal(secrets_get(E.s3, &ctx, "ret/x", 3, &v), -ENOENT);
	assert_non_null(strstr(ctx.err, "destroyed"));
	assert_int_equal(count("SELECT count(*) FROM secret_versions WHERE name = 'ret/x' AND "
			       "sealed IS NULL AND destroyed_at IS NOT NULL"), 3);
	/* audited with the newest version each rotation's retention destroyed */
	assert_int_equal(count("SELECT count(*) FROM audit_events WHERE type = 'secret.rotated' "
			       "AND resource = 'secrets/ret/x' AND "
			       "data_json LIKE '%\"retention_destroys_through\":%'"), 3);
	assert_int_equal(count("SELECT count(*) FROM audit_events WHERE type = 'secret.rotated' "
			       "AND resource = 'secrets/ret/x' AND data_json LIKE "
			       "'%\"version\":6,\"retention_destroys_through\":3%'"), 1);
}

/* Races ------------------------------------------------------------------------------ */

#define RACERS 16
#define ROUNDS 6

struct racer {
	int id;
	bool cas;
	int won, lost, other;
	int64_t won_versions[ROUNDS];
	const char *won_values[ROUNDS];
};

static void *race(void *p)
{
	struct racer *r = p;

	for (int i = 0; i < ROUNDS; i++) {
		const char *v = new_value("race");
		int64_t expected = 0;
		struct res x;

		if (r->cas) {
			x = c_get("race/cas", 0);
			expected = x.version;
		}
		x = c_rotate(r->cas ? "race/cas" : "race/free", v, strlen(v), expected, NULL);
		if (x.code == 0) {
			r->won_versions[r->won] = x.version;
			r->won_values[r->won++] = v;
		} else if (x.code == 9 && strstr(x.msg, "expected version")) {
			r->lost++;
		} else {
			r->other++;
		}
	}
	return NULL;
}

static void run_race(bool cas)
{
	const char *name = cas ? "race/cas" : "race/free";
	struct racer rs[RACERS] = { 0 };
	pthread_t t[RACERS];
	bool seen[RACERS * ROUNDS + 2] = { 0 };
	int won = 0, lost = 0;
	char sql[256];
	struct res g;

	assert_int_equal(c_create(name, new_value("race"), 25, NULL, NULL).code, 0);
	for (int i = 0; i < RACERS; i++) {
		rs[i].id = i;
		rs[i].cas = cas;
		assert_int_equal(pthread_create(&t[i], NULL, race, &rs[i]), 0);
	}
	for (int i = 0; i < RACERS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < RACERS; i++) {
		assert_int_equal(rs[i].other, 0);
		won += rs[i].won;
		lost += rs[i].lost;
		for (int j = 0; j < rs[i].won; j++) {
			int64_t v = rs[i].won_versions[j];

			/* each version was won exactly once */
			assert_true(v >= 2 && v <= RACERS * ROUNDS + 1);
			assert_false(seen[v]);
			seen[v] = true;
			g = c_get(name, v);
			assert_int_equal(g.code, 0);
			assert_int_equal(g.value_len, strlen(rs[i].won_values[j]));
			assert_memory_equal(g.value, rs[i].won_values[j], g.value_len);
		}
	}
	assert_int_equal(won + lost, RACERS * ROUNDS);
	if (!cas)
		assert_int_equal(lost, 0);
	/* gap-free: versions 1..won+1, current = won + 1 */
	g = c_get(name, 0);
	assert_int_equal(g.version, won + 1);
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM secret_versions WHERE name = '%s' AND version BETWEEN 1 "
		 "AND %d",
		 name, won + 1);
	assert_int_equal(count(sql), won + 1);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM secret_versions WHERE name = '%s'", name);
	assert_int_equal(count(sql), won + 1);
	print_message("# %s: %d rotations won, %d lost the check-and-set\n", name, won, lost);
}

static void test_race_cas(void **state)
{
	(void)state;
	run_race(true);
}

static void test_race_free(void **state)
{
	(void)state;
	run_race(false);
}

/* Seal binding ------------------------------------------------------------------------ */

static void log_contains(const char *needle, bool want)
{
	FILE *f = fopen(E.log_path, "r");
	char line[4096];
	bool found = false;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			found = true;
	fclose(f);
	if (found != want)
		fail_msg("log %s \"%s\"", want ? "lacks" : "has", needle);
}

static void test_swap(void **state)
{
	const char *va = new_value("swapa"), *vb = new_value("swapb");
	struct res r;

	(void)state;
	assert_int_equal(c_create("swap/a", va, strlen(va), NULL, NULL).code, 0);
	assert_int_equal(c_create("swap/b", vb, strlen(vb), NULL, NULL).code, 0);
	assert_int_equal(c_rotate("swap/a", vb, strlen(vb), 0, NULL).code, 0);
	/* another secret's sealed bytes */
	exec("UPDATE secret_versions SET sealed = (SELECT sealed FROM secret_versions WHERE "
	     "name = 'swap/a' AND version = 1) WHERE name = 'swap/b' AND version = 1");
	r = c_get("swap/b", 0);
	assert_int_equal(r.code, 15);
	assert_int_equal(r.value_len, 0);
	assert_non_null(strstr(r.msg, "version 1 of secret \"swap/b\" cannot be opened"));
	assert_null(strstr(r.msg, va));
	/* another version's sealed bytes of the same secret */
	exec("UPDATE secret_versions SET sealed = (SELECT sealed FROM secret_versions WHERE "
	     "name = 'swap/a' AND version = 2) WHERE name = 'swap/a' AND version = 1");
	r = c_get("swap/a", 1);
	assert_int_equal(r.code, 15);
	assert_int_equal(c_get("swap/a", 2).code, 0);
	/* garbage */
	exec("UPDATE secret_versions SET sealed = '\\x00' WHERE name = 'swap/a' AND version = 2");
	assert_int_equal(c_get("swap/a", 0).code, 15);
	log_contains("secret value refused", true);
	log_contains("\"secret\":\"swap/b\"", true);
	log_contains("do not belong to this row", true);
}

/* Idempotency ------------------------------------------------------------------------- */

static void test_idempotent(void **state)
{
	const char *v1 = new_value("idem"), *v2 = new_value("idem");
	int64_t audits;
	struct res a, b;

	(void)state;
	a = c_create("idem/x", v1, strlen(v1), "req-create-1", NULL);
	assert_int_equal(a.code, 0);
	audits = count("SELECT count(*) FROM audit_events");
	/* the same request again: the stored reply */
	b = c_create("idem/x", v1, strlen(v1), "req-create-1", NULL);
	assert_int_equal(b.code, 0);
	assert_int_equal(b.version, 1);
	assert_int_equal(b.create_s, a.create_s);
	/* the same request_id for another request (another value): refused, nothing runs */
	b = c_create("idem/x", v2, strlen(v2), "req-create-1", NULL);
	assert_int_equal(b.code, 3);
	assert_non_null(strstr(b.msg, "request_id req-create-1 was used for a different request"));
	a = c_rotate("idem/x", v2, strlen(v2), 1, "req-rotate-1");
	assert_int_equal(a.code, 0);
	assert_int_equal(a.version, 2);
	for (int i = 0; i < 3; i++) {
		b = c_rotate("idem/x", v2, strlen(v2), 1, "req-rotate-1");
		assert_int_equal(b.code, 0);
		assert_int_equal(b.version, 2);
	}
	assert_int_equal(c_get("idem/x", 0).version, 2);
	assert_int_equal(count("SELECT count(*) FROM audit_events"), audits + 1);
	b = c_rotate("idem/x", v1, strlen(v1), 1, "req-rotate-1");
	assert_int_equal(b.code, 3);
	assert_non_null(strstr(b.msg, "was used for a different request"));
	a = c_simple("delete", "idem/x", 0, "req-del-1");
	b = c_simple("delete", "idem/x", 0, "req-del-1");
	assert_int_equal(a.code, 0);
	assert_int_equal(b.code, 0);
	assert_true(b.deleted);
	assert_int_equal(c_simple("delete", "idem/x", 0, "req-del-2").code, 9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_labels_and_paging),
		cmocka_unit_test(test_retention),
		cmocka_unit_test(test_race_cas),
		cmocka_unit_test(test_race_free),
		cmocka_unit_test(test_swap),
		cmocka_unit_test(test_idempotent),
		cmocka_unit_test(test_no_values_anywhere),
	};

	if (!getenv("TRSTCTL_POSTGRES_DSN")) {
		printf("SKIP: TRSTCTL_POSTGRES_DSN is not set (run through run-with-pg.sh)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
