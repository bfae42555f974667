/*
 * libFuzzer target for the policy document parser (policy_parse, server/policy/policy.c):
 * PutPolicy hands it the caller's JSON. The input, cut at its first NUL, is parsed against
 * the server's action list. Properties:
 *   - a refusal is -EINVAL with a one-line message (never empty, no newline), or -ENOMEM;
 *   - an accepted document goes into a set and decides a fixed spread of requests (every
 *     action, a few resources, with and without the issuance attributes) without fault:
 *     an allow names this document and a rule it has, every reason is set;
 *   - the gate never denies what the full check allows (policy.h: a gate pass can never
 *     grant more than the handler re-checks, so the converse must hold too).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_POLICY_SET
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const resources[] = {
	"owner/x", "identity/web", "secret/offline/db/password", "policy/p", "audit", "guard", "",
};
static const char *const dns[] = { "web.internal", "a.b.example.com" };
static const char *const ips[] = { "10.1.2.3", "fd00::7" };

static void decide(const struct policy_set *set, const struct policy_doc *doc,
		   const struct policy_request *q, struct policy_decision *d)
{
	static const char *const names[] = { "fz" };

	if (policy_eval(set, names, 1, q, d) < 0)
		abort();
	if (!memchr(d->reason, '\0', sizeof(d->reason)) || !d->reason[0])
		abort();
	if (d->allowed && (strcmp(d->matched_policy, "fz") != 0 || d->matched_rule < 0 ||
			   (size_t)d->matched_rule >= policy_doc_n_rules(doc)))
		abort();
}

static void evaluate(const struct policy_set *set, const struct policy_doc *doc)
{
	struct policy_decision full, gate;

	for (size_t a = 0; a < TEST_N_ACTIONS; a++)
		for (size_t r = 0; r < sizeof(resources) / sizeof(resources[0]); r++) {
			struct policy_request q = {
				.action = test_actions[a],
				.resource = resources[r],
				.to_state = "issued",
				.dns_names = dns,
				.n_dns_names = r % 3,
				.ip_addresses = ips,
				.n_ip_addresses = r % 2 + (r == 3),
				.ttl_seconds = r * 86400,
				.key_type = r % 2 ? "ecdsa-p256" : "rsa-2048",
			};

			decide(set, doc, &q, &full);
			q.gate = true;
			decide(set, doc, &q, &gate);
			if (full.allowed && !gate.allowed)
				abort();
		}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint64_t version;
	struct policy_doc *doc = NULL;
	char err[POLICY_ERR_MAX];
	char *json;
	int r;

	json = fuzz_cstring(data, size, 16384);
	if (!json)
		return 0;
	r = policy_parse(json, test_actions, TEST_N_ACTIONS, &doc, err, sizeof(err));
	free(json);
	if (r < 0) {
		if (r != -EINVAL && r != -ENOMEM)
			abort();
		if (!memchr(err, '\0', sizeof(err)) || !err[0] || strchr(err, '\n'))
			abort();
		return 0;
	}
	/* The set takes the document; it stays valid until the next put replaces it. */
	if (policy_set_put(fuzz_policy_set(), "fz", ++version, doc) != 1)
		abort();
	evaluate(fuzz_policy_set(), doc);
	return 0;
}
