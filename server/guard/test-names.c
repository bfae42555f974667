/*
 * Unit tests of guard-names.c without DNS: the configuration check with literal and
 * allow_hosts endpoints (nothing to resolve), and the judgement of resolved names with
 * answers written by hand. Name resolution itself is tested by the golden cases of
 * --check-config, which run with a private /etc/hosts in their own namespaces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <netdb.h>

#include "cfg.h"
#include "guard-internal.h"
#include "guard.h"

#define DSN "TRSTCTL_POSTGRES_DSN=host=/tmp dbname=trstctl"

static const struct {
	const char *env[8];
	const char *want; /* expected error, NULL = loads */
} cases[] = {
	{ { "TRSTCTL_POSTGRES_DSN=postgres://u:pw@db.example.com:5432/x",
	    "TRSTCTL_AIRGAP_ENABLED=true", "TRSTCTL_AIRGAP_ALLOW_HOSTS=db.example.com" },
	  NULL },
	{ { "TRSTCTL_POSTGRES_DSN=host=10.1.2.3 port=5432 dbname=x",
	    "TRSTCTL_AIRGAP_ENABLED=true" },
	  NULL },
	{ { "TRSTCTL_POSTGRES_DSN=host=10.1.2.3 port=5432 dbname=x", "TRSTCTL_AIRGAP_ENABLED=true",
	    "TRSTCTL_AIRGAP_ALLOW_PRIVATE=false" },
	  "postgres.dsn host \"10.1.2.3\" is not allowed in air-gap mode" },
	{ { "TRSTCTL_POSTGRES_DSN=host=10.1.2.3 port=5432 dbname=x", "TRSTCTL_AIRGAP_ENABLED=true",
	    "TRSTCTL_AIRGAP_ALLOW_PRIVATE=false", "TRSTCTL_AIRGAP_ALLOW_CIDRS=10.0.0.0/8:5432" },
	  NULL },
	{ { "TRSTCTL_POSTGRES_DSN=host=10.1.2.3 port=6432 dbname=x", "TRSTCTL_AIRGAP_ENABLED=true",
	    "TRSTCTL_AIRGAP_ALLOW_PRIVATE=false", "TRSTCTL_AIRGAP_ALLOW_CIDRS=10.0.0.0/8:5432" },
	  "postgres.dsn host \"10.1.2.3\" is not allowed in air-gap mode" },
	{ { "TRSTCTL_POSTGRES_DSN=host=/run/postgresql dbname=x", "TRSTCTL_AIRGAP_ENABLED=true",
	    "TRSTCTL_AIRGAP_ALLOW_PRIVATE=false" },
	  NULL },
	{ { DSN, "TRSTCTL_AIRGAP_ENABLED=true", "TRSTCTL_NATS_URL=nats://8.8.8.8:4222" },
	  "nats.url host \"8.8.8.8\" is not allowed in air-gap mode" },
	{ { DSN, "TRSTCTL_AIRGAP_ENABLED=true", "TRSTCTL_OTLP_ENABLED=true",
	    "TRSTCTL_OTLP_ENDPOINT=http://otel-collector.observability.svc:4318",
	    "TRSTCTL_OTLP_INSECURE=true",
	    "TRSTCTL_AIRGAP_ALLOW_HOSTS=otel-collector.observability.svc" },
	  NULL },
	{ { DSN, "TRSTCTL_AIRGAP_ENABLED=true", "TRSTCTL_AI_MODEL_MODE=local",
	    "TRSTCTL_AI_MODEL_RUNTIME=ollama", "TRSTCTL_AI_MODEL_NAME=m",
	    "TRSTCTL_AI_MODEL_ENDPOINT=http://192.168.1.9:11434/api",
	    "TRSTCTL_AIRGAP_ALLOW_PRIVATE=false" },
	  "ai.model.endpoint host \"192.168.1.9\" is not allowed in air-gap mode" },
	/* air-gap off: nothing is checked or resolved */
	{ { "TRSTCTL_POSTGRES_DSN=postgres://u:pw@db.example.com:5432/x" }, NULL },
};

static void test_config_check(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cfg *c = NULL;
		char *err = NULL;
		/* arg NULL: allow_hosts names are not looked up (no DNS in a unit test) */
		int r = cfg_load_checked((char *const *)cases[i].env, guard_config_check, NULL,
					 &c, &err);

		if (cases[i].want) {
			if (r != -EINVAL || !err || strcmp(err, cases[i].want))
				fail_msg("case %zu: got %d \"%s\", want \"%s\"", i, r,
					 err ? err : "", cases[i].want);
		} else if (r != 0) {
			fail_msg("case %zu: got %d \"%s\", want success", i, r, err ? err : "");
		}
		free(err);
		cfg_free(c);
	}
}

/* A name with a hand-written answer, judged against the policy of env. */
static int judge(const char *const *env, const char *const *addrs, int error, char *why,
		 size_t len)
{
	struct guard_name nm = { .key = "postgres.dsn", .host = "pg.internal", .port = 5432,
				 .error = error };
	struct guard_policy *pol = NULL;
	struct cfg *c = NULL;
	char *err = NULL;
	int r;

	assert_int_equal(cfg_load((char *const *)env, &c, &err), 0);
	assert_int_equal(guard_policy_new(c, &pol), 0);
	for (; addrs && *addrs; addrs++)
		assert_int_equal(net_addr_parse(*addrs, &nm.addrs[nm.n_addrs++]), 0);
	r = guard_name_judge(&nm, pol, why, len);
	guard_policy_free(pol);
	cfg_free(c);
	return r;
}

static void test_judge(void **state)
{
	const char *on[] = { DSN, "TRSTCTL_AIRGAP_ENABLED=true", NULL };
	const char *strict[] = { DSN, "TRSTCTL_AIRGAP_ENABLED=true",
				 "TRSTCTL_AIRGAP_ALLOW_PRIVATE=false",
				 "TRSTCTL_AIRGAP_ALLOW_CIDRS=10.9.0.0/16:5432", NULL };
	const char *priv[] = { "10.1.2.3", "fd00::7", NULL };
	const char *mixed[] = { "10.1.2.3", "8.8.8.8", NULL };
	const char *cidr[] = { "10.9.1.1", NULL };
	const char *meta[] = { "169.254.169.254", NULL };
	char why[512] = "";

	(void)state;
	assert_int_equal(judge(on, priv, 0, why, sizeof(why)), 0);
	assert_int_equal(judge(on, mixed, 0, why, sizeof(why)), -EPERM);
	assert_string_equal(why, "postgres.dsn host \"pg.internal\" resolves to 8.8.8.8, a public "
				 "address, not allowed in air-gap mode");
	assert_int_equal(judge(on, meta, 0, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "resolves to 169.254.169.254, a metadata address"));
	assert_int_equal(judge(strict, cidr, 0, why, sizeof(why)), 0);
	assert_int_equal(judge(strict, priv, 0, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "resolves to 10.1.2.3, a private address"));
	assert_int_equal(judge(on, NULL, EAI_NONAME, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "postgres.dsn host \"pg.internal\" does not resolve"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_check),
		cmocka_unit_test(test_judge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
