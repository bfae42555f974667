/*
 * What the waits on PostgreSQL tell about it (db.h "Health"). A wait that runs its whole
 * bound (the statement timeout, the connect timeout) without hearing a byte means
 * PostgreSQL is silent: stopped, hung, or cut off without the kernel noticing. Waiting the
 * full bound again for every call (and every batch of the writer, one after the other)
 * would hold each caller, and a worker thread, that long and longer; so while PostgreSQL
 * is silent every lease fails at once with -ETIME, and the prober, a thread of the pool,
 * tries a fresh connection every PROBE_PAUSE_MS. Whatever answers (a byte on any
 * connection, a connection made) ends the silence and the pool is open again; a probe
 * waiting when PostgreSQL resumes is answered at once.
 *
 * A wait bounded by less than its full bound (a lease's own deadline: db_ping) that runs
 * out says nothing about PostgreSQL, only about the caller's patience: it does not start a
 * silence. Neither does anything in a pool without a statement timeout (the command-line
 * tools), which waits as long as it takes. The hot path (every statement) costs one
 * atomic load here. The start and the end of a silence are logged, once each.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "db-internal.h"
#include "log.h"

#define PROBE_PAUSE_MS 1000

void db_heard(struct db *db)
{
	int64_t was;

	if (!atomic_load_explicit(&db->silent_since, memory_order_relaxed))
		return;
	was = atomic_exchange(&db->silent_since, 0);
	if (was)
		log_info("PostgreSQL answers again", "silent_ms", "%lld",
			 (long long)(db_now_ms() - was));
}

void db_silent(struct db *db, int64_t since)
{
	int64_t none = 0;

	if (!db->statement_timeout_ms)
		return;
	/* the earliest start wins: the silence began with the first wait nobody answered */
	if (!atomic_compare_exchange_strong(&db->silent_since, &none, since > 0 ? since : 1))
		return;
	pthread_mutex_lock(&db->plock);
	if (db->p_started) /* not while db_open tries its first connection */
		log_warn("PostgreSQL does not answer: calls that need it fail at once until it "
			 "does",
			 "waited_ms", "%lld", (long long)(db_now_ms() - since));
	pthread_cond_signal(&db->pwake);
	pthread_mutex_unlock(&db->plock);
}

/*
 * One try: a fresh connection (not a pool slot) within the connect timeout. Only a
 * connection made counts: a refusal may be a stopped postmaster's full listen queue.
 */
static bool probe(struct db *db)
{
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	int64_t deadline = db_now_ms() + db->connect_timeout_ms;
	PGconn *pg = NULL;
	bool ok = false;

	if (db_connect_start(db, "trstctl-probe", &pg) < 0)
		return false; /* the egress gate refused it: no answer heard */
	while (st != PGRES_POLLING_FAILED && PQstatus(pg) != CONNECTION_BAD) {
		if (st == PGRES_POLLING_OK) {
			ok = true;
			break;
		}
		if (db_poll(PQsocket(pg), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
			    deadline) <= 0)
			break;
		st = PQconnectPoll(pg);
	}
	PQfinish(pg);
	return ok;
}

/* Sleeps until silence begins (or stop); then waits ms more when ms > 0. */
static void prober_wait(struct db *db, int ms)
{
	struct timespec until;
	int64_t at = db_now_ms() + ms;

	until.tv_sec = at / 1000;
	until.tv_nsec = (long)(at % 1000) * 1000000;
	pthread_mutex_lock(&db->plock);
	while (!db->p_stop && !atomic_load(&db->silent_since))
		pthread_cond_wait(&db->pwake, &db->plock);
	while (!db->p_stop && ms > 0 &&
	       pthread_cond_timedwait(&db->pwake, &db->plock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&db->plock);
}

static void *prober_main(void *arg)
{
	struct db *db = arg;
	int pause = 0;

	pthread_setname_np(pthread_self(), "trst-db-probe");
	for (;;) {
		prober_wait(db, pause);
		if (db->p_stop)
			return NULL;
		if (!atomic_load(&db->silent_since)) {
			pause = 0;
			continue;
		}
		if (probe(db))
			db_heard(db);
		pause = PROBE_PAUSE_MS;
	}
}

int db_prober_start(struct db *db)
{
	int r;

	if (!db->statement_timeout_ms)
		return 0;
	r = pthread_create(&db->p_thread, NULL, prober_main, db);
	if (r)
		return -r;
	pthread_mutex_lock(&db->plock);
	db->p_started = true;
	pthread_mutex_unlock(&db->plock);
	return 0;
}

void db_prober_stop(struct db *db)
{
	if (!db->p_started)
		return;
	pthread_mutex_lock(&db->plock);
	db->p_stop = true;
	pthread_cond_broadcast(&db->pwake);
	pthread_mutex_unlock(&db->plock);
	pthread_join(db->p_thread, NULL); /* a probe in progress ends by the connect timeout */
	pthread_mutex_lock(&db->plock);
	db->p_started = false;
	pthread_mutex_unlock(&db->plock);
}

void db_health(struct db *db, struct db_health *ret)
{
	int64_t now = db_now_ms(), since = atomic_load(&db->silent_since), oldest = 0;

	/* the slots never move after db_open; wait_since is written by the lease holder */
	for (int i = 0; i < db->n_conns; i++) {
		int64_t w = atomic_load(&db->conns[i].wait_since);

		if (w && now - w > oldest)
			oldest = now - w;
	}
	ret->silent_ms = since ? (now > since ? now - since : 1) : 0;
	ret->waiting_ms = oldest;
}

static void say(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!why || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

int db_ping(struct db *db, int timeout_ms, char *why, size_t len)
{
	struct db_conn *c = NULL;
	struct db_health h;
	int64_t quiet;
	int r;

	if (!db || timeout_ms <= 0)
		return -EINVAL;
	say(why, len, "%s", "");
	r = db_acquire_until(db, db_now_ms() + timeout_ms, &c);
	if (r >= 0) {
		r = db_exec(c, "SELECT 1", NULL, 0, NULL);
		db_release(db, c);
		if (r >= 0)
			return 0;
	}
	db_health(db, &h);
	quiet = h.silent_ms > h.waiting_ms ? h.silent_ms : h.waiting_ms;
	if (r == -ETIMEDOUT) {
		/* every connection stayed leased: a busy pool, or one stuck waiting */
		if (quiet < timeout_ms)
			return 0;
		r = -ETIME;
	}
	if (r == -ETIME && (h.silent_ms || quiet >= timeout_ms))
		say(why, len, "PostgreSQL has not answered for %lld.%lld s",
		    (long long)quiet / 1000, (long long)quiet % 1000 / 100);
	else if (r == -ETIME)
		say(why, len, "PostgreSQL did not answer within %d ms", timeout_ms);
	else
		say(why, len, "PostgreSQL: %s", strerror(-r));
	return r;
}
