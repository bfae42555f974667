/*
 * The write side of the secret store: name and label rules, sealing, and the changes
 * (create, rotate, delete, recover, destroy) run by the group-commit writer. A change is one
 * function (change_fn) that may run more than once (the writer retries a batch that hit a
 * serialization failure), so it resets its outputs first and touches nothing outside its
 * struct op.
 *
 * The writer runs changes one after the other, so the work it does per change bounds the
 * write rate. Values are therefore sealed and HMAC'd on the caller's thread before
 * db_write, for the version the change expects to write; a rotation that finds another
 * current version (another server won the row) reseals inside the change. Each change is
 * one statement in the common case (data-modifying CTEs); the UPDATE of the secrets row
 * locks it, so rotations of one secret are serialized across servers too and exactly one
 * wins per version (the losers see the new version and re-check expected_version).
 *
 * Idempotency, audit and events are the change room's (change.h): every change runs
 * through change_run (rotations through their hook, with the room's batch statements);
 * the stored reply is the SecretMeta message the client got (secrets_reply_pack).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "audit.h"
#include "bus.h"
#include "kek.h"
#include "secrets-internal.h"

#define HMAC_LABEL "trstctl secret value v1"
#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-"
/* Every change tells the other servers' read caches (secrets_cache.c), after its commit;
 * $1 is the tenant and $2 the name in every change statement. */
#define NOTIFY_SQL                                                                         \
	"SELECT pg_notify('" SECRETS_CACHE_CHANNEL "', $1::uuid::text || ':' || $2::text)"

enum op_kind { OP_CREATE, OP_ROTATE, OP_DELETE, OP_RECOVER, OP_DESTROY };

static const struct {
	const char *method; /* the full gRPC method: the key's method */
	const char *event;  /* audit and event type */
} op_names[] = {
	[OP_CREATE] = { "/trstctl.v1.Secrets/CreateSecret", "secret.created" },
	[OP_ROTATE] = { "/trstctl.v1.Secrets/RotateSecret", "secret.rotated" },
	[OP_DELETE] = { "/trstctl.v1.Secrets/DeleteSecret", "secret.deleted" },
	[OP_RECOVER] = { "/trstctl.v1.Secrets/RecoverSecret", "secret.recovered" },
	[OP_DESTROY] = { "/trstctl.v1.Secrets/DestroySecretVersion", "secret.destroyed" },
};

/* One change and its outcome. Inputs are borrowed from the caller of db_write. */
struct op {
	struct secrets *s;
	enum op_kind kind;
	const char *tenant, *actor, *name;
	const struct change_key *key; /* the request's key (ctx's, or built by op_key) */
	struct change_key own_key;    /* built from a ctx without a key */
	const uint8_t *value;	 /* create, rotate */
	size_t n;
	const char *labels_json; /* create */
	int64_t expected;	 /* rotate: 0 = no check */
	int64_t version;	 /* destroy: the version; create/rotate: the one sealed for */
	uint8_t *sealed;	 /* sealed for version, owned */
	size_t sealed_len;
	char hmac_hex[65];	 /* create, rotate: HMAC of the value */
	int timeout_ms;		 /* bound of the write: the call's, or the store's */
	struct db_tx *tx;	 /* while the change runs */
	char *err;		 /* where messages go while the change runs */
	size_t errlen;
	/* outputs, reset by each run */
	struct secrets_meta meta;
};

int secrets_check_name(const char *name, char *err, size_t errlen)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > SECRETS_NAME_MAX)
		return secrets_fail(err, errlen, -EINVAL, "secret name must be 1-%d bytes",
				    SECRETS_NAME_MAX);
	if (strspn(name, NAME_CHARS) != n)
		return secrets_fail(err, errlen, -EINVAL,
				    "secret name may contain only [A-Za-z0-9._/-]");
	if (name[0] == '/' || name[n - 1] == '/' || strstr(name, "//"))
		return secrets_fail(err, errlen, -EINVAL,
				    "secret name must not have an empty segment (leading, "
				    "trailing or double '/')");
	for (const char *p = name; p; p = strchr(p, '/')) {
		p += *p == '/';
		if (strncmp(p, "..", 2) == 0 && (p[2] == '/' || p[2] == '\0'))
			return secrets_fail(err, errlen, -EINVAL,
					    "secret name must not have a \"..\" segment");
	}
	return 0;
}

int secrets_open(struct db *db, const struct kek *kek, struct bus *bus,
		 const struct secrets_config *cfg, struct secrets **ret)
{
	struct secrets *s;

	int r;

	if (!db || !kek || !ret || (cfg && (cfg->retain_versions < 0 || cfg->write_timeout_ms < 0 ||
					    cfg->max_value_bytes > KEK_MAX_PLAIN ||
					    cfg->cache_entries < -1)))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->db = db;
	s->kek = kek;
	s->bus = bus;
	s->max_value = cfg && cfg->max_value_bytes ? cfg->max_value_bytes :
						     SECRETS_DEFAULT_MAX_VALUE;
	s->retain = cfg ? cfg->retain_versions : SECRETS_DEFAULT_RETAIN;
	s->timeout_ms = cfg && cfg->write_timeout_ms ? cfg->write_timeout_ms : 10000;
	/* rotations are written by their pre-commit hook (secrets_rotate.c) */
	r = change_hook_register(db, secrets_rotation_hook, NULL, &s->rotation_kind);
	if (r >= 0)
		r = change_guess_new(SECRETS_GUESS_SLOTS, &secrets_guess_ops, &s->guess);
	if (r < 0) {
		free(s);
		return r;
	}
	if (!cfg || cfg->cache_entries >= 0) {
		r = secrets_cache_new(cfg && cfg->cache_entries ? (size_t)cfg->cache_entries :
								  SECRETS_DEFAULT_CACHE,
				      &s->cache);
		if (r >= 0)
			r = db_listen_open(db, SECRETS_CACHE_CHANNEL, secrets_cache_on_listen,
					   s->cache, &s->listen);
		if (r < 0) {
			secrets_close(s);
			return r;
		}
	}
	*ret = s;
	return 0;
}

struct secrets *secrets_close(struct secrets *s)
{
	if (s) {
		s->listen = db_listen_close(s->listen);
		s->cache = secrets_cache_free(s->cache);
		s->guess = change_guess_free(s->guess);
		free(s->rpc_handlers);
		free(s);
	}
	return NULL;
}

/* Labels as a JSON object with sorted keys, or -EINVAL with the rule in err. */
static int labels_json(const struct secrets_label *labels, size_t n, char *err, size_t errlen,
		       char **ret)
{
	json_t *o;
	int r = 0;

	if (n > SECRETS_LABELS_MAX)
		return secrets_fail(err, errlen, -EINVAL, "at most %d labels",
				    SECRETS_LABELS_MAX);
	o = json_object();
	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < n && r == 0; i++) {
		const char *k = labels[i].key ? labels[i].key : "";
		const char *v = labels[i].value ? labels[i].value : "";
		size_t kl = strlen(k), vl = strlen(v);
		json_t *js = vl <= SECRETS_LABEL_VALUE_MAX ? json_string(v) : NULL;

		if (kl == 0 || kl > SECRETS_LABEL_KEY_MAX || strspn(k, NAME_CHARS) != kl)
			r = secrets_fail(err, errlen, -EINVAL,
					 "label key must be 1-%d bytes of [A-Za-z0-9._/-]",
					 SECRETS_LABEL_KEY_MAX);
		else if (!js)
			r = secrets_fail(err, errlen, -EINVAL,
					 "label \"%s\": value must be at most %d bytes of UTF-8", k,
					 SECRETS_LABEL_VALUE_MAX);
		else if (json_object_get(o, k))
			r = secrets_fail(err, errlen, -EINVAL, "label \"%s\" is given twice", k);
		else
			json_object_set(o, k, js);
		json_decref(js);
	}
	*ret = r == 0 ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	if (r == 0 && !*ret)
		r = -ENOMEM;
	return r;
}

static int check_value(struct secrets *s, size_t n, char *err, size_t errlen)
{
	if (n > s->max_value)
		return secrets_fail(err, errlen, -EMSGSIZE,
				    "secret value is %zu bytes, more than the maximum of %zu", n,
				    s->max_value);
	return 0;
}

/* Seals op's value for version v (replacing an earlier sealing). */
static int op_seal(struct op *op, int64_t v)
{
	char aad[128 + SECRETS_NAME_MAX];

	free(op->sealed);
	op->sealed = NULL;
	secrets_aad(op->tenant, op->name, v, aad, sizeof(aad));
	op->version = v;
	return kek_seal(op->s->kek, op->value, op->n, aad, &op->sealed, &op->sealed_len);
}

static int op_hmac(struct op *op)
{
	uint8_t mac[32];
	int r = kek_hmac(op->s->kek, HMAC_LABEL, op->value, op->n, mac);

	if (r < 0)
		return r;
	for (size_t i = 0; i < sizeof(mac); i++)
		snprintf(op->hmac_hex + 2 * i, 3, "%02x", mac[i]);
	return 0;
}

static int op_fail(struct op *op, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int op_fail(struct op *op, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(op->err, op->errlen, fmt, ap);
	va_end(ap);
	return err;
}

/* Takes rows (one row of SECRETS_META_COLS, or none) into op->meta; -ENODATA when none. */
static int take_meta(struct op *op, struct db_rows *rows, int64_t *ret_extra)
{
	int r = -ENODATA;

	if (rows->n_rows == 1) {
		r = secrets_meta_from_row(rows, 0, 0, &op->meta);
		if (r >= 0 && ret_extra)
			*ret_extra = strtoll(db_rows_get(rows, 0, SECRETS_META_NCOLS), NULL,
					     10);
	}
	db_rows_free(rows);
	return r;
}

/* The secret row, locked for the rest of the batch. -ENOENT (message set) when missing. */
static int probe(struct op *op, int64_t *ret_current, bool *ret_deleted)
{
	const struct db_param p[] = { DB_TEXT(op->tenant), DB_TEXT(op->name) };
	struct db_rows *rows = NULL;
	int r = db_tx_exec(op->tx,
			   "SELECT current_version, deleted_at IS NOT NULL FROM secrets "
			   "WHERE tenant_id = $1 AND name = $2 FOR UPDATE",
			   p, 2, &rows);

	if (r < 0)
		return r;
	if (rows->n_rows == 0) {
		db_rows_free(rows);
		return op_fail(op, -ENOENT, "secret \"%s\" not found", op->name);
	}
	*ret_current = strtoll(db_rows_get(rows, 0, 0), NULL, 10);
	*ret_deleted = db_rows_get(rows, 0, 1)[0] == 't';
	db_rows_free(rows);
	return 0;
}

static int do_create(struct op *op)
{
	const struct db_param p[] = { DB_TEXT(op->tenant), DB_TEXT(op->name),
				      DB_TEXT(op->labels_json),
				      DB_BYTES(op->sealed, op->sealed_len) };
	struct db_rows *rows = NULL;
	int64_t cur;
	bool deleted;
	int r;

	r = db_tx_exec(op->tx,
		       "WITH s AS (INSERT INTO secrets (tenant_id, name, current_version, labels) "
		       "VALUES ($1::uuid, $2::text, 1, $3::jsonb) ON CONFLICT DO NOTHING "
		       "RETURNING " SECRETS_META_COLS "), "
		       "v AS (INSERT INTO secret_versions (tenant_id, name, version, sealed) "
		       "SELECT $1::uuid, $2::text, 1, $4::bytea FROM s), "
		       "n AS (" NOTIFY_SQL " FROM s) SELECT s.*, (SELECT count(*) FROM n) FROM s",
		       p, 4, &rows);
	if (r < 0)
		return r;
	r = take_meta(op, rows, NULL);
	if (r != -ENODATA)
		return r;
	r = probe(op, &cur, &deleted);
	if (r < 0)
		return r;
	if (deleted)
		return op_fail(op, -EEXIST,
			       "secret \"%s\" already exists and is deleted; recover it instead",
			       op->name);
	return op_fail(op, -EEXIST, "secret \"%s\" already exists; rotate it instead", op->name);
}

static int do_flag(struct op *op, bool to_deleted)
{
	const struct db_param p[] = { DB_TEXT(op->tenant), DB_TEXT(op->name) };
	struct db_rows *rows = NULL;
	int64_t cur;
	bool deleted;
	int r;

	r = db_tx_exec(op->tx,
		       to_deleted ? "WITH s AS (UPDATE secrets SET deleted_at = clock_timestamp(), "
				    "updated_at = clock_timestamp() WHERE tenant_id = $1::uuid AND "
				    "name = $2::text AND deleted_at IS NULL RETURNING "
				    SECRETS_META_COLS "), n AS (" NOTIFY_SQL " FROM s) "
				    "SELECT s.*, (SELECT count(*) FROM n) FROM s" :
				    "WITH s AS (UPDATE secrets SET deleted_at = NULL, "
				    "updated_at = clock_timestamp() WHERE tenant_id = $1::uuid AND "
				    "name = $2::text AND deleted_at IS NOT NULL RETURNING "
				    SECRETS_META_COLS "), n AS (" NOTIFY_SQL " FROM s) "
				    "SELECT s.*, (SELECT count(*) FROM n) FROM s",
		       p, 2, &rows);
	if (r < 0)
		return r;
	r = take_meta(op, rows, NULL);
	if (r != -ENODATA)
		return r;
	r = probe(op, &cur, &deleted);
	if (r < 0)
		return r;
	return op_fail(op, -EILSEQ, to_deleted ? "secret \"%s\" is already deleted" :
						 "secret \"%s\" is not deleted",
		       op->name);
}

static int do_destroy(struct op *op)
{
	char ver[24];
	const struct db_param p[] = { DB_TEXT(op->tenant), DB_TEXT(op->name), DB_TEXT(ver) };
	struct db_rows *rows = NULL;
	int64_t n = 0;
	int r;

	snprintf(ver, sizeof(ver), "%" PRId64, op->version);
	r = db_tx_exec(op->tx,
		       "WITH d AS (UPDATE secret_versions SET sealed = NULL, "
		       "destroyed_at = clock_timestamp() WHERE tenant_id = $1::uuid AND "
		       "name = $2::text AND version = $3::bigint AND sealed IS NOT NULL "
		       "RETURNING 1), n AS (" NOTIFY_SQL " FROM d) "
		       "SELECT " SECRETS_META_COLS ", (SELECT count(*) FROM d), "
		       "(SELECT count(*) FROM n) "
		       "FROM secrets WHERE tenant_id = $1::uuid AND name = $2::text",
		       p, 3, &rows);
	if (r < 0)
		return r;
	r = take_meta(op, rows, &n);
	if (r == -ENODATA)
		return op_fail(op, -ENOENT, "secret \"%s\" not found", op->name);
	if (r < 0 || n == 1)
		return r;
	r = db_tx_exec(op->tx,
		       "SELECT 1 FROM secret_versions WHERE tenant_id = $1::uuid AND "
		       "name = $2::text AND version = $3::bigint",
		       p, 3, &rows);
	if (r < 0)
		return r;
	n = (int64_t)rows->n_rows;
	db_rows_free(rows);
	if (n == 0)
		return op_fail(op, -ENOENT, "secret \"%s\" has no version %" PRId64, op->name,
			       op->version);
	return op_fail(op, -EILSEQ, "version %" PRId64 " of secret \"%s\" is already destroyed",
		       op->version, op->name);
}

/* The audit record and the event of a change that succeeded (the event without the HMAC). */
static int record(struct op *op)
{
	char resource[16 + SECRETS_NAME_MAX], data[512 + SECRETS_NAME_MAX], extra[160] = "";
	char audit[sizeof(data) + 96];
	int64_t version = op->kind == OP_DESTROY ? op->version : op->meta.version;
	struct change_record rec = { .tenant = op->tenant,
				     .type = op_names[op->kind].event,
				     .actor = op->actor,
				     .resource = resource,
				     .data_json = data };
	size_t len;

	snprintf(resource, sizeof(resource), "secrets/%s", op->name);
	if (op->kind == OP_DESTROY)
		snprintf(extra, sizeof(extra), ",\"current_version\":%" PRId64, op->meta.version);
	/* names are [A-Za-z0-9._/-]: nothing to escape */
	len = (size_t)snprintf(data, sizeof(data), "{\"name\":\"%s\",\"version\":%" PRId64 "%s}",
			       op->name, version, extra);
	if (op->kind == OP_CREATE) {
		snprintf(audit, sizeof(audit), "%.*s,\"value_hmac\":\"%s\"}", (int)(len - 1), data,
			 op->hmac_hex);
		rec.data_json = audit;
		rec.event_json = data;
	}
	return change_record(op->tx, &rec);
}

/* The change room's apply step of create, delete, recover and destroy. */
static int apply(struct db_tx *tx, void *ud, char *err, size_t errlen)
{
	struct op *op = ud;
	int r;

	/* may run again when the writer retries the batch */
	secrets_meta_clear(&op->meta);
	op->tx = tx;
	op->err = err;
	op->errlen = errlen;
	switch (op->kind) {
	case OP_CREATE:
		r = do_create(op);
		break;
	case OP_DELETE:
	case OP_RECOVER:
		r = do_flag(op, op->kind == OP_DELETE);
		break;
	case OP_DESTROY:
		r = do_destroy(op);
		break;
	default:
		r = -EINVAL;
	}
	return r < 0 ? r : record(op);
}

static int pack(void *ud, uint8_t **ret, size_t *ret_len)
{
	return secrets_reply_pack(&((struct op *)ud)->meta, ret, ret_len);
}

/*
 * The key of op: the caller's (ctx->key, set by the gRPC handler from the request's bytes),
 * or, for a caller without one, a key of ctx's request_id whose fingerprint covers what
 * the change depends on (keyed by the KEK: the value enters only as its HMAC).
 */
static int op_key(struct op *op, const struct secrets_ctx *ctx)
{
	char *buf = NULL;
	int n, r;

	if (ctx->key) {
		op->key = ctx->key;
		return 0;
	}
	op->own_key = (struct change_key){ .tenant = op->tenant,
					   .principal = op->actor,
					   .method = op_names[op->kind].method,
					   .request_id = ctx->request_id };
	op->key = &op->own_key;
	n = asprintf(&buf, "%d|%s|%s|%" PRId64 "|%" PRId64 "|%s", op->kind, op->name,
		     op->hmac_hex, op->expected, op->version,
		     op->labels_json ? op->labels_json : "");
	if (n < 0)
		return -ENOMEM;
	r = change_fingerprint(op->s->kek, buf, (size_t)n, &op->own_key);
	free(buf);
	return r;
}

/* How long a write may wait: the call's time left when it is shorter than the store's. */
static int write_timeout(const struct secrets *s, const struct secrets_ctx *ctx)
{
	return ctx->timeout_ms > 0 && ctx->timeout_ms < s->timeout_ms ? ctx->timeout_ms :
									 s->timeout_ms;
}

/* Runs op through the change room; moves the metadata to ret_meta on success. */
static int run(struct secrets *s, struct secrets_ctx *ctx, struct op *op,
	       struct secrets_meta *ret_meta)
{
	struct change ch = { .db = s->db, .bus = s->bus, .apply = apply, .pack = pack, .ud = op };
	int r;

	op->s = s;
	op->timeout_ms = write_timeout(s, ctx);
	ch.timeout_ms = op->timeout_ms;
	op->tenant = secrets_tenant(ctx);
	op->actor = ctx->actor && *ctx->actor ? ctx->actor : "anonymous";
	ctx->replayed = false;
	ctx->err[0] = '\0';
	r = op_key(op, ctx);
	ch.key = op->key;
	if (r >= 0)
		r = change_run(&ch);
	/* after the commit, before the reply: this server's readers see the change at once
	 * (also after a failure or a timeout, which may hide a commit) */
	if (r != 1)
		secrets_cache_invalidate(s->cache, op->name);
	if (r == 0 && op->kind == OP_CREATE)
		secrets_guess_put(s, op->tenant, &op->meta);
	else if (r != 1)
		change_guess_drop(s->guess, op->tenant, op->name);
	if (op->sealed)
		OPENSSL_cleanse(op->sealed, op->sealed_len);
	free(op->sealed);
	op->sealed = NULL;
	if (r == 1) {
		secrets_meta_clear(&op->meta);
		r = secrets_reply_unpack(ch.replayed, ch.replayed_len, &op->meta);
		change_clear(&ch);
		ctx->replayed = r >= 0;
	}
	if (r < 0) {
		snprintf(ctx->err, sizeof(ctx->err), "%s", ch.err);
		secrets_meta_clear(&op->meta);
		return r;
	}
	*ret_meta = op->meta;
	return 0;
}

/* Checks name and value and computes what can be done before the writer: seal, HMAC. */
/* Checks name and value and takes the value's HMAC; version > 0 also seals it for it. */
static int prepare(struct secrets *s, struct secrets_ctx *ctx, struct op *op, const char *name,
		   const uint8_t *value, size_t n, int64_t version)
{
	int r = secrets_check_name(name, ctx->err, sizeof(ctx->err));

	if (r < 0)
		return r;
	r = check_value(s, n, ctx->err, sizeof(ctx->err));
	if (r < 0)
		return r;
	op->s = s;
	op->tenant = secrets_tenant(ctx);
	op->name = name;
	op->value = value;
	op->n = n;
	r = op_hmac(op);
	return r < 0 || version < 1 ? r : op_seal(op, version);
}

int secrets_create(struct secrets *s, struct secrets_ctx *ctx, const char *name,
		   const uint8_t *value, size_t n, const struct secrets_label *labels,
		   size_t n_labels, struct secrets_meta *ret_meta)
{
	struct op op = { .kind = OP_CREATE };
	char *lj = NULL;
	int r;

	r = prepare(s, ctx, &op, name, value, n, 1);
	if (r >= 0)
		r = labels_json(labels, n_labels, ctx->err, sizeof(ctx->err), &lj);
	if (r >= 0) {
		op.labels_json = lj;
		r = run(s, ctx, &op, ret_meta);
	}
	free(lj);
	free(op.sealed);
	return r;
}

/* Rotation -------------------------------------------------------------------------- */

#define ROTATE_ATTEMPTS 1000 /* rounds lost to other rotations of the same secret */

static int64_t wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* What a rotation attaches: copies of these, made by the change. */
struct rotation {
	struct secrets_rotation *rot;
	struct change_prepared *rec;
};

static int rotation_change(struct db_tx *tx, void *ud, char *err, size_t errlen)
{
	const struct rotation *rt = ud;
	int r = secrets_rotation_attach(tx, rt->rot);

	(void)err;
	(void)errlen;

	return r < 0 ? r : change_attach(tx, rt->rec);
}

/*
 * The audit record and event of a rotation to version: the value only as its HMAC (in the
 * audit record), and the newest version the retention limit destroys with it, if any.
 */
static int rotation_records(const struct op *op, int64_t version, struct rotation *rt)
{
	char resource[16 + SECRETS_NAME_MAX], data[512 + SECRETS_NAME_MAX], extra[64] = "";
	char audit[sizeof(data) + 96];
	struct change_record rec = { .tenant = op->tenant,
				     .type = op_names[OP_ROTATE].event,
				     .actor = op->actor,
				     .resource = resource,
				     .data_json = audit,
				     .event_json = data };
	int keep = op->s->retain;
	size_t len;

	snprintf(resource, sizeof(resource), "secrets/%s", op->name);
	if (keep > 0 && version - keep >= 1)
		snprintf(extra, sizeof(extra), ",\"retention_destroys_through\":%" PRId64,
			 version - keep);
	/* names are [A-Za-z0-9._/-]: nothing to escape */
	len = (size_t)snprintf(data, sizeof(data), "{\"name\":\"%s\",\"version\":%" PRId64 "%s}",
			       op->name, version, extra);
	snprintf(audit, sizeof(audit), "%.*s,\"value_hmac\":\"%s\"}", (int)(len - 1), data,
		 op->hmac_hex);
	return change_prepare(&rec, &rt->rec);
}

/*
 * One round: seal for the version after m's, prepare the reply (m becomes it), the records
 * and the item, and let the writer's hook write it. -ESTALE / -EBUSY / -ENOENT: another
 * change got there first (read again and retry).
 */
static int rotate_round(struct op *op, struct secrets_meta *m)
{
	struct rotation rt = { 0 };
	int64_t current = m->version;
	uint8_t *reply = NULL;
	struct secrets_rotation_spec spec = { .tenant = op->tenant,
					      .name = op->name,
					      .current = current,
					      .now_us = wall_us(),
					      .keep = op->s->retain,
					      .kind = op->s->rotation_kind,
					      .key = op->key };
	int r = op_seal(op, current + 1);

	m->version = current + 1;
	m->update_us = spec.now_us;
	if (r >= 0 && change_key_idempotent(op->key)) {
		r = secrets_reply_pack(m, &reply, &spec.reply_len);
		spec.reply = reply;
	}
	spec.sealed = op->sealed;
	spec.sealed_len = op->sealed_len;
	if (r >= 0)
		r = rotation_records(op, current + 1, &rt);
	if (r >= 0)
		r = secrets_rotation_new(&spec, &rt.rot);
	if (r >= 0) {
		/* the rotation hook checks the version and stores the reply (set-based) */
		struct change ch = { .db = op->s->db, .key = op->key, .apply = rotation_change,
				     .ud = &rt, .timeout_ms = op->timeout_ms,
				     .skip_lookup = true, .no_store = true };

		r = change_run(&ch);
		/* after the commit, before the reply (also after a failure or a timeout) */
		secrets_cache_invalidate(op->s->cache, op->name);
	}
	if (rt.rot)
		OPENSSL_cleanse(rt.rot->buf, rt.rot->size - sizeof(*rt.rot));
	free(rt.rot);
	change_prepared_free(rt.rec);
	free(reply);
	return r;
}

/* One rotation and where it answers. */
struct rotate_args {
	struct secrets *s;
	struct secrets_ctx *ctx;
	struct op *op;
	struct secrets_meta *ret_meta;
};

/* The stored reply of a retry into ret_meta (1), as rotation_lookup answered. */
static int rotate_replayed(struct rotate_args *a, uint8_t *stored, size_t len)
{
	int r = secrets_reply_unpack(stored, len, a->ret_meta);

	free(stored);
	a->ctx->replayed = r >= 0;
	return r < 0 ? r : 1;
}

/* One round from m (this server's guess or a fresh read; m is taken). */
static int rotate_from(struct rotate_args *a, struct secrets_meta *m)
{
	struct secrets_ctx *ctx = a->ctx;
	const struct op *op = a->op;
	int r = 0;

	if (m->deleted)
		r = secrets_fail(ctx->err, sizeof(ctx->err), -ENOENT,
				 "secret \"%s\" is deleted (RecoverSecret restores it)", op->name);
	else if (op->expected && op->expected != m->version)
		r = secrets_fail(ctx->err, sizeof(ctx->err), -ESTALE,
				 "expected version %" PRId64 ", current is %" PRId64, op->expected,
				 m->version);
	else
		r = rotate_round(a->op, m);
	if (r == 0) {
		secrets_guess_put(a->s, op->tenant, m);
		*a->ret_meta = *m;
		bus_kick(a->s->bus);
		return 0;
	}
	secrets_meta_clear(m);
	return r;
}

/* Rounds from fresh reads until one commits, the retry's reply answers, or it fails. */
static int rotate_read(struct rotate_args *a)
{
	struct secrets_ctx *ctx = a->ctx;
	const struct op *op = a->op;
	int r;

	for (int attempt = 0; attempt < ROTATE_ATTEMPTS; attempt++) {
		struct secrets_meta m = { 0 };
		struct change ch = { .db = a->s->db, .key = op->key };

		/* a stored reply wins over the secret's state (it may have moved on since) */
		r = change_check(&ch);
		if (r < 0)
			snprintf(ctx->err, sizeof(ctx->err), "%s", ch.err);
		if (r == 1)
			return rotate_replayed(a, ch.replayed, ch.replayed_len);
		if (r == 0)
			r = secrets_rotation_read(a->s, op->tenant, op->name, &m);
		if (r == -ENOENT && !ctx->err[0])
			return secrets_fail(ctx->err, sizeof(ctx->err), -ENOENT,
					    "secret \"%s\" not found", op->name);
		if (r < 0)
			return r;
		r = rotate_from(a, &m);
		if (r == -EEXIST && change_key_idempotent(op->key)) {
			/* a twin committed first: its reply (or the mismatch) is the answer */
			r = change_twin(&ch);
			if (r < 0)
				snprintf(ctx->err, sizeof(ctx->err), "%s", ch.err);
			return r == 1 ? rotate_replayed(a, ch.replayed, ch.replayed_len) : r;
		}
		/* another rotation won the version: read again and retry */
		if ((r != -ESTALE && r != -EBUSY && r != -ENOENT) || ctx->err[0])
			return r;
	}
	return secrets_fail(ctx->err, sizeof(ctx->err), -EBUSY,
			    "secret \"%s\" is being rotated by other calls; retry", op->name);
}

/* The change room's guess-and-verify attempt: first from this server's last copy. */
static int rotate_attempt(void *ud, bool use_guess, bool *ret_guessed)
{
	struct rotate_args *a = ud;
	struct secrets_meta m = { 0 };

	*ret_guessed = use_guess &&
		       change_guess_get(a->s->guess, a->op->tenant, a->op->name, &m) == 0;
	if (*ret_guessed && a->op->expected && a->op->expected != m.version) {
		secrets_meta_clear(&m); /* the guess does not fit the request: read */
		*ret_guessed = false;
	}
	return *ret_guessed ? rotate_from(a, &m) : rotate_read(a);
}

/* After a refused guess: stale, or a retried request_id: the row (and its reply) decides. */
static bool rotate_guess_failed(void *ud, int r)
{
	struct rotate_args *a = ud;

	change_guess_drop(a->s->guess, a->op->tenant, a->op->name);
	if (r != -ESTALE && r != -EBUSY && r != -ENOENT && r != -EEXIST)
		return false;
	a->ctx->err[0] = '\0';
	return true;
}

int secrets_rotate(struct secrets *s, struct secrets_ctx *ctx, const char *name,
		   const uint8_t *value, size_t n, int64_t expected_version,
		   struct secrets_meta *ret_meta)
{
	struct op op = { .kind = OP_ROTATE, .expected = expected_version };
	struct rotate_args a = { s, ctx, &op, ret_meta };
	int r;

	ctx->replayed = false;
	ctx->err[0] = '\0';
	if (expected_version < 0)
		return secrets_fail(ctx->err, sizeof(ctx->err), -EINVAL,
				    "expected_version must be >= 0 (0 = no check)");
	/* not sealed here: each round seals for the version it read */
	r = prepare(s, ctx, &op, name, value, n, 0);
	if (r < 0)
		return r;
	op.actor = ctx->actor && *ctx->actor ? ctx->actor : "anonymous";
	op.timeout_ms = write_timeout(s, ctx);
	r = op_key(&op, ctx);
	if (r >= 0)
		r = change_key_check(op.key, ctx->err, sizeof(ctx->err));
	if (r >= 0)
		r = change_guess_run(rotate_attempt, rotate_guess_failed, &a);
	if (op.sealed)
		OPENSSL_cleanse(op.sealed, op.sealed_len);
	free(op.sealed);
	return r < 0 ? r : 0;
}

int secrets_delete(struct secrets *s, struct secrets_ctx *ctx, const char *name,
		   struct secrets_meta *ret_meta)
{
	struct op op = { .kind = OP_DELETE, .name = name };
	int r = secrets_check_name(name, ctx->err, sizeof(ctx->err));

	return r < 0 ? r : run(s, ctx, &op, ret_meta);
}

int secrets_recover(struct secrets *s, struct secrets_ctx *ctx, const char *name,
		    struct secrets_meta *ret_meta)
{
	struct op op = { .kind = OP_RECOVER, .name = name };
	int r = secrets_check_name(name, ctx->err, sizeof(ctx->err));

	return r < 0 ? r : run(s, ctx, &op, ret_meta);
}

int secrets_destroy(struct secrets *s, struct secrets_ctx *ctx, const char *name,
		    int64_t version, struct secrets_meta *ret_meta)
{
	struct op op = { .kind = OP_DESTROY, .name = name, .version = version };
	int r = secrets_check_name(name, ctx->err, sizeof(ctx->err));

	if (r < 0)
		return r;
	if (version < 1)
		return secrets_fail(ctx->err, sizeof(ctx->err), -EINVAL, "version must be >= 1");
	return run(s, ctx, &op, ret_meta);
}
