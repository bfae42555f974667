#pragma once
/*
 * The typed targets of trstctl-call that walk the COMP-03 air-gap flow (owner, identity,
 * issuance, secrets, audit, guard) through the generated stubs of libtrstctl.
 */
#include "trstctl-client.h"

/* One line per typed target, for trstctl-call's usage text. */
extern const char call_typed_usage[];

/*
 * Runs argv[0] when it is one of the typed targets and prints the reply as "key: value"
 * lines. Returns the call's result (see trstctl-client.h), -ENOENT when argv[0] is not a
 * typed target here, -EINVAL (with a message on stderr) on bad arguments.
 */
int call_typed_run(struct trstctl_client *c, int argc, char **argv,
		   struct trstctl_status *ret_status);
