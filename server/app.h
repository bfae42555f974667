#pragma once
/*
 * app: the durable spine of one server process, opened in docs/architecture.md §3 order after the
 * egress guard: the KEK, PostgreSQL (with retry) and its migrations, the KEK check, the
 * audit chain, the outbox relay, and then the domain services (with the server's own TLS
 * certificate from the CA in internal mode), which it registers on the gRPC server. main.c owns the order of steps; this file owns what each step needs.
 */
#include <signal.h>

struct cfg;
struct guard_run;
struct rpc_server;
struct http_server;
struct rpc_server_config;
struct app;

/*
 * Opens everything the services need, and the OTLP exporter when otlp.enabled (fed by the
 * audit commit hook here and the rpc completion hook in app_register). PostgreSQL down: retries with backoff and a log
 * line per attempt until it answers or a signal of sigs arrives (then -EINTR). Returns
 * -errno after logging the reason once.
 */
int app_open(const struct cfg *c, struct guard_run *guard, const sigset_t *sigs,
	     struct app **ret_app);
/*
 * Internal TLS mode: points config at the CA's server certificate, which app_open opened
 * (ca_server_cert_open) after writing the CA bundle to <state_dir>/ca-bundle.pem for the
 * clients on this host. Other modes: nothing.
 */
void app_tls_source(struct app *a, struct rpc_server_config *config);
/* Registers the domain services (Audit, CA, Secrets, Policy, Assist), the authorizer and
 * the OTLP span hook. */
int app_register(struct app *a, struct rpc_server *s);
/* Adds the spine's gauges (outbox depth and age, writer batches) and the OTLP counters to
 * /metrics. */
int app_metrics_register(struct app *a, struct http_server *h);
/* Starts background work that needs the services in place (outbox relay). */
int app_start(struct app *a);
/* Stops and frees, after the gRPC server is gone. Accepts NULL, returns NULL. */
struct app *app_close(struct app *a);

/* `trstctl migrate [--status]`: applies (or lists) migrations; returns the exit status. */
int app_migrate_cli(int argc, char **argv, const struct cfg *c);
