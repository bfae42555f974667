/*
 * libFuzzer target for the `authorization` header of every call (policy_token_parse_bearer,
 * server/policy/token.c): the header is the first outside bytes the authorizer reads. The
 * input, cut at its first NUL (as the rpc layer's copy of a metadata value would be), is
 * parsed and compared with a plain reference: "Bearer" in any case, one or more spaces,
 * "trst_" and 43 base64url characters that decode to 32 bytes and encode back to the same
 * text, nothing after. An accepted header's hash is the SHA-256 of the token alone. A
 * second round feeds "Bearer " + the input, so that the token's own checks are reached
 * without the fuzzer first having to find the scheme.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The reference: the token part of a well-formed header, or NULL. */
static const char *ref_token(const char *h)
{
	uint8_t raw[33];
	char again[44];
	uint32_t acc = 0;
	size_t n = 0, o = 0;
	int bits = 0;
	const char *t;

	if (strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	t = h + 7;
	while (*t == ' ')
		t++;
	if (strncmp(t, "trst_", 5) != 0 || strlen(t) != POLICY_TOKEN_LEN)
		return NULL;
	for (size_t i = 5; i < POLICY_TOKEN_LEN; i++) {
		const char *c = t[i] ? strchr(alphabet, t[i]) : NULL;

		if (!c)
			return NULL;
		acc = acc << 6 | (uint32_t)(c - alphabet);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			raw[n++] = (uint8_t)(acc >> bits);
		}
	}
	if (n != 32)
		return NULL;
	/* Canonical: encoding the 32 bytes gives back the same 43 characters. */
	acc = 0;
	bits = 0;
	for (size_t i = 0; i < n; i++) {
		acc = acc << 8 | raw[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			again[o++] = alphabet[(acc >> bits) & 63];
		}
	}
	again[o++] = alphabet[(acc << (6 - bits)) & 63];
	again[o] = '\0';
	return strcmp(again, t + 5) == 0 ? t : NULL;
}

static void check(const char *h)
{
	uint8_t hash[POLICY_HASH_LEN], want[POLICY_HASH_LEN];
	const char *tok = ref_token(h);
	int r = policy_token_parse_bearer(h, hash);

	if ((r == 0) != (tok != NULL))
		abort();
	if (r == 0) {
		SHA256((const unsigned char *)tok, POLICY_TOKEN_LEN, want);
		if (!policy_token_hash_equal(hash, want))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *h;

	if (size > 1024)
		return 0;
	h = malloc(size + 8);
	if (!h)
		return 0;
	memcpy(h, data, size);
	h[size] = '\0';
	check(h);
	memcpy(h, "Bearer ", 7);
	memcpy(h + 7, data, size);
	h[size + 7] = '\0';
	check(h);
	free(h);
	return 0;
}
