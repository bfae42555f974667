/*
 * The recent records of one outcome ("denied"), for summaries (the Assist service): among
 * the last `window` records of a tenant's chain, how many of each type there are, and the
 * newest few. Both statements are range scans of the primary key (tenant_id, sequence)
 * bounded by the head, so their cost does not grow with the length of the log. The head is
 * read once and the second statement uses it, so both describe the same records.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit-internal.h"
#include "db.h"

#define RECENT_TYPES_MAX 32 /* types counted; the rest are summed in `total` only */

static const char counts_sql[] =
	"SELECT h.sequence, e.type, e.n FROM "
	"(SELECT coalesce((SELECT sequence FROM audit_head WHERE tenant_id = $1), 0) AS sequence) h "
	"LEFT JOIN LATERAL (SELECT x.type, count(*) AS n FROM audit_events x "
	"WHERE x.tenant_id = $1 AND x.sequence > h.sequence - $3::bigint "
	"AND x.sequence <= h.sequence AND x.outcome = $2 GROUP BY x.type) e ON true "
	"ORDER BY e.n DESC, e.type";

static const char events_sql[] =
	"SELECT " AUDIT_EVENT_COLS " FROM audit_events e WHERE e.tenant_id = $1 "
	"AND e.sequence > $3::bigint AND e.sequence <= $4::bigint AND e.outcome = $2 "
	"ORDER BY e.sequence DESC LIMIT $5::int";

struct audit_recent *audit_recent_free(struct audit_recent *r)
{
	if (!r)
		return NULL;
	for (size_t i = 0; i < r->n_events; i++)
		audit_event_clear(&r->events[i]);
	free(r->events);
	free(r->types);
	free(r);
	return NULL;
}

/* Fills the head, the scanned range and the counts by type. */
static int read_counts(struct db_conn *c, const struct db_param *p, int64_t window,
		       struct audit_recent *r, int64_t *ret_head)
{
	struct db_rows *rows = NULL;
	int64_t head;
	int ret = db_exec(c, counts_sql, p, 3, &rows);

	if (ret < 0)
		return ret;
	if (rows->n_rows == 0 || !db_rows_get(rows, 0, 0)) {
		db_rows_free(rows);
		return -EPROTO;
	}
	head = strtoll(db_rows_get(rows, 0, 0), NULL, 10);
	r->scanned = head < window ? head : window;
	r->types = calloc(RECENT_TYPES_MAX, sizeof(*r->types));
	if (!r->types) {
		db_rows_free(rows);
		return -ENOMEM;
	}
	for (size_t i = 0; i < rows->n_rows; i++) {
		const char *type = db_rows_get(rows, i, 1);
		int64_t n;

		if (!type)
			break; /* the LEFT JOIN's empty row: no record with the outcome */
		n = strtoll(db_rows_get(rows, i, 2) ? db_rows_get(rows, i, 2) : "0", NULL, 10);
		r->total += n;
		if (r->n_types < RECENT_TYPES_MAX) {
			snprintf(r->types[r->n_types].type, sizeof(r->types[0].type), "%s", type);
			r->types[r->n_types++].n = n;
		}
	}
	db_rows_free(rows);
	*ret_head = head;
	return 0;
}

static int read_events(struct db_conn *c, const char *tenant, const char *outcome, int64_t from,
		       int64_t head, int max, struct audit_recent *r)
{
	char from_s[24], head_s[24], max_s[16];
	const struct db_param p[] = { DB_TEXT(tenant), DB_TEXT(outcome), DB_TEXT(from_s),
				      DB_TEXT(head_s), DB_TEXT(max_s) };
	struct db_rows *rows = NULL;
	int ret;

	snprintf(from_s, sizeof(from_s), "%" PRId64, from);
	snprintf(head_s, sizeof(head_s), "%" PRId64, head);
	snprintf(max_s, sizeof(max_s), "%d", max);
	ret = db_exec(c, events_sql, p, 5, &rows);
	if (ret < 0)
		return ret;
	if (rows->n_rows && !(r->events = calloc(rows->n_rows, sizeof(*r->events)))) {
		db_rows_free(rows);
		return -ENOMEM;
	}
	for (size_t i = 0; i < rows->n_rows; i++) {
		ret = audit_row_event(rows, i, 0, tenant, &r->events[r->n_events]);
		if (ret < 0)
			break;
		r->n_events++;
	}
	db_rows_free(rows);
	return ret < 0 ? ret : 0;
}

int audit_recent_outcome(struct audit *a, const char *tenant_id, const char *outcome,
			 int64_t window, int max, struct audit_recent **ret)
{
	char tenant[AUDIT_UUID_LEN + 1], window_s[24];
	struct audit_recent *r;
	struct db_conn *c = NULL;
	int64_t head = 0;
	int ret_code;

	if (!a || !outcome || !ret || window < 1 || window > AUDIT_RECENT_WINDOW_MAX || max < 0 ||
	    max > AUDIT_PAGE_MAX || audit_tenant(tenant_id, tenant) < 0)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	snprintf(window_s, sizeof(window_s), "%" PRId64, window);
	ret_code = db_acquire(a->db, 10000, &c);
	if (ret_code >= 0) {
		const struct db_param p[] = { DB_TEXT(tenant), DB_TEXT(outcome),
					      DB_TEXT(window_s) };

		ret_code = read_counts(c, p, window, r, &head);
		if (ret_code >= 0 && max > 0 && r->total > 0)
			ret_code = read_events(c, tenant, outcome, head - window, head, max, r);
		db_release(a->db, c);
	}
	if (ret_code < 0) {
		audit_recent_free(r);
		return ret_code;
	}
	*ret = r;
	return 0;
}
