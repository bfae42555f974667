/*
 * The gRPC server runtime on the C core. Each worker thread owns one completion queue;
 * for every registered method a few requests are posted on every queue, plus generic
 * requests so that unknown methods are answered UNIMPLEMENTED at once instead of hanging.
 * A call stays on the queue that accepted it, so its events run on one thread; stream
 * handlers and blocking unary handlers run on other threads and hand their batches to the
 * core, which is allowed from any thread.
 *
 * Every accepted call posts RECV_CLOSE_ON_SERVER on its own tag, so cancellation and
 * deadlines are seen while a handler runs. A call holds one reference for its main chain
 * and one for that batch; it is freed when both completed. Shutdown follows the order the
 * core needs: stop posting, shutdown_and_notify, cancel after the grace period, wait for
 * live calls to reach zero, and only then shut the queues down.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "internal.h"
#include "wire.h"

enum {
	REQUESTS_PER_METHOD = 4, /* requests posted per method per queue */
	REQUESTS_GENERIC = 2,    /* generic requests posted per queue */
};

static void new_call_cb(struct rpc_tag *tag, bool ok);
static void generic_call_cb(struct rpc_tag *tag, bool ok);

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p)
		abort();
	return p;
}

/* Per-call memory ---------------------------------------------------------------------- */

void *rpc_call_alloc(struct rpc_call *call, size_t size)
{
	void *p = grpc_call_arena_alloc(call->core, size ? size : 1);

	memset(p, 0, size);
	return p;
}

char *rpc_call_strdup(struct rpc_call *call, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = grpc_call_arena_alloc(call->core, n);

	memcpy(p, s, n);
	return p;
}

ProtobufCMessage *rpc_call_new_message(struct rpc_call *call, const ProtobufCMessageDescriptor *d)
{
	ProtobufCMessage *m = rpc_call_alloc(call, d->sizeof_message);

	d->message_init(m);
	return m;
}

/* Call context ------------------------------------------------------------------------- */

const char *rpc_call_method(const struct rpc_call *call)
{
	return call->method ? call->method->path : "";
}

const char *rpc_call_peer(const struct rpc_call *call)
{
	struct rpc_call *c = (struct rpc_call *)call;
	char *p;

	if (!c->peer) {
		p = grpc_call_get_peer(c->core);
		c->peer = rpc_call_strdup(c, p ? p : "unknown");
		gpr_free(p);
	}
	return c->peer;
}

const char *rpc_call_metadata(const struct rpc_call *call, const char *key)
{
	struct rpc_call *c = (struct rpc_call *)call;

	for (size_t i = 0; i < c->md.count; i++) {
		const grpc_metadata *m = &c->md.metadata[i];
		size_t n = GRPC_SLICE_LENGTH(m->value);
		char *v;

		if (grpc_slice_str_cmp(m->key, key) != 0 || grpc_is_binary_header(m->key))
			continue;
		v = grpc_call_arena_alloc(c->core, n + 1);
		memcpy(v, GRPC_SLICE_START_PTR(m->value), n);
		v[n] = '\0';
		return v;
	}
	return NULL;
}

int64_t rpc_call_remaining_ms(const struct rpc_call *call)
{
	gpr_timespec now = gpr_now(call->deadline.clock_type);
	gpr_timespec left;

	if (gpr_time_cmp(call->deadline, gpr_inf_future(call->deadline.clock_type)) == 0)
		return INT64_MAX;
	if (gpr_time_cmp(call->deadline, now) <= 0)
		return 0;
	left = gpr_time_sub(call->deadline, now);
	return left.tv_sec * 1000 + left.tv_nsec / 1000000;
}

bool rpc_call_cancelled(const struct rpc_call *call)
{
	return atomic_load(&call->cancelled) || rpc_call_remaining_ms(call) == 0;
}

bool rpc_call_is_inline(const struct rpc_call *call)
{
	return call->is_inline;
}

const char *rpc_call_principal(const struct rpc_call *call)
{
	return call->principal;
}

void rpc_call_set_principal(struct rpc_call *call, const char *principal)
{
	call->principal = principal ? rpc_call_strdup(call, principal) : NULL;
}

int rpc_call_error(struct rpc_call *call, enum rpc_code code, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	call->code = code;
	call->message = rpc_call_strdup(call, buf);
	return -EPROTO;
}

/* Call life ---------------------------------------------------------------------------- */

static struct rpc_call *call_new(struct rpc_server *server, struct rpc_worker *worker,
				 struct rpc_method *method)
{
	struct rpc_call *c = xcalloc(1, sizeof(*c));

	c->server = server;
	c->worker = worker;
	c->method = method;
	grpc_metadata_array_init(&c->md);
	grpc_call_details_init(&c->details);
	c->new_tag.call = c->batch_tag.call = c->close_tag.call = c;
	c->new_tag.cb = method ? new_call_cb : generic_call_cb;
	atomic_init(&c->refs, 1);
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	return c;
}

static void call_free(struct rpc_call *c)
{
	bool accepted = c->core != NULL;

	if (c->req)
		protobuf_c_message_free_unpacked(c->req, NULL);
	if (c->payload)
		grpc_byte_buffer_destroy(c->payload);
	if (c->recv)
		grpc_byte_buffer_destroy(c->recv);
	if (c->send)
		grpc_byte_buffer_destroy(c->send);
	grpc_slice_unref(c->status_details);
	grpc_metadata_array_destroy(&c->md);
	grpc_call_details_destroy(&c->details);
	if (c->core)
		grpc_call_unref(c->core);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	if (accepted) {
		struct rpc_server *s = c->server;

		pthread_mutex_lock(&s->lock);
		if (atomic_fetch_sub(&s->live_calls, 1) == 1)
			pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
	}
	free(c);
}

void rpc_call_unref(struct rpc_call *call)
{
	if (atomic_fetch_sub(&call->refs, 1) == 1)
		call_free(call);
}

static void post_request(struct rpc_server *s, struct rpc_worker *w, struct rpc_method *m)
{
	struct rpc_call *c;
	grpc_call_error e;

	if (atomic_load(&s->shutting_down))
		return;
	c = call_new(s, w, m);
	if (m)
		e = grpc_server_request_registered_call(
			s->core, m->registered, &c->core, &c->deadline, &c->md,
			m->kind == RPC_UNARY || m->kind == RPC_SERVER_STREAMING ? &c->payload : NULL,
			w->cq, w->cq, &c->new_tag);
	else
		e = grpc_server_request_call(s->core, &c->core, &c->details, &c->md, w->cq, w->cq,
					     &c->new_tag);
	if (e != GRPC_CALL_OK) {
		c->core = NULL;
		call_free(c);
	}
}

static void close_cb(struct rpc_tag *tag, bool ok)
{
	struct rpc_call *c = tag->call;

	if (!ok || c->close_cancelled) {
		atomic_store(&c->cancelled, true);
		pthread_mutex_lock(&c->server->lock);
		pthread_cond_broadcast(&c->server->cond);
		pthread_mutex_unlock(&c->server->lock);
	}
	rpc_call_unref(c);
}

/* Takes the reference of the RECV_CLOSE batch; -EIO when the core refused it. */
static int post_close(struct rpc_call *c)
{
	grpc_op op = { .op = GRPC_OP_RECV_CLOSE_ON_SERVER };

	op.data.recv_close_on_server.cancelled = &c->close_cancelled;
	c->close_tag.cb = close_cb;
	atomic_fetch_add(&c->refs, 1);
	if (grpc_call_start_batch(c->core, &op, 1, &c->close_tag, NULL) != GRPC_CALL_OK) {
		atomic_fetch_sub(&c->refs, 1);
		return -EIO;
	}
	return 0;
}

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void accept_call(struct rpc_call *c)
{
	if (c->server->done) {
		c->start_unix_ns = clock_ns(CLOCK_REALTIME);
		c->start_mono_ns = clock_ns(CLOCK_MONOTONIC);
	}
	atomic_fetch_add(&c->server->live_calls, 1);
	if (post_close(c) < 0)
		atomic_store(&c->cancelled, true);
}

grpc_byte_buffer *rpc_pack(const ProtobufCMessage *msg)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	grpc_slice s = grpc_slice_malloc(n);
	grpc_byte_buffer *bb;

	protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
	bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

/*
 * Decodes a request: NULL when the bytes are not a message of d (*ret_bad_string false),
 * or when a string field holds NUL or invalid UTF-8 (wire.c; *ret_bad_string true and
 * field gets its path), so that no handler sees a string cut short.
 */
static ProtobufCMessage *unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb,
				char field[RPC_WIRE_PATH_MAX], bool *ret_bad_string)
{
	grpc_byte_buffer_reader r;
	ProtobufCMessage *m;
	grpc_slice s;

	*ret_bad_string = false;
	if (!grpc_byte_buffer_reader_init(&r, bb))
		return NULL;
	s = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	m = protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
	if (m && rpc_wire_check_strings(d, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s), field,
					RPC_WIRE_PATH_MAX) < 0) {
		protobuf_c_message_free_unpacked(m, NULL);
		m = NULL;
		*ret_bad_string = field[0] != '\0';
	}
	grpc_slice_unref(s);
	return m;
}

/* The INVALID_ARGUMENT message of a string field unpack refused. */
#define BAD_STRING_FMT "%s: a string field must be valid UTF-8 without NUL bytes"

static void final_cb(struct rpc_tag *tag, bool ok)
{
	rpc_call_unref(tag->call);
}

/* Tells the completion hook, when there is one, that c ends with code. */
static void report_done(struct rpc_call *c, enum rpc_code code)
{
	struct rpc_server *s = c->server;
	struct rpc_call_done d;
	int64_t took;

	if (!s->done || !c->method)
		return;
	took = clock_ns(CLOCK_MONOTONIC) - c->start_mono_ns;
	d = (struct rpc_call_done){ .method = c->method->path,
				    .code = code,
				    .start_unix_ns = c->start_unix_ns,
				    .end_unix_ns = c->start_unix_ns + (took > 0 ? took : 0),
				    .principal = c->principal };
	s->done(&d, s->done_user);
}

/* Sends the final status (and the reply when resp is set); releases the main reference. */
static void send_final(struct rpc_call *c, enum rpc_code code, const char *message,
		       const ProtobufCMessage *resp)
{
	grpc_op ops[3];
	size_t n = 0;

	report_done(c, code);

	memset(ops, 0, sizeof(ops));
	if (!c->sent_initial_md) {
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
		c->sent_initial_md = true;
	}
	if (resp && code == RPC_OK) {
		if (c->send)
			grpc_byte_buffer_destroy(c->send);
		c->send = rpc_pack(resp);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = c->send;
	}
	c->status_details = grpc_slice_from_copied_string(message ? message : "");
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = (grpc_status_code)code;
	ops[n++].data.send_status_from_server.status_details = &c->status_details;
	c->batch_tag.cb = final_cb;
	if (grpc_call_start_batch(c->core, ops, n, &c->batch_tag, NULL) != GRPC_CALL_OK)
		rpc_call_unref(c);
}

/* Maps a handler result to the final status and sends it. */
void rpc_call_finish(struct rpc_call *c, int r, const ProtobufCMessage *resp)
{
	enum rpc_code code;
	char buf[256];
	const char *msg;

	if (r >= 0 && c->code == RPC_OK) {
		if (!resp && c->method && c->method->kind == RPC_UNARY) {
			send_final(c, RPC_INTERNAL, "handler returned no reply", NULL);
			return;
		}
		send_final(c, RPC_OK, NULL, resp);
		return;
	}
	if (c->code != RPC_OK) {
		code = c->code;
		msg = c->message;
	} else {
		code = rpc_errno_code(r);
		snprintf(buf, sizeof(buf), "%s: %s", rpc_call_method(c), rpc_errno_message(r));
		msg = buf;
	}
	send_final(c, code, msg, NULL);
}

/* Runs the authorizer, when there is one and the method is not open. */
int rpc_call_authorize(struct rpc_call *c)
{
	struct rpc_server *s = c->server;

	if (!s->auth || c->method->open)
		return 0;
	return s->auth(c, c->req, s->auth_user);
}

void rpc_server_set_auth(struct rpc_server *s, rpc_auth_fn fn, void *user)
{
	s->auth = fn;
	s->auth_user = user;
}

void rpc_server_set_done_hook(struct rpc_server *s, rpc_done_fn fn, void *user)
{
	s->done = fn;
	s->done_user = user;
}

void rpc_server_set_item_auth(struct rpc_server *s, rpc_item_fn fn, void *user)
{
	s->item_auth = fn;
	s->item_auth_user = user;
}

int rpc_call_item_visible(struct rpc_call *c, const char *prefix, const char *name)
{
	struct rpc_server *s = c->server;
	char *res;

	if (!s->item_auth || c->method->open)
		return 1;
	res = rpc_call_alloc(c, strlen(prefix) + strlen(name) + 1);
	strcpy(res, prefix);
	strcat(res, name);
	return s->item_auth(c, res, s->item_auth_user);
}

/* Bidi: every received message is answered with one message; a half-close ends it OK. */
static void bidi_cb(struct rpc_tag *tag, bool ok);

static void bidi_next(struct rpc_call *c, const ProtobufCMessage *resp)
{
	grpc_op ops[3];
	size_t n = 0;

	memset(ops, 0, sizeof(ops));
	if (!c->sent_initial_md) {
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
		c->sent_initial_md = true;
	}
	if (resp) {
		if (c->send)
			grpc_byte_buffer_destroy(c->send);
		c->send = rpc_pack(resp);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = c->send;
	}
	ops[n].op = GRPC_OP_RECV_MESSAGE;
	ops[n++].data.recv_message.recv_message = &c->recv;
	c->batch_tag.cb = bidi_cb;
	if (grpc_call_start_batch(c->core, ops, n, &c->batch_tag, NULL) != GRPC_CALL_OK)
		rpc_call_unref(c);
}

static void bidi_cb(struct rpc_tag *tag, bool ok)
{
	struct rpc_call *c = tag->call;
	ProtobufCMessage *req, *resp = NULL;
	char field[RPC_WIRE_PATH_MAX], buf[RPC_WIRE_PATH_MAX + 64];
	bool bad_string;
	int r;

	if (!ok) {
		rpc_call_unref(c);
		return;
	}
	if (!c->recv) {
		send_final(c, RPC_OK, NULL, NULL);
		return;
	}
	req = unpack(c->method->input, c->recv, field, &bad_string);
	grpc_byte_buffer_destroy(c->recv);
	c->recv = NULL;
	if (!req) {
		snprintf(buf, sizeof(buf), BAD_STRING_FMT, field);
		send_final(c, RPC_INVALID_ARGUMENT, bad_string ? buf : "malformed request message",
			   NULL);
		return;
	}
	r = c->method->handler.bidi(c, req, &resp, c->method->user);
	if (r < 0 || !resp) {
		protobuf_c_message_free_unpacked(req, NULL);
		rpc_call_finish(c, r < 0 ? r : -EIO, NULL);
		return;
	}
	/* The reply may point into the request (reflection's original_request): pack first. */
	bidi_next(c, resp);
	protobuf_c_message_free_unpacked(req, NULL);
}

/*
 * The first run of an inline_try method, on the CQ thread. Returns true when the call was
 * answered, false when the authorizer or the handler said -EWOULDBLOCK: then the call is
 * as it was before the run (no status, no principal; nothing was sent) for the pool.
 */
static bool try_inline(struct rpc_call *c)
{
	ProtobufCMessage *resp = NULL;
	int r;

	if (rpc_call_cancelled(c))
		return false; /* the pool answers it as usual */
	c->is_inline = true;
	r = rpc_call_authorize(c);
	if (r >= 0)
		r = c->method->handler.unary(c, c->req, &resp, c->method->user);
	c->is_inline = false;
	if (r == -EWOULDBLOCK && c->code == RPC_OK) {
		c->message = NULL;
		c->principal = NULL;
		return false;
	}
	rpc_call_finish(c, r, resp);
	return true;
}

static void dispatch(struct rpc_call *c)
{
	struct rpc_method *m = c->method;
	const struct rpc_method_handler *h = &m->handler;
	char buf[512], field[RPC_WIRE_PATH_MAX];
	bool bad_string;

	if (m->kind == RPC_BIDI && h->bidi) {
		bidi_next(c, NULL);
		return;
	}
	if (m->kind == RPC_CLIENT_STREAMING || m->kind == RPC_BIDI) {
		snprintf(buf, sizeof(buf), "method %s is not implemented", m->path);
		send_final(c, RPC_UNIMPLEMENTED, buf, NULL);
		return;
	}
	if (!c->payload) {
		send_final(c, RPC_INTERNAL, "request message missing", NULL);
		return;
	}
	c->req = unpack(m->input, c->payload, field, &bad_string);
	if (!c->req) {
		if (bad_string)
			snprintf(buf, sizeof(buf), BAD_STRING_FMT, field);
		else
			snprintf(buf, sizeof(buf), "malformed request: not a valid %s message",
				 m->input->name);
		send_final(c, RPC_INVALID_ARGUMENT, buf, NULL);
		return;
	}
	if (m->kind == RPC_SERVER_STREAMING && h->stream) {
		rpc_stream_start(c);
		return;
	}
	if ((m->kind != RPC_UNARY || !h->unary) && (!c->server->auth || m->open)) {
		snprintf(buf, sizeof(buf), "method %s is not implemented yet", m->path);
		send_final(c, RPC_UNIMPLEMENTED, buf, NULL);
		return;
	}
	if (h->inline_ok && (!c->server->auth || m->open)) {
		rpc_run_unary(c);
		return;
	}
	/* an inline_ok handler under an authorizer: the authorizer decides inline when it can
	 * (a cached token), so that calls that never wait are not queued behind ones that do */
	if ((h->inline_try || h->inline_ok) && h->unary && try_inline(c))
		return;
	if (rpc_pool_submit(&c->server->pool, c) < 0)
		send_final(c, RPC_RESOURCE_EXHAUSTED, "server busy: the work queue is full", NULL);
}

void rpc_run_unary(struct rpc_call *c)
{
	ProtobufCMessage *resp = NULL;
	int r;

	if (rpc_call_cancelled(c)) {
		send_final(c, rpc_call_remaining_ms(c) == 0 ? RPC_DEADLINE_EXCEEDED : RPC_CANCELLED,
			   "call ended before it was handled", NULL);
		return;
	}
	r = rpc_call_authorize(c);
	if (r >= 0 && !c->method->handler.unary)
		r = rpc_call_error(c, RPC_UNIMPLEMENTED, "method %s is not implemented yet",
				   c->method->path);
	if (r >= 0)
		r = c->method->handler.unary(c, c->req, &resp, c->method->user);
	rpc_call_finish(c, r, resp);
}

static void new_call_cb(struct rpc_tag *tag, bool ok)
{
	struct rpc_call *c = tag->call;

	if (!ok) {
		c->core = NULL; /* no call was accepted: nothing to release in the core */
		call_free(c);
		return;
	}
	post_request(c->server, c->worker, c->method);
	accept_call(c);
	dispatch(c);
}

static void generic_call_cb(struct rpc_tag *tag, bool ok)
{
	struct rpc_call *c = tag->call;
	char *path, buf[512];

	if (!ok) {
		c->core = NULL;
		call_free(c);
		return;
	}
	post_request(c->server, c->worker, NULL);
	accept_call(c);
	path = grpc_slice_to_c_string(c->details.method);
	snprintf(buf, sizeof(buf), "unknown method %s", path);
	gpr_free(path);
	send_final(c, RPC_UNIMPLEMENTED, buf, NULL);
}

/* Workers ------------------------------------------------------------------------------ */

static void *worker_main(void *arg)
{
	struct rpc_worker *w = arg;

	for (;;) {
		grpc_event ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
							   NULL);
		struct rpc_tag *tag;

		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		tag = ev.tag;
		tag->cb(tag, ev.success != 0);
	}
	return NULL;
}

/* Server ------------------------------------------------------------------------------- */

int rpc_server_new(const struct rpc_server_config *config, const uint8_t *descset,
		   size_t descset_len, struct rpc_server **ret_server)
{
	struct rpc_server *s;
	int r;

	if (!config || !config->addr || config->workers < 1 || config->pool_threads < 1 ||
	    config->pool_queue < 1 || config->max_request_bytes < 1 ||
	    config->max_request_bytes > INT32_MAX)
		return -EINVAL;
	s = xcalloc(1, sizeof(*s));
	s->config = *config;
	r = rpc_streams_init(&s->streams, config->max_streams, config->max_streams_per_peer,
			     config->max_unauthenticated_streams);
	if (r >= 0)
		r = rpc_descset_load(descset, descset_len, &s->descset);
	if (r < 0) {
		rpc_streams_fini(&s->streams);
		free(s);
		return r;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	atomic_init(&s->live_calls, 0);
	atomic_init(&s->live_streams, 0);
	atomic_init(&s->shutting_down, false);

	grpc_arg args[] = {
		{ .type = GRPC_ARG_INTEGER,
		  .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
		  .value.integer = (int)config->max_request_bytes },
	};
	grpc_channel_args cargs = { .num_args = 1, .args = args };

	s->core = grpc_server_create(&cargs, NULL);
	rpc_server_set_health(s, "", true);
	*ret_server = s;
	return 0;
}

int rpc_server_add_method(struct rpc_server *s, const char *service, const char *method,
			  const ProtobufCMessageDescriptor *input,
			  const ProtobufCMessageDescriptor *output,
			  const struct rpc_method_handler *handler, void *user)
{
	struct rpc_method *m;
	int cs, ss, r;
	size_t n;

	if (s->started)
		return -EBUSY;
	r = rpc_descset_method_kind(s->descset, service, method, &cs, &ss);
	if (r < 0)
		return r;
	m = xcalloc(1, sizeof(*m));
	m->kind = cs && ss ? RPC_BIDI : cs ? RPC_CLIENT_STREAMING :
				   ss ? RPC_SERVER_STREAMING : RPC_UNARY;
	if (handler) {
		if ((handler->unary && m->kind != RPC_UNARY) ||
		    (handler->stream && m->kind != RPC_SERVER_STREAMING) ||
		    (handler->bidi && m->kind != RPC_BIDI)) {
			free(m);
			return -EINVAL;
		}
		m->handler = *handler;
	}
	n = strlen(service) + strlen(method) + 3;
	m->path = xcalloc(1, n);
	snprintf(m->path, n, "/%s/%s", service, method);
	m->input = input;
	m->output = output;
	m->user = user;
	m->open = strncmp(service, "grpc.health.", 12) == 0 ||
		  strncmp(service, "grpc.reflection.", 16) == 0;
	m->registered = grpc_server_register_method(
		s->core, m->path, NULL,
		m->kind == RPC_UNARY || m->kind == RPC_SERVER_STREAMING ?
			GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER :
			GRPC_SRM_PAYLOAD_NONE,
		0);
	if (!m->registered) {
		free(m->path);
		free(m);
		return -EEXIST;
	}
	s->methods = realloc(s->methods, (s->n_methods + 1) * sizeof(*s->methods));
	if (!s->methods)
		abort();
	s->methods[s->n_methods++] = m;

	for (n = 0; n < s->n_services; n++)
		if (strcmp(s->services[n], service) == 0)
			break;
	if (n == s->n_services) {
		s->services = realloc(s->services, (n + 1) * sizeof(*s->services));
		if (!s->services)
			abort();
		s->services[s->n_services++] = strdup(service);
		rpc_server_set_health(s, service, true);
	}
	m->service = s->services[n];
	return 0;
}

int rpc_server_add_service(struct rpc_server *s, const ProtobufCServiceDescriptor *desc,
			   const struct rpc_method_handler *handlers, void *user)
{
	for (unsigned i = 0; i < desc->n_methods; i++) {
		const ProtobufCMethodDescriptor *md = &desc->methods[i];
		int r = rpc_server_add_method(s, desc->name, md->name, md->input, md->output,
					      handlers ? &handlers[i] : NULL, user);

		if (r < 0)
			return r;
	}
	return 0;
}

int rpc_server_add_standard_services(struct rpc_server *s)
{
	int r = rpc_health_register(s);

	return r < 0 ? r : rpc_reflection_register(s);
}

/* ":8443" listens on every address; grpc wants "[::]:8443" for that. */
static char *listen_addr(const char *addr)
{
	size_t n = strlen(addr) + 8;
	char *a = xcalloc(1, n);

	snprintf(a, n, "%s%s", addr[0] == ':' ? "[::]" : "", addr);
	return a;
}

int rpc_server_start(struct rpc_server *s, int *ret_port)
{
	grpc_server_credentials *creds = NULL;
	char *addr;
	int port, r;

	r = rpc_tls_credentials(&s->config, &creds, &s->tls_reload);
	if (r < 0)
		return r;
	addr = listen_addr(s->config.addr);
	port = grpc_server_add_http2_port(s->core, addr, creds);
	grpc_server_credentials_release(creds);
	free(addr);
	if (port <= 0)
		return -EADDRNOTAVAIL;

	s->n_workers = s->config.workers;
	s->workers = xcalloc((size_t)s->n_workers, sizeof(*s->workers));
	for (int i = 0; i < s->n_workers; i++) {
		s->workers[i].server = s;
		s->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
		grpc_server_register_completion_queue(s->core, s->workers[i].cq, NULL);
	}
	s->shutdown_cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_server_register_completion_queue(s->core, s->shutdown_cq, NULL);
	r = rpc_pool_start(&s->pool, s->config.pool_threads, s->config.pool_queue);
	if (r < 0)
		return r;
	grpc_server_start(s->core);
	s->started = true;

	for (int i = 0; i < s->n_workers; i++) {
		struct rpc_worker *w = &s->workers[i];

		for (size_t j = 0; j < s->n_methods; j++)
			for (int k = 0; k < REQUESTS_PER_METHOD; k++)
				post_request(s, w, s->methods[j]);
		for (int k = 0; k < REQUESTS_GENERIC; k++)
			post_request(s, w, NULL);
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
			abort();
	}
	*ret_port = port;
	return 0;
}

void rpc_server_shutdown(struct rpc_server *s)
{
	int tag;
	grpc_event ev;
	gpr_timespec grace;

	if (!s || !s->started)
		return;
	atomic_store(&s->shutting_down, true);
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n_health; i++)
		s->health[i].serving = false;
	s->version++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);

	grpc_server_shutdown_and_notify(s->core, s->shutdown_cq, &tag);
	grace = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
			     gpr_time_from_millis(s->config.grace_ms, GPR_TIMESPAN));
	ev = grpc_completion_queue_pluck(s->shutdown_cq, &tag, grace, NULL);
	if (ev.type == GRPC_QUEUE_TIMEOUT) {
		grpc_server_cancel_all_calls(s->core);
		grpc_completion_queue_pluck(s->shutdown_cq, &tag,
					    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	}
	/* The core may finish before our handlers stop starting batches: wait for them. */
	pthread_mutex_lock(&s->lock);
	while (atomic_load(&s->live_calls) > 0 || atomic_load(&s->live_streams) > 0) {
		struct timespec t;

		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_nsec += 50 * 1000000L;
		if (t.tv_nsec >= 1000000000L) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->cond, &s->lock, &t);
	}
	pthread_mutex_unlock(&s->lock);
	rpc_pool_stop(&s->pool);
	for (int i = 0; i < s->n_workers; i++)
		grpc_completion_queue_shutdown(s->workers[i].cq);
	for (int i = 0; i < s->n_workers; i++)
		pthread_join(s->workers[i].thread, NULL);
	s->started = false;
}

struct rpc_server *rpc_server_free(struct rpc_server *s)
{
	if (!s)
		return NULL;
	rpc_server_shutdown(s);
	if (s->core)
		grpc_server_destroy(s->core);
	s->tls_reload = rpc_tls_reload_free(s->tls_reload); /* no handshake starts any more */
	for (int i = 0; i < s->n_workers; i++)
		grpc_completion_queue_destroy(s->workers[i].cq);
	if (s->shutdown_cq) {
		grpc_completion_queue_shutdown(s->shutdown_cq);
		grpc_completion_queue_pluck(s->shutdown_cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME),
					    NULL);
		grpc_completion_queue_destroy(s->shutdown_cq);
	}
	free(s->workers);
	for (size_t i = 0; i < s->n_methods; i++) {
		free(s->methods[i]->path);
		free(s->methods[i]);
	}
	free(s->methods);
	for (size_t i = 0; i < s->n_services; i++)
		free((char *)s->services[i]);
	free(s->services);
	s->health = rpc_health_free(s->health, s->n_health);
	rpc_descset_free(s->descset);
	rpc_streams_fini(&s->streams);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
	return NULL;
}
