/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Small tests on the current task and on argument values. What a hook family can ask differs: cgroup
 * programs have no task helpers, so the checks that need the task compile to "no" there (the policy compiler
 * refuses the selectors that would need them on those hooks). */
#pragma once
#include "policy_maps.h"
#include "exec_context.h"

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
	return sa_task_nspid((struct task_struct *)bpf_get_current_task());
}

/* matchPIDs isNamespacePID+followForks, as Tetragon's: is one of the pids the namespace pid of the process or of
 * one of its ancestors (as recorded at fork, while they live), up to SA_NS_TREE_DEPTH processes? *known is false
 * when the kernel has no record of the process (a process that started before the agent and has not exec'd). */
static __always_inline bool sa_pid_tree_has(const struct sa_selector *sel, __u32 tgid, bool *known)
{
	__u32 pid = tgid;
	*known = true;
	for (int d = 0; d < SA_NS_TREE_DEPTH; d++) {
		struct sa_proc *p = bpf_map_lookup_elem(&sa_proc, &pid);
		if (!p) {
			*known = d > 0;
			return false;
		}
		for (int i = 0; i < SA_MAX_PIDS; i++)
			if (i < sel->npids && sel->pids[i] == p->nspid)
				return true;
		pid = p->ppid;
		if (!pid)
			return false;
	}
	return false;
}

/* matchPIDs, with followForks (the pid set's bit in sa_follow) and isNamespacePID. */
static __always_inline bool sa_match_pids(const struct sa_selector *sel, __u32 tgid)
{
	if (sel->pid_cmp == SA_CMP_NONE)
		return true;
	bool in = false;
	if (sel->pid_tree) {
		bool known;
		in = sa_pid_tree_has(sel, tgid, &known);
		if (!known)
			return false;
		return in == (sel->pid_cmp == SA_CMP_IN);
	}
	__u32 who = sel->flags & SA_SEL_PID_NS ? sa_ns_tgid(tgid) : tgid;
	for (int p = 0; p < SA_MAX_PIDS; p++)
		if (p < sel->npids && sel->pids[p] == who)
			in = true;
	if (!in && sel->follow) {
		__u64 *mask = bpf_map_lookup_elem(&sa_follow, &tgid);
		in = mask && (*mask & (1ULL << ((sel->follow - 1) & 63)));
	}
	return in == (sel->pid_cmp == SA_CMP_IN);
}

static __always_inline __u64 sa_task_caps(struct task_struct *task, __u8 set)
{
	const struct cred *cred = BPF_CORE_READ(task, cred);
	return set == 1 ? sa_read_cap(&cred->cap_permitted)
	     : set == 2 ? sa_read_cap(&cred->cap_inheritable)
			: sa_read_cap(&cred->cap_effective);
}

/* matchCapabilities: any of the mask held in the chosen set (In), or none (NotIn). */
static __always_inline bool sa_match_caps(const struct sa_selector *sel)
{
	if (sel->cap_cmp == SA_CMP_NONE)
		return true;
	if (!SA_TASK_HELPERS)
		return false;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	bool any = (sa_task_caps(task, sel->cap_set) & sel->cap_mask) != 0;
	return sel->cap_cmp == SA_CMP_IN ? any : !any;
}

/* matchNamespaceChanges, as Tetragon's: In, a namespace of the mask differs from the one recorded at the
 * process's exec; NotIn, a namespace outside the mask does. Namespaces recorded as 0 (absent) never count. */
static __always_inline bool sa_ns_changed(const struct sa_selector *sel, const struct sa_proc *p, struct task_struct *task)
{
	__u16 check = sel->ns_chg_cmp == SA_CMP_IN ? sel->ns_chg_mask : ~sel->ns_chg_mask;
	for (int i = 0; i < SA_NS_COUNT; i++)
		if ((check & (1 << i)) && p->ns[i] && p->ns[i] != sa_ns_inum(task, i))
			return true;
	return false;
}

/* matchCapabilityChanges, as Tetragon's: In, a capability of the mask differs from the set recorded at exec;
 * NotIn, only capabilities outside the mask do. */
static __always_inline bool sa_caps_changed(const struct sa_selector *sel, const struct sa_proc *p, struct task_struct *task)
{
	__u8 set = sel->cap_chg_set;
	__u64 then = set == 1 ? p->caps[1] : set == 2 ? p->caps[2] : p->caps[0];
	__u64 now = sa_task_caps(task, sel->cap_chg_set);
	if ((then & sel->cap_chg_mask) != (now & sel->cap_chg_mask))
		return sel->cap_chg_cmp == SA_CMP_IN;
	return then != now && sel->cap_chg_cmp == SA_CMP_NOT_IN;
}

/* matchNamespaces, matchNamespaceChanges, matchCapabilityChanges, isNamespaceCapability (only selectors with
 * ns_any set get here). */
static __always_inline bool sa_match_ns(const struct sa_selector *sel, __u32 tgid)
{
	if (!SA_TASK_HELPERS)
		return false;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	for (int e = 0; e < SA_NS_MAX_MATCH; e++) {
		if (e >= sel->ns_nmatch)
			break;
		const struct sa_ns_match *m = &sel->ns_match[e];
		__u32 inum = sa_ns_inum(task, m->ns);
		bool in = false;
		for (int v = 0; v < SA_NS_MAX_VALUES; v++)
			if (v < m->nvals && m->vals[v] == inum)
				in = true;
		if (in != (m->cmp == SA_CMP_IN))
			return false;
	}
	/* isNamespaceCapability: only outside the host's user namespace. */
	if (sel->cap_userns || sel->cap_chg_userns) {
		__u32 userns = sa_ns_inum(task, SA_NS_USER);
		if (userns == sel->cap_userns || userns == sel->cap_chg_userns)
			return false;
	}
	if (!sel->ns_chg_cmp && !sel->cap_chg_cmp)
		return true;
	/* Processes the kernel has no exec record of never match, as in Tetragon. */
	struct sa_proc *p = bpf_map_lookup_elem(&sa_proc, &tgid);
	if (!p)
		return false;
	if (sel->ns_chg_cmp && !sa_ns_changed(sel, p, task))
		return false;
	return !sel->cap_chg_cmp || sa_caps_changed(sel, p, task);
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
