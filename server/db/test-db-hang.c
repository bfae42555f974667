/*
 * db/ against a PostgreSQL that stops answering (run-with-pg.sh starts a real one; skip 77
 * without it). The pool talks to it through a proxy in this process (TCP on loopback to
 * PostgreSQL's socket) that can freeze either direction: a frozen PostgreSQL, as after
 * SIGSTOP, from the client's side (the kernel still accepts and buffers, nothing comes
 * back). Covered: a statement gets -ETIME at the statement timeout and the connection is
 * dropped; then every lease fails at once while the prober tries; the pool opens again by
 * itself once PostgreSQL answers; db_ping's own shorter bound and its reasons; a connection
 * attempt that gets no answer; a statement too large for the socket buffers does not block
 * in send; queued writes fail together when their batch does; and a COMMIT whose answer
 * never came is reported as -ETIME, never as done, and is not run again (it did commit:
 * the reason mutating requests carry request_id).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "db-internal.h"

#define T_MS 1000    /* the statement timeout of these pools */
#define SLACK_MS 700 /* scheduling on a loaded machine */
#define PAIRS 64

/* The proxy ---------------------------------------------------------------------------- */

static struct proxy {
	int lfd, port, wake[2];
	struct sockaddr_storage to; /* PostgreSQL: its unix socket or TCP address */
	socklen_t to_len;
	int c[PAIRS], s[PAIRS];	 /* client and server side of each pair; -1 free */
	atomic_bool freeze_up;	 /* client -> PostgreSQL not forwarded */
	atomic_bool freeze_down; /* PostgreSQL -> client not forwarded */
	atomic_bool stop;
	pthread_t thread;
} P;

static void pair_close(int i)
{
	close(P.c[i]);
	close(P.s[i]);
	P.c[i] = P.s[i] = -1;
}

/* Moves what is readable on from to to; false when from is done. */
static bool pump(int from, int to)
{
	char buf[65536];
	ssize_t n = read(from, buf, sizeof(buf));

	if (n <= 0)
		return false;
	for (ssize_t off = 0; off < n;) {
		ssize_t w = write(to, buf + off, (size_t)(n - off));

		if (w <= 0)
			return false;
		off += w;
	}
	return true;
}

static void *proxy_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&P.stop)) {
		struct pollfd p[2 + 2 * PAIRS];
		int idx[2 + 2 * PAIRS], n = 0;
		bool up = !atomic_load(&P.freeze_up), down = !atomic_load(&P.freeze_down);

		p[n] = (struct pollfd){ .fd = P.lfd, .events = POLLIN };
		idx[n++] = -1;
		p[n] = (struct pollfd){ .fd = P.wake[0], .events = POLLIN };
		idx[n++] = -2;
		for (int i = 0; i < PAIRS; i++) {
			if (P.c[i] < 0)
				continue;
			/* a frozen direction is not read: its sender's buffers fill up */
			p[n] = (struct pollfd){ .fd = P.c[i], .events = up ? POLLIN : 0 };
			idx[n++] = i;
			p[n] = (struct pollfd){ .fd = P.s[i], .events = down ? POLLIN : 0 };
			idx[n++] = i + PAIRS;
		}
		if (poll(p, (nfds_t)n, 200) <= 0)
			continue;
		for (int k = 0; k < n; k++) {
			int i = idx[k] % PAIRS;

			if (!p[k].revents)
				continue;
			if (idx[k] == -2) {
				char b[16];

				while (read(P.wake[0], b, sizeof(b)) > 0)
					;
			} else if (idx[k] == -1) {
				int cfd = accept(P.lfd, NULL, NULL), slot = -1, sfd;

				for (int j = 0; j < PAIRS && slot < 0; j++)
					if (P.c[j] < 0)
						slot = j;
				sfd = socket(P.to.ss_family, SOCK_STREAM, 0);
				if (cfd < 0 || slot < 0 || sfd < 0 ||
				    connect(sfd, (struct sockaddr *)&P.to, P.to_len) < 0) {
					close(cfd);
					close(sfd);
					continue;
				}
				P.c[slot] = cfd;
				P.s[slot] = sfd;
			} else if (P.c[i] >= 0 && !(idx[k] < PAIRS ? pump(P.c[i], P.s[i]) :
								     pump(P.s[i], P.c[i]))) {
				pair_close(i);
			}
		}
	}
	return NULL;
}

/* Wakes the proxy so that a freeze or thaw takes effect now. */
static void proxy_set(bool up, bool down)
{
	atomic_store(&P.freeze_up, up);
	atomic_store(&P.freeze_down, down);
	if (write(P.wake[1], "x", 1) < 0)
		fail_msg("proxy wake");
}

/* Starts the proxy towards the PostgreSQL of dsn; returns a DSN through it (caller frees). */
static char *proxy_start(const char *dsn)
{
	PQconninfoOption *o = PQconninfoParse(dsn, NULL);
	const char *host = NULL, *port = "5432";
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	char *out;

	assert_non_null(o);
	for (PQconninfoOption *x = o; x->keyword; x++) {
		if (!strcmp(x->keyword, "host") && x->val)
			host = x->val;
		if (!strcmp(x->keyword, "port") && x->val && *x->val)
			port = x->val;
	}
	memset(&P.to, 0, sizeof(P.to));
	if (!host || host[0] == '/') {
		struct sockaddr_un *un = (struct sockaddr_un *)&P.to;

		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof(un->sun_path), "%s/.s.PGSQL.%s",
			 host ? host : "/var/run/postgresql", port);
		P.to_len = sizeof(*un);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&P.to;

		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)atoi(port));
		assert_int_equal(inet_pton(AF_INET, host, &in->sin_addr), 1);
		P.to_len = sizeof(*in);
	}
	PQconninfoFree(o);
	for (int i = 0; i < PAIRS; i++)
		P.c[i] = P.s[i] = -1;
	P.lfd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(P.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(P.lfd, 64), 0);
	assert_int_equal(getsockname(P.lfd, (struct sockaddr *)&sa, &len), 0);
	P.port = ntohs(sa.sin_port);
	assert_int_equal(pipe2(P.wake, O_NONBLOCK | O_CLOEXEC), 0);
	atomic_store(&P.stop, false);
	proxy_set(false, false);
	assert_int_equal(pthread_create(&P.thread, NULL, proxy_main, NULL), 0);
	/* later keywords win: the same DSN, reached through the proxy */
	assert_true(asprintf(&out, "%s host=127.0.0.1 port=%d", dsn, P.port) > 0);
	return out;
}

static void proxy_stop(void)
{
	atomic_store(&P.stop, true);
	proxy_set(false, false);
	pthread_join(P.thread, NULL);
	for (int i = 0; i < PAIRS; i++)
		if (P.c[i] >= 0)
			pair_close(i);
	close(P.lfd);
	close(P.wake[0]);
	close(P.wake[1]);
}

/* Fixtures ------------------------------------------------------------------------------ */

static char *via; /* the DSN through the proxy */

static int setup(void **state)
{
	(void)state;
	via = proxy_start(getenv("TRSTCTL_POSTGRES_DSN"));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	proxy_stop();
	free(via);
	return 0;
}

static struct db *open_via(int max_conns)
{
	struct db_config cfg = { .dsn = via,
				 .max_conns = max_conns,
				 .connect_timeout_ms = T_MS,
				 .statement_timeout_ms = T_MS };
	struct db *db = NULL;
	int r = db_open(&cfg, &db);

	if (r < 0)
		fail_msg("db_open: %s", strerror(-r));
	return db;
}

static void exec_ok(struct db *db, const char *sql)
{
	struct db_conn *c = NULL;

	assert_int_equal(db_acquire(db, 5000, &c), 0);
	assert_int_equal(db_exec(c, sql, NULL, 0, NULL), 0);
	db_release(db, c);
}

static long long count(struct db *db, const char *sql)
{
	struct db_rows *rows = NULL;
	struct db_conn *c = NULL;
	long long n;

	assert_int_equal(db_acquire(db, 5000, &c), 0);
	assert_int_equal(db_exec(c, sql, NULL, 0, &rows), 0);
	db_release(db, c);
	n = atoll(db_rows_get(rows, 0, 0));
	db_rows_free(rows);
	return n;
}

/* Thaws the proxy and waits (at most 5 s) until the pool leases again; returns the ms. */
static int64_t thaw(struct db *db)
{
	int64_t t0 = db_now_ms();
	struct db_conn *c = NULL;

	proxy_set(false, false);
	while (db_acquire(db, 1000, &c) < 0) {
		assert_true(db_now_ms() - t0 < 5000);
		usleep(20 * 1000);
	}
	db_release(db, c);
	return db_now_ms() - t0;
}

static int noop_change(struct db_tx *tx, void *ud)
{
	(void)ud;
	return db_tx_exec(tx, "INSERT INTO hang_rows (k) VALUES ('noop')", NULL, 0, NULL);
}

/* Tests ------------------------------------------------------------------------------------ */

static void test_silence(void **state)
{
	struct db *db = open_via(2);
	struct db_conn *c = NULL;
	struct db_health h;
	char why[128];
	int64_t t0, took;

	(void)state;
	exec_ok(db, "CREATE TABLE IF NOT EXISTS hang_rows (k text)");
	assert_int_equal(db_acquire(db, 1000, &c), 0);
	proxy_set(true, true);
	t0 = db_now_ms();
	assert_int_equal(db_exec(c, "SELECT 1", NULL, 0, NULL), -ETIME);
	took = db_now_ms() - t0;
	assert_true(took >= T_MS - 50 && took <= T_MS + SLACK_MS);
	assert_true(c->broken);
	assert_string_equal(c->last_error, "PostgreSQL did not answer in time");
	/* the same lease: at once, and still -ETIME (not "connection reset") */
	assert_int_equal(db_exec(c, "SELECT 1", NULL, 0, NULL), -ETIME);
	db_release(db, c);
	db_health(db, &h);
	assert_true(h.silent_ms >= T_MS - 50);
	assert_int_equal(h.waiting_ms, 0);

	/* silent: every lease, every write, the readiness probe fail at once */
	t0 = db_now_ms();
	assert_int_equal(db_acquire(db, 5000, &c), -ETIME);
	assert_int_equal(db_write(db, noop_change, NULL, 30000), -ETIME);
	assert_int_equal(db_ping(db, 300, why, sizeof(why)), -ETIME);
	assert_true(db_now_ms() - t0 < 200);
	assert_non_null(strstr(why, "PostgreSQL has not answered for "));

	/* back by itself once PostgreSQL answers: the prober's connection gets through */
	took = thaw(db);
	assert_true(took < 1000 + T_MS + SLACK_MS);
	db_health(db, &h);
	assert_int_equal(h.silent_ms, 0);
	assert_int_equal(db_ping(db, 1000, why, sizeof(why)), 0);
	assert_string_equal(why, "");
	assert_int_equal(db_write(db, noop_change, NULL, 30000), 0);
	db_close(db);
}

static void test_ping_bound(void **state)
{
	struct db *db = open_via(2);
	struct db_health h;
	char why[128];
	int64_t t0, took;

	(void)state;
	assert_int_equal(db_ping(db, 500, why, sizeof(why)), 0);
	proxy_set(true, true);
	t0 = db_now_ms();
	assert_int_equal(db_ping(db, 300, why, sizeof(why)), -ETIME);
	took = db_now_ms() - t0;
	assert_true(took >= 250 && took <= 300 + SLACK_MS);
	assert_string_equal(why, "PostgreSQL did not answer within 300 ms");
	/* the caller's shorter patience says nothing about PostgreSQL: no silence */
	db_health(db, &h);
	assert_int_equal(h.silent_ms, 0);
	proxy_set(false, false);
	assert_int_equal(db_ping(db, 2000, why, sizeof(why)), 0);
	db_close(db);
}

static void test_connect_unanswered(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct db_config cfg = { .max_conns = 1,
				 .connect_timeout_ms = 600,
				 .statement_timeout_ms = T_MS };
	socklen_t len = sizeof(sa);
	struct db *db = NULL;
	char dsn[128];
	int64_t t0, took;
	int fd;

	(void)state;
	/* a listener that never accepts: the kernel completes the handshake, nobody answers */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(dsn, sizeof(dsn), "host=127.0.0.1 port=%d dbname=x user=postgres sslmode=disable",
		 ntohs(sa.sin_port));
	cfg.dsn = dsn;
	t0 = db_now_ms();
	assert_int_equal(db_open(&cfg, &db), -ETIME);
	took = db_now_ms() - t0;
	assert_true(took >= 550 && took <= 600 + SLACK_MS);
	close(fd);
}

static void test_large_send(void **state)
{
	struct db *db = open_via(1);
	size_t n = 8 << 20; /* far more than the socket buffers hold */
	uint8_t *big = calloc(1, n);
	struct db_param p[1] = { DB_BYTES(big, n) };
	struct db_conn *c = NULL;
	int64_t t0, took;

	(void)state;
	assert_non_null(big);
	assert_int_equal(db_acquire(db, 1000, &c), 0);
	proxy_set(true, false); /* PostgreSQL reads nothing: the send cannot finish */
	t0 = db_now_ms();
	assert_int_equal(db_exec(c, "SELECT length($1::bytea)", p, 1, NULL), -ETIME);
	took = db_now_ms() - t0;
	assert_true(took >= T_MS - 50 && took <= T_MS + SLACK_MS);
	db_release(db, c);
	thaw(db);
	free(big);
	db_close(db);
}

struct writer_arg {
	struct db *db;
	int result;
	int64_t took;
};

static void *one_write(void *arg)
{
	struct writer_arg *w = arg;
	int64_t t0 = db_now_ms();

	w->result = db_write(w->db, noop_change, NULL, 30000);
	w->took = db_now_ms() - t0;
	return NULL;
}

static void test_queued_writes(void **state)
{
	struct db *db = open_via(4);
	struct writer_arg w[8];
	pthread_t t[8];

	(void)state;
	exec_ok(db, "CREATE TABLE IF NOT EXISTS hang_rows (k text)");
	proxy_set(true, true);
	/* one batch hangs; the writes queued behind it fail with it, not one bound later */
	for (int i = 0; i < 8; i++) {
		w[i] = (struct writer_arg){ .db = db };
		assert_int_equal(pthread_create(&t[i], NULL, one_write, &w[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].result, -ETIME);
		assert_true(w[i].took <= T_MS + SLACK_MS);
	}
	thaw(db);
	db_close(db);
}

/* A change whose statement is answered, after which PostgreSQL's answers stop coming. */
static int insert_then_freeze(struct db_tx *tx, void *ud)
{
	int *runs = ud;
	int r = db_tx_exec(tx, "INSERT INTO hang_rows (k) VALUES ('unknown')", NULL, 0, NULL);

	(*runs)++;
	if (r >= 0)
		proxy_set(false, true); /* COMMIT reaches PostgreSQL; its answer does not */
	return r;
}

static void test_commit_unknown(void **state)
{
	struct db *db = open_via(2);
	int runs = 0;
	int64_t t0, took;

	(void)state;
	exec_ok(db, "CREATE TABLE IF NOT EXISTS hang_rows (k text)");
	exec_ok(db, "DELETE FROM hang_rows WHERE k = 'unknown'");
	t0 = db_now_ms();
	assert_int_equal(db_write(db, insert_then_freeze, &runs, 30000), -ETIME);
	took = db_now_ms() - t0;
	assert_true(took <= T_MS + SLACK_MS);
	thaw(db);
	/* never reported as done, never run again; and yet it committed */
	assert_int_equal(runs, 1);
	assert_int_equal(count(db, "SELECT count(*) FROM hang_rows WHERE k = 'unknown'"), 1);
	db_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_silence),
		cmocka_unit_test(test_ping_bound),
		cmocka_unit_test(test_connect_unanswered),
		cmocka_unit_test(test_large_send),
		cmocka_unit_test(test_queued_writes),
		cmocka_unit_test(test_commit_unknown),
	};

	if (!getenv("TRSTCTL_POSTGRES_DSN")) {
		printf("SKIP: TRSTCTL_POSTGRES_DSN is not set (run through run-with-pg.sh)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
