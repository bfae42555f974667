/*
 * libFuzzer target for kek_open and kek_rewrap (server/crypto/kek.c): sealed blobs come
 * from the database, which trstctl treats as outside bytes. Three properties:
 *   - any input: open and rewrap return an error or a plaintext, never crash or leak;
 *   - the input sealed and opened again is the input, also after a rewrap;
 *   - a sealed blob with one byte changed (position and mask from the input) never opens.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kek.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char aad[] = "t1/secret/fuzz/1";

static const struct kek *fuzz_kek(int which)
{
	static struct kek *k[2];
	uint8_t key[KEK_LEN];

	if (!k[which]) {
		memset(key, which ? 0x5a : 0xa5, sizeof(key));
		if (kek_new(key, sizeof(key), &k[which]) < 0)
			abort();
	}
	return k[which];
}

static void open_any(const uint8_t *data, size_t size)
{
	uint8_t *pt = NULL, *re = NULL;
	size_t n = 0, rn = 0;

	if (kek_open(fuzz_kek(0), data, size, aad, &pt, &n) == 0) {
		if (!pt || n != size - KEK_SEAL_OVERHEAD)
			abort();
		kek_free_plain(pt, n);
	}
	if (kek_rewrap(fuzz_kek(0), fuzz_kek(1), data, size, &re, &rn) == 0) {
		if (rn != size || memcmp(re + 72, data + 72, size - 72) != 0)
			abort();
		free(re);
	}
}

static void roundtrip_and_flip(const uint8_t *data, size_t size)
{
	uint8_t *sealed = NULL, *re = NULL, *pt = NULL;
	size_t len = 0, rlen = 0, n = 0, pos;
	uint8_t mask;

	if (size < 2)
		return;
	pos = data[0];
	mask = data[1] ? data[1] : 1;
	data += 2;
	size -= 2;
	if (kek_seal(fuzz_kek(0), data, size, aad, &sealed, &len) < 0)
		abort();
	if (kek_rewrap(fuzz_kek(0), fuzz_kek(1), sealed, len, &re, &rlen) < 0)
		abort();
	if (kek_open(fuzz_kek(1), re, rlen, aad, &pt, &n) < 0 || n != size ||
	    (size && memcmp(pt, data, size) != 0))
		abort();
	pt = kek_free_plain(pt, n);
	sealed[(pos * 131) % len] ^= mask;
	if (kek_open(fuzz_kek(0), sealed, len, aad, &pt, &n) == 0)
		abort();
	free(re);
	free(sealed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	open_any(data, size);
	if (size && size <= 4096 && (data[0] & 1))
		roundtrip_and_flip(data + 1, size - 1);
	return 0;
}
