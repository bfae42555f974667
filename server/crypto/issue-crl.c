/*
 * The CRL (crypto_crl_build): a v2 CRL signed by the issuing CA with the CRL number and
 * authority key id extensions and a reasonCode per entry. Built with the stock X509_CRL
 * API: a CRL is rebuilt on revocation and periodically, not per certificate, so speed
 * does not matter here. The caller supplies the CRL number and keeps it increasing.
 */
#include "issue-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

static ASN1_INTEGER *serial_from_hex(const char *hex)
{
	size_t n = hex ? strlen(hex) : 0;
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai;

	if (n == 0 || n > 40 || strspn(hex, "0123456789abcdefABCDEF") != n ||
	    !BN_hex2bn(&bn, hex) || BN_is_zero(bn)) {
		BN_free(bn);
		return NULL;
	}
	ai = BN_to_ASN1_INTEGER(bn, NULL);
	BN_free(bn);
	return ai;
}

static int add_entry(X509_CRL *crl, const struct crypto_revoked *rv, char *err, size_t errlen)
{
	ASN1_INTEGER *serial = serial_from_hex(rv->serial);
	ASN1_ENUMERATED *reason = NULL;
	X509_REVOKED *x = NULL;
	ASN1_TIME *t = NULL;
	int r = -EIO;

	if (!serial)
		return crypto_set_err(err, errlen, -EINVAL, "revoked serial \"%.48s\" is not hex",
				      rv->serial ? rv->serial : "");
	if (rv->reason < 0 || rv->reason > 10 || rv->reason == 7) {
		ASN1_INTEGER_free(serial);
		return crypto_set_err(
			err, errlen, -EINVAL,
			"revocation reason code %d of serial %.48s is not an RFC 5280 "
			"CRLReason",
			rv->reason, rv->serial);
	}
	x = X509_REVOKED_new();
	t = ASN1_TIME_set(NULL, (time_t)rv->time);
	if (!x || !t || !X509_REVOKED_set_serialNumber(x, serial) ||
	    !X509_REVOKED_set_revocationDate(x, t))
		goto out;
	/* RFC 5280 5.3.1: no reasonCode rather than unspecified (0). */
	if (rv->reason != 0) {
		reason = ASN1_ENUMERATED_new();
		if (!reason || !ASN1_ENUMERATED_set(reason, rv->reason) ||
		    X509_REVOKED_add1_ext_i2d(x, NID_crl_reason, reason, 0, 0) != 1)
			goto out;
	}
	if (!X509_CRL_add0_revoked(crl, x))
		goto out;
	x = NULL;
	r = 0;
out:
	X509_REVOKED_free(x);
	ASN1_ENUMERATED_free(reason);
	ASN1_TIME_free(t);
	ASN1_INTEGER_free(serial);
	return r;
}

static int crl_head(X509_CRL *crl, const struct crypto_ca *ca, uint64_t number, int64_t tu,
		    int64_t nu)
{
	const unsigned char *p = ca->aki_ext;
	X509_EXTENSION *aki = d2i_X509_EXTENSION(NULL, &p, (long)ca->aki_ext_len);
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	ASN1_TIME *t1 = ASN1_TIME_set(NULL, (time_t)tu), *t2 = ASN1_TIME_set(NULL, (time_t)nu);
	int r = -EIO;

	if (aki && num && t1 && t2 && X509_CRL_set_version(crl, X509_CRL_VERSION_2) &&
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->cert)) &&
	    X509_CRL_set1_lastUpdate(crl, t1) && X509_CRL_set1_nextUpdate(crl, t2) &&
	    ASN1_INTEGER_set_uint64(num, number) &&
	    X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) == 1 &&
	    X509_CRL_add_ext(crl, aki, -1))
		r = 0;
	X509_EXTENSION_free(aki);
	ASN1_INTEGER_free(num);
	ASN1_TIME_free(t1);
	ASN1_TIME_free(t2);
	return r;
}

int crypto_crl_build(const struct crypto_ca *ca, const struct crypto_revoked *revoked,
		     size_t n_revoked, uint64_t crl_number, int64_t this_update,
		     int64_t next_update, uint8_t **ret_der, size_t *ret_der_len, char **ret_pem,
		     char *err, size_t errlen)
{
	X509_CRL *crl;
	unsigned char *der = NULL;
	uint8_t *copy = NULL;
	char *pem = NULL;
	const EVP_MD *md;
	int n, r;

	if (this_update >= next_update)
		return crypto_set_err(err, errlen, -EINVAL,
				      "the CRL's next update must follow its this update");
	if (n_revoked && !revoked)
		return -EINVAL;
	crl = X509_CRL_new();
	if (!crl)
		return -ENOMEM;
	r = crl_head(crl, ca, crl_number, this_update, next_update);
	for (size_t i = 0; r == 0 && i < n_revoked; i++)
		r = add_entry(crl, &revoked[i], err, errlen);
	if (r < 0)
		goto out;
	r = -EIO;
	md = ca->key_type == CRYPTO_KEY_ED25519	   ? NULL :
	     ca->key_type == CRYPTO_KEY_ECDSA_P384 ? EVP_sha384() :
						     EVP_sha256();
	if (!X509_CRL_sort(crl) || X509_CRL_sign(crl, ca->key, md) <= 0)
		goto out;
	n = i2d_X509_CRL(crl, &der);
	if (n <= 0)
		goto out;
	r = -ENOMEM;
	copy = malloc((size_t)n);
	pem = ret_pem ? crypto_pem_encode("X509 CRL", der, (size_t)n) : NULL;
	if (!copy || (ret_pem && !pem))
		goto out;
	memcpy(copy, der, (size_t)n);
	if (ret_der) {
		*ret_der = copy;
		*ret_der_len = (size_t)n;
		copy = NULL;
	}
	if (ret_pem) {
		*ret_pem = pem;
		pem = NULL;
	}
	r = 0;
out:
	free(copy);
	free(pem);
	OPENSSL_free(der);
	X509_CRL_free(crl);
	ERR_clear_error();
	return r;
}
