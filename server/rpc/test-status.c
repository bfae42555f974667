/* Unit tests for the errno -> gRPC status table and code names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rpc.h"

static void test_errno_table(void **state)
{
	static const struct {
		int err;
		enum rpc_code code;
	} cases[] = {
		{ -EINVAL, RPC_INVALID_ARGUMENT },   { -ENOENT, RPC_NOT_FOUND },
		{ -EEXIST, RPC_ALREADY_EXISTS },     { -EPERM, RPC_PERMISSION_DENIED },
		{ -EAGAIN, RPC_UNAVAILABLE },        { -EMSGSIZE, RPC_RESOURCE_EXHAUSTED },
		{ -ESTALE, RPC_FAILED_PRECONDITION }, { -EBUSY, RPC_ABORTED },
		{ -ETIMEDOUT, RPC_DEADLINE_EXCEEDED }, { -ECANCELED, RPC_CANCELLED },
		{ -ECONNREFUSED, RPC_UNAVAILABLE },  { -EBADMSG, RPC_DATA_LOSS },
		{ -ENOSYS, RPC_UNIMPLEMENTED },      { -ENOKEY, RPC_UNAUTHENTICATED },
		{ EINVAL, RPC_INVALID_ARGUMENT },    { -EIO, RPC_INTERNAL },
		{ -9999, RPC_INTERNAL },             { -ETIME, RPC_UNAVAILABLE },
		{ -EUSERS, RPC_UNAVAILABLE },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(rpc_errno_code(cases[i].err), cases[i].code);
}

static void test_messages(void **state)
{
	(void)state;
	/* the database's silence says so, and how to retry a change safely */
	assert_non_null(strstr(rpc_errno_message(-ETIME), "database did not answer in time"));
	assert_non_null(strstr(rpc_errno_message(ETIME), "same request_id"));
	assert_non_null(strstr(rpc_errno_message(-EUSERS), "too many connections"));
	/* everything else: strerror (copied: an unknown errno's text lives until the next) */
	char want[64];

	snprintf(want, sizeof(want), "%s", strerror(ENOENT));
	assert_string_equal(rpc_errno_message(-ENOENT), want);
	snprintf(want, sizeof(want), "%s", strerror(9999));
	assert_string_equal(rpc_errno_message(-9999), want);
}

static void test_code_names(void **state)
{
	assert_string_equal(rpc_code_name(RPC_OK), "OK");
	assert_string_equal(rpc_code_name(RPC_INVALID_ARGUMENT), "INVALID_ARGUMENT");
	assert_string_equal(rpc_code_name(RPC_UNAUTHENTICATED), "UNAUTHENTICATED");
	assert_string_equal(rpc_code_name((enum rpc_code)99), "UNKNOWN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errno_table),
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_code_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
