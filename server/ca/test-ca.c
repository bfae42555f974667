/*
 * Unit tests for the CA domain: all 36 lifecycle pairs against the edge list of
 * docs/architecture.md §6 (a model written out separately from the table in ca.c), the
 * refusal message, the events, every RFC 5280 reason name and code, the kinds and key
 * types with their "accepted:" messages, and the validation of names, SANs and TTLs
 * (table-driven).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ca.h"

/* The 8 allowed edges, as docs/architecture.md lists them. */
static const char *const allowed_edges[][3] = {
	{ "requested", "issued", "identity.issued" },
	{ "issued", "deployed", "identity.deployed" },
	{ "issued", "revoked", "identity.revoked" },
	{ "deployed", "renewing", "identity.renewing" },
	{ "deployed", "revoked", "identity.revoked" },
	{ "renewing", "deployed", "identity.renewed" },
	{ "renewing", "revoked", "identity.revoked" },
	{ "revoked", "retired", "identity.retired" },
};

static const char *model_event(const char *from, const char *to)
{
	for (size_t i = 0; i < sizeof(allowed_edges) / sizeof(allowed_edges[0]); i++)
		if (!strcmp(allowed_edges[i][0], from) && !strcmp(allowed_edges[i][1], to))
			return allowed_edges[i][2];
	return NULL;
}

static void test_all_36_pairs(void **state)
{
	int allowed = 0;
	char msg[256], want[256];

	for (int f = 0; f < CA_STATE_COUNT; f++) {
		for (int t = 0; t < CA_STATE_COUNT; t++) {
			const char *fn = ca_state_name(f), *tn = ca_state_name(t);
			const char *ev = model_event(fn, tn);

			if (ev) {
				allowed++;
				assert_int_equal(ca_transition_check(f, t), 0);
				assert_non_null(ca_transition_event(f, t));
				assert_string_equal(ca_transition_event(f, t), ev);
			} else {
				assert_int_equal(ca_transition_check(f, t), -EILSEQ);
				assert_null(ca_transition_event(f, t));
				assert_int_equal(
					ca_transition_message("id-42", f, t, msg, sizeof(msg)),
					-EILSEQ);
				snprintf(want, sizeof(want),
					 "invalid transition for identity id-42: %s -> %s", fn, tn);
				assert_string_equal(msg, want);
			}
		}
	}
	assert_int_equal(allowed, 8);
	assert_int_equal(ca_transition_check(CA_STATE_COUNT, CA_STATE_ISSUED), -EILSEQ);
	assert_int_equal(ca_transition_check(CA_STATE_REQUESTED, -1), -EILSEQ);
	assert_null(ca_transition_event(-1, CA_STATE_ISSUED));
	ca_transition_message("x", CA_STATE_RETIRED, CA_STATE_REQUESTED, msg, sizeof(msg));
	assert_string_equal(msg, "invalid transition for identity x: retired -> requested");
	/* NULL buffer: still the code */
	assert_int_equal(ca_transition_message("x", 0, 0, NULL, 0), -EILSEQ);
}

static void test_states(void **state)
{
	static const char *const names[] = { "requested", "issued",  "deployed",
					     "renewing",  "revoked", "retired" };
	enum ca_state s;
	char err[256];

	for (int i = 0; i < CA_STATE_COUNT; i++) {
		assert_string_equal(ca_state_name(i), names[i]);
		assert_int_equal(ca_state_parse(names[i], &s, err, sizeof(err)), 0);
		assert_int_equal(s, i);
	}
	assert_null(ca_state_name(CA_STATE_COUNT));
	assert_int_equal(ca_state_parse("Issued", &s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "invalid state \"Issued\"; accepted: requested, issued, deployed, "
				 "renewing, revoked, retired");
	assert_int_equal(ca_state_parse(NULL, &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(ca_state_parse("", &s, NULL, 0), -EINVAL);
}

static void test_reasons(void **state)
{
	static const struct {
		const char *name;
		int code;
	} rfc5280[] = {
		{ "unspecified", 0 },	     { "keyCompromise", 1 }, { "caCompromise", 2 },
		{ "affiliationChanged", 3 }, { "superseded", 4 },    { "cessationOfOperation", 5 },
		{ "certificateHold", 6 },    { "removeFromCRL", 8 }, { "privilegeWithdrawn", 9 },
		{ "aaCompromise", 10 },
	};
	char err[512];
	int code;

	for (size_t i = 0; i < sizeof(rfc5280) / sizeof(rfc5280[0]); i++) {
		assert_int_equal(ca_reason_parse(rfc5280[i].name, &code, err, sizeof(err)), 0);
		assert_int_equal(code, rfc5280[i].code);
		assert_string_equal(ca_reason_name(rfc5280[i].code), rfc5280[i].name);
	}
	assert_null(ca_reason_name(7));
	assert_null(ca_reason_name(-1));
	assert_null(ca_reason_name(11));
	code = 99;
	assert_int_equal(ca_reason_parse("", &code, err, sizeof(err)), 0);
	assert_int_equal(code, 0);
	assert_int_equal(ca_reason_parse(NULL, &code, err, sizeof(err)), 0);
	assert_int_equal(code, 0);
	assert_int_equal(ca_reason_parse("keycompromise", &code, err, sizeof(err)), -EINVAL);
	assert_string_equal(err,
			    "invalid revocation reason \"keycompromise\"; accepted: "
			    "unspecified, keyCompromise, caCompromise, affiliationChanged, "
			    "superseded, cessationOfOperation, certificateHold, removeFromCRL, "
			    "privilegeWithdrawn, aaCompromise");
	/* A short buffer truncates, never overflows. */
	assert_int_equal(ca_reason_parse("bogus", &code, err, 20), -EINVAL);
	assert_int_equal(strlen(err), 19);
}

static void test_kinds_and_key_types(void **state)
{
	static const char *const owners[] = { "user", "team", "workload", "service", "vendor" };
	enum ca_owner_kind ok;
	enum ca_identity_kind ik;
	enum crypto_key_type kt;
	char err[256];

	for (int i = 0; i < CA_OWNER_KIND_COUNT; i++) {
		assert_int_equal(ca_owner_kind_parse(owners[i], &ok, err, sizeof(err)), 0);
		assert_int_equal(ok, i);
		assert_string_equal(ca_owner_kind_name(i), owners[i]);
	}
	assert_int_equal(ca_owner_kind_parse("robot", &ok, err, sizeof(err)), -EINVAL);
	assert_string_equal(
		err, "invalid owner kind \"robot\"; accepted: user, team, workload, service, "
		     "vendor");
	assert_int_equal(ca_owner_kind_parse("", &ok, err, sizeof(err)), -EINVAL);

	for (int i = 0; i < CA_IDENTITY_KIND_COUNT; i++) {
		assert_int_equal(
			ca_identity_kind_parse(ca_identity_kind_name(i), &ik, err, sizeof(err)), 0);
		assert_int_equal(ik, i);
		assert_int_equal(ca_identity_issuable(ik, err, sizeof(err)),
				 i == CA_IDENTITY_X509_CERTIFICATE ? 0 : -EOPNOTSUPP);
	}
	assert_int_equal(ca_identity_kind_parse("", &ik, err, sizeof(err)), 0);
	assert_int_equal(ik, CA_IDENTITY_X509_CERTIFICATE);
	assert_int_equal(ca_identity_issuable(CA_IDENTITY_SSH_CERTIFICATE, err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_string_equal(err, "issuance of ssh_certificate identities is not implemented; "
				 "only x509_certificate identities are issued");
	assert_int_equal(ca_identity_kind_parse("x509", &ik, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "invalid identity kind \"x509\"; accepted: x509_certificate, "
				 "ssh_certificate, ssh_key, secret, api_key, workload_identity");

	assert_int_equal(ca_key_type_parse("", &kt, err, sizeof(err)), 0);
	assert_int_equal(kt, CRYPTO_KEY_ECDSA_P256);
	assert_int_equal(ca_key_type_parse("ed25519", &kt, err, sizeof(err)), 0);
	assert_int_equal(kt, CRYPTO_KEY_ED25519);
	assert_int_equal(ca_key_type_parse("dsa", &kt, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "invalid key_type \"dsa\"; accepted: ecdsa-p256, ecdsa-p384, "
				 "ed25519, rsa-2048, rsa-3072, rsa-4096");
}

static void test_names(void **state)
{
	static const struct {
		const char *v;
		int r;
	} cases[] = {
		{ "payments-api", 0 },
		{ "Zahlungen \xc3\xbc", 0 }, /* UTF-8 */
		{ "", -EINVAL },	     /* required */
		{ "a\tb", -EINVAL },	     /* control */
		{ "bad \xc3", -EINVAL },     /* truncated UTF-8 */
		{ "\xc0\xaf", -EINVAL },     /* overlong */
		{ "\xed\xa0\x80", -EINVAL }, /* surrogate */
		{ "x\xc2\x85y", -EINVAL },   /* C1 control */
		{ "0123456789012345678901234567890123456789012345678901234567890123", 0 },
		{ "01234567890123456789012345678901234567890123456789012345678901234", -EINVAL },
	};
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = ca_validate_name("name", cases[i].v, CA_NAME_MAX, err, sizeof(err));

		if (r != cases[i].r)
			fail_msg("case %zu \"%s\": %d, want %d", i, cases[i].v, r, cases[i].r);
	}
	ca_validate_name("name", "", CA_NAME_MAX, err, sizeof(err));
	assert_string_equal(err, "name is required");
	ca_validate_name("name", cases[9].v, CA_NAME_MAX, err, sizeof(err));
	assert_string_equal(err, "name is longer than 64 bytes");
	assert_int_equal(ca_validate_name("name", NULL, 10, err, sizeof(err)), -EINVAL);

	assert_int_equal(ca_validate_email("", err, sizeof(err)), 0);
	assert_int_equal(ca_validate_email(NULL, err, sizeof(err)), 0);
	assert_int_equal(ca_validate_email("ops@example.com", err, sizeof(err)), 0);
	assert_int_equal(ca_validate_email("ops", err, sizeof(err)), -EINVAL);
	assert_int_equal(ca_validate_email("@example.com", err, sizeof(err)), -EINVAL);
	assert_int_equal(ca_validate_email("a@b@c", err, sizeof(err)), -EINVAL);
	assert_int_equal(ca_validate_email("a b@c", err, sizeof(err)), -EINVAL);
}

static void test_dns_names(void **state)
{
	static const struct {
		const char *v;
		int r;
	} cases[] = {
		{ "api.example.com", 0 },
		{ "API.Example.COM", 0 },
		{ "localhost", 0 },
		{ "*.example.com", 0 },
		{ "a-b.c-d", 0 },
		{ "xn--bcher-kva.example", 0 },
		{ "", -EINVAL },
		{ "*", -EINVAL },
		{ "*.", -EINVAL },
		{ "a.*.example.com", -EINVAL },
		{ "foo*.example.com", -EINVAL },
		{ "example.com.", -EINVAL },
		{ ".example.com", -EINVAL },
		{ "a..b", -EINVAL },
		{ "-a.example", -EINVAL },
		{ "a-.example", -EINVAL },
		{ "under_score.example", -EINVAL },
		{ "sp ace.example", -EINVAL },
		{ "10.0.0.1x", 0 },
		{ "10.0.0.1", -EINVAL }, /* an address belongs in ips */
		{ "host.123", -EINVAL },
		{ "a.b,c", -EINVAL },
		{ "0123456789012345678901234567890123456789012345678901234567890123.x", -EINVAL },
		{ "012345678901234567890123456789012345678901234567890123456789012.x", 0 },
	};
	char err[512], big[300];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = ca_validate_dns_name(cases[i].v, err, sizeof(err));

		if (r != cases[i].r)
			fail_msg("case %zu \"%s\": %d, want %d", i, cases[i].v, r, cases[i].r);
	}
	ca_validate_dns_name("bad_name", err, sizeof(err));
	assert_non_null(strstr(err, "\"bad_name\" is not a valid DNS name"));
	/* 254 bytes: too long, although each label is fine */
	memset(big, 'a', sizeof(big));
	for (int i = 50; i < 254; i += 51)
		big[i] = '.';
	big[254] = '\0';
	assert_int_equal(ca_validate_dns_name(big, err, sizeof(err)), -EINVAL);
	big[253] = '\0';
	assert_int_equal(ca_validate_dns_name(big, err, sizeof(err)), 0);
	assert_int_equal(ca_validate_dns_name(NULL, err, sizeof(err)), -EINVAL);
}

static void test_ips_and_sans(void **state)
{
	const char *dns[] = { "a.example", "b.example", "A.EXAMPLE" };
	const char *ips[] = { "10.0.0.1", "2001:db8::1", "2001:0db8:0::1", "10.0.0.256" };
	const char *many[CA_SANS_MAX + 1];
	char names[CA_SANS_MAX + 1][16], err[256];

	assert_int_equal(ca_validate_ip("127.0.0.1", err, sizeof(err)), 0);
	assert_int_equal(ca_validate_ip("::1", err, sizeof(err)), 0);
	assert_int_equal(ca_validate_ip("::ffff:10.0.0.1", err, sizeof(err)), 0);
	assert_int_equal(ca_validate_ip("localhost", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "\"localhost\" is not an IPv4 or IPv6 address");
	assert_int_equal(ca_validate_ip("10.0.0.1/8", err, sizeof(err)), -EINVAL);
	assert_int_equal(ca_validate_ip(NULL, err, sizeof(err)), -EINVAL);

	assert_int_equal(ca_validate_sans(dns, 2, ips, 2, err, sizeof(err)), 0);
	assert_int_equal(ca_validate_sans(NULL, 0, NULL, 0, err, sizeof(err)), 0);
	assert_int_equal(ca_validate_sans(dns, 3, ips, 0, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "DNS name \"A.EXAMPLE\" is listed twice");
	assert_int_equal(ca_validate_sans(dns, 0, ips, 3, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "IP address \"2001:0db8:0::1\" is listed twice");
	assert_int_equal(ca_validate_sans(dns, 0, ips + 3, 1, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "10.0.0.256"));
	for (int i = 0; i <= CA_SANS_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "h%d.example", i);
		many[i] = names[i];
	}
	assert_int_equal(ca_validate_sans(many, CA_SANS_MAX, NULL, 0, err, sizeof(err)), 0);
	assert_int_equal(ca_validate_sans(many, CA_SANS_MAX, ips, 1, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "at most 100"));
}

static void test_ttl(void **state)
{
	int64_t ttl = 0;
	char err[256];

	assert_int_equal(ca_ttl_resolve(0, 90 * 86400LL, &ttl, err, sizeof(err)), 0);
	assert_int_equal(ttl, 30 * 86400LL);
	assert_int_equal(ca_ttl_resolve(0, 7 * 86400LL, &ttl, err, sizeof(err)), 0);
	assert_int_equal(ttl, 7 * 86400LL); /* the default never exceeds the maximum */
	assert_int_equal(ca_ttl_resolve(0, 0, &ttl, err, sizeof(err)), 0);
	assert_int_equal(ttl, CA_TTL_DEFAULT);
	assert_int_equal(ca_ttl_resolve(3600, 86400, &ttl, err, sizeof(err)), 0);
	assert_int_equal(ttl, 3600);
	assert_int_equal(ca_ttl_resolve(86400, 86400, &ttl, err, sizeof(err)), 0);
	assert_int_equal(ca_ttl_resolve(86401, 86400, &ttl, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "ttl_seconds 86401 exceeds the maximum of 86400");
	assert_int_equal(ca_ttl_resolve(-5, 86400, &ttl, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too short"));
	assert_int_equal(ca_ttl_resolve(59, 86400, &ttl, err, sizeof(err)), -EINVAL);
	assert_int_equal(ca_ttl_resolve(60, 86400, &ttl, err, sizeof(err)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_36_pairs), cmocka_unit_test(test_states),
		cmocka_unit_test(test_reasons),	     cmocka_unit_test(test_kinds_and_key_types),
		cmocka_unit_test(test_names),	     cmocka_unit_test(test_dns_names),
		cmocka_unit_test(test_ips_and_sans), cmocka_unit_test(test_ttl),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
