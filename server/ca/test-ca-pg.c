/*
 * The CA service against a real PostgreSQL (run-with-pg.sh), served by a real rpc_server on
 * loopback and called with libtrstctl: owners, identities, every lifecycle edge (allowed
 * and refused), every revocation reason, the transition race (one server and two), CSR
 * checks, idempotency, the issuance check, audit records and outbox events, and the
 * certificates and CRL checked with `openssl verify` ($OPENSSL). A second service on the
 * same database (another pool, another writer) stands for a second server and a restart.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit.h"
#include "bus.h"
#include "ca-internal.h"
#include "cfg.h"
#include "db.h"
#include "kek.h"
#include "rpc.h"
#include "test-serve.h"
#include "trstctl-client-gen.h"
#include "trstctl-client.h"

static struct {
	struct db *db, *db2;
	struct kek *kek;
	struct audit *audit, *audit2;
	struct bus *bus, *bus2;
	struct ca_service *svc, *svc2;
	struct rpc_test_serve t; /* serves svc; t.cl calls it */
	char dir[64];
	const char *openssl;
	char owner[CA_ID_LEN + 1];
	int seq;
} E;

static const char *const states[] = { "requested", "issued",  "deployed",
				      "renewing",  "revoked", "retired" };

/* Helpers ------------------------------------------------------------------------------- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	r = system(cmd);
	return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

static void put(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", E.dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *slurp(const char *name)
{
	char path[256], *buf = calloc(1, 1 << 16);
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", E.dir, name);
	f = fopen(path, "r");
	assert_non_null(f);
	if (fread(buf, 1, (1 << 16) - 1, f) == 0)
		buf[0] = '\0';
	fclose(f);
	return buf;
}

static int64_t sql_count(const char *sql, const char *arg)
{
	struct db_conn *c = NULL;
	struct db_rows *rows = NULL;
	struct db_param p = DB_TEXT(arg);
	int64_t n;

	assert_int_equal(db_acquire(E.db, 5000, &c), 0);
	assert_true(db_exec(c, sql, &p, arg ? 1 : 0, &rows) >= 0);
	n = strtoll(db_rows_get(rows, 0, 0), NULL, 10);
	db_rows_free(rows);
	db_release(E.db, c);
	return n;
}

static void unique(char *buf, size_t len, const char *prefix)
{
	snprintf(buf, len, "%s-%d-%d", prefix, (int)getpid(), ++E.seq);
}

static void create_owner(const char *kind, const char *name, char *ret_id)
{
	Trstctl__V1__CreateOwnerRequest q = TRSTCTL__V1__CREATE_OWNER_REQUEST__INIT;
	Trstctl__V1__Owner *o = NULL;
	struct trstctl_status st = { 0 };

	q.kind = (char *)kind;
	q.name = (char *)name;
	assert_int_equal(trstctl_ca_create_owner(E.t.cl, &q, NULL, &o, &st), 0);
	strcpy(ret_id, o->id);
	protobuf_c_message_free_unpacked(&o->base, NULL);
	trstctl_status_clear(&st);
}

/* Creates an identity with the given names (dns may be NULL); returns its id. */
static void create_identity(const char *kind, const char *dns, const char *ip, char *ret_id)
{
	Trstctl__V1__CreateIdentityRequest q = TRSTCTL__V1__CREATE_IDENTITY_REQUEST__INIT;
	Trstctl__V1__Identity *i = NULL;
	struct trstctl_status st = { 0 };
	char name[64], *d[1] = { (char *)dns }, *a[1] = { (char *)ip };

	unique(name, sizeof(name), "svc");
	q.kind = (char *)kind;
	q.name = name;
	q.owner_id = E.owner;
	q.dns_names = d;
	q.n_dns_names = dns ? 1 : 0;
	q.ip_addresses = a;
	q.n_ip_addresses = ip ? 1 : 0;
	assert_int_equal(trstctl_ca_create_identity(E.t.cl, &q, NULL, &i, &st), 0);
	assert_string_equal(i->state, "requested");
	strcpy(ret_id, i->id);
	protobuf_c_message_free_unpacked(&i->base, NULL);
	trstctl_status_clear(&st);
}

/* TransitionIdentity; returns the gRPC code, *ret the reply when OK (may be NULL). */
static int transition(const char *id, const char *to, const char *reason,
		      Trstctl__V1__Identity **ret, char *msg, size_t msglen)
{
	Trstctl__V1__TransitionIdentityRequest q = TRSTCTL__V1__TRANSITION_IDENTITY_REQUEST__INIT;
	Trstctl__V1__Identity *i = NULL;
	struct trstctl_status st = { 0 };
	int code;

	q.id = (char *)id;
	q.to = (char *)to;
	q.reason = (char *)(reason ? reason : "");
	trstctl_ca_transition_identity(E.t.cl, &q, NULL, &i, &st);
	code = st.code;
	if (msg)
		snprintf(msg, msglen, "%s", st.message ? st.message : "");
	if (ret)
		*ret = i;
	else if (i)
		protobuf_c_message_free_unpacked(&i->base, NULL);
	trstctl_status_clear(&st);
	return code;
}

static void move(const char *id, const char *to)
{
	char msg[512];

	assert_int_equal(transition(id, to, NULL, NULL, msg, sizeof(msg)), 0);
}

/* Setup --------------------------------------------------------------------------------- */

static int open_service(struct db **db, struct bus **bus, struct audit **audit,
			struct ca_service **svc)
{
	struct audit_config ac = { .checkpoint_interval_ms = -1 };
	struct db_config dc = { .dsn = getenv("TRSTCTL_POSTGRES_DSN"),
				.max_conns = 8,
				.connect_timeout_ms = 5000 };
	struct ca_config cc = { .max_ttl_seconds = 90 * 86400, .crl_interval_ms = 3600000 };

	if (db_open(&dc, db) < 0 || db_migrate(*db, NULL) < 0 || bus_open(*db, NULL, bus) < 0 ||
	    audit_open(*db, E.kek, &ac, audit) < 0)
		return -1;
	return ca_service_open(*db, E.kek, *bus, &cc, svc);
}

static int setup(void **state)
{
	uint8_t key[KEK_LEN];

	(void)state;
	E.openssl = getenv("OPENSSL") ? getenv("OPENSSL") : "openssl";
	snprintf(E.dir, sizeof(E.dir), "/tmp/test-ca-pg.XXXXXX");
	if (!mkdtemp(E.dir))
		return -1;
	memset(key, 9, sizeof(key));
	if (kek_new(key, sizeof(key), &E.kek) < 0 ||
	    open_service(&E.db, &E.bus, &E.audit, &E.svc) < 0)
		return -1;
	if (rpc_test_serve_new(NULL, &E.t) < 0 || ca_rpc_register(E.t.srv, E.svc) < 0)
		return -1;
	return rpc_test_serve_start(&E.t, 20000);
}

static int teardown(void **state)
{
	(void)state;
	rpc_test_serve_stop(&E.t);
	E.svc2 = ca_service_close(E.svc2);
	E.svc = ca_service_close(E.svc);
	E.audit2 = audit_close(E.audit2);
	E.audit = audit_close(E.audit);
	E.bus2 = bus_close(E.bus2);
	E.bus = bus_close(E.bus);
	E.db2 = db_close(E.db2);
	E.db = db_close(E.db);
	E.kek = kek_free(E.kek);
	sh("rm -rf %s", E.dir);
	return 0;
}

/* Tests --------------------------------------------------------------------------------- */

static void test_owners(void **state)
{
	Trstctl__V1__CreateOwnerRequest q = TRSTCTL__V1__CREATE_OWNER_REQUEST__INIT;
	Trstctl__V1__ListOwnersRequest lq = TRSTCTL__V1__LIST_OWNERS_REQUEST__INIT;
	Trstctl__V1__GetOwnerRequest gq = TRSTCTL__V1__GET_OWNER_REQUEST__INIT;
	Trstctl__V1__ListOwnersResponse *l = NULL;
	Trstctl__V1__Owner *o = NULL, *o2 = NULL;
	struct trstctl_status st = { 0 };
	static const char *const kinds[] = { "user", "team", "workload", "service", "vendor" };
	char id[CA_ID_LEN + 1], name[64];
	size_t seen = 0;

	(void)state;
	create_owner("team", "platform", E.owner);
	for (int i = 0; i < 5; i++) {
		unique(name, sizeof(name), kinds[i]);
		create_owner(kinds[i], name, id);
	}
	q.kind = "team";
	q.name = "platform";
	assert_int_equal(trstctl_ca_create_owner(E.t.cl, &q, NULL, &o, &st), -EEXIST);
	assert_int_equal(st.code, RPC_ALREADY_EXISTS);
	q.kind = "robot";
	q.name = "r2";
	assert_int_equal(trstctl_ca_create_owner(E.t.cl, &q, NULL, &o, &st), -EINVAL);
	assert_non_null(strstr(st.message, "vendor"));
	/* request_id: the retry answers the first reply and adds nothing */
	q.kind = "user";
	q.name = "idem-owner";
	q.request_id = "req-owner-1";
	assert_int_equal(trstctl_ca_create_owner(E.t.cl, &q, NULL, &o, &st), 0);
	assert_int_equal(trstctl_ca_create_owner(E.t.cl, &q, NULL, &o2, &st), 0);
	assert_string_equal(o->id, o2->id);
	assert_int_equal(sql_count("SELECT count(*) FROM owners WHERE name = $1", "idem-owner"), 1);
	gq.id = o->id;
	protobuf_c_message_free_unpacked(&o2->base, NULL);
	assert_int_equal(trstctl_ca_get_owner(E.t.cl, &gq, NULL, &o2, &st), 0);
	assert_string_equal(o2->name, "idem-owner");
	assert_true(o2->create_time && o2->create_time->seconds == o->create_time->seconds);
	protobuf_c_message_free_unpacked(&o->base, NULL);
	protobuf_c_message_free_unpacked(&o2->base, NULL);
	gq.id = "00000000-0000-4000-8000-000000000000";
	assert_int_equal(trstctl_ca_get_owner(E.t.cl, &gq, NULL, &o2, &st), -ENOENT);
	/* paging over all 7 owners, 2 at a time */
	lq.page_size = 2;
	do {
		assert_int_equal(trstctl_ca_list_owners(E.t.cl, &lq, NULL, &l, &st), 0);
		seen += l->n_owners;
		lq.page_token = strdupa(l->next_page_token);
		protobuf_c_message_free_unpacked(&l->base, NULL);
	} while (*lq.page_token);
	assert_int_equal(seen, 7);
	lq.page_token = "nope";
	assert_int_equal(trstctl_ca_list_owners(E.t.cl, &lq, NULL, &l, &st), -EINVAL);
	assert_string_equal(st.message, "invalid page_token");
	lq.page_token = "";
	lq.kind = "team";
	lq.page_size = 0;
	assert_int_equal(trstctl_ca_list_owners(E.t.cl, &lq, NULL, &l, &st), 0);
	assert_int_equal(l->n_owners, 2);
	protobuf_c_message_free_unpacked(&l->base, NULL);
	trstctl_status_clear(&st);
	assert_int_equal(sql_count("SELECT count(*) FROM outbox WHERE type = $1", "owner.created"),
			 7);
}

static void test_identities(void **state)
{
	Trstctl__V1__CreateIdentityRequest q = TRSTCTL__V1__CREATE_IDENTITY_REQUEST__INIT;
	Trstctl__V1__ListIdentitiesRequest lq = TRSTCTL__V1__LIST_IDENTITIES_REQUEST__INIT;
	Trstctl__V1__ListIdentitiesResponse *l = NULL;
	Trstctl__V1__Identity *i = NULL;
	struct trstctl_status st = { 0 };
	char id[CA_ID_LEN + 1], msg[512];
	char *bad_dns[] = { "-bad-.example" };

	(void)state;
	q.name = "no-owner";
	assert_int_equal(trstctl_ca_create_identity(E.t.cl, &q, NULL, &i, &st), -EINVAL);
	assert_string_equal(st.message, "owner_id is required");
	q.owner_id = "00000000-0000-4000-8000-000000000000";
	assert_int_equal(trstctl_ca_create_identity(E.t.cl, &q, NULL, &i, &st), -ENOENT);
	q.owner_id = E.owner;
	q.ttl_seconds = 91 * 86400;
	assert_int_equal(trstctl_ca_create_identity(E.t.cl, &q, NULL, &i, &st), -EINVAL);
	printf("# ttl over max: %s\n", st.message);
	q.ttl_seconds = 0;
	q.key_type = "dsa-1024";
	assert_int_equal(trstctl_ca_create_identity(E.t.cl, &q, NULL, &i, &st), -EINVAL);
	assert_non_null(strstr(st.message, "ecdsa-p256"));
	q.key_type = "";
	q.dns_names = bad_dns;
	q.n_dns_names = 1;
	assert_int_equal(trstctl_ca_create_identity(E.t.cl, &q, NULL, &i, &st), -EINVAL);
	q.n_dns_names = 0;
	q.name = "ok-identity";
	assert_int_equal(trstctl_ca_create_identity(E.t.cl, &q, NULL, &i, &st), 0);
	assert_int_equal(i->ttl_seconds, 30 * 86400);
	assert_string_equal(i->key_type, "ecdsa-p256");
	assert_string_equal(i->kind, "x509_certificate");
	protobuf_c_message_free_unpacked(&i->base, NULL);
	/* request_id: a create looks its key up only after a failure; the retry still answers
	 * the first reply byte for byte, also after the identity moved on, and adds nothing */
	q.name = "idem-identity";
	q.request_id = "req-identity-1";
	assert_int_equal(trstctl_ca_create_identity(E.t.cl, &q, NULL, &i, &st), 0);
	snprintf(id, sizeof(id), "%s", i->id);
	{
		Trstctl__V1__Identity *again = NULL;
		uint8_t a[1024], b[1024];
		size_t na = protobuf_c_message_pack(&i->base, a);

		move(id, "issued");
		assert_int_equal(trstctl_ca_create_identity(E.t.cl, &q, NULL, &again, &st), 0);
		assert_int_equal(protobuf_c_message_get_packed_size(&again->base), na);
		protobuf_c_message_pack(&again->base, b);
		assert_memory_equal(a, b, na);
		protobuf_c_message_free_unpacked(&again->base, NULL);
	}
	protobuf_c_message_free_unpacked(&i->base, NULL);
	assert_int_equal(sql_count("SELECT count(*) FROM identities WHERE name = $1",
				   "idem-identity"), 1);
	q.name = "idem-identity-2";
	assert_int_equal(trstctl_ca_create_identity(E.t.cl, &q, NULL, &i, &st), -EINVAL);
	assert_non_null(strstr(st.message, "was used for a different request"));
	q.request_id = "";
	/* other kinds are stored; their issuance is UNIMPLEMENTED */
	create_identity("ssh_key", NULL, NULL, id);
	assert_int_equal(transition(id, "issued", NULL, NULL, msg, sizeof(msg)), RPC_UNIMPLEMENTED);
	assert_non_null(strstr(msg, "only x509_certificate"));
	/* filters */
	lq.owner_id = E.owner;
	lq.state = "requested";
	assert_int_equal(trstctl_ca_list_identities(E.t.cl, &lq, NULL, &l, &st), 0);
	assert_true(l->n_identities >= 2);
	protobuf_c_message_free_unpacked(&l->base, NULL);
	lq.state = "sleeping";
	assert_int_equal(trstctl_ca_list_identities(E.t.cl, &lq, NULL, &l, &st), -EINVAL);
	trstctl_status_clear(&st);
}

/* Brings a fresh identity to state s along allowed edges. */
static void bring_to(const char *id, int s)
{
	static const int path[6][4] = { { -1 },		 { 1, -1 },    { 1, 2, -1 },
					{ 1, 2, 3, -1 }, { 1, 4, -1 }, { 1, 4, 5, -1 } };

	for (int k = 0; path[s][k] >= 0; k++)
		move(id, states[path[s][k]]);
}

static void test_every_edge(void **state)
{
	static const bool allowed[6][6] = {
		/* requested */ { 0, 1, 0, 0, 0, 0 },
		/* issued */ { 0, 0, 1, 0, 1, 0 },
		/* deployed */ { 0, 0, 0, 1, 1, 0 },
		/* renewing */ { 0, 0, 1, 0, 1, 0 },
		/* revoked */ { 0, 0, 0, 0, 0, 1 },
		/* retired */ { 0, 0, 0, 0, 0, 0 },
	};
	int ok = 0, refused = 0;

	(void)state;
	for (int from = 0; from < 6; from++)
		for (int to = 0; to < 6; to++) {
			Trstctl__V1__Identity *i = NULL;
			char id[CA_ID_LEN + 1], msg[512], want[256];
			int code;

			create_identity("", NULL, NULL, id);
			bring_to(id, from);
			code = transition(id, states[to], NULL, &i, msg, sizeof(msg));
			if (allowed[from][to]) {
				assert_int_equal(code, 0);
				assert_string_equal(i->state, states[to]);
				protobuf_c_message_free_unpacked(&i->base, NULL);
				ok++;
				continue;
			}
			snprintf(want, sizeof(want), "invalid transition for identity %s: %s -> %s",
				 id, states[from], states[to]);
			assert_int_equal(code, RPC_FAILED_PRECONDITION);
			assert_string_equal(msg, want);
			refused++;
		}
	assert_int_equal(ok, 8);
	assert_int_equal(refused, 28);
	assert_true(sql_count("SELECT count(*) FROM outbox WHERE type = $1", "identity.renewed") >=
		    1);
	assert_true(sql_count("SELECT count(*) FROM audit_events WHERE type = $1",
			      "identity.retired") >= 2);
}

static void test_issue_verify_revoke(void **state)
{
	Trstctl__V1__Identity *i = NULL, *r2 = NULL;
	Trstctl__V1__GetCABundleRequest bq = TRSTCTL__V1__GET_CABUNDLE_REQUEST__INIT;
	Trstctl__V1__GetCRLRequest cq = TRSTCTL__V1__GET_CRLREQUEST__INIT;
	Trstctl__V1__CABundle *b = NULL;
	Trstctl__V1__CRL *crl = NULL, *crl2 = NULL;
	struct trstctl_status st = { 0 };
	char id[CA_ID_LEN + 1], msg[512], *out, old_serial[40];

	(void)state;
	create_identity("", "api.example.com", "10.1.2.3", id);
	assert_int_equal(transition(id, "issued", NULL, &i, msg, sizeof(msg)), 0);
	assert_non_null(i->certificate);
	assert_non_null(strstr(i->certificate->private_key_pem, "PRIVATE KEY"));
	assert_int_equal(i->certificate->not_after->seconds - i->certificate->not_before->seconds,
			 30 * 86400);
	assert_int_equal(strlen(i->certificate->serial) > 16, 1);
	put("leaf.pem", i->certificate->pem);
	assert_int_equal(trstctl_ca_get_ca_bundle(E.t.cl, &bq, NULL, &b, &st), 0);
	put("bundle.pem", b->pem);
	assert_string_equal(b->pem, i->certificate->chain_pem);
	protobuf_c_message_free_unpacked(&b->base, NULL);
	assert_int_equal(sh("%s verify -CAfile %s/bundle.pem %s/leaf.pem >/dev/null", E.openssl,
			    E.dir, E.dir),
			 0);
	assert_int_equal(sh("%s x509 -in %s/leaf.pem -noout -ext subjectAltName,keyUsage,"
			    "extendedKeyUsage,basicConstraints > %s/ext.txt",
			    E.openssl, E.dir, E.dir),
			 0);
	out = slurp("ext.txt");
	assert_non_null(strstr(out, "DNS:api.example.com"));
	assert_non_null(strstr(out, "IP Address:10.1.2.3"));
	assert_non_null(strstr(out, "Digital Signature"));
	assert_non_null(strstr(out, "TLS Web Server Authentication"));
	assert_non_null(strstr(out, "TLS Web Client Authentication"));
	assert_non_null(strstr(out, "CA:FALSE"));
	free(out);
	/* the private key is never stored: GetIdentity's certificate has none */
	strcpy(old_serial, i->certificate->serial);
	protobuf_c_message_free_unpacked(&i->base, NULL);
	/* renewal: a new certificate supersedes the old one */
	move(id, "deployed");
	move(id, "renewing");
	assert_int_equal(transition(id, "deployed", NULL, &i, msg, sizeof(msg)), 0);
	assert_non_null(i->certificate);
	assert_string_not_equal(i->certificate->serial, old_serial);
	assert_int_equal(sql_count("SELECT count(*) FROM certificates WHERE superseded_by IS NOT "
				   "NULL AND serial = $1",
				   old_serial),
			 1);
	put("leaf2.pem", i->certificate->pem);
	protobuf_c_message_free_unpacked(&i->base, NULL);
	/* revocation: the CRL lists it and openssl refuses the certificate */
	assert_int_equal(trstctl_ca_get_crl(E.t.cl, &cq, NULL, &crl, &st), 0);
	assert_int_equal(transition(id, "revoked", "keyCompromise", &r2, msg, sizeof(msg)), 0);
	assert_string_equal(r2->revocation_reason, "keyCompromise");
	protobuf_c_message_free_unpacked(&r2->base, NULL);
	assert_int_equal(trstctl_ca_get_crl(E.t.cl, &cq, NULL, &crl2, &st), 0);
	assert_true(crl2->number > crl->number);
	assert_true(crl2->next_update->seconds > crl2->this_update->seconds);
	put("crl.pem", crl2->pem);
	assert_int_not_equal(sh("%s verify -crl_check -CAfile %s/bundle.pem -CRLfile %s/crl.pem "
				"%s/leaf2.pem >/dev/null 2>&1",
				E.openssl, E.dir, E.dir, E.dir),
			     0);
	assert_int_equal(sh("%s crl -in %s/crl.pem -noout -text | grep -q 'Key Compromise'",
			    E.openssl, E.dir),
			 0);
	assert_int_equal(sh("%s crl -in %s/crl.pem -CAfile %s/bundle.pem -noout 2>/dev/null",
			    E.openssl, E.dir, E.dir),
			 0);
	protobuf_c_message_free_unpacked(&crl->base, NULL);
	protobuf_c_message_free_unpacked(&crl2->base, NULL);
	/* a read does not rebuild the CRL */
	assert_int_equal(trstctl_ca_get_crl(E.t.cl, &cq, NULL, &crl, &st), 0);
	assert_int_equal(trstctl_ca_get_crl(E.t.cl, &cq, NULL, &crl2, &st), 0);
	assert_int_equal(crl->number, crl2->number);
	protobuf_c_message_free_unpacked(&crl->base, NULL);
	protobuf_c_message_free_unpacked(&crl2->base, NULL);
	trstctl_status_clear(&st);
	/* audit and events of the identity's changes */
	assert_int_equal(sql_count("SELECT count(*) FROM audit_events WHERE resource = "
				   "'identities/' || $1",
				   id),
			 6);
	assert_int_equal(
		sql_count("SELECT count(*) FROM outbox WHERE type = 'certificate.recorded' "
			  "AND convert_from(payload, 'UTF8') LIKE '%' || $1 || '%'",
			  id),
		2);
}

static void test_every_reason(void **state)
{
	static const char *const reasons[] = { "unspecified",	     "keyCompromise",
					       "caCompromise",	     "affiliationChanged",
					       "superseded",	     "cessationOfOperation",
					       "certificateHold",    "removeFromCRL",
					       "privilegeWithdrawn", "aaCompromise" };
	Trstctl__V1__Identity *i = NULL;
	char id[CA_ID_LEN + 1], msg[512];

	(void)state;
	for (int k = 0; k < 10; k++) {
		create_identity("", NULL, NULL, id);
		move(id, "issued");
		assert_int_equal(transition(id, "revoked", reasons[k], &i, msg, sizeof(msg)), 0);
		assert_string_equal(i->revocation_reason, reasons[k]);
		protobuf_c_message_free_unpacked(&i->base, NULL);
		assert_int_equal(
			sql_count("SELECT count(*) FROM certificates WHERE identity_id = $1 "
				  "AND revoked_at IS NOT NULL",
				  id),
			1);
	}
	create_identity("", NULL, NULL, id);
	move(id, "issued");
	assert_int_equal(transition(id, "revoked", "stolen", NULL, msg, sizeof(msg)),
			 RPC_INVALID_ARGUMENT);
	assert_non_null(strstr(msg, "keyCompromise"));
	move(id, "revoked"); /* empty reason: unspecified */
	assert_int_equal(sql_count("SELECT count(*) FROM identities WHERE id = $1 AND "
				   "revocation_reason = 'unspecified'",
				   id),
			 1);
}

static void csr(const char *name, const char *keyopt, const char *san)
{
	assert_int_equal(sh("%s req -new -newkey %s -nodes -keyout %s/%s.key -subj /CN=x "
			    "%s%s%s -out %s/%s.csr 2>/dev/null",
			    E.openssl, keyopt, E.dir, name, san ? "-addext subjectAltName=" : "",
			    san ? san : "", "", E.dir, name),
			 0);
}

static int issue(const char *id, const char *csr_pem, int64_t ttl, const char *rid,
		 Trstctl__V1__Certificate **ret, char *msg, size_t msglen)
{
	Trstctl__V1__IssueCertificateRequest q = TRSTCTL__V1__ISSUE_CERTIFICATE_REQUEST__INIT;
	Trstctl__V1__Certificate *c = NULL;
	struct trstctl_status st = { 0 };
	int code;

	q.identity_id = (char *)id;
	q.csr_pem = (char *)csr_pem;
	q.ttl_seconds = ttl;
	q.request_id = (char *)(rid ? rid : "");
	trstctl_ca_issue_certificate(E.t.cl, &q, NULL, &c, &st);
	code = st.code;
	snprintf(msg, msglen, "%s", st.message ? st.message : "");
	if (ret)
		*ret = c;
	else if (c)
		protobuf_c_message_free_unpacked(&c->base, NULL);
	trstctl_status_clear(&st);
	return code;
}

static void test_csr(void **state)
{
	Trstctl__V1__Certificate *c = NULL, *c2 = NULL;
	char id[CA_ID_LEN + 1], msg[512], *good, *pem, *bad;
	uint8_t der[4096];
	size_t n;
	FILE *f;

	(void)state;
	create_identity("", "web.example.com", NULL, id);
	csr("good", "ec -pkeyopt ec_paramgen_curve:P-256", "DNS:web.example.com");
	csr("foreign", "ec -pkeyopt ec_paramgen_curve:P-256", "DNS:evil.example.org");
	csr("weak", "rsa:1024", "DNS:web.example.com");
	good = slurp("good.csr");
	pem = slurp("foreign.csr");
	assert_int_equal(issue(id, pem, 0, NULL, NULL, msg, sizeof(msg)), RPC_INVALID_ARGUMENT);
	printf("# foreign SAN: %s\n", msg);
	free(pem);
	pem = slurp("weak.csr");
	assert_int_equal(issue(id, pem, 0, NULL, NULL, msg, sizeof(msg)), RPC_INVALID_ARGUMENT);
	printf("# weak key: %s\n", msg);
	free(pem);
	assert_int_equal(issue(id, "-----BEGIN CERTIFICATE REQUEST-----\ngarbage\n", 0, NULL, NULL,
			       msg, sizeof(msg)),
			 RPC_INVALID_ARGUMENT);
	/* bad signature: flip the last byte of the DER */
	assert_int_equal(
		sh("%s req -in %s/good.csr -outform DER -out %s/good.der", E.openssl, E.dir, E.dir),
		0);
	snprintf(msg, sizeof(msg), "%s/good.der", E.dir);
	f = fopen(msg, "rb");
	n = fread(der, 1, sizeof(der), f);
	fclose(f);
	der[n - 1] ^= 0x01;
	bad = crypto_pem_encode("CERTIFICATE REQUEST", der, n);
	assert_int_equal(issue(id, bad, 0, NULL, NULL, msg, sizeof(msg)), RPC_INVALID_ARGUMENT);
	printf("# bad signature: %s\n", msg);
	free(bad);
	assert_int_equal(issue(id, good, 100 * 86400, NULL, NULL, msg, sizeof(msg)),
			 RPC_INVALID_ARGUMENT);
	/* the good CSR, twice with one request_id: one certificate, no private key */
	assert_int_equal(issue(id, good, 3600, "req-issue-1", &c, msg, sizeof(msg)), 0);
	assert_int_equal(issue(id, good, 3600, "req-issue-1", &c2, msg, sizeof(msg)), 0);
	assert_string_equal(c->serial, c2->serial);
	assert_string_equal(c->private_key_pem, "");
	assert_int_equal(c->not_after->seconds - c->not_before->seconds, 3600);
	assert_int_equal(sql_count("SELECT count(*) FROM certificates WHERE identity_id = $1", id),
			 1);
	put("csrleaf.pem", c->pem);
	assert_int_equal(sh("%s verify -CAfile %s/bundle.pem %s/csrleaf.pem >/dev/null", E.openssl,
			    E.dir, E.dir),
			 0);
	/* the certificate carries the CSR's key */
	assert_int_equal(sh("test \"$(%s x509 -in %s/csrleaf.pem -noout -pubkey)\" = "
			    "\"$(%s pkey -in %s/good.key -pubout)\"",
			    E.openssl, E.dir, E.openssl, E.dir),
			 0);
	protobuf_c_message_free_unpacked(&c->base, NULL);
	protobuf_c_message_free_unpacked(&c2->base, NULL);
	/* issued now: another IssueCertificate is refused */
	assert_int_equal(issue(id, good, 0, NULL, NULL, msg, sizeof(msg)), RPC_FAILED_PRECONDITION);
	free(good);
}

struct racer {
	struct ca_service *svc;
	const char *id;
	pthread_barrier_t *bar;
	int result;
	char err[CA_ERR_LEN];
};

static void *race(void *p)
{
	struct racer *r = p;
	struct ca_ctx ctx = { 0 };
	struct ca_identity out = { 0 };

	pthread_barrier_wait(r->bar);
	r->result = ca_identity_transition(r->svc, &ctx, r->id, "issued", NULL, &out);
	snprintf(r->err, sizeof(r->err), "%s", ctx.err);
	ca_identity_clear(&out);
	return NULL;
}

static void test_race(void **state)
{
	char id[CA_ID_LEN + 1];
	pthread_barrier_t bar;

	(void)state;
	/* a second server on the same database: another pool, another writer */
	assert_int_equal(open_service(&E.db2, &E.bus2, &E.audit2, &E.svc2), 0);
	assert_string_equal(ca_service_bundle_pem(E.svc), ca_service_bundle_pem(E.svc2));
	pthread_barrier_init(&bar, NULL, 2);
	for (int round = 0; round < 20; round++) {
		struct racer a = { .svc = E.svc, .bar = &bar };
		struct racer b = { .svc = round % 2 ? E.svc2 : E.svc, .bar = &bar };
		pthread_t ta, tb;
		int wins;

		create_identity("", NULL, NULL, id);
		a.id = b.id = id;
		pthread_create(&ta, NULL, race, &a);
		pthread_create(&tb, NULL, race, &b);
		pthread_join(ta, NULL);
		pthread_join(tb, NULL);
		wins = (a.result == 0) + (b.result == 0);
		assert_int_equal(wins, 1);
		assert_true((a.result == 0 ? b.result : a.result) == -EILSEQ ||
			    (a.result == 0 ? b.result : a.result) == -EBUSY);
		assert_int_equal(
			sql_count("SELECT count(*) FROM certificates WHERE identity_id = $1", id),
			1);
		if (round == 0)
			printf("# loser: %s\n", a.result == 0 ? b.err : a.err);
	}
	pthread_barrier_destroy(&bar);
}

static int refuse_long(struct rpc_call *call, const struct ca_issuance *what, void *ud)
{
	(void)ud;
	if (what->ttl_seconds > 7200)
		return rpc_call_error(call, RPC_PERMISSION_DENIED,
				      "policy: ttl %lld exceeds 7200 seconds",
				      (long long)what->ttl_seconds);
	return 0;
}

static void test_issuance_check_and_second_server(void **state)
{
	Trstctl__V1__Certificate *c = NULL;
	struct ca_ctx ctx = { 0 };
	struct ca_cert cert = { 0 };
	char id[CA_ID_LEN + 1], msg[512];

	(void)state;
	create_identity("", "hook.example.com", NULL, id);
	ca_service_set_issuance_check(E.svc, refuse_long, NULL);
	assert_int_equal(issue(id, "", 0, NULL, NULL, msg, sizeof(msg)), RPC_PERMISSION_DENIED);
	assert_string_equal(msg, "policy: ttl 2592000 exceeds 7200 seconds");
	assert_int_equal(issue(id, "", 3600, NULL, &c, msg, sizeof(msg)), 0);
	assert_non_null(strstr(c->private_key_pem, "PRIVATE KEY"));
	protobuf_c_message_free_unpacked(&c->base, NULL);
	/* CreateIdentity asks too, for what the identity will carry: nothing is created */
	{
		Trstctl__V1__CreateIdentityRequest q = TRSTCTL__V1__CREATE_IDENTITY_REQUEST__INIT;
		Trstctl__V1__Identity *i = NULL;
		struct trstctl_status st = { 0 };

		q.name = "hook-long.example.com";
		q.owner_id = E.owner;
		assert_int_not_equal(trstctl_ca_create_identity(E.t.cl, &q, NULL, &i, &st), 0);
		assert_int_equal(st.code, RPC_PERMISSION_DENIED);
		assert_string_equal(st.message, "policy: ttl 2592000 exceeds 7200 seconds");
		trstctl_status_clear(&st);
		assert_int_equal(sql_count("SELECT count(*) FROM identities WHERE name = $1",
					   q.name),
				 0);
		q.ttl_seconds = 3600;
		assert_int_equal(trstctl_ca_create_identity(E.t.cl, &q, NULL, &i, &st), 0);
		protobuf_c_message_free_unpacked(&i->base, NULL);
		trstctl_status_clear(&st);
	}
	ca_service_set_issuance_check(E.svc, NULL, NULL);
	/* the second server (and a restart: a fresh service on the same database) issues from
	 * the same CA */
	create_identity("", "second.example.com", NULL, id);
	assert_int_equal(ca_cert_issue(E.svc2, &ctx, id, NULL, 0, &cert), 0);
	put("second.pem", cert.pem);
	ca_cert_clear(&cert);
	assert_int_equal(sh("%s verify -CAfile %s/bundle.pem %s/second.pem >/dev/null", E.openssl,
			    E.dir, E.dir),
			 0);
	E.svc2 = ca_service_close(E.svc2);
	{
		struct ca_config cc = { .key_type = CRYPTO_KEY_RSA_3072 }; /* ignored: CA exists */

		assert_int_equal(ca_service_open(E.db2, E.kek, E.bus2, &cc, &E.svc2), 0);
	}
	assert_string_equal(ca_service_bundle_pem(E.svc), ca_service_bundle_pem(E.svc2));
	assert_int_equal(sql_count("SELECT count(*) FROM sealed_keys WHERE kind = $1", "ca"), 1);
}

/*
 * An issuance on the server that created an identity starts from its cached copy; when
 * another server moved the identity on meanwhile, the issuance hook refuses the guess and
 * the answer comes from a fresh read: the right error, or an issuance from the real state.
 */
static void test_stale_guess(void **state)
{
	struct ca_ctx ctx = { 0 };
	struct ca_identity out = { 0 };
	struct ca_cert cert = { 0 };
	char id[CA_ID_LEN + 1], want[256];
	const char *walk[] = { "deployed", "renewing" };

	(void)state;
	/* E.svc created it (cached: requested); E.svc2 issues it */
	create_identity("", "stale.example.com", NULL, id);
	assert_int_equal(ca_cert_issue(E.svc2, &ctx, id, NULL, 0, &cert), 0);
	ca_cert_clear(&cert);
	assert_int_equal(ca_identity_transition(E.svc, &ctx, id, "issued", NULL, &out), -EILSEQ);
	snprintf(want, sizeof(want), "invalid transition for identity %s: issued -> issued", id);
	assert_string_equal(ctx.err, want);
	assert_int_equal(sql_count("SELECT count(*) FROM certificates WHERE identity_id = $1", id),
			 1);

	/* again, and E.svc2 takes it on to renewing: E.svc's guess (requested -> issued) is
	 * refused, and the fresh read issues renewing -> deployed, superseding E.svc2's */
	create_identity("", "stale2.example.com", NULL, id);
	assert_int_equal(ca_cert_issue(E.svc2, &ctx, id, NULL, 0, &cert), 0);
	ca_cert_clear(&cert);
	for (size_t k = 0; k < 2; k++) {
		assert_int_equal(ca_identity_transition(E.svc2, &ctx, id, walk[k], NULL, &out), 0);
		ca_identity_clear(&out);
	}
	assert_int_equal(ca_cert_issue(E.svc, &ctx, id, NULL, 0, &cert), 0);
	ca_cert_clear(&cert);
	assert_int_equal(ca_identity_get(E.svc, &ctx, id, &out), 0);
	assert_int_equal(out.state, CA_STATE_DEPLOYED);
	ca_identity_clear(&out);
	assert_int_equal(sql_count("SELECT count(*) FROM certificates WHERE identity_id = $1 AND "
				   "superseded_by IS NOT NULL", id),
			 1);
}

/* Runs ca_admin_cli in-process with its stdout in file out; returns its exit status. */
static int cli(const char *out, const char *const *args)
{
	char kekfile[128], dsn[512], path[256], *env[8], *argv[24];
	struct cfg *c = NULL;
	char *errs = NULL;
	uint8_t key[KEK_LEN];
	int argc = 0, fd, saved, r;

	snprintf(kekfile, sizeof(kekfile), "TRSTCTL_SECRETS_KEK_FILE=%s/kek.bin", E.dir);
	snprintf(path, sizeof(path), "%s/kek.bin", E.dir);
	memset(key, 9, sizeof(key));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(fd, key, sizeof(key)), sizeof(key));
	close(fd);
	snprintf(dsn, sizeof(dsn), "TRSTCTL_POSTGRES_DSN=%s", getenv("TRSTCTL_POSTGRES_DSN"));
	env[0] = dsn;
	env[1] = kekfile;
	env[2] = "TRSTCTL_SERVER_TLS_MODE=disabled";
	env[3] = "TRSTCTL_DEV_ALLOW_PLAINTEXT=true";
	env[4] = "TRSTCTL_SERVER_ADDR=127.0.0.1:8443";
	env[5] = NULL;
	assert_int_equal(cfg_load(env, &c, &errs), 0);
	while (args[argc])
		argv[argc] = (char *)args[argc], argc++;
	argv[argc] = NULL;
	snprintf(path, sizeof(path), "%s/%s", E.dir, out);
	fflush(stdout);
	saved = dup(1);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	dup2(fd, 1);
	close(fd);
	r = ca_admin_cli(argc, argv, c);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	cfg_free(c);
	return r;
}

/* The operator commands: import refuses to replace silently; csr + import-signed. */
static void test_ca_admin(void **state)
{
	char id[CA_ID_LEN + 1];

	(void)state;
	{
		const char *a[] = { "ca", "frobnicate", NULL };
		assert_int_equal(cli("u.txt", a), 2);
	}
	{
		const char *a[] = { "ca",    "import",	  "--cert", "/dev/null",
				    "--key", "/dev/null", NULL };
		assert_int_equal(cli("imp.txt", a), 1);
	}
	{
		const char *a[] = { "ca", "csr", "--cn", "Ops Intermediate", NULL };
		assert_int_equal(cli("ca.csr", a), 0);
	}
	assert_int_equal(
		sh("cd %s && %s req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
		   "-nodes -keyout root.key -subj /CN=OpsRoot -days 30 -out root.pem "
		   "2>/dev/null && printf 'basicConstraints=critical,CA:TRUE\\n"
		   "keyUsage=critical,keyCertSign,cRLSign\\nsubjectKeyIdentifier=hash\\n' "
		   "> ext.cnf && %s x509 -req -in ca.csr -CA root.pem -CAkey root.key "
		   "-CAcreateserial -days 20 -extfile ext.cnf -out inter.pem 2>/dev/null && "
		   "cat inter.pem root.pem > chain.pem",
		   E.dir, E.openssl, E.openssl),
		0);
	{
		char chain[128];
		const char *a[] = { "ca", "import-signed", "--cert", chain, NULL };

		snprintf(chain, sizeof(chain), "%s/chain.pem", E.dir);
		assert_int_equal(cli("is1.txt", a), 1); /* a CA exists: needs --replace */
		{
			const char *b[] = { "ca",  "import-signed", "--cert",
					    chain, "--replace",	    NULL };
			assert_int_equal(cli("is2.txt", b), 0);
		}
	}
	/* a server starting now loads the imported CA and issues under the external root */
	E.svc2 = ca_service_close(E.svc2);
	assert_int_equal(ca_service_open(E.db2, E.kek, E.bus2, NULL, &E.svc2), 0);
	assert_non_null(strstr(ca_service_bundle_pem(E.svc2), "BEGIN CERTIFICATE"));
	assert_string_not_equal(ca_service_bundle_pem(E.svc2), ca_service_bundle_pem(E.svc));
	{
		struct ca_ctx ctx = { 0 };
		struct ca_cert cert = { 0 };

		create_identity("", "ext.example.com", NULL, id);
		assert_int_equal(ca_cert_issue(E.svc2, &ctx, id, NULL, 3600, &cert), 0);
		put("ext.pem", cert.pem);
		put("chain2.pem", ca_service_bundle_pem(E.svc2));
		ca_cert_clear(&cert);
	}
	assert_int_equal(sh("cd %s && %s verify -CAfile root.pem -untrusted inter.pem ext.pem "
			    ">/dev/null",
			    E.dir, E.openssl),
			 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_owners),
		cmocka_unit_test(test_identities),
		cmocka_unit_test(test_every_edge),
		cmocka_unit_test(test_issue_verify_revoke),
		cmocka_unit_test(test_every_reason),
		cmocka_unit_test(test_csr),
		cmocka_unit_test(test_race),
		cmocka_unit_test(test_issuance_check_and_second_server),
		cmocka_unit_test(test_stale_guess),
		cmocka_unit_test(test_ca_admin),
	};

	if (!getenv("TRSTCTL_POSTGRES_DSN")) {
		printf("SKIP: TRSTCTL_POSTGRES_DSN not set (run through run-with-pg.sh)\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
