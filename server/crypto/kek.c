/*
 * The KEK and envelope sealing (layout in kek.h). The KEK file is checked on the file
 * descriptor that is read (fstat after open), so the checks and the read see the same
 * inode; symlinks are followed because a Kubernetes Secret mount is a chain of them
 * (kek.bin -> ..data/kek.bin, ..data -> ..<timestamp>), and every rule applies to the
 * final target. Key material and opened plaintext live in their own anonymous mappings,
 * mlock'ed where the limit allows and excluded from core dumps, wiped before unmapping.
 * Opened values of up to one page come from a small pool of such pages, mapped and locked
 * once, because mmap, mlock, madvise, munlock and munmap per value (munmap with a TLB
 * shootdown on every core) cost GetSecret about a tenth of its CPU; a pooled page is wiped
 * in full when it is given back, so a free page holds only zeros, and the pool's pages get
 * the same protection (locked, not dumped) as a fresh mapping.
 *
 * The data key is wrapped with AES-256-GCM rather than AES key wrap with padding (RFC
 * 5649): one primitive and one code path for wrap and value, and the header (version, KEK
 * id) is authenticated as additional data of the wrap, which RFC 5649 cannot carry. A
 * random 96-bit nonce per wrap is safe far beyond the number of values one KEK wraps
 * (2^32). The value's additional data leaves the KEK id out, so rotation re-wraps the
 * data key without touching the value bytes; swapping a wrapped key onto another value
 * fails because every value has its own data key.
 */
#include "kek.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define MAGIC "TKS"
#define VERSION 1
#define NONCE_LEN 12
#define TAG_LEN 16
#define DK_LEN 32
#define OFF_ID 4
#define OFF_WNONCE (OFF_ID + KEK_ID_LEN)
#define OFF_WKEY (OFF_WNONCE + NONCE_LEN)
#define OFF_WTAG (OFF_WKEY + DK_LEN)
#define OFF_VNONCE (OFF_WTAG + TAG_LEN)
#define OFF_CT (OFF_VNONCE + NONCE_LEN)

_Static_assert(OFF_CT + TAG_LEN == KEK_SEAL_OVERHEAD, "sealed layout");

struct kek {
	uint8_t key[KEK_LEN];		 /* the key material; only in this locked page */
	uint8_t id[KEK_ID_LEN];		 /* HMAC-SHA256(key, "trstctl kek id")[0..8) */
	char id_hex[2 * KEK_ID_LEN + 1]; /* id in lowercase hex, NUL-terminated */
};

/* One additional-data piece of a GCM call. */
struct aad_part {
	const void *p;
	size_t n;
};

static size_t locked_len(size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return n ? (n + page - 1) / page * page : page;
}

/* A zeroed private mapping of at least n bytes (one page for 0), locked where possible. */
static void *locked_alloc(size_t n)
{
	size_t len = locked_len(n);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	(void)mlock(p, len);
	(void)madvise(p, len, MADV_DONTDUMP);
	return p;
}

static void locked_free(void *p, size_t n)
{
	size_t len = locked_len(n);

	OPENSSL_cleanse(p, len);
	munlock(p, len);
	munmap(p, len);
}

/* The pool of one-page plaintext buffers: PLAIN_SLOTS pages in one locked mapping, made at
 * the first use; when it cannot be made, or all pages are taken, callers map their own. */
#define PLAIN_SLOTS 64

static struct {
	pthread_mutex_t lock;
	bool tried;
	uint8_t *base; /* PLAIN_SLOTS pages, or NULL */
	size_t page;
	int n_free;
	int free[PLAIN_SLOTS]; /* indexes of the free pages */
} plain_pool = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* A zeroed locked buffer for n bytes of plaintext, from the pool when n fits one page. */
static void *plain_alloc(size_t n)
{
	uint8_t *p = NULL;

	if (n > locked_len(0))
		return locked_alloc(n);
	pthread_mutex_lock(&plain_pool.lock);
	if (!plain_pool.tried) {
		plain_pool.tried = true;
		plain_pool.page = locked_len(0);
		for (int i = 0; i < PLAIN_SLOTS; i++)
			plain_pool.free[i] = PLAIN_SLOTS - 1 - i;
		p = locked_alloc(PLAIN_SLOTS * plain_pool.page);
		plain_pool.n_free = p ? PLAIN_SLOTS : 0;
		__atomic_store_n(&plain_pool.base, p, __ATOMIC_RELEASE);
		p = NULL;
	}
	if (plain_pool.n_free > 0)
		p = plain_pool.base + (size_t)plain_pool.free[--plain_pool.n_free] * plain_pool.page;
	pthread_mutex_unlock(&plain_pool.lock);
	return p ? p : locked_alloc(n);
}

void *kek_free_plain(void *p, size_t n)
{
	uint8_t *b = p, *base = __atomic_load_n(&plain_pool.base, __ATOMIC_ACQUIRE);

	if (!p)
		return NULL;
	/* base and page never change once base is set */
	if (base && b >= base && b < base + PLAIN_SLOTS * plain_pool.page) {
		OPENSSL_cleanse(b, plain_pool.page);
		pthread_mutex_lock(&plain_pool.lock);
		plain_pool.free[plain_pool.n_free++] = (int)((b - base) / plain_pool.page);
		pthread_mutex_unlock(&plain_pool.lock);
		return NULL;
	}
	locked_free(p, n);
	return NULL;
}

struct kek *kek_free(struct kek *k)
{
	if (k)
		locked_free(k, sizeof(*k));
	return NULL;
}

static int hmac_label(const uint8_t key[KEK_LEN], const char *label, uint8_t out[32])
{
	size_t outl = 0;

	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, KEK_LEN,
		       (const unsigned char *)label, strlen(label), out, 32, &outl) ||
	    outl != 32)
		return -EIO;
	return 0;
}

/* Takes the key bytes already in k->key and derives the id. */
static int kek_finish(struct kek *k)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t mac[32];
	int r = hmac_label(k->key, "trstctl kek id", mac);

	if (r < 0)
		return r;
	memcpy(k->id, mac, KEK_ID_LEN);
	for (size_t i = 0; i < KEK_ID_LEN; i++) {
		k->id_hex[2 * i] = hex[k->id[i] >> 4];
		k->id_hex[2 * i + 1] = hex[k->id[i] & 15];
	}
	k->id_hex[2 * KEK_ID_LEN] = '\0';
	return 0;
}

int kek_new(const uint8_t *key, size_t len, struct kek **ret_kek)
{
	struct kek *k;

	if (!key || len != KEK_LEN || !ret_kek)
		return -EINVAL;
	k = locked_alloc(sizeof(*k));
	if (!k)
		return -ENOMEM;
	memcpy(k->key, key, KEK_LEN);
	if (kek_finish(k) < 0) {
		kek_free(k);
		return -EIO;
	}
	*ret_kek = k;
	return 0;
}

const char *kek_id(const struct kek *k)
{
	return k->id_hex;
}

int kek_check_value(const struct kek *k, uint8_t *ret_check)
{
	return hmac_label(k->key, "trstctl kek check", ret_check);
}

int kek_hmac(const struct kek *k, const char *label, const uint8_t *data, size_t n,
	     uint8_t *ret_mac)
{
	uint8_t sub[32];
	size_t outl = 0;
	int r;

	if (!k || !label || (!data && n) || !ret_mac)
		return -EINVAL;
	r = hmac_label(k->key, label, sub);
	if (r < 0)
		return r;
	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, sub, sizeof(sub), data ? data : sub,
		       n, ret_mac, 32, &outl) ||
	    outl != 32)
		r = -EIO;
	OPENSSL_cleanse(sub, sizeof(sub));
	return r;
}

int kek_verify_check(const struct kek *k, const uint8_t *stored, size_t len)
{
	uint8_t mine[KEK_CHECK_LEN];
	int r;

	if (!stored || len != KEK_CHECK_LEN)
		return -EKEYREJECTED;
	r = kek_check_value(k, mine);
	if (r < 0)
		return r;
	r = CRYPTO_memcmp(mine, stored, KEK_CHECK_LEN) ? -EKEYREJECTED : 0;
	OPENSSL_cleanse(mine, sizeof(mine));
	return r;
}

const char *kek_strerror(int err)
{
	switch (err) {
	case -EKEYREJECTED:
		return "the KEK does not match this database";
	case -ENOKEY:
		return "the value was sealed under another KEK";
	case -EBADMSG:
		return "the sealed value failed authentication (tampered or bound to another row)";
	case -EPROTO:
		return "the sealed value is malformed";
	case -EMSGSIZE:
		return "the value is too large to seal";
	default:
		return NULL;
	}
}

/* ---- KEK file ---------------------------------------------------------------------- */

#define fail(code, ...)                                     \
	do {                                                \
		if (err && errlen)                          \
			snprintf(err, errlen, __VA_ARGS__); \
		r = (code);                                 \
		goto out;                                   \
	} while (0)

/* Checks the opened final target against the custody rules; writes the reason to err. */
static int check_stat(const struct stat *st, const char *name, char *err, size_t errlen)
{
	mode_t perm = st->st_mode & 07777;
	uid_t euid = geteuid();
	int r = 0;

	if (S_ISDIR(st->st_mode))
		fail(-EISDIR, "KEK file %s: is a directory; want a regular file of 32 bytes", name);
	if (!S_ISREG(st->st_mode))
		fail(-EBADF, "KEK file %s: is not a regular file", name);
	if (perm & 022)
		fail(-EPERM,
		     "KEK file %s: mode %04o is group- or world-writable; want 0600 or 0400", name,
		     (unsigned)perm);
	if (st->st_uid != euid && st->st_uid != 0)
		fail(-EPERM,
		     "KEK file %s: not owned by the process user (uid %u) or root (owner uid %u)",
		     name, (unsigned)euid, (unsigned)st->st_uid);
	if (perm != 0600 && perm != 0400 && !(perm == 0440 && st->st_uid == 0))
		fail(-EPERM,
		     "KEK file %s: mode %04o is not allowed; want 0600 or 0400 owned by the process user, or 0440 owned by root",
		     name, (unsigned)perm);
	if (st->st_size != KEK_LEN)
		fail(-EMSGSIZE, "KEK file %s: is %lld bytes; a KEK is exactly %d bytes", name,
		     (long long)st->st_size, KEK_LEN);
out:
	return r;
}

/* Creates the missing parent folders of path with mode 0700. */
static int make_parents(const char *path)
{
	char *dir = strdup(path);
	char *s;
	int r = 0;

	if (!dir)
		return -ENOMEM;
	s = strrchr(dir, '/');
	if (!s || s == dir)
		goto done;
	*s = '\0';
	for (char *p = dir + 1;; p++) {
		bool end = *p == '\0';

		if (*p != '/' && !end)
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			r = -errno;
			goto done;
		}
		if (end)
			break;
		*p = '/';
	}
done:
	free(dir);
	return r;
}

/* Writes a fresh key to a new file (O_EXCL). Returns 0, -EEXIST (lost a race or the path
 * is a dangling symlink: load instead), or another -errno with err set. */
static int generate_file(const char *path, struct kek *k, char *err, size_t errlen)
{
	int fd = -1, r = 0;
	ssize_t w;

	r = make_parents(path);
	if (r < 0)
		fail(r, "KEK file %s: cannot create its parent folders: %s", path, strerror(-r));
	if (RAND_priv_bytes(k->key, KEK_LEN) != 1)
		fail(-EIO, "KEK file %s: the random generator failed", path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		if (r == -EEXIST)
			goto out;
		fail(r, "KEK file %s: cannot create: %s", path, strerror(-r));
	}
	if (fchmod(fd, 0600) < 0)
		r = -errno;
	else if ((w = write(fd, k->key, KEK_LEN)) != KEK_LEN)
		r = w < 0 ? -errno : -EIO;
	else if (fsync(fd) < 0)
		r = -errno;
	if (r < 0) {
		unlink(path);
		fail(r, "KEK file %s: cannot write: %s", path, strerror(-r));
	}
out:
	if (fd >= 0)
		close(fd);
	return r;
}

/* Reads exactly KEK_LEN bytes into k->key from an open, checked file. */
static int read_key(int fd, struct kek *k, const char *name, char *err, size_t errlen)
{
	size_t got = 0;
	uint8_t extra;
	ssize_t n;
	int r = 0;

	while (got < KEK_LEN) {
		n = read(fd, k->key + got, KEK_LEN - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail(-errno, "KEK file %s: cannot read: %s", name, strerror(errno));
		if (n == 0)
			fail(-EMSGSIZE, "KEK file %s: is %zu bytes; a KEK is exactly %d bytes",
			     name, got, KEK_LEN);
		got += (size_t)n;
	}
	if (read(fd, &extra, 1) != 0)
		fail(-EMSGSIZE, "KEK file %s: is more than %d bytes; a KEK is exactly %d bytes",
		     name, KEK_LEN, KEK_LEN);
out:
	return r;
}

int kek_load(const char *path, bool generate, struct kek **ret_kek, bool *ret_generated, char *err,
	     size_t errlen)
{
	char name[PATH_MAX + 32], *target = NULL;
	bool generated = false;
	struct kek *k = NULL;
	struct stat st;
	int fd = -1, r = 0;

	if (err && errlen)
		err[0] = '\0';
	if (!path || !*path)
		fail(-EINVAL,
		     "no KEK file: set TRSTCTL_SECRETS_KEK_FILE to a file of 32 random bytes");
	if (!ret_kek)
		fail(-EINVAL, "KEK file %s: no place for the key", path);
	k = locked_alloc(sizeof(*k));
	if (!k)
		fail(-ENOMEM, "KEK file %s: out of memory", path);
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && generate) {
		r = generate_file(path, k, err, errlen);
		if (r == 0)
			generated = true;
		else if (r != -EEXIST)
			goto out;
		else
			fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	}
	if (!generated) {
		if (fd < 0 && errno == ENOENT)
			fail(-ENOENT,
			     "KEK file %s: does not exist; set TRSTCTL_SECRETS_KEK_FILE to a file of 32 random bytes (or TRSTCTL_KEK_GENERATE=true, evaluation only)",
			     path);
		if (fd < 0)
			fail(-errno, "KEK file %s: cannot open: %s", path, strerror(errno));
		/* Name the final target too when the path is a symlink chain. */
		if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
			target = realpath(path, NULL);
		if (target)
			snprintf(name, sizeof(name), "%s (-> %s)", path, target);
		else
			snprintf(name, sizeof(name), "%s", path);
		if (fstat(fd, &st) < 0)
			fail(-errno, "KEK file %s: cannot stat: %s", name, strerror(errno));
		r = check_stat(&st, name, err, errlen);
		if (r < 0)
			goto out;
		r = read_key(fd, k, name, err, errlen);
		if (r < 0)
			goto out;
	}
	r = kek_finish(k);
	if (r < 0)
		fail(r, "KEK file %s: cannot derive the KEK id", path);
	*ret_kek = k;
	k = NULL;
	if (ret_generated)
		*ret_generated = generated;
out:
	if (fd >= 0)
		close(fd);
	free(target);
	kek_free(k);
	return r;
}

#undef fail

/* ---- sealing ----------------------------------------------------------------------- */

/* One AES-256-GCM pass. Decrypting checks tag and returns -EBADMSG (out wiped) on a
 * mismatch; encrypting writes tag. */
static int gcm(bool enc, const uint8_t *key, const uint8_t *nonce, const struct aad_part *aad,
	       size_t n_aad, const uint8_t *in, size_t n, uint8_t *out, uint8_t *tag)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int outl = 0, finl = 0, r = -EIO;

	if (!ctx)
		return -ENOMEM;
	if (n > INT_MAX)
		goto out;
	if (EVP_CipherInit_ex2(ctx, EVP_aes_256_gcm(), key, nonce, enc, NULL) != 1)
		goto out;
	for (size_t i = 0; i < n_aad; i++)
		if (aad[i].n > INT_MAX ||
		    EVP_CipherUpdate(ctx, NULL, &outl, aad[i].p, (int)aad[i].n) != 1)
			goto out;
	if (n && EVP_CipherUpdate(ctx, out, &outl, in, (int)n) != 1)
		goto out;
	if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, tag) != 1)
		goto out;
	if (EVP_CipherFinal_ex(ctx, out + outl, &finl) != 1) {
		if (!enc) {
			OPENSSL_cleanse(out, n);
			r = -EBADMSG;
		}
		goto out;
	}
	if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, tag) != 1)
		goto out;
	r = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

/* Wraps dk under k into the header of blob (magic, version, id, wrap nonce, key, tag). */
static int wrap(const struct kek *k, const uint8_t *dk, uint8_t *blob)
{
	struct aad_part aad = { blob, OFF_WNONCE };

	memcpy(blob, MAGIC, 3);
	blob[3] = VERSION;
	memcpy(blob + OFF_ID, k->id, KEK_ID_LEN);
	if (RAND_bytes(blob + OFF_WNONCE, NONCE_LEN) != 1)
		return -EIO;
	return gcm(true, k->key, blob + OFF_WNONCE, &aad, 1, dk, DK_LEN, blob + OFF_WKEY,
		   blob + OFF_WTAG);
}

/* Checks the frame of a sealed blob and unwraps its data key into dk. */
static int unwrap(const struct kek *k, const uint8_t *blob, size_t len, uint8_t *dk)
{
	struct aad_part aad = { blob, OFF_WNONCE };

	if (!blob || len < KEK_SEAL_OVERHEAD || len - KEK_SEAL_OVERHEAD > KEK_MAX_PLAIN ||
	    memcmp(blob, MAGIC, 3) != 0 || blob[3] != VERSION)
		return -EPROTO;
	if (memcmp(blob + OFF_ID, k->id, KEK_ID_LEN) != 0)
		return -ENOKEY;
	return gcm(false, k->key, blob + OFF_WNONCE, &aad, 1, blob + OFF_WKEY, DK_LEN, dk,
		   (uint8_t *)(uintptr_t)(blob + OFF_WTAG));
}

int kek_seal(const struct kek *k, const uint8_t *pt, size_t n, const char *aad,
	     uint8_t **ret_sealed, size_t *ret_len)
{
	struct aad_part parts[2];
	uint8_t dk[DK_LEN], *blob;
	int r;

	if (!k || !aad || (!pt && n) || !ret_sealed || !ret_len)
		return -EINVAL;
	if (n > KEK_MAX_PLAIN)
		return -EMSGSIZE;
	blob = malloc(n + KEK_SEAL_OVERHEAD);
	if (!blob)
		return -ENOMEM;
	r = RAND_priv_bytes(dk, DK_LEN) == 1 && RAND_bytes(blob + OFF_VNONCE, NONCE_LEN) == 1 ?
		    wrap(k, dk, blob) :
		    -EIO;
	if (r == 0) {
		parts[0] = (struct aad_part){ blob, OFF_ID };
		parts[1] = (struct aad_part){ aad, strlen(aad) };
		r = gcm(true, dk, blob + OFF_VNONCE, parts, 2, pt, n, blob + OFF_CT,
			blob + OFF_CT + n);
	}
	OPENSSL_cleanse(dk, sizeof(dk));
	if (r < 0) {
		free(blob);
		return r;
	}
	*ret_sealed = blob;
	*ret_len = n + KEK_SEAL_OVERHEAD;
	return 0;
}

int kek_open(const struct kek *k, const uint8_t *sealed, size_t len, const char *aad,
	     uint8_t **ret_pt, size_t *ret_n)
{
	struct aad_part parts[2];
	uint8_t dk[DK_LEN], *pt = NULL;
	size_t n;
	int r;

	if (!k || !aad || !ret_pt || !ret_n)
		return -EINVAL;
	r = unwrap(k, sealed, len, dk);
	if (r < 0)
		goto out;
	n = len - KEK_SEAL_OVERHEAD;
	pt = plain_alloc(n);
	if (!pt) {
		r = -ENOMEM;
		goto out;
	}
	parts[0] = (struct aad_part){ sealed, OFF_ID };
	parts[1] = (struct aad_part){ aad, strlen(aad) };
	r = gcm(false, dk, sealed + OFF_VNONCE, parts, 2, sealed + OFF_CT, n, pt,
		(uint8_t *)(uintptr_t)(sealed + OFF_CT + n));
	if (r < 0)
		goto out;
	*ret_pt = pt;
	*ret_n = n;
	pt = NULL;
out:
	OPENSSL_cleanse(dk, sizeof(dk));
	if (pt)
		kek_free_plain(pt, len - KEK_SEAL_OVERHEAD);
	return r;
}

int kek_rewrap(const struct kek *old_k, const struct kek *new_k, const uint8_t *sealed, size_t len,
	       uint8_t **ret, size_t *ret_len)
{
	uint8_t dk[DK_LEN], *blob = NULL;
	int r;

	if (!old_k || !new_k || !ret || !ret_len)
		return -EINVAL;
	r = unwrap(old_k, sealed, len, dk);
	if (r < 0)
		goto out;
	blob = malloc(len);
	if (!blob) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(blob + OFF_VNONCE, sealed + OFF_VNONCE, len - OFF_VNONCE);
	r = wrap(new_k, dk, blob);
	if (r < 0)
		goto out;
	*ret = blob;
	*ret_len = len;
	blob = NULL;
out:
	OPENSSL_cleanse(dk, sizeof(dk));
	free(blob);
	return r;
}
