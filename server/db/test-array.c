/*
 * db_array_*: the array literals that audit/ and bus/ send, table-driven against the
 * literal PostgreSQL expects (quotes and backslashes escaped, empty arrays, growth past
 * the first allocation).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db.h"

static void test_cases(void **state)
{
	static const struct {
		const char *elems[4];
		const char *want;
	} cases[] = {
		{ { NULL }, "{}" },
		{ { "", NULL }, "{\"\"}" },
		{ { "a", "b", NULL }, "{\"a\",\"b\"}" },
		{ { "say \"hi\"", NULL }, "{\"say \\\"hi\\\"\"}" },
		{ { "c:\\dir\\", "x", NULL }, "{\"c:\\\\dir\\\\\",\"x\"}" },
		{ { "{,}", "NULL", NULL }, "{\"{,}\",\"NULL\"}" },
		{ { "\\x00ff", NULL }, "{\"\\\\x00ff\"}" },
	};

	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct db_array a = { 0 };

		for (int i = 0; cases[c].elems[i]; i++)
			db_array_add(&a, cases[c].elems[i], strlen(cases[c].elems[i]));
		assert_string_equal(db_array_end(&a), cases[c].want);
		db_array_clear(&a);
		assert_null(a.text);
	}
}

/* Lengths are honoured (a prefix of a longer buffer) and growth keeps every byte. */
static void test_growth(void **state)
{
	struct db_array a = { 0 };
	char want[8192], *w = want;
	const char *s;

	(void)state;
	*w++ = '{';
	for (int i = 0; i < 1000; i++) {
		db_array_add(&a, "ab\"cdef", 3);
		w += sprintf(w, "%s\"ab\\\"\"", i ? "," : "");
	}
	strcpy(w, "}");
	s = db_array_end(&a);
	assert_non_null(s);
	assert_string_equal(s, want);
	assert_int_equal(a.len, strlen(want));
	assert_int_equal(a.n, 1000);
	db_array_clear(&a);
}

/* Numbers, strings, and byte strings carried as one blob with offset and length columns. */
static void test_columns_and_blob(void **state)
{
	struct db_array ints = { 0 }, texts = { 0 }, offs = { 0 }, lens = { 0 };
	struct db_blob b = { 0 };

	(void)state;
	db_array_add_int(&ints, -5);
	db_array_add_int(&ints, INT64_MAX);
	assert_string_equal(db_array_end(&ints), "{\"-5\",\"9223372036854775807\"}");
	db_array_add_text(&texts, "a\"b");
	assert_string_equal(db_array_end(&texts), "{\"a\\\"b\"}");
	db_blob_add(&b, &offs, &lens, "abc", 3);
	db_blob_add(&b, &offs, &lens, "", 0);
	for (int i = 0; i < 2000; i++) /* grows past its first allocation */
		db_blob_add(&b, &offs, &lens, "xyz", 3);
	assert_false(b.failed);
	assert_int_equal(b.len, 3 + 2000 * 3);
	assert_memory_equal(b.data, "abcxyz", 6);
	assert_int_equal(offs.n, 2002);
	assert_int_equal(lens.n, 2002);
	assert_non_null(strstr(db_array_end(&offs), "{\"0\",\"3\",\"3\",\"6\","));
	assert_non_null(strstr(db_array_end(&lens), "{\"3\",\"0\",\"3\","));
	db_blob_clear(&b);
	assert_null(b.data);
	db_array_clear(&ints);
	db_array_clear(&texts);
	db_array_clear(&offs);
	db_array_clear(&lens);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_columns_and_blob),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
