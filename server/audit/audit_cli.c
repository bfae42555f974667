/*
 * `trstctl audit list|watch|verify`: operator commands that read the chain straight from
 * PostgreSQL (TRSTCTL_POSTGRES_DSN), like `trstctl migrate`. They need no KEK: checkpoints
 * are verified with the public keys stored beside the sealed audit key. Output is one line
 * per record (or one JSON object per line with --json), stdout flushed per line so that
 * `watch` works in a pipe.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "audit-internal.h"
#include "cfg.h"
#include "db.h"

#define EXIT_BROKEN 1
#define EXIT_USAGE 2

static const char usage[] =
	"usage: trstctl audit list [--after N] [--type PREFIX] [--limit N] [--json]\n"
	"       trstctl audit watch [--after N] [--type PREFIX] [--json]\n"
	"       trstctl audit verify [--from N] [--to N] [--json]\n";

struct cli_opts {
	int64_t after, from, to, limit;
	const char *type;
	bool json;
};

static int parse_num(const char *flag, const char *s, int64_t *ret)
{
	char *end;
	long long v;

	errno = 0;
	v = s ? strtoll(s, &end, 10) : -1;
	if (!s || errno || *end || v < 0) {
		fprintf(stderr, "trstctl audit: %s needs a number >= 0\n", flag);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

static int parse_opts(int argc, char **argv, const char *cmd, struct cli_opts *o)
{
	o->limit = 100;
	for (int i = 2; i < argc; i++) {
		const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int r = 0;

		if (strcmp(f, "--json") == 0) {
			o->json = true;
			continue;
		}
		bool verify = strcmp(cmd, "verify") == 0;

		if (strcmp(f, "--after") == 0 && !verify) {
			r = parse_num(f, v, &o->after);
		} else if (strcmp(f, "--limit") == 0 && strcmp(cmd, "list") == 0) {
			r = parse_num(f, v, &o->limit);
		} else if (strcmp(f, "--from") == 0 && verify) {
			r = parse_num(f, v, &o->from);
		} else if (strcmp(f, "--to") == 0 && verify) {
			r = parse_num(f, v, &o->to);
		} else if (strcmp(f, "--type") == 0 && !verify && v) {
			o->type = v;
		} else {
			fprintf(stderr, "trstctl audit %s: unknown argument \"%s\"\n", cmd, f);
			r = -EINVAL;
		}
		if (r < 0)
			return r;
		i++;
	}
	if (o->to > 0 && o->from > o->to) {
		fprintf(stderr, "trstctl audit verify: --from must not exceed --to\n");
		return -EINVAL;
	}
	return 0;
}

static void print_event(const struct audit_event *ev, bool as_json)
{
	char prev[2 * AUDIT_HASH_LEN + 1], hash[2 * AUDIT_HASH_LEN + 1];

	audit_hex(ev->prev_hash, AUDIT_HASH_LEN, prev);
	audit_hex(ev->hash, AUDIT_HASH_LEN, hash);
	if (as_json) {
		json_t *data = json_loads(ev->data_json, 0, NULL);
		json_t *o = json_pack(
			"{sIssssssssssssso*ssss}", "sequence", (json_int_t)ev->sequence, "id",
			ev->id, "type", ev->type, "time", ev->time, "actor", ev->actor, "resource",
			ev->resource, "outcome", ev->outcome, "data",
			data ? data : json_string(ev->data_json), "prev_hash", prev, "hash", hash);
		char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(o);
	} else {
		printf("%" PRId64 " %s %s %s actor=%s resource=%s data=%s hash=%.16s\n",
		       ev->sequence, ev->time, ev->type, ev->outcome, *ev->actor ? ev->actor : "-",
		       *ev->resource ? ev->resource : "-", ev->data_json, hash);
	}
	fflush(stdout);
}

static int cmd_list(struct audit *a, const struct cli_opts *o)
{
	struct audit_query q = { .after_sequence = o->after, .type_prefix = o->type };
	char *token = NULL;
	int64_t printed = 0;
	int r = 0;

	for (;;) {
		struct audit_page *page = NULL;
		int64_t left = o->limit ? o->limit - printed : AUDIT_PAGE_MAX;

		q.page_size = left > AUDIT_PAGE_MAX ? AUDIT_PAGE_MAX : (int)left;
		q.page_token = token;
		r = audit_list(a, NULL, &q, &page);
		if (r < 0)
			break;
		for (size_t i = 0; i < page->n; i++)
			print_event(&page->events[i], o->json);
		printed += (int64_t)page->n;
		free(token);
		token = page->next_page_token;
		page->next_page_token = NULL;
		audit_page_free(page);
		if (!token || (o->limit && printed >= o->limit))
			break;
	}
	free(token);
	return r;
}

static int cli_send(const struct audit_event *ev, void *ud)
{
	const struct cli_opts *o = ud;

	print_event(ev, o->json);
	return 0;
}

static bool cli_wait(void *ud, int timeout_ms)
{
	struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000 };

	(void)ud;
	nanosleep(&ts, NULL);
	return false; /* until interrupted */
}

static int cmd_verify(struct audit *a, const struct cli_opts *o)
{
	struct audit_verify_result res;
	char head[2 * AUDIT_HASH_LEN + 1];
	int r;

	r = audit_verify(a, NULL, o->from, o->to, &res);
	if (r == -EDOM) { /* a bad argument, not a broken chain */
		fprintf(stderr,
			"trstctl audit verify: --from %" PRId64 " is past the chain's head\n",
			o->from);
		return EXIT_USAGE;
	}
	if (r < 0)
		return r;
	audit_hex(res.head_hash, AUDIT_HASH_LEN, head);
	if (o->json) {
		json_t *j = json_pack(
			"{sbsIsIsIsIssss}", "ok", res.ok, "checked", (json_int_t)res.checked,
			"checkpoints", (json_int_t)res.checkpoints, "first_bad_sequence",
			(json_int_t)res.first_bad_sequence, "head_sequence",
			(json_int_t)res.head_sequence, "head_hash", head, "detail", res.detail);
		char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

		printf("%s\n", s ? s : "{}");
		free(s);
		json_decref(j);
	} else if (res.ok) {
		printf("ok: %s; head %" PRId64 " %s\n", res.detail, res.head_sequence, head);
	} else {
		printf("BROKEN at sequence %" PRId64 ": %s (%" PRId64 " records verified before)\n",
		       res.first_bad_sequence, res.detail, res.checked);
	}
	fflush(stdout);
	return res.ok ? 0 : EXIT_BROKEN;
}

int audit_cli(int argc, char **argv, const struct cfg *c)
{
	struct cli_opts o = { 0 };
	struct db_config dc = { .max_conns = 2, .connect_timeout_ms = 5000 };
	struct db *db = NULL;
	struct audit *a = NULL;
	const char *cmd = argc >= 2 ? argv[1] : "";
	int r;

	if (strcmp(cmd, "list") && strcmp(cmd, "watch") && strcmp(cmd, "verify")) {
		fputs(usage, argc >= 2 && !strcmp(cmd, "--help") ? stdout : stderr);
		return argc >= 2 && !strcmp(cmd, "--help") ? 0 : EXIT_USAGE;
	}
	if (parse_opts(argc, argv, cmd, &o) < 0) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (!c || !c->postgres.dsn) {
		fprintf(stderr, "trstctl audit: TRSTCTL_POSTGRES_DSN is not set\n");
		return EXIT_USAGE;
	}
	dc.dsn = c->postgres.dsn;
	r = db_open(&dc, &db);
	if (r < 0) {
		fprintf(stderr, "trstctl audit: cannot connect to PostgreSQL: %s\n", strerror(-r));
		return EXIT_BROKEN;
	}
	/* verify compares the chain with the witnesses this host's server keeps */
	r = audit_open(db, NULL,
		       &(const struct audit_config){ .checkpoint_file = c->audit.checkpoint_file,
						     .nats_url = c->nats.url },
		       &a);
	if (r >= 0) {
		if (!strcmp(cmd, "list"))
			r = cmd_list(a, &o);
		else if (!strcmp(cmd, "watch"))
			r = audit_watch(a, NULL, o.after, o.type, 500, cli_send, cli_wait, &o);
		else
			r = cmd_verify(a, &o);
	}
	if (r < 0)
		fprintf(stderr, "trstctl audit %s: %s\n", cmd, strerror(-r));
	audit_close(a);
	db_close(db);
	return r < 0 ? EXIT_BROKEN : r;
}
