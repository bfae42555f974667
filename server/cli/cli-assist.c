/*
 * cli-assist.c: `trstctl assist ask QUESTION`, the command of trstctl.v1.Assist
 * (docs/api.md "Assist"): a question about the inventory, answered by the server's local
 * model. The table is the answer as the model wrote it; the model's name and how many
 * secret-looking values the server removed from the question go to stderr, so that stdout
 * holds the answer alone. The question is an argument, visible to other users in the
 * process list like any: never put a secret in it (the server would redact or refuse it).
 */
#include <stdio.h>

#include "cli-internal.h"
#include "trstctl-client-gen.h"

static int table_ask(struct cli_call *k, const ProtobufCMessage *reply)
{
	const Trstctl__V1__AskResponse *a = (const void *)reply;

	(void)k;
	printf("%s\n", a->answer);
	if (a->redacted > 0)
		fprintf(stderr, "model: %s (%d secret-looking value%s removed from the question)\n",
			a->model, a->redacted, a->redacted == 1 ? "" : "s");
	else
		fprintf(stderr, "model: %s\n", a->model);
	return 0;
}

static const struct cli_arg ask_args[] = {
	{ "QUESTION", "question", NULL, 0, "the question, quoted (at most 4096 bytes)" },
	{ NULL },
};

const struct cli_cmd cli_assist_cmds[] = {
	{ .noun = "assist",
	  .verb = "ask",
	  .method = "/trstctl.v1.Assist/Ask",
	  .summary = "ask the server's local model about the inventory (TRSTCTL_AI_ENABLE_API)",
	  .args = ask_args,
	  .table = table_ask },
	{ NULL },
};
