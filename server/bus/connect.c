/*
 * connect.c: every NATS connection of bus/ (the relay, bus_last_event) starts here,
 * through the egress gate the composition root gave (net.h struct net_gate). Without a
 * gate, or when the gate says "not gated" (the kernel guard or nothing judges connects),
 * nats.c gets the URL list as configured and reconnects by itself.
 *
 * When the gate gates (userspace enforcement), nats.c must not resolve a name, learn a
 * server from a cluster's gossip, or reconnect on its own: it would connect without
 * asking. So each configured URL, in order, is handed to the gate, and nats.c is given
 * only the admitted addresses of that URL as IP URLs (user information kept; for tls:// the
 * certificate is still checked against the name, natsOptions_SetExpectedHostname), with
 * discovered servers ignored and reconnection off. A lost connection then ends as closed
 * and the caller connects again through here: every reconnect resolves and checks anew.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "internal.h"

#define GATE_ADDRS 16
#define URL_MAX 1024

/*
 * Splits one configured URL into scheme, "user:pass@" (with the @, or "") and the parsed
 * host and port. Returns 0 or -EINVAL.
 */
static int url_parts(const char *url, char *scheme, size_t slen, char *userinfo, size_t ulen,
		     struct net_url *ret_u)
{
	const char *a = strstr(url, "://"), *at;
	size_t an;

	if (!a || net_url_parse(url, ret_u) < 0 || (size_t)(a - url) >= slen)
		return -EINVAL;
	snprintf(scheme, slen, "%.*s", (int)(a - url), url);
	a += 3;
	an = strcspn(a, "/?#");
	at = memrchr(a, '@', an);
	if (at && (size_t)(at - a) + 2 > ulen)
		return -EINVAL;
	snprintf(userinfo, ulen, "%.*s", at ? (int)(at - a + 1) : 0, a);
	return 0;
}

/* Connects opts to the admitted addresses of one gated URL. */
static natsStatus connect_pinned(natsOptions *opts, const char *scheme, const char *userinfo,
				 const struct net_url *u, const struct net_addr *addrs, size_t n,
				 natsConnection **ret_nc)
{
	char buf[GATE_ADDRS][URL_MAX], a[64];
	const char *servers[GATE_ADDRS];
	struct net_addr lit;
	natsStatus s;

	s = NATS_OK;
	for (size_t i = 0; i < n && s == NATS_OK; i++) {
		net_addr_format(&addrs[i], a, sizeof(a));
		if (snprintf(buf[i], sizeof(buf[i]), "%s://%s%s%s%s:%u", scheme, userinfo,
			     addrs[i].family == AF_INET6 ? "[" : "", a,
			     addrs[i].family == AF_INET6 ? "]" : "",
			     (unsigned)u->port) >= (int)sizeof(buf[i]))
			s = NATS_INVALID_ARG;
		servers[i] = buf[i];
	}
	if (s == NATS_OK)
		s = natsOptions_SetURL(opts, NULL);
	if (s == NATS_OK)
		s = natsOptions_SetServers(opts, servers, (int)n);
	if (s == NATS_OK)
		s = natsOptions_SetAllowReconnect(opts, false);
	if (s == NATS_OK)
		s = natsOptions_SetIgnoreDiscoveredServers(opts, true);
	if (s == NATS_OK && strcmp(scheme, "tls") == 0 && net_addr_parse(u->host, &lit) < 0)
		s = natsOptions_SetExpectedHostname(opts, u->host);
	if (s == NATS_OK)
		s = natsConnection_Connect(ret_nc, opts);
	explicit_bzero(buf, sizeof(buf)); /* the user information may hold a password */
	return s;
}

int bus_nats_connect(natsOptions *opts, const char *url_list, const struct net_gate *gate,
		     natsConnection **ret_nc)
{
	int other = 0; /* the last failure that was not a refusal */
	bool gated = false;
	natsStatus s;

	if (!opts || !url_list || !ret_nc)
		return -EINVAL;
	for (const char *p = url_list; gate && gate->fn && p;) {
		size_t len = strcspn(p, ",");
		char one[URL_MAX], scheme[16], userinfo[URL_MAX], why[320];
		struct net_addr ok[GATE_ADDRS];
		struct net_url u;
		size_t n = 0;
		int g;

		if (len >= sizeof(one))
			return -EINVAL;
		snprintf(one, sizeof(one), "%.*s", (int)len, p);
		p = p[len] ? p + len + 1 : NULL;
		g = url_parts(one, scheme, sizeof(scheme), userinfo, sizeof(userinfo), &u);
		explicit_bzero(one, sizeof(one));
		if (g < 0)
			return g;
		if (!u.port)
			u.port = 4222;
		g = gate->fn(gate->arg, u.host, u.port, ok, GATE_ADDRS, &n, why, sizeof(why));
		if (g > 0)
			break; /* not gated (the answer is the same for every URL) */
		gated = true;
		if (g == 0) {
			s = connect_pinned(opts, scheme, userinfo, &u, ok, n, ret_nc);
			if (s == NATS_OK) {
				explicit_bzero(userinfo, sizeof(userinfo));
				return 0;
			}
			g = bus_nats_errno(s);
		}
		explicit_bzero(userinfo, sizeof(userinfo));
		if (g != -EPERM)
			other = g;
	}
	if (gated)
		return other ? other : -EPERM; /* -EPERM: the gate refused every URL */
	s = natsOptions_SetURL(opts, url_list);
	if (s == NATS_OK)
		s = natsConnection_Connect(ret_nc, opts);
	return bus_nats_errno(s);
}
