/*
 * Unit tests for the issuing CA (issue*.c): every CA key type issues certificates that
 * verify (in-process and with `openssl verify`); the hand-written TBSCertificate is
 * byte-identical to the one the stock X509 API encodes for the same fields; issued
 * certificates carry the right SANs, key usage, EKU, basic constraints, validity, serial
 * and fingerprint; serials are unique; bad CSRs are refused with the right message; the
 * CRL lists revoked serials with their reasons and `openssl verify -crl_check` rejects a
 * revoked certificate; a CA signed by an external root works through its bundle.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto.h"
#include "issue-int.h"

static int64_t NOW; /* set by main: the tests issue at a fixed "now" */

static X509 *pem_cert(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

	BIO_free(b);
	return x;
}

static EVP_PKEY *pem_key(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);

	BIO_free(b);
	return k;
}

/* Verifies leaf against trusted root (PEM, first cert) with the untrusted certs of chain. */
static int verify_in_process(const char *root_pem, const char *chain_pem, const char *leaf_pem)
{
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	X509 *root = pem_cert(root_pem), *leaf = pem_cert(leaf_pem), *x;
	BIO *b = chain_pem ? BIO_new_mem_buf(chain_pem, -1) : NULL;
	int ok;

	while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
		sk_X509_push(untrusted, x);
	ERR_clear_error();
	assert_non_null(root);
	assert_non_null(leaf);
	X509_STORE_add_cert(st, root);
	X509_STORE_CTX_init(ctx, st, leaf, untrusted);
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), (time_t)NOW + 60);
	ok = X509_verify_cert(ctx);
	if (ok != 1)
		fprintf(stderr, "verify: %s\n",
			X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	sk_X509_pop_free(untrusted, X509_free);
	X509_free(root);
	X509_free(leaf);
	BIO_free(b);
	return ok;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Runs `openssl verify <args>` with the files given; returns its exit status. */
static int openssl_verify(const char *args)
{
	const char *openssl = getenv("OPENSSL");
	char cmd[1024];
	int st;

	snprintf(cmd, sizeof(cmd), "%s verify %s >/dev/null 2>&1", openssl ? openssl : "openssl",
		 args);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Builds a CSR for key with CN cn and subjectAltName san ("DNS:a,IP:1.2.3.4" or NULL). */
static char *make_csr(EVP_PKEY *key, const char *cn, const char *san)
{
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = NULL;
	BIO *b = BIO_new(BIO_s_mem());
	BUF_MEM *bm;
	char *s;
	int id = EVP_PKEY_get_base_id(key);

	X509_REQ_set_pubkey(req, key);
	X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
				   (const unsigned char *)cn, -1, -1, 0);
	if (san) {
		X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);

		assert_non_null(e);
		X509v3_add_ext(&exts, e, -1);
		X509_EXTENSION_free(e);
		X509_REQ_add_extensions(req, exts);
	}
	assert_true(X509_REQ_sign(req, key, id == EVP_PKEY_ED25519 ? NULL : EVP_sha256()) > 0);
	PEM_write_bio_X509_REQ(b, req);
	BIO_get_mem_ptr(b, &bm);
	s = strndup(bm->data, bm->length);
	BIO_free(b);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	return s;
}

static struct crypto_ca *new_ca(enum crypto_key_type kt, int days)
{
	struct crypto_ca *ca = NULL;
	char err[256] = "";

	assert_int_equal(crypto_ca_create(kt, NULL, days, &ca, err, sizeof(err)), 0);
	return ca;
}

static const char *const dns[] = { "api.example.com", "api.internal" };
static const char *const ips[] = { "10.0.0.7", "2001:db8::7" };

static struct crypto_issue_req base_req(void)
{
	struct crypto_issue_req r = {
		.cn = "api",
		.dns_names = dns,
		.n_dns_names = 2,
		.ips = ips,
		.n_ips = 2,
		.ttl_seconds = 30 * 86400,
		.key_type = CRYPTO_KEY_ECDSA_P256,
		.now = NOW,
	};
	return r;
}

/* Checks every field a leaf must carry. */
static void check_leaf(const struct crypto_issued *is, const struct crypto_ca *ca, bool rsa)
{
	const unsigned char *p = is->der;
	X509 *x = d2i_X509(NULL, &p, (long)is->der_len), *xp, *cax;
	ASN1_INTEGER *sn;
	BIGNUM *bn;
	char *hex;
	unsigned char md[32];
	char fp[65];

	assert_non_null(x);
	assert_ptr_equal(p, is->der + is->der_len);
	xp = pem_cert(is->cert_pem);
	assert_non_null(xp);
	assert_int_equal(X509_cmp(x, xp), 0);
	X509_free(xp);
	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	assert_int_equal(X509_check_host(x, "api.example.com", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(x, "api.internal", 0, 0, NULL), 1);
	assert_int_not_equal(X509_check_host(x, "evil.example.com", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(x, "10.0.0.7", 0), 1);
	assert_int_equal(X509_check_ip_asc(x, "2001:db8::7", 0), 1);
	assert_int_not_equal(X509_check_ip_asc(x, "10.0.0.8", 0), 1);
	assert_int_equal(X509_check_ca(x), 0);
	assert_true(X509_get_extension_flags(x) & EXFLAG_BCONS);
	assert_int_equal(X509_get_key_usage(x),
			 rsa ? (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT) : KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER | XKU_SSL_CLIENT);
	assert_non_null(X509_get0_subject_key_id(x));
	assert_non_null(X509_get0_authority_key_id(x));
	cax = pem_cert(crypto_ca_cert_pem(ca));
	assert_int_equal(X509_check_issued(cax, x), X509_V_OK);
	X509_free(cax);
	assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notBefore(x), (time_t)is->not_before), 0);
	assert_int_equal(ASN1_TIME_cmp_time_t(X509_get0_notAfter(x), (time_t)is->not_after), 0);
	sn = (ASN1_INTEGER *)X509_get0_serialNumber(x);
	bn = ASN1_INTEGER_to_BN(sn, NULL);
	assert_false(BN_is_negative(bn));
	hex = BN_bn2hex(bn);
	assert_int_equal(strlen(is->serial), CRYPTO_SERIAL_HEX_LEN);
	assert_int_equal(strcasecmp(hex, is->serial), 0);
	OPENSSL_free(hex);
	BN_free(bn);
	X509_digest(x, EVP_sha256(), md, NULL);
	for (int i = 0; i < 32; i++)
		sprintf(fp + 2 * i, "%02x", md[i]);
	assert_string_equal(fp, is->fingerprint);
	assert_string_equal(is->chain_pem, crypto_ca_bundle_pem(ca));
	X509_free(x);
}

static void test_issue_each_ca_type(void **state)
{
	for (int kt = 0; kt < CRYPTO_KEY_TYPE_COUNT; kt++) {
		struct crypto_issue_req req = base_req();
		struct crypto_issued is = { 0 };
		struct crypto_ca *ca, *again = NULL;
		char err[256] = "", *key = NULL;
		X509 *cax;
		EVP_PKEY *leaf_key;

		if (kt == CRYPTO_KEY_RSA_4096 || kt == CRYPTO_KEY_RSA_2048)
			continue; /* RSA-3072 covers RSA; keygen under valgrind is slow */
		ca = new_ca((enum crypto_key_type)kt, 0);
		assert_int_equal(crypto_ca_key_type(ca), kt);
		cax = pem_cert(crypto_ca_cert_pem(ca));
		assert_non_null(cax);
		assert_int_equal(X509_check_ca(cax), 1);
		assert_int_equal(X509_get_key_usage(cax), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
		assert_non_null(X509_get0_subject_key_id(cax));
		assert_true(X509_NAME_entry_count(X509_get_subject_name(cax)) == 1);
		assert_true(crypto_ca_not_after(ca) > NOW + 3649LL * 86400);
		X509_free(cax);

		assert_int_equal(crypto_issue(ca, &req, &is, err, sizeof(err)), 0);
		check_leaf(&is, ca, false);
		assert_non_null(is.key_pem);
		assert_string_equal(is.key_algorithm, "ecdsa-p256");
		leaf_key = pem_key(is.key_pem);
		assert_non_null(leaf_key);
		cax = pem_cert(is.cert_pem);
		assert_int_equal(X509_check_private_key(cax, leaf_key), 1);
		X509_free(cax);
		EVP_PKEY_free(leaf_key);
		assert_int_equal(verify_in_process(crypto_ca_cert_pem(ca), NULL, is.cert_pem), 1);

		/* Export, reload, issue again: the same CA. */
		assert_int_equal(crypto_ca_key_pem(ca, &key), 0);
		assert_int_equal(
			crypto_ca_load(crypto_ca_cert_pem(ca), key, &again, err, sizeof(err)), 0);
		key = crypto_free_secret(key);
		crypto_issued_clear(&is);
		assert_int_equal(crypto_issue(again, &req, &is, err, sizeof(err)), 0);
		assert_int_equal(verify_in_process(crypto_ca_cert_pem(ca), NULL, is.cert_pem), 1);
		crypto_issued_clear(&is);
		crypto_issued_clear(&is); /* idempotent */
		crypto_ca_free(again);
		crypto_ca_free(ca);
	}
	assert_null(crypto_ca_free(NULL));
	crypto_issued_clear(NULL);
}

/* The issued TBS equals the one the stock API encodes for the same fields. */
static void compare_with_stock(const struct crypto_ca *ca, const struct crypto_issued *is,
			       const char *ku, const char *ca_key_pem)
{
	const unsigned char *p = is->der, *tbs;
	X509 *mine = d2i_X509(NULL, &p, (long)is->der_len), *stock = X509_new();
	X509 *cax = pem_cert(crypto_ca_cert_pem(ca));
	EVP_PKEY *cakey = pem_key(ca_key_pem), *pub;
	const char *exts[][2] = {
		{ "basicConstraints", "critical,CA:FALSE" },
		{ "keyUsage", ku },
		{ "extendedKeyUsage", "serverAuth,clientAuth" },
		{ "subjectKeyIdentifier", "hash" },
		{ "authorityKeyIdentifier", "keyid:always" },
		{ "subjectAltName", "DNS:api.example.com,DNS:api.internal,IP:10.0.0.7,"
				    "IP:2001:db8::7" },
	};
	unsigned char *stock_tbs = NULL;
	long len;
	int tag, cls, n, kt = crypto_ca_key_type(ca);
	X509V3_CTX ctx;

	assert_non_null(mine);
	pub = X509_get_pubkey(mine);
	X509_set_version(stock, X509_VERSION_3);
	X509_set_serialNumber(stock, X509_get_serialNumber(mine));
	X509_set_issuer_name(stock, X509_get_subject_name(cax));
	X509_set1_notBefore(stock, X509_get0_notBefore(mine));
	X509_set1_notAfter(stock, X509_get0_notAfter(mine));
	X509_NAME_add_entry_by_txt(X509_get_subject_name(stock), "CN", MBSTRING_UTF8,
				   (const unsigned char *)"api", -1, -1, 0);
	X509_set_pubkey(stock, pub);
	X509V3_set_ctx(&ctx, cax, stock, NULL, NULL, 0);
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		X509_EXTENSION *e = X509V3_EXT_conf(NULL, &ctx, exts[i][0], exts[i][1]);

		assert_non_null(e);
		X509_add_ext(stock, e, -1);
		X509_EXTENSION_free(e);
	}
	assert_true(X509_sign(stock, cakey,
			      kt == CRYPTO_KEY_ED25519	  ? NULL :
			      kt == CRYPTO_KEY_ECDSA_P384 ? EVP_sha384() :
							    EVP_sha256()) > 0);
	n = i2d_re_X509_tbs(stock, &stock_tbs);
	assert_true(n > 0);

	/* The raw TBS of ours: the first element inside the Certificate SEQUENCE. */
	p = is->der;
	assert_int_equal(ASN1_get_object(&p, &len, &tag, &cls, (long)is->der_len) & 0x80, 0);
	tbs = p;
	assert_int_equal(ASN1_get_object(&p, &len, &tag, &cls, (long)is->der_len) & 0x80, 0);
	len += p - tbs;
	assert_int_equal(len, n);
	assert_memory_equal(tbs, stock_tbs, (size_t)n);
	/* The outer signature algorithm matches too (OpenSSL verifies it equals the TBS's). */
	assert_int_equal(X509_verify(mine, cakey), 1);

	OPENSSL_free(stock_tbs);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(cakey);
	X509_free(cax);
	X509_free(stock);
	X509_free(mine);
}

static void test_tbs_matches_stock_api(void **state)
{
	static const enum crypto_key_type cas[] = { CRYPTO_KEY_ECDSA_P256, CRYPTO_KEY_ED25519,
						    CRYPTO_KEY_ECDSA_P384 };

	for (size_t i = 0; i < sizeof(cas) / sizeof(cas[0]); i++) {
		struct crypto_ca *ca = new_ca(cas[i], 36500);
		struct crypto_issue_req req = base_req();
		struct crypto_issued is = { 0 };
		char err[256], *cakey = NULL;

		assert_int_equal(crypto_ca_key_pem(ca, &cakey), 0);
		/* UTCTime, then GeneralizedTime past 2049 */
		assert_int_equal(crypto_issue(ca, &req, &is, err, sizeof(err)), 0);
		compare_with_stock(ca, &is, "critical,digitalSignature", cakey);
		crypto_issued_clear(&is);
		req.ttl_seconds = 30LL * 365 * 86400;
		assert_int_equal(crypto_issue(ca, &req, &is, err, sizeof(err)), 0);
		compare_with_stock(ca, &is, "critical,digitalSignature", cakey);
		crypto_issued_clear(&is);
		if (i == 0) {
			/* An RSA subject key adds keyEncipherment. */
			req.key_type = CRYPTO_KEY_RSA_2048;
			req.ttl_seconds = 3600;
			assert_int_equal(crypto_issue(ca, &req, &is, err, sizeof(err)), 0);
			assert_string_equal(is.key_algorithm, "rsa-2048");
			check_leaf(&is, ca, true);
			compare_with_stock(ca, &is, "critical,digitalSignature,keyEncipherment",
					   cakey);
			crypto_issued_clear(&is);
		}
		crypto_free_secret(cakey);
		crypto_ca_free(ca);
	}
}

static void test_openssl_cli_verify(void **state)
{
	struct crypto_ca *ca = new_ca(CRYPTO_KEY_ECDSA_P256, 0);
	struct crypto_issue_req req = base_req();
	struct crypto_issued is = { 0 };
	char dir[] = "/tmp/test-issue-XXXXXX", path[4][256], args[1200], err[256];

	req.now = 0; /* the CLI verifies at the current time */
	assert_non_null(mkdtemp(dir));
	snprintf(path[0], sizeof(path[0]), "%s/ca.pem", dir);
	snprintf(path[1], sizeof(path[1]), "%s/leaf.pem", dir);
	snprintf(path[2], sizeof(path[2]), "%s/other-ca.pem", dir);
	assert_int_equal(crypto_issue(ca, &req, &is, err, sizeof(err)), 0);
	write_file(path[0], crypto_ca_bundle_pem(ca));
	write_file(path[1], is.cert_pem);
	snprintf(args, sizeof(args), "-CAfile %s -purpose sslserver %s", path[0], path[1]);
	assert_int_equal(openssl_verify(args), 0);
	snprintf(args, sizeof(args), "-CAfile %s -purpose sslclient %s", path[0], path[1]);
	assert_int_equal(openssl_verify(args), 0);
	/* Against another CA of the same subject: refused (the check can fail). */
	{
		struct crypto_ca *other = new_ca(CRYPTO_KEY_ECDSA_P256, 0);

		write_file(path[2], crypto_ca_cert_pem(other));
		snprintf(args, sizeof(args), "-CAfile %s %s", path[2], path[1]);
		assert_int_not_equal(openssl_verify(args), 0);
		crypto_ca_free(other);
	}
	for (int i = 0; i < 3; i++)
		unlink(path[i]);
	rmdir(dir);
	crypto_issued_clear(&is);
	crypto_ca_free(ca);
}

static int cmp_serial(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static void test_serials_unique(void **state)
{
	enum {
		N = 1000
	};
	struct crypto_ca *ca = new_ca(CRYPTO_KEY_ECDSA_P256, 0);
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char *csr = make_csr(key, "api", "DNS:api.example.com");
	char(*serials)[CRYPTO_SERIAL_HEX_LEN + 1] = calloc(N, sizeof(*serials));
	struct crypto_issue_req req = base_req();
	char err[256];

	req.csr_pem = csr;
	for (int i = 0; i < N; i++) {
		struct crypto_issued is = { 0 };

		assert_int_equal(crypto_issue(ca, &req, &is, err, sizeof(err)), 0);
		assert_null(is.key_pem);
		assert_int_equal(strlen(is.serial), CRYPTO_SERIAL_HEX_LEN);
		memcpy(serials[i], is.serial, sizeof(serials[i]));
		crypto_issued_clear(&is);
	}
	qsort(serials, N, sizeof(*serials), cmp_serial);
	for (int i = 1; i < N; i++)
		assert_string_not_equal(serials[i - 1], serials[i]);
	free(serials);
	free(csr);
	EVP_PKEY_free(key);
	crypto_ca_free(ca);
}

/* A CSR that passes, and one certificate from it carrying the CSR's key. */
static void test_csr_ok(void **state)
{
	struct crypto_ca *ca = new_ca(CRYPTO_KEY_ECDSA_P256, 0);
	static const char *const keys[][2] = { { "EC", "P-256" },
					       { "EC", "P-384" },
					       { "ED25519", NULL } };

	for (size_t i = 0; i < 3; i++) {
		EVP_PKEY *key = keys[i][1] ? EVP_PKEY_Q_keygen(NULL, NULL, keys[i][0], keys[i][1]) :
					     EVP_PKEY_Q_keygen(NULL, NULL, keys[i][0]);
		char *csr =
			make_csr(key, "api", "DNS:API.example.com,IP:10.0.0.7,IP:2001:db8:0::7");
		struct crypto_csr_info info;
		struct crypto_issue_req req = base_req();
		struct crypto_issued is = { 0 };
		char err[256] = "";
		X509 *x;

		assert_int_equal(crypto_csr_check(csr, dns, 2, ips, 2, &info, err, sizeof(err)), 0);
		assert_string_equal(info.key_algorithm, i == 0 ? "ecdsa-p256" :
							i == 1 ? "ecdsa-p384" :
								 "ed25519");
		assert_string_equal(info.cn, "api");
		assert_int_equal(info.n_dns_names, 1);
		assert_int_equal(info.n_ips, 2);
		req.csr_pem = csr;
		assert_int_equal(crypto_issue(ca, &req, &is, err, sizeof(err)), 0);
		assert_string_equal(is.key_algorithm, info.key_algorithm);
		check_leaf(&is, ca, false);
		x = pem_cert(is.cert_pem);
		assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), key), 1);
		assert_int_equal(verify_in_process(crypto_ca_cert_pem(ca), NULL, is.cert_pem), 1);
		X509_free(x);
		crypto_issued_clear(&is);
		free(csr);
		EVP_PKEY_free(key);
	}
	crypto_ca_free(ca);
}

static void expect_csr_refused(const char *csr, const char *message)
{
	struct crypto_csr_info info;
	char err[256] = "";

	assert_int_equal(crypto_csr_check(csr, dns, 2, ips, 2, &info, err, sizeof(err)), -EINVAL);
	if (!strstr(err, message))
		fail_msg("expected \"%s\" in \"%s\"", message, err);
}

static void test_csr_refused(void **state)
{
	EVP_PKEY *p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *k1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
	EVP_PKEY *rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	char *csr, *bad;
	unsigned char *der = NULL;
	int n;
	X509_REQ *req;
	BIO *b;
	BUF_MEM *bm;

	expect_csr_refused("garbage", "csr_pem is not a PEM certificate request");
	expect_csr_refused("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE "
			   "REQUEST-----\n",
			   "csr_pem is not a PEM certificate request");
	expect_csr_refused("", "csr_pem is empty");

	csr = make_csr(rsa1024, "api", NULL);
	expect_csr_refused(csr, "the CSR key is RSA-1024; RSA keys need at least 2048 bits");
	free(csr);
	csr = make_csr(k1, "api", NULL);
	expect_csr_refused(csr, "curve secp256k1; accepted curves: P-256, P-384");
	free(csr);
	csr = make_csr(p256, "api", "DNS:api.example.com,DNS:evil.example.com");
	expect_csr_refused(csr, "DNS name \"evil.example.com\", which is not among the identity");
	free(csr);
	csr = make_csr(p256, "api", "IP:10.0.0.8");
	expect_csr_refused(csr, "IP address 10.0.0.8, which is not among");
	free(csr);
	csr = make_csr(p256, "api", "email:a@example.com");
	expect_csr_refused(csr, "not a DNS name or an IP address");
	free(csr);
	/* Bytes after the BEGIN line's dashes: OpenSSL's PEM reader takes them, issuance's
	 * reader does not, so the check refuses them too (for every key type: Ed25519 CSRs
	 * take OpenSSL's path; a fuzz-csr find). */
	{
		EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		EVP_PKEY *keys[] = { p256, ed };

		for (size_t i = 0; i < 2; i++) {
			char *nl;

			csr = make_csr(keys[i], "api", NULL);
			nl = strchr(csr, '\n');
			bad = malloc(strlen(csr) + 5);
			memcpy(bad, csr, (size_t)(nl - csr));
			strcpy(bad + (nl - csr), "\xff\xff\xff\xff");
			strcat(bad, nl);
			expect_csr_refused(bad, "csr_pem is not a PEM certificate request");
			free(bad);
			free(csr);
		}
		EVP_PKEY_free(ed);
	}

	/* A flipped bit in the signature. */
	csr = make_csr(p256, "api", "DNS:api.example.com");
	b = BIO_new_mem_buf(csr, -1);
	req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
	BIO_free(b);
	n = i2d_X509_REQ(req, &der);
	der[n - 5] ^= 0x01;
	X509_REQ_free(req);
	{
		const unsigned char *p = der;

		req = d2i_X509_REQ(NULL, &p, n);
	}
	assert_non_null(req);
	b = BIO_new(BIO_s_mem());
	PEM_write_bio_X509_REQ(b, req);
	BIO_get_mem_ptr(b, &bm);
	bad = strndup(bm->data, bm->length);
	expect_csr_refused(bad, "the CSR signature does not verify");
	free(bad);
	BIO_free(b);
	X509_REQ_free(req);
	OPENSSL_free(der);
	free(csr);

	EVP_PKEY_free(p256);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(rsa1024);
}

/*
 * The fast ECDSA path (issue-csr-ec.c) takes the common CSRs itself, with the same info as
 * the full path, and hands every other CSR (another key type, a refusal) to the full path.
 */
static void test_csr_fast_path(void **state)
{
	static const char *const curves[] = { "P-256", "P-384" };
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	struct crypto_csr_info info;
	char *csr;

	for (size_t i = 0; i < 2; i++) {
		EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curves[i]);

		csr = make_csr(key, "api", "DNS:API.example.com,IP:10.0.0.7,IP:2001:db8:0::7");
		memset(&info, 0xff, sizeof(info));
		assert_int_equal(crypto_csr_check_ec(csr, dns, 2, ips, 2, &info), 0);
		assert_string_equal(info.key_algorithm, i ? "ecdsa-p384" : "ecdsa-p256");
		assert_string_equal(info.cn, "api");
		assert_int_equal(info.n_dns_names, 1);
		assert_int_equal(info.n_ips, 2);
		free(csr);
		csr = make_csr(key, "api", NULL); /* no extension request at all */
		assert_int_equal(crypto_csr_check_ec(csr, dns, 2, ips, 2, &info), 0);
		assert_int_equal(info.n_dns_names + info.n_ips, 0);
		free(csr);
		/* refusals are left to the full path, which words them */
		csr = make_csr(key, "api", "DNS:evil.example.com");
		assert_int_equal(crypto_csr_check_ec(csr, dns, 2, ips, 2, &info), -EAGAIN);
		free(csr);
		csr = make_csr(key, "api", "email:a@example.com");
		assert_int_equal(crypto_csr_check_ec(csr, dns, 2, ips, 2, &info), -EAGAIN);
		free(csr);
		EVP_PKEY_free(key);
	}
	csr = make_csr(ed, "api", "DNS:api.example.com");
	assert_int_equal(crypto_csr_check_ec(csr, dns, 2, ips, 2, &info), -EAGAIN);
	free(csr);
	EVP_PKEY_free(ed);
}

static void test_issue_refused(void **state)
{
	struct crypto_ca *ca = new_ca(CRYPTO_KEY_ECDSA_P256, 1);
	struct crypto_issue_req req = base_req();
	struct crypto_issued is = { 0 };
	const char *bad_ip[] = { "10.0.0.300" };
	char err[256] = "";

	req.now = 0;
	req.cn = "";
	assert_int_equal(crypto_issue(ca, &req, &is, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "common name"));
	req.cn = "a-name-that-is-definitely-longer-than-sixty-four-bytes-for-the-cn-field";
	assert_int_equal(crypto_issue(ca, &req, &is, err, sizeof(err)), -EINVAL);
	req.cn = "api";
	req.ttl_seconds = 0;
	assert_int_equal(crypto_issue(ca, &req, &is, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "ttl_seconds"));
	req.ttl_seconds = 3 * 86400; /* the CA lives one day */
	assert_int_equal(crypto_issue(ca, &req, &is, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "outlives the issuing CA"));
	req.ttl_seconds = 3600;
	req.ips = bad_ip;
	req.n_ips = 1;
	assert_int_equal(crypto_issue(ca, &req, &is, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "10.0.0.300"));
	req.n_ips = 0;
	req.csr_pem = "nonsense";
	assert_int_equal(crypto_issue(ca, &req, &is, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "csr_pem is not a PEM certificate request");
	req.csr_pem = NULL;
	req.key_type = CRYPTO_KEY_TYPE_COUNT;
	assert_int_equal(crypto_issue(ca, &req, &is, err, sizeof(err)), -EINVAL);
	req.key_type = CRYPTO_KEY_ED25519;
	assert_int_equal(crypto_issue(ca, &req, &is, err, sizeof(err)), 0);
	assert_string_equal(is.key_algorithm, "ed25519");
	crypto_issued_clear(&is);
	crypto_ca_free(ca);
}

static void test_crl(void **state)
{
	struct crypto_ca *ca = new_ca(CRYPTO_KEY_ECDSA_P256, 0);
	struct crypto_issue_req req = base_req();
	struct crypto_issued is[3] = { 0 };
	struct crypto_revoked rv[2];
	char dir[] = "/tmp/test-issue-XXXXXX", path[4][256], args[1200], err[256];
	uint8_t *der = NULL;
	size_t der_len;
	char *pem = NULL;
	const unsigned char *p;
	X509_CRL *crl;
	int64_t now = time(NULL);

	req.now = 0;
	for (int i = 0; i < 3; i++)
		assert_int_equal(crypto_issue(ca, &req, &is[i], err, sizeof(err)), 0);
	rv[0] = (struct crypto_revoked){ is[0].serial, now - 10, 1 /* keyCompromise */ };
	rv[1] = (struct crypto_revoked){ is[1].serial, now - 5, 0 /* unspecified */ };
	assert_int_equal(crypto_crl_build(ca, rv, 2, 7, now - 60, now + 86400, &der, &der_len, &pem,
					  err, sizeof(err)),
			 0);
	p = der;
	crl = d2i_X509_CRL(NULL, &p, (long)der_len);
	assert_non_null(crl);
	assert_int_equal(X509_CRL_get_version(crl), X509_CRL_VERSION_2);
	assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 2);
	for (int i = 0; i < 2; i++) {
		X509_REVOKED *x = sk_X509_REVOKED_value(X509_CRL_get_REVOKED(crl), i);
		BIGNUM *bn = ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(x), NULL);
		char *hex = BN_bn2hex(bn);
		int which = !strcasecmp(hex, is[0].serial) ? 0 : 1, crit = 0;
		ASN1_ENUMERATED *reason = X509_REVOKED_get_ext_d2i(x, NID_crl_reason, &crit, NULL);

		assert_int_equal(strcasecmp(hex, is[which].serial), 0);
		if (which == 0) {
			assert_non_null(reason);
			assert_int_equal(ASN1_ENUMERATED_get(reason), 1);
		} else {
			assert_null(reason); /* unspecified: no reasonCode (RFC 5280 5.3.1) */
		}
		assert_int_equal(ASN1_TIME_cmp_time_t(X509_REVOKED_get0_revocationDate(x),
						      (time_t)rv[which].time),
				 0);
		ASN1_ENUMERATED_free(reason);
		OPENSSL_free(hex);
		BN_free(bn);
	}
	{
		ASN1_INTEGER *num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
		AUTHORITY_KEYID *akid =
			X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, NULL, NULL);
		X509 *cax = pem_cert(crypto_ca_cert_pem(ca));
		EVP_PKEY *pub = X509_get_pubkey(cax);

		assert_int_equal(ASN1_INTEGER_get(num), 7);
		assert_non_null(akid);
		assert_int_equal(ASN1_OCTET_STRING_cmp(akid->keyid, X509_get0_subject_key_id(cax)),
				 0);
		assert_int_equal(X509_CRL_verify(crl, pub), 1);
		EVP_PKEY_free(pub);
		X509_free(cax);
		AUTHORITY_KEYID_free(akid);
		ASN1_INTEGER_free(num);
	}
	X509_CRL_free(crl);

	/* openssl verify -crl_check: the revoked one fails, the third passes. */
	assert_non_null(mkdtemp(dir));
	for (int i = 0; i < 4; i++)
		snprintf(path[i], sizeof(path[i]), "%s/%d.pem", dir, i);
	write_file(path[0], crypto_ca_bundle_pem(ca));
	write_file(path[1], pem);
	write_file(path[2], is[0].cert_pem);
	write_file(path[3], is[2].cert_pem);
	snprintf(args, sizeof(args), "-crl_check -CAfile %s -CRLfile %s %s", path[0], path[1],
		 path[2]);
	assert_int_not_equal(openssl_verify(args), 0);
	snprintf(args, sizeof(args), "-crl_check -CAfile %s -CRLfile %s %s", path[0], path[1],
		 path[3]);
	assert_int_equal(openssl_verify(args), 0);
	for (int i = 0; i < 4; i++)
		unlink(path[i]);
	rmdir(dir);

	/* Refusals. */
	rv[0].serial = "xyz";
	assert_int_equal(crypto_crl_build(ca, rv, 1, 8, now, now + 60, &der, &der_len, NULL, err,
					  sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "xyz"));
	rv[0].serial = is[0].serial;
	rv[0].reason = 7;
	assert_int_equal(
		crypto_crl_build(ca, rv, 1, 8, now, now + 60, NULL, NULL, NULL, err, sizeof(err)),
		-EINVAL);
	assert_int_equal(
		crypto_crl_build(ca, NULL, 0, 8, now, now, NULL, NULL, NULL, err, sizeof(err)),
		-EINVAL);
	free(der);
	free(pem);
	for (int i = 0; i < 3; i++)
		crypto_issued_clear(&is[i]);
	crypto_ca_free(ca);
}

/* crypto_ca_csr, signed by an external root, then crypto_ca_import_signed. */
static void test_external_root(void **state)
{
	struct crypto_ca *root = new_ca(CRYPTO_KEY_ECDSA_P384, 0), *ca = NULL;
	char *key = NULL, *csr = NULL, *root_key = NULL, err[256] = "", *bundle;
	struct crypto_issue_req req = base_req();
	struct crypto_issued is = { 0 };
	X509_REQ *xr;
	X509 *x = X509_new(), *rootx = pem_cert(crypto_ca_cert_pem(root));
	EVP_PKEY *rk;
	BIO *b;
	BUF_MEM *bm;
	X509V3_CTX ctx;
	STACK_OF(X509_EXTENSION) * exts;

	assert_int_equal(crypto_ca_csr(CRYPTO_KEY_ECDSA_P256, "trstctl Sub CA", &key, &csr, err,
				       sizeof(err)),
			 0);
	assert_int_equal(crypto_ca_key_pem(root, &root_key), 0);
	rk = pem_key(root_key);
	b = BIO_new_mem_buf(csr, -1);
	xr = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(xr);
	/* The root signs it, copying the requested extensions (as `openssl ca` would). */
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
	X509_set_issuer_name(x, X509_get_subject_name(rootx));
	X509_set_subject_name(x, X509_REQ_get_subject_name(xr));
	X509_gmtime_adj(X509_getm_notBefore(x), -3600LL * 24 * 365);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600LL * 24 * 365 * 5);
	X509_set_pubkey(x, X509_REQ_get0_pubkey(xr));
	exts = X509_REQ_get_extensions(xr);
	assert_int_equal(sk_X509_EXTENSION_num(exts), 2);
	for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++)
		X509_add_ext(x, sk_X509_EXTENSION_value(exts, i), -1);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509V3_set_ctx(&ctx, rootx, x, NULL, NULL, 0);
	{
		X509_EXTENSION *e =
			X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");

		assert_non_null(e);
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	assert_true(X509_sign(x, rk, EVP_sha384()) > 0);
	b = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(b, x);
	BIO_puts(b, crypto_ca_cert_pem(root));
	BIO_get_mem_ptr(b, &bm);
	bundle = strndup(bm->data, bm->length);
	BIO_free(b);

	/* A wrong issuer after it is refused; the right one accepted. */
	{
		struct crypto_ca *other = new_ca(CRYPTO_KEY_ECDSA_P256, 0), *bad = NULL;
		char *wrong = NULL;
		size_t first = strstr(bundle, "-----END CERTIFICATE-----\n") - bundle + 26;

		assert_int_not_equal(
			asprintf(&wrong, "%.*s%s", (int)first, bundle, crypto_ca_cert_pem(other)),
			-1);
		assert_int_equal(crypto_ca_import_signed(key, wrong, &bad, err, sizeof(err)),
				 -EINVAL);
		assert_non_null(strstr(err, "not signed by the issuer"));
		free(wrong);
		crypto_ca_free(other);
	}
	assert_int_equal(crypto_ca_import_signed(key, bundle, &ca, err, sizeof(err)), 0);
	assert_string_equal(crypto_ca_bundle_pem(ca), bundle);
	assert_int_equal(crypto_issue(ca, &req, &is, err, sizeof(err)), 0);
	assert_string_equal(is.chain_pem, bundle);
	assert_int_equal(verify_in_process(crypto_ca_cert_pem(root), is.chain_pem, is.cert_pem), 1);

	/* Load refusals: a key that does not match, a leaf as CA, garbage. */
	{
		struct crypto_ca *bad = NULL;

		assert_int_equal(crypto_ca_load(bundle, root_key, &bad, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "does not match"));
		assert_int_equal(crypto_ca_load(is.cert_pem, is.key_pem, &bad, err, sizeof(err)),
				 -EINVAL);
		assert_non_null(strstr(err, "not a CA certificate"));
		assert_int_equal(crypto_ca_load("junk", key, &bad, err, sizeof(err)), -EINVAL);
		assert_int_equal(crypto_ca_load(bundle, "junk", &bad, err, sizeof(err)), -EINVAL);
		assert_int_equal(crypto_ca_create(CRYPTO_KEY_ECDSA_P256, NULL, 40000, &bad, err,
						  sizeof(err)),
				 -EINVAL);
	}
	crypto_issued_clear(&is);
	free(bundle);
	EVP_PKEY_free(rk);
	X509_REQ_free(xr);
	X509_free(x);
	X509_free(rootx);
	crypto_free_secret(key);
	crypto_free_secret(root_key);
	free(csr);
	crypto_ca_free(ca);
	crypto_ca_free(root);
}

/* Generated keys: the PKCS#8 and SPKI written by hand equal OpenSSL's encodings. */
static void test_keygen_encodings(void **state)
{
	struct crypto_ca *ca = new_ca(CRYPTO_KEY_ED25519, 0);
	static const enum crypto_key_type kts[] = { CRYPTO_KEY_ECDSA_P256, CRYPTO_KEY_ECDSA_P384,
						    CRYPTO_KEY_ED25519, CRYPTO_KEY_RSA_2048 };

	for (size_t i = 0; i < sizeof(kts) / sizeof(kts[0]); i++) {
		struct crypto_issue_req req = base_req();
		struct crypto_issued is = { 0 };
		char err[256];
		EVP_PKEY *k;
		X509 *x;
		BIO *b = BIO_new(BIO_s_mem());
		BUF_MEM *bm;
		unsigned char *spki_key = NULL, *spki_cert = NULL;
		int n1, n2;

		req.key_type = kts[i];
		assert_int_equal(crypto_issue(ca, &req, &is, err, sizeof(err)), 0);
		assert_string_equal(is.key_algorithm, crypto_key_type_name(kts[i]));
		k = pem_key(is.key_pem);
		assert_non_null(k);
		assert_true(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL));
		BIO_get_mem_ptr(b, &bm);
		assert_int_equal(bm->length, strlen(is.key_pem));
		assert_memory_equal(bm->data, is.key_pem, bm->length);
		x = pem_cert(is.cert_pem);
		assert_int_equal(X509_check_private_key(x, k), 1);
		n1 = i2d_PUBKEY(k, &spki_key);
		n2 = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki_cert);
		assert_int_equal(n1, n2);
		assert_memory_equal(spki_key, spki_cert, (size_t)n1);
		OPENSSL_free(spki_key);
		OPENSSL_free(spki_cert);
		X509_free(x);
		EVP_PKEY_free(k);
		BIO_free(b);
		crypto_issued_clear(&is);
	}
	crypto_ca_free(ca);
}

static void test_key_type_names(void **state)
{
	enum crypto_key_type t;

	for (int i = 0; i < CRYPTO_KEY_TYPE_COUNT; i++) {
		assert_int_equal(crypto_key_type_from_name(crypto_key_type_name(i), &t), 0);
		assert_int_equal(t, i);
		assert_non_null(strstr(crypto_key_type_list(), crypto_key_type_name(i)));
	}
	assert_int_equal(crypto_key_type_from_name("", &t), 0);
	assert_int_equal(t, CRYPTO_KEY_ECDSA_P256);
	assert_int_equal(crypto_key_type_from_name("rsa-1024", &t), -EINVAL);
	assert_int_equal(crypto_key_type_from_name("ECDSA-P256", &t), -EINVAL);
	assert_null(crypto_key_type_name(CRYPTO_KEY_TYPE_COUNT));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_type_names),
		cmocka_unit_test(test_issue_each_ca_type),
		cmocka_unit_test(test_keygen_encodings),
		cmocka_unit_test(test_tbs_matches_stock_api),
		cmocka_unit_test(test_openssl_cli_verify),
		cmocka_unit_test(test_serials_unique),
		cmocka_unit_test(test_csr_ok),
		cmocka_unit_test(test_csr_refused),
		cmocka_unit_test(test_csr_fast_path),
		cmocka_unit_test(test_issue_refused),
		cmocka_unit_test(test_crl),
		cmocka_unit_test(test_external_root),
	};

	NOW = (int64_t)time(NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
