/*
 * The one table that maps -errno to a gRPC status code, and beside it the few messages that
 * say more than strerror would. Modules speak errno; the runtime turns it into what
 * clients see, also where a handler sets its own message
 * (rpc_call_error(call, rpc_errno_code(r), ...)). Codes without a natural errno are reached
 * with rpc_call_error(), which names the code explicitly (a full work queue answers
 * RESOURCE_EXHAUSTED that way).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.h"

static const struct {
	int err;
	enum rpc_code code;
} errno_codes[] = {
	{ EINVAL, RPC_INVALID_ARGUMENT },
	{ EDOM, RPC_INVALID_ARGUMENT },
	{ EPROTO, RPC_INVALID_ARGUMENT },
	{ ENOENT, RPC_NOT_FOUND },
	{ EEXIST, RPC_ALREADY_EXISTS },
	{ EPERM, RPC_PERMISSION_DENIED },
	{ EACCES, RPC_PERMISSION_DENIED },
	{ ENOMEM, RPC_RESOURCE_EXHAUSTED },
	{ ENOSPC, RPC_RESOURCE_EXHAUSTED },
	{ EMSGSIZE, RPC_RESOURCE_EXHAUSTED },
	{ E2BIG, RPC_RESOURCE_EXHAUSTED },
	{ ESTALE, RPC_FAILED_PRECONDITION },  /* expected version differs */
	{ EILSEQ, RPC_FAILED_PRECONDITION },  /* transition not allowed from this state */
	{ ENOTEMPTY, RPC_FAILED_PRECONDITION },
	{ EBUSY, RPC_ABORTED },               /* concurrent change won elsewhere */
	{ EDEADLK, RPC_ABORTED },
	{ ERANGE, RPC_OUT_OF_RANGE },
	{ ENOSYS, RPC_UNIMPLEMENTED },
	{ EOPNOTSUPP, RPC_UNIMPLEMENTED },
	{ EAGAIN, RPC_UNAVAILABLE },          /* transient: retry after a short wait */
	{ ECONNREFUSED, RPC_UNAVAILABLE },
	{ ECONNRESET, RPC_UNAVAILABLE },
	{ ENOTCONN, RPC_UNAVAILABLE },
	{ EHOSTUNREACH, RPC_UNAVAILABLE },
	{ ESHUTDOWN, RPC_UNAVAILABLE },
	{ ETIMEDOUT, RPC_DEADLINE_EXCEEDED },
	{ ETIME, RPC_UNAVAILABLE },           /* db/: PostgreSQL did not answer in time */
	{ EUSERS, RPC_UNAVAILABLE },          /* db/: PostgreSQL has no connection to spare */
	{ ECANCELED, RPC_CANCELLED },
	{ EBADMSG, RPC_DATA_LOSS },           /* sealed data failed authentication */
	{ EKEYREJECTED, RPC_UNAUTHENTICATED },
	{ ENOKEY, RPC_UNAUTHENTICATED },
};

/* What clients are told where strerror would say too little (no module message). */
static const struct {
	int err;
	const char *msg;
} errno_messages[] = {
	/* a write may have committed just before PostgreSQL went silent (db.h) */
	{ ETIME, "the database did not answer in time; retry later (a change may have been "
		 "applied: retry it with the same request_id)" },
	{ EUSERS, "the database has no connection to spare (too many connections); retry later" },
};

enum rpc_code rpc_errno_code(int err)
{
	err = abs(err);
	for (size_t i = 0; i < sizeof(errno_codes) / sizeof(errno_codes[0]); i++)
		if (errno_codes[i].err == err)
			return errno_codes[i].code;
	return RPC_INTERNAL;
}

const char *rpc_errno_message(int err)
{
	err = abs(err);
	for (size_t i = 0; i < sizeof(errno_messages) / sizeof(errno_messages[0]); i++)
		if (errno_messages[i].err == err)
			return errno_messages[i].msg;
	return strerror(err);
}

int rpc_call_fail(struct rpc_call *call, int r, const char *msg)
{
	if (r >= 0)
		r = -EPROTO;
	if (msg && msg[0])
		return rpc_call_error(call, rpc_errno_code(r), "%s", msg);
	return r;
}

static const char *const code_names[] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
};

const char *rpc_code_name(enum rpc_code code)
{
	if ((unsigned)code >= sizeof(code_names) / sizeof(code_names[0]))
		return "UNKNOWN";
	return code_names[code];
}
