/*
 * Stream admission (streams.c): the three limits on a table of cases, then a model check of
 * the peer table against a linear list over a long random run of admits and releases
 * (several connections, both shares), then the refusal messages and the init ranges.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Limits of the cases: 6 streams, 3 per connection, 4 without a token. */
enum {
	TOTAL = 6,
	PER_PEER = 3,
	UNAUTH = 4
};

struct step {
	const char *peer;
	bool authenticated;
	int want; /* 0 or the refusal */
};

static void test_limits(void **state)
{
	static const struct step steps[] = {
		{ "ipv4:127.0.0.1:1001", false, 0 },
		{ "ipv4:127.0.0.1:1001", false, 0 },
		{ "ipv4:127.0.0.1:1001", false, 0 },
		{ "ipv4:127.0.0.1:1001", false, -EMFILE }, /* the connection's limit */
		{ "ipv4:127.0.0.1:1001", true, -EMFILE },  /* whoever asks */
		{ "ipv4:127.0.0.1:1002", false, 0 },
		{ "ipv4:127.0.0.1:1003", false, -EDQUOT }, /* the unauthenticated share is full */
		{ "ipv4:127.0.0.1:1003", true, 0 },	   /* a token still gets in */
		{ "ipv4:127.0.0.1:1003", true, 0 },
		{ "ipv4:127.0.0.1:1004", true, -ENFILE },  /* the server's limit */
		{ "ipv4:127.0.0.1:1004", false, -EDQUOT }, /* the share is checked first */
	};
	struct rpc_stream_peer *got[sizeof(steps) / sizeof(steps[0])];
	struct rpc_streams st;

	(void)state;
	assert_int_equal(rpc_streams_init(&st, TOTAL, PER_PEER, UNAUTH), 0);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		got[i] = NULL;
		assert_int_equal(
			rpc_streams_admit(&st, steps[i].peer, steps[i].authenticated, &got[i]),
			steps[i].want);
		assert_true((got[i] != NULL) == (steps[i].want == 0));
	}
	assert_int_equal(st.live, TOTAL);
	assert_int_equal(st.live_unauthenticated, UNAUTH);
	/* one unauthenticated stream ends: another may start, on any connection */
	rpc_streams_release(&st, got[0], false);
	assert_int_equal(rpc_streams_admit(&st, "ipv4:127.0.0.1:1004", false, &got[0]), 0);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		if (got[i])
			rpc_streams_release(&st, got[i], steps[i].authenticated);
	assert_int_equal(st.live, 0);
	assert_int_equal(st.live_unauthenticated, 0);
	for (size_t i = 0; i < st.n_buckets; i++)
		assert_null(st.buckets[i]);
	rpc_streams_fini(&st);
}

/* The model: a linear list of admitted streams. */
struct held {
	int peer;
	bool authenticated;
	struct rpc_stream_peer *handle;
};

static int model_admit(const struct held *h, int n, int peer, bool authenticated, int total,
		       int per_peer, int unauth)
{
	int of_peer = 0, unauthenticated = 0;

	for (int i = 0; i < n; i++) {
		of_peer += h[i].peer == peer;
		unauthenticated += !h[i].authenticated;
	}
	if (of_peer >= per_peer)
		return -EMFILE;
	if (!authenticated && unauthenticated >= unauth)
		return -EDQUOT;
	if (n >= total)
		return -ENFILE;
	return 0;
}

static void test_model(void **state)
{
	enum {
		PEERS = 12,
		STEPS = 50000,
		M_TOTAL = 24,
		M_PER_PEER = 3,
		M_UNAUTH = 10
	};
	struct held held[M_TOTAL];
	struct rpc_streams st;
	char name[64];
	int n = 0, refused[4] = { 0 };

	(void)state;
	srand(7);
	/* up to 12 connections in 32 buckets: chains form and lose entries in the middle */
	assert_int_equal(rpc_streams_init(&st, M_TOTAL, M_PER_PEER, M_UNAUTH), 0);
	for (int step = 0; step < STEPS; step++) {
		if (n > 0 && rand() % 2) {
			int i = rand() % n;

			rpc_streams_release(&st, held[i].handle, held[i].authenticated);
			held[i] = held[--n];
		} else {
			int peer = rand() % PEERS, want, r;
			bool authenticated = rand() % 2;
			struct rpc_stream_peer *p = NULL;

			snprintf(name, sizeof(name), "ipv6:[::1]:%d", 40000 + peer);
			want = model_admit(held, n, peer, authenticated, M_TOTAL, M_PER_PEER,
					   M_UNAUTH);
			r = rpc_streams_admit(&st, name, authenticated, &p);
			assert_int_equal(r, want);
			if (r == 0) {
				assert_string_equal(p->name, name);
				held[n++] = (struct held){ peer, authenticated, p };
			} else {
				refused[r == -EMFILE ? 0 : r == -EDQUOT ? 1 : 2]++;
			}
		}
		assert_int_equal(st.live, n);
	}
	print_message("refused: %d by connection, %d unauthenticated, %d by server\n", refused[0],
		      refused[1], refused[2]);
	/* every kind of refusal was seen */
	assert_true(refused[0] > 0 && refused[1] > 0 && refused[2] > 0);
	while (n > 0) {
		n--;
		rpc_streams_release(&st, held[n].handle, held[n].authenticated);
	}
	for (size_t i = 0; i < st.n_buckets; i++)
		assert_null(st.buckets[i]);
	rpc_streams_fini(&st);
}

static void test_refusals_and_ranges(void **state)
{
	struct rpc_streams st;
	char buf[256];

	(void)state;
	assert_int_equal(rpc_streams_init(&st, 0, 1, 1), -EINVAL);
	assert_int_equal(rpc_streams_init(&st, 4, -1, 1), -EINVAL);
	assert_int_equal(rpc_streams_init(&st, 4, 1, 5), -EINVAL);
	/* 0: no limit of their own */
	assert_int_equal(rpc_streams_init(&st, 4, 0, 0), 0);
	assert_int_equal(st.max_per_peer, 4);
	assert_int_equal(st.max_unauthenticated, 4);
	rpc_streams_fini(&st);

	assert_int_equal(rpc_streams_init(&st, 256, 16, 128), 0);
	rpc_streams_refusal(&st, -EMFILE, buf, sizeof(buf));
	assert_string_equal(buf, "too many streams on this connection: at most 16 at a time");
	rpc_streams_refusal(&st, -EDQUOT, buf, sizeof(buf));
	assert_non_null(strstr(buf, "without a token"));
	assert_non_null(strstr(buf, "at most 128"));
	rpc_streams_refusal(&st, -ENFILE, buf, sizeof(buf));
	assert_string_equal(buf, "too many streams on this server: at most 256 at a time");
	rpc_streams_fini(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_model),
		cmocka_unit_test(test_refusals_and_ranges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
