/*
 * CSR checks before issuance (crypto_csr_check). A CSR is outside input: it is parsed by
 * OpenSSL, its self-signature verified, its key held to the accepted set and every
 * subjectAltName it requests held to the identity's names. The issued certificate takes
 * only the public key from the CSR (names come from the identity), so the SAN check exists
 * to refuse a request that asks for more than it may have, not to copy anything. Each
 * refusal is one line fit for INVALID_ARGUMENT.
 */
#include "issue-int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define CSR_PEM_MAX (64 * 1024)

/* A message for a key outside the accepted set. */
static int key_refusal(EVP_PKEY *pk, char *err, size_t errlen)
{
	char group[64] = "";

	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
	case EVP_PKEY_RSA_PSS:
		return crypto_set_err(err, errlen, -EINVAL,
				      "the CSR key is RSA-%d; RSA keys need at least 2048 bits",
				      EVP_PKEY_get_bits(pk));
	case EVP_PKEY_EC:
		EVP_PKEY_get_group_name(pk, group, sizeof(group), NULL);
		return crypto_set_err(err, errlen, -EINVAL,
				      "the CSR key uses curve %s; accepted curves: P-256, P-384",
				      group[0] ? group : "(unnamed)");
	default:
		return crypto_set_err(err, errlen, -EINVAL,
				      "the CSR key type %s is not accepted; accepted: RSA >= 2048 "
				      "bits, ECDSA P-256 or P-384, Ed25519",
				      OBJ_nid2sn(EVP_PKEY_get_base_id(pk)));
	}
}

static bool dns_allowed(const ASN1_IA5STRING *s, const char *const *allowed, size_t n)
{
	size_t len = (size_t)ASN1_STRING_length(s);
	const char *v = (const char *)ASN1_STRING_get0_data(s);

	if (memchr(v, '\0', len))
		return false;
	for (size_t i = 0; i < n; i++)
		if (allowed[i] && strlen(allowed[i]) == len && !strncasecmp(v, allowed[i], len))
			return true;
	return false;
}

static bool ip_allowed(const ASN1_OCTET_STRING *s, const char *const *allowed, size_t n)
{
	int len = ASN1_STRING_length(s);
	uint8_t ip[16];

	for (size_t i = 0; i < n; i++) {
		if (!allowed[i])
			continue;
		if ((len == 4 && inet_pton(AF_INET, allowed[i], ip) == 1) ||
		    (len == 16 && inet_pton(AF_INET6, allowed[i], ip) == 1))
			if (!memcmp(ip, ASN1_STRING_get0_data(s), (size_t)len))
				return true;
	}
	return false;
}

int crypto_csr_check_names(const GENERAL_NAMES *names, const char *const *allowed_dns,
			   size_t n_dns, const char *const *allowed_ips, size_t n_ips,
			   struct crypto_csr_info *info, char *err, size_t errlen)
{
	char text[INET6_ADDRSTRLEN];
	int r = 0;

	for (int i = 0; r == 0 && names && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		int len;

		if (g->type == GEN_DNS) {
			len = ASN1_STRING_length(g->d.dNSName);
			if (!dns_allowed(g->d.dNSName, allowed_dns, n_dns))
				r = crypto_set_err(
					err, errlen, -EINVAL,
					"the CSR requests DNS name \"%.*s\", which is not "
					"among the identity's names",
					len > 253 ? 253 : len,
					(const char *)ASN1_STRING_get0_data(g->d.dNSName));
			info->n_dns_names++;
		} else if (g->type == GEN_IPADD) {
			len = ASN1_STRING_length(g->d.iPAddress);
			if (!ip_allowed(g->d.iPAddress, allowed_ips, n_ips)) {
				if (!inet_ntop(len == 4 ? AF_INET : AF_INET6,
					       ASN1_STRING_get0_data(g->d.iPAddress), text,
					       sizeof(text)) ||
				    (len != 4 && len != 16))
					snprintf(text, sizeof(text), "(malformed)");
				r = crypto_set_err(err, errlen, -EINVAL,
						   "the CSR requests IP address %s, which is not "
						   "among the identity's addresses",
						   text);
			}
			info->n_ips++;
		} else {
			r = crypto_set_err(err, errlen, -EINVAL,
					   "the CSR requests a subjectAltName that is not a DNS "
					   "name or an IP address");
		}
	}
	return r;
}

static int check_sans(X509_REQ *req, const char *const *allowed_dns, size_t n_dns,
		      const char *const *allowed_ips, size_t n_ips, struct crypto_csr_info *info,
		      char *err, size_t errlen)
{
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
	GENERAL_NAMES *names = NULL;
	int r = 0, crit = 0;

	names = exts ? X509V3_get_d2i(exts, NID_subject_alt_name, &crit, NULL) : NULL;
	if (!names && crit == -2)
		r = crypto_set_err(err, errlen, -EINVAL,
				   "the CSR has more than one subjectAltName extension");
	if (r == 0)
		r = crypto_csr_check_names(names, allowed_dns, n_dns, allowed_ips, n_ips, info,
					   err, errlen);
	GENERAL_NAMES_free(names);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return r;
}

void crypto_csr_copy_cn(const X509_NAME *name, struct crypto_csr_info *info)
{
	int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	unsigned char *utf8 = NULL;
	int n;

	if (i < 0)
		return;
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
	if (n > 0 && n <= CRYPTO_CN_MAX && !memchr(utf8, '\0', (size_t)n))
		memcpy(info->cn, utf8, (size_t)n + 1);
	OPENSSL_free(utf8);
}

/* 0 when issuance's reader (crypto_csr_pem_decode) reads csr_pem. */
static int pem_decodes(const char *csr_pem)
{
	uint8_t *der = NULL;
	size_t len;
	int r = crypto_csr_pem_decode(csr_pem, &der, &len);

	free(der);
	return r;
}

int crypto_csr_check(const char *csr_pem, const char *const *allowed_dns, size_t n_allowed_dns,
		     const char *const *allowed_ips, size_t n_allowed_ips,
		     struct crypto_csr_info *ret_info, char *err, size_t errlen)
{
	struct crypto_csr_info info = { 0 };
	X509_REQ *req = NULL;
	EVP_PKEY *pk;
	BIO *b = NULL;
	bool rsa;
	int r;

	if (!csr_pem || !*csr_pem)
		return crypto_set_err(err, errlen, -EINVAL, "csr_pem is empty");
	if (strlen(csr_pem) > CSR_PEM_MAX)
		return crypto_set_err(err, errlen, -EINVAL, "csr_pem is larger than %d bytes",
				      CSR_PEM_MAX);
	/* the common case without OpenSSL's decoders; anything else is decided below */
	if (crypto_csr_check_ec(csr_pem, allowed_dns, n_allowed_dns, allowed_ips, n_allowed_ips,
				ret_info) == 0)
		return 0;
	/* what issuance decodes (crypto_pem_decode) is what is checked: OpenSSL's PEM reader
	 * also takes bytes after the BEGIN line's dashes, which issuance refuses */
	r = pem_decodes(csr_pem);
	if (r < 0)
		return r == -ENOMEM ? r :
				      crypto_set_err(err, errlen, -EINVAL,
						     "csr_pem is not a PEM certificate request");
	b = BIO_new_mem_buf(csr_pem, -1);
	if (!b)
		return -ENOMEM;
	req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
	pk = req ? X509_REQ_get0_pubkey(req) : NULL;
	if (!req || !pk)
		r = crypto_set_err(err, errlen, -EINVAL,
				   "csr_pem is not a PEM certificate request");
	else if (crypto_pkey_classify(pk, info.key_algorithm, &rsa) < 0)
		r = key_refusal(pk, err, errlen);
	else if (X509_REQ_verify(req, pk) != 1)
		r = crypto_set_err(err, errlen, -EINVAL,
				   "the CSR signature does not verify with its public key");
	else
		r = check_sans(req, allowed_dns, n_allowed_dns, allowed_ips, n_allowed_ips, &info,
			       err, errlen);
	if (r == 0) {
		crypto_csr_copy_cn(X509_REQ_get_subject_name(req), &info);
		*ret_info = info;
	}
	ERR_clear_error();
	X509_REQ_free(req);
	BIO_free(b);
	return r;
}
