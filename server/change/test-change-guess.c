/*
 * Unit tests of the change room's guess cache (change-guess.c), as a model check against a
 * plain list of what was last put per key: random puts, gets and drops on a small cache
 * (so that keys share slots and evict each other), with deep copies checked for
 * independence. A guess may be missing (evicted) but never wrong.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "change.h"

struct val {
	int64_t version;
	char *label; /* owned: copies must be deep */
};

static int val_copy(void *dst, const void *src)
{
	const struct val *s = src;
	struct val *d = dst;

	d->version = s->version;
	d->label = strdup(s->label);
	return d->label ? 0 : -ENOMEM;
}

static void val_clear(void *v)
{
	free(((struct val *)v)->label);
	((struct val *)v)->label = NULL;
}

static const struct change_guess_ops ops = { sizeof(struct val), val_copy, val_clear };

static void test_basics(void **state)
{
	struct change_guess *g = NULL;
	char label[] = "first";
	struct val v = { 7, label }, out = { 0 };

	(void)state;
	assert_int_equal(change_guess_new(1, NULL, &g), -EINVAL);
	assert_int_equal(change_guess_new(1, &ops, &g), 0);
	assert_int_equal(change_guess_get(g, "t", "a", &out), -ENOENT);
	change_guess_put(g, "t", "a", &v);
	label[0] = 'F'; /* the cache holds its own copy */
	assert_int_equal(change_guess_get(g, "t", "a", &out), 0);
	assert_int_equal(out.version, 7);
	assert_string_equal(out.label, "first");
	val_clear(&out);
	/* another tenant is another key */
	assert_int_equal(change_guess_get(g, "u", "a", &out), -ENOENT);
	change_guess_drop(g, "t", "a");
	assert_int_equal(change_guess_get(g, "t", "a", &out), -ENOENT);
	change_guess_drop(g, "t", "a"); /* dropping twice is fine */
	assert_int_equal(change_guess_get(NULL, "t", "a", &out), -ENOENT);
	g = change_guess_free(g);
	assert_null(g);
}

#define KEYS 200

static void test_model(void **state)
{
	struct change_guess *g = NULL;
	int64_t model[KEYS] = { 0 }; /* 0: dropped or never put */
	unsigned seed = 12345;

	(void)state;
	assert_int_equal(change_guess_new(64, &ops, &g), 0);
	for (int step = 0; step < 20000; step++) {
		int k = (int)(rand_r(&seed) % KEYS), op = (int)(rand_r(&seed) % 3);
		char key[16], label[32];
		struct val v, out = { 0 };
		const char *tenant = k % 2 ? "t1" : "t2";

		snprintf(key, sizeof(key), "k%d", k / 2);
		if (op == 0) {
			v.version = step + 1;
			snprintf(label, sizeof(label), "v%d", step + 1);
			v.label = label;
			change_guess_put(g, tenant, key, &v);
			model[k] = step + 1;
		} else if (op == 1) {
			change_guess_drop(g, tenant, key);
			model[k] = 0;
		} else if (change_guess_get(g, tenant, key, &out) == 0) {
			char want[32];

			/* present: exactly what was last put */
			assert_int_equal(out.version, model[k]);
			snprintf(want, sizeof(want), "v%lld", (long long)model[k]);
			assert_string_equal(out.label, want);
			val_clear(&out);
		}
	}
	change_guess_free(g);
}

static int guess_calls, read_calls;

static int attempt(void *ud, bool use_guess, bool *ret_guessed)
{
	int *result_with_guess = ud;

	*ret_guessed = use_guess;
	if (use_guess) {
		guess_calls++;
		return *result_with_guess;
	}
	read_calls++;
	return 0;
}

static bool failed(void *ud, int r)
{
	(void)ud;
	return r == -ESTALE;
}

/*
 * Half a cache's worth of keys stays: sets of four absorb the collisions that a
 * direct-mapped cache of the same size loses (about a fifth of 32 keys in 64 slots).
 */
static void test_half_full_keeps(void **state)
{
	struct change_guess *g = NULL;
	struct val v = { 1, "x" }, out = { 0 };
	char key[16];
	int kept = 0;

	(void)state;
	assert_int_equal(change_guess_new(64, &ops, &g), 0);
	for (int i = 0; i < 32; i++) {
		snprintf(key, sizeof(key), "id-%d", i);
		change_guess_put(g, "t", key, &v);
	}
	for (int i = 0; i < 32; i++) {
		snprintf(key, sizeof(key), "id-%d", i);
		if (change_guess_get(g, "t", key, &out) == 0) {
			kept++;
			val_clear(&out);
		}
	}
	fprintf(stderr, "  %d of 32 keys kept in 64 slots\n", kept);
	assert_true(kept >= 30);
	change_guess_free(g);
}

static void test_guess_run(void **state)
{
	int r_guess;

	(void)state;
	r_guess = 0; /* the guess held: no read */
	guess_calls = read_calls = 0;
	assert_int_equal(change_guess_run(attempt, failed, &r_guess), 0);
	assert_int_equal(guess_calls + 10 * read_calls, 1);
	r_guess = -ESTALE; /* the guess was stale: once more from a read */
	guess_calls = read_calls = 0;
	assert_int_equal(change_guess_run(attempt, failed, &r_guess), 0);
	assert_int_equal(guess_calls + 10 * read_calls, 11);
	r_guess = -EINVAL; /* the request's own error: no second round */
	guess_calls = read_calls = 0;
	assert_int_equal(change_guess_run(attempt, failed, &r_guess), -EINVAL);
	assert_int_equal(read_calls, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basics),
		cmocka_unit_test(test_model),
		cmocka_unit_test(test_half_full_keeps),
		cmocka_unit_test(test_guess_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
