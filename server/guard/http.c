/*
 * The guarded HTTP client: every outbound HTTP(S) request the server makes itself (OTLP,
 * AI model, telemetry) goes through guard_http_do(). Redirects are followed here, not by
 * libcurl, so that each hop is checked by the egress policy before any DNS lookup. The
 * client then resolves the name once itself, keeps only the addresses the policy allows,
 * and pins libcurl to them with CURLOPT_RESOLVE; an open-socket callback refuses any other
 * address, so a second resolution (DNS rebinding) cannot steer the connection elsewhere.
 * Proxies from the environment are ignored (a proxy would hide the destination).
 * guard_http_init() runs curl_global_init() before any thread (libcurl would otherwise do
 * it lazily, on whichever thread asks first).
 */
#include "guard-internal.h"
#include "guard.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define HTTP_MAX_PINNED 16

struct hop {
	struct guard_policy *p;
	const char *host; /* the hop's host (borrowed from its URL) */
	struct net_addr pinned[HTTP_MAX_PINNED];
	size_t n_pinned;
	uint16_t port;
	bool refused; /* the open-socket callback refused an address */
	char refused_addr[64];
	char *body;
	size_t body_len;
	size_t body_max;
	bool too_big;
	long retry_after_s; /* Retry-After of the hop's answer, 0 = none */
};

static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
	struct hop *h = ud;
	size_t n = size * nmemb;
	char *nb;

	if (h->body_len + n > h->body_max) {
		h->too_big = true;
		return 0;
	}
	nb = realloc(h->body, h->body_len + n + 1);
	if (!nb)
		return 0;
	memcpy(nb + h->body_len, data, n);
	h->body = nb;
	h->body_len += n;
	nb[h->body_len] = 0;
	return n;
}

/*
 * Right before libcurl connects: the real socket address must be one the hop pinned and
 * one the policy admits for the hop's host (a second check, not a second opinion).
 */
static curl_socket_t on_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *sa)
{
	struct hop *h = ud;
	struct net_addr a;
	uint16_t port;
	char reason[GUARD_ERR_MAX];

	if (purpose == CURLSOCKTYPE_IPCXN &&
	    net_addr_from_sockaddr(&sa->addr, sa->addrlen, &a, &port) == 0) {
		for (size_t i = 0; i < h->n_pinned; i++)
			if (h->pinned[i].family == a.family &&
			    !memcmp(h->pinned[i].addr, a.addr, 16) && port == h->port &&
			    guard_policy_admits(h->p, h->host, &a, port))
				return socket(sa->family, sa->socktype, sa->protocol);
		net_addr_format(&a, h->refused_addr, sizeof(h->refused_addr));
	} else {
		snprintf(h->refused_addr, sizeof(h->refused_addr), "a non-IP socket");
		port = 0;
	}
	h->refused = true;
	snprintf(reason, sizeof(reason), "egress blocked: connection to %s refused by policy",
		 h->refused_addr);
	guard_policy_trip(h->p, &(struct guard_refusal){ .client = GUARD_CLIENT_HTTP,
							 .host = h->host,
							 .address = h->refused_addr,
							 .port = port,
							 .reason = reason });
	return CURL_SOCKET_BAD;
}

/* Resolves host once and keeps the addresses the policy admits in h->pinned. */
static int pin(struct hop *h, const char *host, char *err, size_t errlen)
{
	struct net_addr found[HTTP_MAX_PINNED];
	size_t n = 0;
	int r;

	h->n_pinned = 0;
	h->host = host;
	if (net_addr_parse(host, &h->pinned[0]) == 0) {
		h->n_pinned = 1; /* a literal the URL check allowed */
		return 0;
	}
	r = guard_resolve(host, h->port, found, HTTP_MAX_PINNED, &n, err, errlen);
	if (r < 0)
		return r;
	r = guard_policy_admit_answer(h->p, GUARD_CLIENT_HTTP, host, h->port, found, n, h->pinned,
				      &h->n_pinned, err, errlen);
	if (r < 0)
		return fail(err, errlen, -EPERM,
			    "egress blocked: %s resolves to no allowlisted address", host);
	return 0;
}

/* "host:port:addr,addr" for CURLOPT_RESOLVE; IPv6 addresses in brackets. */
static struct curl_slist *resolve_list(const struct hop *h, const char *host)
{
	char line[1200];
	size_t n;

	n = (size_t)snprintf(line, sizeof(line), "%s:%u:", host, h->port);
	for (size_t i = 0; i < h->n_pinned && n < sizeof(line); i++) {
		char buf[64];

		net_addr_format(&h->pinned[i], buf, sizeof(buf));
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s%s%s", i ? "," : "",
				      h->pinned[i].family == AF_INET6 ? "[" : "", buf,
				      h->pinned[i].family == AF_INET6 ? "]" : "");
	}
	return curl_slist_append(NULL, line);
}

/*
 * Checks one hop's URL: the policy, http(s) only, and that curl reads the same host. A name
 * equal to admitted (the configured endpoint's host; NULL = none) skips the name check: the
 * addresses it resolves to are checked by pin() like those of any name.
 */
static int check_hop(struct guard_policy *p, const char *url, const char *admitted,
		     struct net_url *ret_u, char **ret_curl_host, char *err, size_t errlen)
{
	struct net_addr a;
	CURLU *cu;
	char *ch = NULL;
	char norm[256];
	int r = 0;

	if (!admitted || net_url_parse(url, ret_u) < 0 || strcmp(ret_u->host, admitted) != 0 ||
	    net_addr_parse(ret_u->host, &a) == 0)
		r = guard_policy_check_url(p, url, err, errlen);
	if (r < 0)
		return r;
	if (net_url_parse(url, ret_u) < 0)
		return fail(err, errlen, -EPERM, "egress blocked: invalid URL");
	if (strcmp(ret_u->scheme, "http") && strcmp(ret_u->scheme, "https"))
		return fail(err, errlen, -EPERM,
			    "egress blocked: unsupported outbound scheme \"%s\"", ret_u->scheme);
	/* a parser differential (our host vs curl's) would let curl go elsewhere: refuse */
	cu = curl_url();
	if (!cu)
		return fail(err, errlen, -ENOMEM, "out of memory");
	if (curl_url_set(cu, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(cu, CURLUPART_HOST, &ch, 0) != CURLUE_OK ||
	    net_host_normalize(ch, norm, sizeof(norm)) < 0 || strcmp(norm, ret_u->host) != 0) {
		curl_free(ch);
		curl_url_cleanup(cu);
		if (guard_policy_enabled(p))
			guard_policy_count_trip(p);
		return fail(err, errlen, -EPERM, "egress blocked: invalid URL");
	}
	curl_url_cleanup(cu);
	*ret_curl_host = ch;
	return 0;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Performs one hop. Returns 0 with *ret_status and maybe *ret_location (malloc'd). */
static int do_hop(const struct guard_http_request *req, struct hop *h, const char *url,
		  const char *host, const char *method, bool with_body, long timeout_ms,
		  long *ret_status, char **ret_location, char *err, size_t errlen)
{
	CURL *c = curl_easy_init();
	struct curl_slist *resolve = NULL, *headers = NULL;
	curl_off_t retry_after = 0;
	char *loc = NULL;
	CURLcode cc;
	int r = 0;

	if (!c)
		return fail(err, errlen, -ENOMEM, "out of memory");
	if (net_addr_parse(host, &(struct net_addr){ 0 }) < 0) {
		resolve = resolve_list(h, host);
		if (!resolve) {
			r = fail(err, errlen, -ENOMEM, "out of memory");
			goto out;
		}
	}
	for (const char *const *hd = req->headers; hd && *hd; hd++) {
		struct curl_slist *n = curl_slist_append(headers, *hd);

		if (!n) {
			r = fail(err, errlen, -ENOMEM, "out of memory");
			goto out;
		}
		headers = n;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	if (req->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, req->ca_file);
	if (with_body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
	}
	if (strcmp(method, "GET") != 0 && !(with_body && strcmp(method, "POST") == 0))
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);

	cc = curl_easy_perform(c);
	if (h->refused) {
		r = fail(err, errlen, -EPERM, "egress blocked: connection to %s refused by policy",
			 h->refused_addr);
		goto out;
	}
	if (h->too_big) {
		r = fail(err, errlen, -EFBIG, "response larger than %zu bytes", h->body_max);
		goto out;
	}
	if (cc == CURLE_OPERATION_TIMEDOUT) {
		r = fail(err, errlen, -ETIMEDOUT, "request to %s timed out", host);
		goto out;
	}
	if (cc != CURLE_OK) {
		r = fail(err, errlen, -EIO, "request to %s failed: %s", host,
			 curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, ret_status);
	curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &loc);
	if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &retry_after) != CURLE_OK || retry_after < 0)
		retry_after = 0;
	h->retry_after_s = retry_after > LONG_MAX ? LONG_MAX : (long)retry_after;
	*ret_location = loc ? strdup(loc) : NULL;
out:
	curl_slist_free_all(resolve);
	curl_slist_free_all(headers);
	curl_easy_cleanup(c);
	return r;
}

int guard_http_do(struct guard_policy *p, const struct guard_http_request *req,
		  struct guard_http_response *ret_resp, char *err, size_t errlen)
{
	const char *method = req->method ? req->method : "GET";
	bool with_body = req->body != NULL || strcmp(method, "POST") == 0;
	int max_redirects = req->max_redirects < 0 ? 5 : req->max_redirects;
	long timeout = req->timeout_ms > 0 ? req->timeout_ms : 30000;
	long deadline = now_ms() + timeout;
	char *url = strdup(req->url ? req->url : "");
	struct hop h = { .p = p,
			 .body_max =
				 req->max_response_bytes ? req->max_response_bytes : 1024 * 1024 };
	struct net_url first;
	const char *admitted = NULL;
	int r = 0;

	if (!url)
		return fail(err, errlen, -ENOMEM, "out of memory");
	if (req->configured_endpoint && net_url_parse(url, &first) == 0)
		admitted = first.host;
	for (int hops = 0;; hops++) {
		struct net_url u;
		char *curl_host = NULL, *loc = NULL, *nurl;
		long status = 0, left = deadline - now_ms();

		if (left <= 0) {
			r = fail(err, errlen, -ETIMEDOUT, "request timed out");
			break;
		}
		r = check_hop(p, url, admitted, &u, &curl_host, err, errlen);
		if (r < 0)
			break;
		h.port = u.port;
		h.refused = false;
		free(h.body);
		h.body = NULL;
		h.body_len = 0;
		memset(h.pinned, 0, sizeof(h.pinned));
		r = pin(&h, u.host, err, errlen);
		if (r == 0)
			r = do_hop(req, &h, url, u.host, method, with_body, left, &status, &loc,
				   err, errlen);
		curl_free(curl_host);
		if (r < 0)
			break;
		if (status < 300 || status > 399 || !loc || max_redirects == 0) {
			free(loc);
			ret_resp->status = status;
			ret_resp->body = h.body ? h.body : strdup("");
			ret_resp->body_len = h.body_len;
			ret_resp->final_url = url;
			ret_resp->retry_after_s = h.retry_after_s;
			if (!ret_resp->body) {
				free(url);
				return fail(err, errlen, -ENOMEM, "out of memory");
			}
			return 0;
		}
		if (hops + 1 > max_redirects) {
			free(loc);
			r = fail(err, errlen, -ELOOP, "more than %d redirects", max_redirects);
			break;
		}
		/* 301/302/303 turn a POST into a GET without a body, as browsers and curl do */
		if (status == 303 || ((status == 301 || status == 302) && with_body)) {
			method = "GET";
			with_body = false;
		}
		nurl = loc;
		free(url);
		url = nurl;
	}
	free(h.body);
	free(url);
	return r;
}

int guard_http_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void guard_http_fini(void)
{
	curl_global_cleanup();
}

void guard_http_response_free(struct guard_http_response *r)
{
	if (!r)
		return;
	free(r->body);
	free(r->final_url);
	r->body = NULL;
	r->final_url = NULL;
}
