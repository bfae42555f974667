/*
 * The read side of the secret store: GetSecret (one query on a pooled connection, then the
 * value is opened with the row's additional data), ListSecrets (keyset paging on the
 * bytewise-ordered primary key, prefix as a range) and ListSecretVersions, plus the helpers
 * that turn result rows into metadata. Reads never go through the group-commit writer.
 *
 * A sealed value that does not open is never returned: the caller gets -EBADMSG (DATA_LOSS)
 * and the log gets one line naming the secret, version and reason, never bytes of it.
 *
 * GetSecret looks in the read cache of sealed rows first (secrets_cache.c, which states
 * its consistency) and fills it from PostgreSQL on a miss; the value is opened per call
 * either way, into kek.c's locked pages.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "kek.h"
#include "log.h"
#include "secrets-internal.h"

#define READ_ACQUIRE_MS 5000

int secrets_fail(char *buf, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return err;
}

const char *secrets_tenant(const struct secrets_ctx *ctx)
{
	return ctx && ctx->tenant_id && *ctx->tenant_id ? ctx->tenant_id : DB_DEFAULT_TENANT;
}

void secrets_aad(const char *tenant, const char *name, int64_t version, char *buf, size_t len)
{
	/* ':' is not a name character, so the fields cannot run into each other */
	snprintf(buf, len, "%s:secret:%s:%" PRId64, tenant, name, version);
}

static int cmp_label(const void *a, const void *b)
{
	return strcmp(((const struct secrets_label *)a)->key,
		      ((const struct secrets_label *)b)->key);
}

int secrets_labels_parse(const char *json, struct secrets_meta *m)
{
	json_t *o = json_loads(json ? json : "{}", 0, NULL), *v;
	const char *k;
	size_t i = 0;

	if (!json_is_object(o)) {
		json_decref(o);
		return -EPROTO;
	}
	m->labels = calloc(json_object_size(o) + 1, sizeof(*m->labels));
	if (!m->labels) {
		json_decref(o);
		return -ENOMEM;
	}
	json_object_foreach(o, k, v) {
		m->labels[i].key = strdup(k);
		m->labels[i].value = strdup(json_is_string(v) ? json_string_value(v) : "");
		m->n_labels = ++i;
		if (!m->labels[i - 1].key || !m->labels[i - 1].value) {
			json_decref(o);
			return -ENOMEM;
		}
	}
	json_decref(o);
	qsort(m->labels, m->n_labels, sizeof(*m->labels), cmp_label);
	return 0;
}

static int64_t col_i64(const struct db_rows *rows, size_t row, size_t col)
{
	const char *v = db_rows_get(rows, row, col);

	return v ? strtoll(v, NULL, 10) : 0;
}

static bool col_bool(const struct db_rows *rows, size_t row, size_t col)
{
	const char *v = db_rows_get(rows, row, col);

	return v && v[0] == 't';
}

int secrets_meta_from_row(const struct db_rows *rows, size_t row, size_t col,
			  struct secrets_meta *m)
{
	const char *name = db_rows_get(rows, row, col);
	int r;

	memset(m, 0, sizeof(*m));
	if (!name || strlen(name) > SECRETS_NAME_MAX)
		return -EPROTO;
	strcpy(m->name, name);
	m->version = col_i64(rows, row, col + 1);
	m->create_us = col_i64(rows, row, col + 2);
	m->update_us = col_i64(rows, row, col + 3);
	m->deleted = col_bool(rows, row, col + 4);
	m->delete_us = col_i64(rows, row, col + 5);
	r = secrets_labels_parse(db_rows_get(rows, row, col + 6), m);
	if (r < 0)
		secrets_meta_clear(m);
	return r;
}

void secrets_meta_clear(struct secrets_meta *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_labels; i++) {
		free(m->labels[i].key);
		free(m->labels[i].value);
	}
	free(m->labels);
	memset(m, 0, sizeof(*m));
}

struct secrets_meta *secrets_metas_free(struct secrets_meta *m, size_t n)
{
	for (size_t i = 0; m && i < n; i++)
		secrets_meta_clear(&m[i]);
	free(m);
	return NULL;
}

void secrets_value_clear(struct secrets_value *v)
{
	if (!v)
		return;
	if (v->value)
		kek_free_plain(v->value, v->n);
	memset(v, 0, sizeof(*v));
}

/* Runs one read statement on a pooled connection. */
static int read_query(struct secrets *s, const char *sql, const struct db_param *p, size_t n,
		      struct db_rows **ret)
{
	struct db_conn *c = NULL;
	int r = db_acquire(s->db, READ_ACQUIRE_MS, &c);

	if (r < 0)
		return r;
	r = db_exec(c, sql, p, n, ret);
	db_release(s->db, c);
	return r;
}

int secrets_count(struct secrets *s, const char *tenant_id, int64_t *ret_n)
{
	const struct db_param p[] = { DB_TEXT(tenant_id && *tenant_id ? tenant_id :
							       DB_DEFAULT_TENANT) };
	struct db_rows *rows = NULL;
	int r;

	if (!s || !ret_n)
		return -EINVAL;
	r = read_query(s, "SELECT count(*) FROM secrets WHERE tenant_id = $1 AND deleted_at IS NULL",
		       p, 1, &rows);
	if (r < 0)
		return r;
	if (rows->n_rows != 1 || !db_rows_get(rows, 0, 0)) {
		db_rows_free(rows);
		return -EPROTO;
	}
	*ret_n = strtoll(db_rows_get(rows, 0, 0), NULL, 10);
	db_rows_free(rows);
	return 0;
}

/* The reason a sealed value did not open, for the log and the caller. */
static const char *open_reason(int r)
{
	switch (r) {
	case -EBADMSG:
		return "authentication failed: the sealed bytes do not belong to this row "
		       "(tampered, or copied from another secret or version)";
	case -ENOKEY:
		return "sealed under another KEK";
	case -EPROTO:
		return "malformed sealed bytes";
	default:
		return "cannot be opened";
	}
}

/* Checks GetSecret's arguments. */
static int get_args(struct secrets_ctx *ctx, const char *name, int64_t version)
{
	int r = secrets_check_name(name, ctx->err, sizeof(ctx->err));

	if (r < 0)
		return r;
	if (version < 0)
		return secrets_fail(ctx->err, sizeof(ctx->err), -EINVAL,
				    "version must be >= 0 (0 = the current version)");
	return 0;
}

/* Opens version v of name from its sealed bytes into ret_value; -EBADMSG (logged) when
 * they do not open. */
static int open_value(struct secrets *s, struct secrets_ctx *ctx, const char *name, int64_t v,
		      const uint8_t *sealed, size_t len, struct secrets_value *ret_value)
{
	const char *tenant = secrets_tenant(ctx);
	char aad[128 + SECRETS_NAME_MAX];
	uint8_t *pt = NULL;
	size_t n = 0;
	int r;

	secrets_aad(tenant, name, v, aad, sizeof(aad));
	r = kek_open(s->kek, sealed, len, aad, &pt, &n);
	if (r < 0) {
		const char *why = open_reason(r);

		log_error("secret value refused", "secret", "%s", name, "version", "%lld",
			  (long long)v, "tenant", "%s", tenant, "reason", "%s", why);
		return secrets_fail(ctx->err, sizeof(ctx->err), -EBADMSG,
				    "version %" PRId64 " of secret \"%s\" cannot be opened: %s", v,
				    name, why);
	}
	ret_value->version = v;
	ret_value->value = pt;
	ret_value->n = n;
	return 0;
}

int secrets_get_cached(struct secrets *s, struct secrets_ctx *ctx, const char *name,
		       int64_t version, struct secrets_value *ret_value)
{
	uint8_t sealed[SECRETS_CACHE_SEALED_MAX];
	size_t len = 0;
	int64_t v = 0;
	int r = get_args(ctx, name, version);

	if (r < 0)
		return r;
	if (secrets_cache_get(s->cache, secrets_tenant(ctx), name, version, sealed,
			      sizeof(sealed), &len, &v) != 1)
		return -EWOULDBLOCK;
	/* a cached row that does not open is answered (and logged) as from PostgreSQL */
	r = open_value(s, ctx, name, v, sealed, len, ret_value);
	OPENSSL_cleanse(sealed, len);
	return r;
}

int secrets_get(struct secrets *s, struct secrets_ctx *ctx, const char *name, int64_t version,
		struct secrets_value *ret_value)
{
	const char *tenant = secrets_tenant(ctx);
	struct db_rows *rows = NULL;
	char vbuf[24];
	uint64_t gen;
	int64_t v;
	int r;

	r = secrets_get_cached(s, ctx, name, version, ret_value);
	if (r != -EWOULDBLOCK)
		return r;
	/* taken before the query: a change committed meanwhile keeps this row out */
	gen = secrets_cache_generation(s->cache);
	snprintf(vbuf, sizeof(vbuf), "%" PRId64, version);
	{
		const struct db_param p[] = { DB_TEXT(tenant), DB_TEXT(name), DB_TEXT(vbuf) };

		r = read_query(s,
			       "SELECT s.current_version, s.deleted_at IS NOT NULL, v.version, "
			       "v.sealed, v.destroyed_at IS NOT NULL FROM secrets s "
			       "LEFT JOIN secret_versions v ON v.tenant_id = s.tenant_id AND "
			       "v.name = s.name AND v.version = CASE WHEN $3::bigint = 0 THEN "
			       "s.current_version ELSE $3::bigint END "
			       "WHERE s.tenant_id = $1 AND s.name = $2",
			       p, 3, &rows);
	}
	if (r < 0)
		return r;
	if (rows->n_rows == 0) {
		r = secrets_fail(ctx->err, sizeof(ctx->err), -ENOENT, "secret \"%s\" not found",
				 name);
	} else if (col_bool(rows, 0, 1)) {
		r = secrets_fail(ctx->err, sizeof(ctx->err), -ENOENT,
				 "secret \"%s\" is deleted (RecoverSecret restores it)", name);
	} else if (!db_rows_get(rows, 0, 2)) {
		r = secrets_fail(ctx->err, sizeof(ctx->err), -ENOENT,
				 "secret \"%s\" has no version %" PRId64 " (current is %" PRId64 ")",
				 name, version, col_i64(rows, 0, 0));
	} else if (col_bool(rows, 0, 4)) {
		r = secrets_fail(ctx->err, sizeof(ctx->err), -ENOENT,
				 "version %" PRId64 " of secret \"%s\" was destroyed",
				 col_i64(rows, 0, 2), name);
	}
	if (r < 0) {
		db_rows_free(rows);
		return r;
	}
	v = col_i64(rows, 0, 2);
	r = open_value(s, ctx, name, v, (const uint8_t *)rows->values[3], rows->lengths[3],
		       ret_value);
	/* only a row that opens is cached */
	if (r >= 0)
		secrets_cache_put(s->cache, tenant, name, version, v,
				  (const uint8_t *)rows->values[3], rows->lengths[3], gen);
	db_rows_free(rows);
	return r;
}

/* Prefix: "" or bytes of the name alphabet, at most SECRETS_NAME_MAX. */
static bool valid_prefix(const char *p)
{
	size_t n = strlen(p);

	if (n > SECRETS_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-",
			    p[i]))
			return false;
	return true;
}

int secrets_list(struct secrets *s, struct secrets_ctx *ctx, const char *prefix, int page_size,
		 const char *page_token, bool show_deleted, struct secrets_meta **ret_metas,
		 size_t *ret_n, char **ret_next)
{
	char upper[SECRETS_NAME_MAX + 1], limit[16], err[8];
	struct secrets_meta *metas = NULL;
	struct db_rows *rows = NULL;
	size_t n = 0, plen;
	char *next = NULL;
	int r;

	prefix = prefix ? prefix : "";
	page_token = page_token ? page_token : "";
	if (!valid_prefix(prefix))
		return secrets_fail(ctx->err, sizeof(ctx->err), -EINVAL,
				    "prefix must be at most %d bytes of [A-Za-z0-9._/-]",
				    SECRETS_NAME_MAX);
	if (*page_token && secrets_check_name(page_token, err, sizeof(err)) < 0)
		return secrets_fail(ctx->err, sizeof(ctx->err), -EINVAL, "invalid page_token");
	if (page_size < 0)
		return secrets_fail(ctx->err, sizeof(ctx->err), -EINVAL, "page_size must be >= 0");
	if (page_size == 0)
		page_size = SECRETS_PAGE_DEFAULT;
	if (page_size > SECRETS_PAGE_MAX)
		page_size = SECRETS_PAGE_MAX;
	/* names starting with prefix are exactly those in [prefix, prefix with its last
	 * byte + 1): every name byte is below 0x7f */
	plen = strlen(prefix);
	memcpy(upper, prefix, plen + 1);
	if (plen)
		upper[plen - 1]++;
	snprintf(limit, sizeof(limit), "%d", page_size + 1);
	{
		const struct db_param p[] = { DB_TEXT(secrets_tenant(ctx)), DB_TEXT(prefix),
					      plen ? DB_TEXT(upper) : DB_NULL, DB_TEXT(page_token),
					      DB_TEXT(show_deleted ? "t" : "f"), DB_TEXT(limit) };

		r = read_query(s,
			       "SELECT " SECRETS_META_COLS " FROM secrets WHERE tenant_id = $1 AND "
			       "name >= $2 AND ($3::text IS NULL OR name < $3::text) AND name > $4 "
			       "AND ($5::bool OR deleted_at IS NULL) ORDER BY name LIMIT $6::int",
			       p, 6, &rows);
	}
	if (r < 0)
		return r;
	n = rows->n_rows > (size_t)page_size ? (size_t)page_size : rows->n_rows;
	metas = calloc(n + 1, sizeof(*metas));
	if (!metas) {
		db_rows_free(rows);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n && r >= 0; i++)
		r = secrets_meta_from_row(rows, i, 0, &metas[i]);
	if (r >= 0 && rows->n_rows > n && !(next = strdup(metas[n - 1].name)))
		r = -ENOMEM;
	db_rows_free(rows);
	if (r < 0) {
		secrets_metas_free(metas, n);
		return r;
	}
	*ret_metas = metas;
	*ret_n = n;
	*ret_next = next;
	return 0;
}

int secrets_versions(struct secrets *s, struct secrets_ctx *ctx, const char *name,
		     struct secrets_version **ret, size_t *ret_n)
{
	struct secrets_version *vs;
	struct db_rows *rows = NULL;
	size_t n = 0;
	int r;

	r = secrets_check_name(name, ctx->err, sizeof(ctx->err));
	if (r < 0)
		return r;
	{
		const struct db_param p[] = { DB_TEXT(secrets_tenant(ctx)), DB_TEXT(name) };

		r = read_query(s,
			       "SELECT v.version, v.destroyed_at IS NOT NULL, "
			       "(extract(epoch FROM v.created_at) * 1000000)::bigint, "
			       "coalesce((extract(epoch FROM v.destroyed_at) * 1000000)::bigint, 0) "
			       "FROM secrets s LEFT JOIN secret_versions v ON "
			       "v.tenant_id = s.tenant_id AND v.name = s.name "
			       "WHERE s.tenant_id = $1 AND s.name = $2 ORDER BY v.version",
			       p, 2, &rows);
	}
	if (r < 0)
		return r;
	if (rows->n_rows == 0) {
		db_rows_free(rows);
		return secrets_fail(ctx->err, sizeof(ctx->err), -ENOENT, "secret \"%s\" not found",
				    name);
	}
	vs = calloc(rows->n_rows, sizeof(*vs));
	if (!vs) {
		db_rows_free(rows);
		return -ENOMEM;
	}
	for (size_t i = 0; i < rows->n_rows; i++) {
		if (!db_rows_get(rows, i, 0))
			continue;
		vs[n].version = col_i64(rows, i, 0);
		vs[n].destroyed = col_bool(rows, i, 1);
		vs[n].create_us = col_i64(rows, i, 2);
		vs[n].destroy_us = col_i64(rows, i, 3);
		n++;
	}
	db_rows_free(rows);
	*ret = vs;
	*ret_n = n;
	return 0;
}

int secrets_current_version(struct secrets *s, const struct secrets_ctx *ctx, const char *name,
			    int64_t *ret)
{
	const struct db_param p[] = { DB_TEXT(secrets_tenant(ctx)), DB_TEXT(name) };
	struct db_rows *rows = NULL;
	int r = read_query(s,
			   "SELECT current_version FROM secrets WHERE tenant_id = $1 AND "
			   "name = $2 AND deleted_at IS NULL",
			   p, 2, &rows);

	if (r < 0)
		return r;
	r = rows->n_rows ? 0 : -ENOENT;
	if (r == 0)
		*ret = col_i64(rows, 0, 0);
	db_rows_free(rows);
	return r;
}

int secrets_rotation_read(struct secrets *s, const char *tenant, const char *name,
			  struct secrets_meta *ret)
{
	const struct db_param p[] = { DB_TEXT(tenant), DB_TEXT(name) };
	struct db_rows *rows = NULL;
	int r = read_query(s,
			   "SELECT " SECRETS_META_COLS " FROM secrets WHERE tenant_id = $1 AND "
			   "name = $2",
			   p, 2, &rows);

	if (r < 0)
		return r;
	r = rows->n_rows ? secrets_meta_from_row(rows, 0, 0, ret) : -ENOENT;
	db_rows_free(rows);
	return r;
}
