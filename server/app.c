/*
 * The durable spine of a server process (see app.h): KEK, PostgreSQL and migrations, the
 * KEK check value, the audit chain and the outbox relay, in that order, and the hand-off
 * of guard denials to the audit log and the event stream. A guard denial arrives on the
 * enforcer's reader thread, which must not block, so denials go through a small bounded
 * queue to a thread of their own; when the queue is full the denial is still counted in
 * the kernel and logged by the guard, and a counter here says how many records were lost.
 * The in-process refusals of the server's own clients (userspace enforcement) arrive the
 * same way, already rate-limited by the guard, and become the same record with actor
 * "userspace". A record that cannot be written because PostgreSQL is out of reach (the
 * refused connection may have been PostgreSQL's own) waits and is written once it is
 * back, instead of being lost.
 */
#include "app.h"
#include "app-ready.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ai.h"
#include "audit.h"
#include "authz.h"
#include "ca.h"
#include "bus.h"
#include "change.h"
#include "cfg.h"
#include "crypto.h"
#include "db.h"
#include "guard.h"
#include "http.h"
#include "log.h"
#include "otel.h"
#include "rpc.h"
#include "secrets.h"
#include "telemetry.h"
#include "trstctl-config.h"

enum {
	DENIAL_QUEUE = 256,     /* guard denials waiting to be audited */
	WRITE_TIMEOUT_MS = 10000,
	DENIAL_RETRY_MS = 1000, /* first wait before writing a denial again; doubles to 30 s */
	DENIAL_RETRY_MAX_MS = 30000,
};

struct app {
	const struct cfg *cfg;
	struct kek *kek;
	struct db *db;
	struct audit *audit;
	struct bus *bus;
	struct change_purger *purger; /* stored replies past their retention */
	struct authz *authz;
	struct secrets *secrets;
	struct ca_service *ca;
	struct ca_server_cert *server_cert; /* internal TLS mode: the served certificate */
	struct guard_run *guard;
	struct otel *otel; /* the OTLP exporter (otlp.enabled), else NULL */
	struct ai *ai;		       /* trstctl.v1.Assist (off unless ai.enable_api) */
	struct telemetry *telemetry;   /* usage reports (NULL unless telemetry.enabled) */
	/* guard denials on their way to the audit log */
	pthread_t denial_thread;
	bool denial_thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct guard_run_denial queue[DENIAL_QUEUE];
	size_t head, len;
	bool stopping;
	atomic_ulong denials_dropped;
};

/* KEK check -------------------------------------------------------------------------- */

/*
 * Stores the KEK's check value at first start; later refuses a KEK that does not match
 * the database ("the KEK does not match this database").
 */
static int kek_check(struct app *a)
{
	uint8_t check[KEK_CHECK_LEN];
	const struct db_param p[] = { DB_TEXT(DB_DEFAULT_TENANT), DB_TEXT(kek_id(a->kek)),
				      DB_BYTES(check, sizeof(check)) };
	struct db_conn *conn = NULL;
	struct db_rows *rows = NULL;
	int r;

	r = kek_check_value(a->kek, check);
	if (r < 0)
		return r;
	r = db_acquire(a->db, 10000, &conn);
	if (r < 0)
		return r;
	r = db_exec(conn,
		    "INSERT INTO kek_check (tenant_id, kek_id, check_value) "
		    "SELECT $1, $2, $3 WHERE NOT EXISTS "
		    "(SELECT 1 FROM kek_check WHERE tenant_id = $1)",
		    p, 3, NULL);
	if (r >= 0)
		r = db_exec(conn, "SELECT check_value FROM kek_check WHERE tenant_id = $1 AND kek_id = $2",
			    p, 2, &rows);
	db_release(a->db, conn);
	if (r < 0)
		return r;
	if (rows->n_rows == 0)
		r = -EKEYREJECTED; /* the database was sealed under another KEK */
	else
		r = kek_verify_check(a->kek, (const uint8_t *)rows->values[0], rows->lengths[0]);
	db_rows_free(rows);
	return r;
}

/* Guard denials -> audit + event -------------------------------------------------------- */

struct denial_change {
	const struct guard_run_denial *d;
};

static int denial_write(struct db_tx *tx, void *ud, char *err, size_t errlen)
{
	const struct guard_run_denial *d = ((struct denial_change *)ud)->d;
	char resource[320], *data;
	json_t *o;
	int r;

	(void)err;
	(void)errlen;
	o = json_pack("{s:I, s:I, s:s, s:s, s:I, s:s, s:s}", "pid", (json_int_t)d->pid, "uid",
		      (json_int_t)d->uid, "comm", d->comm, "address", d->address, "port",
		      (json_int_t)d->port, "protocol", d->protocol, "hook", d->hook);
	if (o && d->client) {
		/* a userspace refusal: which client, where it wanted to go, and why not */
		json_t *u = json_pack("{s:s, s:s, s:s, s:I}", "client", d->client, "host", d->host,
				      "reason", d->reason, "suppressed", (json_int_t)d->suppressed);

		if (!u || json_object_update(o, u) < 0) {
			json_decref(o);
			o = NULL;
		}
		json_decref(u);
	}
	data = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	if (!data)
		return -ENOMEM;
	snprintf(resource, sizeof(resource), "%s:%u", *d->address ? d->address : d->host, d->port);
	r = change_record(tx, &(struct change_record){ .type = "guard.denied",
						       .actor = d->client ? "userspace" : "kernel",
						       .resource = resource,
						       .outcome = "denied",
						       .data_json = data });
	free(data);
	return r;
}

/* Waits ms or until stopping; true when stopping. */
static bool denial_wait(struct app *a, int ms)
{
	struct timespec ts;
	bool stop;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&a->lock);
	while (!a->stopping && pthread_cond_timedwait(&a->cond, &a->lock, &ts) == 0)
		;
	stop = a->stopping;
	pthread_mutex_unlock(&a->lock);
	return stop;
}

/* PostgreSQL out of reach (or refused by the egress gate): worth writing again later. */
static bool denial_retryable(int r)
{
	return r == -ECONNREFUSED || r == -ECONNRESET || r == -ETIMEDOUT || r == -EAGAIN ||
	       r == -EHOSTUNREACH;
}

static void *denial_main(void *arg)
{
	struct app *a = arg;

	for (;;) {
		struct guard_run_denial d;
		struct denial_change dc = { &d };
		struct change_key none = { 0 }; /* the kernel's, not a request's: no request_id */
		struct change ch = { .db = a->db, .bus = a->bus, .key = &none,
				     .apply = denial_write, .ud = &dc,
				     .timeout_ms = WRITE_TIMEOUT_MS };
		int r, wait_ms;

		pthread_mutex_lock(&a->lock);
		while (a->len == 0 && !a->stopping)
			pthread_cond_wait(&a->cond, &a->lock);
		if (a->len == 0) {
			pthread_mutex_unlock(&a->lock);
			return NULL;
		}
		d = a->queue[a->head];
		a->head = (a->head + 1) % DENIAL_QUEUE;
		a->len--;
		pthread_mutex_unlock(&a->lock);
		/* comm comes from the kernel: keep it printable ASCII for the record. */
		for (char *p = d.comm; *p; p++)
			if (*p < 0x20 || *p == '"' || *p == '\\' || (unsigned char)*p > 0x7e)
				*p = '?';
		wait_ms = DENIAL_RETRY_MS;
		while ((r = change_run(&ch)) < 0 && denial_retryable(r)) {
			if (wait_ms == DENIAL_RETRY_MS)
				log_warn("cannot audit a guard denial yet (PostgreSQL out of reach); "
					 "retrying",
					 "address", "%s", d.address, "error", "%s", strerror(-r));
			change_clear(&ch);
			ch.lost_race = false;
			if (denial_wait(a, wait_ms))
				break;
			wait_ms = wait_ms * 2 < DENIAL_RETRY_MAX_MS ? wait_ms * 2 : DENIAL_RETRY_MAX_MS;
		}
		if (r < 0)
			log_error("cannot audit a guard denial", "address", "%s", d.address, "error",
				  "%s", strerror(-r));
	}
}

static void denial_hook(const struct guard_run_denial *d, void *arg)
{
	struct app *a = arg;

	pthread_mutex_lock(&a->lock);
	if (a->len == DENIAL_QUEUE) {
		atomic_fetch_add(&a->denials_dropped, 1);
	} else {
		a->queue[(a->head + a->len) % DENIAL_QUEUE] = *d;
		a->len++;
		pthread_cond_signal(&a->cond);
	}
	pthread_mutex_unlock(&a->lock);
}

/* Opening ---------------------------------------------------------------------------- */

/* Connects to PostgreSQL, retrying with backoff until it answers or a signal arrives. */
static int open_db(struct app *a, const sigset_t *sigs)
{
	struct db_config dc = {
		.dsn = a->cfg->postgres.dsn,
		.max_conns = a->cfg->postgres.max_conns,
		/* one bound for every wait on PostgreSQL, connecting included */
		.connect_timeout_ms = (int)a->cfg->postgres.statement_timeout_ms,
		.statement_timeout_ms = (int)a->cfg->postgres.statement_timeout_ms,
	};
	int delay_ms = 250, attempt = 0, r;

	if (a->guard)
		guard_run_gate(a->guard, GUARD_CLIENT_POSTGRES, &dc.gate);

	for (;;) {
		struct timespec ts;

		r = db_open(&dc, &a->db);
		if (r >= 0 || (r != -ECONNREFUSED && r != -ETIMEDOUT && r != -ECONNRESET &&
			       r != -ETIME))
			return r;
		attempt++;
		log_warn("PostgreSQL is not reachable yet; retrying", "attempt", "%d", attempt,
			 "retry_ms", "%d", delay_ms, "error", "%s", strerror(-r));
		ts.tv_sec = delay_ms / 1000;
		ts.tv_nsec = (long)(delay_ms % 1000) * 1000000L;
		if (sigtimedwait(sigs, NULL, &ts) > 0)
			return -EINTR;
		delay_ms = delay_ms * 2 > 5000 ? 5000 : delay_ms * 2;
	}
}

static int migrate(struct db *db)
{
	char *msg = NULL;
	int applied = 0, r;

	r = db_migrate_msg(db, &applied, &msg);
	if (r < 0) {
		log_error("database migration failed", "error", "%s", msg ? msg : strerror(-r));
		free(msg);
		return r;
	}
	if (applied > 0)
		log_info("database migrated", "applied", "%d", applied);
	return 0;
}

/*
 * The CA asks before it issues (and before CreateIdentity) whether the caller's policies
 * allow these names and addresses, TTL, key type and target state (issuance limits, issues
 * 8 and 15): the full check of authz.
 */
static int issuance_check(struct rpc_call *call, const struct ca_issuance *what, void *ud)
{
	struct app *a = ud;
	const char *method = rpc_call_method(call), *svc, *slash;
	char action[128], resource[160];
	struct policy_request req = { 0 };

	/* "/trstctl.v1.CA/IssueCertificate" -> "CA.IssueCertificate" */
	slash = strrchr(method, '/');
	svc = strstr(method, "trstctl.v1.");
	if (!slash || !svc)
		return rpc_call_error(call, RPC_INTERNAL, "cannot name the action of %s", method);
	svc += strlen("trstctl.v1.");
	snprintf(action, sizeof(action), "%.*s.%s", (int)(slash - svc), svc, slash + 1);
	snprintf(resource, sizeof(resource), "identity/%s", what->identity_id);
	req.action = action;
	req.resource = resource;
	req.to_state = ca_state_name(what->to_state);
	req.dns_names = what->dns_names;
	req.n_dns_names = what->n_dns_names;
	req.ip_addresses = what->ip_addresses;
	req.n_ip_addresses = what->n_ip_addresses;
	req.ttl_seconds = what->ttl_seconds > 0 ? (uint64_t)what->ttl_seconds : 0;
	req.key_type = what->key_type;
	return authz_check(a->authz, call, &req);
}

/* The domain services, once the spine is in place. */
static int open_services(struct app *a)
{
	const struct cfg *c = a->cfg;
	const struct authz_config ac = {
		.bootstrap_token_file = c->auth.bootstrap_token_file,
		.unauth_interval_ms = c->auth.unauth_summary_interval_ms,
		.unauth_max_sources = (size_t)c->auth.unauth_max_sources,
	};
	const struct secrets_config sc = { .max_value_bytes = c->secrets.max_value_bytes,
					   .retain_versions = c->secrets.retain_versions };
	struct ca_config cac;
	int r;

	r = authz_open(a->db, a->audit, a->bus, &ac, &a->authz);
	if (r < 0) {
		log_error("cannot open the policy service", "error", "%s", strerror(-r));
		return r;
	}
	r = secrets_open(a->db, a->kek, a->bus, &sc, &a->secrets);
	if (r < 0) {
		log_error("cannot open the secret store", "error", "%s", strerror(-r));
		return r;
	}
	r = ca_config_from_cfg(c, &cac);
	if (r >= 0)
		r = ca_service_open(a->db, a->kek, a->bus, &cac, &a->ca);
	if (r < 0) {
		log_error("cannot open the certificate authority", "error", "%s", strerror(-r));
		return r;
	}
	ca_service_set_issuance_check(a->ca, issuance_check, a);
	/* the outbound features: each logs why it refuses its configuration */
	r = ai_open(c, guard_run_policy(a->guard), a->ca, a->audit, &a->ai);
	if (r >= 0)
		r = telemetry_start(c, guard_run_policy(a->guard), a->ca, a->secrets,
				    &a->telemetry);
	return r;
}

/* Writes the CA bundle for the clients on this host: a temporary file, then a rename. */
static int write_bundle(const char *path, const char *pem)
{
	char tmp[4096];
	size_t n = strlen(pem);
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, pem, n) != (ssize_t)n || fsync(fd) < 0) {
		close(fd);
		unlink(tmp);
		return -EIO;
	}
	close(fd);
	return rename(tmp, path) < 0 ? -errno : 0;
}

/*
 * Internal TLS: the CA bundle in the state folder (what the client sub-commands verify the
 * server with), then the server certificate from the CA for server.tls.sans.
 */
static int open_server_cert(struct app *a)
{
	const struct cfg *c = a->cfg;
	const struct ca_server_cert_config scc = {
		.names = (const char *const *)c->server.tls_sans,
		.n_names = c->server.n_tls_sans,
		.validity_seconds = c->server.tls_validity_ms / 1000,
		.renew_before_seconds = c->server.tls_renew_before_ms / 1000,
	};
	char path[4096], err[CA_ERR_LEN] = "";
	int r;

	snprintf(path, sizeof(path), "%s/ca-bundle.pem", c->state_dir);
	r = write_bundle(path, ca_service_bundle_pem(a->ca));
	if (r < 0) {
		log_error("cannot write the CA bundle", "path", "%s", path, "error", "%s",
			  strerror(-r));
		return r;
	}
	r = ca_server_cert_open(a->ca, &scc, &a->server_cert, err, sizeof(err));
	if (r < 0)
		log_error("cannot obtain the server certificate from the CA", "error", "%s",
			  err[0] ? err : strerror(-r));
	return r;
}

void app_tls_source(struct app *a, struct rpc_server_config *config)
{
	if (!a->server_cert)
		return;
	config->tls_source = ca_server_cert_fetch;
	config->tls_source_ud = a->server_cert;
}

int app_open(const struct cfg *c, struct guard_run *guard, const sigset_t *sigs,
	     struct app **ret_app)
{
	struct app *a = calloc(1, sizeof(*a));
	struct bus_config bc = { .nats_url = c->nats.url };
	struct audit_config ac = { .checkpoint_interval_ms = c->audit.checkpoint_interval_ms,
				   .checkpoint_file = c->audit.checkpoint_file,
				   .nats_url = c->nats.url };
	char *shown = NULL;
	bool generated = false;
	char err[512];
	int r;

	if (!a)
		return -ENOMEM;
	a->cfg = c;
	a->guard = guard;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	if (guard) {
		/* The server's own clients ask the guard before every connection; a refusal
		 * from the first one on waits in the queue until the audit log is open. */
		guard_run_gate(guard, GUARD_CLIENT_NATS, &bc.gate);
		ac.nats_gate = bc.gate;
		guard_set_denial_hook(guard, denial_hook, a);
	}

	/* first: a token file that cannot be read stops start-up before anything is opened */
	if (c->otlp.enabled && guard) {
		r = otel_start(&c->otlp, guard_run_policy(guard), TRSTCTL_VERSION, &a->otel, err,
			       sizeof(err));
		if (r < 0) {
			log_error("cannot start the OTLP exporter", "error", "%s", err);
			goto fail;
		}
		shown = cfg_url_redact(c->otlp.endpoint);
		log_info("OTLP export on", "endpoint", "%s", shown ? shown : "[redacted]");
		free(shown);
	}

	r = kek_load(c->secrets.kek_file, c->secrets.kek_generate, &a->kek, &generated, err,
		     sizeof(err));
	if (r < 0) {
		log_error("cannot load the KEK", "error", "%s", err);
		goto fail;
	}
	if (generated)
		log_warn("generated an EVALUATION KEK: losing this file makes every sealed value "
			 "unrecoverable; use a managed secret in production",
			 "path", "%s", c->secrets.kek_file);
	r = open_db(a, sigs);
	if (r < 0) {
		if (r != -EINTR)
			log_error("cannot open the database", "error", "%s", strerror(-r));
		goto fail;
	}
	r = migrate(a->db);
	if (r < 0)
		goto fail;
	r = kek_check(a);
	if (r < 0) {
		log_error("KEK check failed", "kek_id", "%s", kek_id(a->kek), "error", "%s",
			  r == -EKEYREJECTED ? kek_strerror(r) : strerror(-r));
		goto fail;
	}
	/* Hooks first: db drops attached items of a kind nobody registered. */
	r = audit_open(a->db, a->kek, &ac, &a->audit);
	if (r < 0) {
		log_error("cannot open the audit log", "error", "%s", strerror(-r));
		goto fail;
	}
	/* every record from here on, once committed, is exported */
	if (a->otel)
		audit_set_commit_hook(a->audit, otel_audit_committed, a->otel);
	r = bus_open(a->db, &bc, &a->bus);
	if (r < 0) {
		log_error("cannot open the outbox", "error", "%s", strerror(-r));
		goto fail;
	}
	r = open_services(a);
	if (r >= 0 && c->server.tls_mode == CFG_TLS_INTERNAL)
		r = open_server_cert(a);
	if (r < 0)
		goto fail;
	if (pthread_create(&a->denial_thread, NULL, denial_main, a) == 0)
		a->denial_thread_started = true;
	if (!c->nats.url)
		log_warn("no NATS URL: events wait in the outbox (TRSTCTL_NATS_URL)");
	*ret_app = a;
	return 0;
fail:
	app_close(a);
	return r;
}

int app_register(struct app *a, struct rpc_server *s)
{
	int r = audit_rpc_register(s, a->audit);

	if (r >= 0)
		r = policy_rpc_register(s, a->authz);
	if (r >= 0)
		r = secrets_rpc_register(s, a->secrets);
	if (r >= 0)
		r = ca_rpc_register(s, a->ca);
	if (r >= 0)
		r = ai_rpc_register(s, a->ai);
	if (r >= 0)
		r = authz_install(a->authz, s);
	if (r >= 0 && a->otel)
		rpc_server_set_done_hook(s, otel_rpc_done, a->otel);
	return r;
}

int app_start(struct app *a)
{
	int r = bus_start(a->bus);

	/* stored replies of request_ids outlive their retention by at most a minute */
	if (r >= 0)
		r = change_purger_start(a->db, a->cfg->postgres.idempotency_retention_ms / 1000,
					60000, &a->purger);
	return r;
}

struct app *app_close(struct app *a)
{
	if (!a)
		return NULL;
	a->purger = change_purger_stop(a->purger);
	a->server_cert = ca_server_cert_close(a->server_cert);
	a->telemetry = telemetry_stop(a->telemetry);
	a->ai = ai_close(a->ai);
	a->ca = ca_service_close(a->ca);
	a->secrets = secrets_close(a->secrets);
	a->authz = authz_close(a->authz);
	if (a->guard)
		guard_set_denial_hook(a->guard, NULL, NULL);
	if (a->denial_thread_started) {
		pthread_mutex_lock(&a->lock);
		a->stopping = true;
		pthread_cond_broadcast(&a->cond);
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->denial_thread, NULL);
	}
	a->bus = bus_close(a->bus);
	a->audit = audit_close(a->audit);
	/* after the hooks that feed it: the rpc server is gone, the audit log closed */
	a->otel = otel_stop(a->otel);
	a->db = db_close(a->db);
	a->kek = kek_free(a->kek);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	free(a);
	return NULL;
}

/* Metrics ------------------------------------------------------------------------------ */

static int spine_metrics(struct http_metrics *m, void *arg)
{
	struct app *a = arg;
	struct db_writer_stats ws;
	uint64_t depth = 0, age_ms = 0, published = 0;

	db_writer_stats(a->db, &ws);
	http_metrics_family(m, "trstctl_db_write_batches_total", "counter",
			    "Group-commit batches committed by this server.");
	http_metrics_sample(m, "trstctl_db_write_batches_total", NULL, ws.batches);
	http_metrics_family(m, "trstctl_db_write_changes_total", "counter",
			    "Changes committed through the group-commit writer.");
	http_metrics_sample(m, "trstctl_db_write_changes_total", NULL, ws.changes);
	if (bus_stats(a->bus, &depth, &age_ms, &published) >= 0) {
		http_metrics_family(m, "trstctl_outbox_depth", "gauge",
				    "Events committed but not yet published to JetStream.");
		http_metrics_sample(m, "trstctl_outbox_depth", NULL, depth);
		http_metrics_family(m, "trstctl_outbox_oldest_age_seconds", "gauge",
				    "Age of the oldest unpublished event (whole seconds).");
		http_metrics_sample(m, "trstctl_outbox_oldest_age_seconds", NULL, age_ms / 1000);
		http_metrics_family(m, "trstctl_outbox_published_total", "counter",
				    "Events this server published to JetStream.");
		http_metrics_sample(m, "trstctl_outbox_published_total", NULL, published);
	}
	http_metrics_family(m, "trstctl_idempotency_keys_purged_total", "counter",
			    "Stored replies of request_ids removed after their retention.");
	http_metrics_sample(m, "trstctl_idempotency_keys_purged_total", NULL,
			    change_purger_count(a->purger));
	http_metrics_family(m, "trstctl_guard_denials_unaudited_total", "counter",
			    "Guard denials that could not be queued for the audit log.");
	http_metrics_sample(m, "trstctl_guard_denials_unaudited_total", NULL,
			    atomic_load(&a->denials_dropped));
	return 0;
}

int app_metrics_register(struct app *a, struct http_server *h)
{
	int r = http_server_add_metrics(h, spine_metrics, a);

	if (r >= 0)
		r = authz_metrics_register(a->authz, h);
	if (r >= 0)
		r = http_server_add_ready(h, "postgres", app_db_ready, a->db);
	if (r >= 0 && a->otel)
		r = otel_metrics_register(a->otel, h);
	return r;
}

/* CLI ---------------------------------------------------------------------------------- */

int app_migrate_cli(int argc, char **argv, const struct cfg *c)
{
	static const char usage[] =
		"usage: trstctl migrate [--status]\n"
		"  Applies the database migrations (--status: lists them, applied or not). Operator\n"
		"  command: it works on the database itself (TRSTCTL_POSTGRES_DSN); serve migrates\n"
		"  at start-up too.\n";
	struct db_config dc = { .max_conns = 1, .connect_timeout_ms = 5000 };
	bool status = argc > 1 && strcmp(argv[1], "--status") == 0;
	struct db *db = NULL;
	char *text = NULL, *msg = NULL;
	int applied = 0, r;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage, stdout);
		return 0;
	}
	if (argc > 2 || (argc == 2 && !status)) {
		fputs(usage, stderr);
		return 2;
	}
	dc.dsn = c->postgres.dsn;
	r = db_open(&dc, &db);
	if (r < 0) {
		fprintf(stderr, "trstctl: migrate: cannot open the database: %s\n", strerror(-r));
		return 1;
	}
	if (status) {
		r = db_migrate_status(db, &text);
		if (r >= 0)
			fputs(text, stdout);
	} else {
		r = db_migrate_msg(db, &applied, &msg);
		if (r >= 0)
			printf("applied %d migration%s\n", applied, applied == 1 ? "" : "s");
	}
	if (r < 0)
		fprintf(stderr, "trstctl: migrate: %s\n", msg ? msg : strerror(-r));
	free(text);
	free(msg);
	db_close(db);
	return r < 0 ? 1 : 0;
}
