/*
 * The SQL of the CA service (tables of migration 0002_ca, sealed_keys of 0001). Every
 * statement filters on tenant_id. Times the service returns are written by it as Unix
 * microseconds (so that a reply can be packed before the commit) and read back the same
 * way; arrays of names cross as text: they are validated names, which never contain a
 * comma, so "a,b" in (string_to_array, ca_store_ident.c) and array_to_string(x, ',') out are
 * exact.
 * Lists page by keyset on the primary key (id or serial): the page token is the last key.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ca-internal.h"
#include "change.h"
#include "kek.h"

#define US(col) "(extract(epoch from " col ") * 1000000)::bigint"
#define SECS(col) "extract(epoch from " col ")::bigint"
#define TS(p) "(timestamptz 'epoch' + " p "::bigint * interval '1 microsecond')"

#define OWNER_COLS "id, kind, name, email, " US("created_at")
#define IDENT_COLS                                                                              \
	"id, kind, name, owner_id, state, array_to_string(dns_names, ','), "                    \
	"array_to_string(ip_addresses, ','), key_type, ttl_seconds, " US("created_at") ", " US( \
		"updated_at") ", revocation_reason, coalesce(current_serial, '')"
#define CERT_COLS                                                                       \
	"serial, identity_id, der, " SECS("not_before") ", " SECS("not_after") ", " US( \
		"revoked_at") ", coalesce(revocation_reason, 0), coalesce(superseded_by, '')"

static const char *col(const struct db_rows *r, size_t row, size_t c)
{
	const char *v = db_rows_get(r, row, c);

	return v ? v : "";
}

static int64_t col_i64(const struct db_rows *r, size_t row, size_t c)
{
	return strtoll(col(r, row, c), NULL, 10);
}

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

static void copy_id(char *dst, const char *src, size_t len)
{
	snprintf(dst, len, "%s", src ? src : "");
}

/* Splits "a,b" into a malloc'd array of malloc'd strings ("" gives none). */
static int split_list(const char *s, char ***ret, size_t *ret_n)
{
	size_t n = 0, cap = 1;
	char **v;

	for (const char *p = s; *p; p++)
		cap += *p == ',';
	v = calloc(cap, sizeof(*v));
	if (!v)
		return -ENOMEM;
	while (*s) {
		size_t len = strcspn(s, ",");

		v[n] = strndup(s, len);
		if (!v[n]) {
			while (n)
				free(v[--n]);
			free(v);
			return -ENOMEM;
		}
		n++;
		s += len + (s[len] == ',');
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* Owners ------------------------------------------------------------------------------- */

static int owner_from_row(const struct db_rows *r, size_t row, struct ca_owner *o)
{
	memset(o, 0, sizeof(*o));
	copy_id(o->id, col(r, row, 0), sizeof(o->id));
	if (ca_owner_kind_parse(col(r, row, 1), &o->kind, NULL, 0) < 0)
		return -EPROTO;
	o->name = xstrdup(col(r, row, 2));
	o->email = xstrdup(col(r, row, 3));
	o->create_time = col_i64(r, row, 4);
	if (!o->name || !o->email) {
		ca_owner_clear(o);
		return -ENOMEM;
	}
	return 0;
}

int ca_store_owner_insert(struct db_tx *tx, const char *tenant, const struct ca_owner *o)
{
	char t[24];
	struct db_param p[6];

	snprintf(t, sizeof(t), "%" PRId64, o->create_time);
	p[0] = DB_TEXT(tenant);
	p[1] = DB_TEXT(o->id);
	p[2] = DB_TEXT(ca_owner_kind_name(o->kind));
	p[3] = DB_TEXT(o->name);
	p[4] = DB_TEXT(o->email);
	p[5] = DB_TEXT(t);
	return db_tx_exec(tx,
			  "INSERT INTO owners (tenant_id, id, kind, name, email, created_at) "
			  "VALUES ($1, $2, $3, $4, $5, " TS("$6") ")",
			  p, 6, NULL);
}

int ca_store_owner_get(struct db_conn *c, const char *tenant, const char *id, struct ca_owner *ret)
{
	struct db_param p[2] = { DB_TEXT(tenant), DB_TEXT(id) };
	struct db_rows *rows = NULL;
	int r;

	r = db_exec(c, "SELECT " OWNER_COLS " FROM owners WHERE tenant_id = $1 AND id = $2", p, 2,
		    &rows);
	if (r >= 0)
		r = rows->n_rows ? owner_from_row(rows, 0, ret) : -ENOENT;
	db_rows_free(rows);
	return r;
}

/*
 * Decodes every row into a new array of elem-sized elements with from_row, and frees
 * rows. On failure clears what was decoded and returns the error; *ret_arr is set only on
 * success (one element is always allocated, so an empty list is not NULL).
 */
static int rows_to_array(struct db_rows *rows, size_t elem,
			 int (*from_row)(const struct db_rows *r, size_t row, void *out),
			 void (*clear)(void *out), void **ret_arr, size_t *ret_n)
{
	char *v = calloc(rows->n_rows ? rows->n_rows : 1, elem);
	int r = 0;

	if (!v) {
		db_rows_free(rows);
		return -ENOMEM;
	}
	for (size_t i = 0; i < rows->n_rows && r >= 0; i++)
		r = from_row(rows, i, v + i * elem);
	if (r < 0) {
		for (size_t i = 0; i < rows->n_rows; i++)
			clear(v + i * elem);
		free(v);
	} else {
		*ret_arr = v;
		*ret_n = rows->n_rows;
	}
	db_rows_free(rows);
	return r;
}

/* Typed adapters for rows_to_array. */
static int owner_from_row_any(const struct db_rows *r, size_t row, void *out)
{
	return owner_from_row(r, row, out);
}

static void ca_owner_clear_any(void *out)
{
	ca_owner_clear(out);
}

int ca_store_owner_list(struct db_conn *c, const char *tenant, const char *kind, int limit,
			const char *after, struct ca_owner **ret, size_t *ret_n)
{
	char lim[16];
	struct db_param p[4];
	struct db_rows *rows = NULL;
	void *arr;
	int r;

	snprintf(lim, sizeof(lim), "%d", limit);
	p[0] = DB_TEXT(tenant);
	p[1] = kind && *kind ? DB_TEXT(kind) : DB_NULL;
	p[2] = after && *after ? DB_TEXT(after) : DB_NULL;
	p[3] = DB_TEXT(lim);
	r = db_exec(c,
		    "SELECT " OWNER_COLS " FROM owners WHERE tenant_id = $1 "
		    "AND ($2::text IS NULL OR kind = $2) AND ($3::uuid IS NULL OR id > $3) "
		    "ORDER BY id LIMIT $4",
		    p, 4, &rows);
	if (r < 0)
		return r;
	r = rows_to_array(rows, sizeof(**ret), owner_from_row_any, ca_owner_clear_any, &arr, ret_n);
	if (r >= 0)
		*ret = arr;
	return r;
}

/* Identities --------------------------------------------------------------------------- */

static int identity_from_row(const struct db_rows *r, size_t row, struct ca_identity *i)
{
	int ret = 0;

	memset(i, 0, sizeof(*i));
	copy_id(i->id, col(r, row, 0), sizeof(i->id));
	if (ca_identity_kind_parse(col(r, row, 1), &i->kind, NULL, 0) < 0 ||
	    ca_state_parse(col(r, row, 4), &i->state, NULL, 0) < 0 ||
	    crypto_key_type_from_name(col(r, row, 7), &i->key_type) < 0)
		return -EPROTO;
	i->name = xstrdup(col(r, row, 2));
	copy_id(i->owner_id, col(r, row, 3), sizeof(i->owner_id));
	if (!i->name || split_list(col(r, row, 5), &i->dns_names, &i->n_dns_names) < 0 ||
	    split_list(col(r, row, 6), &i->ip_addresses, &i->n_ip_addresses) < 0)
		ret = -ENOMEM;
	i->ttl_seconds = col_i64(r, row, 8);
	i->create_time = col_i64(r, row, 9);
	i->update_time = col_i64(r, row, 10);
	copy_id(i->revocation_reason, col(r, row, 11), sizeof(i->revocation_reason));
	copy_id(i->current_serial, col(r, row, 12), sizeof(i->current_serial));
	if (ret < 0)
		ca_identity_clear(i);
	return ret;
}

int ca_store_identity_get(struct db_conn *c, const char *tenant, const char *id,
			  struct ca_identity *ret)
{
	struct db_param p[2] = { DB_TEXT(tenant), DB_TEXT(id) };
	struct db_rows *rows = NULL;
	int r;

	r = db_exec(c, "SELECT " IDENT_COLS " FROM identities WHERE tenant_id = $1 AND id = $2", p,
		    2, &rows);
	if (r >= 0)
		r = rows->n_rows ? identity_from_row(rows, 0, ret) : -ENOENT;
	db_rows_free(rows);
	return r;
}

/* Typed adapters for rows_to_array. */
static int identity_from_row_any(const struct db_rows *r, size_t row, void *out)
{
	return identity_from_row(r, row, out);
}

static void ca_identity_clear_any(void *out)
{
	ca_identity_clear(out);
}

int ca_store_identity_list(struct db_conn *c, const char *tenant, const char *owner_id,
			   const char *state, int limit, const char *after,
			   struct ca_identity **ret, size_t *ret_n)
{
	char lim[16];
	struct db_param p[5];
	struct db_rows *rows = NULL;
	void *arr;
	int r;

	snprintf(lim, sizeof(lim), "%d", limit);
	p[0] = DB_TEXT(tenant);
	p[1] = owner_id && *owner_id ? DB_TEXT(owner_id) : DB_NULL;
	p[2] = state && *state ? DB_TEXT(state) : DB_NULL;
	p[3] = after && *after ? DB_TEXT(after) : DB_NULL;
	p[4] = DB_TEXT(lim);
	r = db_exec(c,
		    "SELECT " IDENT_COLS " FROM identities WHERE tenant_id = $1 "
		    "AND ($2::uuid IS NULL OR owner_id = $2) AND ($3::text IS NULL OR state = $3) "
		    "AND ($4::uuid IS NULL OR id > $4) ORDER BY id LIMIT $5",
		    p, 5, &rows);
	if (r < 0)
		return r;
	r = rows_to_array(rows, sizeof(**ret), identity_from_row_any, ca_identity_clear_any, &arr,
			  ret_n);
	if (r >= 0)
		*ret = arr;
	return r;
}

int ca_store_identity_lock(struct db_tx *tx, const char *tenant, const char *id,
			   enum ca_state *ret_state, char *ret_serial)
{
	struct db_param p[2] = { DB_TEXT(tenant), DB_TEXT(id) };
	struct db_rows *rows = NULL;
	int r;

	r = db_tx_exec(tx,
		       "SELECT state, coalesce(current_serial, '') FROM identities "
		       "WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
		       p, 2, &rows);
	if (r >= 0 && rows->n_rows == 0)
		r = -ENOENT;
	if (r >= 0 && ca_state_parse(col(rows, 0, 0), ret_state, NULL, 0) < 0)
		r = -EPROTO;
	if (r >= 0)
		copy_id(ret_serial, col(rows, 0, 1), CRYPTO_SERIAL_HEX_LEN + 1);
	db_rows_free(rows);
	return r;
}

int ca_store_identity_set_state(struct db_tx *tx, const char *tenant, const char *id,
				enum ca_state to, int64_t now_us, const char *reason_name)
{
	char t[24];
	struct db_param p[5];

	snprintf(t, sizeof(t), "%" PRId64, now_us);
	p[0] = DB_TEXT(tenant);
	p[1] = DB_TEXT(id);
	p[2] = DB_TEXT(ca_state_name(to));
	p[3] = DB_TEXT(t);
	p[4] = reason_name ? DB_TEXT(reason_name) : DB_NULL;
	return db_tx_exec(tx,
			  "UPDATE identities SET state = $3, updated_at = " TS(
				  "$4") ", "
					"revocation_reason = coalesce($5, revocation_reason) "
					"WHERE tenant_id = $1 AND id = $2",
			  p, 5, NULL);
}

/* Issuances, batched ------------------------------------------------------------------- */

static size_t put_bytes(struct ca_issue_item *it, size_t *at, const void *p, size_t n)
{
	size_t off = *at;

	if (n)
		memcpy(it->buf + off, p, n);
	*at += n;
	return off;
}

int ca_issue_item_new(const struct ca_issue_spec *spec, struct ca_issue_item **ret)
{
	const struct crypto_issued *c = spec->cert;
	size_t need = c->der_len + spec->reply_len, at = 0;
	struct ca_issue_item *it = calloc(1, sizeof(*it) + need);

	if (!it)
		return -ENOMEM;
	if (change_item_key_set(&it->key, spec->key) < 0) {
		free(it);
		return -EINVAL;
	}
	it->kind = spec->kind;
	it->size = sizeof(*it) + need;
	copy_id(it->tenant, spec->tenant, sizeof(it->tenant));
	copy_id(it->id, spec->id, sizeof(it->id));
	it->from = spec->from;
	it->to = spec->to;
	copy_id(it->old_serial, spec->old_serial, sizeof(it->old_serial));
	copy_id(it->serial, c->serial, sizeof(it->serial));
	copy_id(it->fingerprint, c->fingerprint, sizeof(it->fingerprint));
	copy_id(it->key_algorithm, c->key_algorithm, sizeof(it->key_algorithm));
	it->now_us = spec->now_us;
	it->not_before = c->not_before;
	it->not_after = c->not_after;
	it->der_len = c->der_len;
	it->der_off = put_bytes(it, &at, c->der, c->der_len);
	it->reply_len = spec->reply_len;
	it->reply_off = put_bytes(it, &at, spec->reply, spec->reply_len);
	*ret = it;
	return 0;
}

int ca_issue_item_attach(struct db_tx *tx, const struct ca_issue_item *item)
{
	return change_attach_copy(tx, item->kind, item, item->size);
}

/*
 * One statement for the batch: lock its identities in key order (as every server does, so
 * batches cannot deadlock on them), check each issuance's edge (state and current serial),
 * store the replies of request_ids (ON CONFLICT: a twin committed first), and for the
 * issuances that passed both, move the identity on, record the certificate and mark the
 * one it supersedes. One verdict per issuance, in batch order, and the counts written.
 */
static const char issue_sql[] =
	"WITH req AS (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], "
	CHANGE_BATCH_TYPES(5, 6, 7, 8, 9, 10) ", $11::text[], $12::bigint[], $13::text[], "
	"$14::text[], $15::text[], $16::bigint[], $17::bigint[], $18::int[], $19::int[]) "
	"WITH ORDINALITY AS r(tenant_id, id, from_state, old_serial, " CHANGE_BATCH_NAMES ", "
	"to_state, now_us, serial, fingerprint, key_algorithm, nb, na, der_off, der_len, ord)), "
	"cur AS (SELECT i.tenant_id, i.id, i.state, coalesce(i.current_serial, '') AS serial "
	"FROM identities i WHERE (i.tenant_id, i.id) IN (SELECT tenant_id, id FROM req) "
	"ORDER BY i.tenant_id, i.id FOR UPDATE), "
	"ok AS (SELECT r.* FROM req r JOIN cur c ON c.tenant_id = r.tenant_id AND c.id = r.id "
	"WHERE c.state = r.from_state AND c.serial = r.old_serial), "
	CHANGE_BATCH_STORE_SQL("ok", "$20") ", "
	"go AS (SELECT o.* FROM ok o WHERE " CHANGE_BATCH_STORED("o") "), "
	"upd AS (UPDATE identities i SET state = g.to_state, updated_at = " TS("g.now_us") ", "
	"current_serial = g.serial FROM go g WHERE i.tenant_id = g.tenant_id AND i.id = g.id "
	"RETURNING i.tenant_id, i.id), "
	"ins AS (INSERT INTO certificates (tenant_id, serial, identity_id, der, fingerprint, "
	"key_algorithm, not_before, not_after, created_at) SELECT g.tenant_id, g.serial, g.id, "
	"substring($20::bytea FROM g.der_off + 1 FOR g.der_len), g.fingerprint, "
	"g.key_algorithm, to_timestamp(g.nb), to_timestamp(g.na), " TS("g.now_us") " FROM go g "
	"JOIN upd u ON u.tenant_id = g.tenant_id AND u.id = g.id RETURNING 1), "
	"sup AS (UPDATE certificates c SET superseded_by = g.serial FROM go g WHERE "
	"c.tenant_id = g.tenant_id AND c.serial = g.old_serial AND g.old_serial <> '' "
	"RETURNING 1) "
	"SELECT CASE WHEN c.id IS NULL THEN 'gone' "
	"WHEN c.state <> r.from_state OR c.serial <> r.old_serial THEN 'stale' "
	"WHEN NOT EXISTS (SELECT 1 FROM go g WHERE g.ord = r.ord) THEN 'twin' ELSE 'ok' END, "
	"(SELECT count(*) FROM upd), (SELECT count(*) FROM ins), (SELECT count(*) FROM sup) "
	"FROM req r LEFT JOIN cur c ON c.tenant_id = r.tenant_id AND c.id = r.id ORDER BY r.ord";

/* Refuses the second issuance of one identity, or of one request_id, in a batch. */
static void refuse_twins(const struct ca_issue_item *const *it, size_t n, int *results)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i && results[i] >= 0; j++) {
			struct change_key ki = change_item_key_get(&it[i]->key, it[i]->tenant);
			struct change_key kj = change_item_key_get(&it[j]->key, it[j]->tenant);

			if (results[j] < 0 || strcmp(it[i]->tenant, it[j]->tenant))
				continue;
			if (!strcmp(it[i]->id, it[j]->id))
				results[i] = -EBUSY;
			else if (change_key_same(&ki, &kj))
				results[i] = -EEXIST;
		}
}

enum { IS_TENANT, IS_ID, IS_FROM, IS_OLD, IS_KEY, IS_TO = IS_KEY + CHANGE_BATCH_N, IS_NOW,
       IS_SERIAL, IS_FP, IS_ALG, IS_NB, IS_NA, IS_DER_OFF, IS_DER_LEN, IS_N };

/* Writes the issuances not refused yet; sets the verdicts of the others. */
static int issue_batch(struct db_conn *c, const struct ca_issue_item *const *it, size_t n,
		       int *results)
{
	struct db_array a[IS_N] = { 0 };
	struct db_blob bytes = { 0 };
	struct db_rows *rows = NULL;
	struct change_key key;
	size_t n_ok = 0;
	int r;

	for (size_t i = 0; i < n; i++) {
		if (results[i] < 0)
			continue;
		db_array_add_text(&a[IS_TENANT], it[i]->tenant);
		db_array_add_text(&a[IS_ID], it[i]->id);
		db_array_add_text(&a[IS_FROM], ca_state_name(it[i]->from));
		db_array_add_text(&a[IS_OLD], it[i]->old_serial);
		key = change_item_key_get(&it[i]->key, it[i]->tenant);
		change_batch_add(&a[IS_KEY], &bytes, &key, it[i]->buf + it[i]->reply_off,
				 it[i]->reply_len);
		db_array_add_text(&a[IS_TO], ca_state_name(it[i]->to));
		db_array_add_int(&a[IS_NOW], it[i]->now_us);
		db_array_add_text(&a[IS_SERIAL], it[i]->serial);
		db_array_add_text(&a[IS_FP], it[i]->fingerprint);
		db_array_add_text(&a[IS_ALG], it[i]->key_algorithm);
		db_array_add_int(&a[IS_NB], it[i]->not_before);
		db_array_add_int(&a[IS_NA], it[i]->not_after);
		db_blob_add(&bytes, &a[IS_DER_OFF], &a[IS_DER_LEN], it[i]->buf + it[i]->der_off,
			    it[i]->der_len);
	}
	r = db_exec_columns(c, issue_sql, a, IS_N, &bytes, &rows);
	if (r >= 0)
		r = db_hook_verdicts(rows, results, n, &n_ok);
	/* every issuance that passed was written, once: anything else is a bug */
	if (r >= 0 && n_ok &&
	    (col_i64(rows, 0, 1) != (int64_t)n_ok || col_i64(rows, 0, 2) != (int64_t)n_ok))
		r = -EPROTO;
	db_rows_free(rows);
	return r;
}

int ca_store_issue_hook(struct db_conn *c, void *const *items, size_t n, int *results, void *ud)
{
	const struct ca_issue_item *const *it = (const struct ca_issue_item *const *)items;

	(void)ud;
	refuse_twins(it, n, results);
	for (size_t i = 0; i < n; i++)
		if (results[i] >= 0)
			return issue_batch(c, it, n, results);
	return 0;
}

int ca_store_certs_revoke(struct db_tx *tx, const char *tenant, const char *identity_id,
			  int64_t now_us, int reason)
{
	char t[24], rs[8];
	struct db_param p[4];

	snprintf(t, sizeof(t), "%" PRId64, now_us);
	snprintf(rs, sizeof(rs), "%d", reason);
	p[0] = DB_TEXT(tenant);
	p[1] = DB_TEXT(identity_id);
	p[2] = DB_TEXT(t);
	p[3] = DB_TEXT(rs);
	return db_tx_exec(
		tx,
		"UPDATE certificates SET revoked_at = " TS(
			"$3") ", revocation_reason = $4 "
			      "WHERE tenant_id = $1 AND identity_id = $2 AND revoked_at IS NULL",
		p, 4, NULL);
}

/* Certificates ------------------------------------------------------------------------- */

static int cert_from_row(const struct db_rows *r, size_t row, struct ca_cert *c)
{
	memset(c, 0, sizeof(*c));
	copy_id(c->serial, col(r, row, 0), sizeof(c->serial));
	copy_id(c->identity_id, col(r, row, 1), sizeof(c->identity_id));
	c->pem = crypto_pem_encode("CERTIFICATE", (const uint8_t *)db_rows_get(r, row, 2),
				 r->lengths[row * r->n_cols + 2]);
	if (!c->pem)
		return -ENOMEM;
	c->not_before = col_i64(r, row, 3);
	c->not_after = col_i64(r, row, 4);
	c->revoked = db_rows_get(r, row, 5) != NULL;
	c->revoke_time = c->revoked ? col_i64(r, row, 5) : 0;
	c->reason = (int)col_i64(r, row, 6);
	copy_id(c->superseded_by, col(r, row, 7), sizeof(c->superseded_by));
	return 0;
}

int ca_store_cert_get(struct db_conn *c, const char *tenant, const char *serial,
		      struct ca_cert *ret)
{
	struct db_param p[2] = { DB_TEXT(tenant), DB_TEXT(serial) };
	struct db_rows *rows = NULL;
	int r;

	r = db_exec(c,
		    "SELECT " CERT_COLS " FROM certificates WHERE tenant_id = $1 AND serial = $2",
		    p, 2, &rows);
	if (r >= 0)
		r = rows->n_rows ? cert_from_row(rows, 0, ret) : -ENOENT;
	db_rows_free(rows);
	return r;
}

/* Typed adapters for rows_to_array. */
static int cert_from_row_any(const struct db_rows *r, size_t row, void *out)
{
	return cert_from_row(r, row, out);
}

static void ca_cert_clear_any(void *out)
{
	ca_cert_clear(out);
}

int ca_store_cert_list(struct db_conn *c, const char *tenant, const char *identity_id, int limit,
		       const char *after, struct ca_cert **ret, size_t *ret_n)
{
	char lim[16];
	struct db_param p[4];
	struct db_rows *rows = NULL;
	void *arr;
	int r;

	snprintf(lim, sizeof(lim), "%d", limit);
	p[0] = DB_TEXT(tenant);
	p[1] = identity_id && *identity_id ? DB_TEXT(identity_id) : DB_NULL;
	p[2] = after && *after ? DB_TEXT(after) : DB_NULL;
	p[3] = DB_TEXT(lim);
	r = db_exec(
		c,
		"SELECT " CERT_COLS " FROM certificates WHERE tenant_id = $1 "
		"AND ($2::uuid IS NULL OR identity_id = $2) AND ($3::text IS NULL OR serial > $3) "
		"ORDER BY serial LIMIT $4",
		p, 4, &rows);
	if (r < 0)
		return r;
	r = rows_to_array(rows, sizeof(**ret), cert_from_row_any, ca_cert_clear_any, &arr, ret_n);
	if (r >= 0)
		*ret = arr;
	return r;
}

/* The issuing CA's key ------------------------------------------------------------------ */

static void key_aad(char *buf, size_t len, const char *tenant, const char *kind, const char *name,
		    int version)
{
	snprintf(buf, len, "sealed_keys tenant_id=%s kind=%s name=%s version=%d", tenant, kind,
		 name, version);
}

int ca_store_key_get(struct db_conn *c, const char *tenant, const char *kind, const char *name,
		     int *ret_version, char **ret_chain_pem, uint8_t **ret_sealed,
		     size_t *ret_sealed_len)
{
	struct db_param p[3] = { DB_TEXT(tenant), DB_TEXT(kind), DB_TEXT(name) };
	struct db_rows *rows = NULL;
	size_t n;
	int r;

	r = db_exec(c,
		    "SELECT version, public_key, sealed FROM sealed_keys WHERE tenant_id = $1 AND "
		    "kind = $2 AND name = $3 ORDER BY version DESC LIMIT 1",
		    p, 3, &rows);
	if (r >= 0 && rows->n_rows == 0)
		r = -ENOENT;
	if (r >= 0) {
		n = rows->lengths[2];
		*ret_version = (int)col_i64(rows, 0, 0);
		*ret_chain_pem = strndup(col(rows, 0, 1), rows->lengths[1]);
		*ret_sealed = malloc(n ? n : 1);
		if (!*ret_chain_pem || !*ret_sealed) {
			free(*ret_chain_pem);
			free(*ret_sealed);
			r = -ENOMEM;
		} else {
			memcpy(*ret_sealed, db_rows_get(rows, 0, 2), n);
			*ret_sealed_len = n;
		}
	}
	db_rows_free(rows);
	return r;
}

int ca_store_key_seal(const struct kek *kek, const char *tenant, const char *kind, const char *name,
		      int version, const char *key_pem, uint8_t **ret_sealed, size_t *ret_len)
{
	char aad[256];

	key_aad(aad, sizeof(aad), tenant, kind, name, version);
	return kek_seal(kek, (const uint8_t *)key_pem, strlen(key_pem), aad, ret_sealed, ret_len);
}

int ca_store_key_put(struct db_conn *c, const struct kek *kek, const char *tenant, const char *kind,
		     const char *name, int version, const char *chain_pem, const char *key_pem)
{
	char ver[16];
	uint8_t *sealed = NULL;
	size_t sealed_len = 0;
	int r;

	r = ca_store_key_seal(kek, tenant, kind, name, version, key_pem, &sealed, &sealed_len);
	if (r < 0)
		return r;
	snprintf(ver, sizeof(ver), "%d", version);
	{
		struct db_param p[6] = { DB_TEXT(tenant),
					 DB_TEXT(kind),
					 DB_TEXT(name),
					 DB_TEXT(ver),
					 DB_BYTES(chain_pem, strlen(chain_pem)),
					 DB_BYTES(sealed, sealed_len) };

		r = db_exec(c,
			    "INSERT INTO sealed_keys (tenant_id, kind, name, version, public_key, "
			    "sealed) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
			    p, 6, NULL);
	}
	free(sealed);
	return r;
}

int ca_store_key_open(const struct kek *kek, const char *tenant, const char *kind, const char *name,
		      int version, const uint8_t *sealed, size_t len, uint8_t **ret, size_t *ret_n)
{
	char aad[256];

	key_aad(aad, sizeof(aad), tenant, kind, name, version);
	return kek_open(kek, sealed, len, aad, ret, ret_n);
}

int ca_store_tls_insert(struct db_tx *tx, const char *tenant, const char *name, int version,
			const char *chain_pem, const uint8_t *sealed, size_t sealed_len)
{
	char ver[16];
	struct db_rows *rows = NULL;
	int r;

	snprintf(ver, sizeof(ver), "%d", version);
	{
		const struct db_param p[5] = { DB_TEXT(tenant), DB_TEXT(name), DB_TEXT(ver),
					       DB_BYTES(chain_pem, strlen(chain_pem)),
					       DB_BYTES(sealed, sealed_len) };

		r = db_tx_exec(
			tx,
			"INSERT INTO sealed_keys (tenant_id, kind, name, version, public_key, "
			"sealed) VALUES ($1, '" CA_TLS_KIND "', $2, $3, $4, $5) "
			"ON CONFLICT DO NOTHING RETURNING version",
			p, 5, &rows);
	}
	if (r >= 0)
		r = rows->n_rows == 1;
	db_rows_free(rows);
	return r;
}

int ca_store_tls_prune(struct db_tx *tx, const char *tenant, const char *name, int version,
		       int64_t max_age_seconds)
{
	char ver[16], age[32];
	const struct db_param p[4] = { DB_TEXT(tenant), DB_TEXT(name), DB_TEXT(ver), DB_TEXT(age) };

	snprintf(ver, sizeof(ver), "%d", version);
	snprintf(age, sizeof(age), "%lld", (long long)max_age_seconds);
	return db_tx_exec(tx,
			  "DELETE FROM sealed_keys WHERE tenant_id = $1 AND kind = '" CA_TLS_KIND
			  "' AND ((name = $2 AND version < $3::int) OR (name <> $2 AND "
			  "created_at < now() - make_interval(secs => $4::bigint)))",
			  p, 4, NULL);
}
