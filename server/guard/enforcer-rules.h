#pragma once
/*
 * The rule maps of the kernel guard, shared by enforcer.c (which loads the maps) and
 * enforcer-rules.c (which writes them). Only inside guard/.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ebpf/guard.h"
#include "enforcer.h"

struct rule_ent {
	int family; /* after normalisation: v4-mapped and NAT64 prefixes become AF_INET */
	uint8_t addr[16];
	struct guard_rule rule;
};

/* What one of the two rule set slots holds, sorted by rule_cmp. */
struct rule_set {
	struct rule_ent *ents;
	size_t n;
	bool dirty; /* content unknown (a failed install, or pins of another process): clear */
};

/* The rule maps (fds borrowed) and what this process knows of their two sets. */
struct guard_rules {
	int fd4[2], fd6[2]; /* rules4_a/b, rules6_a/b */
	int active_fd;      /* rules_active */
	struct rule_set sets[2];
	uint32_t active; /* slot the programs read */
	bool installed;
	bool own_fds;    /* opened from pins: guard_rules_free closes them */
};

/* Reads the trips map (its fd: loaded here or opened from a pin) into ret_counters. */
int guard_trips_read(int fd, struct guard_counters *ret_counters);

/* The IPv4-mapped IPv6 prefix (::ffff:0:0/96): judged as IPv4. */
static const uint8_t guard_v4mapped_pfx[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
