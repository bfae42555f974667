/*
 * The fast CSR check (crypto_csr_check_ec): an ECDSA CSR (P-256 or P-384 key, signed with
 * ecdsa-with-SHA256/384/512) is walked with crypto_der_get, its self-signature verified
 * with the key's point on a prebuilt curve, and only its subject Name and subjectAltName
 * value are handed to OpenSSL's decoders. OpenSSL 3.0 decodes a CSR's public key through
 * its provider decoder framework, which costs ~140 us, more than the signature check
 * itself; this path costs about the ECDSA verification (issue 16).
 *
 * It only ever accepts: any other CSR (another key type or layout, several extension
 * requests, an msExtReq attribute) and every CSR that fails a check answers -EAGAIN, and
 * crypto_csr_check's full OpenSSL path decides with its own messages. So it never accepts
 * what the full path would refuse: the same signature (over the same bytes), key and
 * subjectAltName checks run, the names through the same crypto_csr_check_names.
 *
 * The curves are built once per process (pthread_once) and never change afterwards: an
 * immutable table, not state; building one costs ~14 us, more than the rest of the parse.
 * The legacy EC_KEY/ECDSA_verify calls are what skips the decoders, hence the deprecation
 * switch below.
 */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "issue-int.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/sha.h>

/* AlgorithmIdentifier of ecdsa-with-SHA256, -SHA384, -SHA512 (no parameters). */
static const uint8_t sigalg_ecdsa[] = { 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
					0x48, 0xce, 0x3d, 0x04, 0x03 /* 02, 03, 04 */ };
/* Attribute types: PKCS#9 extensionRequest and Microsoft's msExtReq. */
static const uint8_t oid_ext_req[] = { 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
				       0xf7, 0x0d, 0x01, 0x09, 0x0e };
static const uint8_t oid_ms_ext_req[] = { 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04,
					  0x01, 0x82, 0x37, 0x02, 0x01, 0x0e };
static const uint8_t oid_san[] = { 0x06, 0x03, 0x55, 0x1d, 0x11 };

static EC_GROUP *curves[2]; /* P-256, P-384; set once by build_curves */
static pthread_once_t curves_once = PTHREAD_ONCE_INIT;

static void build_curves(void)
{
	curves[0] = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	curves[1] = EC_GROUP_new_by_curve_name(NID_secp384r1);
}

const EC_GROUP *crypto_ec_curve(int curve)
{
	pthread_once(&curves_once, build_curves);
	return curve == 0 || curve == 1 ? curves[curve] : NULL;
}

static bool starts_with(const uint8_t *p, size_t n, const uint8_t *prefix, size_t len)
{
	return n >= len && !memcmp(p, prefix, len);
}

/*
 * The subjectAltName extension's value among a CSR's attributes (the content of its [0]
 * SET): *ret_san stays NULL when there is none. -EAGAIN for what the full path should see.
 */
static int find_san(const uint8_t *p, const uint8_t *end, const uint8_t **ret_san,
		    size_t *ret_len)
{
	const uint8_t *attr, *q, *vals, *exts, *ext, *e, *v;
	size_t attr_len, vals_len, exts_len, ext_len, v_len;
	bool seen_ext_req = false;

	*ret_san = NULL;
	while (p < end) {
		if (crypto_der_get(&p, end, 0x30, &attr, &attr_len) < 0)
			return -EAGAIN;
		if (starts_with(attr, attr_len, oid_ms_ext_req, sizeof(oid_ms_ext_req)))
			return -EAGAIN;
		if (!starts_with(attr, attr_len, oid_ext_req, sizeof(oid_ext_req)))
			continue;
		if (seen_ext_req)
			return -EAGAIN;
		seen_ext_req = true;
		q = attr + sizeof(oid_ext_req);
		/* values: a SET holding exactly one Extensions SEQUENCE */
		if (crypto_der_get(&q, attr + attr_len, 0x31, &vals, &vals_len) < 0 ||
		    q != attr + attr_len)
			return -EAGAIN;
		q = vals;
		if (crypto_der_get(&q, vals + vals_len, 0x30, &exts, &exts_len) < 0 ||
		    q != vals + vals_len)
			return -EAGAIN;
		for (q = exts; q < exts + exts_len;) {
			if (crypto_der_get(&q, exts + exts_len, 0x30, &ext, &ext_len) < 0)
				return -EAGAIN;
			if (!starts_with(ext, ext_len, oid_san, sizeof(oid_san)))
				continue;
			if (*ret_san)
				return -EAGAIN; /* two: the full path refuses it */
			e = ext + sizeof(oid_san);
			if (e < ext + ext_len && *e == 0x01 &&
			    crypto_der_get(&e, ext + ext_len, 0x01, &v, &v_len) < 0)
				return -EAGAIN;
			if (crypto_der_get(&e, ext + ext_len, 0x04, &v, &v_len) < 0 ||
			    e != ext + ext_len)
				return -EAGAIN;
			*ret_san = v;
			*ret_len = v_len;
		}
	}
	return 0;
}

/* Verifies sig over tbs with the P-256/P-384 point; 0 or -EAGAIN. */
static int verify(int curve, const uint8_t *point, size_t point_len, uint8_t hash_id,
		  const uint8_t *tbs, size_t tbs_len, const uint8_t *sig, size_t sig_len)
{
	uint8_t md[SHA512_DIGEST_LENGTH];
	size_t md_len;
	EC_KEY *k;
	int ok;

	if (hash_id == 0x02) {
		SHA256(tbs, tbs_len, md);
		md_len = SHA256_DIGEST_LENGTH;
	} else if (hash_id == 0x03) {
		SHA384(tbs, tbs_len, md);
		md_len = SHA384_DIGEST_LENGTH;
	} else {
		SHA512(tbs, tbs_len, md);
		md_len = SHA512_DIGEST_LENGTH;
	}
	k = EC_KEY_new();
	ok = k && curves[curve] && EC_KEY_set_group(k, curves[curve]) == 1 &&
	     EC_KEY_oct2key(k, point, point_len, NULL) == 1 &&
	     ECDSA_verify(0, md, (int)md_len, sig, (int)sig_len, k) == 1;
	EC_KEY_free(k);
	return ok ? 0 : -EAGAIN;
}

/* The checks on the DER of a CSR; 0 with *info set, or -EAGAIN. */
static int check_der(const uint8_t *der, size_t n, const char *const *allowed_dns, size_t n_dns,
		     const char *const *allowed_ips, size_t n_ips, struct crypto_csr_info *info)
{
	const uint8_t *p = der, *req, *tbs, *info_p, *v, *subject, *spki, *attrs = NULL, *alg,
		      *sig, *point, *san = NULL;
	size_t req_len, tbs_len, info_len, v_len, subject_len, spki_len, attrs_len = 0, alg_len,
		sig_len, point_len, san_len = 0;
	GENERAL_NAMES *names = NULL;
	X509_NAME *name = NULL;
	char err[256];
	bool rsa;
	int r;

	if (crypto_der_get(&p, der + n, 0x30, &req, &req_len) < 0 || p != der + n)
		return -EAGAIN;
	p = req;
	if (crypto_der_get_tlv(&p, req + req_len, 0x30, &tbs, &tbs_len) < 0 ||
	    crypto_der_get_tlv(&p, req + req_len, 0x30, &alg, &alg_len) < 0)
		return -EAGAIN;
	if (alg_len != sizeof(sigalg_ecdsa) + 1 || memcmp(alg, sigalg_ecdsa, sizeof(sigalg_ecdsa)) ||
	    alg[alg_len - 1] < 0x02 || alg[alg_len - 1] > 0x04)
		return -EAGAIN;
	if (crypto_der_get(&p, req + req_len, 0x03, &sig, &sig_len) < 0 || p != req + req_len ||
	    sig_len < 2 || sig[0] != 0)
		return -EAGAIN;
	/* certificationRequestInfo: version 0, subject, subjectPKInfo, [0] attributes */
	p = tbs;
	if (crypto_der_get(&p, tbs + tbs_len, 0x30, &info_p, &info_len) < 0)
		return -EAGAIN;
	p = info_p;
	if (crypto_der_get(&p, info_p + info_len, 0x02, &v, &v_len) < 0 || v_len != 1 || v[0] ||
	    crypto_der_get_tlv(&p, info_p + info_len, 0x30, &subject, &subject_len) < 0 ||
	    crypto_der_get_tlv(&p, info_p + info_len, 0x30, &spki, &spki_len) < 0)
		return -EAGAIN;
	if (p < info_p + info_len &&
	    crypto_der_get(&p, info_p + info_len, 0xa0, &attrs, &attrs_len) < 0)
		return -EAGAIN;
	if (p != info_p + info_len)
		return -EAGAIN;
	if (crypto_spki_classify(spki, spki_len, info->key_algorithm, &rsa, &point, &point_len) <
		    0 ||
	    strncmp(info->key_algorithm, "ecdsa-p", 7))
		return -EAGAIN;
	if (attrs && find_san(attrs, attrs + attrs_len, &san, &san_len) < 0)
		return -EAGAIN;
	pthread_once(&curves_once, build_curves);
	if (verify(strcmp(info->key_algorithm, "ecdsa-p256") ? 1 : 0, point, point_len,
		   alg[alg_len - 1], tbs, tbs_len, sig + 1, sig_len - 1) < 0)
		return -EAGAIN;
	p = subject;
	name = d2i_X509_NAME(NULL, &p, (long)subject_len);
	if (!name)
		return -EAGAIN;
	r = 0;
	if (san) {
		p = san;
		names = d2i_GENERAL_NAMES(NULL, &p, (long)san_len);
		r = names ? crypto_csr_check_names(names, allowed_dns, n_dns, allowed_ips, n_ips,
						   info, err, sizeof(err)) :
			    -EAGAIN;
	}
	if (r == 0)
		crypto_csr_copy_cn(name, info);
	GENERAL_NAMES_free(names);
	X509_NAME_free(name);
	return r == 0 ? 0 : -EAGAIN;
}

int crypto_csr_check_ec(const char *csr_pem, const char *const *allowed_dns, size_t n_dns,
			const char *const *allowed_ips, size_t n_ips,
			struct crypto_csr_info *ret_info)
{
	struct crypto_csr_info info = { 0 };
	uint8_t *der = NULL;
	size_t len;
	int r;

	if (crypto_csr_pem_decode(csr_pem, &der, &len) < 0)
		return -EAGAIN;
	r = check_der(der, len, allowed_dns, n_dns, allowed_ips, n_ips, &info);
	free(der);
	ERR_clear_error();
	if (r == 0)
		*ret_info = info;
	return r;
}
