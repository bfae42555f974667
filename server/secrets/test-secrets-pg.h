#pragma once
/*
 * The fixture the PostgreSQL tests of the secret store share (test-secrets-pg-env.c): one
 * database, KEK, audit, bus, a served store (every version) and a domain-only store
 * (retention 3), the server's log in a temporary file, the libtrstctl calls as rows of
 * struct res, and the final scan for every value written. Test files only.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "audit.h"
#include "bus.h"
#include "db.h"
#include "kek.h"
#include "rpc.h"
#include "secrets-internal.h"
#include "secrets.h"
#include "test-serve.h"
#include "trstctl-client.h"
#include "trstctl-client-gen.h"

#define MAX_VALUE 4096
#define MAX_VALUES 4096

struct secrets_pg_env {
	struct db *db;
	struct kek *kek;
	struct audit *a;
	struct bus *bus;
	struct secrets *s;	 /* served, keeps every version */
	struct secrets *s3;	 /* domain only, retention 3 */
	struct rpc_test_serve t; /* serves s; t.cl calls it */
	char log_path[64];
	int saved_stderr;
	pthread_mutex_t lock;
	char *values[MAX_VALUES]; /* every value written, for the final scan */
	size_t n_values;
	size_t scan_min_rows; /* audit records and events the final scan expects at least */
};
extern struct secrets_pg_env E;

/* A fresh distinctive value, remembered for the scan. Returned string is owned by E. */
const char *new_value(const char *tag);
void exec(const char *sql);
struct db_rows *query(const char *sql);
int64_t count(const char *sql);
/* cmocka group setup and teardown: the fixture above (-1 without TRSTCTL_POSTGRES_DSN). */
int setup(void **state);
int teardown(void **state);

/* One call's outcome: status code and message, and what the reply said. */
struct res {
	int code;
	char msg[512];
	int64_t version;
	bool deleted;
	char value[MAX_VALUE + 2];
	size_t value_len;
	int64_t create_s;
	size_t n_labels;
	char labels[256]; /* "k=v,k=v" */
};

/* labels: NULL-terminated "key", "value" pairs, or NULL. */
struct res c_create(const char *name, const char *value, size_t len, const char *rid,
		    const char *const *labels);
struct res c_rotate(const char *name, const char *value, size_t len, int64_t expected,
		    const char *rid);
struct res c_get(const char *name, int64_t version);
/* op: "delete", "recover", "destroy". */
struct res c_simple(const char *op, const char *name, int64_t version, const char *rid);
/* "1e,2d,3e": each version and e(nabled)/d(estroyed). */
struct res c_versions(const char *name);
/* Names of one page, comma-separated, into value; next token into msg when OK. */
struct res c_list(const char *prefix, int page_size, const char *token, bool deleted);

/* The last test of each file: no form of any value written is in the log, the audit
 * records, the events or the sealed bytes. */
void test_no_values_anywhere(void **state);
