/*
 * libtrstctl runtime: channel set-up and the generic blocking unary and server-streaming
 * calls that the generated typed stubs wrap. Each call gets its own pluck completion
 * queue, so a client can be shared between threads without locks. A unary call is one
 * batch (send metadata + message + close, receive metadata + message + status); a stream
 * posts the status receive up front and then receives messages one batch at a time.
 * grpc_init()/grpc_shutdown() are reference counted by the core, one pair per client.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "trstctl-client.h"

/* Larger replies than this are refused by the core (RESOURCE_EXHAUSTED). */
#define CLIENT_MAX_REPLY_BYTES (64 * 1024 * 1024)
/* PEM files larger than this are not certificates or keys. */
#define CLIENT_MAX_PEM_BYTES (1024 * 1024)

struct trstctl_client {
	grpc_channel *channel; /* owned */
	char *token;           /* default bearer token or NULL */
	int64_t deadline_ms;   /* default deadline, 0 = none */
};

static const char *const code_names[] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
};

const char *trstctl_status_code_name(int code)
{
	if (code < 0 || code >= (int)(sizeof(code_names) / sizeof(code_names[0])))
		return "UNKNOWN_CODE";
	return code_names[code];
}

int trstctl_status_code_parse(const char *s)
{
	char *end;
	long v;

	if (!s || !*s)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(code_names) / sizeof(code_names[0]); i++)
		if (!strcasecmp(s, code_names[i]))
			return (int)i;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 0 || v > 16)
		return -EINVAL;
	return (int)v;
}

int trstctl_status_errno(int code)
{
	switch (code) {
	case GRPC_STATUS_OK: return 0;
	case GRPC_STATUS_CANCELLED: return -ECANCELED;
	case GRPC_STATUS_INVALID_ARGUMENT: return -EINVAL;
	case GRPC_STATUS_OUT_OF_RANGE: return -EINVAL;
	case GRPC_STATUS_DEADLINE_EXCEEDED: return -ETIMEDOUT;
	case GRPC_STATUS_NOT_FOUND: return -ENOENT;
	case GRPC_STATUS_ALREADY_EXISTS: return -EEXIST;
	case GRPC_STATUS_PERMISSION_DENIED: return -EPERM;
	case GRPC_STATUS_RESOURCE_EXHAUSTED: return -ENOSPC;
	case GRPC_STATUS_FAILED_PRECONDITION: return -EBUSY;
	case GRPC_STATUS_ABORTED: return -EAGAIN;
	case GRPC_STATUS_UNIMPLEMENTED: return -EOPNOTSUPP;
	case GRPC_STATUS_UNAVAILABLE: return -ECONNREFUSED;
	case GRPC_STATUS_UNAUTHENTICATED: return -EACCES;
	case GRPC_STATUS_DATA_LOSS: return -EBADMSG;
	default: return -EIO;
	}
}

void trstctl_status_clear(struct trstctl_status *status)
{
	if (!status)
		return;
	free(status->message);
	status->message = NULL;
	status->code = 0;
}

/* Fills *st (when not NULL) with a code and a copy of msg; returns the matching -errno. */
static int status_set(struct trstctl_status *st, int code, const char *msg, int err)
{
	if (st) {
		free(st->message);
		st->code = code;
		st->message = strdup(msg ? msg : "");
	}
	return err;
}

/* Reads a whole (small) file into a NUL-terminated buffer. */
static int read_pem(const char *path, char **ret_buf)
{
	struct stat sb;
	char *buf;
	size_t off = 0;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0 || sb.st_size > CLIENT_MAX_PEM_BYTES) {
		r = sb.st_size > CLIENT_MAX_PEM_BYTES ? -EFBIG : -errno;
		close(fd);
		return r;
	}
	buf = malloc((size_t)sb.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (off < (size_t)sb.st_size) {
		ssize_t n = read(fd, buf + off, (size_t)sb.st_size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			break;
		}
		off += (size_t)n;
	}
	close(fd);
	if (r < 0) {
		explicit_bzero(buf, (size_t)sb.st_size + 1);
		free(buf);
		return r;
	}
	buf[off] = '\0';
	*ret_buf = buf;
	return 0;
}

/* Frees a buffer that may hold key material. */
static void pem_free(char *p)
{
	if (p)
		explicit_bzero(p, strlen(p));
	free(p);
}

/* TLS without any check of the server certificate (TRSTCTL_TLS_NO_VERIFY: a quick look). */
static grpc_channel_credentials *creds_no_verify(const char *ca, const char *cert,
						 const char *key)
{
	grpc_tls_credentials_options *o = grpc_tls_credentials_options_create();
	grpc_tls_certificate_verifier *v = grpc_tls_certificate_verifier_no_op_create();
	grpc_channel_credentials *creds;

	if (cert) {
		grpc_tls_identity_pairs *pairs = grpc_tls_identity_pairs_create();
		grpc_tls_certificate_provider *p;

		grpc_tls_identity_pairs_add_pair(pairs, key, cert);
		p = grpc_tls_certificate_provider_static_data_create(ca, pairs);
		grpc_tls_credentials_options_set_certificate_provider(o, p);
		grpc_tls_credentials_options_watch_identity_key_cert_pairs(o);
		if (ca)
			grpc_tls_credentials_options_watch_root_certs(o);
		grpc_tls_certificate_provider_release(p);
	}
	grpc_tls_credentials_options_set_verify_server_cert(o, 0);
	grpc_tls_credentials_options_set_certificate_verifier(o, v);
	grpc_tls_credentials_options_set_check_call_host(o, 0);
	grpc_tls_certificate_verifier_release(v);
	creds = grpc_tls_credentials_create(o);
	return creds;
}

static int client_channel(struct trstctl_client *c, const struct trstctl_client_config *cfg)
{
	grpc_channel_credentials *creds = NULL;
	char *ca = NULL, *cert = NULL, *key = NULL;
	grpc_arg args[2];
	grpc_channel_args chargs = { .num_args = 0, .args = args };
	int r = 0;

	memset(args, 0, sizeof(args));
	args[chargs.num_args].type = GRPC_ARG_INTEGER;
	args[chargs.num_args].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[chargs.num_args++].value.integer = CLIENT_MAX_REPLY_BYTES;

	if (cfg->transport == TRSTCTL_PLAINTEXT) {
		creds = grpc_insecure_credentials_create();
		goto create;
	}
	if (cfg->ca_file && (r = read_pem(cfg->ca_file, &ca)) < 0)
		goto out;
	if (cfg->cert_file && (r = read_pem(cfg->cert_file, &cert)) < 0)
		goto out;
	if (cfg->key_file && (r = read_pem(cfg->key_file, &key)) < 0)
		goto out;
	if (cfg->target_name && *cfg->target_name) {
		args[chargs.num_args].type = GRPC_ARG_STRING;
		args[chargs.num_args].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
		args[chargs.num_args++].value.string = (char *)cfg->target_name;
	}
	if (cfg->transport == TRSTCTL_TLS_NO_VERIFY) {
		creds = creds_no_verify(ca, cert, key);
	} else {
		grpc_ssl_pem_key_cert_pair pair = { .private_key = key, .cert_chain = cert };

		creds = grpc_ssl_credentials_create_ex(ca, cert ? &pair : NULL, NULL, NULL);
	}
create:
	if (!creds) {
		r = -EINVAL;
		goto out;
	}
	c->channel = grpc_channel_create(cfg->addr, creds, &chargs);
	grpc_channel_credentials_release(creds);
	if (!c->channel)
		r = -EINVAL;
out:
	free(ca);
	pem_free(cert);
	pem_free(key);
	return r;
}

int trstctl_client_new(const struct trstctl_client_config *config,
		       struct trstctl_client **ret_client)
{
	struct trstctl_client *c;
	int r;

	if (!config || !ret_client || !config->addr || !*config->addr)
		return -EINVAL;
	if (!config->cert_file != !config->key_file)
		return -EINVAL;
	if (config->transport != TRSTCTL_TLS && config->transport != TRSTCTL_TLS_NO_VERIFY &&
	    config->transport != TRSTCTL_PLAINTEXT)
		return -EINVAL;
	if (config->deadline_ms < 0)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->deadline_ms = config->deadline_ms;
	if (config->token && !(c->token = strdup(config->token))) {
		free(c);
		return -ENOMEM;
	}
	grpc_init();
	r = client_channel(c, config);
	if (r < 0) {
		trstctl_client_free(c);
		return r;
	}
	*ret_client = c;
	return 0;
}

struct trstctl_client *trstctl_client_free(struct trstctl_client *c)
{
	if (!c)
		return NULL;
	if (c->channel)
		grpc_channel_destroy(c->channel);
	pem_free(c->token);
	free(c);
	grpc_shutdown();
	return NULL;
}

/* One call in progress: its queue, its call and what the batches point at. */
struct call {
	grpc_completion_queue *cq;
	grpc_call *call;
	grpc_metadata md;           /* authorization, when a token is set */
	size_t n_md;
	grpc_byte_buffer *send;     /* the request */
	grpc_metadata_array init_md; /* received initial metadata */
	grpc_metadata_array trail_md; /* received trailing metadata */
	grpc_status_code code;
	grpc_slice details;
	const char *error_string;   /* debug detail from the core, gpr_free */
};

static gpr_timespec call_deadline(const struct trstctl_client *c,
				  const struct trstctl_call_opts *opts)
{
	int64_t ms = c->deadline_ms;

	if (opts && opts->deadline_ms)
		ms = opts->deadline_ms;
	if (ms <= 0)
		return gpr_inf_future(GPR_CLOCK_REALTIME);
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
			    gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static int call_start(struct call *k, struct trstctl_client *c, const char *path,
		      const void *req, size_t req_len, const struct trstctl_call_opts *opts)
{
	const char *token = opts && opts->token ? opts->token : c->token;
	grpc_slice method, s;

	memset(k, 0, sizeof(*k));
	grpc_metadata_array_init(&k->init_md);
	grpc_metadata_array_init(&k->trail_md);
	k->details = grpc_empty_slice();
	k->cq = grpc_completion_queue_create_for_pluck(NULL);
	if (!k->cq)
		return -ENOMEM;
	method = grpc_slice_from_copied_string(path);
	k->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, k->cq,
					   method, NULL, call_deadline(c, opts), NULL);
	grpc_slice_unref(method);
	if (!k->call)
		return -ENOMEM;
	if (token && *token) {
		size_t n = strlen(token) + sizeof("Bearer ");
		char *v = malloc(n);

		if (!v)
			return -ENOMEM;
		snprintf(v, n, "Bearer %s", token);
		k->md.key = grpc_slice_from_static_string("authorization");
		k->md.value = grpc_slice_from_copied_string(v);
		explicit_bzero(v, n);
		free(v);
		k->n_md = 1;
	}
	s = grpc_slice_from_copied_buffer(req, req_len);
	k->send = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return 0;
}

/* Waits for one batch; returns its success flag. */
static int call_wait(struct call *k, void *tag)
{
	grpc_event ev = grpc_completion_queue_pluck(k->cq, tag,
						    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);

	return ev.type == GRPC_OP_COMPLETE && ev.success;
}

/* Copies the received status into *st and returns the call's result. */
static int call_status(struct call *k, struct trstctl_status *st)
{
	char *msg = grpc_slice_to_c_string(k->details);
	int r;

	if (!*msg && k->error_string && k->code != GRPC_STATUS_OK)
		r = status_set(st, (int)k->code, k->error_string, trstctl_status_errno(k->code));
	else
		r = status_set(st, (int)k->code, msg, trstctl_status_errno(k->code));
	gpr_free(msg);
	return r;
}

static void call_end(struct call *k)
{
	if (k->call)
		grpc_call_unref(k->call);
	if (k->cq) {
		grpc_completion_queue_shutdown(k->cq);
		while (grpc_completion_queue_pluck(k->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME),
						   NULL).type != GRPC_QUEUE_SHUTDOWN)
			;
		grpc_completion_queue_destroy(k->cq);
	}
	if (k->n_md)
		grpc_slice_unref(k->md.value);
	if (k->send)
		grpc_byte_buffer_destroy(k->send);
	grpc_metadata_array_destroy(&k->init_md);
	grpc_metadata_array_destroy(&k->trail_md);
	grpc_slice_unref(k->details);
	gpr_free((void *)k->error_string);
}

/* Flattens a received buffer into malloc'd bytes. */
static int buffer_bytes(grpc_byte_buffer *bb, uint8_t **ret, size_t *ret_len)
{
	grpc_byte_buffer_reader rd;
	grpc_slice s;
	uint8_t *p;
	size_t n;

	if (!grpc_byte_buffer_reader_init(&rd, bb))
		return -EBADMSG;
	s = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	n = GRPC_SLICE_LENGTH(s);
	p = malloc(n ? n : 1);
	if (p)
		memcpy(p, GRPC_SLICE_START_PTR(s), n);
	grpc_slice_unref(s);
	if (!p)
		return -ENOMEM;
	*ret = p;
	*ret_len = n;
	return 0;
}

static void op_status(grpc_op *op, struct call *k)
{
	op->op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	op->data.recv_status_on_client.trailing_metadata = &k->trail_md;
	op->data.recv_status_on_client.status = &k->code;
	op->data.recv_status_on_client.status_details = &k->details;
	op->data.recv_status_on_client.error_string = &k->error_string;
}

/* The first ops of every call: send metadata, the request and close, receive metadata. */
static size_t ops_send(grpc_op *ops, struct call *k)
{
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = k->n_md;
	ops[0].data.send_initial_metadata.metadata = k->n_md ? &k->md : NULL;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = k->send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &k->init_md;
	return 4;
}

int trstctl_call_raw(struct trstctl_client *c, const char *path, const void *req,
		     size_t req_len, const struct trstctl_call_opts *opts, uint8_t **ret_resp,
		     size_t *ret_resp_len, struct trstctl_status *ret_status)
{
	grpc_byte_buffer *recv = NULL;
	struct call k;
	grpc_op ops[6];
	size_t n;
	int r;

	if (!c || !path || path[0] != '/' || (!req && req_len) || !ret_resp || !ret_resp_len)
		return status_set(ret_status, GRPC_STATUS_INVALID_ARGUMENT,
				  "client: invalid arguments", -EINVAL);
	r = call_start(&k, c, path, req ? req : "", req_len, opts);
	if (r < 0) {
		status_set(ret_status, GRPC_STATUS_INTERNAL, strerror(-r), r);
		goto out;
	}
	memset(ops, 0, sizeof(ops));
	n = ops_send(ops, &k);
	ops[n].op = GRPC_OP_RECV_MESSAGE;
	ops[n++].data.recv_message.recv_message = &recv;
	op_status(&ops[n++], &k);
	if (grpc_call_start_batch(k.call, ops, n, &k, NULL) != GRPC_CALL_OK) {
		r = status_set(ret_status, GRPC_STATUS_INTERNAL, "client: batch refused", -EIO);
		goto out;
	}
	call_wait(&k, &k);
	r = call_status(&k, ret_status);
	if (r == 0) {
		if (!recv)
			r = status_set(ret_status, GRPC_STATUS_INTERNAL,
				       "client: status OK without a reply message", -EBADMSG);
		else if ((r = buffer_bytes(recv, ret_resp, ret_resp_len)) < 0)
			status_set(ret_status, GRPC_STATUS_INTERNAL, "client: unreadable reply", r);
	}
out:
	if (recv)
		grpc_byte_buffer_destroy(recv);
	call_end(&k);
	return r;
}

/* Packs a message into malloc'd bytes. */
static int pack(const ProtobufCMessage *m, uint8_t **ret, size_t *ret_len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *p = malloc(n ? n : 1);

	if (!p)
		return -ENOMEM;
	protobuf_c_message_pack(m, p);
	*ret = p;
	*ret_len = n;
	return 0;
}

int trstctl_call_unary(struct trstctl_client *c, const char *path,
		       const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
		       const struct trstctl_call_opts *opts, ProtobufCMessage **ret_resp,
		       struct trstctl_status *ret_status)
{
	uint8_t *in = NULL, *out = NULL;
	size_t in_len, out_len;
	ProtobufCMessage *m;
	int r;

	if (!req || !resp_desc || !ret_resp)
		return status_set(ret_status, GRPC_STATUS_INVALID_ARGUMENT,
				  "client: invalid arguments", -EINVAL);
	if (pack(req, &in, &in_len) < 0)
		return status_set(ret_status, GRPC_STATUS_INTERNAL, "client: out of memory",
				  -ENOMEM);
	r = trstctl_call_raw(c, path, in, in_len, opts, &out, &out_len, ret_status);
	free(in);
	if (r < 0)
		return r;
	m = protobuf_c_message_unpack(resp_desc, NULL, out_len, out);
	free(out);
	if (!m)
		return status_set(ret_status, GRPC_STATUS_INTERNAL,
				  "client: undecodable reply", -EBADMSG);
	*ret_resp = m;
	return 0;
}

int trstctl_call_stream_raw(struct trstctl_client *c, const char *path, const void *req,
			    size_t req_len, const struct trstctl_call_opts *opts,
			    trstctl_raw_cb on_data, void *userdata,
			    struct trstctl_status *ret_status)
{
	struct call k;
	grpc_op ops[4];
	int r, stop = 0, status_tag;

	if (!c || !path || path[0] != '/' || (!req && req_len) || !on_data)
		return status_set(ret_status, GRPC_STATUS_INVALID_ARGUMENT,
				  "client: invalid arguments", -EINVAL);
	r = call_start(&k, c, path, req ? req : "", req_len, opts);
	if (r < 0) {
		status_set(ret_status, GRPC_STATUS_INTERNAL, strerror(-r), r);
		goto out;
	}
	memset(ops, 0, sizeof(ops));
	op_status(&ops[0], &k);
	if (grpc_call_start_batch(k.call, ops, 1, &status_tag, NULL) != GRPC_CALL_OK) {
		r = status_set(ret_status, GRPC_STATUS_INTERNAL, "client: batch refused", -EIO);
		goto out;
	}
	memset(ops, 0, sizeof(ops));
	if (grpc_call_start_batch(k.call, ops, ops_send(ops, &k), &k, NULL) != GRPC_CALL_OK) {
		grpc_call_cancel(k.call, NULL);
		call_wait(&k, &status_tag);
		r = status_set(ret_status, GRPC_STATUS_INTERNAL, "client: batch refused", -EIO);
		goto out;
	}
	if (call_wait(&k, &k)) {
		for (;;) {
			grpc_byte_buffer *recv = NULL;
			uint8_t *data;
			size_t len;

			memset(ops, 0, sizeof(ops));
			ops[0].op = GRPC_OP_RECV_MESSAGE;
			ops[0].data.recv_message.recv_message = &recv;
			if (grpc_call_start_batch(k.call, ops, 1, &recv, NULL) != GRPC_CALL_OK)
				break;
			if (!call_wait(&k, &recv) || !recv)
				break;
			stop = buffer_bytes(recv, &data, &len);
			grpc_byte_buffer_destroy(recv);
			if (stop == 0) {
				stop = on_data(data, len, userdata);
				free(data);
			}
			if (stop) {
				grpc_call_cancel(k.call, NULL);
				break;
			}
		}
	}
	call_wait(&k, &status_tag);
	if (stop > 0) {
		status_set(ret_status, (int)k.code, "stopped by the caller", 0);
		r = 1;
	} else if (stop < 0) {
		r = status_set(ret_status, GRPC_STATUS_CANCELLED, strerror(-stop), stop);
	} else {
		r = call_status(&k, ret_status);
	}
out:
	call_end(&k);
	return r;
}

/* Adapts raw stream bytes to decoded messages. */
struct stream_decode {
	const ProtobufCMessageDescriptor *desc;
	trstctl_msg_cb on_msg;
	void *userdata;
};

static int stream_decode_cb(const uint8_t *data, size_t len, void *userdata)
{
	struct stream_decode *d = userdata;
	ProtobufCMessage *m = protobuf_c_message_unpack(d->desc, NULL, len, data);
	int r;

	if (!m)
		return -EBADMSG;
	r = d->on_msg(m, d->userdata);
	protobuf_c_message_free_unpacked(m, NULL);
	return r;
}

int trstctl_call_stream(struct trstctl_client *c, const char *path,
			const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
			const struct trstctl_call_opts *opts, trstctl_msg_cb on_msg,
			void *userdata, struct trstctl_status *ret_status)
{
	struct stream_decode d = { .desc = resp_desc, .on_msg = on_msg, .userdata = userdata };
	uint8_t *in = NULL;
	size_t in_len;
	int r;

	if (!req || !resp_desc || !on_msg)
		return status_set(ret_status, GRPC_STATUS_INVALID_ARGUMENT,
				  "client: invalid arguments", -EINVAL);
	if (pack(req, &in, &in_len) < 0)
		return status_set(ret_status, GRPC_STATUS_INTERNAL, "client: out of memory",
				  -ENOMEM);
	r = trstctl_call_stream_raw(c, path, in, in_len, opts, stream_decode_cb, &d, ret_status);
	free(in);
	if (r == -EBADMSG)
		status_set(ret_status, GRPC_STATUS_INTERNAL, "client: undecodable reply", r);
	return r;
}
