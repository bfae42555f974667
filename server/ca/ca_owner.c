/*
 * Owners of the CA service (the people, teams and services identities belong to): create,
 * get and list, on the rows of ca_store.c. Creation is a mutation of ca_op.c; names are
 * unique per tenant (the store answers -EEXIST).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ca-internal.h"

void ca_owner_clear(struct ca_owner *o)
{
	if (!o)
		return;
	free(o->name);
	free(o->email);
	o->name = o->email = NULL;
}

static int owner_apply(struct ca_op *op, struct db_tx *tx)
{
	struct ca_owner *o = op->result;
	char res[64];
	int r;

	r = ca_store_owner_insert(tx, ca_tenant_of(op->ctx), o);
	if (r == -EEXIST)
		return ca_fail(op->ctx, r, "an owner named \"%s\" already exists", o->name);
	if (r < 0)
		return r;
	snprintf(res, sizeof(res), "owners/%s", o->id);
	return ca_record(tx, op->ctx, "owner.created", res,
			 json_pack("{s:s, s:s, s:s}", "owner_id", o->id, "kind",
				   ca_owner_kind_name(o->kind), "name", o->name));
}

int ca_owner_create(struct ca_service *svc, struct ca_ctx *ctx, const char *kind, const char *name,
		    const char *email, struct ca_owner *ret)
{
	struct ca_owner o = { 0 };
	struct ca_op op = { .svc = svc, .ctx = ctx, .apply = owner_apply, .result = &o };
	int r;

	r = ca_replayed(svc, ctx);
	if (r != 0)
		return r;
	if (ca_owner_kind_parse(kind, &o.kind, ctx->err, sizeof(ctx->err)) < 0 ||
	    ca_validate_name("name", name, CA_OWNER_NAME_MAX, ctx->err, sizeof(ctx->err)) < 0 ||
	    ca_validate_email(email, ctx->err, sizeof(ctx->err)) < 0)
		return -EINVAL;
	r = crypto_uuid_v4(o.id);
	if (r < 0)
		return r;
	o.name = strdup(name);
	o.email = strdup(email ? email : "");
	o.create_time = ca_now_us();
	if (!o.name || !o.email) {
		ca_owner_clear(&o);
		return -ENOMEM;
	}
	r = ca_op_write(&op);
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
		return ca_fail(ctx, -EINVAL, "id is required");
	if (!crypto_uuid_valid(id))
		return ca_fail(ctx, -ENOENT, "owner %s not found", id);
	r = ca_with_conn(svc, &c);
	if (r < 0)
		return r;
	r = ca_store_owner_get(c, ca_tenant_of(ctx), id, ret);
	db_release(svc->db, c);
	return r == -ENOENT ? ca_fail(ctx, r, "owner %s not found", id) : r;
}

int ca_owner_list(struct ca_service *svc, struct ca_ctx *ctx, const char *kind, int page_size,
		  const char *page_token, struct ca_owner **ret, size_t *ret_n, char **ret_next)
{
	enum ca_owner_kind k;
	struct db_conn *c = NULL;
	int limit = ca_page_limit(page_size), r;

	if (kind && *kind && ca_owner_kind_parse(kind, &k, ctx->err, sizeof(ctx->err)) < 0)
		return -EINVAL;
	if (page_token && *page_token && !crypto_uuid_valid(page_token))
		return ca_fail(ctx, -EINVAL, "invalid page_token");
	r = ca_with_conn(svc, &c);
	if (r < 0)
		return r;
	r = ca_store_owner_list(c, ca_tenant_of(ctx), kind, limit, page_token, ret, ret_n);
	db_release(svc->db, c);
	if (r >= 0 &&
	    (r = ca_next_token(*ret_n, limit, *ret_n ? (*ret)[*ret_n - 1].id : "", ret_next)) < 0) {
		for (size_t i = 0; i < *ret_n; i++)
			ca_owner_clear(&(*ret)[i]);
		free(*ret);
	}
	return r;
}
