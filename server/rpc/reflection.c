/*
 * grpc.reflection answers built from the descriptor set. Each request becomes one
 * response allocated entirely from the caller's allocator (the runtime passes the call's
 * arena), so the response is dropped with the call. File answers carry the serialized
 * files straight from the embedded set (zero-copy) with their transitive dependencies,
 * which clients such as grpcurl need to build a descriptor pool. The stream may resend a
 * file already sent; the protocol allows that and clients dedupe by name.
 */
#include "reflection.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* What an error message echoes of the request at most, so answers stay small. */
#define REFLECTION_ECHO_MAX 256

/* The oneof case names protoc-c generates are too long to read inline. */
#define REQ(x) GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_##x
#define RESP(x) GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_##x

typedef Grpc__Reflection__V1__ServerReflectionRequest refl_req;
typedef Grpc__Reflection__V1__ServerReflectionResponse refl_resp;

struct answer {
	void *(*alloc)(void *ctx, size_t n);
	void *ctx;
	refl_resp *resp;
};

static void *answer_alloc(struct answer *a, size_t n)
{
	return a->alloc(a->ctx, n ? n : 1);
}

static int not_found(struct answer *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int not_found(struct answer *a, const char *fmt, ...)
{
	static const Grpc__Reflection__V1__ErrorResponse init =
		GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
	Grpc__Reflection__V1__ErrorResponse *err = answer_alloc(a, sizeof(*err));
	va_list ap;
	char *msg;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (!err || n < 0)
		return -ENOMEM;
	msg = answer_alloc(a, (size_t)n + 1);
	if (!msg)
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(msg, (size_t)n + 1, fmt, ap);
	va_end(ap);
	*err = init;
	err->error_code = 5; /* NOT_FOUND */
	err->error_message = msg;
	a->resp->message_response_case = RESP(ERROR_RESPONSE);
	a->resp->error_response = err;
	return 0;
}

/* A FileDescriptorResponse with file index `file` first, then its dependencies. */
static int file_answer(struct answer *a, const struct rpc_descset *set, int file)
{
	static const Grpc__Reflection__V1__FileDescriptorResponse init =
		GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
	Grpc__Reflection__V1__FileDescriptorResponse *fr = answer_alloc(a, sizeof(*fr));
	size_t n_files = rpc_descset_n_files(set);
	size_t *order = answer_alloc(a, n_files * sizeof(*order));
	int n;

	if (!fr || !order)
		return -ENOMEM;
	n = rpc_descset_file_closure(set, (size_t)file, order);
	if (n < 0)
		return n;
	*fr = init;
	fr->file_descriptor_proto = answer_alloc(a, (size_t)n * sizeof(*fr->file_descriptor_proto));
	if (!fr->file_descriptor_proto)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		const uint8_t *data;
		size_t len;

		if (rpc_descset_file_bytes(set, order[i], &data, &len) < 0)
			return -ENOENT;
		/* protobuf-c only reads packed fields; the cast drops const for the struct. */
		fr->file_descriptor_proto[i].data = (uint8_t *)data;
		fr->file_descriptor_proto[i].len = len;
	}
	fr->n_file_descriptor_proto = (size_t)n;
	a->resp->message_response_case = RESP(FILE_DESCRIPTOR_RESPONSE);
	a->resp->file_descriptor_response = fr;
	return 0;
}

static int list_answer(struct answer *a, const char *const *services, size_t n_services)
{
	static const Grpc__Reflection__V1__ListServiceResponse init =
		GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
	static const Grpc__Reflection__V1__ServiceResponse sinit =
		GRPC__REFLECTION__V1__SERVICE_RESPONSE__INIT;
	Grpc__Reflection__V1__ListServiceResponse *lr = answer_alloc(a, sizeof(*lr));
	Grpc__Reflection__V1__ServiceResponse *items;

	items = answer_alloc(a, n_services * sizeof(*items));
	if (!lr || !items)
		return -ENOMEM;
	*lr = init;
	lr->service = answer_alloc(a, n_services * sizeof(*lr->service));
	if (!lr->service)
		return -ENOMEM;
	for (size_t i = 0; i < n_services; i++) {
		items[i] = sinit;
		items[i].name = (char *)services[i];
		lr->service[i] = &items[i];
	}
	lr->n_service = n_services;
	a->resp->message_response_case = RESP(LIST_SERVICES_RESPONSE);
	a->resp->list_services_response = lr;
	return 0;
}

static int extension_numbers_answer(struct answer *a, const struct rpc_descset *set,
				    const char *type)
{
	static const Grpc__Reflection__V1__ExtensionNumberResponse init =
		GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT;
	Grpc__Reflection__V1__ExtensionNumberResponse *er;
	enum rpc_descset_kind kind;
	const int32_t *numbers;
	int n;

	if (rpc_descset_find_symbol(set, type, &kind) < 0 || kind != RPC_DESCSET_MESSAGE)
		return not_found(a, "message type not found: %.*s", REFLECTION_ECHO_MAX, type);
	er = answer_alloc(a, sizeof(*er));
	if (!er)
		return -ENOMEM;
	*er = init;
	er->base_type_name = (char *)(type[0] == '.' ? type + 1 : type);
	n = rpc_descset_extension_numbers(set, type, &numbers);
	if (n > 0) {
		er->extension_number = answer_alloc(a, (size_t)n * sizeof(*numbers));
		if (!er->extension_number)
			return -ENOMEM;
		memcpy(er->extension_number, numbers, (size_t)n * sizeof(*numbers));
		er->n_extension_number = (size_t)n;
	}
	a->resp->message_response_case = RESP(ALL_EXTENSION_NUMBERS_RESPONSE);
	a->resp->all_extension_numbers_response = er;
	return 0;
}

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

static int dispatch(struct answer *a, const struct rpc_descset *set, const char *const *services,
		    size_t n_services, const refl_req *req)
{
	const Grpc__Reflection__V1__ExtensionRequest *ext;
	const char *name;
	int file;

	switch (req->message_request_case) {
	case REQ(LIST_SERVICES):
		return list_answer(a, services, n_services);
	case REQ(FILE_BY_FILENAME):
		name = str_or_empty(req->file_by_filename);
		file = rpc_descset_find_file(set, name);
		if (file < 0)
			return not_found(a, "file not found: %.*s", REFLECTION_ECHO_MAX, name);
		return file_answer(a, set, file);
	case REQ(FILE_CONTAINING_SYMBOL):
		name = str_or_empty(req->file_containing_symbol);
		file = rpc_descset_find_symbol(set, name, NULL);
		if (file < 0)
			return not_found(a, "symbol not found: %.*s", REFLECTION_ECHO_MAX, name);
		return file_answer(a, set, file);
	case REQ(FILE_CONTAINING_EXTENSION):
		ext = req->file_containing_extension;
		name = str_or_empty(ext ? ext->containing_type : NULL);
		file = ext ? rpc_descset_find_extension(set, name, ext->extension_number) : -ENOENT;
		if (file < 0)
			return not_found(a, "extension not found: %.*s %d", REFLECTION_ECHO_MAX,
					 name, ext ? ext->extension_number : 0);
		return file_answer(a, set, file);
	case REQ(ALL_EXTENSION_NUMBERS_OF_TYPE):
		return extension_numbers_answer(a, set,
						str_or_empty(req->all_extension_numbers_of_type));
	default:
		return not_found(a, "unsupported reflection request (case %d)",
				 (int)req->message_request_case);
	}
}

int rpc_reflection_answer(const struct rpc_descset *set, const char *const *services,
			  size_t n_services, const refl_req *req,
			  void *(*alloc)(void *ctx, size_t n), void *alloc_ctx,
			  refl_resp **ret_resp)
{
	static const refl_resp init = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
	struct answer a = { .alloc = alloc, .ctx = alloc_ctx };
	int r;

	if (!set || (!services && n_services) || !req || !alloc || !ret_resp)
		return -EINVAL;
	a.resp = answer_alloc(&a, sizeof(*a.resp));
	if (!a.resp)
		return -ENOMEM;
	*a.resp = init;
	a.resp->valid_host = (char *)str_or_empty(req->host);
	/* The response points at the request: the caller packs it before freeing req. */
	a.resp->original_request = (refl_req *)req;
	r = dispatch(&a, set, services, n_services, req);
	if (r < 0)
		return r;
	*ret_resp = a.resp;
	return 0;
}
