#pragma once
/*
 * crypto: the OpenSSL work of trstctl: KEK envelope sealing (kek.h), the issuing CA, leaf
 * issuance, CSR checks and CRLs (x509.h), digests and UUIDs.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kek.h" /* the KEK and envelope sealing */
#include "x509.h" /* the issuing CA, leaf issuance, CSR checks, CRLs */

/* Wipes and frees a NUL-terminated secret. Accepts NULL, returns NULL. */
char *crypto_free_secret(char *s);

/* SHA-256 of data (n bytes; data may be NULL when n is 0) into ret (32 bytes). 0 or -EIO. */
int crypto_sha256(const void *data, size_t n, uint8_t *ret);

/* UUIDs (uuid.c): 8-4-4-4-12 hex text. */
#define CRYPTO_UUID_LEN 36
/* Writes a random (CSPRNG) version 4 UUID, lowercase. Returns 0 or -EIO. */
int crypto_uuid_v4(char ret[CRYPTO_UUID_LEN + 1]);
/* True for an 8-4-4-4-12 hex UUID in either case; false for NULL. */
bool crypto_uuid_valid(const char *s);
