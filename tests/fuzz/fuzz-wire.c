/*
 * libFuzzer target for the decoding of every request message on the dispatch path
 * (server/rpc/server.c unpack(): protobuf-c unpacks the method's input type, then the
 * string check of server/rpc/wire.c walks the same bytes). The first byte picks one method
 * of every served service (trstctl.v1 CA, Secrets, Audit, Policy, Guard, grpc.health,
 * grpc.reflection and trstctl.v1 Assist, last so that the seeds keep their methods); the
 * rest is the request's wire. Properties:
 *   - the check never reads out of bounds, recurses without bound or leaves err
 *     unterminated; a refused string names its field;
 *   - bytes protobuf-c accepts are never called malformed by the check (its framing is
 *     the same), and when the check passes every string of the unpacked message, at any
 *     depth, is valid UTF-8 (what handlers rely on);
 *   - an accepted message packs to exactly its packed size (rpc_pack trusts that), and
 *     the packed bytes unpack and pack again to the same bytes. (protobuf-c accepts an
 *     overlong field number 0 it then refuses in its short form: a message that carries
 *     unknown fields need not unpack again; nothing reads them.)
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "assist.pb-c.h"
#include "audit.pb-c.h"
#include "ca.pb-c.h"
#include "guard.pb-c.h"
#include "health.pb-c.h"
#include "policy.pb-c.h"
#include "reflection.pb-c.h"
#include "secrets.pb-c.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCServiceDescriptor *const services[] = {
	&trstctl__v1__ca__descriptor,
	&trstctl__v1__secrets__descriptor,
	&trstctl__v1__audit__descriptor,
	&trstctl__v1__policy__descriptor,
	&trstctl__v1__guard__descriptor,
	&grpc__health__v1__health__descriptor,
	&grpc__reflection__v1__server_reflection__descriptor,
	&trstctl__v1__assist__descriptor,
};

#define N_SERVICES (sizeof(services) / sizeof(services[0]))

/* The input type of method k, counted across every service (modulo their total). */
static const ProtobufCMessageDescriptor *input_of(unsigned k)
{
	static unsigned total;

	if (!total)
		for (size_t i = 0; i < N_SERVICES; i++)
			total += services[i]->n_methods;
	k %= total;
	for (size_t i = 0;; i++) {
		if (k < services[i]->n_methods)
			return services[i]->methods[k].input;
		k -= services[i]->n_methods;
	}
}

static void strings_valid(const ProtobufCMessage *m);

static void value_valid(const ProtobufCFieldDescriptor *f, const void *at)
{
	if (f->type == PROTOBUF_C_TYPE_STRING) {
		const char *s = *(char *const *)at;

		if (s && !rpc_utf8_valid((const uint8_t *)s, strlen(s)))
			abort();
	} else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
		const ProtobufCMessage *sub = *(ProtobufCMessage *const *)at;

		if (sub)
			strings_valid(sub);
	}
}

/* Every string field of m, at any depth (repeated, oneof members, map entries). */
static void strings_valid(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m;

		if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			void *const *arr = *(void *const *)(base + f->offset);

			for (size_t k = 0; k < n; k++)
				value_valid(f, (const char *)arr + k * sizeof(void *));
		} else {
			value_valid(f, base + f->offset);
		}
	}
}

/* True when m or a message inside it kept fields its descriptor does not know. */
static bool has_unknown(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	if (m->n_unknown_fields)
		return true;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m;
		size_t n = 1;
		ProtobufCMessage *const *arr = (ProtobufCMessage *const *)(base + f->offset);

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			n = *(const size_t *)(base + f->quantifier_offset);
			arr = *(ProtobufCMessage *const *const *)(base + f->offset);
		}
		for (size_t k = 0; k < n; k++)
			if (arr[k] && has_unknown(arr[k]))
				return true;
	}
	return false;
}

static void roundtrip(const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m), n2;
	uint8_t *a = malloc(n ? n : 1), *b;
	ProtobufCMessage *again;

	if (!a || protobuf_c_message_pack(m, a) != n)
		abort();
	again = protobuf_c_message_unpack(m->descriptor, NULL, n, a);
	if (!again) {
		if (!has_unknown(m))
			abort();
		free(a);
		return;
	}
	n2 = protobuf_c_message_get_packed_size(again);
	b = malloc(n2 ? n2 : 1);
	if (!b || n2 != n || protobuf_c_message_pack(again, b) != n || memcmp(a, b, n) != 0)
		abort();
	protobuf_c_message_free_unpacked(again, NULL);
	free(a);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const ProtobufCMessageDescriptor *d;
	char err[RPC_WIRE_PATH_MAX];
	ProtobufCMessage *m;
	uint8_t *wire;
	int r;

	if (size < 1 || size > 65536)
		return 0;
	d = input_of(data[0]);
	/* A heap copy of exactly the wire, so that ASan sees any read past its end. */
	wire = malloc(size - 1 ? size - 1 : 1);
	if (!wire)
		return 0;
	memcpy(wire, data + 1, size - 1);
	r = rpc_wire_check_strings(d, wire, size - 1, err, sizeof(err));
	if (memchr(err, '\0', sizeof(err)) == NULL)
		abort();
	if (r != 0 && r != -EILSEQ && r != -EBADMSG)
		abort();
	if (r == -EILSEQ && !err[0])
		abort();
	m = protobuf_c_message_unpack(d, NULL, size - 1, wire);
	if (m) {
		if (r == -EBADMSG)
			abort();
		if (r == 0) {
			strings_valid(m);
			roundtrip(m);
		}
		protobuf_c_message_free_unpacked(m, NULL);
	}
	free(wire);
	return 0;
}
