/*
 * The one table that turns a PostgreSQL SQLSTATE into -errno. Exact codes are matched
 * first, then the two-character class, then everything else is -EIO. A missing SQLSTATE
 * means libpq itself failed (the connection broke), which is -ECONNRESET. Callers above
 * db/ see only these errno values; rpc/ turns them into gRPC statuses.
 */
#include <errno.h>
#include <string.h>

#include "db-internal.h"

struct sqlstate_map {
	const char *code; /* 5 characters (exact) or 2 (class) */
	int err;
};

static const struct sqlstate_map sqlstate_table[] = {
	/* exact codes */
	{ "23505", -EEXIST },       /* unique_violation */
	{ "23P01", -EEXIST },       /* exclusion_violation */
	{ "23503", -ENOENT },       /* foreign_key_violation */
	{ "23502", -EINVAL },       /* not_null_violation */
	{ "23514", -EINVAL },       /* check_violation */
	{ "40001", -EAGAIN },       /* serialization_failure */
	{ "40P01", -EAGAIN },       /* deadlock_detected */
	{ "55P03", -EBUSY },        /* lock_not_available (NOWAIT) */
	{ "55006", -EBUSY },        /* object_in_use */
	{ "57014", -ETIME },        /* query_canceled (statement_timeout): no answer in time */
	{ "57P01", -ECONNRESET },   /* admin_shutdown */
	{ "57P02", -ECONNRESET },   /* crash_shutdown */
	{ "57P03", -ECONNREFUSED }, /* cannot_connect_now (starting up) */
	{ "08001", -ECONNREFUSED }, /* sqlclient_unable_to_establish_sqlconnection */
	{ "08004", -ECONNREFUSED }, /* sqlserver_rejected_establishment_of_sqlconnection */
	{ "25006", -EROFS },        /* read_only_sql_transaction (a standby) */
	{ "25P02", -EPROTO },       /* in_failed_sql_transaction: a caller ignored an error */
	{ "3D000", -ENOENT },       /* invalid_catalog_name: no such database */
	{ "42501", -EACCES },       /* insufficient_privilege */
	{ "42P07", -EEXIST },       /* duplicate_table */
	{ "42710", -EEXIST },       /* duplicate_object */
	{ "53100", -ENOSPC },       /* disk_full */
	{ "53200", -ENOMEM },       /* out_of_memory */
	{ "53300", -EUSERS },       /* too_many_connections */
	/* classes */
	{ "08", -ECONNRESET },      /* connection exception */
	{ "0A", -EOPNOTSUPP },      /* feature not supported */
	{ "21", -EINVAL },          /* cardinality violation */
	{ "22", -EINVAL },          /* data exception */
	{ "23", -EINVAL },          /* integrity constraint violation */
	{ "28", -EACCES },          /* invalid authorization specification */
	{ "40", -EIO },             /* transaction rollback, other */
	{ "42", -EINVAL },          /* syntax error or access rule violation */
	{ "53", -ENOMEM },          /* insufficient resources */
	{ "54", -E2BIG },           /* program limit exceeded */
	{ "57", -ECONNRESET },      /* operator intervention */
};

int db_sqlstate_errno(const char *sqlstate)
{
	if (!sqlstate || !*sqlstate)
		return -ECONNRESET;
	if (strlen(sqlstate) != 5)
		return -EIO;
	for (size_t i = 0; i < sizeof(sqlstate_table) / sizeof(sqlstate_table[0]); i++) {
		const struct sqlstate_map *m = &sqlstate_table[i];

		if (strncmp(sqlstate, m->code, strlen(m->code)) == 0)
			return m->err;
	}
	return -EIO;
}
