/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Selector evaluation shared by the policy hook families: configuration and value-set maps written by
 * the agent's policy engine, and the small helpers that test one selector against the read arguments. */
#pragma once
#include "helpers.h"

#define SA_SIGKILL 9
#define SA_PF_KTHREAD 0x00200000

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SA_MAX_HOOKS);
	__type(key, __u32);
	__type(value, struct sa_hook);
} sa_hooks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SA_MAX_HOOKS);
	__type(key, __u32);
	__type(value, struct sa_hook_stats);
} sa_hook_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sa_settings);
} sa_settings SEC(".maps");

/* Exact strings: {filter_id, zero-padded string}. */
struct sa_str_key {
	__u32 filter_id;
	char data[SA_STR_MAX];
};

/* Prefixes: LPM trie keys hold at most 256 data bytes, the filter id included. */
#define SA_LPM_STR_MAX 248
struct sa_lpm_key {
	__u32 prefixlen;       /* 32 + 8 * bytes */
	__u32 filter_id;
	char data[SA_LPM_STR_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct sa_str_key);
	__type(value, __u8);
} sa_str_set SEC(".maps");

/* Prefixes, and reversed postfixes (the same trie: filter ids differ). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sa_lpm_key);
	__type(value, __u8);
} sa_str_prefix SEC(".maps");

struct sa_int_key {
	__u32 filter_id;
	__u32 pad;
	__u64 value;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct sa_int_key);
	__type(value, __u8);
} sa_int_set SEC(".maps");

struct sa_addr_key {
	__u32 prefixlen;       /* 32 (filter id) + 8 (family) + address bits */
	__u32 filter_id;
	__u8 family;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sa_addr_key);
	__type(value, __u8);
} sa_addr_lpm SEC(".maps");

struct sa_rate_key {
	__u32 hook_id;
	__u32 selector;
	__u32 tgid;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct sa_rate_key);
	__type(value, __u64);
} sa_rate SEC(".maps");

/* Per-CPU scratch: the event being built, reversed strings, and a lookup key. */
struct sa_policy_scratch {
	struct policy_event ev;
	char rev[SA_MAX_ARGS][SA_STR_MAX];
	struct sa_str_key key;
	struct sa_lpm_key lpm;
	struct sa_binary bin;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sa_policy_scratch);
} sa_policy_scratch SEC(".maps");

static __always_inline struct sa_policy_scratch *sa_scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&sa_policy_scratch, &zero);
}

static __always_inline struct sa_hook_stats *sa_stats(__u32 hook_id)
{
	return bpf_map_lookup_elem(&sa_hook_stats, &hook_id);
}

/* Is `s` (len bytes, no terminator) in filter `id`'s exact set? */
static __always_inline bool sa_str_in_set(struct sa_str_key *key, __u32 id, const char *s, __u32 len)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->filter_id = id;
	bpf_probe_read_kernel(key->data, len & (SA_STR_MAX - 1), s);
	return bpf_map_lookup_elem(&sa_str_set, key) != NULL;
}

/* Does a prefix stored for filter `id` start `s`? (Stored prefixes are at most SA_LPM_STR_MAX bytes.) */
static __always_inline bool sa_str_has_prefix(struct sa_lpm_key *key, __u32 id, const char *s, __u32 len)
{
	if (len > SA_LPM_STR_MAX)
		len = SA_LPM_STR_MAX;
	key->prefixlen = 32 + len * 8;
	key->filter_id = id;
	bpf_probe_read_kernel(key->data, len, s);
	return bpf_map_lookup_elem(&sa_str_prefix, key) != NULL;
}

struct sa_rev_ctx {
	const char *src;
	char *dst;
	__u32 len;
};

static long sa_rev_step(__u32 i, struct sa_rev_ctx *c)
{
	if (i >= c->len)
		return 1;
	char ch;
	bpf_probe_read_kernel(&ch, 1, c->src + ((c->len - 1 - i) & (SA_STR_MAX - 1)));
	c->dst[i & (SA_STR_MAX - 1)] = ch;
	return 0;
}

static __always_inline void sa_reverse(char *dst, const char *src, __u32 len)
{
	struct sa_rev_ctx c = { .src = src, .dst = dst, .len = len & (SA_STR_MAX - 1) };
	bpf_loop(SA_STR_MAX, sa_rev_step, &c, 0);
}

static __always_inline bool sa_int_in_set(__u32 id, __u64 v)
{
	struct sa_int_key k = { .filter_id = id, .value = v };
	return bpf_map_lookup_elem(&sa_int_set, &k) != NULL;
}

/* sockaddr fields (raw bytes as read from user space). */
static __always_inline __u16 sa_sockaddr_family(const char *sa) { return *(__u16 *)sa; }
static __always_inline __u16 sa_sockaddr_port(const char *sa) { return __builtin_bswap16(*(__u16 *)(sa + 2)); }

static __always_inline bool sa_addr_in(__u32 id, const char *sa)
{
	struct sa_addr_key k = {};
	__u16 family = sa_sockaddr_family(sa);
	k.filter_id = id;
	k.family = family;
	if (family == 2 /* AF_INET */) {
		__builtin_memcpy(k.addr, sa + 4, 4);
		k.prefixlen = 32 + 8 + 32;
	} else if (family == 10 /* AF_INET6 */) {
		__builtin_memcpy(k.addr, sa + 8, 16);
		k.prefixlen = 32 + 8 + 128;
	} else {
		return false;
	}
	return bpf_map_lookup_elem(&sa_addr_lpm, &k) != NULL;
}

/* The current process's id in its own pid namespace (what a container sees as its pid). */
static __always_inline __u32 sa_ns_tgid(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct pid *pid = BPF_CORE_READ(task, group_leader, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid up = {};
	bpf_probe_read_kernel(&up, sizeof(up), &pid->numbers[level & 31]);
	return up.nr;
}

/* The agent's own activity (writing events, reading /proc) is never subject to policies. */
static __always_inline bool sa_is_agent(__u32 tgid)
{
	__u32 zero = 0;
	struct sa_settings *st = bpf_map_lookup_elem(&sa_settings, &zero);
	return st && st->agent_tgid == tgid;
}

/* May the agent signal the current task? Never pid 1, kernel threads or the agent itself. */
static __always_inline bool sa_may_signal(__u32 tgid)
{
	__u32 zero = 0;
	struct sa_settings *st = bpf_map_lookup_elem(&sa_settings, &zero);
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	if (tgid <= 1 || (BPF_CORE_READ(task, flags) & SA_PF_KTHREAD))
		return false;
	return !(st && st->agent_tgid == tgid);
}
