/*
 * Rotations written by the group-commit writer's pre-commit hook (DB_ITEM_ROTATION): the
 * caller reads the secret, seals the value for the next version and prepares the reply,
 * audit record and event (secrets.c); its change only attaches copies; here, just before
 * COMMIT, every rotation of the batch is checked and written with two statements whatever
 * the batch size, instead of one statement (and its round trip) per rotation.
 *
 * Statement 1 locks the batch's secrets rows in key order (as every server does, so batches
 * cannot deadlock on them), checks that each is live and still at the version its rotation
 * was sealed for, and stores the replies of request_ids (ON CONFLICT: a twin committed
 * first). Statement 2 writes the rows of the rotations that passed: the new current
 * version and update time, the new sealed version, the versions the retention limit
 * destroys, and a pg_notify per secret for the other servers' read caches. A refused
 * rotation writes nothing; its caller reads again, reseals and retries.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "secrets-internal.h"

static size_t put_bytes(struct secrets_rotation *rot, size_t *at, const void *p, size_t n)
{
	size_t off = *at;

	if (n)
		memcpy(rot->buf + off, p, n);
	*at += n;
	return off;
}

int secrets_rotation_new(const struct secrets_rotation_spec *spec, struct secrets_rotation **ret)
{
	size_t need = spec->sealed_len + spec->reply_len;
	size_t at = 0;
	struct secrets_rotation *rot;

	if (strlen(spec->tenant) >= sizeof(rot->tenant) || strlen(spec->name) > SECRETS_NAME_MAX)
		return -EINVAL;
	rot = calloc(1, sizeof(*rot) + need);
	if (!rot)
		return -ENOMEM;
	if (change_item_key_set(&rot->key, spec->key) < 0) {
		free(rot);
		return -EINVAL;
	}
	rot->kind = spec->kind;
	rot->size = sizeof(*rot) + need;
	strcpy(rot->tenant, spec->tenant);
	strcpy(rot->name, spec->name);
	rot->current = spec->current;
	rot->now_us = spec->now_us;
	rot->keep = spec->keep;
	rot->sealed_len = spec->sealed_len;
	rot->sealed_off = put_bytes(rot, &at, spec->sealed, spec->sealed_len);
	rot->reply_len = spec->reply_len;
	rot->reply_off = put_bytes(rot, &at, spec->reply, spec->reply_len);
	*ret = rot;
	return 0;
}

int secrets_rotation_attach(struct db_tx *tx, const struct secrets_rotation *rot)
{
	return change_attach_copy(tx, rot->kind, rot, rot->size);
}

static struct change_key rot_key(const struct secrets_rotation *rot)
{
	return change_item_key_get(&rot->key, rot->tenant);
}

static const char check_sql[] =
	"WITH req AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], "
	CHANGE_BATCH_TYPES(4, 5, 6, 7, 8, 9) ") WITH ORDINALITY AS r(tenant_id, name, cur, "
	CHANGE_BATCH_NAMES ", ord)), "
	"cur AS (SELECT x.tenant_id, x.name, x.current_version, x.deleted_at IS NULL AS live "
	"FROM secrets x WHERE (x.tenant_id, x.name) IN (SELECT tenant_id, name FROM req) "
	"ORDER BY x.tenant_id, x.name FOR UPDATE), "
	"ok AS (SELECT r.* FROM req r JOIN cur c ON c.tenant_id = r.tenant_id AND "
	"c.name = r.name WHERE c.live AND c.current_version = r.cur), "
	CHANGE_BATCH_STORE_SQL("ok", "$10") " "
	"SELECT CASE WHEN c.name IS NULL THEN 'gone' "
	"WHEN NOT c.live OR c.current_version <> r.cur THEN 'stale' "
	"WHEN NOT " CHANGE_BATCH_STORED("r") " THEN 'twin' ELSE 'ok' END "
	"FROM req r LEFT JOIN cur c ON c.tenant_id = r.tenant_id AND c.name = r.name "
	"ORDER BY r.ord";

static const char write_sql[] =
	"WITH req AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], "
	"$5::int[], $6::int[], $7::int[]) AS r(tenant_id, name, cur, now_us, keep, off, len)), "
	"s AS (UPDATE secrets x SET current_version = r.cur + 1, updated_at = "
	"timestamptz 'epoch' + r.now_us * interval '1 microsecond' FROM req r "
	"WHERE x.tenant_id = r.tenant_id AND x.name = r.name RETURNING 1), "
	"v AS (INSERT INTO secret_versions (tenant_id, name, version, sealed) SELECT tenant_id, "
	"name, cur + 1, substring($8::bytea FROM off + 1 FOR len) FROM req RETURNING 1), "
	"d AS (UPDATE secret_versions y SET sealed = NULL, destroyed_at = clock_timestamp() "
	"FROM req r WHERE y.tenant_id = r.tenant_id AND y.name = r.name AND r.keep > 0 AND "
	"y.version <= r.cur + 1 - r.keep AND y.sealed IS NOT NULL RETURNING 1), "
	"n AS (SELECT pg_notify('" SECRETS_CACHE_CHANNEL "', tenant_id::text || ':' || name) "
	"FROM req) "
	"SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM v), (SELECT count(*) FROM n)";

/* Refuses the second rotation of one secret, or of one request_id, in a batch. */
static void refuse_twins(const struct secrets_rotation *const *rot, size_t n, int *results)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i && results[i] >= 0; j++) {
			struct change_key ki = rot_key(rot[i]), kj = rot_key(rot[j]);

			if (results[j] < 0 || strcmp(rot[i]->tenant, rot[j]->tenant))
				continue;
			if (!strcmp(rot[i]->name, rot[j]->name))
				results[i] = -EBUSY;
			else if (change_key_same(&ki, &kj))
				results[i] = -EEXIST;
		}
}

enum { CK_TENANT, CK_NAME, CK_CUR, CK_KEY, CK_N = CK_KEY + CHANGE_BATCH_N };

static int check(struct db_conn *c, const struct secrets_rotation *const *rot, size_t n,
		 int *results, size_t *ret_ok)
{
	struct db_array a[CK_N] = { 0 };
	struct db_blob replies = { 0 };
	struct change_key key;
	struct db_rows *rows = NULL;
	int r;

	for (size_t i = 0; i < n; i++) {
		if (results[i] < 0)
			continue;
		db_array_add_text(&a[CK_TENANT], rot[i]->tenant);
		db_array_add_text(&a[CK_NAME], rot[i]->name);
		db_array_add_int(&a[CK_CUR], rot[i]->current);
		key = rot_key(rot[i]);
		change_batch_add(&a[CK_KEY], &replies, &key, rot[i]->buf + rot[i]->reply_off,
				 rot[i]->reply_len);
	}
	r = db_exec_columns(c, check_sql, a, CK_N, &replies, &rows);
	if (r >= 0)
		r = db_hook_verdicts(rows, results, n, ret_ok);
	db_rows_free(rows);
	return r;
}

enum { WR_TENANT, WR_NAME, WR_CUR, WR_NOW, WR_KEEP, WR_OFF, WR_LEN, WR_N };

static int write_rotations(struct db_conn *c, const struct secrets_rotation *const *rot,
			   size_t n, const int *results, size_t n_ok)
{
	struct db_array a[WR_N] = { 0 };
	struct db_blob sealed = { 0 };
	struct db_rows *rows = NULL;
	int r;

	for (size_t i = 0; i < n; i++) {
		if (results[i] < 0)
			continue;
		db_array_add_text(&a[WR_TENANT], rot[i]->tenant);
		db_array_add_text(&a[WR_NAME], rot[i]->name);
		db_array_add_int(&a[WR_CUR], rot[i]->current);
		db_array_add_int(&a[WR_NOW], rot[i]->now_us);
		db_array_add_int(&a[WR_KEEP], rot[i]->keep);
		db_blob_add(&sealed, &a[WR_OFF], &a[WR_LEN], rot[i]->buf + rot[i]->sealed_off,
			    rot[i]->sealed_len);
	}
	r = db_exec_columns(c, write_sql, a, WR_N, &sealed, &rows);
	/* every row was locked and checked by statement 1: anything else is a bug */
	if (r >= 0 && (strtoll(db_rows_get(rows, 0, 0), NULL, 10) != (int64_t)n_ok ||
		       strtoll(db_rows_get(rows, 0, 1), NULL, 10) != (int64_t)n_ok))
		r = -EPROTO;
	db_rows_free(rows);
	return r;
}

int secrets_rotation_hook(struct db_conn *c, void *const *items, size_t n, int *results,
			  void *ud)
{
	const struct secrets_rotation *const *rot = (const struct secrets_rotation *const *)items;
	size_t n_ok = 0;
	int r;

	(void)ud;
	refuse_twins(rot, n, results);
	r = check(c, rot, n, results, &n_ok);
	if (r < 0 || !n_ok)
		return r;
	return write_rotations(c, rot, n, results, n_ok);
}
