/*
 * Unit tests of the secret store's rules that need no database: the name rules (table),
 * the configuration checks of secrets_open, and the value HMAC helper of the KEK.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kek.h"
#include "secrets.h"

static void test_names(void **state)
{
	static const struct {
		const char *name;
		int want;
		const char *msg; /* a word the message must contain */
	} cases[] = {
		{ "offline/db/password", 0, NULL },
		{ "a", 0, NULL },
		{ "A-Z_0.9/x-y", 0, NULL },
		{ "a/.../b", 0, NULL },
		{ "a/.hidden", 0, NULL },
		{ "x..y", 0, NULL },
		{ "", -EINVAL, "1-256" },
		{ "a b", -EINVAL, "[A-Za-z0-9._/-]" },
		{ "a:b", -EINVAL, "[A-Za-z0-9._/-]" },
		{ "a\nb", -EINVAL, "[A-Za-z0-9._/-]" },
		{ "caf\xc3\xa9", -EINVAL, "[A-Za-z0-9._/-]" },
		{ "/a", -EINVAL, "empty segment" },
		{ "a/", -EINVAL, "empty segment" },
		{ "a//b", -EINVAL, "empty segment" },
		{ "/", -EINVAL, "empty segment" },
		{ "..", -EINVAL, "\"..\"" },
		{ "a/..", -EINVAL, "\"..\"" },
		{ "../a", -EINVAL, "\"..\"" },
		{ "a/../b", -EINVAL, "\"..\"" },
	};
	char err[256], long_ok[257], long_bad[258];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		int r = secrets_check_name(cases[i].name, err, sizeof(err));

		if (r != cases[i].want)
			fail_msg("name \"%s\": got %d want %d (%s)", cases[i].name, r,
				 cases[i].want, err);
		if (cases[i].msg && !strstr(err, cases[i].msg))
			fail_msg("name \"%s\": message \"%s\" lacks \"%s\"", cases[i].name, err,
				 cases[i].msg);
	}
	memset(long_ok, 'a', 256);
	long_ok[256] = '\0';
	assert_int_equal(secrets_check_name(long_ok, err, sizeof(err)), 0);
	memset(long_bad, 'a', 257);
	long_bad[257] = '\0';
	assert_int_equal(secrets_check_name(long_bad, err, sizeof(err)), -EINVAL);
	assert_int_equal(secrets_check_name(NULL, err, sizeof(err)), -EINVAL);
}

static void test_hmac(void **state)
{
	uint8_t key[KEK_LEN], a[32], b[32], c[32], d[32];
	struct kek *k = NULL, *k2 = NULL;

	(void)state;
	memset(key, 1, sizeof(key));
	assert_int_equal(kek_new(key, sizeof(key), &k), 0);
	key[0] = 2;
	assert_int_equal(kek_new(key, sizeof(key), &k2), 0);
	assert_int_equal(kek_hmac(k, "l1", (const uint8_t *)"value", 5, a), 0);
	assert_int_equal(kek_hmac(k, "l1", (const uint8_t *)"value", 5, b), 0);
	assert_memory_equal(a, b, 32);
	assert_int_equal(kek_hmac(k, "l2", (const uint8_t *)"value", 5, c), 0);
	assert_memory_not_equal(a, c, 32);
	assert_int_equal(kek_hmac(k2, "l1", (const uint8_t *)"value", 5, d), 0);
	assert_memory_not_equal(a, d, 32);
	assert_int_equal(kek_hmac(k, "l1", NULL, 0, d), 0);
	assert_int_equal(kek_hmac(k, "l1", NULL, 1, d), -EINVAL);
	kek_free(k);
	kek_free(k2);
}

static void test_open_config(void **state)
{
	struct secrets_config bad = { .retain_versions = -1 };
	struct secrets *s = NULL;
	uint8_t key[KEK_LEN] = { 0 };
	struct kek *k = NULL;

	(void)state;
	assert_int_equal(kek_new(key, sizeof(key), &k), 0);
	assert_int_equal(secrets_open(NULL, k, NULL, NULL, &s), -EINVAL);
	assert_int_equal(secrets_open((struct db *)1, k, NULL, &bad, &s), -EINVAL);
	assert_null(secrets_close(NULL));
	kek_free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_hmac),
		cmocka_unit_test(test_open_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
