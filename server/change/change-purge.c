/*
 * Retention of stored replies: a purge deletes the replies older than the retention in
 * bounded statements (so that a large backlog never holds many row locks at once), and a
 * thread runs it periodically and counts what it removed for /metrics
 * (trstctl_idempotency_keys_purged_total). Every server may run one: the deletes of two
 * servers skip each other's locked rows.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "change.h"

#define PURGE_LIMIT 1000

int change_purge(struct db *db, int64_t retention_s, int64_t *ret_purged)
{
	char secs[32];
	struct db_param p[1] = { DB_TEXT(secs) };
	int64_t total = 0;
	struct db_conn *c = NULL;
	int r;

	if (!db || retention_s <= 0)
		return -EINVAL;
	snprintf(secs, sizeof(secs), "%lld", (long long)retention_s);
	r = db_acquire(db, 10000, &c);
	if (r < 0)
		return r;
	for (;;) {
		struct db_rows *rows = NULL;

		r = db_exec(c,
			    "DELETE FROM idempotency WHERE ctid IN (SELECT ctid FROM idempotency "
			    "WHERE created_at < now() - $1::bigint * interval '1 second' "
			    "LIMIT 1000 FOR UPDATE SKIP LOCKED)",
			    p, 1, &rows);
		if (r < 0)
			break;
		total += rows->affected;
		r = rows->affected < PURGE_LIMIT ? 0 : 1;
		db_rows_free(rows);
		if (r == 0)
			break;
	}
	db_release(db, c);
	if (r >= 0 && ret_purged)
		*ret_purged = total;
	return r;
}

struct change_purger {
	struct db *db;
	int64_t retention_s;
	int interval_ms;
	_Atomic uint64_t purged;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
};

static void *purger_main(void *ud)
{
	struct change_purger *p = ud;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		struct timespec at;
		int64_t n = 0;

		pthread_mutex_unlock(&p->lock);
		if (change_purge(p->db, p->retention_s, &n) >= 0)
			atomic_fetch_add(&p->purged, (uint64_t)n);
		pthread_mutex_lock(&p->lock);
		clock_gettime(CLOCK_REALTIME, &at);
		at.tv_sec += p->interval_ms / 1000;
		at.tv_nsec += (long)(p->interval_ms % 1000) * 1000000;
		if (at.tv_nsec >= 1000000000) {
			at.tv_sec++;
			at.tv_nsec -= 1000000000;
		}
		while (!p->stop && pthread_cond_timedwait(&p->wake, &p->lock, &at) == 0)
			;
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int change_purger_start(struct db *db, int64_t retention_s, int interval_ms,
			struct change_purger **ret)
{
	struct change_purger *p;

	if (!db || retention_s <= 0 || interval_ms <= 0 || !ret)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->db = db;
	p->retention_s = retention_s;
	p->interval_ms = interval_ms;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	if (pthread_create(&p->thread, NULL, purger_main, p) != 0) {
		pthread_mutex_destroy(&p->lock);
		pthread_cond_destroy(&p->wake);
		free(p);
		return -EAGAIN;
	}
	pthread_setname_np(p->thread, "change-purge");
	*ret = p;
	return 0;
}

uint64_t change_purger_count(const struct change_purger *p)
{
	return p ? atomic_load(&((struct change_purger *)p)->purged) : 0;
}

struct change_purger *change_purger_stop(struct change_purger *p)
{
	if (!p)
		return NULL;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->wake);
	free(p);
	return NULL;
}
