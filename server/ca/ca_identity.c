/*
 * Identities of the CA service and their lifecycle transitions: create, get, list, and
 * every edge of the state machine (ca.c decides which are allowed). A create is prepared on
 * the caller's thread (row, reply, audit record, event) and written with the other creates
 * of its batch by the create hook (ca_store_ident.c). An edge that issues a
 * certificate is signed on the caller's thread and written by ca_issue.c; any other edge
 * runs inside the change, where the identity row is locked (SELECT ... FOR UPDATE) and its
 * state checked again, so a transition another call won in between is refused
 * (FAILED_PRECONDITION) or answered with a retry. A revocation rebuilds the CRL before the
 * call returns (ca_crl.c).
 *
 * Assumes the mutation plumbing of ca_op.c and the identity cache of ca_cache.c: a
 * transition that issues may start from this server's cached copy (a guess the hook
 * verifies under the row lock), and is tried once more from a fresh read when it was wrong.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ca-internal.h"

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
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

/*
 * A create, prepared on the caller's thread: the item the create hook writes (row and
 * reply) and the audit record and event. The change only attaches copies, so the writer
 * does no packing or JSON work for it and runs no statement of its own for it.
 */
struct ident_prep {
	struct ca_ident_item *item;
	struct change_prepared *rec; /* identity.created */
};

static void ident_prep_clear(struct ident_prep *p)
{
	free(p->item);
	change_prepared_free(p->rec);
	memset(p, 0, sizeof(*p));
}

static int ident_prepare(struct ca_op *op, struct ident_prep *p)
{
	const struct ca_identity *i = op->result;
	struct ca_ident_spec spec = { .tenant = ca_tenant_of(op->ctx),
				      .ident = i,
				      .kind = op->svc->create_kind,
				      .key = op->ctx->key };
	uint8_t *reply = NULL;
	json_t *data;
	char res[64];
	int r;

	r = ca_op_pack(op, &reply, &spec.reply_len);
	if (r < 0)
		return r;
	spec.reply = reply;
	r = ca_ident_item_new(&spec, &p->item);
	free(reply);
	if (r < 0)
		return r;
	data = json_pack("{s:s, s:s, s:s, s:s}", "identity_id", i->id, "owner_id", i->owner_id,
			 "kind", ca_identity_kind_name(i->kind), "name", i->name);
	if (!data)
		return -ENOMEM;
	snprintf(res, sizeof(res), "identities/%.*s", CA_ID_LEN, i->id);
	r = ca_prep_record(op->ctx, "identity.created", res, data, &p->rec);
	json_decref(data);
	return r;
}

/* The change of a create: attaches copies; the create hook decides and writes. */
static int ident_apply(struct ca_op *op, struct db_tx *tx)
{
	const struct ident_prep *p = op->ud;
	int r = ca_ident_item_attach(tx, p->item);

	return r < 0 ? r : change_attach(tx, p->rec);
}

/* Writes the create of i; the hook's refusals as the caller sees them. */
static int ident_write(struct ca_service *svc, struct ca_ctx *ctx, struct ca_identity *i)
{
	struct ident_prep prep = { 0 };
	struct ca_op op = { .svc = svc,
			    .ctx = ctx,
			    .apply = ident_apply,
			    .result = i,
			    .hook_stores = true, /* the create hook stores the reply */
			    .ud = &prep };
	int r = ident_prepare(&op, &prep);

	if (r >= 0)
		r = ca_op_write(&op);
	ident_prep_clear(&prep);
	if (r == -ENOENT)
		return ca_fail(ctx, r, "owner %s not found", i->owner_id);
	if (r == -EEXIST && ca_has_request_id(ctx))
		return ca_twin(svc, ctx); /* a twin committed first: its answer is ours */
	return r;
}

/*
 * A create checks only the request's own values before its change, and the create hook
 * stores the reply under the key in the statement that inserts the row: so the key is looked
 * up only after a failure (ca_replayed_on_failure, ca_twin), not before every create. A retry
 * of a committed create is refused there (the key is taken) and then answers with the stored
 * reply.
 */
static int identity_create(struct ca_service *svc, struct ca_ctx *ctx,
			   const struct ca_identity_spec *s, struct ca_identity *ret)
{
	struct ca_identity i = { 0 };
	struct ca_issuance what = { 0 };
	char *e = ctx->err;
	size_t el = sizeof(ctx->err);
	int r;

	ca_ctx_clear(ctx);
	if (ca_identity_kind_parse(s->kind, &i.kind, e, el) < 0 ||
	    ca_validate_name("name", s->name, CA_NAME_MAX, e, el) < 0)
		return -EINVAL;
	if (!s->owner_id || !*s->owner_id)
		return ca_fail(ctx, -EINVAL, "owner_id is required");
	if (!crypto_uuid_valid(s->owner_id))
		return ca_fail(ctx, -ENOENT, "owner %s not found", s->owner_id);
	if (ca_validate_sans(s->dns_names, s->n_dns_names, s->ip_addresses, s->n_ip_addresses, e,
			     el) < 0 ||
	    ca_key_type_parse(s->key_type, &i.key_type, e, el) < 0 ||
	    ca_ttl_resolve(s->ttl_seconds, svc->cfg.max_ttl_seconds, &i.ttl_seconds, e, el) < 0)
		return -EINVAL;
	r = crypto_uuid_v4(i.id);
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
	/* the policy's issuance limits hold for what the identity will carry (the gate let a
	 * conditional rule pass without the values) */
	ca_identity_sans(&i, &what.dns_names, &what.n_dns_names);
	what.identity_id = i.name; /* CreateIdentity's resource is identity/<name> */
	what.ip_addresses = (const char *const *)i.ip_addresses;
	what.n_ip_addresses = i.n_ip_addresses;
	what.ttl_seconds = i.ttl_seconds;
	what.key_type = crypto_key_type_name(i.key_type);
	what.to_state = CA_STATE_REQUESTED;
	r = ca_policy_check(svc, ctx, &what);
	if (r >= 0)
		r = ident_write(svc, ctx, &i);
	if (r == 0) {
		change_guess_put(svc->idents, ca_tenant_of(ctx), i.id, &i);
		*ret = i;
	} else {
		ca_identity_clear(&i);
	}
	return r;
}

int ca_identity_create(struct ca_service *svc, struct ca_ctx *ctx, const struct ca_identity_spec *s,
		       struct ca_identity *ret)
{
	return ca_replayed_on_failure(svc, ctx, identity_create(svc, ctx, s, ret));
}

/* Reads an identity; with_cert adds its current certificate. */
int ca_identity_read(struct ca_service *svc, struct ca_ctx *ctx, const char *id, bool with_cert,
		     struct ca_identity *ret)
{
	struct db_conn *c = NULL;
	int r;

	if (!id || !*id)
		return ca_fail(ctx, -EINVAL, "id is required");
	if (!crypto_uuid_valid(id))
		return ca_fail(ctx, -ENOENT, "identity %s not found", id);
	r = ca_with_conn(svc, &c);
	if (r < 0)
		return r;
	r = ca_store_identity_get(c, ca_tenant_of(ctx), id, ret);
	if (r >= 0 && with_cert && ret->current_serial[0]) {
		ret->cert = calloc(1, sizeof(*ret->cert));
		r = ret->cert ? ca_store_cert_get(c, ca_tenant_of(ctx), ret->current_serial,
						  ret->cert) :
				-ENOMEM;
		if (r < 0) {
			free(ret->cert);
			ret->cert = NULL;
			ca_identity_clear(ret);
		}
	}
	db_release(svc->db, c);
	return r == -ENOENT ? ca_fail(ctx, r, "identity %s not found", id) : r;
}

/* ca_replayed() then ca_identity_read(): 1 with the stored reply, 0 with the identity read
 * into *ret, or -errno. */
int ca_read_for_write(struct ca_service *svc, struct ca_ctx *ctx, const char *id,
		      struct ca_identity *ret)
{
	int r = ca_replayed(svc, ctx);

	return r != 0 ? r : ca_identity_read(svc, ctx, id, false, ret);
}

int ca_identity_get(struct ca_service *svc, struct ca_ctx *ctx, const char *id,
		    struct ca_identity *ret)
{
	return ca_identity_read(svc, ctx, id, true, ret);
}

int ca_identity_list(struct ca_service *svc, struct ca_ctx *ctx, const char *owner_id,
		     const char *state, int page_size, const char *page_token,
		     struct ca_identity **ret, size_t *ret_n, char **ret_next)
{
	enum ca_state st;
	struct db_conn *c = NULL;
	int limit = ca_page_limit(page_size), r;

	if (state && *state && ca_state_parse(state, &st, ctx->err, sizeof(ctx->err)) < 0)
		return -EINVAL;
	if (owner_id && *owner_id && !crypto_uuid_valid(owner_id))
		return ca_fail(ctx, -EINVAL, "owner_id \"%s\" is not an id", owner_id);
	if (page_token && *page_token && !crypto_uuid_valid(page_token))
		return ca_fail(ctx, -EINVAL, "invalid page_token");
	r = ca_with_conn(svc, &c);
	if (r < 0)
		return r;
	r = ca_store_identity_list(c, ca_tenant_of(ctx), owner_id, state, limit, page_token, ret,
				   ret_n);
	db_release(svc->db, c);
	if (r >= 0 &&
	    (r = ca_next_token(*ret_n, limit, *ret_n ? (*ret)[*ret_n - 1].id : "", ret_next)) < 0) {
		for (size_t i = 0; i < *ret_n; i++)
			ca_identity_clear(&(*ret)[i]);
		free(*ret);
	}
	return r;
}

/* Whether the edge issues a certificate. */
bool ca_edge_issues(enum ca_state from, enum ca_state to)
{
	return to == CA_STATE_ISSUED || (from == CA_STATE_RENEWING && to == CA_STATE_DEPLOYED);
}

/* The outcome, for the reply and its stored copy: fixed fields only (apply may rerun). */
void ca_transition_outcome(struct ca_transition *t, int64_t now)
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
static int state_apply(struct ca_op *op, struct db_tx *tx, struct ca_transition *t, int64_t now,
		       enum ca_state *locked, char *old_serial)
{
	const char *tenant = ca_tenant_of(op->ctx);
	const char *id = t->ident->id;
	int r;

	r = ca_store_identity_lock(tx, tenant, id, locked, old_serial);
	if (r < 0)
		return r;
	if (ca_transition_check(*locked, t->to) < 0)
		return ca_transition_message(id, *locked, t->to, op->ctx->err,
					     sizeof(op->ctx->err));
	if (ca_edge_issues(*locked, t->to))
		return ca_fail(op->ctx, -EBUSY, "identity %s changed to %s meanwhile; retry", id,
			       ca_state_name(*locked));
	r = ca_store_identity_set_state(tx, tenant, id, t->to, now,
					t->to == CA_STATE_REVOKED ? ca_reason_name(t->reason) :
								    NULL);
	if (r >= 0 && t->to == CA_STATE_REVOKED)
		r = ca_store_certs_revoke(tx, tenant, id, now, t->reason);
	if (r >= 0)
		ca_transition_outcome(t, now);
	return r;
}

/*
 * The data of a transition's audit record and event, and of the certificate.recorded ones
 * when it issued (*ret_cert; NULL otherwise). locked: the state the change moved from.
 */
int ca_transition_data(const struct ca_op *op, const struct ca_transition *t, enum ca_state locked,
		       const char *old_serial, json_t **ret_data, json_t **ret_cert)
{
	const struct ca_identity *i = t->ident;
	json_t *d, *c = NULL;

	d = json_pack("{s:s, s:s, s:s, s:s}", "identity_id", i->id, "from", ca_state_name(locked),
		      "to", ca_state_name(t->to), "reason",
		      t->to == CA_STATE_REVOKED ? ca_reason_name(t->reason) :
						  (t->note ? t->note : ""));
	if (d && ca_has_request_id(op->ctx))
		json_object_set_new(d, "request_id", json_string(op->ctx->key->request_id));
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

/* Any edge that issues nothing: runs inside the change (the row is locked there). */
int ca_transition_apply(struct ca_op *op, struct db_tx *tx)
{
	struct ca_transition *t = op->ud;
	struct ca_identity *i = t->ident;
	char old_serial[CRYPTO_SERIAL_HEX_LEN + 1] = "", res[64];
	enum ca_state locked = t->from;
	int64_t now = ca_now_us();
	json_t *d = NULL, *cert = NULL;
	char *text = NULL;
	int r;

	r = state_apply(op, tx, t, now, &locked, old_serial);
	if (r == -ENOENT)
		return ca_fail(op->ctx, r, "identity %s not found", i->id);
	if (r < 0)
		return r;
	snprintf(res, sizeof(res), "identities/%s", i->id);
	r = ca_transition_data(op, t, locked, old_serial, &d, &cert);
	text = r >= 0 ? json_dumps(d, JSON_COMPACT) : NULL;
	if (r >= 0 && !text)
		r = -ENOMEM;
	if (r >= 0)
		r = ca_record_text(tx, op->ctx, ca_transition_event(locked, t->to), res, text);
	free(text);
	json_decref(d);
	json_decref(cert);
	return r;
}

static int attach_cert(struct ca_transition *t)
{
	t->ident->cert = t->cert;
	return 0;
}

static int transition_once(struct ca_service *svc, struct ca_ctx *ctx, const char *id,
			   const char *to, const char *reason, bool use_cache,
			   struct ca_identity *ret, bool *ret_guessed)
{
	struct ca_identity i = { 0 };
	struct crypto_issued issued = { 0 };
	struct ca_transition t = { .ident = &i, .note = reason };
	int r;

	/* the arguments first: a retry repeats them, so its stored reply still wins */
	ca_ctx_clear(ctx);
	if (!to || !*to)
		return ca_fail(ctx, -EINVAL, "to is required");
	if (ca_state_parse(to, &t.to, ctx->err, sizeof(ctx->err)) < 0)
		return -EINVAL;
	if (t.to == CA_STATE_REVOKED &&
	    ca_reason_parse(reason, &t.reason, ctx->err, sizeof(ctx->err)) < 0)
		return -EINVAL;
	r = ca_issue_source(svc, ctx, id, use_cache, &i, &t.guessed);
	if (r == 0 && t.guessed && !ca_edge_issues(i.state, t.to)) {
		/* only issuances start from a guess: the rest read the row */
		ca_identity_clear(&i);
		memset(&i, 0, sizeof(i));
		t.guessed = false;
		r = ca_read_for_write(svc, ctx, id, &i);
	}
	if (r != 0)
		return r;
	if (ca_transition_check(i.state, t.to) < 0) {
		r = ca_transition_message(i.id, i.state, t.to, ctx->err, sizeof(ctx->err));
		goto out;
	}
	t.from = i.state;
	if (ca_edge_issues(i.state, t.to)) {
		r = ca_prepare_issue(svc, ctx, &i, t.to, NULL, 0, &issued);
		if (r < 0)
			goto out;
		t.issued = &issued;
	}
	r = ca_transition_write(svc, ctx, &t, &i, attach_cert);
	if (r == 0 && t.issued)
		change_guess_put(svc->idents, ca_tenant_of(ctx), i.id, &i);
	else if (r == 0)
		change_guess_drop(svc->idents, ca_tenant_of(ctx), id);
	if (r == 0) {
		*ret = i;
		memset(&i, 0, sizeof(i));
	}
out:
	*ret_guessed = t.guessed;
	crypto_issued_clear(&issued);
	ca_identity_clear(&i);
	return r;
}

struct transition_args {
	struct ca_service *svc;
	struct ca_ctx *ctx;
	const char *id, *to, *reason;
	struct ca_identity *ret;
};

static int transition_attempt(void *ud, bool use_guess, bool *ret_guessed)
{
	struct transition_args *a = ud;

	return transition_once(a->svc, a->ctx, a->id, a->to, a->reason, use_guess, a->ret,
			       ret_guessed);
}

static bool transition_guess_failed(void *ud, int r)
{
	struct transition_args *a = ud;

	return ca_guess_failed(a->svc, a->ctx, a->id, r);
}

int ca_identity_transition(struct ca_service *svc, struct ca_ctx *ctx, const char *id,
			   const char *to, const char *reason, struct ca_identity *ret)
{
	struct transition_args a = { svc, ctx, id, to, reason, ret };

	return change_guess_run(transition_attempt, transition_guess_failed, &a);
}
