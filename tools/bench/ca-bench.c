/*
 * ca-bench: durable certificate issuance over gRPC against its floors, in one run, on one
 * throwaway PostgreSQL (server/db/run-with-pg.sh provides TRSTCTL_POSTGRES_DSN):
 *
 *   sign            crypto_issue with a fresh P-256 key (server keygen), no database, as
 *                   many threads as cores: the signing floor
 *   pgbench         the rows one issuance writes (identity update, certificate, audit
 *                   record, outbox event), one transaction each, --inflight clients: the
 *                   database floor
 *   issue           IssueCertificate (server keygen, request_id) over gRPC on loopback,
 *                   --inflight calls at once, each a durable group-committed change, driven
 *                   as grpc-bench drives the gRPC floor (one thread, one completion queue,
 *                   each completion starting the next call): the figure of the target
 *   issue, blocking the same through libtrstctl's blocking client, one thread per call in
 *                   flight (the client then costs the shared cores more)
 *   create+issue    CreateIdentity then TransitionIdentity(to issued), the same way
 *
 * and prints each rate with its ratio to the lower floor. The server, its clients and
 * PostgreSQL share the machine, as they do in the target (>= 5,000 issuances/s on 2
 * cores). --smoke runs briefly and only checks that the calls succeed.
 *
 *   ca-bench [--seconds N] [--inflight N] [--writers N] [--smoke]
 *
 * --writers sets db_config.writers (default 1, as the server runs by default).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include "audit.h"
#include "bus.h"
#include "ca-internal.h"
#include "kek.h"
#include "rpc.h"
#include "trstctl-client-gen.h"
#include "trstctl-client.h"

extern const unsigned char trstctl_descset[];
extern const size_t trstctl_descset_len;

#define MAX_INFLIGHT 512

static struct {
	struct db *db;
	struct kek *kek;
	struct audit *audit;
	struct bus *bus;
	struct ca_service *svc;
	struct rpc_server *srv;
	struct trstctl_client *cli;
	char owner[CA_ID_LEN + 1];
	char (*ids)[CA_ID_LEN + 1];
	long n_ids;
	atomic_long next, ok, failed;
	atomic_bool stop;
	double seconds;
	int writers;
	char addr[64]; /* the server's */
} B;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs fn on n threads for secs seconds (or until they stop); returns ok per second. */
static double run(void *(*fn)(void *), int n, double secs)
{
	pthread_t t[MAX_INFLIGHT];
	double t0;
	long ok0;

	atomic_store(&B.stop, false);
	ok0 = atomic_load(&B.ok);
	t0 = now_s();
	for (int i = 0; i < n; i++)
		pthread_create(&t[i], NULL, fn, NULL);
	while (now_s() - t0 < secs && !atomic_load(&B.stop)) {
		struct timespec ts = { 0, 20 * 1000000 };

		nanosleep(&ts, NULL);
	}
	atomic_store(&B.stop, true);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	return (double)(atomic_load(&B.ok) - ok0) / (now_s() - t0);
}

static void *sign_worker(void *p)
{
	struct crypto_issue_req req = { .cn = "bench.example.com", .ttl_seconds = 86400 };
	const char *dns[] = { "bench.example.com" };

	(void)p;
	req.dns_names = dns;
	req.n_dns_names = 1;
	while (!atomic_load(&B.stop)) {
		struct crypto_issued is = { 0 };

		if (crypto_issue(B.svc->ca, &req, &is, NULL, 0) == 0)
			atomic_fetch_add(&B.ok, 1);
		else
			atomic_fetch_add(&B.failed, 1);
		crypto_issued_clear(&is);
	}
	return NULL;
}

static void *issue_worker(void *p)
{
	(void)p;
	while (!atomic_load(&B.stop)) {
		Trstctl__V1__IssueCertificateRequest q =
			TRSTCTL__V1__ISSUE_CERTIFICATE_REQUEST__INIT;
		Trstctl__V1__Certificate *c = NULL;
		struct trstctl_status st = { 0 };
		long k = atomic_fetch_add(&B.next, 1);
		char rid[48];

		if (k >= B.n_ids) {
			atomic_store(&B.stop, true);
			break;
		}
		snprintf(rid, sizeof(rid), "bench-issue-%ld", k);
		q.identity_id = B.ids[k];
		q.request_id = rid;
		if (trstctl_ca_issue_certificate(B.cli, &q, NULL, &c, &st) == 0) {
			atomic_fetch_add(&B.ok, 1);
			protobuf_c_message_free_unpacked(&c->base, NULL);
		} else {
			if (atomic_fetch_add(&B.failed, 1) == 0)
				fprintf(stderr, "ca-bench: issue: %s\n", st.message);
		}
		trstctl_status_clear(&st);
	}
	return NULL;
}

static void *create_issue_worker(void *p)
{
	(void)p;
	while (!atomic_load(&B.stop)) {
		Trstctl__V1__CreateIdentityRequest cq = TRSTCTL__V1__CREATE_IDENTITY_REQUEST__INIT;
		Trstctl__V1__TransitionIdentityRequest tq =
			TRSTCTL__V1__TRANSITION_IDENTITY_REQUEST__INIT;
		Trstctl__V1__Identity *i = NULL, *t = NULL;
		struct trstctl_status st = { 0 };
		long k = atomic_fetch_add(&B.next, 1);
		char name[64], rid[48], rid2[48];

		snprintf(name, sizeof(name), "ci-%ld.bench.example.com", k);
		snprintf(rid, sizeof(rid), "bench-create-%ld", k);
		snprintf(rid2, sizeof(rid2), "bench-transition-%ld", k);
		cq.name = name;
		cq.owner_id = B.owner;
		cq.request_id = rid;
		if (trstctl_ca_create_identity(B.cli, &cq, NULL, &i, &st) == 0) {
			tq.id = i->id;
			tq.to = "issued";
			tq.request_id = rid2;
			if (trstctl_ca_transition_identity(B.cli, &tq, NULL, &t, &st) == 0) {
				atomic_fetch_add(&B.ok, 1);
				protobuf_c_message_free_unpacked(&t->base, NULL);
			} else if (atomic_fetch_add(&B.failed, 1) == 0) {
				fprintf(stderr, "ca-bench: transition: %s\n", st.message);
			}
			protobuf_c_message_free_unpacked(&i->base, NULL);
		} else if (atomic_fetch_add(&B.failed, 1) == 0) {
			fprintf(stderr, "ca-bench: create: %s\n", st.message);
		}
		trstctl_status_clear(&st);
	}
	return NULL;
}

/*
 * The same issue phase driven as the project's load generator (tools/bench/grpc-bench.c)
 * drives the gRPC floor: one thread keeps --inflight calls outstanding on one completion
 * queue, each completion starting the next, so the client costs the 2 cores little and
 * the rate measures the server. Each call issues for the next prepared identity.
 */
struct aslot {
	grpc_call *call;
	grpc_byte_buffer *send, *recv;
	grpc_metadata_array md_initial, md_trailing;
	grpc_status_code status;
	grpc_slice details;
};

static int astart(grpc_channel *ch, void *handle, grpc_completion_queue *cq, struct aslot *s)
{
	Trstctl__V1__IssueCertificateRequest q = TRSTCTL__V1__ISSUE_CERTIFICATE_REQUEST__INIT;
	long k = atomic_fetch_add(&B.next, 1);
	uint8_t buf[256];
	char rid[48];
	grpc_slice slice;
	grpc_op ops[6];

	if (k >= B.n_ids)
		return -ENOSPC;
	snprintf(rid, sizeof(rid), "bench-async-%ld", k);
	q.identity_id = B.ids[k];
	q.request_id = rid;
	slice = grpc_slice_from_copied_buffer((const char *)buf,
					      trstctl__v1__issue_certificate_request__pack(&q, buf));
	s->send = grpc_raw_byte_buffer_create(&slice, 1);
	grpc_slice_unref(slice);
	s->recv = NULL;
	s->status = GRPC_STATUS_UNKNOWN;
	s->details = grpc_empty_slice();
	grpc_metadata_array_init(&s->md_initial);
	grpc_metadata_array_init(&s->md_trailing);
	s->call = grpc_channel_create_registered_call(
		ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, handle,
		gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_seconds(60, GPR_TIMESPAN)),
		NULL);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = s->send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->md_initial;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &s->recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &s->md_trailing;
	ops[5].data.recv_status_on_client.status = &s->status;
	ops[5].data.recv_status_on_client.status_details = &s->details;
	return s->call && grpc_call_start_batch(s->call, ops, 6, s, NULL) == GRPC_CALL_OK ? 0 :
											      -EIO;
}

/* Counts a finished call (a certificate came back) and releases the slot's call. */
static void afinish(struct aslot *s, bool ok)
{
	bool good = ok && s->status == GRPC_STATUS_OK && s->recv;

	if (good) {
		grpc_byte_buffer_reader r;
		grpc_slice all;
		Trstctl__V1__Certificate *c;

		grpc_byte_buffer_reader_init(&r, s->recv);
		all = grpc_byte_buffer_reader_readall(&r);
		grpc_byte_buffer_reader_destroy(&r);
		c = trstctl__v1__certificate__unpack(NULL, GRPC_SLICE_LENGTH(all),
						     GRPC_SLICE_START_PTR(all));
		good = c && c->serial && *c->serial && c->private_key_pem && *c->private_key_pem;
		if (c)
			protobuf_c_message_free_unpacked(&c->base, NULL);
		grpc_slice_unref(all);
	}
	if (good) {
		atomic_fetch_add(&B.ok, 1);
	} else if (atomic_fetch_add(&B.failed, 1) == 0) {
		char *d = grpc_slice_to_c_string(s->details);

		fprintf(stderr, "ca-bench: async issue: status %d %s\n", (int)s->status, d);
		gpr_free(d);
	}
	grpc_slice_unref(s->details);
	grpc_metadata_array_destroy(&s->md_initial);
	grpc_metadata_array_destroy(&s->md_trailing);
	grpc_byte_buffer_destroy(s->send);
	if (s->recv)
		grpc_byte_buffer_destroy(s->recv);
	grpc_call_unref(s->call);
	s->call = NULL;
}

static double run_async(const char *addr, int inflight, double secs)
{
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	grpc_channel *ch = grpc_channel_create(addr, creds, NULL);
	void *handle = grpc_channel_register_call(ch, "/trstctl.v1.CA/IssueCertificate", NULL,
						  NULL);
	grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
	struct aslot *slots = calloc((size_t)inflight, sizeof(*slots));
	double t0 = now_s(), t1;
	long ok0 = atomic_load(&B.ok);
	int active = 0;

	for (int i = 0; slots && i < inflight; i++)
		if (astart(ch, handle, cq, &slots[i]) == 0)
			active++;
	while (active > 0) {
		grpc_event ev = grpc_completion_queue_next(
			cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
					 gpr_time_from_millis(100, GPR_TIMESPAN)),
			NULL);
		struct aslot *s = ev.tag;

		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		afinish(s, ev.success);
		if (now_s() - t0 >= secs || astart(ch, handle, cq, s) < 0)
			active--;
	}
	t1 = now_s();
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
	grpc_channel_destroy(ch);
	grpc_channel_credentials_release(creds);
	free(slots);
	return (double)(atomic_load(&B.ok) - ok0) / (t1 - t0);
}

/* Identities in state requested for the issue phase, created through the domain API. */
static void *prepare_worker(void *p)
{
	(void)p;
	for (;;) {
		struct ca_identity_spec s = { .owner_id = B.owner };
		struct ca_identity i = { 0 };
		struct ca_ctx ctx = { 0 };
		long k = atomic_fetch_add(&B.next, 1);
		char name[64];

		if (k >= B.n_ids) {
			atomic_store(&B.stop, true);
			break;
		}
		snprintf(name, sizeof(name), "is-%ld.bench.example.com", k);
		s.name = name;
		if (ca_identity_create(B.svc, &ctx, &s, &i) == 0) {
			memcpy(B.ids[k], i.id, sizeof(B.ids[k]));
			atomic_fetch_add(&B.ok, 1);
		} else {
			atomic_fetch_add(&B.failed, 1);
		}
		ca_identity_clear(&i);
	}
	return NULL;
}

static int exec_sql(const char *sql)
{
	struct db_conn *c = NULL;
	int r = db_acquire(B.db, 5000, &c);

	if (r >= 0)
		r = db_exec(c, sql, NULL, 0, NULL);
	db_release(B.db, c);
	return r;
}

/* The database floor: the same rows through pgbench, one commit per issuance. */
static double run_pgbench(const char *dsn, int n, int secs)
{
	char script[] = "/tmp/ca-bench-XXXXXX", line[512], *cmd = NULL, *q;
	double tps = -1;
	size_t ql = 0;
	FILE *f;
	int fd;

	if (exec_sql(
		    "CREATE TABLE IF NOT EXISTS bench_identities (LIKE identities INCLUDING ALL)") <
		    0 ||
	    exec_sql("CREATE TABLE IF NOT EXISTS bench_certificates (LIKE certificates INCLUDING "
		     "ALL)") < 0 ||
	    exec_sql("CREATE TABLE IF NOT EXISTS bench_audit (LIKE audit_events INCLUDING ALL)") <
		    0 ||
	    exec_sql("CREATE TABLE IF NOT EXISTS bench_outbox (LIKE outbox INCLUDING ALL)") < 0 ||
	    exec_sql("CREATE SEQUENCE IF NOT EXISTS bench_seq") < 0 ||
	    exec_sql("INSERT INTO bench_identities (tenant_id, id, kind, name, owner_id, key_type, "
		     "ttl_seconds, created_at, updated_at) SELECT tenant_id, gen_random_uuid(), "
		     "kind, name || g, owner_id, key_type, ttl_seconds, now(), now() FROM "
		     "identities, generate_series(1, 10) g LIMIT 10000") < 0)
		return -1;
	fd = mkstemp(script);
	if (fd < 0)
		return -1;
	dprintf(fd,
		"\\set n random(1, 10000)\n"
		"BEGIN;\n"
		"UPDATE bench_identities SET state = 'issued', updated_at = now(), current_serial = "
		"md5(random()::text) WHERE id = (SELECT id FROM bench_identities OFFSET :n - 1 LIMIT "
		"1);\n"
		"INSERT INTO bench_certificates (tenant_id, serial, identity_id, der, fingerprint, "
		"key_algorithm, not_before, not_after) VALUES ('%s', md5(random()::text), "
		"gen_random_uuid(), decode(repeat('ab', 520), 'hex'), repeat('f', 64), 'ecdsa-p256', "
		"now(), now() + interval '30 days');\n"
		"INSERT INTO bench_audit (tenant_id, sequence, id, type, time, actor, resource, "
		"outcome, data_json, prev_hash, hash) VALUES ('%s', nextval('bench_seq'), "
		"gen_random_uuid(), 'identity.issued', now(), 'anonymous', 'identities/x', 'ok', "
		"repeat('x', 160), decode(repeat('00', 32), 'hex'), decode(repeat('11', 32), "
		"'hex'));\n"
		"INSERT INTO bench_outbox (id, tenant_id, type, payload) VALUES (gen_random_uuid(), "
		"'%s', 'identity.issued', decode(repeat('7b', 300), 'hex'));\n"
		"END;\n",
		DB_DEFAULT_TENANT, DB_DEFAULT_TENANT, DB_DEFAULT_TENANT);
	close(fd);
	q = malloc(strlen(dsn) * 4 + 3);
	if (!q)
		goto out;
	q[ql++] = '\'';
	for (const char *p = dsn; *p; p++) {
		if (*p == '\'') {
			memcpy(q + ql, "'\\''", 4);
			ql += 4;
		} else {
			q[ql++] = *p;
		}
	}
	q[ql++] = '\'';
	q[ql] = '\0';
	if (asprintf(&cmd, "%s -n -M prepared -c %d -j 2 -T %d -f %s %s 2>&1",
		     access("/usr/lib/postgresql/15/bin/pgbench", X_OK) == 0 ?
			     "/usr/lib/postgresql/15/bin/pgbench" :
			     "pgbench",
		     n, secs, script, q) < 0)
		cmd = NULL;
	free(q);
	f = cmd ? popen(cmd, "r") : NULL;
	if (!f)
		goto out;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "tps = ", 6) == 0)
			tps = strtod(line + 6, NULL);
	pclose(f);
out:
	free(cmd);
	unlink(script);
	return tps;
}

static int setup(int inflight)
{
	struct db_config dc = { .dsn = getenv("TRSTCTL_POSTGRES_DSN"),
				.max_conns = 16,
				.connect_timeout_ms = 5000,
				.writers = B.writers };
	struct ca_config cc = { .crl_interval_ms = 3600000 };
	struct audit_config ac = { .checkpoint_interval_ms = -1 };
	struct rpc_server_config sc = { .addr = "127.0.0.1:0",
					.tls_mode = RPC_TLS_DISABLED,
					.workers = 2,
					.pool_threads = inflight,
					.pool_queue = 4 * inflight,
					.max_streams = 4,
					.max_request_bytes = 1 << 20,
					.grace_ms = 1000 };
	struct trstctl_client_config tc = { .transport = TRSTCTL_PLAINTEXT, .deadline_ms = 60000 };
	struct ca_ctx ctx = { 0 };
	struct ca_owner o = { 0 };
	uint8_t key[KEK_LEN];
	char addr[64];
	int port = 0, r;

	memset(key, 5, sizeof(key));
	if ((r = kek_new(key, sizeof(key), &B.kek)) < 0 || (r = db_open(&dc, &B.db)) < 0 ||
	    (r = db_migrate(B.db, NULL)) < 0 || (r = bus_open(B.db, NULL, &B.bus)) < 0 ||
	    (r = audit_open(B.db, B.kek, &ac, &B.audit)) < 0 ||
	    (r = ca_service_open(B.db, B.kek, B.bus, &cc, &B.svc)) < 0)
		return r;
	rpc_init();
	if ((r = rpc_server_new(&sc, trstctl_descset, trstctl_descset_len, &B.srv)) < 0 ||
	    (r = ca_rpc_register(B.srv, B.svc)) < 0 || (r = rpc_server_start(B.srv, &port)) < 0)
		return r;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	snprintf(B.addr, sizeof(B.addr), "%s", addr);
	tc.addr = addr;
	if ((r = trstctl_client_new(&tc, &B.cli)) < 0)
		return r;
	snprintf(addr, sizeof(addr), "bench-%d-%ld", (int)getpid(), (long)time(NULL));
	r = ca_owner_create(B.svc, &ctx, "service", addr, "", &o);
	memcpy(B.owner, o.id, sizeof(B.owner));
	ca_owner_clear(&o);
	return r;
}

int main(int argc, char **argv)
{
	double secs = 3, sign, pg, issue, issue_blocking, pair;
	int inflight = 64, cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
	struct db_writer_stats w0, w1;
	bool smoke = false;
	long failed;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--smoke"))
			smoke = true;
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			secs = atof(argv[++i]);
		else if (!strcmp(argv[i], "--inflight") && i + 1 < argc)
			inflight = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--writers") && i + 1 < argc)
			B.writers = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: ca-bench [--seconds N] [--inflight N] "
					"[--writers N] [--smoke]\n");
			return 2;
		}
	}
	if (inflight < 1 || inflight > MAX_INFLIGHT || secs <= 0) {
		fprintf(stderr, "ca-bench: --inflight 1..%d, --seconds > 0\n", MAX_INFLIGHT);
		return 2;
	}
	if (!getenv("TRSTCTL_POSTGRES_DSN")) {
		printf("SKIP: TRSTCTL_POSTGRES_DSN not set (run through server/db/run-with-pg.sh)\n");
		return 77;
	}
	if (smoke) {
		secs = 0.3;
		inflight = 4;
	}
	if (setup(inflight) < 0) {
		fprintf(stderr, "ca-bench: set-up failed\n");
		return 1;
	}
	/* both issue phases take identities from this set: about 6,000/s each is room enough */
	B.n_ids = smoke ? 100 : (long)(secs * 14000);
	B.ids = calloc((size_t)B.n_ids, sizeof(*B.ids));
	B.stop = false;
	sign = run(sign_worker, cores, secs);
	B.next = 0;
	run(prepare_worker, 8, 1e9);
	B.next = 0;
	/* as pgbench does before it measures: autovacuum must not wake up on the rows just
	 * written (tens of thousands of identities) in the middle of the measured phases */
	if (exec_sql("VACUUM ANALYZE identities") < 0 || exec_sql("VACUUM ANALYZE owners") < 0)
		fprintf(stderr, "ca-bench: VACUUM failed (measuring anyway)\n");
	db_writer_stats(B.db, &w0);
	if (getenv("CA_BENCH_MARK")) {
		/* for profilers: the issue phase starts now (pid, to attach) */
		fprintf(stderr, "ca-bench: issue phase, pid %d\n", (int)getpid());
		fflush(stderr);
	}
	issue = run_async(B.addr, inflight, secs);
	db_writer_stats(B.db, &w1);
	/* the rest of the prepared identities, through libtrstctl's blocking client */
	atomic_store(&B.stop, false);
	issue_blocking = run(issue_worker, inflight, secs);
	B.next = 0;
	pair = run(create_issue_worker, inflight, secs);
	/* pgbench clients stay below PostgreSQL's default max_connections (100) */
	pg = smoke ? 1 :
		     run_pgbench(getenv("TRSTCTL_POSTGRES_DSN"), inflight < 64 ? inflight : 64,
				 (int)(secs + 0.5));
	failed = atomic_load(&B.failed);
	if (!smoke) {
		double floor = sign < pg ? sign : pg;

		printf("cores: %d, calls in flight: %d, %.0f s per phase\n", cores, inflight, secs);
		printf("%-28s %10.0f /s  (%.0f /s per core)\n", "sign (floor)", sign, sign / cores);
		printf("%-28s %10.0f /s\n", "pgbench same rows (floor)", pg);
		printf("%-28s %10.0f /s  ratio %.2f of the lower floor\n", "issue (gRPC, durable)",
		       issue, issue / floor);
		printf("%-28s %10.0f /s  (%d client threads, libtrstctl)\n", "issue, blocking client",
		       issue_blocking, inflight);
		printf("%-28s %10.0f /s  ratio %.2f\n", "create+issue (gRPC, durable)", pair,
		       pair / floor);
		printf("issue phase: %" PRIu64 " commits, %.1f changes per commit (largest %" PRIu64
		       ")\n",
		       w1.batches - w0.batches,
		       (double)(w1.changes - w0.changes) /
			       (double)(w1.batches - w0.batches ? w1.batches - w0.batches : 1),
		       w1.max_batch);
		printf("target: issue >= 5000/s: %s\n", issue >= 5000 ? "met" : "NOT met");
	}
	printf("failed calls: %ld\n", failed);
	B.cli = trstctl_client_free(B.cli);
	rpc_server_shutdown(B.srv);
	B.srv = rpc_server_free(B.srv);
	rpc_fini();
	B.svc = ca_service_close(B.svc);
	B.audit = audit_close(B.audit);
	B.bus = bus_close(B.bus);
	B.db = db_close(B.db);
	B.kek = kek_free(B.kek);
	free(B.ids);
	return failed ? 1 : 0;
}
