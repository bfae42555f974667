/*
 * google.protobuf.Timestamp from the microseconds since the epoch every domain keeps: the
 * one conversion the handlers use. Assumes the domain's zero means "unset" where a field is
 * optional (rpc_timestamp_new); nanos are kept in [0, 1e9) as the type requires, also
 * before 1970.
 */
#include "rpc.h"

void rpc_timestamp_set(Google__Protobuf__Timestamp *ts, int64_t us)
{
	google__protobuf__timestamp__init(ts);
	ts->seconds = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
	ts->nanos = (int32_t)((us - ts->seconds * 1000000) * 1000);
}

Google__Protobuf__Timestamp *rpc_timestamp_new(struct rpc_call *call, int64_t us)
{
	Google__Protobuf__Timestamp *ts;

	if (!us)
		return NULL;
	ts = (void *)rpc_call_new_message(call, &google__protobuf__timestamp__descriptor);
	rpc_timestamp_set(ts, us);
	return ts;
}
