#pragma once
/*
 * Sub-commands of the trstctl binary that act as clients of a running server (cli-*.c).
 * Each takes the arguments after its name and the loaded configuration, prints to stdout,
 * reports errors on stderr, and returns the process exit status.
 */
struct cfg;

/* `trstctl guard status [--json] [...]`: calls trstctl.v1.Guard/GetStatus. */
int cli_guard(int argc, char **argv, const struct cfg *c);
