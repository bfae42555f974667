/*
 * trstctl: the binary. Parses the command line, loads the configuration, and runs the
 * chosen sub-command: `serve` (the default), `--version`, `--check-config` and
 * `--health-check`. Start-up follows DESIGN.md §3; signals are blocked before any thread
 * exists and taken with sigwait() here, so that no library thread ever receives them.
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

#include "cfg.h"
#include "log.h"
#include "rpc.h"
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
		   "Configuration comes from TRSTCTL_* variables and the JSON file named by\n"
		   "TRSTCTL_CONFIG_FILE; see docs/configuration.md.\n");
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

static int register_services(struct rpc_server *s)
{
	/* The domain handlers land with their issues; until then every method answers
	 * UNIMPLEMENTED naming itself (after its request decoded). */
	static const ProtobufCServiceDescriptor *const services[] = {
		&trstctl__v1__ca__descriptor,     &trstctl__v1__secrets__descriptor,
		&trstctl__v1__audit__descriptor,  &trstctl__v1__policy__descriptor,
		&trstctl__v1__guard__descriptor,
	};
	int r = rpc_server_add_standard_services(s);

	for (size_t i = 0; r >= 0 && i < sizeof(services) / sizeof(services[0]); i++)
		r = rpc_server_add_service(s, services[i], NULL, NULL);
	return r;
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
		.workers = c->server.workers > 0 ? c->server.workers : online_cores(),
		.pool_threads = c->server.pool_threads > 0 ? c->server.pool_threads :
							     4 * online_cores(),
		.pool_queue = c->server.pool_queue,
		.max_streams = c->server.max_streams,
		.max_request_bytes = (size_t)c->server.max_request_bytes,
		.grace_ms = (int)c->server.shutdown_grace_ms,
	};
	struct rpc_server *s = NULL;
	char cert_out[4096];
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
	if (rc.tls_mode == RPC_TLS_INTERNAL) {
		snprintf(cert_out, sizeof(cert_out), "%s/server-cert.pem", c->state_dir);
		rc.tls_cert_out = cert_out;
	}
	if (rc.tls_mode == RPC_TLS_DISABLED)
		log_warn("TLS IS DISABLED: gRPC traffic is plaintext (development only)", "addr",
			 "%s", rc.addr);

	rpc_init();
	r = rpc_server_new(&rc, trstctl_descset, trstctl_descset_len, &s);
	if (r >= 0)
		r = register_services(s);
	if (r >= 0)
		r = rpc_server_start(s, &port);
	if (r < 0) {
		log_error("cannot start the gRPC server", "addr", "%s", rc.addr, "error", "%s",
			  strerror(-r));
		rpc_server_free(s);
		rpc_fini();
		return 1;
	}
	log_info("serving", "addr", "%s", rc.addr, "port", "%d", port, "tls", "%s",
		 rc.tls_mode == RPC_TLS_INTERNAL ? "internal" :
		 rc.tls_mode == RPC_TLS_FILE	 ? (rc.tls_client_ca_file ? "mtls" : "file") :
						   "disabled",
		 "workers", "%d", rc.workers, "version", "%s", TRSTCTL_VERSION);

	do {
		r = sigwait(sigs, &sig);
	} while (r != 0);
	log_info("shutting down", "signal", "%s", strsignal(sig), "grace_ms", "%d", rc.grace_ms);
	rpc_server_shutdown(s);
	rpc_server_free(s);
	rpc_fini();
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

int main(int argc, char **argv)
{
	enum { CMD_SERVE, CMD_CHECK_CONFIG, CMD_HEALTH_CHECK } cmd = CMD_SERVE;
	struct cfg *c = NULL;
	char *errors = NULL;
	sigset_t sigs;
	int r;

	/* Before any thread exists: the gRPC core's threads inherit this mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	for (int i = 1; i < argc; i++) {
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

	r = cfg_load(environ, &c, &errors);
	if (r < 0) {
		fprintf(stderr, "trstctl: configuration: %s\n", errors ? errors : strerror(-r));
		free(errors);
		return 1;
	}
	if (cmd == CMD_CHECK_CONFIG) {
		r = cfg_print(c, stdout) < 0 ? 1 : 0;
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
