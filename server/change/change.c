/*
 * The change room: request keys, the idempotency table, audit + event attachment, the run
 * of one change through the group-commit writer, hook registration and the guess-and-verify
 * retry (change.h). This file and change-purge.c are the only code that reads or writes the
 * idempotency table (migrations 0001 and 0006).
 *
 * Assumes db_open, audit_open and bus_open ran on the same struct db (their hooks are
 * registered) before the first change_run.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "bus.h"
#include "change.h"
#include "crypto.h"

#define WRITE_TIMEOUT_MS 30000
#define FP_LABEL "trstctl request fingerprint v1"

static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

bool change_key_idempotent(const struct change_key *k)
{
	return k && k->request_id && k->request_id[0];
}

const char *change_tenant(const struct change_key *k)
{
	return k && k->tenant ? k->tenant : DB_DEFAULT_TENANT;
}

const char *change_principal(const struct change_key *k)
{
	return k && k->principal && k->principal[0] ? k->principal : "anonymous";
}

bool change_key_same(const struct change_key *a, const struct change_key *b)
{
	return change_key_idempotent(a) && change_key_idempotent(b) &&
	       strcmp(a->request_id, b->request_id) == 0 &&
	       strcmp(change_tenant(a), change_tenant(b)) == 0 &&
	       strcmp(change_principal(a), change_principal(b)) == 0 && a->method && b->method &&
	       strcmp(a->method, b->method) == 0;
}

int change_fingerprint(const struct kek *kek, const void *bytes, size_t len,
		       struct change_key *k)
{
	static const uint8_t none;

	if (!k)
		return -EINVAL;
	if (!bytes)
		bytes = &none;
	if (kek)
		return kek_hmac(kek, FP_LABEL, bytes, len, k->fingerprint);
	return crypto_sha256(bytes, len, k->fingerprint);
}

int change_key_check(const struct change_key *k, char *err, size_t errlen)
{
	size_t n;

	if (!change_key_idempotent(k))
		return 0;
	n = strlen(k->request_id);
	if (n > CHANGE_REQUEST_ID_MAX)
		return fail(err, errlen, -EINVAL, "request_id is %zu bytes, more than %d", n,
			    CHANGE_REQUEST_ID_MAX);
	for (size_t i = 0; i < n; i++)
		if (k->request_id[i] < 0x21 || k->request_id[i] > 0x7e)
			return fail(err, errlen, -EINVAL,
				    "request_id must be printable ASCII without spaces");
	if (!k->method || !k->method[0])
		return -EINVAL;
	return 0;
}

/* Idempotency table -------------------------------------------------------------------- */

static const char lookup_sql[] =
	"SELECT fingerprint, reply FROM idempotency WHERE tenant_id = $1 AND principal = $2 "
	"AND method = $3 AND request_id = $4";

/* Reads the lookup's row into the reply (1), or 0, or the mismatch (-EINVAL). */
static int lookup_result(const struct change_key *k, struct db_rows *rows, uint8_t **ret_reply,
			 size_t *ret_len, char *err, size_t errlen)
{
	uint8_t *copy;

	if (rows->n_rows == 0)
		return 0;
	if (rows->lengths[0] != CHANGE_FP_LEN ||
	    memcmp(rows->values[0], k->fingerprint, CHANGE_FP_LEN) != 0)
		return fail(err, errlen, -EINVAL,
			    "request_id %s was used for a different request; use a new "
			    "request_id for a new request",
			    k->request_id);
	copy = malloc(rows->lengths[1] ? rows->lengths[1] : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, rows->values[1], rows->lengths[1]);
	*ret_reply = copy;
	*ret_len = rows->lengths[1];
	return 1;
}

static void key_params(const struct change_key *k, struct db_param p[4])
{
	p[0] = DB_TEXT(change_tenant(k));
	p[1] = DB_TEXT(change_principal(k));
	p[2] = DB_TEXT(k->method);
	p[3] = DB_TEXT(k->request_id);
}

/*
 * The reply stored under k: 1 with *ret_reply (malloc'd) and *ret_len when k was seen with
 * the same fingerprint, 0 when k is new (or not idempotent), -EINVAL with a message in err
 * when k was used for a different request.
 */
static int lookup(struct db_conn *c, const struct change_key *k, uint8_t **ret_reply,
		  size_t *ret_len, char *err, size_t errlen)
{
	struct db_param p[4];
	struct db_rows *rows = NULL;
	int r;

	if (!change_key_idempotent(k))
		return 0;
	key_params(k, p);
	r = db_exec(c, lookup_sql, p, 4, &rows);
	if (r >= 0)
		r = lookup_result(k, rows, ret_reply, ret_len, err, errlen);
	db_rows_free(rows);
	return r;
}

int change_store(struct db_tx *tx, const struct change_key *k, const uint8_t *reply,
		 size_t len)
{
	struct db_param p[6];

	if (!change_key_idempotent(k))
		return 0;
	key_params(k, p);
	p[4] = DB_BYTES(k->fingerprint, CHANGE_FP_LEN);
	p[5] = DB_BYTES(reply ? reply : (const uint8_t *)"", reply ? len : 0);
	return db_tx_exec(tx,
			  "INSERT INTO idempotency (tenant_id, principal, method, request_id, "
			  "fingerprint, reply) VALUES ($1, $2, $3, $4, $5, $6)",
			  p, 6, NULL);
}

void change_batch_add(struct db_array *cols, struct db_blob *blob, const struct change_key *k,
		      const uint8_t *reply, size_t len)
{
	char hex[2 * CHANGE_FP_LEN + 1] = "";
	bool idem = change_key_idempotent(k);

	if (idem)
		for (size_t i = 0; i < CHANGE_FP_LEN; i++)
			snprintf(hex + 2 * i, 3, "%02x", k->fingerprint[i]);
	db_array_add_text(&cols[0], idem ? change_principal(k) : "");
	db_array_add_text(&cols[1], idem ? k->method : "");
	db_array_add_text(&cols[2], idem ? k->request_id : "");
	db_array_add_text(&cols[3], hex);
	db_blob_add(blob, &cols[4], &cols[5], idem ? reply : NULL, idem ? len : 0);
}

int change_item_key_set(struct change_item_key *ik, const struct change_key *k)
{
	memset(ik, 0, sizeof(*ik));
	if (!change_key_idempotent(k))
		return 0;
	if (strlen(change_principal(k)) > CHANGE_PRINCIPAL_MAX || !k->method ||
	    strlen(k->method) > CHANGE_METHOD_MAX || strlen(k->request_id) > CHANGE_REQUEST_ID_MAX)
		return -EINVAL;
	strcpy(ik->principal, change_principal(k));
	strcpy(ik->method, k->method);
	strcpy(ik->request_id, k->request_id);
	memcpy(ik->fingerprint, k->fingerprint, CHANGE_FP_LEN);
	return 0;
}

struct change_key change_item_key_get(const struct change_item_key *ik, const char *tenant)
{
	struct change_key k = { .tenant = tenant,
				.principal = ik->principal,
				.method = ik->method,
				.request_id = ik->request_id };

	memcpy(k.fingerprint, ik->fingerprint, CHANGE_FP_LEN);
	return k;
}

/* Audit and events --------------------------------------------------------------------- */

struct change_prepared {
	struct audit_record *rec;
	struct bus_event *ev; /* NULL: no event */
};

static struct audit_entry audit_entry_of(const struct change_record *rec)
{
	return (struct audit_entry){ .tenant_id = rec->tenant,
				     .type = rec->type,
				     .actor = rec->actor ? rec->actor : "anonymous",
				     .resource = rec->resource,
				     .outcome = rec->outcome,
				     .data_json = rec->data_json,
				     .data = rec->data };
}

static const char *event_json_of(const struct change_record *rec)
{
	return rec->event_json ? rec->event_json : rec->data_json;
}

int change_record(struct db_tx *tx, const struct change_record *rec)
{
	struct audit_entry e = audit_entry_of(rec);
	int r;

	if (rec->data) {
		/* built objects take the prepared path: one printing for both */
		struct change_prepared *p = NULL;

		r = change_prepare(rec, &p);
		if (r >= 0)
			r = change_attach(tx, p);
		change_prepared_free(p);
		return r;
	}
	r = audit_record(tx, &e);

	if (r < 0 || rec->no_event)
		return r;
	return bus_event(tx, rec->tenant, rec->event_type ? rec->event_type : rec->type,
			 e.actor, event_json_of(rec));
}

int change_prepare(const struct change_record *rec, struct change_prepared **ret)
{
	struct audit_entry e = audit_entry_of(rec);
	struct change_prepared *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	r = audit_prepare(&e, &p->rec);
	/* the object was printed once, for the record: the event reuses that text */
	if (r >= 0 && !rec->no_event && rec->data)
		r = bus_event_prepare_printed(rec->tenant,
					      rec->event_type ? rec->event_type : rec->type,
					      e.actor, audit_record_data(p->rec), &p->ev);
	else if (r >= 0 && !rec->no_event)
		r = bus_event_prepare(rec->tenant, rec->event_type ? rec->event_type : rec->type,
				      e.actor, event_json_of(rec), &p->ev);
	if (r < 0) {
		change_prepared_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

int change_attach(struct db_tx *tx, const struct change_prepared *p)
{
	int r = audit_attach(tx, p->rec);

	return r < 0 || !p->ev ? r : bus_event_attach(tx, p->ev);
}

struct change_prepared *change_prepared_free(struct change_prepared *p)
{
	if (p) {
		audit_record_free(p->rec);
		bus_event_free(p->ev);
		free(p);
	}
	return NULL;
}

/* One change --------------------------------------------------------------------------- */

static int run_change(struct db_tx *tx, void *ud)
{
	struct change *ch = ud;
	uint8_t *reply = NULL;
	size_t len = 0;
	int r;

	ch->err[0] = '\0';
	ch->lost_race = false;
	r = ch->apply(tx, ch->ud, ch->err, sizeof(ch->err));
	if (r < 0 || !change_key_idempotent(ch->key) || ch->no_store)
		return r;
	if (ch->pack) {
		r = ch->pack(ch->ud, &reply, &len);
		if (r < 0)
			return r;
	}
	r = change_store(tx, ch->key, reply, len);
	free(reply);
	ch->lost_race = r == -EEXIST;
	return r;
}

/* Looks the key up on a pooled connection: 1 replayed, 0 new, -errno. */
static int look(struct change *ch)
{
	struct db_conn *c = NULL;
	int r = db_acquire(ch->db, 10000, &c);

	if (r < 0)
		return r;
	r = lookup(c, ch->key, &ch->replayed, &ch->replayed_len, ch->err,
			  sizeof(ch->err));
	db_release(ch->db, c);
	return r;
}

int change_check(struct change *ch)
{
	int r;

	if (!ch || !ch->db)
		return -EINVAL;
	change_clear(ch);
	ch->err[0] = '\0';
	r = change_key_check(ch->key, ch->err, sizeof(ch->err));
	if (r < 0 || !change_key_idempotent(ch->key))
		return r;
	return look(ch);
}

int change_twin(struct change *ch)
{
	int r;

	if (!ch || !ch->db || !change_key_idempotent(ch->key))
		return -EINVAL;
	change_clear(ch);
	ch->err[0] = '\0';
	r = look(ch);
	if (r == 0)
		r = fail(ch->err, sizeof(ch->err), -EBUSY,
			 "a call with request_id %s is in progress; retry", ch->key->request_id);
	return r;
}

int change_run(struct change *ch)
{
	int r;

	if (!ch || !ch->db || !ch->key || !ch->apply)
		return -EINVAL;
	change_clear(ch);
	ch->err[0] = '\0';
	r = change_key_check(ch->key, ch->err, sizeof(ch->err));
	if (r < 0)
		return r;
	if (change_key_idempotent(ch->key) && !ch->skip_lookup) {
		r = look(ch);
		if (r != 0)
			return r;
	}
	r = db_write(ch->db, run_change, ch, ch->timeout_ms > 0 ? ch->timeout_ms : WRITE_TIMEOUT_MS);
	if (r == -EEXIST && ch->lost_race)
		return change_twin(ch); /* the insert of the reply met a twin's */
	if (r >= 0) {
		if (ch->bus)
			bus_kick(ch->bus);
		return 0;
	}
	return r;
}

void change_clear(struct change *ch)
{
	if (!ch)
		return;
	free(ch->replayed);
	ch->replayed = NULL;
	ch->replayed_len = 0;
}

int change_attach_copy(struct db_tx *tx, int kind, const void *item, size_t size)
{
	void *copy = malloc(size);

	if (!copy)
		return -ENOMEM;
	memcpy(copy, item, size);
	return db_tx_attach(tx, kind, copy, free);
}

int change_hook_register(struct db *db, db_precommit_fn fn, void *ud, int *ret_kind)
{
	return db_add_precommit(db, fn, ud, ret_kind);
}

int change_guess_run(int (*attempt)(void *ud, bool use_guess, bool *ret_guessed),
		     bool (*guess_failed)(void *ud, int r), void *ud)
{
	bool guessed = false;
	int r = attempt(ud, true, &guessed);

	if (guessed && r < 0 && guess_failed(ud, r))
		r = attempt(ud, false, &guessed);
	return r;
}
