/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The maps of the policy engine. tracepoint.bpf.o creates them; the other hook families' objects share them
 * (the agent's object specs list each shared map). Written by the agent (PolicyEngine), read by the hooks.
 *
 * An attach point's configuration is versioned: the agent writes a complete generation (sa_points[{ap, g}],
 * sa_selectors[{ap, g, bit}], every value-set entry under g), flips sa_active[ap] to g, waits for the programs
 * that may still use the old generation, then deletes it. A program reads sa_active once per call and uses
 * that generation throughout, so it sees either the old configuration or the new one, never a mix. */
#pragma once
#include "helpers.h"

/* The maps whose memory follows what is loaded are created with BPF_F_NO_PREALLOC; their max_entries are
 * ceilings the engine accounts for before it writes anything (a hash map still allocates its buckets: 16 bytes
 * per entry of the ceiling, rounded up to a power of two). While an attach point changes, its old and new
 * generations are both stored. */
#define SA_VALUE_ENTRIES 262144

/* Attach point -> active generation (0: no hook there). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SA_MAX_POINTS);
	__type(key, __u32);
	__type(value, __u32);
} sa_active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * SA_MAX_POINTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sa_gen_key);
	__type(value, struct sa_point);
} sa_points SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sa_selector_key);
	__type(value, struct sa_selector);
} sa_selectors SEC(".maps");

/* Exact strings (arguments and binaries). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SA_VALUE_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sa_str_key);
	__type(value, struct sa_bitmap);
} sa_str_set SEC(".maps");

/* Prefixes, and reversed postfixes (other dimensions). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SA_VALUE_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sa_lpm_key);
	__type(value, struct sa_bitmap);
} sa_str_prefix SEC(".maps");

/* Integers, ports and address families. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SA_VALUE_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sa_int_key);
	__type(value, struct sa_bitmap);
} sa_int_set SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sa_addr_key);
	__type(value, struct sa_bitmap);
} sa_addr_lpm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SA_MAX_HOOKS);
	__type(key, __u32);
	__type(value, struct sa_hook_stats);
} sa_hook_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SA_MAX_POINTS);
	__type(key, __u32);
	__type(value, struct sa_point_stats);
} sa_point_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct sa_deny_key);
	__type(value, __u32); /* enum sa_action bits to enforce */
} sa_deny SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sa_scope_key);
	__type(value, __u8);
} sa_scope SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct sa_rate_key);
	__type(value, __u64);
} sa_rate SEC(".maps");

/* Per-CPU state of one call: the arguments read at the attach point, the surviving selector bits, a lookup
 * key and the record being built. */
struct sa_call {
	__u64 live[SA_SEL_WORDS];
	__u64 ints[SA_POINT_ARGS];
	__u16 str_len[SA_POINT_ARGS];
	__u8 trunc_mask;         /* argument slots whose string was cut at SA_STR_MAX - 1 bytes */
	__u8 pad[7];
	char str[SA_POINT_ARGS][SA_STR_MAX];
	char rev[SA_POINT_ARGS][SA_STR_MAX];
	char bin_rev[SA_STR_MAX];
	struct sa_binary no_bin; /* never written: the binary of a process the sensor does not know, "" */
	union {
		struct sa_str_key str;
		struct sa_lpm_key lpm;
		struct sa_int_key num;
		struct sa_addr_key addr;
	} key;
	struct policy_event ev;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sa_call);
} sa_call SEC(".maps");

static __always_inline struct sa_call *sa_call_state(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&sa_call, &zero);
}
