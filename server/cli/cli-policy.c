/*
 * cli-policy.c: `trstctl policy put|get|list|delete|eval` and `trstctl token
 * create|list|revoke`, the commands of trstctl.v1.Policy. A policy document is read from a
 * file (or stdin, "-"). `token create` prints the new token alone on stdout and its id and
 * expiry on stderr, so that `T=$(trstctl token create --policy P)` captures only the token;
 * it is shown once. A token made here is a child of the calling token (docs/api.md
 * "Authentication and authorization"); `trstctl token create-root` is the operator's way
 * to a root token on the database itself (server/policy/token_admin.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli-internal.h"
#include "trstctl-client-gen.h"

#define NAME_ARG                                             \
	{                                                    \
		"NAME", "name", NULL, 0, "the policy's name" \
	}

static void policy_line(const Trstctl__V1__PolicyDocument *p, bool doc)
{
	char t[CLI_TIME_LEN];

	printf("%s\tversion %" PRId64 "\t%s\n", p->name, p->version,
	       cli_fmt_time(p->update_time ? p->update_time->seconds : 0, t, sizeof(t)));
	if (doc && *p->document)
		printf("%s%s", p->document,
		       p->document[strlen(p->document) - 1] == '\n' ? "" : "\n");
}

static int table_policy(struct cli_call *k, const ProtobufCMessage *reply)
{
	policy_line((const void *)reply, !strcmp(k->cmd->verb, "get"));
	return 0;
}

static int table_policies(struct cli_call *k, const ProtobufCMessage *reply)
{
	const Trstctl__V1__ListPoliciesResponse *l = (const void *)reply;

	(void)k;
	for (size_t i = 0; i < l->n_policies; i++)
		policy_line(l->policies[i], false);
	return 0;
}

static int table_decision(struct cli_call *k, const ProtobufCMessage *reply)
{
	const Trstctl__V1__Decision *d = (const void *)reply;

	(void)k;
	printf("%s\tpolicy %s\trule %d\t%s\n", d->allowed ? "allow" : "deny",
	       *d->matched_policy ? d->matched_policy : "-", d->matched_rule, d->reason);
	return 0;
}

static int table_token(struct cli_call *k, const ProtobufCMessage *reply)
{
	const Trstctl__V1__CreateTokenResponse *t = (const void *)reply;
	char x[CLI_TIME_LEN];

	(void)k;
	fprintf(stderr, "token_id: %s  expires: %s  (the token is shown only now)\n", t->token_id,
		t->expire_time && t->expire_time->seconds ?
			cli_fmt_time(t->expire_time->seconds, x, sizeof(x)) :
			"never");
	printf("%s\n", t->token);
	fflush(stdout);
	return 0;
}

static const struct cli_arg name_arg[] = { NAME_ARG, { NULL } };

static const struct cli_arg put_args[] = {
	NAME_ARG,
	{ "FILE", "document", NULL, CLI_ARG_FILE, "the policy document (JSON); - reads stdin" },
	{ NULL },
};

static const struct cli_arg eval_args[] = {
	{ "ACTION", "action", NULL, 0, "<Service>.<Method>, e.g. Secrets.GetSecret" },
	{ "RESOURCE", "resource", NULL, 0, "e.g. secret/offline/db/password" },
	{ "--principal", "principal", "TOKEN_ID", 0, "whose rights (default: the caller's)" },
	{ "--to-state", "to_state", "STATE", 0, "for CA.TransitionIdentity: the state asked for" },
	{ NULL },
};

static const struct cli_arg token_create_args[] = {
	{ "--policy", "policies", "NAME", 0, "a policy to bind (give it again for more)" },
	{ "--ttl", "ttl_seconds", "DURATION", 0, "lifetime: seconds or a duration (15m, 24h)" },
	{ "--name", "name", "NAME", 0, "a name to tell it by in token list" },
	{ NULL },
};

static const struct cli_arg token_revoke_args[] = {
	{ "TOKEN_ID", "id", NULL, 0, "the token (and every token it made)" },
	{ NULL },
};

static const char *const token_cols[] = { "id",		 "name",	"policies",
					  "create_time", "expire_time", "last_used_time",
					  "revoked",	 "parent_id",	NULL };

const struct cli_cmd cli_policy_cmds[] = {
	{ .noun = "policy",
	  .verb = "put",
	  .method = "/trstctl.v1.Policy/PutPolicy",
	  .summary = "store a policy document (JSON) under NAME",
	  .args = put_args,
	  .table = table_policy },
	{ .noun = "policy",
	  .verb = "get",
	  .method = "/trstctl.v1.Policy/GetPolicy",
	  .summary = "show a policy and its document",
	  .args = name_arg,
	  .table = table_policy },
	{ .noun = "policy",
	  .verb = "list",
	  .method = "/trstctl.v1.Policy/ListPolicies",
	  .summary = "list policies",
	  .table = table_policies },
	{ .noun = "policy",
	  .verb = "delete",
	  .method = "/trstctl.v1.Policy/DeletePolicy",
	  .summary = "delete a policy",
	  .args = name_arg,
	  .table = table_policy },
	{ .noun = "policy",
	  .verb = "eval",
	  .method = "/trstctl.v1.Policy/Evaluate",
	  .summary = "would ACTION on RESOURCE be allowed? (allow|deny and the deciding rule)",
	  .args = eval_args,
	  .table = table_decision },
	{ .noun = "token",
	  .verb = "create",
	  .method = "/trstctl.v1.Policy/CreateToken",
	  .summary = "make an API token bound to policies (shown once, alone on stdout)",
	  .args = token_create_args,
	  .table = table_token },
	{ .noun = "token",
	  .verb = "list",
	  .method = "/trstctl.v1.Policy/ListTokens",
	  .summary = "list tokens (never their secrets)",
	  .columns = token_cols },
	{ .noun = "token",
	  .verb = "revoke",
	  .method = "/trstctl.v1.Policy/RevokeToken",
	  .summary = "revoke a token and every token it made",
	  .args = token_revoke_args },
	{ NULL },
};
