/*
 * The outbox relay: one thread per server that moves committed events from the outbox
 * table to JetStream. Each pass is one READ COMMITTED transaction:
 *
 *   SELECT id, type, payload FROM outbox WHERE sent_at IS NULL
 *     ORDER BY created_at, id LIMIT n FOR UPDATE SKIP LOCKED
 *   js_PublishAsync each to events.<type> with Nats-Msg-Id = id, wait for the acks
 *   DELETE FROM outbox WHERE id = ANY(acked ids); COMMIT
 *
 * A commit kicks the relay. After a quiet spell the pass runs at once; within gather_ms
 * (10 ms) of the last pass that found rows it waits for the rest of that time, so that under
 * load one pass (one SELECT, one DELETE, one commit) carries the events of many commits.
 *
 * A published row is deleted, not kept: the stream is the record of what was sent, and the
 * outbox holds only what is still to send (a row marked sent and kept would grow the table
 * by one row per change, forever, and cost an UPDATE's new row version per event).
 * SKIP LOCKED lets several servers' relays share the table without publishing a row
 * twice; a crash (or a lost commit) between the ack and the DELETE republishes the rows,
 * and JetStream's duplicate window (24 h, keyed by Nats-Msg-Id) drops the copies, so
 * subscribers see each event once. Only acknowledged rows are deleted; the rest are
 * retried, which can reorder an event behind later ones after a failure.
 *
 * NATS being down is normal: the first connect is retried here with backoff (100 ms
 * doubling to 5 s), an established connection is reconnected by nats.c forever (in
 * userspace egress enforcement nats.c does not reconnect: a closed connection is made
 * again here, through the gate, connect.c), and the thread logs once per state change. The thread polls the connection state instead of
 * using nats.c's connection callbacks, which can run after the connection is destroyed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "db.h"
#include "internal.h"
#include "log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define ACK_WAIT_MS 5000
#define DUPLICATE_WINDOW_NS (24LL * 3600 * 1000000000LL)

enum relay_state {
	RELAY_STARTING,
	RELAY_NATS_DOWN,    /* no connection (first connect failing, or reconnecting) */
	RELAY_STREAM_ERROR, /* connected, but the stream could not be checked or made */
	RELAY_NO_STREAM,    /* publishes find no stream (deleted, or a fresh server) */
	RELAY_FAILING,	    /* publishing or the database fails */
	RELAY_RUNNING,
};

/* The rows of the pass in flight; acks arrive on a nats.c thread. */
struct batch {
	size_t n;
	const char **ids; /* borrowed from the rows */
	bool *acked;
	size_t n_acked;
	size_t n_dup;
	int err; /* first publish error (-errno), 0 if none */
};

struct bus_relay {
	natsOptions *opts;
	natsConnection *nc;
	jsCtx *js;
	bool stream_ok;
	enum relay_state state;
	int backoff_ms;

	pthread_mutex_t ack_lock; /* guards cur */
	struct batch *cur;
	int pass_err; /* publish error of the last pass */
	struct timespec last_pass; /* start of the last pass that found rows (monotonic) */
};

/* Sleeps up to ms or until stopped; a kick ends it early only when kickable. */
static bool relay_wait(struct bus *b, int ms, bool kickable)
{
	struct timespec until;
	bool stopping;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&b->lock);
	while (!b->stopping && !(kickable && b->kicked))
		if (pthread_cond_timedwait(&b->wake, &b->lock, &until) == ETIMEDOUT)
			break;
	if (kickable)
		b->kicked = false;
	stopping = b->stopping;
	pthread_mutex_unlock(&b->lock);
	return !stopping;
}

static bool relay_stopping(struct bus *b)
{
	bool stopping;

	pthread_mutex_lock(&b->lock);
	stopping = b->stopping;
	pthread_mutex_unlock(&b->lock);
	return stopping;
}

/* Logs when the relay enters a new state; err is -errno or 0. */
static void relay_set_state(struct bus_relay *r, enum relay_state state, int err)
{
	if (r->state == state)
		return;
	switch (state) {
	case RELAY_NATS_DOWN:
		log_warn("bus: NATS unreachable, events wait in the outbox; retrying", "error",
			 "%s", strerror(-err));
		break;
	case RELAY_STREAM_ERROR:
		log_warn("bus: cannot check or create the JetStream stream; retrying", "error",
			 "%s", strerror(-err));
		break;
	case RELAY_NO_STREAM:
		log_warn("bus: no JetStream stream takes the events (deleted?); making it again");
		break;
	case RELAY_FAILING:
		log_warn("bus: relaying events fails, rows stay in the outbox; retrying", "error",
			 "%s", strerror(-err));
		break;
	case RELAY_RUNNING:
		log_info("bus: relaying events to JetStream");
		break;
	case RELAY_STARTING:
		break;
	}
	r->state = state;
}

static void relay_backoff(struct bus *b)
{
	struct bus_relay *r = b->relay;

	r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (r->backoff_ms > BACKOFF_MAX_MS)
		r->backoff_ms = BACKOFF_MAX_MS;
	relay_wait(b, r->backoff_ms, false);
}

static void ack_handler(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	struct bus_relay *r = closure;
	const char *id = NULL;

	pthread_mutex_lock(&r->ack_lock);
	if (r->cur && natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id) {
		struct batch *bt = r->cur;

		for (size_t i = 0; i < bt->n; i++) {
			if (strcmp(bt->ids[i], id) != 0)
				continue;
			if (pa && !bt->acked[i]) {
				bt->acked[i] = true;
				bt->n_acked++;
				if (pa->Duplicate)
					bt->n_dup++;
			} else if (!pa && pae && bt->err == 0) {
				bt->err = bus_js_errno(pae->Err, pae->ErrCode);
			}
			break;
		}
	}
	pthread_mutex_unlock(&r->ack_lock);
	natsMsg_Destroy(msg);
}

static int relay_connect(struct bus *b)
{
	struct bus_relay *r = b->relay;
	jsOptions jo;
	natsStatus s;
	int err = bus_nats_connect(r->opts, b->nats_url, &b->gate, &r->nc);

	if (err < 0) {
		r->nc = NULL;
		return err;
	}
	jsOptions_Init(&jo);
	jo.Wait = 3000;
	jo.PublishAsync.MaxPending = 2 * b->batch;
	jo.PublishAsync.AckHandler = ack_handler;
	jo.PublishAsync.AckHandlerClosure = r;
	s = natsConnection_JetStream(&r->js, r->nc, &jo);
	if (s != NATS_OK) {
		natsConnection_Destroy(r->nc);
		r->nc = NULL;
		r->js = NULL;
		return bus_nats_errno(s);
	}
	r->stream_ok = false;
	return 0;
}

static bool stream_matches(const jsStreamConfig *c)
{
	bool subject = false;

	for (int i = 0; i < c->SubjectsLen; i++)
		if (c->Subjects[i] && strcmp(c->Subjects[i], "events.>") == 0)
			subject = true;
	return subject && c->Storage == js_FileStorage && c->Duplicates == DUPLICATE_WINDOW_NS;
}

/* Makes sure the stream exists: created if missing, left alone (and said) if different. */
static int relay_ensure_stream(struct bus *b)
{
	struct bus_relay *r = b->relay;
	const char *subjects[] = { "events.>" };
	jsStreamInfo *si = NULL;
	jsStreamConfig cfg;
	jsErrCode jerr = 0;
	natsStatus s;

	s = js_GetStreamInfo(&si, r->js, b->stream, NULL, &jerr);
	if (s == NATS_OK) {
		if (!stream_matches(si->Config))
			log_warn("bus: the JetStream stream exists with other settings; left as is",
				 "stream", "%s", b->stream);
		jsStreamInfo_Destroy(si);
		return 0;
	}
	if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr)
		return bus_js_errno(s, jerr);

	jsStreamConfig_Init(&cfg);
	cfg.Name = b->stream;
	cfg.Subjects = subjects;
	cfg.SubjectsLen = 1;
	cfg.Storage = js_FileStorage;
	cfg.Duplicates = DUPLICATE_WINDOW_NS;
	jerr = 0;
	s = js_AddStream(NULL, r->js, &cfg, NULL, &jerr);
	if (s != NATS_OK && jerr != JSStreamNameExistErr) /* another server made it */
		return bus_js_errno(s, jerr);
	log_info("bus: created the JetStream stream", "stream", "%s", b->stream);
	return 0;
}

/* Publishes the rows and waits for their acks; fills bt. */
static void publish_rows(struct bus *b, const struct db_rows *rows, struct batch *bt)
{
	struct bus_relay *r = b->relay;
	jsPubOptions po;
	natsStatus s;
	char subject[8 + BUS_TYPE_MAX + 1];

	pthread_mutex_lock(&r->ack_lock);
	r->cur = bt;
	pthread_mutex_unlock(&r->ack_lock);

	for (size_t i = 0; i < rows->n_rows; i++) {
		const char *type = db_rows_get(rows, i, 1);
		const char *payload = db_rows_get(rows, i, 2);
		size_t len = rows->lengths[i * rows->n_cols + 2];

		if (!type || !payload ||
		    snprintf(subject, sizeof(subject), "events.%s", type) >= (int)sizeof(subject)) {
			bt->err = bt->err ? bt->err : -EINVAL;
			continue;
		}
		jsPubOptions_Init(&po);
		po.MsgId = bt->ids[i];
		s = js_PublishAsync(r->js, subject, payload, (int)len, &po);
		if (s != NATS_OK) {
			pthread_mutex_lock(&r->ack_lock);
			bt->err = bt->err ? bt->err : bus_nats_errno(s);
			pthread_mutex_unlock(&r->ack_lock);
			break;
		}
	}

	jsPubOptions_Init(&po);
	po.MaxWait = ACK_WAIT_MS;
	s = js_PublishAsyncComplete(r->js, &po);
	if (s != NATS_OK) {
		natsMsgList pending = { 0 };

		/* Unacked messages come back to us and are dropped: their rows stay in the outbox. */
		if (js_PublishAsyncGetPendingList(&pending, r->js) == NATS_OK)
			natsMsgList_Destroy(&pending);
	}

	pthread_mutex_lock(&r->ack_lock);
	r->cur = NULL;
	if (s != NATS_OK && bt->err == 0)
		bt->err = bus_nats_errno(s);
	pthread_mutex_unlock(&r->ack_lock);
}

static const char select_sql[] = "SELECT id, type, payload FROM outbox WHERE sent_at IS NULL "
				 "ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED";
static const char done_sql[] = "DELETE FROM outbox WHERE id = ANY($1::uuid[])";

/* One pass (db_transaction callback): returns how many rows were published and deleted. */
static int relay_pass(struct db_conn *conn, void *ud)
{
	struct bus *b = ud;
	struct db_rows *rows = NULL;
	struct batch bt = { 0 };
	char limit[16], *ids = NULL, *p;
	int r;

	b->relay->pass_err = 0;
	snprintf(limit, sizeof(limit), "%d", b->batch);
	r = db_exec(conn, select_sql, (const struct db_param[]){ DB_TEXT(limit) }, 1, &rows);
	if (r < 0 || rows->n_rows == 0)
		goto out;

	bt.n = rows->n_rows;
	bt.ids = calloc(bt.n, sizeof(*bt.ids));
	bt.acked = calloc(bt.n, sizeof(*bt.acked));
	ids = malloc(bt.n * (BUS_UUID_LEN + 1) + 3);
	if (!bt.ids || !bt.acked || !ids) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < bt.n; i++)
		bt.ids[i] = db_rows_get(rows, i, 0) ? db_rows_get(rows, i, 0) : "";

	clock_gettime(CLOCK_MONOTONIC, &b->relay->last_pass);
	publish_rows(b, rows, &bt);
	b->relay->pass_err = bt.err;
	r = 0;
	if (bt.n_acked == 0)
		goto out;

	p = ids;
	*p++ = '{';
	for (size_t i = 0; i < bt.n; i++) {
		if (!bt.acked[i])
			continue;
		if (p[-1] != '{')
			*p++ = ',';
		memcpy(p, bt.ids[i], strlen(bt.ids[i]));
		p += strlen(bt.ids[i]);
	}
	*p++ = '}';
	*p = '\0';
	r = db_exec(conn, done_sql, (const struct db_param[]){ DB_TEXT(ids) }, 1, NULL);
	if (r >= 0) {
		r = (int)bt.n_acked;
		atomic_fetch_add(&b->published, bt.n_acked);
		if (bt.n_dup)
			log_debug("bus: JetStream dropped re-published duplicates", "count", "%zu",
				  bt.n_dup);
	}
out:
	free(ids);
	free(bt.acked);
	free(bt.ids);
	db_rows_free(rows);
	return r;
}

/* Drops a connection nats.c gave up on (closed), so that the next step connects anew. */
static void relay_disconnect(struct bus_relay *r)
{
	jsCtx_Destroy(r->js);
	natsConnection_Destroy(r->nc);
	r->js = NULL;
	r->nc = NULL;
}

enum step {
	STEP_AGAIN,
	STEP_IDLE,
	STEP_WAITED
};

/* One step of the loop: connect, check the stream, run a pass. */
static enum step relay_step(struct bus *b)
{
	struct bus_relay *r = b->relay;
	natsConnStatus cs;
	int n;

	if (!r->nc) {
		n = relay_connect(b);
		if (n < 0) {
			relay_set_state(r, RELAY_NATS_DOWN, n);
			relay_backoff(b);
			return STEP_WAITED;
		}
	}
	cs = natsConnection_Status(r->nc);
	if (cs == NATS_CONN_STATUS_CLOSED) {
		relay_disconnect(r);
		return STEP_AGAIN;
	}
	if (cs != NATS_CONN_STATUS_CONNECTED) {
		/* nats.c reconnects by itself; look again soon. */
		relay_set_state(r, RELAY_NATS_DOWN, -ENOTCONN);
		relay_wait(b, 250, false);
		return STEP_WAITED;
	}
	if (!r->stream_ok) {
		n = relay_ensure_stream(b);
		if (n < 0) {
			relay_set_state(r, RELAY_STREAM_ERROR, n);
			relay_backoff(b);
			return STEP_WAITED;
		}
		r->stream_ok = true;
	}

	n = db_transaction(b->db, false, relay_pass, b);
	if (n < 0 || r->pass_err < 0) {
		/* No responders: the stream vanished (a fresh server); make it again. */
		if (n >= 0 && (r->pass_err == -EHOSTUNREACH || r->pass_err == -ENOENT)) {
			r->stream_ok = false;
			relay_set_state(r, RELAY_NO_STREAM, r->pass_err);
			relay_backoff(b); /* a stream that exists but takes other subjects */
			return STEP_WAITED;
		}
		relay_set_state(r, RELAY_FAILING, n < 0 ? n : r->pass_err);
		relay_backoff(b);
		return STEP_WAITED;
	}
	relay_set_state(r, RELAY_RUNNING, 0);
	r->backoff_ms = 0;
	return n >= b->batch ? STEP_AGAIN : STEP_IDLE;
}

/* Milliseconds since t (monotonic). */
static long ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t->tv_sec) * 1000L + (now.tv_nsec - t->tv_nsec) / 1000000L;
}

/*
 * After a kick, lets gather_ms pass since the last pass that found rows, so that under
 * load the events of several commits share one pass; after a quiet spell the kick's
 * events go at once.
 */
static void relay_gather(struct bus *b)
{
	long since = ms_since(&b->relay->last_pass);

	if (b->gather_ms > 0 && since >= 0 && since < b->gather_ms)
		relay_wait(b, (int)(b->gather_ms - since), false);
}

static void *relay_main(void *arg)
{
	struct bus *b = arg;

	while (!relay_stopping(b))
		if (relay_step(b) == STEP_IDLE && relay_wait(b, b->idle_ms, true))
			relay_gather(b);
	return NULL;
}

static struct bus_relay *relay_free(struct bus_relay *r)
{
	if (!r)
		return NULL;
	relay_disconnect(r);
	natsOptions_Destroy(r->opts);
	pthread_mutex_destroy(&r->ack_lock);
	free(r);
	return NULL;
}

int bus_relay_start(struct bus *b)
{
	struct bus_relay *r;
	natsStatus s;
	int err;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->ack_lock, NULL);
	s = natsOptions_Create(&r->opts);
	if (s == NATS_OK)
		s = natsOptions_SetName(r->opts, "trstctl-bus");
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(r->opts, 2000);
	if (s == NATS_OK)
		s = natsOptions_SetAllowReconnect(r->opts, true);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(r->opts, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(r->opts, 250);
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(r->opts, 10000);
	if (s == NATS_OK)
		s = natsOptions_SetFailRequestsOnDisconnect(r->opts, true);
	if (s != NATS_OK) {
		relay_free(r);
		return bus_nats_errno(s);
	}

	b->relay = r;
	b->stopping = false;
	err = pthread_create(&b->thread, NULL, relay_main, b);
	if (err) {
		b->relay = relay_free(r);
		return -err;
	}
	b->running = true;
	return 0;
}

void bus_relay_stop(struct bus *b)
{
	pthread_mutex_lock(&b->lock);
	b->stopping = true;
	pthread_cond_signal(&b->wake);
	pthread_mutex_unlock(&b->lock);
	pthread_join(b->thread, NULL);
	b->running = false;
	b->relay = relay_free(b->relay);
}
