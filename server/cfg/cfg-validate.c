/*
 * Validation of a merged configuration. Every rule adds its message and validation goes on,
 * so the operator sees all problems at once. The air-gap messages follow the original
 * product word for word. Addresses, prefixes and URLs are parsed by server/net, the same
 * parsers the egress guard uses. Whether an outbound endpoint passes the egress policy
 * (which needs the policy and DNS) is decided by server/guard, through the check that the
 * caller hands to cfg_load_checked(). Secret values (DSN passwords, tokens, header values)
 * never appear in messages.
 */
#include "cfg.h"
#include "cfg-internal.h"
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool host_is_loopback(const char *host)
{
	struct net_addr a;

	if (strcasecmp(host, "localhost") == 0)
		return true;
	return net_addr_parse(host, &a) == 0 && net_addr_classify(&a) == NET_ADDR_LOOPBACK &&
	       !(a.family == AF_INET && a.addr[0] == 0) &&
	       !(a.family == AF_INET6 && a.addr[15] == 0);
}

bool cfg_addr_is_loopback(const char *hostport)
{
	char *host;
	int port;
	bool r;

	if (net_split_hostport(hostport, &host, &port) < 0)
		return false;
	r = host_is_loopback(host);
	free(host);
	return r;
}

static void check_hostport(const char *key, const char *v, struct cfg_errs *e)
{
	char *host;
	int port;

	if (!v)
		return;
	if (net_split_hostport(v, &host, &port) < 0) {
		cfg_errs_add(e, "%s \"%s\" is invalid: want host:port, [ipv6]:port or :port", key,
			     v);
		return;
	}
	free(host);
}

/* One 17-byte key per address (family byte, then 4 or 16 bytes); false for no address. */
static bool ip_key(const char *s, unsigned char key[17])
{
	memset(key, 0, 17);
	if (inet_pton(AF_INET, s, key + 1) == 1)
		key[0] = 4;
	else if (inet_pton(AF_INET6, s, key + 1) == 1)
		key[0] = 6;
	return key[0] != 0;
}

/* The names of the internal certificate: DNS names or addresses, each once, at most 100. */
static void validate_sans(const struct cfg_server *s, struct cfg_errs *e)
{
	unsigned char a[17], b[17];

	if (s->tls_mode == CFG_TLS_INTERNAL && s->n_tls_sans == 0)
		cfg_errs_add(e, "server.tls.sans must name at least one DNS name or IP address "
				"when server.tls.mode is internal");
	if (s->n_tls_sans > 100)
		cfg_errs_add(e, "server.tls.sans has %zu entries; at most 100", s->n_tls_sans);
	for (size_t i = 0; i < s->n_tls_sans; i++) {
		const char *v = s->tls_sans[i];
		bool ip = ip_key(v, a);

		if (!ip && !net_dns_name_valid(v)) {
			cfg_errs_add(e,
				     "server.tls.sans entry \"%s\" must be a DNS name or an IP "
				     "address",
				     v);
			continue;
		}
		for (size_t j = 0; j < i; j++)
			if (ip ? ip_key(s->tls_sans[j], b) && !memcmp(a, b, sizeof(a)) :
				 !strcasecmp(v, s->tls_sans[j])) {
				cfg_errs_add(e, "server.tls.sans entry \"%s\" is listed twice", v);
				break;
			}
	}
	if (s->tls_renew_before_ms >= s->tls_validity_ms)
		cfg_errs_add(e, "server.tls.renew_before must be shorter than server.tls.validity");
}

static void validate_server(const struct cfg *c, struct cfg_errs *e)
{
	const struct cfg_server *s = &c->server;

	if (!s->addr)
		cfg_errs_add(e, "server.addr is required");
	check_hostport("server.addr", s->addr, e);
	if (s->tls_mode == CFG_TLS_FILE) {
		if (!s->tls_cert_file)
			cfg_errs_add(
				e, "server.tls.cert_file is required when server.tls.mode is file");
		if (!s->tls_key_file)
			cfg_errs_add(
				e, "server.tls.key_file is required when server.tls.mode is file");
	}
	if (s->tls_mode == CFG_TLS_DISABLED) {
		if (!s->dev_allow_plaintext)
			cfg_errs_add(
				e, "server.tls.mode=disabled requires explicit local-dev override "
				   "TRSTCTL_DEV_ALLOW_PLAINTEXT=true");
		if (s->addr && !cfg_addr_is_loopback(s->addr))
			cfg_errs_add(e,
				     "server.tls.mode=disabled requires a loopback server.addr "
				     "(127.0.0.0/8, ::1 or localhost), not \"%s\"",
				     s->addr);
		if (s->tls_client_ca_file)
			cfg_errs_add(
				e,
				"server.tls.client_ca_file needs TLS; server.tls.mode is disabled");
	}
	if (s->max_streams >= 2 && s->max_unauthenticated_streams >= s->max_streams)
		cfg_errs_add(e,
			     "server.max_unauthenticated_streams (%d) must be less than "
			     "server.max_streams (%d), so that calls with a token keep a share",
			     s->max_unauthenticated_streams, s->max_streams);
	validate_sans(s, e);
	check_hostport("metrics.addr", c->metrics.addr, e);
}

static void validate_log(const struct cfg *c, struct cfg_errs *e)
{
	const char *l = c->log.level, *f = c->log.format;

	if (!l ||
	    (strcmp(l, "debug") && strcmp(l, "info") && strcmp(l, "warn") && strcmp(l, "error")))
		cfg_errs_add(e, "log.level \"%s\" is invalid (want debug, info, warn, or error)",
			     l ? l : "");
	if (!f || (strcmp(f, "json") && strcmp(f, "text")))
		cfg_errs_add(e, "log.format \"%s\" is invalid (want json or text)", f ? f : "");
}

static int count_host(const char *host, int port, void *ud)
{
	(void)host;
	(void)port;
	(*(int *)ud)++;
	return 0;
}

static void validate_stores(const struct cfg *c, struct cfg_errs *e)
{
	int n = 0;

	if (!c->postgres.dsn)
		cfg_errs_add(e, "postgres.dsn is required (TRSTCTL_POSTGRES_DSN)");
	else if (cfg_dsn_hosts(c->postgres.dsn, count_host, &n) < 0)
		cfg_errs_add(e, "postgres.dsn is not a valid connection string "
				"(postgres://user:password@host:port/db or key=value pairs)");
	if (c->nats.url) {
		const char *p = c->nats.url;

		while (p) {
			size_t len = strcspn(p, ",");
			char *one = strndup(p, len);
			struct net_url u;

			if (!one) {
				e->oom = 1;
				return;
			}
			if (net_url_parse(one, &u) < 0 ||
			    (strcmp(u.scheme, "nats") && strcmp(u.scheme, "tls"))) {
				char *r = cfg_url_redact(one);

				cfg_errs_add(
					e, "nats.url entry \"%s\" must be a nats:// or tls:// URL",
					r ? r : "[redacted]");
				free(r);
			}
			free(one);
			p = p[len] ? p + len + 1 : NULL;
		}
	}
	if (!c->state_dir)
		cfg_errs_add(e, "state_dir is required");
}

static void validate_air_gap_lists(const struct cfg *c, struct cfg_errs *e)
{
	const struct cfg_air_gap *ag = &c->air_gap;

	for (size_t i = 0; i < ag->n_allow_hosts; i++) {
		char buf[256];

		if (strstr(ag->allow_hosts[i], "://"))
			cfg_errs_add(e,
				     "air_gap.allow_hosts entry \"%s\" must be a host, not a URL",
				     ag->allow_hosts[i]);
		else if (strchr(ag->allow_hosts[i], '/') || strchr(ag->allow_hosts[i], '@') ||
			 net_host_normalize(ag->allow_hosts[i], buf, sizeof(buf)) < 0)
			cfg_errs_add(e,
				     "air_gap.allow_hosts entry \"%s\" must be a host name or IP "
				     "address",
				     ag->allow_hosts[i]);
	}
	for (size_t i = 0; i < ag->n_allow_cidrs; i++) {
		struct net_prefix p;
		const char *why = "invalid";

		if (net_prefix_parse(ag->allow_cidrs[i], &p, &why) < 0)
			cfg_errs_add(e, "air_gap.allow_cidrs entry \"%s\" is invalid: %s",
				     ag->allow_cidrs[i], why);
	}
	/* two ports for one prefix cannot be represented in the kernel map */
	for (size_t i = 0; i < ag->n_allow_cidrs; i++) {
		struct net_prefix a, b;

		if (net_prefix_parse(ag->allow_cidrs[i], &a, NULL) < 0 || !a.port)
			continue;
		for (size_t j = i + 1; j < ag->n_allow_cidrs; j++) {
			if (net_prefix_parse(ag->allow_cidrs[j], &b, NULL) < 0 || !b.port)
				continue;
			if (a.family == b.family && a.prefix_len == b.prefix_len &&
			    memcmp(a.addr, b.addr, 16) == 0 && a.port != b.port)
				cfg_errs_add(
					e,
					"air_gap.allow_cidrs entries \"%s\" and \"%s\" give one "
					"prefix two ports; list it once without a port, or "
					"use narrower prefixes",
					ag->allow_cidrs[i], ag->allow_cidrs[j]);
		}
	}
	if (ag->bpf_pin_path && ag->bpf_pin_path[0] != '/')
		cfg_errs_add(e, "air_gap.bpf_pin_path \"%s\" must be an absolute path",
			     ag->bpf_pin_path);
	if (!ag->cgroup || strstr(ag->cgroup, ".."))
		cfg_errs_add(e, "air_gap.cgroup \"%s\" must be a cgroup name without \"..\"",
			     ag->cgroup ? ag->cgroup : "");
	if (ag->tripwire_addr) {
		char *host = NULL;
		int port;
		struct net_addr a;

		if (net_split_hostport(ag->tripwire_addr, &host, &port) < 0 || port == 0 ||
		    net_addr_parse(host, &a) < 0 || net_addr_classify(&a) != NET_ADDR_PUBLIC)
			cfg_errs_add(e,
				     "air_gap.tripwire_addr \"%s\" must be a public IP address and "
				     "port (it must be an address the guard denies)",
				     ag->tripwire_addr);
		free(host);
	}
}

/* True when url is an absolute URL with the given scheme (or http/https when scheme NULL). */
static bool url_ok(const char *url, struct net_url *u)
{
	return url && net_url_parse(url, u) == 0;
}

static void validate_telemetry(const struct cfg *c, struct cfg_errs *e)
{
	const struct cfg_telemetry *t = &c->telemetry;
	struct net_url u;

	if (!t->enabled)
		return;
	if (!t->endpoint)
		cfg_errs_add(e, "telemetry.endpoint is required when telemetry is enabled");
	else if (!url_ok(t->endpoint, &u) || strcmp(u.scheme, "https"))
		cfg_errs_add(e, "telemetry.endpoint \"%s\" must be an absolute https URL",
			     t->endpoint);
	if (!t->instance_id_file)
		cfg_errs_add(e, "telemetry.instance_id_file is required when telemetry is enabled");
}

/* 1..max bytes, each a printable ASCII character (space included). */
static bool printable_ascii(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

static void validate_otlp(const struct cfg *c, struct cfg_errs *e)
{
	const struct cfg_otlp *o = &c->otlp;
	struct net_url u;

	for (size_t i = 0; i < o->n_headers; i++) {
		const char *eq = strchr(o->headers[i], '=');

		if (!eq || eq == o->headers[i])
			cfg_errs_add(e, "otlp.headers entry \"%.*s\" is invalid: want Name=value",
				     (int)strcspn(o->headers[i], "="), o->headers[i]);
	}
	if (!o->enabled)
		return;
	if (!o->endpoint) {
		cfg_errs_add(e, "otlp.endpoint is required when otlp is enabled");
	} else if (!url_ok(o->endpoint, &u)) {
		char *r = cfg_url_redact(o->endpoint);

		cfg_errs_add(e, "otlp.endpoint \"%s\" must be an absolute URL",
			     r ? r : "[redacted]");
		free(r);
	} else if (!(strcmp(u.scheme, "https") == 0 ||
		     (strcmp(u.scheme, "http") == 0 && o->insecure))) {
		char *r = cfg_url_redact(o->endpoint);

		cfg_errs_add(e,
			     "otlp.endpoint \"%s\" must be https, or http with otlp.insecure=true",
			     r ? r : "[redacted]");
		free(r);
	}
	if (o->token && o->token_file)
		cfg_errs_add(e, "otlp.token and otlp.token_file are mutually exclusive");
	if (!o->service_name || !printable_ascii(o->service_name, 255))
		cfg_errs_add(e, "otlp.service_name must be 1 to 255 printable ASCII characters");
}

static const char *const egress_msg = "ai.model.allow_egress is only valid when ai.model.mode is "
				      "cloud";

static void validate_ai_endpoint(const struct cfg *c, struct cfg_errs *e)
{
	const struct cfg_ai_model *m = &c->ai_model;
	struct net_url u;

	if (!m->endpoint) {
		cfg_errs_add(e, "ai.model.endpoint is required when ai.model.mode is not off");
		return;
	}
	if (!url_ok(m->endpoint, &u) || (strcmp(u.scheme, "http") && strcmp(u.scheme, "https"))) {
		cfg_errs_add(e, "ai.model.endpoint \"%s\" must be an absolute http(s) URL",
			     m->endpoint);
		return;
	}
	if (u.has_userinfo) {
		cfg_errs_add(e, "ai.model.endpoint must not include credentials in the URL");
		return;
	}
	if (m->mode == CFG_AI_CLOUD) {
		if (strcmp(u.scheme, "https"))
			cfg_errs_add(
				e, "ai.model.endpoint \"%s\" must use https for cloud model egress",
				m->endpoint);
		return;
	}
	if (strcmp(u.scheme, "http") == 0) {
		struct net_addr a;
		bool ok = host_is_loopback(u.host) || strcmp(u.host, "localhost") == 0 ||
			  (strlen(u.host) > 10 &&
			   strcmp(u.host + strlen(u.host) - 10, ".localhost") == 0);

		/* a private host the operator allowlisted is as local as loopback */
		for (size_t i = 0; !ok && i < c->air_gap.n_allow_hosts; i++) {
			char buf[256];

			if (net_host_normalize(c->air_gap.allow_hosts[i], buf, sizeof(buf)) ==
				    0 &&
			    strcmp(buf, u.host) == 0)
				ok = true;
		}
		if (!ok && net_addr_parse(u.host, &a) == 0) {
			enum net_addr_class k = net_addr_classify(&a);

			/* with air-gap on, guard's endpoint check decides whether the policy
			 * allows it (guard_config_check) */
			ok = k == NET_ADDR_PRIVATE || k == NET_ADDR_LINK_LOCAL;
		}
		if (!ok)
			cfg_errs_add(
				e,
				"ai.model.endpoint \"%s\" must use https unless it is a loopback "
				"or allowlisted private local model endpoint",
				m->endpoint);
	}
}

static void validate_ai(const struct cfg *c, struct cfg_errs *e)
{
	const struct cfg_ai_model *m = &c->ai_model;

	switch (m->mode) {
	case CFG_AI_OFF:
		if (m->allow_egress)
			cfg_errs_add(e, "%s", egress_msg);
		return;
	case CFG_AI_LOCAL:
		if (!m->runtime || (strcmp(m->runtime, "ollama") && strcmp(m->runtime, "vllm")))
			cfg_errs_add(e,
				     "ai.model.runtime \"%s\" is invalid for local mode (want "
				     "\"ollama\" or \"vllm\")",
				     m->runtime ? m->runtime : "");
		if (m->provider)
			cfg_errs_add(e,
				     "ai.model.provider is only valid when ai.model.mode is cloud; "
				     "use ai.model.runtime for local models");
		if (m->allow_egress)
			cfg_errs_add(e, "%s", egress_msg);
		if (!m->name)
			cfg_errs_add(e, "ai.model.name is required when ai.model.mode is local");
		validate_ai_endpoint(c, e);
		return;
	case CFG_AI_CLOUD:
		if (!m->provider)
			cfg_errs_add(e,
				     "ai.model.provider is required when ai.model.mode is cloud");
		if (m->runtime)
			cfg_errs_add(e,
				     "ai.model.runtime is only valid when ai.model.mode is local");
		if (!m->name)
			cfg_errs_add(e, "ai.model.name is required when ai.model.mode is cloud");
		if (!m->allow_egress)
			cfg_errs_add(e,
				     "ai.model.allow_egress=true is required when ai.model.mode is "
				     "cloud");
		validate_ai_endpoint(c, e);
		return;
	}
}

/* The Assist service (trstctl.v1.Assist) asks a local model; it needs one configured. */
static void validate_ai_api(const struct cfg *c, struct cfg_errs *e)
{
	if (!c->ai_model.enable_api)
		return;
	if (c->ai_model.mode == CFG_AI_OFF)
		cfg_errs_add(e, "ai.enable_api=true needs a local model: set ai.model.mode=local "
				"with ai.model.runtime, ai.model.endpoint and ai.model.name");
	else if (c->ai_model.mode == CFG_AI_CLOUD)
		cfg_errs_add(e, "ai.enable_api=true serves local models only; ai.model.mode=cloud "
				"is not supported by the Assist service");
}

void cfg_validate(const struct cfg *c, struct cfg_errs *e)
{
	validate_server(c, e);
	validate_log(c, e);
	validate_stores(c, e);
	validate_air_gap_lists(c, e);
	if (c->air_gap.enabled && c->telemetry.enabled)
		cfg_errs_add(e, "telemetry.enabled must be false when air_gap.enabled is true");
	if (c->air_gap.enabled && c->ai_model.mode == CFG_AI_CLOUD)
		cfg_errs_add(e, "ai.model.mode=cloud is not allowed when air_gap.enabled is true");
	validate_telemetry(c, e);
	validate_otlp(c, e);
	validate_ai(c, e);
	validate_ai_api(c, e);
}
