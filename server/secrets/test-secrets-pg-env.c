/*
 * The fixture of the secret store's PostgreSQL tests (test-secrets-pg.h): setup opens a
 * migrated database, a KEK, audit, bus and two stores and serves one on loopback, with the
 * log redirected to a temporary file; the calls wrap libtrstctl; the scan looks for every
 * value written. Assumes TRSTCTL_POSTGRES_DSN (run-with-pg.sh) and one test at a time.
 */
#include "test-secrets-pg.h"

struct secrets_pg_env E = { .lock = PTHREAD_MUTEX_INITIALIZER, .scan_min_rows = 100 };

/* A fresh distinctive value, remembered for the scan. Returned string is owned by E. */
const char *new_value(const char *tag)
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

void exec(const char *sql)
{
	struct db_conn *c = NULL;

	assert_int_equal(db_acquire(E.db, 5000, &c), 0);
	assert_true(db_exec(c, sql, NULL, 0, NULL) >= 0);
	db_release(E.db, c);
}

struct db_rows *query(const char *sql)
{
	struct db_conn *c = NULL;
	struct db_rows *rows = NULL;

	assert_int_equal(db_acquire(E.db, 5000, &c), 0);
	assert_true(db_exec(c, sql, NULL, 0, &rows) >= 0);
	db_release(E.db, c);
	return rows;
}

int64_t count(const char *sql)
{
	struct db_rows *rows = query(sql);
	int64_t n = strtoll(db_rows_get(rows, 0, 0), NULL, 10);

	db_rows_free(rows);
	return n;
}

int setup(void **state)
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

int teardown(void **state)
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

struct res c_create(const char *name, const char *value, size_t len, const char *rid,
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

struct res c_rotate(const char *name, const char *value, size_t len, int64_t expected,
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

struct res c_get(const char *name, int64_t version)
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

struct res c_simple(const char *op, const char *name, int64_t version, const char *rid)
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
struct res c_versions(const char *name)
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
struct res c_list(const char *prefix, int page_size, const char *token, bool deleted)
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

void test_no_values_anywhere(void **state)
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
	assert_true(rows->n_rows > E.scan_min_rows);
	for (size_t i = 0; i < rows->n_rows; i++)
		scan("an audit record", rows->values[i], rows->lengths[i]);
	db_rows_free(rows);
	/* changes carry the value's HMAC */
	assert_int_equal(count("SELECT count(*) FROM audit_events WHERE type IN "
			       "('secret.created', 'secret.rotated') AND "
			       "data_json NOT LIKE '%\"value_hmac\":\"%'"), 0);

	rows = query("SELECT type, payload FROM outbox");
	assert_true(rows->n_rows > E.scan_min_rows);
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
