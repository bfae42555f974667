/*
 * Caller text made safe to keep (authz-int.h): authz_text_clean escapes and cuts what a
 * caller chose (a request's resource), authz_peer_source reduces gRPC's peer string to the
 * address a summary of unauthenticated calls is kept under. Pure functions over libc and
 * net/, fuzzed alone (tests/fuzz/fuzz-unauth-text.c).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz-int.h"
#include "net.h"

/* Cleaning caller text ----------------------------------------------------------------- */

/* Length of the strict UTF-8 sequence at s (at most avail bytes) and its code point; 0 when
 * s does not start one (PostgreSQL's rules: no overlong form, no surrogate, <= U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t avail, uint32_t *ret_cp)
{
	uint32_t cp, min;
	size_t n;

	if (s[0] < 0x80) {
		*ret_cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0)
		n = 2, cp = s[0] & 0x1f, min = 0x80;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3, cp = s[0] & 0x0f, min = 0x800;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 4, cp = s[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (n > avail)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*ret_cp = cp;
	return n;
}

/* Control characters, and the invisible or direction-changing ones a reader cannot see. */
static bool hidden(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0xad || cp == 0x61c ||
	       (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
	       (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb);
}

size_t authz_text_clean(const char *in, size_t max_in, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)(in ? in : "");
	size_t len = strlen((const char *)s), i = 0, o = 0;

	if (outlen == 0)
		return 0;
	while (i < len) {
		char buf[16];
		uint32_t cp = 0;
		size_t n = utf8_seq(s + i, len - i, &cp), w;

		if (i + (n ? n : 1) > max_in)
			break;
		if (n == 0)
			w = (size_t)snprintf(buf, sizeof(buf), "\\x%02X", s[i]);
		else if (cp == '\\')
			w = (size_t)snprintf(buf, sizeof(buf), "\\\\");
		else if (hidden(cp) && cp < 0x80)
			w = (size_t)snprintf(buf, sizeof(buf), "\\x%02X", (unsigned)cp);
		else if (hidden(cp))
			w = (size_t)snprintf(buf, sizeof(buf), "\\u{%04" PRIX32 "}", cp);
		else
			w = n, memcpy(buf, s + i, n);
		if (o + w + 4 > outlen) /* keep room for "..." */
			break;
		memcpy(out + o, buf, w);
		o += w;
		i += n ? n : 1;
	}
	if (i < len && o + 4 <= outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return o;
}

/* Sources ------------------------------------------------------------------------------ */

/* Decodes %XX escapes (gRPC writes "ipv6:%5B::1%5D:5555") into buf. */
static void percent_decode(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	for (; *s && o + 1 < len; s++) {
		unsigned v;

		if (s[0] == '%' && sscanf(s + 1, "%2x", &v) == 1 && s[1] && s[2] && v) {
			buf[o++] = (char)v;
			s += 2;
		} else {
			buf[o++] = *s;
		}
	}
	buf[o] = '\0';
}

void authz_peer_source(const char *peer, char *buf, size_t len)
{
	char decoded[256];
	char *host = NULL;
	struct net_addr a;
	int port;

	if (!peer)
		peer = "";
	if ((strncmp(peer, "ipv4:", 5) == 0 || strncmp(peer, "ipv6:", 5) == 0) &&
	    strlen(peer) < sizeof(decoded)) {
		percent_decode(peer + 5, decoded, sizeof(decoded));
		if (net_split_hostport(decoded, &host, &port) == 0 &&
		    net_addr_parse(host, &a) == 0 && len >= 46) {
			net_addr_normalize(&a);
			net_addr_format(&a, buf, len);
			free(host);
			return;
		}
		free(host);
	}
	authz_text_clean(peer, UNAUTH_SOURCE_MAX, buf, len);
}
