/*
 * The OTLP exporter (otel.h). The hooks copy a finished call or a committed audit record
 * into one of two bounded FIFO queues (traces, logs) and return; a full queue drops the
 * new item and counts it. One thread takes a batch of a signal when otlp.batch_size items
 * wait or its oldest item waited otlp.batch_interval (the two signals take turns), encodes
 * it (encode.c), and POSTs it to <endpoint>/v1/traces or /v1/logs through the guarded
 * HTTP client: the egress policy judges every request, and the endpoint's name is the one
 * guard_config_check admitted at start-up. A retryable failure (429, 502, 503, 504, a
 * connection error or timeout) is sent again after the collector's Retry-After or an
 * exponential backoff with jitter, until otlp.retry_max_elapsed has passed since the first
 * attempt; then, as for any other failure, its items are counted as failed. While the
 * thread waits or retries, the queues keep filling and then drop: a call never waits for
 * the collector. Logging: one line when a signal starts failing (the reason: a status or
 * the guard's message, never a header), one when it recovers. The bearer token and header
 * values live only in the request headers and are wiped when the exporter stops.
 */
#include "otel-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "cfg.h"
#include "guard.h"
#include "http.h"
#include "log.h"
#include "rpc.h"

#define OTEL_RESPONSE_MAX (64 * 1024) /* bytes of a collector's answer read */
#define OTEL_TOKEN_MAX 4096	      /* bytes of a token file */

static const char *const signal_names[OTEL_SIGNALS] = { "traces", "logs" };
static const char *const signal_paths[OTEL_SIGNALS] = { "/v1/traces", "/v1/logs" };

struct otel_queue {
	struct otel_node *head, *tail;
	size_t len;
};

struct otel_counters {
	atomic_uint_fast64_t sent, failed, dropped, retries, requests;
};

struct otel {
	struct guard_policy *policy;
	struct otel_resource res;
	char *version;
	char *url[OTEL_SIGNALS];   /* <endpoint>/v1/traces, <endpoint>/v1/logs */
	char *shown[OTEL_SIGNALS]; /* the same for log lines: user information redacted */
	char **headers;		   /* "Name: value", NULL-terminated; values secret */
	size_t n_headers;
	long timeout_ms;      /* per request */
	size_t cap;	      /* items per queue at most */
	size_t batch;	      /* items per request at most, >= 1 */
	int64_t interval_ms;  /* the oldest item waits at most this long */
	int64_t retry_max_ms; /* retry budget of a request, 0 = no retry */
	pthread_mutex_t mu;   /* guards q, stop */
	pthread_cond_t cv;    /* CLOCK_MONOTONIC; news for the exporter thread */
	struct otel_queue q[OTEL_SIGNALS];
	bool stop;
	bool started; /* the thread runs */
	pthread_t thread;
	int next;		    /* the signal that goes first next round (thread only) */
	bool failing[OTEL_SIGNALS]; /* the last request of the signal failed (thread only) */
	struct otel_counters c[OTEL_SIGNALS];
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t unix_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

/* Queues --------------------------------------------------------------------------- */

/* Appends n (taken) to signal s, or drops it when the queue is full or stopping. */
static void enqueue(struct otel *o, enum otel_signal s, struct otel_node *n)
{
	struct otel_queue *q = &o->q[s];
	bool wake;

	n->next = NULL;
	n->at_ms = now_ms();
	pthread_mutex_lock(&o->mu);
	if (o->stop || q->len >= o->cap) {
		pthread_mutex_unlock(&o->mu);
		atomic_fetch_add(&o->c[s].dropped, 1);
		free(n);
		return;
	}
	if (q->tail)
		q->tail->next = n;
	else
		q->head = n;
	q->tail = n;
	q->len++;
	/* the thread needs to know of a new oldest item (its deadline) and of a full batch */
	wake = q->len == 1 || q->len == o->batch;
	pthread_mutex_unlock(&o->mu);
	if (wake)
		pthread_cond_signal(&o->cv);
}

/* Takes up to max items of q (mu held) into out; returns how many. */
static size_t take(struct otel_queue *q, struct otel_node **out, size_t max)
{
	size_t n = 0;

	while (q->head && n < max) {
		out[n++] = q->head;
		q->head = q->head->next;
		q->len--;
	}
	if (!q->head)
		q->tail = NULL;
	return n;
}

static void free_nodes(struct otel_node **nodes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(nodes[i]);
}

/*
 * The signal whose batch is due (mu held): batch_size items, or an oldest item that waited
 * batch_interval; -1 with *ret_wake_ms the next deadline (-1: nothing waits).
 */
static int due(struct otel *o, int64_t now, int64_t *ret_wake_ms)
{
	int64_t wake = -1;

	for (int i = 0; i < OTEL_SIGNALS; i++) {
		int s = (o->next + i) % OTEL_SIGNALS;
		const struct otel_queue *q = &o->q[s];
		int64_t deadline;

		if (!q->len)
			continue;
		deadline = q->head->at_ms + o->interval_ms;
		if (q->len >= o->batch || deadline <= now) {
			o->next = (s + 1) % OTEL_SIGNALS;
			return s;
		}
		if (wake < 0 || deadline < wake)
			wake = deadline;
	}
	*ret_wake_ms = wake;
	return -1;
}

/* Waits on cv (mu held) until the monotonic time until_ms, or for news when it is < 0. */
static void wait_until(struct otel *o, int64_t until_ms)
{
	struct timespec ts;

	if (until_ms < 0) {
		pthread_cond_wait(&o->cv, &o->mu);
		return;
	}
	ts.tv_sec = until_ms / 1000;
	ts.tv_nsec = (until_ms % 1000) * 1000000;
	pthread_cond_timedwait(&o->cv, &o->mu, &ts);
}

/* Sleeps delay_ms unless the exporter stops first; true when it stops. */
static bool pause_or_stop(struct otel *o, int64_t delay_ms)
{
	int64_t until = now_ms() + delay_ms;
	bool stop;

	pthread_mutex_lock(&o->mu);
	while (!o->stop && now_ms() < until)
		wait_until(o, until);
	stop = o->stop;
	pthread_mutex_unlock(&o->mu);
	return stop;
}

/* Sending ------------------------------------------------------------------------------ */

static void mark_failing(struct otel *o, enum otel_signal s, const char *why)
{
	if (o->failing[s])
		return;
	o->failing[s] = true;
	log_warn("OTLP export failing", "signal", "%s", signal_names[s], "url", "%s", o->shown[s],
		 "error", "%s", why);
}

static void mark_ok(struct otel *o, enum otel_signal s)
{
	if (!o->failing[s])
		return;
	o->failing[s] = false;
	log_info("OTLP export recovered", "signal", "%s", signal_names[s], "url", "%s", o->url[s]);
}

/* One request: 1 accepted, 0 failed for good, -EAGAIN retryable (*ret_retry_after_s). */
static int post(struct otel *o, enum otel_signal s, const uint8_t *body, size_t len, size_t n,
		long timeout_ms, long *ret_retry_after_s, char *why, size_t whylen)
{
	struct guard_http_request req = { .method = "POST",
					  .url = o->url[s],
					  .headers = (const char *const *)o->headers,
					  .body = body,
					  .body_len = len,
					  .timeout_ms = timeout_ms,
					  .max_redirects = 0,
					  .max_response_bytes = OTEL_RESPONSE_MAX,
					  .configured_endpoint = true };
	struct guard_http_response resp = { 0 };
	char err[GUARD_ERR_MAX] = "";
	size_t rejected;
	int r;

	*ret_retry_after_s = 0;
	atomic_fetch_add(&o->c[s].requests, 1);
	r = guard_http_do(o->policy, &req, &resp, err, sizeof(err));
	if (r < 0) {
		snprintf(why, whylen, "%s", err);
		/* the network, not the request: worth another try; a policy block is not */
		return r == -EIO || r == -ETIMEDOUT || r == -EHOSTUNREACH ? -EAGAIN : 0;
	}
	if (resp.status >= 200 && resp.status < 300) {
		rejected = otel_rejected(s, (const uint8_t *)resp.body, resp.body_len, n);
		atomic_fetch_add(&o->c[s].sent, n - rejected);
		atomic_fetch_add(&o->c[s].failed, rejected);
		if (rejected)
			log_warn("OTLP collector rejected part of a request", "signal", "%s",
				 signal_names[s], "rejected", "%zu", rejected, "items", "%zu", n);
		guard_http_response_free(&resp);
		return 1;
	}
	snprintf(why, whylen, "HTTP status %ld", resp.status);
	*ret_retry_after_s = resp.retry_after_s;
	r = otel_status_retryable(resp.status) ? -EAGAIN : 0;
	guard_http_response_free(&resp);
	return r;
}

/*
 * Sends one encoded batch of n items of s; retries while retry and the budget allow.
 * timeout_ms bounds each request. Counts the outcome.
 */
static void send_batch(struct otel *o, enum otel_signal s, const uint8_t *body, size_t len,
		       size_t n, bool retry, long timeout_ms)
{
	int64_t start = now_ms();
	char why[GUARD_ERR_MAX + 32];

	for (int attempt = 0;; attempt++) {
		long retry_after = 0;
		uint32_t rnd = 0;
		int64_t delay;
		int r = post(o, s, body, len, n, timeout_ms, &retry_after, why, sizeof(why));

		if (r > 0) {
			mark_ok(o, s);
			return;
		}
		mark_failing(o, s, why);
		if (r == 0 || !retry || o->retry_max_ms <= 0)
			break;
		if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) < 0)
			rnd = (uint32_t)now_ms();
		delay = otel_retry_delay_ms(attempt, retry_after, rnd);
		if (now_ms() + delay - start > o->retry_max_ms)
			break;
		atomic_fetch_add(&o->c[s].retries, 1);
		if (pause_or_stop(o, delay))
			break;
	}
	atomic_fetch_add(&o->c[s].failed, n);
}

/* Encodes and sends the n taken items of s (freed here). */
static void export_nodes(struct otel *o, enum otel_signal s, struct otel_node **nodes, size_t n,
			 bool retry, long timeout_ms)
{
	uint8_t *body = NULL, *ids = NULL;
	size_t len = 0;
	int r;

	if (s == OTEL_TRACES) {
		ids = malloc(n * OTEL_ID_BYTES);
		r = ids ? 0 : -ENOMEM;
		/* trace and span ids: random, never all zero (an invalid id) */
		if (r == 0 && getrandom(ids, n * OTEL_ID_BYTES, 0) != (ssize_t)(n * OTEL_ID_BYTES))
			r = -EIO;
		for (size_t i = 0; r == 0 && i < n; i++) {
			ids[i * OTEL_ID_BYTES] |= 1;
			ids[i * OTEL_ID_BYTES + 16] |= 1;
		}
		if (r == 0)
			r = otel_encode_traces(&o->res, (struct otel_span *const *)nodes, n, ids,
					       &body, &len);
	} else {
		r = otel_encode_logs(&o->res, (struct otel_log *const *)nodes, n, unix_ns(), &body,
				     &len);
	}
	free(ids);
	free_nodes(nodes, n);
	if (r < 0) {
		atomic_fetch_add(&o->c[s].failed, n);
		mark_failing(o, s, strerror(-r));
		return;
	}
	send_batch(o, s, body, len, n, retry, timeout_ms);
	free(body);
}

/* At shutdown: one more try for what waits, within one otlp.timeout; the rest is dropped. */
static void drain(struct otel *o, struct otel_node **nodes)
{
	int64_t deadline = now_ms() + o->timeout_ms;

	for (int s = 0; s < OTEL_SIGNALS; s++) {
		for (;;) {
			int64_t left = deadline - now_ms();
			size_t n;

			pthread_mutex_lock(&o->mu);
			n = take(&o->q[s], nodes, o->batch);
			pthread_mutex_unlock(&o->mu);
			if (!n)
				break;
			if (left <= 0) {
				atomic_fetch_add(&o->c[s].dropped, n);
				free_nodes(nodes, n);
				continue;
			}
			export_nodes(o, s, nodes, n, false, (long)left);
		}
	}
}

static void *exporter_main(void *arg)
{
	struct otel *o = arg;
	struct otel_node **nodes = calloc(o->batch, sizeof(*nodes));

	pthread_setname_np(pthread_self(), "trst-otlp");
	if (!nodes)
		abort(); /* a few KiB at start; nothing sensible to do without them */
	pthread_mutex_lock(&o->mu);
	while (!o->stop) {
		int64_t wake = -1;
		int s = due(o, now_ms(), &wake);
		size_t n;

		if (s < 0) {
			wait_until(o, wake);
			continue;
		}
		n = take(&o->q[s], nodes, o->batch);
		pthread_mutex_unlock(&o->mu);
		export_nodes(o, (enum otel_signal)s, nodes, n, true, o->timeout_ms);
		pthread_mutex_lock(&o->mu);
	}
	pthread_mutex_unlock(&o->mu);
	drain(o, nodes);
	free(nodes);
	return NULL;
}

/* The hooks ------------------------------------------------------------------------------ */

void otel_rpc_done(const struct rpc_call_done *d, void *otel)
{
	struct otel *o = otel;
	struct otel_span *sp = malloc(sizeof(*sp));

	if (!sp) {
		atomic_fetch_add(&o->c[OTEL_TRACES].dropped, 1);
		return;
	}
	snprintf(sp->method, sizeof(sp->method), "%s", d->method);
	snprintf(sp->principal, sizeof(sp->principal), "%s", d->principal ? d->principal : "");
	sp->code = (int)d->code;
	sp->code_name = rpc_code_name(d->code);
	sp->start_ns = d->start_unix_ns;
	sp->end_ns = d->end_unix_ns;
	enqueue(o, OTEL_TRACES, &sp->node);
}

/* Copies s into the record's buffer at *at; returns the copy. */
static const char *put(char **at, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = *at;

	memcpy(p, s, n);
	*at += n;
	return p;
}

void otel_audit_committed(const struct audit_event *ev, void *otel)
{
	struct otel *o = otel;
	const char *type = ev->type ? ev->type : "", *actor = ev->actor ? ev->actor : "";
	const char *resource = ev->resource ? ev->resource : "";
	const char *outcome = ev->outcome ? ev->outcome : "ok";
	const char *data = ev->data_json ? ev->data_json : "{}";
	size_t size = strlen(type) + strlen(actor) + strlen(resource) + strlen(outcome) +
		      strlen(data) + 5;
	struct otel_log *l = malloc(sizeof(*l) + size);
	char *at;

	if (!l) {
		atomic_fetch_add(&o->c[OTEL_LOGS].dropped, 1);
		return;
	}
	l->sequence = ev->sequence;
	l->time_us = ev->time_us;
	snprintf(l->tenant_id, sizeof(l->tenant_id), "%s", ev->tenant_id);
	snprintf(l->id, sizeof(l->id), "%s", ev->id);
	memcpy(l->hash, ev->hash, sizeof(l->hash));
	at = l->buf;
	l->type = put(&at, type);
	l->actor = put(&at, actor);
	l->resource = put(&at, resource);
	l->outcome = put(&at, outcome);
	l->data_json = put(&at, data);
	enqueue(o, OTEL_LOGS, &l->node);
}

/* Start and stop ------------------------------------------------------------------------- */

/* True when v holds a control character a header value must not carry. */
static bool has_ctl(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v < 0x20 && *v != '\t')
			return true;
		else if (*v == 0x7f)
			return true;
	return false;
}

static int add_header(struct otel *o, const char *name, const char *value)
{
	char *h = NULL;
	char **n = realloc(o->headers, (o->n_headers + 2) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	o->headers = n;
	if (asprintf(&h, "%s: %s", name, value) < 0)
		return -ENOMEM;
	o->headers[o->n_headers++] = h;
	o->headers[o->n_headers] = NULL;
	return 0;
}

/* Reads the token file: its first line, trailing whitespace cut. The caller wipes it. */
static int read_token(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return fail(err, errlen, -errno, "otlp.token_file \"%s\": %s", path,
			    strerror(errno));
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return fail(err, errlen, -EIO, "otlp.token_file \"%s\": cannot read it", path);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	for (n = (ssize_t)strlen(buf); n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'); n--)
		buf[n - 1] = '\0';
	if (!buf[0])
		return fail(err, errlen, -EINVAL, "otlp.token_file \"%s\" is empty", path);
	return 0;
}

/* Content-Type, User-Agent, otlp.headers, Authorization; no value ever in err. */
static int build_headers(struct otel *o, const struct cfg_otlp *c, char *err, size_t errlen)
{
	char ua[128], token[OTEL_TOKEN_MAX], *bearer = NULL;
	int r;

	snprintf(ua, sizeof(ua), "trstctl/%s", o->version);
	r = add_header(o, "Content-Type", "application/x-protobuf");
	if (r >= 0)
		r = add_header(o, "User-Agent", ua);
	for (size_t i = 0; r >= 0 && i < c->n_headers; i++) {
		const char *eq = strchr(c->headers[i], '=');
		char name[128];

		if (!eq || eq == c->headers[i] || (size_t)(eq - c->headers[i]) >= sizeof(name))
			return fail(err, errlen, -EINVAL, "otlp.headers entry %zu is invalid",
				    i + 1);
		snprintf(name, sizeof(name), "%.*s", (int)(eq - c->headers[i]), c->headers[i]);
		if (strcspn(name, " \t:()<>@,;\\\"/[]?={}") != strlen(name) || has_ctl(name))
			return fail(err, errlen, -EINVAL,
				    "otlp.headers entry %zu has an invalid header name", i + 1);
		if (has_ctl(eq + 1))
			return fail(
				err, errlen, -EINVAL,
				"otlp.headers entry \"%s\" has a control character in its value",
				name);
		r = add_header(o, name, eq + 1);
	}
	if (r < 0 || (!c->token && !c->token_file))
		return r < 0 ? fail(err, errlen, r, "out of memory") : 0;
	if (c->token_file) {
		r = read_token(c->token_file, token, sizeof(token), err, errlen);
		if (r < 0) {
			explicit_bzero(token, sizeof(token));
			return r;
		}
	} else {
		snprintf(token, sizeof(token), "%s", c->token);
	}
	if (has_ctl(token))
		r = fail(err, errlen, -EINVAL, "the OTLP bearer token has a control character");
	else if (asprintf(&bearer, "Bearer %s", token) < 0)
		r = fail(err, errlen, -ENOMEM, "out of memory");
	else
		r = add_header(o, "Authorization", bearer);
	explicit_bzero(token, sizeof(token));
	if (bearer) {
		explicit_bzero(bearer, strlen(bearer));
		free(bearer);
	}
	return r;
}

int otel_start(const struct cfg_otlp *c, struct guard_policy *p, const char *version,
	       struct otel **ret_otel, char *err, size_t errlen)
{
	struct otel *o = calloc(1, sizeof(*o));
	pthread_condattr_t ca;
	size_t elen;
	int r;

	if (!o)
		return fail(err, errlen, -ENOMEM, "out of memory");
	pthread_mutex_init(&o->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&o->cv, &ca);
	pthread_condattr_destroy(&ca);
	o->policy = p;
	o->timeout_ms = (long)c->timeout_ms;
	o->cap = (size_t)c->queue_size;
	o->batch = c->batch_size > 0 ? (size_t)c->batch_size : 1;
	o->interval_ms = c->batch_interval_ms > 0 ? c->batch_interval_ms : 1;
	o->retry_max_ms = c->retry_max_elapsed_ms;
	o->version = strdup(version ? version : "");
	o->res.service_name = c->service_name ? c->service_name : "trstctl";
	o->res.service_version = o->version;
	r = o->version ? 0 : -ENOMEM;
	elen = c->endpoint ? strlen(c->endpoint) : 0;
	while (elen && c->endpoint[elen - 1] == '/')
		elen--; /* "<base>/" + "/v1/traces" is one slash */
	for (int s = 0; r >= 0 && s < OTEL_SIGNALS; s++) {
		if (asprintf(&o->url[s], "%.*s%s", (int)elen, c->endpoint ? c->endpoint : "",
			     signal_paths[s]) < 0) {
			o->url[s] = NULL;
			r = -ENOMEM;
			break;
		}
		o->shown[s] = cfg_url_redact(o->url[s]);
		if (!o->shown[s])
			r = -ENOMEM;
	}
	if (r < 0)
		fail(err, errlen, r, "out of memory");
	else
		r = build_headers(o, c, err, errlen);
	if (r >= 0) {
		r = -pthread_create(&o->thread, NULL, exporter_main, o);
		if (r < 0)
			fail(err, errlen, r, "cannot start the exporter thread: %s", strerror(-r));
		o->started = r >= 0;
	}
	if (r < 0) {
		otel_stop(o);
		return r;
	}
	*ret_otel = o;
	return 0;
}

struct otel *otel_stop(struct otel *o)
{
	if (!o)
		return NULL;
	if (o->started) {
		pthread_mutex_lock(&o->mu);
		o->stop = true;
		pthread_cond_broadcast(&o->cv);
		pthread_mutex_unlock(&o->mu);
		pthread_join(o->thread, NULL);
	}
	for (int s = 0; s < OTEL_SIGNALS; s++) {
		struct otel_node *n = o->q[s].head, *next;

		for (; n; n = next) {
			next = n->next;
			free(n);
		}
		free(o->url[s]);
		free(o->shown[s]);
	}
	for (size_t i = 0; i < o->n_headers; i++) {
		explicit_bzero(o->headers[i], strlen(o->headers[i]));
		free(o->headers[i]);
	}
	free(o->headers);
	free(o->version);
	pthread_cond_destroy(&o->cv);
	pthread_mutex_destroy(&o->mu);
	free(o);
	return NULL;
}

/* Counters and metrics --------------------------------------------------------------- */

void otel_stats(struct otel *o, enum otel_signal s, struct otel_signal_stats *ret_stats)
{
	struct otel_counters *c = &o->c[s];

	pthread_mutex_lock(&o->mu);
	ret_stats->queued = o->q[s].len;
	pthread_mutex_unlock(&o->mu);
	ret_stats->sent = atomic_load(&c->sent);
	ret_stats->failed = atomic_load(&c->failed);
	ret_stats->dropped = atomic_load(&c->dropped);
	ret_stats->retries = atomic_load(&c->retries);
	ret_stats->requests = atomic_load(&c->requests);
}

static const struct {
	const char *name;
	const char *type;
	const char *help;
	size_t off;
} families[] = {
	{ "trstctl_otlp_sent_total", "counter", "OTLP items the collector accepted",
	  offsetof(struct otel_signal_stats, sent) },
	{ "trstctl_otlp_failed_total", "counter",
	  "OTLP items given up: refused, rejected or retried past otlp.retry_max_elapsed",
	  offsetof(struct otel_signal_stats, failed) },
	{ "trstctl_otlp_dropped_total", "counter",
	  "OTLP items never sent: the queue was full (or left at shutdown)",
	  offsetof(struct otel_signal_stats, dropped) },
	{ "trstctl_otlp_retries_total", "counter", "OTLP requests sent again after a failure",
	  offsetof(struct otel_signal_stats, retries) },
	{ "trstctl_otlp_requests_total", "counter", "OTLP requests sent, retries included",
	  offsetof(struct otel_signal_stats, requests) },
	{ "trstctl_otlp_queued", "gauge", "OTLP items waiting for export",
	  offsetof(struct otel_signal_stats, queued) },
};

static int otel_metrics(struct http_metrics *m, void *arg)
{
	struct otel_signal_stats st[OTEL_SIGNALS];

	for (int s = 0; s < OTEL_SIGNALS; s++)
		otel_stats(arg, (enum otel_signal)s, &st[s]);
	for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
		http_metrics_family(m, families[f].name, families[f].type, families[f].help);
		for (int s = 0; s < OTEL_SIGNALS; s++) {
			uint64_t v;
			char labels[32];

			memcpy(&v, (const char *)&st[s] + families[f].off, sizeof(v));
			snprintf(labels, sizeof(labels), "signal=\"%s\"", signal_names[s]);
			http_metrics_sample(m, families[f].name, labels, v);
		}
	}
	return 0;
}

int otel_metrics_register(struct otel *o, struct http_server *h)
{
	return http_server_add_metrics(h, otel_metrics, o);
}
