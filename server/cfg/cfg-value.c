/*
 * The syntax of configuration values (cfg-internal.h): booleans, integers, durations
 * ("1h30m", "250ms") and comma-separated lists. Pure functions of their text; the settings
 * table and what a value means live in cfg.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "cfg-internal.h"

int cfg_parse_bool(const char *v, bool *ret)
{
	static const char *const t[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const f[] = { "0", "f", "F", "FALSE", "false", "False" };

	for (size_t i = 0; i < 6; i++) {
		if (strcmp(v, t[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcmp(v, f[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

int cfg_parse_i64(const char *v, int64_t *ret)
{
	char *end;
	long long x;

	errno = 0;
	x = strtoll(v, &end, 10);
	if (errno || end == v || *end)
		return -EINVAL;
	*ret = x;
	return 0;
}

int cfg_parse_duration(const char *s, int64_t *ret_ms)
{
	int64_t total = 0;
	const char *p = s;

	if (!s || !*s)
		return -EINVAL;
	if (strcmp(s, "0") == 0) {
		*ret_ms = 0;
		return 0;
	}
	while (*p) {
		int64_t n = 0, mul;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		while (*p >= '0' && *p <= '9') {
			if (n > INT64_MAX / 10 - 10)
				return -EINVAL;
			n = n * 10 + (*p++ - '0');
		}
		if (strncmp(p, "ms", 2) == 0) {
			mul = 1;
			p += 2;
		} else if (*p == 's') {
			mul = 1000;
			p++;
		} else if (*p == 'm') {
			mul = 60000;
			p++;
		} else if (*p == 'h') {
			mul = 3600000;
			p++;
		} else {
			return -EINVAL;
		}
		if (n > (INT64_MAX - total) / mul)
			return -EINVAL;
		total += n * mul;
	}
	*ret_ms = total;
	return 0;
}

/* A duration in its largest exact unit ("90s" for 1m30s) into buf; returns buf. */
const char *cfg_format_duration(int64_t ms, char *buf, size_t len)
{
	if (ms == 0)
		snprintf(buf, len, "0s");
	else if (ms % 3600000 == 0)
		snprintf(buf, len, "%" PRId64 "h", ms / 3600000);
	else if (ms % 60000 == 0)
		snprintf(buf, len, "%" PRId64 "m", ms / 60000);
	else if (ms % 1000 == 0)
		snprintf(buf, len, "%" PRId64 "s", ms / 1000);
	else
		snprintf(buf, len, "%" PRId64 "ms", ms);
	return buf;
}

/* Splits a comma-separated list: entries trimmed, empties dropped. */
int cfg_split_list(const char *v, char ***ret, size_t *ret_n)
{
	char **l = NULL;
	size_t n = 0;
	const char *p = v;

	while (*p) {
		const char *start = p, *end;
		char **nl;

		while (*p && *p != ',')
			p++;
		end = p;
		if (*p)
			p++;
		while (start < end && (*start == ' ' || *start == '\t'))
			start++;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (start == end)
			continue;
		nl = realloc(l, (n + 1) * sizeof(*l));
		if (!nl)
			goto oom;
		l = nl;
		l[n] = strndup(start, (size_t)(end - start));
		if (!l[n])
			goto oom;
		n++;
	}
	*ret = l;
	*ret_n = n;
	return 0;
oom:
	cfg_free_list(l, n);
	return -ENOMEM;
}
