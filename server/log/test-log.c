/* Unit tests for log: JSON escaping, number fields, thresholds, one line per event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Runs fn with stderr redirected to a pipe and returns what it wrote. */
static char *capture(void (*fn)(void))
{
	static char out[16384];
	int fds[2], saved;
	ssize_t n;

	assert_int_equal(pipe(fds), 0);
	saved = dup(STDERR_FILENO);
	dup2(fds[1], STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fds[1]);
	n = read(fds[0], out, sizeof(out) - 1);
	close(fds[0]);
	out[n > 0 ? n : 0] = '\0';
	return out;
}

static void emit_fields(void)
{
	log_info("serving", "addr", "%s", "127.0.0.1", "port", "%d", 8443, "big", "%lld",
		 (long long)1 << 40, "quote", "%s", "a\"b\\c\n");
}

static void emit_debug(void)
{
	log_debug("hidden");
	log_error("shown");
}

static void test_json_fields(void **state)
{
	char *out;

	assert_int_equal(log_setup("info", "json"), 0);
	out = capture(emit_fields);
	assert_non_null(strstr(out, "\"level\":\"info\",\"msg\":\"serving\""));
	assert_non_null(strstr(out, "\"addr\":\"127.0.0.1\""));
	assert_non_null(strstr(out, "\"port\":8443,"));
	assert_non_null(strstr(out, "\"big\":1099511627776,"));
	assert_non_null(strstr(out, "\"quote\":\"a\\\"b\\\\c\\u000a\"}"));
	assert_int_equal(strchr(out, '\n') - out, (long)strlen(out) - 1);
}

static void test_threshold(void **state)
{
	char *out;

	assert_int_equal(log_setup("warn", "text"), 0);
	out = capture(emit_debug);
	assert_null(strstr(out, "hidden"));
	assert_non_null(strstr(out, " error shown"));
}

static void test_bad_setup(void **state)
{
	assert_int_equal(log_setup("loud", "json"), -22);
	assert_int_equal(log_setup("info", "xml"), -22);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_fields),
		cmocka_unit_test(test_threshold),
		cmocka_unit_test(test_bad_setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
