#pragma once
/*
 * cli: what the sub-commands of the trstctl binary that call a running server share: the
 * connection flags, the connection itself (address, transport, files and token from the
 * configuration, each overridable), and the time format they print. cli-guard.c holds
 * `trstctl guard status`; the other client sub-commands live with their module
 * (policy_cli.c, secrets_cli.c, ca_cli.c) and use this header.
 *
 * A sub-command takes the arguments after its name and the loaded configuration, prints
 * to stdout, reports errors on stderr, and returns the process exit status.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg;
struct trstctl_client;

/* The connection flags, for a sub-command's usage text. */
#define CLI_CLIENT_USAGE                                                                       \
	"connection: [--addr HOST:PORT] [--plaintext | --tls-ca FILE | --insecure-tls]\n"      \
	"            [--cert FILE --key FILE] [--token-file FILE | --token TOKEN]\n"           \
	"  Defaults come from the server.* settings; the token from --token-file, else the\n"  \
	"  bootstrap token file (auth.bootstrap_token_file) when it is readable. --token is\n" \
	"  discouraged: other users of this host can read a command line (ps).\n"

/* The transport asked for on the command line; the last such flag wins. */
enum cli_transport {
	CLI_TRANSPORT_CONFIG = 0, /* as the configuration says (server.tls_mode) */
	CLI_TRANSPORT_PLAINTEXT,  /* --plaintext */
	CLI_TRANSPORT_TLS,	  /* --tls-ca FILE: verify the server with FILE */
	CLI_TRANSPORT_INSECURE,	  /* --insecure-tls: TLS without verifying the server */
};

/* Connection flags; NULL and 0 mean "from the configuration". Strings are borrowed. */
struct cli_client_opts {
	const char *addr;	      /* --addr HOST:PORT; else server.addr, wildcard: loopback */
	enum cli_transport transport; /* see enum */
	const char *tls_ca;	      /* --tls-ca FILE (with CLI_TRANSPORT_TLS) */
	const char *cert;	      /* --cert FILE: client certificate for mTLS, with key */
	const char *key;	      /* --key FILE */
	const char *token;	      /* --token TOKEN (visible in ps: discouraged) */
	const char *token_file;	      /* --token-file FILE: must be readable */
	int deadline_ms;	      /* per call; 0 = 10 s */
};

/*
 * Takes one connection flag into o: name with or without its leading "--" ("addr",
 * "--addr"), value the argument after it (NULL when there is none). Returns 0 when name
 * is not a connection flag, 1 when it took the flag alone (--plaintext, --insecure-tls),
 * 2 when it also took value, -EINVAL when the value is missing.
 */
int cli_client_flag(struct cli_client_opts *o, const char *name, const char *value);

/* getopt_long entries of the connection flags: handle CLI_CLIENT_OPT with cli_client_flag. */
#define CLI_CLIENT_OPT 0x1c0
/* clang-format off */
#define CLI_CLIENT_LONGOPTS                                                 \
	{ "addr", required_argument, NULL, CLI_CLIENT_OPT },                \
	{ "plaintext", no_argument, NULL, CLI_CLIENT_OPT },                 \
	{ "tls-ca", required_argument, NULL, CLI_CLIENT_OPT },              \
	{ "insecure-tls", no_argument, NULL, CLI_CLIENT_OPT },              \
	{ "cert", required_argument, NULL, CLI_CLIENT_OPT },                \
	{ "key", required_argument, NULL, CLI_CLIENT_OPT },                 \
	{ "token", required_argument, NULL, CLI_CLIENT_OPT },               \
	{ "token-file", required_argument, NULL, CLI_CLIENT_OPT }
/* clang-format on */

/*
 * Opens a libtrstctl client of the server the configuration names, as o overrides it:
 * plaintext when TLS is disabled, the internal certificate verified with the CA bundle the
 * server wrote to the state folder (<state_dir>/ca-bundle.pem) under a name among
 * server.tls.sans (unverified TLS when the file is not there), or the operator's files (the client CA also
 * verifies the server; the server's certificate and key are presented for mTLS). The
 * token: o->token, else o->token_file, else the bootstrap token file when readable, else
 * none; the buffer that held it is wiped. Returns 0 and *ret_client, -EDESTADDRREQ when
 * no address can be called (a usage error: use --addr), or another -errno with the reason
 * in err.
 */
int cli_client_open(const struct cfg *c, const struct cli_client_opts *o,
		    struct trstctl_client **ret_client, char *err, size_t errlen);

/*
 * Reads the first line of a token file (without its line end) into buf (len bytes, the
 * caller wipes it). Returns 0, -errno when the file cannot be read, -EINVAL when the line
 * is empty.
 */
int cli_read_token(const char *path, char *buf, size_t len);

/* The exit status for a failed cli_client_open: 2 (usage) or 1. */
int cli_client_exit_status(int r);

/* Room for cli_fmt_time. */
#define CLI_TIME_LEN 32

/*
 * Formats seconds since the epoch as RFC 3339 in UTC ("2024-05-01T12:00:00Z"), the one
 * time format the CLIs print; "-" for 0 (unset). Returns buf.
 */
char *cli_fmt_time(int64_t seconds, char *buf, size_t len);

/* `trstctl guard status [--json] [...]`: calls trstctl.v1.Guard/GetStatus. */
int cli_guard(int argc, char **argv, const struct cfg *c);
