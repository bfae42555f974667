/*
 * The descriptor-set index. Loading walks the FileDescriptorSet wire format by hand
 * (field 1, length-delimited, is one FileDescriptorProto) so that each file's serialized
 * bytes stay available zero-copy for reflection, then unpacks each file with protoc-c's
 * descriptor.proto code and records every fully qualified name in one array sorted by
 * name (binary search; ties keep set order so the first definition wins). Extensions get
 * a second array sorted by (extendee, number). Full names live in a small block pool
 * owned by the set. Input is untrusted: every length is checked against the buffer and
 * nesting is bounded, so a malformed set fails with -EPROTO and never reads out of bounds.
 */
#include "descset.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "descriptor.pb-c.h"

/* Deeper message nesting than protobuf's own default recursion limit is rejected. */
#define DESCSET_MAX_DEPTH 100
#define DESCSET_POOL_BLOCK 8192

struct descset_file {
	const char *name;   /* fd->name, never NULL */
	const uint8_t *raw; /* serialized proto inside the loaded buffer */
	size_t raw_len;	    /* bytes at raw */
	uint32_t *deps;	    /* indexes of dependencies found in the set */
	size_t n_deps;	    /* entries in deps */
	/* unpacked, owned */
	Google__Protobuf__FileDescriptorProto *fd;
};

struct descset_sym {
	const char *name; /* full name without leading '.', in the pool */
	const void *desc; /* the MethodDescriptorProto for methods, else the definition */
	uint32_t file;	  /* defining file index */
	uint32_t seq;	  /* insertion order, the tie-break for duplicates */
	enum rpc_descset_kind kind;
};

struct descset_ext {
	const char *extendee; /* full name of the extended type, without leading '.' */
	int32_t number;	      /* extension field number */
	uint32_t file;	      /* declaring file index */
	uint32_t seq;	      /* insertion order */
};

struct descset_block {
	struct descset_block *next;
	size_t used;
	size_t size;
	char data[];
};

struct rpc_descset {
	struct descset_file *files; /* set order */
	size_t n_files;
	uint32_t *by_name;	  /* file indexes sorted by name (then set order) */
	struct descset_sym *syms; /* sorted by (name, seq) once loading is done */
	size_t n_syms, cap_syms;
	struct descset_ext *exts; /* sorted by (extendee, number, seq) */
	int32_t *ext_numbers;	  /* ext_numbers[i] == exts[i].number, for zero-copy answers */
	size_t n_exts, cap_exts;
	struct descset_block *pool; /* full-name storage */
};

/* Wire walk ------------------------------------------------------------------------------ */

static int read_varint(const uint8_t *buf, size_t len, size_t *pos, uint64_t *ret)
{
	uint64_t v = 0;

	for (unsigned int shift = 0; shift < 64; shift += 7) {
		uint8_t b;

		if (*pos >= len)
			return -EPROTO;
		b = buf[(*pos)++];
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*ret = v;
			return 0;
		}
	}
	return -EPROTO;
}

/* Skips one field's payload of the given wire type (groups are not accepted). */
static int skip_field(const uint8_t *buf, size_t len, size_t *pos, unsigned int wire)
{
	uint64_t v;
	int r;

	switch (wire) {
	case 0:
		return read_varint(buf, len, pos, &v);
	case 1:
		v = 8;
		break;
	case 2:
		r = read_varint(buf, len, pos, &v);
		if (r < 0)
			return r;
		break;
	case 5:
		v = 4;
		break;
	default:
		return -EPROTO;
	}
	if (v > len - *pos)
		return -EPROTO;
	*pos += (size_t)v;
	return 0;
}

/*
 * Steps over the next field at *pos. Returns 1 and sets ret_sub/ret_sub_len when it is the
 * length-delimited field `want`, 0 when it was another field (skipped), -EPROTO when the
 * bytes are malformed (truncation, a length past the end, field number 0, a group).
 */
static int next_field(const uint8_t *buf, size_t len, size_t *pos, uint64_t want,
		      const uint8_t **ret_sub, size_t *ret_sub_len)
{
	uint64_t key, sub;
	int r = read_varint(buf, len, pos, &key);

	if (r < 0)
		return r;
	if (key >> 3 == 0 || key >> 3 > 536870911)
		return -EPROTO;
	if (key != (want << 3 | 2))
		return skip_field(buf, len, pos, (unsigned int)(key & 7));
	r = read_varint(buf, len, pos, &sub);
	if (r < 0)
		return r;
	if (sub > len - *pos)
		return -EPROTO;
	*ret_sub = buf + *pos;
	*ret_sub_len = (size_t)sub;
	*pos += (size_t)sub;
	return 1;
}

/*
 * protoc-c's unpack recurses once per nested message, so a deep enough nesting overflows
 * the stack. DescriptorProto.nested_type (field 3) is the only recursive field of
 * descriptor.proto, reached from FileDescriptorProto.message_type (field 4): walk just
 * those before unpacking and refuse nesting past DESCSET_MAX_DEPTH. Other damage is left
 * to protoc-c, except where this walk cannot step over it.
 */
static int check_depth(const uint8_t *buf, size_t len, uint64_t recurse_field, unsigned int depth)
{
	size_t pos = 0;

	if (depth > DESCSET_MAX_DEPTH)
		return -EPROTO;
	while (pos < len) {
		const uint8_t *sub;
		size_t sub_len;
		int r = next_field(buf, len, &pos, recurse_field, &sub, &sub_len);

		if (r > 0)
			r = check_depth(sub, sub_len, 3, depth + 1);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Pool and arrays ------------------------------------------------------------------------ */

static char *pool_alloc(struct rpc_descset *set, size_t n)
{
	struct descset_block *b = set->pool;
	char *p;

	if (!b || b->size - b->used < n) {
		size_t size = n > DESCSET_POOL_BLOCK ? n : DESCSET_POOL_BLOCK;

		b = malloc(sizeof(*b) + size);
		if (!b)
			return NULL;
		b->next = set->pool;
		b->used = 0;
		b->size = size;
		set->pool = b;
	}
	p = b->data + b->used;
	b->used += n;
	return p;
}

/* "scope.name", or "name" when scope is empty; a leading '.' of scope is dropped. */
static const char *pool_join(struct rpc_descset *set, const char *scope, const char *name)
{
	size_t ls, ln = strlen(name);
	char *p;

	if (scope[0] == '.')
		scope++;
	ls = strlen(scope);
	p = pool_alloc(set, ls + ln + 2);
	if (!p)
		return NULL;
	if (ls) {
		memcpy(p, scope, ls);
		p[ls++] = '.';
	}
	memcpy(p + ls, name, ln + 1);
	return p;
}

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	size_t ncap;
	void *p;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 64;
	p = reallocarray(*arr, ncap, elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

static int add_sym(struct rpc_descset *set, uint32_t file, const char *scope, const char *name,
		   enum rpc_descset_kind kind, const void *desc, const char **ret_full)
{
	struct descset_sym *s;
	const char *full;

	if (!name)
		return -EPROTO;
	if (grow((void **)&set->syms, &set->cap_syms, set->n_syms, sizeof(*set->syms)) < 0)
		return -ENOMEM;
	full = pool_join(set, scope, name);
	if (!full)
		return -ENOMEM;
	s = &set->syms[set->n_syms];
	*s = (struct descset_sym){
		.name = full, .desc = desc, .file = file, .seq = (uint32_t)set->n_syms, .kind = kind
	};
	set->n_syms++;
	if (ret_full)
		*ret_full = full;
	return 0;
}

/* Indexing ------------------------------------------------------------------------------- */

static int index_field(struct rpc_descset *set, uint32_t file, const char *scope,
		       const Google__Protobuf__FieldDescriptorProto *f, bool extension)
{
	struct descset_ext *e;
	const char *extendee;
	int r;

	r = add_sym(set, file, scope, f->name,
		    extension ? RPC_DESCSET_EXTENSION : RPC_DESCSET_FIELD, f, NULL);
	if (r < 0 || !extension || !f->extendee || !f->has_number)
		return r;
	if (grow((void **)&set->exts, &set->cap_exts, set->n_exts, sizeof(*set->exts)) < 0)
		return -ENOMEM;
	extendee = pool_join(set, "", f->extendee[0] == '.' ? f->extendee + 1 : f->extendee);
	if (!extendee)
		return -ENOMEM;
	e = &set->exts[set->n_exts];
	*e = (struct descset_ext){ .extendee = extendee,
				   .number = f->number,
				   .file = file,
				   .seq = (uint32_t)set->n_exts };
	set->n_exts++;
	return 0;
}

/* Enum values are siblings of their enum (C++ scoping), hence scope, not the enum's name. */
static int index_enum(struct rpc_descset *set, uint32_t file, const char *scope,
		      const Google__Protobuf__EnumDescriptorProto *e)
{
	int r = add_sym(set, file, scope, e->name, RPC_DESCSET_ENUM, e, NULL);

	for (size_t i = 0; r >= 0 && i < e->n_value; i++)
		r = add_sym(set, file, scope, e->value[i]->name, RPC_DESCSET_ENUM_VALUE,
			    e->value[i], NULL);
	return r;
}

static int index_message(struct rpc_descset *set, uint32_t file, const char *scope,
			 const Google__Protobuf__DescriptorProto *m, unsigned int depth)
{
	const char *full;
	size_t i;
	int r;

	if (depth > DESCSET_MAX_DEPTH)
		return -EPROTO;
	r = add_sym(set, file, scope, m->name, RPC_DESCSET_MESSAGE, m, &full);
	for (i = 0; r >= 0 && i < m->n_field; i++)
		r = index_field(set, file, full, m->field[i], false);
	for (i = 0; r >= 0 && i < m->n_extension; i++)
		r = index_field(set, file, full, m->extension[i], true);
	for (i = 0; r >= 0 && i < m->n_nested_type; i++)
		r = index_message(set, file, full, m->nested_type[i], depth + 1);
	for (i = 0; r >= 0 && i < m->n_enum_type; i++)
		r = index_enum(set, file, full, m->enum_type[i]);
	return r;
}

static int index_service(struct rpc_descset *set, uint32_t file, const char *scope,
			 const Google__Protobuf__ServiceDescriptorProto *s)
{
	const char *full;
	int r = add_sym(set, file, scope, s->name, RPC_DESCSET_SERVICE, s, &full);

	for (size_t i = 0; r >= 0 && i < s->n_method; i++)
		r = add_sym(set, file, full, s->method[i]->name, RPC_DESCSET_METHOD, s->method[i],
			    NULL);
	return r;
}

static int index_file(struct rpc_descset *set, uint32_t file)
{
	const Google__Protobuf__FileDescriptorProto *fd = set->files[file].fd;
	const char *pkg = fd->package ? fd->package : "";
	size_t i;
	int r = 0;

	if (pkg[0])
		r = add_sym(set, file, "", pkg, RPC_DESCSET_PACKAGE, fd, NULL);
	for (i = 0; r >= 0 && i < fd->n_message_type; i++)
		r = index_message(set, file, pkg, fd->message_type[i], 0);
	for (i = 0; r >= 0 && i < fd->n_enum_type; i++)
		r = index_enum(set, file, pkg, fd->enum_type[i]);
	for (i = 0; r >= 0 && i < fd->n_service; i++)
		r = index_service(set, file, pkg, fd->service[i]);
	for (i = 0; r >= 0 && i < fd->n_extension; i++)
		r = index_field(set, file, pkg, fd->extension[i], true);
	return r;
}

/* Sorting and searching ------------------------------------------------------------------ */

static int cmp_sym(const void *a, const void *b)
{
	const struct descset_sym *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

static int cmp_ext_key(const struct descset_ext *x, const char *extendee, int32_t number)
{
	int c = strcmp(x->extendee, extendee);

	return c ? c : (x->number > number) - (x->number < number);
}

static int cmp_ext(const void *a, const void *b)
{
	const struct descset_ext *x = a, *y = b;
	int c = cmp_ext_key(x, y->extendee, y->number);

	return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/* qsort has no context argument; the file array is reached through this sort-only pair. */
struct name_ref {
	const char *name;
	uint32_t idx;
};

static int cmp_name_ref(const void *a, const void *b)
{
	const struct name_ref *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/*
 * Compares a stored full name with the key parts joined by '.', without building the key.
 * Returns <0, 0, >0 like strcmp.
 */
static int cmp_parts(const char *name, const char *a, const char *b)
{
	size_t la = strlen(a);
	int c = strncmp(name, a, la);

	if (c || !b)
		return c ? c : (name[la] ? 1 : 0);
	name += la;
	if (*name != '.')
		return (unsigned char)*name - (unsigned char)'.';
	return strcmp(name + 1, b);
}

/* The first symbol equal to a[.b], or NULL. */
static const struct descset_sym *find_sym(const struct rpc_descset *set, const char *a,
					  const char *b)
{
	size_t lo = 0, hi = set->n_syms;

	if (a[0] == '.')
		a++;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cmp_parts(set->syms[mid].name, a, b) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < set->n_syms && cmp_parts(set->syms[lo].name, a, b) == 0)
		return &set->syms[lo];
	return NULL;
}

/* Lower bound of (extendee, number) in the extension array. */
static size_t ext_lower(const struct rpc_descset *set, const char *extendee, int32_t number)
{
	size_t lo = 0, hi = set->n_exts;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cmp_ext_key(&set->exts[mid], extendee, number) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Loading -------------------------------------------------------------------------------- */

static int add_file(struct rpc_descset *set, size_t *cap, const uint8_t *raw, size_t len)
{
	Google__Protobuf__FileDescriptorProto *fd;
	struct descset_file *f;

	if (grow((void **)&set->files, cap, set->n_files, sizeof(*set->files)) < 0)
		return -ENOMEM;
	if (check_depth(raw, len, 4, 0) < 0)
		return -EPROTO;
	fd = google__protobuf__file_descriptor_proto__unpack(NULL, len, raw);
	if (!fd)
		return -EPROTO;
	f = &set->files[set->n_files++];
	*f = (struct descset_file){ .name = fd->name, .raw = raw, .raw_len = len, .fd = fd };
	if (!fd->name)
		return -EPROTO;
	return 0;
}

static int split_files(struct rpc_descset *set, const uint8_t *buf, size_t len)
{
	size_t pos = 0, cap = 0;

	while (pos < len) {
		const uint8_t *file;
		size_t file_len;
		int r = next_field(buf, len, &pos, 1, &file, &file_len);

		if (r > 0)
			r = add_file(set, &cap, file, file_len);
		if (r < 0)
			return r;
	}
	return 0;
}

static int sort_files(struct rpc_descset *set)
{
	struct name_ref *refs;

	if (set->n_files == 0)
		return 0;
	refs = calloc(set->n_files, sizeof(*refs));
	set->by_name = calloc(set->n_files, sizeof(*set->by_name));
	if (!refs || !set->by_name) {
		free(refs);
		return -ENOMEM;
	}
	for (size_t i = 0; i < set->n_files; i++)
		refs[i] = (struct name_ref){ set->files[i].name, (uint32_t)i };
	qsort(refs, set->n_files, sizeof(*refs), cmp_name_ref);
	for (size_t i = 0; i < set->n_files; i++)
		set->by_name[i] = refs[i].idx;
	free(refs);
	return 0;
}

static int resolve_deps(struct rpc_descset *set)
{
	for (size_t i = 0; i < set->n_files; i++) {
		struct descset_file *f = &set->files[i];

		if (f->fd->n_dependency == 0)
			continue;
		f->deps = calloc(f->fd->n_dependency, sizeof(*f->deps));
		if (!f->deps)
			return -ENOMEM;
		for (size_t d = 0; d < f->fd->n_dependency; d++) {
			int k = rpc_descset_find_file(set, f->fd->dependency[d]);

			if (k >= 0)
				f->deps[f->n_deps++] = (uint32_t)k;
		}
	}
	return 0;
}

int rpc_descset_load(const uint8_t *buf, size_t len, struct rpc_descset **ret_set)
{
	struct rpc_descset *set;
	int r;

	if ((!buf && len) || !ret_set)
		return -EINVAL;
	set = calloc(1, sizeof(*set));
	if (!set)
		return -ENOMEM;
	r = split_files(set, buf, len);
	if (r >= 0 && set->n_files > INT32_MAX)
		r = -EPROTO;
	for (size_t i = 0; r >= 0 && i < set->n_files; i++)
		r = index_file(set, (uint32_t)i);
	if (r >= 0)
		r = sort_files(set);
	if (r >= 0)
		r = resolve_deps(set);
	if (r < 0) {
		rpc_descset_free(set);
		return r;
	}
	if (set->n_syms)
		qsort(set->syms, set->n_syms, sizeof(*set->syms), cmp_sym);
	if (set->n_exts) {
		qsort(set->exts, set->n_exts, sizeof(*set->exts), cmp_ext);
		set->ext_numbers = calloc(set->n_exts, sizeof(*set->ext_numbers));
		if (!set->ext_numbers) {
			rpc_descset_free(set);
			return -ENOMEM;
		}
		for (size_t i = 0; i < set->n_exts; i++)
			set->ext_numbers[i] = set->exts[i].number;
	}
	*ret_set = set;
	return 0;
}

struct rpc_descset *rpc_descset_free(struct rpc_descset *set)
{
	if (!set)
		return NULL;
	for (size_t i = 0; i < set->n_files; i++) {
		google__protobuf__file_descriptor_proto__free_unpacked(set->files[i].fd, NULL);
		free(set->files[i].deps);
	}
	while (set->pool) {
		struct descset_block *next = set->pool->next;

		free(set->pool);
		set->pool = next;
	}
	free(set->files);
	free(set->by_name);
	free(set->syms);
	free(set->exts);
	free(set->ext_numbers);
	free(set);
	return NULL;
}

/* Lookups -------------------------------------------------------------------------------- */

int rpc_descset_method_kind(const struct rpc_descset *set, const char *service_full_name,
			    const char *method_name, int *ret_client_streaming,
			    int *ret_server_streaming)
{
	const Google__Protobuf__MethodDescriptorProto *m;
	const struct descset_sym *s;

	if (!set || !service_full_name || !method_name || !ret_client_streaming ||
	    !ret_server_streaming)
		return -EINVAL;
	s = find_sym(set, service_full_name, method_name);
	if (!s || s->kind != RPC_DESCSET_METHOD)
		return -ENOENT;
	m = s->desc;
	*ret_client_streaming = m->has_client_streaming && m->client_streaming;
	*ret_server_streaming = m->has_server_streaming && m->server_streaming;
	return 0;
}

size_t rpc_descset_n_files(const struct rpc_descset *set)
{
	return set ? set->n_files : 0;
}

const char *rpc_descset_file_name(const struct rpc_descset *set, size_t i)
{
	return set && i < set->n_files ? set->files[i].name : NULL;
}

int rpc_descset_file_bytes(const struct rpc_descset *set, size_t i, const uint8_t **ret_data,
			   size_t *ret_len)
{
	if (!set || i >= set->n_files)
		return -ENOENT;
	*ret_data = set->files[i].raw;
	*ret_len = set->files[i].raw_len;
	return 0;
}

int rpc_descset_find_file(const struct rpc_descset *set, const char *name)
{
	size_t lo = 0, hi;

	if (!set || !name || !set->by_name)
		return -ENOENT;
	hi = set->n_files;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(set->files[set->by_name[mid]].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < set->n_files && strcmp(set->files[set->by_name[lo]].name, name) == 0)
		return (int)set->by_name[lo];
	return -ENOENT;
}

int rpc_descset_find_symbol(const struct rpc_descset *set, const char *symbol,
			    enum rpc_descset_kind *ret_kind)
{
	const struct descset_sym *s;

	if (!set || !symbol)
		return -ENOENT;
	s = find_sym(set, symbol, NULL);
	if (!s)
		return -ENOENT;
	if (ret_kind)
		*ret_kind = s->kind;
	return (int)s->file;
}

const char *rpc_descset_file_of_symbol(const struct rpc_descset *set, const char *symbol)
{
	int i = rpc_descset_find_symbol(set, symbol, NULL);

	return i < 0 ? NULL : set->files[i].name;
}

int rpc_descset_find_extension(const struct rpc_descset *set, const char *extendee, int32_t number)
{
	size_t i;

	if (!set || !extendee)
		return -ENOENT;
	if (extendee[0] == '.')
		extendee++;
	i = ext_lower(set, extendee, number);
	if (i < set->n_exts && cmp_ext_key(&set->exts[i], extendee, number) == 0)
		return (int)set->exts[i].file;
	return -ENOENT;
}

int rpc_descset_extension_numbers(const struct rpc_descset *set, const char *extendee,
				  const int32_t **ret_numbers)
{
	size_t lo, hi;

	if (!set || !extendee) {
		*ret_numbers = NULL;
		return 0;
	}
	if (extendee[0] == '.')
		extendee++;
	lo = ext_lower(set, extendee, INT32_MIN);
	for (hi = lo; hi < set->n_exts && strcmp(set->exts[hi].extendee, extendee) == 0; hi++)
		;
	*ret_numbers = hi > lo ? set->ext_numbers + lo : NULL;
	return (int)(hi - lo);
}

int rpc_descset_file_closure(const struct rpc_descset *set, size_t i, size_t *ret_files)
{
	size_t head = 0, n = 0;
	bool *seen;

	if (!set || i >= set->n_files)
		return -ENOENT;
	seen = calloc(set->n_files, sizeof(*seen));
	if (!seen)
		return -ENOMEM;
	seen[i] = true;
	ret_files[n++] = i;
	while (head < n) {
		const struct descset_file *f = &set->files[ret_files[head++]];

		for (size_t d = 0; d < f->n_deps; d++) {
			if (seen[f->deps[d]])
				continue;
			seen[f->deps[d]] = true;
			ret_files[n++] = f->deps[d];
		}
	}
	free(seen);
	return (int)n;
}
