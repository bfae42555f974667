/*
 * Unit tests of the policy service's method table: every method of the six served
 * services is a known action with a resource mapping (a method added to a .proto without
 * a line in authz.c's table fails here, instead of being denied to everyone at run time),
 * and the resource of each kind of request, table-driven.
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

#include "authz-int.h"
#include "ca.pb-c.h"
#include "policy.pb-c.h"
#include "secrets.pb-c.h"

static void test_every_method_mapped(void **state)
{
	struct authz_method *m = NULL;
	const char **actions = NULL;
	size_t n = 0;
	struct policy_set *set = NULL;

	(void)state;
	assert_int_equal(authz_methods_build(&m, &actions, &n), 0);
	assert_true(n >= 35);
	for (size_t i = 0; i < n; i++) {
		ProtobufCMessage *req = malloc(m[i].input->sizeof_message);
		char buf[256];
		int r;

		protobuf_c_message_init(m[i].input, req);
		r = authz_resource(m[i].action, req, buf, sizeof(buf));
		if (r < 0)
			fail_msg("method %s (action %s) has no resource mapping in authz.c",
				 m[i].path, m[i].action);
		assert_int_equal(strncmp(m[i].path, "/trstctl.v1.", 12), 0);
		free(req);
	}
	/* the list is a valid known-actions list (unique, Service.Method) */
	assert_int_equal(policy_set_new(actions, n, &set), 0);
	policy_set_free(set);
	authz_methods_free(m, actions, n);
}

static void test_resources(void **state)
{
	Trstctl__V1__CreateOwnerRequest co = TRSTCTL__V1__CREATE_OWNER_REQUEST__INIT;
	Trstctl__V1__GetOwnerRequest go = TRSTCTL__V1__GET_OWNER_REQUEST__INIT;
	Trstctl__V1__ListSecretsRequest ls = TRSTCTL__V1__LIST_SECRETS_REQUEST__INIT;
	Trstctl__V1__GetSecretRequest gs = TRSTCTL__V1__GET_SECRET_REQUEST__INIT;
	Trstctl__V1__IssueCertificateRequest ic = TRSTCTL__V1__ISSUE_CERTIFICATE_REQUEST__INIT;
	Trstctl__V1__EvaluateRequest ev = TRSTCTL__V1__EVALUATE_REQUEST__INIT;
	Trstctl__V1__ListPoliciesRequest lp = TRSTCTL__V1__LIST_POLICIES_REQUEST__INIT;
	Trstctl__V1__RevokeTokenRequest rt = TRSTCTL__V1__REVOKE_TOKEN_REQUEST__INIT;
	char buf[64], small[8];
	const struct {
		const char *action;
		const ProtobufCMessage *req;
		const char *want;
	} cases[] = {
		{ "CA.CreateOwner", &co.base, "owner/team-a" },
		{ "CA.GetOwner", &go.base, "owner/0b1d" },
		{ "CA.ListOwners", &go.base, "owner/*" },
		{ "CA.IssueCertificate", &ic.base, "identity/id-7" },
		{ "CA.GetCABundle", NULL, "ca" },
		{ "Secrets.ListSecrets", &ls.base, "secret/offline/db/*" },
		{ "Secrets.GetSecret", &gs.base, "secret/offline/db/password" },
		{ "Audit.VerifyChain", NULL, "audit" },
		{ "Guard.RunTripwire", NULL, "guard" },
		{ "Assist.Ask", NULL, "assist" },
		{ "Policy.Evaluate", &ev.base, "token/0123456789abcdef" },
		{ "Policy.ListPolicies", &lp.base, "policy/*" },
		{ "Policy.RevokeToken", &rt.base, "token/fedcba9876543210" },
	};

	(void)state;
	co.name = "team-a";
	go.id = "0b1d";
	ls.prefix = "offline/db/";
	gs.name = "offline/db/password";
	ic.identity_id = "id-7";
	ev.principal = "0123456789abcdef";
	rt.id = "fedcba9876543210";
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (authz_resource(cases[i].action, cases[i].req, buf, sizeof(buf)) < 0)
			fail_msg("case %zu (%s) has no resource", i, cases[i].action);
		assert_string_equal(buf, cases[i].want);
	}
	/* unknown action, field of the wrong message, too long */
	assert_int_equal(authz_resource("CA.Nope", &co.base, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(authz_resource("Secrets.GetSecret", &go.base, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(authz_resource("CA.CreateOwner", &co.base, small, sizeof(small)),
			 -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_method_mapped),
		cmocka_unit_test(test_resources),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
