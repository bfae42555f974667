/*
 * http.c: the operations listener on libmicrohttpd, one internal polling thread (scrapes
 * and probes are rare and cheap). Each /metrics request builds its body in memory with
 * open_memstream by calling the registered writers in order; a failing writer turns the
 * scrape into a 500. Only GET and HEAD are served; everything else is 405, unknown paths
 * 404. The listener binds only the configured address (loopback by default).
 *
 * Probes must answer while someone holds connections open without finishing a request
 * (half-open: nothing or part of a request line sent). libmicrohttpd closes a connection
 * idle for the read timeout (MHD_OPTION_CONNECTION_TIMEOUT), and stops accepting at its
 * connection limit, so newcomers would wait for the oldest to time out. To keep a place
 * free, every open connection that has no request in the application's hands is listed in
 * the order it became idle (accepted, or its last reply completed), and when a newcomer
 * takes the last place the one idle longest is shut down (libmicrohttpd then closes it as
 * the peer's hang-up). A probe's connection is the newest, and it is busy as soon as its
 * request line and headers are in, so half-open connections cannot lock it out. A per-IP
 * limit (MHD_OPTION_PER_IP_CONNECTION_LIMIT) would not do: on the default loopback
 * address every client shares one IP. The list is touched only by the listener's thread
 * (libmicrohttpd runs every callback there), so it needs no lock.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "net.h"
#include "http.h"

#define HTTP_MAX_CALLBACKS 32

enum {
	DEFAULT_READ_TIMEOUT_MS = 5000,
	DEFAULT_MAX_CONNECTIONS = 256,
};

struct metrics_cb {
	http_metrics_fn fn;
	void *arg;
};

struct ready_cb {
	const char *name;
	http_ready_fn fn;
	void *arg;
};

struct note_cb {
	const char *name;
	http_note_fn fn;
	void *arg;
};

/* One open connection (the socket context of libmicrohttpd's connection). */
struct conn {
	struct conn *prev, *next; /* in the idle list while idle, else both NULL */
	int fd;			  /* owned by libmicrohttpd */
	bool idle;		  /* listed: no request in the application's hands */
};

struct http_server {
	struct sockaddr_storage sa;
	unsigned int timeout_s;	 /* MHD_OPTION_CONNECTION_TIMEOUT */
	unsigned int max_conns;	 /* MHD_OPTION_CONNECTION_LIMIT, >= 2 */
	unsigned int n_conns;	 /* open connections (listener thread only) */
	struct conn *idle_head;	 /* idle longest: the first to go */
	struct conn *idle_tail;
	bool ipv6;
	bool any; /* wildcard address: dual stack */
	struct MHD_Daemon *daemon;
	struct metrics_cb metrics[HTTP_MAX_CALLBACKS];
	size_t n_metrics;
	struct ready_cb ready[HTTP_MAX_CALLBACKS];
	size_t n_ready;
	struct note_cb notes[HTTP_MAX_CALLBACKS];
	size_t n_notes;
	atomic_bool server_ready;
};

struct http_metrics {
	FILE *f;
};

void http_metrics_family(struct http_metrics *m, const char *name, const char *type,
			 const char *help)
{
	fprintf(m->f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void http_metrics_sample(struct http_metrics *m, const char *name, const char *labels,
			 uint64_t value)
{
	if (labels && *labels)
		fprintf(m->f, "%s{%s} %llu\n", name, labels, (unsigned long long)value);
	else
		fprintf(m->f, "%s %llu\n", name, (unsigned long long)value);
}

const char *http_metrics_escape(const char *value, char *buf, size_t len)
{
	size_t o = 0;

	if (!len)
		return buf;
	for (; value && *value && o + 3 < len; value++) {
		char c = *value;

		if (c == '\\' || c == '"' || c == '\n') {
			buf[o++] = '\\';
			c = c == '\n' ? 'n' : c;
		}
		buf[o++] = c;
	}
	buf[o] = '\0';
	return buf;
}

/* ---- connections ------------------------------------------------------------------ */

static void idle_remove(struct http_server *s, struct conn *c)
{
	if (!c->idle)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->idle_head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		s->idle_tail = c->prev;
	c->prev = c->next = NULL;
	c->idle = false;
}

static void idle_append(struct http_server *s, struct conn *c)
{
	c->prev = s->idle_tail;
	c->next = NULL;
	if (s->idle_tail)
		s->idle_tail->next = c;
	else
		s->idle_head = c;
	s->idle_tail = c;
	c->idle = true;
}

static struct conn *conn_of(struct MHD_Connection *mc)
{
	const union MHD_ConnectionInfo *i =
		MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return i ? i->socket_context : NULL;
}

/* A connection opened or closed. Opening the last place evicts the one idle longest. */
static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct http_server *s = cls;
	const union MHD_ConnectionInfo *i;
	struct conn *c = *socket_context, *old;

	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (c) {
			idle_remove(s, c);
			free(c);
			*socket_context = NULL;
		}
		s->n_conns--;
		return;
	}
	s->n_conns++;
	i = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
	c = calloc(1, sizeof(*c));
	if (c) {
		c->fd = i ? i->connect_fd : -1;
		idle_append(s, c);
		*socket_context = c;
	}
	if (s->n_conns < s->max_conns)
		return;
	old = s->idle_head;
	if (old && old != c && old->fd >= 0) {
		idle_remove(s, old);
		shutdown(old->fd, SHUT_RDWR);
	}
}

/* A request's reply is done (or it failed): its connection is idle again, the newest. */
static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_server *s = cls;
	struct conn *c = conn_of(mc);

	(void)con_cls;
	(void)toe;
	if (c) {
		idle_remove(s, c);
		idle_append(s, c);
	}
}

/* ---- requests --------------------------------------------------------------------- */

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status,
			     const char *type, char *body, size_t len)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned int status,
				  const char *text)
{
	char *body = strdup(text);

	return body ? reply(conn, status, "text/plain; charset=utf-8", body, strlen(body)) :
		      MHD_NO;
}

static enum MHD_Result serve_metrics(struct http_server *s, struct MHD_Connection *conn)
{
	struct http_metrics m;
	char *body = NULL;
	size_t len = 0;
	int ret = 0;

	m.f = open_memstream(&body, &len);
	if (!m.f)
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	for (size_t i = 0; i < s->n_metrics && ret >= 0; i++)
		ret = s->metrics[i].fn(&m, s->metrics[i].arg);
	if (fclose(m.f) != 0 && ret >= 0)
		ret = -ENOMEM;
	if (ret < 0) {
		free(body);
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
				  "metrics unavailable\n");
	}
	return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len);
}

/* 503 "not ready: server guard postgres (PostgreSQL has not answered for 6.0 s)". */
static enum MHD_Result serve_ready(struct http_server *s, struct MHD_Connection *conn)
{
	char buf[2048] = "not ready:";
	bool ok = atomic_load(&s->server_ready);
	size_t n;

	if (!ok)
		strncat(buf, " server", sizeof(buf) - strlen(buf) - 1);
	for (size_t i = 0; i < s->n_ready; i++) {
		char why[256] = "";

		if (s->ready[i].fn(s->ready[i].arg, why, sizeof(why)))
			continue;
		ok = false;
		strncat(buf, " ", sizeof(buf) - strlen(buf) - 1);
		strncat(buf, s->ready[i].name, sizeof(buf) - strlen(buf) - 1);
		if (why[0]) {
			strncat(buf, " (", sizeof(buf) - strlen(buf) - 1);
			strncat(buf, why, sizeof(buf) - strlen(buf) - 1);
			strncat(buf, ")", sizeof(buf) - strlen(buf) - 1);
		}
	}
	if (ok)
		snprintf(buf, sizeof(buf), "ready");
	strncat(buf, "\n", sizeof(buf) - strlen(buf) - 1);
	for (size_t i = 0; i < s->n_notes; i++) {
		const char *note = s->notes[i].fn(s->notes[i].arg);

		n = strlen(buf);
		if (note)
			snprintf(buf + n, sizeof(buf) - n, "%s: %s\n", s->notes[i].name, note);
	}
	return reply_text(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, buf);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct http_server *s = cls;
	struct conn *c = conn_of(conn);

	(void)version;
	(void)upload_data;
	(void)con_cls;
	if (c)
		idle_remove(s, c); /* a whole request line and headers: busy until answered */
	if (*upload_data_size) {
		*upload_data_size = 0; /* bodies are ignored */
		return MHD_YES;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(s, conn);
	if (strcmp(url, "/healthz") == 0)
		return reply_text(conn, MHD_HTTP_OK, "ok\n");
	if (strcmp(url, "/readyz") == 0)
		return serve_ready(s, conn);
	return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* ---- life cycle ------------------------------------------------------------------- */

static int parse_addr(struct http_server *s, const char *addr)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV | AI_PASSIVE };
	struct addrinfo *res = NULL;
	char *host = NULL, portbuf[16];
	int port, ret;

	if (!addr)
		return -EINVAL;
	ret = net_split_hostport(addr, &host, &port);
	if (ret < 0)
		return ret;
	snprintf(portbuf, sizeof(portbuf), "%d", port);
	if (!*host) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&s->sa;

		a6->sin6_family = AF_INET6;
		a6->sin6_addr = in6addr_any;
		a6->sin6_port = htons((uint16_t)port);
		s->ipv6 = s->any = true;
		free(host);
		return 0;
	}
	/* Numeric addresses or names from /etc/hosts ("localhost"). */
	ret = getaddrinfo(host, portbuf, &hints, &res);
	free(host);
	if (ret != 0 || !res || res->ai_addrlen > sizeof(s->sa)) {
		if (res)
			freeaddrinfo(res);
		return -EINVAL;
	}
	memcpy(&s->sa, res->ai_addr, res->ai_addrlen);
	s->ipv6 = res->ai_family == AF_INET6;
	freeaddrinfo(res);
	return 0;
}

/* libmicrohttpd counts whole seconds: ms rounded up, at least 1 (0 would mean never). */
static unsigned int timeout_seconds(int64_t ms)
{
	int64_t sec = ms / 1000 + (ms % 1000 != 0);

	return sec < 1 ? 1 : sec > UINT32_MAX ? UINT32_MAX : (unsigned int)sec;
}

int http_server_new(const struct http_server_config *config, struct http_server **ret_server)
{
	struct http_server *s;
	int ret;

	if (!config || !ret_server)
		return -EINVAL;
	if (config->read_timeout_ms < 0 || config->max_connections < 0 ||
	    config->max_connections == 1)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->timeout_s = timeout_seconds(config->read_timeout_ms ? config->read_timeout_ms :
								 DEFAULT_READ_TIMEOUT_MS);
	s->max_conns = config->max_connections ? (unsigned int)config->max_connections :
						 DEFAULT_MAX_CONNECTIONS;
	ret = parse_addr(s, config->addr);
	if (ret < 0) {
		free(s);
		return ret;
	}
	*ret_server = s;
	return 0;
}

int http_server_add_metrics(struct http_server *s, http_metrics_fn fn, void *arg)
{
	if (!s || !fn || s->daemon)
		return -EINVAL;
	if (s->n_metrics == HTTP_MAX_CALLBACKS)
		return -ENOSPC;
	s->metrics[s->n_metrics++] = (struct metrics_cb){ fn, arg };
	return 0;
}

int http_server_add_ready(struct http_server *s, const char *name, http_ready_fn fn, void *arg)
{
	if (!s || !fn || !name || s->daemon)
		return -EINVAL;
	if (s->n_ready == HTTP_MAX_CALLBACKS)
		return -ENOSPC;
	s->ready[s->n_ready++] = (struct ready_cb){ name, fn, arg };
	return 0;
}

int http_server_add_note(struct http_server *s, const char *name, http_note_fn fn, void *arg)
{
	if (!s || !fn || !name || s->daemon)
		return -EINVAL;
	if (s->n_notes == HTTP_MAX_CALLBACKS)
		return -ENOSPC;
	s->notes[s->n_notes++] = (struct note_cb){ name, fn, arg };
	return 0;
}

void http_server_set_ready(struct http_server *s, bool ready)
{
	if (s)
		atomic_store(&s->server_ready, ready);
}

int http_server_start(struct http_server *s, int *ret_port)
{
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
	const union MHD_DaemonInfo *info;
	uint16_t port;

	if (!s || !ret_port || s->daemon)
		return -EINVAL;
	if (s->ipv6)
		flags |= s->any ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
	port = ntohs(s->ipv6 ? ((struct sockaddr_in6 *)&s->sa)->sin6_port :
			       ((struct sockaddr_in *)&s->sa)->sin_port);
	errno = 0;
	s->daemon = MHD_start_daemon(flags, port, NULL, NULL, on_request, s,
				     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&s->sa,
				     MHD_OPTION_CONNECTION_TIMEOUT, s->timeout_s,
				     MHD_OPTION_CONNECTION_LIMIT, s->max_conns,
				     MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
				     MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				     MHD_OPTION_END);
	if (!s->daemon)
		return errno ? -errno : -EADDRINUSE;
	info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
	*ret_port = info ? info->port : port;
	return 0;
}

struct http_server *http_server_free(struct http_server *s)
{
	if (!s)
		return NULL;
	if (s->daemon)
		MHD_stop_daemon(s->daemon);
	free(s);
	return NULL;
}
