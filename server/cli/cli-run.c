/*
 * cli-run.c: one client sub-command from argv to exit status. The command's table entry
 * (cli-ca.c, ...) names its method; the request is built from the arguments through the
 * method's descriptors (cli-request.c), the call goes through libtrstctl with the
 * connection of cli.c, and the reply is printed as a table or as proto3 JSON
 * (trstctl_json_write). A list method is followed page by page into one reply unless
 * --page-token asks for one page; a streaming method prints each message as it comes.
 *
 * Errors: a failed call prints "trstctl: <noun> <verb>: <STATUS>: <message>" on stderr and
 * exits 1; bad arguments exit 2 before anything is called (docs/cli.md "Exit status").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "cli-internal.h"
#include "trstctl-client-gen.h"

const struct cli_cmd *const cli_tables[] = {
	cli_ca_cmds,	cli_secrets_cmds, cli_audit_cmds, cli_policy_cmds,
	cli_guard_cmds, cli_assist_cmds,  NULL,
};

const struct trstctl_method *cli_method(const struct cli_cmd *c)
{
	return trstctl_method_find(c->method);
}

const char *cli_call_opt(const struct cli_call *k, const char *name)
{
	for (int i = 0; k->cmd->args && k->cmd->args[i].name && i < CLI_MAX_ARGS; i++)
		if (!strcmp(k->cmd->args[i].name, name))
			return k->opts[i];
	return NULL;
}

void cli_errorf(const struct cli_call *k, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "trstctl: %s %s: ", k->cmd->noun, k->cmd->verb);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_write_file(const struct cli_call *k, const char *path, const void *data, size_t len,
		   unsigned mode)
{
	FILE *f;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	size_t w;

	if (fd < 0) {
		cli_errorf(k, "cannot write %s: %s", path, strerror(errno));
		return -errno;
	}
	/* a private file that existed keeps no wider mode (open applies mode only to a new one) */
	if ((mode & 077) == 0 && fchmod(fd, mode) < 0) {
		cli_errorf(k, "cannot write %s: %s", path, strerror(errno));
		close(fd);
		return -EPERM;
	}
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	w = fwrite(data, 1, len, f);
	if (fclose(f) != 0 || w != len) {
		cli_errorf(k, "cannot write %s: short write", path);
		return -EIO;
	}
	return 0;
}

static const struct cli_cmd *find_cmd(const char *noun, const char *verb)
{
	for (size_t t = 0; cli_tables[t]; t++)
		for (const struct cli_cmd *c = cli_tables[t]; c->noun; c++)
			if (!strcmp(c->noun, noun) && (!verb || !strcmp(c->verb, verb)))
				return c;
	return NULL;
}

bool cli_handles(int argc, char **argv)
{
	return argc > 1 && (!strcmp(argv[1], "completion") || find_cmd(argv[1], NULL));
}

/* Arguments ----------------------------------------------------------------------------- */

static bool is_list(const struct trstctl_method *m)
{
	return protobuf_c_message_descriptor_get_field_by_name(m->input, "page_token") &&
	       protobuf_c_message_descriptor_get_field_by_name(m->output, "next_page_token") &&
	       cli_list_field(m->output);
}

/* Whether a request field is set by one of the command's own arguments. */
static bool field_has_arg(const struct cli_cmd *c, const char *field)
{
	for (const struct cli_arg *a = c->args; a && a->name; a++)
		if (a->field && !strcmp(a->field, field))
			return true;
	return false;
}

/* Whether the command has an argument of this name. */
static bool has_arg(const struct cli_cmd *c, const char *name)
{
	for (const struct cli_arg *a = c->args; a && a->name; a++)
		if (!strcmp(a->name, name))
			return true;
	return false;
}

/* The request field of an automatic flag ("--page-size"), or NULL. */
static const ProtobufCFieldDescriptor *auto_field(const struct cli_call *k, const char *name)
{
	const ProtobufCMessageDescriptor *d = k->method->input;
	char flag[128];

	for (unsigned i = 0; i < d->n_fields; i++) {
		if (field_has_arg(k->cmd, d->fields[i].name))
			continue;
		cli_field_flag(&d->fields[i], flag, sizeof(flag));
		if (!strcmp(flag, name))
			return &d->fields[i];
	}
	return NULL;
}

/* Sets field f from value (text, or a file's contents). Returns 0 or an exit status. */
static int set_field(struct cli_call *k, const char *flag, const ProtobufCFieldDescriptor *f,
		     const char *value, bool file)
{
	char err[256] = "";
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	if (file || f->type == PROTOBUF_C_TYPE_BYTES) {
		r = cli_read_file(value, &data, &len);
		if (r < 0) {
			cli_errorf(k, "cannot read %s: %s", strcmp(value, "-") ? value : "stdin",
				   r == -EFBIG ? "more than 16 MiB" : strerror(-r));
			return CLI_EXIT_FAIL;
		}
		r = cli_request_set_data(k->req, f, data, len);
		OPENSSL_cleanse(data, len);
		free(data);
		return r < 0 ? CLI_EXIT_FAIL : 0;
	}
	r = cli_request_set(k->req, f, value, err, sizeof(err));
	if (r == -EINVAL) {
		cli_errorf(k, "%s: %s", flag, err);
		return CLI_EXIT_USAGE;
	}
	return r < 0 ? CLI_EXIT_FAIL : 0;
}

static int usage_error(const struct cli_call *k, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int usage_error(const struct cli_call *k, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "trstctl: %s %s: ", k->cmd->noun, k->cmd->verb);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(trstctl %s %s --help shows its arguments)\n", k->cmd->noun,
		k->cmd->verb);
	return CLI_EXIT_USAGE;
}

/* The output format from -o's value. */
static int set_output(struct cli_call *k, const char *v)
{
	if (!strcmp(v, "json")) {
		k->output = CLI_OUTPUT_JSON;
	} else if (!strcmp(v, "table")) {
		k->output = CLI_OUTPUT_TABLE;
	} else {
		usage_error(k, "-o %s: the output is table or json", v);
		if (cli_call_opt(k, "--value-out") || find_cmd("secret", "get") == k->cmd)
			fprintf(stderr, "(--value-out FILE writes a secret's value to a file)\n");
		return CLI_EXIT_USAGE;
	}
	return 0;
}

/* One flag of the command: its own, automatic, or common. Returns 0 or an exit status. */
static int take_flag(struct cli_call *k, char *name, const char *inline_val, int argc, char **argv,
		     int *i, uint64_t *given)
{
	const struct cli_cmd *c = k->cmd;
	const ProtobufCFieldDescriptor *f = NULL;
	const struct cli_arg *a = NULL;
	const char *v = inline_val;
	bool takes = true;
	int idx = -1;

	for (int n = 0; c->args && c->args[n].name; n++)
		if (!strcmp(c->args[n].name, name)) {
			a = &c->args[n];
			idx = n;
		}
	if (a) {
		f = a->field ? protobuf_c_message_descriptor_get_field_by_name(k->method->input,
									       a->field) :
			       NULL;
		takes = !(a->flags & CLI_ARG_BOOL);
	} else if ((f = auto_field(k, name))) {
		takes = f->type != PROTOBUF_C_TYPE_BOOL || f->label == PROTOBUF_C_LABEL_REPEATED;
	} else if (!strcmp(name, "--limit") || !strcmp(name, "-o") || !strcmp(name, "--output")) {
		takes = true;
	} else if (!strcmp(name, "--json")) {
		takes = false;
	} else if (cli_conn_flag(&(struct cli_conn_opts){ 0 }, name, "x") > 0) {
		takes = cli_conn_flag_takes_value(name);
	} else {
		char alt[176];

		snprintf(alt, sizeof(alt), "%s-file", name);
		if (auto_field(k, alt) || has_arg(c, alt))
			return usage_error(k,
					   "%s: a value is never taken from the command line "
					   "(other users can read it there); give a file",
					   name);
		return usage_error(k, "unknown option %s", name);
	}
	if (takes && !v) {
		if (*i + 1 >= argc)
			return usage_error(k, "%s needs a value", name);
		v = argv[++*i];
	}
	if (!takes && !v)
		v = "true";
	if (a && idx >= 0)
		*given |= UINT64_C(1) << idx;
	if (a && !f) {
		k->opts[idx] = takes ? v : "";
		return 0;
	}
	if (f)
		return set_field(k, name, f, v, a && (a->flags & CLI_ARG_FILE));
	if (!strcmp(name, "--limit")) {
		char *end;

		k->limit = strtoll(v, &end, 10);
		if (!*v || *end || k->limit < 0)
			return usage_error(k, "--limit %s: want a number >= 0 (0: all)", v);
		if (!is_list(k->method) && !k->method->server_streaming)
			return usage_error(k, "%s: --limit is for lists and streams", c->verb);
		return 0;
	}
	if (!strcmp(name, "-o") || !strcmp(name, "--output"))
		return set_output(k, v);
	if (!strcmp(name, "--json"))
		return set_output(k, "json");
	cli_conn_flag(&k->conn, name, takes ? v : NULL);
	return 0;
}

/* The next positional argument of the command (by count), or NULL. */
static const struct cli_arg *positional(const struct cli_cmd *c, int nth, int *ret_idx)
{
	for (int n = 0; c->args && c->args[n].name; n++)
		if (strncmp(c->args[n].name, "-", 1) && nth-- == 0) {
			*ret_idx = n;
			return &c->args[n];
		}
	return NULL;
}

/* Checks what must be given and reads what defaults to stdin. Returns 0 or an exit status. */
static int finish_args(struct cli_call *k, uint64_t given)
{
	const struct cli_cmd *c = k->cmd;

	for (int n = 0; c->args && c->args[n].name; n++) {
		const struct cli_arg *a = &c->args[n];
		bool pos = a->name[0] != '-';

		if (given & (UINT64_C(1) << n))
			continue;
		if ((pos && !(a->flags & CLI_ARG_OPTIONAL)) || (a->flags & CLI_ARG_REQUIRED))
			return usage_error(k, pos ? "%s is required" : "%s is required", a->name);
		if (a->flags & CLI_ARG_STDIN) {
			if (isatty(STDIN_FILENO))
				fprintf(stderr,
					"trstctl: reading %s from stdin (end with Ctrl-D)\n",
					a->field);
			int r = set_field(k, a->name,
					  protobuf_c_message_descriptor_get_field_by_name(
						  k->method->input, a->field),
					  "-", true);
			if (r)
				return r;
		}
	}
	return 0;
}

/* Fills k from argv (argv[0] the noun, argv[1] the verb). Returns 0 or an exit status. */
static int parse_args(struct cli_call *k, int argc, char **argv)
{
	uint64_t given = 0;
	int npos = 0, r;
	bool dashdash = false;

	for (int i = 2; i < argc; i++) {
		char *arg = argv[i], name[160];
		const char *eq = NULL;

		if (!dashdash && !strcmp(arg, "--")) {
			dashdash = true;
			continue;
		}
		if (!dashdash && (!strcmp(arg, "-h") || !strcmp(arg, "--help"))) {
			cli_help_cmd(stdout, k->cmd);
			return -1; /* exit 0 */
		}
		if (dashdash || arg[0] != '-' || !strcmp(arg, "-")) {
			int idx;
			const struct cli_arg *a = positional(k->cmd, npos++, &idx);

			if (!a)
				return usage_error(k, "unexpected argument \"%s\"", arg);
			given |= UINT64_C(1) << idx;
			if (!a->field) {
				k->opts[idx] = arg;
				continue;
			}
			r = set_field(k, a->name,
				      protobuf_c_message_descriptor_get_field_by_name(
					      k->method->input, a->field),
				      arg, a->flags & CLI_ARG_FILE);
			if (r)
				return r;
			continue;
		}
		if (!strncmp(arg, "-o", 2) && arg[2]) { /* -ojson */
			r = set_output(k, arg + 2);
		} else {
			if (!strncmp(arg, "--", 2))
				eq = strchr(arg, '=');
			snprintf(name, sizeof(name), "%.*s",
				 eq ? (int)(eq - arg) : (int)strlen(arg), arg);
			r = take_flag(k, name, eq ? eq + 1 : NULL, argc, argv, &i, &given);
		}
		if (r)
			return r;
	}
	return finish_args(k, given);
}

/* Calls ------------------------------------------------------------------------------- */

static int call_failed(const struct cli_call *k, int r, const struct trstctl_status *st)
{
	if (st->message && (st->code || r != -EINVAL))
		cli_errorf(k, "%s: %s", trstctl_status_code_name(st->code), st->message);
	else
		cli_errorf(k, "the call failed: %s", strerror(-r));
	return CLI_EXIT_FAIL;
}

/* Moves the items of page onto acc and takes its next_page_token. */
static int merge(ProtobufCMessage *acc, ProtobufCMessage *page)
{
	const ProtobufCMessageDescriptor *d = acc->descriptor;
	const ProtobufCFieldDescriptor *lf = cli_list_field(d);
	const ProtobufCFieldDescriptor *tf =
		protobuf_c_message_descriptor_get_field_by_name(d, "next_page_token");
	size_t *an = (size_t *)((char *)acc + lf->quantifier_offset);
	size_t *pn = (size_t *)((char *)page + lf->quantifier_offset);
	void ***ai = (void ***)((char *)acc + lf->offset),
	     ***pi = (void ***)((char *)page + lf->offset);
	char **at = (char **)((char *)acc + tf->offset),
	     **pt = (char **)((char *)page + tf->offset);
	char *swap;
	void **na;

	if (*pn) {
		na = realloc(*ai, (*an + *pn) * sizeof(void *));
		if (!na)
			return -ENOMEM;
		memcpy(na + *an, *pi, *pn * sizeof(void *));
		*ai = na;
		*an += *pn;
		*pn = 0;
	}
	swap = *at;
	*at = *pt;
	*pt = swap;
	return 0;
}

static size_t list_len(const ProtobufCMessage *m)
{
	return *(const size_t *)((const char *)m +
				 cli_list_field(m->descriptor)->quantifier_offset);
}

/* Every page (or one, or up to --limit items) merged into *ret. */
static int call_list(struct cli_call *k, ProtobufCMessage **ret, struct trstctl_status *st)
{
	const ProtobufCMessageDescriptor *in = k->method->input;
	const ProtobufCFieldDescriptor *ps =
		protobuf_c_message_descriptor_get_field_by_name(in, "page_size");
	const ProtobufCFieldDescriptor *pt =
		protobuf_c_message_descriptor_get_field_by_name(in, "page_token");
	int32_t *size = ps ? (int32_t *)((char *)k->req + ps->offset) : NULL;
	int32_t asked = size ? *size : 0;
	ProtobufCMessage *acc = NULL;
	int r;

	for (;;) {
		ProtobufCMessage *page = NULL;
		const char *next;
		int64_t left = k->limit > 0 ? k->limit - (int64_t)(acc ? list_len(acc) : 0) : 0;

		if (size && k->limit > 0 && (asked == 0 || asked > left))
			*size = (int32_t)(left > INT32_MAX ? INT32_MAX : left);
		r = trstctl_call_unary(k->client, k->method->path, k->req, k->method->output, NULL,
				       &page, st);
		if (r < 0)
			break;
		if (!acc) {
			acc = page;
		} else {
			r = merge(acc, page);
			protobuf_c_message_free_unpacked(page, NULL);
			if (r < 0)
				break;
		}
		next = *(char *const *)((char *)acc +
					protobuf_c_message_descriptor_get_field_by_name(
						acc->descriptor, "next_page_token")
						->offset);
		if (k->one_page || !next || !*next ||
		    (k->limit > 0 && (int64_t)list_len(acc) >= k->limit))
			break;
		r = cli_request_set_data(k->req, pt, next, strlen(next));
		if (r < 0)
			break;
	}
	if (r < 0) {
		cli_message_free(acc);
		return r;
	}
	*ret = acc;
	return 0;
}

/* Prints one reply as -o says. Returns an exit status. */
static int print_reply(struct cli_call *k, const ProtobufCMessage *m, bool stream)
{
	int r;

	if (k->output == CLI_OUTPUT_JSON)
		r = trstctl_json_write(stdout, m,
				       (stream ? 0 : TRSTCTL_JSON_INDENT) | TRSTCTL_JSON_NEWLINE);
	else if (k->cmd->table)
		return k->cmd->table(k, m);
	else
		r = cli_table_print(stdout, m, k->cmd->columns);
	if (r < 0) {
		cli_errorf(k, "cannot print the reply: %s", strerror(-r));
		return CLI_EXIT_FAIL;
	}
	return 0;
}

struct stream_state {
	struct cli_call *k;
	int64_t seen;
	int status; /* the worst exit status of a message printed */
};

static int on_message(const ProtobufCMessage *m, void *ud)
{
	struct stream_state *s = ud;
	int r = print_reply(s->k, m, true);

	fflush(stdout);
	if (r > s->status)
		s->status = r;
	return s->k->limit > 0 && ++s->seen >= s->k->limit;
}

static int run(struct cli_call *k)
{
	struct trstctl_status st = { 0 };
	ProtobufCMessage *reply = NULL;
	char err[512] = "";
	int r, status = 0;

	if (k->cmd->prepare && (status = k->cmd->prepare(k)) != 0)
		return status;
	r = cli_conn_open(&k->conn, k->cfg, &k->client, err, sizeof(err));
	if (r < 0) {
		cli_errorf(k, "%s", err);
		return CLI_EXIT_FAIL;
	}
	if (k->method->server_streaming) {
		struct trstctl_call_opts no_deadline = { .deadline_ms = -1 };
		struct stream_state s = { .k = k };

		r = trstctl_call_stream(k->client, k->method->path, k->req, k->method->output,
					&no_deadline, on_message, &s, &st);
		status = r < 0 ? call_failed(k, r, &st) : s.status;
	} else {
		r = is_list(k->method) ? call_list(k, &reply, &st) :
					 trstctl_call_unary(k->client, k->method->path, k->req,
							    k->method->output, NULL, &reply, &st);
		if (r < 0)
			status = call_failed(k, r, &st);
	}
	if (reply && k->cmd->done)
		status = k->cmd->done(k, reply);
	if (status == CLI_DONE_PRINTED)
		status = 0;
	else if (reply) { /* also when a file failed: the reply may hold a key made once */
		int p = print_reply(k, reply, false);

		status = p > status ? p : status;
		if (k->one_page && k->output == CLI_OUTPUT_TABLE) {
			const ProtobufCFieldDescriptor *tf =
				protobuf_c_message_descriptor_get_field_by_name(reply->descriptor,
										"next_page_token");
			const char *next = tf ? *(char *const *)((char *)reply + tf->offset) : NULL;

			if (next && *next)
				fprintf(stderr, "more: --page-token %s\n", next);
		}
	}
	cli_message_free(reply);
	trstctl_status_clear(&st);
	k->client = trstctl_client_free(k->client);
	return status;
}

int cli_main(int argc, char **argv, const struct cfg *cfg)
{
	struct cli_call k = { .cfg = cfg, .limit = -1 };
	const struct cli_cmd *c;
	int r;

	if (argc > 0 && !strcmp(argv[0], "completion")) {
		if (argc == 2 && !strcmp(argv[1], "bash"))
			return cli_complete_bash(stdout);
		fprintf(argc == 2 && !strcmp(argv[1], "--help") ? stdout : stderr,
			"usage: trstctl completion bash   prints the bash completion script\n"
			"  source <(trstctl completion bash), or save it as\n"
			"  /usr/share/bash-completion/completions/trstctl\n");
		return argc == 2 && !strcmp(argv[1], "--help") ? 0 : CLI_EXIT_USAGE;
	}
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		bool help = argc >= 2;

		cli_help_list(help ? stdout : stderr, argv[0]);
		return help ? 0 : CLI_EXIT_USAGE;
	}
	c = find_cmd(argv[0], argv[1]);
	if (!c) {
		fprintf(stderr, "trstctl: %s: unknown command \"%s\"\n", argv[0], argv[1]);
		cli_help_list(stderr, argv[0]);
		return CLI_EXIT_USAGE;
	}
	k.cmd = c;
	k.method = cli_method(c);
	k.req = k.method ? cli_message_new(k.method->input) : NULL;
	if (!k.req) {
		cli_errorf(&k, "%s", k.method ? strerror(ENOMEM) : "no such method");
		return CLI_EXIT_FAIL;
	}
	r = parse_args(&k, argc, argv);
	if (r == 0) {
		const ProtobufCFieldDescriptor *pt =
			protobuf_c_message_descriptor_get_field_by_name(k.method->input,
									"page_token");

		k.one_page = pt && **(char **)((char *)k.req + pt->offset);
		r = run(&k);
	}
	cli_message_free(k.req);
	return r < 0 ? 0 : r;
}
