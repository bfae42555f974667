/*
 * The mutation plumbing the CA service's files share: a mutation (struct ca_op) is one
 * group-commit change (db_write) that carries its rows, its audit record and its event, and
 * its stored reply when it has a request_id; nothing of it is written unless all of it is.
 * A retry with a request_id is answered from the stored reply before anything else is
 * checked (ca_replayed). Also the small helpers every service file uses (tenant, actor,
 * error text, a pooled read connection, page limits and tokens).
 *
 * Assumes the writer (db_write) runs the change on its own thread and may rerun apply, so
 * apply only writes rows and records fixed fields; the caller's thread signs and packs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "audit.h"
#include "bus.h"
#include "ca-internal.h"

#define WRITE_TIMEOUT_MS 30000

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
	return ctx && ctx->request_id && ctx->request_id[0];
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
	struct audit_entry e = { .tenant_id = ca_tenant_of(ctx),
				 .type = type,
				 .actor = ca_actor_of(ctx),
				 .resource = resource,
				 .data_json = js };
	int r;

	json_decref(data);
	if (!js)
		return -ENOMEM;
	r = audit_record(tx, &e);
	if (r >= 0)
		r = bus_event(tx, ca_tenant_of(ctx), type, ca_actor_of(ctx), js);
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

int ca_idem_in_progress(struct ca_ctx *ctx)
{
	return ca_fail(ctx, -EBUSY, "a call with request_id %s is in progress; retry",
		       ctx->request_id);
}

/*
 * The change of a mutation. A request_id was looked up before (ca_replayed()); here its
 * reply is stored with the change, and the primary key of idempotency turns a concurrent
 * twin into ABORTED, whose retry then finds the stored reply.
 */
static int op_change(struct db_tx *tx, void *ud)
{
	struct ca_op *op = ud;
	uint8_t *reply = NULL;
	size_t len = 0;
	int r;

	op->idem_done = false;
	r = op->apply(op, tx);
	if (r < 0 || op->idem_done)
		return r;
	r = ca_op_pack(op, &reply, &len);
	if (r < 0 || !reply)
		return r;
	r = db_idem_put(tx, ca_tenant_of(op->ctx), op->ctx->request_id, op->ctx->method, reply,
			len);
	free(reply);
	return r == -EEXIST ? ca_idem_in_progress(op->ctx) : r;
}

/*
 * A retry is answered before anything else is checked (the identity may have moved on
 * since the first call): 1 with the stored reply, 0 to go on. When two calls with one
 * request_id race, the primary key of idempotency decides inside the change (op_change).
 */
int ca_replayed(struct ca_service *svc, struct ca_ctx *ctx)
{
	struct db_conn *c = NULL;
	int r;

	ca_ctx_clear(ctx);
	if (!ca_has_request_id(ctx))
		return 0;
	r = ca_with_conn(svc, &c);
	if (r < 0)
		return r;
	r = ca_store_idem_get(c, ca_tenant_of(ctx), ctx->request_id, ctx->method, &ctx->replayed,
			      &ctx->replayed_len);
	db_release(svc->db, c);
	if (r == -EINVAL)
		return ca_fail(ctx, r, "request_id %s was used by another method", ctx->request_id);
	return r;
}

/* Runs op through the writer. Returns 0, 1 (replayed) or -errno. */
int ca_op_write(struct ca_op *op)
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
	struct audit_entry e = { .tenant_id = ca_tenant_of(ctx),
				 .type = type,
				 .actor = ca_actor_of(ctx),
				 .resource = resource,
				 .data_json = js };
	int r = audit_record(tx, &e);

	return r < 0 ? r : bus_event(tx, ca_tenant_of(ctx), type, ca_actor_of(ctx), js);
}

int ca_prep_record(const struct ca_ctx *ctx, const char *type, const char *resource,
		   const json_t *data, struct audit_record **ret_rec, struct bus_event **ret_ev)
{
	struct audit_entry e = { .tenant_id = ca_tenant_of(ctx),
				 .type = type,
				 .actor = ca_actor_of(ctx),
				 .resource = resource,
				 .data = data };
	int r = audit_prepare(&e, ret_rec);

	return r < 0 ? r :
		       bus_event_prepare_object(ca_tenant_of(ctx), type, ca_actor_of(ctx), data,
						ret_ev);
}
