/*
 * Random (version 4) UUIDs and their check: the ids of rows, audit records and events, and
 * the tenant ids every module validates. The bytes come from OpenSSL's CSPRNG, like every
 * other random value of trstctl, drawn in blocks per thread (below). Assumes nothing else.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <openssl/rand.h>

#include "crypto.h"

/*
 * Random bytes for ids are drawn 16 ids at a time per thread: one RAND_bytes call (a lock
 * and a provider dispatch in OpenSSL 3) per 16 ids instead of one per id. A forked child
 * drops what it inherited, so that parent and child never hand out the same ids.
 */
#define UUID_BATCH 16
static __thread unsigned char uuid_pool[16 * UUID_BATCH];
static __thread size_t uuid_left;
static pthread_once_t uuid_once = PTHREAD_ONCE_INIT;

static void uuid_forget(void)
{
	uuid_left = 0;
}

static void uuid_atfork(void)
{
	pthread_atfork(NULL, NULL, uuid_forget);
}

static int uuid_bytes(unsigned char b[16])
{
	pthread_once(&uuid_once, uuid_atfork);
	if (uuid_left == 0) {
		if (RAND_bytes(uuid_pool, sizeof(uuid_pool)) != 1)
			return -EIO;
		uuid_left = UUID_BATCH;
	}
	uuid_left--;
	memcpy(b, uuid_pool + 16 * uuid_left, 16);
	return 0;
}

int crypto_uuid_v4(char ret[CRYPTO_UUID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	char *p = ret;

	if (uuid_bytes(b) < 0)
		return -EIO;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10 */
	for (size_t i = 0; i < sizeof(b); i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[b[i] >> 4];
		*p++ = hex[b[i] & 0x0f];
	}
	*p = '\0';
	return 0;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool crypto_uuid_valid(const char *s)
{
	if (!s || strlen(s) != CRYPTO_UUID_LEN)
		return false;
	for (size_t i = 0; i < CRYPTO_UUID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !is_hex(s[i]))
			return false;
	}
	return true;
}
