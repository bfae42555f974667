/*
 * cfg-check-config: loads the configuration from the environment and prints it exactly as
 * `trstctl --check-config` does (summary on stdout, exit 0; or "trstctl: configuration:
 * <errors>" on stderr, exit 1). With --describe it prints the settings table instead.
 * Used by the golden and docs tests.
 */
#include "cfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

int main(int argc, char **argv)
{
	struct cfg *c = NULL;
	char *errors = NULL;
	int r;

	if (argc > 1 && strcmp(argv[1], "--describe") == 0)
		return cfg_describe(stdout) < 0 ? 1 : 0;
	r = cfg_load(environ, &c, &errors);
	if (r < 0) {
		fprintf(stderr, "trstctl: configuration: %s\n", errors ? errors : "out of memory");
		free(errors);
		return 1;
	}
	r = cfg_print(c, stdout);
	cfg_free(c);
	return r < 0 ? 1 : 0;
}
