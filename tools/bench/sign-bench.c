/*
 * sign-bench: leaf certificate issuance against its floor, on one core, in one run.
 *
 *   openssl_sign   raw ECDSA P-256 signatures over 32-byte digests with one initialised
 *                  context: what `openssl speed ecdsap256` measures (the floor)
 *   stock_x509     a leaf built from a CSR with OpenSSL's stock X509 API (parse the CSR,
 *                  set fields and extensions, X509_sign, PEM): the naive way
 *   issue_csr      crypto_issue from a PEM CSR (the server's CSR path)
 *   issue_keygen   crypto_issue generating a P-256 key (server keygen)
 *
 * and prints `ratio = issue_csr / openssl_sign` (the target is >= 0.5). The CA is ECDSA
 * P-256. --seconds S sets the time per operation (default 2, in interleaved rounds);
 * --smoke issues a few certificates, checks that they parse and verify, and prints no
 * figures. Not a timed test: figures are compared only with the floor measured in the
 * same run.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct bench {
	struct crypto_ca *ca;
	EVP_PKEY *ca_key; /* the CA key, for the floor and the stock path */
	X509 *ca_cert;
	char *csr_pem;	    /* a P-256 CSR with one DNS SAN */
	EVP_PKEY_CTX *sign; /* initialised once for the floor */
};

static int op_openssl_sign(struct bench *b)
{
	unsigned char dg[32] = { 1, 2, 3 }, sig[80];
	size_t len = sizeof(sig);

	return EVP_PKEY_sign(b->sign, sig, &len, dg, sizeof(dg)) > 0 ? 0 : -EIO;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	int ok;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	ok = e && X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok ? 0 : -EIO;
}

static int op_stock_x509(struct bench *b)
{
	BIO *in = BIO_new_mem_buf(b->csr_pem, -1), *out = BIO_new(BIO_s_mem());
	X509_REQ *req = PEM_read_bio_X509_REQ(in, NULL, NULL, NULL);
	X509 *x = X509_new();
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	int r = -EIO;

	if (!req || !x || !out || RAND_bytes(serial, sizeof(serial)) != 1)
		goto done;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
	    !X509_set_version(x, X509_VERSION_3) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(b->ca_cert)) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400) ||
	    !X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
					(const unsigned char *)"api", -1, -1, 0) ||
	    !X509_set_pubkey(x, X509_REQ_get0_pubkey(req)) ||
	    add_ext(x, b->ca_cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, b->ca_cert, NID_key_usage, "critical,digitalSignature") < 0 ||
	    add_ext(x, b->ca_cert, NID_ext_key_usage, "serverAuth,clientAuth") < 0 ||
	    add_ext(x, b->ca_cert, NID_subject_key_identifier, "hash") < 0 ||
	    add_ext(x, b->ca_cert, NID_authority_key_identifier, "keyid:always") < 0 ||
	    add_ext(x, b->ca_cert, NID_subject_alt_name, "DNS:api.example.com") < 0 ||
	    X509_sign(x, b->ca_key, EVP_sha256()) <= 0 || !PEM_write_bio_X509(out, x))
		goto done;
	r = 0;
done:
	BN_free(bn);
	X509_free(x);
	X509_REQ_free(req);
	BIO_free(in);
	BIO_free(out);
	return r;
}

static const char *const dns[] = { "api.example.com" };

static int issue(struct bench *b, bool keygen, struct crypto_issued *ret)
{
	struct crypto_issue_req req = {
		.cn = "api",
		.dns_names = dns,
		.n_dns_names = 1,
		.ttl_seconds = 30 * 86400,
		.csr_pem = keygen ? NULL : b->csr_pem,
		.key_type = CRYPTO_KEY_ECDSA_P256,
	};
	char err[256];
	int r = crypto_issue(b->ca, &req, ret, err, sizeof(err));

	if (r < 0)
		fprintf(stderr, "sign-bench: crypto_issue: %s\n", err);
	return r;
}

static int op_issue_csr(struct bench *b)
{
	struct crypto_issued is;
	int r = issue(b, false, &is);

	if (r == 0)
		crypto_issued_clear(&is);
	return r;
}

static int op_issue_keygen(struct bench *b)
{
	struct crypto_issued is;
	int r = issue(b, true, &is);

	if (r == 0)
		crypto_issued_clear(&is);
	return r;
}

/* Runs op for about seconds; returns operations per second, or -1 on a failure. */
static double measure(struct bench *b, int (*op)(struct bench *), double seconds)
{
	double start = now_s(), el;
	long n = 0;

	do {
		for (int i = 0; i < 16; i++, n++)
			if (op(b) < 0)
				return -1;
		el = now_s() - start;
	} while (el < seconds);
	return (double)n / el;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

enum {
	OP_SIGN,
	OP_STOCK,
	OP_CSR,
	OP_KEYGEN,
	N_OPS,
	MAX_ROUNDS = 1000
};

/*
 * The machine may be shared, so the operations are measured in interleaved rounds of
 * 100 ms each and every figure is a median over rounds (a ratio is the median of the
 * per-round ratios): a load that comes and goes then hits floor and subject alike.
 */
static int measure_all(struct bench *b, double seconds, double med[N_OPS], double ratio[N_OPS])
{
	static int (*const ops[N_OPS])(struct bench *) = { op_openssl_sign, op_stock_x509,
							   op_issue_csr, op_issue_keygen };
	static double rate[N_OPS][MAX_ROUNDS], rat[N_OPS][MAX_ROUNDS];
	int rounds = (int)(seconds * N_OPS / 0.4);

	rounds = rounds < 3 ? 3 : rounds > MAX_ROUNDS ? MAX_ROUNDS : rounds;
	for (int r = 0; r < rounds; r++) {
		for (int o = 0; o < N_OPS; o++) {
			rate[o][r] = measure(b, ops[o], 0.1);
			if (rate[o][r] <= 0)
				return -1;
		}
		for (int o = 0; o < N_OPS; o++)
			rat[o][r] = rate[o][r] / rate[OP_SIGN][r];
	}
	for (int o = 0; o < N_OPS; o++) {
		qsort(rate[o], (size_t)rounds, sizeof(double), cmp_double);
		qsort(rat[o], (size_t)rounds, sizeof(double), cmp_double);
		med[o] = rate[o][rounds / 2];
		ratio[o] = rat[o][rounds / 2];
	}
	return 0;
}

static char *make_csr(EVP_PKEY *key)
{
	X509_REQ *req = X509_REQ_new();
	BIO *out = BIO_new(BIO_s_mem());
	BUF_MEM *bm;
	char *s = NULL;

	if (req && out && X509_REQ_set_pubkey(req, key) &&
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
				       (const unsigned char *)"api", -1, -1, 0) &&
	    X509_REQ_sign(req, key, EVP_sha256()) > 0 && PEM_write_bio_X509_REQ(out, req)) {
		BIO_get_mem_ptr(out, &bm);
		s = strndup(bm->data, bm->length);
	}
	BIO_free(out);
	X509_REQ_free(req);
	return s;
}

static int setup(struct bench *b)
{
	char err[256], *key_pem = NULL;
	EVP_PKEY *subject;
	BIO *in;

	if (crypto_ca_create(CRYPTO_KEY_ECDSA_P256, NULL, 0, &b->ca, err, sizeof(err)) < 0 ||
	    crypto_ca_key_pem(b->ca, &key_pem) < 0) {
		fprintf(stderr, "sign-bench: CA: %s\n", err);
		return -1;
	}
	in = BIO_new_mem_buf(key_pem, -1);
	b->ca_key = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
	BIO_free(in);
	crypto_free_secret(key_pem);
	in = BIO_new_mem_buf(crypto_ca_cert_pem(b->ca), -1);
	b->ca_cert = PEM_read_bio_X509(in, NULL, NULL, NULL);
	BIO_free(in);
	subject = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	b->csr_pem = subject ? make_csr(subject) : NULL;
	EVP_PKEY_free(subject);
	b->sign = b->ca_key ? EVP_PKEY_CTX_new_from_pkey(NULL, b->ca_key, NULL) : NULL;
	if (!b->ca_cert || !b->csr_pem || !b->sign || EVP_PKEY_sign_init(b->sign) <= 0) {
		fprintf(stderr, "sign-bench: setup failed\n");
		return -1;
	}
	return 0;
}

static void teardown(struct bench *b)
{
	EVP_PKEY_CTX_free(b->sign);
	free(b->csr_pem);
	X509_free(b->ca_cert);
	EVP_PKEY_free(b->ca_key);
	crypto_ca_free(b->ca);
}

/* Issues a few certificates both ways and checks they parse and verify under the CA. */
static int smoke(struct bench *b)
{
	for (int i = 0; i < 20; i++) {
		struct crypto_issued is;
		const unsigned char *p;
		X509 *x;
		int ok;

		if (issue(b, i & 1, &is) < 0 || op_stock_x509(b) < 0 || op_openssl_sign(b) < 0)
			return -1;
		p = is.der;
		x = d2i_X509(NULL, &p, (long)is.der_len);
		ok = x && X509_verify(x, b->ca_key) == 1 &&
		     X509_check_host(x, "api.example.com", 0, 0, NULL) == 1 &&
		     (!(i & 1) || is.key_pem);
		X509_free(x);
		crypto_issued_clear(&is);
		if (!ok) {
			fprintf(stderr, "sign-bench: certificate %d does not verify\n", i);
			return -1;
		}
	}
	printf("sign-bench: smoke ok (20 certificates verified)\n");
	return 0;
}

int main(int argc, char **argv)
{
	struct bench b = { 0 };
	double seconds = 2, rate[N_OPS], ratio[N_OPS];
	bool smoke_only = false;
	cpu_set_t one;
	int r;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--smoke")) {
			smoke_only = true;
		} else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else {
			fprintf(stderr, "usage: sign-bench [--smoke] [--seconds S]\n");
			return 2;
		}
	}
	/* One core: the figures are per core, like `openssl speed` without -multi. */
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &one);
	sched_setaffinity(0, sizeof(one), &one);
	if (setup(&b) < 0) {
		teardown(&b);
		return 1;
	}
	if (smoke_only) {
		r = smoke(&b);
		teardown(&b);
		return r < 0 ? 1 : 0;
	}
	r = measure_all(&b, seconds, rate, ratio);
	teardown(&b);
	if (r < 0) {
		fprintf(stderr, "sign-bench: an operation failed\n");
		return 1;
	}
	printf("openssl_sign  %10.0f /s  %6.1f us  (ECDSA P-256 raw signature: the floor)\n",
	       rate[OP_SIGN], 1e6 / rate[OP_SIGN]);
	printf("stock_x509    %10.0f /s  %6.1f us/cert\n", rate[OP_STOCK], 1e6 / rate[OP_STOCK]);
	printf("issue_csr     %10.0f /s  %6.1f us/cert\n", rate[OP_CSR], 1e6 / rate[OP_CSR]);
	printf("issue_keygen  %10.0f /s  %6.1f us/cert\n", rate[OP_KEYGEN], 1e6 / rate[OP_KEYGEN]);
	printf("ratio = issue_csr / openssl_sign = %.2f (target >= 0.5)\n", ratio[OP_CSR]);
	printf("ratio_keygen = issue_keygen / openssl_sign = %.2f\n", ratio[OP_KEYGEN]);
	printf("ratio_stock = stock_x509 / openssl_sign = %.2f\n", ratio[OP_STOCK]);
	return 0;
}
