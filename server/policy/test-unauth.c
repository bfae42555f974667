/*
 * Unit tests of the summaries of unauthenticated calls (unauth-table.c): the source of a
 * gRPC peer and the cleaning of caller text (table-driven), one source's summary, the cap
 * with its "other" entry, merging back what a failed write took, the record's JSON, and a
 * model check of the counts against a plain list.
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
#include <jansson.h>

#include "authz-int.h"

static void test_peer_source(void **state)
{
	static const struct {
		const char *peer, *want;
	} cases[] = {
		{ "ipv4:127.0.0.1:5555", "127.0.0.1" },
		{ "ipv4:10.1.2.3:1", "10.1.2.3" },
		{ "ipv6:[::1]:40000", "::1" },
		{ "ipv6:%5B::1%5D:40000", "::1" },
		{ "ipv6:[::ffff:192.0.2.7]:443", "192.0.2.7" },
		{ "ipv6:%5Bfe80::1%25eth0%5D:9", "fe80::1" },
		{ "ipv6:[2001:DB8::1]:9", "2001:db8::1" },
		{ "unix:/run/trstctl.sock", "unix:/run/trstctl.sock" },
		{ "ipv4:not-an-address:1", "ipv4:not-an-address:1" },
		{ "weird\x01peer", "weird\\x01peer" },
		{ "", "" },
		{ NULL, "" },
	};
	char buf[UNAUTH_CLEAN_LEN(UNAUTH_SOURCE_MAX)];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		authz_peer_source(cases[i].peer, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].want);
	}
	/* a long peer is cut */
	{
		char peer[300];

		memset(peer, 'p', sizeof(peer) - 1);
		peer[sizeof(peer) - 1] = '\0';
		authz_peer_source(peer, buf, sizeof(buf));
		assert_int_equal(strlen(buf), UNAUTH_SOURCE_MAX + 3);
		assert_string_equal(buf + UNAUTH_SOURCE_MAX, "...");
	}
}

static void test_text_clean(void **state)
{
	static const struct {
		const char *in;
		size_t max;
		const char *want;
	} cases[] = {
		{ "secret/db", 64, "secret/db" },
		{ "", 64, "" },
		{ "a\nb\rc\td", 64, "a\\x0Ab\\x0Dc\\x09d" },
		{ "esc\x1b[31mred", 64, "esc\\x1B[31mred" },
		{ "del\x7f", 64, "del\\x7F" },
		{ "back\\slash", 64, "back\\\\slash" },
		{ "caf\xc3\xa9", 64, "caf\xc3\xa9" },		  /* é kept */
		{ "bad\xc3\x28", 64, "bad\\xC3(" },		  /* invalid UTF-8 */
		{ "over\xc0\xaflong", 64, "over\\xC0\\xAFlong" }, /* overlong '/' */
		{ "c1\xc2\x85x", 64, "c1\\u{0085}x" },		  /* NEL */
		{ "rlo\xe2\x80\xaex", 64, "rlo\\u{202E}x" },	  /* right-to-left override */
		{ "zw\xe2\x80\x8bx", 64, "zw\\u{200B}x" },	  /* zero-width space */
		{ "bom\xef\xbb\xbf", 64, "bom\\u{FEFF}" },
		{ "abcdef", 3, "abc..." },
		{ "abcdef", 6, "abcdef" },
		{ "ab\xc3\xa9", 3, "ab..." }, /* never half a character */
		{ "ab\xc3\xa9", 4, "ab\xc3\xa9" },
		{ "surrogate\xed\xa0\x80", 64, "surrogate\\xED\\xA0\\x80" },
	};
	char out[UNAUTH_CLEAN_LEN(64)];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = authz_text_clean(cases[i].in, cases[i].max, out, sizeof(out));

		assert_string_equal(out, cases[i].want);
		assert_int_equal(n, strlen(out));
	}
	/* the worst case fits its bound: every byte escaped, and the cut mark */
	{
		char in[200], small[UNAUTH_CLEAN_LEN(UNAUTH_SAMPLE_MAX)];

		memset(in, 0x01, sizeof(in) - 1);
		in[sizeof(in) - 1] = '\0';
		authz_text_clean(in, UNAUTH_SAMPLE_MAX, small, sizeof(small));
		assert_int_equal(strlen(small), 4 * UNAUTH_SAMPLE_MAX + 3);
		for (const char *p = small; *p; p++)
			assert_true(*p >= 0x20 && *p < 0x7f);
	}
	/* a buffer too small is cut, never overrun */
	{
		char tiny[8];

		authz_text_clean("abcdefghijkl", 64, tiny, sizeof(tiny));
		assert_string_equal(tiny, "abcd...");
	}
}

static struct unauth_call call(const char *peer, uint16_t method, enum unauth_reason r,
			       const char *tok, const char *res, int64_t t)
{
	return (struct unauth_call){ peer, method, r, tok, res, t };
}

static const struct unauth_summary *find(const struct unauth_summary *s, size_t n,
					 const char *source)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s[i].source, source) == 0)
			return &s[i];
	return NULL;
}

static void test_one_source(void **state)
{
	struct unauth_table *t = NULL;
	struct unauth_summary *s = NULL;
	uint64_t totals[UNAUTH_N_REASONS], folded;
	char junk[2000];
	size_t n = 0;

	(void)state;
	memset(junk, 'j', sizeof(junk) - 1);
	junk[sizeof(junk) - 1] = '\0';
	junk[3] = '\n';
	assert_int_equal(unauth_table_new(8, &t), 0);
	for (int i = 0; i < 1000; i++) {
		struct unauth_call c = call(
			i % 2 ? "ipv4:127.0.0.1:1000" : "ipv4:127.0.0.1:2000", (uint16_t)(i % 3),
			i % 2 ? UNAUTH_MISSING : UNAUTH_MALFORMED, "", junk, 1000 + i);

		unauth_note(t, &c);
	}
	{
		struct unauth_call c = call("ipv4:127.0.0.1:3", 0, UNAUTH_REVOKED,
					    "0123456789abcdef", "secret/x", 5);

		unauth_note(t, &c);
	}
	unauth_totals(t, totals, &folded);
	assert_int_equal(totals[UNAUTH_MISSING], 500);
	assert_int_equal(totals[UNAUTH_MALFORMED], 500);
	assert_int_equal(totals[UNAUTH_REVOKED], 1);
	assert_int_equal(folded, 0);
	assert_int_equal(unauth_take(t, &s, &n), 0);
	assert_int_equal(n, 1); /* the port is not part of the source */
	assert_string_equal(s[0].source, "127.0.0.1");
	assert_false(s[0].other);
	assert_int_equal(s[0].count, 1001);
	assert_int_equal(s[0].first_us, 5);
	assert_int_equal(s[0].last_us, 1999);
	assert_int_equal(s[0].n_methods, 3);
	assert_int_equal(s[0].methods[0].count + s[0].methods[1].count + s[0].methods[2].count,
			 1001);
	assert_int_equal(s[0].n_tokens, 1);
	assert_string_equal(s[0].tokens[0], "0123456789abcdef");
	/* the first call's resource, cut and cleaned */
	assert_int_equal(s[0].sample_bytes, sizeof(junk) - 1);
	assert_int_equal(strncmp(s[0].sample, "jjj\\x0Ajjj", 10), 0);
	assert_true(strlen(s[0].sample) <= UNAUTH_SAMPLE_MAX + 3 + 3);
	assert_string_equal(s[0].sample + strlen(s[0].sample) - 3, "...");
	free(s);
	/* taken: the table is empty, the totals stay */
	assert_int_equal(unauth_take(t, &s, &n), 0);
	assert_int_equal(n, 0);
	assert_null(s);
	unauth_totals(t, totals, &folded);
	assert_int_equal(totals[UNAUTH_MISSING], 500);
	unauth_table_free(t);
}

static void test_cap_and_limits(void **state)
{
	struct unauth_table *t = NULL;
	struct unauth_summary *s = NULL;
	uint64_t totals[UNAUTH_N_REASONS], folded;
	const struct unauth_summary *o, *first;
	size_t n = 0;

	(void)state;
	assert_int_equal(unauth_table_new(4, &t), 0);
	for (int i = 0; i < 10; i++) {
		char peer[64], tok[POLICY_TOKEN_ID_LEN + 1];

		snprintf(peer, sizeof(peer), "ipv4:10.0.0.%d:99", i);
		for (int m = 0; m < 40; m++) {
			snprintf(tok, sizeof(tok), "%016x", m);
			struct unauth_call c = call(peer, (uint16_t)m, UNAUTH_UNKNOWN, tok, "r", i);

			unauth_note(t, &c);
		}
	}
	unauth_totals(t, totals, &folded);
	assert_int_equal(totals[UNAUTH_UNKNOWN], 400);
	assert_int_equal(folded, 6 * 40);
	assert_int_equal(unauth_take(t, &s, &n), 0);
	assert_int_equal(n, 5);
	o = &s[4];
	assert_true(o->other);
	assert_string_equal(o->source, "other");
	assert_int_equal(o->count, 240);
	assert_int_equal(o->first_us, 4);
	assert_int_equal(o->last_us, 9);
	first = find(s, n, "10.0.0.0");
	assert_non_null(first);
	assert_int_equal(first->count, 40);
	assert_int_equal(first->n_methods, UNAUTH_METHODS);
	assert_int_equal(first->other_methods, 40 - UNAUTH_METHODS);
	assert_int_equal(first->n_tokens, UNAUTH_TOKENS);
	assert_int_equal(first->other_tokens, 40 - UNAUTH_TOKENS);
	free(s);
	/* a new interval has room again */
	{
		struct unauth_call c = call("ipv4:10.0.0.9:1", 0, UNAUTH_MISSING, "", "", 50);

		unauth_note(t, &c);
	}
	assert_int_equal(unauth_take(t, &s, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(s[0].source, "10.0.0.9");
	free(s);
	unauth_table_free(t);
	assert_int_equal(unauth_table_new(0, &t), -EINVAL);
}

/* A write that failed puts its summaries back: the next take has them, added up. */
static void test_merge_back(void **state)
{
	struct unauth_table *t = NULL;
	struct unauth_summary *s = NULL, *s2 = NULL;
	const struct unauth_summary *a, *o;
	size_t n = 0, n2 = 0;

	(void)state;
	assert_int_equal(unauth_table_new(1, &t), 0);
	for (int i = 0; i < 3; i++) {
		struct unauth_call c = call(i ? "ipv4:10.0.0.2:1" : "ipv4:10.0.0.1:1", 1,
					    UNAUTH_MISSING, "", "first", 100 + i);

		unauth_note(t, &c);
	}
	assert_int_equal(unauth_take(t, &s, &n), 0);
	assert_int_equal(n, 2);
	{
		struct unauth_call c = call("ipv4:10.0.0.1:1", 2, UNAUTH_EXPIRED, "", "second", 50);

		unauth_note(t, &c);
	}
	for (size_t i = 0; i < n; i++)
		unauth_merge(t, &s[i]);
	assert_int_equal(unauth_take(t, &s2, &n2), 0);
	assert_int_equal(n2, 2);
	a = find(s2, n2, "10.0.0.1");
	o = find(s2, n2, "other");
	assert_non_null(a);
	assert_non_null(o);
	assert_true(o->other);
	assert_int_equal(a->count, 2);
	assert_int_equal(a->first_us, 50);
	assert_int_equal(a->last_us, 100);
	assert_int_equal(a->reasons[UNAUTH_MISSING], 1);
	assert_int_equal(a->reasons[UNAUTH_EXPIRED], 1);
	assert_int_equal(a->n_methods, 2);
	assert_string_equal(a->sample, "second"); /* the newer interval's first call */
	assert_int_equal(o->count, 2);
	free(s);
	free(s2);
	unauth_table_free(t);
}

static void test_json(void **state)
{
	static const char *const names[] = { "/trstctl.v1.Secrets/GetSecret",
					     "/trstctl.v1.CA/GetOwner" };
	struct unauth_table *t = NULL;
	struct unauth_summary *s = NULL;
	size_t n = 0;
	json_t *o;
	char *text;

	(void)state;
	assert_int_equal(unauth_table_new(4, &t), 0);
	for (int i = 0; i < 5; i++) {
		struct unauth_call c =
			call("ipv4:192.0.2.1:7", i < 3 ? 0 : UNAUTH_NO_METHOD, UNAUTH_MALFORMED, "",
			     "secret/\x01x", 1700000000000000LL);

		unauth_note(t, &c);
	}
	assert_int_equal(unauth_take(t, &s, &n), 0);
	o = unauth_summary_json(&s[0], names, 2, 60000);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "source")), "192.0.2.1");
	assert_int_equal(json_integer_value(json_object_get(o, "count")), 5);
	assert_int_equal(json_integer_value(json_object_get(o, "interval_seconds")), 60);
	assert_int_equal(
		json_integer_value(json_object_get(json_object_get(o, "reasons"), "malformed")), 5);
	assert_int_equal(
		json_integer_value(json_object_get(json_object_get(o, "methods"), names[0])), 3);
	assert_int_equal(
		json_integer_value(json_object_get(json_object_get(o, "methods"), "(none)")), 2);
	assert_string_equal(json_string_value(json_object_get(o, "first_time")),
			    "2023-11-14T22:13:20.000000Z");
	assert_string_equal(json_string_value(json_object_get(o, "sample_resource")),
			    "secret/\\x01x");
	assert_false(json_is_true(json_object_get(o, "other_sources")));
	text = json_dumps(o, JSON_COMPACT);
	for (const char *p = text; *p; p++)
		assert_true((unsigned char)*p >= 0x20);
	free(text);
	json_decref(o);
	free(s);
	unauth_table_free(t);
}

/* The table against a plain list: every call of every source is counted once. */
static void test_model(void **state)
{
	enum {
		SOURCES = 300,
		CALLS = 20000,
		CAP = 200
	};
	static uint64_t want[SOURCES];
	struct unauth_table *t = NULL;
	struct unauth_summary *s = NULL;
	uint64_t total = 0, other_want = 0, seen[SOURCES] = { 0 };
	bool kept[SOURCES] = { false };
	size_t n = 0, distinct = 0;
	unsigned seed = 12345;

	(void)state;
	assert_int_equal(unauth_table_new(CAP, &t), 0);
	memset(want, 0, sizeof(want));
	for (int i = 0; i < CALLS; i++) {
		unsigned src = (unsigned)rand_r(&seed) % SOURCES;
		char peer[64];
		struct unauth_call c;

		snprintf(peer, sizeof(peer), "ipv6:[2001:db8::%x]:%d", src, i);
		c = call(peer, (uint16_t)(rand_r(&seed) % 40), UNAUTH_MISSING, "", "", i);
		unauth_note(t, &c);
		want[src]++;
		if (!kept[src] && want[src] == 1 && distinct < CAP) {
			kept[src] = true;
			distinct++;
		}
		if (!kept[src])
			other_want++;
	}
	assert_int_equal(unauth_take(t, &s, &n), 0);
	assert_int_equal(n, CAP + 1);
	for (size_t i = 0; i < n; i++) {
		total += s[i].count;
		if (s[i].other) {
			assert_int_equal(s[i].count, other_want);
			continue;
		}
		unsigned src;

		assert_int_equal(sscanf(s[i].source, "2001:db8::%x", &src), 1);
		assert_true(src < SOURCES && kept[src]);
		seen[src] = s[i].count;
	}
	assert_int_equal(total, CALLS);
	for (unsigned i = 0; i < SOURCES; i++)
		if (kept[i])
			assert_int_equal(seen[i], want[i]);
	free(s);
	unauth_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peer_source), cmocka_unit_test(test_text_clean),
		cmocka_unit_test(test_one_source),  cmocka_unit_test(test_cap_and_limits),
		cmocka_unit_test(test_merge_back),  cmocka_unit_test(test_json),
		cmocka_unit_test(test_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
