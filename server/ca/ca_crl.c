/*
 * The CA's certificate revocation list. It is rebuilt after every revocation (before the
 * call returns, so a GetCRL that follows sees it) and by a timer, never on read; concurrent
 * requests share one rebuild, and the CRL number is taken from ca_state under its row
 * lock, so it only grows, also with several servers.
 *
 * Assumes the service's crl_* fields (ca-internal.h) and the issuing CA loaded by
 * ca_bootstrap.c; the timer thread is started and stopped there.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca-internal.h"

void ca_crl_clear(struct ca_crl *crl)
{
	if (!crl)
		return;
	free(crl->der);
	free(crl->pem);
	crl->der = NULL;
	crl->pem = NULL;
}

int ca_crl_get(struct ca_service *svc, struct ca_ctx *ctx, struct ca_crl *ret)
{
	struct db_param p = DB_TEXT(ca_tenant_of(ctx));
	struct db_rows *rows = NULL;
	struct db_conn *c = NULL;
	int r;

	r = ca_with_conn(svc, &c);
	if (r < 0)
		return r;
	r = db_exec(c,
		    "SELECT crl_der, crl_pem, extract(epoch from this_update)::bigint, "
		    "extract(epoch from next_update)::bigint, crl_number FROM ca_state "
		    "WHERE tenant_id = $1 AND crl_der IS NOT NULL",
		    &p, 1, &rows);
	db_release(svc->db, c);
	if (r >= 0 && rows->n_rows == 0)
		r = ca_fail(ctx, -EAGAIN, "no CRL has been published yet");
	if (r >= 0) {
		memset(ret, 0, sizeof(*ret));
		ret->der_len = rows->lengths[0];
		ret->der = malloc(ret->der_len);
		ret->pem = strdup(db_rows_get(rows, 0, 1));
		ret->this_update = strtoll(db_rows_get(rows, 0, 2), NULL, 10);
		ret->next_update = strtoll(db_rows_get(rows, 0, 3), NULL, 10);
		ret->number = strtoll(db_rows_get(rows, 0, 4), NULL, 10);
		if (!ret->der || !ret->pem) {
			ca_crl_clear(ret);
			r = -ENOMEM;
		} else {
			memcpy(ret->der, db_rows_get(rows, 0, 0), ret->der_len);
		}
	}
	db_rows_free(rows);
	return r;
}

struct crl_build {
	struct ca_service *svc;
	bool force; /* false (timer): only when the current one is an interval old */
};

/* One transaction: lock ca_state, read the revoked certificates, sign, store number + 1. */
static int crl_tx(struct db_conn *c, void *ud)
{
	struct crl_build *b = ud;
	struct ca_service *svc = b->svc;
	struct db_param p = DB_TEXT(DB_DEFAULT_TENANT);
	struct db_rows *st = NULL, *rows = NULL;
	struct crypto_revoked *rv = NULL;
	int64_t now = ca_now_us() / 1000000, interval = svc->cfg.crl_interval_ms / 1000;
	uint8_t *der = NULL;
	size_t der_len = 0;
	char *pem = NULL;
	uint64_t number;
	int r;

	if (interval < 1)
		interval = 1;
	r = db_exec(c,
		    "SELECT crl_number, coalesce(extract(epoch from this_update)::bigint, 0) "
		    "FROM ca_state WHERE tenant_id = $1 FOR UPDATE",
		    &p, 1, &st);
	if (r < 0)
		goto out;
	if (st->n_rows == 0) {
		r = -ENOENT;
		goto out;
	}
	if (!b->force && now - strtoll(db_rows_get(st, 0, 1), NULL, 10) < interval) {
		r = 0; /* another server refreshed it */
		goto out;
	}
	number = strtoull(db_rows_get(st, 0, 0), NULL, 10) + 1;
	r = db_exec(c,
		    "SELECT serial, extract(epoch from revoked_at)::bigint, revocation_reason "
		    "FROM certificates WHERE tenant_id = $1 AND revoked_at IS NOT NULL "
		    "AND not_after > now() ORDER BY serial",
		    &p, 1, &rows);
	if (r < 0)
		goto out;
	rv = calloc(rows->n_rows ? rows->n_rows : 1, sizeof(*rv));
	if (!rv) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < rows->n_rows; i++)
		rv[i] = (struct crypto_revoked){ .serial = db_rows_get(rows, i, 0),
						 .time = strtoll(db_rows_get(rows, i, 1), NULL, 10),
						 .reason = atoi(db_rows_get(rows, i, 2)) };
	r = crypto_crl_build(svc->ca, rv, rows->n_rows, number, now, now + 2 * interval, &der,
			     &der_len, &pem, NULL, 0);
	if (r < 0)
		goto out;
	{
		char num[24], tu[24], nu[24];
		struct db_param q[6] = { DB_TEXT(DB_DEFAULT_TENANT),
					 DB_TEXT(num),
					 DB_BYTES(der, der_len),
					 DB_TEXT(pem),
					 DB_TEXT(tu),
					 DB_TEXT(nu) };

		snprintf(num, sizeof(num), "%" PRIu64, number);
		snprintf(tu, sizeof(tu), "%" PRId64, now);
		snprintf(nu, sizeof(nu), "%" PRId64, now + 2 * interval);
		r = db_exec(c,
			    "UPDATE ca_state SET crl_number = $2, crl_der = $3, crl_pem = $4, "
			    "this_update = to_timestamp($5::bigint), "
			    "next_update = to_timestamp($6::bigint) WHERE tenant_id = $1",
			    q, 6, NULL);
	}
out:
	free(rv);
	free(der);
	free(pem);
	db_rows_free(rows);
	db_rows_free(st);
	return r;
}

static int crl_build(struct ca_service *svc, bool force)
{
	struct crl_build b = { .svc = svc, .force = force };

	return db_transaction(svc->db, false, crl_tx, &b);
}

int ca_crl_refresh(struct ca_service *svc)
{
	uint64_t mine, target;
	int r = 0;

	/* Callers that arrive while a build runs share the next one: it starts after their
	 * commits, so it sees their revocations. */
	pthread_mutex_lock(&svc->crl_lock);
	mine = ++svc->crl_want;
	while (svc->crl_done < mine && r >= 0) {
		if (svc->crl_running) {
			pthread_cond_wait(&svc->crl_cond, &svc->crl_lock);
			continue;
		}
		svc->crl_running = true;
		target = svc->crl_want;
		pthread_mutex_unlock(&svc->crl_lock);
		r = crl_build(svc, true);
		pthread_mutex_lock(&svc->crl_lock);
		svc->crl_running = false;
		if (r >= 0 && target > svc->crl_done)
			svc->crl_done = target;
		pthread_cond_broadcast(&svc->crl_cond);
	}
	pthread_mutex_unlock(&svc->crl_lock);
	return r;
}

void *ca_crl_timer(void *ud)
{
	struct ca_service *svc = ud;
	int64_t period = svc->cfg.crl_interval_ms / 4;
	struct timespec ts;

	if (period < 250)
		period = 250;
	pthread_mutex_lock(&svc->crl_lock);
	while (!svc->stopping) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += period / 1000;
		ts.tv_nsec += (period % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&svc->timer_cond, &svc->crl_lock, &ts);
		if (svc->stopping)
			break;
		pthread_mutex_unlock(&svc->crl_lock);
		crl_build(svc, false); /* a failure is retried at the next tick */
		pthread_mutex_lock(&svc->crl_lock);
	}
	pthread_mutex_unlock(&svc->crl_lock);
	return NULL;
}
