#pragma once
/*
 * Internal shapes of the rpc module, shared by its .c files only. Every call is a
 * struct rpc_call bound to the completion queue (CQ) of one worker; every grpc batch
 * carries a struct rpc_tag whose callback moves that call's state machine on.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include "descset.h"
#include "rpc.h"

struct rpc_tag {
	void (*cb)(struct rpc_tag *tag, bool ok); /* run on the CQ thread */
	struct rpc_call *call;                    /* the call this tag belongs to */
};

struct rpc_method {
	char *path;                                 /* "/pkg.Service/Method" */
	const char *service;                        /* "pkg.Service" (registered services) */
	enum rpc_kind kind;                         /* from the descriptor set */
	const ProtobufCMessageDescriptor *input;    /* request type */
	const ProtobufCMessageDescriptor *output;   /* reply type */
	struct rpc_method_handler handler;          /* all NULL: UNIMPLEMENTED */
	void *user;                                 /* passed to the handler */
	void *registered;                           /* grpc_server_register_method handle */
	bool open;                                  /* health and reflection: no authorization */
};

struct rpc_worker {
	struct rpc_server *server;
	grpc_completion_queue *cq; /* one per worker; calls stay on the CQ that took them */
	pthread_t thread;
};

struct rpc_health_entry {
	char *service;   /* "" = the whole server */
	bool serving;    /* SERVING or NOT_SERVING */
};

/* One client connection (by its peer string) that holds admitted streams (streams.c). */
struct rpc_stream_peer {
	struct rpc_stream_peer *next; /* hash chain */
	int streams;                  /* admitted streams of this peer, >= 1 while listed */
	char name[];                  /* "ipv4:127.0.0.1:5555" */
};

/*
 * Admission of server-streaming calls (streams.c): each holds a thread, so they are
 * counted server-wide, per connection, and apart for those without a checked token.
 * All counts under lock; live <= max_total, live_unauthenticated <= max_unauthenticated,
 * every listed peer's streams <= max_per_peer, and the peers' streams sum to live.
 */
struct rpc_streams {
	int max_total;               /* streams at once, >= 1 */
	int max_per_peer;            /* on one connection, >= 1 */
	int max_unauthenticated;     /* without a checked token, 1..max_total */
	pthread_mutex_t lock;
	int live;                    /* admitted streams */
	int live_unauthenticated;    /* of which admitted without a checked token */
	struct rpc_stream_peer **buckets; /* peers with live streams, by hash of the name */
	size_t n_buckets;            /* a power of two */
};

/* The bounded pool that runs blocking unary handlers. */
struct rpc_pool {
	pthread_t *threads;
	int n_threads;
	struct rpc_call **queue; /* ring buffer of cap entries */
	int cap, head, len;
	bool stop;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

struct rpc_server {
	struct rpc_server_config config;
	struct rpc_descset *descset;
	grpc_server *core;
	grpc_completion_queue *shutdown_cq;
	struct rpc_worker *workers;
	int n_workers;
	struct rpc_method **methods;
	size_t n_methods;
	const char **services; /* registered service names, for reflection's list */
	size_t n_services;
	struct rpc_pool pool;
	bool started;
	atomic_bool shutting_down;     /* no more requests are posted; streams stop */
	atomic_long live_calls;        /* accepted calls not yet freed */
	atomic_int live_streams;       /* streaming handler threads */
	struct rpc_streams streams;    /* admission of streaming calls */
	pthread_mutex_t lock;          /* guards health, version and the waits below */
	pthread_cond_t cond;           /* broadcast on news, shutdown and live_calls == 0 */
	unsigned long version;         /* bumped by rpc_server_notify_streams and health changes */
	struct rpc_health_entry *health;
	size_t n_health;
	rpc_auth_fn auth;              /* NULL: every call runs */
	void *auth_user;
	rpc_item_fn item_auth;	       /* NULL: every List item is shown */
	void *item_auth_user;
	struct rpc_tls_reload *tls_reload; /* internal TLS: the core's fetcher state */
	rpc_done_fn done;	       /* the completion hook, NULL: none (set before start) */
	void *done_user;
};

struct rpc_call {
	struct rpc_server *server;
	struct rpc_worker *worker;
	struct rpc_method *method;     /* NULL for a generic (unknown method) request */
	grpc_call *core;
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_call_details details;     /* generic requests only */
	grpc_byte_buffer *payload;     /* the request of unary and server-streaming calls */
	grpc_byte_buffer *recv;        /* bidi: the last received message */
	grpc_byte_buffer *send;        /* the message of the outstanding send, owned */
	grpc_slice status_details;     /* kept until the status batch completes */
	struct rpc_tag new_tag, batch_tag, close_tag;
	atomic_int refs;               /* 1 for the main chain + 1 while RECV_CLOSE is posted */
	int close_cancelled;           /* written by RECV_CLOSE_ON_SERVER */
	atomic_bool cancelled;         /* client cancelled, deadline passed or server stopped */
	bool sent_initial_md;
	bool is_inline;                /* an inline_try run on the CQ thread is in progress */
	enum rpc_code code;            /* explicit status from rpc_call_error, else RPC_OK */
	char *message;                 /* its message (call memory) */
	char *peer;                    /* call memory, on demand */
	const char *principal;         /* call memory */
	ProtobufCMessage *req;         /* decoded request, freed with the call */
	pthread_mutex_t mu;            /* stream handler threads wait for their sends here */
	pthread_cond_t cv;
	bool send_done, send_ok;
	struct rpc_stream_peer *stream_peer; /* an admitted stream's connection, else NULL */
	bool stream_authenticated;     /* admitted in the authenticated share */
	int64_t start_unix_ns;         /* accepted (realtime), only with a completion hook */
	int64_t start_mono_ns;         /* the same moment on the monotonic clock */
};

/* server.c */
void rpc_call_unref(struct rpc_call *call);
void rpc_call_finish(struct rpc_call *call, int r, const ProtobufCMessage *resp);
int rpc_server_add_method(struct rpc_server *server, const char *service, const char *method,
			  const ProtobufCMessageDescriptor *input,
			  const ProtobufCMessageDescriptor *output,
			  const struct rpc_method_handler *handler, void *user);
grpc_byte_buffer *rpc_pack(const ProtobufCMessage *msg);
/* The authorizer's verdict on c (0 without an authorizer or for an open method). */
int rpc_call_authorize(struct rpc_call *c);

/*
 * streams.c: admission and life of server-streaming calls. init takes the limits
 * (max_total >= 1; the others 0 = max_total; max_unauthenticated <= max_total); admit
 * counts one stream of a connection or refuses (-EMFILE the connection's limit, -EDQUOT
 * the unauthenticated share, -ENFILE the server's, -ENOMEM) and refusal words that for
 * the caller; release gives back what admit counted. rpc_stream_start takes a decoded
 * stream call on its CQ thread; rpc_stream_run_pooled authorizes one on the pool.
 */
int rpc_streams_init(struct rpc_streams *st, int max_total, int max_per_peer,
		     int max_unauthenticated);
void rpc_streams_fini(struct rpc_streams *st);
int rpc_streams_admit(struct rpc_streams *st, const char *peer, bool authenticated,
		      struct rpc_stream_peer **ret_peer);
void rpc_streams_release(struct rpc_streams *st, struct rpc_stream_peer *peer,
			 bool authenticated);
void rpc_streams_refusal(const struct rpc_streams *st, int r, char *buf, size_t len);
void rpc_stream_start(struct rpc_call *c);
void rpc_stream_run_pooled(struct rpc_call *c);

/* pool.c: runs rpc_run_unary, or rpc_stream_run_pooled for a stream to authorize */
int rpc_pool_start(struct rpc_pool *pool, int threads, int cap);
int rpc_pool_submit(struct rpc_pool *pool, struct rpc_call *call);
void rpc_pool_stop(struct rpc_pool *pool);
void rpc_run_unary(struct rpc_call *call);

/* tls.c: the credentials of config's TLS mode. For the internal mode also *ret_reload, the
 * state of the certificate fetcher, which the server frees after the core is destroyed
 * (NULL for the other modes). */
struct rpc_tls_reload;
int rpc_tls_credentials(const struct rpc_server_config *config, grpc_server_credentials **ret_creds,
			struct rpc_tls_reload **ret_reload);
struct rpc_tls_reload *rpc_tls_reload_free(struct rpc_tls_reload *t);

/* standard.c: health and reflection */
int rpc_health_register(struct rpc_server *server);
struct rpc_health_entry *rpc_health_free(struct rpc_health_entry *entries, size_t n);


int rpc_reflection_register(struct rpc_server *server);
