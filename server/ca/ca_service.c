/*
 * The CA service: owners, identities and their lifecycle, issuance and the CRL on
 * PostgreSQL (ca_store.c), without protobuf. Every mutation is one group-commit change
 * (db_write) that carries its rows, its audit record and its event, and its stored reply
 * when it has a request_id; nothing of it is written unless all of it is.
 *
 * Signing happens before the change, on the caller's thread, from what a plain read of the
 * identity said: the writer thread only runs SQL. Inside the change the identity row is
 * locked (SELECT ... FOR UPDATE) and its state checked again; if another transition won in
 * between, the edge is refused (FAILED_PRECONDITION) or, when it is still allowed but would
 * need a different certificate, the call answers ABORTED and the signed certificate is
 * dropped. Two servers on one database serialise on that row lock the same way.
 *
 * The CRL is rebuilt after every revocation (before the call returns, so a GetCRL that
 * follows sees it) and by a timer, never on read; concurrent requests share one rebuild,
 * and the CRL number is taken from ca_state under its row lock, so it only grows, also
 * with several servers.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "audit.h"
#include "bus.h"
#include "ca-internal.h"
#include "cfg.h"
#include "kek.h"

#define WRITE_TIMEOUT_MS 30000
#define CA_LOCK_ID 7310420601LL /* pg_advisory_xact_lock key of CA creation */

/* Helpers ----------------------------------------------------------------------------- */

int64_t ca_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int ca_uuid(char *ret)
{
	uint8_t b[16];

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -EIO;
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(ret, CA_ID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
	return 0;
}

bool ca_is_uuid(const char *s)
{
	if (!s || strlen(s) != CA_ID_LEN)
		return false;
	for (int i = 0; i < CA_ID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]))
			return false;
	}
	return true;
}

char *ca_pem_from_der(const char *label, const uint8_t *der, size_t len)
{
	size_t b64 = 4 * ((len + 2) / 3), lines = b64 / 64 + 1;
	size_t cap = b64 + lines + 2 * strlen(label) + 40;
	char *out = malloc(cap), *p;

	if (!out)
		return NULL;
	p = out + sprintf(out, "-----BEGIN %s-----\n", label);
	for (size_t off = 0; off < len; off += 48) {
		size_t n = len - off < 48 ? len - off : 48;

		p += EVP_EncodeBlock((unsigned char *)p, der + off, (int)n);
		*p++ = '\n';
	}
	sprintf(p, "-----END %s-----\n", label);
	return out;
}

static const char *tenant_of(const struct ca_ctx *ctx)
{
	return ctx && ctx->tenant_id ? ctx->tenant_id : DB_DEFAULT_TENANT;
}

static const char *actor_of(const struct ca_ctx *ctx)
{
	return ctx && ctx->actor ? ctx->actor : "anonymous";
}

static bool has_request_id(const struct ca_ctx *ctx)
{
	return ctx && ctx->request_id && ctx->request_id[0];
}

static int fail(struct ca_ctx *ctx, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct ca_ctx *ctx, int r, const char *fmt, ...)
{
	va_list ap;

	if (ctx) {
		va_start(ap, fmt);
		vsnprintf(ctx->err, sizeof(ctx->err), fmt, ap);
		va_end(ap);
	}
	return r;
}

void ca_ctx_clear(struct ca_ctx *ctx)
{
	if (!ctx)
		return;
	free(ctx->replayed);
	ctx->replayed = NULL;
	ctx->replayed_len = 0;
}

void ca_owner_clear(struct ca_owner *o)
{
	if (!o)
		return;
	free(o->name);
	free(o->email);
	o->name = o->email = NULL;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void ca_cert_clear(struct ca_cert *c)
{
	if (!c)
		return;
	free(c->pem);
	if (c->key_pem) {
		OPENSSL_cleanse(c->key_pem, strlen(c->key_pem));
		free(c->key_pem);
	}
	c->pem = c->key_pem = NULL;
}

void ca_identity_clear(struct ca_identity *i)
{
	if (!i)
		return;
	free(i->name);
	free_list(i->dns_names, i->n_dns_names);
	free_list(i->ip_addresses, i->n_ip_addresses);
	if (i->cert) {
		ca_cert_clear(i->cert);
		free(i->cert);
	}
	i->name = NULL;
	i->dns_names = i->ip_addresses = NULL;
	i->n_dns_names = i->n_ip_addresses = 0;
	i->cert = NULL;
}

void ca_crl_clear(struct ca_crl *crl)
{
	if (!crl)
		return;
	free(crl->der);
	free(crl->pem);
	crl->der = NULL;
	crl->pem = NULL;
}

/* Leases a pooled connection for a read. */
static int with_conn(struct ca_service *svc, struct db_conn **ret)
{
	return db_acquire(svc->db, 10000, ret);
}

/* Audit record and event of one change, same type, same data. */
static int record(struct db_tx *tx, const struct ca_ctx *ctx, const char *type,
		  const char *resource, json_t *data)
{
	char *js = json_dumps(data, JSON_COMPACT);
	struct audit_entry e = { .tenant_id = tenant_of(ctx),
				 .type = type,
				 .actor = actor_of(ctx),
				 .resource = resource,
				 .data_json = js };
	int r;

	json_decref(data);
	if (!js)
		return -ENOMEM;
	r = audit_record(tx, &e);
	if (r >= 0)
		r = bus_event(tx, tenant_of(ctx), type, actor_of(ctx), js);
	free(js);
	return r;
}

/* A mutation: apply() runs inside the change, after the request_id lookup. */
struct op {
	struct ca_service *svc;
	struct ca_ctx *ctx;
	int (*apply)(struct op *op, struct db_tx *tx);
	void *result;		    /* what pack() gets */
	struct ca_cert *key_holder; /* its key_pem is hidden from pack() */
	bool idem_done;		    /* apply stored the reply itself */
	void *ud;
};

/* The reply of op for its request_id (never with a private key); *ret NULL when none. */
static int op_pack(struct op *op, uint8_t **ret, size_t *ret_len)
{
	char *key = op->key_holder ? op->key_holder->key_pem : NULL;
	int r;

	*ret = NULL;
	*ret_len = 0;
	if (!has_request_id(op->ctx) || !op->ctx->pack)
		return 0;
	if (op->key_holder)
		op->key_holder->key_pem = NULL;
	r = op->ctx->pack(op->result, ret, ret_len, op->ctx->pack_ud);
	if (op->key_holder)
		op->key_holder->key_pem = key;
	return r;
}

static int idem_in_progress(struct ca_ctx *ctx)
{
	return fail(ctx, -EBUSY, "a call with request_id %s is in progress; retry",
		    ctx->request_id);
}

/*
 * The change of a mutation. A request_id was looked up before (replayed()); here its
 * reply is stored with the change, and the primary key of idempotency turns a concurrent
 * twin into ABORTED, whose retry then finds the stored reply.
 */
static int op_change(struct db_tx *tx, void *ud)
{
	struct op *op = ud;
	uint8_t *reply = NULL;
	size_t len = 0;
	int r;

	op->idem_done = false;
	r = op->apply(op, tx);
	if (r < 0 || op->idem_done)
		return r;
	r = op_pack(op, &reply, &len);
	if (r < 0 || !reply)
		return r;
	r = db_idem_put(tx, tenant_of(op->ctx), op->ctx->request_id, op->ctx->method, reply, len);
	free(reply);
	return r == -EEXIST ? idem_in_progress(op->ctx) : r;
}

/*
 * A retry is answered before anything else is checked (the identity may have moved on
 * since the first call): 1 with the stored reply, 0 to go on. When two calls with one
 * request_id race, the primary key of idempotency decides inside the change (op_change).
 */
static int replayed(struct ca_service *svc, struct ca_ctx *ctx)
{
	struct db_conn *c = NULL;
	int r;

	ca_ctx_clear(ctx);
	if (!has_request_id(ctx))
		return 0;
	r = with_conn(svc, &c);
	if (r < 0)
		return r;
	r = ca_store_idem_get(c, tenant_of(ctx), ctx->request_id, ctx->method, &ctx->replayed,
			      &ctx->replayed_len);
	db_release(svc->db, c);
	if (r == -EINVAL)
		return fail(ctx, r, "request_id %s was used by another method", ctx->request_id);
	return r;
}

/* Runs op through the writer. Returns 0, 1 (replayed) or -errno. */
static int op_write(struct op *op)
{
	struct ca_ctx *ctx = op->ctx;
	int r;

	ca_ctx_clear(ctx);
	r = db_write(op->svc->db, op_change, op,
		     ctx->timeout_ms > 0 ? ctx->timeout_ms : WRITE_TIMEOUT_MS);
	if (r < 0)
		ca_ctx_clear(ctx);
	if (r == 0)
		bus_kick(op->svc->bus);
	return r;
}

/* Owners ------------------------------------------------------------------------------- */

static int owner_apply(struct op *op, struct db_tx *tx)
{
	struct ca_owner *o = op->result;
	char res[64];
	int r;

	r = ca_store_owner_insert(tx, tenant_of(op->ctx), o);
	if (r == -EEXIST)
		return fail(op->ctx, r, "an owner named \"%s\" already exists", o->name);
	if (r < 0)
		return r;
	snprintf(res, sizeof(res), "owners/%s", o->id);
	return record(tx, op->ctx, "owner.created", res,
		      json_pack("{s:s, s:s, s:s}", "owner_id", o->id, "kind",
				ca_owner_kind_name(o->kind), "name", o->name));
}

int ca_owner_create(struct ca_service *svc, struct ca_ctx *ctx, const char *kind, const char *name,
		    const char *email, struct ca_owner *ret)
{
	struct ca_owner o = { 0 };
	struct op op = { .svc = svc, .ctx = ctx, .apply = owner_apply, .result = &o };
	int r;

	r = replayed(svc, ctx);
	if (r != 0)
		return r;
	if (ca_owner_kind_parse(kind, &o.kind, ctx->err, sizeof(ctx->err)) < 0 ||
	    ca_validate_name("name", name, CA_OWNER_NAME_MAX, ctx->err, sizeof(ctx->err)) < 0 ||
	    ca_validate_email(email, ctx->err, sizeof(ctx->err)) < 0)
		return -EINVAL;
	r = ca_uuid(o.id);
	if (r < 0)
		return r;
	o.name = strdup(name);
	o.email = strdup(email ? email : "");
	o.create_time = ca_now_us();
	if (!o.name || !o.email) {
		ca_owner_clear(&o);
		return -ENOMEM;
	}
	r = op_write(&op);
	if (r == 0)
		*ret = o;
	else
		ca_owner_clear(&o);
	return r;
}

int ca_owner_get(struct ca_service *svc, struct ca_ctx *ctx, const char *id, struct ca_owner *ret)
{
	struct db_conn *c = NULL;
	int r;

	if (!id || !*id)
		return fail(ctx, -EINVAL, "id is required");
	if (!ca_is_uuid(id))
		return fail(ctx, -ENOENT, "owner %s not found", id);
	r = with_conn(svc, &c);
	if (r < 0)
		return r;
	r = ca_store_owner_get(c, tenant_of(ctx), id, ret);
	db_release(svc->db, c);
	return r == -ENOENT ? fail(ctx, r, "owner %s not found", id) : r;
}

static int page_limit(int page_size)
{
	if (page_size <= 0)
		return CA_PAGE_DEFAULT;
	return page_size > CA_PAGE_MAX ? CA_PAGE_MAX : page_size;
}

/* The next page token: the last key when the page is full. */
static int next_token(size_t n, int limit, const char *last, char **ret_next)
{
	*ret_next = NULL;
	if (n < (size_t)limit)
		return 0;
	*ret_next = strdup(last);
	return *ret_next ? 0 : -ENOMEM;
}

int ca_owner_list(struct ca_service *svc, struct ca_ctx *ctx, const char *kind, int page_size,
		  const char *page_token, struct ca_owner **ret, size_t *ret_n, char **ret_next)
{
	enum ca_owner_kind k;
	struct db_conn *c = NULL;
	int limit = page_limit(page_size), r;

	if (kind && *kind && ca_owner_kind_parse(kind, &k, ctx->err, sizeof(ctx->err)) < 0)
		return -EINVAL;
	if (page_token && *page_token && !ca_is_uuid(page_token))
		return fail(ctx, -EINVAL, "invalid page_token");
	r = with_conn(svc, &c);
	if (r < 0)
		return r;
	r = ca_store_owner_list(c, tenant_of(ctx), kind, limit, page_token, ret, ret_n);
	db_release(svc->db, c);
	if (r >= 0 &&
	    (r = next_token(*ret_n, limit, *ret_n ? (*ret)[*ret_n - 1].id : "", ret_next)) < 0) {
		for (size_t i = 0; i < *ret_n; i++)
			ca_owner_clear(&(*ret)[i]);
		free(*ret);
	}
	return r;
}

/* Identities --------------------------------------------------------------------------- */

int ca_strv_dup(const char *const *v, size_t n, char ***ret)
{
	char **out = calloc(n ? n : 1, sizeof(*out));

	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		out[i] = strdup(v[i]);
		if (!out[i]) {
			free_list(out, i);
			return -ENOMEM;
		}
	}
	*ret = out;
	return 0;
}

static int identity_apply(struct op *op, struct db_tx *tx)
{
	struct ca_identity *i = op->result;
	char res[64];
	int r;

	r = ca_store_identity_insert(tx, tenant_of(op->ctx), i);
	if (r == -ENOENT)
		return fail(op->ctx, r, "owner %s not found", i->owner_id);
	if (r < 0)
		return r;
	snprintf(res, sizeof(res), "identities/%s", i->id);
	return record(tx, op->ctx, "identity.created", res,
		      json_pack("{s:s, s:s, s:s, s:s}", "identity_id", i->id, "owner_id",
				i->owner_id, "kind", ca_identity_kind_name(i->kind), "name",
				i->name));
}

int ca_identity_create(struct ca_service *svc, struct ca_ctx *ctx, const struct ca_identity_spec *s,
		       struct ca_identity *ret)
{
	struct ca_identity i = { 0 };
	struct op op = { .svc = svc, .ctx = ctx, .apply = identity_apply, .result = &i };
	char *e = ctx->err;
	size_t el = sizeof(ctx->err);
	int r;

	r = replayed(svc, ctx);
	if (r != 0)
		return r;
	if (ca_identity_kind_parse(s->kind, &i.kind, e, el) < 0 ||
	    ca_validate_name("name", s->name, CA_NAME_MAX, e, el) < 0)
		return -EINVAL;
	if (!s->owner_id || !*s->owner_id)
		return fail(ctx, -EINVAL, "owner_id is required");
	if (!ca_is_uuid(s->owner_id))
		return fail(ctx, -ENOENT, "owner %s not found", s->owner_id);
	if (ca_validate_sans(s->dns_names, s->n_dns_names, s->ip_addresses, s->n_ip_addresses, e,
			     el) < 0 ||
	    ca_key_type_parse(s->key_type, &i.key_type, e, el) < 0 ||
	    ca_ttl_resolve(s->ttl_seconds, svc->cfg.max_ttl_seconds, &i.ttl_seconds, e, el) < 0)
		return -EINVAL;
	r = ca_uuid(i.id);
	if (r < 0)
		return r;
	snprintf(i.owner_id, sizeof(i.owner_id), "%s", s->owner_id);
	for (char *p = i.owner_id; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'F' ? *p + 32 : *p);
	i.state = CA_STATE_REQUESTED;
	i.create_time = i.update_time = ca_now_us();
	i.name = strdup(s->name);
	if (!i.name || ca_strv_dup(s->dns_names, s->n_dns_names, &i.dns_names) < 0 ||
	    (i.n_dns_names = s->n_dns_names,
	     ca_strv_dup(s->ip_addresses, s->n_ip_addresses, &i.ip_addresses) < 0)) {
		ca_identity_clear(&i);
		return -ENOMEM;
	}
	i.n_ip_addresses = s->n_ip_addresses;
	r = op_write(&op);
	if (r == 0) {
		ca_ident_cache_put(svc->idents, tenant_of(ctx), &i);
		*ret = i;
	} else {
		ca_identity_clear(&i);
	}
	return r;
}

/* Reads an identity; with_cert adds its current certificate. */
static int identity_read(struct ca_service *svc, struct ca_ctx *ctx, const char *id, bool with_cert,
			 struct ca_identity *ret)
{
	struct db_conn *c = NULL;
	int r;

	if (!id || !*id)
		return fail(ctx, -EINVAL, "id is required");
	if (!ca_is_uuid(id))
		return fail(ctx, -ENOENT, "identity %s not found", id);
	r = with_conn(svc, &c);
	if (r < 0)
		return r;
	r = ca_store_identity_get(c, tenant_of(ctx), id, ret);
	if (r >= 0 && with_cert && ret->current_serial[0]) {
		ret->cert = calloc(1, sizeof(*ret->cert));
		r = ret->cert ?
			    ca_store_cert_get(c, tenant_of(ctx), ret->current_serial, ret->cert) :
			    -ENOMEM;
		if (r < 0) {
			free(ret->cert);
			ret->cert = NULL;
			ca_identity_clear(ret);
		}
	}
	db_release(svc->db, c);
	return r == -ENOENT ? fail(ctx, r, "identity %s not found", id) : r;
}

/*
 * replayed() then identity_read(), in one round trip when there is a request_id: 1 with the
 * stored reply, 0 with the identity read into *ret, or -errno.
 */
static int read_for_write(struct ca_service *svc, struct ca_ctx *ctx, const char *id,
			  struct ca_identity *ret)
{
	struct db_conn *c = NULL;
	int r;

	if (!has_request_id(ctx) || !id || !ca_is_uuid(id)) {
		r = replayed(svc, ctx);
		return r != 0 ? r : identity_read(svc, ctx, id, false, ret);
	}
	ca_ctx_clear(ctx);
	r = with_conn(svc, &c);
	if (r < 0)
		return r;
	r = ca_store_identity_idem_get(c, tenant_of(ctx), id, ctx->request_id, ctx->method, ret,
				       &ctx->replayed, &ctx->replayed_len);
	db_release(svc->db, c);
	if (r == -EINVAL)
		return fail(ctx, r, "request_id %s was used by another method", ctx->request_id);
	return r == -ENOENT ? fail(ctx, r, "identity %s not found", id) : r;
}

int ca_identity_get(struct ca_service *svc, struct ca_ctx *ctx, const char *id,
		    struct ca_identity *ret)
{
	return identity_read(svc, ctx, id, true, ret);
}

int ca_identity_list(struct ca_service *svc, struct ca_ctx *ctx, const char *owner_id,
		     const char *state, int page_size, const char *page_token,
		     struct ca_identity **ret, size_t *ret_n, char **ret_next)
{
	enum ca_state st;
	struct db_conn *c = NULL;
	int limit = page_limit(page_size), r;

	if (state && *state && ca_state_parse(state, &st, ctx->err, sizeof(ctx->err)) < 0)
		return -EINVAL;
	if (owner_id && *owner_id && !ca_is_uuid(owner_id))
		return fail(ctx, -EINVAL, "owner_id \"%s\" is not an id", owner_id);
	if (page_token && *page_token && !ca_is_uuid(page_token))
		return fail(ctx, -EINVAL, "invalid page_token");
	r = with_conn(svc, &c);
	if (r < 0)
		return r;
	r = ca_store_identity_list(c, tenant_of(ctx), owner_id, state, limit, page_token, ret,
				   ret_n);
	db_release(svc->db, c);
	if (r >= 0 &&
	    (r = next_token(*ret_n, limit, *ret_n ? (*ret)[*ret_n - 1].id : "", ret_next)) < 0) {
		for (size_t i = 0; i < *ret_n; i++)
			ca_identity_clear(&(*ret)[i]);
		free(*ret);
	}
	return r;
}

/* Transitions and issuance ---------------------------------------------------------- */

/* Whether the edge issues a certificate. */
static bool edge_issues(enum ca_state from, enum ca_state to)
{
	return to == CA_STATE_ISSUED || (from == CA_STATE_RENEWING && to == CA_STATE_DEPLOYED);
}

/* A transition being written: the identity as read, the edge, and what goes with it. */
struct transition {
	struct ca_identity *ident;    /* as read; updated to the outcome by apply */
	enum ca_state from, to;	      /* from: the state read, which an issuance was signed for */
	int reason;		      /* revoked: RFC 5280 code */
	const char *note;	      /* the request's reason text */
	struct crypto_issued *issued; /* the signed certificate, or NULL */
	struct ca_cert *cert;	      /* the reply's certificate, or NULL */
	bool guessed;		      /* ident came from the cache: a refusal is returned as
				       * it is (the caller reads again and retries) */
};

/* The outcome, for the reply and its stored copy: fixed fields only (apply may rerun). */
static void transition_outcome(struct transition *t, int64_t now)
{
	struct ca_identity *i = t->ident;

	i->state = t->to;
	i->update_time = now;
	if (t->to == CA_STATE_REVOKED)
		snprintf(i->revocation_reason, sizeof(i->revocation_reason), "%s",
			 ca_reason_name(t->reason));
	if (t->issued)
		snprintf(i->current_serial, sizeof(i->current_serial), "%s", t->issued->serial);
}

/* Any other edge: lock the row, check the edge against its state, update, revoke. */
static int state_apply(struct op *op, struct db_tx *tx, struct transition *t, int64_t now,
		       enum ca_state *locked, char *old_serial)
{
	const char *tenant = tenant_of(op->ctx);
	const char *id = t->ident->id;
	int r;

	r = ca_store_identity_lock(tx, tenant, id, locked, old_serial);
	if (r < 0)
		return r;
	if (ca_transition_check(*locked, t->to) < 0)
		return ca_transition_message(id, *locked, t->to, op->ctx->err,
					     sizeof(op->ctx->err));
	if (edge_issues(*locked, t->to))
		return fail(op->ctx, -EBUSY, "identity %s changed to %s meanwhile; retry", id,
			    ca_state_name(*locked));
	r = ca_store_identity_set_state(tx, tenant, id, t->to, now,
					t->to == CA_STATE_REVOKED ? ca_reason_name(t->reason) :
								    NULL);
	if (r >= 0 && t->to == CA_STATE_REVOKED)
		r = ca_store_certs_revoke(tx, tenant, id, now, t->reason);
	if (r >= 0)
		transition_outcome(t, now);
	return r;
}

/*
 * The data of a transition's audit record and event, and of the certificate.recorded ones
 * when it issued (*ret_cert; NULL otherwise). locked: the state the change moved from.
 */
static int transition_data(const struct op *op, const struct transition *t, enum ca_state locked,
			   const char *old_serial, json_t **ret_data, json_t **ret_cert)
{
	const struct ca_identity *i = t->ident;
	json_t *d, *c = NULL;

	d = json_pack("{s:s, s:s, s:s, s:s}", "identity_id", i->id, "from", ca_state_name(locked),
		      "to", ca_state_name(t->to), "reason",
		      t->to == CA_STATE_REVOKED ? ca_reason_name(t->reason) :
						  (t->note ? t->note : ""));
	if (d && has_request_id(op->ctx))
		json_object_set_new(d, "request_id", json_string(op->ctx->request_id));
	if (d && t->issued)
		json_object_set_new(d, "serial", json_string(t->issued->serial));
	if (t->issued)
		c = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "serial", t->issued->serial,
			      "identity_id", i->id, "fingerprint", t->issued->fingerprint,
			      "key_algorithm", t->issued->key_algorithm, "not_before",
			      (json_int_t)t->issued->not_before, "not_after",
			      (json_int_t)t->issued->not_after, "supersedes", old_serial);
	if (!d || (t->issued && !c)) {
		json_decref(d);
		json_decref(c);
		return -ENOMEM;
	}
	*ret_data = d;
	*ret_cert = c;
	return 0;
}

/* Audit record and event of one change from its JSON text (the record() of a built one). */
static int record_text(struct db_tx *tx, const struct ca_ctx *ctx, const char *type,
		       const char *resource, const char *js)
{
	struct audit_entry e = { .tenant_id = tenant_of(ctx),
				 .type = type,
				 .actor = actor_of(ctx),
				 .resource = resource,
				 .data_json = js };
	int r = audit_record(tx, &e);

	return r < 0 ? r : bus_event(tx, tenant_of(ctx), type, actor_of(ctx), js);
}

/* Any edge that issues nothing: runs inside the change (the row is locked there). */
static int transition_apply(struct op *op, struct db_tx *tx)
{
	struct transition *t = op->ud;
	struct ca_identity *i = t->ident;
	char old_serial[CRYPTO_SERIAL_HEX_LEN + 1] = "", res[64];
	enum ca_state locked = t->from;
	int64_t now = ca_now_us();
	json_t *d = NULL, *cert = NULL;
	char *text = NULL;
	int r;

	r = state_apply(op, tx, t, now, &locked, old_serial);
	if (r == -ENOENT)
		return fail(op->ctx, r, "identity %s not found", i->id);
	if (r < 0)
		return r;
	snprintf(res, sizeof(res), "identities/%s", i->id);
	r = transition_data(op, t, locked, old_serial, &d, &cert);
	text = r >= 0 ? json_dumps(d, JSON_COMPACT) : NULL;
	if (r >= 0 && !text)
		r = -ENOMEM;
	if (r >= 0)
		r = record_text(tx, op->ctx, ca_transition_event(locked, t->to), res, text);
	free(text);
	json_decref(d);
	json_decref(cert);
	return r;
}

/*
 * An issuance, prepared on the caller's thread: the item the CA's pre-commit hook writes,
 * and the audit records and events of the transition and of the certificate. The change
 * only attaches copies, so the writer does no JSON or packing work for it.
 */
struct issue_prep {
	struct ca_issue_item *item;
	struct audit_record *rec[2];
	struct bus_event *ev[2];
};

static void issue_prep_clear(struct issue_prep *p)
{
	free(p->item);
	for (int k = 0; k < 2; k++) {
		audit_record_free(p->rec[k]);
		bus_event_free(p->ev[k]);
	}
	memset(p, 0, sizeof(*p));
}

static int prep_record(const struct ca_ctx *ctx, const char *type, const char *resource,
		       const json_t *data, struct audit_record **ret_rec, struct bus_event **ret_ev)
{
	struct audit_entry e = { .tenant_id = tenant_of(ctx),
				 .type = type,
				 .actor = actor_of(ctx),
				 .resource = resource,
				 .data = data };
	int r = audit_prepare(&e, ret_rec);

	return r < 0 ? r :
		       bus_event_prepare_object(tenant_of(ctx), type, actor_of(ctx), data, ret_ev);
}

static int issue_prepare(struct op *op, struct transition *t, struct issue_prep *p)
{
	struct ca_identity *i = t->ident;
	char old_serial[CRYPTO_SERIAL_HEX_LEN + 1], res[64];
	json_t *data = NULL, *cert = NULL;
	struct ca_issue_spec spec = { .tenant = tenant_of(op->ctx),
				      .id = i->id,
				      .from = t->from,
				      .to = t->to,
				      .old_serial = old_serial,
				      .now_us = ca_now_us(),
				      .cert = t->issued,
				      .method = op->ctx->method };
	uint8_t *reply = NULL;
	int r;

	/* the hook moves the identity on only if it still has this state and certificate */
	snprintf(old_serial, sizeof(old_serial), "%s", i->current_serial);
	transition_outcome(t, spec.now_us);
	r = op_pack(op, &reply, &spec.reply_len);
	if (r < 0)
		return r;
	spec.reply = reply;
	spec.request_id = reply ? op->ctx->request_id : NULL;
	r = ca_issue_item_new(&spec, &p->item);
	free(reply);
	if (r >= 0)
		r = transition_data(op, t, t->from, old_serial, &data, &cert);
	snprintf(res, sizeof(res), "identities/%s", i->id);
	if (r >= 0)
		r = prep_record(op->ctx, ca_transition_event(t->from, t->to), res, data, &p->rec[0],
				&p->ev[0]);
	snprintf(res, sizeof(res), "certificates/%s", t->issued->serial);
	if (r >= 0)
		r = prep_record(op->ctx, "certificate.recorded", res, cert, &p->rec[1], &p->ev[1]);
	json_decref(data);
	json_decref(cert);
	return r;
}

/* The change of an issuance: attaches copies; the hook decides and writes. */
static int issue_apply(struct op *op, struct db_tx *tx)
{
	const struct issue_prep *p = op->ud;
	int r;

	op->idem_done = true; /* the hook stores the reply */
	r = ca_issue_item_attach(tx, p->item);
	for (int k = 0; r >= 0 && k < 2; k++) {
		r = audit_attach(tx, p->rec[k]);
		if (r >= 0)
			r = bus_event_attach(tx, p->ev[k]);
	}
	return r;
}

/* Why the hook refused an issuance, as the caller sees it. */
static int issue_refused(struct ca_service *svc, struct ca_ctx *ctx, const struct transition *t,
			 int r)
{
	const char *id = t->ident->id;
	struct ca_identity now = { 0 };
	int rr;

	if (r == -EEXIST)
		return idem_in_progress(ctx);
	if (r == -EBUSY)
		return fail(ctx, r, "identity %s is being changed by another call; retry", id);
	if (r == -ENOENT)
		return fail(ctx, r, "identity %s not found", id);
	if (r != -ESTALE)
		return r;
	rr = identity_read(svc, ctx, id, false, &now);
	if (rr < 0)
		return rr;
	if (ca_transition_check(now.state, t->to) < 0)
		r = ca_transition_message(id, now.state, t->to, ctx->err, sizeof(ctx->err));
	else
		r = fail(ctx, -EBUSY, "identity %s changed to %s meanwhile; retry", id,
			 ca_state_name(now.state));
	ca_identity_clear(&now);
	return r;
}

/* The certificate of a fresh issuance as the reply shows it; takes issued's pem and key. */
static int cert_from_issued(const char *identity_id, struct crypto_issued *is, struct ca_cert **ret)
{
	struct ca_cert *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	snprintf(c->serial, sizeof(c->serial), "%s", is->serial);
	snprintf(c->identity_id, sizeof(c->identity_id), "%s", identity_id);
	c->pem = is->cert_pem;
	c->key_pem = is->key_pem;
	is->cert_pem = is->key_pem = NULL;
	c->not_before = is->not_before;
	c->not_after = is->not_after;
	*ret = c;
	return 0;
}

/*
 * The SANs an identity's certificate carries: its DNS names and addresses, or its name as
 * the one DNS name when it has neither and the name is a DNS name.
 */
static void identity_sans(const struct ca_identity *i, const char *const **ret_dns,
			  size_t *ret_n_dns)
{
	*ret_dns = (const char *const *)i->dns_names;
	*ret_n_dns = i->n_dns_names;
	if (!i->n_dns_names && !i->n_ip_addresses && ca_validate_dns_name(i->name, NULL, 0) == 0) {
		*ret_dns = (const char *const *)&i->name;
		*ret_n_dns = 1;
	}
}

/* Checks and signs an issuance for identity i moving to `to`. */
static int prepare_issue(struct ca_service *svc, struct ca_ctx *ctx, struct ca_identity *i,
			 enum ca_state to, const char *csr_pem, int64_t ttl,
			 struct crypto_issued *ret)
{
	struct crypto_issue_req req = { 0 };
	struct crypto_csr_info info;
	struct ca_issuance what = { 0 };
	char *e = ctx->err;
	size_t el = sizeof(ctx->err);
	int r;

	if (ca_identity_issuable(i->kind, e, el) < 0)
		return -EOPNOTSUPP;
	if (ca_ttl_resolve(ttl ? ttl : i->ttl_seconds, svc->cfg.max_ttl_seconds, &req.ttl_seconds,
			   e, el) < 0)
		return -EINVAL;
	identity_sans(i, &req.dns_names, &req.n_dns_names);
	req.ips = (const char *const *)i->ip_addresses;
	req.n_ips = i->n_ip_addresses;
	req.cn = i->name;
	req.key_type = i->key_type;
	if (csr_pem && *csr_pem) {
		if (crypto_csr_check(csr_pem, req.dns_names, req.n_dns_names, req.ips, req.n_ips,
				     &info, e, el) < 0)
			return -EINVAL;
		req.csr_pem = csr_pem;
	}
	what = (struct ca_issuance){ .identity_id = i->id,
				     .dns_names = req.dns_names,
				     .n_dns_names = req.n_dns_names,
				     .ip_addresses = req.ips,
				     .n_ip_addresses = req.n_ips,
				     .ttl_seconds = req.ttl_seconds,
				     .key_type = req.csr_pem ? info.key_algorithm :
							       crypto_key_type_name(i->key_type),
				     .to_state = to,
				     .from_csr = req.csr_pem != NULL };
	if (svc->check) {
		r = svc->check(ctx->call, &what, svc->check_ud);
		if (r < 0) {
			ctx->check_failed = true;
			return fail(ctx, r, "issuance refused by policy");
		}
	}
	r = crypto_issue(svc->ca, &req, ret, e, el);
	return r == -EINVAL ? r : (r < 0 ? fail(ctx, r, "signing failed") : r);
}

/* Writes transition t of the identity read in t->ident; fills t->cert on issuance. */
static int transition_write(struct ca_service *svc, struct ca_ctx *ctx, struct transition *t,
			    void *result, int (*after)(struct transition *t))
{
	struct op op = { .svc = svc, .ctx = ctx, .apply = transition_apply, .ud = t };
	struct issue_prep prep = { 0 };
	int r;

	if (t->issued) {
		r = cert_from_issued(t->ident->id, t->issued, &t->cert);
		if (r < 0)
			return r;
		op.key_holder = t->cert;
	}
	if (after)
		after(t);
	op.result = result ? result : t->cert;
	if (t->issued) {
		r = issue_prepare(&op, t, &prep);
		if (r < 0) {
			issue_prep_clear(&prep);
			return r;
		}
		op.apply = issue_apply;
		op.ud = &prep;
	}
	r = op_write(&op);
	issue_prep_clear(&prep);
	if (r < 0 && t->issued && !t->guessed)
		r = issue_refused(svc, ctx, t, r);
	if (r == 0 && t->to == CA_STATE_REVOKED)
		r = ca_crl_refresh(svc);
	return r;
}

static int attach_cert(struct transition *t)
{
	t->ident->cert = t->cert;
	return 0;
}

/*
 * The identity an issuance starts from: this server's cached copy when it has one (*guessed;
 * the hook checks its state and serial under the row lock), else read_for_write.
 */
static int issue_source(struct ca_service *svc, struct ca_ctx *ctx, const char *id,
			bool use_cache, struct ca_identity *ret, bool *guessed)
{
	*guessed = false;
	if (use_cache && ca_ident_cache_get(svc->idents, tenant_of(ctx), id, ret) == 0) {
		*guessed = true;
		return 0;
	}
	return read_for_write(svc, ctx, id, ret);
}

/* After a guessed attempt: true when the answer must come from a fresh read instead. */
static bool guess_failed(struct ca_service *svc, struct ca_ctx *ctx, const char *id, int r)
{
	if (r != -ESTALE && r != -EEXIST && r != -EBUSY && r != -ENOENT && r != -EILSEQ)
		return false;
	/* moved on elsewhere, a retried request_id, or a twin: the database decides */
	ca_ident_cache_drop(svc->idents, tenant_of(ctx), id);
	ctx->err[0] = '\0';
	ctx->check_failed = false;
	return true;
}

static int transition_once(struct ca_service *svc, struct ca_ctx *ctx, const char *id,
			   const char *to, const char *reason, bool use_cache,
			   struct ca_identity *ret, bool *retry)
{
	struct ca_identity i = { 0 };
	struct crypto_issued issued = { 0 };
	struct transition t = { .ident = &i, .note = reason };
	int r;

	/* the arguments first: a retry repeats them, so its stored reply still wins */
	ca_ctx_clear(ctx);
	if (!to || !*to)
		return fail(ctx, -EINVAL, "to is required");
	if (ca_state_parse(to, &t.to, ctx->err, sizeof(ctx->err)) < 0)
		return -EINVAL;
	if (t.to == CA_STATE_REVOKED &&
	    ca_reason_parse(reason, &t.reason, ctx->err, sizeof(ctx->err)) < 0)
		return -EINVAL;
	r = issue_source(svc, ctx, id, use_cache, &i, &t.guessed);
	if (r == 0 && t.guessed && !edge_issues(i.state, t.to)) {
		/* only issuances start from a guess: the rest read the row */
		ca_identity_clear(&i);
		memset(&i, 0, sizeof(i));
		t.guessed = false;
		r = read_for_write(svc, ctx, id, &i);
	}
	if (r != 0)
		return r;
	if (ca_transition_check(i.state, t.to) < 0) {
		r = ca_transition_message(i.id, i.state, t.to, ctx->err, sizeof(ctx->err));
		goto out;
	}
	t.from = i.state;
	if (edge_issues(i.state, t.to)) {
		r = prepare_issue(svc, ctx, &i, t.to, NULL, 0, &issued);
		if (r < 0)
			goto out;
		t.issued = &issued;
	}
	r = transition_write(svc, ctx, &t, &i, attach_cert);
	if (r == 0 && t.issued)
		ca_ident_cache_put(svc->idents, tenant_of(ctx), &i);
	else if (r == 0)
		ca_ident_cache_drop(svc->idents, tenant_of(ctx), id);
	if (r == 0) {
		*ret = i;
		memset(&i, 0, sizeof(i));
	}
out:
	if (t.guessed && guess_failed(svc, ctx, id, r))
		*retry = true;
	crypto_issued_clear(&issued);
	ca_identity_clear(&i);
	return r;
}

int ca_identity_transition(struct ca_service *svc, struct ca_ctx *ctx, const char *id,
			   const char *to, const char *reason, struct ca_identity *ret)
{
	bool retry = false;
	int r = transition_once(svc, ctx, id, to, reason, true, ret, &retry);

	return retry ? transition_once(svc, ctx, id, to, reason, false, ret, &retry) : r;
}

static int issue_once(struct ca_service *svc, struct ca_ctx *ctx, const char *identity_id,
		      const char *csr_pem, int64_t ttl_seconds, bool use_cache,
		      struct ca_cert *ret, bool *retry)
{
	struct ca_identity i = { 0 };
	struct crypto_issued issued = { 0 };
	struct transition t = { .ident = &i };
	int r;

	/* the arguments first: a retry repeats them, so its stored reply still wins */
	ca_ctx_clear(ctx);
	if (!identity_id || !*identity_id)
		return fail(ctx, -EINVAL, "identity_id is required");
	if (ttl_seconds < 0)
		return fail(ctx, -EINVAL, "ttl_seconds must not be negative");
	r = issue_source(svc, ctx, identity_id, use_cache, &i, &t.guessed);
	if (r != 0)
		return r;
	t.from = i.state;
	if (i.state == CA_STATE_REQUESTED) {
		t.to = CA_STATE_ISSUED;
	} else if (i.state == CA_STATE_RENEWING) {
		t.to = CA_STATE_DEPLOYED;
	} else {
		r = fail(ctx, -EILSEQ,
			 "identity %s is %s: certificates are issued to requested identities "
			 "(-> issued) and renewing ones (-> deployed)",
			 i.id, ca_state_name(i.state));
		goto out;
	}
	r = prepare_issue(svc, ctx, &i, t.to, csr_pem, ttl_seconds, &issued);
	if (r < 0)
		goto out;
	t.issued = &issued;
	r = transition_write(svc, ctx, &t, NULL, NULL);
	if (r == 0) {
		ca_ident_cache_put(svc->idents, tenant_of(ctx), &i);
		*ret = *t.cert;
		free(t.cert);
		t.cert = NULL;
	}
out:
	if (t.guessed && guess_failed(svc, ctx, identity_id, r))
		*retry = true;
	if (t.cert) {
		ca_cert_clear(t.cert);
		free(t.cert);
	}
	crypto_issued_clear(&issued);
	ca_identity_clear(&i);
	return r;
}

int ca_cert_issue(struct ca_service *svc, struct ca_ctx *ctx, const char *identity_id,
		  const char *csr_pem, int64_t ttl_seconds, struct ca_cert *ret)
{
	bool retry = false;
	int r = issue_once(svc, ctx, identity_id, csr_pem, ttl_seconds, true, ret, &retry);

	return retry ? issue_once(svc, ctx, identity_id, csr_pem, ttl_seconds, false, ret, &retry) :
		       r;
}

int ca_cert_get(struct ca_service *svc, struct ca_ctx *ctx, const char *serial, struct ca_cert *ret)
{
	struct db_conn *c = NULL;
	int r;

	if (!serial || !*serial)
		return fail(ctx, -EINVAL, "serial is required");
	r = with_conn(svc, &c);
	if (r < 0)
		return r;
	r = ca_store_cert_get(c, tenant_of(ctx), serial, ret);
	db_release(svc->db, c);
	return r == -ENOENT ? fail(ctx, r, "certificate %s not found", serial) : r;
}

static bool is_serial(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= CRYPTO_SERIAL_HEX_LEN && strspn(s, "0123456789abcdef") == n;
}

int ca_cert_list(struct ca_service *svc, struct ca_ctx *ctx, const char *identity_id, int page_size,
		 const char *page_token, struct ca_cert **ret, size_t *ret_n, char **ret_next)
{
	struct db_conn *c = NULL;
	int limit = page_limit(page_size), r;

	if (identity_id && *identity_id && !ca_is_uuid(identity_id))
		return fail(ctx, -EINVAL, "identity_id \"%s\" is not an id", identity_id);
	if (page_token && *page_token && !is_serial(page_token))
		return fail(ctx, -EINVAL, "invalid page_token");
	r = with_conn(svc, &c);
	if (r < 0)
		return r;
	r = ca_store_cert_list(c, tenant_of(ctx), identity_id, limit, page_token, ret, ret_n);
	db_release(svc->db, c);
	if (r >= 0 && (r = next_token(*ret_n, limit, *ret_n ? (*ret)[*ret_n - 1].serial : "",
				      ret_next)) < 0) {
		for (size_t i = 0; i < *ret_n; i++)
			ca_cert_clear(&(*ret)[i]);
		free(*ret);
	}
	return r;
}

/* The CRL ------------------------------------------------------------------------------- */

int ca_crl_get(struct ca_service *svc, struct ca_ctx *ctx, struct ca_crl *ret)
{
	struct db_param p = DB_TEXT(tenant_of(ctx));
	struct db_rows *rows = NULL;
	struct db_conn *c = NULL;
	int r;

	r = with_conn(svc, &c);
	if (r < 0)
		return r;
	r = db_exec(c,
		    "SELECT crl_der, crl_pem, extract(epoch from this_update)::bigint, "
		    "extract(epoch from next_update)::bigint, crl_number FROM ca_state "
		    "WHERE tenant_id = $1 AND crl_der IS NOT NULL",
		    &p, 1, &rows);
	db_release(svc->db, c);
	if (r >= 0 && rows->n_rows == 0)
		r = fail(ctx, -EAGAIN, "no CRL has been published yet");
	if (r >= 0) {
		memset(ret, 0, sizeof(*ret));
		ret->der_len = rows->lengths[0];
		ret->der = malloc(ret->der_len);
		ret->pem = strdup(db_rows_get(rows, 0, 1));
		ret->this_update = strtoll(db_rows_get(rows, 0, 2), NULL, 10);
		ret->next_update = strtoll(db_rows_get(rows, 0, 3), NULL, 10);
		ret->number = strtoll(db_rows_get(rows, 0, 4), NULL, 10);
		if (!ret->der || !ret->pem) {
			ca_crl_clear(ret);
			r = -ENOMEM;
		} else {
			memcpy(ret->der, db_rows_get(rows, 0, 0), ret->der_len);
		}
	}
	db_rows_free(rows);
	return r;
}

struct crl_build {
	struct ca_service *svc;
	bool force; /* false (timer): only when the current one is an interval old */
};

/* One transaction: lock ca_state, read the revoked certificates, sign, store number + 1. */
static int crl_tx(struct db_conn *c, void *ud)
{
	struct crl_build *b = ud;
	struct ca_service *svc = b->svc;
	struct db_param p = DB_TEXT(DB_DEFAULT_TENANT);
	struct db_rows *st = NULL, *rows = NULL;
	struct crypto_revoked *rv = NULL;
	int64_t now = ca_now_us() / 1000000, interval = svc->cfg.crl_interval_ms / 1000;
	uint8_t *der = NULL;
	size_t der_len = 0;
	char *pem = NULL;
	uint64_t number;
	int r;

	if (interval < 1)
		interval = 1;
	r = db_exec(c,
		    "SELECT crl_number, coalesce(extract(epoch from this_update)::bigint, 0) "
		    "FROM ca_state WHERE tenant_id = $1 FOR UPDATE",
		    &p, 1, &st);
	if (r < 0)
		goto out;
	if (st->n_rows == 0) {
		r = -ENOENT;
		goto out;
	}
	if (!b->force && now - strtoll(db_rows_get(st, 0, 1), NULL, 10) < interval) {
		r = 0; /* another server refreshed it */
		goto out;
	}
	number = strtoull(db_rows_get(st, 0, 0), NULL, 10) + 1;
	r = db_exec(c,
		    "SELECT serial, extract(epoch from revoked_at)::bigint, revocation_reason "
		    "FROM certificates WHERE tenant_id = $1 AND revoked_at IS NOT NULL "
		    "AND not_after > now() ORDER BY serial",
		    &p, 1, &rows);
	if (r < 0)
		goto out;
	rv = calloc(rows->n_rows ? rows->n_rows : 1, sizeof(*rv));
	if (!rv) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < rows->n_rows; i++)
		rv[i] = (struct crypto_revoked){ .serial = db_rows_get(rows, i, 0),
						 .time = strtoll(db_rows_get(rows, i, 1), NULL, 10),
						 .reason = atoi(db_rows_get(rows, i, 2)) };
	r = crypto_crl_build(svc->ca, rv, rows->n_rows, number, now, now + 2 * interval, &der,
			     &der_len, &pem, NULL, 0);
	if (r < 0)
		goto out;
	{
		char num[24], tu[24], nu[24];
		struct db_param q[6] = { DB_TEXT(DB_DEFAULT_TENANT),
					 DB_TEXT(num),
					 DB_BYTES(der, der_len),
					 DB_TEXT(pem),
					 DB_TEXT(tu),
					 DB_TEXT(nu) };

		snprintf(num, sizeof(num), "%" PRIu64, number);
		snprintf(tu, sizeof(tu), "%" PRId64, now);
		snprintf(nu, sizeof(nu), "%" PRId64, now + 2 * interval);
		r = db_exec(c,
			    "UPDATE ca_state SET crl_number = $2, crl_der = $3, crl_pem = $4, "
			    "this_update = to_timestamp($5::bigint), "
			    "next_update = to_timestamp($6::bigint) WHERE tenant_id = $1",
			    q, 6, NULL);
	}
out:
	free(rv);
	free(der);
	free(pem);
	db_rows_free(rows);
	db_rows_free(st);
	return r;
}

static int crl_build(struct ca_service *svc, bool force)
{
	struct crl_build b = { .svc = svc, .force = force };

	return db_transaction(svc->db, false, crl_tx, &b);
}

int ca_crl_refresh(struct ca_service *svc)
{
	uint64_t mine, target;
	int r = 0;

	/* Callers that arrive while a build runs share the next one: it starts after their
	 * commits, so it sees their revocations. */
	pthread_mutex_lock(&svc->crl_lock);
	mine = ++svc->crl_want;
	while (svc->crl_done < mine && r >= 0) {
		if (svc->crl_running) {
			pthread_cond_wait(&svc->crl_cond, &svc->crl_lock);
			continue;
		}
		svc->crl_running = true;
		target = svc->crl_want;
		pthread_mutex_unlock(&svc->crl_lock);
		r = crl_build(svc, true);
		pthread_mutex_lock(&svc->crl_lock);
		svc->crl_running = false;
		if (r >= 0 && target > svc->crl_done)
			svc->crl_done = target;
		pthread_cond_broadcast(&svc->crl_cond);
	}
	pthread_mutex_unlock(&svc->crl_lock);
	return r;
}

static void *crl_timer(void *ud)
{
	struct ca_service *svc = ud;
	int64_t period = svc->cfg.crl_interval_ms / 4;
	struct timespec ts;

	if (period < 250)
		period = 250;
	pthread_mutex_lock(&svc->crl_lock);
	while (!svc->stopping) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += period / 1000;
		ts.tv_nsec += (period % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&svc->timer_cond, &svc->crl_lock, &ts);
		if (svc->stopping)
			break;
		pthread_mutex_unlock(&svc->crl_lock);
		crl_build(svc, false); /* a failure is retried at the next tick */
		pthread_mutex_lock(&svc->crl_lock);
	}
	pthread_mutex_unlock(&svc->crl_lock);
	return NULL;
}

/* Opening -------------------------------------------------------------------------------- */

int ca_config_from_cfg(const struct cfg *c, struct ca_config *ret)
{
	enum crypto_key_type kt;

	if (!c || crypto_key_type_from_name(cfg_ca_key_type_name(c->ca.key_type), &kt) < 0)
		return -EINVAL;
	*ret = (struct ca_config){ .key_type = kt,
				   .subject_cn = c->ca.subject_cn,
				   .validity_days = (int)(c->ca.validity_ms / 86400000),
				   .max_ttl_seconds = c->ca.max_ttl_ms / 1000,
				   .crl_interval_ms = c->ca.crl_interval_ms };
	return 0;
}

struct ca_load {
	struct ca_service *svc;
	char err[256];
	int version;
	char *chain;
	uint8_t *sealed;
	size_t sealed_len;
};

/* Under the advisory lock: read the newest CA key, or create and insert one first. */
static int ca_load_tx(struct db_conn *c, void *ud)
{
	struct ca_load *l = ud;
	struct ca_service *svc = l->svc;
	struct db_param p[2] = { DB_TEXT(DB_DEFAULT_TENANT) };
	struct crypto_ca *ca = NULL;
	char *key = NULL;
	char lock[24];
	int r;

	snprintf(lock, sizeof(lock), "%lld", CA_LOCK_ID);
	p[1] = DB_TEXT(lock);
	r = db_exec(c, "SELECT pg_advisory_xact_lock($2::bigint), $1::uuid", p, 2, NULL);
	if (r < 0)
		return r;
	r = db_exec(c, "INSERT INTO ca_state (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", p, 1,
		    NULL);
	if (r < 0)
		return r;
	free(l->chain);
	free(l->sealed);
	l->chain = NULL;
	l->sealed = NULL;
	r = ca_store_key_get(c, DB_DEFAULT_TENANT, "ca", &l->version, &l->chain, &l->sealed,
			     &l->sealed_len);
	if (r != -ENOENT)
		return r;
	r = crypto_ca_create(svc->cfg.key_type, svc->cfg.subject_cn, svc->cfg.validity_days, &ca,
			     l->err, sizeof(l->err));
	if (r >= 0)
		r = crypto_ca_key_pem(ca, &key);
	if (r >= 0)
		r = ca_store_key_put(c, svc->kek, DB_DEFAULT_TENANT, "ca", 1,
				     crypto_ca_bundle_pem(ca), key);
	if (key) {
		OPENSSL_cleanse(key, strlen(key));
		free(key);
	}
	crypto_ca_free(ca);
	if (r < 0)
		return r;
	return ca_store_key_get(c, DB_DEFAULT_TENANT, "ca", &l->version, &l->chain, &l->sealed,
				&l->sealed_len);
}

static int ca_load(struct ca_service *svc, char *err, size_t errlen)
{
	struct ca_load l = { .svc = svc };
	uint8_t *pt = NULL;
	size_t n = 0;
	char *key = NULL;
	int r;

	r = db_transaction(svc->db, false, ca_load_tx, &l);
	if (r >= 0)
		r = ca_store_key_open(svc->kek, DB_DEFAULT_TENANT, "ca", l.version, l.sealed,
				      l.sealed_len, &pt, &n);
	if (r >= 0) {
		key = malloc(n + 1);
		if (key) {
			memcpy(key, pt, n);
			key[n] = '\0';
			r = crypto_ca_load(l.chain, key, &svc->ca, err, errlen);
			OPENSSL_cleanse(key, n);
			free(key);
		} else {
			r = -ENOMEM;
		}
	}
	if (r < 0 && l.err[0] && err)
		snprintf(err, errlen, "%s", l.err);
	kek_free_plain(pt, n);
	free(l.chain);
	free(l.sealed);
	return r;
}

int ca_service_open(struct db *db, const struct kek *kek, struct bus *bus,
		    const struct ca_config *cfg, struct ca_service **ret)
{
	struct ca_service *svc;
	struct ca_config def = { 0 };
	struct db_conn *c = NULL;
	struct db_rows *rows = NULL;
	struct db_param p = DB_TEXT(DB_DEFAULT_TENANT);
	char err[256] = "";
	int r;

	if (!db || !kek || !ret)
		return -EINVAL;
	svc = calloc(1, sizeof(*svc));
	if (!svc)
		return -ENOMEM;
	svc->db = db;
	svc->kek = kek;
	svc->bus = bus;
	svc->cfg = cfg ? *cfg : def;
	if (!svc->cfg.max_ttl_seconds)
		svc->cfg.max_ttl_seconds = 90 * 86400LL;
	if (!svc->cfg.crl_interval_ms)
		svc->cfg.crl_interval_ms = 3600000;
	pthread_mutex_init(&svc->crl_lock, NULL);
	pthread_cond_init(&svc->crl_cond, NULL);
	pthread_cond_init(&svc->timer_cond, NULL);
	/* issuances are written by the CA's pre-commit hook, before audit records and events */
	r = db_set_precommit(db, DB_ITEM_ISSUANCE, ca_store_issue_hook, NULL);
	if (r >= 0)
		r = ca_ident_cache_new(CA_IDENT_CACHE_MAX, &svc->idents);
	if (r >= 0)
		r = ca_load(svc, err, sizeof(err));
	if (r < 0)
		goto fail;
	/* A CRL at once when the database has none (first start, or after `ca import`). */
	r = with_conn(svc, &c);
	if (r >= 0) {
		r = db_exec(c,
			    "SELECT 1 FROM ca_state WHERE tenant_id = $1 AND crl_der IS NOT NULL",
			    &p, 1, &rows);
		db_release(db, c);
	}
	if (r >= 0 && rows->n_rows == 0)
		r = ca_crl_refresh(svc);
	db_rows_free(rows);
	if (r < 0)
		goto fail;
	if (svc->cfg.crl_interval_ms > 0) {
		r = -pthread_create(&svc->timer, NULL, crl_timer, svc);
		if (r < 0)
			goto fail;
		svc->timer_started = true;
	}
	*ret = svc;
	return 0;
fail:
	ca_service_close(svc);
	return r;
}

struct ca_service *ca_service_close(struct ca_service *svc)
{
	if (!svc)
		return NULL;
	if (svc->timer_started) {
		pthread_mutex_lock(&svc->crl_lock);
		svc->stopping = true;
		pthread_cond_broadcast(&svc->timer_cond);
		pthread_mutex_unlock(&svc->crl_lock);
		pthread_join(svc->timer, NULL);
	}
	crypto_ca_free(svc->ca);
	ca_ident_cache_free(svc->idents);
	pthread_cond_destroy(&svc->crl_cond);
	pthread_cond_destroy(&svc->timer_cond);
	pthread_mutex_destroy(&svc->crl_lock);
	free(svc->rpc_handlers);
	free(svc);
	return NULL;
}

void ca_service_set_issuance_check(struct ca_service *svc, ca_issuance_check_fn fn, void *ud)
{
	svc->check = fn;
	svc->check_ud = ud;
}

const char *ca_service_bundle_pem(const struct ca_service *svc)
{
	return crypto_ca_bundle_pem(svc->ca);
}
