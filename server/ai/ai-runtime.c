/*
 * The wire formats of the local model runtimes (docs/api.md "Assist"): Ollama's generate
 * API and the OpenAI chat completions API that vLLM serves. Requests are built and replies
 * read with jansson; a reply is outside input, so only its shape is trusted, never its
 * size (the guarded client caps it) or its contents (no byte of it goes into an error
 * message).
 */
#include "ai.h"
#include "ai-internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	const char *path; /* appended to an endpoint without a path */
} runtimes[] = {
	[AI_RUNTIME_OLLAMA] = { "ollama", "/api/generate" },
	[AI_RUNTIME_VLLM] = { "vllm", "/v1/chat/completions" },
};

int ai_fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

int ai_runtime_parse(const char *name, enum ai_runtime *ret)
{
	for (size_t i = 0; name && i < sizeof(runtimes) / sizeof(runtimes[0]); i++)
		if (strcmp(name, runtimes[i].name) == 0) {
			*ret = (enum ai_runtime)i;
			return 0;
		}
	return -EINVAL;
}

int ai_runtime_url(enum ai_runtime rt, const char *endpoint, char **ret_url)
{
	const char *rest, *path;
	size_t n;

	if ((unsigned)rt >= sizeof(runtimes) / sizeof(runtimes[0]) || !endpoint || !ret_url)
		return -EINVAL;
	rest = strstr(endpoint, "://");
	if (!rest)
		return -EINVAL;
	rest += 3;
	path = rest + strcspn(rest, "/?#");
	n = strlen(endpoint);
	/* no path, or only "/": the runtime's usual path */
	if (*path == 0 || strcmp(path, "/") == 0) {
		if (*path == '/')
			n--;
		if (asprintf(ret_url, "%.*s%s", (int)n, endpoint, runtimes[rt].path) < 0)
			return -ENOMEM;
		return 0;
	}
	*ret_url = strdup(endpoint);
	return *ret_url ? 0 : -ENOMEM;
}

int ai_runtime_request(enum ai_runtime rt, const char *model, const char *prompt, char **ret_body)
{
	json_t *o;

	if (!model || !prompt || !ret_body)
		return -EINVAL;
	if (rt == AI_RUNTIME_OLLAMA)
		o = json_pack("{s:s, s:s, s:b}", "model", model, "prompt", prompt, "stream", 0);
	else if (rt == AI_RUNTIME_VLLM)
		o = json_pack("{s:s, s:[{s:s, s:s}], s:b}", "model", model, "messages", "role",
			      "user", "content", prompt, "stream", 0);
	else
		return -EINVAL;
	if (!o)
		return -EINVAL; /* json_pack refuses a string that is not UTF-8 */
	*ret_body = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return *ret_body ? 0 : -ENOMEM;
}

/* The text of a string member, or NULL. */
static const char *text_of(json_t *v)
{
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int trimmed_copy(const char *s, char **ret)
{
	size_t n;

	while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
		s++;
	n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == '\t'))
		n--;
	if (n == 0)
		return -ENODATA;
	*ret = strndup(s, n);
	return *ret ? 0 : -ENOMEM;
}

int ai_runtime_answer(enum ai_runtime rt, const char *body, size_t len, char **ret_answer,
		      char **ret_model, char *err, size_t errlen)
{
	json_error_t je;
	json_t *root, *msg = NULL;
	const char *answer = NULL, *model;
	char *a = NULL, *m = NULL;
	int r;

	if (!body || !ret_answer || !ret_model)
		return -EINVAL;
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(root)) {
		json_decref(root);
		return ai_fail(err, errlen, -EPROTO, "the %s runtime's reply is not a JSON object",
			       runtimes[rt].name);
	}
	if (rt == AI_RUNTIME_OLLAMA) {
		answer = text_of(json_object_get(root, "response"));
	} else {
		json_t *choices = json_object_get(root, "choices");

		msg = json_object_get(json_array_get(choices, 0), "message");
		answer = text_of(json_object_get(msg, "content"));
	}
	if (!answer) {
		json_decref(root);
		return ai_fail(err, errlen, -EPROTO, "the %s runtime's reply has no %s",
			       runtimes[rt].name,
			       rt == AI_RUNTIME_OLLAMA ? "\"response\" string" :
							 "choices[0].message.content string");
	}
	r = trimmed_copy(answer, &a);
	if (r == -ENODATA)
		r = ai_fail(err, errlen, -EPROTO, "the %s runtime answered with empty text",
			    runtimes[rt].name);
	model = text_of(json_object_get(root, "model"));
	if (r == 0 && model && *model && !(m = strdup(model)))
		r = -ENOMEM;
	json_decref(root);
	if (r < 0) {
		free(a);
		return r;
	}
	*ret_answer = a;
	*ret_model = m;
	return 0;
}
