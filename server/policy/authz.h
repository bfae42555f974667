#pragma once
/*
 * authz: the policy service (issue 8). It stores policies and API tokens in PostgreSQL
 * (migration 0004_policy), keeps them cached in every server, authenticates and authorizes
 * every gRPC call before its handler (rpc_server_set_auth), serves trstctl.v1.Policy, and
 * implements `trstctl policy ...` (a gRPC client) and `trstctl token ...` (straight on the
 * database, for operators). The language, evaluator and token format are in policy.h,
 * which stays free of the database so that benchmarks and fuzzers link it alone.
 *
 * Caches and other servers: every policy or token change bumps a per-tenant generation row
 * in the same transaction. Each server polls that row every poll_ms (default 300 ms) and,
 * when it moved, drops its token cache and reloads the policies that changed: a revocation
 * or a policy change on any server sharing the database holds everywhere within a second.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

struct db;
struct audit;
struct bus;
struct cfg;
struct rpc_server;
struct rpc_call;
struct authz; /* the service of one server: caches, poller, known actions */

struct authz_config {
	const char *bootstrap_token_file; /* first start: the admin token goes here (0600, never
					   * overwritten); NULL: no bootstrap */
	int poll_ms;			  /* generation poll period, 0: 300; 10..10000 */
	bool no_poller;			  /* tests: no thread, call authz_refresh yourself */
	int64_t unauth_interval_ms;	  /* one auth.denied summary per source this often; 0: 60 s;
				     * < 0: only at close (tests) */
	size_t unauth_max_sources;	  /* sources summarized apart; 0: 1024 (more: "other") */
};

/* Outcome of the bootstrap in authz_open, for logs and tests. */
enum authz_bootstrap {
	AUTHZ_BOOTSTRAP_NONE,	 /* a token already existed (or no file configured) */
	AUTHZ_BOOTSTRAP_CREATED, /* this server created the admin token and wrote the file */
};

/*
 * Opens the service on db (migrated). audit (opened with the KEK) and bus are borrowed and
 * must outlive it; bus may be NULL (no events: tests). Builds the known actions from the
 * six trstctl.v1 service descriptors, loads the policies, bootstraps the admin token when
 * the tenant has none (two servers starting at once create one: an advisory lock), logs
 * where the token file is (never the token) and starts the poller. Returns -EINVAL, -EEXIST
 * (the token file exists but the database has no token: remove the stale file), db errors.
 */
int authz_open(struct db *db, struct audit *audit, struct bus *bus, const struct authz_config *cfg,
	       struct authz **ret);
/* Stops the poller and frees. The rpc_server it was installed in must be freed first.
 * Accepts NULL, returns NULL. */
struct authz *authz_close(struct authz *a);

/* What the bootstrap in authz_open did. */
enum authz_bootstrap authz_bootstrapped(const struct authz *a);

/* Installs the authentication and authorization hook in s (before rpc_server_start). */
int authz_install(struct authz *a, struct rpc_server *s);

/* Adds trstctl_unauthenticated_calls_total{reason} (and the calls folded into "other")
 * to the /metrics of h. a must outlive h's listener. */
struct http_server;
int authz_metrics_register(struct authz *a, struct http_server *h);

/* Registers trstctl.v1.Policy on s with a's store and caches. */
int policy_rpc_register(struct rpc_server *s, struct authz *a);

/*
 * Polls now: when the generation moved, drops the token cache and reloads policies.
 * Returns 1 when it moved, 0 when not, -errno when the database could not be read.
 */
int authz_refresh(struct authz *a);

/*
 * The full check a handler makes with the attributes of its request (CA: to_state, DNS
 * names, TTL, key type), for the caller of call. req->gate is ignored (false). Returns 0
 * when allowed, or the result of rpc_call_error(call, RPC_PERMISSION_DENIED, ...) after
 * auditing the denial (UNAUTHENTICATED when the call carries no valid token).
 */
int authz_check(struct authz *a, struct rpc_call *call, const struct policy_request *req);

/*
 * `trstctl token create-root ...` (argv[0] "token"): an operator command that makes a
 * root token straight on the database (TRSTCTL_POSTGRES_DSN, and the KEK to audit it),
 * with no server and no token: the way back in when the bootstrap token is lost.
 * `--help` needs no configuration (c may then be NULL). Returns the exit status: 0 ok,
 * 1 failure, 2 usage. `token create|list|revoke` are client commands (server/cli/).
 */
int token_admin_cli(int argc, char **argv, const struct cfg *c);
