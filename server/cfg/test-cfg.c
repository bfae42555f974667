/*
 * Unit tests for cfg: precedence (defaults < file < environment), strict JSON, parsing of
 * booleans, numbers, durations and lists, every validation rule with its exact message,
 * the air-gap endpoint rule, DSN host extraction and redaction in --check-config output.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "net.h"
#include "cfg-internal.h"

#define DSN "TRSTCTL_POSTGRES_DSN=host=/tmp dbname=trstctl"

/* Loads envp; returns the error string (caller frees) or NULL, with the config in *ret. */
static char *load(char *const *envp, struct cfg **ret)
{
	char *errors = NULL;
	struct cfg *c = NULL;
	int r = cfg_load(envp, &c, &errors);

	if (r == 0) {
		assert_non_null(c);
		if (ret)
			*ret = c;
		else
			cfg_free(c);
		return NULL;
	}
	assert_int_equal(r, -EINVAL);
	assert_non_null(errors);
	return errors;
}

struct rule_case {
	const char *env[8];
	const char *want; /* substring of the error list; NULL = must load */
};

/* Every rule of issue 3, by its exact message. */
static const struct rule_case rule_cases[] = {
	{ { DSN }, NULL },
	{ { NULL }, "postgres.dsn is required (TRSTCTL_POSTGRES_DSN)" },
	{ { DSN, "TRSTCTL_AIRGAP_ENABLED=true", "TRSTCTL_TELEMETRY_ENABLED=true" },
	  "telemetry.enabled must be false when air_gap.enabled is true" },
	{ { DSN, "TRSTCTL_AIRGAP_ENABLED=true", "TRSTCTL_AI_MODEL_MODE=cloud",
	    "TRSTCTL_AI_MODEL_PROVIDER=openai", "TRSTCTL_AI_MODEL_NAME=gpt",
	    "TRSTCTL_AI_MODEL_ALLOW_EGRESS=true",
	    "TRSTCTL_AI_MODEL_ENDPOINT=https://api.example.com/v1/chat",
	    "TRSTCTL_AIRGAP_ALLOW_HOSTS=api.example.com" },
	  "ai.model.mode=cloud is not allowed when air_gap.enabled is true" },
	{ { DSN, "TRSTCTL_AIRGAP_ALLOW_HOSTS=ok.example, https://collector.example.com" },
	  "air_gap.allow_hosts entry \"https://collector.example.com\" must be a host, not a URL" },
	{ { DSN, "TRSTCTL_AIRGAP_ALLOW_CIDRS=not-a-cidr" },
	  "air_gap.allow_cidrs entry \"not-a-cidr\" is invalid: missing \"/<length>\"" },
	{ { DSN, "TRSTCTL_AIRGAP_ALLOW_CIDRS=10.0.0.0/33" },
	  "air_gap.allow_cidrs entry \"10.0.0.0/33\" is invalid: prefix length out of range" },
	{ { DSN, "TRSTCTL_AIRGAP_ALLOW_CIDRS=fd00::/8:443" },
	  "is invalid: an IPv6 prefix with a port must be written [x::/n]:port" },
	{ { DSN, "TRSTCTL_AIRGAP_ALLOW_CIDRS=10.0.0.0/8:0" }, "is invalid: bad port" },
	{ { DSN, "TRSTCTL_AIRGAP_ALLOW_CIDRS=10.0.0.0/8:5432, [fd00::/8]:443, 203.0.113.0/24" },
	  NULL },
	{ { DSN, "TRSTCTL_AIRGAP_ALLOW_CIDRS=10.0.0.0/8:5432,10.0.0.0/8:443" },
	  "give one prefix two ports" },
	{ { DSN, "TRSTCTL_OTLP_ENABLED=true" }, "otlp.endpoint is required when otlp is enabled" },
	{ { DSN, "TRSTCTL_OTLP_ENABLED=true", "TRSTCTL_OTLP_ENDPOINT=http://127.0.0.1:4318" },
	  "otlp.endpoint \"http://127.0.0.1:4318\" must be https, or http with otlp.insecure=true" },
	{ { DSN, "TRSTCTL_OTLP_ENABLED=true", "TRSTCTL_OTLP_ENDPOINT=http://127.0.0.1:4318",
	    "TRSTCTL_OTLP_INSECURE=true" },
	  NULL },
	{ { DSN, "TRSTCTL_OTLP_ENABLED=true", "TRSTCTL_OTLP_ENDPOINT=collector:4318" },
	  "otlp.endpoint \"collector:4318\" must be an absolute URL" },
	{ { DSN, "TRSTCTL_OTLP_ENABLED=true", "TRSTCTL_OTLP_ENDPOINT=https://c.example",
	    "TRSTCTL_OTLP_BEARER_TOKEN=t", "TRSTCTL_OTLP_BEARER_TOKEN_FILE=/f" },
	  "otlp.token and otlp.token_file are mutually exclusive" },
	{ { DSN, "TRSTCTL_OTLP_HEADERS=novalue" },
	  "otlp.headers entry \"novalue\" is invalid: want Name=value" },
	{ { DSN, "TRSTCTL_OTLP_TIMEOUT=0s" }, "otlp.timeout must be positive" },
	{ { DSN, "TRSTCTL_OTLP_BATCH_SIZE=0" }, "otlp.batch_size must be between 1 and 100000" },
	{ { DSN, "TRSTCTL_OTLP_ENABLED=true", "TRSTCTL_OTLP_ENDPOINT=https://c.example",
	    "TRSTCTL_OTLP_SERVICE_NAME=tr\001ctl" },
	  "otlp.service_name must be 1 to 255 printable ASCII characters" },
	{ { DSN, "TRSTCTL_OTLP_BATCH_INTERVAL=0s" }, "otlp.batch_interval must be positive" },
	{ { DSN, "TRSTCTL_OTLP_RETRY_MAX_ELAPSED=2h" },
	  "otlp.retry_max_elapsed must be at most 1h" },
	{ { DSN, "TRSTCTL_AI_MODEL_ALLOW_EGRESS=true" },
	  "ai.model.allow_egress is only valid when ai.model.mode is cloud" },
	{ { DSN, "TRSTCTL_AI_MODEL_MODE=bogus" },
	  "ai.model.mode \"bogus\" is invalid (want \"off\", \"local\", or \"cloud\")" },
	{ { DSN, "TRSTCTL_AI_MODEL_MODE=local", "TRSTCTL_AI_MODEL_NAME=llama3",
	    "TRSTCTL_AI_MODEL_ENDPOINT=http://127.0.0.1:11434/api/generate" },
	  "ai.model.runtime \"\" is invalid for local mode (want \"ollama\" or \"vllm\")" },
	{ { DSN, "TRSTCTL_AI_MODEL_MODE=local", "TRSTCTL_AI_MODEL_RUNTIME=ollama",
	    "TRSTCTL_AI_MODEL_ENDPOINT=http://127.0.0.1:11434/api/generate" },
	  "ai.model.name is required when ai.model.mode is local" },
	{ { DSN, "TRSTCTL_AI_MODEL_MODE=local", "TRSTCTL_AI_MODEL_RUNTIME=ollama",
	    "TRSTCTL_AI_MODEL_NAME=llama3",
	    "TRSTCTL_AI_MODEL_ENDPOINT=http://127.0.0.1:11434/api/generate" },
	  NULL },
	{ { DSN, "TRSTCTL_AI_MODEL_MODE=LOCAL", "TRSTCTL_AI_MODEL_RUNTIME=ollama",
	    "TRSTCTL_AI_MODEL_NAME=llama3",
	    "TRSTCTL_AI_MODEL_ENDPOINT=http://ollama.example.com:11434" },
	  "ai.model.endpoint \"http://ollama.example.com:11434\" must use https unless it is a "
	  "loopback or allowlisted private local model endpoint" },
	/* the original's documented air-gap example, which could not boot there, boots here */
	{ { DSN, "TRSTCTL_AIRGAP_ENABLED=true", "TRSTCTL_AI_MODEL_MODE=local",
	    "TRSTCTL_AI_MODEL_RUNTIME=ollama", "TRSTCTL_AI_MODEL_NAME=llama3",
	    "TRSTCTL_AI_MODEL_ENDPOINT=http://ollama.ai.svc:11434",
	    "TRSTCTL_AIRGAP_ALLOW_HOSTS=ollama.ai.svc" },
	  NULL },
	{ { DSN, "TRSTCTL_AI_MODEL_MODE=local", "TRSTCTL_AI_MODEL_RUNTIME=vllm",
	    "TRSTCTL_AI_MODEL_NAME=m", "TRSTCTL_AI_MODEL_PROVIDER=openai",
	    "TRSTCTL_AI_MODEL_ENDPOINT=https://10.0.0.5/v1" },
	  "ai.model.provider is only valid when ai.model.mode is cloud; use ai.model.runtime for "
	  "local models" },
	{ { DSN, "TRSTCTL_AI_MODEL_MODE=local", "TRSTCTL_AI_MODEL_RUNTIME=vllm",
	    "TRSTCTL_AI_MODEL_NAME=m", "TRSTCTL_AI_MODEL_ENDPOINT=https://u:p@10.0.0.5/v1" },
	  "ai.model.endpoint must not include credentials in the URL" },
	{ { DSN, "TRSTCTL_AI_MODEL_MODE=cloud", "TRSTCTL_AI_MODEL_PROVIDER=openai",
	    "TRSTCTL_AI_MODEL_NAME=gpt", "TRSTCTL_AI_MODEL_ENDPOINT=https://api.example.com/v1" },
	  "ai.model.allow_egress=true is required when ai.model.mode is cloud" },
	{ { DSN, "TRSTCTL_AI_MODEL_MODE=cloud", "TRSTCTL_AI_MODEL_PROVIDER=openai",
	    "TRSTCTL_AI_MODEL_NAME=gpt", "TRSTCTL_AI_MODEL_ALLOW_EGRESS=true",
	    "TRSTCTL_AI_MODEL_RUNTIME=vllm",
	    "TRSTCTL_AI_MODEL_ENDPOINT=http://api.example.com/v1" },
	  "ai.model.endpoint \"http://api.example.com/v1\" must use https for cloud model egress" },
	{ { DSN, "TRSTCTL_AI_MODEL_MODE=cloud", "TRSTCTL_AI_MODEL_PROVIDER=openai",
	    "TRSTCTL_AI_MODEL_NAME=gpt", "TRSTCTL_AI_MODEL_ALLOW_EGRESS=true",
	    "TRSTCTL_AI_MODEL_RUNTIME=vllm", "TRSTCTL_AI_MODEL_ENDPOINT=https://api.example.com" },
	  "ai.model.runtime is only valid when ai.model.mode is local" },
	{ { DSN, "TRSTCTL_TELEMETRY_ENABLED=true",
	    "TRSTCTL_TELEMETRY_ENDPOINT=http://telemetry.example.com" },
	  "telemetry.endpoint \"http://telemetry.example.com\" must be an absolute https URL" },
	{ { DSN, "TRSTCTL_TELEMETRY_ENABLED=true" }, NULL },
	{ { DSN, "TRSTCTL_TELEMETRY_ENABLED=true", "TRSTCTL_TELEMETRY_CA_FILE=/etc/ca.pem" },
	  NULL },
	{ { DSN, "TRSTCTL_AI_ENABLE_API=true" },
	  "ai.enable_api=true needs a local model: set ai.model.mode=local with "
	  "ai.model.runtime, ai.model.endpoint and ai.model.name" },
	{ { DSN, "TRSTCTL_AI_ENABLE_API=true", "TRSTCTL_AI_MODEL_MODE=cloud",
	    "TRSTCTL_AI_MODEL_PROVIDER=openai", "TRSTCTL_AI_MODEL_NAME=gpt",
	    "TRSTCTL_AI_MODEL_ALLOW_EGRESS=true",
	    "TRSTCTL_AI_MODEL_ENDPOINT=https://api.example.com/v1" },
	  "ai.enable_api=true serves local models only; ai.model.mode=cloud is not supported "
	  "by the Assist service" },
	{ { DSN, "TRSTCTL_AI_ENABLE_API=true", "TRSTCTL_AI_MODEL_MODE=local",
	    "TRSTCTL_AI_MODEL_RUNTIME=vllm", "TRSTCTL_AI_MODEL_NAME=m",
	    "TRSTCTL_AI_MODEL_ENDPOINT=https://10.0.0.5/v1/chat/completions",
	    "TRSTCTL_AI_MODEL_CA_FILE=/etc/model-ca.pem" },
	  NULL },
	{ { DSN, "TRSTCTL_AI_ENABLE_API=yes" }, "TRSTCTL_AI_ENABLE_API" },
	/* air-gap on: whether endpoints pass the egress policy is guard's check (test-names.c) */
	{ { DSN, "TRSTCTL_NATS_URL=http://nats:4222" },
	  "nats.url entry \"http://nats:4222\" must be a nats:// or tls:// URL" },
	/* server and log */
	{ { DSN, "TRSTCTL_SERVER_TLS_MODE=file" },
	  "server.tls.cert_file is required when server.tls.mode is file" },
	{ { DSN, "TRSTCTL_SERVER_TLS_MODE=disabled", "TRSTCTL_SERVER_ADDR=127.0.0.1:8080" },
	  "server.tls.mode=disabled requires explicit local-dev override "
	  "TRSTCTL_DEV_ALLOW_PLAINTEXT=true" },
	{ { DSN, "TRSTCTL_SERVER_TLS_MODE=disabled", "TRSTCTL_DEV_ALLOW_PLAINTEXT=true" },
	  "server.tls.mode=disabled requires a loopback server.addr" },
	{ { DSN, "TRSTCTL_SERVER_TLS_MODE=disabled", "TRSTCTL_DEV_ALLOW_PLAINTEXT=true",
	    "TRSTCTL_SERVER_ADDR=[::1]:8080" },
	  NULL },
	{ { DSN, "TRSTCTL_SERVER_TLS_MODE=disabled", "TRSTCTL_DEV_ALLOW_PLAINTEXT=true",
	    "TRSTCTL_SERVER_ADDR=localhost:8080" },
	  NULL },
	{ { DSN, "TRSTCTL_SERVER_TLS_MODE=plain" },
	  "server.tls.mode \"plain\" is invalid (want \"internal\", \"file\", or \"disabled\")" },
	{ { DSN, "TRSTCTL_SERVER_ADDR=8443" }, "server.addr \"8443\" is invalid" },
	{ { DSN, "TRSTCTL_LOG_LEVEL=trace" },
	  "log.level \"trace\" is invalid (want debug, info, warn, or error)" },
	{ { DSN, "TRSTCTL_LOG_FORMAT=xml" }, "log.format \"xml\" is invalid (want json or text)" },
	{ { DSN, "TRSTCTL_SERVER_WORKERS=257" }, "server.workers must be between 0 and 256" },
	/* streams: the unauthenticated share stays below the total */
	{ { DSN, "TRSTCTL_SERVER_MAX_STREAMS=64" }, NULL },
	{ { DSN, "TRSTCTL_SERVER_MAX_STREAMS=64", "TRSTCTL_SERVER_MAX_UNAUTHENTICATED_STREAMS=64" },
	  "server.max_unauthenticated_streams (64) must be less than server.max_streams (64), so "
	  "that calls with a token keep a share" },
	{ { DSN, "TRSTCTL_SERVER_MAX_STREAMS=1" }, "server.max_streams must be between 2 and 65536" },
	{ { DSN, "TRSTCTL_SERVER_MAX_STREAMS_PER_CONNECTION=0" },
	  "server.max_streams_per_connection must be between 1 and 65536" },
	{ { DSN, "TRSTCTL_METRICS_READ_TIMEOUT=0" }, "metrics.read_timeout must be positive" },
	{ { DSN, "TRSTCTL_METRICS_READ_TIMEOUT=2h" }, "metrics.read_timeout must be at most 1h" },
	{ { DSN, "TRSTCTL_METRICS_MAX_CONNECTIONS=3" },
	  "metrics.max_connections must be between 4 and 65536" },
	{ { DSN, "TRSTCTL_SERVER_WORKERS=many" },
	  "TRSTCTL_SERVER_WORKERS \"many\" is invalid: want an integer" },
	{ { DSN, "TRSTCTL_AIRGAP_ENABLED=yes" },
	  "TRSTCTL_AIRGAP_ENABLED \"yes\" is invalid: want true or false" },
	{ { DSN, "TRSTCTL_SERVER_SHUTDOWN_GRACE=10" },
	  "TRSTCTL_SERVER_SHUTDOWN_GRACE \"10\" is invalid: want a duration" },
	{ { DSN, "TRSTCTL_AIRGAP_ENFORCER=kernel" },
	  "air_gap.enforcer \"kernel\" is invalid (want \"auto\", \"ebpf\", \"userspace\", or \"pinned\")" },
	{ { DSN, "TRSTCTL_AIRGAP_TRIPWIRE_ADDR=10.0.0.1:443" },
	  "air_gap.tripwire_addr \"10.0.0.1:443\" must be a public IP address and port" },
	{ { DSN, "TRSTCTL_AIRGAP_BPF_PIN_PATH=relative/pin" },
	  "air_gap.bpf_pin_path \"relative/pin\" must be an absolute path" },
	/* the internal server certificate */
	{ { DSN, "TRSTCTL_SERVER_TLS_SANS=trstctl.ns.svc,*.ns.svc,10.1.2.3,fd00::1" }, NULL },
	{ { DSN, "TRSTCTL_SERVER_TLS_SANS=a..b" },
	  "server.tls.sans entry \"a..b\" must be a DNS name or an IP address" },
	{ { DSN, "TRSTCTL_SERVER_TLS_SANS=host.example,HOST.example" },
	  "server.tls.sans entry \"HOST.example\" is listed twice" },
	{ { DSN, "TRSTCTL_SERVER_TLS_SANS=::1,0::1" },
	  "server.tls.sans entry \"0::1\" is listed twice" },
	{ { DSN, "TRSTCTL_SERVER_TLS_VALIDITY=1h", "TRSTCTL_SERVER_TLS_RENEW_BEFORE=1h" },
	  "server.tls.renew_before must be shorter than server.tls.validity" },
	{ { DSN, "TRSTCTL_SERVER_TLS_VALIDITY=20s", "TRSTCTL_SERVER_TLS_RENEW_BEFORE=15s" }, NULL },
	{ { DSN, "TRSTCTL_SERVER_TLS_VALIDITY=900000h" },
	  "server.tls.validity must be at most 876000h" },
	{ { DSN, "TRSTCTL_SERVER_SHUTDOWN_GRACE=2h" }, "server.shutdown_grace must be at most 1h" },
	/* A quoted value keeps the error list on one line (found by fuzz-cfg). */
	{ { DSN, "TRSTCTL_AIRGAP_ALLOW_HOSTS=res://A=\n\x1b[2J'" },
	  "air_gap.allow_hosts entry \"res://A=??[2J'\" must be a host, not a URL" },
};

static void test_rules(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rule_cases) / sizeof(rule_cases[0]); i++) {
		const struct rule_case *rc = &rule_cases[i];
		char *err = load((char *const *)rc->env, NULL);

		if (!rc->want && err)
			fail_msg("case %zu (%s): unexpected error: %s", i, rc->env[1], err);
		if (rc->want && !err)
			fail_msg("case %zu (%s): loaded, want \"%s\"", i, rc->env[1], rc->want);
		if (rc->want && !strstr(err, rc->want))
			fail_msg("case %zu: want \"%s\" in \"%s\"", i, rc->want, err);
		free(err);
	}
}

static void test_all_errors_reported_together(void **state)
{
	char *env[] = { "TRSTCTL_AIRGAP_ENABLED=true", "TRSTCTL_TELEMETRY_ENABLED=true",
			"TRSTCTL_LOG_LEVEL=loud", DSN, NULL };
	char *err = load(env, NULL);

	(void)state;
	assert_non_null(err);
	assert_string_equal(err,
			    "log.level \"loud\" is invalid (want debug, info, warn, or error); "
			    "telemetry.enabled must be false when air_gap.enabled is true");
	free(err);
}

static void test_defaults(void **state)
{
	char *env[] = { DSN, "PATH=/bin", NULL };
	struct cfg *c = NULL;

	(void)state;
	assert_null(load(env, &c));
	assert_string_equal(c->server.addr, ":8443");
	assert_int_equal(c->server.tls_mode, CFG_TLS_INTERNAL);
	assert_null(c->server.tls_cert_file);
	assert_int_equal(c->server.workers, 0);
	assert_int_equal(c->server.pool_queue, 1024);
	assert_int_equal(c->server.max_streams, 256);
	assert_int_equal(c->server.max_streams_per_connection, 16);
	assert_int_equal(c->server.max_unauthenticated_streams, 128); /* half of max_streams */
	assert_int_equal(c->server.max_request_bytes, 4194304);
	assert_int_equal(c->server.shutdown_grace_ms, 10000);
	/* the loopback names, then this host's name when it is a DNS name */
	assert_true(c->server.n_tls_sans == 3 || c->server.n_tls_sans == 4);
	assert_string_equal(c->server.tls_sans[0], "localhost");
	assert_string_equal(c->server.tls_sans[1], "127.0.0.1");
	assert_string_equal(c->server.tls_sans[2], "::1");
	if (c->server.n_tls_sans == 4)
		assert_true(net_dns_name_valid(c->server.tls_sans[3]));
	assert_int_equal(c->server.tls_validity_ms, 2160LL * 3600 * 1000);
	assert_int_equal(c->server.tls_renew_before_ms, 720LL * 3600 * 1000);
	assert_string_equal(c->log.level, "info");
	assert_string_equal(c->log.format, "json");
	assert_string_equal(c->metrics.addr, "127.0.0.1:9464");
	assert_int_equal(c->metrics.read_timeout_ms, 5000);
	assert_int_equal(c->metrics.max_connections, 256);
	assert_string_equal(c->secrets.kek_file, "data/secrets/kek.bin");
	assert_false(c->air_gap.enabled);
	assert_true(c->air_gap.allow_private);
	assert_int_equal(c->air_gap.enforcer, CFG_ENFORCER_AUTO);
	assert_string_equal(c->air_gap.bpf_pin_path, "/sys/fs/bpf/trstctl");
	assert_string_equal(c->air_gap.cgroup, "trstctl");
	assert_string_equal(c->air_gap.tripwire_addr, "203.0.113.1:443");
	assert_int_equal(c->telemetry.interval_ms, 24 * 3600 * 1000);
	assert_int_equal(c->otlp.timeout_ms, 5000);
	assert_int_equal(c->otlp.queue_size, 1024);
	assert_int_equal(c->otlp.batch_size, 512);
	assert_int_equal(c->otlp.batch_interval_ms, 5000);
	assert_int_equal(c->otlp.retry_max_elapsed_ms, 60000);
	assert_int_equal(c->ai_model.mode, CFG_AI_OFF);
	assert_null(c->nats.url);
	assert_int_equal(c->n_unknown_env, 0);
	cfg_free(c);
}

/* The unauthenticated share follows max_streams unless set; a bad max_streams is one error. */
static void test_stream_shares(void **state)
{
	char *derived[] = { DSN, "TRSTCTL_SERVER_MAX_STREAMS=9", NULL };
	char *zero[] = { DSN, "TRSTCTL_SERVER_MAX_UNAUTHENTICATED_STREAMS=0", NULL };
	char *set[] = { DSN, "TRSTCTL_SERVER_MAX_UNAUTHENTICATED_STREAMS=3", NULL };
	char *one[] = { DSN, "TRSTCTL_SERVER_MAX_STREAMS=1", NULL };
	struct cfg *c = NULL;
	char *err;

	(void)state;
	assert_null(load(derived, &c));
	assert_int_equal(c->server.max_unauthenticated_streams, 4);
	c = cfg_free(c);
	assert_null(load(zero, &c)); /* 0 is the default */
	assert_int_equal(c->server.max_unauthenticated_streams, 128);
	c = cfg_free(c);
	assert_null(load(set, &c));
	assert_int_equal(c->server.max_unauthenticated_streams, 3);
	c = cfg_free(c);
	err = load(one, NULL);
	assert_string_equal(err, "server.max_streams must be between 2 and 65536");
	free(err);
}

static void test_env_parsing(void **state)
{
	char *env[] = { DSN,
			"TRSTCTL_AIRGAP_ALLOW_HOSTS= a.example , ,b.example,, ",
			"TRSTCTL_AIRGAP_ALLOW_PRIVATE=F",
			"TRSTCTL_AIRGAP_ENABLED=1",
			"TRSTCTL_SERVER_SHUTDOWN_GRACE=1m30s",
			"TRSTCTL_SERVER_ADDR=", /* empty never overrides */
			"TRSTCTL_STATE_DIR=/var/lib/trstctl",
			"TRSTCTL_AIRGAP_ENFORCER= EBPF ",
			"TRSTCTL_AIRGAP_ENABLE=true", /* a typo: reported, not fatal */
			"TRSTCTL_ADDR=h:1", /* a client setting, known */
			"TRSTCTL_SERVER_WORKERS=3",
			"TRSTCTL_SERVER_WORKERS=9", /* the first occurrence wins */
			NULL };
	struct cfg *c = NULL;

	(void)state;
	assert_null(load(env, &c));
	assert_int_equal(c->air_gap.n_allow_hosts, 2);
	assert_string_equal(c->air_gap.allow_hosts[0], "a.example");
	assert_string_equal(c->air_gap.allow_hosts[1], "b.example");
	assert_false(c->air_gap.allow_private);
	assert_true(c->air_gap.enabled);
	assert_int_equal(c->server.shutdown_grace_ms, 90000);
	assert_string_equal(c->server.addr, ":8443");
	assert_string_equal(c->secrets.kek_file, "/var/lib/trstctl/secrets/kek.bin");
	assert_string_equal(c->telemetry.instance_id_file,
			    "/var/lib/trstctl/telemetry/instance-id");
	assert_int_equal(c->air_gap.enforcer, CFG_ENFORCER_EBPF);
	assert_int_equal(c->server.workers, 3);
	assert_int_equal(c->n_unknown_env, 1);
	assert_string_equal(c->unknown_env[0], "TRSTCTL_AIRGAP_ENABLE");
	cfg_free(c);
}

/* enforcer pinned (the guard `trstctl guard attach` left) is a valid name like the others. */
static void test_enforcer_pinned(void **state)
{
	char *env[] = { DSN, "TRSTCTL_AIRGAP_ENABLED=true", "TRSTCTL_AIRGAP_ENFORCER=Pinned",
			NULL };
	struct cfg *c = NULL;

	(void)state;
	assert_null(load(env, &c));
	assert_int_equal(c->air_gap.enforcer, CFG_ENFORCER_PINNED);
	assert_string_equal(cfg_enforcer_name(c->air_gap.enforcer), "pinned");
	cfg_free(c);
}

static void test_booleans(void **state)
{
	static const char *const t[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const f[] = { "0", "f", "F", "FALSE", "false", "False" };

	(void)state;
	for (size_t i = 0; i < 6; i++) {
		char a[64], b[64];
		char *env[] = { DSN, a, b, NULL };
		struct cfg *c = NULL;

		snprintf(a, sizeof(a), "TRSTCTL_OTLP_INSECURE=%s", t[i]);
		snprintf(b, sizeof(b), "TRSTCTL_AIRGAP_ALLOW_PRIVATE=%s", f[i]);
		assert_null(load(env, &c));
		assert_true(c->otlp.insecure);
		assert_false(c->air_gap.allow_private);
		cfg_free(c);
	}
}

static void test_durations(void **state)
{
	static const struct {
		const char *s;
		int64_t ms;
	} ok[] = { { "0", 0 },		{ "500ms", 500 },     { "10s", 10000 },	  { "1m", 60000 },
		   { "24h", 86400000 }, { "1h30m", 5400000 }, { "2s500ms", 2500 } };
	static const char *const bad[] = { "", "10", "s", "1d", "-1s", "1.5s", "10 s", "1sx" };
	int64_t ms;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(cfg_parse_duration(ok[i].s, &ms), 0);
		assert_int_equal(ms, ok[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(cfg_parse_duration(bad[i], &ms), -EINVAL);
}

static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/test-cfg-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_file_precedence(void **state)
{
	char *path =
		write_tmp("{\"server\": {\"addr\": \"127.0.0.1:9000\", \"workers\": 4,"
			  " \"tls\": {\"mode\": \"file\", \"cert_file\": \"/c\","
			  " \"key_file\": \"/k\"}},"
			  " \"log\": {\"level\": \"debug\"},"
			  " \"air_gap\": {\"enabled\": true, \"allow_cidrs\": [\"10.0.0.0/8\"]},"
			  " \"ai\": {\"model\": {\"mode\": \"off\"}},"
			  " \"postgres\": {\"dsn\": \"host=/tmp\"}}");
	char file[256];
	char *env[] = { file, "TRSTCTL_LOG_LEVEL=warn", NULL };
	struct cfg *c = NULL;

	(void)state;
	snprintf(file, sizeof(file), "TRSTCTL_CONFIG_FILE=%s", path);
	assert_null(load(env, &c));
	assert_string_equal(c->server.addr, "127.0.0.1:9000"); /* file beats default */
	assert_int_equal(c->server.workers, 4);
	assert_int_equal(c->server.tls_mode, CFG_TLS_FILE);
	assert_string_equal(c->log.level, "warn"); /* environment beats file */
	assert_true(c->air_gap.enabled);
	assert_int_equal(c->air_gap.n_allow_cidrs, 1);
	assert_string_equal(c->config_file, path);
	cfg_free(c);
	unlink(path);
	free(path);
}

static void test_file_strict(void **state)
{
	static const struct {
		const char *json;
		const char *want;
	} cases[] = {
		{ "{\"server\": {\"adr\": \":1\"}}", "config file: unknown key \"server.adr\"" },
		{ "{\"bogus\": 1}", "config file: unknown key \"bogus\"" },
		{ "{\"log\": {\"level\": \"info\", \"level\": \"debug\"}}",
		  "duplicate object key near '\"level\"'" },
		{ "{\"air_gap\": {\"enabled\": \"yes\"}}",
		  "config file: air_gap.enabled must be true or false" },
		{ "{\"server\": {\"workers\": \"4\"}}",
		  "config file: server.workers must be an integer" },
		{ "{\"air_gap\": {\"allow_hosts\": \"a,b\"}}",
		  "config file: air_gap.allow_hosts must be an array of strings" },
		{ "{\"server\": \"x\"}", "config file: server must be an object" },
		{ "[1]", "the top level must be an object" },
		{ "{\"server\": ", "(line 1, column" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *path = write_tmp(cases[i].json);
		char file[256];
		char *env[] = { file, DSN, NULL };
		char *err;

		snprintf(file, sizeof(file), "TRSTCTL_CONFIG_FILE=%s", path);
		err = load(env, NULL);
		if (!err || !strstr(err, cases[i].want))
			fail_msg("case %zu: want \"%s\" in \"%s\"", i, cases[i].want,
				 err ? err : "");
		free(err);
		unlink(path);
		free(path);
	}
	{
		char *env[] = { "TRSTCTL_CONFIG_FILE=/nonexistent/trstctl.json", DSN, NULL };
		char *err = load(env, NULL);

		assert_non_null(err);
		assert_non_null(strstr(err, "config file \"/nonexistent/trstctl.json\""));
		free(err);
	}
}

struct hosts {
	char buf[512];
};

static int collect(const char *host, int port, void *ud)
{
	struct hosts *h = ud;
	size_t n = strlen(h->buf);

	snprintf(h->buf + n, sizeof(h->buf) - n, "%s%s:%d", n ? " " : "", host, port);
	return 0;
}

static void test_dsn_hosts(void **state)
{
	static const struct {
		const char *dsn;
		const char *want; /* NULL = -EINVAL */
	} cases[] = {
		{ "postgres://u:p@db.example.com:6543/x", "db.example.com:6543" },
		{ "postgresql://db1,db2:5433/x", "db1:5432 db2:5433" },
		{ "postgres://[fd00::5]:5432/x?sslmode=require", "fd00::5:5432" },
		{ "postgres://%2Frun%2Fpostgresql/x", "" },
		{ "postgres:///x?host=/run/postgresql", "" },
		{ "postgres:///x?host=db.internal", "db.internal:5432" },
		{ "host=/tmp dbname=x", "" },
		{ "host=a,b port=1,2 dbname=x", "a:1 b:2" },
		{ "host = 'db.example.com' password='se cret' dbname=x", "db.example.com:5432" },
		{ "hostaddr=10.0.0.7 dbname=x", "10.0.0.7:5432" },
		{ "dbname=x", "" },
		{ "host='unterminated", NULL },
		{ "postgres://h:99999/x", NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hosts h = { { 0 } };
		int r = cfg_dsn_hosts(cases[i].dsn, collect, &h);

		if (!cases[i].want) {
			assert_int_equal(r, -EINVAL);
			continue;
		}
		assert_int_equal(r, 0);
		if (strcmp(h.buf, cases[i].want))
			fail_msg("dsn %s: got \"%s\" want \"%s\"", cases[i].dsn, h.buf,
				 cases[i].want);
	}
}

static void test_redaction(void **state)
{
	static const struct {
		const char *in, *out;
	} dsn[] = {
		{ "postgres://u:secret@db:5432/x", "postgres://u:xxxxx@db:5432/x" },
		{ "postgres://u@db/x?password=secret&sslmode=require",
		  "postgres://u@db/x?password=xxxxx&sslmode=require" },
		{ "host=db password=secret dbname=x", "host=db password=xxxxx dbname=x" },
		{ "host=db password='se cret' dbname=x", "host=db password=xxxxx dbname=x" },
		{ "host='bad", "[unparseable connection string; redacted]" },
	};
	char *env[] = {
		"TRSTCTL_POSTGRES_DSN=postgres://app:hunter2@db:5432/trstctl",
		"TRSTCTL_NATS_URL=nats://svc:natspw@127.0.0.1:4222,nats://tok@127.0.0.2:4222",
		"TRSTCTL_OTLP_BEARER_TOKEN=tok-123",
		"TRSTCTL_OTLP_HEADERS=Authorization=Bearer abc,X-Tenant=t1", NULL
	};
	struct cfg *c = NULL;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	for (size_t i = 0; i < sizeof(dsn) / sizeof(dsn[0]); i++) {
		char *r = cfg_dsn_redact(dsn[i].in);

		assert_string_equal(r, dsn[i].out);
		free(r);
	}
	assert_null(load(env, &c));
	f = open_memstream(&out, &len);
	assert_int_equal(cfg_print(c, f), 0);
	fclose(f);
	assert_null(strstr(out, "hunter2"));
	assert_null(strstr(out, "natspw"));
	assert_null(strstr(out, "tok-123"));
	assert_null(strstr(out, "abc"));
	assert_null(strstr(out, "tok@"));
	assert_non_null(strstr(out, "postgres.dsn: postgres://app:xxxxx@db:5432/trstctl\n"));
	assert_non_null(strstr(out, "nats.url: nats://svc:xxxxx@127.0.0.1:4222,"
				    "nats://xxxxx@127.0.0.2:4222\n"));
	assert_non_null(strstr(out, "otlp.token: xxxxx\n"));
	assert_non_null(strstr(out, "otlp.headers: Authorization=xxxxx,X-Tenant=xxxxx\n"));
	free(out);
	cfg_free(c);
}

static void test_secret_not_in_errors(void **state)
{
	char *env[] = { "TRSTCTL_POSTGRES_DSN=postgres://u:hunter2@db.example.com/x",
			"TRSTCTL_AIRGAP_ENABLED=true", "TRSTCTL_NATS_URL=http://u:natspw@nats:4222",
			NULL };
	char *err = load(env, NULL);

	(void)state;
	assert_non_null(err);
	assert_null(strstr(err, "hunter2"));
	assert_null(strstr(err, "natspw"));
	free(err);
}

static void test_hostport(void **state)
{
	char *h;
	int port;

	(void)state;
	assert_int_equal(net_split_hostport(":8443", &h, &port), 0);
	assert_string_equal(h, "");
	assert_int_equal(port, 8443);
	free(h);
	assert_int_equal(net_split_hostport("[::1]:80", &h, &port), 0);
	assert_string_equal(h, "::1");
	free(h);
	assert_int_equal(net_split_hostport("::1:80", &h, &port), -EINVAL);
	assert_int_equal(net_split_hostport("127.0.0.1:0", &h, &port), 0);
	assert_int_equal(port, 0);
	free(h);
	assert_int_equal(net_split_hostport("host:65536", &h, &port), -EINVAL);
	assert_int_equal(net_split_hostport("host", &h, &port), -EINVAL);
	assert_true(cfg_addr_is_loopback("127.0.0.2:1"));
	assert_true(cfg_addr_is_loopback("[::1]:1"));
	assert_true(cfg_addr_is_loopback("localhost:1"));
	assert_false(cfg_addr_is_loopback(":8443"));
	assert_false(cfg_addr_is_loopback("0.0.0.0:8443"));
	assert_false(cfg_addr_is_loopback("10.0.0.1:8443"));
}

static void test_print_order(void **state)
{
	char *env[] = { DSN, NULL };
	struct cfg *c = NULL;
	char *out = NULL, *desc = NULL;
	size_t len = 0, dlen = 0;
	FILE *f;
	const char *p, *d;

	(void)state;
	assert_null(load(env, &c));
	f = open_memstream(&out, &len);
	cfg_print(c, f);
	fclose(f);
	f = open_memstream(&desc, &dlen);
	cfg_describe(f);
	fclose(f);
	/* one print line per described setting, in the same order */
	p = out;
	d = strchr(desc, '\n') + 1; /* skip TRSTCTL_CONFIG_FILE */
	while (*d) {
		const char *key = strchr(d, '\t') + 1;
		size_t klen = (size_t)(strchr(key, '\t') - key);

		assert_memory_equal(p, key, klen);
		assert_memory_equal(p + klen, ": ", 2);
		p = strchr(p, '\n') + 1;
		d = strchr(d, '\n') + 1;
	}
	assert_int_equal(*p, 0);
	free(out);
	free(desc);
	cfg_free(c);
	assert_null(cfg_free(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_all_errors_reported_together),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_stream_shares),
		cmocka_unit_test(test_env_parsing),
		cmocka_unit_test(test_enforcer_pinned),
		cmocka_unit_test(test_booleans),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_file_precedence),
		cmocka_unit_test(test_file_strict),
		cmocka_unit_test(test_dsn_hosts),
		cmocka_unit_test(test_redaction),
		cmocka_unit_test(test_secret_not_in_errors),
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_print_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
