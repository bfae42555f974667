#pragma once
/*
 * descset: an index over a serialized FileDescriptorSet (protoc --include_imports
 * --descriptor_set_out). Internal to rpc/: the runtime takes streaming kinds from it and
 * reflection answers from it. The set keeps zero-copy pointers into the buffer it was
 * loaded from, so that buffer must outlive the set. A loaded set is read-only and may be
 * shared by threads without locking.
 */
#include <stddef.h>
#include <stdint.h>

struct rpc_descset;

/* What a fully qualified symbol names. */
enum rpc_descset_kind {
	RPC_DESCSET_PACKAGE,	/* "trstctl.v1" (the first file declaring it) */
	RPC_DESCSET_MESSAGE,	/* "trstctl.v1.Owner", nested "pkg.Outer.Inner" */
	RPC_DESCSET_FIELD,	/* "trstctl.v1.Owner.id" */
	RPC_DESCSET_ENUM,	/* "pkg.Msg.Status" */
	RPC_DESCSET_ENUM_VALUE, /* scoped like C++: "pkg.Msg.SERVING" */
	RPC_DESCSET_SERVICE,	/* "trstctl.v1.CA" */
	RPC_DESCSET_METHOD,	/* "trstctl.v1.CA.CreateOwner" */
	RPC_DESCSET_EXTENSION,	/* "pkg.Scope.ext_name" */
};

/*
 * Indexes the FileDescriptorSet in buf[0..len) (borrowed: it must outlive the set).
 * Rejects malformed wire data (truncated varints, lengths past the end, groups, field
 * number 0), files protoc-c cannot unpack and unnamed definitions with -EPROTO; -ENOMEM
 * on allocation failure; -EINVAL for NULL arguments. An empty buffer is an empty set.
 * Duplicate file names or symbols do not fail: the first in set order wins. A dependency
 * missing from the set is skipped. Sets *ret_set on success; free it with
 * rpc_descset_free().
 */
int rpc_descset_load(const uint8_t *buf, size_t len, struct rpc_descset **ret_set);

/* Frees a set. Accepts NULL, returns NULL. */
struct rpc_descset *rpc_descset_free(struct rpc_descset *set);

/*
 * Streaming flags of method_name in service_full_name ("trstctl.v1.Audit",
 * "WatchEvents"). Sets both ret_* to 0 or 1 and returns 0, or -ENOENT when the service
 * or the method is unknown (-EINVAL for NULL arguments).
 */
int rpc_descset_method_kind(const struct rpc_descset *set, const char *service_full_name,
			    const char *method_name, int *ret_client_streaming,
			    int *ret_server_streaming);

/* Number of files in the set; file indexes run from 0 to this minus one, in set order. */
size_t rpc_descset_n_files(const struct rpc_descset *set);

/* Name of file index i ("trstctl/v1/ca.proto"), or NULL when i is out of range. */
const char *rpc_descset_file_name(const struct rpc_descset *set, size_t i);

/*
 * The serialized FileDescriptorProto of file index i, pointing into the loaded buffer.
 * Returns 0, or -ENOENT when i is out of range.
 */
int rpc_descset_file_bytes(const struct rpc_descset *set, size_t i, const uint8_t **ret_data,
			   size_t *ret_len);

/* Index of the file named name, or -ENOENT. */
int rpc_descset_find_file(const struct rpc_descset *set, const char *name);

/*
 * Index of the file defining the fully qualified symbol (a leading '.' is accepted), or
 * -ENOENT. When ret_kind is not NULL it is set to what the symbol names.
 */
int rpc_descset_find_symbol(const struct rpc_descset *set, const char *symbol,
			    enum rpc_descset_kind *ret_kind);

/* Name of the file defining symbol, or NULL when it is unknown. */
const char *rpc_descset_file_of_symbol(const struct rpc_descset *set, const char *symbol);

/*
 * Index of the file declaring the extension number of the message type extendee
 * ("pkg.Msg", leading '.' accepted), or -ENOENT.
 */
int rpc_descset_find_extension(const struct rpc_descset *set, const char *extendee, int32_t number);

/*
 * The extension numbers declared for extendee, ascending (duplicates kept once per
 * declaration). *ret_numbers points into the set (NULL when there are none). Returns the
 * count (0 when the type has no extensions or is unknown: check it with find_symbol).
 */
int rpc_descset_extension_numbers(const struct rpc_descset *set, const char *extendee,
				  const int32_t **ret_numbers);

/*
 * The transitive dependency closure of file index i: breadth-first over `dependency`,
 * each file once, i itself first. ret_files must have room for rpc_descset_n_files(set)
 * entries. Returns the number written, -ENOENT when i is out of range, -ENOMEM.
 */
int rpc_descset_file_closure(const struct rpc_descset *set, size_t i, size_t *ret_files);
