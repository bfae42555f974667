/*
 * Reading the chain: listing with filters and paging, the live tail, and verification.
 *
 * Records of a tenant become visible in sequence order: a batch assigns its numbers under
 * the head row lock and holds it until COMMIT, so any snapshot that sees record n also sees
 * every record below n. A listing reads the head in the same statement (one snapshot), so
 * "nothing after n up to the head" is a fact the live tail can build on: it continues from
 * the point it scanned to and neither misses nor repeats a record.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit-internal.h"
#include "db.h"

void audit_event_clear(struct audit_event *ev)
{
	free(ev->type);
	free(ev->actor);
	free(ev->resource);
	free(ev->outcome);
	free(ev->data_json);
	ev->type = ev->actor = ev->resource = ev->outcome = ev->data_json = NULL;
}

static size_t val_len(const struct db_rows *rows, size_t row, size_t col)
{
	return rows->lengths[row * rows->n_cols + col];
}

static int parse_i64(const char *s, int64_t *ret)
{
	char *end;
	long long v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

int audit_row_event(const struct db_rows *rows, size_t row, size_t col, const char *tenant,
		    struct audit_event *ev)
{
	const char *v[AUDIT_EVENT_NCOLS];

	memset(ev, 0, sizeof(*ev));
	for (int i = 0; i < AUDIT_EVENT_NCOLS; i++) {
		v[i] = db_rows_get(rows, row, col + (size_t)i);
		if (!v[i])
			return -EPROTO;
	}
	if (parse_i64(v[0], &ev->sequence) < 0 || strlen(v[1]) != AUDIT_UUID_LEN ||
	    strlen(v[3]) != AUDIT_TIME_LEN || audit_parse_time(v[3], &ev->time_us) < 0)
		return -EPROTO;
	memcpy(ev->tenant_id, tenant, AUDIT_UUID_LEN + 1);
	memcpy(ev->id, v[1], AUDIT_UUID_LEN + 1);
	memcpy(ev->time, v[3], AUDIT_TIME_LEN + 1);
	if (val_len(rows, row, col + 8) != AUDIT_HASH_LEN ||
	    val_len(rows, row, col + 9) != AUDIT_HASH_LEN)
		return -EPROTO;
	memcpy(ev->prev_hash, v[8], AUDIT_HASH_LEN);
	memcpy(ev->hash, v[9], AUDIT_HASH_LEN);
	ev->type = strdup(v[2]);
	ev->actor = strdup(v[4]);
	ev->resource = strdup(v[5]);
	ev->outcome = strdup(v[6]);
	ev->data_json = strdup(v[7]);
	if (!ev->type || !ev->actor || !ev->resource || !ev->outcome || !ev->data_json) {
		audit_event_clear(ev);
		return -ENOMEM;
	}
	return 0;
}

struct audit_page *audit_page_free(struct audit_page *p)
{
	if (!p)
		return NULL;
	for (size_t i = 0; i < p->n; i++)
		audit_event_clear(&p->events[i]);
	free(p->events);
	free(p->next_page_token);
	free(p);
	return NULL;
}

/* A page token is the decimal sequence of the last record of the previous page. */
static int parse_token(const char *t, int64_t *ret)
{
	int64_t v;

	if (strlen(t) > 19 || t[0] == '-' || t[0] == '+' || parse_i64(t, &v) < 0 || v < 0)
		return -EINVAL;
	for (const char *c = t; *c; c++)
		if (*c < '0' || *c > '9')
			return -EINVAL;
	*ret = v;
	return 0;
}

static const char list_sql[] =
	"SELECT h.sequence, " AUDIT_EVENT_COLS " FROM "
	"(SELECT coalesce((SELECT sequence FROM audit_head WHERE tenant_id = $1), 0) AS sequence) h "
	"LEFT JOIN LATERAL (SELECT * FROM audit_events x WHERE x.tenant_id = $1 AND "
	"x.sequence > $2 AND x.sequence <= h.sequence AND starts_with(x.type, $3) "
	"ORDER BY x.sequence LIMIT $4) e ON true ORDER BY e.sequence";

int audit_list(struct audit *a, const char *tenant_id, const struct audit_query *q,
	       struct audit_page **ret_page)
{
	char tenant[AUDIT_UUID_LEN + 1], after_s[24], limit_s[24];
	struct db_conn *conn = NULL;
	struct db_rows *rows = NULL;
	struct audit_page *page;
	int64_t after, head;
	int size, r;

	if (!a || !q || !ret_page || q->after_sequence < 0 || audit_tenant(tenant_id, tenant) < 0)
		return -EINVAL;
	after = q->after_sequence;
	if (q->page_token && *q->page_token && parse_token(q->page_token, &after) < 0)
		return -EINVAL;
	size = q->page_size <= 0	     ? AUDIT_PAGE_DEFAULT :
	       q->page_size > AUDIT_PAGE_MAX ? AUDIT_PAGE_MAX :
					       q->page_size;
	snprintf(after_s, sizeof(after_s), "%" PRId64, after);
	snprintf(limit_s, sizeof(limit_s), "%d", size + 1);
	{
		struct db_param p[4] = { DB_TEXT(tenant), DB_TEXT(after_s),
					 DB_TEXT(q->type_prefix ? q->type_prefix : ""),
					 DB_TEXT(limit_s) };

		r = db_acquire(a->db, 10000, &conn);
		if (r < 0)
			return r;
		r = db_exec(conn, list_sql, p, 4, &rows);
		db_release(a->db, conn);
		if (r < 0)
			return r;
	}
	page = calloc(1, sizeof(*page));
	if (!page ||
	    (rows->n_rows && !(page->events = calloc(rows->n_rows, sizeof(*page->events))))) {
		r = -ENOMEM;
		goto fail;
	}
	r = -EPROTO;
	if (rows->n_rows == 0 || parse_i64(db_rows_get(rows, 0, 0), &head) < 0)
		goto fail;
	for (size_t i = 0; i < rows->n_rows && page->n < (size_t)size; i++) {
		if (!db_rows_get(rows, i, 1))
			break; /* the LEFT JOIN's empty row: nothing after `after` */
		r = audit_row_event(rows, i, 1, tenant, &page->events[page->n]);
		if (r < 0)
			goto fail;
		page->n++;
	}
	if (rows->n_rows > (size_t)size) {
		char tok[24];

		snprintf(tok, sizeof(tok), "%" PRId64, page->events[page->n - 1].sequence);
		page->next_page_token = strdup(tok);
		if (!page->next_page_token) {
			r = -ENOMEM;
			goto fail;
		}
		page->scanned_to = page->events[page->n - 1].sequence;
	} else {
		page->scanned_to = head > after ? head : after;
	}
	db_rows_free(rows);
	*ret_page = page;
	return 0;
fail:
	db_rows_free(rows);
	audit_page_free(page);
	return r;
}

int audit_watch(struct audit *a, const char *tenant_id, int64_t after_sequence,
		const char *type_prefix, int poll_ms, audit_send_fn send, audit_wait_fn wait,
		void *ud)
{
	int64_t last = after_sequence;

	if (!a || !send || !wait || after_sequence < 0)
		return -EINVAL;
	for (;;) {
		struct audit_query q = { .after_sequence = last,
					 .type_prefix = type_prefix,
					 .page_size = AUDIT_PAGE_MAX };
		struct audit_page *page = NULL;
		bool more;
		int r;

		r = audit_list(a, tenant_id, &q, &page);
		if (r < 0)
			return r;
		for (size_t i = 0; i < page->n; i++) {
			r = send(&page->events[i], ud);
			if (r < 0) {
				audit_page_free(page);
				return r;
			}
		}
		last = page->scanned_to;
		more = page->next_page_token != NULL;
		audit_page_free(page);
		if (!more && wait(ud, poll_ms))
			return 0;
	}
}

/* Verification ---------------------------------------------------------------------- */

#define VERIFY_PAGE 1000

void audit_verify_bad(struct audit_verify_result *res, int64_t seq, const char *fmt, ...)
{
	va_list ap;

	res->ok = false;
	res->first_bad_sequence = seq;
	va_start(ap, fmt);
	vsnprintf(res->detail, sizeof(res->detail), fmt, ap);
	va_end(ap);
}

struct verify_state {
	struct audit *a;
	struct db_conn *conn;
	const char *tenant;
	struct audit_verify_result *res;
	int64_t next;		      /* the sequence expected next */
	uint8_t prev[AUDIT_HASH_LEN]; /* the recomputed hash of next - 1 */
};

/* Checks the checkpoints in [lo, hi] against the verified hashes of page[]. */
static int verify_checkpoints(struct verify_state *st, const struct audit_event *page, size_t n,
			      int64_t lo, int64_t hi, bool *ret_bad)
{
	char lo_s[24], hi_s[24];
	struct db_param p[3] = { DB_TEXT(st->tenant), DB_TEXT(lo_s), DB_TEXT(hi_s) };
	struct db_rows *rows = NULL;
	int r;

	snprintf(lo_s, sizeof(lo_s), "%" PRId64, lo);
	snprintf(hi_s, sizeof(hi_s), "%" PRId64, hi);
	r = db_exec(st->conn,
		    "SELECT sequence, hash, key_version, signature FROM audit_checkpoints WHERE "
		    "tenant_id = $1 AND sequence >= $2 AND sequence <= $3 ORDER BY sequence",
		    p, 3, &rows);
	if (r < 0)
		return r;
	*ret_bad = false;
	for (size_t i = 0; i < rows->n_rows; i++) {
		const char *s = db_rows_get(rows, i, 0), *h = db_rows_get(rows, i, 1);
		const char *v = db_rows_get(rows, i, 2), *sig = db_rows_get(rows, i, 3);
		int64_t seq, ver;

		if (parse_i64(s, &seq) < 0 || parse_i64(v, &ver) < 0 || !h || !sig) {
			r = -EPROTO;
			break;
		}
		if (seq < lo || seq > hi || (size_t)(seq - lo) >= n) {
			audit_verify_bad(st->res, seq,
					 "checkpoint at sequence %" PRId64 " has no record", seq);
			*ret_bad = true;
			break;
		}
		if (rows->lengths[i * rows->n_cols + 1] != AUDIT_HASH_LEN ||
		    memcmp(h, page[seq - lo].hash, AUDIT_HASH_LEN) != 0) {
			audit_verify_bad(st->res, seq,
					 "checkpoint at sequence %" PRId64
					 " does not match the record's hash",
					 seq);
			*ret_bad = true;
			break;
		}
		r = audit_key_verify(st->a, st->conn, (int)ver, st->tenant, seq, (const uint8_t *)h,
				     (const uint8_t *)sig, rows->lengths[i * rows->n_cols + 3]);
		if (r == -EBADMSG || r == -ENOKEY) {
			audit_verify_bad(st->res, seq, "checkpoint at sequence %" PRId64 " %s", seq,
					 r == -ENOKEY ? "names an unknown audit key version" :
							"has a bad signature");
			*ret_bad = true;
			r = 0;
			break;
		}
		if (r < 0)
			break;
		st->res->checkpoints++;
	}
	db_rows_free(rows);
	return r < 0 ? r : 0;
}

static const char verify_sql[] =
	"SELECT " AUDIT_EVENT_COLS " FROM audit_events e WHERE e.tenant_id = $1 AND "
	"e.sequence >= $2 AND e.sequence <= $3 ORDER BY e.sequence LIMIT 1000";

/* Verifies one page from st->next up to `to`. Sets *ret_done when finished or bad. */
static int verify_page(struct verify_state *st, int64_t to, bool *ret_done)
{
	char from_s[24], to_s[24];
	struct db_param p[3] = { DB_TEXT(st->tenant), DB_TEXT(from_s), DB_TEXT(to_s) };
	struct db_rows *rows = NULL;
	struct audit_event *page = NULL;
	int64_t lo = st->next;
	size_t n = 0;
	bool is_bad = false;
	int r;

	snprintf(from_s, sizeof(from_s), "%" PRId64, st->next);
	snprintf(to_s, sizeof(to_s), "%" PRId64, to);
	r = db_exec(st->conn, verify_sql, p, 3, &rows);
	if (r < 0)
		return r;
	*ret_done = true;
	if (rows->n_rows == 0) {
		audit_verify_bad(st->res, st->next, "record %" PRId64 " is missing", st->next);
		goto out;
	}
	page = calloc(rows->n_rows, sizeof(*page));
	if (!page) {
		r = -ENOMEM;
		goto out;
	}
	for (; n < rows->n_rows; n++) {
		struct audit_event *ev = &page[n];
		uint8_t h[AUDIT_HASH_LEN];

		r = audit_row_event(rows, n, 0, st->tenant, ev);
		if (r == -EPROTO) {
			const char *s = db_rows_get(rows, n, 0);

			audit_verify_bad(st->res, st->next, "record %s cannot be read back",
					 s ? s : "?");
			r = 0;
			goto out;
		}
		if (r < 0)
			goto out;
		if (ev->sequence != st->next) {
			n++;
			audit_verify_bad(st->res, st->next, "record %" PRId64 " is missing",
					 st->next);
			goto out;
		}
		if (memcmp(ev->prev_hash, st->prev, AUDIT_HASH_LEN) != 0) {
			n++;
			audit_verify_bad(st->res, ev->sequence,
					 "record %" PRId64
					 ": prev_hash does not link to the record before",
					 ev->sequence);
			goto out;
		}
		r = audit_hash(st->prev, ev, h);
		if (r < 0) {
			n++;
			goto out;
		}
		if (memcmp(h, ev->hash, AUDIT_HASH_LEN) != 0) {
			n++;
			audit_verify_bad(st->res, ev->sequence,
					 "record %" PRId64
					 ": hash mismatch (the record was altered)",
					 ev->sequence);
			goto out;
		}
		memcpy(st->prev, h, AUDIT_HASH_LEN);
		st->res->checked++;
		st->res->head_sequence = ev->sequence;
		memcpy(st->res->head_hash, h, AUDIT_HASH_LEN);
		st->next++;
	}
	r = verify_checkpoints(st, page, n, lo, st->next - 1, &is_bad);
	if (r >= 0 && !is_bad)
		*ret_done = st->next > to;
out:
	for (size_t i = 0; i < n && page; i++)
		audit_event_clear(&page[i]);
	free(page);
	db_rows_free(rows);
	return r;
}

/* Reads the head; and the stored hash of record from - 1 as the first link. */
static int verify_start(struct verify_state *st, int64_t from, int64_t *ret_head,
			uint8_t head_hash[AUDIT_HASH_LEN])
{
	char s[24];
	struct db_param p[2] = { DB_TEXT(st->tenant), DB_TEXT(s) };
	struct db_rows *rows = NULL;
	int r;

	r = db_exec(st->conn, "SELECT sequence, hash FROM audit_head WHERE tenant_id = $1", p, 1,
		    &rows);
	if (r < 0)
		return r;
	*ret_head = 0;
	memset(head_hash, 0, AUDIT_HASH_LEN);
	if (rows->n_rows == 1) {
		if (parse_i64(db_rows_get(rows, 0, 0), ret_head) < 0 ||
		    rows->lengths[1] != AUDIT_HASH_LEN) {
			db_rows_free(rows);
			return -EPROTO;
		}
		memcpy(head_hash, db_rows_get(rows, 0, 1), AUDIT_HASH_LEN);
	}
	rows = db_rows_free(rows);
	memset(st->prev, 0, AUDIT_HASH_LEN);
	if (from <= 1 || from > *ret_head)
		return 0;
	snprintf(s, sizeof(s), "%" PRId64, from - 1);
	r = db_exec(st->conn,
		    "SELECT hash FROM audit_events WHERE tenant_id = $1 AND sequence = $2", p, 2,
		    &rows);
	if (r < 0)
		return r;
	if (rows->n_rows != 1 || rows->lengths[0] != AUDIT_HASH_LEN)
		audit_verify_bad(st->res, from - 1, "record %" PRId64 " is missing", from - 1);
	else
		memcpy(st->prev, db_rows_get(rows, 0, 0), AUDIT_HASH_LEN);
	db_rows_free(rows);
	return 0;
}

int audit_verify(struct audit *a, const char *tenant_id, int64_t from, int64_t to,
		 struct audit_verify_result *ret)
{
	char tenant[AUDIT_UUID_LEN + 1];
	struct audit_verify_result res = { .ok = true };
	struct verify_state st = { .a = a, .tenant = tenant, .res = &res };
	uint8_t head_hash[AUDIT_HASH_LEN];
	int64_t head;
	bool to_head, done = false;
	int r;

	if (!a || !ret || audit_tenant(tenant_id, tenant) < 0 || (to > 0 && from > to))
		return -EINVAL;
	if (from <= 0)
		from = 1;
	r = db_acquire(a->db, 10000, &st.conn);
	if (r < 0)
		return r;
	r = verify_start(&st, from, &head, head_hash);
	if (r >= 0 && from > 1 && from > head)
		r = -EDOM; /* nothing there to verify: not a broken chain */
	if (r < 0 || !res.ok)
		goto out;
	to_head = to <= 0 || to >= head;
	if (to_head)
		to = head;
	st.next = from;
	while (r >= 0 && !done && st.next <= to)
		r = verify_page(&st, to, &done);
	if (r < 0 || !res.ok)
		goto out;
	if (to_head && head > 0 && memcmp(head_hash, st.prev, AUDIT_HASH_LEN) != 0) {
		audit_verify_bad(&res, head,
				 "the chain head (sequence %" PRId64
				 ") does not match record %" PRId64,
				 head, head);
		goto out;
	}
	if (to_head) {
		/* A checkpoint past the head signs a record that is not there. */
		char s[24];
		struct db_param p[2] = { DB_TEXT(tenant), DB_TEXT(s) };
		struct db_rows *rows = NULL;

		snprintf(s, sizeof(s), "%" PRId64, head);
		r = db_exec(st.conn,
			    "SELECT min(sequence) FROM audit_checkpoints WHERE tenant_id = $1 AND "
			    "sequence > $2",
			    p, 2, &rows);
		if (r >= 0 && db_rows_get(rows, 0, 0)) {
			int64_t cp = strtoll(db_rows_get(rows, 0, 0), NULL, 10);

			audit_verify_bad(&res, cp,
					 "checkpoint at sequence %" PRId64 " is past the head", cp);
		}
		db_rows_free(rows);
		if (r < 0 || !res.ok)
			goto out;
		/* Records cut from the tail with their checkpoints: the witnesses remember. */
		r = audit_witness_check(a, st.conn, tenant, head, &res);
		if (r < 0 || !res.ok)
			goto out;
	}
	{
		char note[sizeof(res.detail)];

		/* audit_witness_check left a note on what it compared in detail */
		snprintf(note, sizeof(note), "%s", res.detail);
		snprintf(res.detail, sizeof(res.detail),
			 "%" PRId64 " records and %" PRId64 " checkpoints verified%s%.400s",
			 res.checked, res.checkpoints, note[0] ? "; " : "", note);
	}
out:
	db_release(a->db, st.conn);
	if (r >= 0)
		*ret = res;
	return r < 0 ? r : 0;
}
