/*
 * X.509 helpers on OpenSSL 3. The self-signed certificate serves the internal TLS mode:
 * clients either skip verification for evaluation or pin the certificate they fetched.
 */
#include "crypto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

char *crypto_free_secret(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
	return NULL;
}

/* Copies the contents of a memory BIO into a malloc'd NUL-terminated string. */
static char *bio_to_string(BIO *bio)
{
	char *data, *s;
	long n = BIO_get_mem_data(bio, &data);

	if (n < 0)
		return NULL;
	s = malloc((size_t)n + 1);
	if (!s)
		return NULL;
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	return s;
}

static int add_ext(X509 *crt, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, crt, crt, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -EINVAL;
	ok = X509_add_ext(crt, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -EIO;
}

static bool is_ip_literal(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* Builds "DNS:a,IP:127.0.0.1,..." for the subjectAltName extension, or NULL. */
static char *san_list(const char *const *names, size_t n)
{
	size_t len = 1;
	char *s;

	for (size_t i = 0; i < n; i++) {
		if (!names[i][0] || (strpbrk(names[i], ",:\n\r") && !is_ip_literal(names[i])))
			return NULL;
		len += strlen(names[i]) + 5;
	}
	s = calloc(1, len);
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		strcat(s, i ? "," : "");
		strcat(s, is_ip_literal(names[i]) ? "IP:" : "DNS:");
		strcat(s, names[i]);
	}
	return s;
}

static EVP_PKEY *new_p256_key(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static int sign_selfsigned(X509 *crt, EVP_PKEY *key, const char *cn, const char *san, int days)
{
	unsigned char serial[16];
	BIGNUM *bn;
	X509_NAME *name = X509_get_subject_name(crt);
	int r;

	if (RAND_bytes(serial, sizeof(serial)) != 1)
		return -EIO;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(crt))) {
		BN_free(bn);
		return -EIO;
	}
	BN_free(bn);
	if (!X509_set_version(crt, X509_VERSION_3) ||
	    !X509_gmtime_adj(X509_getm_notBefore(crt), -300) ||
	    !X509_gmtime_adj(X509_getm_notAfter(crt), (long)days * 86400) ||
	    !X509_set_pubkey(crt, key) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
					-1, 0) ||
	    !X509_set_issuer_name(crt, name))
		return -EIO;
	r = add_ext(crt, NID_subject_alt_name, san);
	if (r >= 0)
		r = add_ext(crt, NID_basic_constraints, "critical,CA:FALSE");
	if (r >= 0)
		r = add_ext(crt, NID_key_usage, "critical,digitalSignature");
	if (r >= 0)
		r = add_ext(crt, NID_ext_key_usage, "serverAuth");
	if (r >= 0)
		r = add_ext(crt, NID_subject_key_identifier, "hash");
	if (r >= 0 && X509_sign(crt, key, EVP_sha256()) <= 0)
		r = -EIO;
	return r;
}

int crypto_selfsigned(const char *const *names, size_t n_names, int days, char **ret_cert_pem,
		      char **ret_key_pem)
{
	EVP_PKEY *key = NULL;
	X509 *crt = NULL;
	BIO *cbio = NULL, *kbio = NULL;
	char *san = NULL, *cert_pem = NULL, *key_pem = NULL;
	int r;

	if (n_names == 0 || days <= 0)
		return -EINVAL;
	san = san_list(names, n_names);
	if (!san)
		return -EINVAL;
	r = -EIO;
	key = new_p256_key();
	crt = X509_new();
	cbio = BIO_new(BIO_s_mem());
	kbio = BIO_new(BIO_s_mem());
	if (!key || !crt || !cbio || !kbio)
		goto out;
	r = sign_selfsigned(crt, key, names[0], san, days);
	if (r < 0)
		goto out;
	r = -EIO;
	if (!PEM_write_bio_X509(cbio, crt) ||
	    !PEM_write_bio_PrivateKey(kbio, key, NULL, NULL, 0, NULL, NULL))
		goto out;
	r = -ENOMEM;
	cert_pem = bio_to_string(cbio);
	key_pem = bio_to_string(kbio);
	if (!cert_pem || !key_pem)
		goto out;
	*ret_cert_pem = cert_pem;
	*ret_key_pem = key_pem;
	cert_pem = key_pem = NULL;
	r = 0;
out:
	free(cert_pem);
	crypto_free_secret(key_pem);
	free(san);
	BIO_free(cbio);
	BIO_free_all(kbio);
	X509_free(crt);
	EVP_PKEY_free(key);
	return r;
}
