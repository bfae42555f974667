/*
 * Server credentials for the three TLS modes. internal: the certificate the configured
 * source gives (the CA's server certificate, ca_tls.c), asked again before every new
 * connection so that a renewed certificate is served without a restart while connections
 * made earlier keep theirs; file: the operator's certificate and key, and with a client CA,
 * mutual TLS that refuses clients without a certificate it signed; disabled: plaintext (the
 * caller has checked that it is allowed and logged it).
 *
 * The internal mode uses gRPC's certificate config fetcher
 * (grpc_ssl_server_credentials_create_options_using_config_fetcher): the core calls it under
 * its own lock from the thread that accepts a connection, so the source must answer from
 * memory. A fetch that fails keeps the certificate the core has. Known limit of gRPC 1.51:
 * it creates each handshake from its handshaker factory outside that lock, so a connection
 * accepted in the very instant a new certificate replaces the factory races with the old
 * factory's release; a renewal happens once per server.tls.renew_before period.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "internal.h"

/* Reads a whole (small) PEM file into a NUL-terminated string. */
static int read_pem(const char *path, char **ret)
{
	FILE *f = fopen(path, "re");
	char *buf;
	long n;

	if (!f)
		return -errno;
	if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || n > 1 << 20 ||
	    fseek(f, 0, SEEK_SET) < 0) {
		fclose(f);
		return -EINVAL;
	}
	buf = calloc(1, (size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return -EIO;
	}
	fclose(f);
	*ret = buf;
	return 0;
}

struct rpc_tls_reload {
	rpc_tls_source_fn fn;
	void *ud;
	uint64_t generation; /* of the pair the core holds (0: none yet) */
};

struct rpc_tls_reload *rpc_tls_reload_free(struct rpc_tls_reload *t)
{
	free(t);
	return NULL;
}

/* The core's fetcher: a new config when the source has a new pair, else unchanged. */
static grpc_ssl_certificate_config_reload_status reload(void *ud,
							grpc_ssl_server_certificate_config **ret)
{
	struct rpc_tls_reload *t = ud;
	grpc_ssl_pem_key_cert_pair pair;
	char *chain = NULL, *key = NULL;
	int r = t->fn(t->ud, &t->generation, &chain, &key);

	if (r == 0)
		return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
	if (r < 0)
		return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
	pair.private_key = key;
	pair.cert_chain = chain;
	/*
	 * Copies. gRPC 1.51 asserts that a fetched config has client roots even when it asks no
	 * client for a certificate: the chain stands in for them and is never used as such.
	 */
	*ret = grpc_ssl_server_certificate_config_create(chain, &pair, 1);
	free(chain);
	crypto_free_secret(key);
	return *ret ? GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW :
		      GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
}

static int internal_credentials(const struct rpc_server_config *config,
				grpc_server_credentials **ret_creds,
				struct rpc_tls_reload **ret_reload)
{
	struct rpc_tls_reload *t;
	grpc_ssl_server_credentials_options *opts;
	grpc_server_credentials *creds;

	if (!config->tls_source)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->fn = config->tls_source;
	t->ud = config->tls_source_ud;
	opts = grpc_ssl_server_credentials_create_options_using_config_fetcher(
		GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE, reload, t);
	/* the first fetch happens when the port is added; a failure fails rpc_server_start */
	creds = opts ? grpc_ssl_server_credentials_create_with_options(opts) : NULL;
	if (!creds) {
		free(t);
		return -EINVAL;
	}
	*ret_creds = creds;
	*ret_reload = t;
	return 0;
}

int rpc_tls_credentials(const struct rpc_server_config *config, grpc_server_credentials **ret_creds,
			struct rpc_tls_reload **ret_reload)
{
	grpc_ssl_pem_key_cert_pair pair;
	char *cert = NULL, *key = NULL, *ca = NULL;
	grpc_server_credentials *creds;
	int r;

	*ret_reload = NULL;
	switch (config->tls_mode) {
	case RPC_TLS_DISABLED:
		*ret_creds = grpc_insecure_server_credentials_create();
		return 0;
	case RPC_TLS_INTERNAL:
		return internal_credentials(config, ret_creds, ret_reload);
	case RPC_TLS_FILE:
		r = read_pem(config->tls_cert_file, &cert);
		if (r >= 0)
			r = read_pem(config->tls_key_file, &key);
		if (r >= 0 && config->tls_client_ca_file && config->tls_client_ca_file[0])
			r = read_pem(config->tls_client_ca_file, &ca);
		break;
	default:
		r = -EINVAL;
	}
	if (r < 0)
		goto out;
	pair.private_key = key;
	pair.cert_chain = cert;
	creds = grpc_ssl_server_credentials_create_ex(
		ca, &pair, 1,
		ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY :
		     GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
		NULL);
	r = creds ? 0 : -EINVAL;
	if (creds)
		*ret_creds = creds;
out:
	free(cert);
	free(ca);
	crypto_free_secret(key);
	return r;
}
