/*
 * cli-guard.c: `trstctl guard status [--json]`, the operator's view of the egress guard.
 * It calls trstctl.v1.Guard/GetStatus with libtrstctl on the configured server address
 * (a wildcard host becomes loopback), secured the way the configuration says: plaintext
 * when TLS is disabled, the internal certificate pinned from the state folder, or the
 * operator's files (the client CA also verifies the server, the server's certificate and
 * key are presented for mTLS). Flags override each part. Exit status: 0 when the call
 * succeeded, 1 when it failed, 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cfg.h"
#include "cli.h"
#include "trstctl-client-gen.h"

struct guard_cli {
	char addr[512];
	char ca[4096];
	char token[256]; /* from the bootstrap token file unless --token */
	struct trstctl_client_config cc;
	bool json;
};

static void guard_usage(FILE *f)
{
	fprintf(f, "usage: trstctl guard status [--json] [--addr HOST:PORT]\n"
		   "                            [--plaintext | --tls-ca FILE | --insecure-tls]\n"
		   "                            [--token TOKEN (default: the bootstrap token file)]\n"
		   "Shows the egress guard of the running server (trstctl.v1.Guard/GetStatus).\n"
		   "The address and transport come from the server.* settings.\n");
}

/* The server address as a client reaches it: wildcard hosts become loopback. */
static int client_addr(const char *server_addr, char *buf, size_t len)
{
	char *host = NULL;
	int port, ret;

	ret = cfg_split_hostport(server_addr, &host, &port);
	if (ret < 0)
		return ret;
	if (port == 0)
		ret = -EINVAL; /* a kernel-chosen port cannot be found from here: use --addr */
	else if (!*host || !strcmp(host, "0.0.0.0"))
		snprintf(buf, len, "127.0.0.1:%d", port);
	else if (!strcmp(host, "::"))
		snprintf(buf, len, "[::1]:%d", port);
	else
		snprintf(buf, len, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
	free(host);
	return ret;
}

/* Reads the first line of a token file into buf; -errno when it is missing or empty. */
static int read_token(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return -errno;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return buf[0] ? 0 : -EINVAL;
}

/* Transport, files and token from the configuration. */
static void client_defaults(struct guard_cli *o, const struct cfg *c)
{
	o->cc.deadline_ms = 5000;
	if (c->auth.bootstrap_token_file &&
	    read_token(c->auth.bootstrap_token_file, o->token, sizeof(o->token)) == 0)
		o->cc.token = o->token;
	switch (c->server.tls_mode) {
	case CFG_TLS_DISABLED:
		o->cc.transport = TRSTCTL_PLAINTEXT;
		break;
	case CFG_TLS_INTERNAL:
		snprintf(o->ca, sizeof(o->ca), "%s/server-cert.pem", c->state_dir);
		if (access(o->ca, R_OK) == 0) {
			o->cc.transport = TRSTCTL_TLS;
			o->cc.ca_file = o->ca;
			o->cc.target_name = "localhost";
		} else {
			o->cc.transport = TRSTCTL_TLS_NO_VERIFY;
		}
		break;
	case CFG_TLS_FILE:
		o->cc.transport = TRSTCTL_TLS;
		o->cc.ca_file = c->server.tls_client_ca_file;
		if (c->server.tls_client_ca_file) {
			o->cc.cert_file = c->server.tls_cert_file;
			o->cc.key_file = c->server.tls_key_file;
		}
		break;
	}
}

static int parse_args(struct guard_cli *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "addr", required_argument, NULL, 'a' },
		{ "plaintext", no_argument, NULL, 'p' },
		{ "tls-ca", required_argument, NULL, 'c' },
		{ "insecure-tls", no_argument, NULL, 'k' },
		{ "token", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			o->json = true;
			break;
		case 'a':
			snprintf(o->addr, sizeof(o->addr), "%s", optarg);
			break;
		case 'p':
			o->cc.transport = TRSTCTL_PLAINTEXT;
			o->cc.ca_file = o->cc.cert_file = o->cc.key_file = NULL;
			break;
		case 'c':
			o->cc.transport = TRSTCTL_TLS;
			o->cc.ca_file = optarg;
			break;
		case 'k':
			o->cc.transport = TRSTCTL_TLS_NO_VERIFY;
			o->cc.ca_file = NULL;
			break;
		case 't':
			o->cc.token = optarg;
			break;
		case 'h':
			guard_usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	if (optind != argc)
		return -EINVAL;
	return 0;
}

static void print_json(const Trstctl__V1__GuardStatus *s)
{
	json_t *hooks = json_object(), *cidrs = json_array(), *hosts = json_array();
	json_t *o;
	size_t i;

	for (i = 0; i < s->n_trips_by_hook; i++)
		json_object_set_new(hooks, s->trips_by_hook[i]->key,
				    json_integer((json_int_t)s->trips_by_hook[i]->value));
	for (i = 0; i < s->n_allow_cidrs; i++)
		json_array_append_new(cidrs, json_string(s->allow_cidrs[i]));
	for (i = 0; i < s->n_allow_hosts; i++)
		json_array_append_new(hosts, json_string(s->allow_hosts[i]));
	o = json_pack("{s:b, s:s, s:b, s:I, s:o, s:I, s:I, s:b, s:o, s:o, s:s}", "enabled",
		      s->enabled, "enforcer", s->enforcer, "armed", s->armed, "trips",
		      (json_int_t)s->trips, "trips_by_hook", hooks, "tripwire_hits",
		      (json_int_t)s->tripwire_hits, "userspace_trips",
		      (json_int_t)s->userspace_trips, "allow_private", s->allow_private,
		      "allow_cidrs", cidrs, "allow_hosts", hosts, "pin_path", s->pin_path);
	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	putchar('\n');
	json_decref(o);
}

static void print_list(const char *key, char **v, size_t n)
{
	printf("%-16s ", key);
	if (!n)
		printf("-");
	for (size_t i = 0; i < n; i++)
		printf("%s%s", i ? ", " : "", v[i]);
	putchar('\n');
}

static void print_human(const Trstctl__V1__GuardStatus *s)
{
	printf("%-16s %s\n", "enabled:", s->enabled ? "true" : "false");
	printf("%-16s %s\n", "enforcer:", s->enforcer);
	printf("%-16s %s\n", "armed:", s->armed ? "true" : "false");
	printf("%-16s %llu\n", "trips:", (unsigned long long)s->trips);
	for (size_t i = 0; i < s->n_trips_by_hook; i++)
		printf("  %-14s %llu\n", s->trips_by_hook[i]->key,
		       (unsigned long long)s->trips_by_hook[i]->value);
	printf("%-16s %llu\n", "tripwire_hits:", (unsigned long long)s->tripwire_hits);
	printf("%-16s %llu\n", "userspace_trips:", (unsigned long long)s->userspace_trips);
	printf("%-16s %s\n", "allow_private:", s->allow_private ? "true" : "false");
	print_list("allow_cidrs:", s->allow_cidrs, s->n_allow_cidrs);
	print_list("allow_hosts:", s->allow_hosts, s->n_allow_hosts);
	printf("%-16s %s\n", "pin_path:", *s->pin_path ? s->pin_path : "(not pinned)");
}

int cli_guard(int argc, char **argv, const struct cfg *c)
{
	Trstctl__V1__GetStatusRequest req = TRSTCTL__V1__GET_STATUS_REQUEST__INIT;
	Trstctl__V1__GuardStatus *resp = NULL;
	struct trstctl_status st = { 0 };
	struct trstctl_client *cl = NULL;
	struct guard_cli o = { 0 };
	int ret;

	if (argc < 2 || strcmp(argv[1], "status") != 0) {
		guard_usage(stderr);
		return 2;
	}
	client_defaults(&o, c);
	if (parse_args(&o, argc - 1, argv + 1) < 0) {
		guard_usage(stderr);
		return 2;
	}
	if (!o.addr[0] && client_addr(c->server.addr, o.addr, sizeof(o.addr)) < 0) {
		fprintf(stderr, "trstctl: guard status: cannot call server address \"%s\"; "
				"use --addr HOST:PORT\n", c->server.addr);
		return 2;
	}
	o.cc.addr = o.addr;
	ret = trstctl_client_new(&o.cc, &cl);
	if (ret < 0) {
		fprintf(stderr, "trstctl: guard status: %s\n", strerror(-ret));
		return 1;
	}
	ret = trstctl_guard_get_status(cl, &req, NULL, &resp, &st);
	if (ret < 0) {
		fprintf(stderr, "trstctl: guard status from %s: %s: %s\n", o.addr,
			trstctl_status_code_name(st.code), st.message ? st.message : "");
	} else if (o.json) {
		print_json(resp);
	} else {
		print_human(resp);
	}
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	trstctl_status_clear(&st);
	trstctl_client_free(cl);
	return ret < 0 ? 1 : 0;
}
