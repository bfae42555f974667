#pragma once
/*
 * cli: the client sub-commands of the trstctl binary (`trstctl owner create`, `secret
 * get`, `audit verify`, `guard status`, ... one for every method of api/trstctl/v1), and
 * `trstctl completion bash`. They are clients of a running server over libtrstctl, like
 * any other program: an address, a CA file and a token file are all they need (flags,
 * the client settings, or the server's own settings on its host); they never need the
 * database settings. docs/cli.md documents them. The operator commands that work on the
 * database (migrate, kek rotate, ca import, token create-root) live with their modules
 * and are run by main.c.
 */
#include <stdbool.h>
#include <stdio.h>

struct cfg;

/* Whether argv (argv[1] names the sub-command) is one cli_main runs. */
bool cli_handles(int argc, char **argv);

/*
 * Runs a client sub-command: argv[0] is its noun ("owner"), argv[1] its verb; c the
 * configuration as cfg_load_client read it (borrowed). Prints to stdout, reports errors
 * on stderr. Returns the exit status: 0 ok, 1 the call failed or a local error, 2 bad
 * arguments, 3 the call found something broken (audit verify).
 */
int cli_main(int argc, char **argv, const struct cfg *c);

/* The client sub-commands, one line each, for the binary's usage text. */
void cli_usage(FILE *f);
