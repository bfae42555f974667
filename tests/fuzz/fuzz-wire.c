/*
 * libFuzzer target for the string check of requests (server/rpc/wire.c). The first byte
 * picks a request type (flat, with a map, with repeated strings, nested); the rest is the
 * wire. The check must never read out of bounds, recurse without bound or leave err
 * unterminated, whatever the bytes; then protobuf-c unpacks the same bytes, as dispatch does.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ca.pb-c.h"
#include "policy.pb-c.h"
#include "secrets.pb-c.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const types[] = {
	&trstctl__v1__create_secret_request__descriptor,
	&trstctl__v1__create_identity_request__descriptor,
	&trstctl__v1__put_policy_request__descriptor,
	&trstctl__v1__identity__descriptor, /* a nested message: certificate */
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const ProtobufCMessageDescriptor *d;
	char err[RPC_WIRE_PATH_MAX];
	ProtobufCMessage *m;

	if (size < 1)
		return 0;
	d = types[data[0] % (sizeof(types) / sizeof(types[0]))];
	(void)rpc_wire_check_strings(d, data + 1, size - 1, err, sizeof(err));
	if (memchr(err, '\0', sizeof(err)) == NULL)
		abort();
	m = protobuf_c_message_unpack(d, NULL, size - 1, data + 1);
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
