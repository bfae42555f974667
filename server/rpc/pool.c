/*
 * The bounded pool that runs blocking unary handlers off the completion-queue threads, and
 * the authorization of streams that would block there (streams.c).
 * A full queue is refused at once (the caller answers RESOURCE_EXHAUSTED) rather than
 * queueing without limit; the threads finish what is queued before they stop.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

static void *pool_main(void *arg)
{
	struct rpc_pool *p = arg;

	pthread_setname_np(pthread_self(), "trst-pool"); /* shows in top, perf, gdb */
	for (;;) {
		struct rpc_call *c;

		pthread_mutex_lock(&p->lock);
		while (p->len == 0 && !p->stop)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->len == 0) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		c = p->queue[p->head];
		p->head = (p->head + 1) % p->cap;
		p->len--;
		pthread_mutex_unlock(&p->lock);
		if (c->method->kind == RPC_SERVER_STREAMING)
			rpc_stream_run_pooled(c); /* authorized here, then on a thread of its own */
		else
			rpc_run_unary(c);
	}
}

int rpc_pool_start(struct rpc_pool *p, int threads, int cap)
{
	p->queue = calloc((size_t)cap, sizeof(*p->queue));
	p->threads = calloc((size_t)threads, sizeof(*p->threads));
	if (!p->queue || !p->threads) {
		free(p->queue);
		free(p->threads);
		return -ENOMEM;
	}
	p->cap = cap;
	p->head = p->len = 0;
	p->stop = false;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	for (p->n_threads = 0; p->n_threads < threads; p->n_threads++)
		if (pthread_create(&p->threads[p->n_threads], NULL, pool_main, p) != 0)
			break;
	if (p->n_threads == 0) {
		rpc_pool_stop(p);
		return -EAGAIN;
	}
	return 0;
}

int rpc_pool_submit(struct rpc_pool *p, struct rpc_call *c)
{
	int r = 0;

	pthread_mutex_lock(&p->lock);
	if (p->stop || p->len == p->cap) {
		r = -EAGAIN;
	} else {
		p->queue[(p->head + p->len) % p->cap] = c;
		p->len++;
	}
	pthread_mutex_unlock(&p->lock);
	/* signalled after the unlock, so that the woken thread does not wake into a held mutex
	 * (a thread that finds the queue empty waits again) */
	if (r == 0)
		pthread_cond_signal(&p->cond);
	return r;
}

void rpc_pool_stop(struct rpc_pool *p)
{
	if (!p->queue)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p->threads);
	free(p->queue);
	p->threads = NULL;
	p->queue = NULL;
}
