/*
 * The pool's egress gate (connect.c) against a real PostgreSQL (run-with-pg.sh; its unix
 * socket DSN in TRSTCTL_POSTGRES_DSN): a gate that does not gate leaves the DSN alone; a
 * refused host is left out and libpq fails over to the others; nothing left is
 * -ECONNREFUSED; every connection and reconnection asks again; a service name without a
 * host is refused only when gated. TCP hosts pinned to an admitted address are covered
 * by tests/served/test_guard_userspace.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db-internal.h"

static const char *dsn;

/* A gate for tests: not gating, or refusing every host; it records what it was asked. */
struct fake {
	bool gating;
	int calls;
	char last_host[256];
	uint16_t last_port;
};

static int fake_gate(void *arg, const char *host, uint16_t port, struct net_addr *ret_addrs,
		     size_t max, size_t *ret_n, char *why, size_t why_len)
{
	struct fake *f = arg;

	f->calls++;
	snprintf(f->last_host, sizeof(f->last_host), "%s", host);
	f->last_port = port;
	if (!f->gating)
		return 1;
	snprintf(why, why_len, "refused by the test");
	return -EPERM;
}

static int open_gated(const char *d, struct fake *f, struct db **ret_db)
{
	struct db_config cfg = { .dsn = d,
				 .max_conns = 1,
				 .connect_timeout_ms = 3000,
				 .gate = { .fn = fake_gate, .arg = f } };

	return db_open(&cfg, ret_db);
}

/* The DSN with "host=<extra>," put in front of its host (the socket folder). */
static char *with_host_first(const char *extra)
{
	const char *h = strstr(dsn, "host=");
	char *out = NULL;

	assert_non_null(h);
	assert_true(asprintf(&out, "%.*shost=%s,%s", (int)(h - dsn), dsn, extra, h + 5) > 0);
	return out;
}

static void test_not_gated(void **state)
{
	struct fake f = { .gating = false };
	struct db *db = NULL;

	(void)state;
	assert_int_equal(open_gated(dsn, &f, &db), 0);
	/* a unix socket host needs no gate: nothing was asked */
	assert_int_equal(f.calls, 0);
	db_close(db);
	/* a TCP host is asked about; not gated, libpq connects by the DSN (nobody on port 1) */
	assert_int_equal(open_gated("host=127.0.0.1 port=1 dbname=x", &f, &db), -ECONNREFUSED);
	assert_int_equal(f.calls, 1);
	assert_string_equal(f.last_host, "127.0.0.1");
	assert_int_equal(f.last_port, 1);
}

static void test_refused(void **state)
{
	struct fake f = { .gating = true };
	struct db_conn *c = NULL;
	struct db *db = NULL;
	char *d;

	(void)state;
	assert_int_equal(open_gated("host=pg.fake port=6543 dbname=trstctl", &f, &db),
			 -ECONNREFUSED);
	assert_int_equal(f.calls, 1);
	assert_string_equal(f.last_host, "pg.fake");
	assert_int_equal(f.last_port, 6543);

	/* a refused host is left out; libpq uses the socket that follows it */
	f.calls = 0;
	d = with_host_first("pg.fake");
	assert_int_equal(open_gated(d, &f, &db), 0);
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.last_port, 5432);
	/* a reconnection asks again */
	assert_int_equal(db_acquire(db, 3000, &c), 0);
	db_conn_drop(c);
	db_release(db, c);
	assert_int_equal(db_acquire(db, 3000, &c), 0);
	assert_int_equal(db_exec(c, "SELECT 1", NULL, 0, NULL), 0);
	db_release(db, c);
	assert_int_equal(f.calls, 2);
	db_close(db);
	free(d);

	/* hostaddr: the address is what is judged */
	f.calls = 0;
	assert_int_equal(open_gated("host=pg.fake hostaddr=192.0.2.1 dbname=x", &f, &db),
			 -ECONNREFUSED);
	assert_string_equal(f.last_host, "192.0.2.1");
}

static void test_service(void **state)
{
	struct fake f = { .gating = true };
	struct db *db = NULL;

	(void)state;
	/* a service file would name the host: gated, that is refused outright */
	assert_int_equal(open_gated("service=trstctl-none dbname=x", &f, &db), -EINVAL);
	f.gating = false;
	assert_int_not_equal(open_gated("service=trstctl-none dbname=x", &f, &db), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_not_gated),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_service),
	};

	dsn = getenv("TRSTCTL_POSTGRES_DSN");
	if (!dsn || !*dsn) {
		printf("SKIP: TRSTCTL_POSTGRES_DSN is not set (run through run-with-pg.sh)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
