/*
 * Configuration loading. One table (cfg_settings) names every setting once: its environment
 * variable, its JSON key, its type, where it lives in struct cfg, its default and how it is
 * redacted. Loading applies the defaults, then the JSON file named by TRSTCTL_CONFIG_FILE
 * (parsed strictly: unknown or duplicate keys are errors), then the environment; an empty
 * variable never overrides. --check-config prints the table in order, and the docs test
 * compares the table with docs/configuration.md. Nothing here reads getenv or logs; the one
 * fact of the host it reads is its name (a default of server.tls.sans).
 */
#include "cfg.h"
#include "cfg-internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net.h"

enum cfg_type {
	T_STR,
	T_BOOL,
	T_INT,
	T_I64,
	T_DUR,
	T_LIST,
	T_ENUM
};
enum cfg_redact {
	R_NONE,
	R_SECRET,
	R_DSN,
	R_URL,
	R_HEADERS
};

struct cfg_setting {
	const char *env;
	const char *key;
	enum cfg_type type;
	size_t off;		  /* offset of the field in struct cfg */
	size_t n_off;		  /* T_LIST: offset of the size_t count */
	const char *def;	  /* default as text, parsed like the environment; NULL = unset */
	const char *doc_def;	  /* default as documented when derived (NULL: def) */
	const char *const *names; /* T_ENUM: accepted values, index = enum value */
	int64_t min, max;	  /* T_INT, T_I64, T_DUR: inclusive range */
	enum cfg_redact redact;
};

static const char *const tls_names[] = { "internal", "file", "disabled", NULL };
static const char *const enforcer_names[] = { "auto", "ebpf", "userspace", "pinned", NULL };
static const char *const ai_names[] = { "off", "local", "cloud", NULL };
static const char *const ca_key_names[] = { "ecdsa-p256", "ecdsa-p384", "ed25519",
					     "rsa-2048",   "rsa-3072",   "rsa-4096",
					     NULL };

#define F(field) offsetof(struct cfg, field)
#define STR(e, k, fld, d)                                           \
	{                                                           \
		e, k, T_STR, F(fld), 0, d, NULL, NULL, 0, 0, R_NONE \
	}
#define BOOL(e, k, fld, d)                                           \
	{                                                            \
		e, k, T_BOOL, F(fld), 0, d, NULL, NULL, 0, 0, R_NONE \
	}
#define INT(e, k, fld, d, lo, hi)                                     \
	{                                                             \
		e, k, T_INT, F(fld), 0, d, NULL, NULL, lo, hi, R_NONE \
	}
#define I64(e, k, fld, d, lo, hi)                                     \
	{                                                             \
		e, k, T_I64, F(fld), 0, d, NULL, NULL, lo, hi, R_NONE \
	}
#define DUR(e, k, fld, d, lo, hi)                                     \
	{                                                             \
		e, k, T_DUR, F(fld), 0, d, NULL, NULL, lo, hi, R_NONE \
	}
#define LIST(e, k, fld, nfld)                                                 \
	{                                                                     \
		e, k, T_LIST, F(fld), F(nfld), NULL, NULL, NULL, 0, 0, R_NONE \
	}
#define ENUM(e, k, fld, d, n)                                     \
	{                                                         \
		e, k, T_ENUM, F(fld), 0, d, NULL, n, 0, 0, R_NONE \
	}

/* The order of this table is the --check-config order and the order of the docs. */
static const struct cfg_setting cfg_settings[] = {
	STR("TRSTCTL_SERVER_ADDR", "server.addr", server.addr, ":8443"),
	ENUM("TRSTCTL_SERVER_TLS_MODE", "server.tls.mode", server.tls_mode, "internal", tls_names),
	STR("TRSTCTL_SERVER_TLS_CERT_FILE", "server.tls.cert_file", server.tls_cert_file, NULL),
	STR("TRSTCTL_SERVER_TLS_KEY_FILE", "server.tls.key_file", server.tls_key_file, NULL),
	STR("TRSTCTL_SERVER_TLS_CLIENT_CA_FILE", "server.tls.client_ca_file",
	    server.tls_client_ca_file, NULL),
	{ "TRSTCTL_SERVER_TLS_SANS", "server.tls.sans", T_LIST, F(server.tls_sans),
	  F(server.n_tls_sans), NULL, "localhost,127.0.0.1,::1,<hostname>", NULL, 0, 0, R_NONE },
	DUR("TRSTCTL_SERVER_TLS_VALIDITY", "server.tls.validity", server.tls_validity_ms, "2160h",
	    1000, 3153600000000),
	DUR("TRSTCTL_SERVER_TLS_RENEW_BEFORE", "server.tls.renew_before",
	    server.tls_renew_before_ms, "720h", 1000, 3153600000000),
	BOOL("TRSTCTL_DEV_ALLOW_PLAINTEXT", "server.dev_allow_plaintext",
	     server.dev_allow_plaintext, "false"),
	INT("TRSTCTL_SERVER_WORKERS", "server.workers", server.workers, "0", 0, 256),
	INT("TRSTCTL_SERVER_POOL_THREADS", "server.pool_threads", server.pool_threads, "0", 0,
	    4096),
	INT("TRSTCTL_SERVER_POOL_QUEUE", "server.pool_queue", server.pool_queue, "1024", 1,
	    1000000),
	INT("TRSTCTL_SERVER_MAX_STREAMS", "server.max_streams", server.max_streams, "256", 2,
	    65536),
	INT("TRSTCTL_SERVER_MAX_STREAMS_PER_CONNECTION", "server.max_streams_per_connection",
	    server.max_streams_per_connection, "16", 1, 65536),
	{ "TRSTCTL_SERVER_MAX_UNAUTHENTICATED_STREAMS", "server.max_unauthenticated_streams",
	  T_INT, F(server.max_unauthenticated_streams), 0, NULL, "<server.max_streams>/2", NULL, 1,
	  65535, R_NONE },
	I64("TRSTCTL_SERVER_MAX_REQUEST_BYTES", "server.max_request_bytes",
	    server.max_request_bytes, "4194304", 1024, 1073741824),
	DUR("TRSTCTL_SERVER_SHUTDOWN_GRACE", "server.shutdown_grace", server.shutdown_grace_ms,
	    "10s", 0, 3600000),
	STR("TRSTCTL_LOG_LEVEL", "log.level", log.level, "info"),
	STR("TRSTCTL_LOG_FORMAT", "log.format", log.format, "json"),
	STR("TRSTCTL_STATE_DIR", "state_dir", state_dir, "data"),
	{ "TRSTCTL_POSTGRES_DSN", "postgres.dsn", T_STR, F(postgres.dsn), 0, NULL, NULL, NULL, 0, 0,
	  R_DSN },
	INT("TRSTCTL_POSTGRES_MAX_CONNS", "postgres.max_conns", postgres.max_conns, "8", 1, 1024),
	DUR("TRSTCTL_POSTGRES_STATEMENT_TIMEOUT", "postgres.statement_timeout",
	    postgres.statement_timeout_ms, "5s", 100, 3600000),
	DUR("TRSTCTL_IDEMPOTENCY_RETENTION", "postgres.idempotency_retention",
	    postgres.idempotency_retention_ms, "24h", 60000, 31536000000),
	{ "TRSTCTL_NATS_URL", "nats.url", T_STR, F(nats.url), 0, NULL, NULL, NULL, 0, 0, R_URL },
	{ "TRSTCTL_SECRETS_KEK_FILE", "secrets.kek_file", T_STR, F(secrets.kek_file), 0, NULL,
	  "<state_dir>/secrets/kek.bin", NULL, 0, 0, R_NONE },
	BOOL("TRSTCTL_KEK_GENERATE", "secrets.kek_generate", secrets.kek_generate, "false"),
	I64("TRSTCTL_SECRETS_MAX_VALUE_BYTES", "secrets.max_value_bytes", secrets.max_value_bytes,
	    "65536", 1, 16777216),
	INT("TRSTCTL_SECRETS_RETAIN_VERSIONS", "secrets.retain_versions", secrets.retain_versions,
	    "10", 0, 1000000),
	{ "TRSTCTL_BOOTSTRAP_TOKEN_FILE", "auth.bootstrap_token_file", T_STR,
	  F(auth.bootstrap_token_file), 0, NULL, "<state_dir>/bootstrap-token", NULL, 0, 0,
	  R_NONE },
	DUR("TRSTCTL_AUTH_UNAUTHENTICATED_SUMMARY_INTERVAL",
	    "auth.unauthenticated_summary_interval", auth.unauth_summary_interval_ms, "1m", 1000,
	    86400000),
	INT("TRSTCTL_AUTH_UNAUTHENTICATED_MAX_SOURCES", "auth.unauthenticated_max_sources",
	    auth.unauth_max_sources, "1024", 1, 100000),
	DUR("TRSTCTL_AUDIT_CHECKPOINT_INTERVAL", "audit.checkpoint_interval",
	    audit.checkpoint_interval_ms, "1m", 1000, 86400000),
	{ "TRSTCTL_AUDIT_CHECKPOINT_FILE", "audit.checkpoint_file", T_STR, F(audit.checkpoint_file),
	  0, NULL, "<state_dir>/audit-checkpoints", NULL, 0, 0, R_NONE },
	STR("TRSTCTL_METRICS_ADDR", "metrics.addr", metrics.addr, "127.0.0.1:9464"),
	DUR("TRSTCTL_METRICS_READ_TIMEOUT", "metrics.read_timeout", metrics.read_timeout_ms,
	    "5s", 1, 3600000),
	INT("TRSTCTL_METRICS_MAX_CONNECTIONS", "metrics.max_connections", metrics.max_connections,
	    "256", 4, 65536),
	ENUM("TRSTCTL_CA_KEY_TYPE", "ca.key_type", ca.key_type, "ecdsa-p256", ca_key_names),
	STR("TRSTCTL_CA_SUBJECT_CN", "ca.subject_cn", ca.subject_cn, "trstctl Issuing CA"),
	DUR("TRSTCTL_CA_VALIDITY", "ca.validity", ca.validity_ms, "87600h", 86400000,
	    3153600000000),
	DUR("TRSTCTL_CA_MAX_TTL", "ca.max_ttl", ca.max_ttl_ms, "2160h", 60000, 3153600000000),
	DUR("TRSTCTL_CA_CRL_INTERVAL", "ca.crl_interval", ca.crl_interval_ms, "1h", 1000,
	    31536000000),
	BOOL("TRSTCTL_AIRGAP_ENABLED", "air_gap.enabled", air_gap.enabled, "false"),
	BOOL("TRSTCTL_AIRGAP_ALLOW_PRIVATE", "air_gap.allow_private", air_gap.allow_private,
	     "true"),
	LIST("TRSTCTL_AIRGAP_ALLOW_HOSTS", "air_gap.allow_hosts", air_gap.allow_hosts,
	     air_gap.n_allow_hosts),
	LIST("TRSTCTL_AIRGAP_ALLOW_CIDRS", "air_gap.allow_cidrs", air_gap.allow_cidrs,
	     air_gap.n_allow_cidrs),
	ENUM("TRSTCTL_AIRGAP_ENFORCER", "air_gap.enforcer", air_gap.enforcer, "auto",
	     enforcer_names),
	STR("TRSTCTL_AIRGAP_BPF_PIN_PATH", "air_gap.bpf_pin_path", air_gap.bpf_pin_path,
	    "/sys/fs/bpf/trstctl"),
	STR("TRSTCTL_AIRGAP_CGROUP", "air_gap.cgroup", air_gap.cgroup, "trstctl"),
	STR("TRSTCTL_AIRGAP_TRIPWIRE_ADDR", "air_gap.tripwire_addr", air_gap.tripwire_addr,
	    "203.0.113.1:443"),
	BOOL("TRSTCTL_TELEMETRY_ENABLED", "telemetry.enabled", telemetry.enabled, "false"),
	STR("TRSTCTL_TELEMETRY_ENDPOINT", "telemetry.endpoint", telemetry.endpoint,
	    "https://telemetry.trstctl.com/v1/usage"),
	DUR("TRSTCTL_TELEMETRY_INTERVAL", "telemetry.interval", telemetry.interval_ms, "24h", 1,
	    INT64_MAX),
	{ "TRSTCTL_TELEMETRY_INSTANCE_ID_FILE", "telemetry.instance_id_file", T_STR,
	  F(telemetry.instance_id_file), 0, NULL, "<state_dir>/telemetry/instance-id", NULL, 0, 0,
	  R_NONE },
	STR("TRSTCTL_TELEMETRY_CA_FILE", "telemetry.ca_file", telemetry.ca_file, NULL),
	BOOL("TRSTCTL_OTLP_ENABLED", "otlp.enabled", otlp.enabled, "false"),
	{ "TRSTCTL_OTLP_ENDPOINT", "otlp.endpoint", T_STR, F(otlp.endpoint), 0, NULL, NULL, NULL, 0,
	  0, R_URL },
	BOOL("TRSTCTL_OTLP_INSECURE", "otlp.insecure", otlp.insecure, "false"),
	{ "TRSTCTL_OTLP_BEARER_TOKEN", "otlp.token", T_STR, F(otlp.token), 0, NULL, NULL, NULL, 0,
	  0, R_SECRET },
	STR("TRSTCTL_OTLP_BEARER_TOKEN_FILE", "otlp.token_file", otlp.token_file, NULL),
	DUR("TRSTCTL_OTLP_TIMEOUT", "otlp.timeout", otlp.timeout_ms, "5s", 1, INT64_MAX),
	INT("TRSTCTL_OTLP_QUEUE_SIZE", "otlp.queue_size", otlp.queue_size, "1024", 0, 1000000),
	INT("TRSTCTL_OTLP_BATCH_SIZE", "otlp.batch_size", otlp.batch_size, "512", 1, 100000),
	DUR("TRSTCTL_OTLP_BATCH_INTERVAL", "otlp.batch_interval", otlp.batch_interval_ms, "5s", 1,
	    3600000),
	DUR("TRSTCTL_OTLP_RETRY_MAX_ELAPSED", "otlp.retry_max_elapsed", otlp.retry_max_elapsed_ms,
	    "1m", 0, 3600000),
	STR("TRSTCTL_OTLP_SERVICE_NAME", "otlp.service_name", otlp.service_name, "trstctl"),
	{ "TRSTCTL_OTLP_HEADERS", "otlp.headers", T_LIST, F(otlp.headers), F(otlp.n_headers), NULL,
	  NULL, NULL, 0, 0, R_HEADERS },
	ENUM("TRSTCTL_AI_MODEL_MODE", "ai.model.mode", ai_model.mode, "off", ai_names),
	STR("TRSTCTL_AI_MODEL_RUNTIME", "ai.model.runtime", ai_model.runtime, NULL),
	{ "TRSTCTL_AI_MODEL_ENDPOINT", "ai.model.endpoint", T_STR, F(ai_model.endpoint), 0, NULL,
	  NULL, NULL, 0, 0, R_URL },
	STR("TRSTCTL_AI_MODEL_NAME", "ai.model.name", ai_model.name, NULL),
	STR("TRSTCTL_AI_MODEL_PROVIDER", "ai.model.provider", ai_model.provider, NULL),
	BOOL("TRSTCTL_AI_MODEL_ALLOW_EGRESS", "ai.model.allow_egress", ai_model.allow_egress,
	     "false"),
	STR("TRSTCTL_AI_MODEL_CA_FILE", "ai.model.ca_file", ai_model.ca_file, NULL),
	BOOL("TRSTCTL_AI_ENABLE_API", "ai.enable_api", ai_model.enable_api, "false"),
	STR("TRSTCTL_ADDR", "client.addr", client.addr, NULL),
	STR("TRSTCTL_CA_FILE", "client.ca_file", client.ca_file, NULL),
	STR("TRSTCTL_TOKEN_FILE", "client.token_file", client.token_file, NULL),
};

#define N_SETTINGS (sizeof(cfg_settings) / sizeof(cfg_settings[0]))
#define CONFIG_FILE_ENV "TRSTCTL_CONFIG_FILE"

/*
 * Adds one error to the list. Errors quote configured values, and the list is printed as
 * one line ("trstctl: configuration: ...") and logged: a control character in a value (a
 * newline, an escape sequence) is shown as '?', so that no value can start a line or
 * restyle a terminal.
 */
void cfg_errs_add(struct cfg_errs *e, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	char *nb;
	size_t mlen;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0) {
		e->oom = 1;
		return;
	}
	mlen = (size_t)r;
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	nb = realloc(e->buf, e->len + mlen + 3);
	if (!nb) {
		free(msg);
		e->oom = 1;
		return;
	}
	e->buf = nb;
	if (e->n > 0) {
		memcpy(e->buf + e->len, "; ", 2);
		e->len += 2;
	}
	memcpy(e->buf + e->len, msg, mlen + 1);
	e->len += mlen;
	e->n++;
	free(msg);
}

static void *field(struct cfg *c, size_t off)
{
	return (char *)c + off;
}

static const void *cfield(const struct cfg *c, size_t off)
{
	return (const char *)c + off;
}

void cfg_free_list(char **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

static void free_setting(struct cfg *c, const struct cfg_setting *s)
{
	if (s->type == T_STR) {
		char **p = field(c, s->off);

		free(*p);
		*p = NULL;
	} else if (s->type == T_LIST) {
		char ***p = field(c, s->off);
		size_t *n = field(c, s->n_off);

		cfg_free_list(*p, *n);
		*p = NULL;
		*n = 0;
	}
}

struct cfg *cfg_free(struct cfg *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < N_SETTINGS; i++)
		free_setting(c, &cfg_settings[i]);
	free(c->config_file);
	cfg_free_list(c->unknown_env, c->n_unknown_env);
	free(c);
	return NULL;
}

/*
 * Sets one setting from text (a default or an environment value). who names the source in
 * errors: the variable for the environment. Values of secret settings are never echoed.
 */
static void set_text(struct cfg *c, const struct cfg_setting *s, const char *v, const char *who,
		     struct cfg_errs *e)
{
	const char *shown = s->redact == R_NONE ? v : "xxxxx";
	int64_t x;

	switch (s->type) {
	case T_STR: {
		char **p = field(c, s->off);
		char *d = strdup(v);

		if (!d) {
			e->oom = 1;
			return;
		}
		free(*p);
		*p = d;
		return;
	}
	case T_BOOL:
		if (cfg_parse_bool(v, field(c, s->off)) < 0)
			cfg_errs_add(e, "%s \"%s\" is invalid: want true or false", who, shown);
		return;
	case T_INT:
		if (cfg_parse_i64(v, &x) < 0 || x < INT32_MIN || x > INT32_MAX)
			cfg_errs_add(e, "%s \"%s\" is invalid: want an integer", who, shown);
		else
			*(int *)field(c, s->off) = (int)x;
		return;
	case T_I64:
		if (cfg_parse_i64(v, &x) < 0)
			cfg_errs_add(e, "%s \"%s\" is invalid: want an integer", who, shown);
		else
			*(int64_t *)field(c, s->off) = x;
		return;
	case T_DUR:
		if (cfg_parse_duration(v, &x) < 0)
			cfg_errs_add(
				e,
				"%s \"%s\" is invalid: want a duration such as 500ms, 10s, 5m or 24h",
				who, shown);
		else
			*(int64_t *)field(c, s->off) = x;
		return;
	case T_LIST: {
		char **l;
		size_t n;

		if (cfg_split_list(v, &l, &n) < 0) {
			e->oom = 1;
			return;
		}
		free_setting(c, s);
		*(char ***)field(c, s->off) = l;
		*(size_t *)field(c, s->n_off) = n;
		return;
	}
	case T_ENUM: {
		char buf[32];
		size_t i, len = strlen(v);

		/* enum values are case-insensitive and trimmed */
		while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
			len--;
		while (len && (*v == ' ' || *v == '\t')) {
			v++;
			len--;
		}
		if (len >= sizeof(buf))
			len = sizeof(buf) - 1;
		for (i = 0; i < len; i++)
			buf[i] = (char)(v[i] >= 'A' && v[i] <= 'Z' ? v[i] + 32 : v[i]);
		buf[len] = 0;
		for (i = 0; s->names[i]; i++) {
			if (strcmp(buf, s->names[i]) == 0) {
				*(int *)field(c, s->off) = (int)i;
				return;
			}
		}
		{
			/* "want \"a\", \"b\", or \"c\"" over however many names there are */
			char want[256] = "";
			size_t n;

			for (n = 0; s->names[n]; n++)
				;
			for (i = 0; i < n; i++)
				snprintf(want + strlen(want), sizeof(want) - strlen(want),
					 "%s\"%s\"", i == 0 ? "" : i + 1 < n ? ", " : ", or ",
					 s->names[i]);
			cfg_errs_add(e, "%s \"%s\" is invalid (want %s)", s->key, buf, want);
		}
		return;
	}
	}
}

static const struct cfg_setting *setting_by_key(const char *key)
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (strcmp(cfg_settings[i].key, key) == 0)
			return &cfg_settings[i];
	return NULL;
}

static bool is_key_prefix(const char *prefix)
{
	size_t n = strlen(prefix);

	for (size_t i = 0; i < N_SETTINGS; i++)
		if (strncmp(cfg_settings[i].key, prefix, n) == 0 && cfg_settings[i].key[n] == '.')
			return true;
	return false;
}

static void set_json(struct cfg *c, const struct cfg_setting *s, json_t *v, struct cfg_errs *e)
{
	switch (s->type) {
	case T_BOOL:
		if (!json_is_boolean(v)) {
			cfg_errs_add(e, "config file: %s must be true or false", s->key);
			return;
		}
		*(bool *)field(c, s->off) = json_is_true(v);
		return;
	case T_INT:
	case T_I64:
		if (!json_is_integer(v)) {
			cfg_errs_add(e, "config file: %s must be an integer", s->key);
			return;
		}
		if (s->type == T_INT) {
			json_int_t x = json_integer_value(v);

			if (x < INT32_MIN || x > INT32_MAX) {
				cfg_errs_add(e, "config file: %s must be an integer", s->key);
				return;
			}
			*(int *)field(c, s->off) = (int)x;
		} else {
			*(int64_t *)field(c, s->off) = json_integer_value(v);
		}
		return;
	case T_LIST: {
		size_t i, n = json_array_size(v);
		char **l;

		if (!json_is_array(v)) {
			cfg_errs_add(e, "config file: %s must be an array of strings", s->key);
			return;
		}
		for (i = 0; i < n; i++) {
			if (!json_is_string(json_array_get(v, i))) {
				cfg_errs_add(e, "config file: %s must be an array of strings",
					     s->key);
				return;
			}
		}
		l = calloc(n ? n : 1, sizeof(*l));
		if (!l) {
			e->oom = 1;
			return;
		}
		free_setting(c, s);
		*(char ***)field(c, s->off) = l;
		for (i = 0; i < n; i++) {
			l[i] = strdup(json_string_value(json_array_get(v, i)));
			if (!l[i]) {
				e->oom = 1;
				break;
			}
		}
		*(size_t *)field(c, s->n_off) = i;
		return;
	}
	case T_STR:
	case T_DUR:
	case T_ENUM:
		if (!json_is_string(v)) {
			cfg_errs_add(e, "config file: %s must be a string", s->key);
			return;
		}
		if (s->type == T_STR && json_string_length(v) == 0) {
			free_setting(c, s);
			return;
		}
		set_text(c, s, json_string_value(v), s->key, e);
		return;
	}
}

static void walk_json(struct cfg *c, json_t *obj, const char *prefix, struct cfg_errs *e)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v)
	{
		const struct cfg_setting *s;
		char *path;

		if (asprintf(&path, "%s%s%s", prefix, *prefix ? "." : "", k) < 0) {
			e->oom = 1;
			return;
		}
		s = setting_by_key(path);
		if (s)
			set_json(c, s, v, e);
		else if (is_key_prefix(path) && json_is_object(v))
			walk_json(c, v, path, e);
		else if (is_key_prefix(path))
			cfg_errs_add(e, "config file: %s must be an object", path);
		else
			cfg_errs_add(e, "config file: unknown key \"%s\"", path);
		free(path);
	}
}

static void load_file(struct cfg *c, const char *path, struct cfg_errs *e)
{
	json_error_t jerr;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);

	if (!root && strncmp(jerr.text, "duplicate object key", 20) == 0) {
		/* report the duplicate, then keep checking the rest of the file */
		cfg_errs_add(e, "config file \"%s\": %s (line %d, column %d)", path, jerr.text,
			     jerr.line, jerr.column);
		root = json_load_file(path, 0, &jerr);
		if (!root)
			return;
	} else if (!root) {
		if (jerr.line < 0)
			cfg_errs_add(e, "config file \"%s\": %s", path, jerr.text);
		else
			cfg_errs_add(e, "config file \"%s\": %s (line %d, column %d)", path,
				     jerr.text, jerr.line, jerr.column);
		return;
	}
	if (!json_is_object(root))
		cfg_errs_add(e, "config file \"%s\": the top level must be an object", path);
	else
		walk_json(c, root, "", e);
	json_decref(root);
}

/* The value of name in envp (first occurrence), or NULL. */
static const char *env_get(char *const *envp, const char *name)
{
	size_t n = strlen(name);

	for (; envp && *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

static bool env_known(const char *entry)
{
	size_t n = strcspn(entry, "=");

	if (strlen(CONFIG_FILE_ENV) == n && strncmp(entry, CONFIG_FILE_ENV, n) == 0)
		return true;
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (strlen(cfg_settings[i].env) == n && strncmp(entry, cfg_settings[i].env, n) == 0)
			return true;
	return false;
}

static void note_unknown_env(struct cfg *c, char *const *envp, struct cfg_errs *e)
{
	for (; envp && *envp; envp++) {
		char **nl;

		if (strncmp(*envp, "TRSTCTL_", 8) != 0 || env_known(*envp))
			continue;
		nl = realloc(c->unknown_env, (c->n_unknown_env + 1) * sizeof(*nl));
		if (!nl) {
			e->oom = 1;
			return;
		}
		c->unknown_env = nl;
		nl[c->n_unknown_env] = strndup(*envp, strcspn(*envp, "="));
		if (!nl[c->n_unknown_env]) {
			e->oom = 1;
			return;
		}
		c->n_unknown_env++;
	}
}

/*
 * The default names of the internal TLS certificate: the loopback names, and this host's
 * name when it is a DNS name (in a pod: the pod's name).
 */
static void default_sans(struct cfg *c, struct cfg_errs *e)
{
	static const char *const fixed[] = { "localhost", "127.0.0.1", "::1" };
	char host[256] = "";
	size_t n = 0;
	char **l;

	if (gethostname(host, sizeof(host) - 1) < 0)
		host[0] = '\0';
	for (char *p = host; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	l = calloc(4, sizeof(*l));
	if (!l) {
		e->oom = 1;
		return;
	}
	for (size_t i = 0; i < 3; i++)
		if (!(l[n++] = strdup(fixed[i])))
			e->oom = 1;
	if (net_dns_name_valid(host) && strcmp(host, "localhost") && !(l[n++] = strdup(host)))
		e->oom = 1;
	c->server.tls_sans = l;
	c->server.n_tls_sans = n;
}

static void derive(struct cfg *c, struct cfg_errs *e)
{
	const char *dir = c->state_dir ? c->state_dir : ".";
	struct cfg_server *s = &c->server;

	/* unset (or 0): half of the streams, and never a second error for a bad max_streams */
	if (!s->max_unauthenticated_streams)
		s->max_unauthenticated_streams = s->max_streams >= 2 ? s->max_streams / 2 : 1;

	if (!c->server.tls_sans)
		default_sans(c, e);

	if (!c->secrets.kek_file && asprintf(&c->secrets.kek_file, "%s/secrets/kek.bin", dir) < 0) {
		c->secrets.kek_file = NULL;
		e->oom = 1;
	}
	if (!c->auth.bootstrap_token_file &&
	    asprintf(&c->auth.bootstrap_token_file, "%s/bootstrap-token", dir) < 0) {
		c->auth.bootstrap_token_file = NULL;
		e->oom = 1;
	}
	if (!c->audit.checkpoint_file &&
	    asprintf(&c->audit.checkpoint_file, "%s/audit-checkpoints", dir) < 0) {
		c->audit.checkpoint_file = NULL;
		e->oom = 1;
	}
	if (!c->telemetry.instance_id_file &&
	    asprintf(&c->telemetry.instance_id_file, "%s/telemetry/instance-id", dir) < 0) {
		c->telemetry.instance_id_file = NULL;
		e->oom = 1;
	}
}

/* Defaults < file < environment, and the ranges, into a new *ret (problems into e). */
static int read_all(char *const *envp, struct cfg **ret, struct cfg_errs *e)
{
	struct cfg *c = calloc(1, sizeof(*c));
	const char *file;

	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (cfg_settings[i].def)
			set_text(c, &cfg_settings[i], cfg_settings[i].def, cfg_settings[i].key, e);

	file = env_get(envp, CONFIG_FILE_ENV);
	if (file && *file) {
		c->config_file = strdup(file);
		if (!c->config_file)
			e->oom = 1;
		load_file(c, file, e);
	}

	for (size_t i = 0; i < N_SETTINGS; i++) {
		const char *v = env_get(envp, cfg_settings[i].env);

		if (v && *v)
			set_text(c, &cfg_settings[i], v, cfg_settings[i].env, e);
	}
	note_unknown_env(c, envp, e);
	derive(c, e);

	/* range checks apply to the merged value, whatever its source */
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct cfg_setting *s = &cfg_settings[i];
		char max[32];
		int64_t x;

		if (s->type != T_INT && s->type != T_I64 && s->type != T_DUR)
			continue;
		x = s->type == T_INT ? *(const int *)field(c, s->off) :
				       *(const int64_t *)field(c, s->off);
		if (x < s->min || x > s->max) {
			if (s->type == T_DUR && x < s->min)
				cfg_errs_add(e, "%s must be positive", s->key);
			else if (s->type == T_DUR)
				cfg_errs_add(e, "%s must be at most %s", s->key,
					     cfg_format_duration(s->max, max, sizeof(max)));
			else if (s->max == INT32_MAX || s->max == INT64_MAX)
				cfg_errs_add(e, "%s must be at least %" PRId64, s->key, s->min);
			else
				cfg_errs_add(e, "%s must be between %" PRId64 " and %" PRId64,
					     s->key, s->min, s->max);
		}
	}
	*ret = c;
	return 0;
}

int cfg_load_checked(char *const *envp, cfg_check_fn check, void *arg, struct cfg **ret_cfg,
		     char **ret_errors)
{
	struct cfg_errs e = { 0 };
	struct cfg *c = NULL;

	if (read_all(envp, &c, &e) < 0)
		return -ENOMEM;
	/* a value that did not parse kept its default, so the rules can still run */
	if (!e.oom)
		cfg_validate(c, &e);
	if (!e.oom && check) {
		char *more = NULL;
		int r = check(c, arg, &more);

		if (r == -ENOMEM)
			e.oom = 1;
		else if (r < 0)
			cfg_errs_add(&e, "%s", more ? more : strerror(-r));
		free(more);
	}

	if (e.oom) {
		free(e.buf);
		cfg_free(c);
		return -ENOMEM;
	}
	if (e.n > 0) {
		cfg_free(c);
		*ret_errors = e.buf;
		return -EINVAL;
	}
	free(e.buf);
	*ret_cfg = c;
	return 0;
}

int cfg_load(char *const *envp, struct cfg **ret_cfg, char **ret_errors)
{
	return cfg_load_checked(envp, NULL, NULL, ret_cfg, ret_errors);
}

int cfg_load_client(char *const *envp, struct cfg **ret_cfg)
{
	struct cfg_errs e = { 0 };
	struct cfg *c = NULL;

	if (read_all(envp, &c, &e) < 0)
		return -ENOMEM;
	free(e.buf); /* the server's problems are not the client's */
	if (e.oom) {
		cfg_free(c);
		return -ENOMEM;
	}
	*ret_cfg = c;
	return 0;
}

const char *cfg_tls_mode_name(enum cfg_tls_mode m)
{
	return (unsigned)m < 3 ? tls_names[m] : "?";
}

const char *cfg_enforcer_name(enum cfg_enforcer e)
{
	return (unsigned)e < 4 ? enforcer_names[e] : "?";
}

const char *cfg_ai_mode_name(enum cfg_ai_mode m)
{
	return (unsigned)m < 3 ? ai_names[m] : "?";
}

const char *cfg_ca_key_type_name(enum cfg_ca_key_type t)
{
	return (unsigned)t < 6 ? ca_key_names[t] : "?";
}

static void print_value(const struct cfg *c, const struct cfg_setting *s, FILE *f)
{
	switch (s->type) {
	case T_STR: {
		const char *v = *(char *const *)cfield(c, s->off);
		char *r = NULL;

		if (!v)
			return;
		if (s->redact == R_SECRET)
			v = "xxxxx";
		else if (s->redact == R_DSN)
			v = r = cfg_dsn_redact(v);
		else if (s->redact == R_URL)
			v = r = cfg_url_redact(v);
		fputs(v ? v : "[redacted]", f);
		free(r);
		return;
	}
	case T_BOOL:
		fputs(*(const bool *)cfield(c, s->off) ? "true" : "false", f);
		return;
	case T_INT:
		fprintf(f, "%d", *(const int *)cfield(c, s->off));
		return;
	case T_I64:
		fprintf(f, "%" PRId64, *(const int64_t *)cfield(c, s->off));
		return;
	case T_DUR: {
		char buf[32];

		fputs(cfg_format_duration(*(const int64_t *)cfield(c, s->off), buf, sizeof(buf)), f);
		return;
	}
	case T_ENUM:
		fputs(s->names[*(const int *)cfield(c, s->off)], f);
		return;
	case T_LIST: {
		char *const *l = *(char **const *)cfield(c, s->off);
		size_t n = *(const size_t *)cfield(c, s->n_off);

		for (size_t i = 0; i < n; i++) {
			if (i)
				fputc(',', f);
			if (s->redact == R_HEADERS)
				fprintf(f, "%.*s=xxxxx", (int)strcspn(l[i], "="), l[i]);
			else
				fputs(l[i], f);
		}
		return;
	}
	}
}

int cfg_print(const struct cfg *c, FILE *f)
{
	for (size_t i = 0; i < N_SETTINGS; i++) {
		fprintf(f, "%s: ", cfg_settings[i].key);
		print_value(c, &cfg_settings[i], f);
		fputc('\n', f);
	}
	return ferror(f) ? -EIO : 0;
}

int cfg_describe(FILE *f)
{
	fprintf(f, "%s\t-\t\n", CONFIG_FILE_ENV);
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct cfg_setting *s = &cfg_settings[i];
		const char *d = s->doc_def ? s->doc_def : s->def;

		fprintf(f, "%s\t%s\t%s\n", s->env, s->key, d ? d : "");
	}
	return ferror(f) ? -EIO : 0;
}
