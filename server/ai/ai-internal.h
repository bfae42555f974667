#pragma once
/* Inside server/ai only: the service's state, shared by ai.c, ai-facts.c and ai_rpc.c. */
#include <pthread.h>
#include <stdbool.h>

#include "ai.h"

struct ai {
	const struct cfg *cfg;
	struct guard_policy *policy;
	struct ca_service *ca;
	struct audit *audit;
	bool enabled; /* ai.enable_api */
	enum ai_runtime runtime;
	char *url;	      /* the URL requests are POSTed to (never logged whole) */
	char host[256];	      /* its host, for messages */
	pthread_mutex_t lock; /* inflight */
	int inflight;	      /* questions at the model now, <= AI_INFLIGHT_MAX */
};

/* Writes the message into err (when err and errlen) and returns r (ai-runtime.c). */
int ai_fail(char *err, size_t errlen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static inline struct ca_service *ai_ca(struct ai *ai)
{
	return ai->ca;
}

static inline struct audit *ai_audit(struct ai *ai)
{
	return ai->audit;
}
