/*
 * cli-guard.c: `trstctl guard status|denials|tripwire`, the commands of trstctl.v1.Guard:
 * the operator's view of the running server's egress guard (docs/airgap.md). The table of
 * `status` is the reply's fields, one a line (coverage and coverage_detail among them), the
 * trips of each hook indented below trips_by_hook, those of each of the server's own
 * clients below userspace_trips_by_client. `trstctl guard attach` is not here: it loads
 * the guard itself (server/guard/guard-attach.c).
 */
#include <stddef.h>

#include "cli-internal.h"

/* client and host: the server's own client and its destination, for a userspace refusal */
static const char *const denial_cols[] = { "time",     "pid",  "uid",    "comm",
					   "address",  "port", "protocol", "hook",
					   "client",   "host", NULL };

const struct cli_cmd cli_guard_cmds[] = {
	{ .noun = "guard",
	  .verb = "status",
	  .method = "/trstctl.v1.Guard/GetStatus",
	  .summary = "the egress guard: enforcer, armed, trips, what is allowed" },
	{ .noun = "guard",
	  .verb = "denials",
	  .method = "/trstctl.v1.Guard/ListDenials",
	  .summary = "recent connections the guard refused",
	  .columns = denial_cols },
	{ .noun = "guard",
	  .verb = "tripwire",
	  .method = "/trstctl.v1.Guard/RunTripwire",
	  .summary = "prove the guard is armed: a refused connect to a reserved address" },
	{ NULL },
};
