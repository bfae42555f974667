/*
 * trstctl.v1.Audit served on loopback (plaintext, kernel-chosen port) over a real
 * PostgreSQL, called with libtrstctl: ListEvents paging and its bad-token error,
 * VerifyChain on a good and a tampered chain, WatchEvents from history into live records.
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
#include <time.h>

#include <cmocka.h>

#include "audit.h"
#include "db.h"
#include "kek.h"
#include "rpc.h"
#include "test-serve.h"
#include "trstctl-client.h"
#include "trstctl-client-gen.h"

static struct {
	struct db *db;
	struct kek *kek;
	struct audit *a;
	struct rpc_test_serve t; /* the server and its client t.cl */
} E;

static int write_fn(struct db_tx *tx, void *ud)
{
	struct audit_entry e = { .type = "rpc.test", .actor = "tok_r", .resource = ud };

	return audit_record(tx, &e);
}

static void write_n(int n)
{
	for (int i = 0; i < n; i++)
		assert_int_equal(db_write(E.db, write_fn, "things/r", 10000), 0);
}

static void exec(const char *sql)
{
	struct db_conn *c = NULL;

	assert_int_equal(db_acquire(E.db, 5000, &c), 0);
	assert_true(db_exec(c, sql, NULL, 0, NULL) >= 0);
	db_release(E.db, c);
}

static int setup(void **state)
{
	struct db_config dc = { .dsn = getenv("TRSTCTL_POSTGRES_DSN"),
				.max_conns = 4,
				.connect_timeout_ms = 5000 };
	struct audit_config ac = { .checkpoint_every = 10, .checkpoint_interval_ms = -1 };
	struct rpc_server_config sc = { .pool_threads = 2,
					.pool_queue = 8,
					.max_request_bytes = 65536 };
	uint8_t key[KEK_LEN];

	(void)state;
	memset(key, 7, sizeof(key));
	if (db_open(&dc, &E.db) < 0 || db_migrate(E.db, NULL) < 0 ||
	    kek_new(key, sizeof(key), &E.kek) < 0 || audit_open(E.db, E.kek, &ac, &E.a) < 0)
		return -1;
	if (rpc_test_serve_new(&sc, &E.t) < 0 || audit_rpc_register(E.t.srv, E.a) < 0)
		return -1;
	return rpc_test_serve_start(&E.t, 10000);
}

static int teardown(void **state)
{
	(void)state;
	rpc_test_serve_stop(&E.t);
	E.a = audit_close(E.a);
	E.db = db_close(E.db);
	E.kek = kek_free(E.kek);
	return 0;
}

static void test_list(void **state)
{
	Trstctl__V1__ListEventsRequest req = TRSTCTL__V1__LIST_EVENTS_REQUEST__INIT;
	Trstctl__V1__ListEventsResponse *resp = NULL;
	struct trstctl_status st = { 0 };

	(void)state;
	write_n(30);
	req.page_size = 10;
	assert_int_equal(trstctl_audit_list_events(E.t.cl, &req, NULL, &resp, &st), 0);
	assert_int_equal(resp->n_events, 10);
	assert_int_equal(resp->events[0]->sequence, 1);
	assert_string_equal(resp->events[0]->type, "rpc.test");
	assert_string_equal(resp->events[0]->resource, "things/r");
	assert_int_equal(strlen(resp->events[0]->hash), 64);
	assert_string_equal(resp->events[1]->prev_hash, resp->events[0]->hash);
	assert_true(resp->events[0]->time && resp->events[0]->time->seconds > 1700000000);
	assert_string_equal(resp->next_page_token, "10");
	req.page_token = "10";
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	assert_int_equal(trstctl_audit_list_events(E.t.cl, &req, NULL, &resp, &st), 0);
	assert_int_equal(resp->events[0]->sequence, 11);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	req.page_token = "ten";
	assert_int_equal(trstctl_audit_list_events(E.t.cl, &req, NULL, &resp, &st), -EINVAL);
	assert_int_equal(st.code, 3);
	assert_string_equal(st.message, "invalid page_token");
	trstctl_status_clear(&st);
}

static void test_verify(void **state)
{
	Trstctl__V1__VerifyChainRequest req = TRSTCTL__V1__VERIFY_CHAIN_REQUEST__INIT;
	Trstctl__V1__VerifyChainResponse *resp = NULL;
	struct trstctl_status st = { 0 };

	(void)state;
	assert_int_equal(trstctl_audit_verify_chain(E.t.cl, &req, NULL, &resp, &st), 0);
	assert_true(resp->ok);
	assert_int_equal(resp->checked, 30);
	assert_int_equal(strlen(resp->head_hash), 64);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	exec("UPDATE audit_events SET outcome = 'denied' WHERE sequence = 7");
	assert_int_equal(trstctl_audit_verify_chain(E.t.cl, &req, NULL, &resp, &st), 0);
	assert_false(resp->ok);
	assert_int_equal(resp->first_bad_sequence, 7);
	printf("# tampered: %s\n", resp->detail);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	exec("UPDATE audit_events SET outcome = 'ok' WHERE sequence = 7");
	req.from_sequence = 5;
	req.to_sequence = 2;
	assert_int_equal(trstctl_audit_verify_chain(E.t.cl, &req, NULL, &resp, &st), -EINVAL);
	trstctl_status_clear(&st);
	/* a start past the head is a bad argument, not a broken chain */
	req.from_sequence = 31;
	req.to_sequence = 0;
	assert_int_equal(trstctl_audit_verify_chain(E.t.cl, &req, NULL, &resp, &st), -EINVAL);
	assert_int_equal(st.code, 3);
	assert_string_equal(st.message, "from_sequence 31 is past the head of the audit chain");
	trstctl_status_clear(&st);
	req.from_sequence = 30; /* the head itself: one record */
	assert_int_equal(trstctl_audit_verify_chain(E.t.cl, &req, NULL, &resp, &st), 0);
	assert_true(resp->ok);
	assert_int_equal(resp->checked, 1);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	trstctl_status_clear(&st);
}

struct watch {
	int64_t next;
	int got;
	int bad;
};

static int on_event(const Trstctl__V1__AuditEvent *ev, void *ud)
{
	struct watch *w = ud;

	if (ev->sequence != w->next)
		w->bad++;
	w->next = ev->sequence + 1;
	return ++w->got >= 10 ? 1 : 0;
}

static void *late_writer(void *p)
{
	struct timespec ts = { 0, 400 * 1000000 };

	(void)p;
	nanosleep(&ts, NULL);
	write_n(5);
	return NULL;
}

static void test_watch(void **state)
{
	Trstctl__V1__WatchEventsRequest req = TRSTCTL__V1__WATCH_EVENTS_REQUEST__INIT;
	struct trstctl_status st = { 0 };
	struct watch w = { .next = 26 };
	pthread_t t;

	(void)state;
	req.after_sequence = 25;
	assert_int_equal(pthread_create(&t, NULL, late_writer, NULL), 0);
	assert_int_equal(trstctl_audit_watch_events(E.t.cl, &req, NULL, on_event, &w, &st), 1);
	pthread_join(t, NULL);
	assert_int_equal(w.got, 10);
	assert_int_equal(w.bad, 0);
	assert_int_equal(w.next, 36);
	trstctl_status_clear(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_watch),
	};

	if (!getenv("TRSTCTL_POSTGRES_DSN")) {
		printf("SKIP: TRSTCTL_POSTGRES_DSN not set (run through run-with-pg.sh)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
