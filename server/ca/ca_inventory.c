/*
 * The inventory of a tenant's CA as counts, for the readers that summarize it (the Assist
 * service's prompt, the telemetry reporter's buckets): identities by state, the current
 * certificates, and those of them that expire within a window, the soonest listed with
 * their identity's name. Three read statements on one pooled connection; they are not one
 * snapshot, which a summary does not need. The certificate counts scan the tenant's
 * certificates (no index on not_after): cheap next to the callers' own pace (a question,
 * a daily report).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca-internal.h"

/* A certificate counts while it is the current one of its identity and valid. */
#define CURRENT_CERT                                                             \
	"c.tenant_id = $1 AND c.revoked_at IS NULL AND c.superseded_by IS NULL " \
	"AND c.not_after > now()"
#define WITHIN "c.not_after <= now() + $2::bigint * interval '1 second'"

static int64_t num(const struct db_rows *r, size_t row, size_t col)
{
	const char *v = db_rows_get(r, row, col);

	return v ? strtoll(v, NULL, 10) : 0;
}

static int count_identities(struct db_conn *c, const char *tenant, struct ca_inventory *inv)
{
	const struct db_param p[] = { DB_TEXT(tenant) };
	struct db_rows *rows = NULL;
	int r = db_exec(c,
			"SELECT state, count(*) FROM identities WHERE tenant_id = $1 "
			"GROUP BY state",
			p, 1, &rows);

	if (r < 0)
		return r;
	for (size_t i = 0; i < rows->n_rows; i++) {
		enum ca_state s;
		int64_t n = num(rows, i, 1);

		inv->identities_total += n;
		if (ca_state_parse(db_rows_get(rows, i, 0), &s, NULL, 0) == 0)
			inv->identities[s] = n;
	}
	db_rows_free(rows);
	return 0;
}

static int count_certificates(struct db_conn *c, const struct db_param *p, struct ca_inventory *inv)
{
	struct db_rows *rows = NULL;
	int r = db_exec(c,
			"SELECT count(*), count(*) FILTER (WHERE " WITHIN ") "
			"FROM certificates c WHERE " CURRENT_CERT,
			p, 2, &rows);

	if (r < 0)
		return r;
	if (rows->n_rows == 1) {
		inv->certificates = num(rows, 0, 0);
		inv->expiring = num(rows, 0, 1);
	}
	db_rows_free(rows);
	return 0;
}

static int list_expiring(struct db_conn *c, const struct db_param *p, struct ca_inventory *inv)
{
	struct db_rows *rows = NULL;
	int r = db_exec(c,
			"SELECT i.name, i.state, extract(epoch from c.not_after)::bigint "
			"FROM certificates c JOIN identities i "
			"ON i.tenant_id = c.tenant_id AND i.id = c.identity_id "
			"WHERE " CURRENT_CERT " AND " WITHIN " ORDER BY c.not_after, c.serial "
			"LIMIT " CA_INVENTORY_LISTED_S,
			p, 2, &rows);

	if (r < 0)
		return r;
	for (size_t i = 0; i < rows->n_rows && i < CA_INVENTORY_LISTED; i++) {
		struct ca_inventory_cert *x = &inv->listed[inv->n_listed];

		x->identity_name = strdup(db_rows_get(rows, i, 0) ? db_rows_get(rows, i, 0) : "");
		if (!x->identity_name) {
			r = -ENOMEM;
			break;
		}
		if (ca_state_parse(db_rows_get(rows, i, 1), &x->state, NULL, 0) < 0)
			x->state = CA_STATE_ISSUED;
		x->not_after = num(rows, i, 2);
		inv->n_listed++;
	}
	db_rows_free(rows);
	return r;
}

int ca_inventory_get(struct ca_service *svc, const char *tenant_id, int64_t window_s,
		     struct ca_inventory *ret)
{
	const char *tenant = tenant_id && *tenant_id ? tenant_id : DB_DEFAULT_TENANT;
	struct ca_inventory inv = { 0 };
	struct db_conn *c = NULL;
	char win[24];
	int r;

	if (!svc || !ret || window_s < 0)
		return -EINVAL;
	snprintf(win, sizeof(win), "%" PRId64, window_s);
	{
		const struct db_param p[] = { DB_TEXT(tenant), DB_TEXT(win) };

		r = ca_with_conn(svc, &c);
		if (r < 0)
			return r;
		r = count_identities(c, tenant, &inv);
		if (r >= 0)
			r = count_certificates(c, p, &inv);
		if (r >= 0)
			r = list_expiring(c, p, &inv);
		db_release(svc->db, c);
	}
	if (r < 0) {
		ca_inventory_clear(&inv);
		return r;
	}
	*ret = inv;
	return 0;
}

void ca_inventory_clear(struct ca_inventory *inv)
{
	if (!inv)
		return;
	for (size_t i = 0; i < inv->n_listed; i++)
		free(inv->listed[i].identity_name);
	memset(inv, 0, sizeof(*inv));
}
