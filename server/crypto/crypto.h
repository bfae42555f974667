#pragma once
/*
 * crypto: the OpenSSL work of trstctl (KEK envelope sealing, X.509 and CSR work). For
 * now: the self-signed server certificate of the internal TLS mode.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kek.h" /* the KEK and envelope sealing */
#include "x509.h" /* the issuing CA, leaf issuance, CSR checks, CRLs */

/*
 * Generates an ECDSA P-256 key and a self-signed certificate valid for days days, with
 * CN names[0] and a subjectAltName for every name (IP literals become IP SANs). On
 * success sets *ret_cert_pem and *ret_key_pem (malloc'd; the caller wipes the key with
 * crypto_free_secret). Returns -EINVAL for no names or a bad name, -ENOMEM, -EIO on an
 * OpenSSL failure.
 */
int crypto_selfsigned(const char *const *names, size_t n_names, int days, char **ret_cert_pem,
		      char **ret_key_pem);

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
