/*
 * The audit chain: records attached to group-commit changes, the canonical encoding and
 * hash documented in audit.h, and the DB_ITEM_AUDIT pre-commit hook that numbers, chains and
 * inserts the records of a batch.
 *
 * The hook runs on the writer's connection inside the batch transaction. For each tenant
 * of the batch (tenants in sorted order, so that two servers never lock two heads in
 * opposite orders) it locks the head row, which serialises the servers sharing the
 * database: the second waits until the first commits and then continues from the first's
 * head. All records of a tenant go in with ONE statement (arrays unnested server-side), so
 * the cost of the chain per batch is three or four statements whatever the batch size.
 * The hook may run again for the same items when the db retries a batch; it recomputes
 * everything it writes into them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "audit-internal.h"
#include "crypto.h"
#include "db.h"

static const uint8_t zero_hash[AUDIT_HASH_LEN];

/* Pure helpers ----------------------------------------------------------------------- */

void audit_hex(const uint8_t *p, size_t n, char *ret)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		ret[2 * i] = digits[p[i] >> 4];
		ret[2 * i + 1] = digits[p[i] & 15];
	}
	ret[2 * n] = '\0';
}

int audit_format_time(int64_t time_us, char *ret_buf, size_t len)
{
	time_t secs = (time_t)(time_us / 1000000);
	int64_t frac = time_us % 1000000;
	struct tm tm;

	if (frac < 0) {
		frac += 1000000;
		secs--;
	}
	if (len < AUDIT_TIME_LEN + 1 || !gmtime_r(&secs, &tm) || tm.tm_year + 1900 > 9999 ||
	    tm.tm_year + 1900 < 1)
		return -EINVAL;
	snprintf(ret_buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06" PRId64 "Z", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
	return 0;
}

static int digits(const char *s, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return 0;
}

int audit_parse_time(const char *s, int64_t *ret_time_us)
{
	int y, mo, d, h, mi, se, us;
	struct tm tm = { 0 };
	time_t secs;

	if (!s || strlen(s) != AUDIT_TIME_LEN || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
	    s[13] != ':' || s[16] != ':' || s[19] != '.' || s[26] != 'Z')
		return -EINVAL;
	if (digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) ||
	    digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) || digits(s + 17, 2, &se) ||
	    digits(s + 20, 6, &us))
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	secs = timegm(&tm);
	*ret_time_us = (int64_t)secs * 1000000 + us;
	return 0;
}

/* The canonical encoding, streamed into a digest. */
static int put_field(EVP_MD_CTX *md, const void *p, size_t n)
{
	uint8_t len[4] = { (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };

	if (n > UINT32_MAX)
		return -EINVAL;
	if (EVP_DigestUpdate(md, len, 4) != 1 || (n && EVP_DigestUpdate(md, p, n) != 1))
		return -EIO;
	return 0;
}

static int put_str(EVP_MD_CTX *md, const char *s)
{
	return put_field(md, s, strlen(s));
}

static int put_i64(EVP_MD_CTX *md, int64_t v)
{
	uint64_t u = (uint64_t)v;
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(u >> (56 - 8 * i));
	return put_field(md, b, 8);
}

int audit_hash(const uint8_t prev[AUDIT_HASH_LEN], const struct audit_event *ev,
	       uint8_t ret_hash[AUDIT_HASH_LEN])
{
	const char *const strs[] = { ev->id,	   ev->type,	ev->time,     ev->actor,
				     ev->resource, ev->outcome, ev->data_json };
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int n = 0;
	int r = -EIO;

	if (!md)
		return -ENOMEM;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, prev, AUDIT_HASH_LEN) != 1)
		goto out;
	r = put_str(md, "trstctl.audit.v1");
	if (!r)
		r = put_str(md, ev->tenant_id);
	if (!r)
		r = put_i64(md, ev->sequence);
	for (size_t i = 0; !r && i < sizeof(strs) / sizeof(strs[0]); i++)
		r = put_str(md, strs[i]);
	if (!r && (EVP_DigestFinal_ex(md, ret_hash, &n) != 1 || n != AUDIT_HASH_LEN))
		r = -EIO;
out:
	EVP_MD_CTX_free(md);
	return r;
}

/* Records ------------------------------------------------------------------------------ */

/* Strict UTF-8 as PostgreSQL accepts it: no overlong forms, no surrogates, <= U+10FFFF. */
static bool utf8_valid(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	while (*s) {
		unsigned c = *s++;
		int more;
		unsigned cp, min;

		if (c < 0x80)
			continue;
		if ((c & 0xe0) == 0xc0) {
			more = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			more = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			more = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		while (more--) {
			if ((*s & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (*s++ & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
	}
	return true;
}

int audit_tenant(const char *in, char ret[AUDIT_UUID_LEN + 1])
{
	if (!in)
		in = DB_DEFAULT_TENANT;
	if (!crypto_uuid_valid(in))
		return -EINVAL;
	for (int i = 0; i <= AUDIT_UUID_LEN; i++)
		ret[i] = (char)(in[i] >= 'A' && in[i] <= 'F' ? in[i] - 'A' + 'a' : in[i]);
	return 0;
}

static bool type_valid(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > AUDIT_MAX_TYPE)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = t[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

static bool json_object_valid(const char *s)
{
	json_error_t err;
	json_t *j = json_loads(s, 0, &err);
	bool ok = j && json_is_object(j);

	json_decref(j);
	return ok;
}

static char *pack(char **cursor, const char *s)
{
	char *p = *cursor;
	size_t n = strlen(s) + 1;

	memcpy(p, s, n);
	*cursor = p + n;
	return p;
}

/* Sets the current time (as the writer attaches it, so that time follows sequence). */
static void stamp(struct audit_record *rec)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	rec->ev.time_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	audit_format_time(rec->ev.time_us, rec->ev.time, sizeof(rec->ev.time));
}

int audit_prepare(const struct audit_entry *e, struct audit_record **ret_rec)
{
	const char *actor, *resource, *outcome, *data;
	struct audit_record *rec;
	char tenant[AUDIT_UUID_LEN + 1];
	char *cur, *printed = NULL;
	size_t need;
	int r = -EINVAL;

	if (!e || !ret_rec || !e->type || !type_valid(e->type))
		return -EINVAL;
	actor = e->actor ? e->actor : "";
	resource = e->resource ? e->resource : "";
	outcome = e->outcome ? e->outcome : "ok";
	data = e->data_json ? e->data_json : "{}";
	if (e->data) {
		/* an object printed by jansson is valid JSON: no parse */
		if (!json_is_object((const json_t *)e->data))
			return -EINVAL;
		printed = json_dumps((const json_t *)e->data, JSON_COMPACT);
		if (!printed)
			return -ENOMEM;
		data = printed;
	}
	if (audit_tenant(e->tenant_id, tenant) < 0)
		goto out;
	if (strcmp(outcome, "ok") && strcmp(outcome, "denied") && strcmp(outcome, "error"))
		goto out;
	if (strlen(actor) > AUDIT_MAX_FIELD || strlen(resource) > AUDIT_MAX_FIELD ||
	    strlen(data) > AUDIT_MAX_DATA || !utf8_valid(actor) || !utf8_valid(resource) ||
	    (!printed && !json_object_valid(data)))
		goto out;

	need = strlen(e->type) + strlen(actor) + strlen(resource) + strlen(outcome) + strlen(data) +
	       5;
	rec = calloc(1, sizeof(*rec) + need);
	r = -ENOMEM;
	if (!rec)
		goto out;
	rec->size = sizeof(*rec) + need;
	memcpy(rec->ev.tenant_id, tenant, sizeof(tenant));
	/* the id, drawn here on the caller's thread; a batch run again keeps it */
	r = crypto_uuid_v4(rec->ev.id);
	if (r < 0) {
		free(rec);
		goto out;
	}
	cur = rec->buf;
	rec->ev.type = pack(&cur, e->type);
	rec->ev.actor = pack(&cur, actor);
	rec->ev.resource = pack(&cur, resource);
	rec->ev.outcome = pack(&cur, outcome);
	rec->ev.data_json = pack(&cur, data);
	*ret_rec = rec;
	r = 0;
out:
	free(printed);
	return r;
}

struct audit_record *audit_record_free(struct audit_record *rec)
{
	free(rec);
	return NULL;
}

const char *audit_record_data(const struct audit_record *rec)
{
	return rec->ev.data_json;
}

/* Points a copy's strings into its own buffer. */
static void relocate(struct audit_record *copy, const struct audit_record *rec)
{
	char **f[] = { &copy->ev.type, &copy->ev.actor, &copy->ev.resource, &copy->ev.outcome,
		       &copy->ev.data_json };

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		*f[i] = copy->buf + (*f[i] - rec->buf);
}

int audit_attach(struct db_tx *tx, const struct audit_record *rec)
{
	struct audit_record *copy;

	if (!tx || !rec)
		return -EINVAL;
	copy = malloc(rec->size);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, rec, rec->size);
	relocate(copy, rec);
	stamp(copy);
	/* On failure db_tx_attach has already released copy with free_fn. */
	return db_tx_attach(tx, DB_ITEM_AUDIT, copy, free);
}

int audit_record(struct db_tx *tx, const struct audit_entry *e)
{
	struct audit_record *rec = NULL;
	int r;

	if (!tx)
		return -EINVAL;
	r = audit_prepare(e, &rec);
	if (r < 0)
		return r;
	stamp(rec);
	/* On failure db_tx_attach has already released rec with free_fn. */
	return db_tx_attach(tx, DB_ITEM_AUDIT, rec, free);
}

static int record_only(struct db_tx *tx, void *ud)
{
	return audit_record(tx, ud);
}

int audit_write(struct db *db, const struct audit_entry *e, int timeout_ms)
{
	return db && e ? db_write(db, record_only, (void *)e, timeout_ms) : -EINVAL;
}

/* The pre-commit hook ----------------------------------------------------------------- */

/* One text element, and a hash as a bytea element ("\\x<hex>"). */
static void col_text(struct db_array *col, const char *s)
{
	db_array_add(col, s, strlen(s));
}

static void col_bytes(struct db_array *col, const uint8_t *p, size_t n)
{
	char hex[2 * AUDIT_HASH_LEN + 4] = "\\x";

	audit_hex(p, n, hex + 2);
	col_text(col, hex);
}

enum {
	COL_SEQ,
	COL_ID,
	COL_TYPE,
	COL_TIME,
	COL_ACTOR,
	COL_RESOURCE,
	COL_OUTCOME,
	COL_DATA,
	COL_PREV,
	COL_HASH,
	N_COLS
};

/* The records of one tenant and its new head, in one statement (one round trip). */
static const char insert_sql[] =
	"WITH ins AS (INSERT INTO audit_events (tenant_id, sequence, id, type, time, actor, "
	"resource, outcome, data_json, prev_hash, hash) "
	"SELECT $1::uuid, * FROM unnest($2::bigint[], $3::uuid[], $4::text[], "
	"$5::timestamptz[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bytea[], "
	"$11::bytea[])) "
	"UPDATE audit_head SET sequence = $12, hash = $13 WHERE tenant_id = $1::uuid";

/* Inserts recs[0..n) (already numbered and hashed) and moves the head to the last. */
static int insert_records(struct db_conn *conn, const char *tenant, struct audit_record **recs,
			  size_t n)
{
	struct db_array cols[N_COLS] = { 0 };
	struct db_param params[N_COLS + 3];
	char seq[24], head[24];
	int r = -ENOMEM;

	for (size_t i = 0; i < n; i++) {
		const struct audit_event *ev = &recs[i]->ev;

		snprintf(seq, sizeof(seq), "%" PRId64, ev->sequence);
		col_text(&cols[COL_SEQ], seq);
		col_text(&cols[COL_ID], ev->id);
		col_text(&cols[COL_TYPE], ev->type);
		col_text(&cols[COL_TIME], ev->time);
		col_text(&cols[COL_ACTOR], ev->actor);
		col_text(&cols[COL_RESOURCE], ev->resource);
		col_text(&cols[COL_OUTCOME], ev->outcome);
		col_text(&cols[COL_DATA], ev->data_json);
		col_bytes(&cols[COL_PREV], ev->prev_hash, AUDIT_HASH_LEN);
		col_bytes(&cols[COL_HASH], ev->hash, AUDIT_HASH_LEN);
	}
	params[0] = DB_TEXT(tenant);
	for (int c = 0; c < N_COLS; c++) {
		const char *lit = db_array_end(&cols[c]);

		if (!lit)
			goto out;
		params[c + 1] = DB_TEXT(lit);
	}
	snprintf(head, sizeof(head), "%" PRId64, recs[n - 1]->ev.sequence);
	params[N_COLS + 1] = DB_TEXT(head);
	params[N_COLS + 2] = DB_BYTES(recs[n - 1]->ev.hash, AUDIT_HASH_LEN);
	r = db_exec(conn, insert_sql, params, N_COLS + 3, NULL);
out:
	for (int c = 0; c < N_COLS; c++)
		db_array_clear(&cols[c]);
	return r;
}

/* Locks the tenant's head (creating its genesis row when missing). */
static int lock_head(struct db_conn *conn, const char *tenant, int64_t *ret_seq,
		     uint8_t ret_hash[AUDIT_HASH_LEN])
{
	struct db_param p[2] = { DB_TEXT(tenant), DB_BYTES(zero_hash, AUDIT_HASH_LEN) };
	struct db_rows *rows = NULL;
	int r;

	for (int attempt = 0; attempt < 2; attempt++) {
		r = db_exec(conn,
			    "SELECT sequence, hash FROM audit_head WHERE tenant_id = $1 FOR UPDATE",
			    p, 1, &rows);
		if (r < 0)
			return r;
		if (rows->n_rows == 1) {
			const char *s = db_rows_get(rows, 0, 0);

			if (!s || !db_rows_get(rows, 0, 1) || rows->lengths[1] != AUDIT_HASH_LEN) {
				db_rows_free(rows);
				return -EPROTO;
			}
			*ret_seq = strtoll(s, NULL, 10);
			memcpy(ret_hash, db_rows_get(rows, 0, 1), AUDIT_HASH_LEN);
			db_rows_free(rows);
			return 0;
		}
		rows = db_rows_free(rows);
		r = db_exec(conn,
			    "INSERT INTO audit_head (tenant_id, sequence, hash) VALUES ($1, 0, $2) "
			    "ON CONFLICT DO NOTHING",
			    p, 2, NULL);
		if (r < 0)
			return r;
	}
	return -EPROTO;
}

/* Chains and inserts the records of one tenant, then moves its head. */
static int chain_tenant(struct audit *a, struct db_conn *conn, struct audit_record **recs, size_t n)
{
	const char *tenant = recs[0]->ev.tenant_id;
	uint8_t prev[AUDIT_HASH_LEN];
	int64_t head;
	int r;

	r = lock_head(conn, tenant, &head, prev);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct audit_event *ev = &recs[i]->ev;

		ev->sequence = head + 1 + (int64_t)i;
		memcpy(ev->prev_hash, prev, AUDIT_HASH_LEN);
		r = audit_hash(prev, ev, ev->hash);
		if (r < 0)
			return r;
		memcpy(prev, ev->hash, AUDIT_HASH_LEN);
	}
	r = insert_records(conn, tenant, recs, n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && a->sign_key; i++) {
		const struct audit_event *ev = &recs[i]->ev;

		if (ev->sequence % a->every == 0) {
			r = audit_checkpoint_insert(a, conn, tenant, ev->sequence, ev->hash);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int cmp_tenant(const void *x, const void *y)
{
	const struct audit_record *const *a = x, *const *b = y;

	return strcmp((*a)->ev.tenant_id, (*b)->ev.tenant_id);
}

static int audit_precommit(struct db_conn *conn, void *const *items, size_t n_items,
			   int *results, void *ud)
{
	struct audit *a = ud;
	struct audit_record **recs;
	bool one_tenant = true;
	int r = 0;

	if (n_items == 0)
		return 0;
	recs = malloc(n_items * sizeof(*recs));
	if (!recs)
		return -ENOMEM;
	for (size_t i = 0; i < n_items; i++) {
		recs[i] = items[i];
		if (strcmp(recs[i]->ev.tenant_id, recs[0]->ev.tenant_id))
			one_tenant = false;
	}
	/* Group by tenant, keeping batch order inside each (insertion sort is stable). */
	if (!one_tenant) {
		for (size_t i = 1; i < n_items; i++) {
			struct audit_record *x = recs[i];
			size_t j = i;

			while (j > 0 && cmp_tenant(&recs[j - 1], &x) > 0) {
				recs[j] = recs[j - 1];
				j--;
			}
			recs[j] = x;
		}
	}
	for (size_t start = 0; start < n_items && r >= 0;) {
		size_t end = start + 1;

		while (end < n_items && !cmp_tenant(&recs[start], &recs[end]))
			end++;
		r = chain_tenant(a, conn, recs + start, end - start);
		start = end;
	}
	free(recs);
	return r;
}

/* After audit_close: a batch carrying audit records fails rather than commit without them. */
static int audit_precommit_closed(struct db_conn *conn, void *const *items, size_t n_items,
				  int *results, void *ud)
{
	return -ESHUTDOWN;
}

/* After the commit: the numbered records go to the observer, in batch order. */
static void audit_postcommit(void *const *items, size_t n_items, void *ud)
{
	struct audit *a = ud;

	for (size_t i = 0; i < n_items; i++)
		a->commit_fn(&((const struct audit_record *)items[i])->ev, a->commit_ud);
}

int audit_set_commit_hook(struct audit *a, audit_commit_fn fn, void *ud)
{
	if (!a || !a->hooked)
		return -EINVAL;
	if (!fn)
		return db_set_postcommit(a->db, DB_ITEM_AUDIT, NULL, NULL);
	a->commit_fn = fn;
	a->commit_ud = ud;
	/* published to the writer threads by the db's lock */
	return db_set_postcommit(a->db, DB_ITEM_AUDIT, audit_postcommit, a);
}

/* Open, close, timer ---------------------------------------------------------------- */

int audit_checkpoint_now(struct audit *a)
{
	struct db_conn *conn = NULL;
	struct db_rows *rows = NULL;
	int r, written = 0;

	if (!a || !a->sign_key)
		return -EINVAL;
	r = db_acquire(a->db, 5000, &conn);
	if (r < 0)
		return r;
	r = db_exec(conn,
		    "SELECT h.tenant_id, h.sequence, h.hash FROM audit_head h WHERE h.sequence > 0 "
		    "AND NOT EXISTS (SELECT 1 FROM audit_checkpoints c WHERE c.tenant_id = "
		    "h.tenant_id AND c.sequence = h.sequence) ORDER BY h.tenant_id",
		    NULL, 0, &rows);
	for (size_t i = 0; r >= 0 && i < rows->n_rows; i++) {
		const char *t = db_rows_get(rows, i, 0), *s = db_rows_get(rows, i, 1);
		const char *h = db_rows_get(rows, i, 2);

		if (!t || !s || !h || rows->lengths[2] != AUDIT_HASH_LEN) {
			r = -EPROTO;
			break;
		}
		r = audit_checkpoint_insert(a, conn, t, strtoll(s, NULL, 10), (const uint8_t *)h);
		if (r >= 0)
			written++;
	}
	db_rows_free(rows);
	db_release(a->db, conn);
	return r < 0 ? r : written;
}

static void *timer_main(void *arg)
{
	struct audit *a = arg;

	pthread_mutex_lock(&a->timer_mu);
	while (!a->stop) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += a->interval_ms / 1000;
		until.tv_nsec += (a->interval_ms % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		while (!a->stop && pthread_cond_timedwait(&a->timer_cv, &a->timer_mu, &until) == 0)
			;
		if (a->stop)
			break;
		pthread_mutex_unlock(&a->timer_mu);
		/* A failure (database down) is retried at the next tick; the records themselves
		 * are safe, only the signature over the head and its witnesses wait. */
		audit_checkpoint_now(a);
		audit_witness_now(a);
		pthread_mutex_lock(&a->timer_mu);
	}
	pthread_mutex_unlock(&a->timer_mu);
	return NULL;
}

int audit_open(struct db *db, const struct kek *kek, const struct audit_config *cfg,
	       struct audit **ret_audit)
{
	struct audit *a;
	int r;

	if (!db || !ret_audit)
		return -EINVAL;
	if (cfg && (cfg->checkpoint_every < 0))
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->db = db;
	a->every = cfg && cfg->checkpoint_every ? cfg->checkpoint_every : 1000;
	a->interval_ms = cfg && cfg->checkpoint_interval_ms ? cfg->checkpoint_interval_ms : 60000;
	if (a->interval_ms < 0)
		a->interval_ms = 0;
	pthread_mutex_init(&a->key_mu, NULL);
	pthread_mutex_init(&a->timer_mu, NULL);
	pthread_mutex_init(&a->witness_mu, NULL);
	pthread_cond_init(&a->timer_cv, NULL);
	r = -ENOMEM;
	if (cfg)
		a->nats_gate = cfg->nats_gate;
	if ((cfg && cfg->checkpoint_file && !(a->witness_file = strdup(cfg->checkpoint_file))) ||
	    (cfg && cfg->nats_url && *cfg->nats_url && !(a->nats_url = strdup(cfg->nats_url))) ||
	    (cfg && cfg->nats_stream && !(a->nats_stream = strdup(cfg->nats_stream))))
		goto fail;

	r = audit_key_load(a, kek);
	if (r < 0)
		goto fail;
	if (kek) {
		r = db_set_precommit(db, DB_ITEM_AUDIT, audit_precommit, a);
		if (r < 0)
			goto fail;
		a->hooked = true;
		if (a->interval_ms > 0) {
			r = -pthread_create(&a->timer, NULL, timer_main, a);
			if (r < 0)
				goto fail;
			a->timer_running = true;
		}
	}
	*ret_audit = a;
	return 0;
fail:
	audit_close(a);
	return r;
}

struct audit *audit_close(struct audit *a)
{
	if (!a)
		return NULL;
	if (a->timer_running) {
		pthread_mutex_lock(&a->timer_mu);
		a->stop = true;
		pthread_cond_broadcast(&a->timer_cv);
		pthread_mutex_unlock(&a->timer_mu);
		pthread_join(a->timer, NULL);
		/* the server stops: sign and witness its last head (best effort) */
		audit_checkpoint_now(a);
		audit_witness_now(a);
	}
	if (a->hooked) {
		db_set_precommit(a->db, DB_ITEM_AUDIT, audit_precommit_closed, NULL);
		db_set_postcommit(a->db, DB_ITEM_AUDIT, NULL, NULL);
	}
	audit_key_free(a);
	audit_witness_free(a);
	free(a->rpc_handlers);
	pthread_cond_destroy(&a->timer_cv);
	pthread_mutex_destroy(&a->witness_mu);
	pthread_mutex_destroy(&a->timer_mu);
	pthread_mutex_destroy(&a->key_mu);
	free(a);
	return NULL;
}
