/*
 * cli-secrets.c: `trstctl secret create|get|rotate|list|versions|delete|recover|destroy`,
 * the commands of trstctl.v1.Secrets. A value never comes from argv (other users see it in
 * ps): it is read from --value-file FILE, or from stdin when none is given. `get` prints
 * the metadata unless --show-value (the raw bytes to stdout) or --value-out FILE (written
 * with mode 0600) asks for the value; `-o json` prints the whole reply, the value in
 * base64. Every buffer that held a value is wiped (cli_message_free).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli-internal.h"
#include "trstctl-client-gen.h"

#define NAME_ARG                                                               \
	{                                                                      \
		"NAME", "name", NULL, 0, "the secret's path-like name (a/b/c)" \
	}
#define VALUE_FILE                                                             \
	{                                                                      \
		"--value-file", "value", "FILE", CLI_ARG_FILE | CLI_ARG_STDIN, \
			"read the value from FILE (default: stdin)"            \
	}

static int prepare_get(struct cli_call *k)
{
	if (cli_call_opt(k, "--show-value") && cli_call_opt(k, "--value-out")) {
		cli_errorf(k, "--show-value and --value-out exclude each other");
		return CLI_EXIT_USAGE;
	}
	return 0;
}

static int done_get(struct cli_call *k, ProtobufCMessage *reply)
{
	Trstctl__V1__Secret *s = (void *)reply;
	const char *out = cli_call_opt(k, "--value-out");

	if (cli_call_opt(k, "--show-value")) {
		if (fwrite(s->value.data, 1, s->value.len, stdout) != s->value.len ||
		    fflush(stdout) != 0)
			return CLI_EXIT_FAIL;
		return CLI_DONE_PRINTED;
	}
	if (out) {
		if (cli_write_file(k, out, s->value.data, s->value.len, 0600) < 0)
			return CLI_EXIT_FAIL;
		OPENSSL_cleanse(s->value.data, s->value.len); /* in the file, not on stdout */
		s->value.len = 0;
	}
	return 0;
}

static const struct cli_arg name_arg[] = { NAME_ARG, { NULL } };

static const struct cli_arg create_args[] = {
	NAME_ARG,
	VALUE_FILE,
	{ "--label", "labels", "KEY=VALUE", 0, "a label (give it again for more)" },
	{ NULL },
};

static const struct cli_arg get_args[] = {
	NAME_ARG,
	{ "--show-value", NULL, NULL, CLI_ARG_BOOL, "print the value itself (raw bytes)" },
	{ "--value-out", NULL, "FILE", 0, "write the value to FILE (mode 0600)" },
	{ "--version", "version", "N", 0, "that version (default: the current one)" },
	{ NULL },
};

static const struct cli_arg rotate_args[] = {
	NAME_ARG,
	VALUE_FILE,
	{ "--expected-version", "expected_version", "N", 0,
	  "refuse (FAILED_PRECONDITION) unless the current version is N" },
	{ NULL },
};

static const struct cli_arg list_args[] = {
	{ "--prefix", "prefix", "PREFIX", 0, "only names that start with PREFIX" },
	{ "--show-deleted", "show_deleted", NULL, CLI_ARG_BOOL, "deleted secrets too" },
	{ NULL },
};

static const struct cli_arg destroy_args[] = {
	NAME_ARG,
	{ "--version", "version", "N", CLI_ARG_REQUIRED, "the version whose bytes are erased" },
	{ NULL },
};

static const char *const list_cols[] = { "name", "version", "deleted", "update_time", NULL };
static const char *const version_cols[] = { "version", "state", "create_time", "destroy_time",
					    NULL };

const struct cli_cmd cli_secrets_cmds[] = {
	{ .noun = "secret",
	  .verb = "create",
	  .method = "/trstctl.v1.Secrets/CreateSecret",
	  .summary = "store a new secret (the value from --value-file or stdin)",
	  .args = create_args },
	{ .noun = "secret",
	  .verb = "get",
	  .method = "/trstctl.v1.Secrets/GetSecret",
	  .summary = "read a secret (metadata; --show-value or --value-out for the value)",
	  .args = get_args,
	  .prepare = prepare_get,
	  .done = done_get },
	{ .noun = "secret",
	  .verb = "rotate",
	  .method = "/trstctl.v1.Secrets/RotateSecret",
	  .summary = "store a new version (the value from --value-file or stdin)",
	  .args = rotate_args },
	{ .noun = "secret",
	  .verb = "list",
	  .method = "/trstctl.v1.Secrets/ListSecrets",
	  .summary = "list secrets (names and versions, never values)",
	  .args = list_args,
	  .columns = list_cols },
	{ .noun = "secret",
	  .verb = "versions",
	  .method = "/trstctl.v1.Secrets/ListSecretVersions",
	  .summary = "list a secret's versions and their states",
	  .args = name_arg,
	  .columns = version_cols },
	{ .noun = "secret",
	  .verb = "delete",
	  .method = "/trstctl.v1.Secrets/DeleteSecret",
	  .summary = "delete a secret (recoverable with secret recover)",
	  .args = name_arg },
	{ .noun = "secret",
	  .verb = "recover",
	  .method = "/trstctl.v1.Secrets/RecoverSecret",
	  .summary = "undo a secret's deletion",
	  .args = name_arg },
	{ .noun = "secret",
	  .verb = "destroy",
	  .method = "/trstctl.v1.Secrets/DestroySecretVersion",
	  .summary = "erase the sealed bytes of one version: --version N",
	  .args = destroy_args },
	{ NULL },
};
