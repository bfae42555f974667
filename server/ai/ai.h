#pragma once
/*
 * ai: the Assist service (trstctl.v1.Assist/Ask, docs/api.md "Assist"). Off unless
 * ai.enable_api (then Ask answers FAILED_PRECONDITION saying how to turn it on); on, it
 * needs a local model (ai.model.mode=local: cfg refuses anything else, and cloud models are
 * refused under air-gap anyway). A question is answered from facts of the caller's
 * tenant: identities by state, current certificates and those expiring within 30 days
 * (the soonest by name), and the denied calls among the last 10,000 audit records (counts
 * by type, the newest few). The prompt is the facts plus the question, redacted; it goes
 * to the model runtime through the guarded HTTP client (guard.h), 30 s and 1 MiB at most.
 *
 * What never enters a prompt: secret values (the facts never read them), tokens, PEM
 * blocks, long base64 or hex runs, and the values of `password=`-like pairs (the
 * redactor, ai-redact.c). A question that still holds secret-like material after
 * redaction (a high-entropy word) is refused, not sent.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg;
struct guard_policy;
struct ca_service;
struct audit;
struct rpc_server;
struct ai; /* the service of one server */

#define AI_TIMEOUT_MS 30000		/* one model request, connection included */
#define AI_REPLY_MAX (1024 * 1024)	/* bytes of a model's reply */
#define AI_QUESTION_MAX 4096		/* bytes of a question */
#define AI_INFLIGHT_MAX 4		/* questions at the model at once (more: busy) */
#define AI_EXPIRY_WINDOW_S (30 * 86400) /* "expiring soon" */
#define AI_DENIAL_WINDOW 10000		/* audit records looked at for denials */
#define AI_DENIALS_LISTED 10		/* newest denials named in the facts */
#define AI_ERR_MAX 512
#define AI_REDACTED "[REDACTED]" /* what replaces a redacted value */

/* ---- The redactor (ai-redact.c): pure functions on NUL-terminated text ---------------- */

/*
 * Copies in with every secret-looking piece replaced by AI_REDACTED (a PEM block by
 * "[REDACTED PEM BLOCK]"): PEM blocks (to their END line, or to the end when there is
 * none), tokens (`trst_...` and the well-known prefixes of GitHub, GitLab, Slack, AWS and
 * OpenAI-style keys), the word after `Bearer` (12 characters or more), the value of a
 * `<name>=<value>` or `<name>: <value>` pair whose name contains password, passwd,
 * secret, token, apikey, api_key, api-key, access_key, accesskey, private_key,
 * privatekey, credential or authorization (in any case) or is pwd, pass, auth or key,
 * runs of 32 or more hex digits, and runs of 32 or more base64 characters that mix upper
 * case, lower case and digits other than as words joined by - _ / +. With words_too,
 * also every word ai_secret_like would flag. Redacting the output again changes nothing.
 * Sets *ret_out (malloc'd) and *ret_n (pieces replaced). Returns 0 or -ENOMEM.
 */
int ai_redact(const char *in, bool words_too, char **ret_out, size_t *ret_n);

/*
 * True when text holds a word that looks like a secret: 16 or more characters that are
 * not plain words, numbers or dates joined by - _ . / : @ (host names, resource paths), not
 * a UUID and not a redaction marker, with at least three of lower case, upper case, digits
 * and other characters and a digit, and 3 or more bits of entropy per character; or 24 or
 * more characters with 4 or more bits per character.
 */
bool ai_secret_like(const char *text);

/* ---- Model runtimes (ai-runtime.c): the wire format of each --------------------------- */

enum ai_runtime {
	AI_RUNTIME_OLLAMA, /* POST {"model","prompt","stream":false}; the reply's "response" */
	AI_RUNTIME_VLLM,   /* OpenAI chat: {"model","messages":[...],"stream":false};
			    * the reply's choices[0].message.content */
};

/* "ollama" or "vllm"; -EINVAL otherwise. */
int ai_runtime_parse(const char *name, enum ai_runtime *ret);
/*
 * The URL to POST to: endpoint as it is, or with the runtime's usual path appended when
 * it has none ("/api/generate", "/v1/chat/completions"). Sets *ret_url (malloc'd).
 */
int ai_runtime_url(enum ai_runtime rt, const char *endpoint, char **ret_url);
/* The request body (JSON) for model and prompt. Sets *ret_body (malloc'd). */
int ai_runtime_request(enum ai_runtime rt, const char *model, const char *prompt, char **ret_body);
/*
 * Reads a reply body (len bytes, outside input): the answer text (malloc'd, surrounding
 * white space trimmed, not empty) and, when the reply names one, the model (malloc'd, or
 * NULL). -EPROTO with a message in err (no byte of the reply in it) when the body is not
 * JSON of the runtime's shape.
 */
int ai_runtime_answer(enum ai_runtime rt, const char *body, size_t len, char **ret_answer,
		      char **ret_model, char *err, size_t errlen);

/* ---- The service (ai.c, ai-facts.c) ---------------------------------------------------- */

/*
 * Opens the service from c->ai_model (c, p, ca and audit are borrowed and must outlive
 * it). With ai.enable_api false it opens an "off" service, whose Ask refuses. On, it
 * refuses (-EINVAL, logged) a mode other than local, and an unreadable ai.model.ca_file.
 */
int ai_open(const struct cfg *c, struct guard_policy *p, struct ca_service *ca, struct audit *audit,
	    struct ai **ret);
struct ai *ai_close(struct ai *ai); /* Accepts NULL, returns NULL. */
bool ai_enabled(const struct ai *ai);

struct ai_answer {
	char *text;	 /* malloc'd */
	char *model;	 /* malloc'd: the model that answered */
	size_t redacted; /* pieces of the question replaced before it was sent */
};
void ai_answer_clear(struct ai_answer *a);

/*
 * Answers question (UTF-8, checked by rpc) for tenant_id (NULL: default) within
 * timeout_ms (at most AI_TIMEOUT_MS). Returns 0 and fills *ret, or -errno with a message
 * that is safe to show in err (AI_ERR_MAX bytes; never the prompt or the reply):
 * -EINVAL (empty or too long question), -EACCES (secret-like material remains after
 * redaction: not sent), -EUSERS (AI_INFLIGHT_MAX questions are at the model), -EPERM (the
 * egress policy blocked the endpoint), -ETIMEDOUT, -EIO/-EHOSTUNREACH/-EPROTO/-EFBIG (the
 * runtime failed, answered an error status or a reply that is not of its shape or too
 * big), or a db error reading the facts.
 */
int ai_ask(struct ai *ai, const char *tenant_id, const char *question, int64_t timeout_ms,
	   struct ai_answer *ret, char *err, size_t errlen);

/*
 * The facts of a prompt (ai-facts.c) for tenant_id as text, one fact a line (malloc'd),
 * read now; used by ai_ask, exported for tests.
 */
int ai_facts(struct ai *ai, const char *tenant_id, char **ret_text);

/* gRPC (ai_rpc.c): registers trstctl.v1.Assist on s. ai is borrowed. */
int ai_rpc_register(struct rpc_server *s, struct ai *ai);
