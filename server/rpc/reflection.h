#pragma once
/*
 * reflection: answers one grpc.reflection request from a descriptor set. Internal to
 * rpc/. The v1 and v1alpha protocols use identical wire messages, so the v1 C types
 * serve both: unpack either with grpc__reflection__v1__server_reflection_request__unpack.
 */
#include <stddef.h>

#include "descset.h"
#include "reflection.pb-c.h"

/*
 * Builds the response to req. Every byte of the response (the message, its sub-messages,
 * arrays and error strings) comes from alloc(alloc_ctx, n), which must return memory
 * aligned for any object, or NULL; nothing else needs freeing. Pointers to memory that
 * the response does not own are kept, not copied:
 *   - original_request is req itself and valid_host is req->host, so pack the response
 *     before freeing the request;
 *   - list_services names point at services[] (the registered services, borrowed);
 *   - file descriptors point at the set's serialized files, so the set must outlive it.
 * Answers: list_services; file_by_filename and file_containing_symbol (the file, then its
 * transitive dependencies, each once); file_containing_extension; all_extension_numbers_
 * of_type (the known numbers, empty when the message type exists without extensions).
 * Anything unknown, not found or not set becomes error_response{5 NOT_FOUND, a message
 * naming what was asked}. Returns 0 and sets *ret_resp, -EINVAL for NULL arguments,
 * -ENOMEM when alloc fails.
 */
int rpc_reflection_answer(const struct rpc_descset *set, const char *const *services,
			  size_t n_services,
			  const Grpc__Reflection__V1__ServerReflectionRequest *req,
			  void *(*alloc)(void *ctx, size_t n), void *alloc_ctx,
			  Grpc__Reflection__V1__ServerReflectionResponse **ret_resp);
