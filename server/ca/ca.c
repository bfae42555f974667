/*
 * The CA domain rules that need neither storage nor protobuf: the identity lifecycle as a
 * table (the single source of truth for edges and their events), the enumerations of the
 * API with their exact names, and the validation of names, SANs and TTLs. Every refusal
 * names the accepted values, as API.md asks of INVALID_ARGUMENT. Callers own all strings.
 */
#include "ca.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "net.h"

static const char *const state_names[CA_STATE_COUNT] = {
	"requested", "issued", "deployed", "renewing", "revoked", "retired",
};

/* The allowed edges (docs/architecture.md §6) and the event each emits. */
static const char *const edge_event[CA_STATE_COUNT][CA_STATE_COUNT] = {
	[CA_STATE_REQUESTED][CA_STATE_ISSUED] = "identity.issued",
	[CA_STATE_ISSUED][CA_STATE_DEPLOYED] = "identity.deployed",
	[CA_STATE_ISSUED][CA_STATE_REVOKED] = "identity.revoked",
	[CA_STATE_DEPLOYED][CA_STATE_RENEWING] = "identity.renewing",
	[CA_STATE_DEPLOYED][CA_STATE_REVOKED] = "identity.revoked",
	[CA_STATE_RENEWING][CA_STATE_DEPLOYED] = "identity.renewed",
	[CA_STATE_RENEWING][CA_STATE_REVOKED] = "identity.revoked",
	[CA_STATE_REVOKED][CA_STATE_RETIRED] = "identity.retired",
};

/* RFC 5280 CRLReason, by code; 7 is not assigned. */
static const char *const reason_names[CA_REASON_MAX + 1] = {
	"unspecified",	 "keyCompromise",	 "caCompromise",    "affiliationChanged",
	"superseded",	 "cessationOfOperation", "certificateHold", NULL,
	"removeFromCRL", "privilegeWithdrawn",	 "aaCompromise",
};

static const char *const owner_kind_names[CA_OWNER_KIND_COUNT] = {
	"user", "team", "workload", "service", "vendor",
};

static const char *const identity_kind_names[CA_IDENTITY_KIND_COUNT] = {
	"x509_certificate", "ssh_certificate", "ssh_key", "secret", "api_key", "workload_identity",
};

static int set_err(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int set_err(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* Finds value in names[0..n) (NULL entries skipped); on a miss writes
 * `invalid <what> "<value>"; accepted: a, b, ...`. */
static int parse_enum(const char *what, const char *const *names, int n, const char *value,
		      int *ret, char *err, size_t errlen)
{
	size_t off;

	for (int i = 0; value && i < n; i++) {
		if (names[i] && !strcmp(value, names[i])) {
			*ret = i;
			return 0;
		}
	}
	if (!err || !errlen)
		return -EINVAL;
	off = (size_t)snprintf(err, errlen, "invalid %s \"%.64s\"; accepted:", what,
			       value ? value : "");
	for (int i = 0, first = 1; i < n && off < errlen; i++) {
		if (!names[i])
			continue;
		off += (size_t)snprintf(err + off, errlen - off, "%s %s", first ? "" : ",",
					names[i]);
		first = 0;
	}
	return -EINVAL;
}

const char *ca_state_name(enum ca_state s)
{
	return (unsigned)s < CA_STATE_COUNT ? state_names[s] : NULL;
}

int ca_state_parse(const char *name, enum ca_state *ret_state, char *err, size_t errlen)
{
	int v, r = parse_enum("state", state_names, CA_STATE_COUNT, name, &v, err, errlen);

	if (r == 0)
		*ret_state = (enum ca_state)v;
	return r;
}

const char *ca_transition_event(enum ca_state from, enum ca_state to)
{
	if ((unsigned)from >= CA_STATE_COUNT || (unsigned)to >= CA_STATE_COUNT)
		return NULL;
	return edge_event[from][to];
}

int ca_transition_check(enum ca_state from, enum ca_state to)
{
	return ca_transition_event(from, to) ? 0 : -EILSEQ;
}

int ca_transition_message(const char *id, enum ca_state from, enum ca_state to, char *buf,
			  size_t len)
{
	const char *f = ca_state_name(from), *t = ca_state_name(to);

	return set_err(buf, len, -EILSEQ, "invalid transition for identity %s: %s -> %s",
		       id ? id : "", f ? f : "?", t ? t : "?");
}

const char *ca_reason_name(int code)
{
	return code >= 0 && code <= CA_REASON_MAX ? reason_names[code] : NULL;
}

int ca_reason_parse(const char *name, int *ret_code, char *err, size_t errlen)
{
	if (!name || !*name) {
		*ret_code = CA_REASON_UNSPECIFIED;
		return 0;
	}
	return parse_enum("revocation reason", reason_names, CA_REASON_MAX + 1, name, ret_code, err,
			  errlen);
}

const char *ca_owner_kind_name(enum ca_owner_kind k)
{
	return (unsigned)k < CA_OWNER_KIND_COUNT ? owner_kind_names[k] : NULL;
}

int ca_owner_kind_parse(const char *name, enum ca_owner_kind *ret_kind, char *err, size_t errlen)
{
	int v, r = parse_enum("owner kind", owner_kind_names, CA_OWNER_KIND_COUNT, name, &v, err,
			      errlen);

	if (r == 0)
		*ret_kind = (enum ca_owner_kind)v;
	return r;
}

const char *ca_identity_kind_name(enum ca_identity_kind k)
{
	return (unsigned)k < CA_IDENTITY_KIND_COUNT ? identity_kind_names[k] : NULL;
}

int ca_identity_kind_parse(const char *name, enum ca_identity_kind *ret_kind, char *err,
			   size_t errlen)
{
	int v, r;

	if (!name || !*name) {
		*ret_kind = CA_IDENTITY_X509_CERTIFICATE;
		return 0;
	}
	r = parse_enum("identity kind", identity_kind_names, CA_IDENTITY_KIND_COUNT, name, &v, err,
		       errlen);
	if (r == 0)
		*ret_kind = (enum ca_identity_kind)v;
	return r;
}

int ca_identity_issuable(enum ca_identity_kind k, char *err, size_t errlen)
{
	if (k == CA_IDENTITY_X509_CERTIFICATE)
		return 0;
	return set_err(err, errlen, -EOPNOTSUPP,
		       "issuance of %s identities is not implemented; only x509_certificate "
		       "identities are issued",
		       ca_identity_kind_name(k) ? ca_identity_kind_name(k) : "unknown");
}

int ca_key_type_parse(const char *name, enum crypto_key_type *ret_type, char *err, size_t errlen)
{
	if (crypto_key_type_from_name(name, ret_type) == 0)
		return 0;
	return set_err(err, errlen, -EINVAL, "invalid key_type \"%.64s\"; accepted: %s", name,
		       crypto_key_type_list());
}

/* Valid UTF-8 (no overlongs, no surrogates) without C0/C1 controls or DEL. */
static bool text_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned c = *p, need, cp;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return false;
			p++;
			continue;
		}
		need = (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : 0;
		if (!need)
			return false;
		cp = c & (0x3f >> need);
		for (unsigned i = 1; i <= need; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((need == 1 && cp < 0x80) || (need == 2 && cp < 0x800) ||
		    (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0))
			return false;
		p += need + 1;
	}
	return true;
}

int ca_validate_name(const char *field, const char *value, size_t max, char *err, size_t errlen)
{
	if (!value || !*value)
		return set_err(err, errlen, -EINVAL, "%s is required", field);
	if (strlen(value) > max)
		return set_err(err, errlen, -EINVAL, "%s is longer than %zu bytes", field, max);
	if (!text_ok(value))
		return set_err(err, errlen, -EINVAL,
			       "%s must be UTF-8 text without control characters", field);
	return 0;
}

int ca_validate_email(const char *email, char *err, size_t errlen)
{
	const char *at;

	if (!email || !*email)
		return 0;
	at = strchr(email, '@');
	if (strlen(email) > CA_EMAIL_MAX || !at || at == email || !at[1] || strchr(at + 1, '@') ||
	    strpbrk(email, " \t\r\n,;<>") || !text_ok(email))
		return set_err(err, errlen, -EINVAL,
			       "email \"%.64s\" is not an address of the form local@domain", email);
	return 0;
}

int ca_validate_dns_name(const char *name, char *err, size_t errlen)
{
	if (net_dns_name_valid(name))
		return 0;
	return set_err(err, errlen, -EINVAL,
		       "\"%.253s\" is not a valid DNS name (labels of 1..63 letters, digits or "
		       "hyphens, not starting or ending with a hyphen, the last not all digits; "
		       "at most 253 bytes; a leftmost \"*.\" for a wildcard)",
		       name ? name : "");
}

/* Parses an address into a 17-byte key (family byte, then 4 or 16 bytes). */
static bool ip_key(const char *ip, unsigned char key[17])
{
	memset(key, 0, 17);
	if (ip && inet_pton(AF_INET, ip, key + 1) == 1) {
		key[0] = 4;
		return true;
	}
	if (ip && inet_pton(AF_INET6, ip, key + 1) == 1) {
		key[0] = 6;
		return true;
	}
	return false;
}

int ca_validate_ip(const char *ip, char *err, size_t errlen)
{
	unsigned char key[17];

	if (!ip_key(ip, key))
		return set_err(err, errlen, -EINVAL, "\"%.64s\" is not an IPv4 or IPv6 address",
			       ip ? ip : "");
	return 0;
}

int ca_validate_sans(const char *const *dns_names, size_t n_dns, const char *const *ips,
		     size_t n_ips, char *err, size_t errlen)
{
	unsigned char a[17], b[17];
	int r;

	if (n_dns + n_ips > CA_SANS_MAX)
		return set_err(err, errlen, -EINVAL,
			       "too many names: %zu DNS names and IP addresses, at most %d",
			       n_dns + n_ips, CA_SANS_MAX);
	for (size_t i = 0; i < n_dns; i++) {
		r = ca_validate_dns_name(dns_names[i], err, errlen);
		if (r < 0)
			return r;
		for (size_t j = 0; j < i; j++)
			if (!strcasecmp(dns_names[i], dns_names[j]))
				return set_err(err, errlen, -EINVAL,
					       "DNS name \"%.253s\" is listed twice", dns_names[i]);
	}
	for (size_t i = 0; i < n_ips; i++) {
		r = ca_validate_ip(ips[i], err, errlen);
		if (r < 0)
			return r;
		ip_key(ips[i], a);
		for (size_t j = 0; j < i; j++)
			if (ip_key(ips[j], b) && !memcmp(a, b, sizeof(a)))
				return set_err(err, errlen, -EINVAL,
					       "IP address \"%.64s\" is listed twice", ips[i]);
	}
	return 0;
}

int ca_ttl_resolve(int64_t ttl_seconds, int64_t max_seconds, int64_t *ret_ttl, char *err,
		   size_t errlen)
{
	if (ttl_seconds == 0) {
		*ret_ttl = max_seconds > 0 && max_seconds < CA_TTL_DEFAULT ? max_seconds :
									     CA_TTL_DEFAULT;
		return 0;
	}
	if (ttl_seconds < CA_TTL_MIN)
		return set_err(err, errlen, -EINVAL,
			       "ttl_seconds %lld is too short: at least %lld (0 means the default, "
			       "%lld)",
			       (long long)ttl_seconds, CA_TTL_MIN, CA_TTL_DEFAULT);
	if (max_seconds > 0 && ttl_seconds > max_seconds)
		return set_err(err, errlen, -EINVAL, "ttl_seconds %lld exceeds the maximum of %lld",
			       (long long)ttl_seconds, (long long)max_seconds);
	*ret_ttl = ttl_seconds;
	return 0;
}
