/* Unit tests for crypto_uuid_v4 and crypto_uuid_valid: the shape of fresh ids, and a table
 * of valid and invalid texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto.h"

static void test_uuid_v4(void **state)
{
	char a[CRYPTO_UUID_LEN + 1], b[CRYPTO_UUID_LEN + 1];

	(void)state;
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(crypto_uuid_v4(a), 0);
		assert_int_equal(strlen(a), CRYPTO_UUID_LEN);
		assert_true(crypto_uuid_valid(a));
		assert_int_equal(a[14], '4');		/* version */
		assert_non_null(strchr("89ab", a[19])); /* variant */
		for (const char *p = a; *p; p++)
			assert_true(*p == '-' || (*p >= '0' && *p <= '9') ||
				    (*p >= 'a' && *p <= 'f'));
	}
	assert_int_equal(crypto_uuid_v4(b), 0);
	assert_string_not_equal(a, b);
}

/* Ids are drawn in blocks per thread: none repeats, within a thread, across threads, or
 * between a process and its forked child (which drops the block it inherited). */
#define N_IDS 1000
#define N_THREADS 4
static char ids[N_THREADS + 2][N_IDS][CRYPTO_UUID_LEN + 1];

static void *draw(void *arg)
{
	char(*out)[CRYPTO_UUID_LEN + 1] = arg;

	for (int i = 0; i < N_IDS; i++)
		if (crypto_uuid_v4(out[i]) < 0)
			return arg;
	return NULL;
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void test_uuid_unique(void **state)
{
	pthread_t t[N_THREADS];
	char parent_next[CRYPTO_UUID_LEN + 1];
	int fd[2], st;
	pid_t pid;

	(void)state;
	/* the parent holds a part-used block when it forks */
	assert_int_equal(crypto_uuid_v4(ids[N_THREADS][0]), 0);
	assert_int_equal(pipe(fd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char mine[N_IDS][CRYPTO_UUID_LEN + 1];

		close(fd[0]);
		draw(mine);
		_exit(write(fd[1], mine, sizeof(mine)) == (ssize_t)sizeof(mine) ? 0 : 1);
	}
	close(fd[1]);
	for (size_t got = 0; got < sizeof(ids[N_THREADS + 1]);) {
		ssize_t n = read(fd[0], (char *)ids[N_THREADS + 1] + got,
				 sizeof(ids[N_THREADS + 1]) - got);

		assert_true(n > 0);
		got += (size_t)n;
	}
	close(fd[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(crypto_uuid_v4(parent_next), 0);
	for (int i = 0; i < N_IDS; i++)
		assert_string_not_equal(parent_next, ids[N_THREADS + 1][i]);
	for (int i = 1; i < N_IDS; i++)
		assert_int_equal(crypto_uuid_v4(ids[N_THREADS][i]), 0);
	for (int k = 0; k < N_THREADS; k++)
		assert_int_equal(pthread_create(&t[k], NULL, draw, ids[k]), 0);
	for (int k = 0; k < N_THREADS; k++) {
		void *ret;

		assert_int_equal(pthread_join(t[k], &ret), 0);
		assert_null(ret);
	}
	qsort(ids, sizeof(ids) / sizeof(ids[0][0]), sizeof(ids[0][0]), cmp_id);
	for (size_t i = 1; i < sizeof(ids) / sizeof(ids[0][0]); i++) {
		const char *a = ids[i / N_IDS][i % N_IDS];
		size_t j = i - 1;

		assert_true(crypto_uuid_valid(a));
		assert_string_not_equal(a, ids[j / N_IDS][j % N_IDS]);
	}
}

static void test_uuid_valid(void **state)
{
	static const struct {
		const char *s;
		bool ok;
	} cases[] = {
		{ "00000000-0000-0000-0000-000000000000", true },
		{ "6F9619FF-8B86-D011-B42D-00C04FC964FF", true },
		{ "6f9619ff-8b86-d011-b42d-00c04fc964ff", true },
		{ "6f9619ff8b86d011b42d00c04fc964ff", false },
		{ "6f9619ff-8b86-d011-b42d-00c04fc964f", false },
		{ "6f9619ff-8b86-d011-b42d-00c04fc964fff", false },
		{ "6f9619ff-8b86-d011-b42d_00c04fc964ff", false },
		{ "6f9619fg-8b86-d011-b42d-00c04fc964ff", false },
		{ "6f9619ff-8b86-d011-b42d-00c04fc964f\xff", false },
		{ "", false },
		{ NULL, false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(crypto_uuid_valid(cases[i].s), cases[i].ok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuid_v4),
		cmocka_unit_test(test_uuid_unique),
		cmocka_unit_test(test_uuid_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
