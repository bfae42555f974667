/*
 * The table of unauthenticated calls (authz-int.h): one summary per source, at most
 * max_sources of them plus "other", where the calls of every further source are folded
 * (so a flood from many addresses costs bounded memory and still counts every call). A
 * summary keeps counts, the first and last time, the reasons, up to UNAUTH_METHODS
 * methods and UNAUTH_TOKENS presented token ids, and the first call's resource cleaned
 * and cut to UNAUTH_SAMPLE_MAX bytes (unauth-text.c): what the caller chose is never stored
 * whole, and never with a control character. Lookups go through glibc's hsearch_r, rebuilt
 * empty at each take. No database and no gRPC here: unauth.c writes and serves what this
 * counts.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit.h"
#include "authz-int.h"

struct unauth_table {
	pthread_mutex_t mu;		 /* guards everything below */
	size_t max;			 /* sources kept besides other */
	struct hsearch_data index;	 /* source -> position in entries (data is n + 1) */
	bool indexed;			 /* index was created */
	struct unauth_summary **entries; /* n of them, each its own allocation (keys stay put) */
	size_t n, cap;
	struct unauth_summary other; /* count 0: unused */
	uint64_t totals[UNAUTH_N_REASONS];
	uint64_t folded;
};

static const char *const reason_names[UNAUTH_N_REASONS] = {
	[UNAUTH_MISSING] = "missing", [UNAUTH_MALFORMED] = "malformed",
	[UNAUTH_UNKNOWN] = "unknown", [UNAUTH_EXPIRED] = "expired",
	[UNAUTH_REVOKED] = "revoked",
};

const char *unauth_reason_name(enum unauth_reason r)
{
	return (unsigned)r < UNAUTH_N_REASONS ? reason_names[r] : "unknown";
}

enum unauth_reason unauth_reason_from(const char *name)
{
	for (int i = 0; name && i < UNAUTH_N_REASONS; i++)
		if (strcmp(name, reason_names[i]) == 0)
			return (enum unauth_reason)i;
	return UNAUTH_UNKNOWN;
}

/* The table ---------------------------------------------------------------------------- */

static int index_reset(struct unauth_table *t)
{
	if (t->indexed)
		hdestroy_r(&t->index);
	memset(&t->index, 0, sizeof(t->index));
	t->indexed = hcreate_r(t->max + t->max / 2 + 1, &t->index) != 0;
	return t->indexed ? 0 : -ENOMEM;
}

int unauth_table_new(size_t max_sources, struct unauth_table **ret)
{
	struct unauth_table *t;

	if (!ret || max_sources == 0 || max_sources > (1u << 24))
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->max = max_sources;
	if (index_reset(t) < 0) {
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->mu, NULL);
	*ret = t;
	return 0;
}

static void entries_free(struct unauth_summary **e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i]);
	free(e);
}

struct unauth_table *unauth_table_free(struct unauth_table *t)
{
	if (!t)
		return NULL;
	if (t->indexed)
		hdestroy_r(&t->index);
	entries_free(t->entries, t->n);
	pthread_mutex_destroy(&t->mu);
	free(t);
	return NULL;
}

/* The entry of source (made when there is room), else other. Called with mu held. */
static struct unauth_summary *entry_of(struct unauth_table *t, const char *source)
{
	ENTRY want = { .key = (char *)source }, *found = NULL;
	struct unauth_summary *e;

	if (hsearch_r(want, FIND, &found, &t->index) && found)
		return t->entries[(uintptr_t)found->data - 1];
	if (t->n >= t->max)
		goto other;
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 16;
		struct unauth_summary **ne;

		if (cap > t->max)
			cap = t->max;
		ne = realloc(t->entries, cap * sizeof(*ne));
		if (!ne)
			goto other;
		t->entries = ne;
		t->cap = cap;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		goto other;
	snprintf(e->source, sizeof(e->source), "%s", source);
	want.key = e->source;
	want.data = (void *)(uintptr_t)(t->n + 1);
	if (!hsearch_r(want, ENTER, &found, &t->index)) {
		free(e);
		goto other;
	}
	t->entries[t->n++] = e;
	return e;
other:
	if (t->other.count == 0)
		snprintf(t->other.source, sizeof(t->other.source), "other");
	t->other.other = true;
	return &t->other;
}

static void add_method(struct unauth_summary *e, uint16_t idx, uint64_t count)
{
	for (size_t i = 0; i < e->n_methods; i++) {
		if (e->methods[i].idx == idx) {
			e->methods[i].count += count;
			return;
		}
	}
	if (e->n_methods == UNAUTH_METHODS) {
		e->other_methods += count;
		return;
	}
	e->methods[e->n_methods].idx = idx;
	e->methods[e->n_methods++].count = count;
}

static void add_token(struct unauth_summary *e, const char *id, uint64_t count)
{
	if (!id || !*id)
		return;
	for (size_t i = 0; i < e->n_tokens; i++)
		if (strcmp(e->tokens[i], id) == 0)
			return;
	if (e->n_tokens == UNAUTH_TOKENS) {
		e->other_tokens += count;
		return;
	}
	/* ids are made here (policy_token_id: hex of the token's hash), not by the caller */
	snprintf(e->tokens[e->n_tokens++], POLICY_TOKEN_ID_LEN + 1, "%s", id);
}

/* Adds the counts of s (count calls from first to last) into e. */
static void add_times(struct unauth_summary *e, uint64_t count, int64_t first, int64_t last)
{
	if (e->count == 0 || first < e->first_us)
		e->first_us = first;
	if (e->count == 0 || last > e->last_us)
		e->last_us = last;
	e->count += count;
}

void unauth_note(struct unauth_table *t, const struct unauth_call *c)
{
	char source[UNAUTH_CLEAN_LEN(UNAUTH_SOURCE_MAX)];
	enum unauth_reason r = (unsigned)c->reason < UNAUTH_N_REASONS ? c->reason : UNAUTH_UNKNOWN;
	struct unauth_summary *e;
	bool first;

	authz_peer_source(c->peer, source, sizeof(source));
	pthread_mutex_lock(&t->mu);
	t->totals[r]++;
	e = entry_of(t, source);
	first = e->count == 0;
	if (e->other)
		t->folded++;
	add_times(e, 1, c->now_us, c->now_us);
	e->reasons[r]++;
	add_method(e, c->method, 1);
	add_token(e, c->token_id, 1);
	if (first) {
		const char *res = c->resource ? c->resource : "";

		e->sample_bytes = strlen(res);
		authz_text_clean(res, UNAUTH_SAMPLE_MAX, e->sample, sizeof(e->sample));
	}
	pthread_mutex_unlock(&t->mu);
}

void unauth_merge(struct unauth_table *t, const struct unauth_summary *s)
{
	struct unauth_summary *e;
	bool first;

	if (!s || s->count == 0)
		return;
	pthread_mutex_lock(&t->mu);
	if (s->other) {
		snprintf(t->other.source, sizeof(t->other.source), "other");
		t->other.other = true;
		e = &t->other;
	} else {
		e = entry_of(t, s->source);
	}
	first = e->count == 0;
	add_times(e, s->count, s->first_us, s->last_us);
	for (int i = 0; i < UNAUTH_N_REASONS; i++)
		e->reasons[i] += s->reasons[i];
	for (size_t i = 0; i < s->n_methods; i++)
		add_method(e, s->methods[i].idx, s->methods[i].count);
	e->other_methods += s->other_methods;
	for (size_t i = 0; i < s->n_tokens; i++)
		add_token(e, s->tokens[i], 1);
	e->other_tokens += s->other_tokens;
	if (first) {
		memcpy(e->sample, s->sample, sizeof(e->sample));
		e->sample_bytes = s->sample_bytes;
	}
	pthread_mutex_unlock(&t->mu);
}

int unauth_take(struct unauth_table *t, struct unauth_summary **ret, size_t *ret_n)
{
	struct unauth_summary *out = NULL;
	size_t n;

	pthread_mutex_lock(&t->mu);
	n = t->n + (t->other.count > 0);
	if (n && !(out = malloc(n * sizeof(*out)))) {
		pthread_mutex_unlock(&t->mu);
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->n; i++)
		out[i] = *t->entries[i];
	if (t->other.count > 0)
		out[t->n] = t->other;
	/* an index that cannot be made again leaves every source to "other" until the next */
	index_reset(t);
	entries_free(t->entries, t->n);
	t->entries = NULL;
	t->n = t->cap = 0;
	memset(&t->other, 0, sizeof(t->other));
	pthread_mutex_unlock(&t->mu);
	*ret = out;
	*ret_n = n;
	return 0;
}

void unauth_totals(struct unauth_table *t, uint64_t ret_reasons[UNAUTH_N_REASONS],
		   uint64_t *ret_folded)
{
	pthread_mutex_lock(&t->mu);
	memcpy(ret_reasons, t->totals, sizeof(t->totals));
	*ret_folded = t->folded;
	pthread_mutex_unlock(&t->mu);
}

/* The record ---------------------------------------------------------------------------- */

json_t *unauth_summary_json(const struct unauth_summary *s, const char *const *names,
			    size_t n_names, int64_t interval_ms)
{
	char first[AUDIT_TIME_LEN + 1] = "", last[AUDIT_TIME_LEN + 1] = "";
	json_t *o, *reasons = json_object(), *methods = json_object(), *tokens = json_array();

	audit_format_time(s->first_us, first, sizeof(first));
	audit_format_time(s->last_us, last, sizeof(last));
	for (int i = 0; reasons && i < UNAUTH_N_REASONS; i++)
		if (s->reasons[i])
			json_object_set_new(reasons, reason_names[i],
					    json_integer((json_int_t)s->reasons[i]));
	for (size_t i = 0; methods && i < s->n_methods; i++) {
		const char *name =
			s->methods[i].idx < n_names ? names[s->methods[i].idx] : "(none)";

		json_object_set_new(methods, name, json_integer((json_int_t)s->methods[i].count));
	}
	for (size_t i = 0; tokens && i < s->n_tokens; i++)
		json_array_append_new(tokens, json_string(s->tokens[i]));
	o = json_pack("{s:s, s:b, s:I, s:s, s:s, s:I, s:o, s:o, s:I, s:o, s:I, s:s, s:I}", "source",
		      s->source, "other_sources", s->other, "count", (json_int_t)s->count,
		      "first_time", first, "last_time", last, "interval_seconds",
		      (json_int_t)(interval_ms / 1000), "reasons", reasons, "methods", methods,
		      "other_methods", (json_int_t)s->other_methods, "token_ids", tokens,
		      "other_token_ids", (json_int_t)s->other_tokens, "sample_resource", s->sample,
		      "sample_resource_bytes", (json_int_t)s->sample_bytes);
	return o; /* json_pack's "o" took reasons, methods and tokens (also when it failed) */
}
