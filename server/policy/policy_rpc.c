/*
 * trstctl.v1.Policy over gRPC: policies (put, get, list, delete), the dry-run Evaluate, and
 * tokens (create, list, revoke). Every change runs through the group-commit writer with
 * its generation bump, audit record and events.policy.changed event (token changes too,
 * with "kind": "token", so that one subject tells consumers that authorization changed),
 * then refreshes this server's caches at once; other servers follow within a poll.
 *
 * Idempotency: PutPolicy and DeletePolicy store their packed reply under request_id. A
 * CreateToken reply holds the token, which is never stored: a retry of a request_id that
 * created a token gets ALREADY_EXISTS naming that token's id. RevokeToken is idempotent by
 * itself.
 *
 * Tokens form a tree: CreateToken makes a child of the calling token, bound only to
 * policies the caller holds (any, for an admin caller) and expiring no later than it (both
 * checked in the change's transaction, the parent's row locked); RevokeToken revokes the
 * token's descendants with it. So that a policy cannot grow the token that edits it,
 * PutPolicy and DeletePolicy refuse a policy bound to the calling token unless the caller
 * holds admin.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "authz-int.h"
#include "change.h"
#include "db.h"
#include "policy.pb-c.h"
#include "rpc.h"
#include "timestamp.pb-c.h"

#define PAGE_DEFAULT 100
#define PAGE_MAX 1000
#define ADMIN_DOCUMENT                                                         \
	"{\"description\": \"built in\", \"rules\": [{\"effect\": \"allow\", " \
	"\"actions\": [\"*\"], \"resources\": [\"*\"]}]}"

static Trstctl__V1__PolicyDocument *policy_msg(struct rpc_call *call, const struct store_policy *p)
{
	Trstctl__V1__PolicyDocument *m =
		(void *)rpc_call_new_message(call, &trstctl__v1__policy_document__descriptor);

	m->name = rpc_call_strdup(call, p->name);
	m->document = rpc_call_strdup(call, p->document);
	m->version = p->version;
	m->update_time = rpc_timestamp_new(call, p->update_us);
	return m;
}

static Trstctl__V1__Token *token_msg(struct rpc_call *call, const struct store_token *t)
{
	Trstctl__V1__Token *m = (void *)rpc_call_new_message(call, &trstctl__v1__token__descriptor);

	m->id = rpc_call_strdup(call, t->id);
	m->name = rpc_call_strdup(call, t->name);
	m->n_policies = t->n_policies;
	m->policies = rpc_call_alloc(call, (t->n_policies + 1) * sizeof(char *));
	for (size_t i = 0; i < t->n_policies; i++)
		m->policies[i] = rpc_call_strdup(call, t->policies[i]);
	m->create_time = rpc_timestamp_new(call, t->create_us);
	m->expire_time = rpc_timestamp_new(call, t->expire_us);
	m->last_used_time = rpc_timestamp_new(call, t->last_used_us);
	m->revoked = t->revoked;
	m->parent_id = rpc_call_strdup(call, t->parent_id);
	return m;
}

static int page_size(struct rpc_call *call, int32_t n, int *ret)
{
	if (n < 0)
		return rpc_call_error(call, RPC_INVALID_ARGUMENT, "page_size must be >= 0");
	*ret = n == 0 ? PAGE_DEFAULT : n > PAGE_MAX ? PAGE_MAX : n;
	return 0;
}

static const char *actor_of(struct rpc_call *call)
{
	const char *p = rpc_call_principal(call);

	return p ? p : "";
}

/* Policies ----------------------------------------------------------------------------- */

struct policy_change {
	struct authz *a;
	const char *name, *document, *actor;
	bool deleting;
	struct store_policy out;
};

static int pack_policy(void *ud, uint8_t **ret, size_t *ret_len)
{
	const struct store_policy *p = &((struct policy_change *)ud)->out;
	Trstctl__V1__PolicyDocument m = TRSTCTL__V1__POLICY_DOCUMENT__INIT;
	Google__Protobuf__Timestamp ts;
	size_t n;

	m.name = p->name;
	m.document = p->document;
	m.version = p->version;
	rpc_timestamp_set(&ts, p->update_us);
	m.update_time = &ts;
	n = protobuf_c_message_get_packed_size(&m.base);
	*ret = malloc(n ? n : 1);
	if (!*ret)
		return -ENOMEM;
	*ret_len = protobuf_c_message_pack(&m.base, *ret);
	return 0;
}

/* The change room's apply step: the policy row, the generation bump, audit and event. */
static int policy_apply(struct db_tx *tx, void *ud, char *err, size_t errlen)
{
	struct policy_change *c = ud;
	const char *tenant = c->a->tenant;
	char resource[8 + POLICY_NAME_MAX];
	int r;

	store_policy_clear(&c->out);
	r = c->deleting ? store_tx_policy_delete(tx, tenant, c->name, &c->out) :
			  store_tx_policy_put(tx, tenant, c->name, c->document, &c->out);
	if (r == -ENOENT)
		snprintf(err, errlen, "policy %s not found", c->name);
	if (r >= 0)
		r = store_tx_bump(tx, tenant);
	if (r < 0)
		return r;
	snprintf(resource, sizeof(resource), "policy/%s", c->name);
	return store_tx_record(
		tx, c->a->bus, tenant, c->deleting ? "policy.deleted" : "policy.put", c->actor,
		resource,
		json_pack("{s:s, s:I}", "name", c->name, "version", (json_int_t)c->out.version),
		json_pack("{s:s, s:s, s:s, s:I}", "kind", "policy", "op",
			  c->deleting ? "deleted" : "put", "name", c->name, "version",
			  (json_int_t)c->out.version));
}

/* Runs a put or delete through the change room; answers the call. */
static int policy_change(struct rpc_call *call, const ProtobufCMessage *req,
			 const char *request_id, struct policy_change *c,
			 ProtobufCMessage **ret_resp)
{
	struct change_key key;
	struct change ch = { .db = c->a->db, .bus = c->a->bus, .key = &key,
			     .apply = policy_apply, .pack = pack_policy, .ud = c,
			     .timeout_ms = AUTHZ_DB_TIMEOUT_MS * 2 };
	int r = change_key_from_call(&key, call, req, c->a->tenant, request_id, NULL);

	if (r >= 0)
		r = change_run(&ch);
	if (r < 0) {
		store_policy_clear(&c->out);
		return rpc_call_fail(call, r, ch.err);
	}
	if (r == 1) {
		ProtobufCMessage *m = protobuf_c_message_unpack(
			&trstctl__v1__policy_document__descriptor, NULL, ch.replayed_len, ch.replayed);
		Trstctl__V1__PolicyDocument *d = m ? (void *)m : NULL;
		struct store_policy p = { 0 };

		change_clear(&ch);
		if (!d)
			return rpc_call_error(call, RPC_INTERNAL, "stored reply does not decode");
		p.name = d->name;
		p.document = d->document;
		p.version = d->version;
		p.update_us = d->update_time ? d->update_time->seconds * 1000000 +
						       d->update_time->nanos / 1000 :
					       0;
		*ret_resp = &policy_msg(call, &p)->base;
		protobuf_c_message_free_unpacked(m, NULL);
		return 0;
	}
	authz_refresh(c->a); /* this server sees its own change at once */
	*ret_resp = &policy_msg(call, &c->out)->base;
	store_policy_clear(&c->out);
	return 0;
}

static int check_name(struct rpc_call *call, const char *name)
{
	if (!policy_name_valid(name))
		return rpc_call_error(call, RPC_INVALID_ARGUMENT,
				      "name: a policy name is 1-%d of A-Z a-z 0-9 . _ - starting "
				      "with a letter or digit",
				      POLICY_NAME_MAX);
	if (strcmp(name, POLICY_ADMIN) == 0)
		return rpc_call_error(call, RPC_INVALID_ARGUMENT,
				      "policy admin is built in and cannot be changed");
	return 0;
}

/*
 * No self-escalation: a policy bound to the calling token changes only by a caller that
 * holds admin (rights beyond that policy). Returns 0, or the call's PERMISSION_DENIED.
 */
static int check_not_own(struct rpc_call *call, struct authz *a, const char *name)
{
	const char *id = NULL, *const *held = NULL;
	char msg[POLICY_NAME_MAX + 256], res[POLICY_NAME_MAX + 8];
	bool own = false;
	size_t n = 0;
	int r = authz_caller(a, call, &id, &held, &n);

	if (r == -EACCES) /* revoked (or expired) since the gate let the call in */
		return authz_deny_unauthenticated(a, call, "revoked");
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(held[i], POLICY_ADMIN) == 0)
			return 0;
		own = own || strcmp(held[i], name) == 0;
	}
	if (!own)
		return 0;
	snprintf(msg, sizeof(msg),
		 "permission denied: policy %s is bound to the calling token %s; changing a "
		 "policy that grants the caller's own rights needs a token bound to admin (no "
		 "self-escalation)",
		 name, id);
	snprintf(res, sizeof(res), "policy/%s", name);
	return authz_deny(a, call, res, msg);
}

static int put_policy(struct rpc_call *call, const ProtobufCMessage *msg,
		      ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__PutPolicyRequest *req = (const void *)msg;
	struct policy_change c = { .a = user,
				   .name = req->name,
				   .document = req->document,
				   .actor = actor_of(call) };
	struct policy_doc *doc = NULL;
	char err[POLICY_ERR_MAX];
	int r = check_name(call, req->name);

	if (r >= 0)
		r = check_not_own(call, c.a, req->name);
	if (r < 0)
		return r;
	r = policy_parse(req->document, c.a->actions, c.a->n_methods, &doc, err, sizeof(err));
	if (r == -EINVAL)
		return rpc_call_error(call, RPC_INVALID_ARGUMENT, "%s", err);
	if (r < 0)
		return r;
	policy_doc_free(doc); /* stored as text; every server compiles it on reload */
	return policy_change(call, msg, req->request_id, &c, ret_resp);
}

static int delete_policy(struct rpc_call *call, const ProtobufCMessage *msg,
			 ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__DeletePolicyRequest *req = (const void *)msg;
	struct policy_change c = { .a = user,
				   .name = req->name,
				   .actor = actor_of(call),
				   .deleting = true };
	int r = check_name(call, req->name);

	if (r >= 0)
		r = check_not_own(call, c.a, req->name);
	return r < 0 ? r : policy_change(call, msg, req->request_id, &c, ret_resp);
}

static int get_policy(struct rpc_call *call, const ProtobufCMessage *msg,
		      ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__GetPolicyRequest *req = (const void *)msg;
	struct authz *a = user;
	struct store_policy p = { 0 };
	int r;

	if (strcmp(req->name, POLICY_ADMIN) == 0) {
		p.name = (char *)POLICY_ADMIN;
		p.document = (char *)ADMIN_DOCUMENT;
		*ret_resp = &policy_msg(call, &p)->base;
		return 0;
	}
	if (!policy_name_valid(req->name))
		return rpc_call_error(call, RPC_INVALID_ARGUMENT, "name: invalid policy name");
	r = store_policy_get(a->db, a->tenant, req->name, &p);
	if (r == -ENOENT)
		return rpc_call_error(call, RPC_NOT_FOUND, "policy %s not found", req->name);
	if (r < 0)
		return r;
	*ret_resp = &policy_msg(call, &p)->base;
	store_policy_clear(&p);
	return 0;
}

static int list_policies(struct rpc_call *call, const ProtobufCMessage *msg,
			 ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__ListPoliciesRequest *req = (const void *)msg;
	struct authz *a = user;
	Trstctl__V1__ListPoliciesResponse *resp;
	struct store_policy *p = NULL, admin = { .name = (char *)POLICY_ADMIN,
						 .document = (char *)ADMIN_DOCUMENT };
	bool first = !req->page_token[0];
	size_t n = 0, k = 0;
	int limit = PAGE_DEFAULT, r = page_size(call, req->page_size, &limit);

	if (r < 0)
		return r;
	if (!first && !policy_name_valid(req->page_token))
		return rpc_call_error(call, RPC_INVALID_ARGUMENT, "invalid page_token");
	r = store_policy_list(a->db, a->tenant, req->page_token, limit, &p, &n);
	if (r < 0)
		return r;
	resp = (void *)rpc_call_new_message(call, &trstctl__v1__list_policies_response__descriptor);
	resp->policies = rpc_call_alloc(call, (n + 1) * sizeof(*resp->policies));
	if (first) /* the built-in policy heads the first page */
		r = rpc_call_item_visible(call, "policy/", POLICY_ADMIN);
	if (r > 0 && first)
		resp->policies[k++] = policy_msg(call, &admin);
	for (size_t i = 0; i < n && r >= 0; i++) {
		r = rpc_call_item_visible(call, "policy/", p[i].name);
		if (r > 0)
			resp->policies[k++] = policy_msg(call, &p[i]);
	}
	resp->n_policies = k;
	if (n == (size_t)limit)
		resp->next_page_token = rpc_call_strdup(call, p[n - 1].name);
	store_policies_free(p, n);
	if (r < 0)
		return r;
	*ret_resp = &resp->base;
	return 0;
}

/* Evaluate ----------------------------------------------------------------------------- */

/*
 * Decides (principal, action, resource) as a call would be decided: at the gate when no
 * to_state is given (a conditional allow counts, and the reason says so), else as the
 * handler's full check with that target state. A revoked or expired token is denied with
 * that reason.
 */
static int evaluate(struct rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **ret_resp,
		    void *user)
{
	const Trstctl__V1__EvaluateRequest *req = (const void *)msg;
	struct authz *a = user;
	const char *principal = req->principal[0] ? req->principal : actor_of(call);
	struct policy_request pr = { .action = req->action,
				     .resource = req->resource,
				     .to_state = req->to_state,
				     .gate = !req->to_state[0] };
	struct policy_decision dec = { 0 };
	struct store_token t = { 0 };
	Trstctl__V1__Decision *resp;
	bool known = false;
	int r;

	if (!req->action[0] || !req->resource[0])
		return rpc_call_error(call, RPC_INVALID_ARGUMENT,
				      "action and resource are required");
	for (size_t i = 0; i < a->n_methods && !known; i++)
		known = strcmp(a->actions[i], req->action) == 0;
	if (!known)
		return rpc_call_error(call, RPC_INVALID_ARGUMENT,
				      "action %s: unknown (want <Service>.<Method>, e.g. "
				      "CA.CreateOwner)",
				      req->action);
	r = store_token_by_id(a->db, a->tenant, principal, &t);
	if (r == -ENOENT)
		return rpc_call_error(call, RPC_NOT_FOUND, "token %s not found", principal);
	if (r < 0)
		return r;
	if (t.revoked || (t.expire_us && authz_now_us() >= t.expire_us))
		snprintf(dec.reason, sizeof(dec.reason), "token %s is %s", t.id,
			 t.revoked ? "revoked" : "expired");
	else
		r = policy_eval(a->set, (const char *const *)t.policies, t.n_policies, &pr, &dec);
	store_token_clear(&t);
	if (r < 0)
		return r;
	resp = (void *)rpc_call_new_message(call, &trstctl__v1__decision__descriptor);
	resp->allowed = dec.allowed;
	resp->matched_policy = rpc_call_strdup(call, dec.matched_policy);
	resp->matched_rule = dec.matched_rule;
	resp->reason = rpc_call_strdup(call, dec.reason);
	*ret_resp = &resp->base;
	return 0;
}

/* Tokens ------------------------------------------------------------------------------- */

static int create_token(struct rpc_call *call, const ProtobufCMessage *msg,
			ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__CreateTokenRequest *req = (const void *)msg;
	struct authz *a = user;
	struct authz_token_req q = { .tenant = a->tenant,
				     .name = req->name,
				     .policies = (const char *const *)req->policies,
				     .n_policies = req->n_policies,
				     .ttl_seconds = req->ttl_seconds,
				     .parent_id = rpc_call_principal(call),
				     .actor = actor_of(call) };
	struct change_key key;
	char token[POLICY_TOKEN_LEN + 1] = "", err[384] = "";
	struct store_token meta = { 0 };
	Trstctl__V1__CreateTokenResponse *resp;
	int r;

	if (!q.parent_id) /* the authorizer sets it; without one there is no bound to keep */
		return rpc_call_error(call, RPC_UNAUTHENTICATED, AUTHZ_UNAUTH_MSG);
	r = change_key_from_call(&key, call, msg, a->tenant, req->request_id, NULL);
	if (r < 0)
		return r;
	q.key = &key;
	r = authz_token_create(a->db, a->bus, &q, token, &meta, err, sizeof(err));
	if (r == -EPERM && err[0]) /* beyond the caller's bounds: audited like the gate's */
		return authz_deny(a, call, "token/*", err);
	if (r == -EINVAL)
		return rpc_call_error(call, RPC_INVALID_ARGUMENT, "%s", err);
	if (r == -ENOENT && err[0])
		return rpc_call_error(call, RPC_NOT_FOUND, "%s", err);
	if (r == -EALREADY)
		return rpc_call_error(call, RPC_ALREADY_EXISTS,
				      "request_id %s already created token %s; a token is shown "
				      "only once: revoke it and create another",
				      req->request_id, meta.id);
	if (r < 0)
		return rpc_call_fail(call, r, err);
	resp = (void *)rpc_call_new_message(call, &trstctl__v1__create_token_response__descriptor);
	resp->token_id = rpc_call_strdup(call, meta.id);
	resp->token = rpc_call_strdup(call, token); /* call memory, freed with the call */
	resp->expire_time = rpc_timestamp_new(call, meta.expire_us);
	OPENSSL_cleanse(token, sizeof(token));
	store_token_clear(&meta);
	authz_refresh(a);
	*ret_resp = &resp->base;
	return 0;
}

static bool id_valid(const char *id)
{
	size_t n = strspn(id, "0123456789abcdef");

	return n == POLICY_TOKEN_ID_LEN && !id[n];
}

static int list_tokens(struct rpc_call *call, const ProtobufCMessage *msg,
		       ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__ListTokensRequest *req = (const void *)msg;
	struct authz *a = user;
	Trstctl__V1__ListTokensResponse *resp;
	struct store_token *t = NULL;
	size_t n = 0;
	int limit = PAGE_DEFAULT, r = page_size(call, req->page_size, &limit);

	if (r < 0)
		return r;
	if (req->page_token[0] && !id_valid(req->page_token))
		return rpc_call_error(call, RPC_INVALID_ARGUMENT, "invalid page_token");
	r = store_token_list(a->db, a->tenant, req->page_token, limit, &t, &n);
	if (r < 0)
		return r;
	resp = (void *)rpc_call_new_message(call, &trstctl__v1__list_tokens_response__descriptor);
	resp->tokens = rpc_call_alloc(call, (n + 1) * sizeof(*resp->tokens));
	for (size_t i = 0; i < n && r >= 0; i++) {
		r = rpc_call_item_visible(call, "token/", t[i].id);
		if (r > 0)
			resp->tokens[resp->n_tokens++] = token_msg(call, &t[i]);
	}
	if (n == (size_t)limit)
		resp->next_page_token = rpc_call_strdup(call, t[n - 1].id);
	store_tokens_free(t, n);
	if (r < 0)
		return r;
	*ret_resp = &resp->base;
	return 0;
}

static int revoke_token(struct rpc_call *call, const ProtobufCMessage *msg,
			ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__RevokeTokenRequest *req = (const void *)msg;
	struct authz *a = user;
	struct store_token t = { 0 };
	struct change_key key;
	char err[CHANGE_ERR_MAX] = "";
	int r = change_key_from_call(&key, call, msg, a->tenant, req->request_id, NULL);

	if (r >= 0)
		r = authz_token_revoke(a->db, a->bus, a->tenant, req->id, actor_of(call), &key,
				       &t, err, sizeof(err));
	if (r == -EINVAL && err[0])
		return rpc_call_error(call, RPC_INVALID_ARGUMENT, "%s", err);
	if (r == -EINVAL)
		return rpc_call_error(call, RPC_INVALID_ARGUMENT,
				      "id: a token id is %d lowercase hex characters",
				      POLICY_TOKEN_ID_LEN);
	if (r == -ENOENT)
		return rpc_call_error(call, RPC_NOT_FOUND, "token %s not found", req->id);
	if (r < 0)
		return r;
	authz_refresh(a); /* drops this server's cache now; others within a poll */
	*ret_resp = &token_msg(call, &t)->base;
	store_token_clear(&t);
	return 0;
}

int policy_rpc_register(struct rpc_server *s, struct authz *a)
{
	static const struct {
		const char *name;
		rpc_unary_fn fn;
	} table[] = {
		{ "PutPolicy", put_policy },	   { "GetPolicy", get_policy },
		{ "ListPolicies", list_policies }, { "DeletePolicy", delete_policy },
		{ "Evaluate", evaluate },	   { "CreateToken", create_token },
		{ "ListTokens", list_tokens },	   { "RevokeToken", revoke_token },
	};
	const ProtobufCServiceDescriptor *sd = &trstctl__v1__policy__descriptor;
	struct rpc_method_handler *h;

	if (!s || !a)
		return -EINVAL;
	/* borrowed by the server: lives in a (freed after the server) */
	h = calloc(sd->n_methods, sizeof(*h));
	if (!h)
		return -ENOMEM;
	for (unsigned i = 0; i < sd->n_methods; i++)
		for (size_t j = 0; j < sizeof(table) / sizeof(table[0]); j++)
			if (strcmp(sd->methods[i].name, table[j].name) == 0)
				h[i].unary = table[j].fn;
	free(a->rpc_handlers);
	a->rpc_handlers = h;
	return rpc_server_add_service(s, sd, h, a);
}
