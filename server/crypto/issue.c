/*
 * Leaf certificate issuance, the hot path of the CA. The TBSCertificate is written as DER
 * from parts: per CA (pre-encoded once in issue-ca.c) the signature algorithm, the issuer
 * Name and the authorityKeyIdentifier; per certificate the serial, validity, subject CN,
 * the subject's SubjectPublicKeyInfo (copied byte for byte from the CSR, or encoded once
 * for a generated key), its key id and the SANs; the other extensions are constants.
 * This is deliberate: OpenSSL 3.0's stock X509 API re-encodes the public key through
 * the provider encoders on every certificate (about 110 us here), which alone costs more
 * than the ECDSA signature; with the template, issuance is dominated by the signature
 * (tools/bench/sign-bench measures both against `openssl speed`). test-issue.c checks
 * that the TBS is byte-identical to the one the stock API produces for the same fields.
 * The CSR is assumed checked (crypto_csr_check); its key is classified again here since
 * that costs nothing.
 */
#include "issue-int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "crypto.h"

/* The constant extensions of every leaf. */
static const uint8_t ext_basic_constraints[] = { 0x30, 0x0c, 0x06, 0x03, 0x55, 0x1d, 0x13,
						 0x01, 0x01, 0xff, 0x04, 0x02, 0x30, 0x00 };
static const uint8_t ext_key_usage[] = { 0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01,
					 0x01, 0xff, 0x04, 0x04, 0x03, 0x02, 0x07, 0x80 };
static const uint8_t ext_key_usage_rsa[] = { 0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01,
					     0x01, 0xff, 0x04, 0x04, 0x03, 0x02, 0x05, 0xa0 };
static const uint8_t ext_eku[] = { 0x30, 0x1d, 0x06, 0x03, 0x55, 0x1d, 0x25, 0x04, 0x16, 0x30, 0x14,
				   0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01, 0x06,
				   0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02 };
static const uint8_t ski_prefix[] = { 0x30, 0x1d, 0x06, 0x03, 0x55, 0x1d,
				      0x0e, 0x04, 0x16, 0x04, 0x14 };
static const uint8_t oid_san[] = { 0x06, 0x03, 0x55, 0x1d, 0x11 };
static const uint8_t oid_cn[] = { 0x06, 0x03, 0x55, 0x04, 0x03 };
static const uint8_t version_v3[] = { 0xa0, 0x03, 0x02, 0x01, 0x02 };

/* The subject key of the certificate being issued. */
struct subject_key {
	const uint8_t *spki; /* DER SubjectPublicKeyInfo: into csr_der, or gen_spki */
	size_t spki_len;
	uint8_t *csr_der;  /* the decoded CSR, or NULL */
	uint8_t *gen_spki; /* the generated key's SPKI, or NULL */
	char *key_pem;	   /* the generated key (PKCS#8), or NULL */
	char alg[CRYPTO_KEY_ALG_LEN];
	bool rsa;
	uint8_t key_id[SHA_DIGEST_LENGTH];
};

static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		int n = *p < 0x80	    ? 0 :
			(*p & 0xe0) == 0xc0 ? 1 :
			(*p & 0xf0) == 0xe0 ? 2 :
			(*p & 0xf8) == 0xf0 ? 3 :
					      -1;

		if (n < 0 || (*p < 0x20 && n == 0) || *p == 0x7f || (n == 1 && *p < 0xc2))
			return false;
		for (p++; n > 0; n--, p++)
			if ((*p & 0xc0) != 0x80)
				return false;
	}
	return true;
}

/* Finds the SubjectPublicKeyInfo inside a DER CertificationRequest. */
static int csr_spki(const uint8_t *der, size_t n, const uint8_t **ret_spki, size_t *ret_len)
{
	const uint8_t *p = der, *req, *info, *v;
	size_t req_len, info_len, vn;

	if (crypto_der_get(&p, der + n, 0x30, &req, &req_len) < 0 ||
	    crypto_der_get(&req, req + req_len, 0x30, &info, &info_len) < 0)
		return -EINVAL;
	p = info;
	if (crypto_der_get(&p, info + info_len, 0x02, &v, &vn) < 0 ||
	    crypto_der_get(&p, info + info_len, 0x30, &v, &vn) < 0 ||
	    crypto_der_get_tlv(&p, info + info_len, 0x30, ret_spki, ret_len) < 0)
		return -EINVAL;
	return 0;
}

static void subject_key_clear(struct subject_key *sk)
{
	free(sk->csr_der);
	free(sk->gen_spki);
	crypto_free_secret(sk->key_pem);
}

static int subject_key_get(const struct crypto_ca *ca, const struct crypto_issue_req *req,
			   struct subject_key *sk, char *err, size_t errlen)
{
	const uint8_t *spki, *bits;
	size_t len, bits_len;
	int r;

	if (req->csr_pem) {
		if (crypto_csr_pem_decode(req->csr_pem, &sk->csr_der, &len) < 0)
			return crypto_set_err(err, errlen, -EINVAL,
					      "csr_pem is not a PEM certificate request");
		if (csr_spki(sk->csr_der, len, &spki, &len) < 0)
			return crypto_set_err(err, errlen, -EINVAL,
					      "csr_pem is not a PEM certificate request");
		sk->spki = spki;
	} else {
		if ((unsigned)req->key_type >= CRYPTO_KEY_TYPE_COUNT)
			return crypto_set_err(err, errlen, -EINVAL,
					      "unknown key type; accepted: %s",
					      crypto_key_type_list());
		r = crypto_keygen_encoded(ca, req->key_type, &sk->gen_spki, &len, &sk->key_pem);
		if (r < 0)
			return r;
		sk->spki = sk->gen_spki;
	}
	sk->spki_len = len;
	if (crypto_spki_classify(sk->spki, len, sk->alg, &sk->rsa, &bits, &bits_len) < 0)
		return crypto_set_err(err, errlen, -EINVAL,
				      "the CSR key is not accepted (RSA >= 2048 bits, ECDSA "
				      "P-256 or P-384, or Ed25519)");
	SHA1(bits, bits_len, sk->key_id);
	return 0;
}

static int check_req(const struct crypto_issue_req *req, char *err, size_t errlen)
{
	uint8_t ip[16];

	if (!req->cn || !*req->cn || strlen(req->cn) > CRYPTO_CN_MAX || !utf8_valid(req->cn))
		return crypto_set_err(err, errlen, -EINVAL,
				      "the common name must be 1..%d bytes of UTF-8",
				      CRYPTO_CN_MAX);
	for (size_t i = 0; i < req->n_dns_names; i++) {
		const char *s = req->dns_names[i];
		size_t n = s ? strlen(s) : 0;

		if (n == 0 || n > 253)
			return crypto_set_err(err, errlen, -EINVAL, "invalid DNS name");
		for (size_t k = 0; k < n; k++)
			if (s[k] <= 0x20 || s[k] >= 0x7f)
				return crypto_set_err(err, errlen, -EINVAL,
						      "invalid DNS name \"%.253s\"", s);
	}
	for (size_t i = 0; i < req->n_ips; i++)
		if (!req->ips[i] || (inet_pton(AF_INET, req->ips[i], ip) != 1 &&
				     inet_pton(AF_INET6, req->ips[i], ip) != 1))
			return crypto_set_err(err, errlen, -EINVAL, "invalid IP address \"%.64s\"",
					      req->ips[i] ? req->ips[i] : "");
	if (req->ttl_seconds <= 0)
		return crypto_set_err(err, errlen, -EINVAL, "ttl_seconds must be positive");
	return 0;
}

static void put_san(struct crypto_der *d, const struct crypto_issue_req *req)
{
	size_t ext, oct, seq;
	uint8_t ip[16];

	if (!req->n_dns_names && !req->n_ips)
		return;
	ext = crypto_der_open(d);
	crypto_der_raw(d, oid_san, sizeof(oid_san));
	oct = crypto_der_open(d);
	seq = crypto_der_open(d);
	for (size_t i = 0; i < req->n_dns_names; i++)
		crypto_der_tlv(d, 0x82, req->dns_names[i], strlen(req->dns_names[i]));
	for (size_t i = 0; i < req->n_ips; i++) {
		if (inet_pton(AF_INET, req->ips[i], ip) == 1)
			crypto_der_tlv(d, 0x87, ip, 4);
		else if (inet_pton(AF_INET6, req->ips[i], ip) == 1)
			crypto_der_tlv(d, 0x87, ip, 16);
	}
	crypto_der_close(d, 0x30, seq);
	crypto_der_close(d, 0x04, oct);
	crypto_der_close(d, 0x30, ext);
}

/* Writes the TBSCertificate. */
static int put_tbs(struct crypto_der *d, const struct crypto_ca *ca,
		   const struct crypto_issue_req *req, const struct subject_key *sk,
		   const uint8_t *serial, size_t serial_len, int64_t nb, int64_t na)
{
	size_t tbs, m, m2, m3;

	tbs = crypto_der_open(d);
	crypto_der_raw(d, version_v3, sizeof(version_v3));
	crypto_der_uint(d, serial, serial_len);
	crypto_der_raw(d, ca->sigalg, ca->sigalg_len);
	crypto_der_raw(d, ca->issuer, ca->issuer_len);
	m = crypto_der_open(d);
	if (crypto_der_time(d, nb) < 0 || crypto_der_time(d, na) < 0)
		return -EINVAL;
	crypto_der_close(d, 0x30, m);
	m = crypto_der_open(d);
	m2 = crypto_der_open(d);
	m3 = crypto_der_open(d);
	crypto_der_raw(d, oid_cn, sizeof(oid_cn));
	crypto_der_tlv(d, 0x0c, req->cn, strlen(req->cn));
	crypto_der_close(d, 0x30, m3);
	crypto_der_close(d, 0x31, m2);
	crypto_der_close(d, 0x30, m);
	crypto_der_raw(d, sk->spki, sk->spki_len);
	m = crypto_der_open(d);
	m2 = crypto_der_open(d);
	crypto_der_raw(d, ext_basic_constraints, sizeof(ext_basic_constraints));
	if (sk->rsa)
		crypto_der_raw(d, ext_key_usage_rsa, sizeof(ext_key_usage_rsa));
	else
		crypto_der_raw(d, ext_key_usage, sizeof(ext_key_usage));
	crypto_der_raw(d, ext_eku, sizeof(ext_eku));
	crypto_der_raw(d, ski_prefix, sizeof(ski_prefix));
	crypto_der_raw(d, sk->key_id, sizeof(sk->key_id));
	crypto_der_raw(d, ca->aki_ext, ca->aki_ext_len);
	put_san(d, req);
	crypto_der_close(d, 0x30, m2);
	crypto_der_close(d, 0xa3, m);
	crypto_der_close(d, 0x30, tbs);
	return d->err ? -ENOMEM : 0;
}

/* 128 random bits with a nonzero first byte, so the hex form is always 32 digits. */
static int new_serial(uint8_t serial[16])
{
	do {
		if (RAND_bytes(serial, 16) != 1)
			return -EIO;
	} while (serial[0] == 0);
	return 0;
}

int crypto_issue(const struct crypto_ca *ca, const struct crypto_issue_req *req,
		 struct crypto_issued *ret, char *err, size_t errlen)
{
	struct subject_key sk = { 0 };
	struct crypto_issued out = { 0 };
	struct crypto_der d = { 0 };
	uint8_t serial[16], *sig = NULL, fp[SHA256_DIGEST_LENGTH], zero = 0;
	size_t sig_len, bits;
	int64_t nb, na;
	int r;

	r = check_req(req, err, errlen);
	if (r < 0)
		return r;
	nb = req->now ? req->now : (int64_t)time(NULL);
	na = nb + req->ttl_seconds;
	if (na > ca->not_after)
		return crypto_set_err(err, errlen, -EINVAL,
				      "ttl_seconds %lld outlives the issuing CA",
				      (long long)req->ttl_seconds);
	r = subject_key_get(ca, req, &sk, err, errlen);
	if (r < 0)
		goto out;
	r = new_serial(serial);
	if (r < 0)
		goto out;
	crypto_der_init(&d, 1024 + sk.spki_len);
	r = put_tbs(&d, ca, req, &sk, serial, sizeof(serial), nb, na);
	if (r == -EINVAL)
		crypto_set_err(err, errlen, r, "the validity is outside years 0..9999");
	if (r < 0)
		goto out;
	r = crypto_ca_sign(ca, d.p, d.len, &sig, &sig_len);
	if (r < 0)
		goto out;
	/* Certificate ::= SEQUENCE { tbs, signatureAlgorithm, BIT STRING signature } */
	crypto_der_raw(&d, ca->sigalg, ca->sigalg_len);
	bits = crypto_der_open(&d);
	crypto_der_raw(&d, &zero, 1);
	crypto_der_raw(&d, sig, sig_len);
	crypto_der_close(&d, 0x03, bits);
	crypto_der_close(&d, 0x30, 0);
	r = -ENOMEM;
	if (d.err)
		goto out;
	out.der = d.p;
	out.der_len = d.len;
	d.p = NULL;
	out.cert_pem = crypto_pem_encode("CERTIFICATE", out.der, out.der_len);
	out.chain_pem = strdup(ca->bundle_pem);
	out.key_pem = sk.key_pem;
	sk.key_pem = NULL;
	if (!out.cert_pem || !out.chain_pem)
		goto out;
	crypto_hex_encode(serial, sizeof(serial), out.serial);
	SHA256(out.der, out.der_len, fp);
	crypto_hex_encode(fp, sizeof(fp), out.fingerprint);
	memcpy(out.key_algorithm, sk.alg, sizeof(out.key_algorithm));
	out.not_before = nb;
	out.not_after = na;
	*ret = out;
	memset(&out, 0, sizeof(out));
	r = 0;
out:
	crypto_issued_clear(&out);
	crypto_der_fini(&d);
	free(sig);
	subject_key_clear(&sk);
	return r;
}

void crypto_issued_clear(struct crypto_issued *r)
{
	if (!r)
		return;
	free(r->der);
	free(r->cert_pem);
	free(r->chain_pem);
	crypto_free_secret(r->key_pem);
	memset(r, 0, sizeof(*r));
}
