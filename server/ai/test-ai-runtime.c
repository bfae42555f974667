/*
 * Unit tests of the model runtimes' wire formats, table-driven: the URL an endpoint turns
 * into, the exact request bodies, and replies of the right shape, the wrong shape, empty
 * answers and bytes that are not JSON (whose contents never reach the message).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ai.h"

static void test_parse_and_url(void **state)
{
	static const struct {
		enum ai_runtime rt;
		const char *endpoint, *want;
	} cases[] = {
		{ AI_RUNTIME_OLLAMA, "http://127.0.0.1:11434",
		  "http://127.0.0.1:11434/api/generate" },
		{ AI_RUNTIME_OLLAMA, "http://ollama.ai.svc:11434/",
		  "http://ollama.ai.svc:11434/api/generate" },
		{ AI_RUNTIME_OLLAMA, "http://h:1/api/generate", "http://h:1/api/generate" },
		{ AI_RUNTIME_VLLM, "https://10.0.0.5", "https://10.0.0.5/v1/chat/completions" },
		{ AI_RUNTIME_VLLM, "https://10.0.0.5/v1/chat/completions",
		  "https://10.0.0.5/v1/chat/completions" },
		{ AI_RUNTIME_VLLM, "https://[::1]:8000/custom", "https://[::1]:8000/custom" },
	};
	enum ai_runtime rt;
	char *url = NULL;

	(void)state;
	assert_int_equal(ai_runtime_parse("ollama", &rt), 0);
	assert_int_equal(rt, AI_RUNTIME_OLLAMA);
	assert_int_equal(ai_runtime_parse("vllm", &rt), 0);
	assert_int_equal(rt, AI_RUNTIME_VLLM);
	assert_int_equal(ai_runtime_parse("Ollama", &rt), -EINVAL);
	assert_int_equal(ai_runtime_parse(NULL, &rt), -EINVAL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(ai_runtime_url(cases[i].rt, cases[i].endpoint, &url), 0);
		assert_string_equal(url, cases[i].want);
		free(url);
	}
	assert_int_equal(ai_runtime_url(AI_RUNTIME_OLLAMA, "no-scheme", &url), -EINVAL);
}

static void test_request(void **state)
{
	char *body = NULL;

	(void)state;
	assert_int_equal(ai_runtime_request(AI_RUNTIME_OLLAMA, "llama3.1", "say \"hi\"\n", &body),
			 0);
	assert_string_equal(body, "{\"model\":\"llama3.1\",\"prompt\":\"say \\\"hi\\\"\\n\","
				  "\"stream\":false}");
	free(body);
	assert_int_equal(ai_runtime_request(AI_RUNTIME_VLLM, "m", "q", &body), 0);
	assert_string_equal(body, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
				  "\"content\":\"q\"}],\"stream\":false}");
	free(body);
	assert_int_equal(ai_runtime_request(AI_RUNTIME_OLLAMA, "m", "bad \xff utf-8", &body),
			 -EINVAL);
}

static void test_answer(void **state)
{
	static const struct {
		enum ai_runtime rt;
		const char *body;
		int r;
		const char *answer, *model;
	} cases[] = {
		{ AI_RUNTIME_OLLAMA,
		  "{\"model\":\"llama3\",\"response\":\" two \\n\",\"done\":true}", 0, "two",
		  "llama3" },
		{ AI_RUNTIME_OLLAMA, "{\"response\":\"ok\"}", 0, "ok", NULL },
		{ AI_RUNTIME_VLLM,
		  "{\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
		  "\"content\":\"yes\"}}]}",
		  0, "yes", "m" },
		{ AI_RUNTIME_OLLAMA, "SECRETBYTES not json", -EPROTO, NULL, NULL },
		{ AI_RUNTIME_OLLAMA, "[\"SECRETBYTES\"]", -EPROTO, NULL, NULL },
		{ AI_RUNTIME_OLLAMA, "{\"response\":5}", -EPROTO, NULL, NULL },
		{ AI_RUNTIME_OLLAMA, "{\"response\":\" \\n \"}", -EPROTO, NULL, NULL },
		{ AI_RUNTIME_OLLAMA, "{\"response\":\"a\",\"response\":\"b\"}", -EPROTO, NULL,
		  NULL },
		{ AI_RUNTIME_VLLM, "{\"choices\":[]}", -EPROTO, NULL, NULL },
		{ AI_RUNTIME_VLLM, "{\"choices\":[{\"message\":{\"content\":null}}]}", -EPROTO,
		  NULL, NULL },
		{ AI_RUNTIME_VLLM, "{\"response\":\"ollama's shape\"}", -EPROTO, NULL, NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *a = NULL, *m = NULL, err[AI_ERR_MAX] = "";
		int r = ai_runtime_answer(cases[i].rt, cases[i].body, strlen(cases[i].body), &a, &m,
					  err, sizeof(err));

		if (r != cases[i].r)
			fail_msg("case %zu: %d, want %d (%s)", i, r, cases[i].r, err);
		if (r == 0) {
			assert_string_equal(a, cases[i].answer);
			if (cases[i].model)
				assert_string_equal(m, cases[i].model);
			else
				assert_null(m);
		} else {
			assert_true(strlen(err) > 0);
			assert_null(strstr(err, "SECRETBYTES"));
		}
		free(a);
		free(m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_and_url),
		cmocka_unit_test(test_request),
		cmocka_unit_test(test_answer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
