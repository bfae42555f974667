/*
 * cli-help.c: what the client sub-commands say about themselves, made from the same
 * tables that run them, so help and completion cannot drift from the commands: the list
 * of commands (`trstctl --help`, `trstctl owner --help`), one command's --help (its
 * arguments, then every request field as a flag, then output and connection flags), and
 * `trstctl completion bash`. The operator commands that main.c runs on the database are
 * listed here by name only, for completion; their own --help says what they need.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli-internal.h"

/* Operator commands (main.c runs them; they read the configuration, most the database). */
static const struct {
	const char *noun, *verb, *flags;
} operator_cmds[] = {
	{ "serve", NULL, "" },
	{ "migrate", NULL, "--status" },
	{ "kek", "rotate", "--new-file" },
	{ "guard", "attach", "--cgroup --pod-uid --cgroup-root --owner" },
	{ "ca", "import", "--cert --key --replace" },
	{ "ca", "csr", "--key-type --cn --out" },
	{ "ca", "import-signed", "--cert --replace" },
	{ "token", "create-root", "--policy --name --ttl" },
};

#define N_OPERATOR (sizeof(operator_cmds) / sizeof(operator_cmds[0]))

static const char conn_help[] =
	"connection (each: the flag, else its variable, else the server's own settings when\n"
	"run beside the server, else the default; docs/cli.md):\n"
	"  --addr HOST:PORT     TRSTCTL_ADDR; default 127.0.0.1:8443\n"
	"  --ca-file FILE       TRSTCTL_CA_FILE: the CA bundle that verifies the server\n"
	"  --token-file FILE    TRSTCTL_TOKEN_FILE: the API token (first line)\n"
	"  --server-name NAME   the name to check in the server's certificate\n"
	"  --cert FILE --key FILE  a client certificate (mTLS)\n"
	"  --plaintext          no TLS (a server with TLS disabled, on loopback)\n"
	"  --insecure-tls       TLS without verifying the server (development only)\n"
	"  --token TOKEN        discouraged: other users can read a command line\n"
	"No database setting is needed: the command calls the server.\n";

/* What an automatic flag's value is, from its field's type. */
static const char *type_hint(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f)
{
	if (!strcmp(f->name, "request_id"))
		return "idempotency key: a retry with it changes nothing more";
	if (!strcmp(f->name, "page_size"))
		return "items per call (the server's default when 0)";
	if (!strcmp(f->name, "page_token"))
		return "start there and show that one page";
	if (f->label == PROTOBUF_C_LABEL_REPEATED && trstctl_field_is_map(d, f))
		return "KEY=VALUE; give it again for more";
	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return "a list: a,b or the flag again";
	switch (f->type) {
	case PROTOBUF_C_TYPE_BOOL:
		return "a flag";
	case PROTOBUF_C_TYPE_BYTES:
		return "read from FILE (- for stdin)";
	case PROTOBUF_C_TYPE_STRING:
		return "text";
	case PROTOBUF_C_TYPE_ENUM:
		return "a name";
	case PROTOBUF_C_TYPE_INT64:
		return strstr(f->name, "_seconds") ? "seconds, or a duration: 15m, 24h" :
						     "a number";
	default:
		return "a number";
	}
}

/* The metavar of an automatic flag: "PAGE_SIZE", "FILE". */
static void metavar(const ProtobufCFieldDescriptor *f, char *buf, size_t len)
{
	size_t n = 0;

	if (f->type == PROTOBUF_C_TYPE_BOOL && f->label != PROTOBUF_C_LABEL_REPEATED) {
		buf[0] = '\0';
		return;
	}
	if (f->type == PROTOBUF_C_TYPE_BYTES) {
		snprintf(buf, len, "FILE");
		return;
	}
	for (const char *s = f->name; *s && n + 1 < len; s++)
		buf[n++] = *s >= 'a' && *s <= 'z' ? *s - 'a' + 'A' : *s;
	buf[n] = '\0';
}

static bool field_named(const struct cli_cmd *c, const char *field)
{
	for (const struct cli_arg *a = c->args; a && a->name; a++)
		if (a->field && !strcmp(a->field, field))
			return true;
	return false;
}

static void option_line(FILE *f, const char *flag, const char *mv, const char *help)
{
	char left[96];

	snprintf(left, sizeof(left), "%s%s%s", flag, mv && *mv ? " " : "", mv ? mv : "");
	if (strlen(left) < 24)
		fprintf(f, "  %-24s %s\n", left, help);
	else
		fprintf(f, "  %s\n  %-24s %s\n", left, "", help);
}

void cli_help_cmd(FILE *f, const struct cli_cmd *c)
{
	const struct trstctl_method *m = cli_method(c);
	const ProtobufCMessageDescriptor *in = m->input;
	bool pos = false, list, stream = m->server_streaming;

	list = protobuf_c_message_descriptor_get_field_by_name(in, "page_token") != NULL;
	fprintf(f, "usage: trstctl %s %s", c->noun, c->verb);
	for (const struct cli_arg *a = c->args; a && a->name; a++)
		if (a->name[0] != '-')
			fprintf(f, a->flags & CLI_ARG_OPTIONAL ? " [%s]" : " %s", a->name);
	for (const struct cli_arg *a = c->args; a && a->name; a++)
		if (a->flags & CLI_ARG_REQUIRED)
			fprintf(f, " %s %s", a->name, a->metavar);
	fprintf(f, " [options]\n  %s\n  calls %s\n", c->summary, c->method + 1);
	for (const struct cli_arg *a = c->args; a && a->name; a++)
		if (a->name[0] != '-') {
			if (!pos)
				fputs("arguments:\n", f);
			pos = true;
			option_line(f, a->name, NULL, a->help);
		}
	fputs("options:\n", f);
	for (const struct cli_arg *a = c->args; a && a->name; a++)
		if (a->name[0] == '-')
			option_line(f, a->name, a->metavar, a->help);
	for (unsigned i = 0; i < in->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &in->fields[i];
		char flag[128], mv[64];

		if (field_named(c, fd->name))
			continue;
		cli_field_flag(fd, flag, sizeof(flag));
		metavar(fd, mv, sizeof(mv));
		option_line(f, flag, mv, type_hint(in, fd));
	}
	if (list || stream)
		option_line(f, "--limit", "N",
			    list ? "at most N items (0: all); every page is followed" :
				   "stop after N messages");
	option_line(f, "-o, --output", "FORMAT",
		    "table (default) or json: the reply as proto3 JSON");
	fputs(conn_help, f);
	fprintf(f,
		"exit status: 0 ok; 1 the call failed (its gRPC status and message are "
		"printed)\n  or a file could not be read or written; 2 bad arguments%s\n",
		c->done && !strcmp(c->verb, "verify") ? "; 3 the chain is broken" : "");
}

void cli_help_list(FILE *f, const char *noun)
{
	if (!noun)
		fputs("client commands (they call a running server; `trstctl NOUN VERB --help` for "
		      "each):\n",
		      f);
	else
		fprintf(f, "usage: trstctl %s VERB [arguments] [options]\n", noun);
	for (size_t t = 0; cli_tables[t]; t++)
		for (const struct cli_cmd *c = cli_tables[t]; c->noun; c++) {
			char left[64];

			if (noun && strcmp(noun, c->noun))
				continue;
			snprintf(left, sizeof(left), "%s %s", c->noun, c->verb);
			fprintf(f, "  %-20s %s\n", left, c->summary);
		}
	if (!noun || !strcmp(noun, "completion"))
		fprintf(f, "  %-20s %s\n", "completion bash", "the bash completion script");
	for (size_t i = 0; noun && i < N_OPERATOR; i++)
		if (operator_cmds[i].verb && !strcmp(noun, operator_cmds[i].noun))
			fprintf(f,
				"  %s %-*s operator command (reads the configuration): see "
				"trstctl %s %s --help\n",
				operator_cmds[i].noun, (int)(19 - strlen(operator_cmds[i].noun)),
				operator_cmds[i].verb, operator_cmds[i].noun,
				operator_cmds[i].verb);
}

void cli_usage(FILE *f)
{
	cli_help_list(f, NULL);
}

/* Completion ----------------------------------------------------------------------------- */

/* The flags of one command, space-separated, on f. */
static void cmd_flags(FILE *f, const struct cli_cmd *c)
{
	const ProtobufCMessageDescriptor *in = cli_method(c)->input;

	for (const struct cli_arg *a = c->args; a && a->name; a++)
		if (a->name[0] == '-')
			fprintf(f, "%s ", a->name);
	for (unsigned i = 0; i < in->n_fields; i++) {
		char flag[128];

		cli_field_flag(&in->fields[i], flag, sizeof(flag));
		fprintf(f, "%s ", flag);
	}
	if (protobuf_c_message_descriptor_get_field_by_name(in, "page_token") ||
	    cli_method(c)->server_streaming)
		fputs("--limit ", f);
	fputs("-o --output --json --help", f);
	for (size_t i = 0; cli_conn_flags[i]; i++)
		fprintf(f, " %s", cli_conn_flags[i]);
}

int cli_complete_bash(FILE *f)
{
	const char *nouns[64];
	size_t nn = 0;

	for (size_t t = 0; cli_tables[t]; t++)
		for (const struct cli_cmd *c = cli_tables[t]; c->noun; c++)
			if (!nn || strcmp(nouns[nn - 1], c->noun))
				nouns[nn++] = c->noun;
	fputs("# bash completion for trstctl (made by `trstctl completion bash`)\n"
	      "_trstctl()\n{\n"
	      "\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
	      "\tlocal noun=${COMP_WORDS[1]} verb=${COMP_WORDS[2]} words=\n"
	      "\tcase $prev in\n"
	      "\t-o|--output) COMPREPLY=($(compgen -W 'table json' -- \"$cur\")); return ;;\n"
	      "\t*-file|*-out|--csr|--ca-file|--tls-ca|--cert|--key|--new-file)\n"
	      "\t\tCOMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
	      "\tesac\n"
	      "\tif [ \"$COMP_CWORD\" -eq 1 ]; then\n\t\twords='",
	      f);
	for (size_t i = 0; i < nn; i++)
		fprintf(f, "%s ", nouns[i]);
	fputs("serve migrate kek completion --help --version --check-config --health-check'\n"
	      "\telif [ \"$COMP_CWORD\" -eq 2 ]; then\n\t\tcase $noun in\n",
	      f);
	for (size_t i = 0; i < nn; i++) {
		fprintf(f, "\t\t%s) words='", nouns[i]);
		for (size_t t = 0; cli_tables[t]; t++)
			for (const struct cli_cmd *c = cli_tables[t]; c->noun; c++)
				if (!strcmp(c->noun, nouns[i]))
					fprintf(f, "%s ", c->verb);
		for (size_t k = 0; k < N_OPERATOR; k++)
			if (operator_cmds[k].verb && !strcmp(operator_cmds[k].noun, nouns[i]))
				fprintf(f, "%s ", operator_cmds[k].verb);
		fputs("--help' ;;\n", f);
	}
	fputs("\t\tkek) words='rotate' ;;\n\t\tcompletion) words='bash' ;;\n"
	      "\t\tmigrate) words='--status --help' ;;\n\t\tesac\n"
	      "\telse\n\t\tcase \"$noun $verb\" in\n",
	      f);
	for (size_t t = 0; cli_tables[t]; t++)
		for (const struct cli_cmd *c = cli_tables[t]; c->noun; c++) {
			fprintf(f, "\t\t'%s %s') words='", c->noun, c->verb);
			cmd_flags(f, c);
			fputs("' ;;\n", f);
		}
	for (size_t i = 0; i < N_OPERATOR; i++)
		if (operator_cmds[i].verb)
			fprintf(f, "\t\t'%s %s') words='%s --help' ;;\n", operator_cmds[i].noun,
				operator_cmds[i].verb, operator_cmds[i].flags);
	fputs("\t\tesac\n\tfi\n"
	      "\tCOMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
	      "}\ncomplete -F _trstctl trstctl\n",
	      f);
	return ferror(f) ? CLI_EXIT_FAIL : 0;
}
