/*
 * Model check of the evaluator: random policies over a small alphabet of actions, resource
 * globs and conditions are written as JSON, parsed and put into a set; random requests are
 * then decided by policy_eval and by a naive reference written plainly here (strings split
 * into segments, a recursive glob match, a linear scan over every rule), which must agree
 * on the decision, the policy and the rule every time. POLICY_MODEL_SEED sets the seed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "policy.h"
#include "test-actions.h"

#define ROUNDS 300
#define REQUESTS 40
#define POLICIES 5
#define MAX_RULES 6

static const char *const act_patterns[] = { "*",
					    "CA.*",
					    "Secrets.*",
					    "CA.GetOwner",
					    "CA.TransitionIdentity",
					    "Secrets.GetSecret",
					    "Audit.ListEvents" };
static const char *const req_actions[] = { "CA.GetOwner",	    "CA.CreateOwner",
					   "CA.TransitionIdentity", "Secrets.GetSecret",
					   "Secrets.CreateSecret",  "Audit.ListEvents",
					   "Guard.GetStatus" };
static const char *const glob_segs[] = { "a", "b", "ab", "*", "**", "a*", "*b", "a*b" };
static const char *const res_segs[] = { "a", "b", "ab", "aab", "bb", "", "x" };
static const char *const states[] = { "requested", "issued", "revoked" };
static const char *const keys[] = { "ecdsa-p256", "rsa-2048" };
static const char *const dns_patterns[] = { "*.a.test", "b.test" };
static const char *const dns_req[] = { "x.a.test", "b.test", "y.b.test", "X.A.TEST", "a.test" };

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

struct mrule {
	bool deny;
	const char *acts[3];
	size_t n_acts;
	char res[3][64];
	size_t n_res;
	bool cond;    /* only on rules whose one action is CA.TransitionIdentity */
	unsigned st;  /* bit mask over states; 0: no condition */
	unsigned kt;  /* bit mask over keys; 0: no condition */
	unsigned dns; /* bit mask over dns_patterns; 0: no condition */
	uint64_t max_ttl;
};

struct mpolicy {
	char name[8];
	struct mrule rules[MAX_RULES];
	size_t n_rules;
};

static uint64_t rng_state;

static unsigned rnd(unsigned n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned)(rng_state % n);
}

/* ---- the reference ---- */

static bool ref_chars(const char *p, const char *s)
{
	if (!*p)
		return !*s;
	if (*p == '*')
		return ref_chars(p + 1, s) || (*s && ref_chars(p, s + 1));
	return *s && *p == *s && ref_chars(p + 1, s + 1);
}

static bool ref_segs(char **p, size_t np, char **s, size_t ns)
{
	if (np == 0)
		return ns == 0;
	if (strcmp(p[0], "**") == 0)
		return ref_segs(p + 1, np - 1, s, ns) || (ns > 0 && ref_segs(p, np, s + 1, ns - 1));
	return ns > 0 && ref_chars(p[0], s[0]) && ref_segs(p + 1, np - 1, s + 1, ns - 1);
}

static size_t split(const char *str, char *buf, char **ret)
{
	size_t n = 0;

	strcpy(buf, str);
	ret[n++] = buf;
	for (char *c = buf; *c; c++)
		if (*c == '/') {
			*c = '\0';
			ret[n++] = c + 1;
		}
	return n;
}

static bool ref_glob(const char *pat, const char *res)
{
	char pb[128], rb[128], *ps[16], *rs[16];
	size_t np, nr;

	if (strcmp(pat, "*") == 0)
		return true;
	np = split(pat, pb, ps);
	nr = split(res, rb, rs);
	return ref_segs(ps, np, rs, nr);
}

static bool ref_action(const char *pat, const char *act)
{
	size_t n = strlen(pat);

	if (strcmp(pat, "*") == 0)
		return true;
	if (n > 2 && strcmp(pat + n - 2, ".*") == 0)
		return strncmp(pat, act, n - 1) == 0;
	return strcmp(pat, act) == 0;
}

static bool ref_dns(const char *pat, const char *name)
{
	const char *dot;

	if (strncmp(pat, "*.", 2) != 0)
		return strcasecmp(pat, name) == 0;
	dot = strchr(name, '.');
	return dot && dot != name && strcasecmp(dot + 1, pat + 2) == 0;
}

static int idx(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; s && i < n; i++)
		if (strcmp(list[i], s) == 0)
			return (int)i;
	return -1;
}

/* One condition over a list attribute: absent favours the deny, never the allow. */
static bool ref_in(unsigned mask, const char *const *list, size_t n, const char *v, bool deny)
{
	if (!v)
		return deny;
	return idx(list, n, v) >= 0 && ((mask >> idx(list, n, v)) & 1);
}

static bool ref_cond(const struct mrule *r, const struct policy_request *q)
{
	if (!r->cond)
		return true;
	if (q->gate)
		return !r->deny;
	if (r->st && !ref_in(r->st, states, LEN(states), q->to_state, r->deny))
		return false;
	if (r->kt && !ref_in(r->kt, keys, LEN(keys), q->key_type, r->deny))
		return false;
	if (r->max_ttl && (q->ttl_seconds == 0 || q->ttl_seconds > r->max_ttl))
		return false;
	if (r->dns) {
		size_t matching = 0;

		for (size_t i = 0; i < q->n_dns_names; i++) {
			bool m = false;

			for (size_t k = 0; k < LEN(dns_patterns); k++)
				if (((r->dns >> k) & 1) &&
				    ref_dns(dns_patterns[k], q->dns_names[i]))
					m = true;
			matching += m;
		}
		return r->deny ? matching > 0 : matching == q->n_dns_names;
	}
	return true;
}

static bool ref_rule(const struct mrule *r, const struct policy_request *q)
{
	bool a = false, res = false;

	for (size_t i = 0; i < r->n_acts; i++)
		a = a || ref_action(r->acts[i], q->action);
	for (size_t i = 0; i < r->n_res; i++)
		res = res || ref_glob(r->res[i], q->resource);
	return a && res && ref_cond(r, q);
}

static const struct mpolicy *find(const struct mpolicy *p, const char *name)
{
	for (size_t i = 0; i < POLICIES; i++)
		if (strcmp(p[i].name, name) == 0)
			return &p[i];
	return NULL;
}

/* Sets *ret_policy and *ret_rule to the reported match; returns the decision. */
static bool ref_eval(const struct mpolicy *pols, const char *const *names, size_t n,
		     const struct policy_request *q, const char **ret_policy, int *ret_rule)
{
	static const struct mpolicy admin = {
		.name = "admin",
		.rules = { { .acts = { "*" }, .n_acts = 1, .res = { "*" }, .n_res = 1 } },
		.n_rules = 1,
	};
	const char *allow_p = NULL;
	int allow_r = -1;

	for (size_t i = 0; i < n; i++) {
		const struct mpolicy *p =
			strcmp(names[i], "admin") == 0 ? &admin : find(pols, names[i]);

		for (size_t k = 0; p && k < p->n_rules; k++) {
			if (!ref_rule(&p->rules[k], q))
				continue;
			if (p->rules[k].deny) {
				*ret_policy = names[i];
				*ret_rule = (int)k;
				return false;
			}
			if (!allow_p) {
				allow_p = names[i];
				allow_r = (int)k;
			}
		}
	}
	*ret_policy = allow_p ? allow_p : "";
	*ret_rule = allow_r;
	return allow_p != NULL;
}

/* ---- random policies and requests ---- */

static void random_glob(char *out)
{
	size_t n = 1 + rnd(3);

	if (rnd(12) == 0) {
		strcpy(out, "*");
		return;
	}
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(out, "/");
		strcat(out, glob_segs[rnd(LEN(glob_segs))]);
	}
}

static void random_rule(struct mrule *r)
{
	*r = (struct mrule){ .deny = rnd(3) == 0 };
	if (rnd(3) == 0) {
		r->acts[r->n_acts++] = "CA.TransitionIdentity";
		r->cond = rnd(2);
	} else {
		r->n_acts = 1 + rnd(3);
		for (size_t i = 0; i < r->n_acts; i++)
			r->acts[i] = act_patterns[rnd(LEN(act_patterns))];
	}
	r->n_res = 1 + rnd(3);
	for (size_t i = 0; i < r->n_res; i++)
		random_glob(r->res[i]);
	if (r->cond) {
		r->st = rnd(1u << LEN(states));
		r->kt = rnd(1u << LEN(keys));
		r->dns = rnd(1u << LEN(dns_patterns));
		r->max_ttl = (!r->deny && rnd(2)) ? 1000 : 0;
		r->cond = r->st || r->kt || r->dns || r->max_ttl;
	}
}

static void json_list(char *out, const char *key, const char *const *items, size_t n)
{
	sprintf(out + strlen(out), "\"%s\": [", key);
	for (size_t i = 0; i < n; i++)
		sprintf(out + strlen(out), "%s\"%s\"", i ? ", " : "", items[i]);
	strcat(out, "]");
}

static void json_mask(char *out, const char *key, unsigned mask, const char *const *list, size_t n)
{
	const char *items[8];
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if ((mask >> i) & 1)
			items[k++] = list[i];
	if (k) {
		if (out[strlen(out) - 1] != '{')
			strcat(out, ", ");
		json_list(out, key, items, k);
	}
}

static void policy_json(const struct mpolicy *p, char *out)
{
	strcpy(out, "{\"rules\": [");
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct mrule *r = &p->rules[i];
		const char *res[3] = { r->res[0], r->res[1], r->res[2] };

		sprintf(out + strlen(out), "%s{\"effect\": \"%s\", ", i ? ", " : "",
			r->deny ? "deny" : "allow");
		json_list(out, "actions", r->acts, r->n_acts);
		strcat(out, ", ");
		json_list(out, "resources", res, r->n_res);
		if (r->cond) {
			strcat(out, ", \"conditions\": {");
			json_mask(out, "to_states", r->st, states, LEN(states));
			json_mask(out, "key_types", r->kt, keys, LEN(keys));
			json_mask(out, "dns_names", r->dns, dns_patterns, LEN(dns_patterns));
			if (r->max_ttl)
				sprintf(out + strlen(out), "%s\"max_ttl_seconds\": %llu",
					out[strlen(out) - 1] == '{' ? "" : ", ",
					(unsigned long long)r->max_ttl);
			strcat(out, "}");
		}
		strcat(out, "}");
	}
	strcat(out, "]}");
}

static void random_resource(char *out)
{
	size_t n = 1 + rnd(4);

	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(out, "/");
		strcat(out, res_segs[rnd(LEN(res_segs))]);
	}
}

static void random_request(struct policy_request *q, char *res, const char **dns)
{
	static const uint64_t ttls[] = { 0, 10, 1000, 5000 };

	random_resource(res);
	*q = (struct policy_request){
		.action = req_actions[rnd(LEN(req_actions))],
		.resource = res,
		.to_state = rnd(4) ? states[rnd(LEN(states))] : NULL,
		.key_type = rnd(4) ? keys[rnd(LEN(keys))] : NULL,
		.ttl_seconds = ttls[rnd(LEN(ttls))],
		.gate = rnd(5) == 0,
		.dns_names = dns,
		.n_dns_names = rnd(3),
	};
	for (size_t i = 0; i < q->n_dns_names; i++)
		dns[i] = dns_req[rnd(LEN(dns_req))];
}

static void test_model(void **state)
{
	const char *seed_env = getenv("POLICY_MODEL_SEED");
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : 0x5eed1234abcdull;
	unsigned long checked = 0, allowed = 0, denied_by_rule = 0;

	(void)state;
	rng_state = seed;
	for (int round = 0; round < ROUNDS; round++) {
		struct mpolicy pols[POLICIES];
		struct policy_set *set = NULL;
		static const char *const extra[] = { "admin", "ghost" };

		assert_int_equal(policy_set_new(test_actions, TEST_N_ACTIONS, &set), 0);
		for (size_t i = 0; i < POLICIES; i++) {
			char json[8192], err[POLICY_ERR_MAX];
			struct policy_doc *d = NULL;
			int r;

			snprintf(pols[i].name, sizeof(pols[i].name), "p%zu", i);
			pols[i].n_rules = rnd(MAX_RULES + 1);
			for (size_t k = 0; k < pols[i].n_rules; k++)
				random_rule(&pols[i].rules[k]);
			policy_json(&pols[i], json);
			r = policy_parse(json, test_actions, TEST_N_ACTIONS, &d, err, sizeof(err));
			if (r != 0)
				fail_msg("seed %#llx round %d: %s\n%s", (unsigned long long)seed,
					 round, err, json);
			assert_int_equal(policy_set_put(set, pols[i].name, 1, d), 1);
		}
		for (int k = 0; k < REQUESTS; k++) {
			const char *names[6], *dns[3], *want_p;
			char res[64];
			struct policy_request q;
			struct policy_decision d;
			size_t n = rnd(5);
			int want_r;
			bool want;

			for (size_t i = 0; i < n; i++)
				names[i] = rnd(10) ? pols[rnd(POLICIES)].name : extra[rnd(2)];
			random_request(&q, res, dns);
			want = ref_eval(pols, names, n, &q, &want_p, &want_r);
			assert_int_equal(policy_eval(set, names, n, &q, &d), 0);
			if (d.allowed != want || strcmp(d.matched_policy, want_p) != 0 ||
			    d.matched_rule != want_r)
				fail_msg(
					"seed %#llx round %d request %d: %s on %s (state %s, key %s, ttl %llu, gate %d)\n"
					"  policy_eval: %d %s rule %d (%s)\n  reference:   %d %s rule %d",
					(unsigned long long)seed, round, k, q.action, q.resource,
					q.to_state ? q.to_state : "-",
					q.key_type ? q.key_type : "-",
					(unsigned long long)q.ttl_seconds, q.gate, d.allowed,
					d.matched_policy, d.matched_rule, d.reason, want, want_p,
					want_r);
			checked++;
			allowed += want;
			denied_by_rule += !want && want_r >= 0;
		}
		policy_set_free(set);
	}
	/* the alphabet must exercise both outcomes, and explicit denials, often */
	print_message("model: %lu requests, %lu allowed, %lu denied by a rule\n", checked, allowed,
		      denied_by_rule);
	assert_true(allowed > checked / 10);
	assert_true(denied_by_rule > checked / 20);
	assert_true(checked - allowed - denied_by_rule > checked / 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
