/*
 * Unit tests of the string check of requests (wire.c): a table of UTF-8 byte strings, and a
 * table of hand-made CreateSecretRequest / CreateIdentityRequest wire bytes (NUL in a name,
 * in a map value, in a repeated field; invalid UTF-8; bytes fields, which may hold
 * anything; unknown fields), each with the path the check must name.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ca.pb-c.h"
#include "secrets.pb-c.h"
#include "wire.h"

#define B(s) (const uint8_t *)(s), sizeof(s) - 1

static const struct {
	const char *bytes;
	size_t len;
	bool valid;
} utf8[] = {
	{ "", 0, true },
	{ "plain/ascii-name_1", 18, true },
	{ "caf\xc3\xa9", 5, true },		   /* é */
	{ "\xe2\x82\xac", 3, true },		   /* € */
	{ "\xf0\x9f\x94\x91", 4, true },	   /* U+1F511 */
	{ "\xf4\x8f\xbf\xbf", 4, true },	   /* U+10FFFF */
	{ "a\0b", 3, false },			   /* NUL */
	{ "\xc3", 1, false },			   /* cut short */
	{ "\xc0\xaf", 2, false },		   /* overlong '/' */
	{ "\xe0\x80\xaf", 3, false },		   /* overlong */
	{ "\xed\xa0\x80", 3, false },		   /* surrogate U+D800 */
	{ "\xf4\x90\x80\x80", 4, false },	   /* above U+10FFFF */
	{ "\x80", 1, false },			   /* lone continuation */
	{ "\xff", 1, false },
	{ "ok\xe2\x82", 4, false },		   /* cut short at the end */
};

static void test_utf8(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(utf8) / sizeof(utf8[0]); i++)
		if (rpc_utf8_valid((const uint8_t *)utf8[i].bytes, utf8[i].len) != utf8[i].valid)
			fail_msg("case %zu: want %s", i, utf8[i].valid ? "valid" : "invalid");
}

static const struct {
	const ProtobufCMessageDescriptor *d;
	const uint8_t *wire;
	size_t len;
	int want;
	const char *path;
} msgs[] = {
	/* CreateSecretRequest: request_id 1, name 2, value 3 (bytes), labels 4 (map) */
	{ &trstctl__v1__create_secret_request__descriptor, B("\x12\x03" "a/b"), 0, "" },
	{ &trstctl__v1__create_secret_request__descriptor, B("\x12\x03" "a\0b"), -EILSEQ, "name" },
	{ &trstctl__v1__create_secret_request__descriptor, B("\x0a\x02" "\xc3\x28"), -EILSEQ,
	  "request_id" },
	{ &trstctl__v1__create_secret_request__descriptor, B("\x12\x01x\x1a\x03" "\0\xff\0"), 0,
	  "" },
	{ &trstctl__v1__create_secret_request__descriptor,
	  B("\x12\x01x\x22\x08\x0a\x01k\x12\x03v\0v"), -EILSEQ, "labels.value" },
	{ &trstctl__v1__create_secret_request__descriptor,
	  B("\x22\x07\x0a\x02\0k\x12\x01v"), -EILSEQ, "labels.key" },
	{ &trstctl__v1__create_secret_request__descriptor, B("\x22\x06\x0a\x01k\x12\x01v"), 0, "" },
	/* an unknown field 9 (length-delimited, then a varint) is skipped */
	{ &trstctl__v1__create_secret_request__descriptor, B("\x4a\x02\0\0\x50\x01\x12\x01x"), 0,
	  "" },
	/* CreateIdentityRequest: dns_names 5 (repeated), ttl_seconds 8 (varint) */
	{ &trstctl__v1__create_identity_request__descriptor,
	  B("\x2a\x01" "a\x2a\x03" "b\0c\x40\x10"), -EILSEQ, "dns_names" },
	{ &trstctl__v1__create_identity_request__descriptor,
	  B("\x2a\x01" "a\x2a\x01" "b\x40\x90\x1c"), 0, "" },
	/* framing that does not hold */
	{ &trstctl__v1__create_identity_request__descriptor, B("\x2a\x05" "ab"), -EBADMSG, "" },
};

static void test_messages(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		char err[RPC_WIRE_PATH_MAX] = "junk";
		int r = rpc_wire_check_strings(msgs[i].d, msgs[i].wire, msgs[i].len, err,
					       sizeof(err));

		if (r != msgs[i].want || (r == -EILSEQ && strcmp(err, msgs[i].path) != 0))
			fail_msg("case %zu: got %d %s, want %d %s", i, r, err, msgs[i].want,
				 msgs[i].path);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_messages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
