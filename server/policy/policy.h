#pragma once
/*
 * policy: who may do what. A policy is a named JSON document of allow/deny rules over
 * actions (`<Service>.<Method>` of trstctl.v1, with `*`) and resources (`owner/<name>`,
 * `identity/<name>`, `secret/<path>`, `policy/<name>`, `audit`, `guard`, with `*` and `**`
 * globs), optionally narrowed by conditions (target state of a transition, issuance limits).
 * Documents are parsed strictly and compiled once; a policy_set holds them by name in
 * immutable snapshots so that evaluation never locks and never allocates. Tokens are
 * `trst_<base64url of 32 random bytes>`; only their SHA-256 is ever stored.
 *
 * Evaluation, in full:
 * - Only the principal's policies count. A rule matches when the action is in its actions,
 *   the resource matches one of its resources and its conditions hold. Any matching deny
 *   rule denies (deny overrides allow); otherwise a matching allow rule allows; otherwise
 *   the request is denied. Among several matches the first in (principal's policy order,
 *   rule order) is reported.
 * - Conditions and the two checks. The rpc layer checks every call before its handler with
 *   only (action, resource) and `gate` set. There an allow rule with conditions counts
 *   (the decision says `conditional`) and a deny rule with conditions is skipped, because
 *   the attributes are not known yet. The handler (the CA service) checks again with the
 *   attributes (full check), where conditions are exact:
 *     to_states        the target state is in the list
 *     key_types        the key type is in the list
 *     max_ttl_seconds  the TTL is at most this (allow rules only)
 *     dns_names        allow: every requested name matches a pattern (no names: holds);
 *                      deny: some requested name matches a pattern
 *     ip_addresses     CIDRs ("10.0.0.0/8", "fd00::/8"); allow: every requested IP SAN lies
 *                      in one (no addresses: holds); deny: some requested address does
 *   dns_names and ip_addresses limit the SANs together: an allow rule that names one kind
 *   of SAN and not the other allows none of the other (dns_names alone: no IP SANs;
 *   ip_addresses alone: no DNS names). A rule without either does not limit SANs.
 *   A request that lacks an attribute a condition needs (to_state or key_type NULL or "",
 *   ttl 0) is treated least favourably: the allow rule does not match, the deny rule does.
 * - So that a gate pass can never grant more than the handler re-checks, conditions are
 *   accepted only on rules whose actions all carry the attributes: to_states on
 *   CA.TransitionIdentity, the issuance limits on CA.CreateIdentity, CA.IssueCertificate and
 *   CA.TransitionIdentity. A rule with conditions cannot use `*` or `CA.*` actions.
 * - The built-in policy `admin` (allow `*` on `*`) is always present and cannot be replaced.
 *
 * Resource globs: `*` matches any characters within one path segment, `**` (a whole
 * segment) any number of segments including none; the lone pattern `*` means every
 * resource. DNS patterns: an exact name, or `*.` + name where `*` is exactly one label.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POLICY_NAME_MAX 128   /* longest policy name */
#define POLICY_REASON_MAX 384 /* size of policy_decision.reason, NUL included */
#define POLICY_ERR_MAX 256    /* a good size for policy_parse's err buffer */
#define POLICY_ADMIN "admin"  /* the built-in policy: allow * on * */

#define POLICY_TOKEN_PREFIX "trst_"
#define POLICY_TOKEN_LEN 48    /* "trst_" + 43 base64url characters (32 bytes, no padding) */
#define POLICY_TOKEN_ID_LEN 16 /* hex characters of the public token id */
#define POLICY_HASH_LEN 32     /* SHA-256 of the whole token string */

struct policy_doc; /* a parsed, compiled document; immutable */
struct policy_set; /* documents by name, with lock-free snapshots for evaluation */

/* The request attributes a decision depends on. Only action and resource are required. */
struct policy_request {
	const char *action;	      /* "CA.CreateOwner": short service name, dot, method */
	const char *resource;	      /* "owner/x", "secret/offline/db", "audit", ... */
	const char *to_state;	      /* CA.TransitionIdentity target; NULL or "": absent */
	const char *const *dns_names; /* names to be issued (borrowed), n_dns_names of them */
	size_t n_dns_names;
	const char *const *ip_addresses; /* IP SANs to be issued (borrowed), n_ip_addresses */
	size_t n_ip_addresses;
	uint64_t ttl_seconds; /* effective certificate TTL; 0: absent */
	const char *key_type; /* "ecdsa-p256", ...; NULL or "": absent */
	bool gate;	      /* the pre-handler check: attributes unknown (see above) */
};

struct policy_decision {
	bool allowed;
	bool conditional;			  /* allowed at the gate by a conditional rule */
	char matched_policy[POLICY_NAME_MAX + 1]; /* "" when no rule matched */
	int matched_rule;			  /* index in the document's rules; -1: none */
	char reason[POLICY_REASON_MAX];		  /* "denied by policy p rule 0", ... */
};

/*
 * Parses and compiles a policy document. known_actions (n of them, "CA.CreateOwner", ...)
 * is the server's list of actions, built from the served descriptors; the document may
 * only name those (or their services with `.*`, or `*`), and a set accepts only documents
 * parsed against the same list in the same order. Rejects invalid JSON, duplicate keys,
 * unknown fields, wrong types, unknown actions, services, states and key types, malformed
 * globs and DNS patterns: returns -EINVAL and writes to err (errlen bytes, may be NULL) one
 * line that names the JSON path, e.g. `rules[2].efect: unknown field`, fit to return as
 * INVALID_ARGUMENT. -ENOMEM on allocation failure. On success *ret is the caller's; free
 * it with policy_doc_free or give it to policy_set_put.
 */
int policy_parse(const char *json, const char *const *known_actions, size_t n,
		 struct policy_doc **ret, char *err, size_t errlen);

/* Frees a document. Accepts NULL, returns NULL. */
struct policy_doc *policy_doc_free(struct policy_doc *doc);

/* Number of rules in a document. */
size_t policy_doc_n_rules(const struct policy_doc *doc);

/* True when name is a valid policy name: 1..POLICY_NAME_MAX of [A-Za-z0-9._-], starting
 * with a letter or digit. */
bool policy_name_valid(const char *name);

/*
 * Creates a set that holds only the built-in `admin` policy. known_actions is copied; it
 * is the list every document put into the set must have been parsed against. Returns
 * -EINVAL for an empty or malformed list (each entry `Service.Method`, no duplicates),
 * -ENOMEM.
 */
int policy_set_new(const char *const *known_actions, size_t n, struct policy_set **ret_set);

/* Frees a set and its documents; no evaluation may be running. Accepts NULL, returns NULL. */
struct policy_set *policy_set_free(struct policy_set *set);

/*
 * Adds or replaces policy name with doc, which the set takes in every case (freed on
 * error or when ignored). version is the stored document version (> 0): a put whose
 * version is not newer than the one held is ignored, so that a change heard twice (local
 * put, then the database notification) or out of order is harmless. Publishes a new
 * snapshot and waits for evaluations still reading the old one (about one decision).
 * Returns 1 when installed, 0 when ignored, -EINVAL for a bad name, version 0 or a doc
 * parsed against another action list, -EPERM for `admin`, -ENOMEM.
 */
int policy_set_put(struct policy_set *set, const char *name, uint64_t version,
		   struct policy_doc *doc);

/* Removes policy name. Returns 0, -ENOENT when absent, -EPERM for `admin`, -ENOMEM. */
int policy_set_remove(struct policy_set *set, const char *name);

/* The version held for name (0 for `admin`). Returns 0 or -ENOENT. */
int policy_set_version(struct policy_set *set, const char *name, uint64_t *ret_version);

/* Number of changes published so far (starts at 1); tells a cache whether it moved. */
uint64_t policy_set_generation(const struct policy_set *set);

/*
 * Decides req for a principal bound to policy_names (n_names of them; names the set does
 * not hold grant nothing). Lock-free and allocation-free; safe from any number of threads
 * while another thread puts or removes. An action outside the set's list is denied.
 * Returns 0 and fills *ret (allowed or not), or -EINVAL when action or resource is NULL.
 */
int policy_eval(const struct policy_set *set, const char *const *policy_names, size_t n_names,
		const struct policy_request *req, struct policy_decision *ret);

/*
 * Creates a token: ret_token gets `trst_` + base64url (no padding) of 32 random bytes,
 * NUL-terminated; ret_hash its SHA-256 (the only thing to store); ret_id the public id
 * (policy_token_id). The token is a secret: show it once, never log it, wipe it after
 * use. Returns 0, or -EIO when the random generator fails.
 */
int policy_token_new(char ret_token[POLICY_TOKEN_LEN + 1], uint8_t ret_hash[POLICY_HASH_LEN],
		     char ret_id[POLICY_TOKEN_ID_LEN + 1]);

/*
 * The public id of a token: the first POLICY_TOKEN_ID_LEN lowercase hex characters of its
 * hash. It is what Evaluate's principal, ListTokens, RevokeToken and audit actors name;
 * it reveals nothing usable about the token. Computable from a presented bearer, so logs
 * and audit can name the caller without a database round trip.
 */
void policy_token_id(const uint8_t hash[POLICY_HASH_LEN], char ret_id[POLICY_TOKEN_ID_LEN + 1]);

/*
 * Parses an `authorization` metadata value: "Bearer" (any case), one or more spaces, then
 * exactly a token of the policy_token_new format (canonical base64url), nothing after.
 * Sets ret_hash to the token's SHA-256. Returns 0, or -EINVAL for NULL, a missing or other
 * scheme, or a malformed token, without saying which (all are UNAUTHENTICATED).
 */
int policy_token_parse_bearer(const char *authorization_header, uint8_t ret_hash[POLICY_HASH_LEN]);

/* Compares two token hashes in constant time. */
bool policy_token_hash_equal(const uint8_t a[POLICY_HASH_LEN], const uint8_t b[POLICY_HASH_LEN]);
