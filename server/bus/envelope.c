/*
 * The event envelope and its pieces: the checks on event types, RFC 3339 timestamps, and
 * the JSON {id, type, tenant_id, time, actor, data} that subscribers receive. Pure
 * functions over jansson (ids and tenant checks are crypto_uuid_*); no database, no NATS,
 * so the unit tests exercise them directly.
 *
 * data is the change's JSON object embedded as is. The original product carried it as
 * base64 of the JSON bytes; we embed the object because subscribers (jq, other services)
 * read it directly, and JSON in JSON needs no second decoding step.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"

static bool is_token_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

bool bus_type_valid(const char *type)
{
	size_t len, token = 0;

	if (!type)
		return false;
	len = strlen(type);
	if (len == 0 || len > BUS_TYPE_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (type[i] == '.') {
			if (token == 0)
				return false;
			token = 0;
		} else if (is_token_char(type[i])) {
			token++;
		} else {
			return false;
		}
	}
	return token > 0;
}

void bus_rfc3339(const struct timespec *t, char out[32])
{
	struct tm tm;
	char base[24];

	gmtime_r(&t->tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 32, "%.19s.%06uZ", base, (unsigned)(t->tv_nsec / 1000) % 1000000u);
}

int bus_envelope_build(const char *id, const char *tenant_id, const char *type, const char *actor,
		       const char *data_json, const struct timespec *now, char **ret_json,
		       size_t *ret_len)
{
	json_error_t jerr;
	json_t *data;
	int r;

	if (!data_json)
		data_json = "{}";
	data = json_loads(data_json, JSON_REJECT_DUPLICATES, &jerr);
	r = bus_envelope_build_object(id, tenant_id, type, actor, data, now, ret_json, ret_len);
	json_decref(data);
	return r;
}

int bus_envelope_build_printed(const char *id, const char *tenant_id, const char *type,
			       const char *actor, const char *data, const struct timespec *now,
			       char **ret_json, size_t *ret_len)
{
	char when[32], *jactor = NULL, *text;
	size_t dlen = data ? strlen(data) : 0;
	json_t *s;
	int n;

	if (!data || dlen < 2 || data[0] != '{' || data[dlen - 1] != '}')
		return -EINVAL;
	if (actor) {
		s = json_string(actor);
		if (!s) /* not UTF-8 */
			return -EINVAL;
		jactor = json_dumps(s, JSON_ENCODE_ANY | JSON_COMPACT);
		json_decref(s);
		if (!jactor)
			return -ENOMEM;
	}
	bus_rfc3339(now, when);
	n = asprintf(&text, "{\"id\":\"%s\",\"type\":\"%s\",\"tenant_id\":\"%s\",\"time\":\"%s\","
		     "\"actor\":%s,\"data\":%s}",
		     id, type, tenant_id, when, jactor ? jactor : "null", data);
	free(jactor);
	if (n < 0)
		return -ENOMEM;
	if ((size_t)n > BUS_EVENT_MAX) {
		free(text);
		return -EMSGSIZE;
	}
	*ret_json = text;
	*ret_len = (size_t)n;
	return 0;
}

int bus_envelope_build_object(const char *id, const char *tenant_id, const char *type,
			      const char *actor, const void *data_obj, const struct timespec *now,
			      char **ret_json, size_t *ret_len)
{
	json_t *data = (json_t *)data_obj, *env = NULL, *jactor;
	char when[32], *text;
	int r = -ENOMEM;

	if (!data || !json_is_object(data))
		return -EINVAL;
	if (actor) {
		jactor = json_string(actor);
		if (!jactor) /* not UTF-8 */
			return -EINVAL;
	} else {
		jactor = json_null();
	}

	bus_rfc3339(now, when);
	env = json_object();
	if (!env || json_object_set_new(env, "id", json_string(id)) < 0 ||
	    json_object_set_new(env, "type", json_string(type)) < 0 ||
	    json_object_set_new(env, "tenant_id", json_string(tenant_id)) < 0 ||
	    json_object_set_new(env, "time", json_string(when)) < 0) {
		json_decref(jactor);
		goto out;
	}
	/* set_new steals the reference even on failure; set takes one of its own */
	if (json_object_set_new(env, "actor", jactor) < 0 || json_object_set(env, "data", data) < 0)
		goto out;

	text = json_dumps(env, JSON_COMPACT);
	if (!text)
		goto out;
	if (strlen(text) > BUS_EVENT_MAX) {
		free(text);
		r = -EMSGSIZE;
		goto out;
	}
	*ret_len = strlen(text);
	*ret_json = text;
	r = 0;
out:
	json_decref(env);
	return r;
}
