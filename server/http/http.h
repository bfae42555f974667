#pragma once
/*
 * http: the operations listener (libmicrohttpd): GET /metrics in the Prometheus text
 * format 0.0.4, GET /healthz (the process answers) and GET /readyz (every readiness check
 * passes and the server said it is ready; its body is "ready" or "not ready: <checks>",
 * each failing check with its reason in parentheses when it gives one, then one
 * "<name>: <note>" line per note that has something to say). Other modules contribute
 * metric families, readiness checks and notes through callbacks registered before http_server_start(); the callbacks
 * run on the listener's thread, once per request. No libmicrohttpd type leaves http/.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_server;
struct http_metrics; /* the /metrics body being written */

struct http_server_config {
	const char *addr; /* "host:port" (cfg metrics.addr); ":port" = every address; port 0 =
			   * the kernel picks (see http_server_start) */
	int64_t read_timeout_ms; /* a connection that sends nothing for this long (before, in
				  * or after a request) is closed; rounded up to whole seconds;
				  * 0 = 5 s */
	int max_connections;	 /* open connections at most, >= 2; 0 = 256. When a newcomer
				  * takes the last one, the connection idle longest (no request
				  * being answered: half-open or kept alive) is closed */
};

/*
 * Writes the metrics of one module with http_metrics_family() and http_metrics_sample().
 * Returns >= 0, or -errno to answer 500 (the whole scrape fails: Prometheus then reports
 * the target down rather than a partial view).
 */
typedef int (*http_metrics_fn)(struct http_metrics *m, void *arg);
/*
 * A readiness check: true when the module is ready to serve. When not, it may say why in
 * why (len bytes, "" on entry; shown by /readyz after the check's name, so never a secret).
 */
typedef bool (*http_ready_fn)(void *arg, char *why, size_t len);

/* Creates a listener (not yet bound). Returns 0, -EINVAL (bad addr, a limit out of range)
 * or -ENOMEM. */
int http_server_new(const struct http_server_config *config, struct http_server **ret_server);
/* Registers a metrics writer (called in registration order). Before start only. */
int http_server_add_metrics(struct http_server *s, http_metrics_fn fn, void *arg);
/* Registers a readiness check named name (a static string, shown by /readyz). Before start. */
int http_server_add_ready(struct http_server *s, const char *name, http_ready_fn fn, void *arg);
/*
 * A note for people reading /readyz: a sentence (static or living as long as the server)
 * that qualifies what "ready" means, or NULL for none. Does not change the status.
 */
typedef const char *(*http_note_fn)(void *arg);
/* Registers a note shown by /readyz as "<name>: <note>" after the status line. Before start. */
int http_server_add_note(struct http_server *s, const char *name, http_note_fn fn, void *arg);
/* Sets the server-wide readiness (false until called with true). Any thread. */
void http_server_set_ready(struct http_server *s, bool ready);
/* Binds and starts the listener thread; *ret_port is the bound port. Returns -errno. */
int http_server_start(struct http_server *s, int *ret_port);
/* Stops the listener (if started) and frees. Accepts NULL, returns NULL. */
struct http_server *http_server_free(struct http_server *s);

/*
 * Starts a metric family: "# HELP name help" and "# TYPE name type" (type "counter",
 * "gauge", "untyped"). A family is written once per scrape, its samples right after it.
 */
void http_metrics_family(struct http_metrics *m, const char *name, const char *type,
			 const char *help);
/* One sample: `name{labels} value`; labels is `key="value",...` (already escaped) or NULL. */
void http_metrics_sample(struct http_metrics *m, const char *name, const char *labels,
			 uint64_t value);
/* Escapes a label value (\\, \", \n) into buf; returns buf. */
const char *http_metrics_escape(const char *value, char *buf, size_t len);
