/*
 * Unit tests for reflection answers: every request kind against the real set and a
 * synthetic one with extensions, each response packed and unpacked again as a client
 * would see it, errors naming what was asked, and allocation failure at every step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reflection.h"
#include "test-descset-synth.h"

extern const unsigned char trstctl_descset[];
extern const size_t trstctl_descset_len;

typedef Grpc__Reflection__V1__ServerReflectionRequest refl_req;
typedef Grpc__Reflection__V1__ServerReflectionResponse refl_resp;

/* The oneof case names protoc-c generates are too long to read inline. */
#define REQ(x) GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_##x
#define RESP(x) GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_##x

/* A test arena: a chain of malloc blocks freed together; fail_after < 0 never fails. */
struct arena {
	struct arena_block *head;
	int fail_after;
};

struct arena_block {
	struct arena_block *next;
	max_align_t data[];
};

static void *arena_alloc(void *ctx, size_t n)
{
	struct arena *a = ctx;
	struct arena_block *b;

	if (a->fail_after == 0)
		return NULL;
	if (a->fail_after > 0)
		a->fail_after--;
	b = malloc(sizeof(*b) + n);
	assert_non_null(b);
	memset(b->data, 0xa5, n); /* the answer must not rely on zeroed memory */
	b->next = a->head;
	a->head = b;
	return b->data;
}

static void arena_free(struct arena *a)
{
	while (a->head) {
		struct arena_block *next = a->head->next;

		free(a->head);
		a->head = next;
	}
}

struct fixture {
	struct rpc_descset *real;
	struct rpc_descset *synth;
	uint8_t *synth_buf;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	size_t len;

	assert_non_null(f);
	assert_int_equal(rpc_descset_load(trstctl_descset, trstctl_descset_len, &f->real), 0);
	f->synth_buf = synth_descset(&len);
	assert_int_equal(rpc_descset_load(f->synth_buf, len, &f->synth), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	rpc_descset_free(f->real);
	rpc_descset_free(f->synth);
	free(f->synth_buf);
	free(f);
	return 0;
}

static const char *const services[] = {
	"trstctl.v1.CA",
	"grpc.health.v1.Health",
	"grpc.reflection.v1.ServerReflection",
};

/*
 * Answers req, packs the answer (as the runtime does before freeing the request) and
 * returns it unpacked, as a client would read it. Free with ..._free_unpacked.
 */
static refl_resp *ask(const struct rpc_descset *set, const refl_req *req)
{
	struct arena a = { .fail_after = -1 };
	refl_resp *resp = NULL, *out;
	uint8_t *buf;
	size_t len;

	assert_int_equal(rpc_reflection_answer(set, services, 3, req, arena_alloc, &a, &resp), 0);
	assert_non_null(resp);
	assert_ptr_equal(resp->original_request, req);
	len = grpc__reflection__v1__server_reflection_response__get_packed_size(resp);
	buf = malloc(len ? len : 1);
	assert_non_null(buf);
	assert_int_equal(grpc__reflection__v1__server_reflection_response__pack(resp, buf), len);
	arena_free(&a);
	out = grpc__reflection__v1__server_reflection_response__unpack(NULL, len, buf);
	free(buf);
	assert_non_null(out);
	assert_string_equal(out->valid_host, req->host);
	assert_non_null(out->original_request);
	assert_int_equal(out->original_request->message_request_case, req->message_request_case);
	return out;
}

static void drop(refl_resp *resp)
{
	grpc__reflection__v1__server_reflection_response__free_unpacked(resp, NULL);
}

static refl_req make_req(int which, char *arg)
{
	refl_req req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;

	req.host = "localhost:8443";
	req.message_request_case = which;
	req.file_by_filename = arg; /* every string member of the oneof shares this slot */
	return req;
}

/* Asserts a FileDescriptorResponse carrying exactly the files in want, in order. */
static void assert_files(const refl_resp *resp, const char *const *want, size_t n)
{
	const Grpc__Reflection__V1__FileDescriptorResponse *fr;

	assert_int_equal(resp->message_response_case, RESP(FILE_DESCRIPTOR_RESPONSE));
	fr = resp->file_descriptor_response;
	assert_int_equal(fr->n_file_descriptor_proto, n);
	for (size_t i = 0; i < n; i++) {
		Google__Protobuf__FileDescriptorProto *fd =
			google__protobuf__file_descriptor_proto__unpack(
				NULL, fr->file_descriptor_proto[i].len,
				fr->file_descriptor_proto[i].data);

		assert_non_null(fd);
		assert_string_equal(fd->name, want[i]);
		google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
	}
}

/* Asks req and asserts a NOT_FOUND error whose (bounded) message contains needle. */
static void expect_not_found(const struct rpc_descset *set, const refl_req *req, const char *needle)
{
	refl_resp *resp = ask(set, req);

	assert_int_equal(resp->message_response_case, RESP(ERROR_RESPONSE));
	assert_int_equal(resp->error_response->error_code, 5);
	assert_non_null(strstr(resp->error_response->error_message, needle));
	assert_true(strlen(resp->error_response->error_message) < 300);
	drop(resp);
}

static void test_list_services(void **state)
{
	struct fixture *f = *state;
	refl_req req = make_req(REQ(LIST_SERVICES), "*");
	refl_resp *resp = ask(f->real, &req);
	const Grpc__Reflection__V1__ListServiceResponse *lr;

	assert_int_equal(resp->message_response_case, RESP(LIST_SERVICES_RESPONSE));
	lr = resp->list_services_response;
	assert_int_equal(lr->n_service, 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(lr->service[i]->name, services[i]);
	assert_string_equal(resp->original_request->list_services, "*");
	drop(resp);
}

static void test_file_by_filename(void **state)
{
	static const char *const ca[] = { "trstctl/v1/ca.proto",
					  "google/protobuf/timestamp.proto" };
	static const char *const ts[] = { "google/protobuf/timestamp.proto" };
	struct fixture *f = *state;
	refl_req req = make_req(REQ(FILE_BY_FILENAME), "trstctl/v1/ca.proto");
	refl_resp *resp = ask(f->real, &req);

	assert_files(resp, ca, 2);
	drop(resp);
	req.file_by_filename = "google/protobuf/timestamp.proto";
	resp = ask(f->real, &req);
	assert_files(resp, ts, 1);
	drop(resp);
	req.file_by_filename = "trstctl/v1/nope.proto";
	expect_not_found(f->real, &req, "trstctl/v1/nope.proto");
}

static void test_file_containing_symbol(void **state)
{
	static const struct {
		char *sym;
		const char *want[2];
		size_t n;
	} cases[] = {
		{ "trstctl.v1.Audit",
		  { "trstctl/v1/audit.proto", "google/protobuf/timestamp.proto" },
		  2 },
		{ "trstctl.v1.Audit.WatchEvents",
		  { "trstctl/v1/audit.proto", "google/protobuf/timestamp.proto" },
		  2 },
		{ "trstctl.v1.Owner",
		  { "trstctl/v1/ca.proto", "google/protobuf/timestamp.proto" },
		  2 },
		{ "grpc.reflection.v1alpha.ServerReflection",
		  { "grpc/reflection/v1alpha/reflection.proto" },
		  1 },
		{ "grpc.health.v1.HealthCheckResponse.ServingStatus",
		  { "grpc/health/v1/health.proto" },
		  1 },
	};
	struct fixture *f = *state;
	refl_req req = make_req(REQ(FILE_CONTAINING_SYMBOL), NULL);
	refl_resp *resp;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		req.file_containing_symbol = cases[i].sym;
		resp = ask(f->real, &req);
		assert_files(resp, cases[i].want, cases[i].n);
		drop(resp);
	}
	req.file_containing_symbol = "trstctl.v1.NoSuchThing";
	expect_not_found(f->real, &req, "trstctl.v1.NoSuchThing");
}

static void test_extensions(void **state)
{
	static const char *const b[] = { "b.proto", "a.proto" };
	struct fixture *f = *state;
	Grpc__Reflection__V1__ExtensionRequest ext = GRPC__REFLECTION__V1__EXTENSION_REQUEST__INIT;
	refl_req req = make_req(REQ(FILE_CONTAINING_EXTENSION), NULL);
	const Grpc__Reflection__V1__ExtensionNumberResponse *er;
	refl_resp *resp;

	req.file_containing_extension = &ext;
	ext.containing_type = "t.a.Outer";
	ext.extension_number = 101;
	resp = ask(f->synth, &req);
	assert_files(resp, b, 2);
	drop(resp);
	ext.extension_number = 7;
	expect_not_found(f->synth, &req, "t.a.Outer 7");
	ext.containing_type = "trstctl.v1.Owner";
	expect_not_found(f->real, &req, "trstctl.v1.Owner");

	req = make_req(REQ(ALL_EXTENSION_NUMBERS_OF_TYPE), "t.a.Outer");
	resp = ask(f->synth, &req);
	assert_int_equal(resp->message_response_case, RESP(ALL_EXTENSION_NUMBERS_RESPONSE));
	er = resp->all_extension_numbers_response;
	assert_string_equal(er->base_type_name, "t.a.Outer");
	assert_int_equal(er->n_extension_number, 2);
	assert_int_equal(er->extension_number[0], 100);
	assert_int_equal(er->extension_number[1], 101);
	drop(resp);

	/* A message without extensions: an empty answer, not an error. */
	req.all_extension_numbers_of_type = "trstctl.v1.Owner";
	resp = ask(f->real, &req);
	assert_int_equal(resp->message_response_case, RESP(ALL_EXTENSION_NUMBERS_RESPONSE));
	assert_string_equal(resp->all_extension_numbers_response->base_type_name,
			    "trstctl.v1.Owner");
	assert_int_equal(resp->all_extension_numbers_response->n_extension_number, 0);
	drop(resp);

	/* Unknown types and non-messages are NOT_FOUND. */
	req.all_extension_numbers_of_type = "trstctl.v1.Nope";
	expect_not_found(f->real, &req, "trstctl.v1.Nope");
	req.all_extension_numbers_of_type = "trstctl.v1.CA";
	expect_not_found(f->real, &req, "trstctl.v1.CA");
}

static void test_not_set(void **state)
{
	struct fixture *f = *state;
	refl_req req = make_req(REQ(_NOT_SET), NULL);

	expect_not_found(f->real, &req, "unsupported");
}

static void test_long_name_is_cut(void **state)
{
	struct fixture *f = *state;
	char *name = malloc(5001);
	refl_req req;

	assert_non_null(name);
	memset(name, 'q', 5000);
	name[5000] = '\0';
	req = make_req(REQ(FILE_CONTAINING_SYMBOL), name);
	expect_not_found(f->real, &req, "qqqq"); /* and cut to a bounded length */
	free(name);
}

static void test_alloc_failure(void **state)
{
	static const int kinds[] = { REQ(LIST_SERVICES), REQ(FILE_BY_FILENAME),
				     REQ(FILE_CONTAINING_SYMBOL),
				     REQ(ALL_EXTENSION_NUMBERS_OF_TYPE) };
	static char *const args[] = { "", "trstctl/v1/ca.proto", "nope", "t.a.Outer" };
	struct fixture *f = *state;

	for (size_t k = 0; k < 4; k++) {
		const struct rpc_descset *set = k == 3 ? f->synth : f->real;
		refl_req req = make_req(kinds[k], args[k]);
		int ok = 0;

		for (int n = 0; n < 12; n++) {
			struct arena a = { .fail_after = n };
			refl_resp *resp = NULL;
			int r = rpc_reflection_answer(set, services, 3, &req, arena_alloc, &a,
						      &resp);

			if (r == 0) {
				assert_non_null(resp);
				ok++;
			} else {
				assert_int_equal(r, -ENOMEM);
				assert_null(resp);
			}
			arena_free(&a);
		}
		assert_true(ok > 0 && ok < 12);
	}
	assert_int_equal(rpc_reflection_answer(
				 NULL, services, 3,
				 &(refl_req)GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT,
				 arena_alloc, NULL, &(refl_resp *){ NULL }),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_services),
		cmocka_unit_test(test_file_by_filename),
		cmocka_unit_test(test_file_containing_symbol),
		cmocka_unit_test(test_extensions),
		cmocka_unit_test(test_not_set),
		cmocka_unit_test(test_long_name_is_cut),
		cmocka_unit_test(test_alloc_failure),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
