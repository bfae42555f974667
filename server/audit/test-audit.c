/*
 * Unit tests of the pure parts of audit/: the canonical hash against vectors computed
 * independently (Python hashlib over the encoding documented in audit.h), the sensitivity
 * of the hash to every field, the time text round trip, and hex.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "audit-internal.h"
#include "audit.h"

static void from_hex(const char *hex, uint8_t *out)
{
	for (size_t i = 0; i < strlen(hex) / 2; i++) {
		unsigned v;

		sscanf(hex + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
}

static struct audit_event vector1(void)
{
	struct audit_event ev = {
		.sequence = 1,
		.tenant_id = "00000000-0000-0000-0000-000000000000",
		.id = "11111111-2222-4333-8444-555555555555",
		.time = "2026-11-28T17:13:47.123456Z",
		.type = "owner.created",
		.actor = "tok_1 ci",
		.resource = "owners/abc",
		.outcome = "ok",
		.data_json = "{\"name\":\"x\"}",
	};
	return ev;
}

static void test_hash_vectors(void **state)
{
	static const uint8_t zero[AUDIT_HASH_LEN];
	struct audit_event e1 = vector1(), e2 = {
		.sequence = 2,
		.tenant_id = "00000000-0000-0000-0000-000000000000",
		.id = "66666666-7777-4888-9999-aaaaaaaaaaaa",
		.time = "2026-11-28T17:13:47.000001Z",
		.type = "auth.denied",
		.actor = "",
		.resource = "",
		.outcome = "denied",
		.data_json = "{}",
	};
	uint8_t h1[AUDIT_HASH_LEN], h2[AUDIT_HASH_LEN], want[AUDIT_HASH_LEN];

	(void)state;
	assert_int_equal(audit_hash(zero, &e1, h1), 0);
	from_hex("560e4ae11b2844709a58ca04d06216735a22b576d9e6671914eec7daa7cf020d", want);
	assert_memory_equal(h1, want, AUDIT_HASH_LEN);
	assert_int_equal(audit_hash(h1, &e2, h2), 0);
	from_hex("9b86912231f5588ee8a3f2b8d0bd968bd6ba53e39fa272f7098020cb215c4fa7", want);
	assert_memory_equal(h2, want, AUDIT_HASH_LEN);
}

/* Every field, and the previous hash, changes the hash; moving bytes between two
 * neighbouring fields does too (the length prefixes). */
static void test_hash_sensitivity(void **state)
{
	static const uint8_t zero[AUDIT_HASH_LEN];
	uint8_t base[AUDIT_HASH_LEN], h[AUDIT_HASH_LEN], prev[AUDIT_HASH_LEN] = { 1 };
	struct audit_event e = vector1();

	(void)state;
	assert_int_equal(audit_hash(zero, &e, base), 0);
	for (int field = 0; field < 11; field++) {
		e = vector1();
		const uint8_t *p = zero;

		switch (field) {
		case 0:
			e.sequence = 2;
			break;
		case 1:
			e.tenant_id[35] = '1';
			break;
		case 2:
			e.id[0] = '2';
			break;
		case 3:
			e.type = "owner.create";
			break;
		case 4:
			e.time[25] = '7';
			break;
		case 5:
			e.actor = "tok_1 cj";
			break;
		case 6:
			e.resource = "owners/abd";
			break;
		case 7:
			e.outcome = "denied";
			break;
		case 8:
			e.data_json = "{\"name\":\"y\"}";
			break;
		case 9:
			p = prev;
			break;
		case 10:
			e.actor = "tok_1 ciowners/abc";
			e.resource = "";
			break;
		}
		assert_int_equal(audit_hash(p, &e, h), 0);
		assert_memory_not_equal(h, base, AUDIT_HASH_LEN);
	}
}

static void test_time(void **state)
{
	static const char *const bad[] = {
		"2026-11-28T17:13:47.12345Z",
		"2026-11-28T17:13:47.123456",
		"2026-11-28 17:13:47.123456Z",
		"2026-13-28T17:13:47.123456Z",
		"2026-11-28T24:13:47.123456Z",
		"2026-11-28T17:13:47.12345aZ",
		"",
		"2026-11-28T17:13:47.123456+00:00",
	};
	char buf[AUDIT_TIME_LEN + 1];
	int64_t us;

	(void)state;
	assert_int_equal(audit_format_time(1795886027123456LL, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2026-11-28T17:13:47.123456Z");
	assert_int_equal(audit_parse_time(buf, &us), 0);
	assert_int_equal(us, 1795886027123456LL);
	assert_int_equal(audit_format_time(0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1970-01-01T00:00:00.000000Z");
	assert_int_equal(audit_format_time(-1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1969-12-31T23:59:59.999999Z");
	assert_int_equal(audit_parse_time(buf, &us), 0);
	assert_int_equal(us, -1);
	assert_int_equal(audit_format_time(1, buf, 10), -EINVAL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(audit_parse_time(bad[i], &us), -EINVAL);
}

static void test_hex(void **state)
{
	const uint8_t b[] = { 0x00, 0x0f, 0xa5, 0xff };
	char out[9];

	(void)state;
	audit_hex(b, sizeof(b), out);
	assert_string_equal(out, "000fa5ff");
}

/* A record prepared from an object carries its compact text; the checks still apply. */
static void test_prepare_object(void **state)
{
	json_t *data = json_pack("{s:s, s:i}", "serial", "ab01", "n", 2), *arr = json_array();
	struct audit_entry e = { .type = "certificate.recorded", .resource = "certificates/ab01",
				 .data = data };
	struct audit_record *rec = NULL, *rec2 = NULL;

	(void)state;
	assert_int_equal(audit_prepare(&e, &rec), 0);
	assert_string_equal(rec->ev.data_json, "{\"serial\":\"ab01\",\"n\":2}");
	assert_string_equal(rec->ev.outcome, "ok");
	assert_int_equal(strlen(rec->ev.id), AUDIT_UUID_LEN);
	/* two records, two ids */
	assert_int_equal(audit_prepare(&e, &rec2), 0);
	assert_string_not_equal(rec->ev.id, rec2->ev.id);
	e.data = arr;
	assert_int_equal(audit_prepare(&e, &rec2), -EINVAL);
	e.data = data;
	e.type = "Bad Type";
	assert_int_equal(audit_prepare(&e, &rec2), -EINVAL);
	audit_record_free(rec);
	audit_record_free(rec2);
	json_decref(data);
	json_decref(arr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_vectors),
		cmocka_unit_test(test_hash_sensitivity),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_prepare_object),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
