/*
 * cli.c: the connection of the client sub-commands. It turns the configuration the server
 * runs with into a libtrstctl client config (the server address as a client reaches it,
 * the transport and files of server.tls_mode, the bootstrap token), applies the command
 * line over it, and formats times for printing. It assumes the configuration is the
 * server's own (same environment, same state folder), which is what lets every client
 * sub-command run on the server's host with no flag at all: in the internal TLS mode it
 * verifies the server with the CA bundle the server wrote to the state folder.
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
#include "cli.h"
#include "trstctl-client.h"

#define TOKEN_MAX 512

/* The server address as a client reaches it: a wildcard host becomes loopback. */
static int client_addr(const char *server_addr, char *buf, size_t len)
{
	char *host = NULL;
	int port, r;

	if (!server_addr)
		return -EINVAL;
	r = net_split_hostport(server_addr, &host, &port);
	if (r < 0)
		return r;
	if (port == 0)
		r = -EINVAL; /* a kernel-chosen port cannot be found from here: use --addr */
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

/* Transport and files from the configuration; bundle names the internal CA bundle. */
static void cfg_transport(const struct cfg *c, const char *addr, struct trstctl_client_config *cc,
			  char *bundle, size_t len)
{
	switch (c->server.tls_mode) {
	case CFG_TLS_DISABLED:
		cc->transport = TRSTCTL_PLAINTEXT;
		break;
	case CFG_TLS_INTERNAL:
		/* written by the server at start-up: the roots its certificate chains to */
		snprintf(bundle, len, "%s/ca-bundle.pem", c->state_dir ? c->state_dir : ".");
		if (access(bundle, R_OK) == 0) {
			cc->transport = TRSTCTL_TLS;
			cc->ca_file = bundle;
			cc->target_name = internal_target(c, addr);
		} else {
			cc->transport = TRSTCTL_TLS_NO_VERIFY;
		}
		break;
	case CFG_TLS_FILE:
		cc->transport = TRSTCTL_TLS;
		cc->ca_file = c->server.tls_client_ca_file;
		if (c->server.tls_client_ca_file) {
			cc->cert_file = c->server.tls_cert_file;
			cc->key_file = c->server.tls_key_file;
		}
		break;
	}
}

static void flag_transport(const struct cli_client_opts *o, struct trstctl_client_config *cc)
{
	switch (o->transport) {
	case CLI_TRANSPORT_CONFIG:
		break;
	case CLI_TRANSPORT_PLAINTEXT:
		cc->transport = TRSTCTL_PLAINTEXT;
		cc->ca_file = cc->cert_file = cc->key_file = NULL;
		break;
	case CLI_TRANSPORT_TLS:
		cc->transport = TRSTCTL_TLS;
		cc->ca_file = o->tls_ca;
		break;
	case CLI_TRANSPORT_INSECURE:
		cc->transport = TRSTCTL_TLS_NO_VERIFY;
		cc->ca_file = NULL;
		break;
	}
	if (o->cert)
		cc->cert_file = o->cert;
	if (o->key)
		cc->key_file = o->key;
}

int cli_client_flag(struct cli_client_opts *o, const char *name, const char *value)
{
	if (!strncmp(name, "--", 2))
		name += 2;
	if (!strcmp(name, "plaintext")) {
		o->transport = CLI_TRANSPORT_PLAINTEXT;
		return 1;
	}
	if (!strcmp(name, "insecure-tls")) {
		o->transport = CLI_TRANSPORT_INSECURE;
		return 1;
	}
	if (strcmp(name, "addr") && strcmp(name, "tls-ca") && strcmp(name, "cert") &&
	    strcmp(name, "key") && strcmp(name, "token") && strcmp(name, "token-file"))
		return 0;
	if (!value)
		return -EINVAL;
	if (!strcmp(name, "addr")) {
		o->addr = value;
	} else if (!strcmp(name, "tls-ca")) {
		o->transport = CLI_TRANSPORT_TLS;
		o->tls_ca = value;
	} else if (!strcmp(name, "cert")) {
		o->cert = value;
	} else if (!strcmp(name, "key")) {
		o->key = value;
	} else if (!strcmp(name, "token")) {
		o->token = value;
	} else {
		o->token_file = value;
	}
	return 2;
}

int cli_client_open(const struct cfg *c, const struct cli_client_opts *o,
		    struct trstctl_client **ret_client, char *err, size_t errlen)
{
	struct trstctl_client_config cc = { .deadline_ms =
						    o->deadline_ms ? o->deadline_ms : 10000 };
	char addr[512], bundle[4096], token[TOKEN_MAX];
	int r;

	if (o->addr)
		snprintf(addr, sizeof(addr), "%s", o->addr);
	else if (client_addr(c->server.addr, addr, sizeof(addr)) < 0) {
		snprintf(err, errlen, "cannot call server address \"%s\"; use --addr HOST:PORT",
			 c->server.addr ? c->server.addr : "");
		return -EDESTADDRREQ;
	}
	cc.addr = addr;
	cfg_transport(c, addr, &cc, bundle, sizeof(bundle));
	flag_transport(o, &cc);
	token[0] = '\0';
	if (o->token) {
		cc.token = o->token;
	} else if (o->token_file) {
		r = cli_read_token(o->token_file, token, sizeof(token));
		if (r < 0) {
			snprintf(err, errlen, "cannot read a token from %s: %s", o->token_file,
				 r == -EINVAL ? "empty" : strerror(-r));
			OPENSSL_cleanse(token, sizeof(token));
			return r;
		}
		cc.token = token;
	} else if (c->auth.bootstrap_token_file &&
		   cli_read_token(c->auth.bootstrap_token_file, token, sizeof(token)) == 0) {
		cc.token = token;
	}
	r = trstctl_client_new(&cc, ret_client);
	OPENSSL_cleanse(token, sizeof(token)); /* the client keeps its own copy */
	if (r < 0)
		snprintf(err, errlen, "cannot create the client of %s: %s", addr, strerror(-r));
	return r;
}

int cli_client_exit_status(int r)
{
	return r == -EDESTADDRREQ ? 2 : 1;
}

char *cli_fmt_time(int64_t seconds, char *buf, size_t len)
{
	time_t t = (time_t)seconds;
	struct tm tm;

	if (!seconds || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "-");
	return buf;
}
