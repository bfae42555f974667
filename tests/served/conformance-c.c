/*
 * The C client's driver of the conformance script (conformance.py): reads one step per
 * line on stdin, {"method": "/trstctl.v1.CA/CreateOwner", "request": {...proto3 JSON...}},
 * calls it with libtrstctl (trstctl_method_find, trstctl_call_unary) and writes one line
 * per step: {"code": "OK", "message": "...", "reply": {...}}, the reply printed by
 * trstctl_json_write. The request's JSON is read into the protobuf-c message through its
 * descriptors here (libtrstctl prints JSON but does not parse it): field names in
 * lowerCamelCase or as in the proto, 64-bit integers as strings or numbers, bytes in
 * base64, maps as objects, repeated fields as arrays.
 *
 *   conformance-c --addr HOST:PORT --ca-file FILE --token-file FILE
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "trstctl-client-gen.h"

static int from_json(ProtobufCMessage *m, json_t *obj, char *err, size_t errlen);

/* The field of d whose proto name or lowerCamelCase JSON name is key. */
static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *d,
						  const char *key)
{
	for (unsigned i = 0; i < d->n_fields; i++) {
		const char *n = d->fields[i].name, *k = key;
		bool up = false;

		if (!strcmp(n, key))
			return &d->fields[i];
		for (; *n && *k; n++) {
			if (*n == '_') {
				up = true;
				continue;
			}
			if (*k != (up && *n >= 'a' && *n <= 'z' ? *n - 'a' + 'A' : *n))
				break;
			up = false;
			k++;
		}
		if (!*n && !*k)
			return &d->fields[i];
	}
	return NULL;
}

static int b64(const char *s, ProtobufCBinaryData *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(s), len = 0;
	uint32_t acc = 0;
	int bits = 0;
	uint8_t *p = malloc(n * 3 / 4 + 3);

	if (!p)
		return -ENOMEM;
	for (; *s && *s != '='; s++) {
		const char *c = strchr(tab, *s);

		if (!c) {
			free(p);
			return -EINVAL;
		}
		acc = acc << 6 | (uint32_t)(c - tab);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			p[len++] = (uint8_t)(acc >> bits);
		}
	}
	out->data = p;
	out->len = len;
	return 0;
}

/* One value of f from j into *slot (room for any scalar or a pointer). */
static int scalar(const ProtobufCFieldDescriptor *f, json_t *j, void *slot, char *err,
		  size_t errlen)
{
	long long v = 0;

	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
		if (!json_is_string(j))
			break;
		*(char **)slot = strdup(json_string_value(j));
		return 0;
	case PROTOBUF_C_TYPE_BYTES:
		if (!json_is_string(j))
			break;
		return b64(json_string_value(j), slot);
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_is_boolean(j))
			break;
		*(protobuf_c_boolean *)slot = json_is_true(j);
		return 0;
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessageDescriptor *md = f->descriptor;
		ProtobufCMessage *sub = malloc(md->sizeof_message);

		if (!sub)
			return -ENOMEM;
		md->message_init(sub);
		*(ProtobufCMessage **)slot = sub;
		return from_json(sub, j, err, errlen);
	}
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumValue *ev =
			json_is_string(j) ? protobuf_c_enum_descriptor_get_value_by_name(
						    f->descriptor, json_string_value(j)) :
					    NULL;

		if (!ev)
			break;
		*(int *)slot = ev->value;
		return 0;
	}
	default:
		if (json_is_integer(j))
			v = json_integer_value(j);
		else if (json_is_string(j))
			v = strtoll(json_string_value(j), NULL, 10);
		else
			break;
		if (trstctl_value_size(f->type) == 8)
			*(int64_t *)slot = v;
		else
			*(int32_t *)slot = (int32_t)v;
		return 0;
	}
	snprintf(err, errlen, "field %s: wrong JSON type", f->name);
	return -EINVAL;
}

/* Appends one element to repeated f; *ret is where it goes. */
static int append(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, void **ret)
{
	size_t *n = (size_t *)((char *)m + f->quantifier_offset), sz = trstctl_value_size(f->type);
	char **arr = (char **)((char *)m + f->offset);
	char *na = realloc(*arr, (*n + 1) * sz);

	if (!na)
		return -ENOMEM;
	*arr = na;
	memset(na + *n * sz, 0, sz);
	*ret = na + (*n)++ * sz;
	return 0;
}

static int from_json(ProtobufCMessage *m, json_t *obj, char *err, size_t errlen)
{
	const char *key;
	json_t *val;

	if (!json_is_object(obj)) {
		snprintf(err, errlen, "%s: want an object", m->descriptor->name);
		return -EINVAL;
	}
	json_object_foreach(obj, key, val)
	{
		const ProtobufCFieldDescriptor *f = find_field(m->descriptor, key);
		void *slot;
		int r = 0;

		if (!f) {
			snprintf(err, errlen, "%s has no field %s", m->descriptor->name, key);
			return -EINVAL;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED &&
		    trstctl_field_is_map(m->descriptor, f)) {
			const ProtobufCMessageDescriptor *ed = f->descriptor;
			const char *k;
			json_t *v;

			json_object_foreach(val, k, v)
			{
				ProtobufCMessage *e = malloc(ed->sizeof_message);
				json_t *kj = json_string(k);

				if (!e || !kj)
					return -ENOMEM;
				ed->message_init(e);
				r = scalar(&ed->fields[0], kj, (char *)e + ed->fields[0].offset,
					   err, errlen);
				json_decref(kj);
				if (r >= 0)
					r = scalar(&ed->fields[1], v,
						   (char *)e + ed->fields[1].offset, err, errlen);
				if (r >= 0)
					r = append(m, f, &slot);
				if (r < 0)
					return r;
				*(ProtobufCMessage **)slot = e;
			}
		} else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t i;
			json_t *el;

			json_array_foreach(val, i, el)
			{
				r = append(m, f, &slot);
				if (r >= 0)
					r = scalar(f, el, slot, err, errlen);
				if (r < 0)
					return r;
			}
		} else {
			r = scalar(f, val, (char *)m + f->offset, err, errlen);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* Runs one step line; writes its result line. */
static void step(struct trstctl_client *cl, const char *line)
{
	json_error_t jerr;
	json_t *s = json_loads(line, 0, &jerr), *msg;
	const struct trstctl_method *m =
		s ? trstctl_method_find(json_string_value(json_object_get(s, "method"))) : NULL;
	ProtobufCMessage *req = NULL, *resp = NULL;
	struct trstctl_status st = { 0 };
	char err[512] = "", *text;
	int r = -EINVAL;

	if (!m) {
		snprintf(err, sizeof(err), "no such step or method: %s", s ? "" : jerr.text);
	} else {
		req = malloc(m->input->sizeof_message);
		if (req) {
			m->input->message_init(req);
			r = from_json(req, json_object_get(s, "request"), err, sizeof(err));
		}
		if (r >= 0)
			r = trstctl_call_unary(cl, m->path, req, m->output, NULL, &resp, &st);
	}
	msg = json_string(st.message ? st.message : err);
	text = json_dumps(msg, JSON_ENCODE_ANY);
	printf("{\"code\":\"%s\",\"message\":%s,\"reply\":",
	       st.message ? trstctl_status_code_name(st.code) : "LOCAL_ERROR", text);
	if (resp)
		trstctl_json_write(stdout, resp, 0);
	else
		fputs("null", stdout);
	fputs("}\n", stdout);
	fflush(stdout);
	free(text);
	json_decref(msg);
	json_decref(s);
	if (req)
		protobuf_c_message_free_unpacked(req, NULL);
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	trstctl_status_clear(&st);
}

int main(int argc, char **argv)
{
	struct trstctl_client_config cfg = { .transport = TRSTCTL_TLS, .deadline_ms = 30000 };
	struct trstctl_client *cl = NULL;
	char token[512] = "", *line = NULL;
	size_t cap = 0;
	FILE *f;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--addr"))
			cfg.addr = argv[i + 1];
		else if (!strcmp(argv[i], "--ca-file"))
			cfg.ca_file = argv[i + 1];
		else if (!strcmp(argv[i], "--token-file") && (f = fopen(argv[i + 1], "r"))) {
			if (!fgets(token, sizeof(token), f))
				token[0] = '\0';
			fclose(f);
			token[strcspn(token, "\r\n")] = '\0';
			cfg.token = token;
		}
	}
	if (!cfg.addr || !cfg.token || trstctl_client_new(&cfg, &cl) < 0) {
		fprintf(stderr, "usage: conformance-c --addr HOST:PORT --ca-file FILE "
				"--token-file FILE\n");
		return 2;
	}
	while (getline(&line, &cap, stdin) > 0)
		if (line[0] != '\n')
			step(cl, line);
	free(line);
	trstctl_client_free(cl);
	return 0;
}
