/*
 * array.c: PostgreSQL array literals built in memory, the form in which the pre-commit
 * hooks (audit/, bus/, ca/, secrets/) pass a batch of rows as one parameter per column
 * (unnest on the server side). The literal is text: every element is quoted, so only '"'
 * and '\' need escaping; it assumes no element holds a NUL (PostgreSQL text cannot).
 * Byte strings travel together as one bytea (struct db_blob) with their offsets and
 * lengths as arrays.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
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

void db_array_add_text(struct db_array *a, const char *s)
{
	db_array_add(a, s, strlen(s));
}

void db_array_add_int(struct db_array *a, int64_t v)
{
	char num[24];

	db_array_add(a, num, (size_t)snprintf(num, sizeof(num), "%" PRId64, v));
}

void db_blob_add(struct db_blob *b, struct db_array *offs, struct db_array *lens, const void *p,
		 size_t n)
{
	if (!b->failed && b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *d;

		while (cap < b->len + n)
			cap *= 2;
		d = realloc(b->data, cap);
		if (!d)
			b->failed = true;
		else
			b->data = d, b->cap = cap;
	}
	if (b->failed)
		return;
	if (n)
		memcpy(b->data + b->len, p, n);
	db_array_add_int(offs, (int64_t)b->len);
	db_array_add_int(lens, (int64_t)n);
	b->len += n;
}

void db_blob_clear(struct db_blob *b)
{
	free(b->data);
	*b = (struct db_blob){ 0 };
}

int db_exec_columns(struct db_conn *conn, const char *sql, struct db_array *cols, size_t n_cols,
		    struct db_blob *blob, struct db_rows **ret_rows)
{
	struct db_param p[31];
	int r = n_cols <= 30 ? 0 : -EINVAL;

	for (size_t j = 0; r >= 0 && j < n_cols; j++) {
		p[j] = DB_TEXT(db_array_end(&cols[j]));
		if (!p[j].text)
			r = -ENOMEM;
	}
	if (r >= 0 && blob) {
		p[n_cols] = DB_BYTES(blob->data ? blob->data : (const uint8_t *)"", blob->len);
		if (blob->failed)
			r = -ENOMEM;
	}
	if (r >= 0)
		r = db_exec(conn, sql, p, n_cols + (blob ? 1 : 0), ret_rows);
	for (size_t j = 0; j < n_cols; j++)
		db_array_clear(&cols[j]);
	if (blob)
		db_blob_clear(blob);
	return r;
}
