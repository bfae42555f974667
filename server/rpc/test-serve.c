/*
 * test-serve.c: the loopback server + client fixture of the module tests (test-serve.h).
 * The descriptor set is the embedded one of api/, so every trstctl service can be added.
 * rpc_init and rpc_fini pair up per fixture (gRPC counts them), so several fixtures may
 * live in one test.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "test-serve.h"
#include "trstctl-client.h"

/* The embedded descriptor set (api/, generated; no header declares it). */
extern const unsigned char trstctl_descset[];
extern const size_t trstctl_descset_len;

int rpc_test_serve_new(const struct rpc_server_config *sizing, struct rpc_test_serve *t)
{
	static const struct rpc_server_config none;
	const struct rpc_server_config *z = sizing ? sizing : &none;
	struct rpc_server_config sc = {
		.addr = "127.0.0.1:0",
		.tls_mode = RPC_TLS_DISABLED,
		.workers = z->workers ? z->workers : 1,
		.pool_threads = z->pool_threads ? z->pool_threads : 4,
		.pool_queue = z->pool_queue ? z->pool_queue : 64,
		.max_streams = z->max_streams ? z->max_streams : 4,
		.max_request_bytes = z->max_request_bytes ? z->max_request_bytes : 1 << 20,
		.grace_ms = 500,
	};

	memset(t, 0, sizeof(*t));
	rpc_init();
	t->inited = true;
	return rpc_server_new(&sc, trstctl_descset, trstctl_descset_len, &t->srv);
}

int rpc_test_serve_start(struct rpc_test_serve *t, int64_t deadline_ms)
{
	struct trstctl_client_config cc = { .transport = TRSTCTL_PLAINTEXT,
					    .deadline_ms = deadline_ms };
	int r;

	if (!t->srv)
		return -EINVAL;
	r = rpc_server_start(t->srv, &t->port);
	if (r < 0)
		return r;
	snprintf(t->addr, sizeof(t->addr), "127.0.0.1:%d", t->port);
	cc.addr = t->addr;
	return trstctl_client_new(&cc, &t->cl);
}

void rpc_test_serve_stop(struct rpc_test_serve *t)
{
	t->cl = trstctl_client_free(t->cl);
	if (t->srv)
		rpc_server_shutdown(t->srv);
	t->srv = rpc_server_free(t->srv);
	if (t->inited)
		rpc_fini();
	t->inited = false;
}
