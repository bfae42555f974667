/*
 * cli.c: the connection of the client sub-commands. A client needs an address, a way to
 * verify the server (a CA file) and a token (a token file): each comes from its flag, else
 * from TRSTCTL_ADDR, TRSTCTL_CA_FILE or TRSTCTL_TOKEN_FILE, else from the server's own
 * variables when the command runs beside the server (its address made loopback, the
 * certificate the internal TLS mode writes to the state folder, the bootstrap token
 * file), else a default. Nothing here reads the configuration file or the database
 * settings: a client runs with no TRSTCTL_POSTGRES_DSN. docs/cli.md "Connection" is the
 * user's view of the same order.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "net.h"
#include "cli-internal.h"

#define DEFAULT_ADDR "127.0.0.1:8443"
#define DEFAULT_STATE_DIR "data" /* TRSTCTL_STATE_DIR's default (docs/configuration.md) */

const char *const cli_conn_flags[] = {
	"--addr",	"--ca-file", "--tls-ca",    "--server-name",  "--cert", "--key",
	"--token-file", "--token",   "--plaintext", "--insecure-tls", NULL,
};

bool cli_conn_flag_takes_value(const char *name)
{
	return strcmp(name, "--plaintext") && strcmp(name, "--insecure-tls");
}

const char *cli_env(char *const *envp, const char *name)
{
	size_t n = strlen(name);

	for (; envp && *envp; envp++)
		if (!strncmp(*envp, name, n) && (*envp)[n] == '=')
			return (*envp)[n + 1] ? *envp + n + 1 : NULL;
	return NULL;
}

/* The server address as a client beside it reaches it: a wildcard host becomes loopback. */
static int loopback_addr(const char *server_addr, char *buf, size_t len)
{
	char *host = NULL;
	int port, r;

	r = net_split_hostport(server_addr, &host, &port);
	if (r < 0)
		return r;
	if (port == 0)
		r = -EINVAL; /* a kernel-chosen port cannot be found from here */
	else if (!*host || !strcmp(host, "0.0.0.0"))
		snprintf(buf, len, "127.0.0.1:%d", port);
	else if (!strcmp(host, "::"))
		snprintf(buf, len, "[::1]:%d", port);
	else
		snprintf(buf, len, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
	free(host);
	return r;
}

int cli_read_token(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return -errno;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return buf[0] ? 0 : -EINVAL;
}

int cli_conn_flag(struct cli_conn_opts *o, const char *name, const char *value)
{
	if (!strcmp(name, "--plaintext")) {
		o->transport = CLI_TRANSPORT_PLAINTEXT;
		return 1;
	}
	if (!strcmp(name, "--insecure-tls")) {
		o->transport = CLI_TRANSPORT_INSECURE;
		return 1;
	}
	if (strcmp(name, "--addr") && strcmp(name, "--ca-file") && strcmp(name, "--tls-ca") &&
	    strcmp(name, "--server-name") && strcmp(name, "--cert") && strcmp(name, "--key") &&
	    strcmp(name, "--token") && strcmp(name, "--token-file"))
		return 0;
	if (!value)
		return -EINVAL;
	if (!strcmp(name, "--addr")) {
		o->addr = value;
	} else if (!strcmp(name, "--ca-file") || !strcmp(name, "--tls-ca")) {
		o->transport = CLI_TRANSPORT_DEFAULT; /* TLS verified with this file */
		o->ca_file = value;
	} else if (!strcmp(name, "--server-name")) {
		o->server_name = value;
	} else if (!strcmp(name, "--cert")) {
		o->cert = value;
	} else if (!strcmp(name, "--key")) {
		o->key = value;
	} else if (!strcmp(name, "--token")) {
		o->token = value;
	} else {
		o->token_file = value;
	}
	return 2;
}

/* The state folder of a server beside us, with its default. */
static const char *state_dir(char *const *envp)
{
	const char *d = cli_env(envp, "TRSTCTL_STATE_DIR");

	return d ? d : DEFAULT_STATE_DIR;
}

/* How to verify the server when no flag and no TRSTCTL_CA_FILE says: the server's way. */
static void server_transport(char *const *envp, struct trstctl_client_config *cc, char *pinned,
			     size_t len)
{
	const char *mode = cli_env(envp, "TRSTCTL_SERVER_TLS_MODE");

	if (mode && !strcmp(mode, "disabled")) {
		cc->transport = TRSTCTL_PLAINTEXT;
	} else if (mode && !strcmp(mode, "file")) {
		/* the client CA also verifies the server; its own pair serves for mTLS */
		cc->ca_file = cli_env(envp, "TRSTCTL_SERVER_TLS_CLIENT_CA_FILE");
		if (cc->ca_file) {
			cc->cert_file = cli_env(envp, "TRSTCTL_SERVER_TLS_CERT_FILE");
			cc->key_file = cli_env(envp, "TRSTCTL_SERVER_TLS_KEY_FILE");
		}
	} else {
		snprintf(pinned, len, "%s/server-cert.pem", state_dir(envp));
		if (access(pinned, R_OK) == 0)
			cc->ca_file = pinned; /* the internal mode's certificate: pinned */
	}
}

/* The token: flag, file flag, TRSTCTL_TOKEN_FILE, else the bootstrap token if readable. */
static int load_token(const struct cli_conn_opts *o, char *const *envp, char *token, size_t len,
		      char *err, size_t errlen)
{
	const char *file = o->token_file ? o->token_file : cli_env(envp, "TRSTCTL_TOKEN_FILE");
	char boot[4096];
	int r;

	if (o->token) {
		snprintf(token, len, "%s", o->token);
		return 0;
	}
	if (file) {
		r = cli_read_token(file, token, len);
		if (r < 0)
			snprintf(err, errlen, "cannot read a token from %s: %s", file,
				 r == -EINVAL ? "it is empty" : strerror(-r));
		return r;
	}
	if (cli_env(envp, "TRSTCTL_BOOTSTRAP_TOKEN_FILE"))
		snprintf(boot, sizeof(boot), "%s", cli_env(envp, "TRSTCTL_BOOTSTRAP_TOKEN_FILE"));
	else
		snprintf(boot, sizeof(boot), "%s/bootstrap-token", state_dir(envp));
	if (cli_read_token(boot, token, len) < 0)
		token[0] = '\0'; /* none: only health and reflection will answer */
	return 0;
}

int cli_conn_resolve(const struct cli_conn_opts *o, char *const *envp, struct cli_conn *ret,
		     char *err, size_t errlen)
{
	struct trstctl_client_config *cc = &ret->config;
	const char *addr = o->addr ? o->addr : cli_env(envp, "TRSTCTL_ADDR");
	const char *ca_file = o->ca_file ? o->ca_file : cli_env(envp, "TRSTCTL_CA_FILE");
	int r;

	memset(ret, 0, sizeof(*ret));
	cc->deadline_ms = o->deadline_ms ? o->deadline_ms : 30000;
	if (!addr && cli_env(envp, "TRSTCTL_SERVER_ADDR") &&
	    loopback_addr(cli_env(envp, "TRSTCTL_SERVER_ADDR"), ret->addr, sizeof(ret->addr)) == 0)
		addr = ret->addr;
	cc->addr = addr ? addr : DEFAULT_ADDR;
	cc->transport = TRSTCTL_TLS;
	if (o->transport == CLI_TRANSPORT_PLAINTEXT)
		cc->transport = TRSTCTL_PLAINTEXT;
	else if (o->transport == CLI_TRANSPORT_INSECURE)
		cc->transport = TRSTCTL_TLS_NO_VERIFY;
	else if (ca_file)
		cc->ca_file = ca_file;
	else
		server_transport(envp, cc, ret->pinned, sizeof(ret->pinned));
	if (cc->transport != TRSTCTL_TLS)
		cc->ca_file = NULL;
	if (cc->transport == TRSTCTL_PLAINTEXT)
		cc->cert_file = cc->key_file = NULL;
	if (o->cert || o->key) {
		cc->cert_file = o->cert;
		cc->key_file = o->key;
	}
	cc->target_name = o->server_name;
	r = load_token(o, envp, ret->token, sizeof(ret->token), err, errlen);
	if (r < 0) {
		OPENSSL_cleanse(ret->token, sizeof(ret->token));
		return r;
	}
	cc->token = ret->token[0] ? ret->token : NULL;
	return 0;
}

int cli_conn_open(const struct cli_conn_opts *o, char *const *envp,
		  struct trstctl_client **ret_client, char *err, size_t errlen)
{
	struct cli_conn conn;
	int r = cli_conn_resolve(o, envp, &conn, err, errlen);

	if (r < 0)
		return r;
	r = trstctl_client_new(&conn.config, ret_client);
	OPENSSL_cleanse(conn.token, sizeof(conn.token)); /* the client keeps its own copy */
	if (r < 0)
		snprintf(err, errlen, "cannot set up the client of %s: %s%s", conn.config.addr,
			 strerror(-r),
			 (conn.config.cert_file != NULL) != (conn.config.key_file != NULL) ?
				 " (--cert and --key go together)" :
				 "");
	return r;
}

char *cli_fmt_time(int64_t seconds, char *buf, size_t len)
{
	time_t t = (time_t)seconds;
	struct tm tm;

	if (!seconds || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "-");
	return buf;
}
