#pragma once
/*
 * Internal to the issue*.c files of crypto: the CA structure, the small DER writer and
 * reader the fast issuance path uses, and shared helpers. Not part of crypto.h.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "x509.h"

struct crypto_ca {
	enum crypto_key_type key_type;
	EVP_PKEY *key;
	X509 *cert;
	char *cert_pem;	  /* the CA certificate */
	char *bundle_pem; /* cert_pem then the issuers above it */
	uint8_t *issuer;  /* DER of the CA's subject Name: every leaf's issuer */
	size_t issuer_len;
	uint8_t aki_ext[33]; /* pre-encoded authorityKeyIdentifier Extension (keyid) */
	size_t aki_ext_len;
	uint8_t key_id[20];    /* the CA's subject key id (SHA-1 of its public key bits) */
	const uint8_t *sigalg; /* DER AlgorithmIdentifier of our signatures */
	size_t sigalg_len;
	EVP_MD *md;		 /* digest (prehash) of our signatures; NULL for Ed25519 */
	EVP_PKEY_CTX *sign_tmpl; /* sign-initialised context, duplicated per signature */
	EVP_PKEY *ed25519_tmpl;	 /* seeds Ed25519 leaf keys (EC keys: crypto_ec_curve) */
	int64_t not_after;
};

/* DER writer into a growing heap buffer. A failed allocation sets err and later calls do
 * nothing, so callers check once at the end. */
struct crypto_der {
	uint8_t *p;
	size_t len, cap;
	bool err;
};

void crypto_der_init(struct crypto_der *d, size_t cap);
void crypto_der_fini(struct crypto_der *d);
void crypto_der_raw(struct crypto_der *d, const void *p, size_t n);
void crypto_der_tlv(struct crypto_der *d, uint8_t tag, const void *p, size_t n);
/* Opens a constructed value: returns a mark for der_close. */
size_t crypto_der_open(struct crypto_der *d);
/* Closes it: wraps the bytes written since mark in a TLV of tag. */
void crypto_der_close(struct crypto_der *d, uint8_t tag, size_t mark);
/* A positive INTEGER from a big-endian magnitude (leading zeros are skipped). */
void crypto_der_uint(struct crypto_der *d, const uint8_t *mag, size_t n);
/* UTCTime for 1950..2049, GeneralizedTime otherwise (RFC 5280 4.1.2.5). -1 on a time
 * outside years 0..9999. */
int crypto_der_time(struct crypto_der *d, int64_t t);

/* Reads one TLV of tag want at *pp (not past end), advances *pp past it and sets the
 * value. Returns 0 or -EINVAL (wrong tag, bad or indefinite length, truncated). */
int crypto_der_get(const uint8_t **pp, const uint8_t *end, uint8_t want, const uint8_t **ret_val,
		   size_t *ret_len);
/* The same, but sets the whole TLV (header and value), for a value compared or hashed as
 * encoded. */
int crypto_der_get_tlv(const uint8_t **pp, const uint8_t *end, uint8_t want,
		       const uint8_t **ret_tlv, size_t *ret_len);

/* Base64 PEM: the body between "-----BEGIN <label>-----" and "-----END" (the encoder is
 * crypto_pem_encode, x509.h). */
int crypto_pem_decode(const char *pem, const char *label, uint8_t **ret_der, size_t *ret_len);
/* The DER of a PEM certificate request, under either label ("CERTIFICATE REQUEST" or "NEW
 * CERTIFICATE REQUEST"): what issuance reads, and so what the CSR check accepts. */
int crypto_csr_pem_decode(const char *pem, uint8_t **ret_der, size_t *ret_len);

/* AlgorithmIdentifiers of ECDSA P-256, P-384 and Ed25519 subject keys. */
#define CRYPTO_ALG_P256_LEN 21
#define CRYPTO_ALG_P384_LEN 18
#define CRYPTO_ALG_ED25519_LEN 7
extern const uint8_t crypto_alg_p256[CRYPTO_ALG_P256_LEN];
extern const uint8_t crypto_alg_p384[CRYPTO_ALG_P384_LEN];
extern const uint8_t crypto_alg_ed25519[CRYPTO_ALG_ED25519_LEN];

/* Classifies a DER SubjectPublicKeyInfo: writes the key algorithm name ("ecdsa-p256",
 * "rsa-3072", ...), whether it is RSA, and the subjectPublicKey bits (for key ids).
 * -EINVAL for a key outside the accepted set (weak RSA, other curves, other algorithms). */
int crypto_spki_classify(const uint8_t *spki, size_t len, char ret_alg[CRYPTO_KEY_ALG_LEN],
			 bool *ret_rsa, const uint8_t **ret_bits, size_t *ret_bits_len);

/* The accepted-key check on an EVP_PKEY (through its SPKI encoding). */
int crypto_pkey_classify(EVP_PKEY *pk, char ret_alg[CRYPTO_KEY_ALG_LEN], bool *ret_rsa);

/* Generates a key of type kt. NULL on failure. */
EVP_PKEY *crypto_key_generate(enum crypto_key_type kt);

/* Signs tbs with the CA key: the signature bytes (DER ECDSA-Sig-Value, raw Ed25519 or
 * PKCS#1 v1.5) into *ret_sig (malloc'd). Thread-safe. Returns 0 or -EIO. */
int crypto_ca_sign(const struct crypto_ca *ca, const uint8_t *tbs, size_t n, uint8_t **ret_sig,
		   size_t *ret_len);

/* Sets ca->ed25519_tmpl and builds the EC curves. Returns 0 or -EIO. */
int crypto_keygen_prepare(struct crypto_ca *ca);

/* Generates a leaf key of type kt: its DER SubjectPublicKeyInfo (*ret_spki, malloc'd) and
 * its PKCS#8 PEM (*ret_key_pem, wipe with crypto_free_secret). Thread-safe. 0 or -errno. */
int crypto_keygen_encoded(const struct crypto_ca *ca, enum crypto_key_type kt, uint8_t **ret_spki,
			  size_t *ret_spki_len, char **ret_key_pem);

/* PKCS#8 PEM of a private key (malloc'd) or NULL. */
char *crypto_key_to_pem(EVP_PKEY *pk);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void crypto_hex_encode(const uint8_t *p, size_t n, char *out);

/* Formats err (may be NULL) and returns code. */
int crypto_set_err(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The subjectAltNames a CSR requests against the identity's names and addresses: counts
 * them into info; -EINVAL with err set on the first one not allowed (issue-csr.c). */
int crypto_csr_check_names(const GENERAL_NAMES *names, const char *const *allowed_dns,
			   size_t n_dns, const char *const *allowed_ips, size_t n_ips,
			   struct crypto_csr_info *info, char *err, size_t errlen);
/* The subject's CN into info->cn when it is 1..CRYPTO_CN_MAX bytes of UTF-8 (issue-csr.c). */
void crypto_csr_copy_cn(const X509_NAME *name, struct crypto_csr_info *info);
/*
 * crypto_csr_check for an ECDSA CSR without OpenSSL's decoders (issue-csr-ec.c). Returns 0
 * with *ret_info set when it accepts; -EAGAIN for any other CSR, including every one it
 * would refuse: the full check then decides, with its messages.
 */
int crypto_csr_check_ec(const char *csr_pem, const char *const *allowed_dns, size_t n_dns,
			const char *const *allowed_ips, size_t n_ips,
			struct crypto_csr_info *ret_info);
/* The group of P-256 (curve 0) or P-384 (1), built once per process and never changed;
 * NULL for another curve or when it could not be built (issue-csr-ec.c). */
const EC_GROUP *crypto_ec_curve(int curve);
