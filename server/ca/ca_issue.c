/*
 * Issuance in the CA service: IssueCertificate, the issuing edges of a transition, and
 * reading certificates. Signing happens before the change, on the caller's thread, from
 * what a read (or this server's cached copy) of the identity said: the writer thread only
 * runs SQL. The change attaches a prepared issuance item, audit records and events; the
 * CA's pre-commit hook (ca_store.c) locks the identity and refuses the issuance when it no
 * longer has the state and certificate it was signed for; the call then answers from a
 * fresh read (FAILED_PRECONDITION or ABORTED) and the signed certificate is dropped. Two
 * servers on one database serialise on that row lock the same way.
 *
 * Assumes the mutation plumbing of ca_op.c and the issuance check set by
 * ca_service_set_issuance_check (policy), which may refuse and set the call's status.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "audit.h"
#include "bus.h"
#include "ca-internal.h"

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

/*
 * An issuance, prepared on the caller's thread: the item the CA's pre-commit hook writes,
 * and the audit records and events of the transition and of the certificate. The change
 * only attaches copies, so the writer does no JSON or packing work for it.
 */
struct issue_prep {
	struct ca_issue_item *item;
	struct change_prepared *rec[2]; /* the transition's and certificate.recorded */
};

static void issue_prep_clear(struct issue_prep *p)
{
	free(p->item);
	for (int k = 0; k < 2; k++)
		change_prepared_free(p->rec[k]);
	memset(p, 0, sizeof(*p));
}

static int issue_prepare(struct ca_op *op, struct ca_transition *t, struct issue_prep *p)
{
	struct ca_identity *i = t->ident;
	char old_serial[CRYPTO_SERIAL_HEX_LEN + 1], res[64];
	json_t *data = NULL, *cert = NULL;
	struct ca_issue_spec spec = { .tenant = ca_tenant_of(op->ctx),
				      .id = i->id,
				      .from = t->from,
				      .to = t->to,
				      .old_serial = old_serial,
				      .now_us = ca_now_us(),
				      .cert = t->issued,
				      .kind = op->svc->issue_kind,
				      .key = op->ctx->key };
	uint8_t *reply = NULL;
	int r;

	/* the hook moves the identity on only if it still has this state and certificate */
	snprintf(old_serial, sizeof(old_serial), "%s", i->current_serial);
	ca_transition_outcome(t, spec.now_us);
	r = ca_op_pack(op, &reply, &spec.reply_len);
	if (r < 0)
		return r;
	spec.reply = reply;
	r = ca_issue_item_new(&spec, &p->item);
	free(reply);
	if (r >= 0)
		r = ca_transition_data(op, t, t->from, old_serial, &data, &cert);
	snprintf(res, sizeof(res), "identities/%s", i->id);
	if (r >= 0)
		r = ca_prep_record(op->ctx, ca_transition_event(t->from, t->to), res, data,
				   &p->rec[0]);
	snprintf(res, sizeof(res), "certificates/%s", t->issued->serial);
	if (r >= 0)
		r = ca_prep_record(op->ctx, "certificate.recorded", res, cert, &p->rec[1]);
	json_decref(data);
	json_decref(cert);
	return r;
}

/* The change of an issuance: attaches copies; the hook decides and writes. */
static int issue_apply(struct ca_op *op, struct db_tx *tx)
{
	const struct issue_prep *p = op->ud;
	int r;

	r = ca_issue_item_attach(tx, p->item);
	for (int k = 0; r >= 0 && k < 2; k++)
		r = change_attach(tx, p->rec[k]);
	return r;
}

/* Why the hook refused an issuance, as the caller sees it. */
static int issue_refused(struct ca_service *svc, struct ca_ctx *ctx, const struct ca_transition *t,
			 int r)
{
	const char *id = t->ident->id;
	struct ca_identity now = { 0 };
	int rr;

	if (r == -EEXIST && ca_has_request_id(ctx))
		return ca_twin(svc, ctx); /* a twin committed first: its answer is ours */
	if (r == -EBUSY)
		return ca_fail(ctx, r, "identity %s is being changed by another call; retry", id);
	if (r == -ENOENT)
		return ca_fail(ctx, r, "identity %s not found", id);
	if (r != -ESTALE)
		return r;
	rr = ca_identity_read(svc, ctx, id, false, &now);
	if (rr < 0)
		return rr;
	if (ca_transition_check(now.state, t->to) < 0)
		r = ca_transition_message(id, now.state, t->to, ctx->err, sizeof(ctx->err));
	else
		r = ca_fail(ctx, -EBUSY, "identity %s changed to %s meanwhile; retry", id,
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

void ca_identity_sans(const struct ca_identity *i, const char *const **ret_dns,
		      size_t *ret_n_dns)
{
	*ret_dns = (const char *const *)i->dns_names;
	*ret_n_dns = i->n_dns_names;
	if (!i->n_dns_names && !i->n_ip_addresses && ca_validate_dns_name(i->name, NULL, 0) == 0) {
		*ret_dns = (const char *const *)&i->name;
		*ret_n_dns = 1;
	}
}

int ca_policy_check(struct ca_service *svc, struct ca_ctx *ctx, const struct ca_issuance *what)
{
	int r = svc->check ? svc->check(ctx->call, what, svc->check_ud) : 0;

	if (r >= 0)
		return 0;
	ctx->check_failed = true;
	return ca_fail(ctx, r, "refused by policy");
}

/* Checks and signs an issuance for identity i moving to `to`. */
int ca_prepare_issue(struct ca_service *svc, struct ca_ctx *ctx, struct ca_identity *i,
		     enum ca_state to, const char *csr_pem, int64_t ttl, struct crypto_issued *ret)
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
	ca_identity_sans(i, &req.dns_names, &req.n_dns_names);
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
	r = ca_policy_check(svc, ctx, &what);
	if (r < 0)
		return r;
	r = crypto_issue(svc->ca, &req, ret, e, el);
	return r == -EINVAL ? r : (r < 0 ? ca_fail(ctx, r, "signing failed") : r);
}

/* Writes transition t of the identity read in t->ident; fills t->cert on issuance. */
int ca_transition_write(struct ca_service *svc, struct ca_ctx *ctx, struct ca_transition *t,
			void *result, int (*after)(struct ca_transition *t))
{
	struct ca_op op = { .svc = svc, .ctx = ctx, .apply = ca_transition_apply, .ud = t };
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
		op.hook_stores = true; /* the issuance hook stores the reply */
		op.ud = &prep;
	}
	r = ca_op_write(&op);
	issue_prep_clear(&prep);
	if (r < 0 && t->issued && !t->guessed)
		r = issue_refused(svc, ctx, t, r);
	if (r == 0 && t->to == CA_STATE_REVOKED)
		r = ca_crl_refresh(svc);
	return r;
}

/*
 * The identity an issuance starts from: this server's cached copy when it has one (*guessed;
 * the hook checks its state and serial under the row lock), else read_for_write.
 */
int ca_issue_source(struct ca_service *svc, struct ca_ctx *ctx, const char *id, bool use_cache,
		    struct ca_identity *ret, bool *guessed)
{
	*guessed = false;
	if (use_cache && change_guess_get(svc->idents, ca_tenant_of(ctx), id, ret) == 0) {
		*guessed = true;
		return 0;
	}
	return ca_read_for_write(svc, ctx, id, ret);
}

/* After a guessed attempt: true when the answer must come from a fresh read instead. */
bool ca_guess_failed(struct ca_service *svc, struct ca_ctx *ctx, const char *id, int r)
{
	if (r != -ESTALE && r != -EEXIST && r != -EBUSY && r != -ENOENT && r != -EILSEQ)
		return false;
	/* moved on elsewhere, a retried request_id, or a twin: the database decides */
	change_guess_drop(svc->idents, ca_tenant_of(ctx), id);
	ctx->err[0] = '\0';
	ctx->check_failed = false;
	return true;
}

static int issue_once(struct ca_service *svc, struct ca_ctx *ctx, const char *identity_id,
		      const char *csr_pem, int64_t ttl_seconds, bool use_cache, struct ca_cert *ret,
		      bool *ret_guessed)
{
	struct ca_identity i = { 0 };
	struct crypto_issued issued = { 0 };
	struct ca_transition t = { .ident = &i };
	int r;

	/* the arguments first: a retry repeats them, so its stored reply still wins */
	ca_ctx_clear(ctx);
	if (!identity_id || !*identity_id)
		return ca_fail(ctx, -EINVAL, "identity_id is required");
	if (ttl_seconds < 0)
		return ca_fail(ctx, -EINVAL, "ttl_seconds must not be negative");
	r = ca_issue_source(svc, ctx, identity_id, use_cache, &i, &t.guessed);
	if (r != 0)
		return r;
	t.from = i.state;
	if (i.state == CA_STATE_REQUESTED) {
		t.to = CA_STATE_ISSUED;
	} else if (i.state == CA_STATE_RENEWING) {
		t.to = CA_STATE_DEPLOYED;
	} else {
		r = ca_fail(ctx, -EILSEQ,
			    "identity %s is %s: certificates are issued to requested identities "
			    "(-> issued) and renewing ones (-> deployed)",
			    i.id, ca_state_name(i.state));
		goto out;
	}
	r = ca_prepare_issue(svc, ctx, &i, t.to, csr_pem, ttl_seconds, &issued);
	if (r < 0)
		goto out;
	t.issued = &issued;
	r = ca_transition_write(svc, ctx, &t, NULL, NULL);
	if (r == 0) {
		change_guess_put(svc->idents, ca_tenant_of(ctx), i.id, &i);
		*ret = *t.cert;
		free(t.cert);
		t.cert = NULL;
	}
out:
	*ret_guessed = t.guessed;
	if (t.cert) {
		ca_cert_clear(t.cert);
		free(t.cert);
	}
	crypto_issued_clear(&issued);
	ca_identity_clear(&i);
	return r;
}

struct issue_args {
	struct ca_service *svc;
	struct ca_ctx *ctx;
	const char *identity_id, *csr_pem;
	int64_t ttl_seconds;
	struct ca_cert *ret;
};

static int issue_attempt(void *ud, bool use_guess, bool *ret_guessed)
{
	struct issue_args *a = ud;

	return issue_once(a->svc, a->ctx, a->identity_id, a->csr_pem, a->ttl_seconds, use_guess,
			  a->ret, ret_guessed);
}

static bool issue_guess_failed(void *ud, int r)
{
	struct issue_args *a = ud;

	return ca_guess_failed(a->svc, a->ctx, a->identity_id, r);
}

int ca_cert_issue(struct ca_service *svc, struct ca_ctx *ctx, const char *identity_id,
		  const char *csr_pem, int64_t ttl_seconds, struct ca_cert *ret)
{
	struct issue_args a = { svc, ctx, identity_id, csr_pem, ttl_seconds, ret };

	return change_guess_run(issue_attempt, issue_guess_failed, &a);
}

int ca_cert_get(struct ca_service *svc, struct ca_ctx *ctx, const char *serial, struct ca_cert *ret)
{
	struct db_conn *c = NULL;
	int r;

	if (!serial || !*serial)
		return ca_fail(ctx, -EINVAL, "serial is required");
	r = ca_with_conn(svc, &c);
	if (r < 0)
		return r;
	r = ca_store_cert_get(c, ca_tenant_of(ctx), serial, ret);
	db_release(svc->db, c);
	return r == -ENOENT ? ca_fail(ctx, r, "certificate %s not found", serial) : r;
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
	int limit = ca_page_limit(page_size), r;

	if (identity_id && *identity_id && !crypto_uuid_valid(identity_id))
		return ca_fail(ctx, -EINVAL, "identity_id \"%s\" is not an id", identity_id);
	if (page_token && *page_token && !is_serial(page_token))
		return ca_fail(ctx, -EINVAL, "invalid page_token");
	r = ca_with_conn(svc, &c);
	if (r < 0)
		return r;
	r = ca_store_cert_list(c, ca_tenant_of(ctx), identity_id, limit, page_token, ret, ret_n);
	db_release(svc->db, c);
	if (r >= 0 && (r = ca_next_token(*ret_n, limit, *ret_n ? (*ret)[*ret_n - 1].serial : "",
					 ret_next)) < 0) {
		for (size_t i = 0; i < *ret_n; i++)
			ca_cert_clear(&(*ret)[i]);
		free(*ret);
	}
	return r;
}
