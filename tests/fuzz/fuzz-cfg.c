/*
 * libFuzzer target for the configuration loader (cfg_load, server/cfg): the JSON file
 * named by TRSTCTL_CONFIG_FILE and the TRSTCTL_* environment are outside bytes (an
 * operator's, a chart's, a mounted ConfigMap's). The input up to its first NUL is the file
 * (handed over through a memfd); every further NUL-separated piece that holds '=' is one
 * environment entry, so that the string, number, duration, list and URL settings are
 * reached from either side. Properties: a load either succeeds, and then the effective
 * configuration prints, or fails with -EINVAL and a non-empty one-line error list (or
 * -ENOMEM); the DSN host walk and the other helpers of cfg.h take any string. The same
 * input is also tried as one DSN, one duration and one listen address.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cfg.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ENV 16

static int fuzz_fd(void)
{
	static int fd = -1;

	if (fd < 0 && (fd = memfd_create("fuzz-cfg", 0)) < 0)
		abort();
	return fd;
}

static int count_host(const char *host, int port, void *ud)
{
	if (!host || port < 0 || port > 65535)
		abort();
	++*(int *)ud;
	return 0;
}

static void helpers(const char *s)
{
	int64_t ms = 0;
	int n = 0;

	if (cfg_parse_duration(s, &ms) == 0 && ms < 0)
		abort();
	(void)cfg_addr_is_loopback(s);
	(void)cfg_dsn_hosts(s, count_host, &n);
}

static void load(char *const *envp)
{
	struct cfg *c = NULL;
	char *errors = NULL, *out = NULL;
	size_t len = 0;
	FILE *f;
	int r = cfg_load(envp, &c, &errors);

	if (r < 0) {
		if (r != -EINVAL && r != -ENOMEM)
			abort();
		if (r == -EINVAL && (!errors || !errors[0] || strchr(errors, '\n')))
			abort();
		free(errors);
		return;
	}
	if (!c || errors)
		abort();
	f = open_memstream(&out, &len);
	if (!f)
		abort();
	if (cfg_print(c, f) < 0)
		abort();
	fclose(f);
	free(out);
	cfg_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char file_env[64], *copy, *envp[MAX_ENV + 2];
	size_t file_len = strnlen((const char *)data, size), n = 0;
	int fd = fuzz_fd();

	if (size > 16384)
		return 0;
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, file_len, 0) != (ssize_t)file_len)
		abort();
	snprintf(file_env, sizeof(file_env), "TRSTCTL_CONFIG_FILE=/proc/self/fd/%d", fd);
	envp[n++] = file_env;

	/* A copy with a NUL at the end, so that every piece is a C string. */
	copy = fuzz_cstring(data, size, size);
	if (!copy)
		return 0;
	for (size_t at = file_len + 1; at < size && n <= MAX_ENV; at += strlen(copy + at) + 1)
		if (strchr(copy + at, '='))
			envp[n++] = copy + at;
	envp[n] = NULL;
	load(envp);
	helpers(copy);
	free(copy);
	return 0;
}
