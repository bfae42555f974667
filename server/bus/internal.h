#pragma once
/*
 * Shared inside bus/ only: the attached event item, the envelope builder, the natsStatus
 * table and the state the API (bus.c) shares with the relay thread (relay.c).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "bus.h"
#include "crypto.h"

#define BUS_UUID_LEN CRYPTO_UUID_LEN
#define BUS_TYPE_MAX 128

/* One event attached to a change (DB_ITEM_EVENT); becomes one outbox row. */
struct bus_event {
	char id[BUS_UUID_LEN + 1];	  /* uuid v4, lower-case */
	char tenant_id[BUS_UUID_LEN + 1]; /* uuid */
	char type[BUS_TYPE_MAX + 1];	  /* validated by bus_type_valid */
	char *payload;			  /* the envelope JSON, NUL-terminated */
	size_t payload_len;
};

struct bus {
	struct db *db;	/* borrowed */
	char *nats_url; /* NULL: no relay */
	char *stream;
	int batch;
	int idle_ms;
	int gather_ms; /* bus_config.gather_ms; 0: none */
	struct net_gate gate; /* bus_config.gate */

	pthread_mutex_t lock; /* guards kicked, stopping */
	pthread_cond_t wake;
	bool kicked;
	bool stopping;
	bool running; /* relay thread started */
	pthread_t thread;

	atomic_uint_fast64_t published; /* acked by JetStream */
	struct bus_relay *relay;	/* relay.c state, owned by the thread while it runs */
};

/* True for dot-separated non-empty tokens of [A-Za-z0-9_-], at most BUS_TYPE_MAX bytes. */
bool bus_type_valid(const char *type);
/* Formats t as RFC 3339 UTC with microseconds: 2024-05-01T12:00:00.123456Z (28 bytes). */
void bus_rfc3339(const struct timespec *t, char out[32]);

/*
 * Builds the envelope {id, type, tenant_id, time, actor, data} into *ret_json (malloc'd,
 * NUL-terminated, compact). Arguments as for bus_event, already defaulted; now is the
 * event time. Returns 0, -EINVAL (data_json is not a JSON object, actor not UTF-8),
 * -EMSGSIZE (> BUS_EVENT_MAX), -ENOMEM.
 */
int bus_envelope_build(const char *id, const char *tenant_id, const char *type, const char *actor,
		       const char *data_json, const struct timespec *now, char **ret_json,
		       size_t *ret_len);
/* The same with data as an object (json_t *; a reference is taken, it is not parsed). */
int bus_envelope_build_object(const char *id, const char *tenant_id, const char *type,
			      const char *actor, const void *data, const struct timespec *now,
			      char **ret_json, size_t *ret_len);
/*
 * The same with data as jansson printed an object (compact): the envelope is written
 * around it, the same bytes bus_envelope_build_object gives. id, tenant_id and type are
 * the checked ones (no character needs escaping). -EINVAL when data does not look like an
 * object or actor is not UTF-8.
 */
int bus_envelope_build_printed(const char *id, const char *tenant_id, const char *type,
			       const char *actor, const char *data, const struct timespec *now,
			       char **ret_json, size_t *ret_len);

/* The natsStatus -> -errno table (status.c); status is a natsStatus. 0 for NATS_OK. */
int bus_nats_errno(int status);
/* As bus_nats_errno, refined by a JetStream error code (jsErrCode) when there is one. */
int bus_js_errno(int status, int js_err);

/*
 * connect.c: connects opts to the servers of url_list ("nats://h:p,tls://u:pw@h2:p")
 * through gate (may be NULL): without one, or when it does not gate, nats.c gets the list
 * as it is. When it gates, the URLs are tried in order, each with only its admitted
 * addresses as IP URLs, discovered servers ignored and reconnection off (opts is changed
 * for that). Sets *ret_nc. Returns 0, -EPERM (the gate refused every URL), -EINVAL (a URL
 * that cannot be split), or the connection's error (bus_nats_errno).
 */
typedef struct __natsOptions natsOptions;
typedef struct __natsConnection natsConnection;
int bus_nats_connect(natsOptions *opts, const char *url_list, const struct net_gate *gate,
		     natsConnection **ret_nc);

/* relay.c */
int bus_relay_start(struct bus *b);
void bus_relay_stop(struct bus *b);
