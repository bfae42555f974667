/*
 * Unit tests for tokens: the format of new tokens, the round trip through an
 * `authorization` value to the same hash, the public id, uniqueness, constant-time
 * equality, and a table of header values that must be refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "policy.h"

static void test_new_and_parse(void **state)
{
	char tok[POLICY_TOKEN_LEN + 1], prev[POLICY_TOKEN_LEN + 1] = "",
								id[POLICY_TOKEN_ID_LEN + 1];
	char hdr[128], hex[65];
	uint8_t hash[POLICY_HASH_LEN], parsed[POLICY_HASH_LEN], sha[POLICY_HASH_LEN];

	(void)state;
	for (int i = 0; i < 200; i++) {
		assert_int_equal(policy_token_new(tok, hash, id), 0);
		assert_int_equal(strlen(tok), POLICY_TOKEN_LEN);
		assert_memory_equal(tok, "trst_", 5);
		assert_int_equal(strspn(tok + 5,
					"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					"0123456789-_"),
				 43);
		assert_string_not_equal(tok, prev);
		strcpy(prev, tok);
		/* the hash is SHA-256 of the whole token string */
		SHA256((const unsigned char *)tok, strlen(tok), sha);
		assert_memory_equal(hash, sha, POLICY_HASH_LEN);
		for (int k = 0; k < 32; k++)
			sprintf(hex + 2 * k, "%02x", sha[k]);
		assert_int_equal(strlen(id), POLICY_TOKEN_ID_LEN);
		assert_memory_equal(id, hex, POLICY_TOKEN_ID_LEN);
		/* round trip, any case of the scheme, several spaces */
		snprintf(hdr, sizeof(hdr), "%s %s", i % 2 ? "bearer" : "Bearer", tok);
		assert_int_equal(policy_token_parse_bearer(hdr, parsed), 0);
		assert_true(policy_token_hash_equal(parsed, hash));
		snprintf(hdr, sizeof(hdr), "BEARER   %s", tok);
		assert_int_equal(policy_token_parse_bearer(hdr, parsed), 0);
		assert_true(policy_token_hash_equal(parsed, hash));
		parsed[31] ^= 1;
		assert_false(policy_token_hash_equal(parsed, hash));
	}
}

static const char good[] = "trst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

static const char *const bad[] = {
	"",
	"Bearer",
	"Bearer ",
	"Bearer trst_",
	"Basic trst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	"Bearertrst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	"trst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	"Bearer\ttrst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	"Bearer trst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",   /* 42 characters */
	"Bearer trst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* 44 characters */
	"Bearer trst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA ", /* trailing space */
	"Bearer trst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",  /* padding */
	"Bearer trst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",  /* base64, not base64url */
	"Bearer trst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/",
	"Bearer trst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB", /* not canonical: low bits set */
	"Bearer TRST_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	"Bearer tok_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	"Bearer trst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,x",
	" Bearer trst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
};

static void test_rejects(void **state)
{
	uint8_t h[POLICY_HASH_LEN];
	char hdr[80];

	(void)state;
	snprintf(hdr, sizeof(hdr), "Bearer %s", good);
	assert_int_equal(policy_token_parse_bearer(hdr, h), 0);
	assert_int_equal(policy_token_parse_bearer(NULL, h), -EINVAL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (policy_token_parse_bearer(bad[i], h) != -EINVAL)
			fail_msg("case %zu accepted: '%s'", i, bad[i]);
	/* every character position: one outside the alphabet is refused */
	for (size_t i = 7; i < strlen(hdr); i++) {
		char c = hdr[i];

		hdr[i] = '.';
		assert_int_equal(policy_token_parse_bearer(hdr, h), -EINVAL);
		hdr[i] = c;
	}
}

static void test_id(void **state)
{
	uint8_t h[POLICY_HASH_LEN];
	char id[POLICY_TOKEN_ID_LEN + 1];

	(void)state;
	for (int i = 0; i < POLICY_HASH_LEN; i++)
		h[i] = (uint8_t)(i * 17);
	policy_token_id(h, id);
	assert_string_equal(id, "0011223344556677");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_and_parse),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
