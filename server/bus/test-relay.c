/*
 * Integration test of the outbox and its relay against a real PostgreSQL
 * (TRSTCTL_POSTGRES_DSN) and a real nats-server with JetStream (TRSTCTL_NATS_URL), both
 * started by test-relay.sh, which also gives BUS_TEST_SVC to stop and start nats-server.
 * It reads the stream back with nats.c to check subjects, message ids and envelopes, and
 * compares them with every row ever written to the outbox (test_outbox_log, filled by a
 * trigger, since the relay deletes what it sent): every committed event arrives exactly
 * once, and the outbox empties.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <nats/nats.h>

#include "bus.h"
#include "db.h"

#define STREAM BUS_DEFAULT_STREAM

static struct db *db;
static natsConnection *nc;
static jsCtx *js;
static const char *nats_url;
static int failures;

#define CHECK(cond, ...)                                                                \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                   \
			fprintf(stderr, "\n");                                          \
			failures++;                                                     \
			return -1;                                                      \
		}                                                                       \
	} while (0)

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec t = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&t, NULL);
}

static int svc(const char *action)
{
	char cmd[4096];

	snprintf(cmd, sizeof(cmd), "%s %s", getenv("BUS_TEST_SVC"), action);
	return system(cmd) == 0 ? 0 : -1;
}

static int sql(const char *text, struct db_rows **ret_rows)
{
	struct db_conn *conn;
	int r = db_acquire(db, 5000, &conn);

	if (r < 0)
		return r;
	r = db_exec(conn, text, NULL, 0, ret_rows);
	db_release(db, conn);
	return r;
}

static long sql_long(const char *text)
{
	struct db_rows *rows = NULL;
	long v = -1;

	if (sql(text, &rows) >= 0 && db_rows_get(rows, 0, 0))
		v = atol(db_rows_get(rows, 0, 0));
	db_rows_free(rows);
	return v;
}

static uint64_t stream_msgs(void)
{
	jsStreamInfo *si = NULL;
	uint64_t n = 0;

	if (js_GetStreamInfo(&si, js, STREAM, NULL, NULL) == NATS_OK) {
		n = si->State.Msgs;
		jsStreamInfo_Destroy(si);
	}
	return n;
}

/* Waits until the stream holds want messages, then a little longer to see no more come. */
static int wait_stream(uint64_t want, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;

	while (stream_msgs() < want && now_ms() < end)
		sleep_ms(20);
	sleep_ms(300);
	return stream_msgs() == want ? 0 : -1;
}

/* Waits until every outbox row was published and deleted. */
static int wait_outbox_sent(int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;

	while (sql_long("SELECT count(*) FROM outbox") != 0)
		if (now_ms() >= end)
			return -1;
		else
			sleep_ms(20);
	return 0;
}

/* Empties the outbox and its log and deletes the stream (with its de-duplication state). */
static void reset(void)
{
	sql("DELETE FROM outbox", NULL);
	sql("DELETE FROM test_outbox_log", NULL);
	js_DeleteStream(js, STREAM, NULL, NULL);
}

static struct bus *relay_open(const char *url)
{
	struct bus_config cfg = { .nats_url = url };
	struct bus *b = NULL;

	if (bus_open(db, &cfg, &b) < 0 || bus_start(b) < 0) {
		fprintf(stderr, "cannot open or start the bus\n");
		exit(1);
	}
	return b;
}

/* A change that attaches n events and then returns ret. */
struct change {
	int n;
	int ret;
	const char *type;
	const char *tenant;
	int base;
};

static int change_fn(struct db_tx *tx, void *ud)
{
	const struct change *c = ud;
	char data[128];
	int r;

	for (int i = 0; i < c->n; i++) {
		snprintf(data, sizeof(data), "{\"seq\":%d,\"name\":\"ev \\\"%d\\\"\"}", c->base + i,
			 c->base + i);
		r = bus_event(tx, c->tenant, c->type, "test:relay", data);
		if (r < 0)
			return r;
	}
	return c->ret;
}

static int write_events(int changes, int per_change, const char *type)
{
	for (int i = 0; i < changes; i++) {
		struct change c = { .n = per_change, .type = type, .base = i * per_change };
		int r = db_write(db, change_fn, &c, 10000);

		if (r < 0) {
			fprintf(stderr, "db_write: %s\n", strerror(-r));
			return r;
		}
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Reads every message of the stream and checks each against the outbox: subject
 * events.<type>, Nats-Msg-Id = envelope id = an outbox id, envelope fields, and that the
 * stream's ids are exactly the outbox's ids (no loss, no duplicate).
 */
static int check_stream(uint64_t want)
{
	struct db_rows *rows = NULL;
	char **got;
	uint64_t n = stream_msgs();
	int rc = -1;

	CHECK(n == want, "stream holds %llu messages, want %llu", (unsigned long long)n,
	      (unsigned long long)want);
	CHECK(sql("SELECT id::text FROM test_outbox_log ORDER BY id", &rows) >= 0, "outbox query");
	CHECK(rows->n_rows == want, "outbox got %zu rows, want %llu", rows->n_rows,
	      (unsigned long long)want);
	got = calloc(want ? want : 1, sizeof(*got));
	for (uint64_t seq = 1; seq <= want; seq++) {
		natsMsg *msg = NULL;
		const char *hid = NULL;
		json_t *env;
		char subject[160];

		if (js_GetMsg(&msg, js, STREAM, seq, NULL, NULL) != NATS_OK) {
			fprintf(stderr, "FAIL: cannot read message %llu\n",
				(unsigned long long)seq);
			goto out;
		}
		natsMsgHeader_Get(msg, "Nats-Msg-Id", &hid);
		env = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, NULL);
		const char *id = json_string_value(json_object_get(env, "id"));
		const char *type = json_string_value(json_object_get(env, "type"));
		const char *tenant = json_string_value(json_object_get(env, "tenant_id"));
		const char *when = json_string_value(json_object_get(env, "time"));

		snprintf(subject, sizeof(subject), "events.%s", type ? type : "?");
		if (!env || !id || !hid || strcmp(id, hid) != 0 || !tenant || !when ||
		    strlen(when) != 27 || when[26] != 'Z' ||
		    strcmp(subject, natsMsg_GetSubject(msg)) != 0 ||
		    !json_is_object(json_object_get(env, "data")) ||
		    !json_is_string(json_object_get(env, "actor"))) {
			fprintf(stderr, "FAIL: message %llu on %s: bad envelope or msg id: %.*s\n",
				(unsigned long long)seq, natsMsg_GetSubject(msg),
				natsMsg_GetDataLength(msg), natsMsg_GetData(msg));
			json_decref(env);
			natsMsg_Destroy(msg);
			goto out;
		}
		got[seq - 1] = strdup(id);
		json_decref(env);
		natsMsg_Destroy(msg);
	}
	qsort(got, want, sizeof(*got), cmp_str);
	for (uint64_t i = 0; i < want; i++) {
		if (strcmp(got[i], db_rows_get(rows, i, 0)) != 0) {
			fprintf(stderr, "FAIL: stream id %s, outbox id %s\n", got[i],
				db_rows_get(rows, i, 0));
			goto out;
		}
	}
	rc = 0;
out:
	for (uint64_t i = 0; i < want; i++)
		free(got[i]);
	free(got);
	db_rows_free(rows);
	if (rc < 0)
		failures++;
	return rc;
}

/* One event arrives with the right subject, id and envelope; the row is deleted. */
static int test_publish(void)
{
	struct bus *b;
	struct change c = { .n = 1, .type = "identity.issued" };
	jsStreamInfo *si = NULL;
	natsMsg *msg = NULL;
	json_t *env;
	int64_t t0;
	int r;

	reset();
	b = relay_open(nats_url);
	t0 = now_ms();
	r = db_write(db, change_fn, &c, 10000);
	CHECK(r == 0, "db_write: %d", r);
	bus_kick(b);
	CHECK(wait_stream(1, 10000) == 0, "1 message, got %llu", (unsigned long long)stream_msgs());
	fprintf(stderr, "  first event on the stream after %lld ms (stream created meanwhile)\n",
		(long long)(now_ms() - t0 - 300));
	CHECK(check_stream(1) == 0, "stream content");
	CHECK(wait_outbox_sent(3000) == 0, "row deleted once sent");

	CHECK(js_GetMsg(&msg, js, STREAM, 1, NULL, NULL) == NATS_OK, "get message");
	env = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, NULL);
	CHECK(strcmp(natsMsg_GetSubject(msg), "events.identity.issued") == 0, "subject %s",
	      natsMsg_GetSubject(msg));
	CHECK(strcmp(json_string_value(json_object_get(env, "tenant_id")), DB_DEFAULT_TENANT) == 0,
	      "tenant");
	CHECK(strcmp(json_string_value(json_object_get(env, "actor")), "test:relay") == 0, "actor");
	CHECK(json_integer_value(json_object_get(json_object_get(env, "data"), "seq")) == 0,
	      "data.seq");
	CHECK(strcmp(json_string_value(json_object_get(json_object_get(env, "data"), "name")),
		     "ev \"0\"") == 0,
	      "data.name");
	json_decref(env);
	natsMsg_Destroy(msg);

	/* The stream the relay made: events.>, file storage, 24 h duplicate window. */
	CHECK(js_GetStreamInfo(&si, js, STREAM, NULL, NULL) == NATS_OK, "stream info");
	CHECK(si->Config->SubjectsLen == 1 && strcmp(si->Config->Subjects[0], "events.>") == 0,
	      "subjects");
	CHECK(si->Config->Storage == js_FileStorage, "file storage");
	CHECK(si->Config->Duplicates == 24LL * 3600 * 1000000000LL, "duplicates %lld",
	      (long long)si->Config->Duplicates);
	jsStreamInfo_Destroy(si);

	/* A second event after a kick arrives quickly (no 200 ms idle sleep). */
	c.base = 1;
	t0 = now_ms();
	CHECK(db_write(db, change_fn, &c, 10000) == 0, "db_write");
	bus_kick(b);
	while (stream_msgs() < 2 && now_ms() - t0 < 5000)
		sleep_ms(1);
	fprintf(stderr, "  commit -> kick -> on the stream: %lld ms\n", (long long)(now_ms() - t0));
	CHECK(stream_msgs() == 2, "second event");
	bus_close(b);
	return 0;
}

/* Events of a change whose fn fails are not written; the batch's other changes are. */
struct writer_arg {
	int id;
	int ok;
};

static void *writer_thread(void *arg)
{
	struct writer_arg *w = arg;

	for (int i = 0; i < 40; i++) {
		bool fail = (i + w->id) % 2;
		struct change c = { .n = 2,
				    .ret = fail ? -EPERM : 0,
				    .type = "secret.rotated",
				    .base = w->id * 1000 + i * 2 };
		int r = db_write(db, change_fn, &c, 10000);

		if (r == 0 && !fail)
			w->ok++;
		else if (!(fail && r == -EPERM))
			w->ok = -1000000;
	}
	return NULL;
}

static int test_failed_change(void)
{
	struct bus *b;
	struct change c = { .n = 3, .ret = -EINVAL, .type = "owner.created" };
	struct writer_arg w[8] = { 0 };
	pthread_t t[8];
	int ok = 0;

	reset();
	b = relay_open(NULL); /* hook only: rows stay */
	CHECK(db_write(db, change_fn, &c, 10000) == -EINVAL, "fn error returned");
	CHECK(sql_long("SELECT count(*) FROM outbox") == 0, "no outbox row for a failed change");

	/* bad arguments attach nothing and fail the change */
	c = (struct change){ .n = 1, .type = "bad type" };
	CHECK(db_write(db, change_fn, &c, 10000) == -EINVAL, "bad type");
	c = (struct change){ .n = 1, .type = "a.b", .tenant = "not-a-uuid" };
	CHECK(db_write(db, change_fn, &c, 10000) == -EINVAL, "bad tenant");
	CHECK(sql_long("SELECT count(*) FROM outbox") == 0, "still no row");

	/* Concurrent writers: failing and succeeding changes share batches. */
	for (int i = 0; i < 8; i++) {
		w[i].id = i;
		pthread_create(&t[i], NULL, writer_thread, &w[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		ok += w[i].ok;
	}
	CHECK(ok == 8 * 20, "successful writes %d", ok);
	CHECK(sql_long("SELECT count(*) FROM outbox") == 2L * ok, "outbox rows %ld, want %d",
	      sql_long("SELECT count(*) FROM outbox"), 2 * ok);
	bus_close(b);

	/* ... and a relay then publishes exactly those. */
	b = relay_open(nats_url);
	CHECK(wait_stream(2 * (uint64_t)ok, 20000) == 0, "stream %llu, want %d",
	      (unsigned long long)stream_msgs(), 2 * ok);
	CHECK(check_stream(2 * (uint64_t)ok) == 0, "stream content");
	bus_close(b);
	return 0;
}

/* NATS down (while running, and at start): writes succeed, rows wait, all arrive once. */
static int test_nats_down(void)
{
	struct bus *b;
	uint64_t depth = 0, age = 0, published = 0;
	int n = 50;

	reset();
	b = relay_open(nats_url);
	CHECK(write_events(1, 1, "guard.denied") == 0, "write");
	bus_kick(b);
	CHECK(wait_stream(1, 10000) == 0, "first event before the outage");

	CHECK(svc("stop") == 0, "stop nats-server");
	CHECK(write_events(n, 1, "secret.created") == 0, "writes while NATS is down");
	sleep_ms(400);
	CHECK(bus_stats(b, &depth, &age, &published) == 0, "stats");
	fprintf(stderr, "  NATS down: outbox depth %llu, oldest %llu ms\n",
		(unsigned long long)depth, (unsigned long long)age);
	CHECK(depth == (uint64_t)n, "depth %llu, want %d", (unsigned long long)depth, n);
	CHECK(age >= 300, "age %llu", (unsigned long long)age);
	CHECK(published == 1, "published %llu", (unsigned long long)published);

	CHECK(svc("start") == 0, "start nats-server");
	CHECK(wait_stream(1 + (uint64_t)n, 20000) == 0, "after the outage: %llu",
	      (unsigned long long)stream_msgs());
	CHECK(check_stream(1 + (uint64_t)n) == 0, "stream content");
	CHECK(wait_outbox_sent(5000) == 0, "all rows sent and deleted");
	CHECK(bus_stats(b, &depth, &age, &published) == 0 && depth == 0 && age == 0, "drained");
	bus_close(b);

	/* NATS already down when the relay starts. */
	reset();
	CHECK(svc("stop") == 0, "stop nats-server");
	b = relay_open(nats_url);
	CHECK(write_events(n, 2, "certificate.recorded") == 0, "writes, NATS down at start");
	sleep_ms(500);
	CHECK(svc("start") == 0, "start nats-server");
	CHECK(wait_stream(2 * (uint64_t)n, 20000) == 0, "after start: %llu",
	      (unsigned long long)stream_msgs());
	CHECK(check_stream(2 * (uint64_t)n) == 0, "stream content");
	bus_close(b);
	return 0;
}

/* Rows published but not deleted (a crash before the DELETE committed) are re-sent;
 * JetStream drops the copies, so the stream count stays exact. */
static int test_republish_dedup(void)
{
	struct bus *b;
	uint64_t published = 0;
	int n = 120;

	reset();
	b = relay_open(nats_url);
	CHECK(write_events(n / 10, 10, "identity.deployed") == 0, "write");
	bus_kick(b);
	CHECK(wait_stream((uint64_t)n, 10000) == 0, "published");
	CHECK(wait_outbox_sent(5000) == 0, "deleted");

	CHECK(sql("INSERT INTO outbox SELECT * FROM test_outbox_log", NULL) >= 0, "rows back");
	CHECK(sql_long("SELECT count(*) FROM outbox") == n, "%d rows back", n);
	bus_kick(b);
	CHECK(wait_outbox_sent(10000) == 0, "re-published and deleted again");
	CHECK(bus_stats(b, NULL, NULL, &published) == 0, "stats");
	CHECK(published == 2 * (uint64_t)n, "relay handed over %llu",
	      (unsigned long long)published);
	CHECK(wait_stream((uint64_t)n, 1000) == 0, "stream count stays %d: %llu", n,
	      (unsigned long long)stream_msgs());
	CHECK(check_stream((uint64_t)n) == 0, "stream content");
	bus_close(b);
	return 0;
}

/* Two relays on one outbox (two servers): SKIP LOCKED shares the rows, none twice. */
static int test_two_relays(void)
{
	struct bus *b1, *b2;
	uint64_t p1 = 0, p2 = 0;
	int n = 3000;

	reset();
	b1 = relay_open(NULL);
	CHECK(write_events(n / 100, 100, "policy.changed") == 0, "prefill");
	bus_close(b1);
	b1 = relay_open(nats_url);
	b2 = relay_open(nats_url);
	CHECK(wait_outbox_sent(30000) == 0, "drained");
	CHECK(wait_stream((uint64_t)n, 5000) == 0, "stream %llu",
	      (unsigned long long)stream_msgs());
	bus_stats(b1, NULL, NULL, &p1);
	bus_stats(b2, NULL, NULL, &p2);
	fprintf(stderr, "  two relays: %llu + %llu\n", (unsigned long long)p1,
		(unsigned long long)p2);
	CHECK(p1 + p2 == (uint64_t)n, "published %llu + %llu, want %d (none twice)",
	      (unsigned long long)p1, (unsigned long long)p2, n);
	CHECK(check_stream((uint64_t)n) == 0, "stream content");
	bus_close(b2);
	bus_close(b1);
	return 0;
}

/* An existing stream with other settings is used as it is, not changed. */
static int test_existing_stream(void)
{
	const char *subjects[] = { "events.>" };
	jsStreamConfig cfg;
	jsStreamInfo *si = NULL;
	struct bus *b;

	reset();
	jsStreamConfig_Init(&cfg);
	cfg.Name = STREAM;
	cfg.Subjects = subjects;
	cfg.SubjectsLen = 1;
	cfg.Storage = js_MemoryStorage;
	cfg.Duplicates = 60LL * 1000000000LL;
	CHECK(js_AddStream(NULL, js, &cfg, NULL, NULL) == NATS_OK, "pre-create stream");
	b = relay_open(nats_url);
	CHECK(write_events(1, 5, "owner.created") == 0, "write");
	bus_kick(b);
	CHECK(wait_stream(5, 10000) == 0, "published into the existing stream");
	CHECK(js_GetStreamInfo(&si, js, STREAM, NULL, NULL) == NATS_OK, "info");
	CHECK(si->Config->Storage == js_MemoryStorage &&
		      si->Config->Duplicates == 60LL * 1000000000LL,
	      "settings left as they were");
	jsStreamInfo_Destroy(si);
	bus_close(b);
	return 0;
}

/* The stream vanishes under a running relay (a fresh nats-server): it is made again. */
static int test_stream_recreated(void)
{
	struct bus *b;

	reset();
	b = relay_open(nats_url);
	CHECK(write_events(1, 1, "identity.created") == 0, "write");
	bus_kick(b);
	CHECK(wait_stream(1, 10000) == 0, "first event");
	CHECK(js_DeleteStream(js, STREAM, NULL, NULL) == NATS_OK, "delete stream");
	CHECK(write_events(1, 3, "identity.retired") == 0, "write");
	bus_kick(b);
	CHECK(wait_stream(3, 10000) == 0, "stream made again with the new events: %llu",
	      (unsigned long long)stream_msgs());
	CHECK(wait_outbox_sent(5000) == 0, "all sent and deleted");
	bus_close(b);
	return 0;
}

/* Figures: how fast one relay drains a backlog. */
/*
 * Under load the events of several commits share a pass: a commit within gather_ms of the
 * last pass waits for the rest of it (and is published then), instead of a pass of its own.
 */
static int test_gather(void)
{
	struct bus_config cfg = { .nats_url = nats_url, .gather_ms = 600 };
	struct change c = { .n = 1, .type = "identity.issued" };
	struct bus *b = NULL;
	int64_t t0;

	reset();
	CHECK(bus_open(db, &cfg, &b) == 0 && bus_start(b) == 0, "relay");
	CHECK(db_write(db, change_fn, &c, 10000) == 0, "db_write");
	bus_kick(b);
	t0 = now_ms();
	while (stream_msgs() < 1 && now_ms() - t0 < 10000)
		sleep_ms(1);
	CHECK(stream_msgs() == 1, "first event");
	c.base = 1;
	CHECK(db_write(db, change_fn, &c, 10000) == 0, "db_write");
	bus_kick(b);
	t0 = now_ms();
	sleep_ms(200);
	/* less than gather_ms after the first pass: still waiting for more */
	CHECK(stream_msgs() == 1, "second event held back, got %llu",
	      (unsigned long long)stream_msgs());
	while (stream_msgs() < 2 && now_ms() - t0 < 10000)
		sleep_ms(1);
	fprintf(stderr, "  second commit -> on the stream: %lld ms (gather 600 ms)\n",
		(long long)(now_ms() - t0));
	CHECK(stream_msgs() == 2, "second event published after the gather");
	CHECK(wait_outbox_sent(3000) == 0, "rows deleted once sent");
	bus_close(b);
	/* out of range */
	cfg.gather_ms = 1001;
	CHECK(bus_open(db, &cfg, &b) == -EINVAL, "gather_ms 1001 refused");
	cfg.gather_ms = -2;
	CHECK(bus_open(db, &cfg, &b) == -EINVAL, "gather_ms -2 refused");
	return 0;
}

static int test_throughput(void)
{
	struct bus *b;
	int n = 20000;
	int64_t t0, dt;

	for (int batch = 100; batch <= 500; batch += 400) {
		struct bus_config cfg = { .nats_url = nats_url, .batch = batch };

		reset();
		b = relay_open(NULL);
		CHECK(write_events(n / 100, 100, "certificate.recorded") == 0, "prefill");
		bus_close(b);
		b = NULL;
		CHECK(bus_open(db, &cfg, &b) == 0 && bus_start(b) == 0, "relay");
		t0 = now_ms();
		CHECK(wait_outbox_sent(60000) == 0, "drained");
		dt = now_ms() - t0;
		fprintf(stderr, "  relay drained %d events in %lld ms (batch %d): %.0f events/s\n",
			n, (long long)dt, batch, dt ? n * 1000.0 / (double)dt : 0.0);
		CHECK(wait_stream((uint64_t)n, 5000) == 0, "stream %llu",
		      (unsigned long long)stream_msgs());
		bus_close(b);
	}
	return 0;
}

int main(void)
{
	struct db_config cfg = { .max_conns = 8, .connect_timeout_ms = 5000 };
	static const struct {
		const char *name;
		int (*fn)(void);
	} tests[] = {
		{ "publish", test_publish },
		{ "failed_change", test_failed_change },
		{ "nats_down", test_nats_down },
		{ "republish_dedup", test_republish_dedup },
		{ "two_relays", test_two_relays },
		{ "existing_stream", test_existing_stream },
		{ "stream_recreated", test_stream_recreated },
		{ "gather", test_gather },
		{ "throughput", test_throughput },
	};
	const char *only = getenv("BUS_TEST_ONLY");
	int r;

	cfg.dsn = getenv("TRSTCTL_POSTGRES_DSN");
	nats_url = getenv("TRSTCTL_NATS_URL");
	if (!cfg.dsn || !nats_url || !getenv("BUS_TEST_SVC")) {
		fprintf(stderr, "SKIP: run through test-relay.sh (needs TRSTCTL_POSTGRES_DSN, "
				"TRSTCTL_NATS_URL, BUS_TEST_SVC)\n");
		return 77;
	}
	r = db_open(&cfg, &db);
	if (r == 0)
		r = db_migrate(db, NULL);
	/* every row ever inserted into the outbox, kept after the relay deletes it */
	if (r == 0)
		r = sql("CREATE TABLE IF NOT EXISTS test_outbox_log (LIKE outbox INCLUDING ALL)",
			NULL);
	if (r == 0)
		r = sql("CREATE OR REPLACE FUNCTION test_outbox_log() RETURNS trigger "
			"LANGUAGE plpgsql AS $$ BEGIN INSERT INTO test_outbox_log SELECT NEW.* "
			"ON CONFLICT DO NOTHING; RETURN NEW; END $$",
			NULL);
	if (r == 0)
		r = sql("CREATE OR REPLACE TRIGGER test_outbox_log AFTER INSERT ON outbox "
			"FOR EACH ROW EXECUTE FUNCTION test_outbox_log()",
			NULL);
	if (r < 0) {
		fprintf(stderr, "database: %s\n", strerror(-r));
		return 1;
	}
	if (natsConnection_ConnectTo(&nc, nats_url) != NATS_OK ||
	    natsConnection_JetStream(&js, nc, NULL) != NATS_OK) {
		fprintf(stderr, "cannot connect to %s\n", nats_url);
		return 1;
	}

	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		int before = failures;

		if (only && *only && strcmp(only, tests[i].name) != 0)
			continue;
		fprintf(stderr, "[ RUN  ] %s\n", tests[i].name);
		tests[i].fn();
		fprintf(stderr, "[ %s ] %s\n", failures == before ? " OK " : "FAIL", tests[i].name);
	}

	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	db_close(db);
	nats_Close();
	return failures ? 1 : 0;
}
