/*
 * Unit tests for evaluation and the policy set: a table of decisions over a few policies
 * (deny overrides, `*` against `**`, the lone `*`, conditions on target states, DNS name
 * patterns, TTL and key type limits, the gate check, no match, unknown actions), the set's
 * put/replace/remove/version rules, and readers racing a writer.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"
#include "test-actions.h"

static const struct {
	const char *name;
	const char *doc;
} docs[] = {
	{ "ops",
	  "{'rules': ["
	  "{'effect': 'allow', 'actions': ['Secrets.*'], 'resources': ['secret/offline/**']},"
	  "{'effect': 'deny', 'actions': ['Secrets.GetSecret'], 'resources': ['secret/offline/root/*']},"
	  "{'effect': 'allow', 'actions': ['CA.CreateOwner', 'CA.GetOwner'], 'resources': ['owner/airgap-*']},"
	  "{'effect': 'allow', 'actions': ['CA.GetIdentity'], 'resources': ['identity/*']}]}" },
	{ "issuer",
	  "{'rules': ["
	  "{'effect': 'allow', 'actions': ['CA.TransitionIdentity'], 'resources': ['identity/*'], "
	  " 'conditions': {'to_states': ['requested']}},"
	  "{'effect': 'allow', 'actions': ['CA.TransitionIdentity'], 'resources': ['identity/web-*'], "
	  " 'conditions': {'to_states': ['issued', 'renewing'], 'dns_names': ['*.internal', "
	  " 'offline-api.internal'], 'max_ttl_seconds': 2592000, 'key_types': ['ecdsa-p256', 'ed25519']}},"
	  "{'effect': 'deny', 'actions': ['CA.TransitionIdentity'], 'resources': ['identity/*'], "
	  " 'conditions': {'to_states': ['revoked']}},"
	  "{'effect': 'deny', 'actions': ['CA.IssueCertificate'], 'resources': ['identity/*'], "
	  " 'conditions': {'dns_names': ['*.prod.example']}},"
	  "{'effect': 'allow', 'actions': ['CA.IssueCertificate'], 'resources': ['identity/**'], "
	  " 'conditions': {'dns_names': ['*.internal']}}]}" },
	{ "ipper",
	  "{'rules': ["
	  "{'effect': 'allow', 'actions': ['CA.IssueCertificate'], 'resources': ['identity/dns-*'], "
	  " 'conditions': {'dns_names': ['*.internal']}},"
	  "{'effect': 'allow', 'actions': ['CA.IssueCertificate'], 'resources': ['identity/ip-*'], "
	  " 'conditions': {'ip_addresses': ['10.0.0.0/8', 'fd00::/8']}},"
	  "{'effect': 'allow', 'actions': ['CA.IssueCertificate'], 'resources': ['identity/both-*'], "
	  " 'conditions': {'dns_names': ['*.internal'], 'ip_addresses': ['192.168.1.0/24']}},"
	  "{'effect': 'deny', 'actions': ['CA.IssueCertificate'], 'resources': ['identity/**'], "
	  " 'conditions': {'ip_addresses': ['10.9.0.0/16']}},"
	  "{'effect': 'allow', 'actions': ['CA.IssueCertificate'], 'resources': ['identity/any-*'], "
	  " 'conditions': {'max_ttl_seconds': 3600}}]}" },
	{ "reader", "{'rules': [{'effect': 'allow', 'actions': ['CA.GetOwner', 'CA.ListOwners'], "
		    "'resources': ['*']}]}" },
	{ "no-secrets",
	  "{'rules': [{'effect': 'deny', 'actions': ['Secrets.*'], 'resources': ['**']}]}" },
};

#define N(...)                                  \
	((const char *const[]){ __VA_ARGS__ }), \
		(sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(char *))
#define DNS(...)                                           \
	.dns_names = (const char *const[]){ __VA_ARGS__ }, \
	.n_dns_names = (sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(char *))
#define IPS(...)                                              \
	.ip_addresses = (const char *const[]){ __VA_ARGS__ }, \
	.n_ip_addresses = (sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(char *))
#define ISSUE(res) .action = "CA.IssueCertificate", .resource = "identity/" res
/* WEB() is a valid issuance request that each case changes in one field. */
#pragma GCC diagnostic ignored "-Woverride-init"
#define WEB(...)                                                                               \
	.action = "CA.TransitionIdentity", .resource = "identity/web-1", .to_state = "issued", \
	.ttl_seconds = 3600, .key_type = "ecdsa-p256", __VA_ARGS__

static const struct {
	const char *const *names;
	size_t n_names;
	struct policy_request req;
	const char *reason; /* says allowed or denied, and by which policy and rule */
} cases[] = {
	{ N("ops"),
	  { .action = "Secrets.GetSecret", .resource = "secret/offline/db/password" },
	  "allowed by policy ops rule 0" },
	{ N("ops"),
	  { .action = "Secrets.RotateSecret", .resource = "secret/offline" },
	  "allowed by policy ops rule 0" },
	{ N("ops"),
	  { .action = "Secrets.GetSecret", .resource = "secret/offline/root/key" },
	  "denied by policy ops rule 1" },
	{ N("ops"),
	  { .action = "Secrets.RotateSecret", .resource = "secret/offline/root/key" },
	  "allowed by policy ops rule 0" },
	{ N("ops"),
	  { .action = "Secrets.GetSecret", .resource = "secret/offline/root/a/b" },
	  "allowed by policy ops rule 0" },
	{ N("ops"),
	  { .action = "Secrets.GetSecret", .resource = "secret/online/x" },
	  "no policy allows Secrets.GetSecret on secret/online/x" },
	{ N("ops"),
	  { .action = "Secrets.GetSecret", .resource = "secret/offlinex" },
	  "no policy allows Secrets.GetSecret on secret/offlinex" },
	{ N("ops"),
	  { .action = "CA.CreateOwner", .resource = "owner/airgap-east" },
	  "allowed by policy ops rule 2" },
	{ N("ops"),
	  { .action = "CA.CreateOwner", .resource = "owner/airgap-" },
	  "allowed by policy ops rule 2" },
	{ N("ops"),
	  { .action = "CA.CreateOwner", .resource = "owner/airgap-east/x" },
	  "no policy allows CA.CreateOwner on owner/airgap-east/x" },
	{ N("ops"),
	  { .action = "CA.CreateOwner", .resource = "owner/prod" },
	  "no policy allows CA.CreateOwner on owner/prod" },
	{ N("ops"),
	  { .action = "CA.ListOwners", .resource = "owner/airgap-east" },
	  "no policy allows CA.ListOwners on owner/airgap-east" },
	{ N("ops"),
	  { .action = "CA.GetIdentity", .resource = "identity/a/b" },
	  "no policy allows CA.GetIdentity on identity/a/b" },
	{ N("ops", "no-secrets"),
	  { .action = "Secrets.GetSecret", .resource = "secret/offline/x" },
	  "denied by policy no-secrets rule 0" },
	{ N("ops", "admin"),
	  { .action = "Secrets.GetSecret", .resource = "secret/offline/root/k" },
	  "denied by policy ops rule 1" },
	{ N("admin", "ops"),
	  { .action = "Secrets.GetSecret", .resource = "secret/offline/root/k" },
	  "denied by policy ops rule 1" },
	{ N("ops", "admin"),
	  { .action = "CA.GetCRL", .resource = "identity/x" },
	  "allowed by policy admin rule 0" },
	{ N("reader"),
	  { .action = "CA.GetOwner", .resource = "owner/a/b/c" },
	  "allowed by policy reader rule 0" },
	{ N("admin"),
	  { .action = "Guard.RunTripwire", .resource = "guard" },
	  "allowed by policy admin rule 0" },
	{ N("nosuch", "reader"),
	  { .action = "CA.GetOwner", .resource = "owner/x" },
	  "allowed by policy reader rule 0" },
	{ N("nosuch"),
	  { .action = "CA.GetOwner", .resource = "owner/x" },
	  "no policy allows CA.GetOwner on owner/x" },
	{ NULL,
	  0,
	  { .action = "CA.GetOwner", .resource = "owner/x" },
	  "no policy allows CA.GetOwner on owner/x" },
	{ N("admin"), { .action = "CA.Nope", .resource = "owner/x" }, "unknown action CA.Nope" },
	{ N("admin"),
	  { .action = "trstctl.v1.CA.GetOwner", .resource = "x" },
	  "unknown action trstctl.v1.CA.GetOwner" },
	/* target states */
	{ N("issuer"),
	  { .action = "CA.TransitionIdentity", .resource = "identity/x", .to_state = "requested" },
	  "allowed by policy issuer rule 0" },
	{ N("issuer"),
	  { .action = "CA.TransitionIdentity", .resource = "identity/x", .to_state = "issued" },
	  "no policy allows CA.TransitionIdentity on identity/x" },
	{ N("issuer"),
	  { .action = "CA.TransitionIdentity", .resource = "identity/x", .to_state = "revoked" },
	  "denied by policy issuer rule 2" },
	{ N("issuer"),
	  { .action = "CA.TransitionIdentity", .resource = "identity/x", .to_state = "bogus" },
	  "no policy allows CA.TransitionIdentity on identity/x" },
	/* a full check without the target state: the allow does not hold, the deny does */
	{ N("issuer"),
	  { .action = "CA.TransitionIdentity", .resource = "identity/x" },
	  "denied by policy issuer rule 2" },
	/* the gate: conditional allows count, conditional denies wait for the handler */
	{ N("issuer"),
	  { .action = "CA.TransitionIdentity", .resource = "identity/x", .gate = true },
	  "allowed by policy issuer rule 0 (conditions checked by the handler)" },
	{ N("issuer", "no-secrets"),
	  { .action = "Secrets.ListSecrets", .resource = "secret", .gate = true },
	  "denied by policy no-secrets rule 0" },
	/* issuance limits */
	{ N("issuer"),
	  { WEB(DNS("a.internal", "offline-api.internal")) },
	  "allowed by policy issuer rule 1" },
	{ N("issuer"), { WEB(DNS("A.Internal")) }, "allowed by policy issuer rule 1" },
	{ N("issuer"), { WEB(.n_dns_names = 0) }, "allowed by policy issuer rule 1" },
	{ N("issuer"),
	  { WEB(.to_state = "renewing", .key_type = "ed25519") },
	  "allowed by policy issuer rule 1" },
	{ N("issuer"), { WEB(.ttl_seconds = 2592000) }, "allowed by policy issuer rule 1" },
	{ N("issuer"),
	  { WEB(.ttl_seconds = 2592001) },
	  "no policy allows CA.TransitionIdentity on identity/web-1" },
	{ N("issuer"),
	  { WEB(.ttl_seconds = 0) },
	  "no policy allows CA.TransitionIdentity on identity/web-1" },
	{ N("issuer"),
	  { WEB(.key_type = "rsa-2048") },
	  "no policy allows CA.TransitionIdentity on identity/web-1" },
	{ N("issuer"),
	  { WEB(.key_type = NULL) },
	  "no policy allows CA.TransitionIdentity on identity/web-1" },
	{ N("issuer"),
	  { WEB(DNS("a.b.internal")) },
	  "no policy allows CA.TransitionIdentity on identity/web-1" },
	{ N("issuer"),
	  { WEB(DNS("internal")) },
	  "no policy allows CA.TransitionIdentity on identity/web-1" },
	{ N("issuer"),
	  { WEB(DNS("a.internal", "x.other")) },
	  "no policy allows CA.TransitionIdentity on identity/web-1" },
	{ N("issuer"),
	  { WEB(DNS("api.offline-api.internal")) },
	  "no policy allows CA.TransitionIdentity on identity/web-1" },
	{ N("issuer"),
	  { .action = "CA.IssueCertificate", .resource = "identity/a/b", DNS("x.internal") },
	  "allowed by policy issuer rule 4" },
	{ N("issuer"),
	  { .action = "CA.IssueCertificate",
	    .resource = "identity/a",
	    DNS("x.internal", "y.prod.example") },
	  "denied by policy issuer rule 3" },
	{ N("issuer"),
	  { .action = "CA.IssueCertificate", .resource = "identity/a" },
	  "allowed by policy issuer rule 4" },
	{ N("issuer"),
	  { .action = "CA.IssueCertificate", .resource = "identity/a", .gate = true },
	  "allowed by policy issuer rule 4 (conditions checked by the handler)" },
	/* IP SANs: dns_names alone allows none; ip_addresses holds CIDRs of both families */
	{ N("ipper"), { ISSUE("dns-1"), DNS("a.internal") }, "allowed by policy ipper rule 0" },
	{ N("ipper"),
	  { ISSUE("dns-1"), DNS("a.internal"), IPS("8.8.8.8") },
	  "no policy allows CA.IssueCertificate on identity/dns-1" },
	{ N("ipper"),
	  { ISSUE("dns-1"), IPS("10.0.0.1") },
	  "no policy allows CA.IssueCertificate on identity/dns-1" },
	{ N("ipper"), { ISSUE("ip-1"), IPS("10.1.2.3", "fd00::7") }, "allowed by policy ipper rule 1" },
	{ N("ipper"), { ISSUE("ip-1"), IPS("::ffff:10.1.2.3") }, "allowed by policy ipper rule 1" },
	{ N("ipper"),
	  { ISSUE("ip-1"), IPS("10.1.2.3", "8.8.8.8") },
	  "no policy allows CA.IssueCertificate on identity/ip-1" },
	{ N("ipper"),
	  { ISSUE("ip-1"), IPS("not-an-ip") },
	  "no policy allows CA.IssueCertificate on identity/ip-1" },
	{ N("ipper"),
	  { ISSUE("ip-1"), DNS("a.internal") },
	  "no policy allows CA.IssueCertificate on identity/ip-1" },
	{ N("ipper"), { ISSUE("ip-1") }, "allowed by policy ipper rule 1" },
	{ N("ipper"),
	  { ISSUE("both-1"), DNS("a.internal"), IPS("192.168.1.9") },
	  "allowed by policy ipper rule 2" },
	{ N("ipper"),
	  { ISSUE("both-1"), DNS("a.internal"), IPS("192.168.2.9") },
	  "no policy allows CA.IssueCertificate on identity/both-1" },
	{ N("ipper"), { ISSUE("ip-1"), IPS("10.9.0.1") }, "denied by policy ipper rule 3" },
	{ N("ipper"), { ISSUE("any-1"), IPS("8.8.8.8"), .ttl_seconds = 60 }, "allowed by policy ipper rule 4" },
	{ N("ipper"), { ISSUE("any-1"), IPS("10.9.0.1"), .ttl_seconds = 60 }, "denied by policy ipper rule 3" },
};

static char *dq(const char *s)
{
	char *r = strdup(s);

	for (char *p = r; *p; p++)
		if (*p == '\'')
			*p = '"';
	return r;
}

static struct policy_doc *doc(const char *text)
{
	struct policy_doc *d = NULL;
	char err[POLICY_ERR_MAX], *json = dq(text);

	if (policy_parse(json, test_actions, TEST_N_ACTIONS, &d, err, sizeof(err)) < 0)
		fail_msg("parse: %s", err);
	free(json);
	return d;
}

static struct policy_set *set_with_docs(void)
{
	struct policy_set *set = NULL;

	assert_int_equal(policy_set_new(test_actions, TEST_N_ACTIONS, &set), 0);
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		assert_int_equal(policy_set_put(set, docs[i].name, 1, doc(docs[i].doc)), 1);
	return set;
}

static void test_table(void **state)
{
	struct policy_set *set = set_with_docs();

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct policy_decision d;
		const char *want = cases[i].reason;
		bool allowed = strncmp(want, "allowed", 7) == 0;

		assert_int_equal(
			policy_eval(set, cases[i].names, cases[i].n_names, &cases[i].req, &d), 0);
		if (strcmp(d.reason, want) != 0 || d.allowed != allowed)
			fail_msg("case %zu: %s on %s\n  got  %d %s\n  want %s", i,
				 cases[i].req.action, cases[i].req.resource, d.allowed, d.reason,
				 want);
		assert_int_equal(d.conditional, strstr(want, "handler") != NULL);
		if (strstr(want, " by policy ")) {
			char policy[64];
			int rule;

			assert_int_equal(sscanf(strstr(want, " by policy ") + 11, "%63s rule %d",
						policy, &rule),
					 2);
			assert_string_equal(d.matched_policy, policy);
			assert_int_equal(d.matched_rule, rule);
		} else {
			assert_string_equal(d.matched_policy, "");
			assert_int_equal(d.matched_rule, -1);
		}
	}
	set = policy_set_free(set);
	assert_null(set);
}

static void test_set(void **state)
{
	static const char *const other[] = { "CA.GetOwner", "Secrets.GetSecret" };
	const char *const names[] = { "p" };
	struct policy_request req = { .action = "CA.GetOwner", .resource = "owner/x" };
	struct policy_decision d;
	struct policy_set *set = set_with_docs();
	struct policy_doc *foreign = NULL;
	uint64_t v, gen = policy_set_generation(set);

	(void)state;
	assert_int_equal(
		policy_set_put(set, "p", 3,
			       doc("{'rules': [{'effect': 'allow', 'actions': ['CA.GetOwner'], "
				   "'resources': ['owner/*']}]}")),
		1);
	assert_true(policy_set_generation(set) > gen);
	assert_int_equal(policy_eval(set, names, 1, &req, &d), 0);
	assert_true(d.allowed);
	/* an older or equal version is ignored */
	assert_int_equal(policy_set_put(set, "p", 3, doc("{'rules': []}")), 0);
	assert_int_equal(policy_set_put(set, "p", 2, doc("{'rules': []}")), 0);
	assert_int_equal(policy_eval(set, names, 1, &req, &d), 0);
	assert_true(d.allowed);
	assert_int_equal(policy_set_version(set, "p", &v), 0);
	assert_int_equal(v, 3);
	/* a newer one replaces */
	assert_int_equal(policy_set_put(set, "p", 4, doc("{'rules': []}")), 1);
	assert_int_equal(policy_eval(set, names, 1, &req, &d), 0);
	assert_false(d.allowed);
	/* removal */
	assert_int_equal(policy_set_remove(set, "p"), 0);
	assert_int_equal(policy_set_remove(set, "p"), -ENOENT);
	assert_int_equal(policy_set_version(set, "p", &v), -ENOENT);
	assert_int_equal(policy_set_put(set, "p", 1, doc("{'rules': []}")), 1);
	/* admin is built in and fixed */
	assert_int_equal(policy_set_version(set, "admin", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(policy_set_put(set, "admin", 9, doc("{'rules': []}")), -EPERM);
	assert_int_equal(policy_set_remove(set, "admin"), -EPERM);
	/* bad names, version 0, a document parsed against another action list */
	assert_int_equal(policy_set_put(set, "a/b", 1, doc("{'rules': []}")), -EINVAL);
	assert_int_equal(policy_set_put(set, "q", 0, doc("{'rules': []}")), -EINVAL);
	assert_int_equal(policy_parse("{\"rules\": []}", other, 2, &foreign, NULL, 0), 0);
	assert_int_equal(policy_set_put(set, "q", 1, foreign), -EINVAL);
	assert_int_equal(policy_set_put(set, "q", 1, NULL), -EINVAL);
	/* bad requests */
	assert_int_equal(policy_eval(set, names, 1, NULL, &d), -EINVAL);
	req.resource = NULL;
	assert_int_equal(policy_eval(set, names, 1, &req, &d), -EINVAL);
	policy_set_free(set);

	/* bad action lists */
	assert_int_equal(policy_set_new(other, 0, &set), -EINVAL);
	assert_int_equal(policy_set_new((const char *const[]){ "CA" }, 1, &set), -EINVAL);
	assert_int_equal(policy_set_new((const char *const[]){ "CA.*" }, 1, &set), -EINVAL);
	assert_int_equal(policy_set_new((const char *const[]){ "A.B", "A.B" }, 2, &set), -EINVAL);
	assert_null(policy_set_free(NULL));
	assert_null(policy_doc_free(NULL));
}

/* Readers evaluate while the main thread replaces and removes policies; each decision
 * must be one that some published version gives. */
struct race {
	struct policy_set *set;
	atomic_bool stop;
};

struct reader_state {
	struct race *race;
	atomic_ulong evals;
	unsigned long bad;
};

static void *reader(void *arg)
{
	struct reader_state *r = arg;
	const char *const names[] = { "flip", "ops" };
	struct policy_request req = { .action = "CA.GetOwner", .resource = "owner/airgap-x" };
	struct policy_decision d;

	while (!atomic_load(&r->race->stop)) {
		if (policy_eval(r->race->set, names, 2, &req, &d) < 0 ||
		    !(strcmp(d.reason, "allowed by policy ops rule 2") == 0 ||
		      strcmp(d.reason, "denied by policy flip rule 0") == 0))
			r->bad++;
		atomic_fetch_add(&r->evals, 1);
	}
	return NULL;
}

static void test_race(void **state)
{
	struct race r = { .set = set_with_docs() };
	struct reader_state rs[2] = { { .race = &r }, { .race = &r } };
	pthread_t t[2];

	(void)state;
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, reader, &rs[i]), 0);
	while (atomic_load(&rs[0].evals) == 0 || atomic_load(&rs[1].evals) == 0)
		sched_yield();
	for (uint64_t v = 1; v <= 200; v++) {
		if (v % 3 == 0)
			assert_int_equal(policy_set_remove(r.set, "flip"), 0);
		else
			assert_int_equal(
				policy_set_put(
					r.set, "flip", v,
					doc(v % 3 == 1 ?
						    "{'rules': [{'effect': 'deny', "
						    "'actions': ['*'], 'resources': ['owner/**']}]}" :
						    "{'rules': []}")),
				1);
	}
	atomic_store(&r.stop, true);
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(rs[i].bad, 0);
	}
	policy_set_free(r.set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_race),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
