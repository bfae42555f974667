/*
 * Checks tools/protoc-gen-trstctl-c against protoc-c's own output for test-mangle.proto,
 * whose names mix acronyms, digits, underscores, nesting and a mixed-case package: every
 * stub below only compiles and links if the generator spelled protoc-c's types and
 * descriptors exactly as protoc-c did. Then one unary and one stream stub run against a
 * closed port.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test-mangle-gen.h"

static void test_table(void **state)
{
	const struct trstctl_method *m;

	assert_int_equal(tm_n_methods, 4);
	m = tm_method_find("/tm_pkg.v2Beta.My_Svc/HTTPGet");
	assert_non_null(m);
	assert_true(m->server_streaming);
	assert_false(m->client_streaming);
	assert_ptr_equal(m->input, &tm_pkg__v2_beta__a1b2_c__descriptor);
	assert_ptr_equal(m->output, &tm_pkg__v2_beta__httpserver2_config__inner_thing__descriptor);
	m = tm_method_find("/tm_pkg.v2Beta.My_Svc/Chat");
	assert_non_null(m);
	assert_true(m->server_streaming && m->client_streaming);
	m = tm_method_find("/tm_pkg.v2Beta.My_Svc/Do_It_Now");
	assert_non_null(m);
	assert_ptr_equal(m->input, &tm_pkg__v2_beta__foo_bar__descriptor);
	assert_ptr_equal(m->output, &tm_pkg__v2_beta__abc__descriptor);
}

static int on_inner(const TmPkg__V2Beta__HTTPServer2Config__InnerThing *msg, void *userdata)
{
	return 0;
}

static void test_stubs(void **state)
{
	struct trstctl_client_config cfg = {
		.addr = "127.0.0.1:1", .transport = TRSTCTL_PLAINTEXT, .deadline_ms = 5000,
	};
	TmPkg__V2Beta__FooBar foo = TM_PKG__V2_BETA__FOO_BAR__INIT;
	TmPkg__V2Beta__A1b2C a1 = TM_PKG__V2_BETA__A1B2_C__INIT;
	TmPkg__V2Beta__HTTPServer2Config hc = TM_PKG__V2_BETA__HTTPSERVER2_CONFIG__INIT;
	TmPkg__V2Beta__HTTPServer2Config *hc_resp = NULL;
	TmPkg__V2Beta__ABC *abc = NULL;
	struct trstctl_status st = { 0 };
	struct trstctl_client *c = NULL;

	assert_int_equal(trstctl_client_new(&cfg, &c), 0);
	foo.x = 7;
	assert_int_equal(tm_my_svc_do_it_now(c, &foo, NULL, &abc, &st), -ECONNREFUSED);
	assert_int_equal(st.code, 14);
	assert_int_equal(tm_my_svc_http_get(c, &a1, NULL, on_inner, NULL, &st), -ECONNREFUSED);
	assert_int_equal(tm_my_svc_get_ca_bundle(c, &hc, NULL, &hc_resp, &st), -ECONNREFUSED);
	trstctl_status_clear(&st);
	c = trstctl_client_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_stubs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
