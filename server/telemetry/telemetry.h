#pragma once
/*
 * telemetry: the product usage reporter (docs/telemetry.md). Off unless telemetry.enabled,
 * and never with air-gap on (cfg refuses the combination; telemetry_start refuses it too).
 * When on, a thread of its own POSTs one JSON report at start and then every
 * telemetry.interval to telemetry.endpoint, https only and through the guarded HTTP client
 * (guard.h): no redirect is followed, 10 s per attempt. A failed report is logged once when
 * reports start failing (and once when they recover) and tried again at the next
 * interval; no call to the server ever waits for the reporter.
 *
 * The report carries no name, address or value, only these fields:
 *   {"schema":1,"instance_id":"<uuid>","version":"0.1.0","os":"linux","arch":"x86_64",
 *    "credential_buckets":{"identities":"11-100","certificates":"1-10","secrets":"0"}}
 */
#include <stddef.h>
#include <stdint.h>

struct cfg;
struct guard_policy;
struct ca_service;
struct secrets;
struct telemetry; /* the running reporter */

#define TELEMETRY_SCHEMA 1
#define TELEMETRY_ID_LEN 36	   /* a UUID v4, lowercase 8-4-4-4-12 */
#define TELEMETRY_TIMEOUT_MS 10000 /* one report, connection included */
#define TELEMETRY_ERR_MAX 320

/* What a report counts, from PostgreSQL (the default tenant). */
struct telemetry_counts {
	int64_t identities;   /* every identity, whatever its state */
	int64_t certificates; /* current certificates: not revoked, superseded or expired */
	int64_t secrets;      /* secrets not deleted */
};

/* The bucket of a count: "0", "1-10", "11-100", "101-1000", "1001-10000" or "10000+"
 * (static strings; a negative count is "0"). */
const char *telemetry_bucket(int64_t n);

/*
 * The report as compact JSON, fields in the order above. instance_id must be a UUID,
 * version, os and arch non-empty printable strings. Sets *ret_json (malloc'd) and returns
 * 0, or -EINVAL, -ENOMEM.
 */
int telemetry_report(const char *instance_id, const char *version, const char *os, const char *arch,
		     const struct telemetry_counts *c, char **ret_json);

/* The os and arch of this machine as the report names them ("linux", "x86_64"). */
int telemetry_platform(char *ret_os, size_t os_len, char *ret_arch, size_t arch_len);

/*
 * The instance id kept in path: read when the file exists (it must hold a UUID, with an
 * optional trailing newline: anything else is -EBADMSG and the file is left alone);
 * otherwise a new random UUID v4 is written to a temporary file (mode 0600) that is then
 * linked in place, so that two servers sharing the folder agree on one id. The folder is
 * created (0700) when missing, its parent must exist. Returns 0 with ret_id filled, or
 * -errno with a message in err (TELEMETRY_ERR_MAX bytes).
 */
int telemetry_instance_id(const char *path, char ret_id[TELEMETRY_ID_LEN + 1], char *err,
			  size_t errlen);

/*
 * Starts the reporter when c->telemetry.enabled (else sets *ret NULL and returns 0). c, p,
 * ca and s are borrowed and must outlive it. Refuses (-EINVAL, logged) an endpoint that is
 * not https, an enabled egress policy (air-gap) and an unreadable telemetry.ca_file.
 */
int telemetry_start(const struct cfg *c, struct guard_policy *p, struct ca_service *ca,
		    struct secrets *s, struct telemetry **ret);
/* Stops the thread (waits for a report in flight, at most TELEMETRY_TIMEOUT_MS) and frees.
 * Accepts NULL, returns NULL. */
struct telemetry *telemetry_stop(struct telemetry *t);
