#pragma once
/*
 * The string check of requests (wire.c): inside the rpc module only.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#define RPC_WIRE_PATH_MAX 256 /* a good size for the err of rpc_wire_check_strings */

/* True when s (n bytes) is valid UTF-8 (RFC 3629) and holds no NUL byte. */
bool rpc_utf8_valid(const uint8_t *s, size_t n);

/*
 * Walks buf (len bytes, a message of descriptor d that protobuf-c unpacked) and checks
 * every string field at any depth with rpc_utf8_valid. Returns 0; -EILSEQ with the
 * field's path in err ("labels.value"); -EBADMSG for bytes that are not a message.
 */
int rpc_wire_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
			   char *err, size_t errlen);
