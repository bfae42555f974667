#pragma once
/*
 * Shared by the files of otel/ only: the queued items, the OTLP encoder (encode.c) and the
 * retry rules (encode.c, pure functions the unit test checks).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "otel.h"

#define OTEL_METHOD_MAX 160   /* bytes of a method path kept (registered paths are shorter) */
#define OTEL_PRINCIPAL_MAX 80 /* bytes of a principal (a token id) kept */
#define OTEL_ID_BYTES 24      /* random bytes per span: 16 trace id, 8 span id */
#define OTEL_BACKOFF_FIRST_MS 1000
#define OTEL_BACKOFF_MAX_MS 30000

/* A queue link: the first member of every queued item. */
struct otel_node {
	struct otel_node *next;
	int64_t at_ms; /* when it was queued, CLOCK_MONOTONIC milliseconds */
};

/* A finished call, copied from the completion hook. */
struct otel_span {
	struct otel_node node;
	char method[OTEL_METHOD_MAX];	    /* "/trstctl.v1.CA/CreateOwner" */
	char principal[OTEL_PRINCIPAL_MAX]; /* the token id, "" when unauthenticated */
	int code;			    /* the gRPC status code */
	const char *code_name;		    /* its name, static ("INTERNAL") */
	int64_t start_ns, end_ns;	    /* UNIX epoch nanoseconds, start <= end */
};

/* A committed audit record, copied from the commit hook: one allocation, strings in buf. */
struct otel_log {
	struct otel_node node;
	int64_t sequence;   /* the tenant's chain position, >= 1 */
	int64_t time_us;    /* when the change ran, UNIX epoch microseconds */
	char tenant_id[37]; /* lowercase uuid */
	char id[37];	    /* the record's uuid */
	uint8_t hash[32];   /* its chain hash */
	const char *type, *actor, *resource, *outcome, *data_json; /* valid UTF-8, in buf */
	char buf[];
};

/* The resource and scope every request carries. */
struct otel_resource {
	const char *service_name;    /* service.name, valid UTF-8 */
	const char *service_version; /* service.version and the scope's version */
};

/*
 * Packs an ExportTraceServiceRequest of the n spans (n >= 1) for res; ids holds
 * OTEL_ID_BYTES random bytes per span. Returns 0 and a malloc'd *ret_buf of *ret_len
 * bytes, or -ENOMEM.
 */
int otel_encode_traces(const struct otel_resource *res, struct otel_span *const *spans, size_t n,
		       const uint8_t *ids, uint8_t **ret_buf, size_t *ret_len);

/* The same for an ExportLogsServiceRequest of n log records observed at observed_ns. */
int otel_encode_logs(const struct otel_resource *res, struct otel_log *const *logs, size_t n,
		     int64_t observed_ns, uint8_t **ret_buf, size_t *ret_len);

/*
 * How many items the body of a 2xx answer to signal s rejected (an Export*ServiceResponse
 * with partial_success); 0 for an empty or unreadable body. At most n.
 */
size_t otel_rejected(enum otel_signal s, const uint8_t *body, size_t len, size_t n);

/* True for an HTTP status the OTLP specification says to retry: 429, 502, 503, 504. */
bool otel_status_retryable(long status);

/*
 * The wait before retry number attempt (0 for the first retry): the collector's
 * Retry-After when it gave one (retry_after_s > 0), else OTEL_BACKOFF_FIRST_MS doubled per
 * attempt up to OTEL_BACKOFF_MAX_MS, of which rnd takes a random half away (jitter).
 */
int64_t otel_retry_delay_ms(int attempt, long retry_after_s, uint32_t rnd);
