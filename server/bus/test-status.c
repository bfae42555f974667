/* Unit tests for the natsStatus (and jsErrCode) -> -errno table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include <nats/nats.h>

#include "internal.h"

static void test_known_statuses(void **state)
{
	static const struct {
		natsStatus status;
		int err;
	} cases[] = {
		{ NATS_OK, 0 },
		{ NATS_NO_SERVER, -ECONNREFUSED },
		{ NATS_CONNECTION_CLOSED, -ENOTCONN },
		{ NATS_CONNECTION_DISCONNECTED, -ECONNRESET },
		{ NATS_STALE_CONNECTION, -ECONNRESET },
		{ NATS_TIMEOUT, -ETIMEDOUT },
		{ NATS_CONNECTION_AUTH_FAILED, -EACCES },
		{ NATS_NOT_PERMITTED, -EPERM },
		{ NATS_NOT_FOUND, -ENOENT },
		{ NATS_INVALID_ARG, -EINVAL },
		{ NATS_INVALID_SUBJECT, -EINVAL },
		{ NATS_MAX_PAYLOAD, -EMSGSIZE },
		{ NATS_NO_MEMORY, -ENOMEM },
		{ NATS_NO_RESPONDERS, -EHOSTUNREACH },
		{ NATS_PROTOCOL_ERROR, -EPROTO },
		{ NATS_SSL_ERROR, -EPROTO },
		{ NATS_DRAINING, -ESHUTDOWN },
		{ NATS_NO_SERVER_SUPPORT, -EOPNOTSUPP },
		{ NATS_ERR, -EIO },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(bus_nats_errno(cases[i].status), cases[i].err);
}

/* Every status nats.c 3.4 defines is in the table: none falls to the -EIO default by
 * accident (the ones that mean "I/O" say so explicitly), and all are <= 0. */
static void test_every_status_mapped(void **state)
{
	for (int s = NATS_OK; s <= NATS_MISSED_HEARTBEAT; s++) {
		int err = bus_nats_errno(s);
		bool io = s == NATS_ERR || s == NATS_IO_ERROR || s == NATS_SYS_ERROR ||
			  s == NATS_FAILED_TO_INITIALIZE || s == NATS_NOT_INITIALIZED;

		if (s == NATS_OK)
			assert_int_equal(err, 0);
		else if (io)
			assert_int_equal(err, -EIO);
		else
			assert_true(err < 0 && err != -EIO);
	}
	assert_int_equal(bus_nats_errno(NATS_MISSED_HEARTBEAT), -ETIMEDOUT);
}

static void test_unknown_status(void **state)
{
	assert_int_equal(bus_nats_errno(-1), -EIO);
	assert_int_equal(bus_nats_errno(NATS_MISSED_HEARTBEAT + 100), -EIO);
}

static void test_js_codes(void **state)
{
	assert_int_equal(bus_js_errno(NATS_ERR, JSStreamNotFoundErr), -ENOENT);
	assert_int_equal(bus_js_errno(NATS_NOT_FOUND, JSStreamNotFoundErr), -ENOENT);
	assert_int_equal(bus_js_errno(NATS_ERR, JSStreamNameExistErr), -EEXIST);
	assert_int_equal(bus_js_errno(NATS_ERR, JSStreamMessageExceedsMaximumErr), -EMSGSIZE);
	assert_int_equal(bus_js_errno(NATS_ERR, JSStorageResourcesExceededErr), -ENOSPC);
	/* no JetStream code, or one we do not know: the status decides */
	assert_int_equal(bus_js_errno(NATS_TIMEOUT, 0), -ETIMEDOUT);
	assert_int_equal(bus_js_errno(NATS_ERR, 10999), -EIO);
	/* a JetStream code never turns success into an error */
	assert_int_equal(bus_js_errno(NATS_OK, JSStreamNotFoundErr), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_statuses),
		cmocka_unit_test(test_every_status_mapped),
		cmocka_unit_test(test_unknown_status),
		cmocka_unit_test(test_js_codes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
