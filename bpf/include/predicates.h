/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Small tests on the current task and on argument values. What a hook family can ask differs: cgroup
 * programs have no task helpers, so the checks that need the task compile to "no" there (the policy compiler
 * refuses the selectors that would need them on those hooks). */
#pragma once
#include "policy_maps.h"

#define SA_TASK_HELPERS (SA_FAMILY != SA_FAMILY_CGROUP)

/* The agent's own activity (writing events, reading /proc) is never subject to policies. */
static __always_inline bool sa_is_agent(__u32 tgid)
{
	struct sa_settings *st = sa_get_settings();
	return st && st->agent_tgid == tgid;
}

/* May the agent signal the current task? Never pid 1, kernel threads or the agent itself. */
static __always_inline bool sa_may_signal(__u32 tgid)
{
	if (!SA_TASK_HELPERS || tgid <= 1 || sa_is_agent(tgid))
		return false;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	return !(BPF_CORE_READ(task, flags) & SA_PF_KTHREAD);
}

/* The current process's id in its own pid namespace (what a container sees as its pid). */
static __always_inline __u32 sa_ns_tgid(__u32 tgid)
{
	if (!SA_TASK_HELPERS)
		return tgid;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct pid *pid = BPF_CORE_READ(task, group_leader, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid up = {};
	bpf_probe_read_kernel(&up, sizeof(up), &pid->numbers[level & 31]);
	return up.nr;
}

/* matchPIDs, with followForks (the pid set's bit in sa_follow) and isNamespacePID. */
static __always_inline bool sa_match_pids(const struct sa_selector *sel, __u32 tgid)
{
	if (sel->pid_cmp == SA_CMP_NONE)
		return true;
	__u32 who = sel->flags & SA_SEL_PID_NS ? sa_ns_tgid(tgid) : tgid;
	bool in = false;
	for (int p = 0; p < SA_MAX_PIDS; p++)
		if (p < sel->npids && sel->pids[p] == who)
			in = true;
	if (!in && sel->follow) {
		__u64 *mask = bpf_map_lookup_elem(&sa_follow, &tgid);
		in = mask && (*mask & (1ULL << ((sel->follow - 1) & 63)));
	}
	return in == (sel->pid_cmp == SA_CMP_IN);
}

/* matchCapabilities: any of the mask held in the chosen set (In), or none (NotIn). */
static __always_inline bool sa_match_caps(const struct sa_selector *sel)
{
	if (sel->cap_cmp == SA_CMP_NONE)
		return true;
	if (!SA_TASK_HELPERS)
		return false;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	const struct cred *cred = BPF_CORE_READ(task, cred);
	__u64 caps = sel->cap_set == 1 ? sa_read_cap(&cred->cap_permitted)
		   : sel->cap_set == 2 ? sa_read_cap(&cred->cap_inheritable)
				       : sa_read_cap(&cred->cap_effective);
	bool any = (caps & sel->cap_mask) != 0;
	return sel->cap_cmp == SA_CMP_IN ? any : !any;
}

/* The pod scope of the selector's policy. */
static __always_inline bool sa_in_scope(const struct sa_selector *sel)
{
	if (!sel->scope_id)
		return true;
	struct sa_scope_key k = { .scope_id = sel->scope_id, .cgroup_id = bpf_get_current_cgroup_id() };
	return bpf_map_lookup_elem(&sa_scope, &k) != NULL;
}

/* GreaterThan / LessThan / Mask on an integer argument. */
static __always_inline bool sa_match_int_cmp(const struct sa_int_cmp *c, __u64 v)
{
	switch (c->cmp) {
	case SA_CMP_GREATER_THAN:
		return c->is_signed ? (__s64)v > (__s64)c->value : v > c->value;
	case SA_CMP_LESS_THAN:
		return c->is_signed ? (__s64)v < (__s64)c->value : v < c->value;
	case SA_CMP_MASK:
		return (v & c->value) != 0;
	}
	return false;
}

/* A signed integer argument of `size` bytes, widened to 64 bits. */
static __always_inline __u64 sa_sign_extend(__u64 v, __u8 size)
{
	return size == 4 ? (__u64)(__s64)(__s32)v : size == 2 ? (__u64)(__s64)(__s16)v : size == 1 ? (__u64)(__s64)(__s8)v : v;
}

static __always_inline __u64 sa_zero_extend(__u64 v, __u8 size)
{
	return size == 4 ? (__u32)v : size == 2 ? (__u16)v : size == 1 ? (__u8)v : v;
}

/* sockaddr fields (raw bytes as read). */
static __always_inline __u16 sa_sockaddr_family(const char *sa) { return *(__u16 *)sa; }
static __always_inline __u16 sa_sockaddr_port(const char *sa) { return __builtin_bswap16(*(__u16 *)(sa + 2)); }

/* Index of the lowest set bit of a non-zero word (BPF has no count-trailing-zeros instruction). */
static __always_inline __u32 sa_lowest_bit(__u64 x)
{
	__u32 n = 0;
	if (!(x & 0xffffffffULL)) { n += 32; x >>= 32; }
	if (!(x & 0xffff)) { n += 16; x >>= 16; }
	if (!(x & 0xff)) { n += 8; x >>= 8; }
	if (!(x & 0xf)) { n += 4; x >>= 4; }
	if (!(x & 0x3)) { n += 2; x >>= 2; }
	if (!(x & 0x1)) n += 1;
	return n;
}
