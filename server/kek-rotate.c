/*
 * `trstctl kek rotate --new-file PATH`: re-wraps the data key of every sealed value under a
 * new KEK (kek_rewrap: the value nonce, ciphertext and tag stay as they are, so no value is
 * ever decrypted here) and then makes the new KEK the one the database accepts.
 *
 * Steps, each its own transaction:
 *   1. kek_check: the stored row must be the old KEK's (a fresh rotation), the marker
 *      "rotating-to-<new id>" (an interrupted one) or the new KEK's (already done). A fresh
 *      rotation replaces the old row with the marker, so that from here on a server refuses
 *      to start with either KEK ("the KEK does not match this database") until the rotation
 *      is finished: no server can seal under the old KEK or meet a half-rotated table.
 *   2. Per table that holds kek_seal output, batches of BATCH rows whose header does not
 *      carry the new KEK id (bytes 4..11 of the blob), locked, re-wrapped and updated. A
 *      blob already under the new id is skipped, which makes a second run harmless.
 *   3. The marker becomes the new KEK's id and check value, together with an audit record
 *      kek.rotated (audit_open with the new KEK also proves the audit key opens under it).
 *
 * Assumes every server on the database is stopped, and that the configuration still names
 * the old KEK. Blobs under a third KEK id make it stop with the row named.
 */
#include "kek-rotate.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "change.h"
#include "cfg.h"
#include "crypto.h"
#include "db.h"

enum {
	BATCH = 200,
	WRITE_TIMEOUT_MS = 30000
};

#define MARKER_PREFIX "rotating-to-"

/* The columns that hold kek_seal output (grep the migrations for "sealed"). */
static const struct sealed_table {
	const char *name;  /* table; its column is "sealed" */
	const char *label; /* SQL naming a row in messages (never a value) */
} tables[] = {
	{ "sealed_keys", "kind || '/' || name || ' version ' || version" },
	{ "secret_versions", "name || ' version ' || version" },
};

#define N_TABLES (sizeof(tables) / sizeof(tables[0]))

enum check_state {
	CHECK_FRESH,
	CHECK_RESUME,
	CHECK_DONE
};

struct rotation {
	struct kek *old_k, *new_k;
	uint8_t new_check[KEK_CHECK_LEN];
	char marker[sizeof(MARKER_PREFIX) + 2 * KEK_ID_LEN];
	enum check_state state;
	const struct sealed_table *t; /* table of the current batch */
	long batch;		      /* rows re-wrapped by the current batch attempt */
	long rewrapped[N_TABLES];
	long already[N_TABLES];
	char bad_row[256]; /* the row a batch failed on */
	char msg[256];	   /* why step 1 refused */
};

/* Step 1 ------------------------------------------------------------------------------- */

static int check_step(struct db_conn *conn, void *ud)
{
	struct rotation *rot = ud;
	const struct db_param p[] = { DB_TEXT(DB_DEFAULT_TENANT), DB_TEXT(rot->marker),
				      DB_BYTES(rot->new_check, sizeof(rot->new_check)) };
	struct db_rows *rows = NULL;
	int found = -1, r;

	r = db_exec(conn,
		    "SELECT kek_id, check_value FROM kek_check WHERE tenant_id = $1 FOR UPDATE", p,
		    1, &rows);
	if (r < 0)
		return r;
	for (size_t i = 0; i < rows->n_rows && found < 0; i++) {
		const char *id = rows->values[i * 2];
		const uint8_t *v = (const uint8_t *)rows->values[i * 2 + 1];
		size_t n = rows->lengths[i * 2 + 1];

		if (strcmp(id, kek_id(rot->old_k)) == 0 && kek_verify_check(rot->old_k, v, n) == 0)
			found = CHECK_FRESH;
		else if (strcmp(id, rot->marker) == 0 && kek_verify_check(rot->new_k, v, n) == 0)
			found = CHECK_RESUME;
		else if (strcmp(id, kek_id(rot->new_k)) == 0 &&
			 kek_verify_check(rot->new_k, v, n) == 0)
			found = CHECK_DONE;
	}
	r = rows->n_rows == 0 ? -ENOENT : -EKEYREJECTED;
	db_rows_free(rows);
	if (found < 0) {
		snprintf(
			rot->msg, sizeof(rot->msg), "%s",
			r == -ENOENT ?
				"this database has no KEK check value yet (start a server on it once)" :
				"the KEK does not match this database (neither the configured KEK "
				"nor --new-file)");
		return r;
	}
	rot->state = (enum check_state)found;
	if (rot->state != CHECK_FRESH)
		return 0;
	r = db_exec(conn, "DELETE FROM kek_check WHERE tenant_id = $1", p, 1, NULL);
	if (r >= 0)
		r = db_exec(conn,
			    "INSERT INTO kek_check (tenant_id, kek_id, check_value) "
			    "VALUES ($1, $2, $3)",
			    p, 3, NULL);
	return r;
}

/* Step 2 ------------------------------------------------------------------------------- */

static int count_already(struct db_conn *conn, void *ud)
{
	struct rotation *rot = ud;
	const struct db_param p[] = { DB_TEXT(kek_id(rot->new_k)) };
	struct db_rows *rows = NULL;
	char sql[256];
	int r;

	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM %s WHERE sealed IS NOT NULL "
		 "AND encode(substring(sealed FROM 5 FOR %d), 'hex') = $1",
		 rot->t->name, KEK_ID_LEN);
	r = db_exec(conn, sql, p, 1, &rows);
	if (r < 0)
		return r;
	rot->already[rot->t - tables] = strtol(rows->values[0], NULL, 10);
	db_rows_free(rows);
	return 0;
}

/* One batch: up to BATCH rows not yet under the new KEK, locked and re-wrapped. */
static int rewrap_batch(struct db_conn *conn, void *ud)
{
	struct rotation *rot = ud;
	char limit[16], sel[512], upd[128];
	const struct db_param p[] = { DB_TEXT(kek_id(rot->new_k)), DB_TEXT(limit) };
	struct db_rows *rows = NULL;
	int r = 0;

	rot->batch = 0; /* db_transaction may run this again after a serialization failure */
	snprintf(limit, sizeof(limit), "%d", BATCH);
	snprintf(sel, sizeof(sel),
		 "SELECT ctid::text, sealed, %s FROM %s WHERE sealed IS NOT NULL "
		 "AND encode(substring(sealed FROM 5 FOR %d), 'hex') <> $1 "
		 "ORDER BY ctid LIMIT $2::int FOR UPDATE",
		 rot->t->label, rot->t->name, KEK_ID_LEN);
	snprintf(upd, sizeof(upd), "UPDATE %s SET sealed = $1 WHERE ctid = $2::tid", rot->t->name);
	r = db_exec(conn, sel, p, 2, &rows);
	if (r < 0)
		return r;
	for (size_t i = 0; i < rows->n_rows && r >= 0; i++) {
		const char *const *v = (const char *const *)rows->values + i * 3;
		uint8_t *out = NULL;
		size_t n = 0;

		r = kek_rewrap(rot->old_k, rot->new_k, (const uint8_t *)v[1],
			       rows->lengths[i * 3 + 1], &out, &n);
		if (r < 0) {
			snprintf(rot->bad_row, sizeof(rot->bad_row), "%s %s", rot->t->name,
				 v[2] ? v[2] : "?");
			break;
		}
		const struct db_param u[] = { DB_BYTES(out, n), DB_TEXT(v[0]) };

		r = db_exec(conn, upd, u, 2, NULL);
		free(out);
		if (r >= 0)
			rot->batch++;
	}
	db_rows_free(rows);
	return r < 0 ? r : (int)rot->batch;
}

static int rewrap_table(struct db *db, struct rotation *rot, const struct sealed_table *t)
{
	int r;

	rot->t = t;
	r = db_transaction(db, false, count_already, rot);
	while (r >= 0) {
		r = db_transaction(db, false, rewrap_batch, rot);
		if (r > 0)
			rot->rewrapped[t - tables] += r;
		if (r == 0)
			break;
	}
	return r;
}

/* Step 3 ------------------------------------------------------------------------------- */

static int finish_change(struct db_tx *tx, void *ud)
{
	struct rotation *rot = ud;
	uint8_t *check = rot->new_check;
	const struct db_param p[] = { DB_TEXT(DB_DEFAULT_TENANT), DB_TEXT(kek_id(rot->new_k)),
				      DB_BYTES(check, KEK_CHECK_LEN) };
	char data[512];
	size_t off;
	int r;

	off = (size_t)snprintf(data, sizeof(data), "{\"from\":\"%s\",\"to\":\"%s\",\"rewrapped\":{",
			       kek_id(rot->old_k), kek_id(rot->new_k));
	for (size_t i = 0; i < N_TABLES && off < sizeof(data); i++)
		off += (size_t)snprintf(data + off, sizeof(data) - off, "%s\"%s\":%ld",
					i ? "," : "", tables[i].name, rot->rewrapped[i]);
	if (off < sizeof(data))
		snprintf(data + off, sizeof(data) - off, "}}");

	/* audit only: a KEK rotation is no event for consumers */
	const struct change_record rec = { .type = "kek.rotated",
					   .actor = "trstctl kek rotate",
					   .resource = kek_id(rot->new_k),
					   .data_json = data,
					   .no_event = true };

	r = db_tx_exec(tx, "DELETE FROM kek_check WHERE tenant_id = $1", p, 1, NULL);
	if (r >= 0)
		r = db_tx_exec(tx,
			       "INSERT INTO kek_check (tenant_id, kek_id, check_value) "
			       "VALUES ($1, $2, $3)",
			       p, 3, NULL);
	if (r >= 0)
		r = change_record(tx, &rec);
	return r;
}

/* The command --------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: trstctl kek rotate --new-file PATH\n"
		"  Re-wraps every sealed value's data key under the KEK in PATH (32 bytes, the\n"
		"  same file rules as TRSTCTL_SECRETS_KEK_FILE). Stop every server first; the\n"
		"  configuration names the current KEK. Afterwards set TRSTCTL_SECRETS_KEK_FILE\n"
		"  to PATH. Running it again finishes an interrupted rotation.\n"
		"  Operator command: it works on the database itself (TRSTCTL_POSTGRES_DSN) with\n"
		"  both KEKs; the server's configuration is read for it.\n");
}

static int load(const char *what, const char *path, struct kek **ret)
{
	char err[512];
	int r = kek_load(path, false, ret, NULL, err, sizeof(err));

	if (r < 0)
		fprintf(stderr, "trstctl: kek rotate: %s: %s\n", what, err);
	return r;
}

static int rotate(struct db *db, struct rotation *rot, const char *new_file)
{
	struct audit *audit = NULL;
	long total = 0;
	int r;

	r = db_transaction(db, false, check_step, rot);
	if (r < 0) {
		fprintf(stderr, "trstctl: kek rotate: %s\n", rot->msg[0] ? rot->msg : strerror(-r));
		return r;
	}
	printf("kek rotate: %s -> %s%s\n", kek_id(rot->old_k), kek_id(rot->new_k),
	       rot->state == CHECK_RESUME ? " (finishing an interrupted rotation)" :
	       rot->state == CHECK_DONE	  ? " (already rotated; checking)" :
					    "");
	for (size_t i = 0; i < N_TABLES; i++) {
		r = rewrap_table(db, rot, &tables[i]);
		if (r < 0) {
			fprintf(stderr,
				"trstctl: kek rotate: %s%s%s; run the command again to "
				"finish the rotation\n",
				rot->bad_row[0] ? rot->bad_row : tables[i].name, ": ",
				kek_strerror(r) ? kek_strerror(r) : strerror(-r));
			return r;
		}
		total += rot->rewrapped[i];
		printf("%s: re-wrapped %ld, already under the new KEK %ld\n", tables[i].name,
		       rot->rewrapped[i], rot->already[i]);
	}
	if (rot->state == CHECK_DONE && total == 0) {
		printf("nothing to do: the database is under KEK %s\n", kek_id(rot->new_k));
		return 0;
	}
	r = audit_open(db, rot->new_k, NULL, &audit);
	if (r >= 0)
		r = db_write(db, finish_change, rot, WRITE_TIMEOUT_MS);
	audit_close(audit);
	if (r < 0) {
		fprintf(stderr,
			"trstctl: kek rotate: cannot store the new KEK check value: %s; "
			"run the command again to finish the rotation\n",
			kek_strerror(r) ? kek_strerror(r) : strerror(-r));
		return r;
	}
	printf("kek_check: now %s; set TRSTCTL_SECRETS_KEK_FILE=%s before starting a server\n",
	       kek_id(rot->new_k), new_file);
	return 0;
}

int kek_rotate_cli(int argc, char **argv, const struct cfg *c)
{
	static const struct option opts[] = { { "new-file", required_argument, NULL, 'n' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	struct db_config dc = { .max_conns = 3, .connect_timeout_ms = 5000 };
	struct rotation rot = { 0 };
	const char *new_file = NULL;
	struct db *db = NULL;
	int o, r;

	if (argc < 2 || strcmp(argv[1], "rotate") != 0) {
		usage(stderr);
		return 2;
	}
	optind = 1;
	while ((o = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
		if (o == 'n') {
			new_file = optarg;
		} else if (o == 'h') {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!new_file || optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	dc.dsn = c->postgres.dsn;
	if (load("the configured KEK (TRSTCTL_SECRETS_KEK_FILE)", c->secrets.kek_file, &rot.old_k) <
	    0)
		return 1;
	r = load("--new-file", new_file, &rot.new_k);
	if (r >= 0 && strcmp(kek_id(rot.old_k), kek_id(rot.new_k)) == 0) {
		fprintf(stderr,
			"trstctl: kek rotate: --new-file holds the configured KEK (%s): "
			"nothing to rotate to\n",
			kek_id(rot.new_k));
		r = -EINVAL;
	}
	if (r >= 0)
		r = kek_check_value(rot.new_k, rot.new_check);
	if (r >= 0) {
		snprintf(rot.marker, sizeof(rot.marker), MARKER_PREFIX "%s", kek_id(rot.new_k));
		r = db_open(&dc, &db);
		if (r < 0)
			fprintf(stderr, "trstctl: kek rotate: cannot open the database: %s\n",
				strerror(-r));
	}
	if (r >= 0)
		r = rotate(db, &rot, new_file);
	db_close(db);
	kek_free(rot.old_k);
	kek_free(rot.new_k);
	return r < 0 ? 1 : 0;
}
