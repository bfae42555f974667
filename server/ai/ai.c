/*
 * The Assist service's work (ai.h): open and close, and one question from the caller's
 * text to the model's answer. The question is redacted and refused when secret-like
 * material survives; the facts are read and redacted (random-looking words included);
 * the prompt is checked once more as a whole, then sent through the guarded HTTP client
 * with no redirect followed. At most AI_INFLIGHT_MAX questions wait on the model at once,
 * so that a slow model holds a bounded share of the worker pool; more are refused at once
 * (the caller retries). Nothing here logs the question, the prompt or the answer.
 */
#include "ai.h"
#include "ai-internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "guard.h"
#include "log.h"
#include "net.h"

static const char prompt_head[] =
	"You answer questions from an operator of trstctl, a service that issues X.509 "
	"certificates, keeps secrets and an audit log. Use only the facts below; when they do "
	"not answer the question, say so. Answer briefly. Values shown as [REDACTED] were "
	"removed on purpose.\n\nFacts:\n";

bool ai_enabled(const struct ai *ai)
{
	return ai && ai->enabled;
}

/* The checks of an enabled service: local mode, a runtime, a URL, a readable CA file. */
static int open_model(struct ai *ai, const struct cfg_ai_model *m)
{
	struct net_url u = { 0 };
	char why[AI_ERR_MAX] = "";
	int r = 0;

	if (m->mode != CFG_AI_LOCAL || !m->name || !m->endpoint)
		snprintf(why, sizeof(why),
			 "ai.enable_api=true needs ai.model.mode=local with "
			 "ai.model.runtime, ai.model.endpoint and ai.model.name");
	else if (ai_runtime_parse(m->runtime, &ai->runtime) < 0)
		snprintf(why, sizeof(why), "ai.model.runtime must be ollama or vllm");
	else if (net_url_parse(m->endpoint, &u) < 0)
		snprintf(why, sizeof(why), "ai.model.endpoint is not an absolute URL");
	else if (m->ca_file && access(m->ca_file, R_OK) < 0)
		snprintf(why, sizeof(why), "cannot read ai.model.ca_file \"%s\": %s", m->ca_file,
			 strerror(errno));
	if (*why) {
		log_error("cannot start the Assist service", "error", "%s", why);
		return -EINVAL;
	}
	snprintf(ai->host, sizeof(ai->host), "%s", u.host);
	r = ai_runtime_url(ai->runtime, m->endpoint, &ai->url);
	if (r < 0)
		return r;
	log_info("Assist service on: questions go to the local model", "runtime", "%s", m->runtime,
		 "model", "%s", m->name, "host", "%s", ai->host);
	return 0;
}

int ai_open(const struct cfg *c, struct guard_policy *p, struct ca_service *ca, struct audit *audit,
	    struct ai **ret)
{
	struct ai *ai;
	int r = 0;

	if (!c || !ret)
		return -EINVAL;
	if (c->ai_model.enable_api && (!p || !ca || !audit))
		return -EINVAL;
	ai = calloc(1, sizeof(*ai));
	if (!ai)
		return -ENOMEM;
	ai->cfg = c;
	ai->policy = p;
	ai->ca = ca;
	ai->audit = audit;
	ai->enabled = c->ai_model.enable_api;
	pthread_mutex_init(&ai->lock, NULL);
	if (ai->enabled)
		r = open_model(ai, &c->ai_model);
	if (r < 0) {
		ai_close(ai);
		return r;
	}
	*ret = ai;
	return 0;
}

struct ai *ai_close(struct ai *ai)
{
	if (!ai)
		return NULL;
	pthread_mutex_destroy(&ai->lock);
	free(ai->url);
	free(ai);
	return NULL;
}

void ai_answer_clear(struct ai_answer *a)
{
	if (!a)
		return;
	free(a->text);
	free(a->model);
	memset(a, 0, sizeof(*a));
}

/* The question, redacted; -EINVAL or -EACCES with a message when it cannot be sent. */
static int question_text(const char *question, char **ret, size_t *ret_n, char *err, size_t errlen)
{
	const char *q = question ? question : "";
	int r;

	q += strspn(q, " \t\r\n");
	if (!*q)
		return ai_fail(err, errlen, -EINVAL, "question is required");
	if (strlen(question) > AI_QUESTION_MAX)
		return ai_fail(err, errlen, -EINVAL, "question is longer than %d bytes",
			       AI_QUESTION_MAX);
	r = ai_redact(question, false, ret, ret_n);
	if (r < 0)
		return r;
	if (ai_secret_like(*ret)) {
		free(*ret);
		return ai_fail(
			err, errlen, -EACCES,
			"the question was not sent to the model: it still holds secret-like "
			"material after redaction (a long random-looking word); remove it and "
			"ask again");
	}
	return 0;
}

/* The whole prompt: the head, the redacted facts, the question. */
static int prompt_text(struct ai *ai, const char *tenant_id, const char *q, char **ret, char *err,
		       size_t errlen)
{
	char *facts = NULL, *clean = NULL;
	size_t n = 0;
	int r = ai_facts(ai, tenant_id, &facts);

	if (r < 0)
		return ai_fail(err, errlen, r, "cannot read the inventory: %s", strerror(-r));
	r = ai_redact(facts, true, &clean, &n);
	free(facts);
	if (r < 0)
		return r;
	r = asprintf(ret, "%s%s\nQuestion: %s\n", prompt_head, clean, q) < 0 ? -ENOMEM : 0;
	free(clean);
	if (r == 0 && ai_secret_like(*ret)) { /* the safety net: never expected to fire */
		free(*ret);
		r = ai_fail(err, errlen, -EACCES,
			    "the prompt was withheld: secret-like material "
			    "remains after redaction");
	}
	return r;
}

/* Takes a place at the model, or -EUSERS. */
static int enter(struct ai *ai, char *err, size_t errlen)
{
	int r = 0;

	pthread_mutex_lock(&ai->lock);
	if (ai->inflight >= AI_INFLIGHT_MAX)
		r = ai_fail(err, errlen, -EUSERS,
			    "the model is busy: %d questions are being answered; try again shortly",
			    AI_INFLIGHT_MAX);
	else
		ai->inflight++;
	pthread_mutex_unlock(&ai->lock);
	return r;
}

static void leave(struct ai *ai)
{
	pthread_mutex_lock(&ai->lock);
	ai->inflight--;
	pthread_mutex_unlock(&ai->lock);
}

/* POSTs body to the model; the reply's answer and model into *ret. */
static int call_model(struct ai *ai, const char *body, int64_t timeout_ms, struct ai_answer *ret,
		      char *err, size_t errlen)
{
	static const char *const headers[] = { "Content-Type: application/json",
					       "Accept: application/json", NULL };
	const struct guard_http_request req = {
		.method = "POST",
		.url = ai->url,
		.headers = headers,
		.body = body,
		.body_len = strlen(body),
		.timeout_ms = timeout_ms,
		.max_redirects = 0,
		.max_response_bytes = AI_REPLY_MAX,
		.ca_file = ai->cfg->ai_model.ca_file,
		/* ai.model.endpoint: a private name start-up admitted passes (docs/airgap.md) */
		.configured_endpoint = true,
	};
	struct guard_http_response resp = { 0 };
	char why[GUARD_ERR_MAX] = "";
	int r = guard_http_do(ai->policy, &req, &resp, why, sizeof(why));

	if (r == -EFBIG)
		return ai_fail(err, errlen, r,
			       "the model runtime at %s answered more than %d bytes", ai->host,
			       AI_REPLY_MAX);
	if (r < 0)
		return ai_fail(err, errlen, r, "the model runtime at %s: %s", ai->host, why);
	if (resp.status < 200 || resp.status > 299) {
		r = ai_fail(err, errlen, -EIO, "the model runtime at %s answered HTTP %ld",
			    ai->host, resp.status);
	} else {
		r = ai_runtime_answer(ai->runtime, resp.body, resp.body_len, &ret->text,
				      &ret->model, why, sizeof(why));
		if (r < 0)
			ai_fail(err, errlen, r, "the model runtime at %s: %s", ai->host, why);
	}
	guard_http_response_free(&resp);
	return r;
}

int ai_ask(struct ai *ai, const char *tenant_id, const char *question, int64_t timeout_ms,
	   struct ai_answer *ret, char *err, size_t errlen)
{
	struct ai_answer a = { 0 };
	char *q = NULL, *prompt = NULL, *body = NULL;
	int r;

	if (!ai || !ret)
		return -EINVAL;
	if (!ai->enabled)
		return ai_fail(err, errlen, -EOPNOTSUPP, "the Assist service is off");
	r = question_text(question, &q, &a.redacted, err, errlen);
	if (r < 0)
		return r;
	r = prompt_text(ai, tenant_id, q, &prompt, err, errlen);
	free(q);
	if (r >= 0) {
		r = ai_runtime_request(ai->runtime, ai->cfg->ai_model.name, prompt, &body);
		free(prompt);
	}
	if (r < 0) {
		free(body);
		return r;
	}
	r = enter(ai, err, errlen);
	if (r >= 0) {
		if (timeout_ms <= 0 || timeout_ms > AI_TIMEOUT_MS)
			timeout_ms = AI_TIMEOUT_MS;
		r = call_model(ai, body, timeout_ms, &a, err, errlen);
		leave(ai);
	}
	free(body);
	if (r >= 0 && !a.model && !(a.model = strdup(ai->cfg->ai_model.name)))
		r = -ENOMEM;
	if (r < 0) {
		ai_answer_clear(&a);
		return r;
	}
	*ret = a;
	return 0;
}
