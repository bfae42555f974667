/*
 * Unit tests of the redactor, table-driven: what each rule removes, what it must leave
 * alone (names, paths, dates, UUIDs, token ids), the words pass, and ai_secret_like on
 * both sides of its thresholds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ai.h"

#define TOKEN "trst_AbCdEf0123456789-_xyzABCDEFGHIJKLMNOPQRSTUVW"

static void test_patterns(void **state)
{
	static const struct {
		const char *in, *want;
		size_t n;
	} cases[] = {
		{ "why was " TOKEN " denied?", "why was [REDACTED] denied?", 1 },
		{ "(" TOKEN ")", "([REDACTED])", 1 },
		{ "trst_", "trst_", 0 },
		{ "key -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY----- end",
		  "key [REDACTED PEM BLOCK] end", 1 },
		{ "key: -----BEGIN X-----\nAA\n-----END X-----", "key: [REDACTED PEM BLOCK]", 1 },
		/* a token inside a pair's name goes, and the value */
		{ "xoxb-p--------password-----=abc", "[REDACTED]=[REDACTED]", 2 },
		{ "x -----BEGIN CERTIFICATE-----\nMIIB", "x [REDACTED PEM BLOCK]", 1 },
		{ "a -----BEGIN X-----\n-----END X----- b -----BEGIN Y-----\n-----END Y-----",
		  "a [REDACTED PEM BLOCK] b [REDACTED PEM BLOCK]", 2 },
		{ "password=hunter2 and db_password: 's3cr3t x'",
		  "password=[REDACTED] and db_password: '[REDACTED]'", 2 },
		{ "{\"password\": \"abc def\", \"user\": \"bob\"}",
		  "{\"password\": \"[REDACTED]\", \"user\": \"bob\"}", 1 },
		{ "Authorization: Bearer abcdefghijklmnop1234", "Authorization: [REDACTED]", 1 },
		{ "curl -H 'x' Bearer abcdefghijklmnop1234 done",
		  "curl -H 'x' Bearer [REDACTED] done", 1 },
		{ "a bearer token is what?", "a bearer token is what?", 0 },
		{ "https://h/x?token=abc123&x=1", "https://h/x?token=[REDACTED]&x=1", 1 },
		{ "API_KEY = xyz", "API_KEY = [REDACTED]", 1 },
		{ "token://host", "token://host", 0 },
		{ "fp 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08.",
		  "fp [REDACTED].", 1 },
		{ "v dGhpcyBpcyBhIHZlcnkgc2VjcmV0IHZhbHVlIG9mIDQ4IGJ5dGVz==", "v [REDACTED]", 1 },
		{ "aws AKIAIOSFODNN7EXAMPLE x", "aws [REDACTED] x", 1 },
		{ "gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gh [REDACTED]", 1 },
		{ "slack xoxb-1234567890-abcdef", "slack [REDACTED]", 1 },
		/* left alone */
		{ "offline-api.internal expires 2026-01-02",
		  "offline-api.internal expires 2026-01-02", 0 },
		{ "resource secret/prod/db/password-primary-database-eu-west",
		  "resource secret/prod/db/password-primary-database-eu-west", 0 },
		{ "payments-api-2024-EU-west-1-primary-Service",
		  "payments-api-2024-EU-west-1-primary-Service", 0 },
		{ "identity 0f8fad5b-d9cb-469f-a165-70867728950e",
		  "identity 0f8fad5b-d9cb-469f-a165-70867728950e", 0 },
		{ "caller 0123456789abcdef admin", "caller 0123456789abcdef admin", 0 },
		{ "action Secrets.GetSecret, resource secret/a",
		  "action Secrets.GetSecret, resource secret/a", 0 },
		{ "Identities: 3 in total", "Identities: 3 in total", 0 },
		{ "", "", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = NULL, *again = NULL;
		size_t n = 99;

		assert_int_equal(ai_redact(cases[i].in, false, &out, &n), 0);
		if (strcmp(out, cases[i].want) != 0 || n != cases[i].n)
			fail_msg("case %zu: \"%s\" -> \"%s\" (%zu), want \"%s\" (%zu)", i,
				 cases[i].in, out, n, cases[i].want, cases[i].n);
		/* a second pass changes nothing */
		assert_int_equal(ai_redact(out, false, &again, &n), 0);
		assert_string_equal(again, out);
		assert_int_equal(n, 0);
		free(again);
		free(out);
	}
}

static void test_words(void **state)
{
	char *out = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(ai_redact("name \"Zq8#Lm2$Rx7!Tv9&Wp4\" ok", false, &out, &n), 0);
	assert_string_equal(out, "name \"Zq8#Lm2$Rx7!Tv9&Wp4\" ok");
	assert_int_equal(n, 0);
	free(out);
	assert_int_equal(ai_redact("name \"Zq8#Lm2$Rx7!Tv9&Wp4\" ok, " TOKEN, true, &out, &n), 0);
	assert_string_equal(out, "name \"[REDACTED]\" ok, [REDACTED]");
	assert_int_equal(n, 2);
	free(out);
}

static void test_secret_like(void **state)
{
	static const struct {
		const char *text;
		bool want;
	} cases[] = {
		{ "is Zq8#Lm2$Rx7!Tv9&Wp4 a good one?", true },
		{ "is it aB3dE5gH7jK9mN1pQ3sT5vX7 ok", true },
		{ "k7x9q2m4z8w1v5r3t6y0u8p2", true }, /* 24 lower case and digits, random */
		{ "2026-01-02T03:04:05.123456Z", false },
		{ "0f8fad5b-d9cb-469f-a165-70867728950e", false },
		{ "offline-api.internal", false },
		{ "Secrets.GetSecret", false },
		{ "[REDACTED] [REDACTED PEM BLOCK]", false },
		{ "0123456789abcdef", false },
		{ "hunter2", false },
		{ "which certificates expire within 30 days?", false },
		{ "payments-api-2024-EU-west-1-primary-Service", false },
		{ "/trstctl.v1.Assist/Ask", false },
		{ "ipv4:127.0.0.1:5555", false },
		{ "", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (ai_secret_like(cases[i].text) != cases[i].want)
			fail_msg("case %zu: \"%s\" want %d", i, cases[i].text, cases[i].want);
	assert_false(ai_secret_like(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_words),
		cmocka_unit_test(test_secret_like),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
