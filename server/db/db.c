/*
 * The connection pool, statement execution and transactions: the only place that talks
 * libpq for ordinary statements. A pool has max_conns slots; a slot connects the first
 * time it is leased and again after its connection broke, so PostgreSQL going away costs
 * errors (-ECONNRESET, -ECONNREFUSED), never a crash, and coming back needs nothing.
 *
 * Every wait on the server is bounded: sockets are nonblocking and every wait is a poll
 * with a deadline. Connecting waits at most connect_timeout_ms; a statement waits at most
 * statement_timeout_ms (PostgreSQL cancels it a little earlier itself, so that only a
 * server that stopped answering reaches the bound), after which the connection is dropped
 * and health.c learns that PostgreSQL is silent. Statements are prepared once per
 * connection, cached by their text.
 *
 * Results are requested in text format. bytea columns arrive as "\x<hex>" (the session
 * sets bytea_output = hex) and are decoded here, so values are raw bytes for bytea and
 * NUL-terminated text for everything else; every value also gets a trailing NUL.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db-internal.h"

#define DB_TX_ACQUIRE_MS 30000
#define DB_TX_RETRIES 5
#define DB_BYTEA_OID 17

int64_t db_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int db_poll(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r, wait;

	for (;;) {
		wait = -1;
		if (deadline >= 0) {
			int64_t left = deadline - db_now_ms();

			wait = left > 0 ? (left < INT32_MAX ? (int)left : INT32_MAX) : 0;
		}
		r = poll(&p, 1, wait);
		if (r > 0)
			return p.revents ? p.revents : POLLERR;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

static void stmts_free(struct db_conn *c)
{
	for (size_t i = 0; i < DB_STMT_BUCKETS; i++) {
		while (c->stmts[i]) {
			struct db_stmt *s = c->stmts[i];

			c->stmts[i] = s->next;
			free(s);
		}
	}
	c->n_stmts = 0;
}

void db_conn_drop(struct db_conn *c)
{
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
	c->broken = false;
	stmts_free(c);
}

/* The -errno of a failed connection attempt, from libpq's message (no SQLSTATE then). */
static int connect_errno(PGconn *pg)
{
	const char *msg = PQerrorMessage(pg);

	if (strstr(msg, "authentication failed") || strstr(msg, "no pg_hba.conf entry") ||
	    strstr(msg, "password") || (strstr(msg, "role") && strstr(msg, "does not exist")))
		return -EACCES;
	if (strstr(msg, "database") && strstr(msg, "does not exist"))
		return -ENOENT;
	return -ECONNREFUSED;
}

/* PostgreSQL's notices (NOTICE: ... skipping) are not errors; db/ writes nothing to stderr. */
static void ignore_notice(void *arg, const char *message)
{
}

/*
 * Connects slot c (not connected) within connect_timeout_ms (or the lease's deadline,
 * when sooner) and sets up its session: nonblocking, text settings, PostgreSQL's own
 * statement_timeout and the check for a client that left.
 */
static int conn_connect(struct db_conn *c)
{
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	int64_t start = db_now_ms(), deadline = start + c->db->connect_timeout_ms;
	bool full = true;
	char setup[200];
	PGconn *pg;
	int r;

	if (c->deadline >= 0 && c->deadline < deadline) {
		deadline = c->deadline;
		full = false;
	}
	r = db_connect_start(c->db, "trstctl", &pg);
	if (r < 0)
		return r; /* the egress gate refused every host (it said why), or no memory */
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED || PQstatus(pg) == CONNECTION_BAD) {
			r = connect_errno(pg);
			PQfinish(pg);
			return r;
		}
		r = db_poll(PQsocket(pg), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
		if (r <= 0) {
			/* nothing within the timeout: PostgreSQL does not answer */
			PQfinish(pg);
			if (r == 0 && full)
				db_silent(c->db, start);
			return r < 0 ? r : -ETIME;
		}
		st = PQconnectPoll(pg);
	}
	PQsetNoticeProcessor(pg, ignore_notice, NULL);
	if (PQsetnonblocking(pg, 1) < 0) {
		PQfinish(pg);
		return -EIO;
	}
	db_heard(c->db);
	c->pg = pg;
	c->broken = false;
	snprintf(setup, sizeof(setup),
		 "SET bytea_output = 'hex'; SET TimeZone = 'UTC'; SET statement_timeout = %d; "
		 "SET client_connection_check_interval = %d",
		 c->db->pg_timeout_ms, c->db->statement_timeout_ms ? DB_CLIENT_CHECK_MS : 0);
	r = db_exec_simple(c, setup);
	if (r < 0)
		db_conn_drop(c);
	return r;
}

/*
 * An idle connection is usable when libpq thinks so and the server sent nothing since:
 * a server that shut down or restarted sends a FATAL message and closes, which shows as
 * a readable socket. We never LISTEN, so anything readable while idle means "reconnect".
 */
static bool conn_idle_ok(struct db_conn *c)
{
	if (c->broken || PQstatus(c->pg) != CONNECTION_OK ||
	    PQtransactionStatus(c->pg) != PQTRANS_IDLE)
		return false;
	return db_poll(PQsocket(c->pg), POLLIN, 0) == 0;
}

/* Records the error of res (or of the connection) on c and returns it as -errno. */
static int conn_error(struct db_conn *c, const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	int err = db_sqlstate_errno(state);

	if (!msg)
		msg = PQerrorMessage(c->pg);
	snprintf(c->last_error, sizeof(c->last_error), "%s", msg ? msg : "unknown error");
	c->last_error[strcspn(c->last_error, "\n")] = '\0';
	if (PQstatus(c->pg) != CONNECTION_OK || err == -ECONNRESET || err == -ECONNREFUSED) {
		c->broken = true;
		if (err != -ECONNREFUSED)
			err = -ECONNRESET;
	}
	c->last_errno = err;
	return err;
}

/*
 * Waits until libpq holds a whole result of c: sends what libpq still buffers (the socket
 * is nonblocking: a large statement never blocks in send) while reading what arrives,
 * until deadline. Sets *heard when anything arrived. 0, -ETIME at the deadline, or the
 * connection's error.
 */
static int conn_await(struct db_conn *c, int64_t deadline, bool *heard)
{
	for (;;) {
		int f = PQflush(c->pg), ev;

		if (f < 0)
			return conn_error(c, NULL);
		if (f == 0 && !PQisBusy(c->pg))
			return 0;
		ev = db_poll(PQsocket(c->pg), f ? POLLIN | POLLOUT : POLLIN, deadline);
		if (ev == 0)
			return -ETIME;
		if (ev < 0) {
			c->broken = true;
			return ev;
		}
		if (ev & (POLLIN | POLLERR | POLLHUP)) {
			*heard = true;
			if (!PQconsumeInput(c->pg))
				return conn_error(c, NULL);
		}
	}
}

/* No answer by the deadline: the connection is dropped at release. Returns -ETIME. */
static int conn_timed_out(struct db_conn *c)
{
	c->broken = true;
	c->last_errno = -ETIME;
	snprintf(c->last_error, sizeof(c->last_error), "PostgreSQL did not answer in time");
	return -ETIME;
}

/*
 * Collects the results of the query just sent, waiting at most the lease's bound (the
 * statement timeout, or the lease's deadline when sooner). A bound of the statement timeout
 * that passes with nothing heard tells health.c that PostgreSQL is silent. Keeps the
 * first error, else the last result. Sets *ret_res (caller PQclears).
 *
 * In pipeline mode it first sends a Sync, then reads the results of the deferred commands
 * and of this one up to the Sync's PGRES_PIPELINE_SYNC: after an error the server skips
 * to the Sync (PGRES_PIPELINE_ABORTED results), so the first error is the one to report.
 * A command always yields a result before its NULL, so two NULLs in a row mean the
 * connection has nothing more to give (it broke).
 */
static int conn_wait(struct db_conn *c, PGresult **ret_res)
{
	int64_t start = db_now_ms(), deadline = -1;
	PGresult *res = NULL, *err = NULL, *r;
	bool full = false, heard = false, synced = false;
	int nulls = 0, e = 0;

	if (c->pipeline) {
		c->deferred = 0;
		if (!PQpipelineSync(c->pg))
			return conn_error(c, NULL);
	}
	if (c->wait_ms > 0) {
		deadline = start + c->wait_ms;
		full = true;
	}
	if (c->deadline >= 0 && (deadline < 0 || c->deadline < deadline)) {
		deadline = c->deadline;
		full = false;
	}
	atomic_store(&c->wait_since, start);
	while (!synced) {
		e = conn_await(c, deadline, &heard);
		if (e < 0)
			break;
		r = PQgetResult(c->pg);
		if (!r) {
			if (!c->pipeline || ++nulls >= 2 || PQstatus(c->pg) != CONNECTION_OK)
				break;
			continue;
		}
		nulls = 0;
		switch (PQresultStatus(r)) {
		case PGRES_PIPELINE_SYNC:
			synced = true;
			/* fall through */
		case PGRES_PIPELINE_ABORTED:
			PQclear(r);
			break;
		case PGRES_COMMAND_OK:
		case PGRES_TUPLES_OK:
		case PGRES_EMPTY_QUERY:
			PQclear(res);
			res = r;
			break;
		default:
			if (err)
				PQclear(r);
			else
				err = r;
		}
	}
	atomic_store(&c->wait_since, 0);
	if (heard || e >= 0)
		db_heard(c->db);
	if (e < 0 || (c->pipeline && !synced)) {
		/* no answer in time, or the connection broke (mid-pipeline: no Sync result) */
		PQclear(res);
		PQclear(err);
		if (e == -ETIME && full && !heard)
			db_silent(c->db, start);
		if (e == -ETIME)
			return conn_timed_out(c);
		c->broken = true;
		return e < 0 ? e : conn_error(c, NULL);
	}
	if (err || !res) {
		e = conn_error(c, err);
		PQclear(err);
		PQclear(res);
		return e;
	}
	c->last_errno = 0;
	*ret_res = res;
	return 0;
}

int db_exec_simple(struct db_conn *c, const char *sql)
{
	PGresult *res;
	int r, ok;

	if (c->pipeline)
		ok = PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0);
	else
		ok = PQsendQuery(c->pg, sql);
	if (!ok)
		return conn_error(c, NULL);
	r = conn_wait(c, &res);
	if (r >= 0)
		PQclear(res);
	return r;
}

int db_exec_defer(struct db_conn *c, const char *sql)
{
	if (!c->pipeline)
		return db_exec_simple(c, sql);
	if (c->broken)
		return c->last_errno == -ETIME ? -ETIME : -ECONNRESET;
	if (!PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0))
		return conn_error(c, NULL);
	c->deferred++;
	return 0;
}

int db_conn_pipeline_begin(struct db_conn *c)
{
	if (!PQenterPipelineMode(c->pg))
		return conn_error(c, NULL);
	c->pipeline = true;
	c->deferred = 0;
	return 0;
}

void db_conn_pipeline_end(struct db_conn *c)
{
	if (!c->pipeline)
		return;
	if (c->deferred && !c->broken)
		db_exec_simple(c, "SELECT 1"); /* reads what is still queued */
	if (!c->broken && !PQexitPipelineMode(c->pg))
		c->broken = true; /* results left unread: not reusable */
	c->pipeline = false;
	c->deferred = 0;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

/* The prepared statement for sql on c, preparing it on first use; NULL when over the cap. */
static int stmt_get(struct db_conn *c, const char *sql, int n_params, struct db_stmt **ret)
{
	uint64_t h = fnv1a(sql);
	struct db_stmt **bucket = &c->stmts[h % DB_STMT_BUCKETS], *s;
	size_t len;
	PGresult *res;
	int r;

	for (s = *bucket; s; s = s->next) {
		if (s->hash == h && strcmp(s->sql, sql) == 0) {
			*ret = s;
			return 0;
		}
	}
	*ret = NULL;
	if (c->n_stmts >= DB_STMT_MAX)
		return 0;
	len = strlen(sql);
	s = malloc(sizeof(*s) + len + 1);
	if (!s)
		return -ENOMEM;
	s->hash = h;
	snprintf(s->name, sizeof(s->name), "trst_%u", c->stmt_seq++);
	memcpy(s->sql, sql, len + 1);
	if (!PQsendPrepare(c->pg, s->name, sql, n_params, NULL)) {
		free(s);
		return conn_error(c, NULL);
	}
	r = conn_wait(c, &res);
	if (r < 0) {
		free(s);
		return r;
	}
	PQclear(res);
	s->next = *bucket;
	*bucket = s;
	c->n_stmts++;
	*ret = s;
	return 0;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Decodes a bytea text value into out (room for len bytes); returns the byte count. */
static long bytea_decode(const char *in, size_t len, char *out)
{
	size_t n = 0;

	if (len >= 2 && in[0] == '\\' && in[1] == 'x') {
		for (size_t i = 2; i + 1 < len; i += 2) {
			int hi = hexval(in[i]), lo = hexval(in[i + 1]);

			if (hi < 0 || lo < 0)
				return -EPROTO;
			out[n++] = (char)(hi << 4 | lo);
		}
		return (long)n;
	}
	/* escape format: only if a session changed bytea_output behind our back */
	unsigned char *u = PQunescapeBytea((const unsigned char *)in, &n);

	if (!u)
		return -ENOMEM;
	if (n > len) {
		PQfreemem(u);
		return -EPROTO;
	}
	memcpy(out, u, n);
	PQfreemem(u);
	return (long)n;
}

static int64_t affected_rows(const PGresult *res)
{
	const char *status = PQcmdStatus((PGresult *)res);

	if (strncmp(status, "INSERT", 6) && strncmp(status, "UPDATE", 6) &&
	    strncmp(status, "DELETE", 6) && strncmp(status, "MERGE", 5))
		return 0;
	return strtoll(PQcmdTuples((PGresult *)res), NULL, 10);
}

/*
 * Copies res into one allocation: the struct, the pointer and length arrays, then the
 * names and values with a NUL after each. A bytea value never grows when decoded, so its
 * text length bounds its room.
 */
static int rows_copy(const PGresult *res, struct db_rows **ret_rows)
{
	size_t nr = (size_t)PQntuples(res), nc = (size_t)PQnfields(res), cells = nr * nc;
	size_t size = sizeof(struct db_rows) + (cells + nc) * sizeof(char *) +
		      cells * sizeof(size_t);
	struct db_rows *rows;
	char *blob;

	for (size_t j = 0; j < nc; j++)
		size += strlen(PQfname(res, (int)j)) + 1;
	for (size_t i = 0; i < nr; i++)
		for (size_t j = 0; j < nc; j++)
			size += (size_t)PQgetlength(res, (int)i, (int)j) + 1;
	rows = calloc(1, size);
	if (!rows)
		return -ENOMEM;
	rows->n_rows = nr;
	rows->n_cols = nc;
	rows->values = (char **)(rows + 1);
	rows->col_names = rows->values + cells;
	rows->lengths = (size_t *)(rows->col_names + nc);
	rows->affected = affected_rows(res);
	blob = (char *)(rows->lengths + cells);
	for (size_t j = 0; j < nc; j++) {
		size_t len = strlen(PQfname(res, (int)j));

		rows->col_names[j] = memcpy(blob, PQfname(res, (int)j), len + 1);
		blob += len + 1;
	}
	for (size_t i = 0; i < nr; i++) {
		for (size_t j = 0; j < nc; j++) {
			size_t k = i * nc + j, len = (size_t)PQgetlength(res, (int)i, (int)j);
			const char *v = PQgetvalue(res, (int)i, (int)j);

			if (PQgetisnull(res, (int)i, (int)j))
				continue;
			rows->values[k] = blob;
			if (PQftype(res, (int)j) == DB_BYTEA_OID) {
				long n = bytea_decode(v, len, blob);

				if (n < 0) {
					free(rows);
					return (int)n;
				}
				rows->lengths[k] = (size_t)n;
				blob[n] = '\0';
			} else {
				memcpy(blob, v, len);
				blob[len] = '\0';
				rows->lengths[k] = len;
			}
			blob += len + 1;
		}
	}
	*ret_rows = rows;
	return 0;
}

/* Sends sql with its parameters, prepared when the cache has room, and waits for it. */
static int exec_params(struct db_conn *conn, const char *sql, size_t n,
		       const char *const *values, const int *lengths, const int *formats,
		       PGresult **ret_res)
{
	struct db_stmt *stmt;
	int r, ok;

	r = stmt_get(conn, sql, (int)n, &stmt);
	if (r < 0)
		return r;
	if (stmt)
		ok = PQsendQueryPrepared(conn->pg, stmt->name, (int)n, values, lengths, formats,
					 0);
	else
		ok = PQsendQueryParams(conn->pg, sql, (int)n, NULL, values, lengths, formats, 0);
	if (!ok)
		return conn_error(conn, NULL);
	return conn_wait(conn, ret_res);
}

int db_exec(struct db_conn *conn, const char *sql, const struct db_param *params,
	    size_t n_params, struct db_rows **ret_rows)
{
	const char *values_local[16];
	int lengths_local[16], formats_local[16];
	const char **values = values_local;
	int *lengths = lengths_local, *formats = formats_local;
	PGresult *res;
	int r;

	if (!conn || !conn->pg || !sql || (n_params && !params) || n_params > 65535)
		return -EINVAL;
	if (conn->broken)
		return conn->last_errno == -ETIME ? -ETIME : -ECONNRESET;
	if (n_params > 16) {
		values = calloc(n_params, sizeof(*values));
		lengths = calloc(n_params, sizeof(*lengths));
		formats = calloc(n_params, sizeof(*formats));
		if (!values || !lengths || !formats) {
			r = -ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < n_params; i++) {
		if (params[i].is_bytes && params[i].len > INT32_MAX) {
			r = -E2BIG;
			goto out;
		}
		values[i] = params[i].text;
		lengths[i] = params[i].is_bytes ? (int)params[i].len : 0;
		formats[i] = params[i].is_bytes ? 1 : 0;
		if (params[i].is_bytes && !values[i])
			values[i] = ""; /* zero-length bytes are not NULL */
	}
	r = exec_params(conn, sql, n_params, values, lengths, formats, &res);
	if (r >= 0) {
		if (ret_rows)
			r = rows_copy(res, ret_rows);
		PQclear(res);
	}
out:
	if (values != values_local) {
		free(values);
		free(lengths);
		free(formats);
	}
	return r;
}

struct db_rows *db_rows_free(struct db_rows *rows)
{
	free(rows);
	return NULL;
}

const char *db_rows_get(const struct db_rows *rows, size_t row, size_t col)
{
	if (!rows || row >= rows->n_rows || col >= rows->n_cols)
		return NULL;
	return rows->values[row * rows->n_cols + col];
}

/* Takes a free slot, waiting until wait_until (db_now_ms) for one; NULL when none came. */
static struct db_conn *slot_take(struct db *db, int64_t wait_until)
{
	struct timespec until = { .tv_sec = wait_until / 1000,
				  .tv_nsec = (long)(wait_until % 1000) * 1000000 };
	struct db_conn *c = NULL;
	int r = 0;

	pthread_mutex_lock(&db->lock);
	for (;;) {
		/* prefer a connected slot, else an empty one (which connects below) */
		for (int i = 0; i < db->n_conns; i++) {
			struct db_conn *s = &db->conns[i];

			if (s->leased)
				continue;
			if (s->pg) {
				c = s;
				break;
			}
			if (!c)
				c = s;
		}
		if (c || r == ETIMEDOUT)
			break;
		r = pthread_cond_timedwait(&db->returned, &db->lock, &until);
	}
	if (c)
		c->leased = true;
	pthread_mutex_unlock(&db->lock);
	return c;
}

/*
 * Leases a slot (waiting until wait_until), connecting it when needed; deadline (-1: none)
 * bounds every wait of the lease. While PostgreSQL is silent, -ETIME at once (health.c).
 */
static int lease(struct db *db, int64_t wait_until, int64_t deadline, struct db_conn **ret_conn)
{
	struct db_conn *c;
	int r;

	if (atomic_load(&db->silent_since))
		return -ETIME;
	c = slot_take(db, wait_until);
	if (!c)
		return -ETIMEDOUT;
	c->deadline = deadline;
	c->wait_ms = db->statement_timeout_ms;
	if (c->pg && !conn_idle_ok(c))
		db_conn_drop(c);
	if (!c->pg) {
		r = conn_connect(c);
		if (r < 0) {
			db_release(db, c);
			return r;
		}
	}
	c->last_errno = 0;
	*ret_conn = c;
	return 0;
}

int db_acquire(struct db *db, int timeout_ms, struct db_conn **ret_conn)
{
	if (!db || !ret_conn)
		return -EINVAL;
	return lease(db, db_now_ms() + (timeout_ms > 0 ? timeout_ms : 0), -1, ret_conn);
}

int db_acquire_until(struct db *db, int64_t deadline, struct db_conn **ret_conn)
{
	if (!db || !ret_conn || deadline < 0)
		return -EINVAL;
	return lease(db, deadline, deadline, ret_conn);
}

void db_release(struct db *db, struct db_conn *conn)
{
	if (!db || !conn)
		return;
	db_conn_pipeline_end(conn);
	/* a connection left inside a transaction (or mid-statement) is not reusable as is */
	if (conn->pg && (conn->broken || PQstatus(conn->pg) != CONNECTION_OK))
		db_conn_drop(conn);
	else if (conn->pg && PQtransactionStatus(conn->pg) != PQTRANS_IDLE &&
		 (PQtransactionStatus(conn->pg) == PQTRANS_ACTIVE ||
		  db_exec_simple(conn, "ROLLBACK") < 0))
		db_conn_drop(conn);
	conn->deadline = -1;
	pthread_mutex_lock(&db->lock);
	conn->leased = false;
	pthread_cond_signal(&db->returned);
	pthread_mutex_unlock(&db->lock);
}

int db_open(const struct db_config *config, struct db **ret_db)
{
	pthread_condattr_t attr;
	struct db_conn *c;
	struct db *db;
	char *err = NULL;
	PQconninfoOption *opts;
	int r;

	if (!config || !config->dsn || !ret_db || config->max_conns < 1 ||
	    config->max_conns > 1000 || config->connect_timeout_ms < 0 ||
	    config->statement_timeout_ms < 0 || config->writers < 0 ||
	    config->writers > DB_WRITERS_MAX)
		return -EINVAL;
	opts = PQconninfoParse(config->dsn, &err);
	if (!opts) {
		PQfreemem(err); /* the message may quote the DSN, which holds a password */
		return -EINVAL;
	}
	PQconninfoFree(opts);

	db = calloc(1, sizeof(*db));
	if (!db)
		return -ENOMEM;
	db->dsn = strdup(config->dsn);
	db->conns = calloc((size_t)config->max_conns, sizeof(*db->conns));
	if (!db->dsn || !db->conns) {
		db_close(db);
		return -ENOMEM;
	}
	db->n_conns = config->max_conns;
	db->gate = config->gate;
	db->connect_timeout_ms = config->connect_timeout_ms ? config->connect_timeout_ms :
							      DB_CONNECT_DEFAULT_MS;
	db->statement_timeout_ms = config->statement_timeout_ms;
	/* PostgreSQL cancels first, so that only a server that stopped answering reaches ours */
	db->pg_timeout_ms = config->statement_timeout_ms -
			    (config->statement_timeout_ms / 5 < 1000 ? config->statement_timeout_ms / 5 :
								       1000);
	db->n_writers = config->writers ? config->writers : 1;
	for (int i = 0; i < db->n_conns; i++) {
		db->conns[i].db = db;
		db->conns[i].deadline = -1;
	}
	pthread_mutex_init(&db->lock, NULL);
	pthread_mutex_init(&db->wlock, NULL);
	pthread_mutex_init(&db->plock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&db->returned, &attr);
	pthread_cond_init(&db->wwork, &attr);
	pthread_cond_init(&db->pwake, &attr);
	pthread_condattr_destroy(&attr);

	r = db_acquire(db, db->connect_timeout_ms, &c);
	if (r < 0) {
		db_close(db);
		return r;
	}
	db_release(db, c);
	r = db_writer_start(db);
	if (r >= 0)
		r = db_prober_start(db);
	if (r < 0) {
		db_close(db);
		return r;
	}
	*ret_db = db;
	return 0;
}

struct db *db_close(struct db *db)
{
	if (!db)
		return NULL;
	db_prober_stop(db);
	db_writer_stop(db);
	for (int i = 0; db->conns && i < db->n_conns; i++)
		db_conn_drop(&db->conns[i]);
	free(db->conns);
	if (db->dsn) {
		explicit_bzero(db->dsn, strlen(db->dsn));
		free(db->dsn);
	}
	pthread_mutex_destroy(&db->lock);
	pthread_mutex_destroy(&db->wlock);
	pthread_mutex_destroy(&db->plock);
	pthread_cond_destroy(&db->returned);
	pthread_cond_destroy(&db->wwork);
	pthread_cond_destroy(&db->pwake);
	free(db);
	return NULL;
}

/* Sleeps 1 .. 4 * 2^attempt ms, so that retrying transactions do not collide again. */
static void retry_pause(int attempt, unsigned *seed)
{
	long ms = 1 + rand_r(seed) % (4L << attempt);
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

int db_transaction(struct db *db, bool serializable,
		   int (*fn)(struct db_conn *conn, void *ud), void *ud)
{
	unsigned seed = (unsigned)db_now_ms() ^ (unsigned)(uintptr_t)&seed;
	struct db_conn *c;
	int r;

	if (!db || !fn)
		return -EINVAL;
	for (int attempt = 0;; attempt++) {
		r = db_acquire(db, DB_TX_ACQUIRE_MS, &c);
		if (r < 0)
			return r;
		r = db_exec_simple(c, serializable ? "BEGIN ISOLATION LEVEL SERIALIZABLE" :
						     "BEGIN");
		if (r >= 0) {
			int fr = fn(c, ud);

			if (fr >= 0 && PQtransactionStatus(c->pg) == PQTRANS_INERROR)
				fr = c->last_errno ? c->last_errno : -EIO; /* fn ignored it */
			if (fr < 0) {
				if (!c->broken)
					db_exec_simple(c, "ROLLBACK");
				r = fr;
			} else {
				r = db_exec_simple(c, "COMMIT");
				if (r >= 0)
					r = fr;
			}
		}
		db_release(db, c);
		if (r != -EAGAIN || attempt >= DB_TX_RETRIES)
			return r;
		retry_pause(attempt, &seed);
	}
}
