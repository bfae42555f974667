/*
 * secrets-bench: GetSecret and RotateSecret served by an in-process trstctl.v1.Secrets
 * (real rpc_server on loopback, plaintext, the group-commit writer with audit and outbox
 * hooks) and called with libtrstctl from 64 threads (64 calls in flight). Figures:
 *   - GetSecret calls/s against the target of 20,000/s and against the gRPC floor of this
 *     run: grpc.health.v1.Health/Check (answered on the completion-queue thread) on the
 *     same server, same clients, 64 in flight. Each GetSecret reads one of GET_SECRETS
 *     secrets at random (a working set, not one hot row);
 *   - RotateSecret calls/s against the PostgreSQL floor: pgbench, 64 clients, running the
 *     same row changes per rotation (lock and bump the secret row, insert the version,
 *     one durable commit each), measured in the same run on the same database.
 * Needs TRSTCTL_POSTGRES_DSN (server/db/run-with-pg.sh provides one) and, for the floor,
 * pgbench (PGBENCH, or the PostgreSQL 15 bin folder). --smoke runs 1 s per part without the
 * floor and checks that every call succeeded. With SECRETS_BENCH_DIRECT set it first runs
 * both through the domain API (no gRPC), which separates the store's cost from the RPC's.
 * SECRETS_BENCH_WRITERS=N runs the store with N group-commit writers (db_config.writers).
 * Not a timed test.
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

#include "audit.h"
#include "bus.h"
#include "db.h"
#include "health.pb-c.h"
#include "kek.h"
#include "rpc.h"
#include "secrets.h"
#include "trstctl-client.h"
#include "trstctl-client-gen.h"

extern const unsigned char trstctl_descset[];
extern const size_t trstctl_descset_len;

#define INFLIGHT 64
#define GET_SECRETS 1000
#define VALUE_LEN 64
#define GET_TARGET 20000.0
#define ROTATE_FLOOR_RATIO 0.6

struct bench {
	struct trstctl_client *cli[4];
	double seconds;
	bool rotate;
	bool direct; /* the domain API, no gRPC */
	bool health; /* the floor: Health.Check */
	struct secrets *s;
	atomic_long ok, failed;
	atomic_bool stop;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct worker {
	struct bench *b;
	int id;
};

static void *work(void *p)
{
	struct worker *w = p;
	struct bench *b = w->b;
	struct trstctl_client *cl = b->cli[w->id % 4];
	char name[64];
	uint8_t value[VALUE_LEN];
	struct trstctl_status st = { 0 };
	unsigned seed = (unsigned)w->id * 2654435761u + 1;

	memset(value, 'a' + w->id % 26, sizeof(value));
	snprintf(name, sizeof(name), "bench/rot/%d", w->id);
	while (!atomic_load(&b->stop)) {
		int r;

		if (!b->rotate)
			snprintf(name, sizeof(name), "bench/get/%d", rand_r(&seed) % GET_SECRETS);
		if (b->health) {
			Grpc__Health__V1__HealthCheckRequest q =
				GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
			ProtobufCMessage *hr = NULL;

			r = trstctl_call_unary(cl, "/grpc.health.v1.Health/Check", &q.base,
					       &grpc__health__v1__health_check_response__descriptor,
					       NULL, &hr, &st);
			if (hr)
				protobuf_c_message_free_unpacked(hr, NULL);
		} else if (b->direct) {
			struct secrets_ctx ctx = { .actor = "bench" };
			struct secrets_meta m = { 0 };
			struct secrets_value v = { 0 };

			r = b->rotate ? secrets_rotate(b->s, &ctx, name, value, sizeof(value), 0, &m) :
					secrets_get(b->s, &ctx, name, 0, &v);
			secrets_meta_clear(&m);
			secrets_value_clear(&v);
			st.message = r < 0 ? ctx.err : NULL;
		} else if (b->rotate) {
			Trstctl__V1__RotateSecretRequest q = TRSTCTL__V1__ROTATE_SECRET_REQUEST__INIT;
			Trstctl__V1__SecretMeta *m = NULL;

			q.name = name;
			q.value = (ProtobufCBinaryData){ .data = value, .len = sizeof(value) };
			r = trstctl_secrets_rotate_secret(cl, &q, NULL, &m, &st);
			if (m)
				protobuf_c_message_free_unpacked(&m->base, NULL);
		} else {
			Trstctl__V1__GetSecretRequest q = TRSTCTL__V1__GET_SECRET_REQUEST__INIT;
			Trstctl__V1__Secret *s = NULL;

			q.name = name;
			r = trstctl_secrets_get_secret(cl, &q, NULL, &s, &st);
			if (s)
				protobuf_c_message_free_unpacked(&s->base, NULL);
		}
		if (r == 0) {
			atomic_fetch_add(&b->ok, 1);
		} else {
			if (atomic_fetch_add(&b->failed, 1) < 3)
				fprintf(stderr, "secrets-bench: call failed: %s\n", st.message);
		}
		if (b->direct)
			st.message = NULL;
	}
	trstctl_status_clear(&st);
	return NULL;
}

/* Runs INFLIGHT workers for b->seconds; returns calls/s. */
static double run(struct bench *b)
{
	pthread_t t[INFLIGHT];
	struct worker w[INFLIGHT];
	double t0, t1;
	long n0, n1;

	atomic_store(&b->stop, false);
	atomic_store(&b->ok, 0);
	atomic_store(&b->failed, 0);
	for (int i = 0; i < INFLIGHT; i++) {
		w[i] = (struct worker){ .b = b, .id = i };
		pthread_create(&t[i], NULL, work, &w[i]);
	}
	usleep(300000); /* warm-up */
	n0 = atomic_load(&b->ok);
	t0 = now_s();
	usleep((useconds_t)(b->seconds * 1e6));
	t1 = now_s();
	n1 = atomic_load(&b->ok);
	atomic_store(&b->stop, true);
	for (int i = 0; i < INFLIGHT; i++)
		pthread_join(t[i], NULL);
	return (double)(n1 - n0) / (t1 - t0);
}

static int exec_sql(struct db *db, const char *sql)
{
	struct db_conn *c = NULL;
	int r = db_acquire(db, 5000, &c);

	if (r < 0)
		return r;
	r = db_exec(c, sql, NULL, 0, NULL);
	db_release(db, c);
	return r;
}

/* pgbench, INFLIGHT clients, the rotation's row changes on rows of their own. */
static double pg_floor(const char *dsn, double seconds)
{
	const char *pgb = getenv("PGBENCH") ? getenv("PGBENCH") : "/usr/lib/postgresql/15/bin/pgbench";
	char script[] = "/tmp/secrets-bench-XXXXXX";
	char cmd[4096], line[512];
	double tps = -1;
	FILE *f, *p;
	int fd;

	if (access(pgb, X_OK) != 0)
		return -1;
	fd = mkstemp(script);
	if (fd < 0)
		return -1;
	f = fdopen(fd, "w");
	/* the same statements a rotation runs: lock+bump the secret row, insert the version
	 * (value sealed: VALUE_LEN + KEK_SEAL_OVERHEAD bytes), one commit */
	fprintf(f,
		"BEGIN;\n"
		"UPDATE secrets SET current_version = current_version + 1, updated_at = "
		"clock_timestamp() WHERE tenant_id = '" DB_DEFAULT_TENANT "' AND name = "
		"'floor/' || :client_id RETURNING current_version \\gset\n"
		"INSERT INTO secret_versions (tenant_id, name, version, sealed) VALUES ('"
		DB_DEFAULT_TENANT "', 'floor/' || :client_id, :current_version, "
		"decode(repeat('ab', %d), 'hex'));\n"
		"END;\n",
		VALUE_LEN + KEK_SEAL_OVERHEAD);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "'%s' -n -M prepared -c %d -j 2 -T %d -f %s '%s' 2>&1", pgb,
		 INFLIGHT, (int)(seconds + 0.5), script, dsn);
	p = popen(cmd, "r");
	while (p && fgets(line, sizeof(line), p))
		if (strncmp(line, "tps = ", 6) == 0)
			tps = strtod(line + 6, NULL);
	if (p)
		pclose(p);
	unlink(script);
	return tps;
}

int main(int argc, char **argv)
{
	const char *dsn = getenv("TRSTCTL_POSTGRES_DSN");
	bool smoke = argc > 1 && strcmp(argv[1], "--smoke") == 0;
	struct db_config dc = { .dsn = dsn, .max_conns = 24, .connect_timeout_ms = 5000 };

	/* SECRETS_BENCH_WRITERS sets db_config.writers (default 1, as the server runs) */
	if (getenv("SECRETS_BENCH_WRITERS"))
		dc.writers = atoi(getenv("SECRETS_BENCH_WRITERS"));
	struct audit_config ac = { .checkpoint_interval_ms = -1 };
	struct secrets_config sc = { .retain_versions = SECRETS_DEFAULT_RETAIN };
	struct rpc_server_config rc = { .addr = "127.0.0.1:0",
					.tls_mode = RPC_TLS_DISABLED,
					.workers = 2,
					.pool_threads = 64, /* the server's default here (main.c) */
					.pool_queue = 1024,
					.max_streams = 4,
					.max_request_bytes = 1 << 20,
					.grace_ms = 500 };
	struct trstctl_client_config cc = { .transport = TRSTCTL_PLAINTEXT, .deadline_ms = 30000 };
	struct bench b = { .seconds = smoke ? 1 : 5 };
	struct secrets_ctx ctx = { .actor = "bench" };
	struct secrets_meta m = { 0 };
	struct rpc_server *srv = NULL;
	struct secrets *s = NULL;
	struct audit *a = NULL;
	struct bus *bus = NULL;
	struct db *db = NULL;
	struct kek *kek = NULL;
	uint8_t key[KEK_LEN], value[VALUE_LEN];
	char addr[64], name[64], sql[256];
	double get_rate, rot_rate, floor, health_rate;
	long get_failed, rot_failed, health_failed;
	int port = 0;

	if (!dsn) {
		printf("SKIP: TRSTCTL_POSTGRES_DSN is not set (run through server/db/run-with-pg.sh)\n");
		return 77;
	}
	memset(key, 5, sizeof(key));
	memset(value, 'v', sizeof(value));
	if (db_open(&dc, &db) < 0 || db_migrate(db, NULL) < 0 || kek_new(key, KEK_LEN, &kek) < 0 ||
	    audit_open(db, kek, &ac, &a) < 0 || bus_open(db, NULL, &bus) < 0 ||
	    secrets_open(db, kek, bus, &sc, &s) < 0) {
		fprintf(stderr, "secrets-bench: cannot open the store\n");
		return 1;
	}
	for (int i = 0; i < GET_SECRETS; i++) {
		snprintf(name, sizeof(name), "bench/get/%d", i);
		if (secrets_create(s, &ctx, name, value, sizeof(value), NULL, 0, &m) < 0) {
			fprintf(stderr, "secrets-bench: cannot create %s: %s\n", name, ctx.err);
			return 1;
		}
		secrets_meta_clear(&m);
	}
	for (int i = 0; i < INFLIGHT; i++) {
		snprintf(name, sizeof(name), "bench/rot/%d", i);
		secrets_create(s, &ctx, name, value, sizeof(value), NULL, 0, &m);
		secrets_meta_clear(&m);
		/* the floor's rows: pgbench's client ids are 0..INFLIGHT-1 */
		snprintf(sql, sizeof(sql),
			 "INSERT INTO secrets (tenant_id, name, current_version) VALUES ('"
			 DB_DEFAULT_TENANT "', 'floor/%d', 1) ON CONFLICT DO NOTHING", i);
		exec_sql(db, sql);
	}
	rpc_init();
	if (rpc_server_new(&rc, trstctl_descset, trstctl_descset_len, &srv) < 0 ||
	    secrets_rpc_register(srv, s) < 0 || rpc_server_add_standard_services(srv) < 0 ||
	    rpc_server_start(srv, &port) < 0) {
		fprintf(stderr, "secrets-bench: cannot start the server\n");
		return 1;
	}
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	cc.addr = addr;
	for (int i = 0; i < 4; i++)
		if (trstctl_client_new(&cc, &b.cli[i]) < 0)
			return 1;

	b.s = s;
	if (getenv("SECRETS_BENCH_DIRECT")) {
		b.direct = true;
		printf("direct GetSecret %.0f/s\n", run(&b));
		b.rotate = true;
		printf("direct RotateSecret %.0f/s\n", run(&b));
		b.direct = b.rotate = false;
	}
	b.health = true;
	health_rate = run(&b);
	health_failed = atomic_load(&b.failed);
	b.health = false;
	get_rate = run(&b);
	get_failed = atomic_load(&b.failed) + health_failed;
	b.rotate = true;
	if (getenv("SECRETS_BENCH_MARK")) {
		/* for profilers: the RotateSecret phase starts now (pid, to attach) */
		fprintf(stderr, "secrets-bench: rotate phase, pid %d\n", (int)getpid());
		fflush(stderr);
	}
	rot_rate = run(&b);
	rot_failed = atomic_load(&b.failed);
	{
		struct db_writer_stats ws;

		db_writer_stats(db, &ws);
		printf("writer: %" PRIu64 " batches, %" PRIu64 " changes, largest %" PRIu64 "\n",
		       ws.batches, ws.changes, ws.max_batch);
	}
	floor = smoke ? -1 : pg_floor(dsn, b.seconds);

	{
		struct secrets_cache_stats cs;

		secrets_read_stats(s, &cs);
		printf("GetSecret cache: %" PRIu64 " hits, %" PRIu64 " misses, %zu entries%s\n",
		       cs.hits, cs.misses, cs.entries, cs.enabled ? "" : " (not listening)");
	}
	printf("Health.Check %9.0f calls/s  %d in flight  (the gRPC floor of this run)\n",
	       health_rate, INFLIGHT);
	printf("GetSecret    %9.0f calls/s  %d in flight  target %.0f/s  ratio %.2f  "
	       "(%d secrets at random)\n",
	       get_rate, INFLIGHT, GET_TARGET, get_rate / GET_TARGET, GET_SECRETS);
	printf("GetSecret ratio to floor %.2f\n", get_rate / health_rate);
	if (floor > 0)
		printf("RotateSecret %9.0f calls/s  %d in flight  pgbench floor %.0f tps  ratio %.2f "
		       "(target >= %.1f)\n",
		       rot_rate, INFLIGHT, floor, rot_rate / floor, ROTATE_FLOOR_RATIO);
	else
		printf("RotateSecret %9.0f calls/s  %d in flight  (no pgbench floor%s)\n", rot_rate,
		       INFLIGHT, smoke ? ": --smoke" : ": pgbench not found");

	for (int i = 0; i < 4; i++)
		trstctl_client_free(b.cli[i]);
	rpc_server_shutdown(srv);
	rpc_server_free(srv);
	rpc_fini();
	secrets_close(s);
	bus_close(bus);
	audit_close(a);
	db_close(db);
	kek_free(kek);
	if (get_failed || rot_failed) {
		fprintf(stderr, "secrets-bench: %ld GetSecret and %ld RotateSecret calls failed\n",
			get_failed, rot_failed);
		return 1;
	}
	return 0;
}
