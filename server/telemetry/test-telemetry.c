/*
 * Unit tests of the reporter's pure parts: the buckets at every boundary (table), the
 * report's exact bytes, refused inputs, and the instance id file (created 0600 in a new
 * 0700 folder, read back the same, a file that is not a UUID refused and left alone).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "telemetry.h"

static void test_buckets(void **state)
{
	static const struct {
		int64_t n;
		const char *want;
	} cases[] = { { -1, "0" },
		      { 0, "0" },
		      { 1, "1-10" },
		      { 10, "1-10" },
		      { 11, "11-100" },
		      { 100, "11-100" },
		      { 101, "101-1000" },
		      { 1000, "101-1000" },
		      { 1001, "1001-10000" },
		      { 10000, "1001-10000" },
		      { 10001, "10000+" },
		      { INT64_MAX, "10000+" } };

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(telemetry_bucket(cases[i].n), cases[i].want);
}

static void test_report(void **state)
{
	const struct telemetry_counts c = { .identities = 42, .certificates = 7, .secrets = 0 };
	char *js = NULL;

	(void)state;
	assert_int_equal(telemetry_report("0F8FAD5B-D9CB-469F-A165-70867728950E", "0.1.0", "linux",
					  "x86_64", &c, &js),
			 0);
	assert_string_equal(js, "{\"schema\":1,\"instance_id\":\"0f8fad5b-d9cb-469f-a165-"
				"70867728950e\",\"version\":\"0.1.0\",\"os\":\"linux\",\"arch\":"
				"\"x86_64\",\"credential_buckets\":{\"identities\":\"11-100\","
				"\"certificates\":\"1-10\",\"secrets\":\"0\"}}");
	free(js);
	assert_int_equal(telemetry_report("not-a-uuid", "0.1.0", "linux", "x86_64", &c, &js),
			 -EINVAL);
	assert_int_equal(telemetry_report("0f8fad5b-d9cb-469f-a165-70867728950e", "", "linux",
					  "x86_64", &c, &js),
			 -EINVAL);
	assert_int_equal(telemetry_report("0f8fad5b-d9cb-469f-a165-70867728950e", "0.1.0",
					  "linux\n", "x86_64", &c, &js),
			 -EINVAL);
}

static void test_platform(void **state)
{
	char os[32], arch[64];

	(void)state;
	assert_int_equal(telemetry_platform(os, sizeof(os), arch, sizeof(arch)), 0);
	assert_string_equal(os, "linux");
	assert_true(strlen(arch) > 0);
}

static void test_instance_id(void **state)
{
	char dir[] = "/tmp/trstctl-telemetry-XXXXXX", path[128], id[TELEMETRY_ID_LEN + 1],
	     again[TELEMETRY_ID_LEN + 1], err[TELEMETRY_ERR_MAX], buf[64];
	struct stat st;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/telemetry/instance-id", dir);
	assert_int_equal(telemetry_instance_id(path, id, err, sizeof(err)), 0);
	assert_int_equal(strlen(id), TELEMETRY_ID_LEN);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(buf, sizeof(buf), "%s/telemetry", dir);
	assert_int_equal(stat(buf, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	/* read back: the same id, the file unchanged; no temporary file left behind */
	assert_int_equal(telemetry_instance_id(path, again, err, sizeof(err)), 0);
	assert_string_equal(id, again);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_int_equal(strncmp(buf, id, TELEMETRY_ID_LEN), 0);
	assert_string_equal(buf + TELEMETRY_ID_LEN, "\n");
	/* a file that is not a UUID: refused, left alone */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("hello\n", f);
	fclose(f);
	assert_int_equal(telemetry_instance_id(path, again, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "does not hold a UUID"));
	f = fopen(path, "r");
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "hello\n");
	/* a folder that cannot be made (its parent is missing) */
	snprintf(buf, sizeof(buf), "%s/no/such/instance-id", dir);
	assert_true(telemetry_instance_id(buf, again, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "cannot create the folder"));
	unlink(path);
	snprintf(buf, sizeof(buf), "%s/telemetry", dir);
	assert_int_equal(rmdir(buf), 0);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_report),
		cmocka_unit_test(test_platform),
		cmocka_unit_test(test_instance_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
