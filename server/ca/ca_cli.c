/*
 * `trstctl owner|identity|cert|ca ...`. The resource commands call the running server
 * over gRPC with the client cli_client_open makes from the configuration (address,
 * transport, the bootstrap token file by default; the connection flags override) and
 * print the reply as one JSON object (protobuf field names; times in RFC 3339, as
 * cli_fmt_time writes them). `ca bundle` and `ca crl`
 * print PEM. `ca import`, `ca csr` and `ca import-signed` are operator commands that work
 * on PostgreSQL directly with the KEK (like `trstctl migrate`): they install the issuing
 * CA that servers load at their next start. Exit status: 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "ca-internal.h"
#include "cfg.h"
#include "cli.h"
#include "kek.h"
#include "trstctl-client-gen.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define MAX_OPTS 16

static const char usage[] =
	"usage: trstctl owner create --kind KIND --name NAME [--email EMAIL] [--request-id ID]\n"
	"       trstctl owner get ID\n"
	"       trstctl owner list [--kind KIND] [--page-size N] [--page-token T]\n"
	"       trstctl identity create --name NAME --owner OWNER_ID [--kind KIND]\n"
	"                               [--dns a,b] [--ip x,y] [--key-type T] [--ttl SECONDS]\n"
	"                               [--request-id ID]\n"
	"       trstctl identity get ID\n"
	"       trstctl identity list [--owner ID] [--state STATE] [--page-size N] [--page-token T]\n"
	"       trstctl identity transition ID --to STATE [--reason R] [--request-id ID]\n"
	"                               [--cert-out FILE] [--key-out FILE]\n"
	"       trstctl cert issue IDENTITY_ID [--csr FILE] [--ttl SECONDS] [--request-id ID]\n"
	"                               [--cert-out FILE] [--key-out FILE]\n"
	"       trstctl cert get SERIAL\n"
	"       trstctl cert list [--identity ID] [--page-size N] [--page-token T]\n"
	"       trstctl ca bundle | ca crl [--der-out FILE]\n"
	"       trstctl ca import --cert FILE --key FILE [--replace]\n"
	"       trstctl ca csr [--key-type T] [--cn CN] [--out FILE]\n"
	"       trstctl ca import-signed --cert FILE [--replace]\n"
	"For `ca import`, --cert and --key name the CA's files; elsewhere the client's (mTLS).\n"
	CLI_CLIENT_USAGE;

/* Parsed arguments: one positional argument and --name value pairs. */
struct args {
	const char *noun, *verb, *pos;
	const char *names[MAX_OPTS], *values[MAX_OPTS];
	int n;
};

/* Options without a value: --replace and the connection flags that take none. */
static bool is_flag(const char *s)
{
	struct cli_client_opts o = { 0 };

	return strcmp(s, "--replace") == 0 || cli_client_flag(&o, s, NULL) == 1;
}

static int parse(int argc, char **argv, struct args *a)
{
	memset(a, 0, sizeof(*a));
	if (argc < 2)
		return -EINVAL;
	a->noun = argv[0];
	a->verb = argv[1];
	for (int i = 2; i < argc; i++) {
		if (strncmp(argv[i], "--", 2) != 0) {
			if (a->pos)
				return -EINVAL;
			a->pos = argv[i];
			continue;
		}
		if (a->n == MAX_OPTS || (!is_flag(argv[i]) && i + 1 >= argc))
			return -EINVAL;
		a->names[a->n] = argv[i];
		a->values[a->n++] = is_flag(argv[i]) ? "" : argv[++i];
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

/* Every option given must be one of allowed (a NULL-terminated list). */
static int check_opts(const struct args *a, const char *const *allowed)
{
	for (int i = 0; i < a->n; i++) {
		struct cli_client_opts conn = { 0 };
		bool ok = cli_client_flag(&conn, a->names[i], a->values[i]) > 0;

		for (int k = 0; allowed[k] && !ok; k++)
			ok = strcmp(a->names[i], allowed[k]) == 0;
		if (!ok) {
			fprintf(stderr, "trstctl %s %s: unknown option %s\n", a->noun, a->verb,
				a->names[i]);
			return -EINVAL;
		}
	}
	return 0;
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

/* Messages as JSON --------------------------------------------------------------------- */

static json_t *msg_json(const ProtobufCMessage *m);

static json_t *field_json(const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
		return json_string(*(char *const *)p ? *(char *const *)p : "");
	case PROTOBUF_C_TYPE_INT64:
		return json_integer((json_int_t) * (const int64_t *)p);
	case PROTOBUF_C_TYPE_INT32:
		return json_integer(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_BOOL:
		return json_boolean(*(const protobuf_c_boolean *)p);
	case PROTOBUF_C_TYPE_BYTES:
		return json_integer((json_int_t)((const ProtobufCBinaryData *)p)->len);
	case PROTOBUF_C_TYPE_MESSAGE:
		return *(ProtobufCMessage *const *)p ? msg_json(*(ProtobufCMessage *const *)p) :
						       json_null();
	default:
		return json_null();
	}
}

static json_t *msg_json(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	json_t *o;

	if (d == &google__protobuf__timestamp__descriptor) {
		const Google__Protobuf__Timestamp *ts = (const void *)m;
		char buf[CLI_TIME_LEN];

		return json_string(cli_fmt_time(ts->seconds, buf, sizeof(buf)));
	}
	o = json_object();
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m + f->offset;

		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
			const char *items = *(char *const *)base;
			size_t sz = f->type == PROTOBUF_C_TYPE_STRING ||
						    f->type == PROTOBUF_C_TYPE_MESSAGE ?
					    sizeof(void *) :
					    sizeof(int64_t);
			json_t *arr = json_array();

			for (size_t k = 0; k < n; k++)
				json_array_append_new(arr, field_json(f, items + k * sz));
			json_object_set_new(o, f->name, arr);
		} else {
			json_object_set_new(o, f->name, field_json(f, base));
		}
	}
	return o;
}

static void print_msg(const ProtobufCMessage *m)
{
	json_t *o = msg_json(m);

	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	putchar('\n');
	json_decref(o);
}

/* gRPC commands ------------------------------------------------------------------------- */

struct conn {
	struct trstctl_client *cl;
};

static int connect_server(const struct args *a, const struct cfg *c, struct conn *k)
{
	struct cli_client_opts o = { .deadline_ms = 30000 };
	char err[512] = "";
	int r;

	for (int i = 0; i < a->n; i++)
		cli_client_flag(&o, a->names[i], a->values[i]);
	r = cli_client_open(c, &o, &k->cl, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "trstctl: %s\n", err);
	return r;
}

/* Prints a reply or the error; frees the reply. Returns the exit status. */
static int finish(const struct args *a, int r, ProtobufCMessage *resp, struct trstctl_status *st)
{
	if (r < 0) {
		fprintf(stderr, "trstctl %s %s: %s: %s\n", a->noun, a->verb,
			trstctl_status_code_name(st->code), st->message ? st->message : "");
		trstctl_status_clear(st);
		return EXIT_FAIL;
	}
	print_msg(resp);
	protobuf_c_message_free_unpacked(resp, NULL);
	trstctl_status_clear(st);
	return 0;
}

/* Splits "a,b" into the argv-like array of a (borrowing copies freed by the caller). */
static char **split(const char *s, size_t *ret_n, char **ret_buf)
{
	char *buf = strdup(s ? s : ""), **v, *save = NULL, *tok;
	size_t n = 0;

	v = calloc(strlen(buf) / 2 + 2, sizeof(*v));
	for (tok = strtok_r(buf, ",", &save); tok && v; tok = strtok_r(NULL, ",", &save))
		v[n++] = tok;
	*ret_n = n;
	*ret_buf = buf;
	return v;
}

static int parse_i64(const char *s, int64_t *ret)
{
	char *end;

	errno = 0;
	*ret = s ? strtoll(s, &end, 10) : 0;
	if (s && (errno || *end || *ret < 0)) {
		fprintf(stderr, "trstctl: \"%s\" is not a number >= 0\n", s);
		return -EINVAL;
	}
	return 0;
}

/* Writes the certificate and key of a reply to the files asked for. */
static int save_cert(const struct args *a, Trstctl__V1__Certificate *c)
{
	const char *co = opt(a, "--cert-out"), *ko = opt(a, "--key-out");

	if (!c)
		return 0;
	if (co && write_file(co, c->pem, strlen(c->pem), 0644) < 0)
		return -EIO;
	if (ko && c->private_key_pem && *c->private_key_pem) {
		if (write_file(ko, c->private_key_pem, strlen(c->private_key_pem), 0600) < 0)
			return -EIO;
		OPENSSL_cleanse(c->private_key_pem, strlen(c->private_key_pem));
		c->private_key_pem[0] = '\0'; /* written to the file, not to stdout */
	}
	return 0;
}

static int cmd_owner(const struct args *a, struct conn *k)
{
	struct trstctl_status st = { 0 };
	ProtobufCMessage *resp = NULL;
	int64_t ps = 0;
	int r;

	if (!strcmp(a->verb, "create")) {
		Trstctl__V1__CreateOwnerRequest q = TRSTCTL__V1__CREATE_OWNER_REQUEST__INIT;

		q.kind = (char *)(opt(a, "--kind") ? opt(a, "--kind") : "");
		q.name = (char *)(opt(a, "--name") ? opt(a, "--name") : "");
		q.email = (char *)(opt(a, "--email") ? opt(a, "--email") : "");
		q.request_id = (char *)(opt(a, "--request-id") ? opt(a, "--request-id") : "");
		r = trstctl_ca_create_owner(k->cl, &q, NULL, (void *)&resp, &st);
	} else if (!strcmp(a->verb, "get") && a->pos) {
		Trstctl__V1__GetOwnerRequest q = TRSTCTL__V1__GET_OWNER_REQUEST__INIT;

		q.id = (char *)a->pos;
		r = trstctl_ca_get_owner(k->cl, &q, NULL, (void *)&resp, &st);
	} else if (!strcmp(a->verb, "list")) {
		Trstctl__V1__ListOwnersRequest q = TRSTCTL__V1__LIST_OWNERS_REQUEST__INIT;

		if (parse_i64(opt(a, "--page-size"), &ps) < 0)
			return EXIT_USAGE;
		q.page_size = (int32_t)ps;
		q.page_token = (char *)(opt(a, "--page-token") ? opt(a, "--page-token") : "");
		q.kind = (char *)(opt(a, "--kind") ? opt(a, "--kind") : "");
		r = trstctl_ca_list_owners(k->cl, &q, NULL, (void *)&resp, &st);
	} else {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	return finish(a, r, resp, &st);
}

static int cmd_identity(const struct args *a, struct conn *k)
{
	struct trstctl_status st = { 0 };
	ProtobufCMessage *resp = NULL;
	int64_t n = 0;
	int r;

	if (!strcmp(a->verb, "create")) {
		Trstctl__V1__CreateIdentityRequest q = TRSTCTL__V1__CREATE_IDENTITY_REQUEST__INIT;
		char *b1 = NULL, *b2 = NULL;

		if (parse_i64(opt(a, "--ttl"), &n) < 0)
			return EXIT_USAGE;
		q.kind = (char *)(opt(a, "--kind") ? opt(a, "--kind") : "");
		q.name = (char *)(opt(a, "--name") ? opt(a, "--name") : "");
		q.owner_id = (char *)(opt(a, "--owner") ? opt(a, "--owner") : "");
		q.key_type = (char *)(opt(a, "--key-type") ? opt(a, "--key-type") : "");
		q.request_id = (char *)(opt(a, "--request-id") ? opt(a, "--request-id") : "");
		q.ttl_seconds = n;
		q.dns_names = split(opt(a, "--dns"), &q.n_dns_names, &b1);
		q.ip_addresses = split(opt(a, "--ip"), &q.n_ip_addresses, &b2);
		r = trstctl_ca_create_identity(k->cl, &q, NULL, (void *)&resp, &st);
		free(q.dns_names);
		free(q.ip_addresses);
		free(b1);
		free(b2);
	} else if (!strcmp(a->verb, "get") && a->pos) {
		Trstctl__V1__GetIdentityRequest q = TRSTCTL__V1__GET_IDENTITY_REQUEST__INIT;

		q.id = (char *)a->pos;
		r = trstctl_ca_get_identity(k->cl, &q, NULL, (void *)&resp, &st);
	} else if (!strcmp(a->verb, "list")) {
		Trstctl__V1__ListIdentitiesRequest q = TRSTCTL__V1__LIST_IDENTITIES_REQUEST__INIT;

		if (parse_i64(opt(a, "--page-size"), &n) < 0)
			return EXIT_USAGE;
		q.page_size = (int32_t)n;
		q.page_token = (char *)(opt(a, "--page-token") ? opt(a, "--page-token") : "");
		q.owner_id = (char *)(opt(a, "--owner") ? opt(a, "--owner") : "");
		q.state = (char *)(opt(a, "--state") ? opt(a, "--state") : "");
		r = trstctl_ca_list_identities(k->cl, &q, NULL, (void *)&resp, &st);
	} else if (!strcmp(a->verb, "transition") && a->pos) {
		Trstctl__V1__TransitionIdentityRequest q =
			TRSTCTL__V1__TRANSITION_IDENTITY_REQUEST__INIT;

		q.id = (char *)a->pos;
		q.to = (char *)(opt(a, "--to") ? opt(a, "--to") : "");
		q.reason = (char *)(opt(a, "--reason") ? opt(a, "--reason") : "");
		q.request_id = (char *)(opt(a, "--request-id") ? opt(a, "--request-id") : "");
		r = trstctl_ca_transition_identity(k->cl, &q, NULL, (void *)&resp, &st);
		if (r >= 0 &&
		    save_cert(a, ((Trstctl__V1__Identity *)(void *)resp)->certificate) < 0)
			r = -EIO;
	} else {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	return finish(a, r, resp, &st);
}

static int cmd_cert(const struct args *a, struct conn *k)
{
	struct trstctl_status st = { 0 };
	ProtobufCMessage *resp = NULL;
	char *csr = NULL;
	int64_t n = 0;
	int r;

	if (!strcmp(a->verb, "issue") && a->pos) {
		Trstctl__V1__IssueCertificateRequest q =
			TRSTCTL__V1__ISSUE_CERTIFICATE_REQUEST__INIT;

		if (parse_i64(opt(a, "--ttl"), &n) < 0)
			return EXIT_USAGE;
		if (opt(a, "--csr") && !(csr = read_file(opt(a, "--csr"))))
			return EXIT_FAIL;
		q.identity_id = (char *)a->pos;
		q.csr_pem = csr ? csr : (char *)"";
		q.ttl_seconds = n;
		q.request_id = (char *)(opt(a, "--request-id") ? opt(a, "--request-id") : "");
		r = trstctl_ca_issue_certificate(k->cl, &q, NULL, (void *)&resp, &st);
		free(csr);
		if (r >= 0 && save_cert(a, (void *)resp) < 0)
			r = -EIO;
	} else if (!strcmp(a->verb, "get") && a->pos) {
		Trstctl__V1__GetCertificateRequest q = TRSTCTL__V1__GET_CERTIFICATE_REQUEST__INIT;

		q.serial = (char *)a->pos;
		r = trstctl_ca_get_certificate(k->cl, &q, NULL, (void *)&resp, &st);
		if (r >= 0 && save_cert(a, (void *)resp) < 0)
			r = -EIO;
	} else if (!strcmp(a->verb, "list")) {
		Trstctl__V1__ListCertificatesRequest q =
			TRSTCTL__V1__LIST_CERTIFICATES_REQUEST__INIT;

		if (parse_i64(opt(a, "--page-size"), &n) < 0)
			return EXIT_USAGE;
		q.page_size = (int32_t)n;
		q.page_token = (char *)(opt(a, "--page-token") ? opt(a, "--page-token") : "");
		q.identity_id = (char *)(opt(a, "--identity") ? opt(a, "--identity") : "");
		r = trstctl_ca_list_certificates(k->cl, &q, NULL, (void *)&resp, &st);
	} else {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	return finish(a, r, resp, &st);
}

static int cmd_ca_remote(const struct args *a, struct conn *k)
{
	struct trstctl_status st = { 0 };
	int r;

	if (!strcmp(a->verb, "bundle")) {
		Trstctl__V1__GetCABundleRequest q = TRSTCTL__V1__GET_CABUNDLE_REQUEST__INIT;
		Trstctl__V1__CABundle *b = NULL;

		r = trstctl_ca_get_ca_bundle(k->cl, &q, NULL, &b, &st);
		if (r >= 0) {
			fputs(b->pem, stdout);
			protobuf_c_message_free_unpacked(&b->base, NULL);
		}
	} else {
		Trstctl__V1__GetCRLRequest q = TRSTCTL__V1__GET_CRLREQUEST__INIT;
		Trstctl__V1__CRL *crl = NULL;

		r = trstctl_ca_get_crl(k->cl, &q, NULL, &crl, &st);
		if (r >= 0) {
			if (opt(a, "--der-out") &&
			    write_file(opt(a, "--der-out"), crl->der.data, crl->der.len, 0644) < 0)
				r = -EIO;
			fputs(crl->pem, stdout);
			protobuf_c_message_free_unpacked(&crl->base, NULL);
		}
	}
	if (r < 0 && st.message)
		fprintf(stderr, "trstctl ca %s: %s: %s\n", a->verb,
			trstctl_status_code_name(st.code), st.message);
	trstctl_status_clear(&st);
	return r < 0 ? EXIT_FAIL : 0;
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

int ca_cli(int argc, char **argv, const struct cfg *c)
{
	static const char *const o_owner[] = {
		"--kind", "--name", "--email", "--request-id", "--page-size", "--page-token", NULL
	};
	static const char *const o_ident[] = { "--kind",      "--name",	      "--owner",
					       "--dns",	      "--ip",	      "--key-type",
					       "--ttl",	      "--request-id", "--state",
					       "--page-size", "--page-token", "--to",
					       "--reason",    "--cert-out",   "--key-out",
					       NULL };
	static const char *const o_cert[] = { "--csr",	     "--ttl",	     "--request-id",
					      "--cert-out",  "--key-out",    "--identity",
					      "--page-size", "--page-token", NULL };
	static const char *const o_ca[] = { "--der-out",  "--cert", "--key", "--replace",
					    "--key-type", "--cn",   "--out", NULL };
	struct conn k = { 0 };
	struct args a;
	const char *const *allowed;
	int ret;

	if (parse(argc, argv, &a) < 0 || !strcmp(a.verb, "--help")) {
		fputs(usage, a.verb && !strcmp(a.verb, "--help") ? stdout : stderr);
		return a.verb && !strcmp(a.verb, "--help") ? 0 : EXIT_USAGE;
	}
	allowed = !strcmp(a.noun, "owner")    ? o_owner :
		  !strcmp(a.noun, "identity") ? o_ident :
		  !strcmp(a.noun, "cert")     ? o_cert :
		  !strcmp(a.noun, "ca")	      ? o_ca :
						NULL;
	if (!allowed || check_opts(&a, allowed) < 0) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(a.noun, "ca")) {
		if (!strcmp(a.verb, "import") || !strcmp(a.verb, "csr") ||
		    !strcmp(a.verb, "import-signed"))
			return cmd_ca_local(&a, c);
		if (strcmp(a.verb, "bundle") && strcmp(a.verb, "crl")) {
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	ret = connect_server(&a, c, &k);
	if (ret < 0)
		return cli_client_exit_status(ret);
	if (!strcmp(a.noun, "owner"))
		ret = cmd_owner(&a, &k);
	else if (!strcmp(a.noun, "identity"))
		ret = cmd_identity(&a, &k);
	else if (!strcmp(a.noun, "cert"))
		ret = cmd_cert(&a, &k);
	else
		ret = cmd_ca_remote(&a, &k);
	trstctl_client_free(k.cl);
	return ret;
}
