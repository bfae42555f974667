/*
 * `trstctl policy put|get|list|delete|eval` and `trstctl token create|list|revoke`.
 *
 * policy: a gRPC client (libtrstctl) of the configured server, connected by
 * cli_client_open as every client sub-command is (address, transport and token from the
 * configuration, the bootstrap token file by default; the connection flags override).
 *
 * token: an operator command on the database itself (TRSTCTL_POSTGRES_DSN), like the
 * original's `token create`: it works before any token exists and without a running
 * server. create and revoke open the KEK because every change is audited; the new token is
 * printed once, alone on stdout (its id on stderr), so `T=$(trstctl token create ...)`
 * captures only the token. Exit status: 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "audit.h"
#include "authz-int.h"
#include "bus.h"
#include "cfg.h"
#include "cli.h"
#include "db.h"
#include "kek.h"
#include "trstctl-client-gen.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2

static const char policy_usage[] =
	"usage: trstctl policy put NAME FILE|-      store a policy document (JSON)\n"
	"       trstctl policy get NAME\n"
	"       trstctl policy list\n"
	"       trstctl policy delete NAME\n"
	"       trstctl policy eval [--principal TOKEN_ID] [--to-state STATE] ACTION RESOURCE\n"
	CLI_CLIENT_USAGE;

static const char token_usage[] =
	"usage: trstctl token create --policy P [--policy Q ...] [--ttl DURATION] [--name NAME]\n"
	"       trstctl token list\n"
	"       trstctl token revoke TOKEN_ID\n"
	"Works on the database (TRSTCTL_POSTGRES_DSN); create and revoke need the KEK\n"
	"(TRSTCTL_SECRETS_KEK_FILE) to audit the change. The token is printed once.\n";

/* Microseconds since the epoch as RFC 3339 ("-" when unset). */
static void fmt_time(int64_t us, char *buf, size_t len)
{
	cli_fmt_time(us / 1000000, buf, len);
}

/* Client ------------------------------------------------------------------------------- */

struct cli {
	struct cli_client_opts conn;
	const char *principal, *to_state;
	char *args[4];
	int n_args;
};

/* Options and positional arguments (argv[0] is the verb). */
static int parse(struct cli *o, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int n = cli_client_flag(&o->conn, f, v);

		if (n < 0)
			return n;
		if (n > 0) {
			i += n - 1;
			continue;
		}
		if (f[0] != '-' || !strcmp(f, "-")) {
			if (o->n_args == 4)
				return -EINVAL;
			o->args[o->n_args++] = argv[i];
			continue;
		}
		if (!v)
			return -EINVAL;
		if (!strcmp(f, "--principal"))
			o->principal = v;
		else if (!strcmp(f, "--to-state"))
			o->to_state = v;
		else
			return -EINVAL;
		i++;
	}
	return 0;
}

static char *slurp(const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "re") : stdin;
	char *buf = NULL;
	size_t len = 0, n;
	char chunk[4096];

	if (!f)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		char *nb = realloc(buf, len + n + 1);

		if (!nb) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = nb;
		memcpy(buf + len, chunk, n);
		len += n;
		buf[len] = '\0';
	}
	if (f != stdin)
		fclose(f);
	return buf ? buf : (len == 0 ? strdup("") : NULL);
}

static void print_policy(const Trstctl__V1__PolicyDocument *p, bool doc)
{
	char t[CLI_TIME_LEN];

	printf("%s\tversion %" PRId64 "\t%s\n", p->name, p->version,
	       cli_fmt_time(p->update_time ? p->update_time->seconds : 0, t, sizeof(t)));
	if (doc)
		printf("%s\n", p->document);
}

/* One RPC per verb; returns the exit status. */
static int policy_call(struct trstctl_client *cl, struct cli *o, const char *verb)
{
	struct trstctl_status st = { 0 };
	ProtobufCMessage *resp = NULL;
	int r = -EINVAL;

	if (!strcmp(verb, "put") && o->n_args == 2) {
		Trstctl__V1__PutPolicyRequest q = TRSTCTL__V1__PUT_POLICY_REQUEST__INIT;
		char *doc = slurp(o->args[1]);

		if (!doc) {
			fprintf(stderr, "trstctl policy put: cannot read %s: %s\n", o->args[1],
				strerror(errno));
			return EXIT_FAIL;
		}
		q.name = o->args[0];
		q.document = doc;
		r = trstctl_policy_put_policy(cl, &q, NULL, (void *)&resp, &st);
		free(doc);
		if (r >= 0)
			print_policy((void *)resp, false);
	} else if (!strcmp(verb, "get") && o->n_args == 1) {
		Trstctl__V1__GetPolicyRequest q = TRSTCTL__V1__GET_POLICY_REQUEST__INIT;

		q.name = o->args[0];
		r = trstctl_policy_get_policy(cl, &q, NULL, (void *)&resp, &st);
		if (r >= 0)
			print_policy((void *)resp, true);
	} else if (!strcmp(verb, "delete") && o->n_args == 1) {
		Trstctl__V1__DeletePolicyRequest q = TRSTCTL__V1__DELETE_POLICY_REQUEST__INIT;

		q.name = o->args[0];
		r = trstctl_policy_delete_policy(cl, &q, NULL, (void *)&resp, &st);
		if (r >= 0)
			print_policy((void *)resp, false);
	} else if (!strcmp(verb, "list") && o->n_args == 0) {
		Trstctl__V1__ListPoliciesRequest q = TRSTCTL__V1__LIST_POLICIES_REQUEST__INIT;
		char token[POLICY_NAME_MAX + 1] = "";

		do {
			Trstctl__V1__ListPoliciesResponse *l = NULL;

			q.page_token = token;
			r = trstctl_policy_list_policies(cl, &q, NULL, &l, &st);
			if (r < 0)
				break;
			for (size_t i = 0; i < l->n_policies; i++)
				print_policy(l->policies[i], false);
			snprintf(token, sizeof(token), "%s", l->next_page_token);
			protobuf_c_message_free_unpacked(&l->base, NULL);
		} while (token[0]);
	} else if (!strcmp(verb, "eval") && o->n_args == 2) {
		Trstctl__V1__EvaluateRequest q = TRSTCTL__V1__EVALUATE_REQUEST__INIT;
		Trstctl__V1__Decision *d;

		q.principal = (char *)(o->principal ? o->principal : "");
		q.to_state = (char *)(o->to_state ? o->to_state : "");
		q.action = o->args[0];
		q.resource = o->args[1];
		r = trstctl_policy_evaluate(cl, &q, NULL, (void *)&resp, &st);
		d = (void *)resp;
		if (r >= 0)
			printf("%s\tpolicy %s\trule %d\t%s\n", d->allowed ? "allow" : "deny",
			       d->matched_policy[0] ? d->matched_policy : "-", d->matched_rule,
			       d->reason);
	} else {
		fputs(policy_usage, stderr);
		return EXIT_USAGE;
	}
	if (r < 0)
		fprintf(stderr, "trstctl policy %s: %s: %s\n", verb,
			trstctl_status_code_name(st.code), st.message ? st.message : strerror(-r));
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	trstctl_status_clear(&st);
	return r < 0 ? EXIT_FAIL : 0;
}

int policy_cli(int argc, char **argv, const struct cfg *c)
{
	struct cli o = { .conn.deadline_ms = 10000 };
	struct trstctl_client *cl = NULL;
	char err[512] = "";
	int r;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(policy_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	if (parse(&o, argc - 1, argv + 1) < 0) {
		fputs(policy_usage, stderr);
		return EXIT_USAGE;
	}
	r = cli_client_open(c, &o.conn, &cl, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "trstctl policy: %s\n", err);
		return cli_client_exit_status(r);
	}
	r = policy_call(cl, &o, argv[1]);
	trstctl_client_free(cl);
	return r;
}

/* token ---------------------------------------------------------------------------------- */

struct token_env {
	struct db *db;
	struct kek *kek;
	struct audit *audit;
	struct bus *bus;
};

static void token_env_close(struct token_env *e)
{
	e->bus = bus_close(e->bus);
	e->audit = audit_close(e->audit);
	e->db = db_close(e->db);
	e->kek = kek_free(e->kek);
}

static int token_env_open(const struct cfg *c, bool writes, struct token_env *e)
{
	struct db_config dc = { .dsn = c->postgres.dsn,
				.max_conns = 2,
				.connect_timeout_ms = 5000 };
	struct audit_config ac = { .checkpoint_interval_ms = -1 };
	char err[512] = "";
	int r = db_open(&dc, &e->db);

	if (r < 0) {
		fprintf(stderr, "trstctl token: cannot connect to PostgreSQL: %s\n", strerror(-r));
		return r;
	}
	if (!writes)
		return 0;
	r = kek_load(c->secrets.kek_file, false, &e->kek, NULL, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "trstctl token: the KEK is needed to audit the change: %s\n", err);
		return r;
	}
	r = audit_open(e->db, e->kek, &ac, &e->audit);
	if (r >= 0)
		r = bus_open(e->db, NULL, &e->bus);
	if (r < 0)
		fprintf(stderr, "trstctl token: cannot open the audit log: %s\n", strerror(-r));
	return r;
}

static void actor_of_operator(char *buf, size_t len)
{
	snprintf(buf, len, "cli uid=%u", (unsigned)getuid());
}

static int token_create_cmd(struct token_env *e, int argc, char **argv)
{
	const char *policies[AUTHZ_MAX_POLICIES];
	struct authz_token_req q = { .tenant = DB_DEFAULT_TENANT,
				     .name = "",
				     .policies = policies };
	char token[POLICY_TOKEN_LEN + 1] = "", err[256] = "", actor[64], t[32];
	struct store_token meta = { 0 };
	int64_t ms;
	int r;

	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			return -EINVAL;
		if (!strcmp(argv[i], "--policy") && q.n_policies < AUTHZ_MAX_POLICIES)
			policies[q.n_policies++] = v;
		else if (!strcmp(argv[i], "--name"))
			q.name = v;
		else if (!strcmp(argv[i], "--ttl") && cfg_parse_duration(v, &ms) == 0 && ms > 0)
			q.ttl_seconds = (ms + 999) / 1000;
		else
			return -EINVAL;
		i++;
	}
	if (!q.n_policies)
		return -EINVAL;
	actor_of_operator(actor, sizeof(actor));
	q.actor = actor;
	r = authz_token_create(e->db, e->bus, &q, token, &meta, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "trstctl token create: %s\n", err[0] ? err : strerror(-r));
		return 1;
	}
	fmt_time(meta.expire_us, t, sizeof(t));
	fprintf(stderr, "token_id: %s  expires: %s  (the token is shown only now)\n", meta.id,
		meta.expire_us ? t : "never");
	printf("%s\n", token);
	fflush(stdout);
	OPENSSL_cleanse(token, sizeof(token));
	store_token_clear(&meta);
	return 0;
}

static int token_list_cmd(struct token_env *e)
{
	char after[POLICY_TOKEN_ID_LEN + 1] = "";
	size_t n;

	printf("ID\tNAME\tPOLICIES\tCREATED\tEXPIRES\tLAST_USED\tREVOKED\tPARENT\n");
	do {
		struct store_token *t = NULL;
		int r = store_token_list(e->db, DB_DEFAULT_TENANT, after, 500, &t, &n);

		if (r < 0) {
			fprintf(stderr, "trstctl token list: %s\n", strerror(-r));
			return 1;
		}
		for (size_t i = 0; i < n; i++) {
			char c[32], x[32], u[32];

			fmt_time(t[i].create_us, c, sizeof(c));
			fmt_time(t[i].expire_us, x, sizeof(x));
			fmt_time(t[i].last_used_us, u, sizeof(u));
			printf("%s\t%s\t", t[i].id, t[i].name[0] ? t[i].name : "-");
			for (size_t j = 0; j < t[i].n_policies; j++)
				printf("%s%s", j ? "," : "", t[i].policies[j]);
			printf("%s\t%s\t%s\t%s\t%s\t%s\n", t[i].n_policies ? "" : "-", c, x, u,
			       t[i].revoked ? "yes" : "no",
			       t[i].parent_id[0] ? t[i].parent_id : "-");
			snprintf(after, sizeof(after), "%s", t[i].id);
		}
		store_tokens_free(t, n);
	} while (n == 500);
	return 0;
}

static int token_revoke_cmd(struct token_env *e, const char *id)
{
	struct store_token t = { 0 };
	char actor[64];
	int r;

	actor_of_operator(actor, sizeof(actor));
	r = authz_token_revoke(e->db, e->bus, DB_DEFAULT_TENANT, id, actor, NULL, &t, NULL, 0);
	if (r < 0) {
		fprintf(stderr, "trstctl token revoke: %s\n",
			r == -ENOENT ? "no such token" :
			r == -EINVAL ? "a token id is 16 lowercase hex characters" :
				       strerror(-r));
		return 1;
	}
	printf("%s %s\n", t.id, r == 1 ? "was already revoked" : "revoked");
	store_token_clear(&t);
	return 0;
}

int token_cli(int argc, char **argv, const struct cfg *c)
{
	struct token_env e = { 0 };
	const char *verb = argc > 1 ? argv[1] : "";
	bool create = !strcmp(verb, "create"), list = !strcmp(verb, "list"),
	     revoke = !strcmp(verb, "revoke");
	int r;

	if (!strcmp(verb, "-h") || !strcmp(verb, "--help")) {
		fputs(token_usage, stdout);
		return 0;
	}
	if (!(create || (list && argc == 2) || (revoke && argc == 3))) {
		fputs(token_usage, stderr);
		return EXIT_USAGE;
	}
	if (token_env_open(c, !list, &e) < 0) {
		token_env_close(&e);
		return EXIT_FAIL;
	}
	if (create) {
		r = token_create_cmd(&e, argc - 1, argv + 1);
		if (r == -EINVAL) {
			fputs(token_usage, stderr);
			r = EXIT_USAGE;
		}
	} else if (list) {
		r = token_list_cmd(&e);
	} else {
		r = token_revoke_cmd(&e, argv[2]);
	}
	token_env_close(&e);
	return r;
}
