/*
 * Server credentials for the three TLS modes. internal: a fresh self-signed P-256
 * certificate for localhost and the loopback addresses (written out for clients to pin
 * when asked); file: the operator's certificate and key, and with a client CA, mutual TLS
 * that refuses clients without a certificate it signed; disabled: plaintext (the caller
 * has checked that it is allowed and logged it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static int write_cert(const char *path, const char *pem)
{
	char tmp[4096];
	int fd;
	size_t n = strlen(pem);

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, pem, n) != (ssize_t)n || fsync(fd) < 0) {
		close(fd);
		unlink(tmp);
		return -EIO;
	}
	close(fd);
	return rename(tmp, path) < 0 ? -errno : 0;
}

int rpc_tls_credentials(const struct rpc_server_config *config,
			grpc_server_credentials **ret_creds)
{
	static const char *const names[] = { "localhost", "127.0.0.1", "::1" };
	grpc_ssl_pem_key_cert_pair pair;
	char *cert = NULL, *key = NULL, *ca = NULL;
	grpc_server_credentials *creds;
	int r;

	switch (config->tls_mode) {
	case RPC_TLS_DISABLED:
		*ret_creds = grpc_insecure_server_credentials_create();
		return 0;
	case RPC_TLS_INTERNAL:
		r = crypto_selfsigned(names, 3, 365, &cert, &key);
		if (r >= 0 && config->tls_cert_out)
			r = write_cert(config->tls_cert_out, cert);
		break;
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
