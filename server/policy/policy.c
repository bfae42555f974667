/*
 * The policy document parser: strict JSON (jansson, duplicate keys rejected) into the
 * compiled form of policy-int.h. Everything the evaluator needs is settled here, once:
 * actions become an index from each known action to the rules that cover it, resource
 * globs become segment matchers, states and key types become bit masks, DNS patterns are
 * lowercased and split. Every rejection names the JSON path of the offending value and
 * quotes at most a short, printable prefix of it, so the message is safe to return to the
 * caller as INVALID_ARGUMENT. The known-action list is trusted (the server builds it).
 */
#include "policy.h"
#include "policy-int.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define MAX_DOC_BYTES (1u << 20)
#define MAX_RULES 1000
#define MAX_LIST 64 /* entries of any list inside a rule */
#define MAX_GLOB 512
#define MAX_DESCRIPTION 1024
#define MAX_TTL_SECONDS 3153600000ull /* 100 years */
#define QUOTE_MAX 48

const char *const pol_states[] = { "requested", "issued",  "deployed",
				   "renewing",	"revoked", "retired" };
const size_t pol_n_states = sizeof(pol_states) / sizeof(pol_states[0]);
const char *const pol_key_types[] = { "ecdsa-p256", "ecdsa-p384", "ed25519",
				      "rsa-2048",   "rsa-3072",	  "rsa-4096" };
const size_t pol_n_key_types = sizeof(pol_key_types) / sizeof(pol_key_types[0]);

/* The actions whose handlers re-check conditions (see policy.h). */
static const char *const to_state_actions[] = { "CA.TransitionIdentity" };
static const char *const issuance_actions[] = { "CA.CreateIdentity", "CA.IssueCertificate",
						"CA.TransitionIdentity" };

struct pctx {
	const char *const *known;
	size_t n_known;
	char *err;
	size_t errlen;
};

int pol_lookup(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return (int)i;
	return -1;
}

uint64_t pol_actions_fp(const char *const *actions, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ n;

	for (size_t i = 0; i < n; i++) {
		for (const unsigned char *p = (const unsigned char *)actions[i]; *p; p++)
			h = (h ^ *p) * 0x100000001b3ull;
		h = (h ^ '\n') * 0x100000001b3ull;
	}
	return h;
}

__attribute__((format(printf, 3, 4))) static int fail(struct pctx *c, const char *path,
						      const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!c->err || c->errlen == 0)
		return -EINVAL;
	n = snprintf(c->err, c->errlen, "%s: ", path);
	if (n >= 0 && (size_t)n < c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Quotes user text for a message: at most QUOTE_MAX bytes, non-printables as '?'. */
static const char *quote(char buf[QUOTE_MAX + 8], const char *s)
{
	size_t i = 0, o = 0;

	buf[o++] = '"';
	for (; s[i] && i < QUOTE_MAX; i++)
		buf[o++] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
	if (s[i]) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* A key as a JSON path step: .key when it is a plain word, else ["key"] (shortened). */
static void path_key(char *buf, size_t size, const char *path, const char *key)
{
	char q[QUOTE_MAX + 8];
	size_t n = strlen(key);
	bool plain = n > 0 && n <= QUOTE_MAX;

	for (size_t i = 0; plain && i < n; i++)
		plain = isalnum((unsigned char)key[i]) || key[i] == '_' || key[i] == '-';
	if (plain)
		snprintf(buf, size, "%s%s%s", path, *path ? "." : "", key);
	else
		snprintf(buf, size, "%s[%s]", path, quote(q, key));
}

static int check_fields(struct pctx *c, const char *path, json_t *obj, const char *const *fields,
			size_t n)
{
	const char *key;
	json_t *v;
	char p[192];

	json_object_foreach(obj, key, v)
	{
		if (pol_lookup(fields, n, key) < 0) {
			path_key(p, sizeof(p), path, key);
			return fail(c, p, "unknown field");
		}
	}
	return 0;
}

/* Fetches an array of 1..MAX_LIST strings; returns its length or -EINVAL. */
static int str_array(struct pctx *c, const char *path, json_t *v)
{
	char p[128];
	size_t i;
	json_t *e;

	if (!json_is_array(v))
		return fail(c, path, "expected an array of strings");
	if (json_array_size(v) == 0)
		return fail(c, path, "must not be empty");
	if (json_array_size(v) > MAX_LIST)
		return fail(c, path, "at most %d entries", MAX_LIST);
	json_array_foreach(v, i, e)
	{
		if (!json_is_string(e)) {
			snprintf(p, sizeof(p), "%s[%zu]", path, i);
			return fail(c, p, "expected a string");
		}
	}
	return (int)json_array_size(v);
}

/* Marks in acts[] the known actions a pattern covers. */
static int action_compile(struct pctx *c, const char *path, const char *s, bool *acts)
{
	const char *dot = strchr(s, '.');
	size_t svc_len = dot ? (size_t)(dot - s) : 0;
	bool any = false;
	char q[QUOTE_MAX + 8];
	int k;

	if (strcmp(s, "*") == 0) {
		for (size_t i = 0; i < c->n_known; i++)
			acts[i] = true;
		return 0;
	}
	if (!dot || svc_len == 0 || !dot[1] || strchr(dot + 1, '.') || strchr(s, ' ') ||
	    (strchr(s, '*') && strcmp(dot + 1, "*") != 0))
		return fail(c, path, "malformed action %s: expected Service.Method, Service.* or *",
			    quote(q, s));
	for (size_t i = 0; i < c->n_known; i++) {
		if (strncmp(c->known[i], s, svc_len) == 0 && c->known[i][svc_len] == '.') {
			any = true;
			if (strcmp(dot + 1, "*") == 0)
				acts[i] = true;
		}
	}
	if (!any) {
		char svc[QUOTE_MAX + 1];

		snprintf(svc, sizeof(svc), "%.*s", (int)(svc_len < QUOTE_MAX ? svc_len : QUOTE_MAX),
			 s);
		return fail(c, path, "unknown service %s in action %s", quote(q, svc),
			    quote((char[QUOTE_MAX + 8]){ 0 }, s));
	}
	if (strcmp(dot + 1, "*") == 0)
		return 0;
	k = pol_lookup(c->known, c->n_known, s);
	if (k < 0)
		return fail(c, path, "unknown action %s", quote(q, s));
	acts[k] = true;
	return 0;
}

static int glob_compile(struct pctx *c, const char *path, const char *s, struct pol_glob *g)
{
	char q[QUOTE_MAX + 8];
	const char *why = NULL;
	size_t len = strlen(s), n = 1;
	char *seg;

	if (len == 0)
		return fail(c, path, "malformed glob \"\": empty pattern");
	if (len > MAX_GLOB)
		return fail(c, path, "malformed glob %s: longer than %d bytes", quote(q, s),
			    MAX_GLOB);
	for (const char *p = s; *p; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			why = "space or control character";
		else if (strchr("?[]{}\\", *p))
			why = "unsupported character (only * and ** are special)";
		else if (*p == '/' && (p == s || p[1] == '\0' || p[1] == '/'))
			why = "empty path segment";
		else if (p[0] == '*' && p[1] == '*' &&
			 ((p != s && p[-1] != '/') || (p[2] != '/' && p[2] != '\0')))
			why = "\"**\" must be a whole path segment";
		if (why)
			return fail(c, path, "malformed glob %s: %s", quote(q, s), why);
		n += *p == '/';
	}
	/* The text before the first '*' must start every match; a `**` may match no segment,
	 * so the '/' in front of it is not part of that. */
	g->lit_len = strcspn(s, "*");
	if (s[g->lit_len] == '*' && s[g->lit_len + 1] == '*' && g->lit_len > 0)
		g->lit_len--;
	g->lit = strndup(s, g->lit_len);
	g->text = strdup(s);
	g->segs = calloc(n, sizeof(*g->segs));
	if (!g->lit || !g->text || !g->segs)
		return -ENOMEM;
	g->n_segs = n;
	g->all = strcmp(s, "*") == 0 || strcmp(s, "**") == 0;
	seg = g->text;
	for (size_t i = 0; i < n; i++) {
		char *end = strchr(seg, '/');

		if (end)
			*end = '\0';
		g->segs[i].text = seg;
		g->segs[i].len = strlen(seg);
		if (strcmp(seg, "**") == 0)
			g->segs[i].kind = POL_SEG_DSTAR;
		else if (strcmp(seg, "*") == 0)
			g->segs[i].kind = POL_SEG_STAR;
		else if (strchr(seg, '*'))
			g->segs[i].kind = POL_SEG_GLOB;
		else
			g->segs[i].kind = POL_SEG_LIT;
		seg = end ? end + 1 : NULL;
	}
	return 0;
}

static int dns_compile(struct pctx *c, const char *path, const char *s, struct pol_dns *d)
{
	char q[QUOTE_MAX + 8];
	const char *why = NULL, *name = s;
	size_t label = 0;

	d->wildcard = strncmp(s, "*.", 2) == 0;
	if (d->wildcard)
		name = s + 1; /* keep the dot: the suffix is ".internal" */
	if (strlen(s) > 253)
		why = "longer than 253 characters";
	for (const char *p = d->wildcard ? name + 1 : name; !why; p++) {
		if (*p == '.' || *p == '\0') {
			if (label == 0)
				why = "empty label";
			else if (label > 63)
				why = "label longer than 63 characters";
			label = 0;
			if (*p == '\0')
				break;
		} else if (*p == '*') {
			why = "\"*\" must be the whole leftmost label, followed by a domain";
		} else if (isalnum((unsigned char)*p) || *p == '-' || *p == '_') {
			label++;
		} else {
			why = "only letters, digits, \"-\", \"_\" and \".\" are allowed";
		}
	}
	if (why)
		return fail(c, path, "malformed DNS name pattern %s: %s", quote(q, s), why);
	d->text = strdup(name);
	if (!d->text)
		return -ENOMEM;
	for (char *p = d->text; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	d->len = strlen(d->text);
	return 0;
}

/* Parses the CIDRs of an ip_addresses condition (net_prefix_parse; no port). */
static int ips_compile(struct pctx *c, const char *path, json_t *v, struct pol_rule *r)
{
	char q[QUOTE_MAX + 8], xp[160];
	size_t i;
	json_t *x;

	r->ips = calloc(json_array_size(v) + 1, sizeof(*r->ips));
	if (!r->ips)
		return -ENOMEM;
	json_array_foreach(v, i, x)
	{
		const char *s = json_string_value(x), *why = NULL;

		snprintf(xp, sizeof(xp), "%s[%zu]", path, i);
		if (net_prefix_parse(s, &r->ips[i], &why) < 0)
			return fail(c, xp, "malformed CIDR %s: %s", quote(q, s), why);
		if (r->ips[i].port)
			return fail(c, xp, "malformed CIDR %s: a port is not allowed", quote(q, s));
		r->n_ips = i + 1;
	}
	return 0;
}

/* Parses to_states or key_types into a bit mask over vocab. */
static int enum_list(struct pctx *c, const char *path, json_t *v, const char *what,
		     const char *const *vocab, size_t n_vocab, uint32_t *ret_mask)
{
	char p[128], q[QUOTE_MAX + 8], accepted[160] = "";
	uint32_t mask = 0;
	size_t i;
	json_t *e;
	int r;

	r = str_array(c, path, v);
	if (r < 0)
		return r;
	json_array_foreach(v, i, e)
	{
		int k = pol_lookup(vocab, n_vocab, json_string_value(e));

		if (k < 0) {
			for (size_t j = 0; j < n_vocab; j++) {
				strcat(accepted, j ? ", " : "");
				strcat(accepted, vocab[j]);
			}
			snprintf(p, sizeof(p), "%s[%zu]", path, i);
			return fail(c, p, "unknown %s %s (accepted: %s)", what,
				    quote(q, json_string_value(e)), accepted);
		}
		mask |= 1u << k;
	}
	*ret_mask = mask;
	return 0;
}

/* Conditions are accepted only on rules whose actions all re-check them (policy.h). */
static int cond_actions_ok(struct pctx *c, const char *path, json_t *actions,
			   const char *const *allowed, size_t n_allowed, const char *names)
{
	char q[QUOTE_MAX + 8];
	size_t i;
	json_t *e;

	json_array_foreach(actions, i, e)
	{
		if (pol_lookup(allowed, n_allowed, json_string_value(e)) < 0)
			return fail(c, path, "applies only to %s, not to action %s", names,
				    quote(q, json_string_value(e)));
	}
	return 0;
}

static int conditions_parse(struct pctx *c, const char *rpath, json_t *v, json_t *actions,
			    struct pol_rule *r)
{
	static const char *const fields[] = { "to_states", "dns_names", "ip_addresses",
					      "max_ttl_seconds", "key_types" };
	const char *issuance = "CA.CreateIdentity, CA.IssueCertificate and CA.TransitionIdentity";
	char path[96], p[128];
	json_t *e;
	int ret;

	snprintf(path, sizeof(path), "%s.conditions", rpath);
	if (!json_is_object(v))
		return fail(c, path, "expected an object");
	ret = check_fields(c, path, v, fields, 5);
	if (ret < 0)
		return ret;
	e = json_object_get(v, "to_states");
	if (e) {
		snprintf(p, sizeof(p), "%s.to_states", path);
		ret = enum_list(c, p, e, "state", pol_states, pol_n_states, &r->to_states);
		if (ret >= 0)
			ret = cond_actions_ok(c, p, actions, to_state_actions, 1,
					      "CA.TransitionIdentity");
		if (ret < 0)
			return ret;
		r->cond |= POL_COND_TO_STATES;
	}
	e = json_object_get(v, "dns_names");
	if (e) {
		size_t i;
		json_t *x;

		snprintf(p, sizeof(p), "%s.dns_names", path);
		ret = str_array(c, p, e);
		if (ret >= 0)
			ret = cond_actions_ok(c, p, actions, issuance_actions, 3, issuance);
		if (ret < 0)
			return ret;
		r->dns = calloc(json_array_size(e), sizeof(*r->dns));
		if (!r->dns)
			return -ENOMEM;
		json_array_foreach(e, i, x)
		{
			char xp[160];

			snprintf(xp, sizeof(xp), "%s[%zu]", p, i);
			ret = dns_compile(c, xp, json_string_value(x), &r->dns[i]);
			r->n_dns = i + (ret >= 0);
			if (ret < 0)
				return ret;
		}
		r->cond |= POL_COND_DNS;
	}
	e = json_object_get(v, "ip_addresses");
	if (e) {
		snprintf(p, sizeof(p), "%s.ip_addresses", path);
		ret = str_array(c, p, e);
		if (ret >= 0)
			ret = cond_actions_ok(c, p, actions, issuance_actions, 3, issuance);
		if (ret >= 0)
			ret = ips_compile(c, p, e, r);
		if (ret < 0)
			return ret;
		r->cond |= POL_COND_IPS;
	}
	e = json_object_get(v, "max_ttl_seconds");
	if (e) {
		snprintf(p, sizeof(p), "%s.max_ttl_seconds", path);
		if (!json_is_integer(e) || json_integer_value(e) <= 0 ||
		    (unsigned long long)json_integer_value(e) > MAX_TTL_SECONDS)
			return fail(c, p, "expected a positive integer of at most %llu",
				    MAX_TTL_SECONDS);
		if (r->deny)
			return fail(c, p,
				    "not allowed on a deny rule (limit TTLs with allow rules)");
		ret = cond_actions_ok(c, p, actions, issuance_actions, 3, issuance);
		if (ret < 0)
			return ret;
		r->max_ttl = (uint64_t)json_integer_value(e);
		r->cond |= POL_COND_MAX_TTL;
	}
	e = json_object_get(v, "key_types");
	if (e) {
		snprintf(p, sizeof(p), "%s.key_types", path);
		ret = enum_list(c, p, e, "key type", pol_key_types, pol_n_key_types, &r->key_types);
		if (ret >= 0)
			ret = cond_actions_ok(c, p, actions, issuance_actions, 3, issuance);
		if (ret < 0)
			return ret;
		r->cond |= POL_COND_KEY_TYPES;
	}
	return 0;
}

static int description_check(struct pctx *c, const char *path, json_t *v)
{
	if (!v)
		return 0;
	if (!json_is_string(v))
		return fail(c, path, "expected a string");
	if (json_string_length(v) > MAX_DESCRIPTION)
		return fail(c, path, "at most %d bytes", MAX_DESCRIPTION);
	return 0;
}

static int rule_parse(struct pctx *c, size_t idx, json_t *v, struct pol_rule *r, bool *acts)
{
	static const char *const fields[] = { "effect", "actions", "resources", "conditions",
					      "description" };
	char path[48], p[96], q[QUOTE_MAX + 8];
	json_t *effect, *actions, *resources, *e;
	size_t i;
	int ret;

	snprintf(path, sizeof(path), "rules[%zu]", idx);
	if (!json_is_object(v))
		return fail(c, path, "expected an object");
	ret = check_fields(c, path, v, fields, 5);
	if (ret < 0)
		return ret;

	snprintf(p, sizeof(p), "%s.effect", path);
	effect = json_object_get(v, "effect");
	if (!effect)
		return fail(c, p, "required");
	if (!json_is_string(effect))
		return fail(c, p, "expected \"allow\" or \"deny\"");
	if (strcmp(json_string_value(effect), "deny") == 0)
		r->deny = true;
	else if (strcmp(json_string_value(effect), "allow") != 0)
		return fail(c, p, "expected \"allow\" or \"deny\", not %s",
			    quote(q, json_string_value(effect)));

	snprintf(p, sizeof(p), "%s.actions", path);
	actions = json_object_get(v, "actions");
	if (!actions)
		return fail(c, p, "required");
	ret = str_array(c, p, actions);
	if (ret < 0)
		return ret;
	json_array_foreach(actions, i, e)
	{
		char ap[128];

		snprintf(ap, sizeof(ap), "%s[%zu]", p, i);
		ret = action_compile(c, ap, json_string_value(e), acts);
		if (ret < 0)
			return ret;
	}

	snprintf(p, sizeof(p), "%s.resources", path);
	resources = json_object_get(v, "resources");
	if (!resources)
		return fail(c, p, "required");
	ret = str_array(c, p, resources);
	if (ret < 0)
		return ret;
	r->resources = calloc((size_t)ret, sizeof(*r->resources));
	if (!r->resources)
		return -ENOMEM;
	json_array_foreach(resources, i, e)
	{
		char rp[128];

		snprintf(rp, sizeof(rp), "%s[%zu]", p, i);
		ret = glob_compile(c, rp, json_string_value(e), &r->resources[i]);
		r->n_resources = i + 1; /* freed by the caller even when half built */
		if (ret < 0)
			return ret;
	}

	e = json_object_get(v, "conditions");
	if (e) {
		ret = conditions_parse(c, path, e, actions, r);
		if (ret < 0)
			return ret;
	}
	snprintf(p, sizeof(p), "%s.description", path);
	return description_check(c, p, json_object_get(v, "description"));
}

/* Builds the action index (act_off, cands) from the per-rule coverage matrix. */
static int index_build(struct policy_doc *d, const bool *cover)
{
	size_t total = 0, k = 0, head;

	for (size_t r = 0; r < d->n_rules; r++)
		for (size_t a = 0; a < d->n_actions; a++)
			total += cover[r * d->n_actions + a] ? d->rules[r].n_resources : 0;
	head = ((d->n_actions + 1) * sizeof(*d->act_off) + 7) & ~(size_t)7;
	d->act_off = calloc(1, head + total * sizeof(*d->cands));
	if (!d->act_off)
		return -ENOMEM;
	d->cands = (struct pol_cand *)((char *)d->act_off + head);
	for (size_t a = 0; a < d->n_actions; a++) {
		d->act_off[a] = (uint32_t)k;
		for (size_t r = 0; r < d->n_rules; r++) {
			const struct pol_rule *rule = &d->rules[r];

			if (!cover[r * d->n_actions + a])
				continue;
			for (size_t i = 0; i < rule->n_resources; i++) {
				const struct pol_glob *g = &rule->resources[i];
				struct pol_cand *c = &d->cands[k++];

				*c = (struct pol_cand){ .glob = g,
							.rule = (uint32_t)r,
							.lit_len = (uint16_t)g->lit_len,
							.deny = rule->deny,
							.cond = rule->cond != 0 };
				if (g->lit_len >= 8)
					memcpy(&c->tail, g->lit + g->lit_len - 8, 8);
			}
		}
	}
	d->act_off[d->n_actions] = (uint32_t)k;
	return 0;
}

static int doc_parse(struct pctx *c, json_t *root, struct policy_doc *d)
{
	static const char *const fields[] = { "rules", "description" };
	json_t *rules, *v;
	bool *cover;
	size_t i;
	int ret = 0;

	if (!json_is_object(root))
		return fail(c, "document", "expected a JSON object");
	ret = check_fields(c, "", root, fields, 2);
	if (ret < 0)
		return ret;
	rules = json_object_get(root, "rules");
	if (!rules)
		return fail(c, "rules", "required");
	if (!json_is_array(rules))
		return fail(c, "rules", "expected an array");
	if (json_array_size(rules) > MAX_RULES)
		return fail(c, "rules", "at most %d rules", MAX_RULES);
	d->rules = calloc(json_array_size(rules) + 1, sizeof(*d->rules));
	cover = calloc(json_array_size(rules) * c->n_known + 1, sizeof(*cover));
	if (!d->rules || !cover) {
		free(cover);
		return -ENOMEM;
	}
	json_array_foreach(rules, i, v)
	{
		d->n_rules = i + 1;
		ret = rule_parse(c, i, v, &d->rules[i], cover + i * c->n_known);
		if (ret < 0)
			break;
	}
	if (ret >= 0)
		ret = description_check(c, "description", json_object_get(root, "description"));
	if (ret >= 0)
		ret = index_build(d, cover);
	free(cover);
	return ret;
}

int policy_parse(const char *json, const char *const *known_actions, size_t n,
		 struct policy_doc **ret, char *err, size_t errlen)
{
	struct pctx c = { .known = known_actions, .n_known = n, .err = err, .errlen = errlen };
	struct policy_doc *d;
	json_error_t je;
	json_t *root;
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (!json || !ret || (n && !known_actions))
		return fail(&c, "document", "missing");
	if (strlen(json) > MAX_DOC_BYTES)
		return fail(&c, "document", "larger than %u bytes", MAX_DOC_BYTES);
	root = json_loads(json, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return fail(&c, "document", "invalid JSON at line %d column %d: %s", je.line,
			    je.column, je.text);
	d = calloc(1, sizeof(*d));
	if (!d) {
		json_decref(root);
		return -ENOMEM;
	}
	d->n_actions = n;
	d->actions_fp = pol_actions_fp(known_actions, n);
	r = doc_parse(&c, root, d);
	json_decref(root);
	if (r < 0) {
		if (r == -ENOMEM)
			fail(&c, "document", "out of memory");
		policy_doc_free(d);
		return r;
	}
	*ret = d;
	return 0;
}

struct policy_doc *policy_doc_free(struct policy_doc *doc)
{
	if (!doc)
		return NULL;
	for (size_t i = 0; i < doc->n_rules; i++) {
		struct pol_rule *r = &doc->rules[i];

		for (size_t j = 0; j < r->n_resources; j++) {
			free(r->resources[j].text);
			free(r->resources[j].lit);
			free(r->resources[j].segs);
		}
		free(r->resources);
		for (size_t j = 0; j < r->n_dns; j++)
			free(r->dns[j].text);
		free(r->dns);
		free(r->ips);
	}
	free(doc->rules);
	free(doc->act_off);
	free(doc);
	return NULL;
}

size_t policy_doc_n_rules(const struct policy_doc *doc)
{
	return doc ? doc->n_rules : 0;
}

bool policy_name_valid(const char *name)
{
	size_t n;

	if (!name || !isalnum((unsigned char)name[0]))
		return false;
	for (n = 0; name[n]; n++)
		if (n >= POLICY_NAME_MAX ||
		    !(isalnum((unsigned char)name[n]) || strchr("._-", name[n])))
			return false;
	return true;
}
