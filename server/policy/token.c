/*
 * API tokens: `trst_` + base64url (no padding) of 32 bytes from OpenSSL's CSPRNG. The
 * server keeps only SHA-256 of the whole token string and a public id derived from that
 * hash, so neither the database nor a log line can give a token back. Parsing of the
 * `authorization` value is exact (scheme, length, alphabet, canonical last character) and
 * says only "no", so a caller learns nothing about why a token was refused. Temporary
 * copies of secret bytes are wiped.
 */
#include "policy.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define TOKEN_BYTES 32
#define B64_LEN 43 /* ceil(32 * 8 / 6) */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

_Static_assert(sizeof(POLICY_TOKEN_PREFIX) - 1 + B64_LEN == POLICY_TOKEN_LEN, "token length");

static int b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

static void b64url_encode(const uint8_t *in, size_t n, char *out)
{
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			*out++ = b64url[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		*out++ = b64url[(acc << (6 - bits)) & 63];
	*out = '\0';
	acc = 0;
}

static void token_hash(const char *token, size_t len, uint8_t ret_hash[POLICY_HASH_LEN])
{
	SHA256((const unsigned char *)token, len, ret_hash);
}

void policy_token_id(const uint8_t hash[POLICY_HASH_LEN], char ret_id[POLICY_TOKEN_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < POLICY_TOKEN_ID_LEN / 2; i++) {
		ret_id[2 * i] = hex[hash[i] >> 4];
		ret_id[2 * i + 1] = hex[hash[i] & 15];
	}
	ret_id[POLICY_TOKEN_ID_LEN] = '\0';
}

int policy_token_new(char ret_token[POLICY_TOKEN_LEN + 1], uint8_t ret_hash[POLICY_HASH_LEN],
		     char ret_id[POLICY_TOKEN_ID_LEN + 1])
{
	uint8_t raw[TOKEN_BYTES];
	const size_t plen = sizeof(POLICY_TOKEN_PREFIX) - 1;

	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		OPENSSL_cleanse(raw, sizeof(raw));
		return -EIO;
	}
	memcpy(ret_token, POLICY_TOKEN_PREFIX, plen);
	b64url_encode(raw, sizeof(raw), ret_token + plen);
	OPENSSL_cleanse(raw, sizeof(raw));
	token_hash(ret_token, POLICY_TOKEN_LEN, ret_hash);
	policy_token_id(ret_hash, ret_id);
	return 0;
}

/* True when s is exactly a well-formed token (and nothing after it). */
static bool token_valid(const char *s)
{
	const size_t plen = sizeof(POLICY_TOKEN_PREFIX) - 1;
	int v = 0;

	if (strncmp(s, POLICY_TOKEN_PREFIX, plen) != 0)
		return false;
	for (size_t i = 0; i < B64_LEN; i++) {
		v = b64url_value(s[plen + i]);
		if (v < 0)
			return false;
	}
	/* 43 characters carry 258 bits; the last 2 must be zero for 32 bytes. */
	return s[POLICY_TOKEN_LEN] == '\0' && (v & 3) == 0;
}

int policy_token_parse_bearer(const char *authorization_header, uint8_t ret_hash[POLICY_HASH_LEN])
{
	const char *p = authorization_header;

	if (!p || strncasecmp(p, "Bearer", 6) != 0 || p[6] != ' ')
		return -EINVAL;
	p += 6;
	while (*p == ' ')
		p++;
	if (!token_valid(p))
		return -EINVAL;
	token_hash(p, POLICY_TOKEN_LEN, ret_hash);
	return 0;
}

bool policy_token_hash_equal(const uint8_t a[POLICY_HASH_LEN], const uint8_t b[POLICY_HASH_LEN])
{
	return CRYPTO_memcmp(a, b, POLICY_HASH_LEN) == 0;
}
