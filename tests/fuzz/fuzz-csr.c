/*
 * libFuzzer target for CSR handling (server/crypto/issue-csr.c, and the hand-written DER
 * reader of issue.c / issue-der.c): a CSR is outside bytes. The input is used both as PEM
 * text and, base64-armoured, as the DER of a CERTIFICATE REQUEST, so the fuzzer reaches
 * the DER walk directly. Properties: crypto_csr_check never crashes or leaks and always
 * writes a message when it refuses; a CSR it accepts issues a certificate that parses and
 * verifies under the CA; crypto_issue on any other input refuses or signs, never crashes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "crypto.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const dns[] = { "api.example.com" };
static const char *const ips[] = { "10.0.0.7" };

static struct crypto_ca *fuzz_ca(void)
{
	static struct crypto_ca *ca;

	if (!ca && crypto_ca_create(CRYPTO_KEY_ECDSA_P256, NULL, 0, &ca, NULL, 0) < 0)
		abort();
	return ca;
}

static void try_csr(const char *pem)
{
	struct crypto_csr_info info;
	struct crypto_issue_req req = {
		.cn = "api",
		.dns_names = dns,
		.n_dns_names = 1,
		.ttl_seconds = 3600,
		.csr_pem = pem,
	};
	struct crypto_issued is;
	char err[256] = "";
	const unsigned char *p;
	X509 *x;
	EVP_PKEY *ca_pub;

	int checked = crypto_csr_check(pem, dns, 1, ips, 1, &info, err, sizeof(err));

	if (checked < 0 && !err[0])
		abort();
	if (crypto_issue(fuzz_ca(), &req, &is, err, sizeof(err)) < 0) {
		if (checked == 0)
			abort(); /* a checked CSR must issue */
		return;
	}
	p = is.der;
	x = d2i_X509(NULL, &p, (long)is.der_len);
	/* The CA certificate's key verifies what it signed. */
	{
		const char *ca_pem = crypto_ca_cert_pem(fuzz_ca());
		BIO *b = BIO_new_mem_buf(ca_pem, -1);
		X509 *cax = PEM_read_bio_X509(b, NULL, NULL, NULL);

		ca_pub = cax ? X509_get_pubkey(cax) : NULL;
		/* An unchecked CSR may carry a key that is not on its curve: then only the
		 * checked case must parse. */
		if ((x || checked == 0) && (!x || !ca_pub || X509_verify(x, ca_pub) != 1))
			abort();
		EVP_PKEY_free(ca_pub);
		X509_free(cax);
		BIO_free(b);
	}
	X509_free(x);
	crypto_issued_clear(&is);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char head[] = "-----BEGIN CERTIFICATE REQUEST-----\n",
			  tail[] = "\n-----END CERTIFICATE REQUEST-----\n";
	char *text, *pem;
	int n;

	text = fuzz_cstring(data, size, 8192);
	if (!text)
		return 0;
	try_csr(text);
	free(text);

	pem = malloc(sizeof(head) + 4 * (size / 3 + 1) + sizeof(tail) + 1);
	if (!pem)
		return 0;
	strcpy(pem, head);
	n = EVP_EncodeBlock((unsigned char *)pem + strlen(head), data, (int)size);
	strcpy(pem + strlen(head) + (size_t)n, tail);
	try_csr(pem);
	free(pem);
	return 0;
}
