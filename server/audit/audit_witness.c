/*
 * Witnesses of the audit chain's head (audit.h, "Witnesses"). Someone who can write the
 * database can delete the newest records together with their checkpoints and move the
 * head row back: what is left is a consistent, shorter chain that every check on the
 * tables passes. So the newest checkpoint of each tenant is also kept where that someone
 * cannot reach: appended to a local file, and published as event audit.checkpoint through
 * the outbox (the relay puts it in JetStream). Verification reads the newest witness back
 * from the file (its last MiB) and from JetStream (when it answers within two seconds)
 * and checks that it is signed by this database's audit key, that its record exists (else
 * the tail was cut) and that the record's hash is the witnessed one (else the chain was
 * rewritten). A witness is a checkpoint that is already signed: it needs no key of its
 * own, and a forged line cannot pass as one.
 *
 * The file: one JSON object per line, {"tenant_id", "sequence", "hash", "key_version",
 * "signature", "time"} (hash and signature in hex, time the checkpoint's), mode 0600 in a
 * folder made 0700, each line fsync'd. A line is written only for a checkpoint newer than
 * the newest the file holds, so the file grows by one short line per interval at most.
 * Only checkpoints that committed are witnessed (they are read from the table), so a
 * witness never names a record that a rolled-back batch never wrote.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "audit-internal.h"
#include "bus.h"
#include "db.h"

#define SIG_MAX 64
#define TAIL_BYTES (1 << 20) /* of the file read by verify */
#define NATS_WAIT_MS 2000    /* verify's patience with JetStream */
#define EVENT_TYPE "audit.checkpoint"

/* What was witnessed last for a tenant, by this server. */
struct audit_seen {
	char tenant[AUDIT_UUID_LEN + 1];
	int64_t file_seq;  /* newest sequence in the file (read from it at first use) */
	int64_t event_seq; /* newest sequence published by this server */
};

/* One checkpoint, as witnessed. */
struct witness {
	char tenant[AUDIT_UUID_LEN + 1];
	int64_t sequence;
	uint8_t hash[AUDIT_HASH_LEN];
	int key_version;
	uint8_t sig[SIG_MAX];
	size_t sig_len;
	char time[AUDIT_TIME_LEN + 1];
};

/* The record ----------------------------------------------------------------------------- */

static json_t *witness_json(const struct witness *w)
{
	char hash[2 * AUDIT_HASH_LEN + 1], sig[2 * SIG_MAX + 1];

	audit_hex(w->hash, AUDIT_HASH_LEN, hash);
	audit_hex(w->sig, w->sig_len, sig);
	return json_pack("{s:s, s:I, s:s, s:i, s:s, s:s}", "tenant_id", w->tenant, "sequence",
			 (json_int_t)w->sequence, "hash", hash, "key_version", w->key_version,
			 "signature", sig, "time", w->time);
}

/* Decodes exactly want bytes of hex (want 0: up to max). -EPROTO otherwise. */
static int unhex(const char *s, uint8_t *out, size_t want, size_t max, size_t *ret_n)
{
	long n = 0;
	unsigned char *b = s && *s ? OPENSSL_hexstr2buf(s, &n) : NULL;
	int r = -EPROTO;

	if (b && n > 0 && (want ? (size_t)n == want : (size_t)n <= max)) {
		memcpy(out, b, (size_t)n);
		if (ret_n)
			*ret_n = (size_t)n;
		r = 0;
	}
	OPENSSL_free(b);
	return r;
}

static int witness_parse(const json_t *o, struct witness *w)
{
	const char *tenant = json_string_value(json_object_get(o, "tenant_id"));
	const char *time = json_string_value(json_object_get(o, "time"));
	json_t *seq = json_object_get(o, "sequence"), *ver = json_object_get(o, "key_version");

	memset(w, 0, sizeof(*w));
	if (!json_is_integer(seq) || !json_is_integer(ver) || json_integer_value(seq) <= 0 ||
	    !tenant || audit_tenant(tenant, w->tenant) < 0 ||
	    unhex(json_string_value(json_object_get(o, "hash")), w->hash, AUDIT_HASH_LEN, 0, NULL) <
		    0 ||
	    unhex(json_string_value(json_object_get(o, "signature")), w->sig, 0, SIG_MAX,
		  &w->sig_len) < 0)
		return -EPROTO;
	w->sequence = json_integer_value(seq);
	w->key_version = (int)json_integer_value(ver);
	snprintf(w->time, sizeof(w->time), "%s", time ? time : "");
	return 0;
}

/* The file ------------------------------------------------------------------------------ */

/* Makes the folders of path (0700) that are missing. */
static int make_parents(const char *path)
{
	char *copy = strdup(path), *dir;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	dir = dirname(copy);
	if (strcmp(dir, ".") && strcmp(dir, "/") && access(dir, F_OK) < 0) {
		r = make_parents(dir);
		if (r >= 0 && mkdir(dir, 0700) < 0 && errno != EEXIST)
			r = -errno;
	}
	free(copy);
	return r;
}

static int file_append(const char *path, const struct witness *w)
{
	json_t *o = witness_json(w);
	char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
	size_t len = line ? strlen(line) : 0;
	int fd = -1, r = -ENOMEM;

	json_decref(o);
	if (!line)
		return r;
	line[len] = '\n'; /* json_dumps left room for its NUL: write the newline instead */
	r = make_parents(path);
	if (r >= 0) {
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		r = fd < 0 ? -errno : 0;
	}
	if (r >= 0 && (write(fd, line, len + 1) != (ssize_t)(len + 1) || fsync(fd) < 0))
		r = errno ? -errno : -EIO;
	if (fd >= 0)
		close(fd);
	free(line);
	return r;
}

/* The newest witness of tenant in the last TAIL_BYTES of path: 0, -ENOENT, -errno. */
static int file_newest(const char *path, const char *tenant, struct witness *ret)
{
	struct stat st;
	char *buf = NULL, *line, *save = NULL;
	off_t from;
	ssize_t n;
	int fd, r = -ENOENT;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	from = st.st_size > TAIL_BYTES ? st.st_size - TAIL_BYTES : 0;
	buf = malloc((size_t)(st.st_size - from) + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	n = pread(fd, buf, (size_t)(st.st_size - from), from);
	if (n < 0) {
		r = -errno;
		goto out;
	}
	buf[n] = '\0';
	line = strtok_r(buf, "\n", &save);
	if (from > 0 && line) /* the first line of a tail may be cut */
		line = strtok_r(NULL, "\n", &save);
	for (; line; line = strtok_r(NULL, "\n", &save)) {
		json_t *o = json_loads(line, 0, NULL);
		struct witness w;

		/* a line cut by a crash, or not ours, is no witness */
		if (o && witness_parse(o, &w) == 0 && strcmp(w.tenant, tenant) == 0 &&
		    (r == -ENOENT || w.sequence > ret->sequence)) {
			*ret = w;
			r = 0;
		}
		json_decref(o);
	}
out:
	free(buf);
	close(fd);
	return r;
}

/* JetStream: the newest audit.checkpoint event of tenant. 0, -ENOENT, -errno. */
static int stream_newest(struct audit *a, const char *tenant, struct witness *ret)
{
	char *text = NULL;
	json_t *env;
	int r;

	r = bus_last_event(a->nats_url, &a->nats_gate, a->nats_stream, EVENT_TYPE, NATS_WAIT_MS,
			   &text);
	if (r < 0)
		return r;
	env = json_loads(text, 0, NULL);
	free(text);
	r = env ? witness_parse(json_object_get(env, "data"), ret) : -EPROTO;
	if (r >= 0 && strcmp(ret->tenant, tenant) != 0)
		r = -ENOENT; /* another tenant's checkpoint is the stream's last: none to compare */
	json_decref(env);
	return r;
}

/* Witnessing --------------------------------------------------------------------------- */

static struct audit_seen *seen_of(struct audit *a, const char *tenant)
{
	struct audit_seen *ns;
	struct witness w;

	for (size_t i = 0; i < a->n_seen; i++)
		if (strcmp(a->seen[i].tenant, tenant) == 0)
			return &a->seen[i];
	ns = realloc(a->seen, (a->n_seen + 1) * sizeof(*ns));
	if (!ns)
		return NULL;
	a->seen = ns;
	ns = &a->seen[a->n_seen++];
	memset(ns, 0, sizeof(*ns));
	snprintf(ns->tenant, sizeof(ns->tenant), "%s", tenant);
	if (a->witness_file && file_newest(a->witness_file, tenant, &w) == 0)
		ns->file_seq = w.sequence;
	return ns;
}

static int publish_change(struct db_tx *tx, void *ud)
{
	const struct witness *w = ud;
	json_t *o = witness_json(w);
	char *data = o ? json_dumps(o, JSON_COMPACT) : NULL;
	int r = data ? bus_event(tx, w->tenant, EVENT_TYPE, NULL, data) : -ENOMEM;

	free(data);
	json_decref(o);
	return r;
}

static const char newest_sql[] =
	"SELECT DISTINCT ON (tenant_id) tenant_id, sequence, hash, key_version, signature, "
	"to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
	"FROM audit_checkpoints ORDER BY tenant_id, sequence DESC";

/* The newest checkpoint of each tenant. */
static int newest_checkpoints(struct audit *a, struct witness **ret, size_t *ret_n)
{
	struct db_conn *conn = NULL;
	struct db_rows *rows = NULL;
	struct witness *w;
	size_t n = 0;
	int r;

	r = db_acquire(a->db, 5000, &conn);
	if (r < 0)
		return r;
	r = db_exec(conn, newest_sql, NULL, 0, &rows);
	db_release(a->db, conn);
	if (r < 0)
		return r;
	w = calloc(rows->n_rows + 1, sizeof(*w));
	r = w ? 0 : -ENOMEM;
	for (size_t i = 0; r >= 0 && i < rows->n_rows; i++) {
		const char *t = db_rows_get(rows, i, 0), *s = db_rows_get(rows, i, 1);
		const char *h = db_rows_get(rows, i, 2), *v = db_rows_get(rows, i, 3);
		const char *sig = db_rows_get(rows, i, 4), *time = db_rows_get(rows, i, 5);
		size_t sig_len = rows->lengths[i * rows->n_cols + 4];

		if (!t || !s || !h || !v || !sig ||
		    rows->lengths[i * rows->n_cols + 2] != AUDIT_HASH_LEN || sig_len > SIG_MAX ||
		    audit_tenant(t, w[n].tenant) < 0) {
			r = -EPROTO;
			break;
		}
		w[n].sequence = strtoll(s, NULL, 10);
		w[n].key_version = atoi(v);
		memcpy(w[n].hash, h, AUDIT_HASH_LEN);
		memcpy(w[n].sig, sig, sig_len);
		w[n].sig_len = sig_len;
		snprintf(w[n].time, sizeof(w[n].time), "%s", time ? time : "");
		n++;
	}
	db_rows_free(rows);
	if (r < 0) {
		free(w);
		return r;
	}
	*ret = w;
	*ret_n = n;
	return 0;
}

int audit_witness_now(struct audit *a)
{
	struct witness *w = NULL;
	size_t n = 0;
	int r, done = 0, err = 0;

	if (!a)
		return -EINVAL;
	r = newest_checkpoints(a, &w, &n);
	if (r < 0)
		return r;
	pthread_mutex_lock(&a->witness_mu);
	for (size_t i = 0; i < n; i++) {
		struct audit_seen *s = seen_of(a, w[i].tenant);
		bool any = false;

		if (!s) {
			err = -ENOMEM;
			break;
		}
		if (a->witness_file && w[i].sequence > s->file_seq) {
			r = file_append(a->witness_file, &w[i]);
			if (r >= 0)
				s->file_seq = w[i].sequence, any = true;
			else
				err = err ? err : r;
		}
		if (w[i].sequence > s->event_seq) {
			/* through the outbox, as every event: JetStream gets it once NATS is up */
			r = db_write(a->db, publish_change, &w[i], 10000);
			if (r >= 0)
				s->event_seq = w[i].sequence, any = true;
			else
				err = err ? err : r;
		}
		done += any;
	}
	pthread_mutex_unlock(&a->witness_mu);
	free(w);
	return err < 0 ? err : done;
}

void audit_witness_free(struct audit *a)
{
	free(a->seen);
	a->seen = NULL;
	a->n_seen = 0;
	free(a->witness_file);
	free(a->nats_url);
	free(a->nats_stream);
	a->witness_file = a->nats_url = a->nats_stream = NULL;
}

/* Verifying ----------------------------------------------------------------------------- */

/* Compares one witness w (read from src) with the chain whose head is head. */
static int check_one(struct audit *a, struct db_conn *conn, const char *tenant, int64_t head,
		     const struct witness *w, const char *src, struct audit_verify_result *res)
{
	char seq[24], hex[2 * AUDIT_HASH_LEN + 1];
	struct db_param p[2] = { DB_TEXT(tenant), DB_TEXT(seq) };
	struct db_rows *rows = NULL;
	int r;

	audit_hex(w->hash, AUDIT_HASH_LEN, hex);
	r = audit_key_verify(a, conn, w->key_version, tenant, w->sequence, w->hash, w->sig,
			     w->sig_len);
	if (r == -EBADMSG || r == -ENOKEY) {
		audit_verify_bad(res, w->sequence,
				 "the checkpoint at sequence %" PRId64 " witnessed in %s is not "
				 "signed by an audit key of this database (a witness of another "
				 "database, or the audit keys were replaced)",
				 w->sequence, src);
		return 0;
	}
	if (r < 0)
		return r;
	if (w->sequence > head) {
		audit_verify_bad(
			res, head + 1,
			"records missing after sequence %" PRId64 ": the checkpoint of %s "
			"witnessed in %s expects the head at sequence %" PRId64
			" or later, hash %s; the newest records and their checkpoints were "
			"deleted",
			head, w->time[0] ? w->time : "(no time)", src, w->sequence, hex);
		return 0;
	}
	snprintf(seq, sizeof(seq), "%" PRId64, w->sequence);
	r = db_exec(conn, "SELECT hash FROM audit_events WHERE tenant_id = $1 AND sequence = $2", p,
		    2, &rows);
	if (r < 0)
		return r;
	if (rows->n_rows != 1 || rows->lengths[0] != AUDIT_HASH_LEN ||
	    memcmp(db_rows_get(rows, 0, 0), w->hash, AUDIT_HASH_LEN) != 0)
		audit_verify_bad(res, w->sequence,
				 "record %" PRId64 " does not match the checkpoint witnessed in %s "
				 "(hash %s): the chain was rewritten after it",
				 w->sequence, src, hex);
	db_rows_free(rows);
	return 0;
}

int audit_witness_check(struct audit *a, struct db_conn *conn, const char *tenant, int64_t head,
			struct audit_verify_result *res)
{
	struct witness w[2];
	const char *src[2], *names[2];
	char note[sizeof(res->detail)] = "", matched[64] = "";
	size_t n = 0, nn = 0;
	int r;

	if (a->witness_file) {
		r = file_newest(a->witness_file, tenant, &w[n]);
		if (r == 0) {
			src[n] = "the local checkpoint file";
			names[n++] = "local file";
		} else {
			snprintf(note, sizeof(note),
				 "the local checkpoint file holds no witness%s%s",
				 r == -ENOENT ? "" : ": ", r == -ENOENT ? "" : strerror(-r));
		}
	}
	if (a->nats_url) {
		r = stream_newest(a, tenant, &w[n]);
		if (r == 0) {
			src[n] = "NATS (event " EVENT_TYPE ")";
			names[n++] = "NATS";
		} else {
			size_t used = strlen(note);

			snprintf(note + used, sizeof(note) - used,
				 "%sno witness read from NATS (%s)", used ? "; " : "",
				 r == -ENOENT ? "none published" : strerror(-r));
		}
	}
	for (size_t i = 0; i < n; i++) {
		r = check_one(a, conn, tenant, head, &w[i], src[i], res);
		if (r < 0 || !res->ok)
			return r < 0 ? r : 0;
		if (w[i].sequence > res->witnessed)
			res->witnessed = w[i].sequence;
		nn += (size_t)snprintf(matched + nn, sizeof(matched) - nn, "%s%s", nn ? ", " : "",
				       names[i]);
	}
	if (n) {
		size_t used = strlen(note);
		char first[sizeof(note)];

		snprintf(first, sizeof(first), "%s", note);
		snprintf(note, sizeof(note),
			 "the newest witnessed checkpoint (sequence %" PRId64
			 ", %s) matches%s%.300s",
			 res->witnessed, matched, used ? "; " : "", first);
	}
	snprintf(res->detail, sizeof(res->detail), "%s", note);
	return 0;
}
