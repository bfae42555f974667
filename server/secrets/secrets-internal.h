#pragma once
/*
 * Shared by the files of secrets/: the store's context and the helpers that turn result
 * rows into metadata.
 */
#include <stdarg.h>

#include "db.h"
#include "secrets.h"

struct secrets {
	struct db *db;		/* borrowed */
	const struct kek *kek;	/* borrowed */
	struct bus *bus;	/* borrowed, may be NULL */
	size_t max_value;	/* > 0 */
	int retain;		/* >= 0, 0 = keep every version's value */
	int timeout_ms;		/* > 0 */
	void *rpc_handlers;	/* struct rpc_method_handler[], once registered */
};

/*
 * The metadata columns every query selects, in this order (secrets_meta_from_row):
 * name, current_version, created_us, updated_us, deleted, deleted_us, labels.
 */
#define SECRETS_META_COLS                                                                  \
	"name, current_version, (extract(epoch FROM created_at) * 1000000)::bigint AS c_us, " \
	"(extract(epoch FROM updated_at) * 1000000)::bigint AS u_us, "                        \
	"deleted_at IS NOT NULL AS deleted, "                                                  \
	"coalesce((extract(epoch FROM deleted_at) * 1000000)::bigint, 0) AS d_us, "           \
	"labels::text AS labels"
#define SECRETS_META_NCOLS 7

/* Fills m from the SECRETS_META_COLS starting at column col of row. -EPROTO, -ENOMEM. */
int secrets_meta_from_row(const struct db_rows *rows, size_t row, size_t col,
			  struct secrets_meta *m);
/* Parses labels JSON text (an object of strings) into m. -EPROTO, -ENOMEM. */
int secrets_labels_parse(const char *json, struct secrets_meta *m);
/* The additional data binding a sealed value to its row. */
void secrets_aad(const char *tenant, const char *name, int64_t version, char *buf, size_t len);
/* snprintf into ctx->err; returns err. */
int secrets_fail(char *buf, size_t len, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* A tenant id or the default one. */
const char *secrets_tenant(const struct secrets_ctx *ctx);
/* The current version of a live secret (one read); -ENOENT when missing or deleted. */
int secrets_current_version(struct secrets *s, const struct secrets_ctx *ctx, const char *name,
			    int64_t *ret);
