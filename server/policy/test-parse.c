/*
 * Unit tests for the policy parser: a table of documents that must be rejected, each with
 * the exact message PutPolicy would return (the JSON path and what is wrong), and a table
 * of documents that must be accepted. Documents are written with ' for " to stay readable.
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

#include "policy.h"
#include "test-actions.h"

static char *dq(const char *s)
{
	char *r = strdup(s);

	for (char *p = r; *p; p++)
		if (*p == '\'')
			*p = '"';
	return r;
}

static int parse(const char *doc, struct policy_doc **ret, char *err)
{
	char *json = dq(doc);
	int r = policy_parse(json, test_actions, TEST_N_ACTIONS, ret, err, POLICY_ERR_MAX);

	free(json);
	return r;
}

#define R(x) "{'rules': [" x "]}"
#define RULE(extra) \
	"{'effect': 'allow', 'actions': ['CA.GetOwner'], 'resources': ['owner/x']" extra "}"
#define ISSUE(effect, cond)                                                    \
	"{'effect': '" effect                                                  \
	"', 'actions': ['CA.IssueCertificate'], 'resources': ['identity/*'], " \
	"'conditions': " cond "}"

static const struct {
	const char *doc;
	const char *err;
} bad[] = {
	/* JSON and structure */
	/* jansson's own words, kept as they are (not passed through dq) */
	{ "", "document: invalid JSON at line 1 column 0: '[' or '{' expected near end of file" },
	{ "{'rules': [], 'rules': []}",
	  "document: invalid JSON at line 1 column 21: duplicate object key near '\"rules\"'" },
	{ R("{'effect': 'allow', 'effect': 'deny'}"),
	  "document: invalid JSON at line 1 column 39: duplicate object key near '\"effect\"'" },
	{ "[]", "document: expected a JSON object" },
	{ "{}", "rules: required" },
	{ "{'rules': {}}", "rules: expected an array" },
	{ "{'rulez': []}", "rulez: unknown field" },
	{ "{'a b': 1}", "['a b']: unknown field" },
	{ "{'rules': [{'\\u00e9': 1}]}", "rules[0]['\?\?']: unknown field" },
	{ "{'rules': [], 'description': 3}", "description: expected a string" },
	{ R("1"), "rules[0]: expected an object" },
	{ R(RULE("") ", " RULE("") ", {'efect': 'allow'}"), "rules[2].efect: unknown field" },
	{ R("{'actions': ['*'], 'resources': ['*']}"), "rules[0].effect: required" },
	{ R("{'effect': 'alow', 'actions': ['*'], 'resources': ['*']}"),
	  "rules[0].effect: expected 'allow' or 'deny', not 'alow'" },
	{ R("{'effect': true, 'actions': ['*'], 'resources': ['*']}"),
	  "rules[0].effect: expected 'allow' or 'deny'" },
	{ R("{'effect': 'allow', 'resources': ['*']}"), "rules[0].actions: required" },
	{ R("{'effect': 'allow', 'actions': '*', 'resources': ['*']}"),
	  "rules[0].actions: expected an array of strings" },
	{ R("{'effect': 'allow', 'actions': [], 'resources': ['*']}"),
	  "rules[0].actions: must not be empty" },
	{ R("{'effect': 'allow', 'actions': ['*', 7], 'resources': ['*']}"),
	  "rules[0].actions[1]: expected a string" },
	{ R("{'effect': 'allow', 'actions': ['*']}"), "rules[0].resources: required" },
	{ R(RULE(", 'description': ['x']")), "rules[0].description: expected a string" },
	/* actions */
	{ R("{'effect': 'allow', 'actions': ['CA.CreateOwnr'], 'resources': ['*']}"),
	  "rules[0].actions[0]: unknown action 'CA.CreateOwnr'" },
	{ R("{'effect': 'allow', 'actions': ['CA.GetOwner', 'Vault.*'], 'resources': ['*']}"),
	  "rules[0].actions[1]: unknown service 'Vault' in action 'Vault.*'" },
	{ R("{'effect': 'allow', 'actions': ['Kms.Sign'], 'resources': ['*']}"),
	  "rules[0].actions[0]: unknown service 'Kms' in action 'Kms.Sign'" },
	{ R("{'effect': 'allow', 'actions': ['trstctl.v1.CA.GetOwner'], 'resources': ['*']}"),
	  "rules[0].actions[0]: malformed action 'trstctl.v1.CA.GetOwner': expected Service.Method, Service.* or *" },
	{ R("{'effect': 'allow', 'actions': ['CA.Get*'], 'resources': ['*']}"),
	  "rules[0].actions[0]: malformed action 'CA.Get*': expected Service.Method, Service.* or *" },
	{ R("{'effect': 'allow', 'actions': ['CA'], 'resources': ['*']}"),
	  "rules[0].actions[0]: malformed action 'CA': expected Service.Method, Service.* or *" },
	{ R("{'effect': 'allow', 'actions': ['*.GetOwner'], 'resources': ['*']}"),
	  "rules[0].actions[0]: malformed action '*.GetOwner': expected Service.Method, Service.* or *" },
	/* globs */
	{ R("{'effect': 'allow', 'actions': ['*'], 'resources': ['owner/x', 'secret/***']}"),
	  "rules[0].resources[1]: malformed glob 'secret/***': '**' must be a whole path segment" },
	{ R("{'effect': 'allow', 'actions': ['*'], 'resources': ['a**b']}"),
	  "rules[0].resources[0]: malformed glob 'a**b': '**' must be a whole path segment" },
	{ R("{'effect': 'allow', 'actions': ['*'], 'resources': ['secret/**x/y']}"),
	  "rules[0].resources[0]: malformed glob 'secret/**x/y': '**' must be a whole path segment" },
	{ R("{'effect': 'allow', 'actions': ['*'], 'resources': ['secret//x']}"),
	  "rules[0].resources[0]: malformed glob 'secret//x': empty path segment" },
	{ R("{'effect': 'allow', 'actions': ['*'], 'resources': ['/secret']}"),
	  "rules[0].resources[0]: malformed glob '/secret': empty path segment" },
	{ R("{'effect': 'allow', 'actions': ['*'], 'resources': ['secret/']}"),
	  "rules[0].resources[0]: malformed glob 'secret/': empty path segment" },
	{ R("{'effect': 'allow', 'actions': ['*'], 'resources': ['']}"),
	  "rules[0].resources[0]: malformed glob '': empty pattern" },
	{ R("{'effect': 'allow', 'actions': ['*'], 'resources': ['owner/a?']}"),
	  "rules[0].resources[0]: malformed glob 'owner/a?': unsupported character (only * and ** are special)" },
	{ R("{'effect': 'allow', 'actions': ['*'], 'resources': ['owner/a b']}"),
	  "rules[0].resources[0]: malformed glob 'owner/a b': space or control character" },
	/* conditions */
	{ R(RULE(", 'conditions': []")), "rules[0].conditions: expected an object" },
	{ R(RULE(", 'conditions': {'max_ttl': 5}")), "rules[0].conditions.max_ttl: unknown field" },
	{ R("{'effect': 'allow', 'actions': ['CA.TransitionIdentity'], 'resources': ['*'], "
	    "'conditions': {'to_states': ['issued', 'isued']}}"),
	  "rules[0].conditions.to_states[1]: unknown state 'isued' (accepted: requested, issued, deployed, renewing, revoked, retired)" },
	{ R("{'effect': 'allow', 'actions': ['CA.*'], 'resources': ['*'], "
	    "'conditions': {'to_states': ['issued']}}"),
	  "rules[0].conditions.to_states: applies only to CA.TransitionIdentity, not to action 'CA.*'" },
	{ R("{'effect': 'allow', 'actions': ['CA.TransitionIdentity'], 'resources': ['*'], "
	    "'conditions': {'to_states': []}}"),
	  "rules[0].conditions.to_states: must not be empty" },
	{ R(ISSUE("allow", "{'key_types': ['rsa-1024']}")),
	  "rules[0].conditions.key_types[0]: unknown key type 'rsa-1024' (accepted: ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096)" },
	{ R(ISSUE("allow", "{'max_ttl_seconds': '3600'}")),
	  "rules[0].conditions.max_ttl_seconds: expected a positive integer of at most 3153600000" },
	{ R(ISSUE("allow", "{'max_ttl_seconds': 0}")),
	  "rules[0].conditions.max_ttl_seconds: expected a positive integer of at most 3153600000" },
	{ R(ISSUE("deny", "{'max_ttl_seconds': 60}")),
	  "rules[0].conditions.max_ttl_seconds: not allowed on a deny rule (limit TTLs with allow rules)" },
	{ R("{'effect': 'allow', 'actions': ['Secrets.GetSecret'], 'resources': ['*'], "
	    "'conditions': {'key_types': ['ed25519']}}"),
	  "rules[0].conditions.key_types: applies only to CA.CreateIdentity, CA.IssueCertificate and CA.TransitionIdentity, not to action 'Secrets.GetSecret'" },
	{ R(ISSUE("allow", "{'dns_names': ['*.internal', 'a..b']}")),
	  "rules[0].conditions.dns_names[1]: malformed DNS name pattern 'a..b': empty label" },
	{ R(ISSUE("allow", "{'dns_names': ['api-*.internal']}")),
	  "rules[0].conditions.dns_names[0]: malformed DNS name pattern 'api-*.internal': '*' must be the whole leftmost label, followed by a domain" },
	{ R(ISSUE("allow", "{'dns_names': ['*']}")),
	  "rules[0].conditions.dns_names[0]: malformed DNS name pattern '*': '*' must be the whole leftmost label, followed by a domain" },
	{ R(ISSUE("allow", "{'dns_names': ['*.']}")),
	  "rules[0].conditions.dns_names[0]: malformed DNS name pattern '*.': empty label" },
	{ R(ISSUE("allow", "{'dns_names': ['a/b']}")),
	  "rules[0].conditions.dns_names[0]: malformed DNS name pattern 'a/b': only letters, digits, '-', '_' and '.' are allowed" },
	{ R(ISSUE("allow", "{'dns_names': 'x'}")),
	  "rules[0].conditions.dns_names: expected an array of strings" },
	{ R(ISSUE("allow", "{'ip_addresses': ['10.0.0.1']}")),
	  "rules[0].conditions.ip_addresses[0]: malformed CIDR '10.0.0.1': missing '/<length>' (write 10.0.0.0/8, or 10.0.0.1/32 for one address)" },
	{ R(ISSUE("allow", "{'ip_addresses': ['10.0.0.0/8', '10.0.0.0/33']}")),
	  "rules[0].conditions.ip_addresses[1]: malformed CIDR '10.0.0.0/33': prefix length out of range" },
	{ R(ISSUE("allow", "{'ip_addresses': ['*.internal/8']}")),
	  "rules[0].conditions.ip_addresses[0]: malformed CIDR '*.internal/8': not an IP address before '/'" },
	{ R(ISSUE("allow", "{'ip_addresses': ['10.0.0.0/8:443']}")),
	  "rules[0].conditions.ip_addresses[0]: malformed CIDR '10.0.0.0/8:443': a port is not allowed" },
	{ R(ISSUE("allow", "{'ip_addresses': []}")),
	  "rules[0].conditions.ip_addresses: must not be empty" },
	{ R(ISSUE("allow", "{'ip_addresses': '10.0.0.0/8'}")),
	  "rules[0].conditions.ip_addresses: expected an array of strings" },
	{ R("{'effect': 'allow', 'actions': ['Secrets.GetSecret'], 'resources': ['*'], "
	    "'conditions': {'ip_addresses': ['10.0.0.0/8']}}"),
	  "rules[0].conditions.ip_addresses: applies only to CA.CreateIdentity, CA.IssueCertificate and CA.TransitionIdentity, not to action 'Secrets.GetSecret'" },
};

static void test_rejects(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct policy_doc *d = NULL;
		char err[POLICY_ERR_MAX];
		char *want =
			strstr(bad[i].err, "invalid JSON") ? strdup(bad[i].err) : dq(bad[i].err);
		int r = parse(bad[i].doc, &d, err);

		if (r != -EINVAL || strcmp(err, want) != 0)
			fail_msg("case %zu: %s\n  got  %d %s\n  want %s", i, bad[i].doc, r, err,
				 want);
		assert_null(d);
		free(want);
	}
}

static const struct {
	const char *doc;
	size_t n_rules;
} good[] = {
	{ "{'rules': []}", 0 },
	{ "{'rules': [], 'description': 'nothing'}", 0 },
	{ R("{'effect': 'allow', 'actions': ['*'], 'resources': ['*'], 'description': 'all'}"), 1 },
	{ R("{'effect': 'deny', 'actions': ['Secrets.*', 'CA.CreateOwner'], "
	    "'resources': ['secret/offline/**', 'identity/*', 'owner/airgap-*', 'policy/*', 'audit', "
	    "'guard', '**', 'a/**/b', 'x*y*z/*']}, " RULE("")),
	  2 },
	{ R("{'effect': 'allow', 'actions': ['CA.TransitionIdentity'], 'resources': ['identity/*'], "
	    "'conditions': {'to_states': ['requested', 'retired'], 'dns_names': ['*.internal', "
	    "'Offline-API.internal'], 'max_ttl_seconds': 2592000, 'key_types': ['ecdsa-p256']}}"),
	  1 },
	{ R(ISSUE("deny", "{'dns_names': ['*.prod.example'], 'key_types': ['rsa-2048']}")), 1 },
	{ R(ISSUE("allow", "{'dns_names': ['*.internal'], 'ip_addresses': ['10.0.0.0/8', 'fd00::/8', '::ffff:10.0.0.0/104']}")), 1 },
	{ R(ISSUE("deny", "{'ip_addresses': ['0.0.0.0/0', '::/0']}")), 1 },
	{ R(RULE(", 'conditions': {}")), 1 },
};

static void test_accepts(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct policy_doc *d = NULL;
		char err[POLICY_ERR_MAX];
		int r = parse(good[i].doc, &d, err);

		if (r != 0)
			fail_msg("case %zu: %s\n  got %d %s", i, good[i].doc, r, err);
		assert_int_equal(policy_doc_n_rules(d), good[i].n_rules);
		d = policy_doc_free(d);
		assert_null(d);
	}
}

static void test_misc(void **state)
{
	struct policy_doc *d = NULL;
	char err[8], *big;

	(void)state;
	/* a short error buffer is truncated, never overrun */
	assert_int_equal(policy_parse("{}", test_actions, TEST_N_ACTIONS, &d, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "rules: ");
	assert_int_equal(policy_parse("{}", test_actions, TEST_N_ACTIONS, &d, NULL, 0), -EINVAL);
	assert_int_equal(policy_parse(NULL, test_actions, TEST_N_ACTIONS, &d, NULL, 0), -EINVAL);
	/* a long value is quoted shortened and printable */
	{
		char e[POLICY_ERR_MAX];

		assert_int_equal(
			parse(R("{'effect': 'allow\\n0123456789012345678901234567890123456789"
				"0123456789', 'actions': ['*'], 'resources': ['*']}"),
			      &d, e),
			-EINVAL);
		assert_string_equal(e, "rules[0].effect: expected \"allow\" or \"deny\", not "
				       "\"allow?012345678901234567890123456789012345678901...\"");
	}
	big = calloc(1, (1u << 20) + 2);
	memset(big, ' ', (1u << 20) + 1);
	assert_int_equal(policy_parse(big, test_actions, TEST_N_ACTIONS, &d, NULL, 0), -EINVAL);
	free(big);
	assert_null(d);

	assert_true(policy_name_valid("ops"));
	assert_true(policy_name_valid("team-a.read_only"));
	assert_false(policy_name_valid(""));
	assert_false(policy_name_valid("-x"));
	assert_false(policy_name_valid("a/b"));
	assert_false(policy_name_valid("a b"));
	assert_false(policy_name_valid(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_accepts),
		cmocka_unit_test(test_misc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
