#pragma once
/*
 * log: JSON-lines (or plain text) logging to stderr. One line per event, written with a
 * single write(2) so that lines from several threads never interleave. Never pass a
 * secret value: the log is read by operators and shipped to collectors.
 */
#include <stdarg.h>

enum log_level {
	LOG_DEBUG,
	LOG_INFO,
	LOG_WARN,
	LOG_ERROR,
};

/* Sets the threshold and the format. level: debug|info|warn|error; format: json|text.
 * Returns -EINVAL on an unknown name (nothing changes). */
int log_setup(const char *level, const char *format);

/*
 * Logs msg with extra fields. fields is a NULL-terminated list of key, printf-format
 * pairs followed by their arguments, e.g.
 *   log_write(LOG_INFO, "serving", "addr", "%s", addr, "port", "%d", port, NULL);
 * Each format holds exactly one conversion (%s, %d, %u, %g, %ld, %lld, %zu, ...).
 * A format that starts with '%d', '%u', '%l', '%z' or '%g' is written as a JSON number.
 */
void log_write(enum log_level level, const char *msg, ...);

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__, NULL)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__, NULL)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__, NULL)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__, NULL)
