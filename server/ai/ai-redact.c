/*
 * The redactor of prompts: everything that looks like a secret is replaced before a
 * prompt leaves the process. Three passes over NUL-terminated text, each copying into a
 * new buffer: PEM blocks; then tokens, Bearer values, `name=value` pairs with a secret
 * name, and long hex or base64 runs; then (for text the server composed itself) words
 * that look random. The last rule is also the refusal test for a question
 * (ai_secret_like): what survives the patterns but still looks random is not sent.
 *
 * It errs on the side of removing too much (a 40-character identity name made of random
 * letters and digits is redacted too). It cannot recognise a secret that looks like
 * prose ("hunter2", a passphrase of dictionary words): what the server itself adds to a
 * prompt never contains a secret value, and the question is the caller's own text.
 */
#include "ai.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"

struct sb {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
	char *np;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;

		np = realloc(b->p, cap);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void sb_str(struct sb *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

/* Hands the text over (an empty string when nothing was added). */
static int sb_take(struct sb *b, char **ret)
{
	if (!b->oom && !b->p)
		sb_add(b, "", 0);
	if (b->oom) {
		free(b->p);
		return -ENOMEM;
	}
	*ret = b->p;
	return 0;
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
	return is_alpha(c) || is_digit(c);
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_b64(char c)
{
	return is_alnum(c) || c == '+' || c == '/' || c == '_' || c == '-';
}

/* Pass 1: PEM blocks ------------------------------------------------------------------- */

static void redact_pem(const char *in, struct sb *out, size_t *n)
{
	const char *p = in, *b;

	while ((b = strstr(p, "-----BEGIN ")) != NULL) {
		const char *end = strstr(b + 11, "-----END ");

		sb_add(out, p, (size_t)(b - p));
		sb_str(out, "[REDACTED PEM BLOCK]");
		(*n)++;
		if (!end) /* no END line: everything after BEGIN goes */
			return;
		p = strstr(end + 9, "-----");
		p = p ? p + 5 : end + strlen(end);
	}
	sb_str(out, p);
}

/* Pass 2: tokens, Bearer, name=value, runs --------------------------------------------- */

static const struct {
	const char *prefix;
	size_t min_rest; /* token characters needed after the prefix */
} token_prefixes[] = {
	{ "trst_", 1 },	 { "github_pat_", 16 }, { "ghp_", 16 },	  { "gho_", 16 },  { "ghu_", 16 },
	{ "ghs_", 16 },	 { "ghr_", 16 },	{ "glpat-", 16 }, { "xoxb-", 10 }, { "xoxp-", 10 },
	{ "xoxa-", 10 }, { "xoxs-", 10 },	{ "sk-", 20 },
};

static const char *const secret_names[] = { "password",	    "passwd",	  "secret",
					    "token",	    "apikey",	  "api_key",
					    "api-key",	    "access_key", "accesskey",
					    "private_key",  "privatekey", "credential",
					    "authorization" };
static const char *const secret_names_exact[] = { "pwd", "pass", "auth", "key" };

static bool token_char(char c)
{
	return is_alnum(c) || c == '_' || c == '-';
}

/* Length of a token starting at s (0: none). */
static size_t token_at(const char *s)
{
	for (size_t i = 0; i < sizeof(token_prefixes) / sizeof(token_prefixes[0]); i++) {
		size_t pl = strlen(token_prefixes[i].prefix), n = pl;

		if (strncmp(s, token_prefixes[i].prefix, pl) != 0)
			continue;
		while (token_char(s[n]))
			n++;
		if (n - pl >= token_prefixes[i].min_rest)
			return n;
	}
	/* AWS access key ids: AKIA or ASIA and 16 upper-case letters or digits */
	if (strncmp(s, "AKIA", 4) == 0 || strncmp(s, "ASIA", 4) == 0) {
		size_t n = 4;

		while (n < 20 && ((s[n] >= 'A' && s[n] <= 'Z') || is_digit(s[n])))
			n++;
		if (n == 20 && !is_alnum(s[20]))
			return 20;
	}
	return 0;
}

static bool secret_name(const char *s, size_t n)
{
	char lower[64];

	if (n == 0 || n >= sizeof(lower))
		return false;
	for (size_t i = 0; i < n; i++)
		lower[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
	lower[n] = 0;
	for (size_t i = 0; i < sizeof(secret_names_exact) / sizeof(secret_names_exact[0]); i++)
		if (strcmp(lower, secret_names_exact[i]) == 0)
			return true;
	for (size_t i = 0; i < sizeof(secret_names) / sizeof(secret_names[0]); i++)
		if (strstr(lower, secret_names[i]))
			return true;
	return false;
}

static bool name_char(char c)
{
	return is_alnum(c) || c == '_' || c == '-' || c == '.';
}

/*
 * A `name = value` pair at s with a secret name: returns the length up to the value and
 * sets *value_len (0: none).
 */
static size_t pair_at(const char *s, size_t *value_len)
{
	size_t n = 0, v;

	while (name_char(s[n]))
		n++;
	if (!secret_name(s, n))
		return 0;
	if (s[n] == '"' || s[n] == '\'')
		n++;
	while (s[n] == ' ' || s[n] == '\t')
		n++;
	if (s[n] != '=' && s[n] != ':')
		return 0;
	if (s[n] == ':' && s[n + 1] == '/' && s[n + 2] == '/')
		return 0; /* a URL scheme, not a pair */
	n++;
	while (s[n] == ' ' || s[n] == '\t')
		n++;
	if (strncmp(s + n + (s[n] == '"' || s[n] == '\''), "[REDACTED", 9) == 0)
		return 0; /* already redacted (a PEM block, or a second pass) */
	if (s[n] == '"' || s[n] == '\'') {
		char q = s[n++];

		for (v = 0; s[n + v] && s[n + v] != q && s[n + v] != '\n'; v++)
			;
	} else {
		for (v = 0; s[n + v] && !is_space(s[n + v]) && !strchr(",;&\"'", s[n + v]); v++)
			;
		/* "Authorization: Bearer <token>": the scheme and the credential go together */
		if ((v == 6 && strncasecmp(s + n, "bearer", 6) == 0) ||
		    (v == 5 && strncasecmp(s + n, "basic", 5) == 0)) {
			while (s[n + v] == ' ' || s[n + v] == '\t')
				v++;
			while (s[n + v] && !is_space(s[n + v]))
				v++;
		}
	}
	*value_len = v;
	return v ? n : 0;
}

/*
 * True when every segment between separators reads like a word or a number: letters and
 * digits change places at most once in it ("v1", "ipv4", "x86", "2nd"; not "a1b2").
 */
static bool plain_segments(const char *w, size_t n, const char *seps)
{
	size_t i = 0;

	while (i < n) {
		int last = 0, changes = 0; /* 1 letter, 2 digit */

		for (; i < n && !strchr(seps, w[i]); i++) {
			int kind = is_alpha(w[i]) ? 1 : is_digit(w[i]) ? 2 : 0;

			if (!kind)
				return false;
			changes += last && kind != last;
			last = kind;
		}
		if (changes > 1)
			return false;
		i++;
	}
	return true;
}

/* Whether the n characters at s are a run to redact: 32 or more, all hex, or mixing upper
 * case, lower case and digits other than as words joined by - _ / +. */
static bool run_like(const char *s, size_t n)
{
	size_t hex = 0;
	bool up = false, low = false, dig = false;

	if (n < 32)
		return false;
	for (size_t i = 0; i < n; i++) {
		up |= s[i] >= 'A' && s[i] <= 'Z';
		low |= s[i] >= 'a' && s[i] <= 'z';
		dig |= is_digit(s[i]);
		hex += is_hex(s[i]);
	}
	return hex == n || (up && low && dig && !plain_segments(s, n, "-_/+"));
}

/* Length of a hex or base64 run to redact at s, with its = padding (0: none). */
static size_t run_at(const char *s)
{
	size_t n = 0;

	while (is_b64(s[n]))
		n++;
	if (!run_like(s, n))
		return 0;
	while (s[n] == '=')
		n++;
	return n;
}

/* The patterns of pass 2; pairs false: all but name=value (for a pair's own name). */
static void redact_patterns(const char *in, struct sb *out, size_t *count, bool pairs)
{
	size_t i = 0;
	bool marked = false; /* a marker was just written: what follows starts afresh, as it
			      * will when the output is read again */

	while (in[i]) {
		bool start = i == 0 || marked || !(is_alnum(in[i - 1]) || in[i - 1] == '_');
		bool run_start = i == 0 || marked || !is_b64(in[i - 1]);
		size_t n = 0, v = 0;

		if (pairs && start && (n = pair_at(in + i, &v)) > 0) {
			size_t name = 0;
			char *copy;

			while (name_char(in[i + name]))
				name++;
			copy = strndup(in + i, name);
			if (!copy) {
				out->oom = true;
				return;
			}
			redact_patterns(copy, out, count, false); /* a token or run in the name */
			free(copy);
			sb_add(out, in + i + name, n - name);
			sb_str(out, AI_REDACTED);
			n += v;
		} else if (start && (n = token_at(in + i)) > 0) {
			sb_str(out, AI_REDACTED);
		} else if (start && strncasecmp(in + i, "bearer", 6) == 0 && is_space(in[i + 6])) {
			size_t sp = 6, w = 0;

			while (in[i + sp] == ' ' || in[i + sp] == '\t')
				sp++;
			while (in[i + sp + w] && !is_space(in[i + sp + w]))
				w++;
			/* short words are prose ("a bearer token"); a marker is done already */
			if (w < 12 || memmem(in + i + sp, w, "[REDACTED", 9)) {
				sb_add(out, in + i, 1);
				i++;
				marked = false;
				continue;
			}
			sb_add(out, in + i, sp);
			sb_str(out, AI_REDACTED);
			n = sp + w;
		} else if (run_start && (n = run_at(in + i)) > 0) {
			sb_str(out, AI_REDACTED);
		} else {
			sb_add(out, in + i, 1);
			i++;
			marked = false;
			continue;
		}
		(*count)++;
		i += n;
		marked = true;
	}
}

/* Pass 3 and the refusal test: random-looking words --------------------------------------- */

/* YYYY-MM-DD, optionally followed by T or space, a time, fraction and zone. */
static bool is_date(const char *w, size_t n)
{
	size_t i;

	if (n < 10 || !is_digit(w[0]) || !is_digit(w[3]) || w[4] != '-' || w[7] != '-' ||
	    !is_digit(w[9]))
		return false;
	for (i = 10; i < n; i++)
		if (!is_digit(w[i]) && !strchr("T:.Z+-", w[i]))
			return false;
	return true;
}

static double entropy(const char *w, size_t n)
{
	unsigned counts[256] = { 0 };
	double h = 0;

	for (size_t i = 0; i < n; i++)
		counts[(unsigned char)w[i]]++;
	for (int c = 0; c < 256; c++) {
		if (counts[c]) {
			double p = (double)counts[c] / (double)n;

			h -= p * log2(p);
		}
	}
	return h;
}

static bool word_secret_like(const char *w, size_t n)
{
	char uuid[CRYPTO_UUID_LEN + 1];
	bool low = false, up = false, dig = false, other = false;
	double h;

	if (n < 16 || strncmp(w, "[REDACTED", 9) == 0 || is_date(w, n))
		return false;
	if (n == CRYPTO_UUID_LEN) {
		memcpy(uuid, w, n);
		uuid[n] = 0;
		if (crypto_uuid_valid(uuid))
			return false;
	}
	if (plain_segments(w, n, "-_./:@"))
		return false;
	for (size_t i = 0; i < n; i++) {
		low |= w[i] >= 'a' && w[i] <= 'z';
		up |= w[i] >= 'A' && w[i] <= 'Z';
		dig |= is_digit(w[i]);
		other |= !is_alnum(w[i]);
	}
	h = entropy(w, n);
	if (low + up + dig + other >= 3 && dig && h >= 3.0)
		return true;
	return n >= 24 && h >= 4.0;
}

/* Punctuation that surrounds a word in prose and is not part of it. */
static bool edge_punct(char c)
{
	return strchr("\"'()[]{}<>,;.!?:", c) != NULL;
}

/* Calls fn for each word (trimmed of surrounding punctuation); stops when fn returns true. */
static bool each_word(const char *text, bool (*fn)(const char *w, size_t n, void *ud), void *ud)
{
	const char *p = text;

	while (*p) {
		const char *s, *e;

		while (*p && is_space(*p))
			p++;
		s = p;
		while (*p && !is_space(*p))
			p++;
		e = p;
		while (s < e && edge_punct(*s) && strncmp(s, "[REDACTED", 9) != 0)
			s++;
		while (e > s && edge_punct(e[-1]))
			e--;
		if (e > s && fn(s, (size_t)(e - s), ud))
			return true;
	}
	return false;
}

static bool flag_word(const char *w, size_t n, void *ud)
{
	(void)ud;
	return word_secret_like(w, n);
}

bool ai_secret_like(const char *text)
{
	return text && each_word(text, flag_word, NULL);
}

struct words_pass {
	const char *text, *done; /* copied up to done */
	struct sb *out;
	size_t *count;
};

static bool replace_word(const char *w, size_t n, void *ud)
{
	struct words_pass *wp = ud;

	if (word_secret_like(w, n)) {
		sb_add(wp->out, wp->done, (size_t)(w - wp->done));
		sb_str(wp->out, AI_REDACTED);
		wp->done = w + n;
		(*wp->count)++;
	}
	return false;
}

int ai_redact(const char *in, bool words_too, char **ret_out, size_t *ret_n)
{
	struct sb a = { 0 }, b = { 0 };
	size_t n = 0;
	char *t1 = NULL, *t2 = NULL;
	int r;

	if (!in || !ret_out || !ret_n)
		return -EINVAL;
	redact_pem(in, &a, &n);
	r = sb_take(&a, &t1);
	if (r < 0)
		return r;
	redact_patterns(t1, &b, &n, true);
	free(t1);
	r = sb_take(&b, &t2);
	if (r < 0)
		return r;
	if (words_too) {
		struct sb c = { 0 };
		struct words_pass wp = { t2, t2, &c, &n };

		each_word(t2, replace_word, &wp);
		sb_str(&c, wp.done);
		free(t2);
		r = sb_take(&c, &t2);
		if (r < 0)
			return r;
	}
	*ret_out = t2;
	*ret_n = n;
	return 0;
}
