/*
 * libFuzzer target for the model runtimes' reply reader (server/ai/ai-runtime.c), which
 * reads bytes a model server sent. The first byte picks the runtime; the rest is the
 * body. Whatever the bytes: no read out of bounds, err terminated, and an accepted reply
 * gives a non-empty answer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *answer = NULL, *model = NULL, err[AI_ERR_MAX];

	if (size < 1)
		return 0;
	memset(err, 'x', sizeof(err));
	err[sizeof(err) - 1] = 0;
	if (ai_runtime_answer(data[0] & 1 ? AI_RUNTIME_VLLM : AI_RUNTIME_OLLAMA,
			      (const char *)data + 1, size - 1, &answer, &model, err,
			      sizeof(err)) == 0 &&
	    (!answer || !*answer))
		abort();
	if (memchr(err, '\0', sizeof(err)) == NULL)
		abort();
	free(answer);
	free(model);
	return 0;
}
