/*
 * Opening the CA service: its configuration from cfg, the issuing CA loaded from the
 * database (or created and sealed there on first start, under an advisory lock so that
 * several servers create one), the first CRL and its timer, and closing. Also the
 * service's accessors.
 *
 * Assumes the database is migrated and the KEK opened; the issuing key is only held
 * unsealed in memory by crypto_ca.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "ca-internal.h"
#include "cfg.h"
#include "kek.h"

#define CA_LOCK_ID 7310420601LL /* pg_advisory_xact_lock key of CA creation */

int ca_config_from_cfg(const struct cfg *c, struct ca_config *ret)
{
	enum crypto_key_type kt;

	if (!c || crypto_key_type_from_name(cfg_ca_key_type_name(c->ca.key_type), &kt) < 0)
		return -EINVAL;
	*ret = (struct ca_config){ .key_type = kt,
				   .subject_cn = c->ca.subject_cn,
				   .validity_days = (int)(c->ca.validity_ms / 86400000),
				   .max_ttl_seconds = c->ca.max_ttl_ms / 1000,
				   .crl_interval_ms = c->ca.crl_interval_ms };
	return 0;
}

struct ca_load {
	struct ca_service *svc;
	char err[256];
	int version;
	char *chain;
	uint8_t *sealed;
	size_t sealed_len;
};

/* Under the advisory lock: read the newest CA key, or create and insert one first. */
static int ca_load_tx(struct db_conn *c, void *ud)
{
	struct ca_load *l = ud;
	struct ca_service *svc = l->svc;
	struct db_param p[2] = { DB_TEXT(DB_DEFAULT_TENANT) };
	struct crypto_ca *ca = NULL;
	char *key = NULL;
	char lock[24];
	int r;

	snprintf(lock, sizeof(lock), "%lld", CA_LOCK_ID);
	p[1] = DB_TEXT(lock);
	r = db_exec(c, "SELECT pg_advisory_xact_lock($2::bigint), $1::uuid", p, 2, NULL);
	if (r < 0)
		return r;
	r = db_exec(c, "INSERT INTO ca_state (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", p, 1,
		    NULL);
	if (r < 0)
		return r;
	free(l->chain);
	free(l->sealed);
	l->chain = NULL;
	l->sealed = NULL;
	r = ca_store_key_get(c, DB_DEFAULT_TENANT, "ca", CA_KEY_NAME, &l->version, &l->chain,
			     &l->sealed, &l->sealed_len);
	if (r != -ENOENT)
		return r;
	r = crypto_ca_create(svc->cfg.key_type, svc->cfg.subject_cn, svc->cfg.validity_days, &ca,
			     l->err, sizeof(l->err));
	if (r >= 0)
		r = crypto_ca_key_pem(ca, &key);
	if (r >= 0)
		r = ca_store_key_put(c, svc->kek, DB_DEFAULT_TENANT, "ca", CA_KEY_NAME, 1,
				     crypto_ca_bundle_pem(ca), key);
	if (key) {
		OPENSSL_cleanse(key, strlen(key));
		free(key);
	}
	crypto_ca_free(ca);
	if (r < 0)
		return r;
	return ca_store_key_get(c, DB_DEFAULT_TENANT, "ca", CA_KEY_NAME, &l->version, &l->chain,
				&l->sealed, &l->sealed_len);
}

static int ca_load(struct ca_service *svc, char *err, size_t errlen)
{
	struct ca_load l = { .svc = svc };
	uint8_t *pt = NULL;
	size_t n = 0;
	char *key = NULL;
	int r;

	r = db_transaction(svc->db, false, ca_load_tx, &l);
	if (r >= 0)
		r = ca_store_key_open(svc->kek, DB_DEFAULT_TENANT, "ca", CA_KEY_NAME, l.version,
				      l.sealed, l.sealed_len, &pt, &n);
	if (r >= 0) {
		key = malloc(n + 1);
		if (key) {
			memcpy(key, pt, n);
			key[n] = '\0';
			r = crypto_ca_load(l.chain, key, &svc->ca, err, errlen);
			OPENSSL_cleanse(key, n);
			free(key);
		} else {
			r = -ENOMEM;
		}
	}
	if (r < 0 && l.err[0] && err)
		snprintf(err, errlen, "%s", l.err);
	kek_free_plain(pt, n);
	free(l.chain);
	free(l.sealed);
	return r;
}

int ca_service_open(struct db *db, const struct kek *kek, struct bus *bus,
		    const struct ca_config *cfg, struct ca_service **ret)
{
	struct ca_service *svc;
	struct ca_config def = { 0 };
	struct db_conn *c = NULL;
	struct db_rows *rows = NULL;
	struct db_param p = DB_TEXT(DB_DEFAULT_TENANT);
	char err[256] = "";
	int r;

	if (!db || !kek || !ret)
		return -EINVAL;
	svc = calloc(1, sizeof(*svc));
	if (!svc)
		return -ENOMEM;
	svc->db = db;
	svc->kek = kek;
	svc->bus = bus;
	svc->cfg = cfg ? *cfg : def;
	if (!svc->cfg.max_ttl_seconds)
		svc->cfg.max_ttl_seconds = 90 * 86400LL;
	if (!svc->cfg.crl_interval_ms)
		svc->cfg.crl_interval_ms = 3600000;
	pthread_mutex_init(&svc->crl_lock, NULL);
	pthread_cond_init(&svc->crl_cond, NULL);
	pthread_cond_init(&svc->timer_cond, NULL);
	/* issuances and creates are written by the CA's pre-commit hooks, before audit records
	 * and events */
	r = change_hook_register(db, ca_store_issue_hook, NULL, &svc->issue_kind);
	if (r >= 0)
		r = change_hook_register(db, ca_store_create_hook, NULL, &svc->create_kind);
	if (r >= 0)
		r = change_guess_new(CA_IDENT_CACHE_MAX, &ca_ident_guess_ops, &svc->idents);
	if (r >= 0)
		r = ca_load(svc, err, sizeof(err));
	if (r < 0)
		goto fail;
	/* A CRL at once when the database has none (first start, or after `ca import`). */
	r = ca_with_conn(svc, &c);
	if (r >= 0) {
		r = db_exec(c,
			    "SELECT 1 FROM ca_state WHERE tenant_id = $1 AND crl_der IS NOT NULL",
			    &p, 1, &rows);
		db_release(db, c);
	}
	if (r >= 0 && rows->n_rows == 0)
		r = ca_crl_refresh(svc);
	db_rows_free(rows);
	if (r < 0)
		goto fail;
	if (svc->cfg.crl_interval_ms > 0) {
		r = -pthread_create(&svc->timer, NULL, ca_crl_timer, svc);
		if (r < 0)
			goto fail;
		svc->timer_started = true;
	}
	*ret = svc;
	return 0;
fail:
	ca_service_close(svc);
	return r;
}

struct ca_service *ca_service_close(struct ca_service *svc)
{
	if (!svc)
		return NULL;
	if (svc->timer_started) {
		pthread_mutex_lock(&svc->crl_lock);
		svc->stopping = true;
		pthread_cond_broadcast(&svc->timer_cond);
		pthread_mutex_unlock(&svc->crl_lock);
		pthread_join(svc->timer, NULL);
	}
	crypto_ca_free(svc->ca);
	change_guess_free(svc->idents);
	pthread_cond_destroy(&svc->crl_cond);
	pthread_cond_destroy(&svc->timer_cond);
	pthread_mutex_destroy(&svc->crl_lock);
	free(svc->rpc_handlers);
	free(svc);
	return NULL;
}

void ca_service_set_issuance_check(struct ca_service *svc, ca_issuance_check_fn fn, void *ud)
{
	svc->check = fn;
	svc->check_ud = ud;
}

const char *ca_service_bundle_pem(const struct ca_service *svc)
{
	return crypto_ca_bundle_pem(svc->ca);
}
