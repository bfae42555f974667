/*
 * The one table that maps nats.c's natsStatus (and the JetStream error codes that refine
 * NATS_ERR) to -errno, so that nothing outside bus/ ever sees a natsStatus. Connection
 * trouble maps to errors the callers treat as "retry later" (-ECONNREFUSED, -ECONNRESET,
 * -ENOTCONN, -ETIMEDOUT, -EHOSTUNREACH); anything unknown is -EIO.
 */
#include <errno.h>
#include <stddef.h>

#include <nats/nats.h>

#include "internal.h"

static const struct {
	natsStatus status;
	int err;
} nats_errnos[] = {
	{ NATS_OK, 0 },
	{ NATS_ERR, EIO },
	{ NATS_PROTOCOL_ERROR, EPROTO },
	{ NATS_IO_ERROR, EIO },
	{ NATS_LINE_TOO_LONG, EMSGSIZE },
	{ NATS_CONNECTION_CLOSED, ENOTCONN },
	{ NATS_NO_SERVER, ECONNREFUSED },
	{ NATS_STALE_CONNECTION, ECONNRESET },
	{ NATS_SECURE_CONNECTION_WANTED, EPROTO },
	{ NATS_SECURE_CONNECTION_REQUIRED, EPROTO },
	{ NATS_CONNECTION_DISCONNECTED, ECONNRESET },
	{ NATS_CONNECTION_AUTH_FAILED, EACCES },
	{ NATS_NOT_PERMITTED, EPERM },
	{ NATS_NOT_FOUND, ENOENT },
	{ NATS_ADDRESS_MISSING, EINVAL },
	{ NATS_INVALID_SUBJECT, EINVAL },
	{ NATS_INVALID_ARG, EINVAL },
	{ NATS_INVALID_SUBSCRIPTION, EINVAL },
	{ NATS_INVALID_TIMEOUT, EINVAL },
	{ NATS_ILLEGAL_STATE, EINVAL },
	{ NATS_SLOW_CONSUMER, ENOBUFS },
	{ NATS_MAX_PAYLOAD, EMSGSIZE },
	{ NATS_MAX_DELIVERED_MSGS, ERANGE },
	{ NATS_INSUFFICIENT_BUFFER, ENOBUFS },
	{ NATS_NO_MEMORY, ENOMEM },
	{ NATS_SYS_ERROR, EIO },
	{ NATS_TIMEOUT, ETIMEDOUT },
	{ NATS_FAILED_TO_INITIALIZE, EIO },
	{ NATS_NOT_INITIALIZED, EIO },
	{ NATS_SSL_ERROR, EPROTO },
	{ NATS_NO_SERVER_SUPPORT, EOPNOTSUPP },
	{ NATS_NOT_YET_CONNECTED, ENOTCONN },
	{ NATS_DRAINING, ESHUTDOWN },
	{ NATS_INVALID_QUEUE_NAME, EINVAL },
	{ NATS_NO_RESPONDERS, EHOSTUNREACH }, /* no stream listens on the subject */
	{ NATS_MISMATCH, EPROTO },
	{ NATS_MISSED_HEARTBEAT, ETIMEDOUT },
};

/* JetStream API errors that mean something more precise than NATS_ERR's -EIO. */
static const struct {
	jsErrCode code;
	int err;
} js_errnos[] = {
	{ JSStreamNotFoundErr, ENOENT },
	{ JSStreamNameExistErr, EEXIST },
	{ JSStreamSubjectOverlapErr, EEXIST },
	{ JSStreamInvalidConfig, EINVAL },
	{ JSBadRequestErr, EINVAL },
	{ JSInvalidJSONErr, EINVAL },
	{ JSStreamMessageExceedsMaximumErr, EMSGSIZE },
	{ JSInsufficientResourcesErr, ENOSPC },
	{ JSStorageResourcesExceededErr, ENOSPC },
	{ JSMemoryResourcesExceededErr, ENOSPC },
	{ JSAccountResourcesExceededErr, ENOSPC },
	{ JSMaximumStreamsLimitErr, ENOSPC },
	{ JSNotEnabledForAccountErr, EOPNOTSUPP },
	{ JSClusterNotAvailErr, EAGAIN },
	{ JSStreamLimitsErr, ENOSPC },
};

int bus_nats_errno(int status)
{
	for (size_t i = 0; i < sizeof(nats_errnos) / sizeof(nats_errnos[0]); i++)
		if ((int)nats_errnos[i].status == status)
			return -nats_errnos[i].err;
	return -EIO;
}

int bus_js_errno(int status, int js_err)
{
	if (status != NATS_OK && js_err != 0)
		for (size_t i = 0; i < sizeof(js_errnos) / sizeof(js_errnos[0]); i++)
			if ((int)js_errnos[i].code == js_err)
				return -js_errnos[i].err;
	return bus_nats_errno(status);
}
