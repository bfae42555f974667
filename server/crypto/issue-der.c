/*
 * The small DER writer and reader of the fast issuance path, PEM armour, and the
 * classification of a SubjectPublicKeyInfo. Why DER by hand at all: OpenSSL 3.0's stock
 * X509 API re-encodes the public key through its provider encoders for every certificate
 * (i2d_PUBKEY alone measured here at about 110 us per P-256 key, several times the 20 us
 * of the ECDSA signature; a whole stock issuance from a PEM CSR about 460 us), so issue.c
 * writes the TBSCertificate from pre-encoded parts instead.
 * The encoder covers only what a leaf needs (TLV, positive INTEGER, times); test-issue.c
 * compares its output byte for byte with the same certificate built by the stock API.
 * The reader is bounds-checked and accepts definite lengths only (DER).
 */
#include "issue-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

void crypto_der_init(struct crypto_der *d, size_t cap)
{
	d->len = 0;
	d->cap = cap ? cap : 256;
	d->p = malloc(d->cap);
	d->err = !d->p;
}

void crypto_der_fini(struct crypto_der *d)
{
	free(d->p);
	d->p = NULL;
	d->len = d->cap = 0;
}

static bool der_reserve(struct crypto_der *d, size_t n)
{
	uint8_t *p;
	size_t cap;

	if (d->err)
		return false;
	if (d->len + n <= d->cap)
		return true;
	cap = d->cap * 2 > d->len + n ? d->cap * 2 : d->len + n + 256;
	p = realloc(d->p, cap);
	if (!p) {
		d->err = true;
		return false;
	}
	d->p = p;
	d->cap = cap;
	return true;
}

void crypto_der_raw(struct crypto_der *d, const void *p, size_t n)
{
	if (!n || !der_reserve(d, n))
		return;
	memcpy(d->p + d->len, p, n);
	d->len += n;
}

/* Encodes a DER header (tag, definite length) into h; returns its size. */
static size_t der_header(uint8_t h[6], uint8_t tag, size_t n)
{
	size_t k = 0;

	h[0] = tag;
	if (n < 0x80) {
		h[1] = (uint8_t)n;
		return 2;
	}
	for (size_t v = n; v; v >>= 8)
		k++;
	h[1] = (uint8_t)(0x80 | k);
	for (size_t i = 0; i < k; i++)
		h[2 + i] = (uint8_t)(n >> (8 * (k - 1 - i)));
	return 2 + k;
}

void crypto_der_tlv(struct crypto_der *d, uint8_t tag, const void *p, size_t n)
{
	uint8_t h[6];

	crypto_der_raw(d, h, der_header(h, tag, n));
	crypto_der_raw(d, p, n);
}

size_t crypto_der_open(struct crypto_der *d)
{
	return d->len;
}

void crypto_der_close(struct crypto_der *d, uint8_t tag, size_t mark)
{
	uint8_t h[6];
	size_t hn, n;

	if (d->err)
		return;
	n = d->len - mark;
	hn = der_header(h, tag, n);
	if (!der_reserve(d, hn))
		return;
	memmove(d->p + mark + hn, d->p + mark, n);
	memcpy(d->p + mark, h, hn);
	d->len += hn;
}

void crypto_der_uint(struct crypto_der *d, const uint8_t *mag, size_t n)
{
	uint8_t zero = 0;
	size_t mark;

	while (n > 1 && mag[0] == 0) {
		mag++;
		n--;
	}
	mark = crypto_der_open(d);
	if (n == 0 || (mag[0] & 0x80))
		crypto_der_raw(d, &zero, 1);
	crypto_der_raw(d, mag, n);
	crypto_der_close(d, 0x02, mark);
}

int crypto_der_time(struct crypto_der *d, int64_t t)
{
	struct tm tm;
	time_t tt = (time_t)t;
	char s[24];
	int n;

	if (!gmtime_r(&tt, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
		return -1;
	if (tm.tm_year + 1900 >= 1950 && tm.tm_year + 1900 < 2050) {
		n = snprintf(s, sizeof(s), "%02d%02d%02d%02d%02d%02dZ", tm.tm_year % 100,
			     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		crypto_der_tlv(d, 0x17, s, (size_t)n);
	} else {
		n = snprintf(s, sizeof(s), "%04d%02d%02d%02d%02d%02dZ", tm.tm_year + 1900,
			     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		crypto_der_tlv(d, 0x18, s, (size_t)n);
	}
	return 0;
}

int crypto_der_get(const uint8_t **pp, const uint8_t *end, uint8_t want, const uint8_t **ret_val,
		   size_t *ret_len)
{
	const uint8_t *p = *pp;
	size_t n = 0, k;

	if (end - p < 2 || p[0] != want)
		return -EINVAL;
	if (p[1] < 0x80) {
		n = p[1];
		p += 2;
	} else {
		k = p[1] & 0x7f;
		if (k == 0 || k > 4 || (size_t)(end - p) < 2 + k)
			return -EINVAL;
		for (size_t i = 0; i < k; i++)
			n = (n << 8) | p[2 + i];
		p += 2 + k;
	}
	if ((size_t)(end - p) < n)
		return -EINVAL;
	*ret_val = p;
	*ret_len = n;
	*pp = p + n;
	return 0;
}

int crypto_der_get_tlv(const uint8_t **pp, const uint8_t *end, uint8_t want,
		       const uint8_t **ret_tlv, size_t *ret_len)
{
	const uint8_t *start = *pp, *v;
	size_t n;

	if (crypto_der_get(pp, end, want, &v, &n) < 0)
		return -EINVAL;
	*ret_tlv = start;
	*ret_len = (size_t)(*pp - start);
	return 0;
}

char *crypto_pem_encode(const char *label, const uint8_t *der, size_t n)
{
	size_t lines = (n + 47) / 48, cap = 2 * strlen(label) + 40 + lines * 65 + 1;
	char *s = malloc(cap), *w;

	if (!s)
		return NULL;
	w = s + sprintf(s, "-----BEGIN %s-----\n", label);
	for (size_t off = 0; off < n; off += 48) {
		size_t chunk = n - off < 48 ? n - off : 48;

		w += EVP_EncodeBlock((unsigned char *)w, der + off, (int)chunk);
		*w++ = '\n';
	}
	sprintf(w, "-----END %s-----\n", label);
	return s;
}

int crypto_pem_decode(const char *pem, const char *label, uint8_t **ret_der, size_t *ret_len)
{
	char begin[64], *b64 = NULL;
	const char *p, *end;
	size_t n = 0, pad = 0;
	uint8_t *der;
	int r;

	snprintf(begin, sizeof(begin), "-----BEGIN %s-----", label);
	p = pem ? strstr(pem, begin) : NULL;
	if (!p)
		return -EINVAL;
	p += strlen(begin);
	end = strstr(p, "-----END ");
	if (!end || end - p > (1 << 20))
		return -EINVAL;
	b64 = malloc((size_t)(end - p) + 1);
	if (!b64)
		return -ENOMEM;
	for (; p < end; p++) {
		if (*p == '\n' || *p == '\r' || *p == ' ' || *p == '\t')
			continue;
		b64[n++] = *p;
	}
	if (n == 0 || n % 4) {
		free(b64);
		return -EINVAL;
	}
	pad = (b64[n - 1] == '=') + (b64[n - 2] == '=');
	der = malloc(n / 4 * 3);
	r = der ? EVP_DecodeBlock(der, (unsigned char *)b64, (int)n) : -1;
	free(b64);
	if (r < 0 || (size_t)r < pad) {
		free(der);
		return der ? -EINVAL : -ENOMEM;
	}
	*ret_der = der;
	*ret_len = (size_t)r - pad;
	return 0;
}

/* AlgorithmIdentifier encodings of the accepted subject keys. */
const uint8_t crypto_alg_p256[CRYPTO_ALG_P256_LEN] = { 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
						       0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
						       0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
const uint8_t crypto_alg_p384[CRYPTO_ALG_P384_LEN] = { 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86,
						       0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
						       0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };
const uint8_t crypto_alg_ed25519[CRYPTO_ALG_ED25519_LEN] = { 0x30, 0x05, 0x06, 0x03,
							     0x2b, 0x65, 0x70 };
static const uint8_t alg_rsa[] = { 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
				   0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00 };

#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384

/* Bits of the modulus in a DER RSAPublicKey, or 0. */
static size_t rsa_modulus_bits(const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n, *seq, *mod;
	size_t seq_len, mod_len, bits;

	if (crypto_der_get(&p, end, 0x30, &seq, &seq_len) < 0 ||
	    crypto_der_get(&seq, seq + seq_len, 0x02, &mod, &mod_len) < 0)
		return 0;
	while (mod_len && mod[0] == 0) {
		mod++;
		mod_len--;
	}
	if (!mod_len)
		return 0;
	bits = mod_len * 8;
	for (uint8_t top = mod[0]; !(top & 0x80); top <<= 1)
		bits--;
	return bits;
}

int crypto_spki_classify(const uint8_t *spki, size_t len, char ret_alg[CRYPTO_KEY_ALG_LEN],
			 bool *ret_rsa, const uint8_t **ret_bits, size_t *ret_bits_len)
{
	const uint8_t *p = spki, *body, *alg, *bits;
	size_t body_len, alg_len, bits_len, rsa_bits;
	const char *name = NULL;
	bool rsa = false;
	char rsa_name[CRYPTO_KEY_ALG_LEN];

	if (crypto_der_get(&p, spki + len, 0x30, &body, &body_len) < 0 || p != spki + len)
		return -EINVAL;
	p = body;
	if (crypto_der_get_tlv(&p, body + body_len, 0x30, &alg, &alg_len) < 0)
		return -EINVAL;
	if (crypto_der_get(&p, body + body_len, 0x03, &bits, &bits_len) < 0 || bits_len < 2 ||
	    bits[0] != 0)
		return -EINVAL;
	bits++;
	bits_len--;
	if (alg_len == sizeof(crypto_alg_p256) && !memcmp(alg, crypto_alg_p256, alg_len)) {
		name = bits_len == 65 ? "ecdsa-p256" : NULL;
	} else if (alg_len == sizeof(crypto_alg_p384) && !memcmp(alg, crypto_alg_p384, alg_len)) {
		name = bits_len == 97 ? "ecdsa-p384" : NULL;
	} else if (alg_len == sizeof(crypto_alg_ed25519) &&
		   !memcmp(alg, crypto_alg_ed25519, alg_len)) {
		name = bits_len == 32 ? "ed25519" : NULL;
	} else if (alg_len == sizeof(alg_rsa) && !memcmp(alg, alg_rsa, alg_len)) {
		rsa_bits = rsa_modulus_bits(bits, bits_len);
		if (rsa_bits >= RSA_MIN_BITS && rsa_bits <= RSA_MAX_BITS) {
			snprintf(rsa_name, sizeof(rsa_name), "rsa-%zu", rsa_bits);
			name = rsa_name;
			rsa = true;
		}
	}
	if (!name)
		return -EINVAL;
	snprintf(ret_alg, CRYPTO_KEY_ALG_LEN, "%s", name);
	*ret_rsa = rsa;
	if (ret_bits) {
		*ret_bits = bits;
		*ret_bits_len = bits_len;
	}
	return 0;
}

int crypto_pkey_classify(EVP_PKEY *pk, char ret_alg[CRYPTO_KEY_ALG_LEN], bool *ret_rsa)
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(pk, &der), r;

	if (n <= 0)
		return -EINVAL;
	r = crypto_spki_classify(der, (size_t)n, ret_alg, ret_rsa, NULL, NULL);
	OPENSSL_free(der);
	return r;
}

void crypto_hex_encode(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

int crypto_set_err(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

int crypto_csr_pem_decode(const char *pem, uint8_t **ret_der, size_t *ret_len)
{
	int r = crypto_pem_decode(pem, "CERTIFICATE REQUEST", ret_der, ret_len);

	return r == -EINVAL ? crypto_pem_decode(pem, "NEW CERTIFICATE REQUEST", ret_der, ret_len) :
			      r;
}
