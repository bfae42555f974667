#pragma once
/*
 * kek: the key-encryption key (TRSTCTL_SECRETS_KEK_FILE) and envelope sealing of secret
 * values and CA keys. Each value gets a fresh 32-byte data key (AES-256-GCM over the value,
 * bound to the caller's row by the additional data); the data key is wrapped by the KEK
 * (AES-256-GCM too). A sealed value is a versioned binary blob:
 *
 *   off  len  field
 *     0    3  magic "TKS"
 *     3    1  version (1)
 *     4    8  KEK id (kek_id() in binary)
 *    12   12  wrap nonce
 *    24   32  wrapped data key          GCM under the KEK, AAD = bytes 0..11
 *    56   16  wrap tag
 *    72   12  value nonce
 *    84    n  value ciphertext          GCM under the data key, AAD = bytes 0..3 || aad
 *  84+n   16  value tag
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEK_LEN 32		  /* bytes of key material in a KEK file */
#define KEK_ID_LEN 8		  /* bytes of KEK id in a sealed header (hex: twice that) */
#define KEK_CHECK_LEN 32	  /* bytes of kek_check_value() */
#define KEK_SEAL_OVERHEAD 100	  /* sealed length = plaintext length + this */
#define KEK_MAX_PLAIN (16u << 20) /* largest value kek_seal() accepts */

/* Opaque: 32 bytes of key material in mlock'ed memory, its id, wiped by kek_free(). */
struct kek;

/*
 * Loads the KEK from path (the value of TRSTCTL_SECRETS_KEK_FILE). Symlinks are followed
 * (a Kubernetes Secret mount is a chain of them) and every rule applies to the final
 * target: a regular file of exactly 32 bytes, owned by the process user with mode 0600 or
 * 0400, or owned by root with mode 0600, 0400 or 0440; never group/world-writable.
 * With generate (TRSTCTL_KEK_GENERATE, evaluation only) a missing file is created with
 * O_EXCL, mode 0600, missing parent folders 0700, from the CSPRNG; an existing file is
 * loaded, never overwritten. *ret_generated (may be NULL) tells whether the key was
 * generated: the caller then logs that losing the file makes every sealed value
 * unrecoverable. On failure writes a one-line reason naming the file and the rule into
 * err (never key bytes) and returns -EINVAL (no path), -ENOENT (missing, no generate),
 * -EPERM (owner or mode), -EISDIR, -EBADF (not a regular file), -EMSGSIZE (wrong size),
 * -EIO, -ENOMEM or the -errno of open/read/write.
 */
int kek_load(const char *path, bool generate, struct kek **ret_kek, bool *ret_generated, char *err,
	     size_t errlen);

/* Builds a KEK from KEK_LEN bytes in memory (copied). -EINVAL on another length. */
int kek_new(const uint8_t *key, size_t len, struct kek **ret_kek);

/* Wipes and frees. Accepts NULL, returns NULL. */
struct kek *kek_free(struct kek *k);

/* The KEK id: 16 lowercase hex characters, the first 8 bytes of HMAC-SHA256(kek,
 * "trstctl kek id"). Stable for a key, safe to log; valid while k lives. */
const char *kek_id(const struct kek *k);

/* Writes the check value HMAC-SHA256(kek, "trstctl kek check") (KEK_CHECK_LEN bytes) to
 * ret_check; stored at first start. Returns 0 or -EIO. */
int kek_check_value(const struct kek *k, uint8_t *ret_check);

/*
 * A keyed digest of data that reveals nothing without the KEK: HMAC-SHA256 keyed by
 * HMAC-SHA256(kek, label). Different labels give unrelated keys (the secret store uses one
 * to record a value's digest in the audit log). Writes 32 bytes to ret_mac; returns 0,
 * -EINVAL or -EIO.
 */
int kek_hmac(const struct kek *k, const char *label, const uint8_t *data, size_t n,
	     uint8_t *ret_mac);

/* Compares a stored check value with k's in constant time. Returns 0, or -EKEYREJECTED
 * ("the KEK does not match this database", see kek_strerror) on a mismatch or a stored
 * value of the wrong length. */
int kek_verify_check(const struct kek *k, const uint8_t *stored, size_t len);

/*
 * Seals n bytes of pt (n <= KEK_MAX_PLAIN; pt may be NULL when n is 0) under a fresh data
 * key, binding it to aad (a NUL-terminated string naming the row: tenant, kind, name,
 * version; opening needs the same string). On success *ret_sealed is a malloc'd blob of
 * n + KEK_SEAL_OVERHEAD bytes (free() it). Returns -EINVAL, -EMSGSIZE, -ENOMEM or -EIO.
 */
int kek_seal(const struct kek *k, const uint8_t *pt, size_t n, const char *aad,
	     uint8_t **ret_sealed, size_t *ret_len);

/*
 * Opens a sealed blob with the same aad it was sealed with. On success *ret_pt holds the
 * *ret_n plaintext bytes in mlock'ed memory (never NULL, even for 0 bytes), released with
 * kek_free_plain(). Returns -EPROTO (malformed: short, wrong magic or version), -ENOKEY
 * (sealed under another KEK id), -EBADMSG (authentication failed: tampered, or another
 * row's aad), -EINVAL, -ENOMEM or -EIO. Never returns plaintext that did not authenticate.
 */
int kek_open(const struct kek *k, const uint8_t *sealed, size_t len, const char *aad,
	     uint8_t **ret_pt, size_t *ret_n);

/* Wipes and frees plaintext from kek_open() (n as returned). Accepts NULL, returns NULL. */
void *kek_free_plain(void *p, size_t n);

/*
 * KEK rotation: unwraps the data key of a blob sealed under old_k and wraps it under
 * new_k (fresh nonce, new KEK id). The value nonce, ciphertext and tag are copied
 * unchanged, so the aad is not needed (and not checked here). *ret is malloc'd, len
 * bytes. Returns -EPROTO, -ENOKEY (not sealed under old_k), -EBADMSG (wrapped key
 * tampered), -ENOMEM or -EIO.
 */
int kek_rewrap(const struct kek *old_k, const struct kek *new_k, const uint8_t *sealed, size_t len,
	       uint8_t **ret, size_t *ret_len);

/* A safe one-line text for the errors of this section (-EKEYREJECTED, -ENOKEY, -EBADMSG,
 * -EPROTO, -EMSGSIZE); NULL for other codes. */
const char *kek_strerror(int err);
