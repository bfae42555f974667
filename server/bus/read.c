/*
 * Reading back the newest event of a type from JetStream (bus_last_event): for callers
 * that want a copy of what they published kept outside PostgreSQL, such as the audit
 * log's checkpoints. One short-lived connection per call, bounded by the caller's timeout
 * (the connect, and the stream's answer), no reconnects: a NATS that does not answer in
 * time is an error the caller reports, never a wait. The connection goes through the
 * caller's egress gate (connect.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "internal.h"

int bus_last_event(const char *nats_url, const struct net_gate *gate, const char *stream,
		   const char *type, int timeout_ms, char **ret_json)
{
	char subject[8 + BUS_TYPE_MAX + 1];
	natsOptions *opts = NULL;
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	natsMsg *msg = NULL;
	jsOptions jo;
	jsErrCode jerr = 0;
	natsStatus s;
	int r;

	if (!nats_url || !*nats_url || !type || !bus_type_valid(type) || !ret_json ||
	    timeout_ms <= 0)
		return -EINVAL;
	snprintf(subject, sizeof(subject), "events.%s", type);
	s = natsOptions_Create(&opts);
	if (s == NATS_OK)
		s = natsOptions_SetName(opts, "trstctl-bus-read");
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(opts, timeout_ms);
	if (s == NATS_OK)
		s = natsOptions_SetAllowReconnect(opts, false);
	if (s != NATS_OK) {
		r = bus_nats_errno(s);
		goto out;
	}
	r = bus_nats_connect(opts, nats_url, gate, &nc);
	if (r < 0)
		goto out;
	jsOptions_Init(&jo);
	jo.Wait = timeout_ms;
	s = natsConnection_JetStream(&js, nc, &jo);
	if (s == NATS_OK)
		s = js_GetLastMsg(&msg, js, stream ? stream : BUS_DEFAULT_STREAM, subject, NULL,
				  &jerr);
	if (s != NATS_OK) {
		/* no message on the subject is JetStream's "no message found" (10037) */
		r = jerr == JSNoMessageFoundErr ? -ENOENT : bus_js_errno(s, jerr);
		goto out;
	}
	*ret_json = strndup(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg));
	r = *ret_json ? 0 : -ENOMEM;
out:
	natsMsg_Destroy(msg);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	natsOptions_Destroy(opts);
	return r;
}
