/*
 * Integration tests of the policy service against a real PostgreSQL (run-with-pg.sh): two
 * "servers" (each its own pool, audit, authz and gRPC server on loopback, served through
 * libtrstctl) share one database. Bootstrap race on the empty database, every served
 * method gated (no token: UNAUTHENTICATED; a token without policies: PERMISSION_DENIED;
 * admin: passes the gate), the policy store (versions, idempotency, strict parsing),
 * the token lifecycle (expiry, last use, escalation refused), Evaluate, revocation and a
 * policy change seen by the other server within a second, denials audited (policy
 * denials one by one, unauthenticated calls as one summary per source when flushed), and
 * `trstctl token create|list|revoke` on the database. The inline path (inline_try, on the
 * completion-queue thread): an allowed call with a cached token, and a call without a
 * token, are decided there, also when its last_used_time is due (the poller writes it); a
 * token not cached and a policy denial (audited) go to the pool.
 */
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "audit.h"
#include "authz-int.h"
#include "bus.h"
#include "cfg.h"
#include "db.h"
#include "kek.h"
#include "rpc.h"
#include "test-serve.h"
#include "trstctl-client-gen.h"

struct srv {
	struct db *db;
	struct audit *audit;
	struct bus *bus;
	struct authz *authz;
	struct rpc_test_serve t; /* its gRPC server on loopback and a client of it */
	char file[256];
};

static struct {
	char dir[64];
	struct kek *kek;
	struct srv s[2];
	char admin[POLICY_TOKEN_LEN + 2];
} E;

static int open_db(struct db **ret)
{
	struct db_config c = { .dsn = getenv("TRSTCTL_POSTGRES_DSN"),
			       .max_conns = 8,
			       .connect_timeout_ms = 5000 };

	return db_open(&c, ret);
}

static void *open_authz(void *p)
{
	struct srv *s = p;
	/* unauthenticated calls are summarized when the test flushes (flush_unauth) */
	struct authz_config c = { .bootstrap_token_file = s->file,
				  .poll_ms = 300,
				  .unauth_interval_ms = -1 };
	intptr_t r = authz_open(s->db, s->audit, s->bus, &c, &s->authz);

	return (void *)r;
}

static int serve(struct srv *s)
{
	static const ProtobufCServiceDescriptor *const others[] = {
		&trstctl__v1__ca__descriptor,
		&trstctl__v1__secrets__descriptor,
		&trstctl__v1__audit__descriptor,
		&trstctl__v1__guard__descriptor,
		&trstctl__v1__assist__descriptor,
	};
	struct rpc_server_config rc = { .max_streams = 8 };
	int r = rpc_test_serve_new(&rc, &s->t);

	if (r >= 0)
		r = rpc_server_add_standard_services(s->t.srv);
	for (size_t i = 0; r >= 0 && i < sizeof(others) / sizeof(others[0]); i++)
		r = rpc_server_add_service(s->t.srv, others[i], NULL, NULL);
	if (r >= 0)
		r = policy_rpc_register(s->t.srv, s->authz);
	if (r >= 0)
		r = authz_install(s->authz, s->t.srv);
	return r >= 0 ? rpc_test_serve_start(&s->t, 10000) : r;
}

/* The first line of a file into buf (len bytes). */
static int read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return -errno;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return buf[0] ? 0 : -EINVAL;
}

/* Both servers start at once on the empty database: exactly one bootstraps. */
static int setup(void **state)
{
	uint8_t key[KEK_LEN];
	pthread_t t[2];
	void *res[2];
	int created = 0;

	(void)state;
	rpc_init();
	snprintf(E.dir, sizeof(E.dir), "/tmp/trstctl-authz.XXXXXX");
	if (!mkdtemp(E.dir))
		return -1;
	memset(key, 0x3c, sizeof(key));
	if (kek_new(key, sizeof(key), &E.kek) < 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		struct srv *s = &E.s[i];
		struct audit_config ac = { .checkpoint_interval_ms = -1 };

		snprintf(s->file, sizeof(s->file), "%s/state%d/sub/bootstrap-token", E.dir, i);
		if (open_db(&s->db) < 0 || db_migrate(s->db, NULL) < 0 ||
		    audit_open(s->db, E.kek, &ac, &s->audit) < 0 ||
		    bus_open(s->db, NULL, &s->bus) < 0)
			return -1;
	}
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, open_authz, &E.s[i]);
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], &res[i]);
		if ((intptr_t)res[i] < 0) {
			fprintf(stderr, "authz_open %d: %s\n", i, strerror(-(int)(intptr_t)res[i]));
			return -1;
		}
		if (authz_bootstrapped(E.s[i].authz) == AUTHZ_BOOTSTRAP_CREATED) {
			created++;
			if (read_line(E.s[i].file, E.admin, sizeof(E.admin)) < 0)
				return -1;
		}
	}
	if (created != 1) {
		fprintf(stderr, "bootstrap created %d tokens\n", created);
		return -1;
	}
	for (int i = 0; i < 2; i++)
		if (serve(&E.s[i]) < 0)
			return -1;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++) {
		struct srv *s = &E.s[i];

		rpc_test_serve_stop(&s->t);
		s->authz = authz_close(s->authz);
		s->bus = bus_close(s->bus);
		s->audit = audit_close(s->audit);
		s->db = db_close(s->db);
	}
	E.kek = kek_free(E.kek);
	rpc_fini();
	if (E.dir[0]) /* holds token files: never leave them behind */
		nftw(E.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* Helpers ------------------------------------------------------------------------------ */

static struct trstctl_call_opts *as(const char *token)
{
	static __thread struct trstctl_call_opts o;

	o = (struct trstctl_call_opts){ .token = token };
	return &o;
}

static int put(int srv, const char *token, const char *name, const char *doc, const char *rid,
	       int64_t *ret_version, struct trstctl_status *st)
{
	Trstctl__V1__PutPolicyRequest q = TRSTCTL__V1__PUT_POLICY_REQUEST__INIT;
	Trstctl__V1__PolicyDocument *p = NULL;
	int r;

	q.name = (char *)name;
	q.document = (char *)doc;
	q.request_id = (char *)(rid ? rid : "");
	r = trstctl_policy_put_policy(E.s[srv].t.cl, &q, as(token), &p, st);
	if (r >= 0 && ret_version)
		*ret_version = p->version;
	if (p)
		protobuf_c_message_free_unpacked(&p->base, NULL);
	return r;
}

static int create_token(int srv, const char *token, const char *const *policies, size_t n,
			int64_t ttl, char ret[POLICY_TOKEN_LEN + 1], char ret_id[17],
			struct trstctl_status *st)
{
	Trstctl__V1__CreateTokenRequest q = TRSTCTL__V1__CREATE_TOKEN_REQUEST__INIT;
	Trstctl__V1__CreateTokenResponse *resp = NULL;
	int r;

	q.name = "test";
	q.policies = (char **)policies;
	q.n_policies = n;
	q.ttl_seconds = ttl;
	r = trstctl_policy_create_token(E.s[srv].t.cl, &q, as(token), &resp, st);
	if (r >= 0) {
		snprintf(ret, POLICY_TOKEN_LEN + 1, "%s", resp->token);
		snprintf(ret_id, 17, "%s", resp->token_id);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	return r;
}

/* GetPolicy admin as token on server srv: the gRPC code. */
static int probe(int srv, const char *token)
{
	Trstctl__V1__GetPolicyRequest q = TRSTCTL__V1__GET_POLICY_REQUEST__INIT;
	Trstctl__V1__PolicyDocument *p = NULL;
	struct trstctl_status st = { 0 };
	int code;

	q.name = "admin";
	trstctl_policy_get_policy(E.s[srv].t.cl, &q, as(token), &p, &st);
	if (p)
		protobuf_c_message_free_unpacked(&p->base, NULL);
	code = st.code;

	trstctl_status_clear(&st);
	return code;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until the other server has heard of a change (at most a second), returns the code. */
static int settle(int srv, const char *token)
{
	int64_t start = now_ms();
	int code;

	while ((code = probe(srv, token)) != 0 && now_ms() - start < 1000)
		usleep(20 * 1000);
	return code;
}

/* last_used_time of token id once it is written (the poller writes it within a poll),
 * or 0 after two seconds. */
static int64_t last_used(const char *id)
{
	int64_t start = now_ms(), us = 0;

	while (!us && now_ms() - start < 2000) {
		struct store_token meta = { 0 };

		assert_int_equal(store_token_by_id(E.s[0].db, DB_DEFAULT_TENANT, id, &meta), 0);
		us = meta.last_used_us;
		store_token_clear(&meta);
		if (!us)
			usleep(20 * 1000);
	}
	return us;
}

static int count_audit(const char *type)
{
	struct audit_query q = { .type_prefix = type, .page_size = 1000 };
	struct audit_page *p = NULL;
	int n;

	assert_int_equal(audit_list(E.s[0].audit, NULL, &q, &p), 0);
	n = (int)p->n;
	audit_page_free(p);
	return n;
}

/* Writes server srv's summaries of unauthenticated calls now; returns how many. */
static int flush_unauth(int srv)
{
	int n = authz_unauth_flush(E.s[srv].authz);

	assert_true(n >= 0);
	return n;
}

/* The data of the newest record of type. */
static json_t *last_data(const char *type)
{
	struct audit_query q = { .type_prefix = type, .page_size = 1000 };
	struct audit_page *p = NULL;
	json_t *o;

	assert_int_equal(audit_list(E.s[0].audit, NULL, &q, &p), 0);
	assert_true(p->n > 0);
	o = json_loads(p->events[p->n - 1].data_json, 0, NULL);
	audit_page_free(p);
	assert_non_null(o);
	return o;
}

static int raw_code(int srv, const struct trstctl_method *m, const char *token)
{
	struct trstctl_status st = { 0 };
	uint8_t *resp = NULL;
	size_t len = 0;
	int code;

	trstctl_call_raw(E.s[srv].t.cl, m->path, "", 0, as(token), &resp, &len, &st);
	free(resp);
	code = st.code;
	if (code != 16 && code != 7 && code != 12 && code != 0)
		printf("  %s -> %s: %s\n", m->path, trstctl_status_code_name(code), st.message);
	trstctl_status_clear(&st);
	return code;
}

/* Tests -------------------------------------------------------------------------------- */

static void test_bootstrap_file(void **state)
{
	struct stat st;
	int n = 0;

	(void)state;
	for (int i = 0; i < 2; i++) {
		if (stat(E.s[i].file, &st) == 0) {
			n++;
			assert_int_equal(st.st_mode & 0777, 0600);
		}
	}
	assert_int_equal(n, 1);
	assert_int_equal(strncmp(E.admin, "trst_", 5), 0);
	assert_int_equal(strlen(E.admin), POLICY_TOKEN_LEN);
	assert_int_equal(probe(0, E.admin), 0);
	assert_int_equal(probe(1, E.admin), 0);
}

static void test_unauthenticated(void **state)
{
	const char *bad[] = { NULL, "trst_short",
			      "trst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" };
	struct trstctl_status st = { 0 };
	Trstctl__V1__GetPolicyRequest q = TRSTCTL__V1__GET_POLICY_REQUEST__INIT;
	Trstctl__V1__PolicyDocument *p = NULL;
	int before = count_audit("auth.denied");

	(void)state;
	q.name = "admin";
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_not_equal(trstctl_policy_get_policy(E.s[0].t.cl, &q, as(bad[i]), &p, &st),
				     0);
		assert_int_equal(st.code, 16);
		assert_string_equal(st.message, AUTHZ_UNAUTH_MSG);
	}
	trstctl_status_clear(&st);
	/* counted, not yet audited; then one summary of the three */
	assert_int_equal(count_audit("auth.denied"), before);
	assert_int_equal(flush_unauth(0), 1);
	assert_int_equal(count_audit("auth.denied"), before + 1);
	{
		json_t *o = last_data("auth.denied"), *r = json_object_get(o, "reasons");

		assert_int_equal(json_integer_value(json_object_get(o, "count")), 3);
		assert_int_equal(json_integer_value(json_object_get(r, "missing")), 1);
		assert_int_equal(json_integer_value(json_object_get(r, "malformed")) +
					 json_integer_value(json_object_get(r, "unknown")),
				 2);
		assert_int_equal(
			json_integer_value(json_object_get(json_object_get(o, "methods"),
							   "/trstctl.v1.Policy/GetPolicy")),
			3);
		assert_string_equal(json_string_value(json_object_get(o, "source")), "127.0.0.1");
		json_decref(o);
	}
	assert_int_equal(flush_unauth(0), 0); /* nothing new: nothing written */
	/* health needs no token */
	assert_int_equal(rpc_health_probe(E.s[0].t.addr, false, NULL, NULL, 3000), 0);
}

/* Every served method: no token UNAUTHENTICATED, no policy PERMISSION_DENIED, admin
 * passes the gate (whatever the handler then says). */
static void test_every_method_gated(void **state)
{
	char none[POLICY_TOKEN_LEN + 1], id[17];
	struct trstctl_status st = { 0 };
	size_t checked = 0;

	(void)state;
	assert_int_equal(create_token(0, E.admin, NULL, 0, 0, none, id, &st), 0);
	for (size_t i = 0; i < trstctl_n_methods; i++) {
		const struct trstctl_method *m = &trstctl_methods[i];

		if (strncmp(m->path, "/trstctl.v1.", 12) != 0)
			continue;
		if (m->server_streaming || m->client_streaming)
			continue; /* WatchEvents: the served test walks streams too */
		assert_int_equal(raw_code(0, m, NULL), 16);
		if (raw_code(0, m, none) != 7)
			fail_msg("%s with a token bound to no policy is not PERMISSION_DENIED",
				 m->path);
		int c = raw_code(0, m, E.admin);

		if (c == 16 || c == 7)
			fail_msg("%s is refused to admin", m->path);
		checked++;
	}
	assert_true(checked >= 33);
	trstctl_status_clear(&st);
}

static void test_policy_store(void **state)
{
	const char *doc =
		"{\"rules\": [{\"effect\": \"allow\", \"actions\": [\"Policy.GetPolicy\"],"
		" \"resources\": [\"policy/*\"]}]}";
	Trstctl__V1__GetPolicyRequest g = TRSTCTL__V1__GET_POLICY_REQUEST__INIT;
	Trstctl__V1__DeletePolicyRequest d = TRSTCTL__V1__DELETE_POLICY_REQUEST__INIT;
	Trstctl__V1__PolicyDocument *p = NULL;
	struct trstctl_status st = { 0 };
	int64_t v1 = 0, v2 = 0, v3 = 0;

	(void)state;
	assert_int_equal(put(0, E.admin, "store-a", doc, NULL, &v1, &st), 0);
	assert_int_equal(put(0, E.admin, "store-a", doc, "rid-1", &v2, &st), 0);
	assert_int_equal(v2, v1 + 1);
	/* the same request_id again: the first reply, nothing changes */
	assert_int_equal(put(1, E.admin, "store-a", doc, "rid-1", &v3, &st), 0);
	assert_int_equal(v3, v2);
	/* strict parsing, with the parser's message */
	assert_int_not_equal(
		put(0, E.admin, "store-b", "{\"rules\": [{\"efect\": 1}]}", NULL, NULL, &st), 0);
	assert_int_equal(st.code, 3);
	assert_non_null(strstr(st.message, "rules[0].efect"));
	assert_int_not_equal(put(0, E.admin, "admin", doc, NULL, NULL, &st), 0);
	assert_int_equal(st.code, 3);
	g.name = "store-a";
	assert_int_equal(trstctl_policy_get_policy(E.s[1].t.cl, &g, as(E.admin), &p, &st), 0);
	assert_int_equal(p->version, v2);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	d.name = "store-a";
	assert_int_equal(trstctl_policy_delete_policy(E.s[0].t.cl, &d, as(E.admin), &p, &st), 0);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	assert_int_not_equal(trstctl_policy_get_policy(E.s[0].t.cl, &g, as(E.admin), &p, &st), 0);
	assert_int_equal(st.code, 5);
	/* put after delete continues the version */
	assert_int_equal(put(0, E.admin, "store-a", doc, NULL, &v3, &st), 0);
	assert_int_equal(v3, v2 + 2);
	trstctl_status_clear(&st);
}

static void test_token_lifecycle(void **state)
{
	const char *doc =
		"{\"rules\": [{\"effect\": \"allow\", \"actions\": [\"Policy.GetPolicy\", "
		"\"Policy.CreateToken\"], \"resources\": [\"policy/*\", \"token/*\"]},"
		"{\"effect\": \"deny\", \"actions\": [\"Policy.GetPolicy\"], "
		"\"resources\": [\"policy/secret-*\"]}]}";
	const char *const reader[] = { "reader" }, *const admin[] = { "admin" },
			  *const ghost[] = { "no-such-policy" };
	char tok[POLICY_TOKEN_LEN + 1], id[17], tok2[POLICY_TOKEN_LEN + 1], id2[17];
	struct trstctl_status st = { 0 };
	struct store_token meta = { 0 };

	(void)state;
	assert_int_equal(put(0, E.admin, "reader", doc, NULL, NULL, &st), 0);
	assert_int_equal(create_token(0, E.admin, reader, 1, 3, tok, id, &st), 0);
	assert_int_equal(probe(0, tok), 0);
	assert_int_equal(settle(1, tok), 0); /* the new policy reached server 1 */
	/* deny overrides, and the message names action and resource only */
	Trstctl__V1__GetPolicyRequest g = TRSTCTL__V1__GET_POLICY_REQUEST__INIT;
	Trstctl__V1__PolicyDocument *p = NULL;

	g.name = "secret-x";
	assert_int_not_equal(trstctl_policy_get_policy(E.s[0].t.cl, &g, as(tok), &p, &st), 0);
	assert_int_equal(st.code, 7);
	assert_string_equal(st.message, "permission denied: Policy.GetPolicy on policy/secret-x");
	assert_int_not_equal(put(0, tok, "x", doc, NULL, NULL, &st), 0);
	assert_int_equal(st.code, 7);
	/* no escalation: reader may create tokens, but only bound to what it holds */
	assert_int_not_equal(create_token(0, tok, admin, 1, 0, tok2, id2, &st), 0);
	assert_int_equal(st.code, 7);
	/* nor outliving it: a child of a 3 s token lives at most as long */
	assert_int_not_equal(create_token(0, tok, reader, 1, 60, tok2, id2, &st), 0);
	assert_int_equal(st.code, 7);
	assert_non_null(strstr(st.message, "ttl_seconds: 60 would outlive the creating token"));
	assert_int_not_equal(create_token(0, tok, reader, 1, 0, tok2, id2, &st), 0);
	assert_int_equal(st.code, 7);
	assert_int_equal(create_token(0, tok, reader, 1, 1, tok2, id2, &st), 0);
	assert_int_not_equal(create_token(0, E.admin, ghost, 1, 0, tok2, id2, &st), 0);
	assert_int_equal(st.code, 5);
	/* last use recorded (the first use of a token has it written) */
	assert_true(last_used(id) > 0);
	assert_int_equal(store_token_by_id(E.s[0].db, DB_DEFAULT_TENANT, id, &meta), 0);
	assert_int_equal(meta.n_policies, 1);
	assert_string_equal(meta.policies[0], "reader");
	store_token_clear(&meta);
	/* expiry */
	sleep(3);
	assert_int_equal(probe(0, tok), 16);
	assert_int_equal(probe(1, tok), 16);
	trstctl_status_clear(&st);
}

static void test_evaluate(void **state)
{
	Trstctl__V1__EvaluateRequest q = TRSTCTL__V1__EVALUATE_REQUEST__INIT;
	Trstctl__V1__Decision *d = NULL;
	const char *const reader[] = { "reader" };
	char tok[POLICY_TOKEN_LEN + 1], id[17];
	struct trstctl_status st = { 0 };

	(void)state;
	assert_int_equal(create_token(0, E.admin, reader, 1, 0, tok, id, &st), 0);
	q.principal = id;
	q.action = "Policy.GetPolicy";
	q.resource = "policy/secret-1";
	assert_int_equal(trstctl_policy_evaluate(E.s[0].t.cl, &q, as(E.admin), &d, &st), 0);
	assert_false(d->allowed);
	assert_string_equal(d->matched_policy, "reader");
	assert_int_equal(d->matched_rule, 1);
	protobuf_c_message_free_unpacked(&d->base, NULL);
	q.resource = "policy/other";
	assert_int_equal(trstctl_policy_evaluate(E.s[0].t.cl, &q, as(E.admin), &d, &st), 0);
	assert_true(d->allowed);
	assert_int_equal(d->matched_rule, 0);
	protobuf_c_message_free_unpacked(&d->base, NULL);
	q.action = "CA.Nope";
	assert_int_not_equal(trstctl_policy_evaluate(E.s[0].t.cl, &q, as(E.admin), &d, &st), 0);
	assert_int_equal(st.code, 3);
	/* reader may not evaluate others (token/<id> is not in its resources for Evaluate) */
	q.action = "Policy.GetPolicy";
	assert_int_not_equal(trstctl_policy_evaluate(E.s[0].t.cl, &q, as(tok), &d, &st), 0);
	assert_int_equal(st.code, 7);
	trstctl_status_clear(&st);
}

/* Revoked on server 0: server 1, which has the token cached, refuses it within a second. */
static void test_revocation_other_server(void **state)
{
	Trstctl__V1__RevokeTokenRequest q = TRSTCTL__V1__REVOKE_TOKEN_REQUEST__INIT;
	Trstctl__V1__Token *t = NULL;
	const char *const reader[] = { "reader" };
	char tok[POLICY_TOKEN_LEN + 1], id[17];
	struct trstctl_status st = { 0 };
	int64_t start, took;
	int denied_before = count_audit("auth.denied");

	(void)state;
	assert_int_equal(create_token(0, E.admin, reader, 1, 0, tok, id, &st), 0);
	assert_int_equal(settle(1, tok), 0); /* cached on server 1 */
	assert_int_equal(probe(1, tok), 0);
	q.id = id;
	start = now_ms();
	assert_int_equal(trstctl_policy_revoke_token(E.s[0].t.cl, &q, as(E.admin), &t, &st), 0);
	assert_true(t->revoked);
	protobuf_c_message_free_unpacked(&t->base, NULL);
	assert_int_equal(probe(0, tok), 16); /* at once on the server that revoked */
	while (probe(1, tok) == 0 && now_ms() - start < 3000)
		usleep(20 * 1000);
	took = now_ms() - start;
	printf("  revocation seen by the other server after %lld ms\n", (long long)took);
	assert_true(took < 1000);
	assert_true(flush_unauth(0) == 1 && flush_unauth(1) == 1); /* one source each */
	assert_true(count_audit("auth.denied") >= denied_before + 2);
	{
		json_t *o = last_data("auth.denied"), *ids = json_object_get(o, "token_ids");
		bool named = false;

		/* server 1's summary: the revoked token among those its source presented */
		assert_true(json_integer_value(json_object_get(json_object_get(o, "reasons"),
							       "revoked")) >= 1);
		for (size_t i = 0; i < json_array_size(ids); i++)
			named = named || strcmp(json_string_value(json_array_get(ids, i)), id) == 0;
		assert_true(named || json_integer_value(json_object_get(o, "other_token_ids")) > 0);
		json_decref(o);
	}
	assert_true(count_audit("token.revoked") >= 1);
	/* revoking again changes nothing and says so */
	assert_int_equal(trstctl_policy_revoke_token(E.s[1].t.cl, &q, as(E.admin), &t, &st), 0);
	assert_true(t->revoked);
	protobuf_c_message_free_unpacked(&t->base, NULL);
	trstctl_status_clear(&st);
}

/* A policy change on server 0 holds on server 1 within a second. */
static void test_policy_change_other_server(void **state)
{
	const char *allow =
		"{\"rules\": [{\"effect\": \"allow\", \"actions\": [\"Policy.GetPolicy\"],"
		" \"resources\": [\"policy/*\"]}]}";
	const char *deny =
		"{\"rules\": [{\"effect\": \"allow\", \"actions\": [\"Policy.ListPolicies\"],"
		" \"resources\": [\"policy/*\"]}]}";
	const char *const pol[] = { "flip" };
	char tok[POLICY_TOKEN_LEN + 1], id[17];
	struct trstctl_status st = { 0 };
	int64_t start;

	(void)state;
	assert_int_equal(put(0, E.admin, "flip", allow, NULL, NULL, &st), 0);
	assert_int_equal(create_token(0, E.admin, pol, 1, 0, tok, id, &st), 0);
	start = now_ms();
	while (probe(1, tok) != 0 && now_ms() - start < 3000)
		usleep(20 * 1000);
	assert_int_equal(probe(1, tok), 0);
	assert_int_equal(put(0, E.admin, "flip", deny, NULL, NULL, &st), 0);
	start = now_ms();
	while (probe(1, tok) == 0 && now_ms() - start < 3000)
		usleep(20 * 1000);
	assert_true(now_ms() - start < 1000);
	assert_int_equal(probe(1, tok), 7);
	assert_true(count_audit("policy.denied") >= 1);
	trstctl_status_clear(&st);
}

/* `trstctl token create-root` straight on the database: a root token, audited. */
static void test_create_root(void **state)
{
	char dsn[1024], kekf[256], kenv[300], out[256], tok[POLICY_TOKEN_LEN + 2], id[17];
	uint8_t key[KEK_LEN];
	char *envp[3] = { dsn, kenv, NULL };
	Trstctl__V1__RevokeTokenRequest q = TRSTCTL__V1__REVOKE_TOKEN_REQUEST__INIT;
	Trstctl__V1__Token *t = NULL;
	struct trstctl_status st = { 0 };
	struct cfg *c = NULL;
	char *errs = NULL;
	int fd, saved;

	(void)state;
	snprintf(dsn, sizeof(dsn), "TRSTCTL_POSTGRES_DSN=%s", getenv("TRSTCTL_POSTGRES_DSN"));
	snprintf(kekf, sizeof(kekf), "%s/kek.bin", E.dir);
	snprintf(kenv, sizeof(kenv), "TRSTCTL_SECRETS_KEK_FILE=%s", kekf);
	memset(key, 0x3c, sizeof(key));
	fd = open(kekf, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, key, sizeof(key)), (ssize_t)sizeof(key));
	close(fd);
	assert_int_equal(cfg_load(envp, &c, &errs), 0);

	snprintf(out, sizeof(out), "%s/cli.out", E.dir);
	fflush(stdout);
	saved = dup(1);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 1);
	close(fd);
	char *create[] = { "token", "create-root", "--policy", "reader", "--ttl", "1h",
			   "--name", "ci" };
	int r = token_admin_cli(8, create, c);

	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	assert_int_equal(r, 0);
	assert_int_equal(read_line(out, tok, sizeof(tok)), 0);
	assert_int_equal(strlen(tok), POLICY_TOKEN_LEN);
	assert_int_equal(settle(1, tok), 0);
	/* its id, then revoke it through the server */
	uint8_t hash[POLICY_HASH_LEN];
	char hdr[80];

	snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
	assert_int_equal(policy_token_parse_bearer(hdr, hash), 0);
	policy_token_id(hash, id);
	q.id = id;
	assert_int_equal(trstctl_policy_revoke_token(E.s[0].t.cl, &q, as(E.admin), &t, &st), 0);
	assert_true(t->revoked);
	assert_string_equal(t->parent_id, ""); /* a root */
	protobuf_c_message_free_unpacked(&t->base, NULL);
	trstctl_status_clear(&st);
	int64_t start = now_ms();

	while (probe(1, tok) == 0 && now_ms() - start < 3000)
		usleep(20 * 1000);
	assert_true(now_ms() - start < 1000);
	char *bad[] = { "token", "create-root" }, *help[] = { "token", "create-root", "--help" };

	assert_int_equal(token_admin_cli(2, bad, c), 2);
	assert_int_equal(token_admin_cli(3, help, NULL), 0); /* --help needs no configuration */
	cfg_free(c);
	assert_true(count_audit("token.created") >= 2);
}

/* Inline ------------------------------------------------------------------------------ */

static atomic_int inl_inline, inl_pool;

/* A fake GetSecret with inline_try: always answers, counting where it ran. */
static int inl_get(struct rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **ret,
		   void *user)
{
	Trstctl__V1__Secret *o =
		(void *)rpc_call_new_message(call, &trstctl__v1__secret__descriptor);

	atomic_fetch_add(rpc_call_is_inline(call) ? &inl_inline : &inl_pool, 1);
	o->name = rpc_call_strdup(call, rpc_call_principal(call) ? rpc_call_principal(call) : "");
	*ret = &o->base;
	return 0;
}

/* GetSecret on t as token; returns the code; *ran_inline says where the handler ran. */
static int inl_call(struct rpc_test_serve *t, const char *token, bool *ran_inline,
		    char *principal)
{
	Trstctl__V1__GetSecretRequest q = TRSTCTL__V1__GET_SECRET_REQUEST__INIT;
	Trstctl__V1__Secret *o = NULL;
	struct trstctl_status st = { 0 };
	int before = atomic_load(&inl_inline), code;

	q.name = "inline/x";
	trstctl_secrets_get_secret(t->cl, &q, as(token), &o, &st);
	code = st.code;
	*ran_inline = atomic_load(&inl_inline) > before;
	if (o) {
		snprintf(principal, 32, "%s", o->name);
		protobuf_c_message_free_unpacked(&o->base, NULL);
	}
	trstctl_status_clear(&st);
	return code;
}

static void test_inline(void **state)
{
	const ProtobufCServiceDescriptor *d = &trstctl__v1__secrets__descriptor;
	const char *doc = "{\"rules\": [{\"effect\": \"allow\", \"actions\": "
			  "[\"Secrets.GetSecret\"], \"resources\": [\"secret/inline/*\"]}]}";
	const char *const reader[] = { "inline-reader" };
	struct rpc_method_handler h[16] = { { 0 } };
	char tok[POLICY_TOKEN_LEN + 1], id[17], none[POLICY_TOKEN_LEN + 1], id2[17], who[32];
	struct trstctl_status st = { 0 };
	struct rpc_test_serve t = { 0 };
	struct authz *a = E.s[0].authz;
	int denied, pool;
	bool in = false;

	(void)state;
	for (unsigned i = 0; i < d->n_methods; i++)
		if (strcmp(d->methods[i].name, "GetSecret") == 0)
			h[i] = (struct rpc_method_handler){ .unary = inl_get, .inline_try = true };
	assert_int_equal(rpc_test_serve_new(NULL, &t), 0);
	assert_int_equal(rpc_server_add_service(t.srv, d, h, NULL), 0);
	assert_int_equal(authz_install(a, t.srv), 0);
	assert_int_equal(rpc_test_serve_start(&t, 10000), 0);
	assert_int_equal(put(0, E.admin, "inline-reader", doc, NULL, NULL, &st), 0);
	assert_int_equal(create_token(0, E.admin, reader, 1, 0, tok, id, &st), 0);
	assert_int_equal(create_token(0, E.admin, NULL, 0, 0, none, id2, &st), 0);
	assert_int_equal(authz_refresh(a) >= 0, 1);

	/* first use: not cached (and last use due) -> decided on the pool */
	pool = atomic_load(&inl_pool);
	assert_int_equal(inl_call(&t, tok, &in, who), 0);
	assert_false(in);
	assert_int_equal(atomic_load(&inl_pool), pool + 1);
	assert_string_equal(who, id);
	/* cached, touched: decided and answered inline, principal set */
	assert_int_equal(inl_call(&t, tok, &in, who), 0);
	assert_true(in);
	assert_string_equal(who, id);
	/* no token: answered at once (counted, summarized when flushed) */
	denied = count_audit("auth.denied");
	assert_int_equal(inl_call(&t, NULL, &in, who), 16);
	assert_int_equal(count_audit("auth.denied"), denied);
	assert_int_equal(flush_unauth(0), 1);
	assert_int_equal(count_audit("auth.denied"), denied + 1);
	/* policy denials are audited one by one, so never decided inline */
	denied = count_audit("policy.denied");
	assert_int_equal(inl_call(&t, none, &in, who), 7);
	assert_int_equal(inl_call(&t, none, &in, who), 7); /* cached token, still denied */
	assert_int_equal(count_audit("policy.denied"), denied + 2);
	/* a due last_used_time keeps the call inline: the poller writes it */
	{
		struct db_conn *c = NULL;

		assert_int_equal(db_acquire(E.s[0].db, 5000, &c), 0);
		assert_true(db_exec(c, "UPDATE tokens SET last_used_time = NULL", NULL, 0, NULL) >=
			    0);
		db_release(E.s[0].db, c);
	}
	pthread_rwlock_rdlock(&a->tok_lock);
	for (size_t b = 0; b < AUTHZ_TOK_BUCKETS; b++)
		for (struct tok_entry *e = a->tok[b]; e; e = e->next)
			if (strcmp(e->id, id) == 0)
				atomic_store(&e->touch_us, 0);
	pthread_rwlock_unlock(&a->tok_lock);
	assert_int_equal(inl_call(&t, tok, &in, who), 0);
	assert_true(in);
	assert_true(last_used(id) > 0);
	assert_int_equal(inl_call(&t, tok, &in, who), 0);
	assert_true(in);
	trstctl_status_clear(&st);
	rpc_test_serve_stop(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bootstrap_file),
		cmocka_unit_test(test_unauthenticated),
		cmocka_unit_test(test_every_method_gated),
		cmocka_unit_test(test_policy_store),
		cmocka_unit_test(test_token_lifecycle),
		cmocka_unit_test(test_evaluate),
		cmocka_unit_test(test_revocation_other_server),
		cmocka_unit_test(test_policy_change_other_server),
		cmocka_unit_test(test_create_root),
		cmocka_unit_test(test_inline),
	};

	if (!getenv("TRSTCTL_POSTGRES_DSN")) {
		printf("SKIP: TRSTCTL_POSTGRES_DSN is not set (run through run-with-pg.sh)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
