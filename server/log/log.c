/*
 * JSON-lines logging. Each event is formatted into a local buffer and written with one
 * write(2) to stderr, so lines never interleave across threads. The threshold and the
 * format are the only process-wide state, set once at start-up before threads exist.
 */
#include "log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_level log_threshold = LOG_INFO;
static bool log_json = true;

static const char *const log_names[] = { "debug", "info", "warn", "error" };

int log_setup(const char *level, const char *format)
{
	int lvl = -1;

	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (level && strcmp(level, log_names[i]) == 0)
			lvl = (int)i;
	if (lvl < 0 || !format || (strcmp(format, "json") && strcmp(format, "text")))
		return -EINVAL;
	log_threshold = (enum log_level)lvl;
	log_json = strcmp(format, "json") == 0;
	return 0;
}

struct log_buf {
	char data[8192];
	size_t len;
};

static void buf_put(struct log_buf *b, const char *s, size_t n)
{
	size_t room = sizeof(b->data) - 2 - b->len; /* keep room for "}\n" */

	if (n > room)
		n = room;
	memcpy(b->data + b->len, s, n);
	b->len += n;
}

/* Appends s as a JSON string body (without quotes), escaping what JSON requires. */
static void buf_put_escaped(struct log_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[6];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			buf_put(b, esc, 2);
		} else if (c < 0x20) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			buf_put(b, esc, 6);
		} else {
			buf_put(b, (const char *)&c, 1);
		}
	}
}

static bool fmt_is_number(const char *fmt)
{
	return fmt[0] == '%' && strchr("dulzgi", fmt[1]) != NULL;
}

void log_write(enum log_level level, const char *msg, ...)
{
	struct log_buf b = { .len = 0 };
	char val[2048], ts[96];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	const char *key;
	int saved = errno;

	if (level < log_threshold)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (long)(tv.tv_usec / 1000));

	if (log_json) {
		buf_put(&b, "{\"time\":\"", 9);
		buf_put(&b, ts, strlen(ts));
		buf_put(&b, "\",\"level\":\"", 11);
		buf_put(&b, log_names[level], strlen(log_names[level]));
		buf_put(&b, "\",\"msg\":\"", 9);
		buf_put_escaped(&b, msg);
		buf_put(&b, "\"", 1);
	} else {
		buf_put(&b, ts, strlen(ts));
		buf_put(&b, " ", 1);
		buf_put(&b, log_names[level], strlen(log_names[level]));
		buf_put(&b, " ", 1);
		buf_put(&b, msg, strlen(msg));
	}

	va_start(ap, msg);
	while ((key = va_arg(ap, const char *)) != NULL) {
		const char *fmt = va_arg(ap, const char *);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		va_list cp;

		va_copy(cp, ap);
		vsnprintf(val, sizeof(val), fmt, cp);
		va_end(cp);
#pragma GCC diagnostic pop
		/* Each format holds exactly one conversion: step ap past its argument. */
		if (strcmp(fmt, "%s") == 0)
			(void)va_arg(ap, const char *);
		else if (strcmp(fmt, "%d") == 0 || strcmp(fmt, "%i") == 0 || strcmp(fmt, "%u") == 0)
			(void)va_arg(ap, int);
		else if (strcmp(fmt, "%g") == 0)
			(void)va_arg(ap, double);
		else
			(void)va_arg(ap, long long); /* %ld %lu %lld %llu %zu %zd */
		if (log_json) {
			buf_put(&b, ",\"", 2);
			buf_put_escaped(&b, key);
			buf_put(&b, "\":", 2);
			if (fmt_is_number(fmt)) {
				buf_put(&b, val, strlen(val));
			} else {
				buf_put(&b, "\"", 1);
				buf_put_escaped(&b, val);
				buf_put(&b, "\"", 1);
			}
		} else {
			buf_put(&b, " ", 1);
			buf_put(&b, key, strlen(key));
			buf_put(&b, "=", 1);
			buf_put(&b, val, strlen(val));
		}
	}
	va_end(ap);

	if (log_json)
		b.data[b.len++] = '}';
	b.data[b.len++] = '\n';
	if (write(STDERR_FILENO, b.data, b.len) < 0) {
		/* Nowhere left to report it. */
	}
	errno = saved;
}
