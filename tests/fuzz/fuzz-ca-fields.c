/*
 * libFuzzer target for the checks of the CA requests' own fields (server/ca/ca.c): names,
 * e-mail addresses, DNS and IP SANs, states, revocation reasons, kinds and key types all
 * come from CreateOwner, CreateIdentity, IssueCertificate and TransitionIdentity. The
 * input is cut into lines (at most 16); each line goes to every check, and the lines
 * together form the SAN lists. Properties:
 *   - every refusal is -EINVAL with a message;
 *   - a DNS name is accepted exactly when a plain reference says it is one (labels of
 *     1..63 letters, digits or hyphens, no hyphen at either end, the last not all digits,
 *     at most 253 bytes, no trailing dot, an optional leftmost "*."), an IP exactly when
 *     inet_pton reads it;
 *   - an enumeration value is accepted only under its API name (parse, then name, gives
 *     the same text back; the empty default aside);
 *   - SAN lists that pass hold no duplicate (case-insensitive names, addresses by value).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ca.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LINES 16

static void refused(int r, const char *err)
{
	if (r != -EINVAL || !err[0] || !memchr(err, '\0', CA_ERR_LEN))
		abort();
}

static bool ref_dns(const char *s)
{
	size_t n = strlen(s);
	const char *p = s, *label;
	bool digits = true;

	if (n == 0 || n > 253)
		return false;
	if (strncmp(p, "*.", 2) == 0)
		p += 2;
	for (;;) {
		label = p;
		digits = true;
		while (isascii((unsigned char)*p) && (isalnum((unsigned char)*p) || *p == '-')) {
			digits = digits && isdigit((unsigned char)*p);
			p++;
		}
		if (p == label || p - label > 63 || *label == '-' || p[-1] == '-')
			return false;
		if (*p == '\0')
			return !digits;
		if (*p != '.')
			return false;
		p++;
	}
}

static bool ref_ip(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static void one(const char *s)
{
	char err[CA_ERR_LEN] = "";
	enum ca_state st;
	enum ca_owner_kind ok;
	enum ca_identity_kind ik;
	enum crypto_key_type kt;
	int r, code;

	r = ca_validate_dns_name(s, err, sizeof(err));
	if ((r == 0) != ref_dns(s))
		abort();
	if (r < 0)
		refused(r, err);
	err[0] = '\0';
	r = ca_validate_ip(s, err, sizeof(err));
	if ((r == 0) != ref_ip(s))
		abort();
	if (r < 0)
		refused(r, err);
	err[0] = '\0';
	if ((r = ca_validate_name("name", s, CA_NAME_MAX, err, sizeof(err))) < 0)
		refused(r, err);
	err[0] = '\0';
	if ((r = ca_validate_email(s, err, sizeof(err))) < 0)
		refused(r, err);
	else if (*s && (!strchr(s, '@') || strlen(s) > CA_EMAIL_MAX))
		abort();

	err[0] = '\0';
	if ((r = ca_state_parse(s, &st, err, sizeof(err))) < 0)
		refused(r, err);
	else if (strcmp(ca_state_name(st), s) != 0)
		abort();
	err[0] = '\0';
	if ((r = ca_reason_parse(s, &code, err, sizeof(err))) < 0)
		refused(r, err);
	else if (*s && strcmp(ca_reason_name(code), s) != 0)
		abort();
	err[0] = '\0';
	if ((r = ca_owner_kind_parse(s, &ok, err, sizeof(err))) < 0)
		refused(r, err);
	else if (strcmp(ca_owner_kind_name(ok), s) != 0)
		abort();
	err[0] = '\0';
	if ((r = ca_identity_kind_parse(s, &ik, err, sizeof(err))) < 0)
		refused(r, err);
	else if (*s && strcmp(ca_identity_kind_name(ik), s) != 0)
		abort();
	err[0] = '\0';
	if ((r = ca_key_type_parse(s, &kt, err, sizeof(err))) < 0)
		refused(r, err);
}

static void sans(const char *const *lines, size_t n)
{
	unsigned char a[17], b[17];
	char err[CA_ERR_LEN] = "";
	int r = ca_validate_sans(lines, n, NULL, 0, err, sizeof(err));

	if (r < 0) {
		refused(r, err);
	} else {
		for (size_t i = 0; i < n; i++)
			for (size_t j = 0; j < i; j++)
				if (strcasecmp(lines[i], lines[j]) == 0)
					abort();
	}
	err[0] = '\0';
	r = ca_validate_sans(NULL, 0, lines, n, err, sizeof(err));
	if (r < 0) {
		refused(r, err);
		return;
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++) {
			memset(a, 0, sizeof(a));
			memset(b, 0, sizeof(b));
			a[0] = inet_pton(AF_INET, lines[i], a + 1) == 1 ? 4 : 6;
			if (a[0] == 6)
				inet_pton(AF_INET6, lines[i], a + 1);
			b[0] = inet_pton(AF_INET, lines[j], b + 1) == 1 ? 4 : 6;
			if (b[0] == 6)
				inet_pton(AF_INET6, lines[j], b + 1);
			if (memcmp(a, b, sizeof(a)) == 0)
				abort();
		}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *lines[MAX_LINES];
	size_t n = 0;
	char *in;

	in = fuzz_cstring(data, size, 4096);
	if (!in)
		return 0;
	for (char *p = in; p && n < MAX_LINES;) {
		char *nl = strchr(p, '\n');

		if (nl)
			*nl++ = '\0';
		lines[n++] = p;
		p = nl;
	}
	for (size_t i = 0; i < n; i++)
		one(lines[i]);
	sans(lines, n);
	free(in);
	return 0;
}
