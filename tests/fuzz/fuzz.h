#pragma once
/*
 * What the fuzz targets share (tests/fuzz only): the input as a C string, and the policy
 * set of the policy targets.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * A malloc'd copy of the input's size bytes with a NUL after them: C-string readers see it
 * cut at its first NUL, as the server's would. NULL when size is above max (the target's
 * bound; longer inputs teach nothing new) or memory runs out. The caller frees it.
 */
static inline char *fuzz_cstring(const uint8_t *data, size_t size, size_t max)
{
	char *s = size <= max ? malloc(size + 1) : NULL;

	if (!s)
		return NULL;
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#ifdef FUZZ_POLICY_SET
#include "policy.h"
#include "test-actions.h"

/* One set for the process, over the server's actions (test-actions.h). */
static inline struct policy_set *fuzz_policy_set(void)
{
	static struct policy_set *set;

	if (!set && policy_set_new(test_actions, TEST_N_ACTIONS, &set) < 0)
		abort();
	return set;
}
#endif
