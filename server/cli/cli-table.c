/*
 * cli-table.c: `-o table`, the default output of the client sub-commands, for any reply,
 * through its descriptors: a list reply as rows under a header, anything else as aligned
 * "field: value" lines (the layout `trstctl guard status` has always had). Field names are
 * the proto's own (snake_case), so a table and `-o json` name the same things. Commands
 * with a layout of their own (audit list, policy eval, ...) print it themselves and use
 * cli_table_value for the cells.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli-internal.h"

#define CELL_LEN 1024
#define MAX_COLUMNS 16

static bool is_timestamp(const ProtobufCFieldDescriptor *f)
{
	return f->type == PROTOBUF_C_TYPE_MESSAGE &&
	       !strcmp(((const ProtobufCMessageDescriptor *)f->descriptor)->name,
		       "google.protobuf.Timestamp");
}

/* One value (an element of a repeated field, or a singular field) as text. */
static void scalar_text(const ProtobufCFieldDescriptor *f, const void *p, char *buf, size_t len)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		snprintf(buf, len, "%" PRId32, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		snprintf(buf, len, "%" PRIu32, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		snprintf(buf, len, "%" PRId64, *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		snprintf(buf, len, "%" PRIu64, *(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		snprintf(buf, len, "%g", *(const float *)p);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		snprintf(buf, len, "%g", *(const double *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		snprintf(buf, len, "%s", *(const protobuf_c_boolean *)p ? "true" : "false");
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumValue *ev =
			protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p);

		if (ev)
			snprintf(buf, len, "%s", ev->name);
		else
			snprintf(buf, len, "%d", *(const int *)p);
		break;
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;

		snprintf(buf, len, "%s", s && *s ? s : "-");
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;

		if (b->len)
			snprintf(buf, len, "<%zu bytes>", b->len);
		else
			snprintf(buf, len, "-");
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;

		if (m && is_timestamp(f))
			cli_fmt_time(*(const int64_t *)((const char *)m +
							m->descriptor->fields[0].offset),
				     buf, len);
		else
			snprintf(buf, len, "%s", m ? "{...}" : "-");
		break;
	}
	}
}

char *cli_table_value(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, char *buf,
		      size_t len)
{
	const char *p = (const char *)m + f->offset;
	size_t n, used = 0;
	const char *items;

	if (f->label != PROTOBUF_C_LABEL_REPEATED) {
		scalar_text(f, p, buf, len);
		return buf;
	}
	n = *(const size_t *)((const char *)m + f->quantifier_offset);
	items = *(char *const *)p;
	buf[0] = '\0';
	for (size_t i = 0; i < n && used + 1 < len; i++) {
		char one[CELL_LEN];

		if (trstctl_field_is_map(m->descriptor, f)) {
			const ProtobufCMessage *e =
				*(ProtobufCMessage *const *)(items + i * sizeof(void *));
			const ProtobufCMessageDescriptor *ed = e->descriptor;
			char k[CELL_LEN / 2], v[CELL_LEN / 2];

			scalar_text(&ed->fields[0], (const char *)e + ed->fields[0].offset, k,
				    sizeof(k));
			scalar_text(&ed->fields[1], (const char *)e + ed->fields[1].offset, v,
				    sizeof(v));
			snprintf(one, sizeof(one), "%s=%s", k, v);
		} else {
			scalar_text(f, items + i * trstctl_value_size(f->type), one, sizeof(one));
		}
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", one);
	}
	if (!n)
		snprintf(buf, len, "-");
	return buf;
}

const ProtobufCFieldDescriptor *cli_list_field(const ProtobufCMessageDescriptor *d)
{
	const ProtobufCFieldDescriptor *list = NULL;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label != PROTOBUF_C_LABEL_REPEATED || trstctl_field_is_map(d, f) || list)
			return NULL;
		list = f;
	}
	return list;
}

/* "field: value" lines ---------------------------------------------------------------- */

/* Whether a field is printed as its own nested lines rather than one value. */
static bool nested(const ProtobufCFieldDescriptor *f)
{
	return f->type == PROTOBUF_C_TYPE_MESSAGE && !is_timestamp(f) &&
	       f->label != PROTOBUF_C_LABEL_REPEATED;
}

static size_t key_width(const ProtobufCMessage *m, size_t prefix)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	size_t w = 0;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		size_t k = prefix + strlen(f->name) + 1;
		const ProtobufCMessage *sub;

		if (nested(f)) {
			sub = *(ProtobufCMessage *const *)((const char *)m + f->offset);
			if (sub)
				k = key_width(sub, prefix + strlen(f->name) + 1);
		}
		if (k > w)
			w = k;
	}
	return w;
}

static void print_fields(FILE *out, const ProtobufCMessage *m, const char *prefix, int width)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *p = (const char *)m + f->offset;
		char key[256], *val = malloc(CELL_LEN * 16);

		if (!val)
			return;
		snprintf(key, sizeof(key), "%s%s:", prefix, f->name);
		if (nested(f)) {
			const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;

			if (sub) {
				snprintf(key, sizeof(key), "%s%s.", prefix, f->name);
				print_fields(out, sub, key, width);
			} else {
				fprintf(out, "%-*s -\n", width, key);
			}
		} else if (f->label == PROTOBUF_C_LABEL_REPEATED && trstctl_field_is_map(d, f)) {
			size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
			ProtobufCMessage *const *e = *(ProtobufCMessage * *const *)p;

			if (n)
				fprintf(out, "%s\n", key);
			else
				fprintf(out, "%-*s -\n", width, key);
			for (size_t k = 0; k < n; k++) {
				const ProtobufCMessageDescriptor *ed = e[k]->descriptor;
				char kt[CELL_LEN], vt[CELL_LEN];

				scalar_text(&ed->fields[0],
					    (const char *)e[k] + ed->fields[0].offset, kt,
					    sizeof(kt));
				scalar_text(&ed->fields[1],
					    (const char *)e[k] + ed->fields[1].offset, vt,
					    sizeof(vt));
				fprintf(out, "  %-*s %s\n", width - 2, kt, vt);
			}
		} else if (f->type == PROTOBUF_C_TYPE_STRING &&
			   f->label != PROTOBUF_C_LABEL_REPEATED && *(char *const *)p &&
			   strchr(*(char *const *)p, '\n')) {
			const char *s = *(char *const *)p; /* PEM and other text: as it is */

			fprintf(out, "%s\n%s%s", key, s, s[strlen(s) - 1] == '\n' ? "" : "\n");
		} else {
			fprintf(out, "%-*s %s\n", width, key,
				cli_table_value(m, f, val, CELL_LEN * 16));
		}
		free(val);
	}
}

/* Rows -------------------------------------------------------------------------------- */

static int print_rows(FILE *out, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *lf,
		      const char *const *columns)
{
	size_t n = *(const size_t *)((const char *)m + lf->quantifier_offset);
	ProtobufCMessage *const *items =
		*(ProtobufCMessage * *const *)((const char *)m + lf->offset);
	const ProtobufCMessageDescriptor *id = lf->descriptor;
	const ProtobufCFieldDescriptor *cols[MAX_COLUMNS];
	size_t nc = 0, width[MAX_COLUMNS];
	char **cells;

	for (unsigned i = 0; columns && columns[i] && nc < MAX_COLUMNS; i++)
		if ((cols[nc] = protobuf_c_message_descriptor_get_field_by_name(id, columns[i])))
			nc++;
	for (unsigned i = 0; !columns && i < id->n_fields && nc < MAX_COLUMNS; i++)
		if (!nested(&id->fields[i]) && id->fields[i].type != PROTOBUF_C_TYPE_BYTES)
			cols[nc++] = &id->fields[i];
	if (!nc)
		return -EINVAL;
	cells = calloc(n * nc + 1, sizeof(*cells));
	if (!cells)
		return -ENOMEM;
	for (size_t c = 0; c < nc; c++)
		width[c] = strlen(cols[c]->name);
	for (size_t r = 0; r < n; r++)
		for (size_t c = 0; c < nc; c++) {
			char buf[CELL_LEN];
			char *nl;

			cli_table_value(items[r], cols[c], buf, sizeof(buf));
			if ((nl = strchr(buf, '\n'))) /* a cell is one line */
				snprintf(nl, sizeof(buf) - (size_t)(nl - buf), "...");
			cells[r * nc + c] = strdup(buf);
			if (cells[r * nc + c] && strlen(buf) > width[c])
				width[c] = strlen(buf);
		}
	for (size_t c = 0; c < nc; c++) {
		for (const char *s = cols[c]->name; *s; s++)
			fputc(*s >= 'a' && *s <= 'z' ? *s - 'a' + 'A' : *s, out);
		fprintf(out, "%*s", c + 1 < nc ? (int)(width[c] - strlen(cols[c]->name) + 2) : 0,
			"");
	}
	fputc('\n', out);
	for (size_t r = 0; r < n; r++) {
		for (size_t c = 0; c < nc; c++) {
			const char *s = cells[r * nc + c] ? cells[r * nc + c] : "?";

			if (c + 1 < nc)
				fprintf(out, "%-*s  ", (int)width[c], s);
			else
				fputs(s, out);
		}
		fputc('\n', out);
	}
	for (size_t i = 0; i < n * nc; i++)
		free(cells[i]);
	free(cells);
	return 0;
}

int cli_table_print(FILE *f, const ProtobufCMessage *m, const char *const *columns)
{
	const ProtobufCFieldDescriptor *lf = cli_list_field(m->descriptor);
	int r = 0;

	if (lf)
		r = print_rows(f, m, lf, columns);
	else
		print_fields(f, m, "", (int)key_width(m, 0));
	if (r >= 0 && ferror(f))
		r = -EIO;
	return r;
}
