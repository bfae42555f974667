/*
 * Typed targets of trstctl-call: each builds its request with the protoc-c types, calls
 * the generated stub (trstctl_ca_create_owner, trstctl_secrets_rotate_secret, ...) and
 * prints the reply as "key: value" lines, so that a test can walk the whole COMP-03 flow
 * with the C client alone. Secret values are read from stdin, never from argv (other
 * users see argv in ps); get-secret prints the value it was asked for. A PEM block
 * (issued certificate) is printed as is after its key line.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call-typed.h"
#include "trstctl-client-gen.h"

#define VALUE_MAX (1u << 20)

const char call_typed_usage[] =
	"        create-owner KIND NAME          trstctl.v1.CA/CreateOwner\n"
	"        create-identity KIND NAME OWNER_ID [DNS...]  CA/CreateIdentity\n"
	"        transition-identity ID TO [REASON]  CA/TransitionIdentity\n"
	"        create-secret NAME | rotate-secret NAME  (value from stdin)\n"
	"        get-secret NAME [VERSION]       Secrets/GetSecret (prints the value)\n"
	"        verify-chain | list-events [TYPE_PREFIX]  Audit\n"
	"        guard-status | run-tripwire | list-denials  Guard\n";

static void free_msg(void *msg)
{
	if (msg)
		protobuf_c_message_free_unpacked(msg, NULL);
}

/* Reads all of stdin into a malloc'd buffer (the secret value). */
static int read_stdin(uint8_t **ret, size_t *ret_len)
{
	uint8_t *p = malloc(VALUE_MAX);
	size_t n;

	if (!p)
		return -ENOMEM;
	n = fread(p, 1, VALUE_MAX, stdin);
	if (ferror(stdin) || n == VALUE_MAX) {
		free(p);
		fprintf(stderr, "trstctl-call: cannot read the value from stdin (max %u bytes)\n",
			VALUE_MAX - 1);
		return -EINVAL;
	}
	*ret = p;
	*ret_len = n;
	return 0;
}

static void print_meta(const Trstctl__V1__SecretMeta *m)
{
	printf("name: %s\nversion: %" PRId64 "\n", m->name, m->version);
}

static void print_identity(const Trstctl__V1__Identity *id)
{
	printf("id: %s\nkind: %s\nname: %s\nowner_id: %s\nstate: %s\n", id->id, id->kind,
	       id->name, id->owner_id, id->state);
	for (size_t i = 0; i < id->n_dns_names; i++)
		printf("dns_name: %s\n", id->dns_names[i]);
	if (id->certificate) {
		printf("certificate.serial: %s\n", id->certificate->serial);
		printf("certificate.pem:\n%s", id->certificate->pem);
	}
}

static int owner_create(struct trstctl_client *c, char **argv, struct trstctl_status *st)
{
	Trstctl__V1__CreateOwnerRequest req = TRSTCTL__V1__CREATE_OWNER_REQUEST__INIT;
	Trstctl__V1__Owner *o = NULL;
	int r;

	req.kind = argv[1];
	req.name = argv[2];
	r = trstctl_ca_create_owner(c, &req, NULL, &o, st);
	if (r == 0)
		printf("id: %s\nkind: %s\nname: %s\n", o->id, o->kind, o->name);
	free_msg(o);
	return r;
}

static int identity_create(struct trstctl_client *c, int argc, char **argv,
			   struct trstctl_status *st)
{
	Trstctl__V1__CreateIdentityRequest req = TRSTCTL__V1__CREATE_IDENTITY_REQUEST__INIT;
	Trstctl__V1__Identity *id = NULL;
	int r;

	req.kind = argv[1];
	req.name = argv[2];
	req.owner_id = argv[3];
	req.n_dns_names = (size_t)(argc - 4);
	req.dns_names = argv + 4;
	r = trstctl_ca_create_identity(c, &req, NULL, &id, st);
	if (r == 0)
		print_identity(id);
	free_msg(id);
	return r;
}

static int identity_transition(struct trstctl_client *c, int argc, char **argv,
			       struct trstctl_status *st)
{
	Trstctl__V1__TransitionIdentityRequest req =
		TRSTCTL__V1__TRANSITION_IDENTITY_REQUEST__INIT;
	Trstctl__V1__Identity *id = NULL;
	int r;

	req.id = argv[1];
	req.to = argv[2];
	req.reason = argc > 3 ? argv[3] : "";
	r = trstctl_ca_transition_identity(c, &req, NULL, &id, st);
	if (r == 0)
		print_identity(id);
	free_msg(id);
	return r;
}

static int secret_write(struct trstctl_client *c, bool rotate, const char *name,
			struct trstctl_status *st)
{
	Trstctl__V1__SecretMeta *m = NULL;
	uint8_t *value;
	size_t len;
	int r = read_stdin(&value, &len);

	if (r < 0)
		return r;
	if (rotate) {
		Trstctl__V1__RotateSecretRequest req = TRSTCTL__V1__ROTATE_SECRET_REQUEST__INIT;

		req.name = (char *)name;
		req.value.data = value;
		req.value.len = len;
		r = trstctl_secrets_rotate_secret(c, &req, NULL, &m, st);
	} else {
		Trstctl__V1__CreateSecretRequest req = TRSTCTL__V1__CREATE_SECRET_REQUEST__INIT;

		req.name = (char *)name;
		req.value.data = value;
		req.value.len = len;
		r = trstctl_secrets_create_secret(c, &req, NULL, &m, st);
	}
	memset(value, 0, len);
	free(value);
	if (r == 0)
		print_meta(m);
	free_msg(m);
	return r;
}

static int secret_get(struct trstctl_client *c, int argc, char **argv,
		      struct trstctl_status *st)
{
	Trstctl__V1__GetSecretRequest req = TRSTCTL__V1__GET_SECRET_REQUEST__INIT;
	Trstctl__V1__Secret *s = NULL;
	int r;

	req.name = argv[1];
	req.version = argc > 2 ? strtoll(argv[2], NULL, 10) : 0;
	r = trstctl_secrets_get_secret(c, &req, NULL, &s, st);
	if (r == 0)
		printf("name: %s\nversion: %" PRId64 "\nvalue: %.*s\n", s->name, s->version,
		       (int)s->value.len, (const char *)s->value.data);
	free_msg(s);
	return r;
}

static int chain_verify(struct trstctl_client *c, struct trstctl_status *st)
{
	Trstctl__V1__VerifyChainRequest req = TRSTCTL__V1__VERIFY_CHAIN_REQUEST__INIT;
	Trstctl__V1__VerifyChainResponse *v = NULL;
	int r = trstctl_audit_verify_chain(c, &req, NULL, &v, st);

	if (r == 0)
		printf("ok: %s\nchecked: %" PRId64 "\nfirst_bad_sequence: %" PRId64
		       "\nhead_hash: %s\n",
		       v->ok ? "true" : "false", v->checked, v->first_bad_sequence, v->head_hash);
	free_msg(v);
	return r;
}

/* Every event (all pages), one line each: "event: SEQ TYPE OUTCOME RESOURCE". */
static int events_list(struct trstctl_client *c, int argc, char **argv,
		       struct trstctl_status *st)
{
	Trstctl__V1__ListEventsRequest req = TRSTCTL__V1__LIST_EVENTS_REQUEST__INIT;
	char *token = NULL;
	int r;

	req.type_prefix = argc > 1 ? argv[1] : "";
	req.page_size = 100;
	do {
		Trstctl__V1__ListEventsResponse *l = NULL;

		req.page_token = token ? token : "";
		r = trstctl_audit_list_events(c, &req, NULL, &l, st);
		free(token);
		token = NULL;
		if (r < 0)
			return r;
		for (size_t i = 0; i < l->n_events; i++)
			printf("event: %" PRId64 " %s %s %s\n", l->events[i]->sequence,
			       l->events[i]->type, l->events[i]->outcome,
			       *l->events[i]->resource ? l->events[i]->resource : "-");
		if (*l->next_page_token)
			token = strdup(l->next_page_token);
		free_msg(l);
	} while (token);
	return r;
}

static int guard_status(struct trstctl_client *c, struct trstctl_status *st)
{
	Trstctl__V1__GetStatusRequest req = TRSTCTL__V1__GET_STATUS_REQUEST__INIT;
	Trstctl__V1__GuardStatus *g = NULL;
	int r = trstctl_guard_get_status(c, &req, NULL, &g, st);

	if (r == 0) {
		printf("enabled: %s\nenforcer: %s\narmed: %s\ntrips: %" PRIu64
		       "\ntripwire_hits: %" PRIu64 "\nuserspace_trips: %" PRIu64
		       "\nallow_private: %s\npin_path: %s\n",
		       g->enabled ? "true" : "false", g->enforcer, g->armed ? "true" : "false",
		       g->trips, g->tripwire_hits, g->userspace_trips,
		       g->allow_private ? "true" : "false", g->pin_path);
		for (size_t i = 0; i < g->n_trips_by_hook; i++)
			printf("trips_by_hook.%s: %" PRIu64 "\n", g->trips_by_hook[i]->key,
			       g->trips_by_hook[i]->value);
	}
	free_msg(g);
	return r;
}

static int tripwire_run(struct trstctl_client *c, struct trstctl_status *st)
{
	Trstctl__V1__RunTripwireRequest req = TRSTCTL__V1__RUN_TRIPWIRE_REQUEST__INIT;
	Trstctl__V1__TripwireResult *t = NULL;
	int r = trstctl_guard_run_tripwire(c, &req, NULL, &t, st);

	if (r == 0)
		printf("armed: %s\ndetail: %s\n", t->armed ? "true" : "false", t->detail);
	free_msg(t);
	return r;
}

/* "denial: ADDRESS PORT PROTOCOL PID HOOK COMM", newest first (first page). */
static int denials_list(struct trstctl_client *c, struct trstctl_status *st)
{
	Trstctl__V1__ListDenialsRequest req = TRSTCTL__V1__LIST_DENIALS_REQUEST__INIT;
	Trstctl__V1__ListDenialsResponse *l = NULL;
	int r = trstctl_guard_list_denials(c, &req, NULL, &l, st);

	if (r == 0)
		for (size_t i = 0; i < l->n_denials; i++)
			printf("denial: %s %u %s %u %s %s\n", l->denials[i]->address,
			       l->denials[i]->port, l->denials[i]->protocol, l->denials[i]->pid,
			       *l->denials[i]->hook ? l->denials[i]->hook : "-",
			       *l->denials[i]->comm ? l->denials[i]->comm : "-");
	free_msg(l);
	return r;
}

/* Minimum argc (target included) of each target; -1 for an unknown one. */
static int min_args(const char *t)
{
	static const struct {
		const char *name;
		int argc;
	} table[] = {
		{ "create-owner", 3 },	 { "create-identity", 4 }, { "transition-identity", 3 },
		{ "create-secret", 2 },	 { "rotate-secret", 2 },   { "get-secret", 2 },
		{ "verify-chain", 1 },	 { "list-events", 1 },	   { "guard-status", 1 },
		{ "run-tripwire", 1 },	 { "list-denials", 1 },
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (!strcmp(t, table[i].name))
			return table[i].argc;
	return -1;
}

int call_typed_run(struct trstctl_client *c, int argc, char **argv,
		   struct trstctl_status *ret_status)
{
	const char *t = argv[0];
	int need = min_args(t);

	if (need < 0)
		return -ENOENT;
	if (argc < need) {
		fprintf(stderr, "trstctl-call: %s needs %d argument(s)\n", t, need - 1);
		return -EINVAL;
	}
	if (!strcmp(t, "create-owner"))
		return owner_create(c, argv, ret_status);
	if (!strcmp(t, "create-identity"))
		return identity_create(c, argc, argv, ret_status);
	if (!strcmp(t, "transition-identity"))
		return identity_transition(c, argc, argv, ret_status);
	if (!strcmp(t, "create-secret") || !strcmp(t, "rotate-secret"))
		return secret_write(c, t[0] == 'r', argv[1], ret_status);
	if (!strcmp(t, "get-secret"))
		return secret_get(c, argc, argv, ret_status);
	if (!strcmp(t, "verify-chain"))
		return chain_verify(c, ret_status);
	if (!strcmp(t, "list-events"))
		return events_list(c, argc, argv, ret_status);
	if (!strcmp(t, "guard-status"))
		return guard_status(c, ret_status);
	if (!strcmp(t, "run-tripwire"))
		return tripwire_run(c, ret_status);
	return denials_list(c, ret_status);
}
