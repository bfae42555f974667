#pragma once
/*
 * cfg: the configuration. Built-in defaults < JSON file named by TRSTCTL_CONFIG_FILE <
 * environment. The result is immutable after cfg_load() and passed explicitly; no module
 * reads getenv. Strings are NULL when unset (an empty value never overrides and never
 * yields ""). docs/configuration.md lists every variable; a test keeps the two in step.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum cfg_tls_mode {
	CFG_TLS_INTERNAL,
	CFG_TLS_FILE,
	CFG_TLS_DISABLED
};
enum cfg_enforcer {
	CFG_ENFORCER_AUTO,
	CFG_ENFORCER_EBPF,
	CFG_ENFORCER_USERSPACE,
	CFG_ENFORCER_PINNED /* use the guard `trstctl guard attach` pinned; load nothing */
};
enum cfg_ai_mode {
	CFG_AI_OFF,
	CFG_AI_LOCAL,
	CFG_AI_CLOUD
};

struct cfg_server {
	char *addr; /* TRSTCTL_SERVER_ADDR host:port (port 0: kernel picks), ":8443" */
	enum cfg_tls_mode tls_mode; /* TRSTCTL_SERVER_TLS_MODE, default internal */
	char *tls_cert_file;	    /* TRSTCTL_SERVER_TLS_CERT_FILE (file mode: required) */
	char *tls_key_file;	    /* TRSTCTL_SERVER_TLS_KEY_FILE (file mode: required) */
	char *tls_client_ca_file;   /* TRSTCTL_SERVER_TLS_CLIENT_CA_FILE (optional; mTLS) */
	char **tls_sans;	    /* TRSTCTL_SERVER_TLS_SANS: DNS names and IP addresses of the
				     * internal certificate, each once; default localhost,
				     * 127.0.0.1, ::1 and the host name */
	size_t n_tls_sans;
	int64_t tls_validity_ms;     /* TRSTCTL_SERVER_TLS_VALIDITY, default 2160h */
	int64_t tls_renew_before_ms; /* TRSTCTL_SERVER_TLS_RENEW_BEFORE, default 720h, below
				      * tls_validity_ms */
	bool dev_allow_plaintext;   /* TRSTCTL_DEV_ALLOW_PLAINTEXT (disabled TLS needs it) */
	int workers;		    /* TRSTCTL_SERVER_WORKERS, 0 = online cores, 0..256 */
	int pool_threads;	    /* TRSTCTL_SERVER_POOL_THREADS, 0 = max(64, 8 x cores) */
	int pool_queue;		    /* TRSTCTL_SERVER_POOL_QUEUE, default 1024, >= 1 */
	int max_streams;	    /* TRSTCTL_SERVER_MAX_STREAMS, default 256, 2..65536 */
	int max_streams_per_connection; /* TRSTCTL_SERVER_MAX_STREAMS_PER_CONNECTION, 16 */
	int max_unauthenticated_streams; /* TRSTCTL_SERVER_MAX_UNAUTHENTICATED_STREAMS,
					  * default max_streams / 2, < max_streams */
	int64_t max_request_bytes;  /* TRSTCTL_SERVER_MAX_REQUEST_BYTES, default 4194304 */
	int64_t shutdown_grace_ms;  /* TRSTCTL_SERVER_SHUTDOWN_GRACE duration, default 10s */
};

struct cfg_log {
	char *level;  /* TRSTCTL_LOG_LEVEL debug|info|warn|error, default info */
	char *format; /* TRSTCTL_LOG_FORMAT json|text, default json */
};

struct cfg_postgres {
	char *dsn;     /* TRSTCTL_POSTGRES_DSN (required): URL or key=value; a secret */
	int max_conns; /* TRSTCTL_POSTGRES_MAX_CONNS, default 8, 1..1024 */
	/* TRSTCTL_POSTGRES_STATEMENT_TIMEOUT, default 5s, 100ms..1h: the longest a call waits
	 * for PostgreSQL to answer (db_config.statement_timeout_ms) */
	int64_t statement_timeout_ms;
	int64_t idempotency_retention_ms; /* TRSTCTL_IDEMPOTENCY_RETENTION, default 24h */
};

struct cfg_nats {
	char *url; /* TRSTCTL_NATS_URL, comma-separated nats:// or tls:// URLs; NULL = no relay */
};

struct cfg_secrets {
	char *kek_file;	   /* TRSTCTL_SECRETS_KEK_FILE, <state_dir>/secrets/kek.bin */
	bool kek_generate; /* TRSTCTL_KEK_GENERATE: create a KEK when missing (evaluation) */
	int64_t max_value_bytes; /* TRSTCTL_SECRETS_MAX_VALUE_BYTES, default 65536 */
	int retain_versions;	 /* TRSTCTL_SECRETS_RETAIN_VERSIONS, default 10, 0 = all */
};

/* Key types of the issuing CA, in the order of crypto's enum crypto_key_type. */
enum cfg_ca_key_type {
	CFG_CA_KEY_ECDSA_P256,
	CFG_CA_KEY_ECDSA_P384,
	CFG_CA_KEY_ED25519,
	CFG_CA_KEY_RSA_2048,
	CFG_CA_KEY_RSA_3072,
	CFG_CA_KEY_RSA_4096
};

struct cfg_ca {
	enum cfg_ca_key_type key_type; /* TRSTCTL_CA_KEY_TYPE, default ecdsa-p256 */
	char *subject_cn;	       /* TRSTCTL_CA_SUBJECT_CN, default "trstctl Issuing CA" */
	int64_t validity_ms;	       /* TRSTCTL_CA_VALIDITY, default 87600h (whole days) */
	int64_t max_ttl_ms;	       /* TRSTCTL_CA_MAX_TTL, default 2160h (90 days) */
	int64_t crl_interval_ms;       /* TRSTCTL_CA_CRL_INTERVAL, default 1h */
};

struct cfg_auth {
	char *bootstrap_token_file; /* TRSTCTL_BOOTSTRAP_TOKEN_FILE, <state_dir>/bootstrap-token */
	int64_t unauth_summary_interval_ms; /* TRSTCTL_AUTH_UNAUTHENTICATED_SUMMARY_INTERVAL, 1m */
	int unauth_max_sources; /* TRSTCTL_AUTH_UNAUTHENTICATED_MAX_SOURCES, default 1024 */
};

struct cfg_audit {
	int64_t checkpoint_interval_ms; /* TRSTCTL_AUDIT_CHECKPOINT_INTERVAL, default 1m */
	char *checkpoint_file; /* TRSTCTL_AUDIT_CHECKPOINT_FILE, <state_dir>/audit-checkpoints */
};

struct cfg_metrics {
	char *addr; /* TRSTCTL_METRICS_ADDR host:port, default 127.0.0.1:9464 */
	int64_t read_timeout_ms; /* TRSTCTL_METRICS_READ_TIMEOUT duration, default 5s */
	int max_connections;	 /* TRSTCTL_METRICS_MAX_CONNECTIONS, default 256, 4..65536 */
};

struct cfg_air_gap {
	bool enabled;	    /* TRSTCTL_AIRGAP_ENABLED, default false */
	bool allow_private; /* TRSTCTL_AIRGAP_ALLOW_PRIVATE, default true */
	char **allow_hosts; /* TRSTCTL_AIRGAP_ALLOW_HOSTS, exact names or IP literals */
	size_t n_allow_hosts;
	char **allow_cidrs; /* TRSTCTL_AIRGAP_ALLOW_CIDRS, "10.0.0.0/8[:port]" */
	size_t n_allow_cidrs;
	enum cfg_enforcer enforcer; /* TRSTCTL_AIRGAP_ENFORCER, default auto */
	char *bpf_pin_path;	    /* TRSTCTL_AIRGAP_BPF_PIN_PATH, /sys/fs/bpf/trstctl */
	char *cgroup;		    /* TRSTCTL_AIRGAP_CGROUP, default "trstctl" */
	char *tripwire_addr;	    /* TRSTCTL_AIRGAP_TRIPWIRE_ADDR, default 203.0.113.1:443 */
};

struct cfg_telemetry {
	bool enabled;		/* TRSTCTL_TELEMETRY_ENABLED, default false */
	char *endpoint;		/* TRSTCTL_TELEMETRY_ENDPOINT, absolute https URL */
	int64_t interval_ms;	/* TRSTCTL_TELEMETRY_INTERVAL, default 24h */
	char *instance_id_file; /* TRSTCTL_TELEMETRY_INSTANCE_ID_FILE */
	char *ca_file;		/* TRSTCTL_TELEMETRY_CA_FILE: PEM roots instead of the system's */
};

struct cfg_otlp {
	bool enabled;	    /* TRSTCTL_OTLP_ENABLED, default false */
	char *endpoint;	    /* TRSTCTL_OTLP_ENDPOINT, base URL (https; http if insecure) */
	bool insecure;	    /* TRSTCTL_OTLP_INSECURE: allow http:// */
	char *token;	    /* TRSTCTL_OTLP_BEARER_TOKEN (secret) */
	char *token_file;   /* TRSTCTL_OTLP_BEARER_TOKEN_FILE */
	int64_t timeout_ms; /* TRSTCTL_OTLP_TIMEOUT, default 5s */
	int queue_size;	    /* TRSTCTL_OTLP_QUEUE_SIZE, default 1024, per signal, 0..1000000 */
	int batch_size;	    /* TRSTCTL_OTLP_BATCH_SIZE, default 512, items per request */
	int64_t batch_interval_ms; /* TRSTCTL_OTLP_BATCH_INTERVAL, default 5s, 1ms..1h */
	int64_t retry_max_elapsed_ms; /* TRSTCTL_OTLP_RETRY_MAX_ELAPSED, default 1m, 0 = none */
	char *service_name; /* TRSTCTL_OTLP_SERVICE_NAME, default trstctl */
	char **headers;	    /* TRSTCTL_OTLP_HEADERS, "Name=value" entries (values secret) */
	size_t n_headers;
};

struct cfg_ai_model {
	enum cfg_ai_mode mode; /* TRSTCTL_AI_MODEL_MODE off|local|cloud, default off */
	char *runtime;	       /* TRSTCTL_AI_MODEL_RUNTIME ollama|vllm (local only) */
	char *endpoint;	       /* TRSTCTL_AI_MODEL_ENDPOINT, exact POST URL */
	char *name;	       /* TRSTCTL_AI_MODEL_NAME */
	char *provider;	       /* TRSTCTL_AI_MODEL_PROVIDER (cloud only) */
	bool allow_egress;     /* TRSTCTL_AI_MODEL_ALLOW_EGRESS (cloud only, required there) */
	char *ca_file;	       /* TRSTCTL_AI_MODEL_CA_FILE: PEM roots for an https endpoint */
	bool enable_api;       /* TRSTCTL_AI_ENABLE_API: serve trstctl.v1.Assist (local only) */
};

/* What the client sub-commands call (docs/cli.md); the server ignores these. */
struct cfg_client {
	char *addr;	  /* TRSTCTL_ADDR host:port of the server to call */
	char *ca_file;	  /* TRSTCTL_CA_FILE: the CA bundle that verifies the server */
	char *token_file; /* TRSTCTL_TOKEN_FILE: the API token (first line) */
};

struct cfg {
	struct cfg_server server;
	struct cfg_log log;
	char *state_dir; /* TRSTCTL_STATE_DIR, default "data" (relative to the working dir) */
	struct cfg_postgres postgres;
	struct cfg_nats nats;
	struct cfg_secrets secrets;
	struct cfg_auth auth;
	struct cfg_audit audit;
	struct cfg_metrics metrics;
	struct cfg_ca ca;
	struct cfg_air_gap air_gap;
	struct cfg_telemetry telemetry;
	struct cfg_otlp otlp;
	struct cfg_ai_model ai_model;
	struct cfg_client client;
	char *config_file;  /* TRSTCTL_CONFIG_FILE as given, or NULL */
	char **unknown_env; /* names (never values) of TRSTCTL_* variables not recognised */
	size_t n_unknown_env;
};

/*
 * Loads defaults < JSON file named by TRSTCTL_CONFIG_FILE (found in envp) < environment.
 * envp is a NULL-terminated array of "K=V" strings, like environ; getenv is never read.
 * Every problem is collected: on failure returns -EINVAL and sets *ret_errors to a malloc'd
 * "err; err; err" string (caller frees). Returns -ENOMEM on allocation failure (then
 * *ret_errors may be NULL). On success sets *ret_cfg (free with cfg_free).
 */
int cfg_load(char *const *envp, struct cfg **ret_cfg, char **ret_errors);
/*
 * A check that a module above cfg adds to validation (the egress guard's endpoint check):
 * called once with the merged configuration after cfg's own rules, also when they found
 * errors. Returns 0, or -EINVAL with *ret_errors a malloc'd "err; err" string that cfg
 * appends to its own, or -ENOMEM.
 */
typedef int (*cfg_check_fn)(const struct cfg *c, void *arg, char **ret_errors);
/* cfg_load() plus check(c, arg) (check may be NULL). */
int cfg_load_checked(char *const *envp, cfg_check_fn check, void *arg, struct cfg **ret_cfg,
		     char **ret_errors);
struct cfg *cfg_free(struct cfg *c);
/*
 * The configuration as a client sub-command sees it: read like cfg_load (defaults < file <
 * environment), but no rule is checked and a value that does not parse keeps its default,
 * because the server's settings are only a client's fallbacks (its address, TLS mode,
 * state folder), never its errors; no TRSTCTL_POSTGRES_DSN is needed. Returns 0 and
 * *ret_cfg, or -ENOMEM.
 */
int cfg_load_client(char *const *envp, struct cfg **ret_cfg);

/*
 * Writes the effective configuration as "key: value" lines in the documented fixed order
 * (the order of docs/configuration.md); secrets are redacted as xxxxx. Returns 0 or -EIO.
 */
int cfg_print(const struct cfg *c, FILE *f);

/* Writes one "ENV_NAME<TAB>json.key<TAB>default" line per setting (docs test, --help). */
int cfg_describe(FILE *f);

/* Names for enum values ("internal", "ebpf", "cloud", ...). */
const char *cfg_tls_mode_name(enum cfg_tls_mode m);
const char *cfg_enforcer_name(enum cfg_enforcer e);
const char *cfg_ai_mode_name(enum cfg_ai_mode m);
const char *cfg_ca_key_type_name(enum cfg_ca_key_type t);

/*
 * Parses a duration: one or more <integer><unit> groups, unit ms, s, m or h ("10s",
 * "1h30m", "500ms"). Returns 0 and *ret_ms, or -EINVAL.
 */
int cfg_parse_duration(const char *s, int64_t *ret_ms);

/*
 * A malloc'd copy of a URL (or comma-separated URLs) with userinfo secrets and password=
 * query values replaced by xxxxx, for messages and log lines (NULL when out of memory).
 */
char *cfg_url_redact(const char *url);

/* True when the server address is loopback: 127.0.0.0/8, ::1 or localhost. */
bool cfg_addr_is_loopback(const char *hostport);

/*
 * Collects the hosts a PostgreSQL DSN (URL or key=value) would reach, with ports.
 * Unix-socket hosts (starting with '/') are skipped. Calls fn for each; returns the first
 * negative fn result, -EINVAL on an unparseable DSN, else 0.
 */
int cfg_dsn_hosts(const char *dsn, int (*fn)(const char *host, int port, void *ud), void *ud);
