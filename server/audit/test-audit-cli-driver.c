/*
 * Test driver for `trstctl audit ...` (test-audit-cli.sh): `seed N` migrates the database of
 * TRSTCTL_POSTGRES_DSN and writes N audited changes through a server-mode audit (KEK of
 * 32 bytes 0x42, checkpoint every 10); anything else is handed to audit_cli() as argv.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "cfg.h"
#include "db.h"
#include "kek.h"

static int seed_fn(struct db_tx *tx, void *ud)
{
	struct audit_entry e = { .type = "cli.seeded",
				 .actor = "tok_cli tester",
				 .resource = ud,
				 .data_json = "{\"n\":1}" };

	return audit_record(tx, &e);
}

static int seed(int n)
{
	struct db_config dc = { .dsn = getenv("TRSTCTL_POSTGRES_DSN"),
				.max_conns = 4,
				.connect_timeout_ms = 5000 };
	struct audit_config ac = { .checkpoint_every = 10, .checkpoint_interval_ms = -1 };
	uint8_t key[KEK_LEN];
	struct kek *kek = NULL;
	struct db *db = NULL;
	struct audit *a = NULL;
	int r;

	memset(key, 0x42, sizeof(key));
	r = db_open(&dc, &db);
	if (r >= 0)
		r = db_migrate(db, NULL);
	if (r >= 0)
		r = kek_new(key, sizeof(key), &kek);
	if (r >= 0)
		r = audit_open(db, kek, &ac, &a);
	for (int i = 0; r >= 0 && i < n; i++)
		r = db_write(db, seed_fn, "things/cli", 10000);
	audit_close(a);
	db_close(db);
	kek_free(kek);
	if (r < 0)
		fprintf(stderr, "seed: %s\n", strerror(-r));
	return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct cfg c;

	if (argc >= 3 && strcmp(argv[1], "seed") == 0)
		return seed(atoi(argv[2]));
	memset(&c, 0, sizeof(c));
	c.postgres.dsn = getenv("TRSTCTL_POSTGRES_DSN");
	return audit_cli(argc - 1, argv + 1, &c);
}
