#pragma once
/*
 * ca: the CA domain without storage or protobuf: the identity lifecycle (docs/architecture.md §6),
 * revocation reasons, owner and identity kinds, key types, and the validation of what
 * CreateOwner, CreateIdentity, TransitionIdentity and IssueCertificate accept. The
 * X.509 work itself is in crypto (x509.h). Names are the exact lowercase API strings; a
 * refused value gets -EINVAL and a message (for INVALID_ARGUMENT) that lists the accepted
 * ones. Messages go to err/errlen (err may be NULL).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

/* Identity states. */
enum ca_state {
	CA_STATE_REQUESTED, /* "requested": created, no certificate yet */
	CA_STATE_ISSUED,    /* "issued": has a current certificate */
	CA_STATE_DEPLOYED,  /* "deployed": the certificate is in use */
	CA_STATE_RENEWING,  /* "renewing": a replacement is being issued */
	CA_STATE_REVOKED,   /* "revoked": its certificates are on the CRL */
	CA_STATE_RETIRED,   /* "retired": terminal */
	CA_STATE_COUNT,
};

/* The API name of s, NULL when out of range. */
const char *ca_state_name(enum ca_state s);

/* Parses a state name; -EINVAL with "invalid state "<v>"; accepted: requested, ...". */
int ca_state_parse(const char *name, enum ca_state *ret_state, char *err, size_t errlen);

/* 0 when from -> to is one of the 8 allowed edges, -EILSEQ otherwise (also for a state out
 * of range). The caller words the refusal with ca_transition_message. */
int ca_transition_check(enum ca_state from, enum ca_state to);

/* Writes "invalid transition for identity <id>: <from> -> <to>" into buf; returns -EILSEQ
 * so that callers can `return ca_transition_message(...)`. */
int ca_transition_message(const char *id, enum ca_state from, enum ca_state to, char *buf,
			  size_t len);

/* The event type an allowed edge emits ("identity.<to>", and "identity.renewed" for
 * renewing -> deployed); NULL for an edge that is not allowed. */
const char *ca_transition_event(enum ca_state from, enum ca_state to);

/* RFC 5280 CRLReason codes (7 is unused). */
#define CA_REASON_UNSPECIFIED 0
#define CA_REASON_MAX 10

/* The RFC 5280 name of a reason code ("keyCompromise", ...), NULL for 7 or out of range. */
const char *ca_reason_name(int code);

/* Parses a reason name (exact case); NULL or "" is unspecified (0). -EINVAL with a message
 * listing the accepted names. */
int ca_reason_parse(const char *name, int *ret_code, char *err, size_t errlen);

/* Owner kinds. */
enum ca_owner_kind {
	CA_OWNER_USER,
	CA_OWNER_TEAM,
	CA_OWNER_WORKLOAD,
	CA_OWNER_SERVICE,
	CA_OWNER_VENDOR,
	CA_OWNER_KIND_COUNT,
};

const char *ca_owner_kind_name(enum ca_owner_kind k);
int ca_owner_kind_parse(const char *name, enum ca_owner_kind *ret_kind, char *err, size_t errlen);

/* Identity kinds. Every kind is stored; only x509_certificate is issued so far. */
enum ca_identity_kind {
	CA_IDENTITY_X509_CERTIFICATE,
	CA_IDENTITY_SSH_CERTIFICATE,
	CA_IDENTITY_SSH_KEY,
	CA_IDENTITY_SECRET,
	CA_IDENTITY_API_KEY,
	CA_IDENTITY_WORKLOAD_IDENTITY,
	CA_IDENTITY_KIND_COUNT,
};

const char *ca_identity_kind_name(enum ca_identity_kind k);

/* Parses an identity kind; NULL or "" is x509_certificate. */
int ca_identity_kind_parse(const char *name, enum ca_identity_kind *ret_kind, char *err,
			   size_t errlen);

/* 0 when identities of kind k can be issued; -EOPNOTSUPP (UNIMPLEMENTED) with "issuance of
 * <kind> identities is not implemented; only x509_certificate identities are issued". */
int ca_identity_issuable(enum ca_identity_kind k, char *err, size_t errlen);

/* Parses a key type (crypto_key_type_from_name; "" is ecdsa-p256) with a message. */
int ca_key_type_parse(const char *name, enum crypto_key_type *ret_type, char *err, size_t errlen);

#define CA_NAME_MAX CRYPTO_CN_MAX /* identity names become the certificate CN */
#define CA_OWNER_NAME_MAX 128
#define CA_EMAIL_MAX 254
#define CA_SANS_MAX 100		      /* dns_names + ip addresses per identity */
#define CA_TTL_DEFAULT (30 * 86400LL) /* ttl_seconds 0 */
#define CA_TTL_MIN 60LL

/* A name field (field names the API field in the message): 1..max bytes of UTF-8 without
 * control characters. */
int ca_validate_name(const char *field, const char *value, size_t max, char *err, size_t errlen);

/* An optional e-mail address: empty, or local@domain without spaces, at most 254 bytes. */
int ca_validate_email(const char *email, char *err, size_t errlen);

/* A DNS name for a SAN: letters, digits and hyphens in labels of 1..63 bytes that neither
 * start nor end with a hyphen, the last label not all digits (an address belongs in the
 * ips), at most 253 bytes, no trailing dot; a leftmost "*." is a wildcard. */
int ca_validate_dns_name(const char *name, char *err, size_t errlen);

/* An IPv4 or IPv6 address in text form. */
int ca_validate_ip(const char *ip, char *err, size_t errlen);

/* The SANs of an identity: each valid, no duplicates (DNS names compare case-insensitively,
 * addresses by value), at most CA_SANS_MAX in all. */
int ca_validate_sans(const char *const *dns_names, size_t n_dns, const char *const *ips,
		     size_t n_ips, char *err, size_t errlen);

/* Resolves a requested ttl_seconds: 0 gives the default (30 days, or max when smaller);
 * otherwise CA_TTL_MIN..max (max_seconds <= 0: no maximum). -EINVAL with a message naming
 * the limit. */
int ca_ttl_resolve(int64_t ttl_seconds, int64_t max_seconds, int64_t *ret_ttl, char *err,
		   size_t errlen);

/* The service: owners, identities, issuance and the CRL on PostgreSQL (ca_op.c, ca_*.c) --- */

struct db;
struct kek;
struct bus;
struct cfg;
struct rpc_call;
struct rpc_server;
struct ca_service; /* one per server; shared by threads */

#define CA_ID_LEN 36	    /* uuid text */
#define CA_PAGE_DEFAULT 100 /* page_size 0 */
#define CA_PAGE_MAX 1000    /* larger page sizes are clamped */
#define CA_ERR_LEN 512

/* What the issuing CA is made of at first start, and the limits of issuance. */
struct ca_config {
	enum crypto_key_type key_type; /* TRSTCTL_CA_KEY_TYPE, default ecdsa-p256 */
	const char *subject_cn;	       /* TRSTCTL_CA_SUBJECT_CN; NULL: "trstctl Issuing CA" */
	int validity_days;	       /* TRSTCTL_CA_VALIDITY in days; 0: 3650 */
	int64_t max_ttl_seconds;       /* TRSTCTL_CA_MAX_TTL; 0: 90 days */
	int64_t crl_interval_ms;       /* TRSTCTL_CA_CRL_INTERVAL; 0: 1 h; < 0: no timer */
};

/* The ca_config of a loaded configuration (borrows c's strings). */
int ca_config_from_cfg(const struct cfg *c, struct ca_config *ret);

/* An owner. Strings are malloc'd (ca_owner_clear). */
struct ca_owner {
	char id[CA_ID_LEN + 1];
	enum ca_owner_kind kind;
	char *name;
	char *email;	     /* "" when none */
	int64_t create_time; /* Unix microseconds */
};

/* A certificate as recorded (key_pem only in the reply that generated it). */
struct ca_cert {
	char serial[CRYPTO_SERIAL_HEX_LEN + 1];
	char identity_id[CA_ID_LEN + 1];
	char *pem;
	int64_t not_before, not_after; /* Unix seconds */
	char *key_pem;		       /* PKCS#8 of a server-generated key, else NULL; wiped */
	bool revoked;
	int reason;				       /* RFC 5280 code when revoked */
	int64_t revoke_time;			       /* Unix microseconds when revoked */
	char superseded_by[CRYPTO_SERIAL_HEX_LEN + 1]; /* "" unless renewed */
};

/* An identity. Arrays and strings are malloc'd (ca_identity_clear). */
struct ca_identity {
	char id[CA_ID_LEN + 1];
	enum ca_identity_kind kind;
	char *name;
	char owner_id[CA_ID_LEN + 1];
	enum ca_state state;
	char **dns_names;
	size_t n_dns_names;
	char **ip_addresses;
	size_t n_ip_addresses;
	enum crypto_key_type key_type;
	int64_t ttl_seconds;
	int64_t create_time, update_time;		/* Unix microseconds */
	char revocation_reason[24];			/* RFC 5280 name once revoked, else "" */
	char current_serial[CRYPTO_SERIAL_HEX_LEN + 1]; /* "" before the first issuance */
	struct ca_cert *cert; /* the current certificate when asked for and present, or NULL */
};

/*
 * The caller of an operation. Mutations with a request_id store pack()'s bytes of their
 * result in the same change; a retry then returns 1 with those bytes in *replayed (the
 * caller frees them) and changes nothing. pack gets the result with key_pem cleared, so a
 * generated private key is never stored: a replay returns the certificate without it.
 */
struct change_key;
struct ca_ctx {
	const char *tenant_id;	/* NULL: DB_DEFAULT_TENANT */
	const char *actor;	/* the principal; NULL: "anonymous" */
	const struct change_key *key; /* a mutation's key (change room); NULL: reads, or none */
	struct rpc_call *call;	/* given to the issuance check; may be NULL */
	int timeout_ms;		/* bound of the write; 0: 30 s */
	int (*pack)(const void *result, uint8_t **ret, size_t *ret_len, void *ud);
	void *pack_ud;
	/* out */
	uint8_t *replayed; /* malloc'd stored reply when the operation returned 1 */
	size_t replayed_len;
	bool check_failed;    /* the issuance check refused; its rpc status stands */
	char err[CA_ERR_LEN]; /* why an operation failed (safe to show) */
};

/* What an issuance would produce, for the issuance check (policy limits). CreateIdentity
 * asks too, for what the identity will carry (to_state requested). */
struct ca_issuance {
	const char *identity_id; /* the identity's id; its name for CreateIdentity, whose
				  * resource is identity/<name> */
	const char *const *dns_names;
	size_t n_dns_names;
	const char *const *ip_addresses;
	size_t n_ip_addresses;
	int64_t ttl_seconds;
	const char *key_type;	/* "ecdsa-p256", ... (a CSR's key: its algorithm) */
	enum ca_state to_state; /* issued, or deployed for a renewal */
	bool from_csr;
};

typedef int (*ca_issuance_check_fn)(struct rpc_call *call, const struct ca_issuance *what,
				    void *ud);

/*
 * Opens the service: loads the issuing CA (the newest sealed_keys row kind 'ca', opened
 * with kek), or creates it from cfg at first start (under an advisory lock with
 * INSERT ... ON CONFLICT DO NOTHING, then re-read: servers starting together agree on one
 * CA); makes a CRL when none exists and starts the CRL timer. db, kek and bus are borrowed
 * (bus may be NULL: events still go to the outbox when another bus hook is registered).
 * Returns -EINVAL (bad cfg), -ENOKEY/-EBADMSG (the key does not open with this KEK), db
 * errors.
 */
int ca_service_open(struct db *db, const struct kek *kek, struct bus *bus,
		    const struct ca_config *cfg, struct ca_service **ret);
/* Stops the timer and frees. Accepts NULL, returns NULL. */
struct ca_service *ca_service_close(struct ca_service *svc);

/* Installs the check called before every issuance (NULL: none). Before serving. */
void ca_service_set_issuance_check(struct ca_service *svc, ca_issuance_check_fn fn, void *ud);

/* The CA certificate followed by its issuers (valid while svc lives). */
const char *ca_service_bundle_pem(const struct ca_service *svc);

/* Owners: CreateOwner (-EINVAL, -EEXIST for a taken name), GetOwner (-ENOENT), ListOwners. */
int ca_owner_create(struct ca_service *svc, struct ca_ctx *ctx, const char *kind, const char *name,
		    const char *email, struct ca_owner *ret);
int ca_owner_get(struct ca_service *svc, struct ca_ctx *ctx, const char *id, struct ca_owner *ret);
/* Filters: kind (NULL/"": all). *ret_next is a malloc'd token or NULL on the last page. */
int ca_owner_list(struct ca_service *svc, struct ca_ctx *ctx, const char *kind, int page_size,
		  const char *page_token, struct ca_owner **ret, size_t *ret_n, char **ret_next);
void ca_owner_clear(struct ca_owner *o);

/* The fields of CreateIdentity. */
struct ca_identity_spec {
	const char *kind; /* "" = x509_certificate */
	const char *name;
	const char *owner_id;
	const char *const *dns_names;
	size_t n_dns_names;
	const char *const *ip_addresses;
	size_t n_ip_addresses;
	const char *key_type; /* "" = ecdsa-p256 */
	int64_t ttl_seconds;  /* 0 = 30 days (or the maximum when smaller) */
};

/* CreateIdentity: -EINVAL ("owner_id is required", ...), -ENOENT (unknown owner). */
int ca_identity_create(struct ca_service *svc, struct ca_ctx *ctx,
		       const struct ca_identity_spec *spec, struct ca_identity *ret);
/* GetIdentity, with its current certificate. */
int ca_identity_get(struct ca_service *svc, struct ca_ctx *ctx, const char *id,
		    struct ca_identity *ret);
/* ListIdentities (no certificates); filters owner_id and state (NULL/"": all). */
int ca_identity_list(struct ca_service *svc, struct ca_ctx *ctx, const char *owner_id,
		     const char *state, int page_size, const char *page_token,
		     struct ca_identity **ret, size_t *ret_n, char **ret_next);
void ca_identity_clear(struct ca_identity *ident);

/*
 * TransitionIdentity: moves id to state `to` along an allowed edge (else -EILSEQ with
 * "invalid transition for identity <id>: <from> -> <to>"), atomically with its audit
 * record and event. To issued (and renewing -> deployed) it issues a certificate with a
 * server-generated key (ret->cert->key_pem, returned once); to revoked, reason is an RFC
 * 5280 name (""=unspecified) and the CRL is regenerated before this returns. Two
 * transitions racing: one wins, the other gets -EILSEQ or -EBUSY (ABORTED).
 */
int ca_identity_transition(struct ca_service *svc, struct ca_ctx *ctx, const char *id,
			   const char *to, const char *reason, struct ca_identity *ret);

/*
 * IssueCertificate: issues for a requested identity (-> issued) or a renewing one
 * (-> deployed), from csr_pem (checked: signature, key strength, SANs within the
 * identity's names; -EINVAL naming the problem) or a generated key (csr_pem NULL/"").
 * ttl_seconds 0: the identity's. Kinds other than x509_certificate: -EOPNOTSUPP.
 */
int ca_cert_issue(struct ca_service *svc, struct ca_ctx *ctx, const char *identity_id,
		  const char *csr_pem, int64_t ttl_seconds, struct ca_cert *ret);
int ca_cert_get(struct ca_service *svc, struct ca_ctx *ctx, const char *serial,
		struct ca_cert *ret);
int ca_cert_list(struct ca_service *svc, struct ca_ctx *ctx, const char *identity_id, int page_size,
		 const char *page_token, struct ca_cert **ret, size_t *ret_n, char **ret_next);
void ca_cert_clear(struct ca_cert *c);

/* The current CRL (never built on read). *ret_der and *ret_pem are malloc'd. */
struct ca_crl {
	uint8_t *der;
	size_t der_len;
	char *pem;
	int64_t this_update, next_update; /* Unix seconds */
	int64_t number;
};
int ca_crl_get(struct ca_service *svc, struct ca_ctx *ctx, struct ca_crl *ret);
void ca_crl_clear(struct ca_crl *crl);
/* Builds and stores a new CRL now (number + 1). Revocation and the timer call it. */
int ca_crl_refresh(struct ca_service *svc);

/*
 * The inventory as counts (ca_inventory.c), for summaries (the Assist service, telemetry).
 * A current certificate is one that is neither revoked nor superseded and not expired.
 */
#define CA_INVENTORY_LISTED 10 /* expiring certificates listed */
#define CA_INVENTORY_LISTED_S "10"

struct ca_inventory_cert {
	char *identity_name; /* malloc'd */
	enum ca_state state; /* its identity's state */
	int64_t not_after;   /* Unix seconds */
};

struct ca_inventory {
	int64_t identities[CA_STATE_COUNT]; /* identities by state */
	int64_t identities_total;
	int64_t certificates; /* current certificates */
	int64_t expiring;     /* of them, those whose not_after is within the window */
	struct ca_inventory_cert listed[CA_INVENTORY_LISTED]; /* the soonest expiring first */
	size_t n_listed;
};

/*
 * Reads the inventory of tenant_id (NULL: the default tenant) with the expiry window
 * window_s seconds (>= 0) from now. Fills *ret (ca_inventory_clear) or returns -EINVAL or
 * a db error.
 */
int ca_inventory_get(struct ca_service *svc, const char *tenant_id, int64_t window_s,
		     struct ca_inventory *ret);
void ca_inventory_clear(struct ca_inventory *inv);

/* Frees the result of a failed or finished operation's replay. */
void ca_ctx_clear(struct ca_ctx *ctx);

/* The server's own TLS certificate (internal TLS mode; ca_tls.c) --------------------- */

/* What the server certificate carries and how long it lives. */
struct ca_server_cert_config {
	const char *const *names; /* DNS names and IP addresses (server.tls.sans), >= 1 */
	size_t n_names;
	int64_t validity_seconds;     /* lifetime of each certificate (server.tls.validity) */
	int64_t renew_before_seconds; /* renewal this far ahead of notAfter, < validity */
};

struct ca_server_cert; /* the served certificate and its renewal timer */

/*
 * Opens the server certificate of svc's CA for cfg's names: the one stored for exactly these
 * names when the current CA signed it and it stays valid beyond renew_before, else a new one
 * (ECDSA P-256, notBefore a little in the past for clients with a late clock, never past the
 * CA's notAfter), stored sealed by the KEK in sealed_keys (kind 'tls') with an audit record
 * server_certificate.issued; servers sharing the database and the names share it. Starts
 * the timer that does the same again renew_before ahead of notAfter and logs what it did.
 * Returns 0, -EINVAL (a bad name, err says which), -EKEYEXPIRED (the CA expires before
 * renew_before), db and kek errors (err says).
 */
int ca_server_cert_open(struct ca_service *svc, const struct ca_server_cert_config *cfg,
			struct ca_server_cert **ret, char *err, size_t errlen);
/* Stops the timer and frees (the key wiped). Accepts NULL, returns NULL. */
struct ca_server_cert *ca_server_cert_close(struct ca_server_cert *sc);
/*
 * The served pair, for the TLS stack at every new connection (ud is the ca_server_cert;
 * the shape of rpc's rpc_tls_source_fn). Never blocks on anything but a short lock. When
 * the pair's generation differs from *generation: sets *ret_chain_pem (the certificate,
 * then the CA bundle) and *ret_key_pem (PKCS#8; the caller wipes it with
 * crypto_free_secret), both malloc'd, updates *generation and returns 1. 0 when unchanged;
 * -ENOMEM.
 */
int ca_server_cert_fetch(void *ud, uint64_t *generation, char **ret_chain_pem, char **ret_key_pem);

/* gRPC: registers trstctl.v1.CA. svc is borrowed and must outlive the server. */
int ca_rpc_register(struct rpc_server *s, struct ca_service *svc);

/*
 * `trstctl ca import|csr|import-signed ...` (argv[0] "ca"): operator commands that install
 * the issuing CA on the database itself (TRSTCTL_POSTGRES_DSN, the KEK file), for servers
 * to load at their next start. `--help` needs no configuration (c may then be NULL).
 * Returns the exit status: 0 ok, 1 failure, 2 usage. The client commands of the CA are
 * in server/cli/.
 */
int ca_admin_cli(int argc, char **argv, const struct cfg *c);
