/*
 * `trstctl secret create|get|rotate|list|versions|delete|recover|destroy`: the secret store
 * from a shell, through trstctl.v1.Secrets with the client cli_client_open makes from the
 * configuration (address, transport, the bootstrap token file by default), which the
 * connection flags override.
 *
 * A value never comes from argv (other users see it in ps): it is read from --value-file
 * or stdin. `get` prints metadata unless --show-value (the raw bytes to stdout) or --output
 * FILE (written with mode 0600) asks for the value. Buffers holding a value are wiped.
 * Exit status: 0 ok, 1 the call failed, 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cfg.h"
#include "cli.h"
#include "secrets.h"
#include "trstctl-client-gen.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define VALUE_READ_MAX (16u << 20)

static const char usage[] =
	"usage: trstctl secret create NAME [--value-file FILE] [--label KEY=VALUE]... [--request-id ID]\n"
	"       trstctl secret get NAME [--version N] [--show-value | --output FILE]\n"
	"       trstctl secret rotate NAME [--value-file FILE] [--expected-version N] [--request-id ID]\n"
	"       trstctl secret list [--prefix P] [--show-deleted] [--limit N]\n"
	"       trstctl secret versions NAME\n"
	"       trstctl secret delete|recover NAME [--request-id ID]\n"
	"       trstctl secret destroy NAME --version N [--request-id ID]\n"
	"A value is read from --value-file, or from stdin when none is given; never from an "
	"argument.\n" CLI_CLIENT_USAGE;

struct opts {
	const char *cmd, *name, *value_file, *output, *prefix, *request_id;
	char **labels;
	size_t n_labels;
	int64_t version, expected, limit;
	bool show_value, show_deleted;
	struct cli_client_opts conn;
};

static int parse_i64(const char *flag, const char *s, int64_t min, int64_t *ret)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || !*s || v < min) {
		fprintf(stderr, "trstctl secret: %s needs a number >= %lld\n", flag,
			(long long)min);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

static int parse_args(struct opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "value-file", required_argument, NULL, 'f' },
		{ "label", required_argument, NULL, 'l' },
		{ "request-id", required_argument, NULL, 'r' },
		{ "version", required_argument, NULL, 'v' },
		{ "expected-version", required_argument, NULL, 'e' },
		{ "show-value", no_argument, NULL, 's' },
		{ "output", required_argument, NULL, 'o' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "show-deleted", no_argument, NULL, 'D' },
		{ "limit", required_argument, NULL, 'n' },
		CLI_CLIENT_LONGOPTS,
		{ "value", required_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, idx = 0, r = 0;

	optind = 2; /* argv[0] "secret", argv[1] the command */
	while (r == 0 && (ch = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
		switch (ch) {
		case 'f': o->value_file = optarg; break;
		case 'l':
			if (o->n_labels > SECRETS_LABELS_MAX) {
				fprintf(stderr, "trstctl secret: at most %d labels\n",
					SECRETS_LABELS_MAX);
				r = -EINVAL;
			} else {
				o->labels[o->n_labels++] = optarg;
			}
			break;
		case 'r': o->request_id = optarg; break;
		case 'v': r = parse_i64("--version", optarg, 0, &o->version); break;
		case 'e': r = parse_i64("--expected-version", optarg, 0, &o->expected); break;
		case 's': o->show_value = true; break;
		case 'o': o->output = optarg; break;
		case 'p': o->prefix = optarg; break;
		case 'D': o->show_deleted = true; break;
		case 'n': r = parse_i64("--limit", optarg, 1, &o->limit); break;
		case CLI_CLIENT_OPT:
			cli_client_flag(&o->conn, longopts[idx].name, optarg);
			break;
		case 'V':
			fprintf(stderr, "trstctl secret: a value is never taken from the command line "
					"(other users can read it); use --value-file FILE or stdin\n");
			r = -EINVAL;
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		default:
			r = -EINVAL;
		}
	}
	if (r == 0 && optind < argc)
		o->name = argv[optind++];
	if (r == 0 && optind < argc) {
		fprintf(stderr, "trstctl secret %s: unexpected argument \"%s\"\n", o->cmd,
			argv[optind]);
		r = -EINVAL;
	}
	if (r == 0 && !o->name && strcmp(o->cmd, "list") != 0) {
		fprintf(stderr, "trstctl secret %s: NAME is required\n", o->cmd);
		r = -EINVAL;
	}
	return r;
}

/* Reads the value from --value-file or stdin into a buffer the caller wipes and frees. */
static int read_value(const struct opts *o, uint8_t **ret, size_t *ret_n)
{
	int fd = o->value_file ? open(o->value_file, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	size_t cap = 4096, n = 0;
	uint8_t *buf;
	ssize_t k;

	if (fd < 0) {
		fprintf(stderr, "trstctl secret: cannot open %s: %s\n", o->value_file,
			strerror(errno));
		return -errno;
	}
	buf = malloc(cap);
	while (buf && (k = read(fd, buf + n, cap - n)) != 0) {
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 || n + (size_t)k > VALUE_READ_MAX) {
			fprintf(stderr, "trstctl secret: cannot read the value: %s\n",
				k < 0 ? strerror(errno) : "more than 16 MiB");
			OPENSSL_cleanse(buf, cap);
			free(buf);
			buf = NULL;
			break;
		}
		n += (size_t)k;
		if (n == cap) {
			uint8_t *b2 = malloc(cap * 2);

			if (b2)
				memcpy(b2, buf, n);
			OPENSSL_cleanse(buf, cap);
			free(buf);
			buf = b2;
			cap *= 2;
		}
	}
	if (fd != STDIN_FILENO)
		close(fd);
	if (!buf)
		return -EIO;
	*ret = buf;
	*ret_n = n;
	return 0;
}

static void print_time(const char *key, const Google__Protobuf__Timestamp *t)
{
	char buf[CLI_TIME_LEN];

	printf("%-13s %s\n", key, cli_fmt_time(t ? t->seconds : 0, buf, sizeof(buf)));
}

static void print_meta(const Trstctl__V1__SecretMeta *m)
{
	printf("%-13s %s\n%-13s %" PRId64 "\n", "name:", m->name, "version:", m->version);
	print_time("created:", m->create_time);
	print_time("updated:", m->update_time);
	if (m->deleted)
		print_time("deleted:", m->delete_time);
	for (size_t i = 0; i < m->n_labels; i++)
		printf("%-13s %s=%s\n", i ? "" : "labels:", m->labels[i]->key,
		       m->labels[i]->value);
}

static int write_output(const char *path, const ProtobufCBinaryData *v)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t off = 0;

	if (fd < 0)
		return -errno;
	while (off < v->len) {
		ssize_t k = write(fd, v->data + off, v->len - off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			close(fd);
			return -errno;
		}
		off += (size_t)k;
	}
	return close(fd) < 0 ? -errno : 0;
}

static int call_failed(const struct opts *o, const struct trstctl_status *st)
{
	fprintf(stderr, "trstctl secret %s: %s: %s\n", o->cmd, trstctl_status_code_name(st->code),
		st->message ? st->message : "");
	return EXIT_FAIL;
}

static int cmd_write(struct trstctl_client *cl, const struct opts *o)
{
	Trstctl__V1__SecretMeta *m = NULL;
	struct trstctl_status st = { 0 };
	uint8_t *value = NULL;
	size_t n = 0;
	int r = -EINVAL;
	char *rid = (char *)(o->request_id ? o->request_id : "");

	if ((!strcmp(o->cmd, "create") || !strcmp(o->cmd, "rotate")) &&
	    read_value(o, &value, &n) < 0)
		return EXIT_FAIL;
	if (!strcmp(o->cmd, "create")) {
		Trstctl__V1__CreateSecretRequest q = TRSTCTL__V1__CREATE_SECRET_REQUEST__INIT;
		Trstctl__V1__CreateSecretRequest__LabelsEntry e[SECRETS_LABELS_MAX + 1], *ep[SECRETS_LABELS_MAX + 1];

		q.request_id = rid;
		q.name = (char *)o->name;
		q.value = (ProtobufCBinaryData){ .data = value, .len = n };
		for (size_t i = 0; i < o->n_labels && i <= SECRETS_LABELS_MAX; i++) {
			char *eq = strchr(o->labels[i], '=');

			trstctl__v1__create_secret_request__labels_entry__init(&e[i]);
			if (eq)
				*eq = '\0';
			e[i].key = o->labels[i];
			e[i].value = eq ? eq + 1 : "";
			ep[i] = &e[i];
		}
		q.n_labels = o->n_labels;
		q.labels = ep;
		r = trstctl_secrets_create_secret(cl, &q, NULL, &m, &st);
	} else if (!strcmp(o->cmd, "rotate")) {
		Trstctl__V1__RotateSecretRequest q = TRSTCTL__V1__ROTATE_SECRET_REQUEST__INIT;

		q.request_id = rid;
		q.name = (char *)o->name;
		q.value = (ProtobufCBinaryData){ .data = value, .len = n };
		q.expected_version = o->expected;
		r = trstctl_secrets_rotate_secret(cl, &q, NULL, &m, &st);
	} else if (!strcmp(o->cmd, "delete")) {
		Trstctl__V1__DeleteSecretRequest q = TRSTCTL__V1__DELETE_SECRET_REQUEST__INIT;

		q.request_id = rid;
		q.name = (char *)o->name;
		r = trstctl_secrets_delete_secret(cl, &q, NULL, &m, &st);
	} else if (!strcmp(o->cmd, "recover")) {
		Trstctl__V1__RecoverSecretRequest q = TRSTCTL__V1__RECOVER_SECRET_REQUEST__INIT;

		q.request_id = rid;
		q.name = (char *)o->name;
		r = trstctl_secrets_recover_secret(cl, &q, NULL, &m, &st);
	} else if (!strcmp(o->cmd, "destroy")) {
		Trstctl__V1__DestroySecretVersionRequest q =
			TRSTCTL__V1__DESTROY_SECRET_VERSION_REQUEST__INIT;

		q.request_id = rid;
		q.name = (char *)o->name;
		q.version = o->version;
		r = trstctl_secrets_destroy_secret_version(cl, &q, NULL, &m, &st);
	}
	if (value) {
		OPENSSL_cleanse(value, n);
		free(value);
	}
	if (r < 0) {
		r = call_failed(o, &st);
	} else {
		print_meta(m);
		protobuf_c_message_free_unpacked(&m->base, NULL);
	}
	trstctl_status_clear(&st);
	return r;
}

static int cmd_get(struct trstctl_client *cl, const struct opts *o)
{
	Trstctl__V1__GetSecretRequest q = TRSTCTL__V1__GET_SECRET_REQUEST__INIT;
	Trstctl__V1__Secret *s = NULL;
	struct trstctl_status st = { 0 };
	int r;

	q.name = (char *)o->name;
	q.version = o->version;
	r = trstctl_secrets_get_secret(cl, &q, NULL, &s, &st);
	if (r < 0) {
		r = call_failed(o, &st);
		trstctl_status_clear(&st);
		return r;
	}
	if (o->show_value) {
		r = fwrite(s->value.data, 1, s->value.len, stdout) == s->value.len ? 0 : EXIT_FAIL;
		fflush(stdout);
	} else if (o->output) {
		r = write_output(o->output, &s->value);
		if (r < 0)
			fprintf(stderr, "trstctl secret get: cannot write %s: %s\n", o->output,
				strerror(-r));
		r = r < 0 ? EXIT_FAIL : 0;
	} else {
		printf("%-13s %s\n%-13s %" PRId64 "\n%-13s %zu bytes (--show-value prints it)\n",
		       "name:", s->name, "version:", s->version, "value:", s->value.len);
	}
	OPENSSL_cleanse(s->value.data, s->value.len);
	protobuf_c_message_free_unpacked(&s->base, NULL);
	trstctl_status_clear(&st);
	return r;
}

static int cmd_list(struct trstctl_client *cl, const struct opts *o)
{
	Trstctl__V1__ListSecretsRequest q = TRSTCTL__V1__LIST_SECRETS_REQUEST__INIT;
	struct trstctl_status st = { 0 };
	char *token = NULL;
	int64_t printed = 0;
	int r = 0;

	q.prefix = (char *)(o->prefix ? o->prefix : "");
	q.show_deleted = o->show_deleted;
	do {
		Trstctl__V1__ListSecretsResponse *p = NULL;

		q.page_token = token ? token : "";
		q.page_size = SECRETS_PAGE_MAX;
		r = trstctl_secrets_list_secrets(cl, &q, NULL, &p, &st);
		free(token);
		token = NULL;
		if (r < 0) {
			r = call_failed(o, &st);
			break;
		}
		for (size_t i = 0; i < p->n_secrets && (!o->limit || printed < o->limit); i++) {
			printf("%s\t%" PRId64 "%s\n", p->secrets[i]->name, p->secrets[i]->version,
			       p->secrets[i]->deleted ? "\tdeleted" : "");
			printed++;
		}
		if (*p->next_page_token && (!o->limit || printed < o->limit))
			token = strdup(p->next_page_token);
		protobuf_c_message_free_unpacked(&p->base, NULL);
	} while (token);
	trstctl_status_clear(&st);
	return r;
}

static int cmd_versions(struct trstctl_client *cl, const struct opts *o)
{
	Trstctl__V1__ListSecretVersionsRequest q = TRSTCTL__V1__LIST_SECRET_VERSIONS_REQUEST__INIT;
	Trstctl__V1__ListSecretVersionsResponse *p = NULL;
	struct trstctl_status st = { 0 };
	int r;

	q.name = (char *)o->name;
	r = trstctl_secrets_list_secret_versions(cl, &q, NULL, &p, &st);
	if (r < 0) {
		r = call_failed(o, &st);
	} else {
		for (size_t i = 0; i < p->n_versions; i++)
			printf("%" PRId64 "\t%s\n", p->versions[i]->version, p->versions[i]->state);
		protobuf_c_message_free_unpacked(&p->base, NULL);
	}
	trstctl_status_clear(&st);
	return r;
}

int secrets_cli(int argc, char **argv, const struct cfg *c)
{
	static const char *const cmds[] = { "create", "get",	 "rotate",  "list",   "versions",
					    "delete", "recover", "destroy", NULL };
	struct trstctl_client *cl = NULL;
	struct opts o = { .conn.deadline_ms = 15000 };
	char err[512] = "";
	char *labels[SECRETS_LABELS_MAX + 1];
	int r;

	if (argc < 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	for (r = 0; cmds[r] && strcmp(cmds[r], argv[1]); r++)
		;
	if (!cmds[r]) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	o.cmd = argv[1];
	o.labels = labels;
	if (parse_args(&o, argc, argv) < 0) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(o.cmd, "destroy") && o.version < 1) {
		fprintf(stderr, "trstctl secret destroy: --version N (>= 1) is required\n");
		return EXIT_USAGE;
	}
	r = cli_client_open(c, &o.conn, &cl, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "trstctl secret: %s\n", err);
		return cli_client_exit_status(r);
	}
	if (!strcmp(o.cmd, "get"))
		r = cmd_get(cl, &o);
	else if (!strcmp(o.cmd, "list"))
		r = cmd_list(cl, &o);
	else if (!strcmp(o.cmd, "versions"))
		r = cmd_versions(cl, &o);
	else
		r = cmd_write(cl, &o);
	trstctl_client_free(cl);
	return r;
}
