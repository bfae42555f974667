/*
 * The policy service's runtime: the known actions, the resource of each request, the token
 * cache, the generation poller, the bootstrap admin token, and the hook that authenticates
 * and authorizes every call before its handler (rpc_server_set_auth; health and reflection
 * never reach it).
 *
 * A call: the `authorization` metadata must be `Bearer trst_...`; its SHA-256 is looked up
 * in the token cache, else in PostgreSQL (an indexed lookup by hash, then the stored hash
 * is compared in constant time). A missing, malformed, unknown, expired or revoked token
 * gets UNAUTHENTICATED with one message that does not say which; such calls are counted by
 * reason and summarized into one auth.denied record per source per interval (unauth.c),
 * which says which. Then the principal's policies decide (action, resource) at the gate
 * (policy.h); a denial gets PERMISSION_DENIED naming the action and resource, never the
 * policy contents, and is audited on its own (policy.denied; outcome denied).
 *
 * Inline (methods with inline_try or inline_ok, on a completion-queue thread): an allowed
 * call whose token is cached is decided there without blocking, and so is an
 * unauthenticated one (counting does not block); anything else (cache miss, a policy
 * denial to audit) returns -EWOULDBLOCK and the call is decided again, the usual way, on
 * the pool. A token's last_used_time (written at most once a minute) is handed to the
 * poller thread, which writes it at its next poll: no call waits for that write, so calls
 * that need no database (Guard.GetStatus) answer while PostgreSQL does not.
 *
 * The action of a method is `<service short name>.<method>` of the served descriptors, so
 * a method added later is a known action at once; its resource comes from this table, and
 * a method missing from it is denied to everyone, admin included (test-authz-map fails).
 * (`\*` is a literal star: C comments cannot hold a slash followed by one.)
 *
 *   action                                   resource
 *   CA.CreateOwner                           owner/<name>
 *   CA.GetOwner                              owner/<id>
 *   CA.ListOwners                            owner/\*
 *   CA.CreateIdentity                        identity/<name>
 *   CA.GetIdentity, CA.TransitionIdentity    identity/<id>
 *   CA.IssueCertificate                      identity/<identity_id>
 *   CA.ListIdentities                        identity/\*
 *   CA.GetCertificate                        certificate/<serial>
 *   CA.ListCertificates                      certificate/\*
 *   CA.GetCABundle, CA.GetCRL                ca
 *   Secrets.<every method but ListSecrets>   secret/<name>
 *   Secrets.ListSecrets                      secret/<prefix>*   (a glob-literal `*`: a rule
 *                                            must cover every name the prefix could list)
 *   Audit.*                                  audit
 *   Policy.PutPolicy, GetPolicy, DeletePolicy policy/<name>
 *   Policy.ListPolicies                      policy/\*
 *   Policy.Evaluate                          token/<principal> (empty: the caller's id)
 *   Policy.CreateToken, Policy.ListTokens    token/\*
 *   Policy.RevokeToken                       token/<id>
 *   Guard.*                                  guard
 *   Assist.Ask                               assist
 *
 * List methods: the gate decides the call on the table's resource; then each item of the
 * page is decided again with the same action on its own resource (secret/<name>,
 * owner/<id> and owner/<name>, identity/<id> and identity/<name>, certificate/<serial>,
 * policy/<name>, token/<id>) through rpc_call_item_visible, so a deny rule hides what it
 * covers whatever prefix was asked for.
 *
 * Freshness: tokens are cached until the generation row moves (any policy or token change
 * on any server bumps it in the change's transaction). PostgreSQL's LISTEN/NOTIFY would
 * need a dedicated connection per server that a pooled db/ does not have; polling the
 * single generation row (an index lookup) every poll_ms is the equivalent used here, with
 * a bound of poll_ms plus one reload. A lookup that raced a drop of the cache does not
 * insert what it read (tok_epoch), so a revoked token cannot slip back in.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "audit.h"
#include "assist.pb-c.h"
#include "audit.pb-c.h"
#include "authz-int.h"
#include "ca.pb-c.h"
#include "db.h"
#include "guard.pb-c.h"
#include "log.h"
#include "policy.pb-c.h"
#include "rpc.h"
#include "secrets.pb-c.h"

#define RES_MAX 1024
#define POLL_DEFAULT_MS 300

/* The resource table documented above. */
static const struct res_map {
	const char *action;
	const char *prefix; /* text before the field's value (or the whole resource) */
	const char *field;  /* request field whose value follows; NULL: none */
	const char *suffix;
} res_map[] = {
	{ "CA.CreateOwner", "owner/", "name", "" },
	{ "CA.GetOwner", "owner/", "id", "" },
	{ "CA.ListOwners", "owner/*", NULL, "" },
	{ "CA.CreateIdentity", "identity/", "name", "" },
	{ "CA.GetIdentity", "identity/", "id", "" },
	{ "CA.ListIdentities", "identity/*", NULL, "" },
	{ "CA.TransitionIdentity", "identity/", "id", "" },
	{ "CA.IssueCertificate", "identity/", "identity_id", "" },
	{ "CA.GetCertificate", "certificate/", "serial", "" },
	{ "CA.ListCertificates", "certificate/*", NULL, "" },
	{ "CA.GetCABundle", "ca", NULL, "" },
	{ "CA.GetCRL", "ca", NULL, "" },
	{ "Secrets.CreateSecret", "secret/", "name", "" },
	{ "Secrets.GetSecret", "secret/", "name", "" },
	{ "Secrets.RotateSecret", "secret/", "name", "" },
	{ "Secrets.ListSecrets", "secret/", "prefix", "*" },
	{ "Secrets.ListSecretVersions", "secret/", "name", "" },
	{ "Secrets.DeleteSecret", "secret/", "name", "" },
	{ "Secrets.RecoverSecret", "secret/", "name", "" },
	{ "Secrets.DestroySecretVersion", "secret/", "name", "" },
	{ "Audit.ListEvents", "audit", NULL, "" },
	{ "Audit.WatchEvents", "audit", NULL, "" },
	{ "Audit.VerifyChain", "audit", NULL, "" },
	{ "Policy.PutPolicy", "policy/", "name", "" },
	{ "Policy.GetPolicy", "policy/", "name", "" },
	{ "Policy.ListPolicies", "policy/*", NULL, "" },
	{ "Policy.DeletePolicy", "policy/", "name", "" },
	{ "Policy.Evaluate", "token/", "principal", "" },
	{ "Policy.CreateToken", "token/*", NULL, "" },
	{ "Policy.ListTokens", "token/*", NULL, "" },
	{ "Policy.RevokeToken", "token/", "id", "" },
	{ "Guard.GetStatus", "guard", NULL, "" },
	{ "Guard.ListDenials", "guard", NULL, "" },
	{ "Guard.RunTripwire", "guard", NULL, "" },
	{ "Assist.Ask", "assist", NULL, "" },
};

static const ProtobufCServiceDescriptor *const services[] = {
	&trstctl__v1__ca__descriptor,	 &trstctl__v1__secrets__descriptor,
	&trstctl__v1__audit__descriptor, &trstctl__v1__policy__descriptor,
	&trstctl__v1__guard__descriptor, &trstctl__v1__assist__descriptor,
};

int64_t authz_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Known actions ---------------------------------------------------------------------- */

void authz_methods_free(struct authz_method *m, const char **actions, size_t n)
{
	for (size_t i = 0; m && i < n; i++) {
		free(m[i].path);
		free(m[i].action);
	}
	free(m);
	free(actions);
}

int authz_methods_build(struct authz_method **ret_methods, const char ***ret_actions, size_t *ret_n)
{
	struct authz_method *m;
	const char **actions;
	size_t n = 0, k = 0;

	for (size_t s = 0; s < sizeof(services) / sizeof(services[0]); s++)
		n += services[s]->n_methods;
	m = calloc(n, sizeof(*m));
	actions = calloc(n, sizeof(*actions));
	if (!m || !actions)
		goto oom;
	for (size_t s = 0; s < sizeof(services) / sizeof(services[0]); s++) {
		const ProtobufCServiceDescriptor *sd = services[s];

		for (unsigned i = 0; i < sd->n_methods; i++, k++) {
			if (asprintf(&m[k].path, "/%s/%s", sd->name, sd->methods[i].name) < 0) {
				m[k].path = NULL;
				goto oom;
			}
			if (asprintf(&m[k].action, "%s.%s", sd->short_name, sd->methods[i].name) <
			    0) {
				m[k].action = NULL;
				goto oom;
			}
			m[k].input = sd->methods[i].input;
			actions[k] = m[k].action;
		}
	}
	*ret_methods = m;
	*ret_actions = actions;
	*ret_n = n;
	return 0;
oom:
	authz_methods_free(m, actions, n);
	return -ENOMEM;
}

const struct authz_method *authz_method_find(const struct authz *a, const char *path)
{
	for (size_t i = 0; path && i < a->n_methods; i++)
		if (strcmp(a->methods[i].path, path) == 0)
			return &a->methods[i];
	return NULL;
}

int authz_resource(const char *action, const ProtobufCMessage *req, char *buf, size_t len)
{
	const char *value = "";
	int n;

	for (size_t i = 0; i < sizeof(res_map) / sizeof(res_map[0]); i++) {
		const struct res_map *rm = &res_map[i];

		if (strcmp(rm->action, action) != 0)
			continue;
		if (rm->field) {
			const ProtobufCFieldDescriptor *f =
				req ? protobuf_c_message_descriptor_get_field_by_name(
					      req->descriptor, rm->field) :
				      NULL;

			if (!f || f->type != PROTOBUF_C_TYPE_STRING ||
			    f->label == PROTOBUF_C_LABEL_REPEATED)
				return -ENOENT;
			value = *(const char *const *)((const char *)req + f->offset);
			if (!value)
				value = "";
		}
		n = snprintf(buf, len, "%s%s%s", rm->prefix, value, rm->suffix);
		return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
	}
	return -ENOENT;
}

const char *authz_resource_field(const char *action)
{
	for (size_t i = 0; i < sizeof(res_map) / sizeof(res_map[0]); i++)
		if (strcmp(res_map[i].action, action) == 0)
			return res_map[i].field ? res_map[i].field : "the request";
	return "the request";
}

/* Token cache -------------------------------------------------------------------------- */

static size_t bucket(const uint8_t hash[POLICY_HASH_LEN])
{
	size_t b;

	memcpy(&b, hash, sizeof(b)); /* a SHA-256: uniform bits */
	return b % AUTHZ_TOK_BUCKETS;
}

static struct tok_entry *tok_entry_free(struct tok_entry *e)
{
	if (!e)
		return NULL;
	for (size_t i = 0; i < e->n_policies; i++)
		free(e->policies[i]);
	free(e->policies);
	free(e->name);
	free(e);
	return NULL;
}

/* Read or write lock held. */
static struct tok_entry *tok_find(struct authz *a, const uint8_t hash[POLICY_HASH_LEN])
{
	for (struct tok_entry *e = a->tok[bucket(hash)]; e; e = e->next)
		if (policy_token_hash_equal(e->hash, hash))
			return e;
	return NULL;
}

/* Write lock held. */
static void tok_drop_locked(struct authz *a)
{
	for (size_t b = 0; b < AUTHZ_TOK_BUCKETS; b++) {
		while (a->tok[b]) {
			struct tok_entry *next = a->tok[b]->next;

			tok_entry_free(a->tok[b]);
			a->tok[b] = next;
		}
	}
	a->n_tok = 0;
	a->tok_epoch++;
}

static void tok_drop(struct authz *a)
{
	pthread_rwlock_wrlock(&a->tok_lock);
	tok_drop_locked(a);
	pthread_rwlock_unlock(&a->tok_lock);
}

/* Takes t's policies and name into a new entry. */
static struct tok_entry *tok_entry_from(struct store_token *t)
{
	struct tok_entry *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	memcpy(e->hash, t->hash, POLICY_HASH_LEN);
	memcpy(e->id, t->id, sizeof(e->id));
	e->name = t->name;
	e->policies = t->policies;
	e->n_policies = t->n_policies;
	e->expire_us = t->expire_us;
	atomic_store(&e->touch_us, t->last_used_us);
	t->name = NULL;
	t->policies = NULL;
	t->n_policies = 0;
	return e;
}

/*
 * Finds the token of hash. Returns 0 with a->tok_lock read-held and *ret set; -EACCES with
 * *ret_why ("unknown", "expired", "revoked") when it does not authenticate; db errors.
 * With cached_only (the inline path) a token that is not cached is -EWOULDBLOCK.
 */
static int tok_acquire(struct authz *a, const uint8_t hash[POLICY_HASH_LEN], bool cached_only,
		       struct tok_entry **ret, const char **ret_why)
{
	for (int attempt = 0; attempt < 4; attempt++) {
		struct store_token t;
		struct tok_entry *e;
		uint64_t epoch;
		int r;

		pthread_rwlock_rdlock(&a->tok_lock);
		e = tok_find(a, hash);
		if (e) {
			if (e->expire_us && authz_now_us() >= e->expire_us) {
				pthread_rwlock_unlock(&a->tok_lock);
				*ret_why = "expired";
				return -EACCES;
			}
			*ret = e;
			return 0;
		}
		epoch = a->tok_epoch;
		pthread_rwlock_unlock(&a->tok_lock);
		if (cached_only)
			return -EWOULDBLOCK;

		r = store_token_by_hash(a->db, a->tenant, hash, &t);
		if (r == -ENOENT || (r >= 0 && !policy_token_hash_equal(t.hash, hash))) {
			if (r >= 0)
				store_token_clear(&t);
			*ret_why = "unknown";
			return -EACCES;
		}
		if (r < 0)
			return r;
		if (t.revoked || (t.expire_us && authz_now_us() >= t.expire_us)) {
			*ret_why = t.revoked ? "revoked" : "expired";
			store_token_clear(&t);
			return -EACCES;
		}
		e = tok_entry_from(&t);
		store_token_clear(&t);
		if (!e)
			return -ENOMEM;
		pthread_rwlock_wrlock(&a->tok_lock);
		if (a->tok_epoch == epoch && !tok_find(a, hash)) {
			size_t b = bucket(hash);

			if (a->n_tok >= AUTHZ_TOK_MAX) {
				tok_drop_locked(a);
				epoch = a->tok_epoch;
			}
			e->next = a->tok[b];
			a->tok[b] = e;
			a->n_tok++;
			e = NULL;
		}
		pthread_rwlock_unlock(&a->tok_lock);
		tok_entry_free(e); /* lost a race with a drop or another insert: look again */
	}
	return -EAGAIN;
}

/* Under the read lock: true when last_used_time is due to be written (no claim made). */
static bool tok_touch_due(struct tok_entry *e)
{
	return authz_now_us() - atomic_load(&e->touch_us) >= AUTHZ_TOUCH_US;
}

/* Under the read lock: true when this caller should write last_used_time now. */
static bool tok_should_touch(struct tok_entry *e)
{
	int64_t now = authz_now_us(), seen = atomic_load(&e->touch_us);

	return now - seen >= AUTHZ_TOUCH_US &&
	       atomic_compare_exchange_strong(&e->touch_us, &seen, now);
}

/* Last use ------------------------------------------------------------------------------ */

/* Writes last_used_time of each token of ids (best effort: a failure is logged only). */
static void touch_write(struct authz *a, char (*ids)[POLICY_TOKEN_ID_LEN + 1], size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (store_token_touch(a->db, a->tenant, ids[i]) < 0)
			log_debug("cannot record a token's last use", "token_id", "%s", ids[i]);
}

/* Queues a last_used_time write for the poller; without a poller, writes it now. */
static void touch_later(struct authz *a, const char *id)
{
	char now[1][POLICY_TOKEN_ID_LEN + 1];

	if (!a->poller_running) {
		memcpy(now[0], id, sizeof(now[0]));
		touch_write(a, now, 1);
		return;
	}
	pthread_mutex_lock(&a->poll_mu);
	if (a->n_touch < AUTHZ_TOUCH_QUEUE)
		memcpy(a->touch_ids[a->n_touch++], id, sizeof(a->touch_ids[0]));
	pthread_mutex_unlock(&a->poll_mu);
}

/* Policies and generation ------------------------------------------------------------- */

static int reload_policies(struct authz *a)
{
	struct store_policy *p = NULL;
	size_t n = 0;
	int r = store_policies_all(a->db, a->tenant, &p, &n);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct policy_doc *doc = NULL;
		char err[POLICY_ERR_MAX];
		uint64_t held = 0;

		if (!policy_name_valid(p[i].name) || strcmp(p[i].name, POLICY_ADMIN) == 0)
			continue;
		if (p[i].deleted) {
			policy_set_remove(a->set, p[i].name);
			continue;
		}
		if (policy_set_version(a->set, p[i].name, &held) == 0 &&
		    held >= (uint64_t)p[i].version)
			continue;
		if (policy_parse(p[i].document, a->actions, a->n_methods, &doc, err, sizeof(err)) <
		    0) {
			/* e.g. stored by a server that knew a method this one does not: the
			 * policy grants nothing here rather than something stale */
			log_warn("stored policy does not parse; it grants nothing", "policy", "%s",
				 p[i].name, "error", "%s", err);
			policy_set_remove(a->set, p[i].name);
			continue;
		}
		policy_set_put(a->set, p[i].name, (uint64_t)p[i].version, doc);
	}
	store_policies_free(p, n);
	return 0;
}

int authz_refresh(struct authz *a)
{
	int64_t gen = 0;
	int r;

	pthread_mutex_lock(&a->reload_mu);
	r = store_generation(a->db, a->tenant, &gen);
	if (r >= 0 && gen != a->generation) {
		tok_drop(a);
		r = reload_policies(a);
		if (r >= 0) {
			a->generation = gen;
			r = 1;
		}
	} else if (r >= 0) {
		r = 0;
	}
	pthread_mutex_unlock(&a->reload_mu);
	return r;
}

static void *poller_main(void *p)
{
	char ids[AUTHZ_TOUCH_QUEUE][POLICY_TOKEN_ID_LEN + 1];
	struct authz *a = p;

	pthread_mutex_lock(&a->poll_mu);
	while (!a->stop) {
		struct timespec ts;
		size_t n;
		int r;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)a->poll_ms * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&a->poll_cv, &a->poll_mu, &ts);
		if (a->stop)
			break;
		n = a->n_touch;
		memcpy(ids, a->touch_ids, n * sizeof(ids[0]));
		a->n_touch = 0;
		pthread_mutex_unlock(&a->poll_mu);
		touch_write(a, ids, n);
		r = authz_refresh(a);
		if (r < 0 && !a->poll_failing)
			log_warn("cannot poll the authorization generation; caches kept", "error",
				 "%s", strerror(-r));
		else if (r >= 0 && a->poll_failing)
			log_info("authorization generation readable again");
		a->poll_failing = r < 0;
		pthread_mutex_lock(&a->poll_mu);
	}
	pthread_mutex_unlock(&a->poll_mu);
	return NULL;
}

/* Denials ------------------------------------------------------------------------------ */

/* s when it is valid UTF-8, else a copy in buf with every byte >= 0x80 as '?'. */
static const char *utf8_or_ascii(const char *s, char *buf, size_t len)
{
	json_t *j = json_string(s);
	size_t i = 0;

	if (j) {
		json_decref(j);
		return s;
	}
	for (; s[i] && i + 1 < len; i++)
		buf[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
	buf[i] = '\0';
	return buf;
}

struct denial {
	const char *type;     /* policy.denied (auth.denied: summaries, unauth.c) */
	const char *actor;    /* "<id> <name>" */
	const char *action;   /* may be NULL */
	const char *resource; /* may be "" */
	const char *reason;   /* for the audit record only */
};

static void audit_denial(struct authz *a, struct rpc_call *call, const struct denial *d)
{
	char rbuf[RES_MAX];
	const char *res = utf8_or_ascii(d->resource, rbuf, sizeof(rbuf));
	json_t *o =
		json_pack("{s:s, s:s, s:s, s:s}", "action", d->action ? d->action : "", "method",
			  rpc_call_method(call), "peer", rpc_call_peer(call), "reason", d->reason);
	char *data = o ? json_dumps(o, JSON_COMPACT) : NULL;
	struct audit_entry e = { .tenant_id = a->tenant,
				 .type = d->type,
				 .actor = d->actor,
				 .resource = res,
				 .outcome = "denied",
				 .data_json = data };
	int r = audit_write(a->db, &e, AUTHZ_AUDIT_TIMEOUT_MS);

	if (r < 0)
		log_error("cannot audit a denied call", "type", "%s", d->type, "method", "%s",
			  rpc_call_method(call), "error", "%s", strerror(-r));
	free(data);
	json_decref(o);
}

/* Counted and summarized (unauth.c), not audited one by one: it never blocks. */
static int deny_unauthenticated(struct authz *a, struct rpc_call *call, const char *resource,
				const char *presented_id, enum unauth_reason why)
{
	authz_unauth_note(a, call, resource, presented_id, why);
	return rpc_call_error(call, RPC_UNAUTHENTICATED, AUTHZ_UNAUTH_MSG);
}

int authz_deny_unauthenticated(struct authz *a, struct rpc_call *call, const char *why)
{
	const char *who = rpc_call_principal(call);

	return deny_unauthenticated(a, call, "", who ? who : "", unauth_reason_from(why));
}

static int deny_permission(struct authz *a, struct rpc_call *call, const char *actor,
			   const char *action, const char *resource, const char *why)
{
	char rbuf[RES_MAX];
	struct denial d = { "policy.denied", actor, action, resource, why };

	audit_denial(a, call, &d);
	return rpc_call_error(call, RPC_PERMISSION_DENIED, "permission denied: %s on %s",
			      action ? action : rpc_call_method(call),
			      *resource ? utf8_or_ascii(resource, rbuf, sizeof(rbuf)) : "(none)");
}

int authz_deny(struct authz *a, struct rpc_call *call, const char *resource, const char *msg)
{
	const struct authz_method *m = authz_method_find(a, rpc_call_method(call));
	const char *who = rpc_call_principal(call);
	struct denial d = { "policy.denied", who ? who : "", m ? m->action : NULL, resource,
			    msg };

	audit_denial(a, call, &d);
	return rpc_call_error(call, RPC_PERMISSION_DENIED, "%s", msg);
}

/* The hook ----------------------------------------------------------------------------- */

/*
 * Authenticates call: on success the read lock is held and *ret is the caller's entry.
 * Otherwise it has answered (counted, see unauth.c) and returns the rpc_call_error result.
 * Inline (on a completion-queue thread) a token not in the cache returns -EWOULDBLOCK
 * instead, having answered nothing (the store lookup blocks); the pool reruns the call.
 * A missing or malformed header, and a cached token that expired, are answered inline.
 */
static int authenticate(struct authz *a, struct rpc_call *call, const char *resource,
			struct tok_entry **ret)
{
	const char *hdr = rpc_call_metadata(call, "authorization"), *why = "unknown";
	char id[POLICY_TOKEN_ID_LEN + 1] = "";
	uint8_t hash[POLICY_HASH_LEN];
	bool in = rpc_call_is_inline(call);
	int r;

	if (policy_token_parse_bearer(hdr, hash) < 0)
		return deny_unauthenticated(a, call, resource, "",
					    hdr ? UNAUTH_MALFORMED : UNAUTH_MISSING);
	policy_token_id(hash, id);
	r = tok_acquire(a, hash, in, ret, &why);
	OPENSSL_cleanse(hash, sizeof(hash));
	if (r == -EACCES)
		return deny_unauthenticated(a, call, resource, id, unauth_reason_from(why));
	if (in && r < 0)
		return -EWOULDBLOCK;
	if (r < 0) {
		log_error("cannot look up a token", "error", "%s", strerror(-r));
		return rpc_call_error(call, RPC_UNAVAILABLE, "authorization store unavailable");
	}
	return 0;
}

/* After authenticate (lock held): releases the lock, has last_used_time written when due. */
static void release(struct authz *a, struct tok_entry *e)
{
	char id[POLICY_TOKEN_ID_LEN + 1];
	bool touch = tok_should_touch(e);

	memcpy(id, e->id, sizeof(id));
	pthread_rwlock_unlock(&a->tok_lock);
	if (touch)
		touch_later(a, id);
}

/*
 * too_long: the request field whose value does not fit a resource name (RES_MAX), or NULL.
 * Such a call is answered INVALID_ARGUMENT once the caller is authenticated (a caller
 * without a valid token still gets UNAUTHENTICATED), never PERMISSION_DENIED: the policy
 * did not refuse it, the request is malformed.
 */
static int decide(struct authz *a, struct rpc_call *call, const struct policy_request *req,
		  const char *resource_for_errors, const char *too_long)
{
	struct policy_decision dec = { 0 };
	char actor[POLICY_TOKEN_ID_LEN + AUTHZ_NAME_MAX + 2];
	struct tok_entry *e = NULL;
	int r = authenticate(a, call, too_long ? "" : resource_for_errors, &e);

	if (r < 0)
		return r;
	if (too_long) {
		release(a, e);
		return rpc_call_error(call, RPC_INVALID_ARGUMENT,
				      "%s is too long: with its prefix (such as secret/) it must stay "
				      "under %d bytes",
				      too_long, RES_MAX);
	}
	/* inline: without a poller, writing last_used_time is left to the pool's rerun */
	if (rpc_call_is_inline(call) && !a->poller_running && tok_touch_due(e)) {
		pthread_rwlock_unlock(&a->tok_lock);
		return -EWOULDBLOCK;
	}
	rpc_call_set_principal(call, e->id);
	snprintf(actor, sizeof(actor), "%s%s%s", e->id, e->name[0] ? " " : "", e->name);
	if (req->resource)
		r = policy_eval(a->set, (const char *const *)e->policies, e->n_policies, req, &dec);
	else
		snprintf(dec.reason, sizeof(dec.reason), "no resource for this method");
	release(a, e);
	if ((r < 0 || !dec.allowed) && rpc_call_is_inline(call))
		return -EWOULDBLOCK; /* the denial is audited by the pool's rerun */
	if (r < 0 || !dec.allowed)
		return deny_permission(a, call, actor, req->action, resource_for_errors,
				       dec.reason[0] ? dec.reason : "denied");
	return 0;
}

static int auth_hook(struct rpc_call *call, const ProtobufCMessage *msg, void *user)
{
	struct authz *a = user;
	const struct authz_method *m = authz_method_find(a, rpc_call_method(call));
	char *resource = rpc_call_alloc(call, RES_MAX);
	/* a method outside the six services (none today) has no action: policy_eval denies
	 * it after authentication, as it denies a method without a resource mapping */
	struct policy_request req = { .action = m ? m->action : "", .gate = true };
	const char *too_long = NULL;
	int rr = m ? authz_resource(m->action, msg, resource, RES_MAX) : -ENOENT;

	if (rr >= 0)
		req.resource = resource;
	else if (rr == -ENAMETOOLONG)
		too_long = authz_resource_field(m->action);
	if (rr < 0)
		resource[0] = '\0';
	/* Evaluate without a principal asks about the caller: token/<the caller's id>. */
	if (m && strcmp(m->action, "Policy.Evaluate") == 0 && strcmp(resource, "token/") == 0) {
		uint8_t hash[POLICY_HASH_LEN];
		char id[POLICY_TOKEN_ID_LEN + 1];

		if (policy_token_parse_bearer(rpc_call_metadata(call, "authorization"), hash) ==
		    0) {
			policy_token_id(hash, id);
			snprintf(resource, RES_MAX, "token/%s", id);
		}
	}
	return decide(a, call, &req, resource, too_long);
}

/*
 * One item of a List reply (rpc_call_item_visible): the call's action on the item's own
 * resource, decided like a call (deny overrides allow). A hidden item is not an error and
 * is not audited: the gate already decided, and audited, the call itself.
 */
static int item_hook(struct rpc_call *call, const char *resource, void *user)
{
	struct authz *a = user;
	const struct authz_method *m = authz_method_find(a, rpc_call_method(call));
	struct policy_request req = { .action = m ? m->action : "", .resource = resource };
	struct policy_decision dec = { 0 };
	uint8_t hash[POLICY_HASH_LEN];
	struct tok_entry *e = NULL;
	const char *why;
	int r;

	if (!m || policy_token_parse_bearer(rpc_call_metadata(call, "authorization"), hash) < 0)
		return 0;
	r = tok_acquire(a, hash, rpc_call_is_inline(call), &e, &why);
	OPENSSL_cleanse(hash, sizeof(hash));
	if (r == -EACCES) /* revoked or expired since the gate: nothing more to see */
		return 0;
	if (r < 0)
		return r;
	r = policy_eval(a->set, (const char *const *)e->policies, e->n_policies, &req, &dec);
	pthread_rwlock_unlock(&a->tok_lock);
	return r < 0 ? r : dec.allowed;
}

int authz_check(struct authz *a, struct rpc_call *call, const struct policy_request *req)
{
	struct policy_request full;

	if (!a || !call || !req || !req->action || !req->resource)
		return -EINVAL;
	full = *req;
	full.gate = false;
	return decide(a, call, &full, req->resource, NULL);
}

int authz_caller(struct authz *a, struct rpc_call *call, const char **ret_id,
		 const char *const **ret_policies, size_t *ret_n)
{
	const char *hdr = rpc_call_metadata(call, "authorization"), *why;
	uint8_t hash[POLICY_HASH_LEN];
	struct tok_entry *e = NULL;
	const char **v;
	int r;

	if (policy_token_parse_bearer(hdr, hash) < 0)
		return -EACCES;
	r = tok_acquire(a, hash, rpc_call_is_inline(call), &e, &why);
	if (r < 0)
		return r;
	v = rpc_call_alloc(call, (e->n_policies + 1) * sizeof(*v));
	for (size_t i = 0; i < e->n_policies; i++)
		v[i] = rpc_call_strdup(call, e->policies[i]);
	*ret_id = rpc_call_strdup(call, e->id);
	*ret_n = e->n_policies;
	pthread_rwlock_unlock(&a->tok_lock);
	*ret_policies = v;
	return 0;
}

int authz_install(struct authz *a, struct rpc_server *s)
{
	if (!a || !s)
		return -EINVAL;
	rpc_server_set_auth(s, auth_hook, a);
	rpc_server_set_item_auth(s, item_hook, a);
	return 0;
}

/* Bootstrap ---------------------------------------------------------------------------- */

/* Creates the missing folders of path's parent, 0700. */
static int make_parents(const char *path)
{
	char *copy = strdup(path);
	int r = 0;

	if (!copy)
		return -ENOMEM;
	for (char *p = copy + 1; *p && r == 0; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, 0700) < 0 && errno != EEXIST)
			r = -errno;
		*p = '/';
	}
	free(copy);
	return r;
}

static int any_token(struct authz *a)
{
	struct store_token *t = NULL;
	size_t n = 0;
	int r = store_token_list(a->db, a->tenant, "", 1, &t, &n);

	store_tokens_free(t, n);
	return r < 0 ? r : n > 0;
}

/* Writes token to a new file (0600, never an existing one); the file is unlinked unless
 * the database insert commits. */
static int write_token_file(const char *path, const char *token)
{
	size_t len = strlen(token);
	int fd, r = make_parents(path);

	if (r < 0)
		return r;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, token, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) < 0) {
		r = errno ? -errno : -EIO;
		close(fd);
		unlink(path);
		return r;
	}
	close(fd);
	return 0;
}

static int bootstrap(struct authz *a)
{
	static const char *const admin[] = { POLICY_ADMIN };
	struct authz_token_req req = { .tenant = a->tenant,
				       .name = "bootstrap-admin",
				       .policies = admin,
				       .n_policies = 1,
				       .actor = "trstctl bootstrap",
				       .bootstrap = true };
	char token[POLICY_TOKEN_LEN + 1], err[256] = "";
	struct store_token meta = { 0 };
	uint8_t hash[POLICY_HASH_LEN];
	char id[POLICY_TOKEN_ID_LEN + 1];
	int r;

	for (int tries = 0;; tries++) {
		r = any_token(a);
		if (r != 0)
			return r < 0 ? r : 0;
		r = policy_token_new(token, hash, id);
		if (r < 0)
			return r;
		r = write_token_file(a->bootstrap_file, token);
		if (r != -EEXIST)
			break;
		/* another server with this state folder may be committing its token */
		OPENSSL_cleanse(token, sizeof(token));
		if (tries == 25) {
			log_error("the bootstrap token file exists but the database holds no "
				  "token: remove the stale file",
				  "path", "%s", a->bootstrap_file);
			return -EEXIST;
		}
		usleep(200 * 1000);
	}
	if (r < 0) {
		OPENSSL_cleanse(token, sizeof(token));
		log_error("cannot write the bootstrap token file", "path", "%s", a->bootstrap_file,
			  "error", "%s", strerror(-r));
		return r;
	}
	r = authz_token_create(a->db, a->bus, &req, token, &meta, err, sizeof(err));
	OPENSSL_cleanse(token, sizeof(token));
	OPENSSL_cleanse(hash, sizeof(hash));
	if (r < 0) {
		unlink(a->bootstrap_file);
		if (r == -EALREADY)
			return 0; /* another server created the first token meanwhile */
		log_error("cannot create the bootstrap admin token", "error", "%s",
			  err[0] ? err : strerror(-r));
		return r;
	}
	a->bootstrapped = AUTHZ_BOOTSTRAP_CREATED;
	log_info("bootstrap admin token written (shown nowhere else; keep it secret)", "path", "%s",
		 a->bootstrap_file, "token_id", "%s", meta.id, "policy", "%s", POLICY_ADMIN);
	store_token_clear(&meta);
	return 0;
}

/* Open and close ------------------------------------------------------------------------ */

int authz_open(struct db *db, struct audit *audit, struct bus *bus, const struct authz_config *cfg,
	       struct authz **ret)
{
	struct authz *a;
	int r;

	if (!db || !audit || !ret ||
	    (cfg && cfg->poll_ms && (cfg->poll_ms < 10 || cfg->poll_ms > 10000)))
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->db = db;
	a->audit = audit;
	a->bus = bus;
	a->tenant = DB_DEFAULT_TENANT;
	a->generation = -1;
	a->poll_ms = cfg && cfg->poll_ms ? cfg->poll_ms : POLL_DEFAULT_MS;
	pthread_rwlock_init(&a->tok_lock, NULL);
	pthread_mutex_init(&a->reload_mu, NULL);
	pthread_mutex_init(&a->poll_mu, NULL);
	pthread_cond_init(&a->poll_cv, NULL);
	pthread_mutex_init(&a->flush_mu, NULL);
	pthread_cond_init(&a->flush_cv, NULL);
	r = authz_methods_build(&a->methods, &a->actions, &a->n_methods);
	if (r >= 0)
		r = authz_unauth_start(a, cfg ? cfg->unauth_interval_ms : 0,
				       cfg ? cfg->unauth_max_sources : 0);
	if (r >= 0)
		r = policy_set_new(a->actions, a->n_methods, &a->set);
	if (r >= 0 && cfg && cfg->bootstrap_token_file) {
		a->bootstrap_file = strdup(cfg->bootstrap_token_file);
		r = a->bootstrap_file ? bootstrap(a) : -ENOMEM;
	}
	if (r >= 0)
		r = authz_refresh(a);
	if (r >= 0 && !(cfg && cfg->no_poller)) {
		r = -pthread_create(&a->poller, NULL, poller_main, a);
		a->poller_running = r >= 0;
	}
	if (r < 0) {
		authz_close(a);
		return r;
	}
	*ret = a;
	return 0;
}

struct authz *authz_close(struct authz *a)
{
	if (!a)
		return NULL;
	if (a->poller_running) {
		pthread_mutex_lock(&a->poll_mu);
		a->stop = true;
		pthread_cond_broadcast(&a->poll_cv);
		pthread_mutex_unlock(&a->poll_mu);
		pthread_join(a->poller, NULL);
		a->poller_running = false;
		touch_write(a, a->touch_ids, a->n_touch); /* the last uses, not lost at shutdown */
		a->n_touch = 0;
	}
	authz_unauth_stop(a); /* the last summaries: before the methods that name them */
	tok_drop(a);
	policy_set_free(a->set);
	authz_methods_free(a->methods, a->actions, a->n_methods);
	pthread_rwlock_destroy(&a->tok_lock);
	pthread_mutex_destroy(&a->reload_mu);
	pthread_mutex_destroy(&a->poll_mu);
	pthread_cond_destroy(&a->poll_cv);
	pthread_mutex_destroy(&a->flush_mu);
	pthread_cond_destroy(&a->flush_cv);
	free(a->bootstrap_file);
	free(a->rpc_handlers);
	free(a);
	return NULL;
}

enum authz_bootstrap authz_bootstrapped(const struct authz *a)
{
	return a ? a->bootstrapped : AUTHZ_BOOTSTRAP_NONE;
}
