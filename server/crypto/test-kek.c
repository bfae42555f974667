/*
 * Unit tests for the KEK and envelope sealing: every custody rule of the KEK file (modes,
 * owners, sizes, directories, symlink chains as a Kubernetes Secret mounts them), the
 * generate path, and seal/open/rewrap against tampering, swapped rows and wrong KEKs.
 * Everything happens in a fresh temporary folder. The owner cases need root (chown);
 * without it they are skipped and say so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "crypto.h"

#define OFF_ID 4      /* KEK id in a sealed blob (kek.h) */
#define OFF_VNONCE 72 /* value nonce: from here on rewrap copies bytes unchanged */

static char tmpdir[] = "/tmp/test-kek-XXXXXX";
static const uint8_t key_a[KEK_LEN] = "0123456789abcdef0123456789abcdef";

static const char *at(const char *name)
{
	static char buf[4][PATH_MAX];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmpdir, name);
	return buf[i];
}

static void write_file(const char *path, const void *p, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* Loads path; on success checks the key is key_a by its id. Returns kek_load's result. */
static int load(const char *path, char *err, size_t errlen)
{
	struct kek *k = NULL, *ref = NULL;
	int r = kek_load(path, false, &k, NULL, err, errlen);

	if (r == 0) {
		assert_int_equal(kek_new(key_a, KEK_LEN, &ref), 0);
		assert_string_equal(kek_id(k), kek_id(ref));
		ref = kek_free(ref);
		k = kek_free(k);
	} else {
		assert_null(k);
	}
	return r;
}

static void test_modes(void **state)
{
	static const struct {
		mode_t mode;
		int want;
		const char *rule;
	} cases[] = {
		{ 0600, 0, NULL },
		{ 0400, 0, NULL },
		{ 0644, -EPERM, "not allowed" },
		{ 0640, -EPERM, "not allowed" },
		{ 0604, -EPERM, "not allowed" },
		{ 0700, -EPERM, "not allowed" },
		{ 0620, -EPERM, "group- or world-writable" },
		{ 0602, -EPERM, "group- or world-writable" },
		{ 0666, -EPERM, "group- or world-writable" },
		{ 0660, -EPERM, "group- or world-writable" },
	};
	char err[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *p = at("mode.bin");

		write_file(p, key_a, KEK_LEN, cases[i].mode);
		err[0] = 'x';
		assert_int_equal(load(p, err, sizeof(err)), cases[i].want);
		if (cases[i].rule) {
			assert_non_null(strstr(err, p));
			assert_non_null(strstr(err, cases[i].rule));
		} else {
			assert_string_equal(err, "");
		}
		unlink(p);
	}
}

static void test_sizes_and_types(void **state)
{
	static const uint8_t big[64];
	const char *p = at("size.bin");
	char err[512];

	for (size_t n = 0; n <= 64; n++) {
		if (n == KEK_LEN)
			continue;
		write_file(p, big, n, 0600);
		assert_int_equal(load(p, err, sizeof(err)), -EMSGSIZE);
		assert_non_null(strstr(err, p));
		assert_non_null(strstr(err, "exactly 32 bytes"));
		unlink(p);
	}

	assert_int_equal(mkdir(at("dir.bin"), 0700), 0);
	assert_int_equal(load(at("dir.bin"), err, sizeof(err)), -EISDIR);
	assert_non_null(strstr(err, "is a directory"));
	rmdir(at("dir.bin"));

	/* A FIFO neither blocks the open nor passes as a file. */
	assert_int_equal(mkfifo(at("fifo.bin"), 0600), 0);
	assert_int_equal(load(at("fifo.bin"), err, sizeof(err)), -EBADF);
	assert_non_null(strstr(err, "not a regular file"));
	unlink(at("fifo.bin"));
}

static void test_missing(void **state)
{
	struct kek *k = NULL;
	char err[512];

	assert_int_equal(kek_load(at("none.bin"), false, &k, NULL, err, sizeof(err)), -ENOENT);
	assert_null(k);
	assert_non_null(strstr(err, at("none.bin")));
	assert_non_null(strstr(err, "TRSTCTL_SECRETS_KEK_FILE"));
	assert_int_equal(access(at("none.bin"), F_OK), -1);

	assert_int_equal(kek_load(NULL, true, &k, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "TRSTCTL_SECRETS_KEK_FILE"));
	assert_int_equal(kek_load("", false, &k, NULL, err, sizeof(err)), -EINVAL);
	/* A tiny or absent error buffer is fine. */
	assert_int_equal(kek_load(at("none.bin"), false, &k, NULL, err, 4), -ENOENT);
	assert_int_equal(strlen(err), 3);
	assert_int_equal(kek_load(at("none.bin"), false, &k, NULL, NULL, 0), -ENOENT);
	assert_null(k);
}

static void test_generate(void **state)
{
	const char *p = at("gen/deeper/kek.bin");
	struct kek *k = NULL, *k2 = NULL, *ref = NULL;
	uint8_t bytes[KEK_LEN + 1];
	bool generated = false;
	char err[512];
	struct stat st;
	int fd;

	assert_int_equal(kek_load(p, true, &k, &generated, err, sizeof(err)), 0);
	assert_true(generated);
	assert_int_equal(stat(at("gen"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(stat(at("gen/deeper"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, KEK_LEN);

	/* The file holds the key in memory. */
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, bytes, sizeof(bytes)), KEK_LEN);
	close(fd);
	assert_int_equal(kek_new(bytes, KEK_LEN, &ref), 0);
	assert_string_equal(kek_id(k), kek_id(ref));

	/* Generate again: the existing file is loaded, not overwritten. */
	assert_int_equal(kek_load(p, true, &k2, &generated, err, sizeof(err)), 0);
	assert_false(generated);
	assert_string_equal(kek_id(k2), kek_id(ref));
	k2 = kek_free(k2);

	/* An existing bad file is refused, and left as it is. */
	write_file(at("gen/short.bin"), key_a, 31, 0600);
	assert_int_equal(kek_load(at("gen/short.bin"), true, &k2, &generated, err, sizeof(err)),
			 -EMSGSIZE);
	assert_int_equal(stat(at("gen/short.bin"), &st), 0);
	assert_int_equal(st.st_size, 31);

	/* A dangling symlink is not followed to create a file elsewhere. */
	assert_int_equal(symlink(at("gen/elsewhere.bin"), at("gen/dangling.bin")), 0);
	assert_int_equal(kek_load(at("gen/dangling.bin"), true, &k2, NULL, err, sizeof(err)),
			 -ENOENT);
	assert_int_equal(access(at("gen/elsewhere.bin"), F_OK), -1);
	assert_null(k2);

	/* Existing parent folders keep their mode. */
	assert_int_equal(mkdir(at("gen2"), 0755), 0);
	assert_int_equal(kek_load(at("gen2/kek.bin"), true, &k2, &generated, err, sizeof(err)), 0);
	assert_true(generated);
	assert_string_not_equal(kek_id(k2), kek_id(k));
	assert_int_equal(stat(at("gen2"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);

	k2 = kek_free(k2);
	ref = kek_free(ref);
	k = kek_free(k);
}

/* The layout kubelet writes for a Secret volume: kek.bin -> ..data/kek.bin, ..data ->
 * ..<timestamp>, the file in the timestamped folder. */
static void make_k8s(const char *dir, mode_t mode)
{
	char real[128];

	assert_int_equal(mkdir(at(dir), 0755), 0);
	snprintf(real, sizeof(real), "%s/..2026_11_28_10_00_00.123456789", dir);
	assert_int_equal(mkdir(at(real), 0755), 0);
	snprintf(real, sizeof(real), "%s/..2026_11_28_10_00_00.123456789/kek.bin", dir);
	write_file(at(real), key_a, KEK_LEN, mode);
	snprintf(real, sizeof(real), "%s/..data", dir);
	assert_int_equal(symlink("..2026_11_28_10_00_00.123456789", at(real)), 0);
	snprintf(real, sizeof(real), "%s/kek.bin", dir);
	assert_int_equal(symlink("..data/kek.bin", at(real)), 0);
}

static void test_symlinks(void **state)
{
	char err[512];

	make_k8s("k8s-own", 0400);
	assert_int_equal(load(at("k8s-own/kek.bin"), err, sizeof(err)), 0);

	/* A symlink to a group-writable file: refused, naming the link and its target. */
	make_k8s("k8s-gw", 0660);
	assert_int_equal(load(at("k8s-gw/kek.bin"), err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, at("k8s-gw/kek.bin")));
	assert_non_null(strstr(err, "..2026_11_28_10_00_00.123456789/kek.bin"));
	assert_non_null(strstr(err, "group- or world-writable"));

	/* A symlink to a directory and a symlink loop. */
	assert_int_equal(symlink("k8s-own", at("link-dir.bin")), 0);
	assert_int_equal(load(at("link-dir.bin"), err, sizeof(err)), -EISDIR);
	assert_int_equal(symlink("loop-b.bin", at("loop-a.bin")), 0);
	assert_int_equal(symlink("loop-a.bin", at("loop-b.bin")), 0);
	assert_int_equal(load(at("loop-a.bin"), err, sizeof(err)), -ELOOP);
	assert_non_null(strstr(err, at("loop-a.bin")));
}

static void test_owners(void **state)
{
	char err[512];

	if (geteuid() != 0) {
		print_message("skipped: the owner cases need root (chown)\n");
		skip();
	}
	/* Root-owned 0440, as kubelet writes a Secret with defaultMode 0440. */
	make_k8s("k8s-root", 0440);
	assert_int_equal(chown(at("k8s-root/..data/kek.bin"), 0, 0), 0);
	assert_int_equal(load(at("k8s-root/kek.bin"), err, sizeof(err)), 0);

	/* Owned by someone else: refused, whatever the mode. */
	write_file(at("nobody.bin"), key_a, KEK_LEN, 0600);
	assert_int_equal(chown(at("nobody.bin"), 65534, 65534), 0);
	assert_int_equal(load(at("nobody.bin"), err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, at("nobody.bin")));
	assert_non_null(strstr(err, "not owned by"));
	assert_int_equal(chmod(at("nobody.bin"), 0400), 0);
	assert_int_equal(load(at("nobody.bin"), err, sizeof(err)), -EPERM);
	assert_int_equal(chmod(at("nobody.bin"), 0440), 0);
	assert_int_equal(load(at("nobody.bin"), err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "not owned by"));
	/* 0640 stays refused for root too. */
	write_file(at("root640.bin"), key_a, KEK_LEN, 0640);
	assert_int_equal(load(at("root640.bin"), err, sizeof(err)), -EPERM);
}

static void test_id(void **state)
{
	uint8_t other[KEK_LEN];
	struct kek *a = NULL, *a2 = NULL, *b = NULL;
	char hex[2 * KEK_LEN + 1];

	memset(other, 7, sizeof(other));
	assert_int_equal(kek_new(key_a, KEK_LEN, &a), 0);
	assert_int_equal(kek_new(key_a, KEK_LEN, &a2), 0);
	assert_int_equal(kek_new(other, KEK_LEN, &b), 0);
	assert_int_equal(kek_new(key_a, KEK_LEN - 1, &b), -EINVAL);
	assert_int_equal(strlen(kek_id(a)), 2 * KEK_ID_LEN);
	assert_int_equal(strspn(kek_id(a), "0123456789abcdef"), 2 * KEK_ID_LEN);
	assert_string_equal(kek_id(a), kek_id(a2));
	assert_string_not_equal(kek_id(a), kek_id(b));
	/* Not a slice of the key, raw or in hex. */
	for (int i = 0; i < KEK_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", key_a[i]);
	assert_null(strstr(hex, kek_id(a)));
	assert_null(memmem(key_a, KEK_LEN, kek_id(a), 2 * KEK_ID_LEN));
	assert_null(kek_free(a));
	assert_null(kek_free(a2));
	assert_null(kek_free(b));
	assert_null(kek_free(NULL));
	assert_null(kek_free_plain(NULL, 0));
}

static void test_check_value(void **state)
{
	uint8_t other[KEK_LEN], cv[KEK_CHECK_LEN], cv2[KEK_CHECK_LEN];
	struct kek *a = NULL, *b = NULL;

	memset(other, 7, sizeof(other));
	assert_int_equal(kek_new(key_a, KEK_LEN, &a), 0);
	assert_int_equal(kek_new(other, KEK_LEN, &b), 0);
	assert_int_equal(kek_check_value(a, cv), 0);
	assert_int_equal(kek_check_value(a, cv2), 0);
	assert_memory_equal(cv, cv2, KEK_CHECK_LEN);
	assert_memory_not_equal(cv, key_a, KEK_CHECK_LEN);
	assert_int_equal(kek_verify_check(a, cv, sizeof(cv)), 0);
	assert_int_equal(kek_verify_check(b, cv, sizeof(cv)), -EKEYREJECTED);
	assert_string_equal(kek_strerror(-EKEYREJECTED), "the KEK does not match this database");
	assert_int_equal(kek_verify_check(a, cv, sizeof(cv) - 1), -EKEYREJECTED);
	assert_int_equal(kek_verify_check(a, NULL, 0), -EKEYREJECTED);
	cv[KEK_CHECK_LEN - 1] ^= 1;
	assert_int_equal(kek_verify_check(a, cv, sizeof(cv)), -EKEYREJECTED);
	kek_free(a);
	kek_free(b);
}

static void roundtrip(const struct kek *k, size_t n)
{
	uint8_t *pt = malloc(n ? n : 1), *sealed = NULL, *out = NULL, *sealed2 = NULL;
	size_t len = 0, len2 = 0, on = 99;

	assert_non_null(pt);
	assert_int_equal(RAND_bytes(pt, (int)(n ? n : 1)), 1);
	assert_int_equal(kek_seal(k, n ? pt : NULL, n, "t1/secret/db/password/3", &sealed, &len),
			 0);
	assert_int_equal(len, n + KEK_SEAL_OVERHEAD);
	assert_memory_equal(sealed, "TKS\x01", 4);
	assert_int_equal(kek_open(k, sealed, len, "t1/secret/db/password/3", &out, &on), 0);
	assert_int_equal(on, n);
	assert_non_null(out);
	if (n)
		assert_memory_equal(out, pt, n);
	out = kek_free_plain(out, on);
	/* Sealing twice gives different bytes (fresh data key and nonces). */
	assert_int_equal(kek_seal(k, pt, n, "t1/secret/db/password/3", &sealed2, &len2), 0);
	assert_int_equal(len2, len);
	assert_memory_not_equal(sealed + OFF_ID + KEK_ID_LEN, sealed2 + OFF_ID + KEK_ID_LEN,
				len - OFF_ID - KEK_ID_LEN);
	assert_memory_equal(sealed, sealed2, OFF_ID + KEK_ID_LEN);
	free(sealed2);
	free(sealed);
	free(pt);
}

static void test_roundtrip(void **state)
{
	struct kek *k = NULL;
	uint8_t *s = NULL;
	size_t len;

	assert_int_equal(kek_new(key_a, KEK_LEN, &k), 0);
	roundtrip(k, 0);
	roundtrip(k, 1);
	roundtrip(k, 17);
	roundtrip(k, 64 * 1024);
	assert_int_equal(kek_seal(k, key_a, (size_t)KEK_MAX_PLAIN + 1, "x", &s, &len), -EMSGSIZE);
	assert_int_equal(kek_seal(k, key_a, 1, NULL, &s, &len), -EINVAL);
	assert_int_equal(kek_seal(k, NULL, 1, "x", &s, &len), -EINVAL);
	assert_null(s);
	kek_free(k);
}

/* Flips every bit pattern in every byte and cuts at every length: never the value. */
static void tamper_all(const struct kek *k, size_t n)
{
	uint8_t *pt = calloc(1, n + 1), *sealed = NULL, *out = NULL;
	size_t len = 0, on = 0;
	int r;

	assert_non_null(pt);
	memset(pt, 'v', n);
	assert_int_equal(kek_seal(k, pt, n, "t1/secret/a/1", &sealed, &len), 0);
	for (size_t i = 0; i < len; i++) {
		for (unsigned bit = 0; bit < 8; bit += 7) {
			sealed[i] ^= (uint8_t)(1u << bit);
			r = kek_open(k, sealed, len, "t1/secret/a/1", &out, &on);
			if (i < OFF_ID)
				assert_int_equal(r, -EPROTO);
			else if (i < OFF_ID + KEK_ID_LEN)
				assert_int_equal(r, -ENOKEY);
			else
				assert_int_equal(r, -EBADMSG);
			assert_null(out);
			sealed[i] ^= (uint8_t)(1u << bit);
		}
	}
	for (size_t cut = 0; cut < len; cut++) {
		r = kek_open(k, sealed, cut, "t1/secret/a/1", &out, &on);
		assert_int_equal(r, cut < KEK_SEAL_OVERHEAD ? -EPROTO : -EBADMSG);
		assert_null(out);
	}
	assert_int_equal(kek_open(k, NULL, 0, "t1/secret/a/1", &out, &on), -EPROTO);
	assert_int_equal(kek_open(k, sealed, len, "t1/secret/a/1", &out, &on), 0);
	assert_memory_equal(out, pt, n);
	kek_free_plain(out, on);
	free(sealed);
	free(pt);
}

static void test_tamper(void **state)
{
	struct kek *k = NULL;

	assert_int_equal(kek_new(key_a, KEK_LEN, &k), 0);
	tamper_all(k, 0);
	tamper_all(k, 1);
	tamper_all(k, 200);
	kek_free(k);
}

static void test_rows_and_keks(void **state)
{
	uint8_t other[KEK_LEN], *s1 = NULL, *s2 = NULL, *out = NULL, *mix;
	struct kek *a = NULL, *b = NULL;
	size_t l1, l2, on;

	memset(other, 7, sizeof(other));
	assert_int_equal(kek_new(key_a, KEK_LEN, &a), 0);
	assert_int_equal(kek_new(other, KEK_LEN, &b), 0);
	assert_int_equal(
		kek_seal(a, (const uint8_t *)"alpha-secret", 12, "t1/secret/a/1", &s1, &l1), 0);
	assert_int_equal(
		kek_seal(a, (const uint8_t *)"bravo-secret", 12, "t1/secret/b/1", &s2, &l2), 0);
	/* Swapped rows, another tenant, another version: refused. */
	assert_int_equal(kek_open(a, s1, l1, "t1/secret/b/1", &out, &on), -EBADMSG);
	assert_int_equal(kek_open(a, s1, l1, "t2/secret/a/1", &out, &on), -EBADMSG);
	assert_int_equal(kek_open(a, s1, l1, "t1/secret/a/2", &out, &on), -EBADMSG);
	assert_int_equal(kek_open(a, s1, l1, "", &out, &on), -EBADMSG);
	assert_string_equal(
		kek_strerror(-EBADMSG),
		"the sealed value failed authentication (tampered or bound to another row)");
	/* The wrapped key of one value on the ciphertext of another: refused. */
	mix = malloc(l1);
	assert_non_null(mix);
	memcpy(mix, s1, OFF_VNONCE);
	memcpy(mix + OFF_VNONCE, s2 + OFF_VNONCE, l1 - OFF_VNONCE);
	assert_int_equal(kek_open(a, mix, l1, "t1/secret/b/1", &out, &on), -EBADMSG);
	assert_int_equal(kek_open(a, mix, l1, "t1/secret/a/1", &out, &on), -EBADMSG);
	free(mix);
	/* Another KEK. */
	assert_int_equal(kek_open(b, s1, l1, "t1/secret/a/1", &out, &on), -ENOKEY);
	assert_null(out);
	assert_int_equal(kek_open(a, s1, l1, "t1/secret/a/1", &out, &on), 0);
	assert_memory_equal(out, "alpha-secret", 12);
	kek_free_plain(out, on);
	free(s1);
	free(s2);
	kek_free(a);
	kek_free(b);
}

/* Many opened values held at once: more than the pool of locked pages holds (the rest are
 * mapped on their own), each with its own bytes; freed pages come back zeroed and reused. */
static void test_many_open(void **state)
{
	enum { N = 100 };
	uint8_t *sealed[N], *out[N], pt[100];
	size_t len[N], on[N];
	struct kek *k = NULL;

	(void)state;
	assert_int_equal(kek_new(key_a, KEK_LEN, &k), 0);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < N; i++) {
			memset(pt, i + round, sizeof(pt));
			assert_int_equal(kek_seal(k, pt, (size_t)i, "a", &sealed[i], &len[i]), 0);
			assert_int_equal(kek_open(k, sealed[i], len[i], "a", &out[i], &on[i]), 0);
			assert_int_equal(on[i], (size_t)i);
		}
		for (int i = 0; i < N; i++) {
			memset(pt, i + round, sizeof(pt));
			assert_memory_equal(out[i], pt, on[i]);
			/* the rest of the buffer is zero: a reused page was wiped */
			for (size_t j = on[i]; j < sizeof(pt); j++)
				assert_int_equal(out[i][j], 0);
			for (int j = 0; j < i; j++)
				assert_ptr_not_equal(out[i], out[j]);
		}
		for (int i = 0; i < N; i++) {
			out[i] = kek_free_plain(out[i], on[i]);
			free(sealed[i]);
		}
	}
	kek_free(k);
}

static void test_rewrap(void **state)
{
	uint8_t other[KEK_LEN], *s = NULL, *s2 = NULL, *s3 = NULL, *out = NULL;
	struct kek *a = NULL, *b = NULL;
	size_t len, len2, len3, on;
	char id[2 * KEK_ID_LEN + 1];

	memset(other, 7, sizeof(other));
	assert_int_equal(kek_new(key_a, KEK_LEN, &a), 0);
	assert_int_equal(kek_new(other, KEK_LEN, &b), 0);
	assert_int_equal(
		kek_seal(a, (const uint8_t *)"ca-key-bytes", 12, "t1/ca/issuing/1", &s, &len), 0);
	assert_int_equal(kek_rewrap(a, b, s, len, &s2, &len2), 0);
	assert_int_equal(len2, len);
	/* The value nonce, ciphertext and tag are the same bytes; the header changed. */
	assert_memory_equal(s2 + OFF_VNONCE, s + OFF_VNONCE, len - OFF_VNONCE);
	assert_memory_not_equal(s2 + OFF_ID, s + OFF_ID, KEK_ID_LEN);
	for (int i = 0; i < KEK_ID_LEN; i++)
		snprintf(id + 2 * i, 3, "%02x", s2[OFF_ID + i]);
	assert_string_equal(id, kek_id(b));

	assert_int_equal(kek_open(b, s2, len2, "t1/ca/issuing/1", &out, &on), 0);
	assert_memory_equal(out, "ca-key-bytes", 12);
	out = kek_free_plain(out, on);
	assert_int_equal(kek_open(a, s2, len2, "t1/ca/issuing/1", &out, &on), -ENOKEY);
	assert_int_equal(kek_open(b, s2, len2, "t1/ca/other/1", &out, &on), -EBADMSG);
	/* Rewrapping needs the KEK it was sealed under; a tampered wrap is refused. */
	assert_int_equal(kek_rewrap(a, b, s2, len2, &s3, &len3), -ENOKEY);
	s2[OFF_VNONCE - 1] ^= 1;
	assert_int_equal(kek_rewrap(b, a, s2, len2, &s3, &len3), -EBADMSG);
	s2[OFF_VNONCE - 1] ^= 1;
	assert_int_equal(kek_rewrap(b, a, s2, 10, &s3, &len3), -EPROTO);
	assert_null(s3);
	/* And back. */
	assert_int_equal(kek_rewrap(b, a, s2, len2, &s3, &len3), 0);
	assert_int_equal(kek_open(a, s3, len3, "t1/ca/issuing/1", &out, &on), 0);
	assert_memory_equal(out, "ca-key-bytes", 12);
	kek_free_plain(out, on);
	free(s);
	free(s2);
	free(s3);
	kek_free(a);
	kek_free(b);
}

static int setup(void **state)
{
	umask(022);
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_sizes_and_types),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_generate),
		cmocka_unit_test(test_symlinks),
		cmocka_unit_test(test_owners),
		cmocka_unit_test(test_id),
		cmocka_unit_test(test_check_value),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_tamper),
		cmocka_unit_test(test_rows_and_keks),
		cmocka_unit_test(test_rewrap),
		cmocka_unit_test(test_many_open),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
