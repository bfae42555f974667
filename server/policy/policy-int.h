#pragma once
/*
 * The compiled form of a policy document, shared by the parser (policy.c) and the
 * evaluator (eval.c). Not part of the module's interface.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net.h"

enum pol_seg_kind {
	POL_SEG_LIT,  /* literal segment: equal bytes */
	POL_SEG_STAR, /* `*`: any one segment */
	POL_SEG_GLOB, /* literal text with `*` inside one segment */
	POL_SEG_DSTAR /* `**`: any number of segments */
};

struct pol_seg {
	enum pol_seg_kind kind;
	const char *text; /* into pol_glob.text; not NUL-terminated */
	size_t len;
};

struct pol_glob {
	char *text; /* the pattern, '/' replaced by NUL where segments end */
	struct pol_seg *segs;
	size_t n_segs;
	bool all;  /* the lone `*` or `**`: every resource */
	char *lit; /* literal prefix every matching resource starts with (maybe "") */
	size_t lit_len;
};

struct pol_dns {
	char *text; /* lowercase; for a wildcard the suffix including its dot: ".internal" */
	size_t len;
	bool wildcard; /* `*.` + suffix: one label in front of the suffix */
};

enum {
	POL_COND_TO_STATES = 1 << 0,
	POL_COND_KEY_TYPES = 1 << 1,
	POL_COND_MAX_TTL = 1 << 2,
	POL_COND_DNS = 1 << 3,
	POL_COND_IPS = 1 << 4,
	POL_COND_SANS = POL_COND_DNS | POL_COND_IPS, /* a rule naming either limits both */
};

struct pol_rule {
	bool deny;
	struct pol_glob *resources;
	size_t n_resources;
	unsigned cond;	    /* POL_COND_* present on this rule; 0: unconditional */
	uint32_t to_states; /* bit i: pol_states[i] */
	uint32_t key_types; /* bit i: pol_key_types[i] */
	uint64_t max_ttl;
	struct pol_dns *dns;
	size_t n_dns;
	struct net_prefix *ips; /* CIDRs of ip_addresses (port 0) */
	size_t n_ips;
};

/* One (rule, resource) pair under an action, laid out for the hot loop: most requests are
 * turned away by lit_len and the last bytes of the literal prefix, read from here alone. */
struct pol_cand {
	const struct pol_glob *glob;
	uint32_t rule;	  /* index in policy_doc.rules */
	uint16_t lit_len; /* glob->lit_len */
	bool deny;	  /* rules[rule].deny */
	bool cond;	  /* rules[rule].cond != 0 */
	uint64_t tail;	  /* the last 8 bytes of glob->lit (when lit_len >= 8) */
};

struct policy_doc {
	struct pol_rule *rules;
	size_t n_rules;
	uint64_t actions_fp; /* pol_actions_fp() of the known-action list parsed against */
	size_t n_actions;
	/* By action: the (rule, resource) pairs of the rules whose actions cover known action
	 * a are cands[act_off[a] .. act_off[a + 1]), in rule then resource order. One
	 * allocation, starting at act_off. */
	uint32_t *act_off;
	struct pol_cand *cands;
};

extern const char *const pol_states[];
extern const size_t pol_n_states;
extern const char *const pol_key_types[];
extern const size_t pol_n_key_types;

/* Index of s in list (n entries), or -1. */
int pol_lookup(const char *const *list, size_t n, const char *s);

/* A fingerprint of an ordered action list. */
uint64_t pol_actions_fp(const char *const *actions, size_t n);
