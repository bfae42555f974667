/*
 * array.c: PostgreSQL array literals built in memory, the form in which audit/ and bus/
 * pass a batch of rows as one parameter per column (unnest on the server side). The
 * literal is text: every element is quoted, so only '"' and '\' need escaping; it
 * assumes no element holds a NUL (PostgreSQL text cannot).
 */
#include <stdlib.h>
#include <string.h>

#include "db.h"

static void put(struct db_array *a, const char *s, size_t n)
{
	size_t cap;
	char *p;

	if (a->failed)
		return;
	if (a->len + n + 1 > a->cap) {
		for (cap = a->cap ? a->cap : 256; cap < a->len + n + 1;)
			cap *= 2;
		p = realloc(a->text, cap);
		if (!p) {
			a->failed = true;
			return;
		}
		a->text = p;
		a->cap = cap;
	}
	memcpy(a->text + a->len, s, n);
	a->len += n;
	a->text[a->len] = '\0';
}

void db_array_add(struct db_array *a, const char *s, size_t len)
{
	size_t from = 0;

	put(a, a->n ? ",\"" : "{\"", 2);
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '"' && s[i] != '\\')
			continue;
		put(a, s + from, i - from);
		put(a, "\\", 1);
		from = i;
	}
	put(a, s + from, len - from);
	put(a, "\"", 1);
	a->n++;
}

const char *db_array_end(struct db_array *a)
{
	put(a, a->n ? "}" : "{}", a->n ? 1 : 2);
	return a->failed ? NULL : a->text;
}

void db_array_clear(struct db_array *a)
{
	free(a->text);
	*a = (struct db_array){ 0 };
}
