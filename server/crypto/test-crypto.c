/* Unit tests for crypto: the self-signed certificate parses, carries the SANs, and its key matches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto.h"

static void test_selfsigned(void **state)
{
	const char *names[] = { "localhost", "127.0.0.1", "::1" };
	char *cert = NULL, *key = NULL;
	BIO *b;
	X509 *crt;
	EVP_PKEY *pk;

	assert_int_equal(crypto_selfsigned(names, 3, 30, &cert, &key), 0);
	b = BIO_new_mem_buf(cert, -1);
	crt = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(crt);
	b = BIO_new_mem_buf(key, -1);
	pk = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(pk);
	assert_int_equal(X509_check_private_key(crt, pk), 1);
	assert_int_equal(X509_verify(crt, pk), 1);
	assert_int_equal(X509_check_host(crt, "localhost", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(crt, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_ip_asc(crt, "::1", 0), 1);
	assert_int_not_equal(X509_check_host(crt, "example.com", 0, 0, NULL), 1);
	EVP_PKEY_free(pk);
	X509_free(crt);
	free(cert);
	crypto_free_secret(key);
}

static void test_bad_names(void **state)
{
	const char *bad[] = { "a,b" };
	const char *empty[] = { "" };
	char *cert = NULL, *key = NULL;

	assert_int_equal(crypto_selfsigned(bad, 1, 30, &cert, &key), -22);
	assert_int_equal(crypto_selfsigned(empty, 1, 30, &cert, &key), -22);
	assert_int_equal(crypto_selfsigned(NULL, 0, 30, &cert, &key), -22);
	assert_null(cert);
	assert_null(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_selfsigned),
		cmocka_unit_test(test_bad_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
