/*
 * trstctl.v1.Secrets over gRPC: protobuf <-> the domain calls of secrets.c and
 * secrets_read.c. Every method waits on PostgreSQL, so all run on the worker pool, except
 * that GetSecret is first tried on the completion-queue thread (inline_try), where a hit of
 * the read cache is answered without a thread hand-off; a miss reruns it on the pool. The
 * actor is the authenticated principal ("anonymous" until authentication sets one); the
 * tenant is the default one until tenants reach the principal. Domain errors carry a safe
 * message, which becomes the status message; codes follow rpc_errno_code (-EMSGSIZE
 * RESOURCE_EXHAUSTED, -ESTALE and -EILSEQ FAILED_PRECONDITION, -EBADMSG DATA_LOSS).
 *
 * The value of GetSecret is copied into call memory for the reply; the domain's copy is
 * wiped at once. (The runtime's packed reply buffer is not wiped: rpc/ owns it.)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "change.h"
#include "rpc.h"
#include "secrets-internal.h"
#include "secrets.pb-c.h"
#include "timestamp.pb-c.h"

/*
 * The call's context; for a mutation (key not NULL) also its change room key, whose
 * fingerprint is keyed by the KEK (requests carry secret values).
 */
static int ctx_init(struct rpc_call *call, struct secrets_ctx *ctx, struct secrets *s,
		    const ProtobufCMessage *req, const char *request_id, struct change_key *key)
{
	const char *p = rpc_call_principal(call);
	int64_t left = rpc_call_remaining_ms(call);

	memset(ctx, 0, sizeof(*ctx));
	ctx->actor = p && *p ? p : "anonymous";
	/* a write does not outlive its call (the change may still commit: request_id) */
	ctx->timeout_ms = left < INT32_MAX ? (int)(left > 0 ? left : 1) : 0;
	if (!key)
		return 0;
	ctx->key = key;
	return change_key_from_call(key, call, req, NULL, request_id, s->kek);
}

int secrets_reply_pack(const struct secrets_meta *m, uint8_t **ret, size_t *ret_len)
{
	Trstctl__V1__SecretMeta o = TRSTCTL__V1__SECRET_META__INIT;
	Google__Protobuf__Timestamp t[3] = { GOOGLE__PROTOBUF__TIMESTAMP__INIT,
					     GOOGLE__PROTOBUF__TIMESTAMP__INIT,
					     GOOGLE__PROTOBUF__TIMESTAMP__INIT };
	Trstctl__V1__SecretMeta__LabelsEntry *e = calloc(m->n_labels + 1, sizeof(*e));
	Trstctl__V1__SecretMeta__LabelsEntry **pe = calloc(m->n_labels + 1, sizeof(*pe));
	const int64_t us[3] = { m->create_us, m->update_us, m->deleted ? m->delete_us : 0 };
	Google__Protobuf__Timestamp **dst[3] = { &o.create_time, &o.update_time, &o.delete_time };
	size_t n;
	int r = -ENOMEM;

	if (!e || !pe)
		goto out;
	o.name = (char *)m->name;
	o.version = m->version;
	o.deleted = m->deleted;
	for (int i = 0; i < 3; i++) {
		if (!us[i])
			continue;
		t[i].seconds = us[i] >= 0 ? us[i] / 1000000 : -((-us[i] + 999999) / 1000000);
		t[i].nanos = (int32_t)((us[i] - t[i].seconds * 1000000) * 1000);
		*dst[i] = &t[i];
	}
	for (size_t i = 0; i < m->n_labels; i++) {
		trstctl__v1__secret_meta__labels_entry__init(&e[i]);
		e[i].key = m->labels[i].key;
		e[i].value = m->labels[i].value;
		pe[i] = &e[i];
	}
	o.n_labels = m->n_labels;
	o.labels = pe;
	n = protobuf_c_message_get_packed_size(&o.base);
	*ret = malloc(n ? n : 1);
	if (*ret) {
		*ret_len = protobuf_c_message_pack(&o.base, *ret);
		r = 0;
	}
out:
	free(e);
	free(pe);
	return r;
}

static int64_t ts_us(const Google__Protobuf__Timestamp *t)
{
	return t ? t->seconds * 1000000 + t->nanos / 1000 : 0;
}

int secrets_reply_unpack(const uint8_t *p, size_t n, struct secrets_meta *ret)
{
	Trstctl__V1__SecretMeta *o = trstctl__v1__secret_meta__unpack(NULL, n, p);
	int r = -EPROTO;

	memset(ret, 0, sizeof(*ret));
	if (!o || strlen(o->name) > SECRETS_NAME_MAX)
		goto out;
	strcpy(ret->name, o->name);
	ret->version = o->version;
	ret->create_us = ts_us(o->create_time);
	ret->update_us = ts_us(o->update_time);
	ret->deleted = o->deleted;
	ret->delete_us = ts_us(o->delete_time);
	r = 0;
	if (o->n_labels) {
		ret->labels = calloc(o->n_labels, sizeof(*ret->labels));
		r = ret->labels ? 0 : -ENOMEM;
	}
	for (size_t i = 0; r == 0 && i < o->n_labels; i++) {
		ret->labels[i].key = strdup(o->labels[i]->key);
		ret->labels[i].value = strdup(o->labels[i]->value);
		ret->n_labels = i + 1;
		if (!ret->labels[i].key || !ret->labels[i].value)
			r = -ENOMEM;
	}
	if (r < 0)
		secrets_meta_clear(ret);
out:
	if (o)
		trstctl__v1__secret_meta__free_unpacked(o, NULL);
	return r;
}

/* The status of a failed domain call. */
static int fail(struct rpc_call *call, const struct secrets_ctx *ctx, int r)
{
	return rpc_call_fail(call, r, ctx->err);
}

static Trstctl__V1__SecretMeta *meta_msg(struct rpc_call *call, const struct secrets_meta *m)
{
	Trstctl__V1__SecretMeta *o =
		(void *)rpc_call_new_message(call, &trstctl__v1__secret_meta__descriptor);

	o->name = rpc_call_strdup(call, m->name);
	o->version = m->version;
	o->create_time = rpc_timestamp_new(call, m->create_us);
	o->update_time = rpc_timestamp_new(call, m->update_us);
	o->deleted = m->deleted;
	o->delete_time = m->deleted ? rpc_timestamp_new(call, m->delete_us) : NULL;
	o->n_labels = m->n_labels;
	o->labels = rpc_call_alloc(call, (m->n_labels + 1) * sizeof(*o->labels));
	for (size_t i = 0; i < m->n_labels; i++) {
		Trstctl__V1__SecretMeta__LabelsEntry *e = (void *)rpc_call_new_message(
			call, &trstctl__v1__secret_meta__labels_entry__descriptor);

		e->key = rpc_call_strdup(call, m->labels[i].key);
		e->value = rpc_call_strdup(call, m->labels[i].value);
		o->labels[i] = e;
	}
	return o;
}

/* Finishes a call that returns SecretMeta. */
static int reply_meta(struct rpc_call *call, const struct secrets_ctx *ctx, int r,
		      struct secrets_meta *m, ProtobufCMessage **ret_resp)
{
	if (r < 0)
		return fail(call, ctx, r);
	*ret_resp = &meta_msg(call, m)->base;
	secrets_meta_clear(m);
	return 0;
}

static int create_secret(struct rpc_call *call, const ProtobufCMessage *req_msg,
			 ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__CreateSecretRequest *req = (const void *)req_msg;
	struct secrets_label *labels;
	struct secrets_meta m = { 0 };
	struct secrets_ctx ctx;
	struct change_key key;
	int r;

	r = ctx_init(call, &ctx, user, req_msg, req->request_id, &key);
	if (r < 0)
		return r;
	labels = rpc_call_alloc(call, (req->n_labels + 1) * sizeof(*labels));
	for (size_t i = 0; i < req->n_labels; i++) {
		labels[i].key = req->labels[i]->key;
		labels[i].value = req->labels[i]->value;
	}
	r = secrets_create(user, &ctx, req->name, req->value.data, req->value.len, labels,
			   req->n_labels, &m);
	return reply_meta(call, &ctx, r, &m, ret_resp);
}

static int get_secret(struct rpc_call *call, const ProtobufCMessage *req_msg,
		      ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__GetSecretRequest *req = (const void *)req_msg;
	struct secrets_value v = { 0 };
	Trstctl__V1__Secret *o;
	struct secrets_ctx ctx;
	int r;

	ctx_init(call, &ctx, user, NULL, NULL, NULL);
	/* on the CQ thread only a cache hit is answered; a miss says -EWOULDBLOCK and the
	 * call runs again on the pool, where secrets_get reads PostgreSQL and fills the cache */
	if (rpc_call_is_inline(call))
		r = secrets_get_cached(user, &ctx, req->name, req->version, &v);
	else
		r = secrets_get(user, &ctx, req->name, req->version, &v);
	if (r == -EWOULDBLOCK && !ctx.err[0])
		return r;
	if (r < 0)
		return fail(call, &ctx, r);
	o = (void *)rpc_call_new_message(call, &trstctl__v1__secret__descriptor);
	o->name = rpc_call_strdup(call, req->name);
	o->version = v.version;
	o->value.len = v.n;
	o->value.data = rpc_call_alloc(call, v.n);
	memcpy(o->value.data, v.value, v.n);
	secrets_value_clear(&v);
	*ret_resp = &o->base;
	return 0;
}

static int rotate_secret(struct rpc_call *call, const ProtobufCMessage *req_msg,
			 ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__RotateSecretRequest *req = (const void *)req_msg;
	struct secrets_meta m = { 0 };
	struct secrets_ctx ctx;
	struct change_key key;
	int r;

	r = ctx_init(call, &ctx, user, req_msg, req->request_id, &key);
	if (r < 0)
		return r;
	r = secrets_rotate(user, &ctx, req->name, req->value.data, req->value.len,
			   req->expected_version, &m);
	return reply_meta(call, &ctx, r, &m, ret_resp);
}

static int list_secrets(struct rpc_call *call, const ProtobufCMessage *req_msg,
			ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__ListSecretsRequest *req = (const void *)req_msg;
	Trstctl__V1__ListSecretsResponse *o;
	struct secrets_meta *metas = NULL;
	struct secrets_ctx ctx;
	char *next = NULL;
	size_t n = 0;
	int r;

	ctx_init(call, &ctx, user, NULL, NULL, NULL);
	r = secrets_list(user, &ctx, req->prefix, req->page_size, req->page_token,
			 req->show_deleted, &metas, &n, &next);
	if (r < 0)
		return fail(call, &ctx, r);
	o = (void *)rpc_call_new_message(call, &trstctl__v1__list_secrets_response__descriptor);
	o->secrets = rpc_call_alloc(call, (n + 1) * sizeof(*o->secrets));
	/* each name is decided on its own (a prefix must not reveal a denied secret); the
	 * page may come back shorter, its next_page_token unchanged */
	for (size_t i = 0; i < n && r >= 0; i++) {
		r = rpc_call_item_visible(call, "secret/", metas[i].name);
		if (r > 0)
			o->secrets[o->n_secrets++] = meta_msg(call, &metas[i]);
	}
	if (r < 0) {
		free(next);
		secrets_metas_free(metas, n);
		return r;
	}
	if (next)
		o->next_page_token = rpc_call_strdup(call, next);
	free(next);
	secrets_metas_free(metas, n);
	*ret_resp = &o->base;
	return 0;
}

static int list_versions(struct rpc_call *call, const ProtobufCMessage *req_msg,
			 ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__ListSecretVersionsRequest *req = (const void *)req_msg;
	Trstctl__V1__ListSecretVersionsResponse *o;
	struct secrets_version *vs = NULL;
	struct secrets_ctx ctx;
	size_t n = 0;
	int r;

	ctx_init(call, &ctx, user, NULL, NULL, NULL);
	r = secrets_versions(user, &ctx, req->name, &vs, &n);
	if (r < 0)
		return fail(call, &ctx, r);
	o = (void *)rpc_call_new_message(call,
					 &trstctl__v1__list_secret_versions_response__descriptor);
	o->name = rpc_call_strdup(call, req->name);
	o->n_versions = n;
	o->versions = rpc_call_alloc(call, (n + 1) * sizeof(*o->versions));
	for (size_t i = 0; i < n; i++) {
		Trstctl__V1__SecretVersion *v = (void *)rpc_call_new_message(
			call, &trstctl__v1__secret_version__descriptor);

		v->version = vs[i].version;
		v->state = vs[i].destroyed ? "destroyed" : "enabled";
		v->create_time = rpc_timestamp_new(call, vs[i].create_us);
		v->destroy_time =
			vs[i].destroyed ? rpc_timestamp_new(call, vs[i].destroy_us) : NULL;
		o->versions[i] = v;
	}
	free(vs);
	*ret_resp = &o->base;
	return 0;
}

static int delete_secret(struct rpc_call *call, const ProtobufCMessage *req_msg,
			 ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__DeleteSecretRequest *req = (const void *)req_msg;
	struct secrets_meta m = { 0 };
	struct secrets_ctx ctx;
	struct change_key key;
	int r;

	r = ctx_init(call, &ctx, user, req_msg, req->request_id, &key);
	if (r < 0)
		return r;
	return reply_meta(call, &ctx, secrets_delete(user, &ctx, req->name, &m), &m, ret_resp);
}

static int recover_secret(struct rpc_call *call, const ProtobufCMessage *req_msg,
			  ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__RecoverSecretRequest *req = (const void *)req_msg;
	struct secrets_meta m = { 0 };
	struct secrets_ctx ctx;
	struct change_key key;
	int r;

	r = ctx_init(call, &ctx, user, req_msg, req->request_id, &key);
	if (r < 0)
		return r;
	return reply_meta(call, &ctx, secrets_recover(user, &ctx, req->name, &m), &m, ret_resp);
}

static int destroy_version(struct rpc_call *call, const ProtobufCMessage *req_msg,
			   ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__DestroySecretVersionRequest *req = (const void *)req_msg;
	struct secrets_meta m = { 0 };
	struct secrets_ctx ctx;
	struct change_key key;
	int r;

	r = ctx_init(call, &ctx, user, req_msg, req->request_id, &key);
	if (r < 0)
		return r;
	return reply_meta(call, &ctx, secrets_destroy(user, &ctx, req->name, req->version, &m),
			  &m, ret_resp);
}

int secrets_rpc_register(struct rpc_server *srv, struct secrets *s)
{
	static const struct {
		const char *name;
		rpc_unary_fn fn;
	} table[] = {
		{ "CreateSecret", create_secret },
		{ "GetSecret", get_secret },
		{ "RotateSecret", rotate_secret },
		{ "ListSecrets", list_secrets },
		{ "ListSecretVersions", list_versions },
		{ "DeleteSecret", delete_secret },
		{ "RecoverSecret", recover_secret },
		{ "DestroySecretVersion", destroy_version },
	};
	const ProtobufCServiceDescriptor *d = &trstctl__v1__secrets__descriptor;
	struct rpc_method_handler *h;
	const char *fast = "GetSecret"; /* inline_try: see get_secret */

	if (!srv || !s)
		return -EINVAL;
	if (!s->rpc_handlers) {
		s->rpc_handlers = calloc(d->n_methods, sizeof(*h));
		if (!s->rpc_handlers)
			return -ENOMEM;
	}
	h = s->rpc_handlers;
	/* by name: the table follows desc->methods[], whatever order protoc-c chose */
	for (unsigned i = 0; i < d->n_methods; i++)
		for (size_t j = 0; j < sizeof(table) / sizeof(table[0]); j++)
			if (strcmp(d->methods[i].name, table[j].name) == 0)
				h[i] = (struct rpc_method_handler){
					.unary = table[j].fn,
					.inline_try = strcmp(table[j].name, fast) == 0
				};
	return rpc_server_add_service(srv, d, h, s);
}
