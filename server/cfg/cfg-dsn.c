/*
 * PostgreSQL connection strings and URL userinfo: which hosts a DSN reaches (for the
 * air-gap rule) and how to print one without its password. Both libpq forms are understood:
 * the URL form (postgres[ql]://user:pw@host:port,host2/db?param=v) and the key=value form
 * ("host=a,b port=5432 password='x y'"). Nothing here connects or resolves.
 */
#include "cfg.h"
#include "cfg-internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DSN_DEFAULT_PORT 5432

static bool dsn_is_url(const char *dsn)
{
	return strncmp(dsn, "postgres://", 11) == 0 || strncmp(dsn, "postgresql://", 13) == 0;
}

/* Decodes %XX escapes into a malloc'd string; NULL on ENOMEM or a bad escape. */
static char *pct_decode(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			char hex[3] = { 0 };

			if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
			    !isxdigit((unsigned char)s[i + 2])) {
				free(out);
				return NULL;
			}
			hex[0] = s[i + 1];
			hex[1] = s[i + 2];
			*o++ = (char)strtol(hex, NULL, 16);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = 0;
	return out;
}

/* One key=value pair of the key=value form. */
struct kv {
	char key[64];
	char *val; /* malloc'd, unquoted */
};

/*
 * Reads the next key=value pair from *pp. Returns 1 with *ret, 0 at the end, -EINVAL on a
 * syntax error, -ENOMEM.
 */
static int kv_next(const char **pp, struct kv *ret, const char **ret_vstart, const char **ret_vend)
{
	const char *p = *pp, *k;
	size_t kn;
	char *v, *o;

	while (isspace((unsigned char)*p))
		p++;
	if (!*p)
		return 0;
	k = p;
	while (*p && *p != '=' && !isspace((unsigned char)*p))
		p++;
	kn = (size_t)(p - k);
	while (isspace((unsigned char)*p))
		p++;
	if (*p != '=' || kn == 0 || kn >= sizeof(ret->key))
		return -EINVAL;
	p++;
	while (isspace((unsigned char)*p))
		p++;
	memcpy(ret->key, k, kn);
	ret->key[kn] = 0;
	v = o = malloc(strlen(p) + 1);
	if (!v)
		return -ENOMEM;
	*ret_vstart = p;
	if (*p == '\'') {
		p++;
		while (*p && *p != '\'') {
			if (*p == '\\' && p[1])
				p++;
			*o++ = *p++;
		}
		if (*p != '\'') {
			free(v);
			return -EINVAL;
		}
		p++;
	} else {
		while (*p && !isspace((unsigned char)*p)) {
			if (*p == '\\' && p[1])
				p++;
			*o++ = *p++;
		}
	}
	*ret_vend = p;
	*o = 0;
	ret->val = v;
	*pp = p;
	return 1;
}

/* Calls fn for each host of a comma list with the matching port of a comma port list. */
static int each_host(const char *hosts, const char *ports, int (*fn)(const char *, int, void *),
		     void *ud)
{
	const char *h = hosts, *pt = ports;
	int r = 0;

	while (h && r >= 0) {
		size_t hn = strcspn(h, ",");
		int port = DSN_DEFAULT_PORT;
		char *host;

		if (pt && *pt) {
			char *end;
			long x = strtol(pt, &end, 10);

			if (end == pt || (*end && *end != ',') || x < 1 || x > 65535)
				return -EINVAL;
			port = (int)x;
			pt = *end == ',' ? end + 1 : NULL;
		}
		host = strndup(h, hn);
		if (!host)
			return -ENOMEM;
		if (host[0] && host[0] != '/' && host[0] != '@')
			r = fn(host, port, ud);
		free(host);
		h = h[hn] == ',' ? h + hn + 1 : NULL;
	}
	return r;
}

static int dsn_hosts_kv(const char *dsn, int (*fn)(const char *, int, void *), void *ud)
{
	char *host = NULL, *hostaddr = NULL, *port = NULL;
	const char *p = dsn, *vs, *ve;
	struct kv kv;
	int r;

	while ((r = kv_next(&p, &kv, &vs, &ve)) > 0) {
		char **slot = NULL;

		if (strcmp(kv.key, "host") == 0)
			slot = &host;
		else if (strcmp(kv.key, "hostaddr") == 0)
			slot = &hostaddr;
		else if (strcmp(kv.key, "port") == 0)
			slot = &port;
		if (slot) {
			free(*slot);
			*slot = kv.val;
		} else {
			free(kv.val);
		}
	}
	if (r == 0 && host)
		r = each_host(host, port, fn, ud);
	if (r == 0 && hostaddr)
		r = each_host(hostaddr, port, fn, ud);
	free(host);
	free(hostaddr);
	free(port);
	return r;
}

/* The URL form: hosts come from the authority and from host=/hostaddr= query parameters. */
static int dsn_hosts_url(const char *dsn, int (*fn)(const char *, int, void *), void *ud)
{
	const char *a = strstr(dsn, "://") + 3;
	size_t an = strcspn(a, "/?");
	const char *at = memrchr(a, '@', an);
	const char *h = at ? at + 1 : a;
	const char *end = a + an;
	const char *q = strchr(a, '?');
	int r = 0;

	while (h < end && r >= 0) {
		const char *seg_end = memchr(h, ',', (size_t)(end - h));
		const char *hs = h, *he, *ps = NULL;
		char *host;
		int port = DSN_DEFAULT_PORT;

		if (!seg_end)
			seg_end = end;
		if (*hs == '[') {
			he = memchr(hs, ']', (size_t)(seg_end - hs));
			if (!he)
				return -EINVAL;
			hs++;
			if (he + 1 < seg_end) {
				if (he[1] != ':')
					return -EINVAL;
				ps = he + 2;
			}
		} else {
			he = memchr(hs, ':', (size_t)(seg_end - hs));
			if (he)
				ps = he + 1;
			else
				he = seg_end;
		}
		if (ps) {
			char *pe;
			long x = strtol(ps, &pe, 10);

			if (pe != seg_end || x < 1 || x > 65535)
				return -EINVAL;
			port = (int)x;
		}
		host = pct_decode(hs, (size_t)(he - hs));
		if (!host)
			return -EINVAL;
		if (host[0] && host[0] != '/' && host[0] != '@')
			r = fn(host, port, ud);
		free(host);
		h = seg_end + 1;
	}
	while (q && r >= 0) {
		const char *k = q + 1;
		size_t n = strcspn(k, "&");

		if ((strncmp(k, "host=", 5) == 0 || strncmp(k, "hostaddr=", 9) == 0)) {
			const char *v = strchr(k, '=') + 1;
			char *val = pct_decode(v, (size_t)(k + n - v));

			if (!val)
				return -EINVAL;
			r = each_host(val, NULL, fn, ud);
			free(val);
		}
		q = k[n] ? k + n : NULL;
	}
	return r;
}

int cfg_dsn_hosts(const char *dsn, int (*fn)(const char *host, int port, void *ud), void *ud)
{
	if (!dsn)
		return 0;
	return dsn_is_url(dsn) ? dsn_hosts_url(dsn, fn, ud) : dsn_hosts_kv(dsn, fn, ud);
}

/* Replaces bytes [from, to) of s with "xxxxx"; returns a new string or NULL. */
static char *splice_redacted(const char *s, size_t from, size_t to)
{
	char *out;

	if (asprintf(&out, "%.*sxxxxx%s", (int)from, s, s + to) < 0)
		return NULL;
	return out;
}

/*
 * Redacts the password of one URL's userinfo, and any password= query parameter. A lone
 * user part is a token for NATS (redacted when bare_is_secret) and a user name for libpq.
 */
static char *url_redact_one(const char *url, bool bare_is_secret)
{
	char *cur = strdup(url);
	const char *a = strstr(url, "://");
	char *p;

	if (!cur || !a)
		return cur;
	a = cur + (a - url) + 3;
	{
		size_t an = strcspn(a, "/?#");
		const char *at = memrchr(a, '@', an);

		if (at && (bare_is_secret || memchr(a, ':', (size_t)(at - a)))) {
			const char *colon = memchr(a, ':', (size_t)(at - a));
			size_t from = colon ? (size_t)(colon + 1 - cur) : (size_t)(a - cur);
			char *n = splice_redacted(cur, from, (size_t)(at - cur));

			free(cur);
			cur = n;
			if (!cur)
				return NULL;
		}
	}
	while (cur && (p = strstr(cur, "password=")) && p > cur && (p[-1] == '?' || p[-1] == '&')) {
		size_t from = (size_t)(p + 9 - cur);
		size_t to = from + strcspn(p + 9, "&#");
		char *n;

		if (strncmp(cur + from, "xxxxx", 5) == 0 && to == from + 5)
			break;
		n = splice_redacted(cur, from, to);
		free(cur);
		cur = n;
	}
	return cur;
}

char *cfg_url_redact(const char *url)
{
	char *out = strdup(""), *one, *item;
	const char *p = url;

	/* NATS takes comma-separated server URLs; redact each */
	while (out && p) {
		size_t n = strcspn(p, ",");
		char *joined;

		item = strndup(p, n);
		one = item ? url_redact_one(item, true) : NULL;
		free(item);
		if (!one || asprintf(&joined, "%s%s%s", out, *out ? "," : "", one) < 0) {
			free(one);
			free(out);
			return NULL;
		}
		free(one);
		free(out);
		out = joined;
		p = p[n] ? p + n + 1 : NULL;
	}
	return out;
}

char *cfg_dsn_redact(const char *dsn)
{
	const char *p = dsn, *last = dsn, *vs, *ve;
	char *out = strdup(""), *n;
	struct kv kv;
	int r = 0;

	if (dsn_is_url(dsn)) {
		free(out);
		return url_redact_one(dsn, false);
	}
	while (out && (r = kv_next(&p, &kv, &vs, &ve)) > 0) {
		free(kv.val);
		if (strcmp(kv.key, "password") != 0)
			continue;
		if (asprintf(&n, "%s%.*sxxxxx", out, (int)(vs - last), last) < 0)
			n = NULL;
		free(out);
		out = n;
		last = ve;
	}
	if (out && r < 0) {
		free(out);
		return strdup("[unparseable connection string; redacted]");
	}
	if (out) {
		if (asprintf(&n, "%s%s", out, last) < 0)
			n = NULL;
		free(out);
		out = n;
	}
	return out;
}
