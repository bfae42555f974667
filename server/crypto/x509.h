#pragma once
/*
 * x509: the issuing CA, leaf certificate issuance, CSR checks and CRLs (issue*.c).
 *
 * Errors are -errno; where a message helps the caller (INVALID_ARGUMENT text), functions
 * take err/errlen and write one line there (never key bytes). err may be NULL.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Key types, by their API names (crypto_key_type_name). */
enum crypto_key_type {
	CRYPTO_KEY_ECDSA_P256, /* "ecdsa-p256" (the default) */
	CRYPTO_KEY_ECDSA_P384, /* "ecdsa-p384" */
	CRYPTO_KEY_ED25519,    /* "ed25519" */
	CRYPTO_KEY_RSA_2048,   /* "rsa-2048" */
	CRYPTO_KEY_RSA_3072,   /* "rsa-3072" */
	CRYPTO_KEY_RSA_4096,   /* "rsa-4096" */
	CRYPTO_KEY_TYPE_COUNT,
};

#define CRYPTO_CA_DEFAULT_CN "trstctl Issuing CA"
#define CRYPTO_CA_DEFAULT_DAYS 3650
#define CRYPTO_CN_MAX 64	 /* ub-common-name (RFC 5280) */
#define CRYPTO_SERIAL_HEX_LEN 32 /* 128-bit serials (first byte not 0), 32 lowercase hex digits */
#define CRYPTO_KEY_ALG_LEN 16	 /* "ecdsa-p256", "rsa-2048", ... plus NUL */

/* The API name of t ("ecdsa-p256", ...), NULL when t is out of range. */
const char *crypto_key_type_name(enum crypto_key_type t);

/* Parses an API key type name (exact, lowercase). NULL or "" gives the default
 * (ecdsa-p256). Returns 0 or -EINVAL. */
int crypto_key_type_from_name(const char *name, enum crypto_key_type *ret_type);

/* "ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096": for error messages. */
const char *crypto_key_type_list(void);

/*
 * The issuing CA: its certificate, key and the pre-encoded parts of every certificate it
 * signs (issuer name, authority key id, signature algorithm). Immutable once built, so one
 * CA may be used by any number of threads at once.
 */
struct crypto_ca;

/*
 * Creates a self-signed root: a fresh key of type kt, subject CN cn (NULL or "": the
 * default "trstctl Issuing CA"), valid for days (0: 3650; 1..36500), with basicConstraints
 * CA:TRUE (critical), keyUsage keyCertSign+cRLSign (critical) and a subject key id.
 * Returns 0, -EINVAL (bad cn or days, err says which), -ENOMEM or -EIO.
 */
int crypto_ca_create(enum crypto_key_type kt, const char *cn, int days, struct crypto_ca **ret_ca,
		     char *err, size_t errlen);

/*
 * Loads a CA from its PEM certificate (optionally followed by the certificates of the
 * issuers above it: they make up the bundle) and its PEM private key (PKCS#8 or
 * traditional, unencrypted). Refuses (-EINVAL, err says why) a certificate that is not a
 * CA (basicConstraints CA:TRUE, keyCertSign when keyUsage is present), a key that does not
 * match it, or a key type outside crypto_key_type_list(). Used at restart and for
 * `trstctl ca import`.
 */
int crypto_ca_load(const char *cert_pem, const char *key_pem, struct crypto_ca **ret_ca, char *err,
		   size_t errlen);

/*
 * For an external root: generates a key of type kt and a CSR for it (CN as in
 * crypto_ca_create, requesting CA:TRUE and keyCertSign+cRLSign). *ret_key_pem (PKCS#8,
 * wipe it with crypto_free_secret once sealed) and *ret_csr_pem are malloc'd.
 */
int crypto_ca_csr(enum crypto_key_type kt, const char *cn, char **ret_key_pem, char **ret_csr_pem,
		  char *err, size_t errlen);

/*
 * Completes crypto_ca_csr: cert_pem is the certificate the external root signed (followed
 * by its issuers, if any), key_pem the key crypto_ca_csr returned. As crypto_ca_load, and
 * when an issuer certificate follows, the CA certificate must verify under it.
 */
int crypto_ca_import_signed(const char *key_pem, const char *cert_pem, struct crypto_ca **ret_ca,
			    char *err, size_t errlen);

/* The CA's private key as unencrypted PKCS#8 PEM, for sealing with the KEK. The caller
 * wipes it with crypto_free_secret. Returns 0, -ENOMEM or -EIO. */
int crypto_ca_key_pem(const struct crypto_ca *ca, char **ret_key_pem);

/* The CA certificate alone (PEM; valid while ca lives). */
const char *crypto_ca_cert_pem(const struct crypto_ca *ca);

/* The CA certificate followed by its issuers (GetCABundle; valid while ca lives). */
const char *crypto_ca_bundle_pem(const struct crypto_ca *ca);

/* The CA key's type. */
enum crypto_key_type crypto_ca_key_type(const struct crypto_ca *ca);

/* The CA certificate's notAfter (Unix seconds): no certificate it signs outlives it. */
int64_t crypto_ca_not_after(const struct crypto_ca *ca);

/* Frees. Accepts NULL, returns NULL. */
struct crypto_ca *crypto_ca_free(struct crypto_ca *ca);

/* What to put in a leaf certificate. The names are not checked here beyond what DER
 * needs: the domain (server/ca) validates them, crypto_csr_check checks the CSR. */
struct crypto_issue_req {
	const char *cn;		      /* subject CN, 1..CRYPTO_CN_MAX bytes of UTF-8 */
	const char *const *dns_names; /* dNSName SANs (may be NULL when n_dns_names is 0) */
	size_t n_dns_names;
	const char *const *ips; /* iPAddress SANs, IPv4 or IPv6 text */
	size_t n_ips;
	int64_t ttl_seconds;	       /* > 0; notAfter = notBefore + ttl */
	const char *csr_pem;	       /* checked by crypto_csr_check; NULL: generate a key */
	enum crypto_key_type key_type; /* key to generate when csr_pem is NULL */
	int64_t now;		       /* notBefore (Unix seconds); 0: the current time */
};

/* An issued certificate. Everything is malloc'd; release with crypto_issued_clear. */
struct crypto_issued {
	char serial[CRYPTO_SERIAL_HEX_LEN + 1]; /* 128 random bits, lowercase hex */
	char fingerprint[65];			/* SHA-256 of der, lowercase hex */
	char key_algorithm[CRYPTO_KEY_ALG_LEN]; /* subject key: "ecdsa-p256", "rsa-2048", ... */
	uint8_t *der;				/* the certificate */
	size_t der_len;
	char *cert_pem;		       /* the certificate */
	char *chain_pem;	       /* its issuers: the CA bundle (not the leaf) */
	char *key_pem;		       /* PKCS#8, only when generated; NULL otherwise */
	int64_t not_before, not_after; /* Unix seconds */
};

/*
 * Issues a leaf certificate: serial, validity, subject CN, SANs, the CSR's public key (or
 * a fresh key of req->key_type), SKI, AKI, keyUsage digitalSignature (+keyEncipherment for
 * RSA, critical), extendedKeyUsage serverAuth+clientAuth, basicConstraints CA:FALSE
 * (critical). Thread-safe. On success fills *ret (the caller releases it with
 * crypto_issued_clear). Returns 0, -EINVAL (err says why: cn, a name, the ttl, a
 * validity past the CA's, an unreadable CSR), -ENOMEM or -EIO.
 */
int crypto_issue(const struct crypto_ca *ca, const struct crypto_issue_req *req,
		 struct crypto_issued *ret, char *err, size_t errlen);

/* Frees the members of r and wipes the private key. Accepts NULL; r may be reused. */
void crypto_issued_clear(struct crypto_issued *r);

/* What crypto_cert_read learnt from a certificate. */
struct crypto_cert_facts {
	char serial[CRYPTO_SERIAL_HEX_LEN + 1]; /* lowercase hex, as crypto_issued.serial */
	int64_t not_before, not_after;		/* Unix seconds */
	bool signed_by_ca;			/* the CA's name and key signed it */
	bool same_names;			/* its SANs are exactly the names asked about */
};

/*
 * Reads the first certificate of cert_pem (a leaf, maybe followed by its chain) and
 * compares it with ca and with the DNS names and IP addresses it should carry (each listed
 * once; the DNS names compare case-insensitively, addresses by value). Returns 0 with *ret
 * set, -EINVAL when it does not parse (or its serial is over 128 bits), -ENOMEM.
 */
int crypto_cert_read(const struct crypto_ca *ca, const char *cert_pem, const char *const *dns_names,
		     size_t n_dns, const char *const *ips, size_t n_ips,
		     struct crypto_cert_facts *ret);

/* What crypto_csr_check learnt from a CSR. */
struct crypto_csr_info {
	char key_algorithm
		[CRYPTO_KEY_ALG_LEN]; /* "ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-<bits>" */
	char cn[CRYPTO_CN_MAX + 1];   /* the CSR's subject CN ("" when absent) */
	size_t n_dns_names, n_ips;    /* SANs it requested (all allowed) */
};

/*
 * Checks a CSR before issuance: it parses (else -EINVAL "csr_pem is not a PEM certificate
 * request"), its self-signature verifies, its key is acceptable (RSA >= 2048 bits, ECDSA
 * P-256 or P-384, Ed25519) and every subjectAltName it requests is a DNS name among
 * allowed_dns (case-insensitive) or an IP address among allowed_ips. Every refusal is
 * -EINVAL with a message in err suitable for INVALID_ARGUMENT that names the problem.
 */
int crypto_csr_check(const char *csr_pem, const char *const *allowed_dns, size_t n_allowed_dns,
		     const char *const *allowed_ips, size_t n_allowed_ips,
		     struct crypto_csr_info *ret_info, char *err, size_t errlen);

/* One revoked certificate in a CRL. */
struct crypto_revoked {
	const char *serial; /* hex, as in crypto_issued.serial */
	int64_t time;	    /* revocation time, Unix seconds */
	int reason;	    /* RFC 5280 CRLReason code: 0..10 except 7 (0: no reasonCode entry) */
};

/*
 * Builds a v2 CRL signed by ca: the revoked entries (with their reasonCode unless
 * unspecified), thisUpdate/nextUpdate (Unix seconds, this_update < next_update), a CRL
 * number extension (crl_number >= 0; the caller keeps it increasing) and the authority
 * key id. *ret_der (may be NULL) and *ret_pem (may be NULL) are malloc'd. Returns 0,
 * -EINVAL (err names the bad entry), -ENOMEM or -EIO.
 */
int crypto_crl_build(const struct crypto_ca *ca, const struct crypto_revoked *revoked,
		     size_t n_revoked, uint64_t crl_number, int64_t this_update,
		     int64_t next_update, uint8_t **ret_der, size_t *ret_der_len, char **ret_pem,
		     char *err, size_t errlen);

/* PEM of a DER blob with the given label ("CERTIFICATE", "X509 CRL", ...): 64-column base64
 * between BEGIN and END lines. malloc'd; NULL when out of memory. */
char *crypto_pem_encode(const char *label, const uint8_t *der, size_t n);
