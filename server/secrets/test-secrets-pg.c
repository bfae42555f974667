/*
 * trstctl.v1.Secrets served on loopback (plaintext, kernel-chosen port) over a real
 * PostgreSQL with the audit chain and the outbox hooks, called with libtrstctl:
 *   - every rule of issue 7 as a table of steps (code, message, version);
 *   - retention through the domain API with a limit of 3;
 *   - check-and-set races: 16 rotators, versions gap-free, each rotation won once or
 *     failed cleanly; 16 rotators without a check all win, again gap-free;
 *   - seal binding: sealed bytes copied onto another row -> DATA_LOSS and a log line;
 *   - idempotent retries with the same request_id;
 *   - the GetSecret read cache: every kind of change is seen at once on the same server; a
 *     second store on its own struct db (a second server) sees a rotation and a deletion
 *     within 2 s and never returns a value that does not belong to its version; when its
 *     listener's backend is killed, a change made meanwhile is still seen and caching
 *     resumes once it listens again;
 *   - finally a scan of the log, the audit table and the outbox for every value written.
 * The server's stderr (the log) goes to a temporary file for the scan.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "audit.h"
#include "bus.h"
#include "db.h"
#include "kek.h"
#include "rpc.h"
#include "secrets-internal.h"
#include "secrets.h"
#include "test-serve.h"
#include "trstctl-client.h"
#include "trstctl-client-gen.h"

#define MAX_VALUE 4096
#define MAX_VALUES 4096

static struct {
	struct db *db;
	struct kek *kek;
	struct audit *a;
	struct bus *bus;
	struct secrets *s;     /* served, keeps every version */
	struct secrets *s3;    /* domain only, retention 3 */
	struct rpc_test_serve t; /* serves s; t.cl calls it */
	char log_path[64];
	int saved_stderr;
	pthread_mutex_t lock;
	char *values[MAX_VALUES]; /* every value written, for the final scan */
	size_t n_values;
} E = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* A fresh distinctive value, remembered for the scan. Returned string is owned by E. */
static const char *new_value(const char *tag)
{
	uint8_t r[8];
	char *v = malloc(64);

	assert_non_null(v);
	assert_int_equal(RAND_bytes(r, sizeof(r)), 1);
	snprintf(v, 64, "sv-%s-%02x%02x%02x%02x%02x%02x%02x%02x", tag, r[0], r[1], r[2], r[3],
		 r[4], r[5], r[6], r[7]);
	pthread_mutex_lock(&E.lock);
	assert_true(E.n_values < MAX_VALUES);
	E.values[E.n_values++] = v;
	pthread_mutex_unlock(&E.lock);
	return v;
}

static void exec(const char *sql)
{
	struct db_conn *c = NULL;

	assert_int_equal(db_acquire(E.db, 5000, &c), 0);
	assert_true(db_exec(c, sql, NULL, 0, NULL) >= 0);
	db_release(E.db, c);
}

static struct db_rows *query(const char *sql)
{
	struct db_conn *c = NULL;
	struct db_rows *rows = NULL;

	assert_int_equal(db_acquire(E.db, 5000, &c), 0);
	assert_true(db_exec(c, sql, NULL, 0, &rows) >= 0);
	db_release(E.db, c);
	return rows;
}

static int64_t count(const char *sql)
{
	struct db_rows *rows = query(sql);
	int64_t n = strtoll(db_rows_get(rows, 0, 0), NULL, 10);

	db_rows_free(rows);
	return n;
}

static int setup(void **state)
{
	struct db_config dc = { .dsn = getenv("TRSTCTL_POSTGRES_DSN"),
				.max_conns = 12,
				.connect_timeout_ms = 5000 };
	struct audit_config ac = { .checkpoint_interval_ms = -1 };
	struct secrets_config all = { .max_value_bytes = MAX_VALUE, .retain_versions = 0 };
	struct secrets_config three = { .max_value_bytes = MAX_VALUE, .retain_versions = 3 };
	struct rpc_server_config sc = { .workers = 2, .pool_threads = 20, .pool_queue = 128 };
	uint8_t key[KEK_LEN];
	int fd;

	(void)state;
	if (!dc.dsn)
		return -1;
	/* the log goes to a file that the last test scans */
	snprintf(E.log_path, sizeof(E.log_path), "/tmp/trstctl-secrets-log.XXXXXX");
	fd = mkstemp(E.log_path);
	if (fd < 0)
		return -1;
	E.saved_stderr = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
	assert_int_equal(RAND_bytes(key, sizeof(key)), 1);
	if (db_open(&dc, &E.db) < 0 || db_migrate(E.db, NULL) < 0 ||
	    kek_new(key, sizeof(key), &E.kek) < 0 || audit_open(E.db, E.kek, &ac, &E.a) < 0 ||
	    bus_open(E.db, NULL, &E.bus) < 0 || secrets_open(E.db, E.kek, E.bus, &all, &E.s) < 0 ||
	    secrets_open(E.db, E.kek, E.bus, &three, &E.s3) < 0)
		return -1;
	if (rpc_test_serve_new(&sc, &E.t) < 0 || secrets_rpc_register(E.t.srv, E.s) < 0)
		return -1;
	return rpc_test_serve_start(&E.t, 20000);
}

static int teardown(void **state)
{
	(void)state;
	rpc_test_serve_stop(&E.t);
	E.s = secrets_close(E.s);
	E.s3 = secrets_close(E.s3);
	E.bus = bus_close(E.bus);
	E.a = audit_close(E.a);
	E.db = db_close(E.db);
	E.kek = kek_free(E.kek);
	/* the log (and any failure cmocka wrote to stderr) back to the real stderr */
	fflush(stderr);
	if (E.saved_stderr > 0) {
		FILE *f = fopen(E.log_path, "r");
		char line[4096];

		dup2(E.saved_stderr, STDERR_FILENO);
		while (f && fgets(line, sizeof(line), f))
			fputs(line, stderr);
		if (f)
			fclose(f);
	}
	unlink(E.log_path);
	for (size_t i = 0; i < E.n_values; i++)
		free(E.values[i]);
	return 0;
}

/* Calls ----------------------------------------------------------------------------- */

struct res {
	int code;
	char msg[512];
	int64_t version;
	bool deleted;
	char value[MAX_VALUE + 2];
	size_t value_len;
	int64_t create_s;
	size_t n_labels;
	char labels[256]; /* "k=v,k=v" */
};

static void take_status(struct res *out, struct trstctl_status *st)
{
	out->code = st->code;
	snprintf(out->msg, sizeof(out->msg), "%s", st->message ? st->message : "");
	trstctl_status_clear(st);
}

static void take_meta(struct res *out, Trstctl__V1__SecretMeta *m)
{
	if (!m)
		return;
	out->version = m->version;
	out->deleted = m->deleted;
	out->create_s = m->create_time ? m->create_time->seconds * 1000000 +
					 m->create_time->nanos / 1000 : 0;
	out->n_labels = m->n_labels;
	for (size_t i = 0; i < m->n_labels; i++) {
		size_t l = strlen(out->labels);

		snprintf(out->labels + l, sizeof(out->labels) - l, "%s%s=%s", l ? "," : "",
			 m->labels[i]->key, m->labels[i]->value);
	}
	protobuf_c_message_free_unpacked(&m->base, NULL);
}

static struct res c_create(const char *name, const char *value, size_t len, const char *rid,
			   const char *const *labels)
{
	Trstctl__V1__CreateSecretRequest q = TRSTCTL__V1__CREATE_SECRET_REQUEST__INIT;
	Trstctl__V1__CreateSecretRequest__LabelsEntry e[8], *ep[8];
	Trstctl__V1__SecretMeta *m = NULL;
	struct trstctl_status st = { 0 };
	struct res out = { 0 };

	q.name = (char *)name;
	q.value = (ProtobufCBinaryData){ .data = (uint8_t *)value, .len = len };
	q.request_id = (char *)(rid ? rid : "");
	for (size_t i = 0; labels && labels[2 * i] && i < 8; i++) {
		trstctl__v1__create_secret_request__labels_entry__init(&e[i]);
		e[i].key = (char *)labels[2 * i];
		e[i].value = (char *)labels[2 * i + 1];
		ep[i] = &e[i];
		q.n_labels = i + 1;
	}
	q.labels = ep;
	trstctl_secrets_create_secret(E.t.cl, &q, NULL, &m, &st);
	take_status(&out, &st);
	take_meta(&out, m);
	return out;
}

static struct res c_rotate(const char *name, const char *value, size_t len, int64_t expected,
			   const char *rid)
{
	Trstctl__V1__RotateSecretRequest q = TRSTCTL__V1__ROTATE_SECRET_REQUEST__INIT;
	Trstctl__V1__SecretMeta *m = NULL;
	struct trstctl_status st = { 0 };
	struct res out = { 0 };

	q.name = (char *)name;
	q.value = (ProtobufCBinaryData){ .data = (uint8_t *)value, .len = len };
	q.expected_version = expected;
	q.request_id = (char *)(rid ? rid : "");
	trstctl_secrets_rotate_secret(E.t.cl, &q, NULL, &m, &st);
	take_status(&out, &st);
	take_meta(&out, m);
	return out;
}

static struct res c_get(const char *name, int64_t version)
{
	Trstctl__V1__GetSecretRequest q = TRSTCTL__V1__GET_SECRET_REQUEST__INIT;
	Trstctl__V1__Secret *s = NULL;
	struct trstctl_status st = { 0 };
	struct res out = { 0 };

	q.name = (char *)name;
	q.version = version;
	trstctl_secrets_get_secret(E.t.cl, &q, NULL, &s, &st);
	take_status(&out, &st);
	if (s) {
		out.version = s->version;
		out.value_len = s->value.len;
		if (s->value.len <= MAX_VALUE)
			memcpy(out.value, s->value.data, s->value.len);
		protobuf_c_message_free_unpacked(&s->base, NULL);
	}
	return out;
}

static struct res c_simple(const char *op, const char *name, int64_t version, const char *rid)
{
	Trstctl__V1__SecretMeta *m = NULL;
	struct trstctl_status st = { 0 };
	struct res out = { 0 };
	char *r = (char *)(rid ? rid : "");

	if (!strcmp(op, "delete")) {
		Trstctl__V1__DeleteSecretRequest q = TRSTCTL__V1__DELETE_SECRET_REQUEST__INIT;

		q.name = (char *)name;
		q.request_id = r;
		trstctl_secrets_delete_secret(E.t.cl, &q, NULL, &m, &st);
	} else if (!strcmp(op, "recover")) {
		Trstctl__V1__RecoverSecretRequest q = TRSTCTL__V1__RECOVER_SECRET_REQUEST__INIT;

		q.name = (char *)name;
		q.request_id = r;
		trstctl_secrets_recover_secret(E.t.cl, &q, NULL, &m, &st);
	} else {
		Trstctl__V1__DestroySecretVersionRequest q =
			TRSTCTL__V1__DESTROY_SECRET_VERSION_REQUEST__INIT;

		q.name = (char *)name;
		q.version = version;
		q.request_id = r;
		trstctl_secrets_destroy_secret_version(E.t.cl, &q, NULL, &m, &st);
	}
	take_status(&out, &st);
	take_meta(&out, m);
	return out;
}

/* "1e,2d,3e": each version and e(nabled)/d(estroyed). */
static struct res c_versions(const char *name)
{
	Trstctl__V1__ListSecretVersionsRequest q = TRSTCTL__V1__LIST_SECRET_VERSIONS_REQUEST__INIT;
	Trstctl__V1__ListSecretVersionsResponse *p = NULL;
	struct trstctl_status st = { 0 };
	struct res out = { 0 };

	q.name = (char *)name;
	trstctl_secrets_list_secret_versions(E.t.cl, &q, NULL, &p, &st);
	take_status(&out, &st);
	for (size_t i = 0; p && i < p->n_versions; i++) {
		size_t l = strlen(out.value);

		snprintf(out.value + l, sizeof(out.value) - l, "%s%" PRId64 "%c", l ? "," : "",
			 p->versions[i]->version, p->versions[i]->state[0]);
		out.version = (int64_t)p->n_versions;
	}
	if (p)
		protobuf_c_message_free_unpacked(&p->base, NULL);
	return out;
}

/* Names of one page, comma-separated, into value; next token into msg when OK. */
static struct res c_list(const char *prefix, int page_size, const char *token, bool deleted)
{
	Trstctl__V1__ListSecretsRequest q = TRSTCTL__V1__LIST_SECRETS_REQUEST__INIT;
	Trstctl__V1__ListSecretsResponse *p = NULL;
	struct trstctl_status st = { 0 };
	struct res out = { 0 };

	q.prefix = (char *)prefix;
	q.page_size = page_size;
	q.page_token = (char *)(token ? token : "");
	q.show_deleted = deleted;
	trstctl_secrets_list_secrets(E.t.cl, &q, NULL, &p, &st);
	take_status(&out, &st);
	if (p) {
		for (size_t i = 0; i < p->n_secrets; i++) {
			size_t l = strlen(out.value);

			snprintf(out.value + l, sizeof(out.value) - l, "%s%s", l ? "," : "",
				 p->secrets[i]->name);
		}
		out.version = (int64_t)p->n_secrets;
		snprintf(out.msg, sizeof(out.msg), "%s", p->next_page_token);
		protobuf_c_message_free_unpacked(&p->base, NULL);
	}
	return out;
}

/* Rules, as a table ---------------------------------------------------------------- */

enum step_op { CREATE, ROTATE, GET, DELETE, RECOVER, DESTROY, VERSIONS, LIST, LISTDEL };

struct step {
	enum step_op op;
	const char *name;
	int64_t arg;	  /* version / expected_version / page size */
	int value;	  /* index into vals[] (-1 = none; -2 = MAX_VALUE + 1 bytes; -3 = MAX) */
	int code;	  /* expected gRPC code */
	const char *msg;  /* substring of the message, or NULL */
	int64_t version;  /* expected version (or count for lists), -1 = don't check */
	int same_as;	  /* GET: expected value index, -1 = none */
	const char *text; /* VERSIONS / LIST: expected listing, or NULL */
};

static void test_rules(void **state)
{
	static const struct step steps[] = {
		/* create and names */
		{ CREATE, "app/db/password", 0, 0, 0, NULL, 1, -1, NULL },
		{ CREATE, "app/db/password", 0, 1, 6, "already exists; rotate it instead", -1, -1, NULL },
		{ CREATE, "", 0, 1, 3, "1-256 bytes", -1, -1, NULL },
		{ CREATE, "a b", 0, 1, 3, "[A-Za-z0-9._/-]", -1, -1, NULL },
		{ CREATE, "a//b", 0, 1, 3, "empty segment", -1, -1, NULL },
		{ CREATE, "/a", 0, 1, 3, "empty segment", -1, -1, NULL },
		{ CREATE, "a/../b", 0, 1, 3, "\"..\"", -1, -1, NULL },
		{ CREATE, "app/big", 0, -2, 8, "more than the maximum of 4096", -1, -1, NULL },
		{ CREATE, "app/max", 0, -3, 0, NULL, 1, -1, NULL },
		{ GET, "app/max", 0, -1, 0, NULL, 1, -3, NULL },
		/* get */
		{ GET, "app/db/password", 0, -1, 0, NULL, 1, 0, NULL },
		{ GET, "app/db/password", 1, -1, 0, NULL, 1, 0, NULL },
		{ GET, "app/db/password", 2, -1, 5, "has no version 2", -1, -1, NULL },
		{ GET, "app/db/password", -1, -1, 3, "version must be >= 0", -1, -1, NULL },
		{ GET, "app/none", 0, -1, 5, "secret \"app/none\" not found", -1, -1, NULL },
		{ GET, "a//b", 0, -1, 3, "empty segment", -1, -1, NULL },
		/* rotate and check-and-set */
		{ ROTATE, "app/db/password", 1, 1, 0, NULL, 2, -1, NULL },
		{ ROTATE, "app/db/password", 1, 2, 9, "expected version 1, current is 2", -1, -1, NULL },
		{ VERSIONS, "app/db/password", 0, -1, 0, NULL, 2, -1, "1e,2e" },
		{ ROTATE, "app/db/password", 0, 2, 0, NULL, 3, -1, NULL },
		{ ROTATE, "app/db/password", 3, -2, 8, "more than the maximum", -1, -1, NULL },
		{ ROTATE, "app/db/password", -1, 2, 3, "expected_version must be >= 0", -1, -1, NULL },
		{ ROTATE, "app/none", 0, 2, 5, "not found", -1, -1, NULL },
		{ GET, "app/db/password", 0, -1, 0, NULL, 3, 2, NULL },
		{ GET, "app/db/password", 1, -1, 0, NULL, 1, 0, NULL },
		{ GET, "app/db/password", 2, -1, 0, NULL, 2, 1, NULL },
		/* destroy */
		{ DESTROY, "app/db/password", 1, -1, 0, NULL, 3, -1, NULL },
		{ GET, "app/db/password", 1, -1, 5, "version 1 of secret \"app/db/password\" was destroyed", -1, -1, NULL },
		{ DESTROY, "app/db/password", 1, -1, 9, "already destroyed", -1, -1, NULL },
		{ DESTROY, "app/db/password", 9, -1, 5, "has no version 9", -1, -1, NULL },
		{ DESTROY, "app/db/password", 0, -1, 3, "version must be >= 1", -1, -1, NULL },
		{ DESTROY, "app/none", 1, -1, 5, "not found", -1, -1, NULL },
		{ VERSIONS, "app/db/password", 0, -1, 0, NULL, 3, -1, "1d,2e,3e" },
		{ VERSIONS, "app/none", 0, -1, 5, "not found", -1, -1, NULL },
		/* delete and recover */
		{ DELETE, "app/db/password", 0, -1, 0, NULL, 3, -1, NULL },
		{ GET, "app/db/password", 0, -1, 5, "is deleted", -1, -1, NULL },
		{ GET, "app/db/password", 2, -1, 5, "is deleted", -1, -1, NULL },
		{ ROTATE, "app/db/password", 0, 3, 5, "is deleted", -1, -1, NULL },
		{ DELETE, "app/db/password", 0, -1, 9, "already deleted", -1, -1, NULL },
		{ CREATE, "app/db/password", 0, 3, 6, "deleted; recover it instead", -1, -1, NULL },
		{ LIST, "app/", 0, -1, 0, NULL, 1, -1, "app/max" },
		{ LISTDEL, "app/", 0, -1, 0, NULL, 2, -1, "app/db/password,app/max" },
		{ RECOVER, "app/db/password", 0, -1, 0, NULL, 3, -1, NULL },
		{ RECOVER, "app/db/password", 0, -1, 9, "is not deleted", -1, -1, NULL },
		{ RECOVER, "app/none", 0, -1, 5, "not found", -1, -1, NULL },
		{ GET, "app/db/password", 0, -1, 0, NULL, 3, 2, NULL },
		/* list arguments */
		{ LIST, "app", 0, -1, 0, NULL, 2, -1, "app/db/password,app/max" },
		{ LIST, "ap p", 0, -1, 3, "prefix must be", -1, -1, NULL },
		{ LIST, "", -1, -1, 3, "page_size must be >= 0", -1, -1, NULL },
	};
	const char *vals[4];
	char big[MAX_VALUE + 2];
	int64_t audits0 = count("SELECT count(*) FROM audit_events WHERE type LIKE 'secret.%'");
	int64_t ok_writes = 0;

	(void)state;
	for (int i = 0; i < 4; i++)
		vals[i] = new_value("rule");
	memset(big, 'B', sizeof(big));
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		const struct step *t = &steps[i];
		const char *v = t->value >= 0 ? vals[t->value] : big;
		size_t vl = t->value >= 0 ? strlen(v) : t->value == -2 ? MAX_VALUE + 1 : MAX_VALUE;
		int64_t before = count("SELECT count(*) FROM secret_versions");
		struct res r;

		switch (t->op) {
		case CREATE: r = c_create(t->name, v, vl, NULL, NULL); break;
		case ROTATE: r = c_rotate(t->name, v, vl, t->arg, NULL); break;
		case GET: r = c_get(t->name, t->arg); break;
		case DELETE: r = c_simple("delete", t->name, 0, NULL); break;
		case RECOVER: r = c_simple("recover", t->name, 0, NULL); break;
		case DESTROY: r = c_simple("destroy", t->name, t->arg, NULL); break;
		case VERSIONS: r = c_versions(t->name); break;
		case LIST: r = c_list(t->name, (int)t->arg, NULL, false); break;
		default: r = c_list(t->name, (int)t->arg, NULL, true); break;
		}
		if (r.code != t->code)
			fail_msg("step %zu: code %d (%s), want %d", i, r.code, r.msg, t->code);
		if (t->msg && !strstr(r.msg, t->msg))
			fail_msg("step %zu: message \"%s\" lacks \"%s\"", i, r.msg, t->msg);
		if (t->version >= 0 && r.version != t->version)
			fail_msg("step %zu: version %" PRId64 ", want %" PRId64, i, r.version,
				 t->version);
		if (t->same_as != -1) {
			const char *w = t->same_as >= 0 ? vals[t->same_as] : big;
			size_t wl = t->same_as >= 0 ? strlen(w) : MAX_VALUE;

			if (r.value_len != wl || memcmp(r.value, w, wl) != 0)
				fail_msg("step %zu: wrong value", i);
		}
		if (t->text && strcmp(r.value, t->text) != 0)
			fail_msg("step %zu: listing \"%s\", want \"%s\"", i, r.value, t->text);
		/* a refused rotation or creation writes nothing */
		if (t->code != 0 && (t->op == ROTATE || t->op == CREATE))
			assert_int_equal(count("SELECT count(*) FROM secret_versions"), before);
		if (t->code == 0 && t->op != GET && t->op != VERSIONS && t->op != LIST &&
		    t->op != LISTDEL)
			ok_writes++;
	}
	/* exactly one audit record per change that succeeded */
	assert_int_equal(count("SELECT count(*) FROM audit_events WHERE type LIKE 'secret.%'"),
			 audits0 + ok_writes);
}

static void test_labels_and_paging(void **state)
{
	const char *const labels[] = { "team", "payments", "env", "prod", NULL };
	const char *const bad[] = { "bad key", "x", NULL };
	char name[64], token[600] = "";
	struct res r;
	int pages = 0, total = 0;

	(void)state;
	r = c_create("lab/one", "label-value-xyz1", 16, NULL, labels);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.labels, "env=prod,team=payments");
	r = c_create("lab/two", "label-value-xyz2", 16, NULL, bad);
	assert_int_equal(r.code, 3);
	assert_non_null(strstr(r.msg, "label key"));
	for (int i = 0; i < 25; i++) {
		snprintf(name, sizeof(name), "page/s%02d", i);
		assert_int_equal(c_create(name, new_value("page"), 27, NULL, NULL).code, 0);
	}
	assert_int_equal(c_create("page2/x", new_value("page"), 27, NULL, NULL).code, 0);
	do {
		r = c_list("page/", 10, token, false);
		assert_int_equal(r.code, 0);
		total += (int)r.version;
		pages++;
		snprintf(token, sizeof(token), "%s", r.msg);
		if (pages == 1)
			assert_true(strncmp(r.value, "page/s00,page/s01", 17) == 0);
	} while (token[0] && pages < 10);
	assert_int_equal(pages, 3);
	assert_int_equal(total, 25);
	r = c_list("page/", 10, "not a token", false);
	assert_int_equal(r.code, 3);
	assert_string_equal(r.msg, "invalid page_token");
}

/* Retention through the domain API: a limit of 3 destroys older values on rotate. */
static void test_retention(void **state)
{
	struct secrets_ctx ctx = { .actor = "test" };
	struct secrets_meta m = { 0 };
	struct secrets_value v = { 0 };
	const char *val;

	(void)state;
	val = new_value("ret");
	assert_int_equal(secrets_create(E.s3, &ctx, "ret/x", (const uint8_t *)val, strlen(val),
					NULL, 0, &m), 0);
	secrets_meta_clear(&m);
	for (int i = 0; i < 5; i++) {
		val = new_value("ret");
		assert_int_equal(secrets_rotate(E.s3, &ctx, "ret/x", (const uint8_t *)val,
						strlen(val), 0, &m), 0);
		assert_int_equal(m.version, i + 2);
		secrets_meta_clear(&m);
	}
	assert_string_equal(c_versions("ret/x").value, "1d,2d,3d,4e,5e,6e");
	assert_int_equal(secrets_get(E.s3, &ctx, "ret/x", 4, &v), 0);
	secrets_value_clear(&v);
	assert_int_equal(secrets_get(E.s3, &ctx, "ret/x", 3, &v), -ENOENT);
	assert_non_null(strstr(ctx.err, "destroyed"));
	assert_int_equal(count("SELECT count(*) FROM secret_versions WHERE name = 'ret/x' AND "
			       "sealed IS NULL AND destroyed_at IS NOT NULL"), 3);
	/* audited with the newest version each rotation's retention destroyed */
	assert_int_equal(count("SELECT count(*) FROM audit_events WHERE type = 'secret.rotated' "
			       "AND resource = 'secrets/ret/x' AND "
			       "data_json LIKE '%\"retention_destroys_through\":%'"), 3);
	assert_int_equal(count("SELECT count(*) FROM audit_events WHERE type = 'secret.rotated' "
			       "AND resource = 'secrets/ret/x' AND data_json LIKE "
			       "'%\"version\":6,\"retention_destroys_through\":3%'"), 1);
}

/* Races ------------------------------------------------------------------------------ */

#define RACERS 16
#define ROUNDS 6

struct racer {
	int id;
	bool cas;
	int won, lost, other;
	int64_t won_versions[ROUNDS];
	const char *won_values[ROUNDS];
};

static void *race(void *p)
{
	struct racer *r = p;

	for (int i = 0; i < ROUNDS; i++) {
		const char *v = new_value("race");
		int64_t expected = 0;
		struct res x;

		if (r->cas) {
			x = c_get("race/cas", 0);
			expected = x.version;
		}
		x = c_rotate(r->cas ? "race/cas" : "race/free", v, strlen(v), expected, NULL);
		if (x.code == 0) {
			r->won_versions[r->won] = x.version;
			r->won_values[r->won++] = v;
		} else if (x.code == 9 && strstr(x.msg, "expected version")) {
			r->lost++;
		} else {
			r->other++;
		}
	}
	return NULL;
}

static void run_race(bool cas)
{
	const char *name = cas ? "race/cas" : "race/free";
	struct racer rs[RACERS] = { 0 };
	pthread_t t[RACERS];
	bool seen[RACERS * ROUNDS + 2] = { 0 };
	int won = 0, lost = 0;
	char sql[256];
	struct res g;

	assert_int_equal(c_create(name, new_value("race"), 25, NULL, NULL).code, 0);
	for (int i = 0; i < RACERS; i++) {
		rs[i].id = i;
		rs[i].cas = cas;
		assert_int_equal(pthread_create(&t[i], NULL, race, &rs[i]), 0);
	}
	for (int i = 0; i < RACERS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < RACERS; i++) {
		assert_int_equal(rs[i].other, 0);
		won += rs[i].won;
		lost += rs[i].lost;
		for (int j = 0; j < rs[i].won; j++) {
			int64_t v = rs[i].won_versions[j];

			/* each version was won exactly once */
			assert_true(v >= 2 && v <= RACERS * ROUNDS + 1);
			assert_false(seen[v]);
			seen[v] = true;
			g = c_get(name, v);
			assert_int_equal(g.code, 0);
			assert_int_equal(g.value_len, strlen(rs[i].won_values[j]));
			assert_memory_equal(g.value, rs[i].won_values[j], g.value_len);
		}
	}
	assert_int_equal(won + lost, RACERS * ROUNDS);
	if (!cas)
		assert_int_equal(lost, 0);
	/* gap-free: versions 1..won+1, current = won + 1 */
	g = c_get(name, 0);
	assert_int_equal(g.version, won + 1);
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM secret_versions WHERE name = '%s' AND version BETWEEN 1 "
		 "AND %d",
		 name, won + 1);
	assert_int_equal(count(sql), won + 1);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM secret_versions WHERE name = '%s'", name);
	assert_int_equal(count(sql), won + 1);
	print_message("# %s: %d rotations won, %d lost the check-and-set\n", name, won, lost);
}

static void test_race_cas(void **state)
{
	(void)state;
	run_race(true);
}

static void test_race_free(void **state)
{
	(void)state;
	run_race(false);
}

/* Seal binding ------------------------------------------------------------------------ */

static void log_contains(const char *needle, bool want)
{
	FILE *f = fopen(E.log_path, "r");
	char line[4096];
	bool found = false;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			found = true;
	fclose(f);
	if (found != want)
		fail_msg("log %s \"%s\"", want ? "lacks" : "has", needle);
}

static void test_swap(void **state)
{
	const char *va = new_value("swapa"), *vb = new_value("swapb");
	struct res r;

	(void)state;
	assert_int_equal(c_create("swap/a", va, strlen(va), NULL, NULL).code, 0);
	assert_int_equal(c_create("swap/b", vb, strlen(vb), NULL, NULL).code, 0);
	assert_int_equal(c_rotate("swap/a", vb, strlen(vb), 0, NULL).code, 0);
	/* another secret's sealed bytes */
	exec("UPDATE secret_versions SET sealed = (SELECT sealed FROM secret_versions WHERE "
	     "name = 'swap/a' AND version = 1) WHERE name = 'swap/b' AND version = 1");
	r = c_get("swap/b", 0);
	assert_int_equal(r.code, 15);
	assert_int_equal(r.value_len, 0);
	assert_non_null(strstr(r.msg, "version 1 of secret \"swap/b\" cannot be opened"));
	assert_null(strstr(r.msg, va));
	/* another version's sealed bytes of the same secret */
	exec("UPDATE secret_versions SET sealed = (SELECT sealed FROM secret_versions WHERE "
	     "name = 'swap/a' AND version = 2) WHERE name = 'swap/a' AND version = 1");
	r = c_get("swap/a", 1);
	assert_int_equal(r.code, 15);
	assert_int_equal(c_get("swap/a", 2).code, 0);
	/* garbage */
	exec("UPDATE secret_versions SET sealed = '\\x00' WHERE name = 'swap/a' AND version = 2");
	assert_int_equal(c_get("swap/a", 0).code, 15);
	log_contains("secret value refused", true);
	log_contains("\"secret\":\"swap/b\"", true);
	log_contains("do not belong to this row", true);
}

/* Idempotency ------------------------------------------------------------------------- */

static void test_idempotent(void **state)
{
	const char *v1 = new_value("idem"), *v2 = new_value("idem");
	int64_t audits;
	struct res a, b;

	(void)state;
	a = c_create("idem/x", v1, strlen(v1), "req-create-1", NULL);
	assert_int_equal(a.code, 0);
	audits = count("SELECT count(*) FROM audit_events");
	b = c_create("idem/x", v2, strlen(v2), "req-create-1", NULL);
	assert_int_equal(b.code, 0);
	assert_int_equal(b.version, 1);
	assert_int_equal(b.create_s, a.create_s);
	a = c_rotate("idem/x", v2, strlen(v2), 1, "req-rotate-1");
	assert_int_equal(a.code, 0);
	assert_int_equal(a.version, 2);
	for (int i = 0; i < 3; i++) {
		b = c_rotate("idem/x", v2, strlen(v2), 1, "req-rotate-1");
		assert_int_equal(b.code, 0);
		assert_int_equal(b.version, 2);
	}
	assert_int_equal(c_get("idem/x", 0).version, 2);
	assert_int_equal(count("SELECT count(*) FROM audit_events"), audits + 1);
	b = c_rotate("idem/x", v2, strlen(v2), 0, "req-create-1");
	assert_int_equal(b.code, 3);
	assert_string_equal(b.msg, "request_id was used for another method");
	a = c_simple("delete", "idem/x", 0, "req-del-1");
	b = c_simple("delete", "idem/x", 0, "req-del-1");
	assert_int_equal(a.code, 0);
	assert_int_equal(b.code, 0);
	assert_true(b.deleted);
	assert_int_equal(c_simple("delete", "idem/x", 0, "req-del-2").code, 9);
}

/* The scan ---------------------------------------------------------------------------- */

static bool contains(const char *hay, size_t n, const char *needle)
{
	size_t l = strlen(needle);

	for (size_t i = 0; i + l <= n; i++)
		if (memcmp(hay + i, needle, l) == 0)
			return true;
	return false;
}

/* Fails when any form (raw, hex, base64) of any value written is in buf. */
static void scan(const char *what, const char *buf, size_t n)
{
	for (size_t i = 0; i < E.n_values; i++) {
		const char *v = E.values[i];
		size_t l = strlen(v);
		char hex[160], b64[160];

		for (size_t j = 0; j < l; j++)
			snprintf(hex + 2 * j, 3, "%02x", (unsigned char)v[j]);
		EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)v, (int)l);
		b64[strlen(b64) > 12 ? strlen(b64) - 4 : strlen(b64)] = '\0';
		if (contains(buf, n, v) || contains(buf, n, hex) || contains(buf, n, b64))
			fail_msg("%s holds secret value %zu", what, i);
	}
}

static void test_no_values_anywhere(void **state)
{
	struct db_rows *rows;
	FILE *f;
	char *buf;
	long n;

	(void)state;
	fflush(stderr);
	f = fopen(E.log_path, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	scan("the log", buf, (size_t)n);
	free(buf);

	rows = query("SELECT type || ' ' || actor || ' ' || resource || ' ' || outcome || ' ' || "
		     "data_json FROM audit_events");
	assert_true(rows->n_rows > 100);
	for (size_t i = 0; i < rows->n_rows; i++)
		scan("an audit record", rows->values[i], rows->lengths[i]);
	db_rows_free(rows);
	/* changes carry the value's HMAC */
	assert_int_equal(count("SELECT count(*) FROM audit_events WHERE type IN "
			       "('secret.created', 'secret.rotated') AND "
			       "data_json NOT LIKE '%\"value_hmac\":\"%'"), 0);

	rows = query("SELECT type, payload FROM outbox");
	assert_true(rows->n_rows > 100);
	for (size_t i = 0; i < rows->n_rows; i++)
		scan("an outbox event", rows->values[2 * i + 1], rows->lengths[2 * i + 1]);
	db_rows_free(rows);
	/* every kind of event was written */
	assert_int_equal(count("SELECT count(DISTINCT type) FROM outbox WHERE type IN "
			       "('secret.created', 'secret.rotated', 'secret.deleted', "
			       "'secret.recovered', 'secret.destroyed')"), 5);

	rows = query("SELECT sealed FROM secret_versions WHERE sealed IS NOT NULL");
	for (size_t i = 0; i < rows->n_rows; i++)
		scan("a sealed value", rows->values[i], rows->lengths[i]);
	db_rows_free(rows);
	print_message("# scanned %zu values: none in the log, audit records, events\n",
		      E.n_values);
}

/* Read cache ------------------------------------------------------------------------ */

static struct secrets_cache_stats cstats(struct secrets *s)
{
	struct secrets_cache_stats st;

	secrets_read_stats(s, &st);
	return st;
}

/* Waits (up to 5 s) until s's listener is up and its cache in use. */
static void wait_cache_on(struct secrets *s)
{
	for (int i = 0; i < 500 && !cstats(s).enabled; i++)
		usleep(10000);
	assert_true(cstats(s).enabled);
}

/* Gets name through the served store and checks code, version and value (value NULL: any). */
static void get_is(const char *name, int64_t version, int code, int64_t want_version,
		   const char *value)
{
	struct res r = c_get(name, version);

	if (r.code != code)
		fail_msg("GetSecret %s v%lld: code %d (%s), want %d", name, (long long)version,
			 r.code, r.msg, code);
	if (code == 0) {
		assert_int_equal(r.version, want_version);
		assert_int_equal(r.value_len, strlen(value));
		assert_memory_equal(r.value, value, r.value_len);
	}
}

/* Reads name (current version, which must be want) until `n` reads in a row were cache
 * hits, for at most 2 s; true when they were. */
static bool cache_hits_soon(struct secrets *s, const char *name, int64_t want,
			    const char *value, int n)
{
	for (int i = 0; i < 200; i++) {
		uint64_t hits = cstats(s).hits;

		for (int j = 0; j < n; j++)
			get_is(name, 0, 0, want, value);
		if (cstats(s).hits >= hits + (uint64_t)n)
			return true;
		usleep(10000);
	}
	return false;
}

static void test_cache_same_server(void **state)
{
	const char *v1 = new_value("cache1"), *v2 = new_value("cache2");
	struct res r;

	(void)state;
	wait_cache_on(E.s);
	assert_int_equal(c_create("cache/a", v1, strlen(v1), NULL, NULL).code, 0);
	get_is("cache/a", 0, 0, 1, v1);
	/* Answered from the cache: once the change's own notification has come back (it may
	 * arrive after a read and invalidate the name again on a loaded machine). */
	assert_true(cache_hits_soon(E.s, "cache/a", 1, v1, 2));
	get_is("cache/a", 1, 0, 1, v1);

	/* rotate: the very next read is the new version, also as a cache hit afterwards */
	assert_int_equal(c_rotate("cache/a", v2, strlen(v2), 0, NULL).version, 2);
	get_is("cache/a", 0, 0, 2, v2);
	assert_true(cache_hits_soon(E.s, "cache/a", 2, v2, 1));
	get_is("cache/a", 1, 0, 1, v1);

	/* delete: NOT_FOUND at once, for the current and explicit versions */
	assert_int_equal(c_simple("delete", "cache/a", 0, NULL).code, 0);
	r = c_get("cache/a", 0);
	assert_int_equal(r.code, 5);
	assert_non_null(strstr(r.msg, "is deleted"));
	assert_int_equal(c_get("cache/a", 1).code, 5);

	/* recover: readable again */
	assert_int_equal(c_simple("recover", "cache/a", 0, NULL).code, 0);
	get_is("cache/a", 0, 0, 2, v2);
	get_is("cache/a", 0, 0, 2, v2);

	/* destroy the current version (cached): NOT_FOUND destroyed; version 1 stays */
	assert_int_equal(c_simple("destroy", "cache/a", 2, NULL).code, 0);
	r = c_get("cache/a", 0);
	assert_int_equal(r.code, 5);
	assert_non_null(strstr(r.msg, "was destroyed"));
	assert_int_equal(c_get("cache/a", 2).code, 5);
	get_is("cache/a", 1, 0, 1, v1);

	/* a retention destroy through another store's rotation (s3, same database) */
	assert_int_equal(c_create("cache/ret", v1, strlen(v1), NULL, NULL).code, 0);
	get_is("cache/ret", 1, 0, 1, v1);
	get_is("cache/ret", 1, 0, 1, v1);
	for (int i = 0; i < 3; i++) {
		struct secrets_ctx ctx = { .actor = "test" };
		struct secrets_meta m = { 0 };

		assert_int_equal(secrets_rotate(E.s3, &ctx, "cache/ret", (const uint8_t *)v2,
						strlen(v2), 0, &m),
				 0);
		secrets_meta_clear(&m);
	}
	/* s learns it from the notification: poll up to 2 s */
	for (int i = 0; i < 200 && c_get("cache/ret", 1).code == 0; i++)
		usleep(10000);
	assert_int_equal(c_get("cache/ret", 1).code, 5);
}

/* A second server: its own pool and listener on the same database. */
struct server2 {
	struct db *db;
	struct secrets *s;
};

static void server2_open(struct server2 *b)
{
	struct db_config dc = { .dsn = getenv("TRSTCTL_POSTGRES_DSN"),
				.max_conns = 4,
				.connect_timeout_ms = 5000 };

	assert_int_equal(db_open(&dc, &b->db), 0);
	assert_int_equal(secrets_open(b->db, E.kek, NULL, NULL, &b->s), 0);
	wait_cache_on(b->s);
}

static void server2_close(struct server2 *b)
{
	b->s = secrets_close(b->s);
	b->db = db_close(b->db);
}

/* Reads name on b: returns the version (0 when not found); the value must be the one
 * written for that version (vals[version - 1]). */
static int64_t read2(struct server2 *b, const char *name, const char *const *vals, size_t n)
{
	struct secrets_ctx ctx = { 0 };
	struct secrets_value v = { 0 };
	int r = secrets_get(b->s, &ctx, name, 0, &v);
	int64_t ver;

	if (r == -ENOENT)
		return 0;
	if (r != 0)
		fail_msg("second server: %s: %d %s", name, r, ctx.err);
	ver = v.version;
	assert_true(ver >= 1 && (size_t)ver <= n);
	assert_int_equal(v.n, strlen(vals[ver - 1]));
	assert_memory_equal(v.value, vals[ver - 1], v.n);
	secrets_value_clear(&v);
	return ver;
}

static void test_cache_second_server(void **state)
{
	const char *vals[] = { new_value("srv2a"), new_value("srv2b") };
	struct server2 b = { 0 };
	int64_t ver = 0;
	uint64_t hits;
	int i;

	(void)state;
	server2_open(&b);
	assert_int_equal(c_create("cache/b", vals[0], strlen(vals[0]), NULL, NULL).code, 0);
	/* Its listener comes up asynchronously (until then its cache is bypassed), and the
	 * create's notification may invalidate a first cached read: read until a hit. */
	wait_cache_on(b.s);
	assert_int_equal(read2(&b, "cache/b", vals, 2), 1);
	for (i = 0; i < 200; i++) {
		hits = cstats(b.s).hits;
		assert_int_equal(read2(&b, "cache/b", vals, 2), 1);
		if (cstats(b.s).hits > hits)
			break;
		usleep(10000);
	}
	assert_true(i < 200); /* the second server caches it */

	assert_int_equal(c_rotate("cache/b", vals[1], strlen(vals[1]), 0, NULL).version, 2);
	for (i = 0; i < 200 && (ver = read2(&b, "cache/b", vals, 2)) != 2; i++)
		usleep(10000);
	assert_int_equal(ver, 2);
	print_message("# second server saw the rotation after %d polls of 10 ms\n", i);
	assert_int_equal(read2(&b, "cache/b", vals, 2), 2); /* and stays there */

	assert_int_equal(c_simple("delete", "cache/b", 0, NULL).code, 0);
	for (i = 0; i < 200 && (ver = read2(&b, "cache/b", vals, 2)) != 0; i++)
		usleep(10000);
	assert_int_equal(ver, 0);
	server2_close(&b);
}

/*
 * A rotation on the server that last wrote a secret starts from that server's metadata;
 * when another server rotated meanwhile, the hook refuses the guess and the rotation reads
 * the row and goes on: versions stay gap-free, expected_version and request_id still hold.
 */
static void test_guess_second_server(void **state)
{
	const char *v = new_value("guess");
	struct secrets_ctx ctx = { .actor = "test" };
	struct secrets_meta m = { 0 };
	struct server2 b = { 0 };
	struct res r1, r2;

	(void)state;
	server2_open(&b);
	assert_int_equal(c_create("guess/a", v, strlen(v), NULL, NULL).code, 0);
	assert_int_equal(secrets_rotate(b.s, &ctx, "guess/a", (const uint8_t *)v, strlen(v), 0, &m),
			 0);
	assert_int_equal(m.version, 2);
	secrets_meta_clear(&m);
	/* this server guessed 1: refused, read 2, wrote 3 */
	assert_int_equal(c_rotate("guess/a", v, strlen(v), 0, NULL).version, 3);
	assert_int_equal(c_rotate("guess/a", v, strlen(v), 3, NULL).version, 4);
	assert_int_equal(secrets_rotate(b.s, &ctx, "guess/a", (const uint8_t *)v, strlen(v), 0, &m),
			 0);
	assert_int_equal(m.version, 5);
	secrets_meta_clear(&m);
	/* the guess (4) agrees with expected_version, the row does not */
	r1 = c_rotate("guess/a", v, strlen(v), 4, NULL);
	assert_int_equal(r1.code, RPC_FAILED_PRECONDITION);
	assert_string_equal(r1.msg, "expected version 4, current is 5");
	/* a retried request_id is answered from its stored reply */
	r1 = c_rotate("guess/a", v, strlen(v), 0, "guess-r1");
	r2 = c_rotate("guess/a", v, strlen(v), 0, "guess-r1");
	assert_int_equal(r1.code, 0);
	assert_int_equal(r2.code, 0);
	assert_int_equal(r1.version, 6);
	assert_int_equal(r2.version, 6);
	assert_int_equal(count("SELECT count(*) FROM secret_versions WHERE name = 'guess/a'"), 6);
	assert_int_equal(count("SELECT max(version) FROM secret_versions WHERE name = 'guess/a'"),
			 6);
	server2_close(&b);
}

static void test_cache_listener_lost(void **state)
{
	const char *vals[] = { new_value("lost1"), new_value("lost2"), new_value("lost3") };
	struct server2 b = { 0 };
	char sql[128];
	uint64_t hits;
	int pid, i;

	(void)state;
	server2_open(&b);
	assert_int_equal(c_create("cache/c", vals[0], strlen(vals[0]), NULL, NULL).code, 0);
	assert_int_equal(read2(&b, "cache/c", vals, 3), 1);
	assert_int_equal(read2(&b, "cache/c", vals, 3), 1);
	assert_true(cstats(b.s).entries >= 1);

	/* kill the listener's backend, then change the secret before it can listen again
	 * (reconnection waits at least 100 ms): the notification is lost for sure */
	pid = db_listen_backend_pid(b.s->listen);
	assert_true(pid > 0);
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid);
	exec(sql);
	assert_int_equal(c_rotate("cache/c", vals[1], strlen(vals[1]), 0, NULL).version, 2);
	/* whatever the listener's state, the answer is never older than that change once
	 * the loss was noticed; once it listens again the cache is fresh */
	for (i = 0; i < 500; i++) {
		int now = db_listen_backend_pid(b.s->listen);

		if (now > 0 && now != pid && cstats(b.s).enabled)
			break;
		usleep(10000);
	}
	assert_true(i < 500);
	assert_int_equal(read2(&b, "cache/c", vals, 3), 2);

	/* caching resumed: hits again, and notifications arrive again */
	hits = cstats(b.s).hits;
	assert_int_equal(read2(&b, "cache/c", vals, 3), 2);
	assert_true(cstats(b.s).hits > hits);
	assert_int_equal(c_rotate("cache/c", vals[2], strlen(vals[2]), 0, NULL).version, 3);
	for (i = 0; i < 200 && read2(&b, "cache/c", vals, 3) != 3; i++)
		usleep(10000);
	assert_int_equal(read2(&b, "cache/c", vals, 3), 3);
	server2_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_labels_and_paging),
		cmocka_unit_test(test_retention),
		cmocka_unit_test(test_race_cas),
		cmocka_unit_test(test_race_free),
		cmocka_unit_test(test_swap),
		cmocka_unit_test(test_idempotent),
		cmocka_unit_test(test_cache_same_server),
		cmocka_unit_test(test_cache_second_server),
		cmocka_unit_test(test_guess_second_server),
		cmocka_unit_test(test_cache_listener_lost),
		cmocka_unit_test(test_no_values_anywhere),
	};

	if (!getenv("TRSTCTL_POSTGRES_DSN")) {
		printf("SKIP: TRSTCTL_POSTGRES_DSN is not set (run through run-with-pg.sh)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
