/*
 * connect.c: every PostgreSQL connection of db/ (pool slots, the prober's probes in
 * health.c, the LISTEN thread) starts here, with the keepalives and timeouts that bound a
 * silent server (db-internal.h), and through the pool's egress gate (net.h struct
 * net_gate, given by the composition root). Without a gate, or when the gate says "not gated" (the kernel guard or nothing
 * judges connects), libpq connects by the DSN as it is.
 *
 * When the gate gates (userspace enforcement), libpq must not resolve anything itself:
 * the DSN is parsed with libpq's own parser (PQconninfoParse, so the hosts are the ones
 * libpq would use; PGHOST, PGHOSTADDR, PGPORT and PGSERVICE from PQconndefaults when the DSN
 * has none), each TCP host is handed to the gate, and the connection is started with
 * host, hostaddr and port lists that override the DSN's: one entry per admitted address,
 * hostaddr the checked address and host the name (libpq then connects to hostaddr only,
 * and still checks a server certificate against host). Unix socket hosts are local and
 * kept. A host the gate refuses (or that does not resolve) is left out, so libpq fails
 * over to the others as it would; when none is left the attempt is -ECONNREFUSED (the gate
 * has already counted and reported why). This runs at every connection, so a reconnect
 * resolves and checks again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db-internal.h"

#define DB_GATE_ADDRS 16	/* addresses per host name */
#define DB_GATE_LIST (64 * 300) /* room for each of the host, hostaddr and port lists */

/* One comma-separated libpq list, split in place. */
struct list {
	const char *v[DB_GATE_ADDRS * 4];
	size_t n;
};

static void split(char *s, struct list *l)
{
	l->n = 0;
	if (!s || !*s)
		return;
	for (;;) {
		char *c = strchr(s, ',');

		if (l->n == sizeof(l->v) / sizeof(l->v[0]))
			return;
		l->v[l->n++] = s;
		if (!c)
			return;
		*c = '\0';
		s = c + 1;
	}
}

/* The value of key in opts (PQconninfoParse or PQconndefaults), or NULL when unset/empty. */
static const char *opt(const PQconninfoOption *opts, const char *key)
{
	for (; opts && opts->keyword; opts++)
		if (strcmp(opts->keyword, key) == 0)
			return opts->val && *opts->val ? opts->val : NULL;
	return NULL;
}

static bool is_socket_path(const char *h)
{
	return h[0] == '/' || h[0] == '@';
}

/* Appends one host entry to the three lists; -E2BIG when they are full. */
static int append(char *hosts, char *addrs, char *ports, size_t *n, const char *host,
		  const char *addr, const char *port)
{
	size_t lh = strlen(hosts), la = strlen(addrs), lp = strlen(ports);
	const char *sep = *n ? "," : "";

	if (lh + strlen(host) + 2 > DB_GATE_LIST || la + strlen(addr) + 2 > DB_GATE_LIST ||
	    lp + strlen(port) + 2 > DB_GATE_LIST)
		return -E2BIG;
	snprintf(hosts + lh, DB_GATE_LIST - lh, "%s%s", sep, host);
	snprintf(addrs + la, DB_GATE_LIST - la, "%s%s", sep, addr);
	snprintf(ports + lp, DB_GATE_LIST - lp, "%s%s", sep, port);
	(*n)++;
	return 0;
}

/*
 * Builds the host, hostaddr and port lists of the admitted addresses. Returns 1 when the
 * gate does not gate (connect by the DSN), 0 with *ret_n entries, or -errno.
 */
static int gate_lists(struct db *db, char *hosts, char *addrs, char *ports, size_t *ret_n)
{
	PQconninfoOption *dsn = PQconninfoParse(db->dsn, NULL), *def = PQconndefaults();
	char *h = NULL, *a = NULL, *p = NULL;
	struct list lh, la, lp;
	size_t n = 0;
	int r = 0, gated = -1;

	if (!dsn || !def) {
		r = -ENOMEM; /* the DSN was parsed at db_open: only memory can fail now */
		goto out;
	}
	if (!opt(dsn, "host") && opt(dsn, "service")) {
		struct net_addr none[1];
		char why[64];

		/* a service file's host is not ours to see: when gated, refuse, never guess */
		r = db->gate.fn(db->gate.arg, "", 0, none, 1, &n, why, sizeof(why)) > 0 ? 1 :
											  -EINVAL;
		goto out;
	}
	h = strdup(opt(dsn, "host") ? opt(dsn, "host") : opt(def, "host") ? opt(def, "host") : "");
	a = strdup(opt(dsn, "hostaddr") ? opt(dsn, "hostaddr") :
		   opt(def, "hostaddr") ? opt(def, "hostaddr") :
					  "");
	p = strdup(opt(dsn, "port") ? opt(dsn, "port") : opt(def, "port") ? opt(def, "port") : "");
	if (!h || !a || !p) {
		r = -ENOMEM;
		goto out;
	}
	split(h, &lh);
	split(a, &la);
	split(p, &lp);
	if (lh.n == 0 && la.n == 0)
		lh.v[lh.n++] = ""; /* the default unix socket */
	if ((la.n && lh.n && la.n != lh.n) || (lp.n > 1 && lp.n != (la.n ? la.n : lh.n))) {
		r = -EINVAL; /* libpq refuses lists of different lengths too */
		goto out;
	}
	for (size_t i = 0; i < (lh.n ? lh.n : la.n) && r >= 0; i++) {
		const char *host = i < lh.n ? lh.v[i] : "", *addr = i < la.n ? la.v[i] : "";
		const char *port = lp.n ? lp.v[lp.n > 1 ? i : 0] : "";
		struct net_addr ok[DB_GATE_ADDRS];
		char why[320], buf[64];
		size_t k = 0;
		int g;

		if (!*addr && (!*host || is_socket_path(host))) {
			r = append(hosts, addrs, ports, &n, host, "", port);
			continue;
		}
		g = db->gate.fn(db->gate.arg, *addr ? addr : host,
				(uint16_t)(*port ? atoi(port) : 5432), ok, DB_GATE_ADDRS, &k, why,
				sizeof(why));
		if (g > 0) {
			gated = 0;
			break;
		}
		gated = 1;
		for (size_t j = 0; g == 0 && j < k && r >= 0; j++)
			r = append(hosts, addrs, ports, &n, host,
				   net_addr_format(&ok[j], buf, sizeof(buf)), port);
	}
	if (r >= 0 && gated != 1)
		r = 1; /* not gated, or nothing to gate (unix sockets only) */
	*ret_n = n;
out:
	free(h);
	free(a);
	free(p);
	PQconninfoFree(dsn);
	PQconninfoFree(def);
	return r;
}

int db_connect_start(struct db *db, const char *app, PGconn **ret_pg)
{
	/* before dbname: the DSN, expanded in its place, may override any of them; the
	 * gate's host lists come after it and override the DSN's */
	const char *k[] = { "fallback_application_name", "connect_timeout", "keepalives",
			    "keepalives_idle", "keepalives_interval", "keepalives_count",
			    "tcp_user_timeout", "dbname", "host", "hostaddr", "port", NULL };
	char connect_s[16], user_ms[16];
	const char *v[] = { app, connect_s, "1", DB_KEEPALIVES_IDLE, DB_KEEPALIVES_INTERVAL,
			    DB_KEEPALIVES_COUNT, user_ms, db->dsn, NULL, NULL, NULL, NULL };
	char *hosts = NULL, *addrs = NULL, *ports = NULL;
	size_t n = 0;
	PGconn *pg = NULL;
	int r = 1;

	/* libpq's own connect_timeout (whole seconds, at least 2) only matters where libpq
	 * waits by itself; the pool, the prober and the listener poll with their own deadline */
	snprintf(connect_s, sizeof(connect_s), "%d", (db->connect_timeout_ms + 999) / 1000);
	snprintf(user_ms, sizeof(user_ms), "%d",
		 db->statement_timeout_ms > DB_TCP_USER_TIMEOUT_MS ? db->statement_timeout_ms :
								     DB_TCP_USER_TIMEOUT_MS);
	if (db->gate.fn) {
		hosts = calloc(3, DB_GATE_LIST);
		if (!hosts)
			return -ENOMEM;
		addrs = hosts + DB_GATE_LIST;
		ports = addrs + DB_GATE_LIST;
		r = gate_lists(db, hosts, addrs, ports, &n);
	}
	if (r == 0 && n == 0)
		r = -ECONNREFUSED; /* every host refused or unresolved: the gate said why */
	if (r < 0)
		goto out;
	if (r == 0) {
		v[8] = hosts;
		v[9] = addrs;
		v[10] = ports;
	} else {
		k[8] = NULL; /* not gated: libpq connects by the DSN as it is */
	}
	pg = PQconnectStartParams(k, v, 1);
	r = pg ? 0 : -ENOMEM;
out:
	free(hosts);
	if (r == 0)
		*ret_pg = pg;
	return r;
}
