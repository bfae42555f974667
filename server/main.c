/*
 * trstctl: the binary. Parses the command line and runs the chosen sub-command: the
 * client sub-commands (cli/: `owner create`, `secret get`, `guard status`, ... with no
 * configuration loaded, only the environment they are given), the operator commands with
 * the configuration loaded (`migrate`, `kek rotate`, `guard attach`, `ca import|csr|
 * import-signed`, `token create-root`; their --help needs none), or the server: `serve`
 * (the default), `--version`, `--check-config` and `--health-check`. Start-up follows
 * docs/architecture.md §3; signals are blocked before any thread exists and taken with
 * sigwait() here, so that no library thread ever receives them.
 *
 * Process-wide state kept here and nowhere else: none yet beyond the log settings (log/).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca.pb-c.h"
#include "audit.pb-c.h"
#include "guard.pb-c.h"
#include "policy.pb-c.h"
#include "secrets.pb-c.h"

#include "app.h"
#include "audit.h"
#include "authz.h"
#include "ca.h"
#include "cfg.h"
#include "cli.h"
#include "guard.h"
#include "http.h"
#include "kek-rotate.h"
#include "log.h"
#include "net.h"
#include "rpc.h"
#include "secrets.h"
#include "trstctl-config.h"

extern char **environ;
extern const unsigned char trstctl_descset[];
extern const size_t trstctl_descset_len;

static void usage(FILE *f)
{
	fprintf(f, "usage: trstctl [serve]          run the server (default)\n"
		   "       trstctl --check-config   print the effective configuration and exit\n"
		   "       trstctl --health-check   exit 0 when the configured server is SERVING\n"
		   "       trstctl --version        print the version\n"
		   "operator commands (they read the server's configuration; all but guard attach\n"
		   "work on the database itself, TRSTCTL_POSTGRES_DSN; --help for each):\n"
		   "  migrate [--status]             apply (or list) database migrations\n"
		   "  kek rotate --new-file PATH     re-wrap sealed values (servers stopped)\n"
		   "  ca import|csr|import-signed    install the issuing CA\n"
		   "  token create-root --policy P   a root API token, without a server\n"
		   "  guard attach [...]             load, attach and pin the egress guard, then exit\n"
		   "                                 (root with CAP_BPF, CAP_NET_ADMIN)\n");
	cli_usage(f);
	fprintf(f, "Configuration comes from TRSTCTL_* variables and the JSON file named by\n"
		   "TRSTCTL_CONFIG_FILE (docs/configuration.md); the client commands need only\n"
		   "--addr, --ca-file and --token-file (docs/cli.md).\n");
}

/* Creates dir (one level) when missing, private to the service user. */
static int ensure_dir(const char *dir)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int online_cores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : (int)n;
}

/*
 * Completion-queue threads: half the cores, at least one. gRPC's poller serves one thread at
 * a time and hands the others work through wake-ups; on 2 cores one thread answers
 * Health.Check at 66-73k/s where two reach 41-45k/s, with fewer context switches per
 * issuance too (tools/bench/run-issue-bench, TRSTCTL_SERVER_WORKERS=1 vs 2).
 */
static int default_workers(void)
{
	int n = online_cores() / 2;

	return n < 1 ? 1 : n;
}

/*
 * Every call waiting for a group commit holds a pool thread, so the pool bounds how many
 * writes share one commit: 64 at least (the writer's largest batch), 8 per core beyond.
 */
static int default_pool_threads(void)
{
	int n = 8 * online_cores();

	return n > 64 ? n : 64;
}

/* Logs the same summary --check-config prints, one field per line of it. */
static void log_config(const struct cfg *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return;
	cfg_print(c, f);
	fclose(f);
	log_info("configuration", "summary", "%s", buf);
	free(buf);
}

static int register_services(struct rpc_server *s, struct guard_run *guard, struct app *app)
{
	int r = rpc_server_add_standard_services(s);

	if (r >= 0)
		r = guard_rpc_register(s, guard);
	if (r >= 0)
		r = app_register(app, s);
	return r;
}

/* True when a listener (gRPC or metrics) needs CAP_NET_BIND_SERVICE (a port below 1024). */
static bool needs_bind_service(const struct cfg *c)
{
	const char *addrs[] = { c->server.addr, c->metrics.addr };
	bool need = false;

	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		char *host = NULL;
		int port = 0;

		if (addrs[i] && net_split_hostport(addrs[i], &host, &port) == 0 && port > 0 &&
		    port < 1024)
			need = true;
		free(host);
	}
	return need;
}

/* The operations listener (/metrics, /healthz, /readyz) with the guard's part. */
static int start_http(const struct cfg *c, struct guard_run *guard, struct app *app,
		      struct http_server **ret_h)
{
	struct http_server_config hc = { .addr = c->metrics.addr,
					 .read_timeout_ms = c->metrics.read_timeout_ms,
					 .max_connections = c->metrics.max_connections };
	struct http_server *h = NULL;
	int port = 0, r;

	r = http_server_new(&hc, &h);
	if (r >= 0)
		r = guard_metrics_register(h, guard);
	if (r >= 0)
		r = app_metrics_register(app, h);
	if (r >= 0)
		r = http_server_start(h, &port);
	if (r < 0) {
		log_error("cannot start the metrics listener", "addr", "%s", hc.addr, "error", "%s",
			  strerror(-r));
		http_server_free(h);
		return r;
	}
	log_info("metrics serving", "addr", "%s", hc.addr, "port", "%d", port);
	*ret_h = h;
	return 0;
}

static int serve(const struct cfg *c, const sigset_t *sigs)
{
	struct rpc_server_config rc = {
		.addr = c->server.addr,
		.tls_mode = c->server.tls_mode == CFG_TLS_FILE	   ? RPC_TLS_FILE :
			    c->server.tls_mode == CFG_TLS_DISABLED ? RPC_TLS_DISABLED :
								     RPC_TLS_INTERNAL,
		.tls_cert_file = c->server.tls_cert_file,
		.tls_key_file = c->server.tls_key_file,
		.tls_client_ca_file = c->server.tls_client_ca_file,
		.workers = c->server.workers > 0 ? c->server.workers : default_workers(),
		.pool_threads = c->server.pool_threads > 0 ? c->server.pool_threads :
							     default_pool_threads(),
		.pool_queue = c->server.pool_queue,
		.max_streams = c->server.max_streams,
		.max_streams_per_peer = c->server.max_streams_per_connection,
		.max_unauthenticated_streams = c->server.max_unauthenticated_streams,
		.max_request_bytes = (size_t)c->server.max_request_bytes,
		.grace_ms = (int)c->server.shutdown_grace_ms,
	};
	struct rpc_server *s = NULL;
	struct http_server *h = NULL;
	struct guard_run *guard = NULL;
	struct app *app = NULL;
	char gerr[512];
	int port, sig, r;

	log_config(c);
	for (size_t i = 0; i < c->n_unknown_env; i++)
		log_warn("unknown configuration variable ignored", "name", "%s", c->unknown_env[i]);
	r = ensure_dir(c->state_dir);
	if (r < 0) {
		log_error("cannot create the state folder", "path", "%s", c->state_dir, "error",
			  "%s", strerror(-r));
		return 1;
	}
	if (rc.tls_mode == RPC_TLS_DISABLED)
		log_warn("TLS IS DISABLED: gRPC traffic is plaintext (development only)", "addr",
			 "%s", rc.addr);

	/*
	 * Step 2 (docs/architecture.md §3): the egress guard. Before any thread exists (it may
	 * move the whole process into a child cgroup, and its capability drop must reach every
	 * thread) and before any outbound connection. A failure is fatal; a guard pinned by
	 * an earlier run then stays armed.
	 */
	if (guard_http_init() < 0) {
		log_error("cannot initialise libcurl for the guarded HTTP client");
		return 1;
	}
	r = guard_run_start(c, needs_bind_service(c), &guard, gerr, sizeof(gerr));
	if (r < 0) {
		log_error("cannot start the egress guard", "enforcer", "%s",
			  cfg_enforcer_name(c->air_gap.enforcer), "error", "%s", gerr);
		return 1;
	}

	/* Steps 3 and 4: KEK, PostgreSQL and migrations, audit, outbox (app.c). */
	r = app_open(c, guard, sigs, &app);
	if (r < 0) {
		guard_run_stop(guard);
		return r == -EINTR ? 0 : 1;
	}

	app_tls_source(app, &rc); /* internal TLS: the CA's server certificate */
	rpc_init();
	r = rpc_server_new(&rc, trstctl_descset, trstctl_descset_len, &s);
	if (r >= 0)
		r = register_services(s, guard, app);
	if (r >= 0)
		r = rpc_server_start(s, &port);
	if (r < 0) {
		log_error("cannot start the gRPC server", "addr", "%s", rc.addr, "error", "%s",
			  strerror(-r));
		rpc_server_free(s);
		rpc_fini();
		app_close(app);
		guard_run_stop(guard);
		return 1;
	}
	if (start_http(c, guard, app, &h) < 0) {
		rpc_server_shutdown(s);
		rpc_server_free(s);
		rpc_fini();
		app_close(app);
		guard_run_stop(guard);
		return 1;
	}
	r = app_start(app);
	if (r < 0)
		log_error("cannot start the outbox relay", "error", "%s", strerror(-r));
	log_info("serving", "addr", "%s", rc.addr, "port", "%d", port, "tls", "%s",
		 rc.tls_mode == RPC_TLS_INTERNAL ? "internal" :
		 rc.tls_mode == RPC_TLS_FILE	 ? (rc.tls_client_ca_file ? "mtls" : "file") :
						   "disabled",
		 "workers", "%d", rc.workers, "version", "%s", TRSTCTL_VERSION);
	http_server_set_ready(h, true);

	do {
		r = sigwait(sigs, &sig);
	} while (r != 0);
	log_info("shutting down", "signal", "%s", strsignal(sig), "grace_ms", "%d", rc.grace_ms);
	http_server_set_ready(h, false);
	rpc_server_shutdown(s);
	rpc_server_free(s);
	http_server_free(h);
	rpc_fini();
	app_close(app);
	guard_run_stop(guard); /* orderly: detach and unpin */
	guard_http_fini();
	log_info("stopped");
	return 0;
}

static int health_check(const struct cfg *c)
{
	bool tls = c->server.tls_mode != CFG_TLS_DISABLED;
	const char *cert = c->server.tls_mode == CFG_TLS_FILE ? c->server.tls_cert_file : NULL;
	const char *key = c->server.tls_mode == CFG_TLS_FILE ? c->server.tls_key_file : NULL;
	int r;

	rpc_init();
	r = rpc_health_probe(c->server.addr, tls, cert, key, 3000);
	rpc_fini();
	if (r < 0) {
		fprintf(stderr, "trstctl: health check of %s: %s\n", c->server.addr,
			r == -EAGAIN ? "not serving" : strerror(-r));
		return 1;
	}
	printf("SERVING\n");
	return 0;
}

/*
 * Operator sub-commands: each gets argv from its noun on and the loaded configuration
 * (NULL for --help, which needs none). verb NULL: any.
 */
static const struct {
	const char *noun, *verb;
	int (*run)(int argc, char **argv, const struct cfg *c);
} operators[] = {
	{ "migrate", NULL, app_migrate_cli },
	{ "kek", NULL, kek_rotate_cli },
	{ "guard", "attach", guard_attach_cli },
	{ "ca", "import", ca_admin_cli },
	{ "ca", "csr", ca_admin_cli },
	{ "ca", "import-signed", ca_admin_cli },
	{ "token", "create-root", token_admin_cli },
};

/* The operator command argv names, or -1. */
static int find_operator(int argc, char **argv)
{
	for (size_t i = 0; argc > 1 && i < sizeof(operators) / sizeof(operators[0]); i++)
		if (!strcmp(argv[1], operators[i].noun) &&
		    (!operators[i].verb || (argc > 2 && !strcmp(argv[2], operators[i].verb))))
			return (int)i;
	return -1;
}

/* A client sub-command, with the configuration read as a client reads it (no rule). */
static int client(int argc, char **argv, const sigset_t *sigs)
{
	struct cfg *c = NULL;
	int r;

	/* Ctrl-C ends a client (audit watch): no server thread takes signals here */
	pthread_sigmask(SIG_UNBLOCK, sigs, NULL);
	if (cfg_load_client(environ, &c) < 0) {
		fprintf(stderr, "trstctl: out of memory\n");
		return 1;
	}
	r = cli_main(argc - 1, argv + 1, c);
	cfg_free(c);
	return r;
}

static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	enum { CMD_SERVE, CMD_CHECK_CONFIG, CMD_HEALTH_CHECK, CMD_SUB } cmd = CMD_SERVE;
	int op;
	struct guard_names *names = NULL;
	struct cfg *c = NULL;
	char *errors = NULL;
	sigset_t sigs;
	int r;

	/* Before any thread exists: the gRPC core's threads inherit this mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	op = find_operator(argc, argv);
	if (op >= 0 && wants_help(argc, argv))
		return operators[op].run(argc - 1, argv + 1, NULL);
	if (op >= 0)
		cmd = CMD_SUB;
	else if (cli_handles(argc, argv))
		return client(argc, argv, &sigs);
	for (int i = 1; cmd != CMD_SUB && i < argc; i++) {
		if (strcmp(argv[i], "--version") == 0) {
			printf("trstctl %s\n", TRSTCTL_VERSION);
			return 0;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--check-config") == 0) {
			cmd = CMD_CHECK_CONFIG;
		} else if (strcmp(argv[i], "--health-check") == 0) {
			cmd = CMD_HEALTH_CHECK;
		} else if (strcmp(argv[i], "serve") != 0) {
			fprintf(stderr, "trstctl: unknown argument \"%s\"\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}

	/* cfg's rules plus the guard's endpoint check (names resolved), reported together */
	r = cfg_load_checked(environ, guard_config_check,
			     cmd == CMD_CHECK_CONFIG ? &names : NULL, &c, &errors);
	if (r < 0) {
		fprintf(stderr, "trstctl: configuration: %s\n", errors ? errors : strerror(-r));
		free(errors);
		guard_names_free(names); /* kept by the guard's check when another rule failed */
		return 1;
	}
	if (cmd == CMD_CHECK_CONFIG) {
		r = cfg_print(c, stdout) < 0 || guard_names_print(names, stdout) < 0 ? 1 : 0;
		guard_names_free(names);
		cfg_free(c);
		return r;
	}
	if (cmd == CMD_SUB) {
		r = operators[op].run(argc - 1, argv + 1, c);
		cfg_free(c);
		return r;
	}
	if (log_setup(c->log.level, c->log.format) < 0) {
		fprintf(stderr, "trstctl: configuration: bad log level or format\n");
		cfg_free(c);
		return 1;
	}
	r = cmd == CMD_HEALTH_CHECK ? health_check(c) : serve(c, &sigs);
	cfg_free(c);
	return r;
}
