/*
 * grpc-bench: a closed-loop unary load generator on the gRPC C core. It keeps --inflight
 * calls of one method outstanding on one completion queue, driven by one thread: each
 * completion starts the next call, so the offered load follows the server. The request
 * is sent as given (--request-hex, raw serialized bytes; empty by default, which is a
 * valid empty protobuf message) and the response is not decoded. Calls that complete
 * during the --seconds window after --warmup count towards calls/s and the latency
 * percentiles (every latency is kept and sorted, no histogram error). Every non-OK status
 * at any phase counts as an error and is reported by code, because a benchmark of failing
 * calls measures nothing; the exit status is non-zero when there were errors or no calls.
 * With --tls and no --ca it fetches the server's certificate chain with one OpenSSL
 * handshake and trusts its self-signed root (trust on first use, meant for loopback
 * benchmarks against a server with a generated certificate).
 *
 * Per-call requests (for mutations, which a repeated request_id would only replay): each
 * call appends string fields to the fixed request bytes, a field number appearing once
 * (protobuf takes fields in any order): --unique gives a value no other call of any run
 * uses, --cycle takes the lines of a file in turn, --each takes each line of a file once
 * (the run stops starting calls when they run out, an error inside the window).
 * --save-field writes one string field of every OK response to a file (the ids that
 * CreateIdentity returned, for --each of a later IssueCertificate run). --count runs N
 * calls instead of a timed window. The result line carries the client's own CPU time per
 * call (getrusage, the whole run), so a driver can show the client is not the limit.
 */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define BENCH_CODES 17          /* grpc_status_code 0..16 */
#define BENCH_BAD_BATCH 17      /* the batch itself failed (success == 0) */
#define BENCH_NO_MESSAGE 18     /* OK status without a response message */
#define BENCH_START_FAILED 19   /* the call could not be created or started */
#define BENCH_BAD_RESPONSE 20   /* OK, but the response differs from --expect-hex */
#define BENCH_EXHAUSTED 21      /* --each ran out of lines inside the window */
#define BENCH_BUCKETS 22
#define BENCH_MAX_FIELDS 8

enum bench_field_kind {
	BENCH_FIELD_UNIQUE, /* "<run prefix><call number>" */
	BENCH_FIELD_CYCLE,  /* the lines of a file in turn */
	BENCH_FIELD_EACH,   /* each line of a file once */
};

/* A string field appended to every request. */
struct bench_field {
	enum bench_field_kind kind;
	uint32_t number;   /* protobuf field number */
	char **lines;      /* CYCLE and EACH: the file's lines, owned */
	size_t n_lines;
	size_t next;       /* the next line to use */
};

struct bench_opts {
	const char *addr;        /* host:port */
	const char *method;      /* full path, /pkg.Service/Method */
	uint8_t *request;        /* serialized request, owned */
	size_t request_len;
	uint8_t *expect;         /* expected response bytes, owned; NULL checks nothing */
	size_t expect_len;
	int inflight;            /* calls outstanding, >= 1 */
	int conns;               /* channels, each with its own connection, >= 1 */
	double seconds;          /* measured window */
	double warmup;           /* unmeasured lead-in */
	int deadline_ms;         /* per call */
	bool tls;
	const char *ca_file;     /* PEM roots; NULL with --tls fetches the server's chain */
	const char *target_name; /* TLS name override; NULL derives it from the certificate */
	const char *token;       /* bearer token, or NULL */
	const char *label;       /* printed in front of the result line */
	struct bench_field fields[BENCH_MAX_FIELDS]; /* appended per call, in this order */
	int n_fields;
	uint64_t count;          /* > 0: run this many calls instead of a timed window */
	uint32_t save_field;     /* > 0: write this string field of OK responses */
	FILE *save;              /* where, owned */
};

struct bench;

/* One in-flight slot; it carries one call at a time. */
struct bench_slot {
	struct bench *b;
	grpc_call *call;
	grpc_metadata_array md_initial;
	grpc_metadata_array md_trailing;
	grpc_byte_buffer *send;
	grpc_byte_buffer *recv;
	grpc_status_code status;
	grpc_slice details;
	uint64_t start_ns;
};

struct bench {
	const struct bench_opts *o;
	grpc_completion_queue *cq;
	grpc_channel **ch;
	void **handle;           /* per channel: registered method */
	int next_ch;
	grpc_metadata auth;
	size_t n_md;
	uint64_t measure_start;  /* CLOCK_MONOTONIC ns */
	uint64_t measure_end;
	uint64_t *lat;           /* ns, calls completed OK inside the window */
	size_t n_lat, cap_lat;
	uint64_t window_calls;   /* completions (OK or not) inside the window */
	uint64_t total_calls;
	uint64_t started;        /* calls started */
	uint64_t last_ns;        /* the last completion (--count runs) */
	char unique_prefix[48];  /* --unique values start with it: pid and start time */
	uint64_t by_code[BENCH_BUCKETS];
	char *first_detail[BENCH_BUCKETS];
	int active;
};

static const char *const bench_code_names[BENCH_BUCKETS] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED", "BATCH_FAILED", "NO_MESSAGE", "START_FAILED", "BAD_RESPONSE",
	"EXHAUSTED",
};

static uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void bench_error(struct bench *b, int bucket, const char *detail)
{
	b->by_code[bucket]++;
	if (!b->first_detail[bucket] && detail)
		b->first_detail[bucket] = strdup(detail);
}

/* Reads a protobuf varint at *p (below end); returns false when it is cut off. */
static bool bench_varint(const uint8_t **p, const uint8_t *end, uint64_t *ret)
{
	uint64_t v = 0;

	for (int shift = 0; *p < end && shift < 64; shift += 7) {
		uint8_t c = *(*p)++;

		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*ret = v;
			return true;
		}
	}
	return false;
}

/* Writes string field --save-field of a response as one line; false when it has none. */
static bool bench_save(const struct bench_opts *o, const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n;
	uint64_t key, len;

	while (p < end && bench_varint(&p, end, &key)) {
		switch (key & 7) {
		case 0:
			if (!bench_varint(&p, end, &len))
				return false;
			break;
		case 1:
			p += 8;
			break;
		case 5:
			p += 4;
			break;
		case 2:
			if (!bench_varint(&p, end, &len) || len > (uint64_t)(end - p))
				return false;
			if ((key >> 3) == o->save_field) {
				fprintf(o->save, "%.*s\n", (int)len, (const char *)p);
				return true;
			}
			p += len;
			break;
		default:
			return false;
		}
	}
	return false;
}

/* Whether the response equals --expect-hex (always true without it); saves --save-field. */
static bool bench_response_ok(const struct bench_opts *o, grpc_byte_buffer *bb)
{
	grpc_byte_buffer_reader r;
	grpc_slice all;
	bool ok;

	if (!o->expect && !o->save)
		return true;
	if (!grpc_byte_buffer_reader_init(&r, bb))
		return false;
	all = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	ok = !o->expect || (GRPC_SLICE_LENGTH(all) == o->expect_len &&
			    !memcmp(GRPC_SLICE_START_PTR(all), o->expect, o->expect_len));
	if (ok && o->save)
		ok = bench_save(o, GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all));
	grpc_slice_unref(all);
	return ok;
}

/* Accounts a finished call and releases what it held; returns true to start another. */
static bool bench_finish(struct bench_slot *s, int success)
{
	struct bench *b = s->b;
	uint64_t now = bench_now_ns();
	bool in_window = now >= b->measure_start && now < b->measure_end;
	int bucket;

	if (!success)
		bucket = BENCH_BAD_BATCH;
	else if (s->status < 0 || s->status >= BENCH_CODES)
		bucket = GRPC_STATUS_UNKNOWN;
	else if (s->status == GRPC_STATUS_OK && !s->recv)
		bucket = BENCH_NO_MESSAGE;
	else if (s->status == GRPC_STATUS_OK && !bench_response_ok(b->o, s->recv))
		bucket = BENCH_BAD_RESPONSE;
	else
		bucket = (int)s->status;

	b->total_calls++;
	if (bucket == GRPC_STATUS_OK) {
		b->by_code[0]++;
		if (in_window) {
			if (b->n_lat == b->cap_lat) {
				size_t cap = b->cap_lat ? b->cap_lat * 2 : 1 << 16;
				uint64_t *lat = realloc(b->lat, cap * sizeof(*lat));

				if (!lat) {
					fprintf(stderr, "grpc-bench: out of memory\n");
					exit(1);
				}
				b->lat = lat;
				b->cap_lat = cap;
			}
			b->lat[b->n_lat++] = now - s->start_ns;
		}
	} else if (bucket == BENCH_BAD_RESPONSE) {
		bench_error(b, bucket, b->o->save ? "response lacks --save-field or differs from "
						    "--expect-hex"
						  : "response bytes differ from --expect-hex");
	} else {
		char *d = grpc_slice_to_c_string(s->details);

		bench_error(b, bucket, d);
		gpr_free(d);
	}
	if (in_window)
		b->window_calls++;

	grpc_slice_unref(s->details);
	s->details = grpc_empty_slice();
	grpc_metadata_array_destroy(&s->md_initial);
	grpc_metadata_array_destroy(&s->md_trailing);
	grpc_byte_buffer_destroy(s->send);
	s->send = NULL;
	if (s->recv)
		grpc_byte_buffer_destroy(s->recv);
	s->recv = NULL;
	grpc_call_unref(s->call);
	s->call = NULL;
	b->last_ns = now;
	return now < b->measure_end && (!b->o->count || b->started < b->o->count);
}

/* Appends a length-delimited field to buf at *len (buf has room: see bench_request). */
static void bench_put_field(uint8_t *buf, size_t *len, uint32_t number, const char *v, size_t n)
{
	uint64_t x = (uint64_t)number << 3 | 2;

	for (int k = 0; k < 2; k++) {
		while (x >= 0x80) {
			buf[(*len)++] = (uint8_t)(x | 0x80);
			x >>= 7;
		}
		buf[(*len)++] = (uint8_t)x;
		x = n;
	}
	memcpy(buf + *len, v, n);
	*len += n;
}

/*
 * The next call's request: the fixed bytes and the per-call fields. Returns 0, or
 * -ENODATA when an --each file has run out.
 */
static int bench_request(struct bench *b, grpc_slice *ret)
{
	struct bench_opts *o = (struct bench_opts *)b->o;
	const char *v[BENCH_MAX_FIELDS];
	char unique[80];
	size_t need = o->request_len, len = 0;
	uint8_t *buf;
	int i;

	snprintf(unique, sizeof(unique), "%s%llu", b->unique_prefix,
		 (unsigned long long)b->started);
	for (i = 0; i < o->n_fields; i++) {
		struct bench_field *f = &o->fields[i];

		if (f->kind == BENCH_FIELD_UNIQUE)
			v[i] = unique;
		else if (f->kind == BENCH_FIELD_CYCLE)
			v[i] = f->lines[f->next++ % f->n_lines];
		else if (f->next < f->n_lines)
			v[i] = f->lines[f->next++];
		else
			return -ENODATA;
		need += strlen(v[i]) + 20;
	}
	*ret = grpc_slice_malloc(need);
	buf = GRPC_SLICE_START_PTR(*ret);
	if (o->request_len)
		memcpy(buf, o->request, o->request_len);
	len = o->request_len;
	for (i = 0; i < o->n_fields; i++)
		bench_put_field(buf, &len, o->fields[i].number, v[i], strlen(v[i]));
	GRPC_SLICE_SET_LENGTH(*ret, len);
	return 0;
}

/* Starts one call on the slot; returns 0, or -EIO after counting the failure. */
static int bench_start(struct bench_slot *s)
{
	struct bench *b = s->b;
	int k = b->next_ch;
	gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
					     gpr_time_from_millis(b->o->deadline_ms, GPR_TIMESPAN));
	grpc_op ops[6];
	grpc_call_error err;
	grpc_slice req;

	if (bench_request(b, &req) < 0) {
		if (bench_now_ns() < b->measure_end)
			bench_error(b, BENCH_EXHAUSTED, "--each ran out of lines inside the window");
		return -ENODATA;
	}
	b->started++;
	b->next_ch = (k + 1) % b->o->conns;
	s->call = grpc_channel_create_registered_call(b->ch[k], NULL, GRPC_PROPAGATE_DEFAULTS,
						      b->cq, b->handle[k], deadline, NULL);
	if (!s->call) {
		grpc_slice_unref(req);
		bench_error(b, BENCH_START_FAILED, "grpc_channel_create_registered_call failed");
		return -EIO;
	}
	grpc_metadata_array_init(&s->md_initial);
	grpc_metadata_array_init(&s->md_trailing);
	s->send = grpc_raw_byte_buffer_create(&req, 1);
	grpc_slice_unref(req);
	s->recv = NULL;
	s->status = GRPC_STATUS_UNKNOWN;
	s->details = grpc_empty_slice();

	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = b->n_md;
	ops[0].data.send_initial_metadata.metadata = b->n_md ? &b->auth : NULL;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = s->send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->md_initial;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &s->recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &s->md_trailing;
	ops[5].data.recv_status_on_client.status = &s->status;
	ops[5].data.recv_status_on_client.status_details = &s->details;

	s->start_ns = bench_now_ns();
	err = grpc_call_start_batch(s->call, ops, 6, s, NULL);
	if (err != GRPC_CALL_OK) {
		bench_error(b, BENCH_START_FAILED, grpc_call_error_to_string(err));
		grpc_metadata_array_destroy(&s->md_initial);
		grpc_metadata_array_destroy(&s->md_trailing);
		grpc_byte_buffer_destroy(s->send);
		s->send = NULL;
		grpc_call_unref(s->call);
		s->call = NULL;
		return -EIO;
	}
	return 0;
}

/* Runs warm-up plus the measured window with every slot busy, then drains. */
static void bench_run(struct bench *b, struct bench_slot *slots)
{
	const struct bench_opts *o = b->o;
	uint64_t t0 = bench_now_ns();
	int i;

	b->measure_start = t0 + (uint64_t)(o->warmup * 1e9);
	b->measure_end = b->measure_start + (uint64_t)(o->seconds * 1e9);
	if (o->count) {
		b->measure_start = t0;
		b->measure_end = UINT64_MAX;
	}
	for (i = 0; i < o->inflight && (!o->count || b->started < o->count); i++) {
		slots[i].b = b;
		if (bench_start(&slots[i]) == 0)
			b->active++;
	}
	while (b->active > 0) {
		gpr_timespec until = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
						  gpr_time_from_millis(100, GPR_TIMESPAN));
		grpc_event ev = grpc_completion_queue_next(b->cq, until, NULL);
		struct bench_slot *s;

		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		s = ev.tag;
		if (!bench_finish(s, ev.success) || bench_start(s) < 0)
			b->active--;
	}
	if (o->count)
		b->measure_end = b->last_ns;
}

static int bench_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile in microseconds of a sorted array. */
static double bench_pct_us(const uint64_t *v, size_t n, double p)
{
	size_t rank;

	if (!n)
		return 0;
	rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)v[rank - 1] / 1000.0;
}

static uint64_t bench_report(const struct bench *b)
{
	const struct bench_opts *o = b->o;
	double seconds = o->count ? (double)(b->measure_end - b->measure_start) / 1e9 : o->seconds;
	double rate = seconds > 0 ? (double)b->n_lat / seconds : 0;
	uint64_t errors = 0;
	double p50, p90, p99, max, cpu_ms;
	struct rusage ru;
	int i;

	getrusage(RUSAGE_SELF, &ru);
	cpu_ms = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
		 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
	qsort(b->lat, b->n_lat, sizeof(*b->lat), bench_u64_cmp);
	p50 = bench_pct_us(b->lat, b->n_lat, 50);
	p90 = bench_pct_us(b->lat, b->n_lat, 90);
	p99 = bench_pct_us(b->lat, b->n_lat, 99);
	max = bench_pct_us(b->lat, b->n_lat, 100);
	for (i = 1; i < BENCH_BUCKETS; i++)
		errors += b->by_code[i];

	printf("%s%s %s inflight=%d conns=%d %s warmup=%.1fs\n", o->label ? o->label : "",
	       o->addr, o->method, o->inflight, o->conns, o->tls ? "tls" : "plaintext",
	       o->warmup);
	printf("  %zu OK calls in %.2f s = %.0f calls/s\n", b->n_lat, seconds, rate);
	printf("  latency p50 %.1f us  p90 %.1f us  p99 %.1f us  max %.1f us\n", p50, p90, p99,
	       max);
	printf("  errors %llu (of %llu calls, warm-up and drain included)\n",
	       (unsigned long long)errors, (unsigned long long)b->total_calls);
	for (i = 1; i < BENCH_BUCKETS; i++) {
		if (!b->by_code[i])
			continue;
		printf("    %-19s (%2d) x %llu: %s\n", bench_code_names[i], i,
		       (unsigned long long)b->by_code[i],
		       b->first_detail[i] ? b->first_detail[i] : "");
	}
	printf("  client CPU %.3f ms per call (%.0f ms for %llu calls)\n",
	       b->total_calls ? cpu_ms / (double)b->total_calls : 0, cpu_ms,
	       (unsigned long long)b->total_calls);
	printf("result %scalls=%zu seconds=%.3f calls_per_s=%.1f p50_us=%.1f p90_us=%.1f "
	       "p99_us=%.1f max_us=%.1f errors=%llu total_calls=%llu client_cpu_ms=%.1f",
	       o->label ? o->label : "", b->n_lat, seconds, rate, p50, p90, p99, max,
	       (unsigned long long)errors, (unsigned long long)b->total_calls, cpu_ms);
	for (i = 1; i < BENCH_BUCKETS; i++) {
		if (b->by_code[i])
			printf(" err_%s=%llu", bench_code_names[i],
			       (unsigned long long)b->by_code[i]);
	}
	printf("\n");
	fflush(stdout);
	return errors;
}

/* Splits "host:port" or "[v6]:port" into its parts (both malloc'd). */
static int bench_split_addr(const char *addr, char **ret_host, char **ret_port)
{
	const char *colon;
	char *host;

	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		host = strndup(addr + 1, (size_t)(close - addr - 1));
		colon = close + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return -EINVAL;
		host = strndup(addr, (size_t)(colon - addr));
	}
	if (!host)
		return -ENOMEM;
	*ret_host = host;
	*ret_port = strdup(colon + 1);
	return *ret_port ? 0 : -ENOMEM;
}

/* The first DNS name of the certificate's SAN, else its CN, else NULL (malloc'd). */
static char *bench_cert_name(X509 *x)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	char *name = NULL;
	char cn[256];
	int i;

	for (i = 0; names && i < sk_GENERAL_NAME_num(names) && !name; i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);

		if (g->type == GEN_DNS)
			name = strndup((const char *)ASN1_STRING_get0_data(g->d.dNSName),
				       (size_t)ASN1_STRING_length(g->d.dNSName));
	}
	GENERAL_NAMES_free(names);
	if (!name && X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
					       sizeof(cn)) > 0)
		name = strdup(cn);
	return name;
}

/*
 * Fetches the server's chain with one TLS handshake (no verification) and returns the
 * PEM of its self-signed root, and the name to check the server against. Fails with
 * -EPROTO when the chain does not end in a self-signed certificate.
 */
static int bench_fetch_root(const char *addr, char **ret_pem, char **ret_name)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL, *a;
	static const unsigned char alpn[] = { 2, 'h', '2' };
	char *host = NULL, *port = NULL, *pem = NULL, *p;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	BIO *mem = NULL;
	STACK_OF(X509) *chain;
	X509 *root;
	int fd = -1, ret;
	long n;

	ret = bench_split_addr(addr, &host, &port);
	if (ret < 0)
		goto out;
	ret = -EHOSTUNREACH;
	if (getaddrinfo(host, port, &hints, &ai))
		goto out;
	for (a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
		if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	if (fd < 0)
		goto out;
	ret = -EPROTO;
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		goto out;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn));
	ssl = SSL_new(ctx);
	if (!ssl || !SSL_set_fd(ssl, fd) || SSL_connect(ssl) != 1)
		goto out;
	chain = SSL_get_peer_cert_chain(ssl);
	if (!chain || sk_X509_num(chain) < 1)
		goto out;
	root = sk_X509_value(chain, sk_X509_num(chain) - 1);
	/* Not X509_check_issued(): it also wants keyCertSign, which a leaf rarely has. */
	if (X509_NAME_cmp(X509_get_subject_name(root), X509_get_issuer_name(root)) ||
	    X509_verify(root, X509_get0_pubkey(root)) != 1) {
		fprintf(stderr, "grpc-bench: the server's chain does not end in a self-signed "
				"certificate; pass its CA with --ca\n");
		goto out;
	}
	mem = BIO_new(BIO_s_mem());
	if (!mem || !PEM_write_bio_X509(mem, root))
		goto out;
	n = BIO_get_mem_data(mem, &p);
	pem = strndup(p, (size_t)n);
	if (!pem) {
		ret = -ENOMEM;
		goto out;
	}
	*ret_name = bench_cert_name(sk_X509_value(chain, 0));
	*ret_pem = pem;
	ret = 0;
out:
	BIO_free(mem);
	if (ssl)
		SSL_shutdown(ssl);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	if (ai)
		freeaddrinfo(ai);
	free(host);
	free(port);
	return ret;
}

static char *bench_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f)
		return NULL;
	do {
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap + 65536);

			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
			cap += 65536;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	return buf;
}

/* Creates the channels; returns 0 or a negative errno after printing why. */
static int bench_channels(struct bench *b)
{
	const struct bench_opts *o = b->o;
	char *pem = NULL, *name = NULL;
	grpc_arg args[2];
	grpc_channel_args ch_args = { .num_args = 0, .args = args };
	grpc_channel_credentials *creds;
	int i, ret;

	memset(args, 0, sizeof(args));
	args[ch_args.num_args].type = GRPC_ARG_INTEGER;
	args[ch_args.num_args].key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
	args[ch_args.num_args].value.integer = 1;
	ch_args.num_args++;
	if (!o->tls) {
		creds = grpc_insecure_credentials_create();
	} else {
		if (o->ca_file) {
			pem = bench_read_file(o->ca_file);
			if (!pem) {
				fprintf(stderr, "grpc-bench: cannot read --ca %s: %s\n", o->ca_file,
					strerror(errno));
				return -ENOENT;
			}
		} else {
			ret = bench_fetch_root(o->addr, &pem, &name);
			if (ret < 0) {
				fprintf(stderr, "grpc-bench: cannot fetch the TLS certificate of %s: "
						"%s\n", o->addr, strerror(-ret));
				return ret;
			}
		}
		if (o->target_name) {
			free(name);
			name = strdup(o->target_name);
		}
		if (name) {
			args[ch_args.num_args].type = GRPC_ARG_STRING;
			args[ch_args.num_args].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
			args[ch_args.num_args].value.string = name;
			ch_args.num_args++;
		}
		creds = grpc_ssl_credentials_create_ex(pem, NULL, NULL, NULL);
	}
	b->ch = calloc((size_t)o->conns, sizeof(*b->ch));
	b->handle = calloc((size_t)o->conns, sizeof(*b->handle));
	if (!creds || !b->ch || !b->handle) {
		fprintf(stderr, "grpc-bench: cannot create channel credentials\n");
		ret = -ENOMEM;
		goto out;
	}
	/* A local subchannel pool gives each channel its own connection. */
	for (i = 0; i < o->conns; i++) {
		b->ch[i] = grpc_channel_create(o->addr, creds, &ch_args);
		b->handle[i] = grpc_channel_register_call(b->ch[i], o->method, NULL, NULL);
	}
	ret = 0;
out:
	if (creds)
		grpc_channel_credentials_release(creds);
	free(pem);
	free(name);
	return ret;
}

static void bench_usage(FILE *out)
{
	fprintf(out,
		"usage: grpc-bench --addr HOST:PORT --method /pkg.Svc/Method [options]\n"
		"  --request-hex HEX   serialized request bytes (default empty)\n"
		"  --expect-hex HEX    count an OK response with other bytes as an error\n"
		"  --inflight N        calls kept outstanding (default 64)\n"
		"  --conns K           channels, one connection each (default 1)\n"
		"  --seconds M         measured window (default 5)\n"
		"  --warmup S          unmeasured lead-in (default 1)\n"
		"  --deadline-ms D     per-call deadline (default 10000)\n"
		"  --tls               use TLS; without --ca, trust the server's self-signed root\n"
		"  --ca FILE           PEM roots to verify the server with\n"
		"  --target-name NAME  TLS name to check (default: from the certificate)\n"
		"  --token TOKEN       send 'authorization: Bearer TOKEN'\n"
		"  --label TEXT        prefix for the report and the result line's fields\n"
		"  --unique F          append string field F, unique per call and run\n"
		"  --cycle F:FILE      append string field F, the lines of FILE in turn\n"
		"  --each F:FILE       append string field F, each line of FILE once\n"
		"  --count N           run N calls instead of --warmup and --seconds\n"
		"  --save-field F:FILE write string field F of every OK response to FILE\n"
		"Prints a report and one line 'result calls=... calls_per_s=... p50_us=... "
		"p99_us=... errors=...'.\n"
		"Exit status: 0 when calls completed without errors, 1 otherwise, 2 bad usage.\n");
}

static int bench_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes pairs of hex digits; rejects odd lengths and other characters. */
static int bench_parse_hex(const char *hex, uint8_t **ret_buf, size_t *ret_len)
{
	size_t n = strlen(hex), i;
	uint8_t *buf;

	if (n % 2)
		return -EINVAL;
	buf = malloc(n / 2 + 1);
	if (!buf)
		return -ENOMEM;
	for (i = 0; i < n / 2; i++) {
		int hi = bench_hex_digit(hex[2 * i]), lo = bench_hex_digit(hex[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			free(buf);
			return -EINVAL;
		}
		buf[i] = (uint8_t)(hi << 4 | lo);
	}
	*ret_buf = buf;
	*ret_len = n / 2;
	return 0;
}

static int bench_parse_num(const char *opt, const char *s, double lo, double hi, double *ret)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "grpc-bench: %s wants a number in [%g, %g], got '%s'\n", opt, lo,
			hi, s);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

/* Reads FILE's non-empty lines into f. */
static int bench_read_lines(const char *path, struct bench_field *f)
{
	char *all = bench_read_file(path), *line, *save = NULL;

	if (!all) {
		fprintf(stderr, "grpc-bench: cannot read %s: %s\n", path, strerror(errno));
		return -ENOENT;
	}
	for (line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (f->n_lines % 4096 == 0) {
			char **nl = realloc(f->lines, (f->n_lines + 4096) * sizeof(*nl));

			if (!nl)
				return -ENOMEM;
			f->lines = nl;
		}
		f->lines[f->n_lines++] = line; /* points into all, kept for the run */
	}
	if (!f->n_lines) {
		fprintf(stderr, "grpc-bench: %s has no lines\n", path);
		return -EINVAL;
	}
	return 0;
}

/* Parses "F" (unique) or "F:FILE" (cycle, each, save) into a field number and a path. */
static int bench_parse_field(const char *opt, const char *val, bool with_file, uint32_t *ret_number,
			     const char **ret_path)
{
	char *end;
	unsigned long n = strtoul(val, &end, 10);

	if (end == val || n < 1 || n > 536870911 || (with_file ? *end != ':' || !end[1] : *end)) {
		fprintf(stderr, "grpc-bench: %s wants %s, got '%s'\n", opt,
			with_file ? "FIELD:FILE" : "a field number", val);
		return -EINVAL;
	}
	*ret_number = (uint32_t)n;
	*ret_path = with_file ? end + 1 : NULL;
	return 0;
}

/* One of --unique, --cycle, --each, --save-field. */
static int bench_parse_gen(struct bench_opts *o, const char *opt, const char *val)
{
	bool unique = !strcmp(opt, "--unique"), save = !strcmp(opt, "--save-field");
	struct bench_field *f;
	const char *path;
	uint32_t number;

	if (bench_parse_field(opt, val, !unique, &number, &path) < 0)
		return -EINVAL;
	if (save) {
		o->save_field = number;
		o->save = fopen(path, "w");
		if (!o->save)
			fprintf(stderr, "grpc-bench: cannot write %s: %s\n", path, strerror(errno));
		return o->save ? 0 : -EINVAL;
	}
	if (o->n_fields == BENCH_MAX_FIELDS) {
		fprintf(stderr, "grpc-bench: at most %d per-call fields\n", BENCH_MAX_FIELDS);
		return -EINVAL;
	}
	f = &o->fields[o->n_fields++];
	f->number = number;
	f->kind = unique ? BENCH_FIELD_UNIQUE :
			   (!strcmp(opt, "--cycle") ? BENCH_FIELD_CYCLE : BENCH_FIELD_EACH);
	return unique ? 0 : bench_read_lines(path, f);
}

static int bench_parse(int argc, char **argv, struct bench_opts *o)
{
	double v;
	int i;

	*o = (struct bench_opts){ .inflight = 64, .conns = 1, .seconds = 5, .warmup = 1,
				  .deadline_ms = 10000 };
	for (i = 1; i < argc; i++) {
		const char *opt = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		bool takes = true;

		if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
			bench_usage(stdout);
			exit(0);
		} else if (!strcmp(opt, "--tls")) {
			o->tls = true;
			takes = false;
		} else if (!val) {
			fprintf(stderr, "grpc-bench: unknown option or missing value: '%s'\n", opt);
			return -EINVAL;
		} else if (!strcmp(opt, "--addr")) {
			o->addr = val;
		} else if (!strcmp(opt, "--method")) {
			o->method = val;
		} else if (!strcmp(opt, "--request-hex")) {
			free(o->request);
			o->request = NULL;
			if (bench_parse_hex(val, &o->request, &o->request_len) < 0) {
				fprintf(stderr, "grpc-bench: --request-hex wants pairs of hex "
						"digits\n");
				return -EINVAL;
			}
		} else if (!strcmp(opt, "--expect-hex")) {
			free(o->expect);
			o->expect = NULL;
			if (bench_parse_hex(val, &o->expect, &o->expect_len) < 0) {
				fprintf(stderr, "grpc-bench: --expect-hex wants pairs of hex "
						"digits\n");
				return -EINVAL;
			}
		} else if (!strcmp(opt, "--inflight")) {
			if (bench_parse_num(opt, val, 1, 100000, &v) < 0)
				return -EINVAL;
			o->inflight = (int)v;
		} else if (!strcmp(opt, "--conns")) {
			if (bench_parse_num(opt, val, 1, 1024, &v) < 0)
				return -EINVAL;
			o->conns = (int)v;
		} else if (!strcmp(opt, "--seconds")) {
			if (bench_parse_num(opt, val, 0.1, 86400, &o->seconds) < 0)
				return -EINVAL;
		} else if (!strcmp(opt, "--warmup")) {
			if (bench_parse_num(opt, val, 0, 3600, &o->warmup) < 0)
				return -EINVAL;
		} else if (!strcmp(opt, "--deadline-ms")) {
			if (bench_parse_num(opt, val, 1, 3600000, &v) < 0)
				return -EINVAL;
			o->deadline_ms = (int)v;
		} else if (!strcmp(opt, "--ca")) {
			o->ca_file = val;
		} else if (!strcmp(opt, "--target-name")) {
			o->target_name = val;
		} else if (!strcmp(opt, "--token")) {
			o->token = val;
		} else if (!strcmp(opt, "--label")) {
			o->label = val;
		} else if (!strcmp(opt, "--unique") || !strcmp(opt, "--cycle") ||
			   !strcmp(opt, "--each") || !strcmp(opt, "--save-field")) {
			if (bench_parse_gen(o, opt, val) < 0)
				return -EINVAL;
		} else if (!strcmp(opt, "--count")) {
			if (bench_parse_num(opt, val, 1, 1e9, &v) < 0)
				return -EINVAL;
			o->count = (uint64_t)v;
		} else {
			fprintf(stderr, "grpc-bench: unknown option '%s'\n", opt);
			return -EINVAL;
		}
		if (takes)
			i++;
	}
	if (!o->addr || !o->method || o->method[0] != '/' || !strchr(o->method + 1, '/')) {
		fprintf(stderr, "grpc-bench: --addr and --method /pkg.Service/Method are "
				"required\n");
		return -EINVAL;
	}
	if ((o->ca_file || o->target_name) && !o->tls) {
		fprintf(stderr, "grpc-bench: --ca and --target-name need --tls\n");
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct bench b;
	struct bench_slot *slots;
	char *bearer = NULL;
	uint64_t errors;
	int i;

	if (bench_parse(argc, argv, &o) < 0) {
		bench_usage(stderr);
		return 2;
	}
	grpc_init();
	memset(&b, 0, sizeof(b));
	b.o = &o;
	b.cq = grpc_completion_queue_create_for_next(NULL);
	snprintf(b.unique_prefix, sizeof(b.unique_prefix), "b%ld-%llx-", (long)getpid(),
		 (unsigned long long)bench_now_ns());
	if (o.token) {
		if (asprintf(&bearer, "Bearer %s", o.token) < 0)
			return 1;
		b.auth.key = grpc_slice_from_static_string("authorization");
		b.auth.value = grpc_slice_from_copied_string(bearer);
		b.n_md = 1;
		OPENSSL_cleanse(bearer, strlen(bearer));
		free(bearer);
	}
	if (bench_channels(&b) < 0)
		return 1;
	slots = calloc((size_t)o.inflight, sizeof(*slots));
	if (!slots)
		return 1;

	bench_run(&b, slots);
	errors = bench_report(&b);

	for (i = 0; i < o.conns; i++)
		grpc_channel_destroy(b.ch[i]);
	grpc_completion_queue_shutdown(b.cq);
	while (grpc_completion_queue_next(b.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(b.cq);
	if (o.save)
		fclose(o.save);
	if (b.n_md)
		grpc_slice_unref(b.auth.value);
	for (i = 0; i < BENCH_BUCKETS; i++)
		free(b.first_detail[i]);
	free(b.ch);
	free(b.handle);
	free(b.lat);
	free(slots);
	free(o.request);
	free(o.expect);
	grpc_shutdown();
	return errors || !b.n_lat ? 1 : 0;
}
