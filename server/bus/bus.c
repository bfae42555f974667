/*
 * Events into the outbox: bus_event() builds the envelope and attaches it to the change as
 * a DB_ITEM_EVENT item; the pre-commit hook, run by the group-commit writer just before
 * COMMIT with the items of every surviving change in batch order, inserts them all with
 * one INSERT ... SELECT FROM unnest(arrays) (one statement text whatever the batch size,
 * so one prepared plan). An event is thus committed with its change or not at all.
 *
 * created_at is set to now() plus the item's position in the batch in microseconds, so that
 * the relay's ORDER BY created_at, id publishes a batch's events in the order the changes
 * made them (now() alone is the same for the whole transaction and the random ids would
 * shuffle them). The relay and the gauge work across tenants: they are the server's own
 * plumbing, not a tenant's query.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "internal.h"

static void event_free(void *item)
{
	struct bus_event *ev = item;

	if (!ev)
		return;
	free(ev->payload);
	free(ev);
}

static int prepare(const char *tenant_id, const char *type, const char *actor,
		   const char *data_json, const struct json_t *data, const char *printed,
		   struct bus_event **ret_ev)
{
	struct bus_event *ev;
	struct timespec now;
	int r;

	if (!ret_ev || !bus_type_valid(type))
		return -EINVAL;
	if (!tenant_id)
		tenant_id = DB_DEFAULT_TENANT;
	if (!crypto_uuid_valid(tenant_id))
		return -EINVAL;

	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	r = crypto_uuid_v4(ev->id);
	if (r < 0)
		goto fail;
	snprintf(ev->tenant_id, sizeof(ev->tenant_id), "%s", tenant_id);
	snprintf(ev->type, sizeof(ev->type), "%s", type);
	clock_gettime(CLOCK_REALTIME, &now);
	if (printed)
		r = bus_envelope_build_printed(ev->id, ev->tenant_id, ev->type, actor, printed,
					       &now, &ev->payload, &ev->payload_len);
	else if (data)
		r = bus_envelope_build_object(ev->id, ev->tenant_id, ev->type, actor, data, &now,
					      &ev->payload, &ev->payload_len);
	else
		r = bus_envelope_build(ev->id, ev->tenant_id, ev->type, actor, data_json, &now,
				       &ev->payload, &ev->payload_len);
	if (r < 0)
		goto fail;
	*ret_ev = ev;
	return 0;
fail:
	event_free(ev);
	return r;
}

int bus_event_prepare(const char *tenant_id, const char *type, const char *actor,
		      const char *data_json, struct bus_event **ret_ev)
{
	return prepare(tenant_id, type, actor, data_json, NULL, NULL, ret_ev);
}

int bus_event_prepare_object(const char *tenant_id, const char *type, const char *actor,
			     const struct json_t *data, struct bus_event **ret_ev)
{
	return data ? prepare(tenant_id, type, actor, NULL, data, NULL, ret_ev) : -EINVAL;
}

int bus_event_prepare_printed(const char *tenant_id, const char *type, const char *actor,
			      const char *data_printed, struct bus_event **ret_ev)
{
	return data_printed ? prepare(tenant_id, type, actor, NULL, NULL, data_printed, ret_ev) :
			      -EINVAL;
}

struct bus_event *bus_event_free(struct bus_event *ev)
{
	event_free(ev);
	return NULL;
}

int bus_event_attach(struct db_tx *tx, const struct bus_event *ev)
{
	struct bus_event *copy;

	if (!tx || !ev)
		return -EINVAL;
	copy = malloc(sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	*copy = *ev;
	copy->payload = malloc(ev->payload_len + 1);
	if (!copy->payload) {
		free(copy);
		return -ENOMEM;
	}
	memcpy(copy->payload, ev->payload, ev->payload_len + 1);
	/* db_tx_attach takes copy, also when it fails. */
	return db_tx_attach(tx, DB_ITEM_EVENT, copy, event_free);
}

int bus_event(struct db_tx *tx, const char *tenant_id, const char *type, const char *actor,
	      const char *data_json)
{
	struct bus_event *ev = NULL;
	int r;

	if (!tx)
		return -EINVAL;
	r = bus_event_prepare(tenant_id, type, actor, data_json, &ev);
	if (r < 0)
		return r;
	/* db_tx_attach takes ev, also when it fails. */
	return db_tx_attach(tx, DB_ITEM_EVENT, ev, event_free);
}

static const char insert_sql[] = "INSERT INTO outbox (id, tenant_id, type, payload, created_at) "
				 "SELECT t.id, t.tenant_id, t.type, convert_to(t.payload, 'UTF8'), "
				 "now() + (t.ord - 1) * interval '1 microsecond' "
				 "FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) "
				 "WITH ORDINALITY AS t(id, tenant_id, type, payload, ord)";

static int outbox_precommit(struct db_conn *conn, void *const *items, size_t n_items,
			    int *results, void *ud)
{
	struct db_array cols[4] = { 0 };
	struct db_param params[4];
	int r = 0;

	(void)ud;
	if (n_items == 0)
		return 0;
	for (size_t i = 0; i < n_items; i++) {
		const struct bus_event *ev = items[i];

		db_array_add(&cols[0], ev->id, strlen(ev->id));
		db_array_add(&cols[1], ev->tenant_id, strlen(ev->tenant_id));
		db_array_add(&cols[2], ev->type, strlen(ev->type));
		db_array_add(&cols[3], ev->payload, ev->payload_len);
	}
	for (int c = 0; c < 4; c++) {
		params[c] = DB_TEXT(db_array_end(&cols[c]));
		if (!params[c].text)
			r = -ENOMEM;
	}
	if (r == 0)
		r = db_exec(conn, insert_sql, params, 4, NULL);
	for (int c = 0; c < 4; c++)
		db_array_clear(&cols[c]);
	return r < 0 ? r : 0;
}

int bus_open(struct db *db, const struct bus_config *cfg, struct bus **ret_bus)
{
	static const struct bus_config defaults = { 0 };
	pthread_condattr_t ca;
	struct bus *b;
	int r;

	if (!db || !ret_bus)
		return -EINVAL;
	if (!cfg)
		cfg = &defaults;
	if (cfg->batch < 0 || cfg->batch > 1000 || cfg->idle_ms < 0 ||
	    cfg->gather_ms < -1 || cfg->gather_ms > 1000)
		return -EINVAL;
	/* A stream name may not hold '.', '*', '>', or whitespace (JetStream's rule). */
	if (cfg->stream && (!cfg->stream[0] || strpbrk(cfg->stream, ".*> \t\r\n/\\")))
		return -EINVAL;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->db = db;
	b->batch = cfg->batch ? cfg->batch : 100;
	b->idle_ms = cfg->idle_ms ? cfg->idle_ms : 200;
	b->gather_ms = cfg->gather_ms < 0 ? 0 : cfg->gather_ms ? cfg->gather_ms : 10;
	b->gate = cfg->gate;
	b->stream = strdup(cfg->stream ? cfg->stream : BUS_DEFAULT_STREAM);
	if (cfg->nats_url && cfg->nats_url[0])
		b->nats_url = strdup(cfg->nats_url);
	pthread_mutex_init(&b->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (!b->stream || (cfg->nats_url && cfg->nats_url[0] && !b->nats_url)) {
		bus_close(b);
		return -ENOMEM;
	}
	r = db_set_precommit(db, DB_ITEM_EVENT, outbox_precommit, NULL);
	if (r < 0) {
		bus_close(b);
		return r;
	}
	*ret_bus = b;
	return 0;
}

int bus_start(struct bus *b)
{
	if (!b)
		return -EINVAL;
	if (!b->nats_url || b->running)
		return 0;
	return bus_relay_start(b);
}

void bus_kick(struct bus *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->kicked = true;
	pthread_cond_signal(&b->wake);
	pthread_mutex_unlock(&b->lock);
}

struct bus *bus_close(struct bus *b)
{
	if (!b)
		return NULL;
	if (b->running)
		bus_relay_stop(b);
	pthread_cond_destroy(&b->wake);
	pthread_mutex_destroy(&b->lock);
	free(b->nats_url);
	free(b->stream);
	free(b);
	return NULL;
}

static const char stats_sql[] =
	"SELECT count(*), COALESCE(GREATEST(0, (EXTRACT(EPOCH FROM now() - min(created_at))"
	" * 1000)::bigint), 0) FROM outbox WHERE sent_at IS NULL";

int bus_stats(struct bus *b, uint64_t *ret_depth, uint64_t *ret_oldest_age_ms,
	      uint64_t *ret_published_total)
{
	struct db_conn *conn;
	struct db_rows *rows = NULL;
	const char *depth, *age;
	int r;

	if (!b)
		return -EINVAL;
	r = db_acquire(b->db, 2000, &conn);
	if (r < 0)
		return r;
	r = db_exec(conn, stats_sql, NULL, 0, &rows);
	db_release(b->db, conn);
	if (r < 0)
		return r;
	depth = db_rows_get(rows, 0, 0);
	age = db_rows_get(rows, 0, 1);
	if (!depth || !age) {
		db_rows_free(rows);
		return -EPROTO;
	}
	if (ret_depth)
		*ret_depth = strtoull(depth, NULL, 10);
	if (ret_oldest_age_ms)
		*ret_oldest_age_ms = strtoull(age, NULL, 10);
	if (ret_published_total)
		*ret_published_total = atomic_load(&b->published);
	db_rows_free(rows);
	return 0;
}
