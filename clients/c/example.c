/*
 * trstctl-example: a program outside the trstctl tree that uses the installed libtrstctl
 * (headers in <trstctl/...>, flags from `pkg-config --cflags --libs trstctl`). It asks
 * Health/Check, creates an owner with the bearer token and reads it back, and checks
 * that the same call without a token is refused with UNAUTHENTICATED. One line per check;
 * exit 1 when one failed, 2 on bad arguments. tests/served/test_c_install.py builds it
 * against a `meson install --destdir` tree and runs it; docs/api.md shows how.
 *
 *   trstctl-example -a HOST:PORT -t TOKEN_FILE [-c CA.pem | -p] [-n NAME]
 *
 * -c: PEM roots that verify the server (the server's ca-bundle.pem in its internal TLS
 * mode); without it the system roots. -p: plaintext, for a server with TLS disabled,
 * which trstctl allows only on loopback.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <trstctl/trstctl-client-gen.h>

static int failed;

static void report(const char *name, int r, const struct trstctl_status *st, const char *ok)
{
	if (r == 0) {
		printf("ok   %s: %s\n", name, ok);
		return;
	}
	failed++;
	printf("FAIL %s: %s (%d): %s\n", name, trstctl_status_code_name(st->code), st->code,
	       st->message ? st->message : strerror(-r));
}

/* Reads the first line of path into buf (the token, as the server writes it). */
static int read_token(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	char *line = fgets(buf, (int)size, f);
	fclose(f);
	if (!line)
		return -ENODATA;
	buf[strcspn(buf, " \t\r\n")] = '\0';
	return buf[0] ? 0 : -ENODATA;
}

static void usage(void)
{
	fprintf(stderr, "usage: trstctl-example -a HOST:PORT -t TOKEN_FILE [-c CA.pem | -p] "
			"[-n NAME]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct trstctl_client_config cfg = { .transport = TRSTCTL_TLS, .deadline_ms = 10000 };
	const char *token_file = NULL, *name = "c-example";
	char token[512];
	int opt;

	while ((opt = getopt(argc, argv, "a:c:t:n:p")) != -1) {
		switch (opt) {
		case 'a':
			cfg.addr = optarg;
			break;
		case 'c':
			cfg.ca_file = optarg;
			break;
		case 't':
			token_file = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'p':
			cfg.transport = TRSTCTL_PLAINTEXT;
			break;
		default:
			usage();
		}
	}
	if (!cfg.addr || !token_file || optind != argc ||
	    (cfg.ca_file && cfg.transport == TRSTCTL_PLAINTEXT))
		usage();
	int r = read_token(token_file, token, sizeof(token));
	if (r < 0) {
		fprintf(stderr, "trstctl-example: %s: %s\n", token_file, strerror(-r));
		return 2;
	}
	cfg.token = token;

	struct trstctl_client *c = NULL;
	r = trstctl_client_new(&cfg, &c);
	if (r < 0) {
		fprintf(stderr, "trstctl-example: client: %s\n", strerror(-r));
		return 2;
	}
	struct trstctl_status st = { 0 };

	Grpc__Health__V1__HealthCheckRequest hreq = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	Grpc__Health__V1__HealthCheckResponse *hresp = NULL;
	r = trstctl_health_check(c, &hreq, NULL, &hresp, &st);
	if (r == 0 &&
	    hresp->status != GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING)
		r = -EPROTO;
	report("Health/Check", r, &st, "SERVING");
	if (hresp)
		grpc__health__v1__health_check_response__free_unpacked(hresp, NULL);

	char email[256];
	snprintf(email, sizeof(email), "%s@example.internal", name);
	Trstctl__V1__CreateOwnerRequest oreq = TRSTCTL__V1__CREATE_OWNER_REQUEST__INIT;
	oreq.kind = "workload";
	oreq.name = (char *)name;
	oreq.email = email;
	Trstctl__V1__Owner *owner = NULL;
	r = trstctl_ca_create_owner(c, &oreq, NULL, &owner, &st);
	if (r == 0 && (!owner->id[0] || strcmp(owner->name, name) != 0))
		r = -EPROTO;
	report("CA/CreateOwner", r, &st, owner ? owner->id : "");

	if (owner) {
		Trstctl__V1__GetOwnerRequest greq = TRSTCTL__V1__GET_OWNER_REQUEST__INIT;
		greq.id = owner->id;
		Trstctl__V1__Owner *got = NULL;
		r = trstctl_ca_get_owner(c, &greq, NULL, &got, &st);
		if (r == 0 && (strcmp(got->id, owner->id) != 0 || strcmp(got->email, email) != 0))
			r = -EPROTO;
		report("CA/GetOwner", r, &st, owner->id);
		if (got)
			trstctl__v1__owner__free_unpacked(got, NULL);
		trstctl__v1__owner__free_unpacked(owner, NULL);
	}

	/* The same kind of call without the token (an empty per-call token sends none). */
	struct trstctl_call_opts anon = { .token = "" };
	Trstctl__V1__ListOwnersRequest lreq = TRSTCTL__V1__LIST_OWNERS_REQUEST__INIT;
	Trstctl__V1__ListOwnersResponse *list = NULL;
	r = trstctl_ca_list_owners(c, &lreq, &anon, &list, &st);
	if (list)
		trstctl__v1__list_owners_response__free_unpacked(list, NULL);
	if (r == -EACCES && st.code == 16 /* UNAUTHENTICATED */) {
		printf("ok   CA/ListOwners without a token: UNAUTHENTICATED\n");
	} else {
		failed++;
		printf("FAIL CA/ListOwners without a token: %s, want UNAUTHENTICATED\n",
		       trstctl_status_code_name(st.code));
	}

	trstctl_status_clear(&st);
	c = trstctl_client_free(c);
	printf("=== trstctl-example: %d failed\n", failed);
	return failed ? 1 : 0;
}
