/*
 * libFuzzer target for the resource glob of policy rules (glob_compile in policy.c, the
 * matcher and its literal-prefix shortcut in eval.c). The input's first line is a pattern,
 * each further line a resource. The pattern becomes the only resource of an allow rule
 * (the document is built with jansson, so any bytes can be tried); properties:
 *   - the parser accepts exactly the patterns a plain reference calls well formed: 1..512
 *     bytes, no space or control character, none of ?[]{}\, no empty segment, `**` only
 *     as a whole segment;
 *   - for an accepted pattern, the decision on every resource is the reference's: segments
 *     split at '/', `*` any characters within one segment, `**` any number of segments,
 *     the lone `*` every resource. The reference is a table (dynamic programming), not the
 *     evaluator's greedy backtracking, so a long input costs time, never a wrong answer.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define FUZZ_POLICY_SET
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RES 8
#define MAX_SEGS 64

static bool ref_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 512)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c == 0x7f || strchr("?[]{}\\", c))
			return false;
		if (c == '/' && (i == 0 || i + 1 == n || s[i + 1] == '/'))
			return false;
	}
	/* A run of stars longer than one is exactly a whole "**" segment. */
	for (size_t i = 0; i < n;) {
		size_t j = i;

		while (j < n && s[j] == '*')
			j++;
		if (j - i > 2 ||
		    (j - i == 2 && ((i > 0 && s[i - 1] != '/') || (j < n && s[j] != '/'))))
			return false;
		i = j > i ? j : i + 1;
	}
	return true;
}

/* `*` within one segment: p (pl bytes) against s (sl bytes), by table. */
static bool ref_chars(const char *p, size_t pl, const char *s, size_t sl)
{
	bool *row = calloc(sl + 1, sizeof(*row)), *next = calloc(sl + 1, sizeof(*next)), ok;

	if (!row || !next)
		abort();
	/* row[j]: p[i..] matches s[j..], computed from the end of p backwards. */
	row[sl] = true;
	for (size_t i = pl; i-- > 0;) {
		bool *t;

		next[sl] = p[i] == '*' && row[sl];
		for (size_t j = sl; j-- > 0;)
			next[j] = p[i] == '*' ? (row[j] || next[j + 1])
					      : (p[i] == s[j] && row[j + 1]);
		t = row;
		row = next;
		next = t;
	}
	ok = row[0];
	free(row);
	free(next);
	return ok;
}

static size_t split(char *s, char **segs, size_t *lens)
{
	size_t n = 0;

	for (char *p = s;; p++) {
		char *slash = strchr(p, '/');

		if (n == MAX_SEGS)
			return SIZE_MAX;
		segs[n] = p;
		lens[n++] = slash ? (size_t)(slash - p) : strlen(p);
		if (!slash)
			return n;
		p = slash;
	}
}

/* -1 when the resource has too many segments for the table. */
static int ref_glob(const char *pat, const char *res)
{
	char pb[520], rb[1024], *ps[MAX_SEGS], *rs[MAX_SEGS];
	size_t pl[MAX_SEGS], rl[MAX_SEGS], np, nr;
	bool m[MAX_SEGS + 1][MAX_SEGS + 1];

	if (strcmp(pat, "*") == 0)
		return 1;
	if (strlen(res) >= sizeof(rb))
		return -1;
	strcpy(pb, pat);
	strcpy(rb, res);
	np = split(pb, ps, pl);
	nr = split(rb, rs, rl);
	if (np == SIZE_MAX || nr == SIZE_MAX)
		return -1;
	/* m[i][j]: segments i.. of the pattern match segments j.. of the resource. */
	for (size_t i = np + 1; i-- > 0;)
		for (size_t j = nr + 1; j-- > 0;) {
			if (i == np)
				m[i][j] = j == nr;
			else if (pl[i] == 2 && ps[i][0] == '*' && ps[i][1] == '*')
				m[i][j] = m[i + 1][j] || (j < nr && m[i][j + 1]);
			else
				m[i][j] = j < nr && ref_chars(ps[i], pl[i], rs[j], rl[j]) &&
					  m[i + 1][j + 1];
		}
	return m[0][0];
}

/* The document {"rules": [allow Secrets.GetSecret on <pat>]}, or NULL (not UTF-8). */
static char *doc_for(const char *pat, size_t len)
{
	json_t *p = json_stringn(pat, len), *doc;
	char *s;

	if (!p)
		return NULL;
	doc = json_pack("{s:[{s:s, s:[s], s:[o]}]}", "rules", "effect", "allow", "actions",
			"Secrets.GetSecret", "resources", p);
	if (!doc)
		abort();
	s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "fz" };
	static uint64_t version;
	struct policy_doc *doc = NULL;
	char err[POLICY_ERR_MAX], *in, *nl, *json, *res;
	bool valid;
	int r;

	in = fuzz_cstring(data, size, 2048);
	if (!in)
		return 0;
	nl = strchr(in, '\n');
	if (nl)
		*nl = '\0';
	json = doc_for(in, strlen(in));
	if (!json) {
		free(in);
		return 0;
	}
	valid = ref_valid(in);
	r = policy_parse(json, test_actions, TEST_N_ACTIONS, &doc, err, sizeof(err));
	free(json);
	if ((r == 0) != valid)
		abort();
	if (r < 0) {
		free(in);
		return 0;
	}
	if (policy_set_put(fuzz_policy_set(), "fz", ++version, doc) != 1)
		abort();
	res = nl ? nl + 1 : NULL;
	for (int k = 0; res && k < MAX_RES; k++) {
		struct policy_request q = { .action = "Secrets.GetSecret", .resource = res };
		struct policy_decision d;
		char *next = strchr(res, '\n');
		int want;

		if (next)
			*next = '\0';
		want = ref_glob(in, res);
		if (policy_eval(fuzz_policy_set(), names, 1, &q, &d) < 0)
			abort();
		if (want >= 0 && d.allowed != (want == 1))
			abort();
		res = next ? next + 1 : NULL;
	}
	free(in);
	return 0;
}
