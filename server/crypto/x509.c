/*
 * X.509 helpers beside issuance: wiping secrets, and reading back a certificate the CA
 * issued (crypto_cert_read), so that a stored certificate can be judged before it is used
 * again: which CA signed it, until when it is valid, and whether it carries the names it
 * should. Parsing is OpenSSL's; the input is this server's own stored certificate.
 */
#include "crypto.h"
#include "issue-int.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
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

static int64_t asn1_unix(const ASN1_TIME *t)
{
	struct tm tm;

	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

/* The serial as crypto_issue writes it: lowercase hex without leading zeros. */
static int serial_hex(const X509 *x, char *out, size_t len)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	int r = -ENOMEM;

	if (hex && strlen(hex) < len) {
		for (size_t i = 0; hex[i]; i++)
			out[i] = (char)(hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] + 32 : hex[i]);
		out[strlen(hex)] = '\0';
		r = 0;
	} else if (hex) {
		r = -EINVAL;
	}
	OPENSSL_free(hex);
	BN_free(bn);
	return r;
}

/* Whether the SANs of x are exactly the given names (each listed once). */
static bool same_names(const X509 *x, const char *const *dns, size_t n_dns, const char *const *ips,
		       size_t n_ips)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	struct crypto_csr_info info = { 0 };
	bool same;

	same = names &&
	       crypto_csr_check_names(names, dns, n_dns, ips, n_ips, &info, NULL, 0) == 0 &&
	       info.n_dns_names == n_dns && info.n_ips == n_ips;
	GENERAL_NAMES_free(names);
	return same;
}

int crypto_cert_read(const struct crypto_ca *ca, const char *cert_pem, const char *const *dns_names,
		     size_t n_dns, const char *const *ips, size_t n_ips,
		     struct crypto_cert_facts *ret)
{
	struct crypto_cert_facts f = { 0 };
	BIO *b;
	X509 *x;
	int r;

	if (!ca || !cert_pem || !ret)
		return -EINVAL;
	b = BIO_new_mem_buf(cert_pem, -1);
	if (!b)
		return -ENOMEM;
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	if (!x)
		return -EINVAL;
	r = serial_hex(x, f.serial, sizeof(f.serial));
	if (r >= 0) {
		f.not_before = asn1_unix(X509_get0_notBefore(x));
		f.not_after = asn1_unix(X509_get0_notAfter(x));
		f.signed_by_ca = X509_NAME_cmp(X509_get_issuer_name(x),
					       X509_get_subject_name(ca->cert)) == 0 &&
				 X509_verify(x, X509_get0_pubkey(ca->cert)) == 1;
		f.same_names = same_names(x, dns_names, n_dns, ips, n_ips);
		*ret = f;
	}
	X509_free(x);
	return r;
}
