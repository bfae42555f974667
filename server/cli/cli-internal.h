#pragma once
/*
 * cli's own interface between its files: the connection (cli.c), the command tables
 * (cli-ca.c, cli-secrets.c, cli-policy.c, cli-audit.c, cli-guard.c, cli-assist.c), the
 * engine that runs one (cli-run.c), the request builder (cli-request.c), the table
 * printer (cli-table.c), help and completion (cli-help.c). Included only inside
 * server/cli/.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "trstctl-client.h"

struct cfg;

/* Exit statuses of the client sub-commands (docs/cli.md "Exit status"). */
enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAIL = 1,	/* the call failed (its gRPC status is printed), or a local error */
	CLI_EXIT_USAGE = 2,	/* bad arguments: nothing was called */
	CLI_EXIT_BROKEN = 3,	/* the call succeeded and says something is wrong (audit verify) */
	CLI_DONE_PRINTED = 255, /* from a done hook: the reply is printed already; exit 0 */
};

/* Connection ----------------------------------------------------------------------------- */

/* The transport asked for on the command line; the last such flag wins. */
enum cli_transport {
	CLI_TRANSPORT_DEFAULT = 0, /* TLS, or as the environment says (cli_conn_open) */
	CLI_TRANSPORT_PLAINTEXT,   /* --plaintext */
	CLI_TRANSPORT_INSECURE,	   /* --insecure-tls: TLS without verifying the server */
};

/* Connection flags; NULL means "from the environment". Strings are borrowed. */
struct cli_conn_opts {
	const char *addr;	      /* --addr HOST:PORT */
	const char *ca_file;	      /* --ca-file FILE (alias --tls-ca): verify the server */
	const char *server_name;      /* --server-name NAME: the name checked in its certificate */
	const char *cert, *key;	      /* --cert FILE --key FILE: a client certificate (mTLS) */
	const char *token_file;	      /* --token-file FILE */
	const char *token;	      /* --token TOKEN (visible in ps: discouraged) */
	enum cli_transport transport; /* see enum */
	int64_t deadline_ms;	      /* per unary call; 0 = 30 s */
};

/*
 * Takes one connection flag into o: name with its leading "--", value the argument after
 * it (NULL when there is none). Returns 0 when name is not a connection flag, 1 when it
 * took the flag alone (--plaintext, --insecure-tls), 2 when it also took value, -EINVAL
 * when the value is missing.
 */
int cli_conn_flag(struct cli_conn_opts *o, const char *name, const char *value);

/* The names of the connection flags (NULL-terminated) and whether one takes a value. */
extern const char *const cli_conn_flags[];
bool cli_conn_flag_takes_value(const char *name);

/* A resolved connection: the libtrstctl config and the buffers it points into. */
struct cli_conn {
	struct trstctl_client_config config;
	char addr[512];	   /* the server's address made loopback, when that was taken */
	char bundle[4096]; /* the internal TLS mode's CA bundle, when that was taken */
	char token[512];   /* the token (wipe it) */
};

/*
 * What cli_conn_open would open, in *ret (the caller wipes ret->token). Returns 0, or
 * -errno with the reason in err (an explicit token file that cannot be read).
 */
int cli_conn_resolve(const struct cli_conn_opts *o, const struct cfg *c, struct cli_conn *ret,
		     char *err, size_t errlen);

/*
 * Opens a libtrstctl client as o and the configuration c (from cfg_load_client) say, each
 * setting on its own: the flag, else client.addr / client.ca_file / client.token_file,
 * else what the server's own settings say on the server's host (server.addr with a
 * wildcard host made loopback, server.tls.mode, the CA bundle the internal TLS mode
 * writes to state_dir (checked under a name among server.tls.sans), auth.bootstrap_token_file), else 127.0.0.1:8443, TLS verified
 * against the system roots, no token. The buffer that held the token is wiped. Returns 0
 * and *ret_client, or -errno with the reason in err.
 */
int cli_conn_open(const struct cli_conn_opts *o, const struct cfg *c,
		  struct trstctl_client **ret_client, char *err, size_t errlen);

/*
 * Reads the first line of a token file (without its line end) into buf (len bytes, the
 * caller wipes it). Returns 0, -errno when the file cannot be read, -EINVAL when the line
 * is empty.
 */
int cli_read_token(const char *path, char *buf, size_t len);

/* Commands ------------------------------------------------------------------------------- */

/* Flags of a command argument. */
enum {
	CLI_ARG_BOOL = 1 << 0, /* a flag without a value */
	CLI_ARG_FILE =
		1 << 1, /* the value names a file ("-": stdin) whose contents set the field */
	CLI_ARG_STDIN = 1 << 2,	   /* not given: the field is read from stdin (with CLI_ARG_FILE) */
	CLI_ARG_OPTIONAL = 1 << 3, /* a positional argument that may be left out */
	CLI_ARG_REQUIRED = 1 << 4, /* a flag that must be given */
};

/*
 * An argument of a command beyond the automatic ones: a positional argument ("ID"), a
 * flag with another name than its field ("--owner" for owner_id), or a command option
 * that sets no field ("--cert-out", field NULL: read with cli_call_opt).
 */
struct cli_arg {
	const char *name;    /* "--owner", or the positional argument's name ("ID") */
	const char *field;   /* the request field it sets; NULL: a command option */
	const char *metavar; /* the value's name in help ("FILE"); NULL for a positional */
	unsigned flags;	     /* CLI_ARG_* */
	const char *help;    /* one line */
};

struct cli_call;

/*
 * One client sub-command: `trstctl <noun> <verb>` calls method. Every field of the
 * method's request that no cli_arg names is a flag of its own (--field-name). A reply is
 * printed by `table` (-o table; NULL: cli_table_print) or as proto3 JSON (-o json).
 */
struct cli_cmd {
	const char *noun, *verb;
	const char *method;	    /* "/trstctl.v1.CA/CreateOwner" */
	const char *summary;	    /* one line for help */
	const struct cli_arg *args; /* ends with { NULL }; NULL for none */
	const char *const *columns; /* a list reply in a table: the item fields shown */
	/* Before the call: finish the request (from options); returns 0 or an exit status. */
	int (*prepare)(struct cli_call *k);
	/*
	 * After a reply, before it is printed: write files, blank what went to them. Returns
	 * an exit status; the reply is printed whatever it is (a file that could not be
	 * written must not lose a key made once), unless CLI_DONE_PRINTED.
	 */
	int (*done)(struct cli_call *k, ProtobufCMessage *reply);
	/* -o table: prints the reply (each message of a stream); returns an exit status. */
	int (*table)(struct cli_call *k, const ProtobufCMessage *reply);
};

/* The command tables, each ending with a zeroed entry. */
extern const struct cli_cmd cli_ca_cmds[], cli_secrets_cmds[], cli_audit_cmds[], cli_policy_cmds[],
	cli_guard_cmds[], cli_assist_cmds[];

/* Output formats. */
enum cli_output {
	CLI_OUTPUT_TABLE = 0,
	CLI_OUTPUT_JSON,
};

#define CLI_MAX_ARGS 64

/* One run of a command. */
struct cli_call {
	const struct cli_cmd *cmd;
	const struct trstctl_method *method;
	ProtobufCMessage *req;		/* owned; built from the arguments */
	const char *opts[CLI_MAX_ARGS]; /* command options' values, by index in cmd->args */
	enum cli_output output;		/* -o */
	int64_t limit;		   /* --limit: items of a list or stream; <= 0: all, -1: unset */
	bool one_page;		   /* --page-token given: one page, not all */
	struct cli_conn_opts conn; /* connection flags */
	const struct cfg *cfg;	   /* the configuration (cfg_load_client) */
	struct trstctl_client *client; /* open while the call runs */
};

/* The value of command option name ("--cert-out") in k: "" for a bool flag, NULL if unset. */
const char *cli_call_opt(const struct cli_call *k, const char *name);

/* "trstctl: <noun> <verb>: " and the formatted message on stderr. */
void cli_errorf(const struct cli_call *k, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Writes len bytes to path, created with mode (an existing file is truncated). Returns 0 or
 * -errno, said on stderr for k.
 */
int cli_write_file(const struct cli_call *k, const char *path, const void *data, size_t len,
		   unsigned mode);

/* Request building (cli-request.c) ----------------------------------------------------- */

/*
 * Sets field of the request m from the text value: numbers parsed strictly (a field
 * named *_seconds also takes a duration: "90", "15m", "1h30m"), bools from
 * "true"/"false" (a bare flag passes "true"), enums by name or number, repeated fields
 * appended to (a repeated string also split at commas), maps from "key=value", bytes
 * and strings as they are. Returns 0, or -EINVAL with the reason in err.
 */
int cli_request_set(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const char *value,
		    char *err, size_t errlen);

/* Sets a bytes or string field to len bytes of data (copied). Returns 0 or -ENOMEM. */
int cli_request_set_data(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const void *data,
			 size_t len);

/*
 * Reads all of path ("-": stdin) into a malloc'd buffer with a NUL after the data (the
 * caller wipes and frees it). Refuses more than 16 MiB. Returns 0 or -errno.
 */
int cli_read_file(const char *path, uint8_t **ret, size_t *ret_len);

/* A new message of type d (free with cli_message_free). NULL when out of memory. */
ProtobufCMessage *cli_message_new(const ProtobufCMessageDescriptor *d);

/* Wipes every string and bytes value of m and frees it (it may hold secrets). Takes NULL. */
void cli_message_free(ProtobufCMessage *m);

/* The automatic flag of a field: "--page-size" for page_size ("--x-file" for bytes x). */
void cli_field_flag(const ProtobufCFieldDescriptor *f, char *buf, size_t len);

/* Tables (cli-table.c) ------------------------------------------------------------------- */

/* Room for cli_fmt_time. */
#define CLI_TIME_LEN 32

/*
 * Formats seconds since the epoch as RFC 3339 in UTC ("2024-05-01T12:00:00Z"), the one
 * time format the tables print; "-" for 0 (unset). Returns buf.
 */
char *cli_fmt_time(int64_t seconds, char *buf, size_t len);

/*
 * Prints a reply as a table: a list reply (a repeated message field) as one row per item
 * with the columns named (all scalar fields when columns is NULL) under a header; any
 * other message as "field: value" lines, a nested message's fields as "field.sub:", a
 * map's entries indented below it. Times in RFC 3339, bytes by their size, repeated values
 * joined with ", ", an empty value as "-", text of several lines after its key as it is.
 * Returns 0 or -EIO.
 */
int cli_table_print(FILE *f, const ProtobufCMessage *m, const char *const *columns);

/* The repeated message field of a list reply ("owners"), or NULL. */
const ProtobufCFieldDescriptor *cli_list_field(const ProtobufCMessageDescriptor *d);

/* One field of m as table text into buf ("-" when empty). Returns buf. */
char *cli_table_value(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, char *buf,
		      size_t len);

/* Help and completion (cli-help.c) ----------------------------------------------------- */

/* Every command, in help order (the tables above, then NULL). */
extern const struct cli_cmd *const cli_tables[];

/* --help of one command. */
void cli_help_cmd(FILE *f, const struct cli_cmd *c);

/* The commands of one noun (NULL: all), as "trstctl <noun> <verb> ..." lines. */
void cli_help_list(FILE *f, const char *noun);

/* `trstctl completion bash`: the bash completion script on f. Returns an exit status. */
int cli_complete_bash(FILE *f);

/* The method of a command (never NULL for the tables' commands). */
const struct trstctl_method *cli_method(const struct cli_cmd *c);
