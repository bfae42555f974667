/*
 * The server's own TLS certificate (the internal TLS mode): issued by the issuing CA for the
 * names of server.tls.sans, so that a client holding the CA bundle (GetCABundle, `trstctl
 * ca bundle`) verifies the server like any other certificate of this CA.
 *
 * It lives in sealed_keys: kind 'tls', name "server-<digest of the names>", the certificate
 * and its chain in public_key, the private key sealed by the KEK. Every server with the same
 * names shares one certificate, and a restart reuses it; other names are another row (and a
 * certificate of their own). A stored certificate is reused while it was signed by the
 * current CA, carries exactly these names, and stays valid beyond renew_before; otherwise a
 * new one is issued and stored. Two servers storing the same version at once: the primary
 * key lets one in, and the other takes the winner's. The change that stores a certificate
 * also leaves an audit record (server_certificate.issued) and drops the versions it replaces
 * and the rows of names nobody renewed for two lifetimes.
 *
 * A timer thread does the same again renew_before ahead of notAfter, without a restart; the
 * TLS stack asks for the current pair at every new connection (ca_server_cert_fetch), which
 * answers from memory and never blocks. Connections made before a renewal keep theirs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ca-internal.h"
#include "kek.h"
#include "log.h"

#define TLS_ROW_LEN 24	     /* "server-" + 16 hex digits */
#define TLS_BACKDATE_MAX 300 /* notBefore this far back, for clients whose clock is late */
#define TLS_RETRY_MAX 60     /* seconds between attempts after a failure, at most */

struct ca_server_cert {
	struct ca_service *svc;
	char **names; /* the configured names, owned */
	size_t n_names;
	const char **dns, **ips; /* the names split by kind (borrowed from names) */
	size_t n_dns, n_ips;
	char row[TLS_ROW_LEN + 1];	/* sealed_keys name */
	int64_t validity, renew_before; /* seconds */

	pthread_mutex_t lock; /* the fields below */
	pthread_cond_t cond;  /* stopping */
	char *chain_pem;      /* the certificate, then the CA bundle */
	char *key_pem;	      /* PKCS#8; wiped when replaced */
	char serial[CRYPTO_SERIAL_HEX_LEN + 1];
	int64_t not_after;   /* Unix seconds */
	int64_t renew_at;    /* when the timer looks for a new certificate (Unix seconds) */
	uint64_t generation; /* bumped with every new pair; never 0 once open */
	bool stopping;
	bool timer_started;
	pthread_t timer;
};

/* A certificate and key on their way into the struct (chain and key malloc'd). */
struct tls_pair {
	char *chain_pem;
	char *key_pem;
	struct crypto_cert_facts facts;
	bool issued; /* by this server now (else reused) */
};

static void pair_clear(struct tls_pair *p)
{
	free(p->chain_pem);
	p->key_pem = crypto_free_secret(p->key_pem);
	p->chain_pem = NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The row of a set of names: the first 8 bytes of SHA-256 over the names sorted, DNS names
 * lowercased and addresses in their canonical text, joined by commas. The order or case in
 * which they are configured does not matter.
 */
static int row_name(struct ca_server_cert *sc)
{
	char **v = calloc(sc->n_names, sizeof(*v));
	char *joined = NULL;
	size_t len = 0;
	uint8_t d[32];
	FILE *f;
	int r = -ENOMEM;

	if (!v)
		return r;
	for (size_t i = 0; i < sc->n_names; i++) {
		unsigned char a[16];
		char text[INET6_ADDRSTRLEN];
		const char *n = sc->names[i];

		if (inet_pton(AF_INET, n, a) == 1)
			n = inet_ntop(AF_INET, a, text, sizeof(text));
		else if (inet_pton(AF_INET6, n, a) == 1)
			n = inet_ntop(AF_INET6, a, text, sizeof(text));
		if (!n || !(v[i] = strdup(n)))
			goto out;
		for (char *p = v[i]; *p; p++)
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	}
	qsort(v, sc->n_names, sizeof(*v), cmp_str);
	f = open_memstream(&joined, &len);
	if (!f)
		goto out;
	for (size_t i = 0; i < sc->n_names; i++)
		fprintf(f, "%s%s", i ? "," : "", v[i]);
	if (fclose(f) != 0)
		goto out;
	r = crypto_sha256(joined, len, d);
	if (r >= 0) {
		memcpy(sc->row, "server-", 7);
		for (size_t i = 0; i < 8; i++)
			snprintf(sc->row + 7 + 2 * i, 3, "%02x", d[i]);
	}
out:
	for (size_t i = 0; i < sc->n_names; i++)
		free(v[i]);
	free(v);
	free(joined);
	return r;
}

/* The stored certificate of these names, when it may be used as it is: 1 with *ret set,
 * 0 with *ret_version (0: none) and *ret_why (why a new one is needed), or -errno. */
static int stored(struct ca_server_cert *sc, struct tls_pair *ret, int *ret_version,
		  const char **ret_why)
{
	struct ca_service *svc = sc->svc;
	struct db_conn *c = NULL;
	struct tls_pair p = { 0 };
	uint8_t *sealed = NULL, *pt = NULL;
	size_t sealed_len = 0, n = 0;
	int version = 0, r;

	r = ca_with_conn(svc, &c);
	if (r < 0)
		return r;
	r = ca_store_key_get(c, DB_DEFAULT_TENANT, CA_TLS_KIND, sc->row, &version, &p.chain_pem,
			     &sealed, &sealed_len);
	db_release(svc->db, c);
	if (r == -ENOENT) {
		*ret_version = 0;
		*ret_why = "no certificate for these names yet";
		return 0;
	}
	if (r < 0)
		return r;
	*ret_version = version;
	r = crypto_cert_read(svc->ca, p.chain_pem, sc->dns, sc->n_dns, sc->ips, sc->n_ips,
			     &p.facts);
	if (r < 0 || !p.facts.signed_by_ca || !p.facts.same_names ||
	    p.facts.not_after - sc->renew_before <= (int64_t)time(NULL)) {
		*ret_why = r < 0		 ? "the stored certificate does not parse" :
			   !p.facts.signed_by_ca ? "the issuing CA changed" :
			   !p.facts.same_names	 ? "the names changed" :
						   "renewal";
		r = r == -ENOMEM ? r : 0;
		goto out;
	}
	r = ca_store_key_open(svc->kek, DB_DEFAULT_TENANT, CA_TLS_KIND, sc->row, version, sealed,
			      sealed_len, &pt, &n);
	if (r >= 0) {
		p.key_pem = strndup((const char *)pt, n);
		r = p.key_pem ? 1 : -ENOMEM;
	}
	if (r > 0) {
		*ret = p;
		p = (struct tls_pair){ 0 };
	}
out:
	kek_free_plain(pt, n);
	free(sealed);
	pair_clear(&p);
	return r;
}

/* Signs a new certificate for the names (P-256 key) into *ret. */
static int issue(struct ca_server_cert *sc, struct tls_pair *ret, char *err, size_t errlen)
{
	struct crypto_issued is = { 0 };
	int64_t now = (int64_t)time(NULL);
	int64_t back = sc->validity / 10 < TLS_BACKDATE_MAX ? sc->validity / 10 : TLS_BACKDATE_MAX;
	int64_t ca_end = crypto_ca_not_after(sc->svc->ca);
	struct crypto_issue_req req = {
		.cn = sc->n_dns ? sc->dns[0] : sc->ips[0],
		.dns_names = sc->dns,
		.n_dns_names = sc->n_dns,
		.ips = sc->ips,
		.n_ips = sc->n_ips,
		.ttl_seconds = sc->validity + back,
		.key_type = CRYPTO_KEY_ECDSA_P256,
		.now = now - back,
	};
	int r;

	if (strlen(req.cn) > CRYPTO_CN_MAX) /* the SANs carry the long name */
		req.cn = "trstctl server";
	if (req.now + req.ttl_seconds > ca_end) /* a certificate never outlives its CA */
		req.ttl_seconds = ca_end - req.now;
	if (req.ttl_seconds <= back) {
		snprintf(err, errlen, "the issuing CA expires (notAfter %lld): renew the CA",
			 (long long)ca_end);
		return -EKEYEXPIRED;
	}
	r = crypto_issue(sc->svc->ca, &req, &is, err, errlen);
	if (r < 0)
		return r;
	if (asprintf(&ret->chain_pem, "%s%s", is.cert_pem, is.chain_pem) < 0) {
		ret->chain_pem = NULL;
		crypto_issued_clear(&is);
		return -ENOMEM;
	}
	ret->key_pem = is.key_pem;
	is.key_pem = NULL;
	memcpy(ret->facts.serial, is.serial, sizeof(is.serial));
	ret->facts.not_before = is.not_before;
	ret->facts.not_after = is.not_after;
	ret->issued = true;
	crypto_issued_clear(&is);
	return 0;
}

/* One stored certificate: the row, its audit record, and the pruning of what it replaces. */
struct tls_change {
	struct ca_server_cert *sc;
	int version;
	const char *chain_pem;
	const uint8_t *sealed;
	size_t sealed_len;
	const json_t *data;
	char resource[64];
};

static int store_apply(struct db_tx *tx, void *ud, char *err, size_t errlen)
{
	struct tls_change *t = ud;
	const struct change_record rec = { .type = "server_certificate.issued",
					   .actor = "trstctl server",
					   .resource = t->resource,
					   .data = t->data,
					   .no_event = true };
	int r;

	(void)err;
	(void)errlen;
	r = ca_store_tls_insert(tx, DB_DEFAULT_TENANT, t->sc->row, t->version, t->chain_pem,
				t->sealed, t->sealed_len);
	if (r == 0)
		return -EEXIST; /* another server stored this version first */
	if (r > 0)
		r = change_record(tx, &rec);
	if (r >= 0)
		r = ca_store_tls_prune(tx, DB_DEFAULT_TENANT, t->sc->row, t->version,
				       2 * t->sc->validity + 86400);
	return r;
}

/* Stores p as version of the row (-EEXIST when that version exists already). */
static int store(struct ca_server_cert *sc, const struct tls_pair *p, int version, const char *why)
{
	struct tls_change t = { .sc = sc, .version = version, .chain_pem = p->chain_pem };
	struct change_key none = { 0 }; /* the server's own change: no request_id */
	struct change ch = { .db = sc->svc->db, .key = &none, .apply = store_apply, .ud = &t };
	uint8_t *sealed = NULL;
	json_t *data, *names = json_array();
	int r;

	for (size_t i = 0; names && i < sc->n_names; i++)
		json_array_append_new(names, json_string(sc->names[i]));
	data = json_pack("{s:s, s:o, s:I, s:I, s:s}", "serial", p->facts.serial, "names", names,
			 "not_before", (json_int_t)p->facts.not_before, "not_after",
			 (json_int_t)p->facts.not_after, "reason", why);
	if (!data)
		return -ENOMEM;
	r = ca_store_key_seal(sc->svc->kek, DB_DEFAULT_TENANT, CA_TLS_KIND, sc->row, version,
			      p->key_pem, &sealed, &t.sealed_len);
	if (r >= 0) {
		snprintf(t.resource, sizeof(t.resource), "server_certificate/%s", p->facts.serial);
		t.sealed = sealed;
		t.data = data;
		r = change_run(&ch);
	}
	change_clear(&ch);
	free(sealed);
	json_decref(data);
	return r;
}

/*
 * The certificate to serve now: the stored one when it may be used, else a new one (stored
 * before it is returned). *ret_why says why a new one was issued (ret->issued).
 */
static int obtain(struct ca_server_cert *sc, struct tls_pair *ret, const char **ret_why, char *err,
		  size_t errlen)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		struct tls_pair p = { 0 };
		const char *why = "";
		int version = 0, r;

		r = stored(sc, &p, &version, &why);
		if (r == 0) {
			r = issue(sc, &p, err, errlen);
			if (r >= 0)
				r = store(sc, &p, version + 1, why);
		}
		if (r == -EEXIST) { /* taken by another server: read again and use theirs */
			pair_clear(&p);
			continue;
		}
		if (r < 0) {
			pair_clear(&p);
			if (!err[0]) /* the sealed key's own words when it does not open */
				snprintf(err, errlen, "%s",
					 kek_strerror(r) ? kek_strerror(r) : strerror(-r));
			return r;
		}
		*ret = p;
		*ret_why = why;
		return 0;
	}
	snprintf(err, errlen, "other servers kept storing new certificates for these names");
	return -EBUSY;
}

/* When the timer should look again: renew_before ahead of notAfter, but never in the past
 * (a certificate that ends with its CA cannot be renewed ahead: then halfway to its end). */
static int64_t renew_due(const struct ca_server_cert *sc, int64_t now)
{
	int64_t due = sc->not_after - sc->renew_before;

	if (due <= now)
		due = now + ((sc->not_after - now) / 2 > 1 ? (sc->not_after - now) / 2 : 1);
	return due;
}

/* Makes p the served pair (takes its strings) and logs it. Under sc->lock. */
static void install(struct ca_server_cert *sc, struct tls_pair *p, const char *why)
{
	free(sc->chain_pem);
	crypto_free_secret(sc->key_pem);
	sc->chain_pem = p->chain_pem;
	sc->key_pem = p->key_pem;
	p->chain_pem = p->key_pem = NULL;
	memcpy(sc->serial, p->facts.serial, sizeof(sc->serial));
	sc->not_after = p->facts.not_after;
	sc->renew_at = renew_due(sc, (int64_t)time(NULL));
	sc->generation++;
	log_info(p->issued ? "issued the server certificate" :
			     "using the stored server certificate",
		 "serial", "%s", sc->serial, "not_after", "%lld", (long long)sc->not_after, "names",
		 "%zu", sc->n_names, "reason", "%s", p->issued ? why : "still valid");
}

static void *renew_main(void *ud)
{
	struct ca_server_cert *sc = ud;
	int64_t retry_at = 0;

	pthread_mutex_lock(&sc->lock);
	while (!sc->stopping) {
		int64_t now = (int64_t)time(NULL);
		int64_t due = retry_at ? retry_at : sc->renew_at;
		struct tls_pair p = { 0 };
		const char *why = "";
		char err[CA_ERR_LEN] = "";
		int r;

		if (now < due) {
			struct timespec ts = { .tv_sec = (time_t)due };

			pthread_cond_timedwait(&sc->cond, &sc->lock, &ts);
			continue;
		}
		pthread_mutex_unlock(&sc->lock);
		r = obtain(sc, &p, &why, err, sizeof(err));
		pthread_mutex_lock(&sc->lock);
		if (r >= 0) {
			install(sc, &p, why);
			retry_at = 0;
			continue;
		}
		/* keep serving the current certificate; try again soon */
		retry_at = (sc->not_after - now) / 10;
		if (retry_at < 1)
			retry_at = 1;
		if (retry_at > TLS_RETRY_MAX)
			retry_at = TLS_RETRY_MAX;
		retry_at += now;
		log_warn("cannot renew the server certificate; retrying", "serial", "%s",
			 sc->serial, "not_after", "%lld", (long long)sc->not_after, "retry_in_s",
			 "%lld", (long long)(retry_at - now), "error", "%s", err);
	}
	pthread_mutex_unlock(&sc->lock);
	return NULL;
}

int ca_server_cert_open(struct ca_service *svc, const struct ca_server_cert_config *cfg,
			struct ca_server_cert **ret, char *err, size_t errlen)
{
	struct ca_server_cert *sc;
	struct tls_pair p = { 0 };
	const char *why = "";
	int r;

	if (!svc || !cfg || !ret || !err || cfg->n_names == 0 || cfg->validity_seconds <= 0 ||
	    cfg->renew_before_seconds <= 0 || cfg->renew_before_seconds >= cfg->validity_seconds)
		return -EINVAL;
	err[0] = '\0';
	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return -ENOMEM;
	sc->svc = svc;
	sc->validity = cfg->validity_seconds;
	sc->renew_before = cfg->renew_before_seconds;
	pthread_mutex_init(&sc->lock, NULL);
	pthread_cond_init(&sc->cond, NULL);
	r = ca_strv_dup(cfg->names, cfg->n_names, &sc->names);
	if (r < 0)
		goto fail;
	sc->n_names = cfg->n_names;
	sc->dns = calloc(sc->n_names, sizeof(*sc->dns));
	sc->ips = calloc(sc->n_names, sizeof(*sc->ips));
	if (!sc->dns || !sc->ips) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < sc->n_names; i++) {
		if (ca_validate_ip(sc->names[i], NULL, 0) == 0)
			sc->ips[sc->n_ips++] = sc->names[i];
		else
			sc->dns[sc->n_dns++] = sc->names[i];
	}
	r = ca_validate_sans(sc->dns, sc->n_dns, sc->ips, sc->n_ips, err, errlen);
	if (r >= 0)
		r = row_name(sc);
	if (r >= 0)
		r = obtain(sc, &p, &why, err, errlen);
	if (r < 0)
		goto fail;
	install(sc, &p, why);
	r = -pthread_create(&sc->timer, NULL, renew_main, sc);
	if (r < 0)
		goto fail;
	sc->timer_started = true;
	*ret = sc;
	return 0;
fail:
	ca_server_cert_close(sc);
	return r;
}

struct ca_server_cert *ca_server_cert_close(struct ca_server_cert *sc)
{
	if (!sc)
		return NULL;
	if (sc->timer_started) {
		pthread_mutex_lock(&sc->lock);
		sc->stopping = true;
		pthread_cond_broadcast(&sc->cond);
		pthread_mutex_unlock(&sc->lock);
		pthread_join(sc->timer, NULL);
	}
	for (size_t i = 0; sc->names && i < sc->n_names; i++)
		free(sc->names[i]);
	free(sc->names);
	free(sc->dns);
	free(sc->ips);
	free(sc->chain_pem);
	crypto_free_secret(sc->key_pem);
	pthread_cond_destroy(&sc->cond);
	pthread_mutex_destroy(&sc->lock);
	free(sc);
	return NULL;
}

int ca_server_cert_fetch(void *ud, uint64_t *generation, char **ret_chain_pem, char **ret_key_pem)
{
	struct ca_server_cert *sc = ud;
	char *chain = NULL, *key = NULL;
	int r = 0;

	pthread_mutex_lock(&sc->lock);
	if (*generation != sc->generation) {
		chain = strdup(sc->chain_pem);
		key = strdup(sc->key_pem);
		if (chain && key) {
			*generation = sc->generation;
			*ret_chain_pem = chain;
			*ret_key_pem = key;
			chain = key = NULL;
			r = 1;
		} else {
			r = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&sc->lock);
	free(chain);
	crypto_free_secret(key);
	return r;
}
