/*
 * libFuzzer target for rpc/descset (the descriptor-set parser) and the reflection answers
 * built on it. Each input is tried twice: as a raw FileDescriptorSet, and as edits to the
 * real embedded set (3 bytes each: 16-bit offset, xor mask; one or two trailing bytes pick
 * a cut length), which reaches deep into valid structure much faster than random bytes.
 * A set that loads must answer every query without fault.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "descset.h"
#include "reflection.h"

extern const unsigned char trstctl_descset[];
extern const size_t trstctl_descset_len;

/* The oneof case names protoc-c generates are too long to read inline. */
#define REQ(x) GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_##x

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct blocks {
	void *head;
};

static void *block_alloc(void *ctx, size_t n)
{
	struct blocks *b = ctx;
	void **p = malloc(sizeof(max_align_t) + n);

	if (!p)
		return NULL;
	*p = b->head;
	b->head = p;
	return (char *)p + sizeof(max_align_t);
}

static void blocks_free(struct blocks *b)
{
	while (b->head) {
		void *next = *(void **)b->head;

		free(b->head);
		b->head = next;
	}
}

static void ask(const struct rpc_descset *set, int which, char *arg)
{
	static const char *const services[] = { "trstctl.v1.CA" };
	Grpc__Reflection__V1__ServerReflectionRequest req =
		GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
	Grpc__Reflection__V1__ExtensionRequest ext = GRPC__REFLECTION__V1__EXTENSION_REQUEST__INIT;
	Grpc__Reflection__V1__ServerReflectionResponse *resp;
	struct blocks b = { 0 };

	req.message_request_case = which;
	req.file_by_filename = arg;
	if (which == REQ(FILE_CONTAINING_EXTENSION)) {
		ext.containing_type = arg;
		ext.extension_number = 100;
		req.file_containing_extension = &ext;
	}
	if (rpc_reflection_answer(set, services, 1, &req, block_alloc, &b, &resp) == 0) {
		size_t len =
			grpc__reflection__v1__server_reflection_response__get_packed_size(resp);
		uint8_t *out = malloc(len ? len : 1);

		if (out)
			grpc__reflection__v1__server_reflection_response__pack(resp, out);
		free(out);
	}
	blocks_free(&b);
}

static void exercise(const uint8_t *buf, size_t len)
{
	struct rpc_descset *set = NULL;
	size_t n, *order;
	int r = rpc_descset_load(buf, len, &set);

	if (r < 0) {
		if (r != -EPROTO && r != -ENOMEM)
			abort();
		return;
	}
	n = rpc_descset_n_files(set);
	order = calloc(n ? n : 1, sizeof(*order));
	for (size_t i = 0; order && i < n; i++) {
		const char *name = rpc_descset_file_name(set, i);

		if (rpc_descset_find_file(set, name) < 0)
			abort();
		if (rpc_descset_file_closure(set, i, order) < 1)
			abort();
		ask(set, REQ(FILE_BY_FILENAME), (char *)name);
	}
	free(order);
	ask(set, REQ(FILE_CONTAINING_SYMBOL), "trstctl.v1.CA.CreateOwner");
	ask(set, REQ(ALL_EXTENSION_NUMBERS_OF_TYPE), "trstctl.v1.Owner");
	ask(set, REQ(FILE_CONTAINING_EXTENSION), "trstctl.v1.Owner");
	ask(set, REQ(LIST_SERVICES), "");
	rpc_descset_free(set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;
	size_t len = trstctl_descset_len, i;

	exercise(data, size);

	if (size % 3)
		len = ((size_t)data[size - size % 3] << 8 | data[size - 1]) %
		      (trstctl_descset_len + 1);
	/* A heap copy of exactly len bytes, so ASan sees any read past the end. */
	copy = malloc(len ? len : 1);
	if (!copy)
		return 0;
	memcpy(copy, trstctl_descset, len);
	for (i = 0; len && i + 3 <= size; i += 3)
		copy[((size_t)data[i] << 8 | data[i + 1]) % len] ^= data[i + 2];
	exercise(copy, len);
	free(copy);
	return 0;
}
