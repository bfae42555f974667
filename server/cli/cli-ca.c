/*
 * cli-ca.c: `trstctl owner|identity|cert|ca ...`, the commands of trstctl.v1.CA. Every
 * field of a request is also a flag of its own (--key-type, --request-id, ...); the
 * arguments below are the positional ones, the short names kept from earlier releases
 * (--owner, --dns, --ttl, --identity) and the files: a CSR read from --csr FILE, an issued
 * certificate and its generated key written with --cert-out and --key-out (the key with
 * mode 0600, and then left out of what is printed). `ca bundle` and `ca crl` print PEM.
 * The operator commands `ca import|csr|import-signed` are not here: they work on the
 * database (server/ca/ca_admin.c).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli-internal.h"
#include "trstctl-client-gen.h"

#define CERT_OUT                                                                     \
	{                                                                            \
		"--cert-out", NULL, "FILE", 0, "write the certificate (PEM) to FILE" \
	}
#define KEY_OUT                                                                                    \
	{                                                                                          \
		"--key-out", NULL, "FILE", 0,                                                      \
			"write a generated private key to FILE (mode 0600) instead of printing it" \
	}

/*
 * Writes a certificate and its generated key to the files asked for; blanks the key. A
 * reply without one (a transition that issued nothing, a CSR's certificate has no key)
 * writes nothing and says so: the call itself succeeded.
 */
static int save_cert(struct cli_call *k, Trstctl__V1__Certificate *c)
{
	const char *co = cli_call_opt(k, "--cert-out"), *ko = cli_call_opt(k, "--key-out");

	if (co && !c)
		cli_errorf(k, "--cert-out %s: the reply holds no certificate; nothing written", co);
	if (ko && (!c || !*c->private_key_pem))
		cli_errorf(k,
			   "--key-out %s: the reply holds no private key (the server makes one "
			   "only when it issues without a CSR); nothing written",
			   ko);
	if (!c)
		return 0;
	if (co && cli_write_file(k, co, c->pem, strlen(c->pem), 0644) < 0)
		return CLI_EXIT_FAIL;
	if (ko && *c->private_key_pem) {
		if (cli_write_file(k, ko, c->private_key_pem, strlen(c->private_key_pem), 0600) < 0)
			return CLI_EXIT_FAIL;
		OPENSSL_cleanse(c->private_key_pem, strlen(c->private_key_pem));
		c->private_key_pem[0] = '\0'; /* written to the file, not to stdout */
	}
	return 0;
}

static int done_identity(struct cli_call *k, ProtobufCMessage *reply)
{
	return save_cert(k, ((Trstctl__V1__Identity *)(void *)reply)->certificate);
}

static int done_cert(struct cli_call *k, ProtobufCMessage *reply)
{
	return save_cert(k, (Trstctl__V1__Certificate *)(void *)reply);
}

static int table_bundle(struct cli_call *k, const ProtobufCMessage *reply)
{
	(void)k;
	fputs(((const Trstctl__V1__CABundle *)(const void *)reply)->pem, stdout);
	return 0;
}

static int done_crl(struct cli_call *k, ProtobufCMessage *reply)
{
	const Trstctl__V1__CRL *crl = (const void *)reply;
	const char *out = cli_call_opt(k, "--der-out");

	if (out && cli_write_file(k, out, crl->der.data, crl->der.len, 0644) < 0)
		return CLI_EXIT_FAIL;
	return 0;
}

static int table_crl(struct cli_call *k, const ProtobufCMessage *reply)
{
	(void)k;
	fputs(((const Trstctl__V1__CRL *)(const void *)reply)->pem, stdout);
	return 0;
}

static const struct cli_arg id_arg[] = { { "ID", "id", NULL, 0, "the id" }, { NULL } };

static const struct cli_arg owner_create_args[] = {
	{ "--kind", "kind", "KIND", 0, "user, team, workload, service or vendor" },
	{ "--name", "name", "NAME", 0, "the owner's name" },
	{ "--email", "email", "EMAIL", 0, "a contact address (optional)" },
	{ NULL },
};

static const struct cli_arg owner_list_args[] = {
	{ "--kind", "kind", "KIND", 0, "only owners of this kind" },
	{ NULL },
};

static const struct cli_arg identity_create_args[] = {
	{ "--kind", "kind", "KIND", 0, "x509_certificate, ..." },
	{ "--name", "name", "NAME", 0, "the identity's name (the certificate's CN)" },
	{ "--owner", "owner_id", "OWNER_ID", 0, "the owner (CA.CreateOwner's id)" },
	{ "--dns", "dns_names", "NAME,...", 0, "DNS names (a list, or give it again)" },
	{ "--ip", "ip_addresses", "ADDR,...", 0, "IP addresses (a list, or give it again)" },
	{ "--ttl", "ttl_seconds", "SECONDS", 0,
	  "certificates' lifetime: seconds or a duration (15m, 24h)" },
	{ "--key-type", "key_type", "TYPE", 0,
	  "ecdsa-p256 (default), ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096" },
	{ NULL },
};

static const struct cli_arg identity_list_args[] = {
	{ "--owner", "owner_id", "OWNER_ID", 0, "only this owner's identities" },
	{ "--state", "state", "STATE", 0, "only identities in this state" },
	{ NULL },
};

static const struct cli_arg transition_args[] = {
	{ "ID", "id", NULL, 0, "the identity" },
	{ "--to", "to", "STATE", 0, "issued, deployed, renewing, revoked or retired" },
	{ "--reason", "reason", "REASON", 0, "free text; for revoked an RFC 5280 reason name" },
	CERT_OUT,
	KEY_OUT,
	{ NULL },
};

static const struct cli_arg issue_args[] = {
	{ "IDENTITY_ID", "identity_id", NULL, 0, "the identity" },
	{ "--csr", "csr_pem", "FILE", CLI_ARG_FILE,
	  "a PKCS#10 request (PEM); without one the server generates the key" },
	{ "--ttl", "ttl_seconds", "SECONDS", 0, "lifetime: seconds or a duration (15m, 24h)" },
	CERT_OUT,
	KEY_OUT,
	{ NULL },
};

static const struct cli_arg cert_get_args[] = {
	{ "SERIAL", "serial", NULL, 0, "the certificate's serial (hex)" },
	CERT_OUT,
	{ NULL },
};

static const struct cli_arg cert_list_args[] = {
	{ "--identity", "identity_id", "IDENTITY_ID", 0, "only this identity's certificates" },
	{ NULL },
};

static const struct cli_arg crl_args[] = {
	{ "--der-out", NULL, "FILE", 0, "also write the CRL in DER to FILE" },
	{ NULL },
};

static const char *const owner_cols[] = { "id", "kind", "name", "email", "create_time", NULL };
static const char *const identity_cols[] = { "id", "kind", "name", "owner_id", "state", NULL };
static const char *const cert_cols[] = { "serial",    "identity_id", "not_before",
					 "not_after", "revoked",     NULL };

const struct cli_cmd cli_ca_cmds[] = {
	{ .noun = "owner",
	  .verb = "create",
	  .method = "/trstctl.v1.CA/CreateOwner",
	  .summary = "create an owner: --kind user|team|workload|service|vendor --name NAME",
	  .args = owner_create_args },
	{ .noun = "owner",
	  .verb = "get",
	  .method = "/trstctl.v1.CA/GetOwner",
	  .summary = "show an owner",
	  .args = id_arg },
	{ .noun = "owner",
	  .verb = "list",
	  .method = "/trstctl.v1.CA/ListOwners",
	  .summary = "list owners",
	  .args = owner_list_args,
	  .columns = owner_cols },
	{ .noun = "identity",
	  .verb = "create",
	  .method = "/trstctl.v1.CA/CreateIdentity",
	  .summary = "create an identity: --kind x509_certificate --name NAME --owner ID",
	  .args = identity_create_args },
	{ .noun = "identity",
	  .verb = "get",
	  .method = "/trstctl.v1.CA/GetIdentity",
	  .summary = "show an identity and its current certificate",
	  .args = id_arg },
	{ .noun = "identity",
	  .verb = "list",
	  .method = "/trstctl.v1.CA/ListIdentities",
	  .summary = "list identities",
	  .args = identity_list_args,
	  .columns = identity_cols },
	{ .noun = "identity",
	  .verb = "transition",
	  .method = "/trstctl.v1.CA/TransitionIdentity",
	  .summary = "move an identity on: --to issued|deployed|renewing|revoked|retired",
	  .args = transition_args,
	  .done = done_identity },
	{ .noun = "cert",
	  .verb = "issue",
	  .method = "/trstctl.v1.CA/IssueCertificate",
	  .summary = "issue a certificate to a requested or renewing identity",
	  .args = issue_args,
	  .done = done_cert },
	{ .noun = "cert",
	  .verb = "get",
	  .method = "/trstctl.v1.CA/GetCertificate",
	  .summary = "show a certificate",
	  .args = cert_get_args,
	  .done = done_cert },
	{ .noun = "cert",
	  .verb = "list",
	  .method = "/trstctl.v1.CA/ListCertificates",
	  .summary = "list certificates",
	  .args = cert_list_args,
	  .columns = cert_cols },
	{ .noun = "ca",
	  .verb = "bundle",
	  .method = "/trstctl.v1.CA/GetCABundle",
	  .summary = "print the CA bundle (PEM) that verifies issued certificates",
	  .table = table_bundle },
	{ .noun = "ca",
	  .verb = "crl",
	  .method = "/trstctl.v1.CA/GetCRL",
	  .summary = "print the current CRL (PEM)",
	  .args = crl_args,
	  .done = done_crl,
	  .table = table_crl },
	{ NULL },
};
