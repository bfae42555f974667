#pragma once
/*
 * rpc: the gRPC runtime. The only module that sees grpc_* types. It serves the
 * methods of protobuf-c service descriptors, takes each method's streaming kind from
 * the embedded descriptor set, and maps handler results (-errno or an explicit code)
 * to gRPC statuses. Handlers see decoded messages and a call context.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "timestamp.pb-c.h"

/* gRPC status codes, same values as grpc_status_code, so that no other module needs grpc. */
enum rpc_code {
	RPC_OK = 0,
	RPC_CANCELLED = 1,
	RPC_UNKNOWN = 2,
	RPC_INVALID_ARGUMENT = 3,
	RPC_DEADLINE_EXCEEDED = 4,
	RPC_NOT_FOUND = 5,
	RPC_ALREADY_EXISTS = 6,
	RPC_PERMISSION_DENIED = 7,
	RPC_RESOURCE_EXHAUSTED = 8,
	RPC_FAILED_PRECONDITION = 9,
	RPC_ABORTED = 10,
	RPC_OUT_OF_RANGE = 11,
	RPC_UNIMPLEMENTED = 12,
	RPC_INTERNAL = 13,
	RPC_UNAVAILABLE = 14,
	RPC_DATA_LOSS = 15,
	RPC_UNAUTHENTICATED = 16,
};

enum rpc_tls_mode {
	RPC_TLS_INTERNAL, /* the certificate of tls_source (the CA's), reloaded when it changes */
	RPC_TLS_FILE,     /* operator certificate and key, optional client CA (mTLS) */
	RPC_TLS_DISABLED, /* plaintext; the caller has checked it is allowed */
};

/* Streaming kind of a method, from the descriptor set (protoc-c drops it). */
enum rpc_kind {
	RPC_UNARY,
	RPC_SERVER_STREAMING,
	RPC_CLIENT_STREAMING,
	RPC_BIDI,
};

/*
 * The server certificate of RPC_TLS_INTERNAL, asked for when the server starts and before
 * every new connection, on a gRPC thread: it must answer from memory. *generation is the
 * generation of the pair the server holds (0 at first). When the source has another pair it
 * sets *ret_chain_pem (the certificate then its issuers) and *ret_key_pem (wiped and freed
 * by the caller), both malloc'd, updates *generation and returns 1; 0 when unchanged; -errno
 * on failure (the server keeps serving the pair it has).
 */
typedef int (*rpc_tls_source_fn)(void *ud, uint64_t *generation, char **ret_chain_pem,
				 char **ret_key_pem);

struct rpc_server_config {
	const char *addr;            /* host:port; ":8443" means every address */
	enum rpc_tls_mode tls_mode;  /* see enum */
	const char *tls_cert_file;   /* PEM chain, RPC_TLS_FILE only */
	const char *tls_key_file;    /* PEM key, RPC_TLS_FILE only */
	const char *tls_client_ca_file; /* PEM; when set, clients must present a cert it signed */
	int workers;                 /* completion-queue threads, >= 1 */
	int pool_threads;            /* threads that run blocking handlers, >= 1 */
	int pool_queue;              /* queued calls beyond which RESOURCE_EXHAUSTED, >= 1 */
	int max_streams;             /* concurrent server-streaming calls, server-wide, >= 1 */
	int max_streams_per_peer;    /* of them on one client connection; 0 = max_streams */
	int max_unauthenticated_streams; /* of them without a checked token (no authorizer, or
				      * a method that needs none: Health/Watch), at most
				      * max_streams; the rest is kept for authenticated
				      * calls. 0 = max_streams (none kept) */
	size_t max_request_bytes;    /* larger requests get RESOURCE_EXHAUSTED */
	int grace_ms;                /* drain time for in-flight calls at shutdown */
	rpc_tls_source_fn tls_source; /* RPC_TLS_INTERNAL: the server certificate (required) */
	void *tls_source_ud;	      /* its argument, borrowed: outlives the server */
};

struct rpc_server;
struct rpc_call;

/*
 * A unary handler. req is the decoded request (owned by the runtime). On success it
 * sets *ret_resp to a message allocated with rpc_call_alloc() (or static storage) and
 * returns >= 0. On failure it returns -errno (mapped by rpc_errno_code) or the result of
 * rpc_call_error(), which carries an explicit code and message.
 */
typedef int (*rpc_unary_fn)(struct rpc_call *call, const ProtobufCMessage *req,
			    ProtobufCMessage **ret_resp, void *user);

/*
 * A server-streaming handler, run on its own thread. It sends with rpc_call_send()
 * (which blocks until the message is on its way) and returns like a unary handler; the
 * return value becomes the final status.
 */
typedef int (*rpc_stream_fn)(struct rpc_call *call, const ProtobufCMessage *req, void *user);

/* A bidi handler: called once per received message, answers with one message. */
typedef int (*rpc_bidi_fn)(struct rpc_call *call, const ProtobufCMessage *req,
			   ProtobufCMessage **ret_resp, void *user);

/* How a method is handled. Exactly one of unary, stream, bidi is set (or none: UNIMPLEMENTED). */
struct rpc_method_handler {
	rpc_unary_fn unary;  /* unary methods */
	rpc_stream_fn stream; /* server-streaming methods */
	rpc_bidi_fn bidi;    /* bidi methods */
	/* unary handler never blocks: run it on the CQ thread; under an authorizer, as
	 * inline_try (the authorizer may send the call to the pool, the handler never does) */
	bool inline_ok;
	/*
	 * Unary handler that can often answer without blocking (a cache hit): the authorizer
	 * and the handler first run on the CQ thread with rpc_call_is_inline() true; either
	 * may return -EWOULDBLOCK (before sending anything or calling rpc_call_error) to say
	 * "this would block", and the call then goes to the pool and runs again from the
	 * start (principal, status and reply reset; call memory of the first run is kept
	 * until the call ends). (-EWOULDBLOCK is -EAGAIN on Linux: inline, any -EAGAIN
	 * without an explicit error means "rerun on the pool".)
	 */
	bool inline_try;
};

/*
 * Creates a server (not yet listening). descset/descset_len is the serialized
 * FileDescriptorSet (borrowed, must outlive the server). Returns -errno (-EINVAL for a
 * config out of its ranges).
 */
int rpc_server_new(const struct rpc_server_config *config, const uint8_t *descset,
		   size_t descset_len, struct rpc_server **ret_server);

/*
 * Registers every method of a protobuf-c service. handlers[] follows desc->methods[]
 * order (NULL or an empty entry: the method answers UNIMPLEMENTED naming itself).
 * Borrowed pointers must outlive the server. Fails with -ENOENT when the service is not
 * in the descriptor set, -EINVAL when a handler does not match the method's kind.
 */
int rpc_server_add_service(struct rpc_server *server, const ProtobufCServiceDescriptor *desc,
			   const struct rpc_method_handler *handlers, void *user);

/*
 * Decides whether a call may run: authentication and authorization. Runs before every
 * handler except those of grpc.health.* and grpc.reflection.* (which need no token), on
 * the thread that runs the handler, also for methods that have no handler yet. req is the
 * decoded request. Returns >= 0 to let the call run, or the result of
 * rpc_call_error(call, RPC_UNAUTHENTICATED | RPC_PERMISSION_DENIED, ...). For inline_try
 * methods it first runs on a completion-queue thread (rpc_call_is_inline() true): there it
 * must not block, and returns -EWOULDBLOCK (having set no error) whenever it would.
 */
typedef int (*rpc_auth_fn)(struct rpc_call *call, const ProtobufCMessage *req, void *user);

/* Sets the authorizer (before rpc_server_start). NULL: every call runs. */
void rpc_server_set_auth(struct rpc_server *server, rpc_auth_fn fn, void *user);

/*
 * Decides whether the caller of call may see one item of a List reply: resource is the
 * item's own resource ("secret/prod/db"), the action the call's method. Runs on the
 * handler's thread. Returns 1 to show the item, 0 to leave it out (no error; the page comes
 * back shorter, its next_page_token unchanged), or -errno (-EWOULDBLOCK inline).
 */
typedef int (*rpc_item_fn)(struct rpc_call *call, const char *resource, void *user);

/* Sets the item authorizer (before rpc_server_start). NULL: every item is shown. */
void rpc_server_set_item_auth(struct rpc_server *server, rpc_item_fn fn, void *user);

/* The item authorizer's answer for the resource prefix + name ("secret/" + "prod/db"): 1
 * without an item authorizer or for an open method. */
int rpc_call_item_visible(struct rpc_call *call, const char *prefix, const char *name);

/*
 * A call that ended, as the completion hook sees it. Strings are borrowed for the duration
 * of the hook.
 */
struct rpc_call_done {
	const char *method;    /* the full method path, "/trstctl.v1.CA/CreateOwner" */
	enum rpc_code code;    /* the final status sent */
	int64_t start_unix_ns; /* when the call was accepted, CLOCK_REALTIME nanoseconds */
	int64_t end_unix_ns;   /* when its final status was handed to the transport,
				* >= start_unix_ns (measured on the monotonic clock) */
	const char *principal; /* set by authentication (a token id), or NULL */
};

/*
 * Observes calls (tracing): called once for every call of a registered method when its
 * final status is sent, on the thread that sends it (a completion-queue, pool or stream
 * thread), so it must not block: copy what it needs and return. Not called for a method
 * the server does not know (answered UNIMPLEMENTED at once: its path is the client's
 * text) nor for a bidi call that ends without a status (the client went away).
 */
typedef void (*rpc_done_fn)(const struct rpc_call_done *d, void *user);

/* Sets the completion hook (before rpc_server_start). NULL: none. */
void rpc_server_set_done_hook(struct rpc_server *server, rpc_done_fn fn, void *user);

/* Registers grpc.health.v1.Health and grpc.reflection v1 and v1alpha. */
int rpc_server_add_standard_services(struct rpc_server *server);

/* Sets the health status of a service name ("" = the whole server). serving = SERVING. */
void rpc_server_set_health(struct rpc_server *server, const char *service, bool serving);

/* Binds and starts serving. Sets *ret_port to the bound port. Returns -errno. */
int rpc_server_start(struct rpc_server *server, int *ret_port);

/*
 * Stops accepting calls, lets in-flight calls finish within the grace period, cancels
 * the rest, then stops the threads. Safe to call once after start.
 */
void rpc_server_shutdown(struct rpc_server *server);

/* Frees a server (shut down or never started). Accepts NULL, returns NULL. */
struct rpc_server *rpc_server_free(struct rpc_server *server);

/* Call context ---------------------------------------------------------------------- */

/* Memory that lives as long as the call. Zeroed. Never NULL (aborts on OOM). */
void *rpc_call_alloc(struct rpc_call *call, size_t size);
/* A copy of s in call memory. */
char *rpc_call_strdup(struct rpc_call *call, const char *s);
/* A new message of descriptor d in call memory, initialised. */
ProtobufCMessage *rpc_call_new_message(struct rpc_call *call, const ProtobufCMessageDescriptor *d);

/* Timestamps (timestamp.c): domains keep microseconds since the epoch. */
/* Initialises ts to us; nanos in [0, 1e9), also before 1970. */
void rpc_timestamp_set(Google__Protobuf__Timestamp *ts, int64_t us);
/* A Timestamp of us in call memory; NULL (the field unset) when us is 0. */
Google__Protobuf__Timestamp *rpc_timestamp_new(struct rpc_call *call, int64_t us);

/* The full method path, "/trstctl.v1.CA/CreateOwner". */
const char *rpc_call_method(const struct rpc_call *call);
/* The peer, "ipv4:127.0.0.1:5555". */
const char *rpc_call_peer(const struct rpc_call *call);
/* The value of a request metadata key (lowercase), or NULL. Binary keys are not returned. */
const char *rpc_call_metadata(const struct rpc_call *call, const char *key);
/* Milliseconds left before the deadline, or INT64_MAX when there is none. */
int64_t rpc_call_remaining_ms(const struct rpc_call *call);
/* True once the client cancelled or the deadline passed. */
bool rpc_call_cancelled(const struct rpc_call *call);
/* True while an inline_try method's authorizer or handler runs on a completion-queue
 * thread, where nothing may block (return -EWOULDBLOCK instead). */
bool rpc_call_is_inline(const struct rpc_call *call);
/* The principal set by authentication, or NULL. */
const char *rpc_call_principal(const struct rpc_call *call);
void rpc_call_set_principal(struct rpc_call *call, const char *principal);

/*
 * Records an explicit status for the reply and returns a negative value for the handler
 * to return: `return rpc_call_error(call, RPC_NOT_FOUND, "owner %s not found", id);`.
 * The message is shown to clients: it must never contain a secret.
 */
int rpc_call_error(struct rpc_call *call, enum rpc_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Sends one message on a server-streaming call (stream handlers only). Blocks until the
 * message was handed to the transport. Returns 0, or -ECANCELED when the client went away
 * or the deadline passed.
 */
int rpc_call_send(struct rpc_call *call, const ProtobufCMessage *msg);

/*
 * Waits up to timeout_ms for the call to be cancelled or the server to shut down
 * (stream handlers that wait for news). Returns true when the handler should stop.
 */
bool rpc_call_wait(struct rpc_call *call, int timeout_ms);

/* Wakes every stream handler blocked in rpc_call_wait (news arrived). */
void rpc_server_notify_streams(struct rpc_server *server);

/* Status mapping ----------------------------------------------------------------------- */

/* The gRPC code for a -errno (or errno) value. */
enum rpc_code rpc_errno_code(int err);
/* What a client is told for a -errno (or errno) value without a module's message: the
 * table's text where it has one (-ETIME: "the database did not answer in time; ..."),
 * else strerror's (use it before this thread's next strerror). */
const char *rpc_errno_message(int err);
/* The name of a code, "INVALID_ARGUMENT". */
const char *rpc_code_name(enum rpc_code code);
/*
 * Answers a handler's -errno r (< 0): with the message msg when it is not empty (a module's
 * message, safe to show) under the table's code for r, else the table's default. Returns
 * the value for the handler to return.
 */
int rpc_call_fail(struct rpc_call *call, int r, const char *msg);

/* Probe --------------------------------------------------------------------------------- */

/*
 * Calls grpc.health.v1.Health/Check ("" service) on addr ("host:port"; ":port" means
 * loopback) and returns 0 when the answer is SERVING, -EAGAIN when it is not, -ETIMEDOUT
 * or -ECONNREFUSED when no answer came within timeout_ms. A liveness probe, not an
 * identity check: with TLS the server certificate is not verified. With cert/key set
 * (mTLS servers), they are presented as the client certificate.
 */
int rpc_health_probe(const char *addr, bool tls, const char *cert_file, const char *key_file,
		     int timeout_ms);

/* Starts the gRPC library (threads). Call after blocking signals and after any fork. */
void rpc_init(void);
/* Stops it; after every server is freed. */
void rpc_fini(void);
