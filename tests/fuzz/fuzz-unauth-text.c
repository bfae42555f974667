/*
 * libFuzzer target for the caller text kept in the summaries of unauthenticated calls
 * (server/policy/unauth-text.c): a request's resource and gRPC's peer string. Whatever the
 * bytes, the result fits its bound, is NUL-terminated, holds no control byte (C0, DEL) and
 * is valid UTF-8 without C1 controls; the first input byte picks the cut (max_in).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authz-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Valid UTF-8 (no overlong form, no surrogate) with no C0, DEL or C1 control. */
static void check(const char *s, size_t len, size_t bound)
{
	const unsigned char *p = (const unsigned char *)s;

	if (len != strlen(s) || len + 1 > bound)
		abort();
	while (*p) {
		unsigned c = *p, cp, n;

		if (c < 0x20 || c == 0x7f)
			abort();
		if (c < 0x80) {
			p++;
			continue;
		}
		n = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
		if (!n)
			abort();
		cp = c & (0x7f >> n);
		for (unsigned i = 1; i < n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				abort();
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
			abort();
		p += n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[4096], out[UNAUTH_CLEAN_LEN(256)], src[UNAUTH_CLEAN_LEN(UNAUTH_SOURCE_MAX)];
	size_t max, n;

	if (size == 0)
		return 0;
	max = data[0];
	size = size - 1 < sizeof(in) - 1 ? size - 1 : sizeof(in) - 1;
	memcpy(in, data + 1, size);
	in[size] = '\0';
	n = authz_text_clean(in, max, out, sizeof(out));
	check(out, n, sizeof(out));
	/* a bound too small cuts, never overruns */
	n = authz_text_clean(in, max, out, 1 + data[0] % 16);
	check(out, n, 1 + data[0] % 16);
	authz_peer_source(in, src, sizeof(src));
	check(src, strlen(src), sizeof(src));
	return 0;
}
