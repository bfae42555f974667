/*
 * Server-streaming calls: their admission and their life. Each stream runs its handler on
 * a thread of its own (it blocks while it waits for news), so streams are a bounded
 * resource, and admission decides who gets one (docs/architecture.md §2, "Streams"):
 *
 * - at most max_total at once, server-wide (server.max_streams);
 * - at most max_per_peer on one client connection, told apart by the call's peer string
 *   ("ipv4:127.0.0.1:5555": one TCP connection; server.max_streams_per_connection);
 * - at most max_unauthenticated streams whose caller showed no checked token: the methods
 *   that need no token (grpc.health.v1.Health/Watch) and every stream of a server without
 *   an authorizer. The rest of max_total is kept for authenticated streams, so callers
 *   without a token never starve Audit.WatchEvents (server.max_unauthenticated_streams).
 *
 * A stream that needs a token is authorized before it is admitted: inline on the
 * completion-queue thread when the authorizer can answer from its cache, else on the
 * worker pool (bounded; a full pool is RESOURCE_EXHAUSTED like any call). So a call
 * without a valid token never holds a stream, and an admitted one counts as authenticated.
 * A refusal is RESOURCE_EXHAUSTED with a message that names the limit that was hit.
 *
 * Assumes: the core gives each connection its own peer string (TCP: address and port) for
 * as long as it is open; the counts are released by the stream's own thread before its
 * final status is sent.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum {
	STACK_BYTES = 256 * 1024, /* a stream handler's thread stack */
	MAX_BUCKETS = 4096,	  /* chains stay short: live streams / buckets */
};

/* Admission ---------------------------------------------------------------------------- */

static uint64_t peer_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

/*
 * Sets up st with its limits: max_total >= 1, max_per_peer >= 0, max_unauthenticated in
 * 0..max_total (each 0: max_total, no limit of its own). Returns 0, -EINVAL or -ENOMEM.
 */
int rpc_streams_init(struct rpc_streams *st, int max_total, int max_per_peer,
		     int max_unauthenticated)
{
	size_t n = 1;

	if (max_total < 1 || max_per_peer < 0 || max_unauthenticated < 0 ||
	    max_unauthenticated > max_total)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	st->max_total = max_total;
	st->max_per_peer = max_per_peer ? max_per_peer : max_total;
	st->max_unauthenticated = max_unauthenticated ? max_unauthenticated : max_total;
	while (n < (size_t)max_total && n < MAX_BUCKETS)
		n <<= 1;
	st->buckets = calloc(n, sizeof(*st->buckets));
	if (!st->buckets)
		return -ENOMEM;
	st->n_buckets = n;
	pthread_mutex_init(&st->lock, NULL);
	return 0;
}

/* Frees what st holds (after every stream was released; a zeroed st is fine). */
void rpc_streams_fini(struct rpc_streams *st)
{
	if (!st->buckets)
		return;
	for (size_t i = 0; i < st->n_buckets; i++)
		while (st->buckets[i]) {
			struct rpc_stream_peer *p = st->buckets[i];

			st->buckets[i] = p->next;
			free(p);
		}
	free(st->buckets);
	st->buckets = NULL;
	pthread_mutex_destroy(&st->lock);
}

/*
 * Admits one stream of the connection peer, authenticated (its token was checked) or not.
 * Returns 0 and *ret_peer, the handle for rpc_streams_release; or, admitting nothing,
 * -EMFILE (the connection holds max_per_peer), -EDQUOT (an unauthenticated stream and
 * max_unauthenticated are live), -ENFILE (max_total are live), -ENOMEM.
 */
int rpc_streams_admit(struct rpc_streams *st, const char *peer, bool authenticated,
		      struct rpc_stream_peer **ret_peer)
{
	struct rpc_stream_peer **slot, *p;
	int r = 0;

	pthread_mutex_lock(&st->lock);
	slot = &st->buckets[peer_hash(peer) & (st->n_buckets - 1)];
	for (p = *slot; p && strcmp(p->name, peer) != 0; p = p->next)
		;
	if (p && p->streams >= st->max_per_peer)
		r = -EMFILE;
	else if (!authenticated && st->live_unauthenticated >= st->max_unauthenticated)
		r = -EDQUOT;
	else if (st->live >= st->max_total)
		r = -ENFILE;
	else if (!p) {
		size_t n = strlen(peer) + 1;

		p = malloc(sizeof(*p) + n);
		if (!p) {
			r = -ENOMEM;
		} else {
			memcpy(p->name, peer, n);
			p->streams = 0;
			p->next = *slot;
			*slot = p;
		}
	}
	if (r == 0) {
		p->streams++;
		st->live++;
		if (!authenticated)
			st->live_unauthenticated++;
		*ret_peer = p;
	}
	pthread_mutex_unlock(&st->lock);
	return r;
}

/* Releases one stream that rpc_streams_admit admitted with the same authenticated. */
void rpc_streams_release(struct rpc_streams *st, struct rpc_stream_peer *peer, bool authenticated)
{
	struct rpc_stream_peer **slot;

	pthread_mutex_lock(&st->lock);
	st->live--;
	if (!authenticated)
		st->live_unauthenticated--;
	if (--peer->streams == 0) {
		slot = &st->buckets[peer_hash(peer->name) & (st->n_buckets - 1)];
		while (*slot != peer)
			slot = &(*slot)->next;
		*slot = peer->next;
		free(peer);
	}
	pthread_mutex_unlock(&st->lock);
}

/* The message for a refusal r of rpc_streams_admit, shown to the caller. */
void rpc_streams_refusal(const struct rpc_streams *st, int r, char *buf, size_t len)
{
	switch (r) {
	case -EMFILE:
		snprintf(buf, len, "too many streams on this connection: at most %d at a time",
			 st->max_per_peer);
		break;
	case -EDQUOT:
		snprintf(buf, len,
			 "too many streams without a token on this server: at most %d at a time "
			 "(calls with a valid bearer token have a share of their own)",
			 st->max_unauthenticated);
		break;
	case -ENFILE:
		snprintf(buf, len, "too many streams on this server: at most %d at a time",
			 st->max_total);
		break;
	default:
		snprintf(buf, len, "cannot start a stream: %s", strerror(-r));
	}
}

/* Life of a stream --------------------------------------------------------------------- */

static void *stream_thread(void *arg)
{
	struct rpc_call *c = arg;
	struct rpc_server *s = c->server;
	int r;

	r = c->method->handler.stream(c, c->req, c->method->user);
	if (r >= 0 && c->code == RPC_OK && rpc_call_cancelled(c))
		r = -ECANCELED;
	/* Before the status: once it is sent the call may be freed on a CQ thread. */
	rpc_streams_release(&s->streams, c->stream_peer, c->stream_authenticated);
	c->stream_peer = NULL;
	rpc_call_finish(c, r, NULL);
	atomic_fetch_sub(&s->live_streams, 1);
	return NULL;
}

/* Admits c (authorized already when authenticated) and starts its handler's thread. */
static void admit_and_run(struct rpc_call *c, bool authenticated)
{
	struct rpc_server *s = c->server;
	pthread_attr_t attr;
	char msg[256];
	pthread_t t;
	int r;

	if (atomic_load(&s->shutting_down)) {
		rpc_call_finish(c, rpc_call_error(c, RPC_UNAVAILABLE, "server is shutting down"),
				NULL);
		return;
	}
	r = rpc_streams_admit(&s->streams, rpc_call_peer(c), authenticated, &c->stream_peer);
	if (r < 0) {
		rpc_streams_refusal(&s->streams, r, msg, sizeof(msg));
		rpc_call_finish(c, rpc_call_error(c, RPC_RESOURCE_EXHAUSTED, "%s", msg), NULL);
		return;
	}
	c->stream_authenticated = authenticated;
	atomic_fetch_add(&s->live_streams, 1);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, STACK_BYTES);
	r = pthread_create(&t, &attr, stream_thread, c);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		rpc_streams_release(&s->streams, c->stream_peer, authenticated);
		c->stream_peer = NULL;
		atomic_fetch_sub(&s->live_streams, 1);
		rpc_call_finish(c,
				rpc_call_error(c, RPC_RESOURCE_EXHAUSTED,
					       "cannot start a stream: %s", strerror(r)),
				NULL);
	}
}

/*
 * A decoded server-streaming call, on its completion-queue thread. Without an authorizer,
 * or for an open method, it is admitted as unauthenticated at once. Otherwise the
 * authorizer runs here inline; when it would block the call goes to the pool
 * (rpc_stream_run_pooled) with nothing of this run kept.
 */
void rpc_stream_start(struct rpc_call *c)
{
	struct rpc_server *s = c->server;
	int r;

	if (!s->auth || c->method->open) {
		admit_and_run(c, false);
		return;
	}
	if (!rpc_call_cancelled(c)) {
		c->is_inline = true;
		r = rpc_call_authorize(c);
		c->is_inline = false;
		if (r != -EWOULDBLOCK || c->code != RPC_OK) {
			if (r < 0)
				rpc_call_finish(c, r, NULL);
			else
				admit_and_run(c, true);
			return;
		}
		c->message = NULL;
		c->principal = NULL;
	}
	if (rpc_pool_submit(&s->pool, c) < 0)
		rpc_call_finish(c,
				rpc_call_error(c, RPC_RESOURCE_EXHAUSTED,
					       "server busy: the work queue is full"),
				NULL);
}

/* A stream call whose authorization may block, on a pool thread: authorize, admit, run. */
void rpc_stream_run_pooled(struct rpc_call *c)
{
	int r;

	if (rpc_call_cancelled(c)) {
		r = rpc_call_error(
			c, rpc_call_remaining_ms(c) == 0 ? RPC_DEADLINE_EXCEEDED : RPC_CANCELLED,
			"call ended before it was handled");
		rpc_call_finish(c, r, NULL);
		return;
	}
	r = rpc_call_authorize(c);
	if (r < 0)
		rpc_call_finish(c, r, NULL);
	else
		admit_and_run(c, true);
}

static void send_done_cb(struct rpc_tag *tag, bool ok)
{
	struct rpc_call *c = tag->call;

	pthread_mutex_lock(&c->mu);
	c->send_done = true;
	c->send_ok = ok;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

int rpc_call_send(struct rpc_call *c, const ProtobufCMessage *msg)
{
	grpc_op ops[2];
	size_t n = 0;
	bool ok;

	if (rpc_call_cancelled(c))
		return -ECANCELED;
	memset(ops, 0, sizeof(ops));
	if (!c->sent_initial_md) {
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
		c->sent_initial_md = true;
	}
	if (c->send)
		grpc_byte_buffer_destroy(c->send);
	c->send = rpc_pack(msg);
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n++].data.send_message.send_message = c->send;
	c->send_done = false;
	c->batch_tag.cb = send_done_cb;
	if (grpc_call_start_batch(c->core, ops, n, &c->batch_tag, NULL) != GRPC_CALL_OK)
		return -ECANCELED;
	pthread_mutex_lock(&c->mu);
	while (!c->send_done)
		pthread_cond_wait(&c->cv, &c->mu);
	ok = c->send_ok;
	pthread_mutex_unlock(&c->mu);
	return ok ? 0 : -ECANCELED;
}

bool rpc_call_wait(struct rpc_call *c, int timeout_ms)
{
	struct rpc_server *s = c->server;
	struct timespec until;
	unsigned long v;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->lock);
	v = s->version;
	while (!rpc_call_cancelled(c) && !atomic_load(&s->shutting_down) && v == s->version)
		if (pthread_cond_timedwait(&s->cond, &s->lock, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&s->lock);
	return rpc_call_cancelled(c) || atomic_load(&s->shutting_down);
}

void rpc_server_notify_streams(struct rpc_server *s)
{
	pthread_mutex_lock(&s->lock);
	s->version++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}
