/*
 * enforcer.c: the loader of the eBPF egress guard. It opens the skeleton generated from
 * ebpf/guard.bpf.c, reuses the pinned `trips` counters of a previous run, loads, fills the
 * per-family rule maps from the policy's prefix list (two LPM trie sets, A and B: the
 * inactive one is brought up to date, then one array update makes it active), attaches the five programs with bpf_links to one cgroup,
 * pins the links (or adopts pinned ones with an atomic program update), and confirms the
 * attachment with BPF_PROG_QUERY. A reader thread drains the denial ring buffer into a
 * bounded in-memory list.
 *
 * Assumes cgroup v2 and a kernel of 5.8 or later (CAP_BPF, cgroup links). The cgroup and
 * /proc parsing lives in enforcer-cgroup.c. All libbpf types stay in this file.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ebpf/guard.h"
#include "ebpf/guard.skel.h"
#include "enforcer.h"
#include "enforcer-int.h"
#include "enforcer-rules.h"

#define BPF_FS_MAGIC_ 0xcafe4a11

enum { HOOK_COUNT = 5 };

static const char *const hook_names[HOOK_COUNT + 1] = {
	"?", "connect4", "connect6", "sendmsg4", "sendmsg6", "sock_create",
};

static const enum bpf_attach_type hook_attach[HOOK_COUNT] = {
	BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET6_CONNECT, BPF_CGROUP_UDP4_SENDMSG,
	BPF_CGROUP_UDP6_SENDMSG, BPF_CGROUP_INET_SOCK_CREATE,
};

struct guard_enforcer {
	struct guard_bpf *skel;
	struct guard_rules rules;
	struct bpf_link *links[HOOK_COUNT];
	int cgroup_fd;
	uint64_t cgroup_id;
	char cgroup_path[PATH_MAX];
	bool moved;
	bool created; /* moved into a cgroup it made: an orderly stop removes it */
	bool pinned;
	char pin_path[PATH_MAX - 64]; /* room for "/link_sock_create" */
	int took_over;
	bool comm;
	int tripwire_family;
	uint8_t tripwire_addr[16];
	uint16_t tripwire_port;
	int64_t mono_to_real_ns; /* CLOCK_REALTIME - CLOCK_MONOTONIC at start */

	struct ring_buffer *rb;
	pthread_t reader;
	bool reader_started;
	atomic_bool stopping;
	pthread_mutex_t lock;         /* guards rb consumption and the denial list */
	struct guard_denial *denials; /* circular, capacity entries */
	size_t capacity;
	size_t head; /* next slot to write */
	size_t count;
	guard_denial_fn on_denial;
	void *on_denial_arg;
};

static int errf(const struct guard_enforcer_config *cfg, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void enforcer_free(struct guard_enforcer *e, bool orderly);

/* Record a one-line reason in the caller's buffer and pass ret through. */
static int errf(const struct guard_enforcer_config *cfg, int ret, const char *fmt, ...)
{
	va_list ap;

	if (cfg && cfg->err && cfg->err_size) {
		va_start(ap, fmt);
		vsnprintf(cfg->err, cfg->err_size, fmt, ap);
		va_end(ap);
	}
	return ret;
}

static struct bpf_program *hook_prog(struct guard_bpf *skel, int i)
{
	struct bpf_program *progs[HOOK_COUNT] = {
		skel->progs.guard_connect4, skel->progs.guard_connect6, skel->progs.guard_sendmsg4,
		skel->progs.guard_sendmsg6, skel->progs.guard_sock_create,
	};

	return progs[i];
}

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- denials ---------------------------------------------------------------------- */

static int on_event(void *ctx, void *data, size_t size)
{
	struct guard_enforcer *e = ctx;
	const struct guard_event *ev = data;
	struct guard_denial *d;
	int64_t real;

	if (size < sizeof(*ev))
		return 0;
	d = &e->denials[e->head];
	memset(d, 0, sizeof(*d));
	real = (int64_t)ev->ktime_ns + e->mono_to_real_ns;
	d->time.tv_sec = real / 1000000000;
	d->time.tv_nsec = real % 1000000000;
	d->cgroup_id = ev->cgroup_id;
	d->pid = ev->pid;
	d->tid = ev->tid;
	d->uid = ev->uid;
	if (ev->flags & GUARD_EV_COMM) {
		memcpy(d->comm, ev->comm, sizeof(d->comm));
		d->comm[sizeof(d->comm) - 1] = '\0';
	}
	d->family = ev->family;
	memcpy(d->addr, ev->addr, sizeof(d->addr));
	d->port = ev->port;
	d->protocol = ev->protocol;
	d->type = ev->type;
	d->hook = hook_names[ev->hook <= HOOK_COUNT ? ev->hook : 0];
	d->tripwire = ev->flags & GUARD_EV_TRIPWIRE;
	d->v4mapped = ev->flags & GUARD_EV_V4MAPPED;
	d->nat64 = ev->flags & GUARD_EV_NAT64;
	e->head = (e->head + 1) % e->capacity;
	if (e->count < e->capacity)
		e->count++;
	if (e->on_denial)
		e->on_denial(d, e->on_denial_arg);
	return 0;
}

int guard_enforcer_flush(struct guard_enforcer *e)
{
	int ret;

	if (!e)
		return -EINVAL;
	pthread_mutex_lock(&e->lock);
	ret = ring_buffer__consume(e->rb);
	pthread_mutex_unlock(&e->lock);
	return ret < 0 ? ret : 0;
}

static void *reader_main(void *arg)
{
	struct guard_enforcer *e = arg;
	struct epoll_event ev;
	int efd = ring_buffer__epoll_fd(e->rb);

	while (!atomic_load(&e->stopping)) {
		if (epoll_wait(efd, &ev, 1, 100) <= 0)
			continue;
		guard_enforcer_flush(e);
	}
	return NULL;
}

size_t guard_enforcer_denials(struct guard_enforcer *e, struct guard_denial *out, size_t max)
{
	size_t i, n;

	if (!e || !out)
		return 0;
	pthread_mutex_lock(&e->lock);
	n = e->count < max ? e->count : max;
	for (i = 0; i < n; i++)
		out[i] = e->denials[(e->head + e->capacity - 1 - i) % e->capacity];
	pthread_mutex_unlock(&e->lock);
	return n;
}

int guard_enforcer_update(struct guard_enforcer *e, const struct guard_prefix *prefixes, size_t n)
{
	if (!e)
		return -EINVAL;
	return guard_rules_install(&e->rules, prefixes, n);
}

/* ---- counters --------------------------------------------------------------------- */

int guard_enforcer_counters(struct guard_enforcer *e, struct guard_counters *ret_counters)
{
	if (!e || !ret_counters)
		return -EINVAL;
	return guard_trips_read(bpf_map__fd(e->skel->maps.trips), ret_counters);
}

/* ---- pinning and attachment ------------------------------------------------------- */

/* Reuse <pin>/trips when its layout matches; drop it otherwise. */
static int trips_reuse(struct guard_enforcer *e)
{
	struct bpf_map_info info = { 0 };
	uint32_t len = sizeof(info);
	char path[PATH_MAX];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/trips", e->pin_path);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0 || info.type != BPF_MAP_TYPE_ARRAY ||
	    info.key_size != sizeof(uint32_t) || info.value_size != sizeof(struct guard_trips) ||
	    info.max_entries != 1) {
		unlink(path);
	} else {
		ret = bpf_map__reuse_fd(e->skel->maps.trips, fd);
	}
	close(fd);
	return ret;
}

static int trips_pin(struct guard_enforcer *e)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/trips", e->pin_path);
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		close(fd); /* reused: already pinned */
		return 0;
	}
	if (bpf_obj_pin(bpf_map__fd(e->skel->maps.trips), path) < 0)
		return -errno;
	return 0;
}

/* Adopt <pin>/link_<hook> when it is a live link of this cgroup and attach type. */
static struct bpf_link *link_adopt(struct guard_enforcer *e, int i, const char *path)
{
	struct bpf_link_info info = { 0 };
	uint32_t len = sizeof(info);
	struct bpf_link *link;

	if (access(path, F_OK) < 0)
		return NULL; /* nothing pinned: spare libbpf's warning */
	link = bpf_link__open(path);
	if (!link)
		return NULL;
	if (bpf_obj_get_info_by_fd(bpf_link__fd(link), &info, &len) == 0 &&
	    info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == e->cgroup_id &&
	    info.cgroup.attach_type == hook_attach[i] &&
	    bpf_link__update_program(link, hook_prog(e->skel, i)) == 0) {
		e->took_over++;
		return link;
	}
	/* Stale (other cgroup, defunct, other type): replace it. */
	bpf_link__unpin(link);
	bpf_link__destroy(link);
	return NULL;
}

static int attach_all(struct guard_enforcer *e)
{
	char path[PATH_MAX];
	int i, ret;

	for (i = 0; i < HOOK_COUNT; i++) {
		struct bpf_link *link = NULL;

		snprintf(path, sizeof(path), "%s/link_%s", e->pin_path, hook_names[i + 1]);
		if (e->pinned)
			link = link_adopt(e, i, path);
		if (!link) {
			link = bpf_program__attach_cgroup(hook_prog(e->skel, i), e->cgroup_fd);
			if (!link)
				return -errno;
			if (e->pinned) {
				ret = bpf_link__pin(link, path);
				if (ret < 0) {
					bpf_link__destroy(link);
					return ret;
				}
			}
		}
		e->links[i] = link;
	}
	return 0;
}

int guard_enforcer_confirm(struct guard_enforcer *e)
{
	int i;

	if (!e)
		return -EINVAL;
	for (i = 0; i < HOOK_COUNT; i++) {
		struct bpf_prog_info info = { 0 };
		uint32_t len = sizeof(info), ids[64], cnt = 64, j;

		if (bpf_obj_get_info_by_fd(bpf_program__fd(hook_prog(e->skel, i)), &info, &len) < 0)
			return -errno;
		if (bpf_prog_query(e->cgroup_fd, hook_attach[i], BPF_F_QUERY_EFFECTIVE, NULL, ids,
				   &cnt) < 0)
			return -errno;
		for (j = 0; j < cnt; j++)
			if (ids[j] == info.id)
				break;
		if (j == cnt)
			return -ENOLINK;
	}
	return 0;
}

/* Decide whether to pin: an explicit folder must be on bpffs; the default is optional. */
static int pin_prepare(struct guard_enforcer *e, const struct guard_enforcer_config *cfg)
{
	const char *p = cfg->pin_path ? cfg->pin_path : GUARD_ENFORCER_PIN_DEFAULT;
	char parent[PATH_MAX], *slash;
	struct statfs sfs;

	if (!*p)
		return 0;
	if (snprintf(e->pin_path, sizeof(e->pin_path), "%s", p) >= (int)sizeof(e->pin_path) ||
	    p[0] != '/')
		return errf(cfg, -EINVAL, "pin path must be an absolute path: %s", p);
	snprintf(parent, sizeof(parent), "%s", p);
	slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = '\0';
	else
		*slash = '\0';
	/*
	 * A missing parent is created when its own parent is a bpffs: the chart's per-pod
	 * folder /sys/fs/bpf/trstctl/<pod uid> on a node where no pod pinned before.
	 */
	if (cfg->pin_path && statfs(parent, &sfs) < 0 && errno == ENOENT) {
		char up[PATH_MAX];

		snprintf(up, sizeof(up), "%s", parent);
		slash = strrchr(up, '/');
		if (slash && slash != up) {
			*slash = '\0';
			if (statfs(up, &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC_)
				(void)mkdir(parent, 0700);
		}
	}
	if (statfs(parent, &sfs) < 0 || sfs.f_type != BPF_FS_MAGIC_) {
		if (!cfg->pin_path) {
			e->pin_path[0] = '\0'; /* no bpffs at the default place: run unpinned */
			return 0;
		}
		return errf(cfg, -ENOTSUP, "pin path %s: %s is not a mounted bpffs", p, parent);
	}
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return errf(cfg, -errno, "pin path %s: %s", p, strerror(errno));
	e->pinned = true;
	return 0;
}

/* ---- start and stop --------------------------------------------------------------- */

static int tripwire_parse(struct guard_enforcer *e, const struct guard_enforcer_config *cfg)
{
	const char *a = cfg->tripwire_addr ? cfg->tripwire_addr : GUARD_ENFORCER_TRIPWIRE_DEFAULT;

	e->tripwire_port = cfg->tripwire_port ? cfg->tripwire_port
					      : GUARD_ENFORCER_TRIPWIRE_PORT_DEFAULT;
	if (inet_pton(AF_INET, a, e->tripwire_addr) == 1)
		e->tripwire_family = AF_INET;
	else if (inet_pton(AF_INET6, a, e->tripwire_addr) == 1)
		e->tripwire_family = AF_INET6;
	else
		return errf(cfg, -EINVAL, "tripwire address is not a numeric IP address: %s", a);
	if (e->tripwire_family == AF_INET6 && !memcmp(e->tripwire_addr, guard_v4mapped_pfx, 12)) {
		memmove(e->tripwire_addr, e->tripwire_addr + 12, 4);
		memset(e->tripwire_addr + 4, 0, 12);
		e->tripwire_family = AF_INET;
	}
	return 0;
}

static int skel_open_load(struct guard_enforcer *e, const struct guard_enforcer_config *cfg)
{
	int ret;

	e->skel = guard_bpf__open();
	if (!e->skel)
		return errf(cfg, -errno, "opening the eBPF object: %s", strerror(errno));
	e->skel->rodata->tripwire_family = e->tripwire_family;
	memcpy((void *)e->skel->rodata->tripwire_addr, e->tripwire_addr, 16);
	e->skel->rodata->tripwire_port = e->tripwire_port;
	e->skel->rodata->deny_raw = !cfg->allow_raw;
	e->skel->rodata->record_comm = e->comm;
	if (e->pinned) {
		ret = trips_reuse(e);
		if (ret < 0)
			return errf(cfg, ret, "reusing %s/trips: %s", e->pin_path, strerror(-ret));
	}
	ret = guard_bpf__load(e->skel);
	if (ret < 0)
		return errf(cfg, ret, "loading the eBPF programs: %s", strerror(-ret));
	return 0;
}

int guard_enforcer_start(const struct guard_enforcer_config *cfg, const struct guard_prefix *prefixes,
			 size_t n, struct guard_enforcer **ret_e)
{
	static const struct guard_enforcer_config none;
	struct guard_enforcer *e;
	struct guard_cgroup cg;
	int ret;

	if (!ret_e)
		return -EINVAL;
	if (!cfg)
		cfg = &none;
	ret = guard_caps_check();
	if (ret < 0)
		return errf(cfg, ret, "the eBPF guard needs CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN");

	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->cgroup_fd = -1;
	e->comm = ret > 0;
	pthread_mutex_init(&e->lock, NULL);
	e->capacity = cfg->denial_capacity ? cfg->denial_capacity : GUARD_ENFORCER_DENIALS_DEFAULT;
	e->denials = calloc(e->capacity, sizeof(*e->denials));
	if (!e->denials) {
		ret = -ENOMEM;
		goto fail;
	}
	e->on_denial = cfg->on_denial;
	e->on_denial_arg = cfg->on_denial_arg;
	e->mono_to_real_ns = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC);

	ret = tripwire_parse(e, cfg);
	if (ret < 0)
		goto fail;
	ret = guard_cgroup_resolve(cfg->cgroup_path, cfg->cgroup_name, &cg, cfg->err, cfg->err_size);
	if (ret < 0)
		goto fail;
	e->cgroup_fd = cg.fd;
	e->cgroup_id = cg.id;
	e->moved = cg.moved;
	e->created = cg.created;
	snprintf(e->cgroup_path, sizeof(e->cgroup_path), "%s", cg.path);
	ret = pin_prepare(e, cfg);
	if (ret < 0)
		goto fail;
	ret = skel_open_load(e, cfg);
	if (ret < 0)
		goto fail;
	/* Rules first: a program attached with an empty set would deny everything. */
	e->rules.fd4[0] = bpf_map__fd(e->skel->maps.rules4_a);
	e->rules.fd4[1] = bpf_map__fd(e->skel->maps.rules4_b);
	e->rules.fd6[0] = bpf_map__fd(e->skel->maps.rules6_a);
	e->rules.fd6[1] = bpf_map__fd(e->skel->maps.rules6_b);
	e->rules.active_fd = bpf_map__fd(e->skel->maps.rules_active);
	ret = guard_rules_install(&e->rules, prefixes, n);
	if (ret < 0) {
		errf(cfg, ret, "loading the allow list: %s", strerror(-ret));
		goto fail;
	}
	if (e->pinned) {
		ret = trips_pin(e);
		if (ret < 0) {
			errf(cfg, ret, "pinning %s/trips: %s", e->pin_path, strerror(-ret));
			goto fail;
		}
	}
	ret = attach_all(e);
	if (ret < 0) {
		errf(cfg, ret, "attaching to cgroup %s: %s", e->cgroup_path, strerror(-ret));
		goto fail;
	}
	ret = guard_enforcer_confirm(e);
	if (ret < 0) {
		errf(cfg, ret, "the kernel does not list the guard on cgroup %s", e->cgroup_path);
		goto fail;
	}
	e->rb = ring_buffer__new(bpf_map__fd(e->skel->maps.events), on_event, e, NULL);
	if (!e->rb) {
		ret = errf(cfg, -errno, "ring buffer: %s", strerror(errno));
		goto fail;
	}
	ret = -pthread_create(&e->reader, NULL, reader_main, e);
	if (ret < 0) {
		errf(cfg, ret, "reader thread: %s", strerror(-ret));
		goto fail;
	}
	e->reader_started = true;
	*ret_e = e;
	return 0;
fail:
	enforcer_free(e, false);
	return ret;
}

int guard_enforcer_info(struct guard_enforcer *e, struct guard_enforcer_info *ret_info)
{
	if (!e || !ret_info)
		return -EINVAL;
	*ret_info = (struct guard_enforcer_info){
		.cgroup_path = e->cgroup_path,
		.cgroup_id = e->cgroup_id,
		.moved = e->moved,
		.pin_path = e->pinned ? e->pin_path : NULL,
		.took_over = e->took_over,
		.comm = e->comm,
	};
	return 0;
}

/*
 * Release everything. orderly: unpin, detach, and leave and remove the child cgroup the
 * process made for itself at start (when nobody else is in it). Otherwise (a failed start) pinned links
 * and counters stay as they are, so that a failed restart leaves the previous guard, or
 * whatever part of the new one got pinned, armed: fail closed.
 */
static void enforcer_free(struct guard_enforcer *e, bool orderly)
{
	char path[PATH_MAX];
	int i;

	if (e->reader_started) {
		atomic_store(&e->stopping, true);
		pthread_join(e->reader, NULL);
	}
	ring_buffer__free(e->rb);
	for (i = 0; i < HOOK_COUNT; i++) {
		if (!e->links[i])
			continue;
		if (e->pinned && orderly)
			bpf_link__unpin(e->links[i]);
		bpf_link__destroy(e->links[i]);
	}
	if (e->pinned && orderly) {
		snprintf(path, sizeof(path), "%s/trips", e->pin_path);
		unlink(path);
		rmdir(e->pin_path); /* fails, harmlessly, when someone else pinned there */
	}
	guard_bpf__destroy(e->skel);
	free(e->rules.sets[0].ents);
	free(e->rules.sets[1].ents);
	if (e->cgroup_fd >= 0)
		close(e->cgroup_fd);
	if (e->created && orderly)
		guard_cgroup_leave(e->cgroup_path); /* stays when someone else is in it */
	pthread_mutex_destroy(&e->lock);
	free(e->denials);
	free(e);
}

struct guard_enforcer *guard_enforcer_stop(struct guard_enforcer *e)
{
	if (e)
		enforcer_free(e, true);
	return NULL;
}

/* ---- tripwire --------------------------------------------------------------------- */

/* 0 when the connect was refused with EPERM, -EPROTO when it succeeded, else -errno. */
static int tripwire_try(const struct guard_enforcer *e)
{
	int ret = guard_tripwire_connect(e->tripwire_family, e->tripwire_addr, e->tripwire_port);

	return ret == -EPERM ? 0 : ret;
}

int guard_enforcer_tripwire(struct guard_enforcer *e)
{
	struct guard_counters before, after;
	int ret, status;
	pid_t pid;

	if (!e)
		return -EINVAL;
	ret = guard_enforcer_counters(e, &before);
	if (ret < 0)
		return ret;
	if (guard_cgroup_self_id() == e->cgroup_id) {
		ret = tripwire_try(e);
	} else {
		/* The caller is outside: a child joins the guarded cgroup and tries. */
		pid = fork();
		if (pid < 0)
			return -errno;
		if (pid == 0) {
			ret = guard_cgroup_join(e->cgroup_path);
			if (ret == 0)
				ret = tripwire_try(e);
			_exit(ret < 0 ? (-ret & 0xff) : 0);
		}
		if (waitpid(pid, &status, 0) < 0)
			return -errno;
		ret = WIFEXITED(status) ? -WEXITSTATUS(status) : -ECHILD;
	}
	if (ret < 0)
		return ret;
	ret = guard_enforcer_counters(e, &after);
	if (ret < 0)
		return ret;
	return after.tripwire > before.tripwire ? 0 : -EPROTO;
}

/* ---- hand-over to a capability-less server (trstctl guard attach) ------------------ */

static int pin_owned(const char *dir, const char *name, int fd, unsigned int owner,
		     unsigned int group)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (fd >= 0) {
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
		if (bpf_obj_pin(fd, path) < 0)
			return -errno;
	}
	if (chown(path, owner, group) < 0 || chmod(path, 0600) < 0)
		return -errno;
	return 0;
}

int guard_enforcer_handover(struct guard_enforcer *e, unsigned int owner, unsigned int group)
{
	const struct {
		const char *name;
		struct bpf_map *map;
	} maps[] = {
		{ "rules4_a", e ? e->skel->maps.rules4_a : NULL },
		{ "rules4_b", e ? e->skel->maps.rules4_b : NULL },
		{ "rules6_a", e ? e->skel->maps.rules6_a : NULL },
		{ "rules6_b", e ? e->skel->maps.rules6_b : NULL },
		{ "rules_active", e ? e->skel->maps.rules_active : NULL },
	};
	size_t i;
	int ret;

	if (!e || !e->pinned)
		return -EINVAL;
	for (i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		ret = pin_owned(e->pin_path, maps[i].name, bpf_map__fd(maps[i].map), owner, group);
		if (ret < 0)
			return ret;
	}
	ret = pin_owned(e->pin_path, "trips", -1, owner, group); /* pinned by start */
	if (ret < 0)
		return ret;
	/* The folder stays its creator's (root): others may enter and read, not unlink. */
	return chmod(e->pin_path, 0755) < 0 ? -errno : 0;
}

struct guard_enforcer *guard_enforcer_release(struct guard_enforcer *e)
{
	if (e)
		enforcer_free(e, false);
	return NULL;
}
