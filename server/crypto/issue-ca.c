/*
 * The issuing CA: key types, creating a self-signed root, loading or importing a CA
 * certificate and key, the CSR for an external root, and the per-CA state that makes
 * leaf issuance cheap (the issuer Name and authority key id pre-encoded, the digest
 * fetched once, a sign-initialised context that each signature duplicates). The CA
 * itself is built with the stock X509 API: it happens once. The private key leaves only
 * through crypto_ca_key_pem, for the caller to seal; nothing here writes a file.
 */
#include "issue-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/buffer.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "crypto.h"

static const struct {
	const char *name;
	const char *algorithm; /* EVP_PKEY_Q_keygen type */
	const char *curve;     /* EC group, or NULL */
	size_t bits;	       /* RSA modulus bits, or 0 */
} key_types[CRYPTO_KEY_TYPE_COUNT] = {
	[CRYPTO_KEY_ECDSA_P256] = { "ecdsa-p256", "EC", "P-256", 0 },
	[CRYPTO_KEY_ECDSA_P384] = { "ecdsa-p384", "EC", "P-384", 0 },
	[CRYPTO_KEY_ED25519] = { "ed25519", "ED25519", NULL, 0 },
	[CRYPTO_KEY_RSA_2048] = { "rsa-2048", "RSA", NULL, 2048 },
	[CRYPTO_KEY_RSA_3072] = { "rsa-3072", "RSA", NULL, 3072 },
	[CRYPTO_KEY_RSA_4096] = { "rsa-4096", "RSA", NULL, 4096 },
};

/* Signature AlgorithmIdentifiers, by CA key type. */
static const uint8_t sig_ecdsa_sha256[] = { 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
					    0x48, 0xce, 0x3d, 0x04, 0x03, 0x02 };
static const uint8_t sig_ecdsa_sha384[] = { 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
					    0x48, 0xce, 0x3d, 0x04, 0x03, 0x03 };
static const uint8_t sig_rsa_sha256[] = { 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
					  0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00 };

const char *crypto_key_type_name(enum crypto_key_type t)
{
	return (unsigned)t < CRYPTO_KEY_TYPE_COUNT ? key_types[t].name : NULL;
}

int crypto_key_type_from_name(const char *name, enum crypto_key_type *ret_type)
{
	if (!name || !*name) {
		*ret_type = CRYPTO_KEY_ECDSA_P256;
		return 0;
	}
	for (int t = 0; t < CRYPTO_KEY_TYPE_COUNT; t++) {
		if (!strcmp(name, key_types[t].name)) {
			*ret_type = (enum crypto_key_type)t;
			return 0;
		}
	}
	return -EINVAL;
}

const char *crypto_key_type_list(void)
{
	return "ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096";
}

EVP_PKEY *crypto_key_generate(enum crypto_key_type kt)
{
	if ((unsigned)kt >= CRYPTO_KEY_TYPE_COUNT)
		return NULL;
	if (key_types[kt].curve)
		return EVP_PKEY_Q_keygen(NULL, NULL, key_types[kt].algorithm, key_types[kt].curve);
	if (key_types[kt].bits)
		return EVP_PKEY_Q_keygen(NULL, NULL, key_types[kt].algorithm, key_types[kt].bits);
	return EVP_PKEY_Q_keygen(NULL, NULL, key_types[kt].algorithm);
}

char *crypto_key_to_pem(EVP_PKEY *pk)
{
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pk);
	unsigned char *der = NULL;
	char *pem = NULL;
	int n;

	if (!p8)
		return NULL;
	n = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
	PKCS8_PRIV_KEY_INFO_free(p8);
	if (n <= 0)
		return NULL;
	pem = crypto_pem_encode("PRIVATE KEY", der, (size_t)n);
	OPENSSL_clear_free(der, (size_t)n);
	return pem;
}

/* Copies a memory BIO into a malloc'd string; wipes the BIO's buffer when secret. */
static char *bio_take(BIO *b, bool secret)
{
	BUF_MEM *bm = NULL;
	char *s = NULL;

	BIO_get_mem_ptr(b, &bm);
	if (bm) {
		s = malloc(bm->length + 1);
		if (s) {
			memcpy(s, bm->data, bm->length);
			s[bm->length] = '\0';
		}
		if (secret)
			OPENSSL_cleanse(bm->data, bm->length);
	}
	return s;
}

static char *cert_to_pem(X509 *x)
{
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);
	char *pem;

	if (n <= 0)
		return NULL;
	pem = crypto_pem_encode("CERTIFICATE", der, (size_t)n);
	OPENSSL_free(der);
	return pem;
}

static int64_t asn1_time_unix(const ASN1_TIME *t)
{
	struct tm tm;

	if (!ASN1_TIME_to_tm(t, &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

/* Matches a classified key with the CA key types. */
static int ca_key_type(EVP_PKEY *key, enum crypto_key_type *ret, char *err, size_t errlen)
{
	char alg[CRYPTO_KEY_ALG_LEN];
	bool rsa;

	if (crypto_pkey_classify(key, alg, &rsa) < 0 || crypto_key_type_from_name(alg, ret) < 0)
		return crypto_set_err(err, errlen, -EINVAL,
				      "the CA key type is not supported; accepted: %s",
				      crypto_key_type_list());
	return 0;
}

/* Fills in the pre-encoded parts and the signing state of a CA whose cert and key are set. */
static int ca_prepare(struct crypto_ca *ca, STACK_OF(X509) * chain, char *err, size_t errlen)
{
	const ASN1_OCTET_STRING *ski;
	unsigned char *p = NULL;
	uint32_t flags;
	struct crypto_der d;
	size_t mark, len, bits_len;
	const uint8_t *bits;
	char alg[CRYPTO_KEY_ALG_LEN];
	bool rsa;
	int n, r;

	r = ca_key_type(ca->key, &ca->key_type, err, errlen);
	if (r < 0)
		return r;
	if (X509_check_private_key(ca->cert, ca->key) != 1)
		return crypto_set_err(err, errlen, -EINVAL,
				      "the CA key does not match the CA certificate");
	flags = X509_get_extension_flags(ca->cert);
	if (!(flags & EXFLAG_CA) ||
	    ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(ca->cert) & KU_KEY_CERT_SIGN)))
		return crypto_set_err(err, errlen, -EINVAL,
				      "the certificate is not a CA certificate (basicConstraints "
				      "CA:TRUE and keyUsage keyCertSign are required)");

	n = i2d_X509_NAME(X509_get_subject_name(ca->cert), &p);
	if (n <= 0)
		return -EIO;
	ca->issuer = p;
	ca->issuer_len = (size_t)n;

	/* The authority key id must equal the CA's own subject key id for chain building. */
	ski = X509_get0_subject_key_id(ca->cert);
	if (ski && ski->length > 0 && ski->length <= 20) {
		len = (size_t)ski->length;
		memcpy(ca->key_id, ski->data, len);
	} else {
		p = NULL;
		n = i2d_PUBKEY(ca->key, &p);
		r = n > 0 ? crypto_spki_classify(p, (size_t)n, alg, &rsa, &bits, &bits_len) : -EIO;
		if (r >= 0 && !EVP_Digest(bits, bits_len, ca->key_id, NULL, EVP_sha1(), NULL))
			r = -EIO;
		OPENSSL_free(p);
		if (r < 0)
			return -EIO;
		len = 20;
	}
	crypto_der_init(&d, 64);
	mark = crypto_der_open(&d);
	crypto_der_raw(&d, (const uint8_t[]){ 0x06, 0x03, 0x55, 0x1d, 0x23 }, 5);
	size_t oct = crypto_der_open(&d), seq = crypto_der_open(&d);
	crypto_der_tlv(&d, 0x80, ca->key_id, len);
	crypto_der_close(&d, 0x30, seq);
	crypto_der_close(&d, 0x04, oct);
	crypto_der_close(&d, 0x30, mark);
	if (d.err || d.len > sizeof(ca->aki_ext)) {
		crypto_der_fini(&d);
		return -ENOMEM;
	}
	memcpy(ca->aki_ext, d.p, d.len);
	ca->aki_ext_len = d.len;
	crypto_der_fini(&d);

	switch (ca->key_type) {
	case CRYPTO_KEY_ECDSA_P256:
		ca->sigalg = sig_ecdsa_sha256;
		ca->sigalg_len = sizeof(sig_ecdsa_sha256);
		break;
	case CRYPTO_KEY_ECDSA_P384:
		ca->sigalg = sig_ecdsa_sha384;
		ca->sigalg_len = sizeof(sig_ecdsa_sha384);
		break;
	case CRYPTO_KEY_ED25519:
		ca->sigalg = crypto_alg_ed25519; /* the key and signature OIDs are one */
		ca->sigalg_len = CRYPTO_ALG_ED25519_LEN;
		break;
	default:
		ca->sigalg = sig_rsa_sha256;
		ca->sigalg_len = sizeof(sig_rsa_sha256);
		break;
	}
	if (ca->key_type != CRYPTO_KEY_ED25519) {
		ca->md = EVP_MD_fetch(
			NULL, ca->key_type == CRYPTO_KEY_ECDSA_P384 ? "SHA384" : "SHA256", NULL);
		ca->sign_tmpl = EVP_PKEY_CTX_new_from_pkey(NULL, ca->key, NULL);
		if (!ca->md || !ca->sign_tmpl || EVP_PKEY_sign_init(ca->sign_tmpl) <= 0 ||
		    EVP_PKEY_CTX_set_signature_md(ca->sign_tmpl, ca->md) <= 0)
			return -EIO;
	}
	if (crypto_keygen_prepare(ca) < 0)
		return -EIO;
	ca->not_after = asn1_time_unix(X509_get0_notAfter(ca->cert));

	ca->cert_pem = cert_to_pem(ca->cert);
	if (!ca->cert_pem)
		return -ENOMEM;
	len = strlen(ca->cert_pem);
	for (int i = 0; chain && i < sk_X509_num(chain); i++) {
		char *c = cert_to_pem(sk_X509_value(chain, i)), *b;

		b = c ? malloc(len + strlen(c) + 1) : NULL;
		if (b) {
			memcpy(b, ca->bundle_pem ? ca->bundle_pem : ca->cert_pem, len);
			strcpy(b + len, c);
			len += strlen(c);
		}
		free(c);
		free(ca->bundle_pem);
		ca->bundle_pem = b;
		if (!b)
			return -ENOMEM;
	}
	if (!ca->bundle_pem)
		ca->bundle_pem = strdup(ca->cert_pem);
	return ca->bundle_pem ? 0 : -ENOMEM;
}

struct crypto_ca *crypto_ca_free(struct crypto_ca *ca)
{
	if (ca) {
		EVP_PKEY_CTX_free(ca->sign_tmpl);
		EVP_PKEY_free(ca->ed25519_tmpl);
		EVP_MD_free(ca->md);
		EVP_PKEY_free(ca->key);
		X509_free(ca->cert);
		OPENSSL_free(ca->issuer);
		free(ca->cert_pem);
		free(ca->bundle_pem);
		free(ca);
	}
	return NULL;
}

int crypto_ca_sign(const struct crypto_ca *ca, const uint8_t *tbs, size_t n, uint8_t **ret_sig,
		   size_t *ret_len)
{
	unsigned char dg[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_MD_CTX *mctx = NULL;
	uint8_t *sig = NULL;
	size_t len = 0;
	int r = -EIO;

	if (ca->md) {
		/* Prehash, then sign the digest with a copy of the initialised context: no
		 * provider fetch per signature. */
		ctx = EVP_PKEY_CTX_dup(ca->sign_tmpl);
		if (!ctx || !EVP_Digest(tbs, n, dg, &dl, ca->md, NULL) ||
		    EVP_PKEY_sign(ctx, NULL, &len, dg, dl) <= 0 || !(sig = malloc(len)) ||
		    EVP_PKEY_sign(ctx, sig, &len, dg, dl) <= 0)
			goto out;
	} else {
		mctx = EVP_MD_CTX_new();
		if (!mctx ||
		    EVP_DigestSignInit_ex(mctx, NULL, NULL, NULL, NULL, ca->key, NULL) <= 0 ||
		    EVP_DigestSign(mctx, NULL, &len, tbs, n) <= 0 || !(sig = malloc(len)) ||
		    EVP_DigestSign(mctx, sig, &len, tbs, n) <= 0)
			goto out;
	}
	*ret_sig = sig;
	*ret_len = len;
	sig = NULL;
	r = 0;
out:
	free(sig);
	EVP_PKEY_CTX_free(ctx);
	EVP_MD_CTX_free(mctx);
	return r;
}

static int add_ext(X509 *crt, X509_REQ *req, STACK_OF(X509_EXTENSION) * *sk, int nid,
		   const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, crt, crt, req, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -EIO;
	ok = crt ? X509_add_ext(crt, ext, -1) : X509v3_add_ext(sk, ext, -1) != NULL;
	X509_EXTENSION_free(ext);
	return ok ? 0 : -EIO;
}

static int check_cn_days(const char **cn, int *days, char *err, size_t errlen)
{
	if (!*cn || !**cn)
		*cn = CRYPTO_CA_DEFAULT_CN;
	if (*days == 0)
		*days = CRYPTO_CA_DEFAULT_DAYS;
	if (strlen(*cn) > CRYPTO_CN_MAX)
		return crypto_set_err(err, errlen, -EINVAL,
				      "the CA subject CN is longer than %d bytes", CRYPTO_CN_MAX);
	if (*days < 1 || *days > 36500)
		return crypto_set_err(err, errlen, -EINVAL,
				      "the CA validity must be 1..36500 days, not %d", *days);
	return 0;
}

static const EVP_MD *sign_md(EVP_PKEY *key)
{
	if (EVP_PKEY_get_id(key) == EVP_PKEY_ED25519)
		return NULL;
	if (EVP_PKEY_get_id(key) == EVP_PKEY_EC && EVP_PKEY_get_bits(key) == 384)
		return EVP_sha384();
	return EVP_sha256();
}

static int ca_self_sign(X509 *crt, EVP_PKEY *key, const char *cn, int days)
{
	unsigned char serial[16];
	BIGNUM *bn;
	X509_NAME *name = X509_get_subject_name(crt);
	bool ok;

	if (RAND_bytes(serial, sizeof(serial)) != 1)
		return -EIO;
	serial[0] = (serial[0] & 0x7f) | 0x40;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(crt));
	BN_free(bn);
	if (!ok || !X509_set_version(crt, X509_VERSION_3) ||
	    !X509_gmtime_adj(X509_getm_notBefore(crt), -300) ||
	    !X509_gmtime_adj(X509_getm_notAfter(crt), (long)days * 86400) ||
	    !X509_set_pubkey(crt, key) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
					-1, 0) ||
	    !X509_set_issuer_name(crt, name))
		return -EIO;
	if (add_ext(crt, NULL, NULL, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
	    add_ext(crt, NULL, NULL, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
	    add_ext(crt, NULL, NULL, NID_subject_key_identifier, "hash") < 0)
		return -EIO;
	return X509_sign(crt, key, sign_md(key)) > 0 ? 0 : -EIO;
}

int crypto_ca_create(enum crypto_key_type kt, const char *cn, int days, struct crypto_ca **ret_ca,
		     char *err, size_t errlen)
{
	struct crypto_ca *ca;
	int r;

	r = check_cn_days(&cn, &days, err, errlen);
	if (r < 0)
		return r;
	if ((unsigned)kt >= CRYPTO_KEY_TYPE_COUNT)
		return crypto_set_err(err, errlen, -EINVAL, "unknown key type; accepted: %s",
				      crypto_key_type_list());
	ca = calloc(1, sizeof(*ca));
	if (!ca)
		return -ENOMEM;
	r = -EIO;
	ca->key = crypto_key_generate(kt);
	ca->cert = X509_new();
	if (ca->key && ca->cert)
		r = ca_self_sign(ca->cert, ca->key, cn, days);
	if (r >= 0)
		r = ca_prepare(ca, NULL, err, errlen);
	if (r < 0) {
		crypto_ca_free(ca);
		return r;
	}
	*ret_ca = ca;
	return 0;
}

/* Reads every certificate of a PEM text: the first is returned, the rest go to *ret_chain. */
static X509 *read_certs(const char *pem, STACK_OF(X509) * *ret_chain)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	STACK_OF(X509) *chain = sk_X509_new_null();
	X509 *first = NULL, *x;

	if (!b || !chain)
		goto fail;
	first = PEM_read_bio_X509(b, NULL, NULL, NULL);
	if (!first)
		goto fail;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
		if (!sk_X509_push(chain, x)) {
			X509_free(x);
			goto fail;
		}
	ERR_clear_error();
	BIO_free(b);
	*ret_chain = chain;
	return first;
fail:
	BIO_free(b);
	X509_free(first);
	sk_X509_pop_free(chain, X509_free);
	return NULL;
}

static EVP_PKEY *read_key(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	return k;
}

static int ca_load(const char *cert_pem, const char *key_pem, bool check_chain,
		   struct crypto_ca **ret_ca, char *err, size_t errlen)
{
	STACK_OF(X509) *chain = NULL;
	struct crypto_ca *ca;
	int r;

	if (!cert_pem || !key_pem)
		return crypto_set_err(err, errlen, -EINVAL,
				      "a CA certificate and key are required");
	ca = calloc(1, sizeof(*ca));
	if (!ca)
		return -ENOMEM;
	ca->cert = read_certs(cert_pem, &chain);
	ca->key = read_key(key_pem);
	if (!ca->cert)
		r = crypto_set_err(err, errlen, -EINVAL, "the CA certificate is not PEM X.509");
	else if (!ca->key)
		r = crypto_set_err(err, errlen, -EINVAL,
				   "the CA key is not an unencrypted PEM private key");
	else if (check_chain && sk_X509_num(chain) > 0 &&
		 X509_verify(ca->cert, X509_get0_pubkey(sk_X509_value(chain, 0))) != 1)
		r = crypto_set_err(
			err, errlen, -EINVAL,
			"the CA certificate is not signed by the issuer that follows it");
	else
		r = ca_prepare(ca, chain, err, errlen);
	sk_X509_pop_free(chain, X509_free);
	ERR_clear_error();
	if (r < 0) {
		crypto_ca_free(ca);
		return r;
	}
	*ret_ca = ca;
	return 0;
}

int crypto_ca_load(const char *cert_pem, const char *key_pem, struct crypto_ca **ret_ca, char *err,
		   size_t errlen)
{
	return ca_load(cert_pem, key_pem, false, ret_ca, err, errlen);
}

int crypto_ca_import_signed(const char *key_pem, const char *cert_pem, struct crypto_ca **ret_ca,
			    char *err, size_t errlen)
{
	return ca_load(cert_pem, key_pem, true, ret_ca, err, errlen);
}

int crypto_ca_csr(enum crypto_key_type kt, const char *cn, char **ret_key_pem, char **ret_csr_pem,
		  char *err, size_t errlen)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_REQ *req = NULL;
	EVP_PKEY *key = NULL;
	BIO *b = NULL;
	char *csr = NULL, *kpem = NULL;
	int days = 1, r;

	r = check_cn_days(&cn, &days, err, errlen);
	if (r < 0)
		return r;
	if ((unsigned)kt >= CRYPTO_KEY_TYPE_COUNT)
		return crypto_set_err(err, errlen, -EINVAL, "unknown key type; accepted: %s",
				      crypto_key_type_list());
	r = -EIO;
	key = crypto_key_generate(kt);
	req = X509_REQ_new();
	b = BIO_new(BIO_s_mem());
	if (!key || !req || !b || !X509_REQ_set_pubkey(req, key) ||
	    !X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
					(const unsigned char *)cn, -1, -1, 0) ||
	    add_ext(NULL, req, &exts, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
	    add_ext(NULL, req, &exts, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
	    !X509_REQ_add_extensions(req, exts) || X509_REQ_sign(req, key, sign_md(key)) <= 0 ||
	    !PEM_write_bio_X509_REQ(b, req))
		goto out;
	r = -ENOMEM;
	csr = bio_take(b, false);
	kpem = csr ? crypto_key_to_pem(key) : NULL;
	if (!kpem)
		goto out;
	*ret_csr_pem = csr;
	*ret_key_pem = kpem;
	csr = NULL;
	r = 0;
out:
	free(csr);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	BIO_free(b);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return r;
}

int crypto_ca_key_pem(const struct crypto_ca *ca, char **ret_key_pem)
{
	char *pem = crypto_key_to_pem(ca->key);

	if (!pem)
		return -EIO;
	*ret_key_pem = pem;
	return 0;
}

const char *crypto_ca_cert_pem(const struct crypto_ca *ca)
{
	return ca->cert_pem;
}

const char *crypto_ca_bundle_pem(const struct crypto_ca *ca)
{
	return ca->bundle_pem;
}

enum crypto_key_type crypto_ca_key_type(const struct crypto_ca *ca)
{
	return ca->key_type;
}

int64_t crypto_ca_not_after(const struct crypto_ca *ca)
{
	return ca->not_after;
}
