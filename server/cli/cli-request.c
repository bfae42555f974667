/*
 * cli-request.c: a request built from command-line text, one field at a time, through the
 * field's protobuf-c descriptor, so that every field of every request can be given as a
 * flag without code per method. The message is allocated with malloc and each value
 * copied, which is what protobuf_c_message_free_unpacked() frees; cli_message_free wipes
 * the text and bytes first (a request may carry a secret value, a reply a private key).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cfg.h"
#include "cli-internal.h"

#define READ_MAX (16u << 20)

ProtobufCMessage *cli_message_new(const ProtobufCMessageDescriptor *d)
{
	ProtobufCMessage *m = malloc(d->sizeof_message);

	if (m)
		d->message_init(m);
	return m;
}

static void wipe(ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		char *p = (char *)m + f->offset;
		size_t n = 1;

		if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_BYTES &&
		    f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			n = *(size_t *)((char *)m + f->quantifier_offset);
			p = *(char **)p;
		}
		for (size_t k = 0; p && k < n; k++) {
			if (f->type == PROTOBUF_C_TYPE_STRING) {
				char *s = ((char **)p)[k];

				if (s && s != f->default_value && *s)
					OPENSSL_cleanse(s, strlen(s));
			} else if (f->type == PROTOBUF_C_TYPE_BYTES) {
				ProtobufCBinaryData *b = &((ProtobufCBinaryData *)p)[k];

				if (b->data && b->len)
					OPENSSL_cleanse(b->data, b->len);
			} else if (((ProtobufCMessage **)p)[k]) {
				wipe(((ProtobufCMessage **)p)[k]);
			}
		}
	}
}

void cli_message_free(ProtobufCMessage *m)
{
	if (!m)
		return;
	wipe(m);
	protobuf_c_message_free_unpacked(m, NULL);
}

void cli_field_flag(const ProtobufCFieldDescriptor *f, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "--");

	for (const char *s = f->name; *s && n + 1 < len; s++)
		buf[n++] = *s == '_' ? '-' : *s;
	buf[n] = '\0';
	if (f->type == PROTOBUF_C_TYPE_BYTES)
		snprintf(buf + n, len - n, "-file");
}

int cli_read_file(const char *path, uint8_t **ret, size_t *ret_len)
{
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	size_t cap = 4096, n = 0;
	uint8_t *buf;
	ssize_t k;
	int r = 0;

	if (fd < 0)
		return -errno;
	buf = malloc(cap);
	if (!buf)
		r = -ENOMEM;
	while (r == 0) {
		k = read(fd, buf + n, cap - n - 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			r = k < 0 ? -errno : 0;
			break;
		}
		if (n + (size_t)k > READ_MAX) {
			r = -EFBIG;
			break;
		}
		n += (size_t)k;
		if (n + 1 == cap) { /* grow by copying, so that no freed block keeps a secret */
			uint8_t *b2 = malloc(cap * 2);

			if (b2)
				memcpy(b2, buf, n);
			else
				r = -ENOMEM;
			OPENSSL_cleanse(buf, cap);
			free(buf);
			buf = b2;
			cap *= 2;
		}
	}
	if (fd != STDIN_FILENO)
		close(fd);
	if (r < 0) {
		if (buf)
			OPENSSL_cleanse(buf, cap);
		free(buf);
		return r;
	}
	buf[n] = '\0';
	*ret = buf;
	*ret_len = n;
	return 0;
}

static int parse_i64(const char *s, int64_t min, int64_t max, int64_t *ret)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (*s == '-')
		return -EINVAL;
	v = strtoull(s, &end, 10);
	if (!*s || *end || errno || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* A whole number of seconds, or a duration ("15m", "1h30m") rounded up to seconds. */
static int parse_seconds(const char *s, int64_t *ret)
{
	int64_t ms;

	if (parse_i64(s, INT64_MIN, INT64_MAX, ret) == 0)
		return 0;
	if (cfg_parse_duration(s, &ms) < 0)
		return -EINVAL;
	*ret = ms / 1000 + (ms % 1000 != 0);
	return 0;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);

	return n >= t && !strcmp(s + n - t, tail);
}

/* Parses one scalar value of f into *out (room for 8 bytes or a pointer). */
static int parse_scalar(const ProtobufCFieldDescriptor *f, const char *v, void *out, char *err,
			size_t errlen)
{
	int64_t i = 0;
	uint64_t u = 0;
	int r = 0;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		r = parse_i64(v, INT32_MIN, INT32_MAX, &i);
		*(int32_t *)out = (int32_t)i;
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		r = ends_with(f->name, "_seconds") ? parse_seconds(v, &i) :
						     parse_i64(v, INT64_MIN, INT64_MAX, &i);
		*(int64_t *)out = i;
		if (r < 0 && ends_with(f->name, "_seconds")) {
			snprintf(err, errlen,
				 "\"%s\" is not a number of seconds or a duration "
				 "(90, 15m, 1h30m)",
				 v);
			return -EINVAL;
		}
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		r = parse_u64(v, UINT32_MAX, &u);
		*(uint32_t *)out = (uint32_t)u;
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		r = parse_u64(v, UINT64_MAX, &u);
		*(uint64_t *)out = u;
		break;
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE: {
		char *end;
		double d = strtod(v, &end);

		r = !*v || *end ? -EINVAL : 0;
		if (f->type == PROTOBUF_C_TYPE_FLOAT)
			*(float *)out = (float)d;
		else
			*(double *)out = d;
		break;
	}
	case PROTOBUF_C_TYPE_BOOL:
		r = strcmp(v, "true") && strcmp(v, "false") ? -EINVAL : 0;
		*(protobuf_c_boolean *)out = !strcmp(v, "true");
		if (r < 0) {
			snprintf(err, errlen, "\"%s\" is not true or false", v);
			return r;
		}
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumValue *ev =
			protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, v);

		if (!ev && parse_i64(v, INT32_MIN, INT32_MAX, &i) == 0)
			ev = protobuf_c_enum_descriptor_get_value(f->descriptor, (int)i);
		if (!ev) {
			snprintf(err, errlen, "\"%s\" is not a value of %s", v,
				 ((const ProtobufCEnumDescriptor *)f->descriptor)->name);
			return -EINVAL;
		}
		*(int *)out = ev->value;
		break;
	}
	case PROTOBUF_C_TYPE_STRING:
		*(char **)out = strdup(v);
		return *(char **)out ? 0 : -ENOMEM;
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData *b = out;

		b->len = strlen(v);
		b->data = (uint8_t *)strdup(v);
		return b->data ? 0 : -ENOMEM;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		snprintf(err, errlen, "a message cannot be given as text");
		return -EINVAL;
	}
	if (r < 0)
		snprintf(err, errlen, "\"%s\" is not a%s number%s", v,
			 f->type == PROTOBUF_C_TYPE_UINT32 || f->type == PROTOBUF_C_TYPE_UINT64 ||
					 f->type == PROTOBUF_C_TYPE_FIXED32 ||
					 f->type == PROTOBUF_C_TYPE_FIXED64 ?
				 " whole non-negative" :
			 f->type == PROTOBUF_C_TYPE_FLOAT || f->type == PROTOBUF_C_TYPE_DOUBLE ?
				 "" :
				 " whole",
			 f->type == PROTOBUF_C_TYPE_INT32 || f->type == PROTOBUF_C_TYPE_UINT32 ?
				 " of 32 bits" :
				 "");
	return r;
}

/* Frees the old value of a singular string or bytes field before a new one is set. */
static void drop_old(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	void *p = (char *)m + f->offset;

	if (f->type == PROTOBUF_C_TYPE_STRING) {
		char *s = *(char **)p;

		if (s && s != f->default_value)
			free(s);
	} else if (f->type == PROTOBUF_C_TYPE_BYTES) {
		ProtobufCBinaryData *b = p;

		if (b->data && (!f->default_value ||
				b->data != ((const ProtobufCBinaryData *)f->default_value)->data)) {
			OPENSSL_cleanse(b->data, b->len);
			free(b->data);
		}
		b->data = NULL;
		b->len = 0;
	}
}

/* Appends one element to repeated field f; *ret_slot is where its value goes. */
static int append(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, size_t size,
		  void **ret_slot)
{
	size_t *n = (size_t *)((char *)m + f->quantifier_offset);
	char **arr = (char **)((char *)m + f->offset);
	char *na = realloc(*arr, (*n + 1) * size);

	if (!na)
		return -ENOMEM;
	*arr = na;
	memset(na + *n * size, 0, size);
	*ret_slot = na + *n * size;
	(*n)++;
	return 0;
}

/* A map entry from "key=value". */
static int set_map(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const char *v, char *err,
		   size_t errlen)
{
	const ProtobufCMessageDescriptor *ed = f->descriptor;
	const char *eq = strchr(v, '=');
	ProtobufCMessage *e, **slot;
	char *key;
	int r;

	if (!eq || eq == v) {
		snprintf(err, errlen, "\"%s\" is not KEY=VALUE", v);
		return -EINVAL;
	}
	key = strndup(v, (size_t)(eq - v));
	e = cli_message_new(ed);
	if (!key || !e) {
		free(key);
		free(e);
		return -ENOMEM;
	}
	r = parse_scalar(&ed->fields[0], key, (char *)e + ed->fields[0].offset, err, errlen);
	if (r >= 0)
		r = parse_scalar(&ed->fields[1], eq + 1, (char *)e + ed->fields[1].offset, err,
				 errlen);
	free(key);
	if (r >= 0)
		r = append(m, f, sizeof(void *), (void **)&slot);
	if (r < 0) {
		cli_message_free(e);
		return r;
	}
	*slot = e;
	return 0;
}

int cli_request_set(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const char *value,
		    char *err, size_t errlen)
{
	void *slot;
	int r;

	if (f->label == PROTOBUF_C_LABEL_REPEATED && trstctl_field_is_map(m->descriptor, f))
		return set_map(m, f, value, err, errlen);
	if (f->label == PROTOBUF_C_LABEL_REPEATED && f->type == PROTOBUF_C_TYPE_STRING &&
	    strchr(value, ',')) {
		char *copy = strdup(value), *save = NULL;

		if (!copy)
			return -ENOMEM;
		r = 0;
		for (char *t = strtok_r(copy, ",", &save); t && r >= 0;
		     t = strtok_r(NULL, ",", &save))
			r = cli_request_set(m, f, t, err, errlen);
		free(copy);
		return r;
	}
	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t sz = trstctl_value_size(f->type);
		uint8_t tmp[sizeof(ProtobufCBinaryData) > 8 ? sizeof(ProtobufCBinaryData) : 8];

		r = parse_scalar(f, value, tmp, err, errlen);
		if (r >= 0)
			r = append(m, f, sz, &slot);
		if (r >= 0)
			memcpy(slot, tmp, sz);
		return r;
	}
	{
		uint8_t tmp[sizeof(ProtobufCBinaryData) > 8 ? sizeof(ProtobufCBinaryData) : 8];

		r = parse_scalar(f, value, tmp, err, errlen); /* a refused value changes nothing */
		if (r < 0)
			return r;
		drop_old(m, f);
		memcpy((char *)m + f->offset, tmp, trstctl_value_size(f->type));
	}
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
	    f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
		*(protobuf_c_boolean *)((char *)m + f->quantifier_offset) = 1;
	return r;
}

int cli_request_set_data(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const void *data,
			 size_t len)
{
	void *p = (char *)m + f->offset;
	uint8_t *copy = malloc(len + 1);

	if (!copy)
		return -ENOMEM;
	memcpy(copy, data, len);
	copy[len] = '\0';
	drop_old(m, f);
	if (f->type == PROTOBUF_C_TYPE_STRING)
		*(char **)p = (char *)copy;
	else
		*(ProtobufCBinaryData *)p = (ProtobufCBinaryData){ .len = len, .data = copy };
	return 0;
}
