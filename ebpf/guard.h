#pragma once
/*
 * Types shared by the kernel side (guard.bpf.c) and the loader (server/guard/enforcer.c).
 * Only fixed-width kernel types, so that the same header compiles for -target bpf and for
 * the host. Changing a layout here changes the pinned `trips` map: the loader then
 * replaces an incompatible pinned map (the counters restart at zero).
 *
 * Counters map layout (`<pin>/trips`, default /sys/fs/bpf/trstctl/trips): a
 * BPF_MAP_TYPE_ARRAY with one entry (key 0, __u32) whose value is struct guard_trips,
 * eleven __u64 counters in this order, each only ever incremented (atomic adds):
 *
 *   total        every denial except tripwire hits (= connect4 + connect6 + sendmsg4 +
 *                sendmsg6 + sock_create)
 *   connect4     denials in cgroup/connect4 (TCP connect, UDP connect, TCP Fast Open)
 *   connect6     denials in cgroup/connect6
 *   sendmsg4     denials in cgroup/sendmsg4 (unconnected UDP sendto/sendmsg/sendmmsg)
 *   sendmsg6     denials in cgroup/sendmsg6
 *   sock_create  raw and ICMP ping sockets refused in cgroup/sock_create
 *   v4mapped     of connect6 + sendmsg6: destinations ::ffff:a.b.c.d judged as IPv4
 *   nat64        of connect6 + sendmsg6: destinations 64:ff9b::a.b.c.d judged as IPv4
 *   tripwire     UDP connects to the configured tripwire address (not in total)
 *   events_dropped  denials whose ring-buffer record was lost (buffer full)
 *   reserved     always 0 (room for one more counter without changing the size)
 *
 * `bpftool -j map dump pinned /sys/fs/bpf/trstctl/trips` (bpftool 7.1, with BTF) prints
 * [{"key":[raw bytes],"value":[raw bytes],"formatted":{"key":0,"value":{"total":N,
 * "connect4":N,...,"tripwire":N,"events_dropped":N,"reserved":0}}}], so a monitor reads
 * `.[0].formatted.value.total` and `.[0].formatted.value.tripwire`; the raw value bytes are
 * the eleven counters as little-endian (host order) __u64 in the order above.
 */
#include <linux/types.h>

/* Maximum number of distinct ports one prefix may carry (beyond: the loader refuses). */
#define GUARD_RULE_PORTS 6
/* Capacity of each per-family rule map (prefixes). */
#define GUARD_RULES_MAX 65536
/* Ring buffer of denials, in bytes (power of two, multiple of the page size). */
#define GUARD_EVENTS_BYTES (256 * 1024)

/* LPM trie key for IPv4; addr in network byte order. */
struct guard_key4 {
	__u32 prefixlen;
	__u32 addr;
};

/* LPM trie key for IPv6; addr in network byte order. */
struct guard_key6 {
	__u32 prefixlen;
	__u32 addr[4];
};

/*
 * Value of a rule map entry. The longest matching prefix alone decides: deny -> EPERM;
 * allow -> pass when its port set lists the destination port (or is empty), else EPERM.
 * There is no fallback to a broader prefix, so that a port-limited entry (a metadata
 * address allowed on one port) cannot be widened by a broader range around it.
 */
struct guard_rule {
	__u32 prefixlen;                /* copy of the key's prefix length */
	__u16 ports[GUARD_RULE_PORTS];  /* host order; only ports[0..nports) are meaningful */
	__u8 nports;                    /* 0 = every port */
	__u8 deny;                      /* 1 = a specific deny, 0 = allow */
	__u16 pad;
};

/* Program that produced a denial (struct guard_event.hook, and the counters). */
enum guard_hook {
	GUARD_HOOK_CONNECT4 = 1,
	GUARD_HOOK_CONNECT6 = 2,
	GUARD_HOOK_SENDMSG4 = 3,
	GUARD_HOOK_SENDMSG6 = 4,
	GUARD_HOOK_SOCK_CREATE = 5,
};

/* struct guard_event.flags */
#define GUARD_EV_TRIPWIRE 0x01 /* the configured tripwire destination */
#define GUARD_EV_V4MAPPED 0x02 /* ::ffff:a.b.c.d on an IPv6 hook, addr holds the IPv4 */
#define GUARD_EV_NAT64 0x04    /* 64:ff9b::a.b.c.d on an IPv6 hook, addr holds the IPv4 */
#define GUARD_EV_COMM 0x08     /* comm is valid (loaded with CAP_PERFMON) */

struct guard_trips {
	__u64 total;
	__u64 connect4;
	__u64 connect6;
	__u64 sendmsg4;
	__u64 sendmsg6;
	__u64 sock_create;
	__u64 v4mapped;
	__u64 nat64;
	__u64 tripwire;
	__u64 events_dropped;
	__u64 reserved;
};

/* One denial, as written to the `events` ring buffer. */
struct guard_event {
	__u64 ktime_ns;  /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 cgroup_id; /* cgroup of the denied task */
	__u32 pid;       /* thread group id */
	__u32 tid;
	__u32 uid;
	__u32 addr[4];   /* network order; IPv4 (also mapped/NAT64) in addr[0] */
	__u16 family;    /* AF_INET or AF_INET6 as judged; 0 for sock_create */
	__u16 port;      /* host order; 0 for sock_create */
	__u8 hook;       /* enum guard_hook */
	__u8 protocol;   /* IPPROTO_* of the socket */
	__u8 type;       /* SOCK_* of the socket */
	__u8 flags;      /* GUARD_EV_* */
	char comm[16];
};
