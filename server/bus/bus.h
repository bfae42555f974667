#pragma once
/*
 * bus: events, the transactional outbox and its relay to NATS JetStream (the only module
 * that sees nats.c). A change attaches its event with bus_event(); a pre-commit hook of the
 * group-commit writer inserts every event of the batch into the outbox table in the same
 * transaction, so an event is committed with its change or not at all. The relay thread
 * publishes unsent rows to stream TRSTCTL_EVENTS, subject `events.<type>`, Nats-Msg-Id =
 * event id (JetStream de-duplicates a re-publish), and deletes them once acknowledged.
 */
#include <stdint.h>

#include "net.h"

struct db;
struct db_tx;
struct bus; /* the outbox hook and the relay of one server */

struct bus_config {
	const char *nats_url; /* nats://host:port[,...]; NULL or "": no relay, events wait */
	const char *stream;   /* JetStream stream name; NULL: "TRSTCTL_EVENTS" */
	int batch;	      /* rows per relay transaction, 1..1000; 0: 100 */
	int idle_ms;	      /* longest sleep when nothing is pending; 0: 200 */
	/*
	 * Shortest time between the starts of two passes that follow commits; 0: 10 ms,
	 * -1: none. A commit right after a quiet spell is published at once; under load the
	 * events of several commits share one pass (one SELECT, one DELETE, one commit of
	 * the outbox) and reach JetStream at most this much later.
	 */
	int gather_ms;
	/*
	 * Asked before every connection to NATS, the first and each reconnection: in
	 * userspace egress enforcement it resolves and checks each URL's host, and nats.c
	 * gets only the admitted addresses, no discovered servers and no reconnection of its
	 * own (the relay reconnects, through the gate). { NULL }: the URLs as they are.
	 */
	struct net_gate gate;
};

#define BUS_DEFAULT_STREAM "TRSTCTL_EVENTS"
/* Largest envelope accepted by bus_event (below NATS's default 1 MiB max payload). */
#define BUS_EVENT_MAX (512 * 1024)

/*
 * Attaches an event to the change tx; it is inserted into the outbox when the batch
 * commits and vanishes if the change or the batch rolls back. tenant_id: a UUID, NULL for
 * DB_DEFAULT_TENANT. type: dot-separated tokens of [A-Za-z0-9_-] ("identity.issued"), at
 * most 128 bytes. actor: who did it, NULL for none (written as JSON null). data_json: a
 * JSON object (NULL for {}). Returns 0, -EINVAL for a bad argument (nothing attached),
 * -EMSGSIZE when the envelope exceeds BUS_EVENT_MAX, -ENOMEM.
 * Needs bus_open() on the same struct db before the first db_write.
 */
int bus_event(struct db_tx *tx, const char *tenant_id, const char *type, const char *actor,
	      const char *data_json);

/*
 * The same in two steps, so that the envelope (JSON parsing and printing) is built on the
 * caller's thread and the group-commit writer only copies memory: bus_event_prepare checks
 * and builds the event (same errors as bus_event), owned by the caller; bus_event_attach
 * attaches a copy to the change (the same id each time: a change the writer runs again
 * publishes once).
 */
struct bus_event;
struct json_t; /* jansson's json_t */
int bus_event_prepare(const char *tenant_id, const char *type, const char *actor,
		      const char *data_json, struct bus_event **ret_ev);
/* The same with the data as jansson's object (referenced, not parsed). */
int bus_event_prepare_object(const char *tenant_id, const char *type, const char *actor,
			     const struct json_t *data, struct bus_event **ret_ev);
/*
 * The same with the data as jansson printed an object (json_dumps, JSON_COMPACT): copied
 * into the envelope as it is, neither parsed nor printed again. The envelope is byte for
 * byte the one bus_event_prepare_object builds from that object.
 */
int bus_event_prepare_printed(const char *tenant_id, const char *type, const char *actor,
			      const char *data_printed, struct bus_event **ret_ev);
int bus_event_attach(struct db_tx *tx, const struct bus_event *ev);
/* Frees a prepared event. Accepts NULL, returns NULL. */
struct bus_event *bus_event_free(struct bus_event *ev);

/*
 * Registers the outbox pre-commit hook on db (call before db_write is used) and prepares
 * the relay (not started). db is borrowed and must outlive the bus. cfg may be NULL
 * (defaults, no relay). Returns 0, -EINVAL for a bad stream name or batch, -ENOMEM.
 */
int bus_open(struct db *db, const struct bus_config *cfg, struct bus **ret_bus);
/*
 * Starts the relay thread (a no-op without nats_url). NATS being down is not an error:
 * the relay keeps trying with backoff and says so once per state change.
 */
int bus_start(struct bus *b);
/* Wakes the relay now (call after a db_write that attached events). Accepts NULL. */
void bus_kick(struct bus *b);
/* Stops the relay (waits for its current batch) and frees b. Accepts NULL, returns NULL. */
struct bus *bus_close(struct bus *b);

/*
 * The envelope (JSON, as bus_event made it) of the newest event of type on stream (NULL:
 * BUS_DEFAULT_STREAM): JetStream's last message on events.<type>, read over a connection
 * of its own to nats_url that gives up after timeout_ms (no reconnect). For a copy of
 * what was published that lives outside PostgreSQL (the audit checkpoints). The connection
 * goes through gate as bus_config.gate says (NULL: none). Sets *ret_json (malloc'd).
 * Returns 0, -ENOENT (no such event, or no stream), -EINVAL, -EPERM (the gate refused),
 * or the connection's error (-ECONNREFUSED, -ETIMEDOUT, ...).
 */
int bus_last_event(const char *nats_url, const struct net_gate *gate, const char *stream,
		   const char *type, int timeout_ms, char **ret_json);

/*
 * The outbox gauge: unsent rows, age of the oldest unsent row in ms (0 when none), and
 * events acknowledged by JetStream through this bus (re-publishes JetStream reported as
 * duplicates included). Any output may be NULL. Queries the database: -ECONNRESET etc.
 */
int bus_stats(struct bus *b, uint64_t *ret_depth, uint64_t *ret_oldest_age_ms,
	      uint64_t *ret_published_total);
