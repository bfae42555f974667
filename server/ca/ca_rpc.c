/*
 * trstctl.v1.CA over gRPC: protobuf <-> the domain of the CA service (ca_owner.c,
 * ca_identity.c, ca_issue.c, ca_crl.c). Every handler but GetCABundle waits on PostgreSQL,
 * so they run on the worker pool. Replies are built in call memory; the same builders make the reply that a request_id stores (then in a
 * small malloc arena whose strings borrow the domain's), and a replay unpacks the stored
 * bytes into call memory. Domain errors carry their message (ctx.err); an issuance check
 * that refused has already set the call's status, which stands.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ca-internal.h"
#include "ca.pb-c.h"
#include "change.h"
#include "rpc.h"
#include "timestamp.pb-c.h"

#define RPC_WRITE_MAX_MS 30000

/* Memory for a message: the call's, or (call NULL) tracked mallocs with borrowed strings. */
struct arena {
	struct rpc_call *call;
	void **ptrs;
	size_t n, cap;
	bool oom;
};

static void *ar_alloc(struct arena *a, size_t size)
{
	void *p, **n;

	if (a->call)
		return rpc_call_alloc(a->call, size);
	if (a->n == a->cap) {
		n = realloc(a->ptrs, (a->cap ? a->cap * 2 : 16) * sizeof(*n));
		if (!n) {
			a->oom = true;
			return NULL;
		}
		a->ptrs = n;
		a->cap = a->cap ? a->cap * 2 : 16;
	}
	p = calloc(1, size ? size : 1);
	if (!p)
		a->oom = true;
	else
		a->ptrs[a->n++] = p;
	return p;
}

static char *ar_str(struct arena *a, const char *s)
{
	if (!s)
		s = "";
	return a->call ? rpc_call_strdup(a->call, s) : (char *)s;
}

static void ar_free(struct arena *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->ptrs[i]);
	free(a->ptrs);
}

/* A Timestamp in the arena (set also for 0: CA times are never unset). */
static Google__Protobuf__Timestamp *ts_us(struct arena *a, int64_t us)
{
	Google__Protobuf__Timestamp *ts = ar_alloc(a, sizeof(*ts));

	if (ts)
		rpc_timestamp_set(ts, us);
	return ts;
}

/* Message builders: one per resource, all of the shape of struct kind's msg. */
static void *owner_msg(struct arena *a, const struct ca_service *svc, const void *obj)
{
	const struct ca_owner *o = obj;
	Trstctl__V1__Owner *m = ar_alloc(a, sizeof(*m));

	(void)svc;
	if (!m)
		return NULL;
	trstctl__v1__owner__init(m);
	m->id = ar_str(a, o->id);
	m->kind = ar_str(a, ca_owner_kind_name(o->kind));
	m->name = ar_str(a, o->name);
	m->email = ar_str(a, o->email);
	m->create_time = ts_us(a, o->create_time);
	return m;
}

static void *cert_msg(struct arena *a, const struct ca_service *svc, const void *obj)
{
	const struct ca_cert *c = obj;
	Trstctl__V1__Certificate *m = ar_alloc(a, sizeof(*m));

	if (!m)
		return NULL;
	trstctl__v1__certificate__init(m);
	m->serial = ar_str(a, c->serial);
	m->identity_id = ar_str(a, c->identity_id);
	m->pem = ar_str(a, c->pem);
	m->chain_pem = ar_str(a, ca_service_bundle_pem(svc));
	m->not_before = ts_us(a, c->not_before * 1000000);
	m->not_after = ts_us(a, c->not_after * 1000000);
	if (c->key_pem)
		m->private_key_pem = ar_str(a, c->key_pem);
	m->revoked = c->revoked;
	if (c->revoked) {
		m->revocation_reason = ar_str(a, ca_reason_name(c->reason));
		m->revoke_time = ts_us(a, c->revoke_time);
	}
	return m;
}

static char **str_list(struct arena *a, char **v, size_t n)
{
	char **out = ar_alloc(a, (n ? n : 1) * sizeof(*out));

	for (size_t i = 0; out && i < n; i++)
		out[i] = ar_str(a, v[i]);
	return out;
}

static void *identity_msg(struct arena *a, const struct ca_service *svc, const void *obj)
{
	const struct ca_identity *i = obj;
	Trstctl__V1__Identity *m = ar_alloc(a, sizeof(*m));

	if (!m)
		return NULL;
	trstctl__v1__identity__init(m);
	m->id = ar_str(a, i->id);
	m->kind = ar_str(a, ca_identity_kind_name(i->kind));
	m->name = ar_str(a, i->name);
	m->owner_id = ar_str(a, i->owner_id);
	m->state = ar_str(a, ca_state_name(i->state));
	m->n_dns_names = i->n_dns_names;
	m->dns_names = str_list(a, i->dns_names, i->n_dns_names);
	m->n_ip_addresses = i->n_ip_addresses;
	m->ip_addresses = str_list(a, i->ip_addresses, i->n_ip_addresses);
	m->key_type = ar_str(a, crypto_key_type_name(i->key_type));
	m->ttl_seconds = i->ttl_seconds;
	m->create_time = ts_us(a, i->create_time);
	m->update_time = ts_us(a, i->update_time);
	m->revocation_reason = ar_str(a, i->revocation_reason);
	if (i->cert)
		m->certificate = cert_msg(a, svc, i->cert);
	return m;
}

static void owner_clear(void *obj)
{
	ca_owner_clear(obj);
}

static void identity_clear(void *obj)
{
	ca_identity_clear(obj);
}

static void cert_clear(void *obj)
{
	ca_cert_clear(obj);
}

/* A resource as the handlers see it: its message, how to build it and release the domain. */
struct kind {
	const ProtobufCMessageDescriptor *desc; /* the reply of Create/Get/Transition */
	void *(*msg)(struct arena *a, const struct ca_service *svc, const void *obj);
	void (*clear)(void *obj); /* releases what the domain struct holds */
	size_t size;		  /* sizeof the domain struct: a page is an array of them */
	const char *res;	  /* resource prefix of one item in a List ("owner/") */
	/* the names an item is known by in its resources (id, and name or NULL) */
	void (*names)(const void *obj, const char **ret_id, const char **ret_name);
};

static void owner_names(const void *obj, const char **ret_id, const char **ret_name)
{
	*ret_id = ((const struct ca_owner *)obj)->id;
	*ret_name = ((const struct ca_owner *)obj)->name;
}

static void identity_names(const void *obj, const char **ret_id, const char **ret_name)
{
	*ret_id = ((const struct ca_identity *)obj)->id;
	*ret_name = ((const struct ca_identity *)obj)->name;
}

static void cert_names(const void *obj, const char **ret_id, const char **ret_name)
{
	*ret_id = ((const struct ca_cert *)obj)->serial;
	*ret_name = NULL;
}

static const struct kind owner_kind = { &trstctl__v1__owner__descriptor, owner_msg, owner_clear,
					sizeof(struct ca_owner), "owner/", owner_names };
static const struct kind identity_kind = { &trstctl__v1__identity__descriptor, identity_msg,
					   identity_clear, sizeof(struct ca_identity),
					   "identity/", identity_names };
static const struct kind cert_kind = { &trstctl__v1__certificate__descriptor, cert_msg,
				       cert_clear, sizeof(struct ca_cert), "certificate/",
				       cert_names };

/* Packing for request_id: what each mutation stores (ud is the service). */
static int pack_kind(const struct kind *k, const void *obj, void *svc, uint8_t **ret,
		     size_t *ret_len)
{
	struct arena a = { 0 };
	const ProtobufCMessage *m = k->msg(&a, svc, obj);
	uint8_t *buf = NULL;
	size_t n = 0;

	if (m && !a.oom) {
		n = protobuf_c_message_get_packed_size(m);
		buf = malloc(n ? n : 1);
		if (buf)
			protobuf_c_message_pack(m, buf);
	}
	ar_free(&a);
	if (!buf)
		return -ENOMEM;
	*ret = buf;
	*ret_len = n;
	return 0;
}

static int pack_owner(const void *r, uint8_t **ret, size_t *ret_len, void *ud)
{
	return pack_kind(&owner_kind, r, ud, ret, ret_len);
}

static int pack_identity(const void *r, uint8_t **ret, size_t *ret_len, void *ud)
{
	return pack_kind(&identity_kind, r, ud, ret, ret_len);
}

static int pack_cert(const void *r, uint8_t **ret, size_t *ret_len, void *ud)
{
	return pack_kind(&cert_kind, r, ud, ret, ret_len);
}

/* Handler plumbing --------------------------------------------------------------------- */

static void *call_alloc(void *data, size_t size)
{
	return rpc_call_alloc(data, size);
}

static void call_free(void *data, void *p)
{
	(void)data;
	(void)p; /* released with the call */
}

/*
 * The context of a call; a mutation (req not NULL) also gets its change room key in *key
 * (the call's principal and method, request_id, the fingerprint of req).
 */
static int ctx_init(struct ca_ctx *ctx, struct rpc_call *call, const ProtobufCMessage *req,
		    const char *request_id, struct change_key *key,
		    int (*pack)(const void *, uint8_t **, size_t *, void *), void *svc)
{
	int64_t left = rpc_call_remaining_ms(call);

	memset(ctx, 0, sizeof(*ctx));
	ctx->actor = rpc_call_principal(call);
	ctx->call = call;
	if (req) {
		int r = change_key_from_call(key, call, req, NULL, request_id, NULL);

		if (r < 0)
			return r;
		ctx->key = key;
	}
	ctx->pack = pack;
	ctx->pack_ud = svc;
	ctx->timeout_ms = left < RPC_WRITE_MAX_MS ? (int)(left > 0 ? left : 1) : RPC_WRITE_MAX_MS;
	return 0;
}

/* The reply of a replayed request: the stored bytes, unpacked into call memory. */
static int replay(struct rpc_call *call, struct ca_ctx *ctx, const ProtobufCMessageDescriptor *d,
		  ProtobufCMessage **ret_resp)
{
	ProtobufCAllocator al = { .alloc = call_alloc, .free = call_free, .allocator_data = call };
	ProtobufCMessage *m = protobuf_c_message_unpack(d, &al, ctx->replayed_len, ctx->replayed);

	ca_ctx_clear(ctx);
	if (!m)
		return rpc_call_error(call, RPC_INTERNAL,
				      "stored reply of request_id is unreadable");
	*ret_resp = m;
	return 0;
}

/* The status of a failed domain call: the code of rpc/status.c's table, ctx's message. */
static int domain_error(struct rpc_call *call, struct ca_ctx *ctx, int r)
{
	ca_ctx_clear(ctx);
	/* a refusal of the issuance check already set its status */
	return ctx->check_failed ? r : rpc_call_fail(call, r, ctx->err);
}

static int done(struct rpc_call *call, struct ca_ctx *ctx, int r,
		const ProtobufCMessageDescriptor *d, ProtobufCMessage **ret_resp)
{
	if (r < 0)
		return domain_error(call, ctx, r);
	if (r == 1)
		return replay(call, ctx, d, ret_resp);
	return 0;
}

/*
 * The reply of a Create, Get or Transition handler: the error, the stored reply of a
 * replayed mutation (r == 1; ctx->key is set for mutations only), or obj as a message
 * in call memory. obj is cleared.
 */
static int reply_one(struct rpc_call *call, struct ca_ctx *ctx, int r, const struct kind *k,
		     void *obj, ProtobufCMessage **ret_resp)
{
	struct arena a = { .call = call };

	if (r < 0 || (ctx->key && r != 0))
		return done(call, ctx, r, k->desc, ret_resp);
	*ret_resp = k->msg(&a, ctx->pack_ud, obj);
	k->clear(obj);
	return 0;
}

/* One List call: its context and the page the domain returned. */
struct page {
	struct ca_ctx ctx;
	void *v;    /* the kind's domain structs, malloc'd */
	size_t n;   /* how many */
	char *next; /* malloc'd token of the next page, NULL on the last */
};

/* Starts a List call; the page size is checked before the domain is asked. */
static int page_begin(struct rpc_call *call, struct page *p, int32_t page_size, void *svc)
{
	memset(p, 0, sizeof(*p));
	ctx_init(&p->ctx, call, NULL, NULL, NULL, NULL, svc);
	return page_size < 0 ?
		       rpc_call_error(call, RPC_INVALID_ARGUMENT, "page_size must be >= 0") :
		       0;
}

/*
 * Whether the caller may see item obj of a List: the List's action on each resource the
 * item is known by (`owner/<id>` and `owner/<name>`), so that a deny on either hides it.
 * Returns 1, 0 or -errno.
 */
static int item_visible(struct rpc_call *call, const struct kind *k, const void *obj)
{
	const char *id, *name;
	int r;

	k->names(obj, &id, &name);
	r = rpc_call_item_visible(call, k->res, id);
	return r == 1 && name ? rpc_call_item_visible(call, k->res, name) : r;
}

/*
 * The reply of a List handler (d, a List*Response): its one repeated field gets the items
 * of the page (of kind k) the caller may see (item_visible), its next_page_token the next
 * token when there is one (also when items were left out). Frees the page.
 */
static int reply_page(struct rpc_call *call, struct page *p, int r, const struct kind *k,
		      const ProtobufCMessageDescriptor *d, ProtobufCMessage **ret_resp)
{
	const ProtobufCFieldDescriptor *tok =
		protobuf_c_message_descriptor_get_field_by_name(d, "next_page_token");
	struct arena a = { .call = call };
	ProtobufCMessage *resp;
	void **items;
	size_t shown = 0;

	if (r < 0)
		return domain_error(call, &p->ctx, r);
	resp = rpc_call_new_message(call, d);
	items = rpc_call_alloc(call, (p->n ? p->n : 1) * sizeof(*items));
	for (size_t i = 0; i < p->n; i++) {
		void *obj = (char *)p->v + i * k->size;
		int v = r < 0 ? r : item_visible(call, k, obj);

		if (v < 0)
			r = v;
		else if (v > 0)
			items[shown++] = k->msg(&a, p->ctx.pack_ud, obj);
		k->clear(obj);
	}
	if (r < 0) {
		free(p->next);
		free(p->v);
		return r;
	}
	for (unsigned f = 0; f < d->n_fields; f++) {
		if (d->fields[f].label != PROTOBUF_C_LABEL_REPEATED)
			continue;
		*(size_t *)((char *)resp + d->fields[f].quantifier_offset) = shown;
		*(void ***)((char *)resp + d->fields[f].offset) = items;
	}
	if (p->next)
		*(char **)((char *)resp + tok->offset) = rpc_call_strdup(call, p->next);
	free(p->next);
	free(p->v);
	*ret_resp = resp;
	return 0;
}

/* Owners ------------------------------------------------------------------------------- */

static int create_owner(struct rpc_call *call, const ProtobufCMessage *req_msg,
			ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__CreateOwnerRequest *req = (const void *)req_msg;
	struct ca_owner o = { 0 };
	struct ca_ctx ctx;
	struct change_key key;
	int r;

	r = ctx_init(&ctx, call, req_msg, req->request_id, &key, pack_owner, user);
	if (r < 0)
		return r;
	r = ca_owner_create(user, &ctx, req->kind, req->name, req->email, &o);
	return reply_one(call, &ctx, r, &owner_kind, &o, ret_resp);
}

static int get_owner(struct rpc_call *call, const ProtobufCMessage *req_msg,
		     ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__GetOwnerRequest *req = (const void *)req_msg;
	struct ca_owner o = { 0 };
	struct ca_ctx ctx;

	ctx_init(&ctx, call, NULL, NULL, NULL, NULL, user);
	return reply_one(call, &ctx, ca_owner_get(user, &ctx, req->id, &o), &owner_kind, &o,
			 ret_resp);
}

static int list_owners(struct rpc_call *call, const ProtobufCMessage *req_msg,
		       ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__ListOwnersRequest *req = (const void *)req_msg;
	struct ca_owner *v = NULL;
	struct page p;
	int r = page_begin(call, &p, req->page_size, user);

	if (r >= 0)
		r = ca_owner_list(user, &p.ctx, req->kind, req->page_size, req->page_token, &v,
				  &p.n, &p.next);
	p.v = v;
	return reply_page(call, &p, r, &owner_kind, &trstctl__v1__list_owners_response__descriptor,
			  ret_resp);
}

/* Identities --------------------------------------------------------------------------- */

static int create_identity(struct rpc_call *call, const ProtobufCMessage *req_msg,
			   ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__CreateIdentityRequest *req = (const void *)req_msg;
	struct ca_identity_spec s = { .kind = req->kind,
				      .name = req->name,
				      .owner_id = req->owner_id,
				      .dns_names = (const char *const *)req->dns_names,
				      .n_dns_names = req->n_dns_names,
				      .ip_addresses = (const char *const *)req->ip_addresses,
				      .n_ip_addresses = req->n_ip_addresses,
				      .key_type = req->key_type,
				      .ttl_seconds = req->ttl_seconds };
	struct ca_identity i = { 0 };
	struct ca_ctx ctx;
	struct change_key key;
	int r = ctx_init(&ctx, call, req_msg, req->request_id, &key, pack_identity, user);

	if (r < 0)
		return r;
	return reply_one(call, &ctx, ca_identity_create(user, &ctx, &s, &i), &identity_kind, &i,
			 ret_resp);
}

static int get_identity(struct rpc_call *call, const ProtobufCMessage *req_msg,
			ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__GetIdentityRequest *req = (const void *)req_msg;
	struct ca_identity i = { 0 };
	struct ca_ctx ctx;

	ctx_init(&ctx, call, NULL, NULL, NULL, NULL, user);
	return reply_one(call, &ctx, ca_identity_get(user, &ctx, req->id, &i), &identity_kind, &i,
			 ret_resp);
}

static int list_identities(struct rpc_call *call, const ProtobufCMessage *req_msg,
			   ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__ListIdentitiesRequest *req = (const void *)req_msg;
	struct ca_identity *v = NULL;
	struct page p;
	int r = page_begin(call, &p, req->page_size, user);

	if (r >= 0)
		r = ca_identity_list(user, &p.ctx, req->owner_id, req->state, req->page_size,
				     req->page_token, &v, &p.n, &p.next);
	p.v = v;
	return reply_page(call, &p, r, &identity_kind,
			  &trstctl__v1__list_identities_response__descriptor, ret_resp);
}

static int transition_identity(struct rpc_call *call, const ProtobufCMessage *req_msg,
			       ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__TransitionIdentityRequest *req = (const void *)req_msg;
	struct ca_identity i = { 0 };
	struct ca_ctx ctx;
	struct change_key key;
	int r;

	r = ctx_init(&ctx, call, req_msg, req->request_id, &key, pack_identity, user);
	if (r < 0)
		return r;
	r = ca_identity_transition(user, &ctx, req->id, req->to, req->reason, &i);
	return reply_one(call, &ctx, r, &identity_kind, &i, ret_resp);
}

/* Certificates and the CA ---------------------------------------------------------------- */

static int issue_certificate(struct rpc_call *call, const ProtobufCMessage *req_msg,
			     ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__IssueCertificateRequest *req = (const void *)req_msg;
	struct ca_cert c = { 0 };
	struct ca_ctx ctx;
	struct change_key key;
	int r;

	r = ctx_init(&ctx, call, req_msg, req->request_id, &key, pack_cert, user);
	if (r < 0)
		return r;
	r = ca_cert_issue(user, &ctx, req->identity_id, req->csr_pem, req->ttl_seconds, &c);
	return reply_one(call, &ctx, r, &cert_kind, &c, ret_resp);
}

static int get_certificate(struct rpc_call *call, const ProtobufCMessage *req_msg,
			   ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__GetCertificateRequest *req = (const void *)req_msg;
	struct ca_cert c = { 0 };
	struct ca_ctx ctx;

	ctx_init(&ctx, call, NULL, NULL, NULL, NULL, user);
	return reply_one(call, &ctx, ca_cert_get(user, &ctx, req->serial, &c), &cert_kind, &c,
			 ret_resp);
}

static int list_certificates(struct rpc_call *call, const ProtobufCMessage *req_msg,
			     ProtobufCMessage **ret_resp, void *user)
{
	const Trstctl__V1__ListCertificatesRequest *req = (const void *)req_msg;
	struct ca_cert *v = NULL;
	struct page p;
	int r = page_begin(call, &p, req->page_size, user);

	if (r >= 0)
		r = ca_cert_list(user, &p.ctx, req->identity_id, req->page_size, req->page_token,
				 &v, &p.n, &p.next);
	p.v = v;
	return reply_page(call, &p, r, &cert_kind,
			  &trstctl__v1__list_certificates_response__descriptor, ret_resp);
}

static int get_ca_bundle(struct rpc_call *call, const ProtobufCMessage *req_msg,
			 ProtobufCMessage **ret_resp, void *user)
{
	Trstctl__V1__CABundle *resp;

	(void)req_msg;
	resp = (void *)rpc_call_new_message(call, &trstctl__v1__cabundle__descriptor);
	resp->pem = (char *)ca_service_bundle_pem(user); /* lives as long as the service */
	*ret_resp = &resp->base;
	return 0;
}

static int get_crl(struct rpc_call *call, const ProtobufCMessage *req_msg,
		   ProtobufCMessage **ret_resp, void *user)
{
	struct arena a = { .call = call };
	Trstctl__V1__CRL *resp;
	struct ca_crl crl = { 0 };
	struct ca_ctx ctx;
	int r;

	(void)req_msg;
	ctx_init(&ctx, call, NULL, NULL, NULL, NULL, user);
	r = ca_crl_get(user, &ctx, &crl);
	if (r < 0)
		return domain_error(call, &ctx, r);
	resp = (void *)rpc_call_new_message(call, &trstctl__v1__crl__descriptor);
	resp->der.data = rpc_call_alloc(call, crl.der_len);
	memcpy(resp->der.data, crl.der, crl.der_len);
	resp->der.len = crl.der_len;
	resp->pem = rpc_call_strdup(call, crl.pem);
	resp->this_update = ts_us(&a, crl.this_update * 1000000);
	resp->next_update = ts_us(&a, crl.next_update * 1000000);
	resp->number = crl.number;
	ca_crl_clear(&crl);
	*ret_resp = &resp->base;
	return 0;
}

int ca_rpc_register(struct rpc_server *s, struct ca_service *svc)
{
	static const struct {
		const char *name;
		rpc_unary_fn fn;
		bool inline_ok;
	} table[] = {
		{ "CreateOwner", create_owner, false },
		{ "GetOwner", get_owner, false },
		{ "ListOwners", list_owners, false },
		{ "CreateIdentity", create_identity, false },
		{ "GetIdentity", get_identity, false },
		{ "ListIdentities", list_identities, false },
		{ "TransitionIdentity", transition_identity, false },
		{ "IssueCertificate", issue_certificate, false },
		{ "GetCertificate", get_certificate, false },
		{ "ListCertificates", list_certificates, false },
		{ "GetCABundle", get_ca_bundle, true },
		{ "GetCRL", get_crl, false },
	};
	const ProtobufCServiceDescriptor *d = &trstctl__v1__ca__descriptor;
	struct rpc_method_handler *h;

	if (!s || !svc)
		return -EINVAL;
	if (!svc->rpc_handlers) {
		svc->rpc_handlers = calloc(d->n_methods, sizeof(*h));
		if (!svc->rpc_handlers)
			return -ENOMEM;
	}
	h = svc->rpc_handlers;
	/* By name: the table follows desc->methods[], whatever order protoc-c chose. */
	for (unsigned i = 0; i < d->n_methods; i++)
		for (size_t k = 0; k < sizeof(table) / sizeof(table[0]); k++)
			if (strcmp(d->methods[i].name, table[k].name) == 0)
				h[i] = (struct rpc_method_handler){ .unary = table[k].fn,
								    .inline_ok =
									    table[k].inline_ok };
	return rpc_server_add_service(s, d, h, svc);
}
