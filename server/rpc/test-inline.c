/*
 * Served tests of inline_try handlers: a real rpc_server on loopback and a libtrstctl
 * client. A call the authorizer and the handler can answer without blocking is answered on
 * the completion-queue thread (rpc_call_is_inline true, no pool run); a call where either
 * says -EWOULDBLOCK is run again from the start on the pool and gets the same answer, with
 * nothing left over from the first run (principal, status); an error set inline is final.
 * The fake GetSecret here answers value = "v:<name>" and version 7. DeleteSecret stands for
 * an inline_ok handler (one that never blocks, like Guard.GetStatus) under the same
 * authorizer: it too is decided inline when the authorizer can, not queued on the pool.
 * The completion hook sees each call once, with its final code, principal and times.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rpc.h"
#include "secrets.pb-c.h"
#include "test-serve.h"
#include "trstctl-client.h"

extern const unsigned char trstctl_descset[];
extern const size_t trstctl_descset_len;

static atomic_int inline_runs, pool_runs, auth_inline, auth_pool;

/* The request's "name" field (GetSecretRequest and DeleteSecretRequest both have one). */
static const char *req_name(const ProtobufCMessage *msg)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, "name");

	return f ? *(char *const *)((const char *)msg + f->offset) : "";
}

/* Name prefixes: "hit" answers inline; "miss" blocks in the handler; "auth" blocks in the
 * authorizer; "deny" is denied inline; "err" fails inline with NOT_FOUND. */
static int auth(struct rpc_call *call, const ProtobufCMessage *msg, void *user)
{
	const char *name = req_name(msg);

	if (!rpc_call_is_inline(call)) {
		atomic_fetch_add(&auth_pool, 1);
		rpc_call_set_principal(call, "pool-principal");
		return 0;
	}
	atomic_fetch_add(&auth_inline, 1);
	/* what a first run sets must not survive into the rerun */
	rpc_call_set_principal(call, "inline-principal");
	if (strncmp(name, "auth", 4) == 0)
		return -EWOULDBLOCK;
	if (strncmp(name, "deny", 4) == 0)
		return rpc_call_error(call, RPC_PERMISSION_DENIED, "denied inline");
	return 0;
}

static int get(struct rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **ret_resp,
	       void *user)
{
	const Trstctl__V1__GetSecretRequest *req = (const void *)msg;
	bool in = rpc_call_is_inline(call);
	Trstctl__V1__Secret *o;
	char buf[300];

	atomic_fetch_add(in ? &inline_runs : &pool_runs, 1);
	/* call memory used by a first run that is then thrown away */
	o = (void *)rpc_call_new_message(call, &trstctl__v1__secret__descriptor);
	if (in && strncmp(req->name, "miss", 4) == 0)
		return -EWOULDBLOCK;
	if (strncmp(req->name, "err", 3) == 0)
		return rpc_call_error(call, RPC_NOT_FOUND, "no %s", req->name);
	/* the principal is the one of this run's authorizer */
	if (strcmp(rpc_call_principal(call), in ? "inline-principal" : "pool-principal") != 0)
		return rpc_call_error(call, RPC_INTERNAL, "stale principal %s",
				      rpc_call_principal(call));
	snprintf(buf, sizeof(buf), "v:%s", req->name);
	o->name = rpc_call_strdup(call, req->name);
	o->version = 7;
	o->value.len = strlen(buf);
	o->value.data = (uint8_t *)rpc_call_strdup(call, buf);
	*ret_resp = &o->base;
	return 0;
}

/* An inline_ok handler: never blocks, answers SecretMeta {name, version 9}. */
static int del(struct rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **ret_resp,
	       void *user)
{
	Trstctl__V1__SecretMeta *o =
		(void *)rpc_call_new_message(call, &trstctl__v1__secret_meta__descriptor);

	(void)user;
	atomic_fetch_add(rpc_call_is_inline(call) ? &inline_runs : &pool_runs, 1);
	o->name = rpc_call_strdup(call, req_name(msg));
	o->version = 9;
	*ret_resp = &o->base;
	return 0;
}

/* What the completion hook saw (copied: the strings are borrowed for the hook only). */
struct done_rec {
	char method[64];
	char principal[32];
	enum rpc_code code;
	int64_t start_ns, end_ns;
};
static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static struct done_rec done_recs[8];
static size_t n_done;

static void on_done(const struct rpc_call_done *d, void *user)
{
	pthread_mutex_lock(&done_mu);
	if (n_done < sizeof(done_recs) / sizeof(done_recs[0])) {
		struct done_rec *r = &done_recs[n_done];

		snprintf(r->method, sizeof(r->method), "%s", d->method);
		snprintf(r->principal, sizeof(r->principal), "%s",
			 d->principal ? d->principal : "-");
		r->code = d->code;
		r->start_ns = d->start_unix_ns;
		r->end_ns = d->end_unix_ns;
	}
	n_done++;
	pthread_mutex_unlock(&done_mu);
}

struct fixture {
	struct rpc_test_serve t;
	struct rpc_method_handler h[16];
};

static int setup(void **state)
{
	static struct fixture f;
	const ProtobufCServiceDescriptor *d = &trstctl__v1__secrets__descriptor;

	memset(&f, 0, sizeof(f));
	if (rpc_test_serve_new(NULL, &f.t) < 0)
		return -1;
	for (unsigned i = 0; i < d->n_methods; i++)
		if (strcmp(d->methods[i].name, "GetSecret") == 0)
			f.h[i] = (struct rpc_method_handler){ .unary = get, .inline_try = true };
		else if (strcmp(d->methods[i].name, "DeleteSecret") == 0)
			f.h[i] = (struct rpc_method_handler){ .unary = del, .inline_ok = true };
	rpc_server_set_auth(f.t.srv, auth, NULL);
	rpc_server_set_done_hook(f.t.srv, on_done, NULL);
	if (rpc_server_add_service(f.t.srv, d, f.h, NULL) < 0 ||
	    rpc_test_serve_start(&f.t, 5000) < 0)
		return -1;
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	rpc_test_serve_stop(&f->t);
	return 0;
}

/* Calls GetSecret(name); returns the status code and the reply's value in val. */
static int call(struct fixture *f, const char *name, char *val, size_t len, int64_t *ret_version)
{
	Trstctl__V1__GetSecretRequest q = TRSTCTL__V1__GET_SECRET_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	struct trstctl_status st = { 0 };
	int code;

	q.name = (char *)name;
	val[0] = '\0';
	trstctl_call_unary(f->t.cl, "/trstctl.v1.Secrets/GetSecret", &q.base,
			   &trstctl__v1__secret__descriptor, NULL, &resp, &st);
	code = st.code;
	if (resp) {
		const Trstctl__V1__Secret *s = (const void *)resp;

		snprintf(val, len, "%.*s", (int)s->value.len, (const char *)s->value.data);
		*ret_version = s->version;
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	trstctl_status_clear(&st);
	return code;
}

static void reset(void)
{
	atomic_store(&inline_runs, 0);
	atomic_store(&pool_runs, 0);
	atomic_store(&auth_inline, 0);
	atomic_store(&auth_pool, 0);
}

static void test_inline_answer(void **state)
{
	char val[64];
	int64_t v = 0;

	reset();
	assert_int_equal(call(*state, "hit/a", val, sizeof(val), &v), RPC_OK);
	assert_string_equal(val, "v:hit/a");
	assert_int_equal(v, 7);
	assert_int_equal(atomic_load(&inline_runs), 1);
	assert_int_equal(atomic_load(&pool_runs), 0);
	assert_int_equal(atomic_load(&auth_pool), 0);
}

static void test_handler_would_block(void **state)
{
	char val[64];
	int64_t v = 0;

	reset();
	assert_int_equal(call(*state, "miss/a", val, sizeof(val), &v), RPC_OK);
	assert_string_equal(val, "v:miss/a"); /* the same answer the inline path gives */
	assert_int_equal(v, 7);
	assert_int_equal(atomic_load(&inline_runs), 1);
	assert_int_equal(atomic_load(&pool_runs), 1);
	assert_int_equal(atomic_load(&auth_inline), 1);
	assert_int_equal(atomic_load(&auth_pool), 1); /* the rerun starts at the authorizer */
}

static void test_authorizer_would_block(void **state)
{
	char val[64];
	int64_t v = 0;

	reset();
	assert_int_equal(call(*state, "auth/a", val, sizeof(val), &v), RPC_OK);
	assert_string_equal(val, "v:auth/a");
	assert_int_equal(atomic_load(&inline_runs), 0);
	assert_int_equal(atomic_load(&pool_runs), 1);
}

static void test_inline_errors_are_final(void **state)
{
	char val[64];
	int64_t v = 0;

	reset();
	assert_int_equal(call(*state, "deny/a", val, sizeof(val), &v), RPC_PERMISSION_DENIED);
	assert_int_equal(call(*state, "err/a", val, sizeof(val), &v), RPC_NOT_FOUND);
	assert_int_equal(atomic_load(&pool_runs), 0);
	assert_int_equal(atomic_load(&auth_pool), 0);
}

/* DeleteSecret(name) on the inline_ok handler: the status code and the reply's version. */
static int call_ok(struct fixture *f, const char *name, int64_t *ret_version)
{
	Trstctl__V1__DeleteSecretRequest q = TRSTCTL__V1__DELETE_SECRET_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	struct trstctl_status st = { 0 };
	int code;

	q.name = (char *)name;
	trstctl_call_unary(f->t.cl, "/trstctl.v1.Secrets/DeleteSecret", &q.base,
			   &trstctl__v1__secret_meta__descriptor, NULL, &resp, &st);
	code = st.code;
	*ret_version = resp ? ((const Trstctl__V1__SecretMeta *)resp)->version : 0;
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	trstctl_status_clear(&st);
	return code;
}

static void test_inline_ok_under_authorizer(void **state)
{
	int64_t v = 0;

	/* decided and answered on the completion-queue thread: the pool is never involved,
	 * so a pool full of calls waiting for the database does not delay it */
	reset();
	assert_int_equal(call_ok(*state, "hit/ok", &v), RPC_OK);
	assert_int_equal(v, 9);
	assert_int_equal(atomic_load(&inline_runs), 1);
	assert_int_equal(atomic_load(&pool_runs), 0);
	assert_int_equal(atomic_load(&auth_inline), 1);
	assert_int_equal(atomic_load(&auth_pool), 0);
	/* an authorizer that would block sends it to the pool, where it runs once */
	reset();
	assert_int_equal(call_ok(*state, "auth/ok", &v), RPC_OK);
	assert_int_equal(v, 9);
	assert_int_equal(atomic_load(&inline_runs), 0);
	assert_int_equal(atomic_load(&pool_runs), 1);
	assert_int_equal(atomic_load(&auth_pool), 1);
	/* a denial inline is final */
	reset();
	assert_int_equal(call_ok(*state, "deny/ok", &v), RPC_PERMISSION_DENIED);
	assert_int_equal(atomic_load(&inline_runs) + atomic_load(&pool_runs), 0);
}

static void test_many(void **state)
{
	char name[32], val[64], want[64];
	int64_t v = 0;

	/* alternating paths on one channel: each answer belongs to its own request */
	reset();
	for (int i = 0; i < 200; i++) {
		const char *kind = i % 3 == 0 ? "miss" : i % 3 == 1 ? "hit" : "auth";

		snprintf(name, sizeof(name), "%s/%d", kind, i);
		snprintf(want, sizeof(want), "v:%s", name);
		assert_int_equal(call(*state, name, val, sizeof(val), &v), RPC_OK);
		assert_string_equal(val, want);
	}
	assert_true(atomic_load(&pool_runs) >= 130);
	assert_true(atomic_load(&inline_runs) >= 130);
}

/* The hook runs before the status leaves, so it has run when the client has its answer. */
static void test_done_hook(void **state)
{
	struct fixture *f = *state;
	ProtobufCMessage *resp = NULL;
	struct trstctl_status st = { 0 };
	Trstctl__V1__GetSecretRequest q = TRSTCTL__V1__GET_SECRET_REQUEST__INIT;
	struct timespec now;
	int64_t v = 0, now_ns;
	char val[64];

	pthread_mutex_lock(&done_mu);
	n_done = 0;
	pthread_mutex_unlock(&done_mu);
	assert_int_equal(call(f, "hit/d", val, sizeof(val), &v), RPC_OK);
	assert_int_equal(call(f, "miss/d", val, sizeof(val), &v), RPC_OK);
	assert_int_equal(call(f, "err/d", val, sizeof(val), &v), RPC_NOT_FOUND);
	/* a method the server does not know: answered, not reported */
	q.name = "x";
	trstctl_call_unary(f->t.cl, "/trstctl.v1.Secrets/NoSuchMethod", &q.base,
			   &trstctl__v1__secret__descriptor, NULL, &resp, &st);
	assert_int_equal(st.code, RPC_UNIMPLEMENTED);
	trstctl_status_clear(&st);
	clock_gettime(CLOCK_REALTIME, &now);
	now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;

	pthread_mutex_lock(&done_mu);
	assert_int_equal(n_done, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_string_equal(done_recs[i].method, "/trstctl.v1.Secrets/GetSecret");
		assert_true(done_recs[i].start_ns > now_ns - 60000000000LL);
		assert_true(done_recs[i].start_ns <= done_recs[i].end_ns);
		assert_true(done_recs[i].end_ns <= now_ns + 1000000000LL);
	}
	assert_int_equal(done_recs[0].code, RPC_OK);
	assert_string_equal(done_recs[0].principal, "inline-principal");
	assert_int_equal(done_recs[1].code, RPC_OK);
	assert_string_equal(done_recs[1].principal, "pool-principal");
	assert_int_equal(done_recs[2].code, RPC_NOT_FOUND);
	pthread_mutex_unlock(&done_mu);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inline_answer),
		cmocka_unit_test(test_handler_would_block),
		cmocka_unit_test(test_authorizer_would_block),
		cmocka_unit_test(test_inline_errors_are_final),
		cmocka_unit_test(test_inline_ok_under_authorizer),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_done_hook),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
