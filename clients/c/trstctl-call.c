/*
 * trstctl-call: a small command-line client on libtrstctl, for tests and operators.
 * It calls any method by path with raw bytes (valid protobuf or not), or a few methods
 * through the typed stubs, and prints the final status as one line:
 *
 *   status: <NAME> (<code>) message: <details>
 *
 * Exit status: 0 when the status is OK (or equals --expect), 1 when it is not, 2 on a
 * usage or local error. Nothing secret is printed (the token never is).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call-typed.h"
#include "trstctl-client-gen.h"

struct opts {
	struct trstctl_client_config cfg;
	int expect;           /* expected status code, -1 = OK */
	bool stream;          /* force a server-streaming call */
	long max_messages;    /* stop a stream after this many messages, 0 = never */
	const char *raw_hex;  /* request bytes in hex */
	long raw_size;        /* or: a valid message of this many bytes (field 1 string), -1 */
	bool quiet;           /* do not print reply bytes */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: trstctl-call [--addr HOST:PORT] [--tls-ca FILE | --insecure-tls | --plaintext]\n"
		"                    [--server-name NAME] [--cert FILE --key FILE] [--token TOKEN]\n"
		"                    [--deadline-ms N] [--expect CODE] [--stream] [--max-messages N]\n"
		"                    [--quiet] TARGET [--raw-hex HEX | --raw-size N]\n"
		"TARGET: /pkg.Service/Method (raw bytes; empty request by default)\n"
		"        health [SERVICE]        grpc.health.v1.Health/Check (typed)\n"
		"        watch-health [SERVICE]  grpc.health.v1.Health/Watch (typed stream)\n"
		"        ca-bundle               trstctl.v1.CA/GetCABundle (typed)\n"
		"        watch-events [AFTER]    trstctl.v1.Audit/WatchEvents (typed stream)\n"
		"%s"
		"Environment: TRSTCTL_ADDR (default 127.0.0.1:8443), TRSTCTL_TOKEN.\n"
		"Exit: 0 status OK (or as --expect), 1 other status, 2 usage or local error.\n",
		call_typed_usage);
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Decodes hex (spaces and "\x" allowed between bytes) into a malloc'd buffer. */
static int parse_hex(const char *s, uint8_t **ret, size_t *ret_len)
{
	uint8_t *p = malloc(strlen(s) / 2 + 1);
	size_t n = 0;

	if (!p)
		return -ENOMEM;
	while (*s) {
		int hi, lo;

		if (*s == ' ' || *s == ':') {
			s++;
			continue;
		}
		if (s[0] == '\\' && s[1] == 'x') {
			s += 2;
			continue;
		}
		hi = hexval(s[0]);
		lo = hi < 0 ? -1 : hexval(s[1]);
		if (lo < 0) {
			free(p);
			return -EINVAL;
		}
		p[n++] = (uint8_t)(hi << 4 | lo);
		s += 2;
	}
	*ret = p;
	*ret_len = n;
	return 0;
}

/* A valid protobuf of exactly size bytes: field 1 (length-delimited) filled with 'a'. */
static int make_sized(long size, uint8_t **ret, size_t *ret_len)
{
	size_t total = (size_t)size, hdr, body;
	uint8_t *p;

	if (size < 2)
		return -EINVAL;
	/* tag + varint(len): find the body length whose header makes the total exact */
	for (hdr = 2; hdr < 12; hdr++) {
		size_t v, vl = 0;

		if (hdr > total)
			return -EINVAL;
		body = total - hdr;
		for (v = body; v >= 0x80; v >>= 7)
			vl++;
		if (1 + vl + 1 == hdr)
			break;
	}
	p = malloc(total);
	if (!p)
		return -ENOMEM;
	p[0] = 0x0a;
	{
		size_t i = 1, v = body;

		while (v >= 0x80) {
			p[i++] = (uint8_t)(v | 0x80);
			v >>= 7;
		}
		p[i++] = (uint8_t)v;
		memset(p + i, 'a', body);
	}
	*ret = p;
	*ret_len = total;
	return 0;
}

static void print_hex(const char *what, const uint8_t *p, size_t n)
{
	printf("%s: %zu bytes:", what, n);
	for (size_t i = 0; i < n && i < 64; i++)
		printf(" %02x", p[i]);
	printf("%s\n", n > 64 ? " ..." : "");
}

struct stream_state {
	long n;
	long max;
	bool quiet;
};

static int on_raw(const uint8_t *data, size_t len, void *userdata)
{
	struct stream_state *s = userdata;

	if (!s->quiet)
		print_hex("message", data, len);
	fflush(stdout);
	return s->max && ++s->n >= s->max;
}

static const char *health_name(int v)
{
	switch (v) {
	case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING: return "SERVING";
	case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING:
		return "NOT_SERVING";
	case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN:
		return "SERVICE_UNKNOWN";
	default: return "UNKNOWN";
	}
}

static int on_health(const Grpc__Health__V1__HealthCheckResponse *msg, void *userdata)
{
	struct stream_state *s = userdata;

	printf("health: %s\n", health_name(msg->status));
	fflush(stdout);
	return s->max && ++s->n >= s->max;
}

static int on_event(const Trstctl__V1__AuditEvent *ev, void *userdata)
{
	struct stream_state *s = userdata;

	printf("event: %llu %s\n", (unsigned long long)ev->sequence, ev->type);
	fflush(stdout);
	return s->max && ++s->n >= s->max;
}

/* Runs TARGET; returns the call's result (see trstctl-client.h). */
static int run(struct trstctl_client *c, struct opts *o, int argc, char **argv,
	       struct trstctl_status *st)
{
	const char *target = argv[0], *arg = argc > 1 ? argv[1] : "";
	struct stream_state ss = { .max = o->max_messages, .quiet = o->quiet };
	int r;

	if (!strcmp(target, "health")) {
		Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
		Grpc__Health__V1__HealthCheckResponse *resp = NULL;

		req.service = (char *)arg;
		r = trstctl_health_check(c, &req, NULL, &resp, st);
		if (r == 0) {
			printf("health: %s\n", health_name(resp->status));
			protobuf_c_message_free_unpacked(&resp->base, NULL);
		}
		return r;
	}
	if (!strcmp(target, "watch-health")) {
		Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;

		req.service = (char *)arg;
		return trstctl_health_watch(c, &req, NULL, on_health, &ss, st);
	}
	if (!strcmp(target, "ca-bundle")) {
		Trstctl__V1__GetCABundleRequest req = TRSTCTL__V1__GET_CABUNDLE_REQUEST__INIT;
		Trstctl__V1__CABundle *resp = NULL;

		r = trstctl_ca_get_ca_bundle(c, &req, NULL, &resp, st);
		if (r == 0) {
			printf("%s", resp->pem);
			protobuf_c_message_free_unpacked(&resp->base, NULL);
		}
		return r;
	}
	if (!strcmp(target, "watch-events")) {
		Trstctl__V1__WatchEventsRequest req = TRSTCTL__V1__WATCH_EVENTS_REQUEST__INIT;

		req.after_sequence = strtoull(arg, NULL, 10);
		return trstctl_audit_watch_events(c, &req, NULL, on_event, &ss, st);
	}
	if (target[0] == '/') {
		const struct trstctl_method *m = trstctl_method_find(target);
		uint8_t *body = NULL, *resp = NULL;
		size_t len = 0, resp_len = 0;

		if (o->raw_hex)
			r = parse_hex(o->raw_hex, &body, &len);
		else if (o->raw_size >= 0)
			r = make_sized(o->raw_size, &body, &len);
		else
			r = 0;
		if (r < 0) {
			fprintf(stderr, "trstctl-call: bad request body: %s\n", strerror(-r));
			return -EINVAL;
		}
		if (o->stream || (m && m->server_streaming)) {
			r = trstctl_call_stream_raw(c, target, body, len, NULL, on_raw, &ss, st);
		} else {
			r = trstctl_call_raw(c, target, body, len, NULL, &resp, &resp_len, st);
			if (r == 0 && !o->quiet)
				print_hex("reply", resp, resp_len);
		}
		free(body);
		free(resp);
		return r;
	}
	r = call_typed_run(c, argc, argv, st);
	if (r != -ENOENT)
		return r;
	fprintf(stderr, "trstctl-call: unknown target '%s'\n", target);
	usage(stderr);
	return -EINVAL;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "tls-ca", required_argument, NULL, 'C' },
		{ "insecure-tls", no_argument, NULL, 'I' },
		{ "plaintext", no_argument, NULL, 'P' },
		{ "server-name", required_argument, NULL, 'n' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "token", required_argument, NULL, 't' },
		{ "deadline-ms", required_argument, NULL, 'd' },
		{ "expect", required_argument, NULL, 'e' },
		{ "stream", no_argument, NULL, 's' },
		{ "max-messages", required_argument, NULL, 'm' },
		{ "raw-hex", required_argument, NULL, 'x' },
		{ "raw-size", required_argument, NULL, 'z' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .expect = -1, .raw_size = -1 };
	struct trstctl_status st = { 0 };
	struct trstctl_client *c = NULL;
	char *end;
	int ch, r, code;

	o.cfg.addr = getenv("TRSTCTL_ADDR") ? getenv("TRSTCTL_ADDR") : "127.0.0.1:8443";
	o.cfg.token = getenv("TRSTCTL_TOKEN");
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a': o.cfg.addr = optarg; break;
		case 'C': o.cfg.ca_file = optarg; o.cfg.transport = TRSTCTL_TLS; break;
		case 'I': o.cfg.transport = TRSTCTL_TLS_NO_VERIFY; break;
		case 'P': o.cfg.transport = TRSTCTL_PLAINTEXT; break;
		case 'n': o.cfg.target_name = optarg; break;
		case 'c': o.cfg.cert_file = optarg; break;
		case 'k': o.cfg.key_file = optarg; break;
		case 't': o.cfg.token = optarg; break;
		case 's': o.stream = true; break;
		case 'q': o.quiet = true; break;
		case 'x': o.raw_hex = optarg; break;
		case 'd':
		case 'm':
		case 'z': {
			long v = strtol(optarg, &end, 10);

			if (*end || v < 0) {
				fprintf(stderr, "trstctl-call: bad number '%s'\n", optarg);
				return 2;
			}
			if (ch == 'd')
				o.cfg.deadline_ms = v;
			else if (ch == 'm')
				o.max_messages = v;
			else
				o.raw_size = v;
			break;
		}
		case 'e':
			o.expect = trstctl_status_code_parse(optarg);
			if (o.expect < 0) {
				fprintf(stderr, "trstctl-call: bad status code '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	r = trstctl_client_new(&o.cfg, &c);
	if (r < 0) {
		fprintf(stderr, "trstctl-call: cannot set up the client: %s\n", strerror(-r));
		return 2;
	}
	r = run(c, &o, argc - optind, argv + optind, &st);
	c = trstctl_client_free(c);
	if (r == -EINVAL && !st.message)
		return 2;
	code = st.code;
	if (r == 1) /* --max-messages reached: the stream was stopped on purpose */
		code = 0;
	printf("status: %s (%d) message: %s\n", trstctl_status_code_name(code), code,
	       st.message ? st.message : "");
	trstctl_status_clear(&st);
	if (o.expect >= 0)
		return code == o.expect ? 0 : 1;
	return code == 0 ? 0 : 1;
}
