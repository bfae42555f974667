#pragma once
/*
 * Test-only fixture of the module tests (audit, secrets, ca, policy): a real rpc_server on
 * loopback, plaintext on a kernel-chosen port, and a libtrstctl client of it. Compiled
 * into those tests (rpc_test_serve_dep), never into the server.
 */
#include <stdbool.h>
#include <stdint.h>

#include "rpc.h"

struct trstctl_client;

struct rpc_test_serve {
	struct rpc_server *srv;	   /* the server; register services between new and start */
	struct trstctl_client *cl; /* plaintext client of it, after start */
	int port;		   /* the kernel-chosen port, after start */
	char addr[64];		   /* "127.0.0.1:<port>", after start */
	bool inited;		   /* rpc_init was called: stop calls rpc_fini */
};

/*
 * rpc_init, then a server on 127.0.0.1:0 without TLS, sized by workers, pool_threads,
 * pool_queue, max_streams and max_request_bytes of sizing (0 or NULL: 1, 4, 64, 4, 1 MiB),
 * with a 500 ms grace. t starts zeroed. Returns 0 or -errno.
 */
int rpc_test_serve_new(const struct rpc_server_config *sizing, struct rpc_test_serve *t);

/* Starts the server and opens the client (calls time out after deadline_ms). */
int rpc_test_serve_start(struct rpc_test_serve *t, int64_t deadline_ms);

/* Frees the client, shuts the server down and frees it, rpc_fini. Accepts a zeroed t. */
void rpc_test_serve_stop(struct rpc_test_serve *t);
