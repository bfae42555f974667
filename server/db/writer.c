/*
 * The group-commit writer (docs/architecture.md §2): one thread per struct db through which every
 * mutation goes. db_write queues a change and sleeps on the change's own condition
 * variable; the writer takes everything queued (up to DB_BATCH_MAX), runs the changes in
 * one transaction, each under a savepoint, runs the pre-commit hooks with the surviving
 * changes' items, commits once, hands the committed changes' items to the post-commit hooks
 * (observers: the audit log's export) and wakes every caller. While it commits, new changes
 * queue up, so batches grow with load and one fsync carries many changes.
 *
 * The batch runs in libpq pipeline mode so that savepoints cost no round trip: "BEGIN",
 * "SAVEPOINT s<i>" before change i and "ROLLBACK TO SAVEPOINT s<i>" after a failed one
 * are queued and travel with the next statement that waits for its answer. A batch of n
 * one-statement changes costs n + 2 round trips (the changes, the hooks, COMMIT) and one
 * commit.
 *
 * With db_config.writers > 1, several writer threads take batches from the one queue, each
 * on its own connection and transaction, so that one batch's round trips and commit overlap
 * another's; each batch is still all-or-nothing per change, and its audit records are
 * chained under the head row lock, which orders the batches as it orders several servers.
 *
 * DB_BATCH_MAX is 64 because PostgreSQL caches 64 subtransaction ids per backend
 * (PGPROC_MAX_CACHED_SUBXIDS): a transaction with more writing savepoints overflows the
 * cache and makes every other session's snapshots look subtransactions up in pg_subtrans.
 *
 * With one writer a change never waits for another change: a caller only waits for the
 * batch it is in.
 * A caller that times out leaves its change behind: still queued, it is removed and never
 * runs; taken but not yet run, the writer skips it; already run, it may still commit (the
 * caller got -ETIMEDOUT and retries with its request_id). While fn runs, the caller keeps
 * waiting (fn may touch ud); fn's statements are bounded by the statement timeout.
 *
 * PostgreSQL that stops answering fails the batch with -ETIME (db.c drops the connection;
 * the backend, once it runs again, finds its client gone and rolls back). The one wait
 * whose outcome is unknown is COMMIT's: it may have committed before PostgreSQL went
 * silent. Such a batch is never reported as done and never run again (only -EAGAIN, an
 * answer that says nothing committed, is retried): its callers get -ETIME, and a retry
 * with the same request_id finds the stored reply if it did commit (the change room).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db-internal.h"

#define DB_BATCH_MAX 64
#define DB_BATCH_ATTEMPTS 3      /* a batch failing with -EAGAIN runs again, twice at most */
#define DB_WRITER_ACQUIRE_MS 10000

enum change_state {
	CH_QUEUED,  /* in the queue */
	CH_TAKEN,   /* in a batch, fn not running */
	CH_RUNNING, /* fn is running: the caller must not return (ud in use) */
	CH_DONE,    /* result is set; the caller owns the change again */
};

struct db_item {
	int kind;
	void *item;
	void (*free_fn)(void *item);
};

/*
 * One db_write call. Two references while in a batch (the caller's and the writer's), so
 * that the writer can wake the caller after dropping wlock; the last one frees it.
 */
struct db_change {
	atomic_int refs;
	struct db_change *next;       /* queue link (wlock) */
	db_change_fn fn;
	void *ud;
	enum change_state state;      /* wlock */
	bool abandoned;               /* the caller timed out and left (wlock) */
	bool late;                    /* the caller timed out while fn ran: wake it after fn */
	bool ran;                     /* fn ran in the current attempt */
	bool wrote;                   /* fn ran statements (it has a savepoint) */
	int fn_result;
	int result;
	struct db_item *items;
	size_t n_items, cap_items;
	pthread_cond_t done;
};

struct db_tx {
	struct db_conn *conn;
	struct db_change *change;
	size_t index;   /* the change's place in the batch: its savepoint is s<index> */
	bool savepoint; /* SAVEPOINT s<index> was queued */
};

/*
 * Queues the change's savepoint before its first statement. A change that runs no statement
 * (it only attaches items) has none: refusing it later costs nothing, and it takes no
 * subtransaction.
 */
static int tx_savepoint(struct db_tx *tx)
{
	char sql[48];
	int r;

	if (tx->savepoint)
		return 0;
	snprintf(sql, sizeof(sql), "SAVEPOINT s%zu", tx->index);
	r = db_exec_defer(tx->conn, sql);
	if (r >= 0) {
		tx->savepoint = true;
		tx->change->wrote = true;
	}
	return r;
}

static void change_free_items(struct db_change *ch)
{
	for (size_t i = 0; i < ch->n_items; i++)
		if (ch->items[i].free_fn)
			ch->items[i].free_fn(ch->items[i].item);
	free(ch->items);
	ch->items = NULL;
	ch->n_items = ch->cap_items = 0;
}

static void change_put(struct db_change *ch)
{
	if (atomic_fetch_sub(&ch->refs, 1) != 1)
		return;
	change_free_items(ch);
	pthread_cond_destroy(&ch->done);
	free(ch);
}

int db_tx_exec(struct db_tx *tx, const char *sql, const struct db_param *params,
	       size_t n_params, struct db_rows **ret_rows)
{
	int r;

	if (!tx)
		return -EINVAL;
	r = tx_savepoint(tx);
	return r < 0 ? r : db_exec(tx->conn, sql, params, n_params, ret_rows);
}

struct db_conn *db_tx_conn(struct db_tx *tx)
{
	if (!tx || tx_savepoint(tx) < 0)
		return NULL;
	return tx->conn;
}

int db_tx_attach(struct db_tx *tx, int kind, void *item, void (*free_fn)(void *item))
{
	struct db_change *ch = tx ? tx->change : NULL;

	if (!ch || kind < 0 || kind >= DB_ITEM_KINDS) {
		if (free_fn)
			free_fn(item);
		return -EINVAL;
	}
	if (ch->n_items == ch->cap_items) {
		size_t cap = ch->cap_items ? ch->cap_items * 2 : 2;
		struct db_item *n = realloc(ch->items, cap * sizeof(*n));

		if (!n) {
			if (free_fn)
				free_fn(item);
			return -ENOMEM;
		}
		ch->items = n;
		ch->cap_items = cap;
	}
	ch->items[ch->n_items++] = (struct db_item){ kind, item, free_fn };
	return 0;
}

int db_hook_verdicts(const struct db_rows *rows, int *results, size_t n, size_t *ret_ok)
{
	size_t k = 0, ok = 0;

	for (size_t i = 0; i < n; i++) {
		const char *v;

		if (results[i] < 0)
			continue;
		v = k < rows->n_rows ? db_rows_get(rows, k++, 0) : NULL;
		if (!v)
			return -EPROTO;
		if (!strcmp(v, "ok"))
			ok++;
		else
			results[i] = !strcmp(v, "gone") ? -ENOENT : !strcmp(v, "stale") ? -ESTALE :
								       -EEXIST;
	}
	*ret_ok = ok;
	return 0;
}

int db_set_precommit(struct db *db, int kind, db_precommit_fn fn, void *ud)
{
	if (!db || kind < 0 || kind >= DB_ITEM_KINDS)
		return -EINVAL;
	pthread_mutex_lock(&db->wlock);
	db->hooks[kind] = (struct db_hook){ fn, ud };
	pthread_mutex_unlock(&db->wlock);
	return 0;
}

int db_set_postcommit(struct db *db, int kind, db_postcommit_fn fn, void *ud)
{
	if (!db || kind < 0 || kind >= DB_ITEM_KINDS)
		return -EINVAL;
	pthread_mutex_lock(&db->wlock);
	db->posts[kind] = (struct db_post){ fn, fn ? ud : NULL };
	pthread_mutex_unlock(&db->wlock);
	return 0;
}

int db_add_precommit(struct db *db, db_precommit_fn fn, void *ud, int *ret_kind)
{
	int kind = -1;

	if (!db || !fn || !ret_kind)
		return -EINVAL;
	pthread_mutex_lock(&db->wlock);
	/* the same hook registered again (a service reopened on this db) keeps its kind */
	for (int k = 0; k < DB_DOMAIN_KINDS && kind < 0; k++)
		if (db->hooks[k].fn == fn)
			kind = k;
	for (int k = 0; k < DB_DOMAIN_KINDS && kind < 0; k++)
		if (!db->hooks[k].fn)
			kind = k;
	if (kind >= 0)
		db->hooks[kind] = (struct db_hook){ fn, ud };
	pthread_mutex_unlock(&db->wlock);
	if (kind < 0)
		return -ENOSPC;
	*ret_kind = kind;
	return 0;
}

void db_writer_stats(struct db *db, struct db_writer_stats *ret_stats)
{
	pthread_mutex_lock(&db->wlock);
	*ret_stats = db->stats;
	pthread_mutex_unlock(&db->wlock);
}

size_t db_writer_queued(struct db *db)
{
	size_t n;

	pthread_mutex_lock(&db->wlock);
	n = db->q_len;
	pthread_mutex_unlock(&db->wlock);
	return n;
}

/*
 * Runs change i of the batch under its own savepoint s<i> (queued before its first
 * statement). Returns < 0 when the batch cannot go on. Savepoints nest (s0 holds s1 ...) and
 * are never released: COMMIT keeps them all, and a failed change rolls back to its own,
 * which costs one queued command per change instead of two for RELEASE + SAVEPOINT.
 */
static int run_change(struct db *db, struct db_conn *c, struct db_change *ch, size_t i)
{
	struct db_tx tx = { .conn = c, .change = ch, .index = i };
	char sql[48];
	int r;

	pthread_mutex_lock(&db->wlock);
	if (ch->abandoned) {
		pthread_mutex_unlock(&db->wlock);
		ch->fn_result = -ETIMEDOUT; /* ud may be gone: never run it */
		return 0;
	}
	ch->state = CH_RUNNING;
	pthread_mutex_unlock(&db->wlock);

	r = ch->fn(&tx, ch->ud);
	if (r >= 0 && PQtransactionStatus(c->pg) == PQTRANS_INERROR)
		r = c->last_errno ? c->last_errno : -EIO; /* fn ignored a failed statement */

	pthread_mutex_lock(&db->wlock);
	ch->state = CH_TAKEN;
	if (ch->late)
		pthread_cond_signal(&ch->done); /* a caller past its deadline may leave now */
	pthread_mutex_unlock(&db->wlock);

	ch->ran = true;
	ch->fn_result = r;
	if (r >= 0)
		return 0;
	change_free_items(ch);
	if (!tx.savepoint)
		return 0; /* nothing of it reached PostgreSQL */
	snprintf(sql, sizeof(sql), "ROLLBACK TO SAVEPOINT s%zu", i);
	return db_exec_defer(c, sql);
}

/* The items of one hook call: the items, the change of each, the hook's verdict on each. */
struct hook_scratch {
	void **items;
	struct db_change **owners;
	int *results;
	size_t cap;
};

static int scratch_grow(struct hook_scratch *sc)
{
	size_t cap = sc->cap ? sc->cap * 2 : 64;
	void **items = realloc(sc->items, cap * sizeof(*items));
	struct db_change **owners;
	int *results;

	if (!items)
		return -ENOMEM;
	sc->items = items;
	owners = realloc(sc->owners, cap * sizeof(*owners));
	if (!owners)
		return -ENOMEM;
	sc->owners = owners;
	results = realloc(sc->results, cap * sizeof(*results));
	if (!results)
		return -ENOMEM;
	sc->results = results;
	sc->cap = cap;
	return 0;
}

static void scratch_free(struct hook_scratch *sc)
{
	free(sc->items);
	free(sc->owners);
	free(sc->results);
}

/*
 * Applies a hook's refusals: each refused change fails with the hook's error and its items
 * stay out of the later hooks. Only a change that ran no statement and has no item an
 * earlier hook already wrote can be refused; anything else is a bug of the hook (-EPROTO).
 */
static int apply_refusals(struct hook_scratch *sc, size_t count, int kind)
{
	for (size_t i = 0; i < count; i++) {
		struct db_change *ch = sc->owners[i];

		if (sc->results[i] >= 0 || ch->fn_result < 0)
			continue;
		if (ch->wrote)
			return -EPROTO;
		for (size_t j = 0; j < ch->n_items; j++)
			if (ch->items[j].kind < kind)
				return -EPROTO;
		ch->fn_result = sc->results[i];
	}
	return 0;
}

/*
 * Puts the items of kind of the surviving changes (ran, not failed or refused), in batch
 * order, into sc: items, owners, results 0. Returns 0 and *ret_count, or -ENOMEM.
 */
static int gather(struct db_change **batch, size_t n, int kind, struct hook_scratch *sc,
		  size_t *ret_count)
{
	size_t count = 0;

	for (size_t i = 0; i < n; i++) {
		struct db_change *ch = batch[i];

		if (!ch->ran || ch->fn_result < 0)
			continue;
		for (size_t j = 0; j < ch->n_items; j++) {
			if (ch->items[j].kind != kind)
				continue;
			if (count == sc->cap && scratch_grow(sc) < 0)
				return -ENOMEM;
			sc->items[count] = ch->items[j].item;
			sc->owners[count] = ch;
			sc->results[count] = 0;
			count++;
		}
	}
	*ret_count = count;
	return 0;
}

/*
 * Calls each kind's hook, in ascending kind order, with the items of the surviving changes
 * in batch order; a change a hook refuses is not surviving for the later ones.
 */
static int run_hooks(struct db *db, struct db_conn *c, struct db_change **batch, size_t n,
		     struct hook_scratch *sc)
{
	struct db_hook hooks[DB_ITEM_KINDS];

	pthread_mutex_lock(&db->wlock);
	memcpy(hooks, db->hooks, sizeof(hooks));
	pthread_mutex_unlock(&db->wlock);
	for (int kind = 0; kind < DB_ITEM_KINDS; kind++) {
		size_t count = 0;
		int r;

		if (!hooks[kind].fn)
			continue;
		r = gather(batch, n, kind, sc, &count);
		if (r < 0)
			return r;
		if (!count)
			continue;
		r = hooks[kind].fn(c, sc->items, count, sc->results, hooks[kind].ud);
		if (r >= 0 && PQtransactionStatus(c->pg) == PQTRANS_INERROR)
			r = c->last_errno ? c->last_errno : -EIO;
		if (r >= 0)
			r = apply_refusals(sc, count, kind);
		if (r < 0)
			return r;
	}
	return 0;
}

/* One attempt at the batch on c: 0 committed, < 0 the batch error (nothing written). */
static int batch_attempt(struct db *db, struct db_conn *c, struct db_change **batch, size_t n,
			 struct hook_scratch *sc)
{
	int r;

	for (size_t i = 0; i < n; i++) {
		batch[i]->ran = false;
		batch[i]->wrote = false;
		change_free_items(batch[i]);
	}
	r = db_conn_pipeline_begin(c);
	if (r >= 0)
		r = db_exec_defer(c, "BEGIN");
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = run_change(db, c, batch[i], i);
	if (r >= 0)
		r = run_hooks(db, c, batch, n, sc);
	if (r >= 0)
		r = db_exec_simple(c, "COMMIT");
	if (r < 0 && !c->broken && (c->deferred || PQtransactionStatus(c->pg) != PQTRANS_IDLE))
		db_exec_simple(c, "ROLLBACK");
	db_conn_pipeline_end(c);
	return r;
}

/* Hands each post-commit hook the items of its kind of the changes that committed. */
static void run_postcommit(struct db *db, struct db_change **batch, size_t n,
			   struct hook_scratch *sc)
{
	struct db_post posts[DB_ITEM_KINDS];

	pthread_mutex_lock(&db->wlock);
	memcpy(posts, db->posts, sizeof(posts));
	pthread_mutex_unlock(&db->wlock);
	for (int kind = 0; kind < DB_ITEM_KINDS; kind++) {
		size_t count = 0;

		if (!posts[kind].fn)
			continue;
		if (gather(batch, n, kind, sc, &count) < 0)
			return; /* out of memory: the observers miss this batch */
		if (count)
			posts[kind].fn(sc->items, count, posts[kind].ud);
	}
}

static void run_batch(struct db *db, struct db_change **batch, size_t n,
		      struct hook_scratch *sc)
{
	struct db_conn *c = NULL;
	size_t survivors = 0;
	int r = -EIO;

	for (int attempt = 0; attempt < DB_BATCH_ATTEMPTS; attempt++) {
		if (!c) {
			r = db_acquire(db, DB_WRITER_ACQUIRE_MS, &c);
			if (r < 0) {
				c = NULL;
				break;
			}
		}
		r = batch_attempt(db, c, batch, n, sc);
		if (r != -EAGAIN)
			break;
		if (c->broken) {
			db_release(db, c);
			c = NULL;
		}
	}
	db_release(db, c);
	if (r >= 0)
		run_postcommit(db, batch, n, sc);

	/* attached items are released after the batch, committed or not */
	for (size_t i = 0; i < n; i++) {
		change_free_items(batch[i]);
		if (r >= 0 && batch[i]->ran && batch[i]->fn_result >= 0)
			survivors++;
	}
	pthread_mutex_lock(&db->wlock);
	if (r >= 0) {
		db->stats.batches++;
		db->stats.changes += survivors;
		if (n > db->stats.max_batch)
			db->stats.max_batch = n;
	}
	for (size_t i = 0; i < n; i++) {
		struct db_change *ch = batch[i];

		if (ch->ran && ch->fn_result < 0)
			ch->result = ch->fn_result; /* refused: nothing of it was written */
		else if (r < 0)
			ch->result = r;
		else
			ch->result = ch->ran ? ch->fn_result : -ETIMEDOUT;
		ch->state = CH_DONE;
	}
	pthread_mutex_unlock(&db->wlock);
	/* woken outside wlock, so that callers do not wake into a held mutex */
	for (size_t i = 0; i < n; i++) {
		pthread_cond_signal(&batch[i]->done);
		change_put(batch[i]);
	}
}

static void *writer_main(void *arg)
{
	struct db *db = arg;
	struct db_change *batch[DB_BATCH_MAX];
	struct hook_scratch scratch = { 0 };

	pthread_setname_np(pthread_self(), "trst-writer"); /* shows in top, perf, gdb */
	pthread_mutex_lock(&db->wlock);
	for (;;) {
		size_t n = 0;

		while (!db->q_head && !db->w_stop)
			pthread_cond_wait(&db->wwork, &db->wlock);
		if (!db->q_head)
			break; /* stopping and drained */
		while (db->q_head && n < DB_BATCH_MAX) {
			struct db_change *ch = db->q_head;

			db->q_head = ch->next;
			ch->next = NULL;
			ch->state = CH_TAKEN;
			atomic_fetch_add(&ch->refs, 1);
			batch[n++] = ch;
			db->q_len--;
		}
		if (!db->q_head)
			db->q_tail = NULL;
		pthread_mutex_unlock(&db->wlock);
		run_batch(db, batch, n, &scratch);
		pthread_mutex_lock(&db->wlock);
	}
	pthread_mutex_unlock(&db->wlock);
	scratch_free(&scratch);
	return NULL;
}

int db_writer_start(struct db *db)
{
	int n = db->n_writers >= 1 && db->n_writers <= DB_WRITERS_MAX ? db->n_writers : 1;

	for (db->n_started = 0; db->n_started < n; db->n_started++) {
		int r = pthread_create(&db->w_threads[db->n_started], NULL, writer_main, db);

		if (r) {
			if (db->n_started)
				break; /* fewer writers: slower, still correct */
			return -r;
		}
	}
	db->w_started = true;
	return 0;
}

void db_writer_stop(struct db *db)
{
	if (!db->w_started)
		return;
	pthread_mutex_lock(&db->wlock);
	db->w_stop = true;
	pthread_cond_broadcast(&db->wwork);
	pthread_mutex_unlock(&db->wlock);
	for (int i = 0; i < db->n_started; i++)
		pthread_join(db->w_threads[i], NULL);
	db->n_started = 0;
	db->w_started = false;
}

static void deadline_ts(int timeout_ms, struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* Removes ch from the queue (wlock held; ch is queued). */
static void queue_unlink(struct db *db, struct db_change *ch)
{
	struct db_change **p = &db->q_head, *prev = NULL;

	while (*p != ch) {
		prev = *p;
		p = &(*p)->next;
	}
	*p = ch->next;
	if (db->q_tail == ch)
		db->q_tail = prev;
	db->q_len--;
}

int db_write(struct db *db, db_change_fn fn, void *ud, int timeout_ms)
{
	pthread_condattr_t attr;
	struct db_change *ch;
	struct timespec until;
	bool timed_out = false;
	int r;

	if (!db || !fn)
		return -EINVAL;
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	atomic_init(&ch->refs, 1);
	ch->fn = fn;
	ch->ud = ud;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&ch->done, &attr);
	pthread_condattr_destroy(&attr);
	if (timeout_ms > 0)
		deadline_ts(timeout_ms, &until);

	pthread_mutex_lock(&db->wlock);
	if (db->w_stop || !db->w_started) {
		pthread_mutex_unlock(&db->wlock);
		change_put(ch);
		return -ESHUTDOWN;
	}
	if (db->q_tail)
		db->q_tail->next = ch;
	else
		db->q_head = ch;
	db->q_tail = ch;
	db->q_len++;
	pthread_cond_signal(&db->wwork);

	while (ch->state != CH_DONE) {
		if (timed_out && ch->state != CH_RUNNING)
			break;
		ch->late = timed_out;
		if (timeout_ms > 0 && !timed_out) {
			if (pthread_cond_timedwait(&ch->done, &db->wlock, &until) == ETIMEDOUT)
				timed_out = true;
		} else {
			pthread_cond_wait(&ch->done, &db->wlock);
		}
	}
	if (ch->state == CH_DONE) {
		r = ch->result;
		pthread_mutex_unlock(&db->wlock);
		change_put(ch);
		return r;
	}
	if (ch->state == CH_QUEUED)
		queue_unlink(db, ch); /* never seen by the writer */
	else
		ch->abandoned = true; /* the writer skips fn if it has not run */
	pthread_mutex_unlock(&db->wlock);
	change_put(ch);
	return -ETIMEDOUT;
}
