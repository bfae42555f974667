/*
 * libFuzzer target for the prompt redactor (server/ai/ai-redact.c), which reads the
 * caller's question. The first byte picks the words pass; the rest is the text (cut at its
 * first NUL, as a protobuf string cannot hold one). Whatever the bytes: no read out of
 * bounds, a count that matches the markers written, and redacting the output again with
 * the same pass changes nothing (a marker is never redacted again).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ai.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in, *out = NULL, *again = NULL;
	size_t n = 0, n2 = 0;
	bool words;

	if (size < 1)
		return 0;
	words = data[0] & 1;
	in = fuzz_cstring(data + 1, size - 1, 2 * AI_QUESTION_MAX);
	if (!in)
		return 0;
	if (ai_redact(in, words, &out, &n) == 0) {
		if (n > 0 && !strstr(out, "[REDACTED"))
			abort();
		if (ai_redact(out, words, &again, &n2) == 0 && (n2 != 0 || strcmp(out, again)))
			abort();
		(void)ai_secret_like(out);
	}
	free(again);
	free(out);
	free(in);
	return 0;
}
