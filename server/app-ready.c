/*
 * /readyz's view of PostgreSQL (see app-ready.h). Runs on the metrics listener's thread,
 * once per request: a probe costs one leased connection and one round trip, and the
 * lease waits at most ACQUIRE_MS so that a saturated pool cannot stall the listener.
 */
#include "app-ready.h"

#include <errno.h>

#include "db.h"

enum {
	ACQUIRE_MS = 1000
};

bool app_db_ready(void *arg)
{
	struct db *db = arg;
	struct db_conn *conn = NULL;
	int r;

	r = db_acquire(db, ACQUIRE_MS, &conn);
	if (r == -ETIMEDOUT)
		return true; /* every connection is busy: the database is in use */
	if (r < 0)
		return false;
	r = db_exec(conn, "SELECT 1", NULL, 0, NULL);
	db_release(db, conn);
	return r >= 0;
}
