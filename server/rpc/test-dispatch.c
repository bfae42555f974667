/*
 * Unit tests for the dispatch table: methods are registered from protoc-c service
 * descriptors with the streaming kind taken from the descriptor set, handlers must match
 * that kind, unknown services and duplicates are refused, and the configuration limits
 * (request size, threads) are checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "audit.pb-c.h"
#include "ca.pb-c.h"
#include "health.pb-c.h"

#include "internal.h"

extern const unsigned char trstctl_descset[];
extern const size_t trstctl_descset_len;

static const struct rpc_server_config base = {
	.addr = "127.0.0.1:0",
	.tls_mode = RPC_TLS_DISABLED,
	.workers = 1,
	.pool_threads = 1,
	.pool_queue = 4,
	.max_streams = 4,
	.max_request_bytes = 1024,
	.grace_ms = 100,
};

static int dummy_unary(struct rpc_call *call, const ProtobufCMessage *req,
		       ProtobufCMessage **ret_resp, void *user)
{
	return -ENOSYS;
}

static int dummy_stream(struct rpc_call *call, const ProtobufCMessage *req, void *user)
{
	return -ENOSYS;
}

static struct rpc_method *find(struct rpc_server *s, const char *path)
{
	for (size_t i = 0; i < s->n_methods; i++)
		if (strcmp(s->methods[i]->path, path) == 0)
			return s->methods[i];
	return NULL;
}

static void test_kinds_from_descset(void **state)
{
	struct rpc_server *s = NULL;
	struct rpc_method *m;

	assert_int_equal(rpc_server_new(&base, trstctl_descset, trstctl_descset_len, &s), 0);
	assert_int_equal(rpc_server_add_standard_services(s), 0);
	assert_int_equal(rpc_server_add_service(s, &trstctl__v1__ca__descriptor, NULL, NULL), 0);
	assert_int_equal(rpc_server_add_service(s, &trstctl__v1__audit__descriptor, NULL, NULL), 0);

	m = find(s, "/trstctl.v1.CA/CreateOwner");
	assert_non_null(m);
	assert_int_equal(m->kind, RPC_UNARY);
	assert_ptr_equal(m->input, &trstctl__v1__create_owner_request__descriptor);
	assert_ptr_equal(m->output, &trstctl__v1__owner__descriptor);
	assert_null(m->handler.unary);
	assert_int_equal(find(s, "/trstctl.v1.Audit/WatchEvents")->kind, RPC_SERVER_STREAMING);
	assert_int_equal(find(s, "/grpc.health.v1.Health/Watch")->kind, RPC_SERVER_STREAMING);
	assert_int_equal(find(s, "/grpc.health.v1.Health/Check")->kind, RPC_UNARY);
	assert_int_equal(find(s, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")->kind,
			 RPC_BIDI);
	assert_int_equal(
		find(s, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")->kind,
		RPC_BIDI);
	assert_null(find(s, "/trstctl.v1.CA/Nope"));

	/* Reflection lists each registered service once. */
	assert_int_equal(s->n_services, 5);
	rpc_server_free(s);
}

static void test_handler_kind_mismatch(void **state)
{
	struct rpc_server *s = NULL;
	struct rpc_method_handler h[3] = { { 0 } };

	assert_int_equal(rpc_server_new(&base, trstctl_descset, trstctl_descset_len, &s), 0);
	/* Audit's methods in protoc-c order: ListEvents, VerifyChain, WatchEvents. */
	for (unsigned i = 0; i < trstctl__v1__audit__descriptor.n_methods; i++)
		if (strcmp(trstctl__v1__audit__descriptor.methods[i].name, "WatchEvents") == 0)
			h[i].unary = dummy_unary;
	assert_int_equal(rpc_server_add_service(s, &trstctl__v1__audit__descriptor, h, NULL),
			 -EINVAL);
	rpc_server_free(s);

	memset(h, 0, sizeof(h));
	assert_int_equal(rpc_server_new(&base, trstctl_descset, trstctl_descset_len, &s), 0);
	for (unsigned i = 0; i < trstctl__v1__audit__descriptor.n_methods; i++)
		if (strcmp(trstctl__v1__audit__descriptor.methods[i].name, "WatchEvents") == 0)
			h[i].stream = dummy_stream;
		else
			h[i].unary = dummy_unary;
	assert_int_equal(rpc_server_add_service(s, &trstctl__v1__audit__descriptor, h, NULL), 0);
	rpc_server_free(s);
}

static void test_unknown_and_duplicate(void **state)
{
	struct rpc_server *s = NULL;
	const struct rpc_method_handler h = { .unary = dummy_unary };

	assert_int_equal(rpc_server_new(&base, trstctl_descset, trstctl_descset_len, &s), 0);
	assert_int_equal(rpc_server_add_method(s, "trstctl.v1.Nope", "Do",
					       &trstctl__v1__owner__descriptor,
					       &trstctl__v1__owner__descriptor, &h, NULL),
			 -ENOENT);
	assert_int_equal(rpc_server_add_method(s, "trstctl.v1.CA", "Nope",
					       &trstctl__v1__owner__descriptor,
					       &trstctl__v1__owner__descriptor, &h, NULL),
			 -ENOENT);
	assert_int_equal(rpc_server_add_service(s, &trstctl__v1__ca__descriptor, NULL, NULL), 0);
	assert_int_equal(rpc_server_add_service(s, &trstctl__v1__ca__descriptor, NULL, NULL),
			 -EEXIST);
	rpc_server_free(s);
}

static void test_config_limits(void **state)
{
	struct rpc_server_config c = base;
	struct rpc_server *s = NULL;

	c.max_request_bytes = 0;
	assert_int_equal(rpc_server_new(&c, trstctl_descset, trstctl_descset_len, &s), -EINVAL);
	c.max_request_bytes = (size_t)INT32_MAX + 1;
	assert_int_equal(rpc_server_new(&c, trstctl_descset, trstctl_descset_len, &s), -EINVAL);
	c = base;
	c.workers = 0;
	assert_int_equal(rpc_server_new(&c, trstctl_descset, trstctl_descset_len, &s), -EINVAL);
	c = base;
	c.pool_queue = 0;
	assert_int_equal(rpc_server_new(&c, trstctl_descset, trstctl_descset_len, &s), -EINVAL);
	/* A corrupt descriptor set is refused, not half-loaded. */
	assert_int_equal(rpc_server_new(&base, trstctl_descset, 7, &s), -EPROTO);
	assert_null(s);
}

static void test_pool_bounded(void **state)
{
	struct rpc_pool p = { 0 };
	struct rpc_call *dummy[3] = { NULL };

	/* No threads may run the queued (fake) calls: fill the queue with the lock held. */
	assert_int_equal(rpc_pool_start(&p, 1, 2), 0);
	pthread_mutex_lock(&p.lock);
	p.stop = false;
	p.queue[0] = dummy[0];
	p.queue[1] = dummy[1];
	p.len = 2;
	pthread_mutex_unlock(&p.lock);
	assert_int_equal(rpc_pool_submit(&p, dummy[2]), -EAGAIN);
	pthread_mutex_lock(&p.lock);
	p.len = 0;
	pthread_mutex_unlock(&p.lock);
	rpc_pool_stop(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kinds_from_descset),
		cmocka_unit_test(test_handler_kind_mismatch),
		cmocka_unit_test(test_unknown_and_duplicate),
		cmocka_unit_test(test_config_limits),
		cmocka_unit_test(test_pool_bounded),
	};
	int r;

	rpc_init();
	r = cmocka_run_group_tests(tests, NULL, NULL);
	rpc_fini();
	return r;
}
