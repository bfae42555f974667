#pragma once
/*
 * libtrstctl: a C client for the trstctl gRPC API on the gRPC C core.
 *
 * A client owns one channel (plaintext, TLS verified against a CA bundle, TLS without
 * verification for a quick look, optionally mTLS) plus the
 * settings added to every call (bearer token, default deadline). Calls are blocking and
 * a client may be used from several threads at once: each call has its own completion
 * queue.
 *
 * The typed stubs (trstctl-client-gen.h, generated at build time from api/ by
 * tools/protoc-gen-trstctl-c) wrap the generic calls below:
 *
 *   int trstctl_ca_create_owner(struct trstctl_client *c,
 *                               const Trstctl__V1__CreateOwnerRequest *req,
 *                               const struct trstctl_call_opts *opts,
 *                               Trstctl__V1__Owner **ret_resp,
 *                               struct trstctl_status *ret_status);
 *
 *   typedef int (*trstctl_audit_watch_events_cb)(const Trstctl__V1__AuditEvent *msg,
 *                                                void *userdata);
 *   int trstctl_audit_watch_events(struct trstctl_client *c,
 *                                  const Trstctl__V1__WatchEventsRequest *req,
 *                                  const struct trstctl_call_opts *opts,
 *                                  trstctl_audit_watch_events_cb on_msg, void *userdata,
 *                                  struct trstctl_status *ret_status);
 *
 * Return values (generic and typed calls alike): 0 when the call ended with status OK,
 * 1 when a stream callback stopped the stream, -errno otherwise (see
 * trstctl_status_errno() for how a gRPC code maps to -errno; local failures use -EINVAL,
 * -ENOMEM, -EBADMSG for an undecodable reply). *ret_status, when not NULL, is always
 * filled (it is the error report, so unlike other ret_* parameters it is set on failure
 * too). It must start zeroed (`struct trstctl_status st = {0};`) or hold the result of an
 * earlier call, whose message is then freed; release it with trstctl_status_clear().
 * A unary reply is set only on
 * success; it belongs to the caller, who frees it with protobuf_c_message_free_unpacked()
 * (or the protoc-c `<type>__free_unpacked`). Messages passed to a stream callback are
 * borrowed and freed when the callback returns.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

/* The outcome of a call. */
struct trstctl_status {
	int code;      /* gRPC status code, 0 = OK (same values as grpc_status_code) */
	char *message; /* status details (malloc'd, never NULL after a call returns) */
};

/* How the channel is secured. */
enum trstctl_transport {
	TRSTCTL_TLS = 0,         /* TLS, server certificate verified (default) */
	TRSTCTL_TLS_NO_VERIFY,   /* TLS, server certificate not checked at all (dev only) */
	TRSTCTL_PLAINTEXT,       /* no TLS (servers with TLS disabled) */
};

/* Settings of a client; only addr is required. Strings are copied by trstctl_client_new. */
struct trstctl_client_config {
	const char *addr;               /* "host:port" (any gRPC target name) */
	enum trstctl_transport transport; /* see enum */
	const char *ca_file;            /* TLS: PEM bundle of trusted roots; NULL = system roots */
	const char *target_name;        /* TLS: name to check in the server certificate
					 * instead of the host part of addr; NULL = none */
	const char *cert_file;          /* mTLS: client certificate chain (PEM); with key_file */
	const char *key_file;           /* mTLS: client private key (PEM); with cert_file */
	const char *token;              /* sent as "authorization: Bearer <token>"; NULL = none */
	int64_t deadline_ms;            /* default deadline of each call, 0 = none */
};

/* Per-call settings; pass NULL for the client's defaults. */
struct trstctl_call_opts {
	int64_t deadline_ms;            /* > 0 overrides the client default; < 0 = no deadline */
	const char *token;              /* overrides the client token when not NULL */
};

/* One method of the API (table generated from the protos, see trstctl-client-gen.h). */
struct trstctl_method {
	const char *path;                        /* "/trstctl.v1.CA/CreateOwner" */
	const ProtobufCMessageDescriptor *input; /* request type */
	const ProtobufCMessageDescriptor *output; /* reply type */
	bool client_streaming;                   /* from the .proto (protoc-c drops these) */
	bool server_streaming;
};

struct trstctl_client;

/*
 * Creates a client. Rejects a NULL or empty addr, half an mTLS pair and unreadable files
 * with -EINVAL / -errno of the failed read. Does not connect: the channel connects on
 * the first call, so an unreachable server shows up as UNAVAILABLE then.
 */
int trstctl_client_new(const struct trstctl_client_config *config,
		       struct trstctl_client **ret_client);

/* Closes the channel and frees the client. Accepts NULL, returns NULL. */
struct trstctl_client *trstctl_client_free(struct trstctl_client *client);

/*
 * A unary call with raw request bytes (anything, even invalid protobuf). On success
 * *ret_resp is a malloc'd copy of the reply bytes (free() it) and *ret_resp_len its size.
 */
int trstctl_call_raw(struct trstctl_client *client, const char *path, const void *req,
		     size_t req_len, const struct trstctl_call_opts *opts, uint8_t **ret_resp,
		     size_t *ret_resp_len, struct trstctl_status *ret_status);

/* A unary call: packs req, unpacks the reply as resp_desc into *ret_resp. */
int trstctl_call_unary(struct trstctl_client *client, const char *path,
		       const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
		       const struct trstctl_call_opts *opts, ProtobufCMessage **ret_resp,
		       struct trstctl_status *ret_status);

/*
 * Stream callbacks return 0 to go on, > 0 to stop (the call is cancelled and returns 1),
 * < 0 to abort (the call is cancelled and returns that value).
 */
typedef int (*trstctl_raw_cb)(const uint8_t *data, size_t len, void *userdata);
typedef int (*trstctl_msg_cb)(const ProtobufCMessage *msg, void *userdata);

/* A server-streaming call with raw request bytes; on_data sees each reply's bytes. */
int trstctl_call_stream_raw(struct trstctl_client *client, const char *path, const void *req,
			    size_t req_len, const struct trstctl_call_opts *opts,
			    trstctl_raw_cb on_data, void *userdata,
			    struct trstctl_status *ret_status);

/* A server-streaming call: each reply is unpacked as resp_desc and passed to on_msg. */
int trstctl_call_stream(struct trstctl_client *client, const char *path,
			const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
			const struct trstctl_call_opts *opts, trstctl_msg_cb on_msg,
			void *userdata, struct trstctl_status *ret_status);

/* Frees the message and zeroes the status. Accepts NULL. */
void trstctl_status_clear(struct trstctl_status *status);

/* "UNIMPLEMENTED" for 12; "UNKNOWN_CODE" outside 0..16. */
const char *trstctl_status_code_name(int code);

/* The code of a name ("UNIMPLEMENTED", case-insensitive) or of a number; -EINVAL if none. */
int trstctl_status_code_parse(const char *s);

/*
 * The -errno a call returns for a gRPC code: OK 0, CANCELLED -ECANCELED, INVALID_ARGUMENT
 * and OUT_OF_RANGE -EINVAL, DEADLINE_EXCEEDED -ETIMEDOUT, NOT_FOUND -ENOENT, ALREADY_EXISTS
 * -EEXIST, PERMISSION_DENIED -EPERM, RESOURCE_EXHAUSTED -ENOSPC, FAILED_PRECONDITION
 * -EBUSY, ABORTED -EAGAIN, UNIMPLEMENTED -EOPNOTSUPP, UNAVAILABLE -ECONNREFUSED,
 * UNAUTHENTICATED -EACCES, DATA_LOSS -EBADMSG, UNKNOWN and INTERNAL -EIO.
 */
int trstctl_status_errno(int code);

/* Flags of trstctl_json_write. */
enum {
	TRSTCTL_JSON_INDENT = 1 << 0,  /* one field per line, two spaces per level */
	TRSTCTL_JSON_NEWLINE = 1 << 1, /* a line end after the message */
};

/*
 * Writes msg (any protobuf-c message, e.g. a reply) to f as proto3 JSON: field names in
 * lowerCamelCase, 64-bit integers as strings, bytes as base64, enums by name, maps as
 * objects, google.protobuf.Timestamp as RFC 3339 in UTC. Every field is written, also at
 * its default value; unset fields with presence (a message, a proto3 optional, a oneof
 * member) are left out. One line unless TRSTCTL_JSON_INDENT. Returns 0, -EINVAL for a NULL
 * f or msg, -EIO when writing to f failed.
 */
int trstctl_json_write(FILE *f, const ProtobufCMessage *msg, unsigned flags);

/* The size of one value of type t in protobuf-c's arrays (an element of a repeated field). */
size_t trstctl_value_size(ProtobufCType t);

/* True when field f of a message of type parent is a map (a repeated <Field>Entry). */
bool trstctl_field_is_map(const ProtobufCMessageDescriptor *parent,
			  const ProtobufCFieldDescriptor *f);
