/*
 * The SQL of CreateIdentity, batched: the identity-create item (built on the caller's thread,
 * attached by the change) and the pre-commit hook that writes every create of a batch with
 * one set-based statement (docs/architecture.md §2, "Rotations and issuances take the
 * batched path"). Conventions of ca_store.c: times as Unix microseconds, arrays of validated
 * names (never a comma) crossing as "a,b" text.
 *
 * Assumes the change of a create runs no statement of its own (it only attaches this item,
 * its audit record and its event), so that the hook may refuse it alone: an owner that is
 * gone, or a request_id a twin stored first. The hook may run more than once for one batch
 * (the writer retries a batch on a serialization failure): it writes only inside the
 * batch's transaction and reads nothing but its items.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca-internal.h"
#include "change.h"

/* Appends s with its NUL at *at; returns where it starts. */
static size_t put_text(struct ca_ident_item *it, size_t *at, const char *s)
{
	size_t off = *at, n = strlen(s);

	memcpy(it->buf + off, s, n + 1);
	*at += n + 1;
	return off;
}

/* Appends the n strings of v joined by ',' and a NUL at *at; returns where they start. */
static size_t put_list(struct ca_ident_item *it, size_t *at, char *const *v, size_t n)
{
	size_t off = *at;

	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(v[i]);

		if (i)
			it->buf[(*at)++] = ',';
		memcpy(it->buf + *at, v[i], len);
		*at += len;
	}
	it->buf[(*at)++] = '\0';
	return off;
}

/* The bytes put_list takes for v. */
static size_t list_len(char *const *v, size_t n)
{
	size_t len = 1;

	for (size_t i = 0; i < n; i++)
		len += strlen(v[i]) + 1;
	return len;
}

int ca_ident_item_new(const struct ca_ident_spec *spec, struct ca_ident_item **ret)
{
	const struct ca_identity *i = spec->ident;
	size_t need = strlen(i->name) + 1 + list_len(i->dns_names, i->n_dns_names) +
		      list_len(i->ip_addresses, i->n_ip_addresses) + spec->reply_len;
	struct ca_ident_item *it = calloc(1, sizeof(*it) + need);
	size_t at = 0;

	if (!it)
		return -ENOMEM;
	if (change_item_key_set(&it->key, spec->key) < 0) {
		free(it);
		return -EINVAL;
	}
	it->size = sizeof(*it) + need;
	it->kind = spec->kind;
	snprintf(it->tenant, sizeof(it->tenant), "%s", spec->tenant);
	snprintf(it->id, sizeof(it->id), "%s", i->id);
	snprintf(it->owner_id, sizeof(it->owner_id), "%s", i->owner_id);
	it->ident_kind = i->kind;
	it->key_type = i->key_type;
	it->ttl_seconds = i->ttl_seconds;
	it->now_us = i->create_time;
	it->name_off = put_text(it, &at, i->name);
	it->dns_off = put_list(it, &at, i->dns_names, i->n_dns_names);
	it->ips_off = put_list(it, &at, i->ip_addresses, i->n_ip_addresses);
	it->reply_len = spec->reply_len;
	it->reply_off = at;
	if (spec->reply_len)
		memcpy(it->buf + at, spec->reply, spec->reply_len);
	*ret = it;
	return 0;
}

int ca_ident_item_attach(struct db_tx *tx, const struct ca_ident_item *item)
{
	return change_attach_copy(tx, item->kind, item, item->size);
}

/*
 * One statement for the batch: lock the owners its creates name, in key order and FOR KEY
 * SHARE (what the foreign key takes too: creates never wait for each other, and an owner
 * deleted meanwhile is simply missing, never an error of the statement); store the replies
 * of the creates whose owner exists (ON CONFLICT: a twin committed first); insert the
 * identities of those that passed both. One verdict per create, in batch order: "gone" (no
 * such owner), "twin" (its request_id was taken), "ok"; and the count of rows inserted.
 */
#define TS(p) "(timestamptz 'epoch' + " p "::bigint * interval '1 microsecond')"
static const char create_sql[] =
	"WITH req AS (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], "
	"$5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], "
	CHANGE_BATCH_TYPES(11, 12, 13, 14, 15, 16) ") WITH ORDINALITY AS r(tenant_id, id, "
	"owner_id, kind, name, dns, ips, key_type, ttl, now_us, " CHANGE_BATCH_NAMES ", ord)), "
	"own AS (SELECT o.tenant_id, o.id FROM owners o WHERE (o.tenant_id, o.id) IN "
	"(SELECT tenant_id, owner_id FROM req) ORDER BY o.tenant_id, o.id FOR KEY SHARE), "
	"ok AS (SELECT r.* FROM req r JOIN own o ON o.tenant_id = r.tenant_id AND "
	"o.id = r.owner_id), "
	CHANGE_BATCH_STORE_SQL("ok", "$17") ", "
	"go AS (SELECT o.* FROM ok o WHERE " CHANGE_BATCH_STORED("o") "), "
	"ins AS (INSERT INTO identities (tenant_id, id, kind, name, owner_id, dns_names, "
	"ip_addresses, key_type, ttl_seconds, created_at, updated_at) SELECT g.tenant_id, g.id, "
	"g.kind, g.name, g.owner_id, string_to_array(g.dns, ','), string_to_array(g.ips, ','), "
	"g.key_type, g.ttl, " TS("g.now_us") ", " TS("g.now_us") " FROM go g RETURNING 1) "
	"SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM own o WHERE o.tenant_id = r.tenant_id AND "
	"o.id = r.owner_id) THEN 'gone' "
	"WHEN NOT EXISTS (SELECT 1 FROM go g WHERE g.ord = r.ord) THEN 'twin' ELSE 'ok' END, "
	"(SELECT count(*) FROM ins) FROM req r ORDER BY r.ord";

/* The hook's columns, in the order of create_sql's unnest(). */
enum {
	IC_TENANT,
	IC_ID,
	IC_OWNER,
	IC_KIND,
	IC_NAME,
	IC_DNS,
	IC_IPS,
	IC_KEY_TYPE,
	IC_TTL,
	IC_NOW,
	IC_KEY,
	IC_N = IC_KEY + CHANGE_BATCH_N
};

/* Refuses the second create of one request_id in a batch (the first one's reply answers). */
static void refuse_twins(const struct ca_ident_item *const *it, size_t n, int *results)
{
	for (size_t i = 0; i < n; i++) {
		struct change_key ki = change_item_key_get(&it[i]->key, it[i]->tenant);

		if (!change_key_idempotent(&ki))
			continue;
		for (size_t j = 0; j < i && results[i] >= 0; j++) {
			struct change_key kj = change_item_key_get(&it[j]->key, it[j]->tenant);

			if (results[j] >= 0 && change_key_same(&ki, &kj))
				results[i] = -EEXIST;
		}
	}
}

/* Writes the creates not refused yet; sets the verdicts of the others. */
static int create_batch(struct db_conn *c, const struct ca_ident_item *const *it, size_t n,
			int *results)
{
	struct db_array a[IC_N] = { 0 };
	struct db_blob replies = { 0 };
	struct db_rows *rows = NULL;
	struct change_key key;
	size_t n_ok = 0;
	int r;

	for (size_t i = 0; i < n; i++) {
		const struct ca_ident_item *x = it[i];

		if (results[i] < 0)
			continue;
		db_array_add_text(&a[IC_TENANT], x->tenant);
		db_array_add_text(&a[IC_ID], x->id);
		db_array_add_text(&a[IC_OWNER], x->owner_id);
		db_array_add_text(&a[IC_KIND], ca_identity_kind_name(x->ident_kind));
		db_array_add_text(&a[IC_NAME], (const char *)x->buf + x->name_off);
		db_array_add_text(&a[IC_DNS], (const char *)x->buf + x->dns_off);
		db_array_add_text(&a[IC_IPS], (const char *)x->buf + x->ips_off);
		db_array_add_text(&a[IC_KEY_TYPE], crypto_key_type_name(x->key_type));
		db_array_add_int(&a[IC_TTL], x->ttl_seconds);
		db_array_add_int(&a[IC_NOW], x->now_us);
		key = change_item_key_get(&x->key, x->tenant);
		change_batch_add(&a[IC_KEY], &replies, &key, x->buf + x->reply_off, x->reply_len);
	}
	r = db_exec_columns(c, create_sql, a, IC_N, &replies, &rows);
	if (r >= 0)
		r = db_hook_verdicts(rows, results, n, &n_ok);
	/* every create that passed was inserted, once: anything else is a bug */
	if (r >= 0 && n_ok && strtoll(db_rows_get(rows, 0, 1), NULL, 10) != (long long)n_ok)
		r = -EPROTO;
	db_rows_free(rows);
	return r;
}

int ca_store_create_hook(struct db_conn *c, void *const *items, size_t n, int *results, void *ud)
{
	const struct ca_ident_item *const *it = (const struct ca_ident_item *const *)items;

	(void)ud;
	refuse_twins(it, n, results);
	for (size_t i = 0; i < n; i++)
		if (results[i] >= 0)
			return create_batch(c, it, n, results);
	return 0;
}
