/*
 * Server-side key generation for leaf certificates, with the key's SubjectPublicKeyInfo
 * and its PKCS#8 PEM. For ECDSA and Ed25519 both encodings are written here from the raw
 * key parts: OpenSSL 3.0's i2d_PUBKEY and PKCS#8 encoders look the encoder up through the
 * provider machinery on every call (measured here: about 110 us and 130 us per P-256 key,
 * against 14 us for the key generation itself), while the encodings are fixed prefixes
 * plus the key bytes. test-issue.c checks both byte for byte against OpenSSL's encoders.
 * EC keys are generated with the legacy EC_KEY calls on the process's curve table (14 us
 * for a P-256 key and its parts, against 19-20 us through EVP_PKEY_keygen from a template
 * key and the parameter getters); Ed25519 keys from a per-CA template key, which saves the
 * provider fetch of EVP_PKEY_Q_keygen. RSA keys (milliseconds to generate anyway) use the
 * stock encoders.
 */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "issue-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>

int crypto_keygen_prepare(struct crypto_ca *ca)
{
	ca->ed25519_tmpl = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	return ca->ed25519_tmpl && crypto_ec_curve(0) && crypto_ec_curve(1) ? 0 : -EIO;
}

/* BIT STRING-wrapped public key after alg: the SubjectPublicKeyInfo. */
static void put_spki(struct crypto_der *d, const uint8_t *alg, size_t alg_len, const uint8_t *pub,
		     size_t pub_len)
{
	size_t spki = crypto_der_open(d), bits;

	crypto_der_raw(d, alg, alg_len);
	bits = crypto_der_open(d);
	crypto_der_raw(d, (const uint8_t[]){ 0 }, 1);
	crypto_der_raw(d, pub, pub_len);
	crypto_der_close(d, 0x03, bits);
	crypto_der_close(d, 0x30, spki);
}

/* PrivateKeyInfo { 0, alg, OCTET STRING { inner } } where inner is the key-specific part. */
static void put_pkcs8(struct crypto_der *d, const uint8_t *alg, size_t alg_len, const uint8_t *priv,
		      size_t priv_len, const uint8_t *pub, size_t pub_len)
{
	size_t info = crypto_der_open(d), oct, ec, a1, bits;

	crypto_der_raw(d, (const uint8_t[]){ 0x02, 0x01, 0x00 }, 3);
	crypto_der_raw(d, alg, alg_len);
	oct = crypto_der_open(d);
	if (pub) {
		/* ECPrivateKey { 1, OCTET STRING priv, [1] BIT STRING pub } (RFC 5915) */
		ec = crypto_der_open(d);
		crypto_der_raw(d, (const uint8_t[]){ 0x02, 0x01, 0x01 }, 3);
		crypto_der_tlv(d, 0x04, priv, priv_len);
		a1 = crypto_der_open(d);
		bits = crypto_der_open(d);
		crypto_der_raw(d, (const uint8_t[]){ 0 }, 1);
		crypto_der_raw(d, pub, pub_len);
		crypto_der_close(d, 0x03, bits);
		crypto_der_close(d, 0xa1, a1);
		crypto_der_close(d, 0x30, ec);
	} else {
		/* CurvePrivateKey ::= OCTET STRING (RFC 8410) */
		crypto_der_tlv(d, 0x04, priv, priv_len);
	}
	crypto_der_close(d, 0x04, oct);
	crypto_der_close(d, 0x30, info);
}

static EVP_PKEY *keygen_from(EVP_PKEY *tmpl)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, tmpl, NULL);
	EVP_PKEY *k = NULL;

	if (!ctx || EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_keygen(ctx, &k) <= 0)
		k = NULL;
	EVP_PKEY_CTX_free(ctx);
	return k;
}

/* A new EC key's raw parts (uncompressed point, private scalar). */
static int ec_keygen_parts(enum crypto_key_type kt, uint8_t *pub, size_t *pub_len,
			   uint8_t *priv, size_t *priv_len)
{
	const EC_GROUP *g = crypto_ec_curve(kt == CRYPTO_KEY_ECDSA_P256 ? 0 : 1);
	EC_KEY *k = EC_KEY_new();
	int ok;

	*priv_len = kt == CRYPTO_KEY_ECDSA_P256 ? 32 : 48;
	ok = k && g && EC_KEY_set_group(k, g) == 1 && EC_KEY_generate_key(k) == 1 &&
	     (*pub_len = EC_POINT_point2oct(g, EC_KEY_get0_public_key(k),
					    POINT_CONVERSION_UNCOMPRESSED, pub, 97, NULL)) > 0 &&
	     BN_bn2binpad(EC_KEY_get0_private_key(k), priv, (int)*priv_len) == (int)*priv_len;
	EC_KEY_free(k); /* clears the private scalar */
	return ok ? 0 : -EIO;
}

/* The raw public and private parts of an Ed25519 key. */
static int raw_parts(EVP_PKEY *k, uint8_t *pub, size_t *pub_len, uint8_t *priv, size_t *priv_len)
{
	*pub_len = *priv_len = 32;
	return EVP_PKEY_get_raw_public_key(k, pub, pub_len) == 1 &&
		       EVP_PKEY_get_raw_private_key(k, priv, priv_len) == 1 ?
		       0 :
		       -EIO;
}

int crypto_keygen_encoded(const struct crypto_ca *ca, enum crypto_key_type kt, uint8_t **ret_spki,
			  size_t *ret_spki_len, char **ret_key_pem)
{
	const uint8_t *alg = kt == CRYPTO_KEY_ECDSA_P256 ? crypto_alg_p256 :
			     kt == CRYPTO_KEY_ECDSA_P384 ? crypto_alg_p384 :
							   crypto_alg_ed25519;
	size_t alg_len = kt == CRYPTO_KEY_ECDSA_P256 ? CRYPTO_ALG_P256_LEN :
			 kt == CRYPTO_KEY_ECDSA_P384 ? CRYPTO_ALG_P384_LEN :
						       CRYPTO_ALG_ED25519_LEN;
	uint8_t pub[97], priv[48];
	size_t pub_len = 0, priv_len = 0;
	struct crypto_der spki = { 0 }, p8 = { 0 };
	unsigned char *der = NULL;
	EVP_PKEY *k;
	int n, r = -EIO;

	if (kt > CRYPTO_KEY_ED25519) {
		/* RSA: the stock encoders. */
		k = crypto_key_generate(kt);
		n = k ? i2d_PUBKEY(k, &der) : -1;
		if (n > 0 && (*ret_spki = malloc((size_t)n))) {
			memcpy(*ret_spki, der, (size_t)n);
			*ret_spki_len = (size_t)n;
			*ret_key_pem = crypto_key_to_pem(k);
			r = *ret_key_pem ? 0 : -ENOMEM;
			if (r < 0)
				*ret_spki = (free(*ret_spki), NULL);
		}
		OPENSSL_free(der);
		EVP_PKEY_free(k);
		return r;
	}
	if (kt == CRYPTO_KEY_ED25519) {
		k = keygen_from(ca->ed25519_tmpl);
		if (!k || raw_parts(k, pub, &pub_len, priv, &priv_len) < 0)
			goto out;
	} else {
		k = NULL;
		if (ec_keygen_parts(kt, pub, &pub_len, priv, &priv_len) < 0)
			goto out;
	}
	crypto_der_init(&spki, 128);
	crypto_der_init(&p8, 256); /* never grows (P-384: 185 bytes): no stray key copies */
	put_spki(&spki, alg, alg_len, pub, pub_len);
	put_pkcs8(&p8, alg, alg_len, priv, priv_len, kt == CRYPTO_KEY_ED25519 ? NULL : pub,
		  pub_len);
	r = -ENOMEM;
	if (spki.err || p8.err)
		goto out;
	*ret_key_pem = crypto_pem_encode("PRIVATE KEY", p8.p, p8.len);
	if (!*ret_key_pem)
		goto out;
	*ret_spki = spki.p;
	*ret_spki_len = spki.len;
	spki.p = NULL;
	r = 0;
out:
	OPENSSL_cleanse(priv, sizeof(priv));
	if (p8.p)
		OPENSSL_cleanse(p8.p, p8.cap);
	crypto_der_fini(&p8);
	crypto_der_fini(&spki);
	EVP_PKEY_free(k);
	return r;
}
