/*
 * cli.c: the connection of the client sub-commands. A client needs an address, a way to
 * verify the server (a CA file) and a token (a token file): each comes from its flag, else
 * from the client settings (client.addr, client.ca_file, client.token_file:
 * TRSTCTL_ADDR, TRSTCTL_CA_FILE, TRSTCTL_TOKEN_FILE), else from the server's own settings
 * when the command runs beside the server (its address made loopback, the CA bundle
 * the internal TLS mode writes to the state folder, the bootstrap token file), else a
 * default. The configuration comes from cfg_load_client, which checks no rule: a client
 * runs with no TRSTCTL_POSTGRES_DSN. docs/cli.md "Connection" is the user's view of the
 * same order.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cfg.h"
#include "net.h"
#include "cli-internal.h"

#define DEFAULT_ADDR "127.0.0.1:8443"

const char *const cli_conn_flags[] = {
	"--addr",	"--ca-file", "--tls-ca",    "--server-name",  "--cert", "--key",
	"--token-file", "--token",   "--plaintext", "--insecure-tls", NULL,
};

bool cli_conn_flag_takes_value(const char *name)
{
	return strcmp(name, "--plaintext") && strcmp(name, "--insecure-tls");
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

/*
 * The name to check in the internal certificate when calling addr: none when addr's host is
 * one of server.tls.sans (the host itself is checked), else localhost when the certificate
 * carries it, else its first DNS name (a pod calling itself on 127.0.0.1 under its Service
 * names). Borrowed from c, or static.
 */
static const char *internal_target(const struct cfg *c, const char *addr)
{
	const char *first_dns = NULL, *found = NULL;
	bool has_localhost = false;
	char *host = NULL;
	int port;

	if (net_split_hostport(addr, &host, &port) < 0)
		host = NULL;
	for (size_t i = 0; i < c->server.n_tls_sans; i++) {
		const char *n = c->server.tls_sans[i];
		struct net_addr a;

		if (host && !strcasecmp(n, host))
			found = n;
		if (!strcasecmp(n, "localhost"))
			has_localhost = true;
		else if (!first_dns && net_addr_parse(n, &a) < 0)
			first_dns = n;
	}
	free(host);
	if (found)
		return NULL;
	return has_localhost ? "localhost" : first_dns;
}

/*
 * How to verify the server when no flag and no client.ca_file says: the server's way. In the
 * internal TLS mode that is the CA bundle the server writes to the state folder at start-up
 * (the roots its certificate chains to), under a name the certificate carries.
 */
static void server_transport(const struct cfg *c, struct trstctl_client_config *cc, char *bundle,
			     size_t len)
{
	switch (c->server.tls_mode) {
	case CFG_TLS_DISABLED:
		cc->transport = TRSTCTL_PLAINTEXT;
		break;
	case CFG_TLS_FILE:
		/* the client CA also verifies the server; its own pair serves for mTLS */
		cc->ca_file = c->server.tls_client_ca_file;
		if (cc->ca_file) {
			cc->cert_file = c->server.tls_cert_file;
			cc->key_file = c->server.tls_key_file;
		}
		break;
	case CFG_TLS_INTERNAL:
		snprintf(bundle, len, "%s/ca-bundle.pem", c->state_dir ? c->state_dir : ".");
		if (access(bundle, R_OK) == 0) {
			cc->ca_file = bundle;
			cc->target_name = internal_target(c, cc->addr);
		}
		break;
	}
}

/* The token: flag, file flag, client.token_file, else the bootstrap token if readable. */
static int load_token(const struct cli_conn_opts *o, const struct cfg *c, char *token, size_t len,
		      char *err, size_t errlen)
{
	const char *file = o->token_file ? o->token_file : c->client.token_file;
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
	if (!c->auth.bootstrap_token_file ||
	    cli_read_token(c->auth.bootstrap_token_file, token, len) < 0)
		token[0] = '\0'; /* none: only health and reflection will answer */
	return 0;
}

int cli_conn_resolve(const struct cli_conn_opts *o, const struct cfg *c, struct cli_conn *ret,
		     char *err, size_t errlen)
{
	struct trstctl_client_config *cc = &ret->config;
	const char *addr = o->addr ? o->addr : c->client.addr;
	const char *ca_file = o->ca_file ? o->ca_file : c->client.ca_file;
	int r;

	memset(ret, 0, sizeof(*ret));
	cc->deadline_ms = o->deadline_ms ? o->deadline_ms : 30000;
	if (!addr && c->server.addr &&
	    loopback_addr(c->server.addr, ret->addr, sizeof(ret->addr)) == 0)
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
		server_transport(c, cc, ret->bundle, sizeof(ret->bundle));
	if (cc->transport != TRSTCTL_TLS)
		cc->ca_file = NULL;
	if (cc->transport == TRSTCTL_PLAINTEXT)
		cc->cert_file = cc->key_file = NULL;
	if (o->cert || o->key) {
		cc->cert_file = o->cert;
		cc->key_file = o->key;
	}
	if (o->server_name)
		cc->target_name = o->server_name;
	r = load_token(o, c, ret->token, sizeof(ret->token), err, errlen);
	if (r < 0) {
		OPENSSL_cleanse(ret->token, sizeof(ret->token));
		return r;
	}
	cc->token = ret->token[0] ? ret->token : NULL;
	return 0;
}

int cli_conn_open(const struct cli_conn_opts *o, const struct cfg *c,
		  struct trstctl_client **ret_client, char *err, size_t errlen)
{
	struct cli_conn conn;
	int r = cli_conn_resolve(o, c, &conn, err, errlen);

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
