/*
 * The key of a mutating gRPC call: who (the principal the authorizer set), which method
 * (its full gRPC name, the one spelling stored), which request_id, and the fingerprint of
 * the request. The request is packed again by protobuf-c, which writes fields in number
 * order, so two clients that send one request with fields in another order, or a retry
 * through another client library, still match.
 */
#include <errno.h>
#include <stdlib.h>

#include <protobuf-c/protobuf-c.h>

#include "change.h"
#include "rpc.h"

int change_key_from_call(struct change_key *k, struct rpc_call *call,
			 const struct ProtobufCMessage *req, const char *tenant,
			 const char *request_id, const struct kek *kek)
{
	size_t n;
	uint8_t *buf;

	*k = (struct change_key){ .tenant = tenant,
				  .principal = rpc_call_principal(call),
				  .method = rpc_call_method(call),
				  .request_id = request_id };
	if (!change_key_idempotent(k))
		return 0; /* nothing is stored: no fingerprint to compare */
	n = protobuf_c_message_get_packed_size(req);
	buf = rpc_call_alloc(call, n ? n : 1);
	if (!buf)
		return -ENOMEM;
	protobuf_c_message_pack(req, buf);
	return change_fingerprint(kek, buf, n, k);
}
