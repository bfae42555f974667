/*
 * The health probe behind `trstctl --health-check` (container probes): one unary
 * Health/Check call on the configured address. It checks liveness, not identity, so a
 * TLS server's certificate is accepted without verification.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/support/time.h>

#include "health.pb-c.h"
#include "internal.h"

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t n = 0, cap = 0;
	int ch;

	if (!f)
		return NULL;
	while ((ch = fgetc(f)) != EOF) {
		if (n + 2 > cap) {
			cap = cap ? cap * 2 : 4096;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		buf[n++] = (char)ch;
	}
	fclose(f);
	if (buf)
		buf[n] = '\0';
	return buf;
}

static grpc_channel_credentials *probe_credentials(const char *cert_file, const char *key_file)
{
	grpc_tls_credentials_options *opts = grpc_tls_credentials_options_create();
	grpc_tls_certificate_verifier *verifier = grpc_tls_certificate_verifier_no_op_create();
	grpc_channel_credentials *creds;

	grpc_tls_credentials_options_set_verify_server_cert(opts, 0);
	grpc_tls_credentials_options_set_certificate_verifier(opts, verifier);
	grpc_tls_credentials_options_set_check_call_host(opts, 0);
	if (cert_file && key_file && cert_file[0] && key_file[0]) {
		char *cert = read_file(cert_file), *key = read_file(key_file);

		if (cert && key) {
			grpc_tls_identity_pairs *pairs = grpc_tls_identity_pairs_create();
			grpc_tls_certificate_provider *prov;

			grpc_tls_identity_pairs_add_pair(pairs, key, cert);
			prov = grpc_tls_certificate_provider_static_data_create(NULL, pairs);
			grpc_tls_credentials_options_set_certificate_provider(opts, prov);
			grpc_tls_credentials_options_watch_identity_key_cert_pairs(opts);
			grpc_tls_certificate_provider_release(prov);
		}
		free(cert);
		free(key);
	}
	creds = grpc_tls_credentials_create(opts);
	grpc_tls_certificate_verifier_release(verifier);
	return creds;
}

int rpc_health_probe(const char *addr, bool tls, const char *cert_file, const char *key_file,
		     int timeout_ms)
{
	Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	Grpc__Health__V1__HealthCheckResponse *resp;
	grpc_metadata_array md_in, md_trail;
	grpc_byte_buffer *send, *recv = NULL;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_channel_credentials *creds;
	grpc_completion_queue *cq;
	grpc_channel *ch;
	grpc_call *call;
	grpc_slice details;
	grpc_op ops[6];
	char target[512];
	gpr_timespec deadline;
	int r = -ETIMEDOUT;

	snprintf(target, sizeof(target), "%s%s", addr[0] == ':' ? "localhost" : "", addr);
	creds = tls ? probe_credentials(cert_file, key_file) : grpc_insecure_credentials_create();
	ch = grpc_channel_create(target, creds, NULL);
	grpc_channel_credentials_release(creds);
	cq = grpc_completion_queue_create_for_pluck(NULL);
	deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
				gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
	call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
					grpc_slice_from_static_string("/grpc.health.v1.Health/Check"),
					NULL, deadline, NULL);
	send = rpc_pack(&req.base);
	grpc_metadata_array_init(&md_in);
	grpc_metadata_array_init(&md_trail);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &md_in;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &md_trail;
	ops[5].data.recv_status_on_client.status = &status;
	ops[5].data.recv_status_on_client.status_details = &details;
	if (grpc_call_start_batch(call, ops, 6, ops, NULL) == GRPC_CALL_OK) {
		grpc_completion_queue_pluck(cq, ops, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		grpc_slice_unref(details);
	}
	if (status == GRPC_STATUS_OK && recv) {
		grpc_byte_buffer_reader rd;
		grpc_slice s;

		grpc_byte_buffer_reader_init(&rd, recv);
		s = grpc_byte_buffer_reader_readall(&rd);
		grpc_byte_buffer_reader_destroy(&rd);
		resp = grpc__health__v1__health_check_response__unpack(NULL, GRPC_SLICE_LENGTH(s),
								       GRPC_SLICE_START_PTR(s));
		grpc_slice_unref(s);
		r = resp && resp->status ==
				    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING ?
			    0 :
			    -EAGAIN;
		if (resp)
			grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
	} else if (status == GRPC_STATUS_UNAVAILABLE) {
		r = -ECONNREFUSED;
	} else if (status != GRPC_STATUS_DEADLINE_EXCEEDED) {
		r = -EAGAIN;
	}
	if (recv)
		grpc_byte_buffer_destroy(recv);
	grpc_byte_buffer_destroy(send);
	grpc_metadata_array_destroy(&md_in);
	grpc_metadata_array_destroy(&md_trail);
	grpc_call_unref(call);
	grpc_channel_destroy(ch);
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	grpc_completion_queue_destroy(cq);
	return r;
}
