/*
 * The running reporter: one thread that sends a report at start and then every interval,
 * waiting on a condition variable (CLOCK_MONOTONIC) so that telemetry_stop ends it at
 * once, except for a report in flight (bounded by TELEMETRY_TIMEOUT_MS). Reports go
 * through guard_http_do with no redirect followed (a redirect could lead to plain http),
 * the endpoint having been checked to be https at start. The reporter logs only when its
 * state changes (first delivery, failing, delivering again), so a long outage writes one
 * line, not one per interval. Log lines carry the endpoint and the reason, never the
 * report's contents beyond its instance id.
 */
#include "telemetry.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ca.h"
#include "cfg.h"
#include "guard.h"
#include "log.h"
#include "net.h"
#include "secrets.h"
#include "trstctl-config.h"

enum state {
	STATE_NONE,    /* no report tried yet */
	STATE_OK,      /* the last report was delivered */
	STATE_FAILING, /* the last report failed */
};

struct telemetry {
	const struct cfg *cfg;
	struct guard_policy *policy;
	struct ca_service *ca;
	struct secrets *secrets;
	char os[32], arch[64];
	enum state state;
	uint64_t failed; /* reports that failed, for the "delivered again" line */

	pthread_t thread;
	pthread_mutex_t lock; /* stop */
	pthread_cond_t cond;
	bool stop;
};

static int count(struct telemetry *t, struct telemetry_counts *ret, char *err, size_t errlen)
{
	struct ca_inventory inv;
	int r = ca_inventory_get(t->ca, NULL, 0, &inv);

	if (r < 0) {
		snprintf(err, errlen, "cannot count the inventory: %s", strerror(-r));
		return r;
	}
	ret->identities = inv.identities_total;
	ret->certificates = inv.certificates;
	ca_inventory_clear(&inv);
	r = secrets_count(t->secrets, NULL, &ret->secrets);
	if (r < 0)
		snprintf(err, errlen, "cannot count the secrets: %s", strerror(-r));
	return r;
}

/* One report: 0 when the endpoint took it (2xx), else -errno with the reason in err. */
static int report_once(struct telemetry *t, char *err, size_t errlen)
{
	static const char *const headers[] = { "Content-Type: application/json",
					       "User-Agent: trstctl/" TRSTCTL_VERSION, NULL };
	const struct cfg_telemetry *tc = &t->cfg->telemetry;
	struct telemetry_counts c = { 0 };
	struct guard_http_response resp = { 0 };
	char id[TELEMETRY_ID_LEN + 1], *json = NULL;
	int r;

	r = telemetry_instance_id(tc->instance_id_file, id, err, errlen);
	if (r >= 0)
		r = count(t, &c, err, errlen);
	if (r >= 0) {
		r = telemetry_report(id, TRSTCTL_VERSION, t->os, t->arch, &c, &json);
		if (r < 0)
			snprintf(err, errlen, "cannot build the report: %s", strerror(-r));
	}
	if (r < 0)
		return r;
	{
		const struct guard_http_request req = {
			.method = "POST",
			.url = tc->endpoint,
			.headers = headers,
			.body = json,
			.body_len = strlen(json),
			.timeout_ms = TELEMETRY_TIMEOUT_MS,
			.max_redirects = 0,
			.max_response_bytes = 64 * 1024,
			.ca_file = tc->ca_file,
		};

		r = guard_http_do(t->policy, &req, &resp, err, errlen);
	}
	free(json);
	if (r < 0)
		return r;
	if (resp.status < 200 || resp.status > 299) {
		snprintf(
			err, errlen,
			resp.status >= 300 && resp.status < 400 ?
				"the endpoint answered a redirect (HTTP %ld), which is not followed" :
				"the endpoint answered HTTP %ld",
			resp.status);
		r = -EPROTO;
	}
	guard_http_response_free(&resp);
	return r;
}

static void report(struct telemetry *t)
{
	char err[TELEMETRY_ERR_MAX] = "";
	int r = report_once(t, err, sizeof(err));

	if (r >= 0) {
		if (t->state != STATE_OK)
			log_info(t->state == STATE_NONE ? "telemetry report sent" :
							  "telemetry reports are delivered again",
				 "endpoint", "%s", t->cfg->telemetry.endpoint, "reports_failed",
				 "%llu", (unsigned long long)t->failed);
		t->state = STATE_OK;
		return;
	}
	t->failed++;
	if (t->state != STATE_FAILING)
		log_warn("telemetry report failed; it is tried again every interval, and this is "
			 "logged again only once reports are delivered",
			 "endpoint", "%s", t->cfg->telemetry.endpoint, "error", "%s", err);
	t->state = STATE_FAILING;
}

static void *run(void *arg)
{
	struct telemetry *t = arg;
	/* at most a year between reports: keeps the deadline arithmetic in range */
	int64_t every = t->cfg->telemetry.interval_ms < 31536000000 ?
				t->cfg->telemetry.interval_ms :
				31536000000;

	for (;;) {
		struct timespec until;
		bool stop;

		report(t);
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += (time_t)(every / 1000);
		until.tv_nsec += (long)(every % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&t->lock);
		while (!t->stop && pthread_cond_timedwait(&t->cond, &t->lock, &until) != ETIMEDOUT)
			;
		stop = t->stop;
		pthread_mutex_unlock(&t->lock);
		if (stop)
			return NULL;
	}
}

/* The checks of start: https, no air-gap, a readable CA file. */
static int check(const struct cfg *c, struct guard_policy *p)
{
	const struct cfg_telemetry *tc = &c->telemetry;
	struct net_url u;

	if (!tc->endpoint || net_url_parse(tc->endpoint, &u) < 0 || strcmp(u.scheme, "https")) {
		log_error("telemetry refused: telemetry.endpoint must be an absolute https URL",
			  "endpoint", "%s", tc->endpoint ? tc->endpoint : "");
		return -EINVAL;
	}
	if (guard_policy_enabled(p)) {
		log_error("telemetry refused: telemetry.enabled must be false when "
			  "air_gap.enabled is true");
		return -EINVAL;
	}
	if (tc->ca_file && access(tc->ca_file, R_OK) < 0) {
		int r = -errno;
		char why[TELEMETRY_ERR_MAX];

		snprintf(why, sizeof(why), "cannot read telemetry.ca_file \"%s\": %s", tc->ca_file,
			 strerror(-r));
		log_error("cannot start telemetry", "error", "%s", why);
		return r;
	}
	if (!tc->instance_id_file || tc->interval_ms <= 0) {
		log_error("telemetry refused: telemetry.instance_id_file and a positive "
			  "telemetry.interval are required");
		return -EINVAL;
	}
	return 0;
}

int telemetry_start(const struct cfg *c, struct guard_policy *p, struct ca_service *ca,
		    struct secrets *s, struct telemetry **ret)
{
	pthread_condattr_t ca_attr;
	struct telemetry *t;
	int r;

	if (!c || !ret)
		return -EINVAL;
	*ret = NULL;
	if (!c->telemetry.enabled)
		return 0;
	if (!p || !ca || !s)
		return -EINVAL;
	r = check(c, p);
	if (r < 0)
		return r;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->cfg = c;
	t->policy = p;
	t->ca = ca;
	t->secrets = s;
	if (telemetry_platform(t->os, sizeof(t->os), t->arch, sizeof(t->arch)) < 0) {
		snprintf(t->os, sizeof(t->os), "linux");
		snprintf(t->arch, sizeof(t->arch), "unknown");
	}
	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_init(&ca_attr);
	pthread_condattr_setclock(&ca_attr, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cond, &ca_attr);
	pthread_condattr_destroy(&ca_attr);
	r = -pthread_create(&t->thread, NULL, run, t);
	if (r < 0) {
		pthread_cond_destroy(&t->cond);
		pthread_mutex_destroy(&t->lock);
		free(t);
		return r;
	}
	log_info(
		"telemetry on: usage reports go to the endpoint every interval (docs/telemetry.md)",
		"endpoint", "%s", c->telemetry.endpoint, "interval_ms", "%lld",
		(long long)c->telemetry.interval_ms);
	*ret = t;
	return 0;
}

struct telemetry *telemetry_stop(struct telemetry *t)
{
	if (!t)
		return NULL;
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(t);
	return NULL;
}
