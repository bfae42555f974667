/* Unit tests for crypto_uuid_v4 and crypto_uuid_valid: the shape of fresh ids, and a table
 * of valid and invalid texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "crypto.h"

static void test_uuid_v4(void **state)
{
	char a[CRYPTO_UUID_LEN + 1], b[CRYPTO_UUID_LEN + 1];

	(void)state;
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(crypto_uuid_v4(a), 0);
		assert_int_equal(strlen(a), CRYPTO_UUID_LEN);
		assert_true(crypto_uuid_valid(a));
		assert_int_equal(a[14], '4');		/* version */
		assert_non_null(strchr("89ab", a[19])); /* variant */
		for (const char *p = a; *p; p++)
			assert_true(*p == '-' || (*p >= '0' && *p <= '9') ||
				    (*p >= 'a' && *p <= 'f'));
	}
	assert_int_equal(crypto_uuid_v4(b), 0);
	assert_string_not_equal(a, b);
}

static void test_uuid_valid(void **state)
{
	static const struct {
		const char *s;
		bool ok;
	} cases[] = {
		{ "00000000-0000-0000-0000-000000000000", true },
		{ "6F9619FF-8B86-D011-B42D-00C04FC964FF", true },
		{ "6f9619ff-8b86-d011-b42d-00c04fc964ff", true },
		{ "6f9619ff8b86d011b42d00c04fc964ff", false },
		{ "6f9619ff-8b86-d011-b42d-00c04fc964f", false },
		{ "6f9619ff-8b86-d011-b42d-00c04fc964fff", false },
		{ "6f9619ff-8b86-d011-b42d_00c04fc964ff", false },
		{ "6f9619fg-8b86-d011-b42d-00c04fc964ff", false },
		{ "6f9619ff-8b86-d011-b42d-00c04fc964f\xff", false },
		{ "", false },
		{ NULL, false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(crypto_uuid_valid(cases[i].s), cases[i].ok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuid_v4),
		cmocka_unit_test(test_uuid_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
