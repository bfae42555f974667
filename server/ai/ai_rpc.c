/*
 * ai_rpc.c: the trstctl.v1.Assist handler (protobuf <-> ai.h). Ask waits on the model, so
 * it runs on the worker pool; the authorizer has already decided Assist.Ask on "assist"
 * (policy/authz.c) when it runs. Off: FAILED_PRECONDITION naming the settings that turn it
 * on. The model's failures are answered with a status that says whose fault it is
 * (UNAVAILABLE: the runtime; DEADLINE_EXCEEDED: it was too slow; FAILED_PRECONDITION: the
 * question or the egress policy) and logged once here, without the question.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ai.h"
#include "assist.pb-c.h"
#include "log.h"
#include "rpc.h"

static const char off_msg[] =
	"the Assist service is off: set TRSTCTL_AI_ENABLE_API=true with a local model "
	"(TRSTCTL_AI_MODEL_MODE=local, TRSTCTL_AI_MODEL_RUNTIME=ollama or vllm, "
	"TRSTCTL_AI_MODEL_ENDPOINT, TRSTCTL_AI_MODEL_NAME) and restart the server";

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The status of a failed ai_ask. */
static int answer_failure(struct rpc_call *call, int r, const char *err)
{
	enum rpc_code code;

	switch (-r) {
	case EINVAL:
		code = RPC_INVALID_ARGUMENT;
		break;
	case EACCES:
	case EPERM:
		code = RPC_FAILED_PRECONDITION;
		break;
	case EUSERS:
		code = RPC_RESOURCE_EXHAUSTED;
		break;
	case ETIMEDOUT:
		code = RPC_DEADLINE_EXCEEDED;
		break;
	case EIO:
	case EPROTO:
	case EFBIG:
	case EHOSTUNREACH:
	case ECONNREFUSED:
	case ELOOP:
		code = RPC_UNAVAILABLE;
		break;
	default:
		return rpc_call_fail(call, r, err);
	}
	if (code == RPC_UNAVAILABLE || code == RPC_DEADLINE_EXCEEDED || r == -EPERM)
		log_warn("Assist question not answered", "error", "%s", err);
	return rpc_call_error(call, code, "%s", *err ? err : strerror(-r));
}

static int ask(struct rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage **ret_resp,
	       void *user)
{
	const Trstctl__V1__AskRequest *q = (const void *)req;
	struct ai *ai = user;
	Trstctl__V1__AskResponse *m;
	struct ai_answer a;
	char err[AI_ERR_MAX] = "";
	int64_t start = now_ms(), left = rpc_call_remaining_ms(call), timeout = AI_TIMEOUT_MS;
	int r;

	if (!ai_enabled(ai))
		return rpc_call_error(call, RPC_FAILED_PRECONDITION, "%s", off_msg);
	/* a call deadline shorter than the model's timeout bounds the request, less a margin
	 * for the reply (at least 1 ms: 0 would mean the default) */
	if (left < AI_TIMEOUT_MS + 200)
		timeout = left > 201 ? left - 200 : 1;
	r = ai_ask(ai, NULL, q->question, timeout, &a, err, sizeof(err));
	if (r < 0)
		return answer_failure(call, r, err);
	m = (void *)rpc_call_new_message(call, &trstctl__v1__ask_response__descriptor);
	m->answer = rpc_call_strdup(call, a.text);
	m->model = rpc_call_strdup(call, a.model);
	m->redacted = (int32_t)a.redacted;
	log_info("Assist question answered", "model", "%s", a.model, "redacted", "%zu", a.redacted,
		 "duration_ms", "%lld", (long long)(now_ms() - start));
	ai_answer_clear(&a);
	*ret_resp = &m->base;
	return 0;
}

int ai_rpc_register(struct rpc_server *s, struct ai *ai)
{
	const ProtobufCServiceDescriptor *d = &trstctl__v1__assist__descriptor;
	/* Borrowed by the server for its lifetime; the same for every server. */
	static struct rpc_method_handler h[4];

	if (!s || !ai)
		return -EINVAL;
	if (d->n_methods > sizeof(h) / sizeof(h[0]))
		return -E2BIG;
	for (unsigned int i = 0; i < d->n_methods; i++)
		if (!strcmp(d->methods[i].name, "Ask"))
			h[i] = (struct rpc_method_handler){ .unary = ask };
	return rpc_server_add_service(s, d, h, ai);
}
