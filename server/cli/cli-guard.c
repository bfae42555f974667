/*
 * cli-guard.c: `trstctl guard status [--json]`, the operator's view of the egress guard.
 * It calls trstctl.v1.Guard/GetStatus with the client cli_client_open makes from the
 * configuration (address, transport, token), which the connection flags override. Exit
 * status: 0 when the call succeeded, 1 when it failed, 2 on a usage error.
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
	struct cli_client_opts conn;
	bool json;
};

static void guard_usage(FILE *f)
{
	fprintf(f, "usage: trstctl guard status [--json] [connection flags]\n"
		   "Shows the egress guard of the running server (trstctl.v1.Guard/GetStatus).\n"
		   "%s",
		CLI_CLIENT_USAGE);
}

static int parse_args(struct guard_cli *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		CLI_CLIENT_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	int ch, idx = 0;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
		switch (ch) {
		case 'j':
			o->json = true;
			break;
		case CLI_CLIENT_OPT:
			cli_client_flag(&o->conn, longopts[idx].name, optarg);
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
	json_t *clients = json_object(), *o;
	size_t i;

	for (i = 0; i < s->n_trips_by_hook; i++)
		json_object_set_new(hooks, s->trips_by_hook[i]->key,
				    json_integer((json_int_t)s->trips_by_hook[i]->value));
	for (i = 0; i < s->n_userspace_trips_by_client; i++)
		json_object_set_new(
			clients, s->userspace_trips_by_client[i]->key,
			json_integer((json_int_t)s->userspace_trips_by_client[i]->value));
	for (i = 0; i < s->n_allow_cidrs; i++)
		json_array_append_new(cidrs, json_string(s->allow_cidrs[i]));
	for (i = 0; i < s->n_allow_hosts; i++)
		json_array_append_new(hosts, json_string(s->allow_hosts[i]));
	o = json_pack("{s:b, s:s, s:s, s:s, s:b, s:I, s:o, s:I, s:I, s:o, s:b, s:o, s:o, s:s}",
		      "enabled", s->enabled, "enforcer", s->enforcer, "coverage", s->coverage,
		      "coverage_detail", s->coverage_detail, "armed", s->armed, "trips",
		      (json_int_t)s->trips, "trips_by_hook", hooks, "tripwire_hits",
		      (json_int_t)s->tripwire_hits, "userspace_trips",
		      (json_int_t)s->userspace_trips, "userspace_trips_by_client", clients,
		      "allow_private", s->allow_private, "allow_cidrs", cidrs, "allow_hosts", hosts,
		      "pin_path", s->pin_path);
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
	printf("%-16s %s\n", "coverage:", *s->coverage ? s->coverage : "?");
	if (strcmp(s->coverage, "kernel") != 0 && *s->coverage_detail)
		printf("  %s\n", s->coverage_detail); /* what is not checked, said plainly */
	printf("%-16s %s\n", "armed:", s->armed ? "true" : "false");
	printf("%-16s %llu\n", "trips:", (unsigned long long)s->trips);
	for (size_t i = 0; i < s->n_trips_by_hook; i++)
		printf("  %-14s %llu\n", s->trips_by_hook[i]->key,
		       (unsigned long long)s->trips_by_hook[i]->value);
	printf("%-16s %llu\n", "tripwire_hits:", (unsigned long long)s->tripwire_hits);
	printf("%-16s %llu\n", "userspace_trips:", (unsigned long long)s->userspace_trips);
	for (size_t i = 0; i < s->n_userspace_trips_by_client; i++)
		printf("  %-14s %llu\n", s->userspace_trips_by_client[i]->key,
		       (unsigned long long)s->userspace_trips_by_client[i]->value);
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
	char err[512] = "";
	int ret;

	if (argc < 2 || strcmp(argv[1], "status") != 0) {
		guard_usage(stderr);
		return 2;
	}
	o.conn.deadline_ms = 5000;
	if (parse_args(&o, argc - 1, argv + 1) < 0) {
		guard_usage(stderr);
		return 2;
	}
	ret = cli_client_open(c, &o.conn, &cl, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "trstctl: guard status: %s\n", err);
		return cli_client_exit_status(ret);
	}
	ret = trstctl_guard_get_status(cl, &req, NULL, &resp, &st);
	if (ret < 0) {
		fprintf(stderr, "trstctl: guard status: %s: %s\n",
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
