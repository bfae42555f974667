/*
 * The CA's side of the change room (change.h): a mutation (struct ca_op) is one change_run
 * that carries its rows, its audit record and its event, and its stored reply when its key
 * has a request_id; nothing of it is written unless all of it is. A retry is answered from
 * the stored reply before anything else is checked (ca_replayed). Also the small helpers
 * every service file uses (tenant, actor, error text, a pooled read connection, paging).
 *
 * Assumes the writer runs the change on its own thread and may rerun apply, so apply only
 * writes rows and records fixed fields; the caller's thread signs and packs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ca-internal.h"

int64_t ca_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *ca_tenant_of(const struct ca_ctx *ctx)
{
	return ctx && ctx->tenant_id ? ctx->tenant_id : DB_DEFAULT_TENANT;
}

const char *ca_actor_of(const struct ca_ctx *ctx)
{
	return ctx && ctx->actor ? ctx->actor : "anonymous";
}

bool ca_has_request_id(const struct ca_ctx *ctx)
{
	return ctx && change_key_idempotent(ctx->key);
}

int ca_fail(struct ca_ctx *ctx, int r, const char *fmt, ...)
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

/* Leases a pooled connection for a read. */
int ca_with_conn(struct ca_service *svc, struct db_conn **ret)
{
	return db_acquire(svc->db, 10000, ret);
}

/* Audit record and event of one change, same type, same data. */
int ca_record(struct db_tx *tx, const struct ca_ctx *ctx, const char *type, const char *resource,
	      json_t *data)
{
	char *js = json_dumps(data, JSON_COMPACT);
	int r = js ? ca_record_text(tx, ctx, type, resource, js) : -ENOMEM;

	json_decref(data);
	free(js);
	return r;
}

/* The reply of op for its request_id (never with a private key); *ret NULL when none. */
int ca_op_pack(struct ca_op *op, uint8_t **ret, size_t *ret_len)
{
	char *key = op->key_holder ? op->key_holder->key_pem : NULL;
	int r;

	*ret = NULL;
	*ret_len = 0;
	if (!ca_has_request_id(op->ctx) || !op->ctx->pack)
		return 0;
	if (op->key_holder)
		op->key_holder->key_pem = NULL;
	r = op->ctx->pack(op->result, ret, ret_len, op->ctx->pack_ud);
	if (op->key_holder)
		op->key_holder->key_pem = key;
	return r;
}

static int op_apply(struct db_tx *tx, void *ud, char *err, size_t errlen)
{
	struct ca_op *op = ud;
	int r = op->apply(op, tx);

	/* the domain's message (ca_fail) is the change's */
	if (r < 0 && op->ctx->err[0])
		snprintf(err, errlen, "%s", op->ctx->err);
	return r;
}

static int op_pack(void *ud, uint8_t **ret, size_t *ret_len)
{
	return ca_op_pack(ud, ret, ret_len);
}

/*
 * A retry is answered before anything else is checked (the identity may have moved on
 * since the first call): 1 with the stored reply in ctx, 0 to go on, -EINVAL for a
 * request_id used for a different request. Two calls racing one key: the change room
 * decides inside the change.
 */
/* Moves a lookup's outcome (change_check, change_twin: r) into ctx. */
static int lookup_done(struct ca_ctx *ctx, struct change *ch, int r)
{
	if (r < 0)
		snprintf(ctx->err, sizeof(ctx->err), "%s", ch->err);
	if (r == 1) {
		ctx->replayed = ch->replayed;
		ctx->replayed_len = ch->replayed_len;
	}
	return r;
}

int ca_replayed(struct ca_service *svc, struct ca_ctx *ctx)
{
	struct change ch = { .db = svc->db, .key = ctx->key };

	ca_ctx_clear(ctx);
	return ca_has_request_id(ctx) ? lookup_done(ctx, &ch, change_check(&ch)) : 0;
}

int ca_twin(struct ca_service *svc, struct ca_ctx *ctx)
{
	struct change ch = { .db = svc->db, .key = ctx->key };

	ca_ctx_clear(ctx);
	return lookup_done(ctx, &ch, change_twin(&ch));
}

int ca_replayed_on_failure(struct ca_service *svc, struct ca_ctx *ctx, int r)
{
	int rr;

	if (r >= 0 || !ca_has_request_id(ctx))
		return r;
	rr = ca_replayed(svc, ctx);
	return rr != 0 ? rr : r;
}

/* Runs op through the change room (its key was looked up by ca_replayed). Returns 0, 1
 * (a twin committed first: its stored reply is in ctx) or -errno. */
int ca_op_write(struct ca_op *op)
{
	struct ca_ctx *ctx = op->ctx;
	struct change_key none = { .tenant = ca_tenant_of(ctx) };
	struct change ch = { .db = op->svc->db, .bus = op->svc->bus,
			     .key = ctx->key ? ctx->key : &none, .apply = op_apply,
			     .pack = op->hook_stores ? NULL : op_pack, .ud = op,
			     .timeout_ms = ctx->timeout_ms, .skip_lookup = true,
			     .no_store = op->hook_stores };
	int r;

	ca_ctx_clear(ctx);
	ctx->err[0] = '\0';
	r = change_run(&ch);
	if (r < 0 && ctx->err[0])
		return r; /* the domain's own message (apply) */
	return lookup_done(ctx, &ch, r);
}

int ca_page_limit(int page_size)
{
	if (page_size <= 0)
		return CA_PAGE_DEFAULT;
	return page_size > CA_PAGE_MAX ? CA_PAGE_MAX : page_size;
}

/* The next page token: the last key when the page is full. */
int ca_next_token(size_t n, int limit, const char *last, char **ret_next)
{
	*ret_next = NULL;
	if (n < (size_t)limit)
		return 0;
	*ret_next = strdup(last);
	return *ret_next ? 0 : -ENOMEM;
}

/* Audit record and event of one change from its JSON text (the ca_record() of a built one). */
int ca_record_text(struct db_tx *tx, const struct ca_ctx *ctx, const char *type,
		   const char *resource, const char *js)
{
	struct change_record rec = { .tenant = ca_tenant_of(ctx),
				     .type = type,
				     .actor = ca_actor_of(ctx),
				     .resource = resource,
				     .data_json = js };

	return change_record(tx, &rec);
}

int ca_prep_record(const struct ca_ctx *ctx, const char *type, const char *resource,
		   const json_t *data, struct change_prepared **ret)
{
	struct change_record rec = { .tenant = ca_tenant_of(ctx),
				     .type = type,
				     .actor = ca_actor_of(ctx),
				     .resource = resource,
				     .data = data };

	return change_prepare(&rec, ret);
}
