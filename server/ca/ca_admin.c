/*
 * `trstctl ca import|csr|import-signed`: operator commands that work on PostgreSQL
 * directly with the KEK (like `trstctl migrate`), with no server running: they install the
 * issuing CA that servers load at their next start. `ca import` takes the CA's certificate
 * and key; `ca csr` parks a new key (sealed) and prints its CSR for an outside CA;
 * `ca import-signed` installs the certificate that CA signed with the parked key. The
 * client commands of the CA (owner, identity, cert, ca bundle, ca crl) are in server/cli/.
 * Exit status: 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "ca-internal.h"
#include "cfg.h"
#include "kek.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define MAX_OPTS 8

static const char usage[] =
	"usage: trstctl ca import --cert FILE --key FILE [--replace]\n"
	"       trstctl ca csr [--key-type T] [--cn CN] [--out FILE]\n"
	"       trstctl ca import-signed --cert FILE [--replace]\n"
	"Operator commands: they install the issuing CA on the database itself, with no server\n"
	"running, and read the server's configuration for it: TRSTCTL_POSTGRES_DSN and the KEK\n"
	"(TRSTCTL_SECRETS_KEK_FILE). Servers load the new CA at their next start.\n"
	"  import         the CA's certificate (chain) and key, PEM\n"
	"  csr            park a new key (sealed by the KEK) and print its CSR (or --out FILE)\n"
	"                 for an outside CA to sign; --key-type ecdsa-p256 (default), ...\n"
	"  import-signed  the certificate that CA signed for the parked key\n"
	"  --replace      install over an existing issuing CA (earlier certificates stay valid\n"
	"                 under the old CA until they expire)\n";

/* Parsed arguments: --name value pairs (--replace takes no value). */
struct args {
	const char *verb;
	const char *names[MAX_OPTS], *values[MAX_OPTS];
	int n;
};

static int parse(int argc, char **argv, struct args *a)
{
	static const char *const allowed[] = { "--cert", "--key", "--replace", "--key-type",
					       "--cn",	 "--out", NULL };

	memset(a, 0, sizeof(*a));
	if (argc < 2)
		return -EINVAL;
	a->verb = argv[1];
	if (strcmp(a->verb, "import") && strcmp(a->verb, "csr") && strcmp(a->verb, "import-signed"))
		return -EINVAL;
	for (int i = 2; i < argc; i++) {
		bool flag = !strcmp(argv[i], "--replace"), ok = false;

		for (int k = 0; allowed[k]; k++)
			ok = ok || !strcmp(argv[i], allowed[k]);
		if (!ok) {
			fprintf(stderr, "trstctl: ca %s: unknown argument %s\n", a->verb, argv[i]);
			return -EINVAL;
		}
		if (a->n == MAX_OPTS || (!flag && i + 1 >= argc))
			return -EINVAL;
		a->names[a->n] = argv[i];
		a->values[a->n++] = flag ? "" : argv[++i];
	}
	return 0;
}

static const char *opt(const struct args *a, const char *name)
{
	for (int i = 0; i < a->n; i++)
		if (strcmp(a->names[i], name) == 0)
			return a->values[i];
	return NULL;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f) {
		fprintf(stderr, "trstctl: cannot read %s: %s\n", path, strerror(errno));
		return NULL;
	}
	do {
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap + 65536);

			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
			cap += 65536;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0 && len < (4u << 20));
	fclose(f);
	buf[len] = '\0';
	return buf;
}

static int write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	ssize_t w;

	if (fd < 0) {
		fprintf(stderr, "trstctl: cannot write %s: %s\n", path, strerror(errno));
		return -errno;
	}
	w = write(fd, data, len);
	close(fd);
	if (w != (ssize_t)len) {
		fprintf(stderr, "trstctl: short write to %s\n", path);
		return -EIO;
	}
	return 0;
}

/* Operator commands on the database ---------------------------------------------------- */

struct install {
	const struct kek *kek;
	struct crypto_ca *ca;	 /* the CA to install as kind 'ca' */
	const char *csr_key_pem; /* ca csr: the key to park as kind 'ca-csr' */
	bool replace;
	char err[256];
};

static int install_tx(struct db_conn *c, void *ud)
{
	struct install *in = ud;
	struct db_param p[2] = { DB_TEXT(DB_DEFAULT_TENANT), DB_TEXT("7310420601") };
	const char *kind = in->ca ? "ca" : CA_CSR_KIND;
	char *chain = NULL, *key = NULL;
	uint8_t *sealed = NULL;
	size_t sealed_len = 0;
	int version = 0, r;

	r = db_exec(c, "SELECT pg_advisory_xact_lock($2::bigint), $1::uuid", p, 2, NULL);
	if (r < 0)
		return r;
	r = ca_store_key_get(c, DB_DEFAULT_TENANT, kind, CA_KEY_NAME, &version, &chain, &sealed,
			     &sealed_len);
	free(chain);
	free(sealed);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r >= 0 && in->ca && !in->replace) {
		snprintf(in->err, sizeof(in->err),
			 "an issuing CA exists already (version %d); --replace installs this one "
			 "for the certificates issued after the servers restart",
			 version);
		return -EEXIST;
	}
	if (in->ca) {
		r = crypto_ca_key_pem(in->ca, &key);
		if (r < 0)
			return r;
		r = ca_store_key_put(c, in->kek, DB_DEFAULT_TENANT, kind, CA_KEY_NAME, version + 1,
				     crypto_ca_bundle_pem(in->ca), key);
		OPENSSL_cleanse(key, strlen(key));
		free(key);
		if (r >= 0)
			r = db_exec(c,
				    "INSERT INTO ca_state (tenant_id) VALUES ($1) ON CONFLICT "
				    "(tenant_id) DO UPDATE SET crl_der = NULL, crl_pem = NULL",
				    p, 1, NULL);
		if (r >= 0)
			r = db_exec(
				c,
				"DELETE FROM sealed_keys WHERE tenant_id = $1 AND kind = '" CA_CSR_KIND
				"'",
				p, 1, NULL);
		return r;
	}
	return ca_store_key_put(c, in->kek, DB_DEFAULT_TENANT, kind, CA_KEY_NAME, version + 1, "",
				in->csr_key_pem);
}

/* The key parked by `ca csr` (malloc'd PEM, wipe it). */
static int parked_key(struct db *db, const struct kek *kek, char **ret)
{
	struct db_conn *c = NULL;
	char *chain = NULL;
	uint8_t *sealed = NULL, *pt = NULL;
	size_t sealed_len = 0, n = 0;
	int version = 0, r;

	r = db_acquire(db, 10000, &c);
	if (r < 0)
		return r;
	r = ca_store_key_get(c, DB_DEFAULT_TENANT, CA_CSR_KIND, CA_KEY_NAME, &version, &chain,
			     &sealed, &sealed_len);
	db_release(db, c);
	if (r >= 0)
		r = ca_store_key_open(kek, DB_DEFAULT_TENANT, CA_CSR_KIND, CA_KEY_NAME, version,
				      sealed, sealed_len, &pt, &n);
	if (r >= 0) {
		*ret = malloc(n + 1);
		if (*ret) {
			memcpy(*ret, pt, n);
			(*ret)[n] = '\0';
		} else {
			r = -ENOMEM;
		}
	}
	kek_free_plain(pt, n);
	free(chain);
	free(sealed);
	return r;
}

static int cmd_ca_local(const struct args *a, const struct cfg *c)
{
	struct db_config dc = { .dsn = c->postgres.dsn,
				.max_conns = 1,
				.connect_timeout_ms = 10000 };
	struct install in = { .replace = opt(a, "--replace") != NULL };
	struct db *db = NULL;
	struct kek *kek = NULL;
	char *cert = NULL, *key = NULL, *csr = NULL, err[256] = "";
	enum crypto_key_type kt;
	int r;

	r = kek_load(c->secrets.kek_file, c->secrets.kek_generate, &kek, NULL, err, sizeof(err));
	if (r < 0)
		goto out;
	in.kek = kek;
	r = db_open(&dc, &db);
	if (r < 0) {
		snprintf(err, sizeof(err), "cannot connect to PostgreSQL: %s", strerror(-r));
		goto out;
	}
	r = db_migrate(db, NULL);
	if (r < 0) {
		snprintf(err, sizeof(err), "migrations failed: %s", strerror(-r));
		goto out;
	}
	if (!strcmp(a->verb, "import")) {
		r = -EINVAL;
		if (!opt(a, "--cert") || !opt(a, "--key")) {
			snprintf(err, sizeof(err), "--cert FILE and --key FILE are required");
			goto out;
		}
		cert = read_file(opt(a, "--cert"));
		key = read_file(opt(a, "--key"));
		if (!cert || !key)
			goto out;
		r = crypto_ca_load(cert, key, &in.ca, err, sizeof(err));
	} else if (!strcmp(a->verb, "import-signed")) {
		r = -EINVAL;
		if (!opt(a, "--cert") || !(cert = read_file(opt(a, "--cert")))) {
			snprintf(err, sizeof(err), "--cert FILE is required");
			goto out;
		}
		r = parked_key(db, kek, &key);
		if (r == -ENOENT)
			snprintf(err, sizeof(err), "no key is waiting: run `trstctl ca csr` first");
		if (r >= 0)
			r = crypto_ca_import_signed(key, cert, &in.ca, err, sizeof(err));
	} else {
		r = ca_key_type_parse(opt(a, "--key-type"), &kt, err, sizeof(err));
		if (r >= 0)
			r = crypto_ca_csr(kt, opt(a, "--cn"), &key, &csr, err, sizeof(err));
		in.csr_key_pem = key;
	}
	if (r >= 0)
		r = db_transaction(db, false, install_tx, &in);
	if (r < 0 && in.err[0])
		snprintf(err, sizeof(err), "%s", in.err);
	if (r >= 0 && csr)
		r = opt(a, "--out") ? write_file(opt(a, "--out"), csr, strlen(csr), 0644) :
				      (fputs(csr, stdout) < 0 ? -EIO : 0);
	if (r >= 0 && in.ca)
		printf("installed issuing CA %s; servers load it at their next start\n",
		       opt(a, "--cert"));
out:
	if (r < 0)
		fprintf(stderr, "trstctl ca %s: %s\n", a->verb, err[0] ? err : strerror(-r));
	if (key) {
		OPENSSL_cleanse(key, strlen(key));
		free(key);
	}
	free(cert);
	free(csr);
	crypto_ca_free(in.ca);
	db_close(db);
	kek_free(kek);
	return r < 0 ? EXIT_FAIL : 0;
}

int ca_admin_cli(int argc, char **argv, const struct cfg *c)
{
	struct args a;

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage, stdout);
			return 0;
		}
	if (parse(argc, argv, &a) < 0) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	return cmd_ca_local(&a, c);
}
