/*
 * `trstctl token create-root`: an operator command on the database itself
 * (TRSTCTL_POSTGRES_DSN), like the original's `token create`: it works before any token
 * exists and without a running server, which is the way back in when the bootstrap token
 * is lost (the server writes one only into an empty database). The token is a root (no
 * parent) bound to the policies named. It opens the KEK because the change is audited. The
 * new token is printed once, alone on stdout (its id on stderr), so `T=$(trstctl token
 * create-root --policy admin)` captures only the token. Exit status: 0 ok, 1 failure,
 * 2 usage. Every other token command is a client of the server (server/cli/cli-policy.c).
 */
#include <errno.h>
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
#include "db.h"
#include "kek.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2

static const char usage[] =
	"usage: trstctl token create-root --policy P [--policy Q ...] [--ttl DURATION] [--name NAME]\n"
	"Operator command: makes a root API token straight on the database, with no server and no\n"
	"token (for a database whose bootstrap token was lost). It reads the server's\n"
	"configuration: TRSTCTL_POSTGRES_DSN, and the KEK (TRSTCTL_SECRETS_KEK_FILE) to audit the\n"
	"change. The token is printed once, alone on stdout. `trstctl token create` makes a\n"
	"token through the server instead (a child of the calling token).\n";

/* Microseconds since the epoch as RFC 3339 ("-" when unset). */
static void fmt_time(int64_t us, char *buf, size_t len)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;

	if (!us || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "-");
}

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

static int token_env_open(const struct cfg *c, struct token_env *e)
{
	struct db_config dc = { .dsn = c->postgres.dsn,
				.max_conns = 2,
				.connect_timeout_ms = 5000 };
	struct audit_config ac = { .checkpoint_interval_ms = -1 };
	char err[512] = "";
	int r = db_open(&dc, &e->db);

	if (r < 0) {
		fprintf(stderr, "trstctl: token create-root: cannot connect to PostgreSQL: %s\n",
			strerror(-r));
		return r;
	}
	r = kek_load(c->secrets.kek_file, false, &e->kek, NULL, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr,
			"trstctl: token create-root: the KEK is needed to audit the change: %s\n",
			err);
		return r;
	}
	r = audit_open(e->db, e->kek, &ac, &e->audit);
	if (r >= 0)
		r = bus_open(e->db, NULL, &e->bus);
	if (r < 0)
		fprintf(stderr, "trstctl: token create-root: cannot open the audit log: %s\n",
			strerror(-r));
	return r;
}

/* The arguments after "create-root" into q (policies has room for AUTHZ_MAX_POLICIES). */
static int parse_create(int argc, char **argv, struct authz_token_req *q, const char **policies)
{
	int64_t ms;

	q->tenant = DB_DEFAULT_TENANT;
	q->name = "";
	q->policies = policies;
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			return -EINVAL;
		if (!strcmp(argv[i], "--policy") && q->n_policies < AUTHZ_MAX_POLICIES)
			policies[q->n_policies++] = v;
		else if (!strcmp(argv[i], "--name"))
			q->name = v;
		else if (!strcmp(argv[i], "--ttl") && cfg_parse_duration(v, &ms) == 0 && ms > 0)
			q->ttl_seconds = (ms + 999) / 1000;
		else
			return -EINVAL;
		i++;
	}
	return q->n_policies ? 0 : -EINVAL;
}

static int create_root(struct token_env *e, struct authz_token_req *q)
{
	char token[POLICY_TOKEN_LEN + 1] = "", err[256] = "", actor[64], t[32];
	struct store_token meta = { 0 };
	int r;

	snprintf(actor, sizeof(actor), "cli uid=%u", (unsigned)getuid());
	q->actor = actor;
	r = authz_token_create(e->db, e->bus, q, token, &meta, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "trstctl token create-root: %s\n", err[0] ? err : strerror(-r));
		return EXIT_FAIL;
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

int token_admin_cli(int argc, char **argv, const struct cfg *c)
{
	const char *policies[AUTHZ_MAX_POLICIES];
	struct authz_token_req q = { 0 };
	struct token_env e = { 0 };
	int r;

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage, stdout);
			return 0;
		}
	if (argc < 2 || strcmp(argv[1], "create-root") ||
	    parse_create(argc - 1, argv + 1, &q, policies) < 0) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	r = token_env_open(c, &e) < 0 ? EXIT_FAIL : create_root(&e, &q);
	token_env_close(&e);
	return r;
}
