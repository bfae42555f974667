/*
 * LISTEN on one PostgreSQL channel: a thread that holds one dedicated connection (not a
 * pool slot: the pool treats anything readable on an idle connection as a broken one) and
 * hands every notification of the channel to a callback. PostgreSQL delivers a
 * notification only after the transaction that sent it committed, in commit order.
 *
 * The callback learns the state of the subscription, because a subscriber that caches
 * must not trust its cache while notifications may be missed: DB_LISTEN_UP once LISTEN is
 * in effect (every commit after that point will be delivered), DB_LISTEN_DOWN when the
 * connection is lost (PostgreSQL restarted, the backend was terminated, the network
 * failed), after which the thread reconnects with backoff (100 ms doubling to 2 s) and
 * says UP again. TCP connections use the pool's keepalives (db_connect_start) so that a
 * silent peer is noticed within about 10 s; a unix socket fails at once. Connecting and
 * the LISTEN statement are bounded by the connect timeout; waiting for notifications is
 * not (a stopped PostgreSQL commits nothing to notify). The DSN is the pool's (a secret:
 * never logged).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db-internal.h"

#define LISTEN_BACKOFF_MIN_MS 100
#define LISTEN_BACKOFF_MAX_MS 2000
#define LISTEN_CHANNEL_MAX 63

struct db_listen {
	struct db *db;		/* borrowed: its dsn and connect timeout */
	char channel[LISTEN_CHANNEL_MAX + 1];
	db_listen_fn fn;
	void *ud;
	int wake[2];		/* a pipe: a byte on wake[1] stops the thread */
	pthread_t thread;
	bool running;
	atomic_int pid;		/* backend pid while listening, else 0 */
};

/* Polls fd for events and the stop pipe until deadline_ms (-1: none). 1 ready, 0 timeout,
 * -ECANCELED when asked to stop. */
static int wait_fd_or_stop(struct db_listen *l, int fd, short events, int64_t deadline_ms)
{
	for (;;) {
		struct pollfd p[2] = { { .fd = fd, .events = events },
				       { .fd = l->wake[0], .events = POLLIN } };
		int wait = -1, r;

		if (deadline_ms >= 0) {
			int64_t left = deadline_ms - db_now_ms();

			wait = left > 0 ? (int)left : 0;
		}
		r = poll(p, 2, wait); /* a negative fd (just sleeping) is ignored by poll */
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r > 0 && p[1].revents)
			return -ECANCELED;
		return r > 0;
	}
}

/* Sends sql and reads its result by deadline: 0 when it succeeded, -ECONNRESET, -ETIME,
 * -ECANCELED. */
static int listen_exec(struct db_listen *l, PGconn *pg, const char *sql, int64_t deadline)
{
	PGresult *res;
	int r = 0, f;

	if (!PQsendQuery(pg, sql))
		return -ECONNRESET;
	while ((f = PQflush(pg)) != 0 || PQisBusy(pg)) {
		if (f < 0)
			return -ECONNRESET;
		r = wait_fd_or_stop(l, PQsocket(pg), f ? POLLIN | POLLOUT : POLLIN, deadline);
		if (r <= 0)
			return r < 0 ? r : -ETIME;
		if (!PQconsumeInput(pg))
			return -ECONNRESET;
	}
	while ((res = PQgetResult(pg))) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			r = -ECONNRESET;
		PQclear(res);
	}
	return r < 0 ? r : 0;
}

/* Connects and runs LISTEN; *ret is the connection. -ECANCELED when asked to stop. */
static int listen_connect(struct db_listen *l, PGconn **ret)
{
	int64_t deadline = db_now_ms() + l->db->connect_timeout_ms;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	char *ident, sql[LISTEN_CHANNEL_MAX * 2 + 16];
	PGconn *pg = NULL;
	int r = db_connect_start(l->db, "trstctl-listen", &pg);

	if (r < 0)
		return r;
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED || PQstatus(pg) == CONNECTION_BAD) {
			PQfinish(pg);
			return -ECONNREFUSED;
		}
		r = wait_fd_or_stop(l, PQsocket(pg),
				    st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
		if (r <= 0) {
			PQfinish(pg);
			return r < 0 ? r : -ECONNREFUSED;
		}
		st = PQconnectPoll(pg);
	}
	ident = PQescapeIdentifier(pg, l->channel, strlen(l->channel));
	if (!ident) {
		PQfinish(pg);
		return -ENOMEM;
	}
	snprintf(sql, sizeof(sql), "LISTEN %s", ident);
	PQfreemem(ident);
	r = PQsetnonblocking(pg, 1) < 0 ? -ECONNRESET : listen_exec(l, pg, sql, deadline);
	if (r < 0) {
		PQfinish(pg);
		return r;
	}
	*ret = pg;
	return 0;
}

/* Delivers the notifications libpq has read. */
static void drain(struct db_listen *l, PGconn *pg)
{
	PGnotify *n;

	while ((n = PQnotifies(pg))) {
		if (strcmp(n->relname, l->channel) == 0)
			l->fn(l->ud, DB_LISTEN_NOTIFY, n->extra ? n->extra : "");
		PQfreemem(n);
	}
}

/* Serves one connection until it fails (returns) or stop (-ECANCELED). */
static int serve(struct db_listen *l, PGconn *pg)
{
	atomic_store(&l->pid, PQbackendPID(pg));
	l->fn(l->ud, DB_LISTEN_UP, NULL);
	for (;;) {
		int r;

		drain(l, pg);
		r = wait_fd_or_stop(l, PQsocket(pg), POLLIN, -1);
		if (r < 0 && r != -ECANCELED)
			r = -ECONNRESET;
		if (r < 0)
			return r;
		if (!PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK)
			return -ECONNRESET;
	}
}

static void *listen_main(void *arg)
{
	struct db_listen *l = arg;
	int backoff = LISTEN_BACKOFF_MIN_MS;

	for (;;) {
		PGconn *pg = NULL;
		int r = listen_connect(l, &pg);

		if (r == 0) {
			backoff = LISTEN_BACKOFF_MIN_MS;
			r = serve(l, pg);
			PQfinish(pg);
			atomic_store(&l->pid, 0);
			l->fn(l->ud, DB_LISTEN_DOWN, NULL);
		}
		if (r == -ECANCELED)
			return NULL;
		if (wait_fd_or_stop(l, -1, 0, db_now_ms() + backoff) == -ECANCELED)
			return NULL;
		backoff = backoff * 2 > LISTEN_BACKOFF_MAX_MS ? LISTEN_BACKOFF_MAX_MS : backoff * 2;
	}
}

static bool channel_ok(const char *c)
{
	size_t n = c ? strlen(c) : 0;

	return n > 0 && n <= LISTEN_CHANNEL_MAX &&
	       strspn(c, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

int db_listen_open(struct db *db, const char *channel, db_listen_fn fn, void *ud,
		   struct db_listen **ret)
{
	struct db_listen *l;

	if (!db || !fn || !ret || !channel_ok(channel))
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->db = db;
	strcpy(l->channel, channel);
	l->fn = fn;
	l->ud = ud;
	if (pipe2(l->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		int r = -errno;

		free(l);
		return r;
	}
	if (pthread_create(&l->thread, NULL, listen_main, l) != 0) {
		close(l->wake[0]);
		close(l->wake[1]);
		free(l);
		return -EAGAIN;
	}
	l->running = true;
	*ret = l;
	return 0;
}

struct db_listen *db_listen_close(struct db_listen *l)
{
	if (!l)
		return NULL;
	if (l->running) {
		while (write(l->wake[1], "x", 1) < 0 && errno == EINTR)
			;
		pthread_join(l->thread, NULL);
	}
	close(l->wake[0]);
	close(l->wake[1]);
	free(l);
	return NULL;
}

int db_listen_backend_pid(const struct db_listen *l)
{
	return l ? atomic_load(&l->pid) : 0;
}
