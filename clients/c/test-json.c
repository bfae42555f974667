/*
 * The proto3 JSON printer (json.c), table-driven: each case fills a message of
 * test-json.proto (or of the API) and compares the printed text with what the proto3 JSON
 * mapping says, byte for byte. The expected texts hold the same JSON values as Python's
 * json_format.MessageToJson(including_default_value_fields=True) for the same messages
 * (which spaces its output and writes 0 as 0.0 and non-ASCII as \u escapes).
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test-json.pb-c.h"
#include "trstctl-client-gen.h"

/* The message as printed with flags, in a malloc'd string. */
static char *print(const ProtobufCMessage *m, unsigned flags)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(trstctl_json_write(f, m, flags), 0);
	fclose(f);
	return buf;
}

static void expect_json(const ProtobufCMessage *m, unsigned flags, const char *want)
{
	char *got = print(m, flags);

	if (strcmp(got, want) != 0)
		fail_msg("got  %s\nwant %s", got, want);
	free(got);
}

static void test_defaults(void **state)
{
	Tj__V1__All a = TJ__V1__ALL__INIT;

	(void)state;
	expect_json(&a.base, 0,
		    "{\"i32\":0,\"i64\":\"0\",\"u32\":0,\"u64\":\"0\",\"s64\":\"0\",\"f64\":\"0\","
		    "\"flag\":false,\"ratio\":0,\"weight\":0,\"dnsNameListX\":\"\",\"raw\":\"\","
		    "\"colour\":\"COLOUR_UNSPECIFIED\",\"tags\":[],\"counts\":[],\"colours\":[],"
		    "\"tripsByHook\":{},\"byNumber\":{},\"inners\":[],\"innerMap\":{}}");
}

static void test_filled(void **state)
{
	Tj__V1__All a = TJ__V1__ALL__INIT;
	Tj__V1__Inner in = TJ__V1__INNER__INIT, in2 = TJ__V1__INNER__INIT, *inners[] = { &in2 };
	Tj__V1__All__TripsByHookEntry t = TJ__V1__ALL__TRIPS_BY_HOOK_ENTRY__INIT, *tp[] = { &t };
	Tj__V1__All__ByNumberEntry b = TJ__V1__ALL__BY_NUMBER_ENTRY__INIT, *bp[] = { &b };
	Tj__V1__All__InnerMapEntry im = TJ__V1__ALL__INNER_MAP_ENTRY__INIT, *imp[] = { &im };
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	char *tags[] = { "x", "y" };
	int64_t counts[] = { 1, -2 };
	Tj__V1__Colour colours[] = { TJ__V1__COLOUR__RED, TJ__V1__COLOUR__GREEN };
	uint8_t raw[] = { 0, 1, 2, 0xff, 0xfe };

	(void)state;
	a.i32 = -5;
	a.i64 = -9007199254740993LL;
	a.u32 = 4000000000u;
	a.u64 = UINT64_MAX;
	a.s64 = -1;
	a.f64 = 42;
	a.flag = 1;
	a.ratio = 0.1f;
	a.weight = 1e300;
	a.dns_name_list_x = "a\"b\\c\n\x01\xc3\xa9/";
	a.raw = (ProtobufCBinaryData){ .len = sizeof(raw), .data = raw };
	a.colour = TJ__V1__COLOUR__GREEN;
	a.n_tags = 2;
	a.tags = tags;
	a.n_counts = 2;
	a.counts = counts;
	a.n_colours = 2;
	a.colours = colours;
	t.key = "connect4";
	t.value = 3;
	a.n_trips_by_hook = 1;
	a.trips_by_hook = tp;
	b.key = 5;
	b.value = "five";
	a.n_by_number = 1;
	a.by_number = bp;
	in.label_text = "t";
	in.big = 7;
	a.inner = &in;
	a.n_inners = 1;
	a.inners = inners;
	ts.seconds = 1714564800;
	ts.nanos = 500000000;
	a.create_time = &ts;
	a.choice_case = TJ__V1__ALL__CHOICE_NAME;
	a.name = "n";
	im.key = "k";
	im.value = &in;
	a.n_inner_map = 1;
	a.inner_map = imp;
	expect_json(&a.base, 0,
		    "{\"i32\":-5,\"i64\":\"-9007199254740993\",\"u32\":4000000000,"
		    "\"u64\":\"18446744073709551615\",\"s64\":\"-1\",\"f64\":\"42\",\"flag\":true,"
		    "\"ratio\":0.1,\"weight\":1e+300,"
		    "\"dnsNameListX\":\"a\\\"b\\\\c\\n\\u0001\xc3\xa9/\",\"raw\":\"AAEC//4=\","
		    "\"colour\":\"GREEN\",\"tags\":[\"x\",\"y\"],\"counts\":[\"1\",\"-2\"],"
		    "\"colours\":[\"RED\",\"GREEN\"],\"tripsByHook\":{\"connect4\":\"3\"},"
		    "\"byNumber\":{\"5\":\"five\"},\"inner\":{\"labelText\":\"t\",\"big\":\"7\"},"
		    "\"inners\":[{\"labelText\":\"\",\"big\":\"0\"}],"
		    "\"createTime\":\"2024-05-01T12:00:00.500Z\",\"name\":\"n\","
		    "\"innerMap\":{\"k\":{\"labelText\":\"t\",\"big\":\"7\"}}}");
}

/* An enum value the descriptor does not know is written as its number. */
static void test_unknown_enum_and_oneof(void **state)
{
	Tj__V1__All a = TJ__V1__ALL__INIT;
	char *got;

	(void)state;
	a.colour = (Tj__V1__Colour)7;
	a.choice_case = TJ__V1__ALL__CHOICE_NUMBER;
	a.number = 0;
	got = print(&a.base, 0);
	assert_non_null(strstr(got, "\"colour\":7,"));
	assert_non_null(strstr(got, "\"number\":0,"));
	assert_null(strstr(got, "\"name\""));
	free(got);
}

static void test_base64(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "", "\"\"" },	       { "f", "\"Zg==\"" },	   { "fo", "\"Zm8=\"" },
		{ "foo", "\"Zm9v\"" }, { "foob", "\"Zm9vYg==\"" }, { "fooba", "\"Zm9vYmE=\"" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		Tj__V1__All a = TJ__V1__ALL__INIT;
		char want[64], *got;

		a.raw = (ProtobufCBinaryData){ .len = strlen(cases[i].in),
					       .data = (uint8_t *)cases[i].in };
		got = print(&a.base, 0);
		snprintf(want, sizeof(want), "\"raw\":%s,", cases[i].out);
		if (!strstr(got, want))
			fail_msg("base64 of \"%s\": %s", cases[i].in, got);
		free(got);
	}
}

static void test_timestamps(void **state)
{
	static const struct {
		int64_t seconds;
		int32_t nanos;
		const char *out;
	} cases[] = {
		{ 0, 0, "\"1970-01-01T00:00:00Z\"" },
		{ 1714564800, 123456000, "\"2024-05-01T12:00:00.123456Z\"" },
		{ 1714564800, 1, "\"2024-05-01T12:00:00.000000001Z\"" },
		{ 1714564800, 10000000, "\"2024-05-01T12:00:00.010Z\"" },
		{ 253402300799, 0, "\"9999-12-31T23:59:59Z\"" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

		ts.seconds = cases[i].seconds;
		ts.nanos = cases[i].nanos;
		expect_json(&ts.base, 0, cases[i].out);
	}
}

static void test_floats(void **state)
{
	static const struct {
		double v;
		const char *out;
	} cases[] = {
		{ 0.1, "0.1" },
		{ -2.5, "-2.5" },
		{ 1e21, "1e+21" },
		{ NAN, "\"NaN\"" },
		{ INFINITY, "\"Infinity\"" },
		{ -INFINITY, "\"-Infinity\"" },
		{ 1.0 / 3, "0.3333333333333333" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		Tj__V1__All a = TJ__V1__ALL__INIT;
		char want[64], *got;

		a.weight = cases[i].v;
		got = print(&a.base, 0);
		snprintf(want, sizeof(want), "\"weight\":%s,", cases[i].out);
		if (!strstr(got, want))
			fail_msg("double %g: %s", cases[i].v, got);
		free(got);
	}
}

static void test_indent(void **state)
{
	Tj__V1__Inner in = TJ__V1__INNER__INIT;
	Trstctl__V1__GuardStatus g = TRSTCTL__V1__GUARD_STATUS__INIT;
	char *hosts[] = { "a.internal" };

	(void)state;
	in.label_text = "x";
	expect_json(&in.base, TRSTCTL_JSON_INDENT | TRSTCTL_JSON_NEWLINE,
		    "{\n  \"labelText\": \"x\",\n  \"big\": \"0\"\n}\n");
	g.enforcer = "ebpf";
	g.n_allow_hosts = 1;
	g.allow_hosts = hosts;
	expect_json(&g.base, TRSTCTL_JSON_INDENT,
		    "{\n  \"enabled\": false,\n  \"enforcer\": \"ebpf\",\n  \"armed\": false,\n"
		    "  \"trips\": \"0\",\n  \"tripwireHits\": \"0\",\n  \"allowPrivate\": false,\n"
		    "  \"allowCidrs\": [],\n  \"allowHosts\": [\n    \"a.internal\"\n  ],\n"
		    "  \"pinPath\": \"\",\n  \"userspaceTrips\": \"0\",\n  \"tripsByHook\": {},\n"
		    "  \"coverage\": \"\",\n  \"coverageDetail\": \"\",\n"
		    "  \"userspaceTripsByClient\": {}\n}");
}

/* Maps are told from repeated messages by their entry's name and fields. */
static void test_is_map(void **state)
{
	const ProtobufCMessageDescriptor *g = &trstctl__v1__guard_status__descriptor;
	const ProtobufCMessageDescriptor *l = &trstctl__v1__list_owners_response__descriptor;
	const ProtobufCMessageDescriptor *c = &trstctl__v1__create_secret_request__descriptor;

	(void)state;
	assert_true(trstctl_field_is_map(
		g, protobuf_c_message_descriptor_get_field_by_name(g, "trips_by_hook")));
	assert_false(trstctl_field_is_map(
		g, protobuf_c_message_descriptor_get_field_by_name(g, "allow_hosts")));
	assert_false(trstctl_field_is_map(
		l, protobuf_c_message_descriptor_get_field_by_name(l, "owners")));
	assert_true(trstctl_field_is_map(
		c, protobuf_c_message_descriptor_get_field_by_name(c, "labels")));
}

static void test_errors(void **state)
{
	Trstctl__V1__Owner o = TRSTCTL__V1__OWNER__INIT;

	(void)state;
	assert_int_equal(trstctl_json_write(NULL, &o.base, 0), -EINVAL);
	assert_int_equal(trstctl_json_write(stdout, NULL, 0), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_filled),
		cmocka_unit_test(test_unknown_enum_and_oneof),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_timestamps),
		cmocka_unit_test(test_floats),
		cmocka_unit_test(test_indent),
		cmocka_unit_test(test_is_map),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
