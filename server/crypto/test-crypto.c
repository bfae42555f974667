/*
 * Unit tests for crypto_cert_read: a certificate the CA issued reads back with its serial,
 * validity, issuer and names; names in another order or case are the same names; a missing,
 * extra or other name is not; another CA did not sign it; garbage does not parse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

static const char *const dns[] = { "localhost", "trstctl.ns.svc" };
static const char *const ips[] = { "127.0.0.1", "::1" };

static void issue(const struct crypto_ca *ca, struct crypto_issued *ret)
{
	const struct crypto_issue_req req = { .cn = "localhost",
					      .dns_names = dns,
					      .n_dns_names = 2,
					      .ips = ips,
					      .n_ips = 2,
					      .ttl_seconds = 3600,
					      .key_type = CRYPTO_KEY_ECDSA_P256 };
	char err[256];

	assert_int_equal(crypto_issue(ca, &req, ret, err, sizeof(err)), 0);
}

static void test_read_back(void **state)
{
	struct crypto_ca *ca = NULL, *other = NULL;
	struct crypto_issued is = { 0 };
	struct crypto_cert_facts f;
	const char *const dns_case[] = { "TRSTCTL.ns.svc", "localhost" };
	const char *const ips_long[] = { "0:0:0:0:0:0:0:1", "127.0.0.1" };
	const char *const one_dns[] = { "localhost" };
	const char *const other_ip[] = { "127.0.0.1", "::2" };
	char *chain;

	(void)state;
	assert_int_equal(crypto_ca_create(CRYPTO_KEY_ECDSA_P256, "test CA", 1, &ca, NULL, 0), 0);
	assert_int_equal(crypto_ca_create(CRYPTO_KEY_ECDSA_P256, "test CA", 1, &other, NULL, 0), 0);
	issue(ca, &is);
	/* the leaf followed by its chain, as the server stores it */
	chain = malloc(strlen(is.cert_pem) + strlen(is.chain_pem) + 1);
	assert_non_null(chain);
	strcpy(chain, is.cert_pem);
	strcat(chain, is.chain_pem);

	assert_int_equal(crypto_cert_read(ca, chain, dns, 2, ips, 2, &f), 0);
	assert_string_equal(f.serial, is.serial);
	assert_int_equal(f.not_before, is.not_before);
	assert_int_equal(f.not_after, is.not_after);
	assert_true(f.signed_by_ca);
	assert_true(f.same_names);

	assert_int_equal(crypto_cert_read(ca, chain, dns_case, 2, ips_long, 2, &f), 0);
	assert_true(f.same_names);
	assert_int_equal(crypto_cert_read(ca, chain, one_dns, 1, ips, 2, &f), 0);
	assert_false(f.same_names);
	assert_int_equal(crypto_cert_read(ca, chain, dns, 2, other_ip, 2, &f), 0);
	assert_false(f.same_names);
	assert_int_equal(crypto_cert_read(ca, chain, dns, 2, ips, 1, &f), 0);
	assert_false(f.same_names);

	assert_int_equal(crypto_cert_read(other, chain, dns, 2, ips, 2, &f), 0);
	assert_false(f.signed_by_ca);
	assert_int_equal(
		crypto_cert_read(ca, "-----BEGIN CERTIFICATE-----\nAAAA\n", dns, 2, ips, 2, &f),
		-EINVAL);
	assert_int_equal(crypto_cert_read(ca, "", dns, 2, ips, 2, &f), -EINVAL);

	free(chain);
	crypto_issued_clear(&is);
	crypto_ca_free(ca);
	crypto_ca_free(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
