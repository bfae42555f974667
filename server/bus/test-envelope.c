/* Unit tests for the event envelope, type checks, and timestamps (UUIDs: crypto/test-uuid.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"

static void test_type_valid(void **state)
{
	static const struct {
		const char *s;
		bool ok;
	} cases[] = {
		{ "identity.issued", true },
		{ "secret.version.written", true },
		{ "guard.denied", true },
		{ "a", true },
		{ "a_b-c.D9", true },
		{ "", false },
		{ ".a", false },
		{ "a.", false },
		{ "a..b", false },
		{ "a.*", false },
		{ "a.>", false },
		{ "a b", false },
		{ "a\tb", false },
		{ "a/b", false },
		{ "caf\xc3\xa9", false },
		{ NULL, false },
	};
	char longest[BUS_TYPE_MAX + 2];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(bus_type_valid(cases[i].s), cases[i].ok);
	memset(longest, 'x', sizeof(longest));
	longest[BUS_TYPE_MAX] = '\0';
	assert_true(bus_type_valid(longest));
	longest[BUS_TYPE_MAX] = 'x';
	longest[BUS_TYPE_MAX + 1] = '\0';
	assert_false(bus_type_valid(longest));
}

static void test_rfc3339(void **state)
{
	char out[32];
	struct timespec t = { .tv_sec = 1714564800, .tv_nsec = 123456789 };

	bus_rfc3339(&t, out);
	assert_string_equal(out, "2024-05-01T12:00:00.123456Z");
	t = (struct timespec){ .tv_sec = 0, .tv_nsec = 0 };
	bus_rfc3339(&t, out);
	assert_string_equal(out, "1970-01-01T00:00:00.000000Z");
}

static const struct timespec when = { .tv_sec = 1714564800, .tv_nsec = 5000 };
#define DEFAULT_TENANT "00000000-0000-0000-0000-000000000000"
#define ID "9b2c8f5e-1d3a-4c6b-8e7f-0a1b2c3d4e5f"

static void test_envelope_fields(void **state)
{
	char *text = NULL;
	size_t len = 0;
	json_t *env, *data;

	assert_int_equal(bus_envelope_build(ID, DEFAULT_TENANT, "identity.issued",
					    "token:ops \"admin\"",
					    "{\"id\":\"x\",\"n\":3,\"tags\":[\"a\",\"b\"]}", &when,
					    &text, &len),
			 0);
	assert_int_equal(len, strlen(text));
	assert_null(strchr(text, '\n')); /* compact: one line per message */
	env = json_loads(text, 0, NULL);
	assert_non_null(env);
	assert_int_equal(json_object_size(env), 6);
	assert_string_equal(json_string_value(json_object_get(env, "id")), ID);
	assert_string_equal(json_string_value(json_object_get(env, "type")), "identity.issued");
	assert_string_equal(json_string_value(json_object_get(env, "tenant_id")), DEFAULT_TENANT);
	assert_string_equal(json_string_value(json_object_get(env, "time")),
			    "2024-05-01T12:00:00.000005Z");
	assert_string_equal(json_string_value(json_object_get(env, "actor")),
			    "token:ops \"admin\"");
	/* data is the object itself, not base64 of it */
	data = json_object_get(env, "data");
	assert_true(json_is_object(data));
	assert_string_equal(json_string_value(json_object_get(data, "id")), "x");
	assert_int_equal(json_integer_value(json_object_get(data, "n")), 3);
	assert_int_equal(json_array_size(json_object_get(data, "tags")), 2);
	/* field order is stable: id first, data last */
	assert_memory_equal(text, "{\"id\":", 6);
	assert_non_null(strstr(text, "\"data\":{"));
	json_decref(env);
	free(text);
}

/* The object form gives the text form's envelope byte for byte; a non-object is refused. */
static void test_envelope_object(void **state)
{
	const char *js = "{\"id\":\"x\",\"n\":3,\"tags\":[\"a\",\"b\"]}";
	char *a = NULL, *b = NULL;
	size_t la = 0, lb = 0;
	json_t *data = json_loads(js, 0, NULL), *arr = json_array();

	assert_int_equal(bus_envelope_build(ID, DEFAULT_TENANT, "identity.issued", "tok", js,
					    &when, &a, &la),
			 0);
	assert_int_equal(bus_envelope_build_object(ID, DEFAULT_TENANT, "identity.issued", "tok",
						   data, &when, &b, &lb),
			 0);
	assert_int_equal(la, lb);
	assert_string_equal(a, b);
	/* the caller's object is only referenced */
	assert_int_equal(data->refcount, 1);
	assert_int_equal(bus_envelope_build_object(ID, DEFAULT_TENANT, "a.b", NULL, arr, &when,
						   &b, &lb),
			 -EINVAL);
	assert_int_equal(bus_envelope_build_object(ID, DEFAULT_TENANT, "a.b", NULL, NULL, &when,
						   &b, &lb),
			 -EINVAL);
	json_decref(data);
	json_decref(arr);
	free(a);
	free(b);
}

/* The printed form (the data as jansson printed it) gives the object form's envelope byte
 * for byte, actors that need escaping and none included; what is not an object is refused. */
static void test_envelope_printed(void **state)
{
	static const char *const datas[] = {
		"{}", "{\"id\":\"x\",\"n\":3,\"tags\":[\"a\",\"b\"]}",
		"{\"q\":\"say \\\"hi\\\"\\n\",\"u\":\"\\u00e9t\\u00e9 \\u2713\",\"o\":{\"x\":null}}",
	};
	static const char *const actors[] = { "tok", NULL, "a \"quoted\"\\ actor\n", "\xc3\xa9t\xc3\xa9",
					      "" };
	char *a = NULL, *b = NULL, *printed;
	size_t la = 0, lb = 0;

	for (size_t i = 0; i < sizeof(datas) / sizeof(datas[0]); i++)
		for (size_t k = 0; k < sizeof(actors) / sizeof(actors[0]); k++) {
			json_t *data = json_loads(datas[i], 0, NULL);

			assert_non_null(data);
			printed = json_dumps(data, JSON_COMPACT);
			assert_int_equal(bus_envelope_build_object(ID, DEFAULT_TENANT,
								   "identity.issued", actors[k],
								   data, &when, &a, &la),
					 0);
			assert_int_equal(bus_envelope_build_printed(ID, DEFAULT_TENANT,
								    "identity.issued", actors[k],
								    printed, &when, &b, &lb),
					 0);
			assert_int_equal(la, lb);
			assert_string_equal(a, b);
			free(a);
			free(b);
			free(printed);
			json_decref(data);
		}
	assert_int_equal(bus_envelope_build_printed(ID, DEFAULT_TENANT, "a.b", NULL, "[1]", &when,
						    &b, &lb),
			 -EINVAL);
	assert_int_equal(bus_envelope_build_printed(ID, DEFAULT_TENANT, "a.b", NULL, "", &when, &b,
						    &lb),
			 -EINVAL);
	assert_int_equal(bus_envelope_build_printed(ID, DEFAULT_TENANT, "a.b", "\xff", "{}", &when,
						    &b, &lb),
			 -EINVAL);
}

static void test_envelope_defaults(void **state)
{
	char *text = NULL;
	size_t len;
	json_t *env;

	assert_int_equal(bus_envelope_build(ID, DEFAULT_TENANT, "owner.created", NULL, NULL, &when,
					    &text, &len),
			 0);
	env = json_loads(text, 0, NULL);
	assert_non_null(env);
	assert_true(json_is_null(json_object_get(env, "actor")));
	assert_true(json_is_object(json_object_get(env, "data")));
	assert_int_equal(json_object_size(json_object_get(env, "data")), 0);
	json_decref(env);
	free(text);
}

static void test_envelope_rejects(void **state)
{
	static const char *const bad_data[] = {
		"", "[1,2]", "\"s\"", "3", "null", "{", "{\"a\":1}x", "{\"a\":1,\"a\":2}",
	};
	char *text = NULL, *big;
	size_t len, n = BUS_EVENT_MAX + 16;

	for (size_t i = 0; i < sizeof(bad_data) / sizeof(bad_data[0]); i++)
		assert_int_equal(bus_envelope_build(ID, DEFAULT_TENANT, "a.b", NULL, bad_data[i],
						    &when, &text, &len),
				 -EINVAL);
	assert_int_equal(
		bus_envelope_build(ID, DEFAULT_TENANT, "a.b", "\xff\xfe", "{}", &when, &text, &len),
		-EINVAL);
	assert_null(text);

	big = malloc(n + 16);
	assert_non_null(big);
	strcpy(big, "{\"v\":\"");
	memset(big + 6, 'x', n);
	strcpy(big + 6 + n, "\"}");
	assert_int_equal(
		bus_envelope_build(ID, DEFAULT_TENANT, "a.b", NULL, big, &when, &text, &len),
		-EMSGSIZE);
	assert_null(text);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_type_valid),	 cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_envelope_fields),
		cmocka_unit_test(test_envelope_object),	 cmocka_unit_test(test_envelope_printed),	 cmocka_unit_test(test_envelope_defaults),
		cmocka_unit_test(test_envelope_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
