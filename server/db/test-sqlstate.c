/* Unit tests for the SQLSTATE -> -errno table: exact codes win over their class. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include "db-internal.h"

static const struct {
	const char *state;
	int err;
} cases[] = {
	{ "23505", -EEXIST },       { "23503", -ENOENT },       { "23514", -EINVAL },
	{ "23502", -EINVAL },       { "23P01", -EEXIST },       { "23000", -EINVAL },
	{ "40001", -EAGAIN },       { "40P01", -EAGAIN },       { "40002", -EIO },
	{ "57014", -ETIME },        { "57P01", -ECONNRESET },   { "57P03", -ECONNREFUSED },
	{ "08006", -ECONNRESET },   { "08003", -ECONNRESET },   { "08001", -ECONNREFUSED },
	{ "22P02", -EINVAL },       { "22001", -EINVAL },       { "42601", -EINVAL },
	{ "42P01", -EINVAL },       { "42501", -EACCES },       { "28P01", -EACCES },
	{ "3D000", -ENOENT },       { "25006", -EROFS },        { "25P02", -EPROTO },
	{ "55P03", -EBUSY },        { "53100", -ENOSPC },       { "53300", -EUSERS },
	{ "53000", -ENOMEM },       { "54000", -E2BIG },        { "0A000", -EOPNOTSUPP },
	{ "XX000", -EIO },          { "P0001", -EIO },          { "99999", -EIO },
	{ NULL, -ECONNRESET },      { "", -ECONNRESET },        { "2350", -EIO },
	{ "235050", -EIO },
};

static void test_table(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = db_sqlstate_errno(cases[i].state);

		if (got != cases[i].err)
			fail_msg("SQLSTATE %s: got %d, want %d",
				 cases[i].state ? cases[i].state : "(null)", got, cases[i].err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
