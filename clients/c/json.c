/*
 * libtrstctl's proto3 JSON printer: any protobuf-c message written as the proto3 JSON
 * mapping (https://protobuf.dev/programming-guides/proto3/#json) says, driven only by the
 * message's descriptors, so that it prints every reply of the API (and any other message)
 * with no generated code of its own. protobuf-c has no JSON support; this is the one
 * printer the command line and the C client's users share.
 *
 * What it writes: field names in lowerCamelCase (the json_name protoc derives: each "_x"
 * becomes "X"); 64-bit integers as decimal strings, 32-bit ones as numbers; bytes in
 * standard base64 with padding; enums by value name (a number the descriptor does not
 * know as a number); maps as objects keyed by the key's text; google.protobuf.Timestamp as
 * an RFC 3339 string in UTC with 0, 3, 6 or 9 fraction digits; floats in their shortest
 * round-tripping form ("NaN", "Infinity", "-Infinity" as strings). Every field is written,
 * also one that holds its default (what protojson's EmitUnpopulated and Python's
 * including_default_value_fields do), except the fields with presence that are unset: a
 * singular message, a proto3 `optional` scalar, a oneof member not chosen. Unknown fields
 * are not written.
 *
 * Assumes string fields hold UTF-8 (protobuf-c does not check; the bytes are copied as they
 * are, with the characters JSON requires escaped) and map entries shaped as protoc makes
 * them (a nested <Field>Entry message with key = 1 and value = 2).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trstctl-client.h"

struct out {
	FILE *f;
	unsigned flags;
	int depth;
};

static void newline(struct out *o)
{
	if (!(o->flags & TRSTCTL_JSON_INDENT))
		return;
	fputc('\n', o->f);
	for (int i = 0; i < o->depth; i++)
		fputs("  ", o->f);
}

static void write_string(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		switch (ch) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\b':
			fputs("\\b", f);
			break;
		case '\f':
			fputs("\\f", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (ch < 0x20 || ch == 0x7f)
				fprintf(f, "\\u%04x", ch);
			else
				fputc(ch, f);
		}
	}
	fputc('"', f);
}

static void write_cstring(FILE *f, const char *s)
{
	write_string(f, s ? s : "", s ? strlen(s) : 0);
}

/* The proto3 JSON name of a field: "dns_names" -> "dnsNames". */
static void write_name(FILE *f, const char *name)
{
	bool up = false;

	fputc('"', f);
	for (; *name; name++) {
		if (*name == '_') {
			up = true;
			continue;
		}
		fputc(up && *name >= 'a' && *name <= 'z' ? *name - 'a' + 'A' : *name, f);
		up = false;
	}
	fputc('"', f);
}

static void write_base64(FILE *f, const ProtobufCBinaryData *b)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;

	fputc('"', f);
	for (i = 0; i + 2 < b->len; i += 3) {
		uint32_t v =
			(uint32_t)b->data[i] << 16 | (uint32_t)b->data[i + 1] << 8 | b->data[i + 2];

		fputc(tab[v >> 18], f);
		fputc(tab[(v >> 12) & 63], f);
		fputc(tab[(v >> 6) & 63], f);
		fputc(tab[v & 63], f);
	}
	if (i < b->len) {
		uint32_t v = (uint32_t)b->data[i] << 16 |
			     (i + 1 < b->len ? (uint32_t)b->data[i + 1] << 8 : 0);

		fputc(tab[v >> 18], f);
		fputc(tab[(v >> 12) & 63], f);
		fputc(i + 1 < b->len ? tab[(v >> 6) & 63] : '=', f);
		fputc('=', f);
	}
	fputc('"', f);
}

/* The shortest decimal that reads back as v (proto3 JSON: a number, or a named string). */
static void write_double(FILE *f, double v, int max_digits)
{
	char buf[40];

	if (isnan(v)) {
		fputs("\"NaN\"", f);
		return;
	}
	if (isinf(v)) {
		fputs(v > 0 ? "\"Infinity\"" : "\"-Infinity\"", f);
		return;
	}
	for (int p = 1; p <= max_digits; p++) {
		snprintf(buf, sizeof(buf), "%.*g", p, v);
		if (max_digits == 9 ? (float)strtod(buf, NULL) == (float)v : strtod(buf, NULL) == v)
			break;
	}
	fputs(buf, f);
}

/* google.protobuf.Timestamp as RFC 3339: "2024-05-01T12:00:00Z", ".5" as ".500Z". */
static void write_timestamp(FILE *f, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	int64_t seconds = 0;
	int32_t nanos = 0;
	char buf[64];
	struct tm tm;
	time_t t;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const void *p = (const char *)m + d->fields[i].offset;

		if (d->fields[i].id == 1)
			seconds = *(const int64_t *)p;
		else if (d->fields[i].id == 2)
			nanos = *(const int32_t *)p;
	}
	t = (time_t)seconds;
	if (!gmtime_r(&t, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm)) {
		fputs("null", f);
		return;
	}
	fprintf(f, "\"%s", buf);
	if (nanos > 0 && nanos < 1000000000) {
		if (nanos % 1000000 == 0)
			fprintf(f, ".%03d", nanos / 1000000);
		else if (nanos % 1000 == 0)
			fprintf(f, ".%06d", nanos / 1000);
		else
			fprintf(f, ".%09d", nanos);
	}
	fputs("Z\"", f);
}

static void write_message(struct out *o, const ProtobufCMessage *m);

/* One value of field f at p (an element of a repeated field, or the field itself). */
static void write_value(struct out *o, const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		fprintf(o->f, "%" PRId32, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		fprintf(o->f, "%" PRIu32, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		fprintf(o->f, "\"%" PRId64 "\"", *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		fprintf(o->f, "\"%" PRIu64 "\"", *(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		write_double(o->f, *(const float *)p, 9);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		write_double(o->f, *(const double *)p, 17);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		fputs(*(const protobuf_c_boolean *)p ? "true" : "false", o->f);
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		int v = *(const int *)p;
		const ProtobufCEnumValue *ev =
			protobuf_c_enum_descriptor_get_value(f->descriptor, v);

		if (ev)
			write_cstring(o->f, ev->name);
		else
			fprintf(o->f, "%d", v);
		break;
	}
	case PROTOBUF_C_TYPE_STRING:
		write_cstring(o->f, *(char *const *)p);
		break;
	case PROTOBUF_C_TYPE_BYTES:
		write_base64(o->f, p);
		break;
	case PROTOBUF_C_TYPE_MESSAGE:
		if (*(ProtobufCMessage *const *)p)
			write_message(o, *(ProtobufCMessage *const *)p);
		else
			fputs("null", o->f);
		break;
	}
}

size_t trstctl_value_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	default:
		return 4;
	}
}

bool trstctl_field_is_map(const ProtobufCMessageDescriptor *parent,
			  const ProtobufCFieldDescriptor *f)
{
	const ProtobufCMessageDescriptor *e = f->descriptor;
	char want[512];
	size_t n;
	bool up = true;

	if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE || !e ||
	    e->n_fields != 2 || e->fields[0].id != 1 || e->fields[1].id != 2 ||
	    strcmp(e->fields[0].name, "key") || strcmp(e->fields[1].name, "value"))
		return false;
	/* protoc names the entry "<Parent>.<FieldInCamelCase>Entry" */
	n = (size_t)snprintf(want, sizeof(want), "%s.", parent->name);
	for (const char *s = f->name; *s && n + 6 < sizeof(want); s++) {
		if (*s == '_') {
			up = true;
			continue;
		}
		want[n++] = up && *s >= 'a' && *s <= 'z' ? *s - 'a' + 'A' : *s;
		up = false;
	}
	snprintf(want + n, sizeof(want) - n, "Entry");
	return strcmp(e->name, want) == 0;
}

/* A map entry's key as the object key: strings as they are, other types as their text. */
static void write_map_key(struct out *o, const ProtobufCFieldDescriptor *kf, const void *p)
{
	switch (kf->type) {
	case PROTOBUF_C_TYPE_STRING:
		write_cstring(o->f, *(char *const *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		fputs(*(const protobuf_c_boolean *)p ? "\"true\"" : "\"false\"", o->f);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		write_value(o, kf, p); /* already quoted */
		break;
	default:
		fputc('"', o->f);
		write_value(o, kf, p);
		fputc('"', o->f);
	}
}

static void write_repeated(struct out *o, const ProtobufCMessageDescriptor *d,
			   const ProtobufCFieldDescriptor *f, const ProtobufCMessage *m)
{
	size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
	const char *items = *(char *const *)((const char *)m + f->offset);
	bool map = trstctl_field_is_map(d, f);
	size_t sz = trstctl_value_size(f->type);

	fputc(map ? '{' : '[', o->f);
	if (n == 0) {
		fputc(map ? '}' : ']', o->f);
		return;
	}
	o->depth++;
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputc(',', o->f);
		newline(o);
		if (map) {
			const ProtobufCMessage *e = *(ProtobufCMessage *const *)(items + i * sz);
			const ProtobufCMessageDescriptor *ed = f->descriptor;

			write_map_key(o, &ed->fields[0], (const char *)e + ed->fields[0].offset);
			fputs(o->flags & TRSTCTL_JSON_INDENT ? ": " : ":", o->f);
			write_value(o, &ed->fields[1], (const char *)e + ed->fields[1].offset);
		} else {
			write_value(o, f, items + i * sz);
		}
	}
	o->depth--;
	newline(o);
	fputc(map ? '}' : ']', o->f);
}

/* False for a field with presence that holds no value (it is left out). */
static bool field_present(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *m)
{
	const char *p = (const char *)m + f->offset;

	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)((const char *)m + f->quantifier_offset) == f->id;
	if (f->type == PROTOBUF_C_TYPE_MESSAGE)
		return *(ProtobufCMessage *const *)p != NULL;
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
		if (f->type == PROTOBUF_C_TYPE_STRING)
			return *(char *const *)p != NULL;
		return *(const protobuf_c_boolean *)((const char *)m + f->quantifier_offset);
	}
	return true;
}

static void write_message(struct out *o, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	bool first = true;

	if (!strcmp(d->name, "google.protobuf.Timestamp")) {
		write_timestamp(o->f, m);
		return;
	}
	fputc('{', o->f);
	o->depth++;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];

		if (f->label != PROTOBUF_C_LABEL_REPEATED && !field_present(f, m))
			continue;
		if (!first)
			fputc(',', o->f);
		first = false;
		newline(o);
		write_name(o->f, f->name);
		fputs(o->flags & TRSTCTL_JSON_INDENT ? ": " : ":", o->f);
		if (f->label == PROTOBUF_C_LABEL_REPEATED)
			write_repeated(o, d, f, m);
		else
			write_value(o, f, (const char *)m + f->offset);
	}
	o->depth--;
	if (!first)
		newline(o);
	fputc('}', o->f);
}

int trstctl_json_write(FILE *f, const ProtobufCMessage *msg, unsigned flags)
{
	struct out o = { .f = f, .flags = flags };

	if (!f || !msg)
		return -EINVAL;
	write_message(&o, msg);
	if (flags & TRSTCTL_JSON_NEWLINE)
		fputc('\n', f);
	return ferror(f) ? -EIO : 0;
}
