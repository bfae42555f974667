/*
 * Request idempotency: a mutating request that carries a request_id stores its packed
 * reply in the same change, so that a retry with the same id returns the first reply and
 * changes nothing more. The table is idempotency (migration 0001).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

int db_idem_get(struct db_tx *tx, const char *tenant_id, const char *request_id,
		const char *method, uint8_t **ret_reply, size_t *ret_len)
{
	const struct db_param p[] = { DB_TEXT(tenant_id ? tenant_id : DB_DEFAULT_TENANT),
				      DB_TEXT(request_id) };
	struct db_rows *rows = NULL;
	uint8_t *copy;
	int r;

	if (!request_id || !request_id[0] || !method)
		return -EINVAL;
	r = db_tx_exec(tx,
		       "SELECT method, reply FROM idempotency WHERE tenant_id = $1 AND request_id = $2",
		       p, 2, &rows);
	if (r < 0)
		return r;
	if (rows->n_rows == 0) {
		db_rows_free(rows);
		return 0;
	}
	if (strcmp(db_rows_get(rows, 0, 0), method) != 0) {
		db_rows_free(rows);
		return -EINVAL;
	}
	copy = malloc(rows->lengths[1] ? rows->lengths[1] : 1);
	if (!copy) {
		db_rows_free(rows);
		return -ENOMEM;
	}
	memcpy(copy, rows->values[1], rows->lengths[1]);
	*ret_len = rows->lengths[1];
	*ret_reply = copy;
	db_rows_free(rows);
	return 1;
}

int db_idem_put(struct db_tx *tx, const char *tenant_id, const char *request_id,
		const char *method, const uint8_t *reply, size_t len)
{
	const struct db_param p[] = { DB_TEXT(tenant_id ? tenant_id : DB_DEFAULT_TENANT),
				      DB_TEXT(request_id), DB_TEXT(method), DB_BYTES(reply, len) };

	if (!request_id || !request_id[0] || !method)
		return -EINVAL;
	return db_tx_exec(tx,
			  "INSERT INTO idempotency (tenant_id, request_id, method, reply) "
			  "VALUES ($1, $2, $3, $4)",
			  p, 4, NULL);
}
