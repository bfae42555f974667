/*
 * cli-audit.c: `trstctl audit list|watch|verify`, the commands of trstctl.v1.Audit. The
 * table shows one line per record ("<sequence> <time> <type> <outcome> actor=...
 * resource=... data=... hash=<16 hex>"), flushed per line so that `watch` works in a pipe;
 * `-o json` writes each record of `watch` as one JSON line. `verify` exits 3 when the
 * chain is broken (docs/cli.md "Exit status"). `list` shows the first 100 records after
 * --after unless --limit says otherwise (--limit 0: all).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli-internal.h"
#include "trstctl-client-gen.h"

#define LIST_DEFAULT_LIMIT 100

static void event_line(const Trstctl__V1__AuditEvent *ev)
{
	char t[CLI_TIME_LEN];

	printf("%" PRId64 " %s %s %s actor=%s resource=%s data=%s hash=%.16s\n", ev->sequence,
	       cli_fmt_time(ev->time ? ev->time->seconds : 0, t, sizeof(t)), ev->type, ev->outcome,
	       *ev->actor ? ev->actor : "-", *ev->resource ? ev->resource : "-",
	       *ev->data_json ? ev->data_json : "{}", ev->hash);
}

static int table_events(struct cli_call *k, const ProtobufCMessage *reply)
{
	const Trstctl__V1__ListEventsResponse *l = (const void *)reply;

	(void)k;
	for (size_t i = 0; i < l->n_events; i++)
		event_line(l->events[i]);
	return 0;
}

static int table_event(struct cli_call *k, const ProtobufCMessage *reply)
{
	(void)k;
	event_line((const void *)reply);
	return 0;
}

static int prepare_list(struct cli_call *k)
{
	if (k->limit < 0)
		k->limit = LIST_DEFAULT_LIMIT;
	return 0;
}

static int done_verify(struct cli_call *k, ProtobufCMessage *reply)
{
	(void)k;
	return ((const Trstctl__V1__VerifyChainResponse *)(const void *)reply)->ok ?
		       0 :
		       CLI_EXIT_BROKEN;
}

static int table_verify(struct cli_call *k, const ProtobufCMessage *reply)
{
	const Trstctl__V1__VerifyChainResponse *v = (const void *)reply;

	(void)k;
	if (v->ok)
		printf("ok: %s; head %s\n", v->detail, *v->head_hash ? v->head_hash : "-");
	else
		printf("BROKEN at sequence %" PRId64 ": %s (%" PRId64 " records verified before)\n",
		       v->first_bad_sequence, v->detail, v->checked);
	return v->ok ? 0 : CLI_EXIT_BROKEN;
}

static const struct cli_arg list_args[] = {
	{ "--after", "after_sequence", "N", 0, "records after sequence N" },
	{ "--type", "type_prefix", "PREFIX", 0, "records whose type starts with PREFIX" },
	{ NULL },
};

static const struct cli_arg verify_args[] = {
	{ "--from", "from_sequence", "N", 0, "first sequence to check (default: the start)" },
	{ "--to", "to_sequence", "N", 0, "last sequence to check (default: the head)" },
	{ NULL },
};

const struct cli_cmd cli_audit_cmds[] = {
	{ .noun = "audit",
	  .verb = "list",
	  .method = "/trstctl.v1.Audit/ListEvents",
	  .summary = "list audit records (the first 100 unless --limit)",
	  .args = list_args,
	  .prepare = prepare_list,
	  .table = table_events },
	{ .noun = "audit",
	  .verb = "watch",
	  .method = "/trstctl.v1.Audit/WatchEvents",
	  .summary = "print audit records as they are written (first those after --after)",
	  .args = list_args,
	  .table = table_event },
	{ .noun = "audit",
	  .verb = "verify",
	  .method = "/trstctl.v1.Audit/VerifyChain",
	  .summary = "check the hash chain and signed checkpoints (exit 3 when broken)",
	  .args = verify_args,
	  .done = done_verify,
	  .table = table_verify },
	{ NULL },
};
