/*
 * echo-floor: the smallest gRPC C-core server we know how to write, built only to be the
 * floor that tools/bench compares trstctl against. It serves one registered unary method,
 * /bench.Echo/Echo, which returns the request bytes unchanged (no protobuf decoding), and
 * answers every other method UNIMPLEMENTED so that a wrong --method shows up as errors
 * rather than a hang. Threading matches the real server: one completion queue per worker
 * thread (workers = online cores unless --threads says otherwise), and a call stays on the
 * queue it was requested on, so per-call state needs no locks. With --tls it serves a
 * self-signed P-256 certificate made at start-up (a P-256 leaf, as trstctl's internal TLS
 * mode serves), so the floor can be measured over the same transport as the server. It binds --addr (default
 * 127.0.0.1:0), prints "port N" on stdout and runs until SIGINT or SIGTERM.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define FLOOR_METHOD "/bench.Echo/Echo"
#define FLOOR_REQUESTS_PER_CQ 8 /* echo requests kept posted on each queue */
#define FLOOR_GENERIC_PER_CQ 2  /* catch-all requests kept posted on each queue */
#define FLOOR_GRACE_MS 2000

enum floor_kind {
	FLOOR_ECHO,
	FLOOR_GENERIC,
};

struct floor;

/* One call, from the posted request to the completion of its only batch. */
struct floor_call {
	struct floor *f;
	int cq_idx;                 /* the queue the call is bound to */
	enum floor_kind kind;
	bool accepted;              /* false: the tag is the new-call event; true: the batch */
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_call_details details;  /* FLOOR_GENERIC only */
	grpc_byte_buffer *payload;  /* FLOOR_ECHO only; sent back, destroyed at completion */
	grpc_slice status_details;
	int cancelled;
};

struct floor_worker {
	struct floor *f;
	int idx;
	pthread_t thread;
	unsigned long served; /* written only by this worker, read after join */
};

struct floor {
	grpc_server *server;
	void *echo_method;
	int n_cq;
	grpc_completion_queue **cq;
	struct floor_worker *workers;
	atomic_bool stopping; /* set at shutdown: no new requests are posted */
	atomic_long live;     /* floor_call structs allocated and not yet freed */
};

static struct floor_call *floor_call_free(struct floor_call *c)
{
	if (!c)
		return NULL;
	grpc_metadata_array_destroy(&c->md);
	if (c->kind == FLOOR_GENERIC)
		grpc_call_details_destroy(&c->details);
	if (c->payload)
		grpc_byte_buffer_destroy(c->payload);
	if (c->call)
		grpc_call_unref(c->call);
	atomic_fetch_sub(&c->f->live, 1);
	free(c);
	return NULL;
}

/* Posts one request of the given kind on queue cq_idx; quietly does nothing at shutdown. */
static void floor_request(struct floor *f, int cq_idx, enum floor_kind kind)
{
	struct floor_call *c;
	grpc_call_error err;
	grpc_completion_queue *cq = f->cq[cq_idx];

	if (atomic_load(&f->stopping))
		return;
	c = calloc(1, sizeof(*c));
	if (!c) {
		fprintf(stderr, "echo-floor: out of memory\n");
		abort();
	}
	c->f = f;
	c->cq_idx = cq_idx;
	c->kind = kind;
	grpc_metadata_array_init(&c->md);
	atomic_fetch_add(&f->live, 1);
	if (kind == FLOOR_ECHO) {
		err = grpc_server_request_registered_call(f->server, f->echo_method, &c->call,
							  &c->deadline, &c->md, &c->payload,
							  cq, cq, c);
	} else {
		grpc_call_details_init(&c->details);
		err = grpc_server_request_call(f->server, &c->call, &c->details, &c->md, cq, cq,
					       c);
	}
	if (err != GRPC_CALL_OK) {
		fprintf(stderr, "echo-floor: request call: %s\n", grpc_call_error_to_string(err));
		floor_call_free(c);
	}
}

/* Answers an accepted call with one batch; the batch completion frees the call. */
static void floor_answer(struct floor_call *c)
{
	grpc_op ops[4];
	grpc_op *op = ops;
	grpc_status_code code = GRPC_STATUS_OK;
	grpc_call_error err;

	if (c->kind == FLOOR_GENERIC) {
		code = GRPC_STATUS_UNIMPLEMENTED;
		c->status_details = grpc_slice_from_static_string("echo-floor serves only "
								  FLOOR_METHOD);
	} else if (!c->payload) {
		code = GRPC_STATUS_INTERNAL;
		c->status_details = grpc_slice_from_static_string("no request message");
	}
	memset(ops, 0, sizeof(ops));
	op->op = GRPC_OP_SEND_INITIAL_METADATA;
	op++;
	if (code == GRPC_STATUS_OK) {
		op->op = GRPC_OP_SEND_MESSAGE;
		op->data.send_message.send_message = c->payload;
		op++;
	}
	op->op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	op->data.send_status_from_server.status = code;
	op->data.send_status_from_server.status_details =
		code == GRPC_STATUS_OK ? NULL : &c->status_details;
	op++;
	op->op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op->data.recv_close_on_server.cancelled = &c->cancelled;
	op++;
	c->accepted = true;
	err = grpc_call_start_batch(c->call, ops, (size_t)(op - ops), c, NULL);
	if (err != GRPC_CALL_OK) {
		fprintf(stderr, "echo-floor: start batch: %s\n", grpc_call_error_to_string(err));
		floor_call_free(c);
	}
}

static void *floor_worker_main(void *arg)
{
	struct floor_worker *w = arg;
	struct floor *f = w->f;
	grpc_completion_queue *cq = f->cq[w->idx];

	for (;;) {
		grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME),
							   NULL);
		struct floor_call *c;

		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		c = ev.tag;
		if (c->accepted || !ev.success) {
			/* The batch is done, or the request failed because we are stopping. */
			if (c->accepted)
				w->served++;
			floor_call_free(c);
			continue;
		}
		floor_request(f, w->idx, c->kind);
		floor_answer(c);
	}
	return NULL;
}

/* Makes a self-signed P-256 certificate for localhost/127.0.0.1 valid for one day. */
static int floor_make_cert(char **ret_cert_pem, char **ret_key_pem)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	BIO *cb = BIO_new(BIO_s_mem());
	BIO *kb = BIO_new(BIO_s_mem());
	char *cert_pem = NULL, *key_pem = NULL, *p;
	long n;
	int ret = -ENOMEM;

	if (!key || !x || !cb || !kb)
		goto out;
	ret = -EPROTO;
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL));
	X509_set_version(x, 2);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
				  "DNS:localhost,IP:127.0.0.1,IP:::1");
	if (!ext || !X509_add_ext(x, ext, -1)) {
		X509_EXTENSION_free(ext);
		goto out;
	}
	X509_EXTENSION_free(ext);
	if (!X509_sign(x, key, EVP_sha256()))
		goto out;
	if (!PEM_write_bio_X509(cb, x) || !PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0,
								   NULL, NULL))
		goto out;
	n = BIO_get_mem_data(cb, &p);
	cert_pem = strndup(p, (size_t)n);
	n = BIO_get_mem_data(kb, &p);
	key_pem = strndup(p, (size_t)n);
	if (!cert_pem || !key_pem) {
		ret = -ENOMEM;
		goto out;
	}
	*ret_cert_pem = cert_pem;
	*ret_key_pem = key_pem;
	cert_pem = key_pem = NULL;
	ret = 0;
out:
	free(cert_pem);
	free(key_pem);
	BIO_free(cb);
	BIO_free(kb);
	X509_free(x);
	EVP_PKEY_free(key);
	return ret;
}

static grpc_server_credentials *floor_credentials(bool tls)
{
	grpc_ssl_pem_key_cert_pair pair;
	grpc_server_credentials *creds;
	char *cert = NULL, *key = NULL;

	if (!tls)
		return grpc_insecure_server_credentials_create();
	if (floor_make_cert(&cert, &key) < 0)
		return NULL;
	pair.private_key = key;
	pair.cert_chain = cert;
	creds = grpc_ssl_server_credentials_create_ex(NULL, &pair, 1,
						      GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
						      NULL);
	OPENSSL_cleanse(key, strlen(key));
	free(key);
	free(cert);
	return creds;
}

/* Stops accepting, drains (cancelling after a grace period), joins and frees everything. */
static void floor_stop(struct floor *f, grpc_completion_queue *shutdown_cq)
{
	gpr_timespec grace = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
					  gpr_time_from_millis(FLOOR_GRACE_MS, GPR_TIMESPAN));
	grpc_event ev;
	int i;

	atomic_store(&f->stopping, true);
	grpc_server_shutdown_and_notify(f->server, shutdown_cq, f);
	ev = grpc_completion_queue_pluck(shutdown_cq, f, grace, NULL);
	if (ev.type == GRPC_QUEUE_TIMEOUT) {
		grpc_server_cancel_all_calls(f->server);
		grpc_completion_queue_pluck(shutdown_cq, f, gpr_inf_future(GPR_CLOCK_REALTIME),
					    NULL);
	}
	/* Workers keep draining until every call, accepted or merely posted, is freed. */
	while (atomic_load(&f->live) > 0)
		usleep(1000);
	for (i = 0; i < f->n_cq; i++)
		grpc_completion_queue_shutdown(f->cq[i]);
	for (i = 0; i < f->n_cq; i++)
		pthread_join(f->workers[i].thread, NULL);
	grpc_server_destroy(f->server);
	for (i = 0; i < f->n_cq; i++)
		grpc_completion_queue_destroy(f->cq[i]);
	grpc_completion_queue_shutdown(shutdown_cq);
	grpc_completion_queue_destroy(shutdown_cq);
}

static void floor_usage(FILE *out)
{
	fprintf(out, "usage: echo-floor [--addr HOST:PORT] [--threads N] [--tls]\n"
		     "  serves " FLOOR_METHOD " (bytes in, same bytes out) until SIGINT/SIGTERM;\n"
		     "  prints \"port N\" on stdout once it is serving.\n"
		     "  --addr     bind address (default 127.0.0.1:0, a free port)\n"
		     "  --threads  worker threads, one completion queue each (default: cores)\n"
		     "  --tls      serve TLS with a self-signed certificate for localhost\n");
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1:0";
	long threads = sysconf(_SC_NPROCESSORS_ONLN);
	bool tls = false;
	struct floor f;
	grpc_completion_queue *shutdown_cq;
	grpc_server_credentials *creds;
	sigset_t sigs;
	unsigned long total = 0;
	int port, i, j, sig;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--addr") && i + 1 < argc) {
			addr = argv[++i];
		} else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
			char *end;

			threads = strtol(argv[++i], &end, 10);
			if (*end || threads < 1 || threads > 256) {
				fprintf(stderr, "echo-floor: --threads wants 1..256, got '%s'\n",
					argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--tls")) {
			tls = true;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			floor_usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "echo-floor: unknown or incomplete option '%s'\n", argv[i]);
			floor_usage(stderr);
			return 2;
		}
	}
	if (threads < 1)
		threads = 1;

	/* Core threads inherit this mask, so only sigwait() below sees the signals. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	grpc_init();
	memset(&f, 0, sizeof(f));
	atomic_init(&f.stopping, false);
	atomic_init(&f.live, 0);
	f.n_cq = (int)threads;
	f.server = grpc_server_create(NULL, NULL);
	f.echo_method = grpc_server_register_method(f.server, FLOOR_METHOD, NULL,
						    GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
	f.cq = calloc((size_t)f.n_cq, sizeof(*f.cq));
	f.workers = calloc((size_t)f.n_cq, sizeof(*f.workers));
	if (!f.echo_method || !f.cq || !f.workers) {
		fprintf(stderr, "echo-floor: set-up failed\n");
		return 1;
	}
	for (i = 0; i < f.n_cq; i++) {
		f.cq[i] = grpc_completion_queue_create_for_next(NULL);
		grpc_server_register_completion_queue(f.server, f.cq[i], NULL);
	}
	shutdown_cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_server_register_completion_queue(f.server, shutdown_cq, NULL);

	creds = floor_credentials(tls);
	if (!creds) {
		fprintf(stderr, "echo-floor: cannot make a TLS certificate\n");
		return 1;
	}
	port = grpc_server_add_http2_port(f.server, addr, creds);
	grpc_server_credentials_release(creds);
	if (port <= 0) {
		fprintf(stderr, "echo-floor: cannot bind %s\n", addr);
		return 1;
	}
	grpc_server_start(f.server);
	for (i = 0; i < f.n_cq; i++) {
		for (j = 0; j < FLOOR_REQUESTS_PER_CQ; j++)
			floor_request(&f, i, FLOOR_ECHO);
		for (j = 0; j < FLOOR_GENERIC_PER_CQ; j++)
			floor_request(&f, i, FLOOR_GENERIC);
	}
	for (i = 0; i < f.n_cq; i++) {
		f.workers[i].f = &f;
		f.workers[i].idx = i;
		if (pthread_create(&f.workers[i].thread, NULL, floor_worker_main, &f.workers[i])) {
			fprintf(stderr, "echo-floor: cannot start worker %d\n", i);
			return 1;
		}
	}
	printf("port %d\n", port);
	fflush(stdout);

	sigwait(&sigs, &sig);
	floor_stop(&f, shutdown_cq);
	fprintf(stderr, "echo-floor: %s, %d workers, served", tls ? "tls" : "plaintext", f.n_cq);
	for (i = 0; i < f.n_cq; i++) {
		fprintf(stderr, " %lu", f.workers[i].served);
		total += f.workers[i].served;
	}
	fprintf(stderr, " = %lu calls\n", total);
	free(f.cq);
	free(f.workers);
	grpc_shutdown();
	return 0;
}
