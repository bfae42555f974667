/*
 * The policy service's tables (migrations 0004_policy, 0007_token_tree): policies, tokens
 * (a tree: parent_id) and the authorization generation. Reads lease a pool connection for
 * one statement; writes run inside a group-commit change (store_tx_*) together with the
 * generation bump, the audit record and the event of the change. Times cross as
 * microseconds since the epoch (computed by PostgreSQL), a token's policies as a
 * comma-joined list (policy names never hold a comma: policy_name_valid). At the end, the
 * token changes shared by the Policy service, `trstctl token` and the bootstrap.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "audit.h"
#include "change.h"
#include "authz-int.h"
#include "bus.h"
#include "db.h"

#define US(col) "(extract(epoch FROM " col ") * 1000000)::bigint"
#define TOKEN_COLS                                                             \
	"id, name, array_to_string(policies, ','), " US("created_at") ", " US( \
		"expire_time") ", " US("last_used_time") ", revoked_at IS NOT NULL, hash, " \
		"coalesce(parent_id, '')"
#define POLICY_COLS "name, document, version, " US("updated_at") ", deleted"

static int query(struct db *db, const char *sql, const struct db_param *p, size_t n,
		 struct db_rows **ret)
{
	struct db_conn *conn = NULL;
	int r = db_acquire(db, AUTHZ_DB_TIMEOUT_MS, &conn);

	if (r < 0)
		return r;
	r = db_exec(conn, sql, p, n, ret);
	db_release(db, conn);
	return r;
}

static int64_t num(const struct db_rows *rows, size_t row, size_t col)
{
	const char *s = db_rows_get(rows, row, col);

	return s ? strtoll(s, NULL, 10) : 0;
}

static bool flag(const struct db_rows *rows, size_t row, size_t col)
{
	const char *s = db_rows_get(rows, row, col);

	return s && s[0] == 't';
}

static char *dup0(const char *s)
{
	return strdup(s ? s : "");
}

void store_token_clear(struct store_token *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_policies; i++)
		free(t->policies[i]);
	free(t->policies);
	free(t->name);
	memset(t, 0, sizeof(*t));
}

void store_policy_clear(struct store_policy *p)
{
	if (!p)
		return;
	free(p->name);
	free(p->document);
	memset(p, 0, sizeof(*p));
}

/* Splits "a,b,c" into malloc'd names. */
static int split_names(const char *s, char ***ret, size_t *ret_n)
{
	char **v = NULL;
	size_t n = 0;

	while (s && *s) {
		size_t len = strcspn(s, ",");
		char **nv = realloc(v, (n + 1) * sizeof(*v));

		if (!nv)
			goto oom;
		v = nv;
		v[n] = strndup(s, len);
		if (!v[n])
			goto oom;
		n++;
		s += len + (s[len] == ',');
	}
	*ret = v;
	*ret_n = n;
	return 0;
oom:
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return -ENOMEM;
}

static int token_from_row(const struct db_rows *rows, size_t i, struct store_token *t)
{
	const char *hash = db_rows_get(rows, i, 7);
	int r;

	memset(t, 0, sizeof(*t));
	snprintf(t->id, sizeof(t->id), "%s", db_rows_get(rows, i, 0));
	if (hash && rows->lengths[i * rows->n_cols + 7] == POLICY_HASH_LEN)
		memcpy(t->hash, hash, POLICY_HASH_LEN);
	t->name = dup0(db_rows_get(rows, i, 1));
	r = split_names(db_rows_get(rows, i, 2), &t->policies, &t->n_policies);
	t->create_us = num(rows, i, 3);
	t->expire_us = num(rows, i, 4);
	t->last_used_us = num(rows, i, 5);
	t->revoked = flag(rows, i, 6);
	snprintf(t->parent_id, sizeof(t->parent_id), "%s", db_rows_get(rows, i, 8));
	if (r < 0 || !t->name) {
		store_token_clear(t);
		return -ENOMEM;
	}
	return 0;
}

static int policy_from_row(const struct db_rows *rows, size_t i, struct store_policy *p)
{
	p->name = dup0(db_rows_get(rows, i, 0));
	p->document = dup0(db_rows_get(rows, i, 1));
	p->version = num(rows, i, 2);
	p->update_us = num(rows, i, 3);
	p->deleted = flag(rows, i, 4);
	if (!p->name || !p->document) {
		store_policy_clear(p);
		return -ENOMEM;
	}
	return 0;
}

/* One row expected: -ENOENT when none. */
static int one_token(struct db_rows *rows, int r, struct store_token *ret)
{
	if (r >= 0)
		r = rows->n_rows ? token_from_row(rows, 0, ret) : -ENOENT;
	db_rows_free(rows);
	return r;
}

static int one_policy(struct db_rows *rows, int r, struct store_policy *ret)
{
	if (r >= 0)
		r = rows->n_rows ? policy_from_row(rows, 0, ret) : -ENOENT;
	db_rows_free(rows);
	return r;
}

int store_generation(struct db *db, const char *tenant, int64_t *ret_gen)
{
	const struct db_param p[] = { DB_TEXT(tenant) };
	struct db_rows *rows = NULL;
	int r = query(db, "SELECT generation FROM authz_generation WHERE tenant_id = $1", p, 1,
		      &rows);

	if (r >= 0 && rows->n_rows == 0)
		r = -ENOENT;
	if (r >= 0)
		*ret_gen = num(rows, 0, 0);
	db_rows_free(rows);
	return r;
}

static int policies_of(struct db_rows *rows, int r, struct store_policy **ret, size_t *ret_n)
{
	struct store_policy *v;

	if (r < 0)
		return r;
	v = calloc(rows->n_rows ? rows->n_rows : 1, sizeof(*v));
	if (!v) {
		db_rows_free(rows);
		return -ENOMEM;
	}
	for (size_t i = 0; i < rows->n_rows; i++) {
		if (policy_from_row(rows, i, &v[i]) < 0) {
			store_policies_free(v, i);
			db_rows_free(rows);
			return -ENOMEM;
		}
	}
	*ret = v;
	*ret_n = rows->n_rows;
	db_rows_free(rows);
	return 0;
}

int store_policies_all(struct db *db, const char *tenant, struct store_policy **ret, size_t *ret_n)
{
	const struct db_param p[] = { DB_TEXT(tenant) };
	struct db_rows *rows = NULL;
	int r = query(db, "SELECT " POLICY_COLS " FROM policies WHERE tenant_id = $1 ORDER BY name",
		      p, 1, &rows);

	return policies_of(rows, r, ret, ret_n);
}

void store_policies_free(struct store_policy *p, size_t n)
{
	for (size_t i = 0; p && i < n; i++)
		store_policy_clear(&p[i]);
	free(p);
}

int store_policy_get(struct db *db, const char *tenant, const char *name, struct store_policy *ret)
{
	const struct db_param p[] = { DB_TEXT(tenant), DB_TEXT(name) };
	struct db_rows *rows = NULL;
	int r = query(db,
		      "SELECT " POLICY_COLS " FROM policies WHERE tenant_id = $1 AND name = $2 "
		      "AND NOT deleted",
		      p, 2, &rows);

	return one_policy(rows, r, ret);
}

int store_policy_list(struct db *db, const char *tenant, const char *after, int limit,
		      struct store_policy **ret, size_t *ret_n)
{
	char lim[16];
	const struct db_param p[] = { DB_TEXT(tenant), DB_TEXT(after ? after : ""), DB_TEXT(lim) };
	struct db_rows *rows = NULL;
	int r;

	snprintf(lim, sizeof(lim), "%d", limit);
	r = query(db,
		  "SELECT " POLICY_COLS " FROM policies WHERE tenant_id = $1 AND name > $2 "
		  "AND NOT deleted ORDER BY name LIMIT $3::int",
		  p, 3, &rows);
	return policies_of(rows, r, ret, ret_n);
}

int store_token_by_hash(struct db *db, const char *tenant, const uint8_t hash[POLICY_HASH_LEN],
			struct store_token *ret)
{
	const struct db_param p[] = { DB_TEXT(tenant), DB_BYTES(hash, POLICY_HASH_LEN) };
	struct db_rows *rows = NULL;
	int r = query(db, "SELECT " TOKEN_COLS " FROM tokens WHERE tenant_id = $1 AND hash = $2", p,
		      2, &rows);

	return one_token(rows, r, ret);
}

int store_token_by_id(struct db *db, const char *tenant, const char *id, struct store_token *ret)
{
	const struct db_param p[] = { DB_TEXT(tenant), DB_TEXT(id) };
	struct db_rows *rows = NULL;
	int r = query(db, "SELECT " TOKEN_COLS " FROM tokens WHERE tenant_id = $1 AND id = $2", p,
		      2, &rows);

	return one_token(rows, r, ret);
}

int store_token_list(struct db *db, const char *tenant, const char *after, int limit,
		     struct store_token **ret, size_t *ret_n)
{
	char lim[16];
	const struct db_param p[] = { DB_TEXT(tenant), DB_TEXT(after ? after : ""), DB_TEXT(lim) };
	struct db_rows *rows = NULL;
	struct store_token *v;
	int r;

	snprintf(lim, sizeof(lim), "%d", limit);
	r = query(db,
		  "SELECT " TOKEN_COLS " FROM tokens WHERE tenant_id = $1 AND id > $2 "
		  "ORDER BY id LIMIT $3::int",
		  p, 3, &rows);
	if (r < 0)
		return r;
	v = calloc(rows->n_rows ? rows->n_rows : 1, sizeof(*v));
	for (size_t i = 0; v && i < rows->n_rows; i++) {
		if (token_from_row(rows, i, &v[i]) < 0) {
			store_tokens_free(v, i);
			v = NULL;
		}
	}
	if (v) {
		*ret = v;
		*ret_n = rows->n_rows;
	}
	db_rows_free(rows);
	return v ? 0 : -ENOMEM;
}

void store_tokens_free(struct store_token *t, size_t n)
{
	for (size_t i = 0; t && i < n; i++)
		store_token_clear(&t[i]);
	free(t);
}

/* Metadata only: no generation bump (nothing that authorization depends on). */
int store_token_touch(struct db *db, const char *tenant, const char *id)
{
	const struct db_param p[] = { DB_TEXT(tenant), DB_TEXT(id) };

	return query(db,
		     "UPDATE tokens SET last_used_time = clock_timestamp() WHERE tenant_id = $1 "
		     "AND id = $2",
		     p, 2, NULL);
}

int store_tx_bump(struct db_tx *tx, const char *tenant)
{
	const struct db_param p[] = { DB_TEXT(tenant) };

	return db_tx_exec(tx,
			  "INSERT INTO authz_generation (tenant_id, generation) VALUES ($1, 1) "
			  "ON CONFLICT (tenant_id) DO UPDATE SET generation = "
			  "authz_generation.generation + 1",
			  p, 1, NULL);
}

int store_tx_policy_put(struct db_tx *tx, const char *tenant, const char *name, const char *doc,
			struct store_policy *ret)
{
	const struct db_param p[] = { DB_TEXT(tenant), DB_TEXT(name), DB_TEXT(doc) };
	struct db_rows *rows = NULL;
	int r = db_tx_exec(tx,
			   "INSERT INTO policies AS p (tenant_id, name, document, version) "
			   "VALUES ($1, $2, $3, 1) ON CONFLICT (tenant_id, name) DO UPDATE SET "
			   "document = EXCLUDED.document, version = p.version + 1, "
			   "updated_at = clock_timestamp(), deleted = false RETURNING " POLICY_COLS,
			   p, 3, &rows);

	return one_policy(rows, r, ret);
}

int store_tx_policy_delete(struct db_tx *tx, const char *tenant, const char *name,
			   struct store_policy *ret)
{
	const struct db_param p[] = { DB_TEXT(tenant), DB_TEXT(name) };
	struct db_rows *rows = NULL;
	int r = db_tx_exec(tx,
			   "UPDATE policies SET deleted = true, version = version + 1, "
			   "updated_at = clock_timestamp() WHERE tenant_id = $1 AND name = $2 AND "
			   "NOT deleted RETURNING " POLICY_COLS,
			   p, 2, &rows);

	return one_policy(rows, r, ret);
}

int store_tx_policies_exist(struct db_tx *tx, const char *tenant, const char *const *names,
			    size_t n, const char **ret_missing)
{
	for (size_t i = 0; i < n; i++) {
		const struct db_param p[] = { DB_TEXT(tenant), DB_TEXT(names[i]) };
		struct db_rows *rows = NULL;
		int r;

		if (strcmp(names[i], POLICY_ADMIN) == 0)
			continue;
		r = db_tx_exec(tx,
			       "SELECT 1 FROM policies WHERE tenant_id = $1 AND name = $2 AND "
			       "NOT deleted FOR SHARE",
			       p, 2, &rows);
		if (r >= 0 && rows->n_rows == 0) {
			*ret_missing = names[i];
			r = -ENOENT;
		}
		db_rows_free(rows);
		if (r < 0)
			return r;
	}
	return 0;
}

int store_tx_bootstrap_lock(struct db_tx *tx, const char *tenant)
{
	const struct db_param p[] = { DB_TEXT(tenant) };
	struct db_rows *rows = NULL;
	int r = db_tx_exec(tx, "SELECT pg_advisory_xact_lock(hashtext('trstctl.bootstrap.' || $1))",
			   p, 1, NULL);

	if (r < 0)
		return r;
	r = db_tx_exec(tx, "SELECT 1 FROM tokens WHERE tenant_id = $1 LIMIT 1", p, 1, &rows);
	if (r >= 0)
		r = rows->n_rows ? 1 : 0;
	db_rows_free(rows);
	return r;
}

/* Names joined with ',' in a malloc'd string. */
static char *join_names(const char *const *names, size_t n)
{
	size_t len = 1;
	char *s;

	for (size_t i = 0; i < n; i++)
		len += strlen(names[i]) + 1;
	s = malloc(len);
	if (!s)
		return NULL;
	s[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(s, ",");
		strcat(s, names[i]);
	}
	return s;
}

int store_tx_token_insert(struct db_tx *tx, const char *tenant, const struct store_token *t,
			  int64_t ttl_seconds, struct store_token *ret)
{
	char ttl[24], cap[24], *pol = join_names((const char *const *)t->policies, t->n_policies);
	struct db_rows *rows = NULL;
	int r;

	if (!pol)
		return -ENOMEM;
	snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_seconds);
	snprintf(cap, sizeof(cap), "%" PRId64, t->expire_us);
	const struct db_param p[] = { DB_TEXT(tenant),
				      DB_TEXT(t->id),
				      DB_TEXT(t->name ? t->name : ""),
				      DB_BYTES(t->hash, POLICY_HASH_LEN),
				      DB_TEXT(pol),
				      ttl_seconds > 0 ? DB_TEXT(ttl) : DB_NULL,
				      t->parent_id[0] ? DB_TEXT(t->parent_id) : DB_NULL,
				      t->expire_us ? DB_TEXT(cap) : DB_NULL };
	/* LEAST ignores NULL: the parent's expiry caps the child's (no clock skew between
	 * the check in C and this clock can let a child outlive its parent) */
	r = db_tx_exec(
		tx,
		"INSERT INTO tokens (tenant_id, id, name, hash, policies, expire_time, parent_id) "
		"VALUES ($1, $2, $3, $4, string_to_array($5, ','), "
		"LEAST(clock_timestamp() + make_interval(secs => $6::bigint), "
		"to_timestamp($8::bigint / 1000000.0)), $7) RETURNING " TOKEN_COLS,
		p, 8, &rows);
	free(pol);
	return one_token(rows, r, ret);
}

/* The one token row sql ($1 the tenant, $2 the id) returns inside tx; -ENOENT: none. */
static int tx_one_token(struct db_tx *tx, const char *sql, const char *tenant, const char *id,
			struct store_token *ret)
{
	const struct db_param p[] = { DB_TEXT(tenant), DB_TEXT(id) };
	struct db_rows *rows = NULL;
	int r = db_tx_exec(tx, sql, p, 2, &rows);

	return one_token(rows, r, ret);
}

int store_tx_token_revoke(struct db_tx *tx, const char *tenant, const char *id,
			  struct store_token *ret)
{
	return tx_one_token(tx,
			    "UPDATE tokens SET revoked_at = clock_timestamp() WHERE tenant_id = $1 "
			    "AND id = $2 AND revoked_at IS NULL RETURNING " TOKEN_COLS,
			    tenant, id, ret);
}

int store_tx_token_revoke_descendants(struct db_tx *tx, const char *tenant, const char *id,
				      int64_t *ret_n)
{
	const struct db_param p[] = { DB_TEXT(tenant), DB_TEXT(id) };
	struct db_rows *rows = NULL;
	int r = db_tx_exec(tx,
			   "WITH RECURSIVE sub(id) AS (SELECT id FROM tokens WHERE tenant_id = $1 "
			   "AND parent_id = $2 UNION SELECT t.id FROM tokens t JOIN sub "
			   "ON t.tenant_id = $1 AND t.parent_id = sub.id) "
			   "UPDATE tokens SET revoked_at = clock_timestamp() WHERE tenant_id = $1 "
			   "AND id IN (SELECT id FROM sub) AND revoked_at IS NULL RETURNING id",
			   p, 2, &rows);

	if (r >= 0)
		*ret_n = (int64_t)rows->n_rows;
	db_rows_free(rows);
	return r < 0 ? r : 0;
}

int store_tx_token_lock(struct db_tx *tx, const char *tenant, const char *id,
			struct store_token *ret)
{
	return tx_one_token(tx,
			    "SELECT " TOKEN_COLS " FROM tokens WHERE tenant_id = $1 AND id = $2 "
			    "FOR SHARE",
			    tenant, id, ret);
}

/* Token changes ------------------------------------------------------------------------ */

struct token_change {
	const struct authz_token_req *req;
	struct bus *bus;
	struct store_token in, out;
	const char *missing;
};

/* The change's audit record and its policy.changed event (change room), data built here. */
int store_tx_record(struct db_tx *tx, struct bus *bus, const char *tenant, const char *type,
		    const char *actor, const char *resource, json_t *data, json_t *event)
{
	char *d = data ? json_dumps(data, JSON_COMPACT) : NULL;
	char *ev = event ? json_dumps(event, JSON_COMPACT) : NULL;
	struct change_record rec = { .tenant = tenant,
				     .type = type,
				     .actor = actor,
				     .resource = resource,
				     .data_json = d,
				     .event_type = "policy.changed",
				     .event_json = ev,
				     .no_event = !bus };
	int r = d && ev ? change_record(tx, &rec) : -ENOMEM;

	free(d);
	free(ev);
	json_decref(data);
	json_decref(event);
	return r;
}

static json_t *names_json(char *const *names, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(names[i]));
	return a;
}

/* Whether token p holds policy name (admin holds every policy). */
static bool token_holds(const struct store_token *p, const char *name)
{
	for (size_t i = 0; i < p->n_policies; i++)
		if (strcmp(p->policies[i], name) == 0 || strcmp(p->policies[i], POLICY_ADMIN) == 0)
			return true;
	return false;
}

/*
 * A child stays within its parent (read and locked in this transaction, so a revocation
 * racing it either comes first and refuses it, or comes after and finds the child): the
 * parent is live, holds every policy given to the child, and the child expires no later.
 * Sets in->parent_id and in->expire_us (the cap). -EPERM with err naming the bound.
 */
static int parent_bounds(struct db_tx *tx, const struct authz_token_req *q,
			 struct store_token *in, char *err, size_t errlen)
{
	struct store_token p = { 0 };
	int64_t now = authz_now_us(), left;
	int r = store_tx_token_lock(tx, q->tenant, q->parent_id, &p);

	if (r == -ENOENT || (r >= 0 && (p.revoked || (p.expire_us && p.expire_us <= now)))) {
		snprintf(err, errlen, "permission denied: the creating token %s is no longer valid",
			 q->parent_id);
		r = -EPERM;
	}
	for (size_t i = 0; r >= 0 && i < q->n_policies; i++) {
		if (!token_holds(&p, q->policies[i])) {
			snprintf(err, errlen,
				 "permission denied: policies: the creating token %s is not bound "
				 "to policy %s (a token can hand on only its own policies)",
				 p.id, q->policies[i]);
			r = -EPERM;
		}
	}
	left = p.expire_us ? (p.expire_us - now) / 1000000 : 0;
	if (r >= 0 && p.expire_us && (q->ttl_seconds == 0 || q->ttl_seconds > left)) {
		snprintf(err, errlen,
			 "permission denied: ttl_seconds: %lld would outlive the creating token %s, "
			 "which expires in %lld s (a child's lifetime is within its parent's; 0 "
			 "means never expires)",
			 (long long)q->ttl_seconds, p.id, (long long)left);
		r = -EPERM;
	}
	if (r >= 0) {
		snprintf(in->parent_id, sizeof(in->parent_id), "%s", p.id);
		in->expire_us = p.expire_us;
	}
	store_token_clear(&p);
	return r;
}

/* The change room's apply step of a token creation. */
static int token_create_fn(struct db_tx *tx, void *ud, char *err, size_t errlen)
{
	struct token_change *c = ud;
	const struct authz_token_req *q = c->req;
	char resource[8 + POLICY_TOKEN_ID_LEN];
	int r;

	if (q->parent_id) {
		r = parent_bounds(tx, q, &c->in, err, errlen);
		if (r < 0)
			return r;
	}
	if (q->bootstrap) {
		r = store_tx_bootstrap_lock(tx, q->tenant);
		if (r != 0)
			return r < 0 ? r : -EALREADY;
	}
	r = store_tx_policies_exist(tx, q->tenant, q->policies, q->n_policies, &c->missing);
	if (r < 0)
		return r;
	r = store_tx_token_insert(tx, q->tenant, &c->in, q->ttl_seconds, &c->out);
	if (r >= 0)
		r = store_tx_bump(tx, q->tenant);
	if (r < 0)
		return r;
	snprintf(resource, sizeof(resource), "token/%s", c->out.id);
	r = store_tx_record(
		tx, c->bus, q->tenant, "token.created", q->actor, resource,
		json_pack("{s:s, s:s, s:o, s:I, s:s}", "id", c->out.id, "name", c->out.name,
			  "policies", names_json(c->out.policies, c->out.n_policies),
			  "expire_time_us", (json_int_t)c->out.expire_us, "parent_id",
			  c->out.parent_id),
		json_pack("{s:s, s:s, s:s}", "kind", "token", "op", "created", "id", c->out.id));
	return r;
}

/* The stored reply of a token creation: only the token's id, never the token. */
static int token_create_pack(void *ud, uint8_t **ret, size_t *ret_len)
{
	struct token_change *c = ud;

	*ret = (uint8_t *)strdup(c->out.id);
	*ret_len = strlen(c->out.id);
	return *ret ? 0 : -ENOMEM;
}

/* A token name: at most AUTHZ_NAME_MAX bytes of printable ASCII (it appears in audit
 * actors and listings). */
static bool token_name_valid(const char *s)
{
	size_t n = 0;

	for (; s && s[n]; n++)
		if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] >= 0x7f)
			return false;
	return n <= AUTHZ_NAME_MAX;
}

static int token_req_check(const struct authz_token_req *q, char *err, size_t errlen)
{
	if (!token_name_valid(q->name)) {
		snprintf(err, errlen, "name: at most %d printable ASCII characters",
			 AUTHZ_NAME_MAX);
		return -EINVAL;
	}
	if (q->n_policies > AUTHZ_MAX_POLICIES) {
		snprintf(err, errlen, "policies: at most %d", AUTHZ_MAX_POLICIES);
		return -EINVAL;
	}
	for (size_t i = 0; i < q->n_policies; i++) {
		if (!policy_name_valid(q->policies[i])) {
			snprintf(err, errlen, "policies[%zu]: invalid policy name", i);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(q->policies[i], q->policies[j]) == 0) {
				snprintf(err, errlen, "policies[%zu]: %s is named twice", i,
					 q->policies[i]);
				return -EINVAL;
			}
		}
	}
	if (q->ttl_seconds < 0 || q->ttl_seconds > 100LL * 366 * 86400) {
		snprintf(err, errlen, "ttl_seconds: must be 0 (never expires) to 100 years");
		return -EINVAL;
	}
	return 0;
}

int authz_token_create(struct db *db, struct bus *bus, const struct authz_token_req *req,
		       char token[POLICY_TOKEN_LEN + 1], struct store_token *ret_meta, char *err,
		       size_t errlen)
{
	struct token_change c = { .req = req, .bus = bus };
	struct change_key none = { .tenant = req->tenant, .principal = req->actor,
				   .method = "/trstctl.v1.Policy/CreateToken" };
	struct change ch = { .db = db, .bus = bus, .apply = token_create_fn,
			     .pack = token_create_pack, .ud = &c,
			     .timeout_ms = AUTHZ_DB_TIMEOUT_MS * 2 };
	int r;

	if (errlen)
		err[0] = '\0';
	r = token_req_check(req, err, errlen);
	if (r < 0)
		return r;
	if (!token[0]) {
		r = policy_token_new(token, c.in.hash, c.in.id);
		if (r < 0)
			return r;
	} else {
		SHA256((const unsigned char *)token, strlen(token), c.in.hash);
		policy_token_id(c.in.hash, c.in.id);
	}
	c.in.name = (char *)(req->name ? req->name : "");
	c.in.policies = (char **)req->policies;
	c.in.n_policies = req->n_policies;
	ch.key = req->key ? req->key : &none;
	r = change_run(&ch);
	OPENSSL_cleanse(c.in.hash, sizeof(c.in.hash));
	if (r == -ENOENT && c.missing)
		snprintf(err, errlen, "policy %s does not exist", c.missing);
	else if (r < 0 && ch.err[0])
		snprintf(err, errlen, "%s", ch.err);
	if (r == 1) {
		/* the first reply's token text is never stored: only its id */
		snprintf(ret_meta->id, sizeof(ret_meta->id), "%.*s", (int)ch.replayed_len,
			 (const char *)ch.replayed);
		change_clear(&ch);
		return -EALREADY;
	}
	if (r < 0) {
		store_token_clear(&c.out);
		return r;
	}
	*ret_meta = c.out;
	return 0;
}

struct revoke_change {
	const char *tenant, *id, *actor;
	struct bus *bus;
	struct store_token out;
};

static int token_revoke_fn(struct db_tx *tx, void *ud, char *err, size_t errlen)
{
	struct revoke_change *c = ud;
	char resource[8 + POLICY_TOKEN_ID_LEN];
	int64_t n = 0;
	int r;

	(void)err;
	(void)errlen;
	store_token_clear(&c->out);
	/* the token's row first: a child being created under it (its row locked FOR SHARE)
	 * commits before this goes on, so the walk below finds it */
	r = store_tx_token_revoke(tx, c->tenant, c->id, &c->out);
	if (r >= 0)
		r = store_tx_token_revoke_descendants(tx, c->tenant, c->id, &n);
	if (r >= 0)
		r = store_tx_bump(tx, c->tenant);
	if (r < 0)
		return r;
	snprintf(resource, sizeof(resource), "token/%s", c->id);
	return store_tx_record(
		tx, c->bus, c->tenant, "token.revoked", c->actor, resource,
		json_pack("{s:s, s:s, s:I}", "id", c->id, "name", c->out.name,
			  "descendants_revoked", (json_int_t)n),
		json_pack("{s:s, s:s, s:s}", "kind", "token", "op", "revoked", "id", c->id));
}

static bool token_id_valid(const char *id)
{
	size_t n = 0;

	for (; id && id[n]; n++)
		if (!((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'f')))
			return false;
	return n == POLICY_TOKEN_ID_LEN;
}

/* The stored reply of a revocation: the token's id (a retry reads its metadata again,
 * which a revoked token keeps). */
static int token_revoke_pack(void *ud, uint8_t **ret, size_t *ret_len)
{
	struct revoke_change *c = ud;

	*ret = (uint8_t *)strdup(c->id);
	*ret_len = strlen(c->id);
	return *ret ? 0 : -ENOMEM;
}

int authz_token_revoke(struct db *db, struct bus *bus, const char *tenant, const char *id,
		       const char *actor, const struct change_key *key,
		       struct store_token *ret_meta, char *err, size_t errlen)
{
	struct revoke_change c = { .tenant = tenant, .id = id, .actor = actor, .bus = bus };
	struct change_key none = { .tenant = tenant, .principal = actor,
				   .method = "/trstctl.v1.Policy/RevokeToken" };
	struct change ch = { .db = db, .bus = bus, .key = key ? key : &none,
			     .apply = token_revoke_fn, .pack = token_revoke_pack, .ud = &c,
			     .timeout_ms = AUTHZ_DB_TIMEOUT_MS * 2 };
	int r;

	if (errlen)
		err[0] = '\0';
	if (!token_id_valid(id))
		return -EINVAL;
	r = change_run(&ch);
	if (r < 0 && ch.err[0])
		snprintf(err, errlen, "%s", ch.err);
	if (r == 1 || r == -ENOENT) {
		/* a retry, or a token that was revoked already: nothing more was written */
		change_clear(&ch);
		r = store_token_by_id(db, tenant, id, &c.out);
		if (r < 0)
			return r;
		*ret_meta = c.out;
		return 1;
	}
	if (r < 0) {
		store_token_clear(&c.out);
		return r;
	}
	*ret_meta = c.out;
	return 0;
}
