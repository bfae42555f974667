/*
 * Unit tests for descset: the real embedded set (method kinds, symbols, dependency
 * closure), a model check of every symbol against a linear reference walk, a synthetic set
 * for what the real one lacks (extensions, top-level enums, duplicates, missing imports),
 * table-driven malformed wire data, and truncated or bit-flipped copies of the real set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "descset.h"
#include "test-descset-synth.h"

extern const unsigned char trstctl_descset[];
extern const size_t trstctl_descset_len;

static struct rpc_descset *load_real(void)
{
	struct rpc_descset *set = NULL;

	assert_int_equal(rpc_descset_load(trstctl_descset, trstctl_descset_len, &set), 0);
	assert_non_null(set);
	return set;
}

static void test_real_files(void **state)
{
	static const char *const names[] = {
		"google/protobuf/timestamp.proto",
		"trstctl/v1/ca.proto",
		"trstctl/v1/secrets.proto",
		"trstctl/v1/audit.proto",
		"trstctl/v1/policy.proto",
		"trstctl/v1/guard.proto",
		"trstctl/v1/assist.proto",
		"grpc/health/v1/health.proto",
		"grpc/reflection/v1/reflection.proto",
		"grpc/reflection/v1alpha/reflection.proto",
	};
	struct rpc_descset *set = load_real();

	assert_int_equal(rpc_descset_n_files(set), 10);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int f = rpc_descset_find_file(set, names[i]);
		const uint8_t *data;
		size_t len;

		assert_true(f >= 0);
		assert_string_equal(rpc_descset_file_name(set, (size_t)f), names[i]);
		assert_int_equal(rpc_descset_file_bytes(set, (size_t)f, &data, &len), 0);
		/* Zero-copy: the bytes lie inside the embedded buffer. */
		assert_true(data > trstctl_descset &&
			    data + len <= trstctl_descset + trstctl_descset_len);
	}
	assert_int_equal(rpc_descset_find_file(set, "trstctl/v1/nope.proto"), -ENOENT);
	assert_int_equal(rpc_descset_find_file(set, ""), -ENOENT);
	assert_null(rpc_descset_file_name(set, 10));
	rpc_descset_free(set);
}

static void test_method_kinds(void **state)
{
	static const struct {
		const char *svc, *method;
		int r, cs, ss;
	} cases[] = {
		{ "trstctl.v1.CA", "CreateOwner", 0, 0, 0 },
		{ "trstctl.v1.Audit", "WatchEvents", 0, 0, 1 },
		{ "trstctl.v1.Audit", "ListEvents", 0, 0, 0 },
		{ "grpc.reflection.v1.ServerReflection", "ServerReflectionInfo", 0, 1, 1 },
		{ "grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo", 0, 1, 1 },
		{ "grpc.health.v1.Health", "Watch", 0, 0, 1 },
		{ ".trstctl.v1.CA", "GetCRL", 0, 0, 0 },
		{ "trstctl.v1.CA", "Nope", -ENOENT, 0, 0 },
		{ "trstctl.v1.CA", "", -ENOENT, 0, 0 },
		{ "trstctl.v1.C", "CreateOwner", -ENOENT, 0, 0 },
		{ "trstctl.v1", "CA", -ENOENT, 0, 0 },	     /* a service, not a method */
		{ "trstctl.v1.Owner", "id", -ENOENT, 0, 0 }, /* a field, not a method */
		{ "trstctl.v1.CA.CreateOwner", "", -ENOENT, 0, 0 },
	};
	struct rpc_descset *set = load_real();

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int cs = -1, ss = -1;
		int r = rpc_descset_method_kind(set, cases[i].svc, cases[i].method, &cs, &ss);

		assert_int_equal(r, cases[i].r);
		if (r == 0) {
			assert_int_equal(cs, cases[i].cs);
			assert_int_equal(ss, cases[i].ss);
		} else {
			assert_int_equal(cs, -1); /* untouched on failure */
		}
	}
	assert_int_equal(rpc_descset_method_kind(set, NULL, "x", &(int){ 0 }, &(int){ 0 }),
			 -EINVAL);
	rpc_descset_free(set);
}

static void test_symbols(void **state)
{
	static const struct {
		const char *sym, *file;
		enum rpc_descset_kind kind;
	} cases[] = {
		{ "trstctl.v1.Owner", "trstctl/v1/ca.proto", RPC_DESCSET_MESSAGE },
		{ ".trstctl.v1.Owner", "trstctl/v1/ca.proto", RPC_DESCSET_MESSAGE },
		{ "trstctl.v1.Owner.email", "trstctl/v1/ca.proto", RPC_DESCSET_FIELD },
		{ "trstctl.v1.Audit", "trstctl/v1/audit.proto", RPC_DESCSET_SERVICE },
		{ "trstctl.v1.Audit.WatchEvents", "trstctl/v1/audit.proto", RPC_DESCSET_METHOD },
		{ "trstctl.v1.Guard", "trstctl/v1/guard.proto", RPC_DESCSET_SERVICE },
		{ "trstctl.v1.Assist.Ask", "trstctl/v1/assist.proto", RPC_DESCSET_METHOD },
		{ "trstctl.v1.AskResponse.redacted", "trstctl/v1/assist.proto", RPC_DESCSET_FIELD },
		{ "google.protobuf.Timestamp", "google/protobuf/timestamp.proto",
		  RPC_DESCSET_MESSAGE },
		{ "grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto",
		  RPC_DESCSET_ENUM },
		{ "grpc.health.v1.HealthCheckResponse.SERVING", "grpc/health/v1/health.proto",
		  RPC_DESCSET_ENUM_VALUE },
		{ "grpc.reflection.v1alpha.ServerReflectionRequest",
		  "grpc/reflection/v1alpha/reflection.proto", RPC_DESCSET_MESSAGE },
		{ "grpc.health.v1", "grpc/health/v1/health.proto", RPC_DESCSET_PACKAGE },
		{ "trstctl.v1.Owne", NULL, 0 },
		{ "trstctl.v1.OwnerX", NULL, 0 },
		{ "trstctl.v1.Owner.", NULL, 0 },
		{ "trstctl", NULL, 0 },
		{ "", NULL, 0 },
		{ ".", NULL, 0 },
	};
	struct rpc_descset *set = load_real();

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum rpc_descset_kind kind = (enum rpc_descset_kind) - 1;
		const char *file = rpc_descset_file_of_symbol(set, cases[i].sym);
		int f = rpc_descset_find_symbol(set, cases[i].sym, &kind);

		if (!cases[i].file) {
			assert_null(file);
			assert_int_equal(f, -ENOENT);
			continue;
		}
		assert_non_null(file);
		assert_string_equal(file, cases[i].file);
		assert_string_equal(rpc_descset_file_name(set, (size_t)f), cases[i].file);
		assert_int_equal(kind, cases[i].kind);
	}
	rpc_descset_free(set);
}

static void assert_closure(const struct rpc_descset *set, const char *file, const char *const *want,
			   size_t n_want)
{
	size_t out[16];
	int f = rpc_descset_find_file(set, file), n;

	assert_true(f >= 0);
	assert_true(rpc_descset_n_files(set) <= 16);
	n = rpc_descset_file_closure(set, (size_t)f, out);
	assert_int_equal(n, (int)n_want);
	for (size_t i = 0; i < n_want; i++)
		assert_string_equal(rpc_descset_file_name(set, out[i]), want[i]);
}

static void test_closure(void **state)
{
	static const char *const ca[] = { "trstctl/v1/ca.proto",
					  "google/protobuf/timestamp.proto" };
	static const char *const health[] = { "grpc/health/v1/health.proto" };
	struct rpc_descset *set = load_real();

	assert_closure(set, "trstctl/v1/ca.proto", ca, 2);
	assert_closure(set, "grpc/health/v1/health.proto", health, 1);
	assert_int_equal(rpc_descset_file_closure(set, 99, (size_t[1]){ 0 }), -ENOENT);
	rpc_descset_free(set);
}

/* Model check ---------------------------------------------------------------------------- */

struct ref {
	char **names;
	int *files;
	size_t n, cap;
};

static void ref_add(struct ref *r, const char *scope, const char *name, int file)
{
	char *s;

	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 256;
		r->names = realloc(r->names, r->cap * sizeof(*r->names));
		r->files = realloc(r->files, r->cap * sizeof(*r->files));
		assert_non_null(r->names);
		assert_non_null(r->files);
	}
	assert_true(asprintf(&s, "%s%s%s", scope, scope[0] ? "." : "", name) > 0);
	r->names[r->n] = s;
	r->files[r->n++] = file;
}

static void ref_enum(struct ref *r, const char *scope,
		     const Google__Protobuf__EnumDescriptorProto *e, int file)
{
	ref_add(r, scope, e->name, file);
	for (size_t i = 0; i < e->n_value; i++)
		ref_add(r, scope, e->value[i]->name, file);
}

static void ref_message(struct ref *r, const char *scope,
			const Google__Protobuf__DescriptorProto *m, int file)
{
	char *full;
	size_t i;

	ref_add(r, scope, m->name, file);
	full = r->names[r->n - 1];
	for (i = 0; i < m->n_field; i++)
		ref_add(r, full, m->field[i]->name, file);
	for (i = 0; i < m->n_extension; i++)
		ref_add(r, full, m->extension[i]->name, file);
	for (i = 0; i < m->n_nested_type; i++)
		ref_message(r, full, m->nested_type[i], file);
	for (i = 0; i < m->n_enum_type; i++)
		ref_enum(r, full, m->enum_type[i], file);
}

/* The first file (in set order) defining name, by linear search, or -ENOENT. */
static int ref_find(const struct ref *r, const char *name)
{
	int best = -ENOENT;

	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->names[i], name) == 0 && (best < 0 || r->files[i] < best))
			best = r->files[i];
	return best;
}

static void test_model(void **state)
{
	Google__Protobuf__FileDescriptorSet *fds = google__protobuf__file_descriptor_set__unpack(
		NULL, trstctl_descset_len, trstctl_descset);
	struct rpc_descset *set = load_real();
	struct ref r = { 0 };
	size_t n_ref;

	assert_non_null(fds);
	for (size_t f = 0; f < fds->n_file; f++) {
		const Google__Protobuf__FileDescriptorProto *fd = fds->file[f];
		const char *pkg = fd->package ? fd->package : "";
		size_t i;

		if (pkg[0])
			ref_add(&r, "", pkg, (int)f);
		for (i = 0; i < fd->n_message_type; i++)
			ref_message(&r, pkg, fd->message_type[i], (int)f);
		for (i = 0; i < fd->n_enum_type; i++)
			ref_enum(&r, pkg, fd->enum_type[i], (int)f);
		for (i = 0; i < fd->n_extension; i++)
			ref_add(&r, pkg, fd->extension[i]->name, (int)f);
		for (i = 0; i < fd->n_service; i++) {
			ref_add(&r, pkg, fd->service[i]->name, (int)f);
			for (size_t m = 0; m < fd->service[i]->n_method; m++)
				ref_add(&r, r.names[r.n - 1 - m], fd->service[i]->method[m]->name,
					(int)f);
		}
	}
	assert_true(r.n > 300);
	n_ref = r.n;
	for (size_t i = 0; i < n_ref; i++) {
		size_t len = strlen(r.names[i]);
		char q[512];

		assert_int_equal(rpc_descset_find_symbol(set, r.names[i], NULL),
				 ref_find(&r, r.names[i]));
		/* Near misses: longer, shorter, last byte bumped. */
		snprintf(q, sizeof(q), "%sx", r.names[i]);
		assert_int_equal(rpc_descset_find_symbol(set, q, NULL), ref_find(&r, q));
		snprintf(q, sizeof(q), "%.*s", (int)len - 1, r.names[i]);
		assert_int_equal(rpc_descset_find_symbol(set, q, NULL), ref_find(&r, q));
		snprintf(q, sizeof(q), "%s", r.names[i]);
		q[len - 1]++;
		assert_int_equal(rpc_descset_find_symbol(set, q, NULL), ref_find(&r, q));
	}
	for (size_t i = 0; i < r.n; i++)
		free(r.names[i]);
	free(r.names);
	free(r.files);
	google__protobuf__file_descriptor_set__free_unpacked(fds, NULL);
	rpc_descset_free(set);
}

/* Synthetic set -------------------------------------------------------------------------- */

static void test_synthetic(void **state)
{
	static const char *const b_closure[] = { "b.proto", "a.proto" };
	static const struct {
		const char *sym;
		int in_b; /* else in a.proto */
		enum rpc_descset_kind kind;
	} syms[] = {
		{ "t.a.Color", 0, RPC_DESCSET_ENUM },
		{ "t.a.RED", 0, RPC_DESCSET_ENUM_VALUE },
		{ "t.a.Outer.Inner", 0, RPC_DESCSET_MESSAGE },
		/* c.proto redefines t.a.Outer: the first file in set order wins. */
		{ "t.a.Outer", 0, RPC_DESCSET_MESSAGE },
		{ "t.a", 0, RPC_DESCSET_PACKAGE },
		{ "t.b.ext_b", 1, RPC_DESCSET_EXTENSION },
		{ "t.b.Holder.ext_c", 1, RPC_DESCSET_EXTENSION },
		{ "t.b.Svc.Up", 1, RPC_DESCSET_METHOD },
	};
	struct rpc_descset *set = NULL;
	enum rpc_descset_kind kind;
	const int32_t *numbers;
	size_t len;
	uint8_t *buf = synth_descset(&len);
	int a, b, cs, ss;

	assert_non_null(buf);
	assert_int_equal(rpc_descset_load(buf, len, &set), 0);
	assert_int_equal(rpc_descset_n_files(set), 3);
	a = rpc_descset_find_file(set, "a.proto");
	b = rpc_descset_find_file(set, "b.proto");
	assert_true(a >= 0 && b >= 0);

	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		kind = (enum rpc_descset_kind) - 1;
		assert_int_equal(rpc_descset_find_symbol(set, syms[i].sym, &kind),
				 syms[i].in_b ? b : a);
		assert_int_equal(kind, syms[i].kind);
	}

	assert_int_equal(rpc_descset_find_extension(set, "t.a.Outer", 100), b);
	assert_int_equal(rpc_descset_find_extension(set, ".t.a.Outer", 101), b);
	assert_int_equal(rpc_descset_find_extension(set, "t.a.Outer", 102), -ENOENT);
	assert_int_equal(rpc_descset_find_extension(set, "t.a.Outer.Inner", 100), -ENOENT);
	assert_int_equal(rpc_descset_extension_numbers(set, "t.a.Outer", &numbers), 2);
	assert_int_equal(numbers[0], 100);
	assert_int_equal(numbers[1], 101);
	assert_int_equal(rpc_descset_extension_numbers(set, "t.a.Outer.Inner", &numbers), 0);
	assert_null(numbers);

	assert_int_equal(rpc_descset_method_kind(set, "t.b.Svc", "Up", &cs, &ss), 0);
	assert_int_equal(cs, 0);
	assert_int_equal(ss, 1);
	/* missing.proto is skipped, a.proto follows b.proto. */
	assert_closure(set, "b.proto", b_closure, 2);
	rpc_descset_free(set);
	free(buf);
}

/* Malformed input ------------------------------------------------------------------------ */

static void test_wire_table(void **state)
{
	static const struct {
		const char *bytes;
		size_t len;
		int r;
		size_t files;
	} cases[] = {
		{ "", 0, 0, 0 },
		{ "\x0a", 1, -EPROTO, 0 }, /* file without a length */
		{ "\x0a\x05"
		  "abc",
		  5, -EPROTO, 0 },			  /* length past the end */
		{ "\x0a\x80", 2, -EPROTO, 0 },		  /* truncated length varint */
		{ "\x0a\x00", 2, -EPROTO, 0 },		  /* a file without a name */
		{ "\x0a\x02\xff\xff", 4, -EPROTO, 0 },	  /* protoc-c cannot unpack it */
		{ "\x0a\x03\x0a\x01x", 5, 0, 1 },	  /* file "x" */
		{ "\x00", 1, -EPROTO, 0 },		  /* field number 0 */
		{ "\x0b", 1, -EPROTO, 0 },		  /* start group */
		{ "\x08", 1, -EPROTO, 0 },		  /* varint field without a value */
		{ "\x08\x96\x01", 3, 0, 0 },		  /* unknown varint field: skipped */
		{ "\x11\x01\x02", 3, -EPROTO, 0 },	  /* truncated fixed64 */
		{ "\x15\x01\x02\x03\x04", 5, 0, 0 },	  /* fixed32: skipped */
		{ "\x12\x00\x0a\x03\x0a\x01y", 7, 0, 1 }, /* field 2 skipped, then a file */
		{ "\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11, -EPROTO, 0 },
		{ "\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12, -EPROTO, 0 },
		{ "\x0a\x05\x22\x03\x0a\x01X", 7, -EPROTO, 0 }, /* message without a file name */
		{ "\x0a\x05\x0a\x01x\x22\x00", 7, -EPROTO, 0 }, /* message without a name */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rpc_descset *set = NULL;
		int r = rpc_descset_load((const uint8_t *)cases[i].bytes, cases[i].len, &set);

		if (r != cases[i].r)
			fail_msg("case %zu: got %d want %d", i, r, cases[i].r);
		if (r == 0)
			assert_int_equal(rpc_descset_n_files(set), cases[i].files);
		else
			assert_null(set);
		rpc_descset_free(set);
	}
	assert_int_equal(rpc_descset_load(NULL, 1, &(struct rpc_descset *){ NULL }), -EINVAL);
	assert_null(rpc_descset_free(NULL));
}

static size_t put_varint(uint8_t *p, size_t v)
{
	size_t n = 0;

	for (; v >= 0x80; v >>= 7)
		p[n++] = (uint8_t)(v | 0x80);
	p[n++] = (uint8_t)v;
	return n;
}

/*
 * A set of one file "f" holding message M nested `depth` times (M.M.M...). Every wrapper
 * ends with what it wraps, so the bytes are the headers outermost first, then the
 * innermost M; lengths are computed inside out first.
 */
static uint8_t *nested_set(int depth, size_t *ret_len)
{
	size_t *lens = calloc((size_t)depth + 2, sizeof(*lens)), pos = 0;
	uint8_t *buf, tmp[10];
	int level;

	assert_non_null(lens);
	lens[0] = 3; /* DescriptorProto { name: "M" } */
	for (level = 1; level <= depth + 1; level++)
		lens[level] = 4 + put_varint(tmp, lens[level - 1]) + lens[level - 1];
	buf = malloc(1 + 10 + lens[depth + 1]);
	assert_non_null(buf);
	buf[pos++] = 0x0a; /* FileDescriptorSet.file */
	pos += put_varint(buf + pos, lens[depth + 1]);
	for (level = depth + 1; level >= 1; level--) {
		/* The file wraps as message_type (4), each M as nested_type (3). */
		memcpy(buf + pos,
		       level == depth + 1 ? "\x0a\x01"
					    "f\x22" :
					    "\x0a\x01M\x1a",
		       4);
		pos += 4;
		pos += put_varint(buf + pos, lens[level - 1]);
	}
	memcpy(buf + pos, "\x0a\x01M", 3);
	*ret_len = pos + 3;
	free(lens);
	return buf;
}

/* Nesting deep enough to overflow protoc-c's recursive unpack is refused up front. */
static void test_deep_nesting(void **state)
{
	static const struct {
		int depth, r;
	} cases[] = { { 0, 0 }, { 50, 0 }, { 99, 0 }, { 100, -EPROTO }, { 100000, -EPROTO } };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rpc_descset *set = NULL;
		size_t len;
		uint8_t *buf = nested_set(cases[i].depth, &len);

		assert_int_equal(rpc_descset_load(buf, len, &set), cases[i].r);
		if (set)
			assert_int_equal(rpc_descset_find_symbol(set, "M.M", NULL),
					 cases[i].depth ? 0 : -ENOENT);
		rpc_descset_free(set);
		free(buf);
	}
}

/* Loads damaged bytes: -EPROTO or a set every query works on. Returns 1 when loaded. */
static int load_damaged(const uint8_t *buf, size_t len)
{
	struct rpc_descset *set = NULL;
	size_t out[64];
	int r = rpc_descset_load(buf, len, &set), cs, ss;

	if (r < 0) {
		assert_int_equal(r, -EPROTO);
		return 0;
	}
	for (size_t i = 0; i < rpc_descset_n_files(set) && i < 64; i++) {
		const char *name = rpc_descset_file_name(set, i);

		assert_true(rpc_descset_find_file(set, name) >= 0);
		if (rpc_descset_n_files(set) <= 64)
			assert_true(rpc_descset_file_closure(set, i, out) >= 1);
	}
	rpc_descset_find_symbol(set, "trstctl.v1.Owner", NULL);
	rpc_descset_method_kind(set, "trstctl.v1.CA", "CreateOwner", &cs, &ss);
	rpc_descset_free(set);
	return 1;
}

static void test_truncated(void **state)
{
	int loaded = 0, rejected = 0;

	for (size_t len = 0; len <= trstctl_descset_len; len += len < 600 ? 1 : 13) {
		if (load_damaged(trstctl_descset, len))
			loaded++;
		else
			rejected++;
	}
	assert_int_equal(load_damaged(trstctl_descset, trstctl_descset_len), 1);
	/* Most cut points fall inside a file; a few (0, file boundaries) load. */
	assert_true(loaded >= 1);
	assert_true(rejected > 1000);
}

static void test_flipped(void **state)
{
	uint8_t *buf = malloc(trstctl_descset_len);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	int loaded = 0;

	assert_non_null(buf);
	for (int iter = 0; iter < 3000; iter++) {
		memcpy(buf, trstctl_descset, trstctl_descset_len);
		for (int k = 0; k <= iter % 3; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[(x >> 8) % trstctl_descset_len] ^= (uint8_t)(1u << (x % 8));
		}
		loaded += load_damaged(buf, trstctl_descset_len);
	}
	free(buf);
	/* Flips inside strings still parse: both outcomes must occur. */
	assert_true(loaded > 0 && loaded < 3000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_files), cmocka_unit_test(test_method_kinds),
		cmocka_unit_test(test_symbols),	   cmocka_unit_test(test_closure),
		cmocka_unit_test(test_model),	   cmocka_unit_test(test_synthetic),
		cmocka_unit_test(test_wire_table), cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_truncated),  cmocka_unit_test(test_flipped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
