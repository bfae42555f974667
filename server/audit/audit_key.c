/*
 * The audit signing key and checkpoints. One Ed25519 key per install, kept in sealed_keys
 * (default tenant, kind 'audit', name 'audit', version n): public_key holds the 32 raw
 * public bytes, sealed the 32-byte private seed sealed by the KEK with additional data
 * "sealed_keys tenant_id=<t> kind=audit name=audit version=<n>", so the blob opens only
 * in its own row. The highest version signs; every version's public key verifies, and
 * verifying needs no KEK (operators run `trstctl audit verify` without it).
 *
 * Two servers starting on an empty database may both generate a key: both insert with
 * ON CONFLICT DO NOTHING and then use whatever the table holds, so they agree on one.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "audit-internal.h"
#include "db.h"
#include "kek.h"

#define SEED_LEN 32
#define SIG_LEN 64

static const char select_keys_sql[] =
	"SELECT version, public_key, sealed FROM sealed_keys WHERE tenant_id = $1 AND "
	"kind = 'audit' AND name = 'audit' ORDER BY version";

static void key_aad(char *buf, size_t len, int version)
{
	snprintf(buf, len, "sealed_keys tenant_id=%s kind=audit name=audit version=%d",
		 DB_DEFAULT_TENANT, version);
}

static void free_pubs(struct audit_pub *pubs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		EVP_PKEY_free(pubs[i].pkey);
	free(pubs);
}

/* Replaces a->pubs with the public keys in rows (caller holds key_mu or is single). */
static int set_pubs(struct audit *a, const struct db_rows *rows)
{
	struct audit_pub *pubs = calloc(rows->n_rows ? rows->n_rows : 1, sizeof(*pubs));

	if (!pubs)
		return -ENOMEM;
	for (size_t i = 0; i < rows->n_rows; i++) {
		const char *v = db_rows_get(rows, i, 0), *pk = db_rows_get(rows, i, 1);

		if (!v || !pk || rows->lengths[i * rows->n_cols + 1] != 32) {
			free_pubs(pubs, i);
			return -EPROTO;
		}
		pubs[i].version = atoi(v);
		pubs[i].pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL,
							   (const unsigned char *)pk, 32);
		if (!pubs[i].pkey) {
			free_pubs(pubs, i);
			return -EPROTO;
		}
	}
	free_pubs(a->pubs, a->n_pubs);
	a->pubs = pubs;
	a->n_pubs = rows->n_rows;
	return 0;
}

static int select_keys(struct db_conn *conn, struct db_rows **ret_rows)
{
	struct db_param p = DB_TEXT(DB_DEFAULT_TENANT);

	return db_exec(conn, select_keys_sql, &p, 1, ret_rows);
}

/* Generates a key and inserts it as version 1 unless a key exists by then. */
static int create_key(const struct kek *kek, struct db_conn *conn)
{
	uint8_t seed[SEED_LEN], pub[32];
	uint8_t *sealed = NULL;
	size_t sealed_len = 0, pub_len = sizeof(pub);
	EVP_PKEY *pk = NULL;
	char aad[160];
	int r = -EIO;

	if (RAND_priv_bytes(seed, sizeof(seed)) != 1)
		goto out;
	pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
	if (!pk || EVP_PKEY_get_raw_public_key(pk, pub, &pub_len) != 1)
		goto out;
	key_aad(aad, sizeof(aad), 1);
	r = kek_seal(kek, seed, sizeof(seed), aad, &sealed, &sealed_len);
	if (r < 0)
		goto out;
	{
		struct db_param p[3] = { DB_TEXT(DB_DEFAULT_TENANT), DB_BYTES(pub, 32),
					 DB_BYTES(sealed, sealed_len) };

		r = db_exec(
			conn,
			"INSERT INTO sealed_keys (tenant_id, kind, name, version, public_key, "
			"sealed) VALUES ($1, 'audit', 'audit', 1, $2, $3) ON CONFLICT DO NOTHING",
			p, 3, NULL);
	}
out:
	OPENSSL_cleanse(seed, sizeof(seed));
	EVP_PKEY_free(pk);
	free(sealed);
	return r;
}

/* Opens the newest key of rows into a->sign_key; checks it against its public key. */
static int open_sign_key(struct audit *a, const struct kek *kek, const struct db_rows *rows)
{
	size_t last = rows->n_rows - 1;
	const char *v = db_rows_get(rows, last, 0), *pub = db_rows_get(rows, last, 1);
	const char *sealed = db_rows_get(rows, last, 2);
	uint8_t *seed = NULL, derived[32];
	size_t seed_len = 0, derived_len = sizeof(derived);
	EVP_PKEY *pk;
	char aad[160];
	int r, version;

	if (!v || !pub || !sealed)
		return -EPROTO;
	version = atoi(v);
	key_aad(aad, sizeof(aad), version);
	r = kek_open(kek, (const uint8_t *)sealed, rows->lengths[last * rows->n_cols + 2], aad,
		     &seed, &seed_len);
	if (r < 0)
		return r;
	if (seed_len != SEED_LEN) {
		kek_free_plain(seed, seed_len);
		return -EPROTO;
	}
	pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, seed_len);
	kek_free_plain(seed, seed_len);
	if (!pk)
		return -EIO;
	if (EVP_PKEY_get_raw_public_key(pk, derived, &derived_len) != 1 ||
	    memcmp(derived, pub, 32) != 0) {
		EVP_PKEY_free(pk);
		return -EBADMSG;
	}
	a->sign_key = pk;
	a->sign_version = version;
	return 0;
}

int audit_key_load(struct audit *a, const struct kek *kek)
{
	struct db_conn *conn = NULL;
	struct db_rows *rows = NULL;
	int r;

	r = db_acquire(a->db, 10000, &conn);
	if (r < 0)
		return r;
	r = select_keys(conn, &rows);
	if (r >= 0 && rows->n_rows == 0 && kek) {
		rows = db_rows_free(rows);
		r = create_key(kek, conn);
		if (r >= 0)
			r = select_keys(conn, &rows);
	}
	if (r >= 0)
		r = set_pubs(a, rows);
	if (r >= 0 && kek)
		r = rows->n_rows ? open_sign_key(a, kek, rows) : -EPROTO;
	db_rows_free(rows);
	db_release(a->db, conn);
	return r;
}

void audit_key_free(struct audit *a)
{
	EVP_PKEY_free(a->sign_key);
	a->sign_key = NULL;
	free_pubs(a->pubs, a->n_pubs);
	a->pubs = NULL;
	a->n_pubs = 0;
}

/* The signed message (see audit.h); at most 4 + 27 + 4 + 36 + 4 + 8 + 4 + 32 bytes. */
static size_t checkpoint_msg(const char *tenant, int64_t sequence,
			     const uint8_t hash[AUDIT_HASH_LEN], uint8_t *buf)
{
	static const char label[] = "trstctl.audit.checkpoint.v1";
	size_t n = 0, tl = strlen(tenant);
	uint64_t u = (uint64_t)sequence;

#define PUT_LEN(l)                               \
	do {                                     \
		buf[n++] = (uint8_t)((l) >> 24); \
		buf[n++] = (uint8_t)((l) >> 16); \
		buf[n++] = (uint8_t)((l) >> 8);  \
		buf[n++] = (uint8_t)(l);         \
	} while (0)
	PUT_LEN(sizeof(label) - 1);
	memcpy(buf + n, label, sizeof(label) - 1);
	n += sizeof(label) - 1;
	PUT_LEN(tl);
	memcpy(buf + n, tenant, tl);
	n += tl;
	PUT_LEN(8);
	for (int i = 0; i < 8; i++)
		buf[n++] = (uint8_t)(u >> (56 - 8 * i));
	PUT_LEN(AUDIT_HASH_LEN);
	memcpy(buf + n, hash, AUDIT_HASH_LEN);
	n += AUDIT_HASH_LEN;
#undef PUT_LEN
	return n;
}

int audit_key_sign(struct audit *a, const char *tenant, int64_t sequence,
		   const uint8_t hash[AUDIT_HASH_LEN], uint8_t sig[SIG_LEN])
{
	uint8_t msg[160];
	size_t n, sig_len = SIG_LEN;
	EVP_MD_CTX *md;
	int r = -EIO;

	if (!a->sign_key || strlen(tenant) != AUDIT_UUID_LEN)
		return -EINVAL;
	n = checkpoint_msg(tenant, sequence, hash, msg);
	md = EVP_MD_CTX_new();
	if (!md)
		return -ENOMEM;
	if (EVP_DigestSignInit(md, NULL, NULL, NULL, a->sign_key) == 1 &&
	    EVP_DigestSign(md, sig, &sig_len, msg, n) == 1 && sig_len == SIG_LEN)
		r = 0;
	EVP_MD_CTX_free(md);
	return r;
}

static int verify_with(void *pkey, const uint8_t *msg, size_t n, const uint8_t *sig, size_t sig_len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int r;

	if (!md)
		return -ENOMEM;
	r = EVP_DigestVerifyInit(md, NULL, NULL, NULL, pkey) == 1 &&
			    EVP_DigestVerify(md, sig, sig_len, msg, n) == 1 ?
		    0 :
		    -EBADMSG;
	EVP_MD_CTX_free(md);
	return r;
}

/* Looks version up in a->pubs and verifies; -ENOKEY when it is not there. */
static int verify_locked(struct audit *a, int version, const uint8_t *msg, size_t n,
			 const uint8_t *sig, size_t sig_len)
{
	for (size_t i = 0; i < a->n_pubs; i++)
		if (a->pubs[i].version == version)
			return verify_with(a->pubs[i].pkey, msg, n, sig, sig_len);
	return -ENOKEY;
}

int audit_key_verify(struct audit *a, struct db_conn *conn, int version, const char *tenant,
		     int64_t sequence, const uint8_t hash[AUDIT_HASH_LEN], const uint8_t *sig,
		     size_t sig_len)
{
	uint8_t msg[160];
	size_t n;
	int r;

	if (strlen(tenant) != AUDIT_UUID_LEN)
		return -EINVAL;
	if (sig_len != SIG_LEN)
		return -EBADMSG;
	n = checkpoint_msg(tenant, sequence, hash, msg);
	pthread_mutex_lock(&a->key_mu);
	r = verify_locked(a, version, msg, n, sig, sig_len);
	if (r == -ENOKEY) {
		/* Another server may have rotated the key since we loaded: reload once. */
		struct db_rows *rows = NULL;

		if (select_keys(conn, &rows) >= 0 && set_pubs(a, rows) >= 0)
			r = verify_locked(a, version, msg, n, sig, sig_len);
		db_rows_free(rows);
	}
	pthread_mutex_unlock(&a->key_mu);
	return r;
}

int audit_checkpoint_insert(struct audit *a, struct db_conn *conn, const char *tenant,
			    int64_t sequence, const uint8_t hash[AUDIT_HASH_LEN])
{
	uint8_t sig[SIG_LEN];
	char seq[24], ver[16];
	int r;

	r = audit_key_sign(a, tenant, sequence, hash, sig);
	if (r < 0)
		return r;
	snprintf(seq, sizeof(seq), "%" PRId64, sequence);
	snprintf(ver, sizeof(ver), "%d", a->sign_version);
	{
		struct db_param p[5] = { DB_TEXT(tenant), DB_TEXT(seq),
					 DB_BYTES(hash, AUDIT_HASH_LEN), DB_TEXT(ver),
					 DB_BYTES(sig, SIG_LEN) };

		return db_exec(conn,
			       "INSERT INTO audit_checkpoints (tenant_id, sequence, hash, "
			       "key_version, signature) VALUES ($1, $2, $3, $4, $5) "
			       "ON CONFLICT DO NOTHING",
			       p, 5, NULL);
	}
}
