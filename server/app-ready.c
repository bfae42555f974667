/*
 * /readyz's view of PostgreSQL (see app-ready.h). Runs on the metrics listener's thread,
 * once per request, which also answers /healthz and /metrics: so the probe is bounded as a
 * whole (db_ping: the lease, a connection, SELECT 1, all within PROBE_MS), and it is
 * within the one second a Kubernetes probe waits by default.
 */
#include "app-ready.h"

#include "db.h"

enum {
	PROBE_MS = 800
};

bool app_db_ready(void *arg, char *why, size_t len)
{
	return db_ping(arg, PROBE_MS, why, len) >= 0;
}
