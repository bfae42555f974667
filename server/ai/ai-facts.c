/*
 * The facts of a prompt, read for one tenant when a question arrives: identity counts by
 * state, the current certificates and the soonest of those expiring within
 * AI_EXPIRY_WINDOW_S (by identity name), and the denied calls among the last
 * AI_DENIAL_WINDOW audit records (counts by type, the newest AI_DENIALS_LISTED with their
 * action, resource, actor and reason). Secret values are never read. Text that came from
 * callers (names, resources, reasons) is cut to a bounded length and its control
 * characters become spaces, so that it stays on its line; the redactor runs over the
 * whole text afterwards (ai.c).
 */
#include "ai.h"
#include "ai-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "ca.h"

#define FIELD_MAX 160 /* bytes of one caller-given field */

struct text {
	char *p;
	size_t len;
	FILE *f;
};

/* A field that came from a caller: at most FIELD_MAX bytes, no control character. */
static void put_field(FILE *f, const char *s)
{
	size_t n = 0;

	for (; s && *s && n < FIELD_MAX; s++, n++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s, f);
	if (s && *s)
		fputs("...", f);
}

static void put_day(FILE *f, int64_t unix_s)
{
	struct tm tm;
	time_t t = (time_t)unix_s;
	char buf[32];

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%d", &tm);
	fputs(buf, f);
}

static void put_identities(FILE *f, const struct ca_inventory *inv)
{
	fprintf(f, "- Identities: %" PRId64 " in total; by state", inv->identities_total);
	for (int s = 0; s < CA_STATE_COUNT; s++)
		fprintf(f, "%s %s %" PRId64, s ? "," : "", ca_state_name((enum ca_state)s),
			inv->identities[s]);
	fputs(".\n", f);
}

static void put_certificates(FILE *f, const struct ca_inventory *inv, int64_t now)
{
	fprintf(f,
		"- Current certificates (neither revoked, replaced nor expired): %" PRId64
		"; of them %" PRId64 " expire within %d days%s\n",
		inv->certificates, inv->expiring, AI_EXPIRY_WINDOW_S / 86400,
		inv->n_listed ? ", the soonest first" : ".");
	for (size_t i = 0; i < inv->n_listed; i++) {
		const struct ca_inventory_cert *c = &inv->listed[i];
		int64_t days = (c->not_after - now) / 86400;

		fputs("  - identity \"", f);
		put_field(f, c->identity_name);
		fprintf(f, "\" (state %s) expires on ", ca_state_name(c->state));
		put_day(f, c->not_after);
		fprintf(f, ", in %" PRId64 " day%s\n", days, days == 1 ? "" : "s");
	}
	if (inv->expiring > (int64_t)inv->n_listed)
		fprintf(f, "  - and %" PRId64 " more\n", inv->expiring - (int64_t)inv->n_listed);
}

/* "name n, name n" of a JSON object of counts (at most 8 of them). */
static void put_counts(FILE *f, const char *label, json_t *counts)
{
	const char *k;
	json_t *v;
	int i = 0;

	if (!json_is_object(counts) || json_object_size(counts) == 0)
		return;
	fprintf(f, ", %s", label);
	json_object_foreach(counts, k, v)
	{
		if (i++ == 8) {
			fputs(" ...", f);
			break;
		}
		fputs(i > 1 ? ", " : " ", f);
		put_field(f, k);
		fprintf(f, " %" JSON_INTEGER_FORMAT, json_integer_value(v));
	}
}

/*
 * One denial: time, type, action, resource, caller, reason; for the summary of
 * unauthenticated calls (policy/unauth.c) how many calls, from where, why, to which methods.
 */
static void put_denial(FILE *f, const struct audit_event *ev)
{
	json_t *data = json_loads(ev->data_json ? ev->data_json : "{}", 0, NULL);
	const char *action = json_string_value(json_object_get(data, "action"));
	const char *reason = json_string_value(json_object_get(data, "reason"));
	const char *source = json_string_value(json_object_get(data, "source"));
	json_t *count = json_object_get(data, "count");

	fprintf(f, "  - %.10s %.5s UTC, %s", ev->time, ev->time + 11, ev->type);
	if (json_is_integer(count))
		fprintf(f, ", %" JSON_INTEGER_FORMAT " call%s without a valid token",
			json_integer_value(count), json_integer_value(count) == 1 ? "" : "s");
	if (source && *source) {
		fputs(" from ", f);
		put_field(f, source);
	}
	put_counts(f, "reasons", json_object_get(data, "reasons"));
	put_counts(f, "methods", json_object_get(data, "methods"));
	if (action && *action) {
		fputs(", action ", f);
		put_field(f, action);
	}
	if (ev->resource && *ev->resource) {
		fputs(", resource ", f);
		put_field(f, ev->resource);
	}
	if (ev->actor && *ev->actor) {
		fputs(", caller ", f);
		put_field(f, ev->actor);
	}
	if (reason && *reason) {
		fputs(", because ", f);
		put_field(f, reason);
	}
	fputc('\n', f);
	json_decref(data);
}

static void put_denials(FILE *f, const struct audit_recent *d)
{
	fprintf(f, "- Denied calls among the last %" PRId64 " audit records: %" PRId64, d->scanned,
		d->total);
	for (size_t i = 0; i < d->n_types; i++)
		fprintf(f, "%s%s %" PRId64, i ? ", " : " (", d->types[i].type, d->types[i].n);
	fputs(d->n_types ? ")" : "", f);
	fputs(d->n_events ? "; the newest first\n" : ".\n", f);
	for (size_t i = 0; i < d->n_events; i++)
		put_denial(f, &d->events[i]);
}

int ai_facts(struct ai *ai, const char *tenant_id, char **ret_text)
{
	struct ca_inventory inv;
	struct audit_recent *d = NULL;
	struct text t = { 0 };
	int64_t now = (int64_t)time(NULL);
	int r;

	if (!ai || !ret_text)
		return -EINVAL;
	r = ca_inventory_get(ai_ca(ai), tenant_id, AI_EXPIRY_WINDOW_S, &inv);
	if (r < 0)
		return r;
	r = audit_recent_outcome(ai_audit(ai), tenant_id, "denied", AI_DENIAL_WINDOW,
				 AI_DENIALS_LISTED, &d);
	if (r < 0) {
		ca_inventory_clear(&inv);
		return r;
	}
	t.f = open_memstream(&t.p, &t.len);
	if (t.f) {
		fputs("- Today is ", t.f);
		put_day(t.f, now);
		fputs(" (UTC).\n", t.f);
		put_identities(t.f, &inv);
		put_certificates(t.f, &inv, now);
		put_denials(t.f, d);
		r = fclose(t.f) == 0 ? 0 : -ENOMEM;
	} else {
		r = -ENOMEM;
	}
	ca_inventory_clear(&inv);
	audit_recent_free(d);
	if (r < 0) {
		free(t.p);
		return r;
	}
	*ret_text = t.p;
	return 0;
}
