/*
 * cli: the client sub-commands without a server. Table-driven: the connection flags and
 * the order in which a connection setting is found (flag, client variable, the server's
 * own settings, default); request fields set from text through their descriptors
 * (numbers, durations, lists, maps, bools, refusals); the table printer; and the command
 * tables against the API: every trstctl.v1 method has exactly one command, every
 * argument names a field of its request. Then whole runs that end before a call (usage
 * errors exit 2, --help exits 0) or at an unreachable server (exit 1), and the bash
 * completion script.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "cli.h"
#include "cli-internal.h"
#include "trstctl-client-gen.h"

static void test_flags(void **state)
{
	static const struct {
		const char *name, *value;
		int ret;
	} cases[] = {
		{ "--addr", "h:1", 2 },
		{ "--addr", "h:2", 2 },
		{ "--plaintext", "x", 1 },
		{ "--insecure-tls", NULL, 1 },
		{ "--tls-ca", "old.pem", 2 },
		{ "--ca-file", "ca.pem", 2 },
		{ "--cert", "c", 2 },
		{ "--key", "k", 2 },
		{ "--token", "t", 2 },
		{ "--token-file", "f", 2 },
		{ "--server-name", "n", 2 },
		{ "--addr", NULL, -EINVAL },
		{ "--token-file", NULL, -EINVAL },
		{ "--json", "x", 0 },
		{ "--tokens", "x", 0 },
		{ "--cert-out", "x", 0 },
	};
	struct cli_conn_opts o = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(cli_conn_flag(&o, cases[i].name, cases[i].value), cases[i].ret);
	assert_string_equal(o.addr, "h:2");
	assert_int_equal(o.transport, CLI_TRANSPORT_DEFAULT); /* --ca-file came last */
	assert_string_equal(o.ca_file, "ca.pem");
	assert_string_equal(o.cert, "c");
	assert_string_equal(o.server_name, "n");
	assert_string_equal(o.token_file, "f");
	assert_int_equal(cli_conn_flag(&o, "--plaintext", NULL), 1);
	assert_int_equal(o.transport, CLI_TRANSPORT_PLAINTEXT);
	for (size_t i = 0; cli_conn_flags[i]; i++)
		assert_true(cli_conn_flag(&(struct cli_conn_opts){ 0 }, cli_conn_flags[i], "v") >
			    0);
}

/* A folder with a token file and a CA bundle, as a server's state folder has. */
struct dir {
	char path[64], token[96], cert[96], env_state[128], env_tok[128];
};

static void make_dir(struct dir *d)
{
	FILE *f;

	snprintf(d->path, sizeof(d->path), "/tmp/test-cli-XXXXXX");
	assert_non_null(mkdtemp(d->path));
	snprintf(d->token, sizeof(d->token), "%s/bootstrap-token", d->path);
	snprintf(d->cert, sizeof(d->cert), "%s/ca-bundle.pem", d->path);
	f = fopen(d->token, "w");
	assert_non_null(f);
	fputs("trst_bootstrap\n", f);
	fclose(f);
	f = fopen(d->cert, "w");
	assert_non_null(f);
	fputs("-----BEGIN CERTIFICATE-----\n", f);
	fclose(f);
	snprintf(d->env_state, sizeof(d->env_state), "TRSTCTL_STATE_DIR=%s", d->path);
	snprintf(d->env_tok, sizeof(d->env_tok), "TRSTCTL_TOKEN_FILE=%s", d->token);
}

static void drop_dir(struct dir *d)
{
	unlink(d->token);
	unlink(d->cert);
	rmdir(d->path);
}

/* cli_conn_resolve with the configuration env makes (as a client reads it). */
static int resolve(const struct cli_conn_opts *o, char **env, struct cli_conn *c, char *err,
		   size_t len)
{
	struct cfg *cfg = NULL;
	int r;

	assert_int_equal(cfg_load_client(env, &cfg), 0);
	r = cli_conn_resolve(o, cfg, c, err, len);
	/* what c points at belongs to cfg: keep copies for the checks */
	static char keep[6][512];
	const char **f[] = { &c->config.addr,	  &c->config.ca_file, &c->config.cert_file,
			     &c->config.key_file, &c->config.token,   &c->config.target_name };

	for (size_t i = 0; i < 6; i++)
		if (*f[i]) {
			snprintf(keep[i], sizeof(keep[i]), "%s", *f[i]);
			*f[i] = keep[i];
		}
	cfg_free(cfg);
	return r;
}

static void test_resolve(void **state)
{
	struct dir d;
	struct cli_conn c;
	char err[256];

	(void)state;
	make_dir(&d);
	{ /* nothing at all: the defaults, and no token */
		char *env[] = { "TRSTCTL_STATE_DIR=/nonexistent", NULL };

		assert_int_equal(resolve(&(struct cli_conn_opts){ 0 }, env, &c, err, sizeof(err)),
				 0);
		assert_string_equal(c.config.addr, "127.0.0.1:8443");
		assert_int_equal(c.config.transport, TRSTCTL_TLS);
		assert_null(c.config.ca_file);
		assert_null(c.config.token);
	}
	{ /* beside the server: its address made loopback, its CA bundle, its token */
		char *env[] = { "TRSTCTL_SERVER_ADDR=:9443", d.env_state, NULL };

		assert_int_equal(resolve(&(struct cli_conn_opts){ 0 }, env, &c, err, sizeof(err)),
				 0);
		assert_string_equal(c.config.addr, "127.0.0.1:9443");
		assert_string_equal(c.config.ca_file, d.cert);
		assert_null(c.config.target_name); /* 127.0.0.1 is one of its names */
		assert_string_equal(c.config.token, "trst_bootstrap");
	}
	{ /* the internal certificate's name: localhost when the host is none of its names */
		char *env[] = { "TRSTCTL_ADDR=10.9.9.9:9443", d.env_state, NULL };

		assert_int_equal(resolve(&(struct cli_conn_opts){ 0 }, env, &c, err, sizeof(err)),
				 0);
		assert_string_equal(c.config.target_name, "localhost");
		assert_int_equal(resolve(&(struct cli_conn_opts){ .server_name = "n" }, env, &c,
					 err, sizeof(err)),
				 0);
		assert_string_equal(c.config.target_name, "n"); /* --server-name wins */
	}
	{ /* else its first DNS name (a pod calling itself under its Service's names) */
		char *env[] = { "TRSTCTL_SERVER_ADDR=:9443", d.env_state,
				"TRSTCTL_SERVER_TLS_SANS=10.1.1.1,svc.ns.svc,svc", NULL };

		assert_int_equal(resolve(&(struct cli_conn_opts){ 0 }, env, &c, err, sizeof(err)),
				 0);
		assert_string_equal(c.config.ca_file, d.cert);
		assert_string_equal(c.config.target_name, "svc.ns.svc");
	}
	{ /* the client variables win over the server's */
		char *env[] = { "TRSTCTL_SERVER_ADDR=:9443",
				d.env_state,
				"TRSTCTL_ADDR=h:1",
				"TRSTCTL_CA_FILE=/ca.pem",
				"TRSTCTL_SERVER_TLS_MODE=disabled",
				NULL };

		assert_int_equal(resolve(&(struct cli_conn_opts){ 0 }, env, &c, err, sizeof(err)),
				 0);
		assert_string_equal(c.config.addr, "h:1");
		assert_int_equal(c.config.transport, TRSTCTL_TLS);
		assert_string_equal(c.config.ca_file, "/ca.pem");
	}
	{ /* the flags win over everything; plaintext takes no CA */
		char *env[] = { "TRSTCTL_ADDR=h:1", "TRSTCTL_CA_FILE=/ca.pem", d.env_tok, NULL };
		struct cli_conn_opts o = { .addr = "h:2",
					   .transport = CLI_TRANSPORT_PLAINTEXT,
					   .token = "trst_flag" };

		assert_int_equal(resolve(&o, env, &c, err, sizeof(err)), 0);
		assert_string_equal(c.config.addr, "h:2");
		assert_int_equal(c.config.transport, TRSTCTL_PLAINTEXT);
		assert_null(c.config.ca_file);
		assert_string_equal(c.config.token, "trst_flag");
	}
	{ /* the server's TLS disabled: plaintext; its file mode: its client CA and pair */
		char *off[] = { "TRSTCTL_SERVER_TLS_MODE=disabled", NULL };
		char *file[] = { "TRSTCTL_SERVER_TLS_MODE=file",
				 "TRSTCTL_SERVER_TLS_CLIENT_CA_FILE=/cca.pem",
				 "TRSTCTL_SERVER_TLS_CERT_FILE=/s.pem",
				 "TRSTCTL_SERVER_TLS_KEY_FILE=/s.key", NULL };

		assert_int_equal(resolve(&(struct cli_conn_opts){ 0 }, off, &c, err, sizeof(err)),
				 0);
		assert_int_equal(c.config.transport, TRSTCTL_PLAINTEXT);
		assert_int_equal(resolve(&(struct cli_conn_opts){ 0 }, file, &c, err, sizeof(err)),
				 0);
		assert_string_equal(c.config.ca_file, "/cca.pem");
		assert_string_equal(c.config.cert_file, "/s.pem");
		assert_string_equal(c.config.key_file, "/s.key");
	}
	{ /* an explicit token file must be readable; the bootstrap one need not be */
		char *env[] = { "TRSTCTL_TOKEN_FILE=/nonexistent/token", NULL };

		assert_int_equal(resolve(&(struct cli_conn_opts){ 0 }, env, &c, err, sizeof(err)),
				 -ENOENT);
		assert_non_null(strstr(err, "/nonexistent/token"));
	}
	drop_dir(&d);
}

static void test_request_set(void **state)
{
	Trstctl__V1__CreateIdentityRequest *q =
		(void *)cli_message_new(&trstctl__v1__create_identity_request__descriptor);
	const ProtobufCMessageDescriptor *d = q->base.descriptor;
	static const struct {
		const char *field, *value;
		int ret;
	} cases[] = {
		{ "dns_names", "a.internal,b.internal", 0 },
		{ "dns_names", "c.internal", 0 },
		{ "ttl_seconds", "90", 0 },
		{ "ttl_seconds", "1h30m", 0 },
		{ "ttl_seconds", "1500ms", 0 },
		{ "ttl_seconds", "soon", -EINVAL },
		{ "name", "x", 0 },
		{ "name", "api.internal", 0 },
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const ProtobufCFieldDescriptor *f =
			protobuf_c_message_descriptor_get_field_by_name(d, cases[i].field);

		assert_int_equal(cli_request_set(&q->base, f, cases[i].value, err, sizeof(err)),
				 cases[i].ret);
		if (i == 3)
			assert_int_equal(q->ttl_seconds, 5400);
	}
	assert_int_equal(q->n_dns_names, 3);
	assert_string_equal(q->dns_names[2], "c.internal");
	assert_int_equal(q->ttl_seconds, 2); /* 1500ms rounded up; "soon" changed nothing */
	assert_string_equal(q->name, "api.internal");
	cli_message_free(&q->base);
}

static void test_request_kinds(void **state)
{
	ProtobufCMessage *s = cli_message_new(&trstctl__v1__create_secret_request__descriptor);
	ProtobufCMessage *l = cli_message_new(&trstctl__v1__list_secrets_request__descriptor);
	ProtobufCMessage *v = cli_message_new(&trstctl__v1__verify_chain_request__descriptor);
	Trstctl__V1__CreateSecretRequest *cs = (void *)s;
	Trstctl__V1__ListSecretsRequest *ls = (void *)l;
	char err[256];

#define F(m, name) protobuf_c_message_descriptor_get_field_by_name((m)->descriptor, name)
	(void)state;
	assert_int_equal(cli_request_set(s, F(s, "labels"), "team=pay=ments", err, sizeof(err)), 0);
	assert_int_equal(cli_request_set(s, F(s, "labels"), "novalue", err, sizeof(err)), -EINVAL);
	assert_int_equal(cli_request_set(s, F(s, "labels"), "=v", err, sizeof(err)), -EINVAL);
	assert_int_equal(cs->n_labels, 1);
	assert_string_equal(cs->labels[0]->key, "team");
	assert_string_equal(cs->labels[0]->value, "pay=ments");
	assert_int_equal(cli_request_set_data(s, F(s, "value"), "s3cr\0t", 6), 0);
	assert_int_equal(cs->value.len, 6);
	assert_memory_equal(cs->value.data, "s3cr\0t", 6);
	assert_int_equal(cli_request_set(l, F(l, "show_deleted"), "true", err, sizeof(err)), 0);
	assert_true(ls->show_deleted);
	assert_int_equal(cli_request_set(l, F(l, "show_deleted"), "yes", err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(cli_request_set(l, F(l, "page_size"), "2147483648", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "32 bits"));
	assert_int_equal(cli_request_set(l, F(l, "page_size"), "-3", err, sizeof(err)), 0);
	assert_int_equal(ls->page_size, -3); /* the server says what it accepts */
	assert_int_equal(cli_request_set(v, F(v, "from_sequence"), "12x", err, sizeof(err)),
			 -EINVAL);
	cli_message_free(s);
	cli_message_free(l);
	cli_message_free(v);
#undef F
}

/* The text cli_table_print makes of m. */
static char *table(const ProtobufCMessage *m, const char *const *cols)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_int_equal(cli_table_print(f, m, cols), 0);
	fclose(f);
	return buf;
}

static void test_table(void **state)
{
	Trstctl__V1__GuardStatus g = TRSTCTL__V1__GUARD_STATUS__INIT;
	Trstctl__V1__GuardStatus__TripsByHookEntry
		e = TRSTCTL__V1__GUARD_STATUS__TRIPS_BY_HOOK_ENTRY__INIT,
		*ep[] = { &e };
	Trstctl__V1__GuardStatus__UserspaceTripsByClientEntry
		u = TRSTCTL__V1__GUARD_STATUS__USERSPACE_TRIPS_BY_CLIENT_ENTRY__INIT,
		*up[] = { &u };
	Trstctl__V1__Owner o1 = TRSTCTL__V1__OWNER__INIT, o2 = TRSTCTL__V1__OWNER__INIT,
			   *os[] = { &o1, &o2 };
	Trstctl__V1__ListOwnersResponse l = TRSTCTL__V1__LIST_OWNERS_RESPONSE__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	static const char *const cols[] = { "id", "name", "create_time", NULL };
	char *hosts[] = { "a.internal", "b.internal" }, *t;

	(void)state;
	g.enabled = 1;
	g.enforcer = "ebpf";
	g.trips = 3;
	e.key = "connect4";
	e.value = 3;
	g.n_trips_by_hook = 1;
	g.trips_by_hook = ep;
	g.n_allow_hosts = 2;
	g.allow_hosts = hosts;
	g.coverage = "own_clients";
	g.coverage_detail = "only this server's own clients are checked";
	u.key = "postgres";
	u.value = 2;
	g.n_userspace_trips_by_client = 1;
	g.userspace_trips_by_client = up;
	t = table(&g.base, NULL);
	assert_string_equal(t, "enabled:                   true\n"
			       "enforcer:                  ebpf\n"
			       "armed:                     false\n"
			       "trips:                     3\n"
			       "tripwire_hits:             0\n"
			       "allow_private:             false\n"
			       "allow_cidrs:               -\n"
			       "allow_hosts:               a.internal, b.internal\n"
			       "pin_path:                  -\n"
			       "userspace_trips:           0\n"
			       "trips_by_hook:\n"
			       "  connect4                 3\n"
			       "coverage:                  own_clients\n"
			       "coverage_detail:           only this server's own clients are checked\n"
			       "userspace_trips_by_client:\n"
			       "  postgres                 2\n");
	free(t);
	o1.id = "o-1";
	o1.name = "payments";
	ts.seconds = 1714564800;
	o1.create_time = &ts;
	o2.id = "o-22";
	o2.name = "x";
	l.n_owners = 2;
	l.owners = os;
	t = table(&l.base, cols);
	assert_string_equal(t, "ID    NAME      CREATE_TIME\n"
			       "o-1   payments  2024-05-01T12:00:00Z\n"
			       "o-22  x         -\n");
	free(t);
}

static void test_fmt_time(void **state)
{
	char buf[CLI_TIME_LEN];

	(void)state;
	assert_string_equal(cli_fmt_time(0, buf, sizeof(buf)), "-");
	assert_string_equal(cli_fmt_time(1714564800, buf, sizeof(buf)), "2024-05-01T12:00:00Z");
}

/* Every trstctl.v1 method has one command; every argument names a field of its request. */
static void test_every_method(void **state)
{
	size_t commands = 0;

	(void)state;
	for (size_t i = 0; i < trstctl_n_methods; i++) {
		const char *path = trstctl_methods[i].path;
		int found = 0;

		if (strncmp(path, "/trstctl.v1.", 12))
			continue;
		for (size_t t = 0; cli_tables[t]; t++)
			for (const struct cli_cmd *c = cli_tables[t]; c->noun; c++)
				found += !strcmp(c->method, path);
		if (found != 1)
			fail_msg("%s has %d commands", path, found);
	}
	for (size_t t = 0; cli_tables[t]; t++)
		for (const struct cli_cmd *c = cli_tables[t]; c->noun; c++) {
			const struct trstctl_method *m = cli_method(c);

			size_t nargs = 0;

			commands++;
			assert_non_null(m);
			for (const struct cli_arg *a = c->args; a && a->name; a++)
				nargs++;
			assert_true(nargs < CLI_MAX_ARGS); /* one bit each in parse_args */
			for (const struct cli_arg *a = c->args; a && a->name; a++)
				if (a->field && !protobuf_c_message_descriptor_get_field_by_name(
							m->input, a->field))
					fail_msg("%s %s: %s names no field %s", c->noun, c->verb,
						 a->name, a->field);
			for (size_t u = 0; cli_tables[u]; u++)
				for (const struct cli_cmd *o = cli_tables[u]; o->noun; o++)
					if (o != c && !strcmp(o->noun, c->noun) &&
					    !strcmp(o->verb, c->verb))
						fail_msg("%s %s twice", c->noun, c->verb);
		}
	assert_int_equal(commands, 35);
}

static int run(const char *line)
{
	char *argv[16], buf[512], *save = NULL;
	int argc = 0;
	char *env[] = { "TRSTCTL_STATE_DIR=/nonexistent", NULL };
	struct cfg *c = NULL;
	int r;

	snprintf(buf, sizeof(buf), "%s", line);
	for (char *t = strtok_r(buf, " ", &save); t && argc < 15; t = strtok_r(NULL, " ", &save))
		argv[argc++] = t;
	argv[argc] = NULL;
	assert_int_equal(cfg_load_client(env, &c), 0);
	r = cli_main(argc, argv, c);
	cfg_free(c);
	return r;
}

static void test_runs(void **state)
{
	static const struct {
		const char *line;
		int status;
	} cases[] = {
		{ "owner get", CLI_EXIT_USAGE }, /* ID missing */
		{ "owner frobnicate", CLI_EXIT_USAGE },
		{ "owner", CLI_EXIT_USAGE },
		{ "owner --help", 0 },
		{ "owner create --help", 0 },
		{ "secret destroy db/pw", CLI_EXIT_USAGE },	     /* --version N missing */
		{ "secret create db/pw --value x", CLI_EXIT_USAGE }, /* never from argv */
		{ "secret list -o yaml", CLI_EXIT_USAGE },
		{ "owner get a b", CLI_EXIT_USAGE },
		{ "owner list --page-size many", CLI_EXIT_USAGE },
		{ "owner list --bogus", CLI_EXIT_USAGE },
		{ "owner get x --addr", CLI_EXIT_USAGE },
		{ "ca bundle --limit 3", CLI_EXIT_USAGE },
		{ "audit list --limit -1", CLI_EXIT_USAGE },
		{ "cert issue id-1 --csr /nonexistent/csr.pem", CLI_EXIT_FAIL },
		{ "guard status --addr 127.0.0.1:1 --plaintext", CLI_EXIT_FAIL },
		{ "guard status --addr 127.0.0.1:1 --token-file /nonexistent", CLI_EXIT_FAIL },
		{ "secret get db/pw --show-value --value-out /tmp/x", CLI_EXIT_USAGE },
		{ "completion", CLI_EXIT_USAGE },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (run(cases[i].line) != cases[i].status)
			fail_msg("\"%s\": want exit %d", cases[i].line, cases[i].status);
}

static void test_handles(void **state)
{
	char *a[] = { "trstctl", "owner", "get" }, *b[] = { "trstctl", "serve" },
	     *c[] = { "trstctl", "completion", "bash" };

	(void)state;
	assert_true(cli_handles(3, a));
	assert_false(cli_handles(2, b));
	assert_true(cli_handles(3, c));
	assert_false(cli_handles(1, a));
}

static void test_completion(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	(void)state;
	assert_int_equal(cli_complete_bash(f), 0);
	fclose(f);
	assert_non_null(strstr(buf, "complete -F _trstctl trstctl"));
	assert_non_null(strstr(buf, "'owner create') words='"));
	assert_non_null(strstr(buf, "--kind "));
	assert_non_null(strstr(buf, "'secret create') words='--value-file --label "));
	assert_non_null(strstr(buf, "'token create-root') words="));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flags),	     cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_request_set),  cmocka_unit_test(test_request_kinds),
		cmocka_unit_test(test_table),	     cmocka_unit_test(test_fmt_time),
		cmocka_unit_test(test_every_method), cmocka_unit_test(test_runs),
		cmocka_unit_test(test_handles),	     cmocka_unit_test(test_completion),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
