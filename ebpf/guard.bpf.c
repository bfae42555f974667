/*
 * guard.bpf.c: the kernel half of the air-gap egress guard. Five cgroup programs deny,
 * for every process of the cgroup they are attached to, any destination that the egress
 * policy does not allow:
 *
 *   cgroup/connect4, cgroup/connect6    connect() of TCP and UDP sockets, TCP Fast Open
 *   cgroup/sendmsg4, cgroup/sendmsg6    unconnected UDP sendto/sendmsg/sendmmsg
 *   cgroup/sock_create                  raw and ICMP "ping" sockets, seen by no other hook
 *
 * A destination is judged by a longest-prefix lookup in a per-family rule map (an LPM
 * trie; two sets, one active, so that the loader switches a whole new rule set in with one
 * update). Returning 0 makes the syscall fail with EPERM. IPv4-mapped
 * (::ffff:0:0/96) and NAT64 (64:ff9b::/96) destinations on the IPv6 hooks are judged by
 * their embedded IPv4 address. A UDP connect to the configured tripwire address is
 * denied too but counted apart, so "trips == 0" stays meaningful after a self-test.
 *
 * Only UAPI contexts (struct bpf_sock_addr, struct bpf_sock) are read, so no CO-RE and
 * no vmlinux.h: the object loads on any kernel from 5.8. Each ctx field is read once and
 * pinned with barrier_var(): the verifier refuses loads through a computed ctx offset.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "guard.h"

#define G_AF_INET 2
#define G_AF_INET6 10
#define G_SOCK_DGRAM 2
#define G_SOCK_RAW 3
#define G_IPPROTO_ICMP 1
#define G_IPPROTO_ICMPV6 58

/* Tunables, set by the loader before load (a change means a reload + link update). */
const volatile __u32 tripwire_family = 0;   /* 0 = no tripwire, else AF_INET/AF_INET6 */
const volatile __u32 tripwire_addr[4] = {}; /* network order; IPv4 in [0] */
const volatile __u16 tripwire_port = 0;     /* host order */
const volatile __u8 deny_raw = 1;           /* refuse raw and ICMP ping sockets */
const volatile __u8 record_comm = 0;        /* bpf_get_current_comm needs CAP_PERFMON */

struct rules4_inner {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, GUARD_RULES_MAX);
	__type(key, struct guard_key4);
	__type(value, struct guard_rule);
};

struct rules6_inner {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, GUARD_RULES_MAX);
	__type(key, struct guard_key6);
	__type(value, struct guard_rule);
};

/*
 * Two rule sets per family, A and B; rules_active names the one the programs read. The
 * loader fills the inactive set, then flips rules_active with one array update, so that
 * both families change together and a lookup sees either the old or the new rules. (Swapping
 * an inner map instead would make every update wait for an RCU grace period.) Declaring
 * the inner maps as maps also makes clang emit their full key and value types in BTF,
 * which libbpf needs.
 */
struct rules4_inner rules4_a SEC(".maps");
struct rules4_inner rules4_b SEC(".maps");
struct rules6_inner rules6_a SEC(".maps");
struct rules6_inner rules6_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct rules4_inner);
} rules4 SEC(".maps") = {
	.values = { [0] = &rules4_a, [1] = &rules4_b },
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct rules6_inner);
} rules6 SEC(".maps") = {
	.values = { [0] = &rules6_a, [1] = &rules6_b },
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} rules_active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct guard_trips);
} trips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, GUARD_EVENTS_BYTES);
} events SEC(".maps");

static __always_inline struct guard_trips *trips_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&trips, &zero);
}

/* The rule set slot (0 = A, 1 = B) the programs read now. */
static __always_inline __u32 active_slot(void)
{
	__u32 zero = 0, *slot;

	slot = bpf_map_lookup_elem(&rules_active, &zero);
	return slot ? (*slot & 1) : 0;
}

static __always_inline int port_match(const struct guard_rule *r, __u16 port)
{
	__u8 n = r->nports;

	if (n == 0)
		return 1;
#pragma unroll
	for (int i = 0; i < GUARD_RULE_PORTS; i++) {
		if (i < n && r->ports[i] == port)
			return 1;
	}
	return 0;
}

/* 1 = allowed, 0 = denied. An empty or missing rule set denies everything. */
static __always_inline int judge4(__u32 addr, __u16 port)
{
	struct guard_key4 key = { .prefixlen = 32, .addr = addr };
	__u32 slot = active_slot();
	struct guard_rule *r;
	void *inner;

	inner = bpf_map_lookup_elem(&rules4, &slot);
	if (!inner)
		return 0;
	r = bpf_map_lookup_elem(inner, &key);
	/* The longest matching prefix decides alone: a port it does not list is denied,
	 * never passed on to a broader allow (the egress policy judges the same way). */
	return r && port_match(r, port) && !r->deny;
}

static __always_inline int judge6(const __u32 addr[4], __u16 port)
{
	struct guard_key6 key = { .prefixlen = 128 };
	__u32 slot = active_slot();
	struct guard_rule *r;
	void *inner;

	key.addr[0] = addr[0];
	key.addr[1] = addr[1];
	key.addr[2] = addr[2];
	key.addr[3] = addr[3];
	inner = bpf_map_lookup_elem(&rules6, &slot);
	if (!inner)
		return 0;
	r = bpf_map_lookup_elem(inner, &key);
	/* The longest matching prefix decides alone: a port it does not list is denied,
	 * never passed on to a broader allow (the egress policy judges the same way). */
	return r && port_match(r, port) && !r->deny;
}

/* Count one denial (or tripwire hit) and record it in the ring buffer, best effort. */
static __always_inline void deny(__u8 hook, __u8 flags, __u16 family, const __u32 addr[4],
				 __u16 port, __u32 protocol, __u32 type)
{
	struct guard_trips *t = trips_get();
	struct guard_event *ev;
	__u64 id;

	if (t) {
		if (flags & GUARD_EV_TRIPWIRE) {
			__sync_fetch_and_add(&t->tripwire, 1);
		} else {
			__sync_fetch_and_add(&t->total, 1);
			if (hook == GUARD_HOOK_CONNECT4)
				__sync_fetch_and_add(&t->connect4, 1);
			else if (hook == GUARD_HOOK_CONNECT6)
				__sync_fetch_and_add(&t->connect6, 1);
			else if (hook == GUARD_HOOK_SENDMSG4)
				__sync_fetch_and_add(&t->sendmsg4, 1);
			else if (hook == GUARD_HOOK_SENDMSG6)
				__sync_fetch_and_add(&t->sendmsg6, 1);
			else
				__sync_fetch_and_add(&t->sock_create, 1);
			if (flags & GUARD_EV_V4MAPPED)
				__sync_fetch_and_add(&t->v4mapped, 1);
			if (flags & GUARD_EV_NAT64)
				__sync_fetch_and_add(&t->nat64, 1);
		}
	}

	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		if (t)
			__sync_fetch_and_add(&t->events_dropped, 1);
		return;
	}
	ev->ktime_ns = bpf_ktime_get_ns();
	ev->cgroup_id = bpf_get_current_cgroup_id();
	id = bpf_get_current_pid_tgid();
	ev->pid = id >> 32;
	ev->tid = (__u32)id;
	ev->uid = (__u32)bpf_get_current_uid_gid();
	ev->addr[0] = addr[0];
	ev->addr[1] = addr[1];
	ev->addr[2] = addr[2];
	ev->addr[3] = addr[3];
	ev->family = family;
	ev->port = port;
	ev->hook = hook;
	ev->protocol = protocol;
	ev->type = type;
	ev->flags = flags;
	__builtin_memset(ev->comm, 0, sizeof(ev->comm));
	if (record_comm && bpf_get_current_comm(ev->comm, sizeof(ev->comm)) == 0)
		ev->flags |= GUARD_EV_COMM;
	bpf_ringbuf_submit(ev, 0);
}

static __always_inline int is_tripwire4(__u8 hook, __u32 type, __u32 addr, __u16 port)
{
	return tripwire_family == G_AF_INET && type == G_SOCK_DGRAM &&
	       (hook == GUARD_HOOK_CONNECT4 || hook == GUARD_HOOK_CONNECT6) &&
	       addr == tripwire_addr[0] && port == tripwire_port;
}

static __always_inline int check4(struct bpf_sock_addr *ctx, __u8 hook)
{
	__u32 ip = ctx->user_ip4;
	__u32 uport = ctx->user_port;
	__u32 type = ctx->type;
	__u32 proto = ctx->protocol;
	__u32 addr[4] = {};
	__u16 port;

	barrier_var(ip);
	barrier_var(uport);
	barrier_var(type);
	barrier_var(proto);
	port = bpf_ntohs((__u16)uport);
	addr[0] = ip;
	if (is_tripwire4(hook, type, ip, port)) {
		deny(hook, GUARD_EV_TRIPWIRE, G_AF_INET, addr, port, proto, type);
		return 0;
	}
	if (judge4(ip, port))
		return 1;
	deny(hook, 0, G_AF_INET, addr, port, proto, type);
	return 0;
}

static __always_inline int check6(struct bpf_sock_addr *ctx, __u8 hook)
{
	__u32 a0 = ctx->user_ip6[0];
	__u32 a1 = ctx->user_ip6[1];
	__u32 a2 = ctx->user_ip6[2];
	__u32 a3 = ctx->user_ip6[3];
	__u32 uport = ctx->user_port;
	__u32 type = ctx->type;
	__u32 proto = ctx->protocol;
	__u32 addr[4];
	__u8 flags = 0;
	__u16 port;

	barrier_var(a0);
	barrier_var(a1);
	barrier_var(a2);
	barrier_var(a3);
	barrier_var(uport);
	barrier_var(type);
	barrier_var(proto);
	port = bpf_ntohs((__u16)uport);

	if (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0x0000ffff))
		flags = GUARD_EV_V4MAPPED;
	else if (a0 == bpf_htonl(0x0064ff9b) && a1 == 0 && a2 == 0)
		flags = GUARD_EV_NAT64;

	if (flags) {
		addr[0] = a3;
		addr[1] = 0;
		addr[2] = 0;
		addr[3] = 0;
		if (is_tripwire4(hook, type, a3, port)) {
			deny(hook, flags | GUARD_EV_TRIPWIRE, G_AF_INET, addr, port, proto, type);
			return 0;
		}
		if (judge4(a3, port))
			return 1;
		deny(hook, flags, G_AF_INET, addr, port, proto, type);
		return 0;
	}

	addr[0] = a0;
	addr[1] = a1;
	addr[2] = a2;
	addr[3] = a3;
	if (tripwire_family == G_AF_INET6 && type == G_SOCK_DGRAM && hook == GUARD_HOOK_CONNECT6 &&
	    a0 == tripwire_addr[0] && a1 == tripwire_addr[1] && a2 == tripwire_addr[2] &&
	    a3 == tripwire_addr[3] && port == tripwire_port) {
		deny(hook, GUARD_EV_TRIPWIRE, G_AF_INET6, addr, port, proto, type);
		return 0;
	}
	if (judge6(addr, port))
		return 1;
	deny(hook, 0, G_AF_INET6, addr, port, proto, type);
	return 0;
}

SEC("cgroup/connect4")
int guard_connect4(struct bpf_sock_addr *ctx)
{
	return check4(ctx, GUARD_HOOK_CONNECT4);
}

SEC("cgroup/connect6")
int guard_connect6(struct bpf_sock_addr *ctx)
{
	return check6(ctx, GUARD_HOOK_CONNECT6);
}

SEC("cgroup/sendmsg4")
int guard_sendmsg4(struct bpf_sock_addr *ctx)
{
	return check4(ctx, GUARD_HOOK_SENDMSG4);
}

SEC("cgroup/sendmsg6")
int guard_sendmsg6(struct bpf_sock_addr *ctx)
{
	return check6(ctx, GUARD_HOOK_SENDMSG6);
}

SEC("cgroup/sock_create")
int guard_sock_create(struct bpf_sock *sk)
{
	__u32 family = sk->family;
	__u32 type = sk->type;
	__u32 proto = sk->protocol;
	__u32 addr[4] = {};

	barrier_var(family);
	barrier_var(type);
	barrier_var(proto);
	if (!deny_raw)
		return 1;
	if (type == G_SOCK_RAW ||
	    (type == G_SOCK_DGRAM && (proto == G_IPPROTO_ICMP || proto == G_IPPROTO_ICMPV6))) {
		deny(GUARD_HOOK_SOCK_CREATE, 0, family, addr, 0, proto, type);
		return 0;
	}
	return 1;
}

/*
 * The project licence. No GPL-only helper is used, and the kernel checks GPL
 * compatibility only for those.
 */
char LICENSE[] SEC("license") = "Apache-2.0";
