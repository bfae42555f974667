/*
 * The string check of every request, written once for every method: protobuf-c accepts a
 * NUL byte inside a `string` field and hands the handler a C string cut at it (`a\0b`
 * becomes `a`), and it does not check UTF-8. The unpacked message has lost the lengths, so
 * the check walks the request's wire bytes with the method's input descriptor: every
 * length-delimited field that the descriptor calls a string (at any depth: nested messages
 * and map entries are walked too) must be valid UTF-8 (RFC 3629: no overlong form, no
 * surrogate, nothing above U+10FFFF) without NUL. Fields the descriptor does not know are
 * skipped. It runs after protobuf_c_message_unpack accepted the bytes, so the framing is
 * known to be sound; it still bounds every read.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "wire.h"

#define MAX_DEPTH 32

static int varint(const uint8_t **p, const uint8_t *end, uint64_t *ret)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;

		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*ret = v;
			return 0;
		}
	}
	return -EBADMSG;
}

bool rpc_utf8_valid(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint8_t c = s[i];
		size_t k;
		uint32_t cp;

		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3, cp = c & 0x07;
		else
			return false;
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

/* Appends ".name" (or "name" at the top) to the path in err for a failing field. */
static void path_prepend(char *err, size_t errlen, const char *name)
{
	char tail[RPC_WIRE_PATH_MAX];

	if (!err || !errlen)
		return;
	snprintf(tail, sizeof(tail), "%s", err);
	snprintf(err, errlen, "%s%s%s", name, tail[0] ? "." : "", tail);
}

static int walk(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
		int depth, char *err, size_t errlen)
{
	if (depth > MAX_DEPTH)
		return -EBADMSG;
	while (p < end) {
		const ProtobufCFieldDescriptor *f;
		uint64_t tag, len;
		int r = varint(&p, end, &tag);

		if (r < 0)
			return r;
		f = protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3));
		switch (tag & 7) {
		case 0:
			r = varint(&p, end, &len);
			break;
		case 1:
		case 5:
			len = (tag & 7) == 1 ? 8 : 4;
			r = (size_t)(end - p) < len ? -EBADMSG : 0;
			p += r < 0 ? 0 : len;
			break;
		case 2:
			r = varint(&p, end, &len);
			if (r >= 0 && (size_t)(end - p) < len)
				r = -EBADMSG;
			if (r < 0)
				return r;
			if (f && f->type == PROTOBUF_C_TYPE_STRING && !rpc_utf8_valid(p, len)) {
				if (err && errlen)
					err[0] = '\0';
				path_prepend(err, errlen, f->name);
				return -EILSEQ;
			}
			if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
				r = walk(f->descriptor, p, p + len, depth + 1, err, errlen);
				if (r == -EILSEQ)
					path_prepend(err, errlen, f->name);
			}
			p += len;
			break;
		default: /* groups: protobuf-c does not speak them */
			r = -EBADMSG;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

int rpc_wire_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
			   char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	return walk(d, buf, buf + len, 0, err, errlen);
}
