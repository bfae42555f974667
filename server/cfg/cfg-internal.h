#pragma once
/*
 * Private to server/cfg: the error collector shared by loading and validation, the DSN
 * redactor, and the validation entry point.
 */
#include <stddef.h>

#include "cfg.h"

/* Collected errors, joined with "; ". oom is sticky: once set, cfg_load returns -ENOMEM. */
struct cfg_errs {
	char *buf;
	size_t len;
	size_t n;
	int oom;
};

/* Adds one error; control characters of quoted values become '?' (the list is one line). */
void cfg_errs_add(struct cfg_errs *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Runs every validation rule over a fully merged configuration, adding to e. */
void cfg_validate(const struct cfg *c, struct cfg_errs *e);

/* Returns a malloc'd copy of dsn with any password replaced by xxxxx (NULL on ENOMEM). */
char *cfg_dsn_redact(const char *dsn);

/* cfg-value.c: the syntax of values. 0 or -EINVAL (-ENOMEM for a list). */
int cfg_parse_bool(const char *v, bool *ret);
int cfg_parse_i64(const char *v, int64_t *ret);
/* A duration in its largest exact unit ("90s" for 1m30s) into buf; returns buf. */
const char *cfg_format_duration(int64_t ms, char *buf, size_t len);
/* Splits a comma-separated list: entries trimmed, empties dropped. */
int cfg_split_list(const char *v, char ***ret, size_t *ret_n);
/* Frees a list of n strings (NULL is fine). */
void cfg_free_list(char **l, size_t n);
