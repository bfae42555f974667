/*
 * libFuzzer target for the SAN conditions of policy rules: the DNS-name patterns of
 * dns_names (dns_compile in policy.c, dns_match in eval.c) and the CIDRs of ip_addresses
 * (net_prefix_parse through ips_compile, net_prefix_contains through ip_any). The input's
 * first line is a DNS pattern, the second a CIDR, each further line a requested name and
 * address at once. Each goes into an allow rule and a deny rule (behind an allow of
 * everything) on CA.IssueCertificate; properties:
 *   - the parser accepts exactly the DNS patterns a plain reference calls well formed
 *     (an optional "*." and then labels of 1..63 of [A-Za-z0-9_-], at most 253 bytes) and
 *     exactly the CIDRs net_prefix_parse takes without a port;
 *   - the full check allows a requested name under the allow rule, and denies it under
 *     the deny rule, exactly when the reference matches it (case-insensitively; `*` is one
 *     whole label); likewise for a requested address, whose reference containment is
 *     computed here from inet_pton and a bit comparison (IPv4-mapped and NAT64 addresses
 *     are judged as the IPv4 address they carry).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#define FUZZ_POLICY_SET
#include "fuzz.h"
#include "net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REQ 8

static bool ref_dns_valid(const char *s)
{
	const char *p = strncmp(s, "*.", 2) == 0 ? s + 2 : s;
	size_t label = 0;

	if (strlen(s) > 253)
		return false;
	for (;; p++) {
		if (*p == '.' || *p == '\0') {
			if (label == 0 || label > 63)
				return false;
			label = 0;
			if (!*p)
				return true;
		} else if (isalnum((unsigned char)*p) || *p == '-' || *p == '_') {
			label++;
		} else {
			return false;
		}
	}
}

static bool ref_dns(const char *pat, const char *name)
{
	const char *dot;

	if (strncmp(pat, "*.", 2) != 0)
		return strcasecmp(pat, name) == 0;
	dot = strchr(name, '.');
	return dot && dot != name && strcasecmp(dot + 1, pat + 2) == 0;
}

/* An address as (family, bytes), IPv4-mapped and NAT64 IPv6 taken as IPv4; false if none. */
static bool ref_addr(const char *s, int *ret_family, uint8_t ret[16])
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
	static const uint8_t nat64[12] = { 0x00, 0x64, 0xff, 0x9b };
	char buf[64];
	const char *zone = strchr(s, '%');
	size_t n = zone ? (size_t)(zone - s) : strlen(s);

	if (n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	memset(ret, 0, 16);
	if (zone && (!strchr(buf, ':') || !zone[1]))
		return false;
	if (inet_pton(AF_INET, buf, ret) == 1) {
		*ret_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, buf, ret) != 1)
		return false;
	*ret_family = AF_INET6;
	if (memcmp(ret, mapped, 12) == 0 || memcmp(ret, nat64, 12) == 0) {
		memmove(ret, ret + 12, 4);
		memset(ret + 4, 0, 12);
		*ret_family = AF_INET;
	}
	return true;
}

static bool ref_contains(const struct net_prefix *p, const char *ip)
{
	uint8_t a[16];
	int family;

	if (!ref_addr(ip, &family, a) || family != p->family)
		return false;
	for (unsigned i = 0; i < p->prefix_len; i++)
		if ((a[i / 8] ^ p->addr[i / 8]) & (0x80 >> (i % 8)))
			return false;
	return true;
}

/*
 * Puts policy name: one rule of effect on CA.IssueCertificate with conditions {key: [v]}
 * (after an allow of everything for a deny). Returns 1 when the parser took it, 0 when it
 * refused, -1 when v is not UTF-8 (nothing to compare).
 */
static int put(const char *name, const char *effect, const char *key, const char *v)
{
	static uint64_t version;
	struct policy_doc *doc = NULL;
	json_t *s = json_string(v), *rules, *root;
	char err[POLICY_ERR_MAX], *text;
	int r;

	if (!s)
		return -1;
	rules = json_pack("[{s:s, s:[s], s:[s], s:{s:[o]}}]", "effect", effect, "actions",
			  "CA.IssueCertificate", "resources", "identity/*", "conditions", key, s);
	if (rules && strcmp(effect, "deny") == 0)
		json_array_insert_new(rules, 0,
				      json_pack("{s:s, s:[s], s:[s]}", "effect", "allow", "actions",
						"*", "resources", "*"));
	root = json_pack("{s:o}", "rules", rules);
	text = root ? json_dumps(root, JSON_COMPACT) : NULL;
	if (!text)
		abort();
	json_decref(root);
	r = policy_parse(text, test_actions, TEST_N_ACTIONS, &doc, err, sizeof(err));
	free(text);
	if (r < 0)
		return 0;
	if (policy_set_put(fuzz_policy_set(), name, ++version, doc) != 1)
		abort();
	return 1;
}

static bool allowed(const char *policy, const char *dns, const char *ip)
{
	const char *names[] = { policy }, *d[] = { dns }, *i[] = { ip };
	struct policy_request q = {
		.action = "CA.IssueCertificate",
		.resource = "identity/web",
		.dns_names = d,
		.n_dns_names = dns != NULL,
		.ip_addresses = i,
		.n_ip_addresses = ip != NULL,
	};
	struct policy_decision dec;

	if (policy_eval(fuzz_policy_set(), names, 1, &q, &dec) < 0)
		abort();
	return dec.allowed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct net_prefix prefix;
	char *in, *pat, *cidr, *line;
	int dns_ok = -1, ip_ok = -1;
	bool cidr_valid = false;

	in = fuzz_cstring(data, size, 2048);
	if (!in)
		return 0;
	pat = in;
	cidr = strchr(pat, '\n');
	if (cidr)
		*cidr++ = '\0';
	line = cidr ? strchr(cidr, '\n') : NULL;
	if (line)
		*line++ = '\0';

	dns_ok = put("dns-allow", "allow", "dns_names", pat);
	if (dns_ok >= 0 && (dns_ok == 1) != ref_dns_valid(pat))
		abort();
	if (dns_ok == 1 && put("dns-deny", "deny", "dns_names", pat) != 1)
		abort();
	if (cidr) {
		const char *why;

		cidr_valid = net_prefix_parse(cidr, &prefix, &why) == 0 && prefix.port == 0;
		ip_ok = put("ip-allow", "allow", "ip_addresses", cidr);
		if (ip_ok >= 0 && (ip_ok == 1) != cidr_valid)
			abort();
		if (ip_ok == 1 && put("ip-deny", "deny", "ip_addresses", cidr) != 1)
			abort();
	}
	for (int k = 0; line && k < MAX_REQ; k++) {
		char *next = strchr(line, '\n');

		if (next)
			*next = '\0';
		if (dns_ok == 1) {
			bool m = ref_dns(pat, line);

			if (allowed("dns-allow", line, NULL) != m ||
			    allowed("dns-deny", line, NULL) == m)
				abort();
		}
		if (ip_ok == 1) {
			bool m = ref_contains(&prefix, line);

			if (allowed("ip-allow", NULL, line) != m ||
			    allowed("ip-deny", NULL, line) == m)
				abort();
		}
		line = next ? next + 1 : NULL;
	}
	free(in);
	return 0;
}
