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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct sa_deny_key);
	__type(value, __u32); /* enum sa_action bits to enforce */
} sa_deny SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sa_scope_key);
	__type(value, __u8);
} sa_scope SEC(".maps");

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

/* A signed integer argument of `size` bytes, widened to 64 bits. */
static __always_inline __u64 sa_sign_extend(__u64 v, __u8 size)
{
	return size == 4 ? (__u64)(__s64)(__s32)v : size == 2 ? (__u64)(__s64)(__s16)v : size == 1 ? (__u64)(__s64)(__s8)v : v;
}

static __always_inline bool sa_is_str(__u8 t)
{
	return t == SA_ARG_STRING || t == SA_ARG_FILE || t == SA_ARG_PATH || t == SA_ARG_BPRM || t == SA_ARG_KSTRING;
}

static __always_inline bool sa_is_sockaddr(__u8 t)
{
	return t == SA_ARG_SOCKADDR || t == SA_ARG_KSOCKADDR;
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

#ifndef SA_NO_TASK
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
#endif

/* The agent's own activity (writing events, reading /proc) is never subject to policies. */
static __always_inline bool sa_is_agent(__u32 tgid)
{
	__u32 zero = 0;
	struct sa_settings *st = bpf_map_lookup_elem(&sa_settings, &zero);
	return st && st->agent_tgid == tgid;
}

#ifndef SA_NO_TASK
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
#endif

/* ---- Selector evaluation, shared by every policy hook family ---- */

struct sa_eval {
	__u32 hook_id;
	__u32 tgid;
	__s32 matched;      /* selector index, or -1 */
};

static __always_inline bool sa_match_arg(struct sa_policy_scratch *s, struct sa_hook *h, struct sa_arg_filter *f)
{
	__u32 a = f->arg;
	if (a >= SA_MAX_ARGS)
		return false;
	struct policy_event *ev = &s->ev;
	__u8 type = h->args[a].type;
	__u64 v = ev->ints[a];
	__u32 len = ev->str_len[a] & (SA_STR_MAX - 1);
	bool str = sa_is_str(type);

	switch (f->cmp) {
	case SA_CMP_IN:
		return str ? sa_str_in_set(&s->key, f->filter_id, ev->str[a], len) : sa_int_in_set(f->filter_id, v);
	case SA_CMP_NOT_IN:
		return str ? !sa_str_in_set(&s->key, f->filter_id, ev->str[a], len) : !sa_int_in_set(f->filter_id, v);
	case SA_CMP_PREFIX:
		return sa_str_has_prefix(&s->lpm, f->filter_id, ev->str[a], len);
	case SA_CMP_NOT_PREFIX:
		return !sa_str_has_prefix(&s->lpm, f->filter_id, ev->str[a], len);
	case SA_CMP_POSTFIX:
		return sa_str_has_prefix(&s->lpm, f->filter_id, s->rev[a], len);
	case SA_CMP_NOT_POSTFIX:
		return !sa_str_has_prefix(&s->lpm, f->filter_id, s->rev[a], len);
	case SA_CMP_GT:
		return type == SA_ARG_INT ? (__s64)v > (__s64)f->value : v > f->value;
	case SA_CMP_LT:
		return type == SA_ARG_INT ? (__s64)v < (__s64)f->value : v < f->value;
	case SA_CMP_MASK:
		return (v & f->value) != 0;
	case SA_CMP_DADDR:
		return sa_is_sockaddr(type) && sa_addr_in(f->filter_id, ev->str[a]);
	case SA_CMP_NOT_DADDR:
		return sa_is_sockaddr(type) && !sa_addr_in(f->filter_id, ev->str[a]);
	case SA_CMP_DPORT:
		return sa_is_sockaddr(type) && sa_int_in_set(f->filter_id, sa_sockaddr_port(ev->str[a]));
	case SA_CMP_NOT_DPORT:
		return sa_is_sockaddr(type) && !sa_int_in_set(f->filter_id, sa_sockaddr_port(ev->str[a]));
	case SA_CMP_FAMILY:
		return sa_is_sockaddr(type) && sa_int_in_set(f->filter_id, sa_sockaddr_family(ev->str[a]));
	case SA_CMP_NOT_FAMILY:
		return sa_is_sockaddr(type) && !sa_int_in_set(f->filter_id, sa_sockaddr_family(ev->str[a]));
	}
	return false;
}

static __always_inline bool sa_match_binary(struct sa_policy_scratch *s, struct sa_selector *sel, __u32 tgid)
{
	struct sa_binary *b = bpf_map_lookup_elem(&sa_exec_binary, &tgid);
	__u32 len = b ? b->len & (SA_STR_MAX - 1) : 0;
	const char *path = b ? b->path : s->bin.path;
	bool hit;

	if (!b)
		__builtin_memset(&s->bin, 0, sizeof(s->bin));
	switch (sel->bin_cmp) {
	case SA_CMP_IN:
	case SA_CMP_NOT_IN:
		hit = sa_str_in_set(&s->key, sel->bin_filter, path, len);
		return sel->bin_cmp == SA_CMP_IN ? hit : !hit;
	case SA_CMP_PREFIX:
	case SA_CMP_NOT_PREFIX:
		hit = sa_str_has_prefix(&s->lpm, sel->bin_filter, path, len);
		return sel->bin_cmp == SA_CMP_PREFIX ? hit : !hit;
	case SA_CMP_POSTFIX:
	case SA_CMP_NOT_POSTFIX:
		sa_reverse(s->bin.path, path, len);
		hit = sa_str_has_prefix(&s->lpm, sel->bin_filter, s->bin.path, len);
		return sel->bin_cmp == SA_CMP_POSTFIX ? hit : !hit;
	}
	return true;
}

static __always_inline bool sa_match_caps(struct sa_selector *sel)
{
	if (sel->cap_cmp == SA_CMP_NONE)
		return true;
#ifdef SA_NO_TASK
	return false; /* the compiler refuses matchCapabilities on hooks without task access */
#else
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	const struct cred *cred = BPF_CORE_READ(task, cred);
	__u64 caps = sel->cap_set == 1 ? sa_read_cap(&cred->cap_permitted)
		   : sel->cap_set == 2 ? sa_read_cap(&cred->cap_inheritable)
				       : sa_read_cap(&cred->cap_effective);
	bool any = (caps & sel->cap_mask) != 0;
	return sel->cap_cmp == SA_CMP_IN ? any : !any;
#endif
}

/* Evaluates selector i (bpf_loop callback: verified once, whatever the number of selectors). */
static long sa_eval_selector(__u32 i, struct sa_eval *c)
{
	/* Bound the index in a 64-bit register the verifier tracks (clang may otherwise test a copy). */
	__u64 idx = i;
	asm volatile("" : "+r"(idx));
	if (idx >= SA_MAX_SELECTORS)
		return 1;
	struct sa_policy_scratch *s = sa_scratch();
	struct sa_hook *h = bpf_map_lookup_elem(&sa_hooks, &c->hook_id);
	if (!s || !h)
		return 1;
	struct sa_selector *sel = &h->sel[idx];

	if (sel->pid_cmp != SA_CMP_NONE) {
		bool in = false;
#ifdef SA_NO_TASK
		__u32 who = c->tgid;
#else
		__u32 who = sel->pid_ns ? sa_ns_tgid() : c->tgid;
#endif
		for (int p = 0; p < SA_MAX_PIDS; p++)
			if (p < sel->npids && sel->pids[p] == who)
				in = true;
		if (!in && sel->follow) {
			__u64 *mask = bpf_map_lookup_elem(&sa_follow, &c->tgid);
			in = mask && (*mask & (1ULL << ((sel->follow - 1) & 63)));
		}
		if (in != (sel->pid_cmp == SA_CMP_IN))
			return 0;
	}
	if (sel->bin_cmp != SA_CMP_NONE && !sa_match_binary(s, sel, c->tgid))
		return 0;
	if (!sa_match_caps(sel))
		return 0;
	for (int j = 0; j < SA_MAX_MATCH_ARGS; j++) {
		if (j >= sel->nargs)
			break;
		if (!sa_match_arg(s, h, &sel->args[j]))
			return 0;
	}
	c->matched = i;
	return 1;
}


/* ---- The common path of every policy hook ---- */

struct sa_hook_ctx {
	struct sa_hook *h;
	struct sa_hook_stats *st;
	struct sa_policy_scratch *s;
	__u32 hook_id;
	__u64 pid_tgid;
};

/* Looks up the hook's configuration, counters and scratch, and counts the call as seen. False when the hook
 * is gone, or the caller is the agent itself (its own activity is never subject to policies). */
static __always_inline bool sa_begin(struct sa_hook_ctx *x, __u32 hook_id)
{
	x->hook_id = hook_id;
	x->h = bpf_map_lookup_elem(&sa_hooks, &hook_id);
	x->st = sa_stats(hook_id);
	x->s = sa_scratch();
	x->pid_tgid = bpf_get_current_pid_tgid();
	if (!x->h || !x->st || !x->s || sa_is_agent(x->pid_tgid >> 32))
		return false;
	if (x->h->scope_id) {
		/* Scoped to some pods: a process outside them never reaches the selectors. */
		struct sa_scope_key k = { .scope_id = x->h->scope_id, .cgroup_id = bpf_get_current_cgroup_id() };
		if (!bpf_map_lookup_elem(&sa_scope, &k))
			return false;
	}
	__sync_fetch_and_add(&x->st->seen, 1);
	x->s->ev.flags = 0;
	return true;
}

/* With the arguments in x->s->ev: evaluates the selectors, applies the deny set, enforces, rate-limits and
 * posts. Returns the errno an LSM or cgroup hook should return (0: allow). */
static __always_inline __s32 sa_decide(struct sa_hook_ctx *x, __u8 op)
{
	struct sa_hook *h = x->h;
	struct policy_event *ev = &x->s->ev;
	struct sa_eval c = { .hook_id = x->hook_id, .tgid = x->pid_tgid >> 32, .matched = -1 };
	__u32 actions = SA_ACT_POST, sig = SA_SIGKILL;
	__s32 error = -1;
	__u64 window = 0, m = 0;

	if (h->nselectors > 0) {
		bpf_loop(h->nselectors, sa_eval_selector, &c, 0);
		m = (__u32)c.matched;
		asm volatile("" : "+r"(m));
		if (c.matched < 0 || m >= SA_MAX_SELECTORS)
			return 0;
		struct sa_selector *sel = &h->sel[m];
		actions = sel->actions;
		window = sel->rate_limit_ns;
		if (sel->error < 0)
			error = sel->error;
		sig = actions & SA_ACT_SIGNAL ? sel->signal : SA_SIGKILL;
		struct sa_deny_key dk = { .hook_id = x->hook_id, .selector = m, .tgid = c.tgid };
		__u32 *deny = bpf_map_lookup_elem(&sa_deny, &dk);
		if (deny) {
			actions |= *deny;
			if (*deny & SA_ACT_SIGNAL)
				sig = sel->signal;
			ev->flags |= SA_PEV_DENY_SET;
		}
	}
	__sync_fetch_and_add(&x->st->matched, 1);

	__s32 verdict = 0;
	if (actions & SA_ACT_OVERRIDE) {
		if (!h->enforce) {
			ev->flags |= SA_PEV_MONITOR;
		} else {
			verdict = error;
			ev->flags |= SA_PEV_ENFORCED;
			__sync_fetch_and_add(&x->st->enforced, 1);
		}
	}
#ifndef SA_NO_TASK
	if (actions & (SA_ACT_SIGKILL | SA_ACT_SIGNAL)) {
		if (!h->enforce) {
			ev->flags |= SA_PEV_MONITOR;
		} else if (!sa_may_signal(c.tgid)) {
			ev->flags |= SA_PEV_SAFETY_REFUSED;
		} else if (bpf_send_signal(sig) == 0) {
			ev->flags |= SA_PEV_ENFORCED;
			__sync_fetch_and_add(&x->st->enforced, 1);
		}
	}
#else
	(void)sig; /* no signal helper in cgroup programs; the compiler refuses Sigkill/Signal there */
#endif

	if (!(actions & SA_ACT_POST))
		return verdict;
	if (window) {
		struct sa_rate_key rk = { .hook_id = x->hook_id, .selector = m, .tgid = c.tgid };
		__u64 now = bpf_ktime_get_boot_ns();
		__u64 *last = bpf_map_lookup_elem(&sa_rate, &rk);
		if (last && now - *last < window) {
			__sync_fetch_and_add(&x->st->rate_limited, 1);
			return verdict;
		}
		bpf_map_update_elem(&sa_rate, &rk, &now, BPF_ANY);
	}
	ev->pid = c.tgid;
	ev->tid = (__u32)x->pid_tgid;
	ev->hook_id = x->hook_id;
	ev->policy_id = h->policy_id;
	ev->selector = m;
	ev->nargs = h->nargs;
	ev->actions = actions;
	ev->pad0 = 0;
	/* Only the used string slots travel: most hooks read one or two arguments. */
	__u64 used = h->nargs;
	asm volatile("" : "+r"(used));
	used &= 7; /* nargs <= SA_MAX_ARGS; the mask is what the verifier can follow (the scratch holds 7 slots' worth) */
	__u64 size = offsetof(struct policy_event, str) + used * SA_STR_MAX;
	sa_header(&ev->hdr, op, size);
	sa_submit(ev, size);
	__sync_fetch_and_add(&x->st->posted, 1);
	return verdict;
}

#ifndef SA_NO_TASK
/* Writes the path of `p` (resolved against the task's root) into a string slot; returns its length. */
static __always_inline __u32 sa_path_to_slot(char *dst, const struct path *p)
{
	__u32 zero = 0;
	struct path_scratch *ps = bpf_map_lookup_elem(&sa_path_scratch, &zero);
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	bool truncated = false;
	if (!ps)
		return 0;
	__u32 off = sa_resolve_path(p, &fs->root, &truncated);
	if (off > SA_PATH_MAX) {
		dst[0] = '/';
		dst[1] = 0;
		return 1;
	}
	__u32 len = (SA_PATH_MAX + 1 - off) & SA_MASK_4K;
	if (len > SA_STR_MAX - 1)
		len = SA_STR_MAX - 1;   /* keep the beginning: prefixes are what policies match */
	bpf_probe_read_kernel(dst, len & (SA_STR_MAX - 1), &ps->buf[off & SA_MASK_4K]);
	dst[len & (SA_STR_MAX - 1)] = 0;
	return len;
}

/* Fills the event's argument slots from raw function arguments (LSM hooks, kprobes). */
static __always_inline void sa_read_fn_args(struct sa_hook_ctx *x, const __u64 *raw)
{
	struct policy_event *ev = &x->s->ev;
	struct sa_hook *h = x->h;
	for (int i = 0; i < SA_MAX_ARGS; i++) {
		ev->ints[i] = 0;
		ev->str_len[i] = 0;
		if (i >= h->nargs)
			continue;
		struct sa_hook_arg *a = &h->args[i];
		__u64 v = raw[a->offset < SA_MAX_ARGS ? a->offset : 0];
		switch (a->type) {
		case SA_ARG_INT:
			ev->ints[i] = sa_sign_extend(v, a->size);
			break;
		case SA_ARG_UINT:
		case SA_ARG_FD:
			ev->ints[i] = a->size == 4 ? (__u32)v : a->size == 2 ? (__u16)v : a->size == 1 ? (__u8)v : v;
			break;
		case SA_ARG_FILE: {
			struct file *f = (struct file *)v;
			ev->str_len[i] = sa_path_to_slot(ev->str[i], &f->f_path);
			break;
		}
		case SA_ARG_PATH:
			ev->str_len[i] = sa_path_to_slot(ev->str[i], (const struct path *)v);
			break;
		case SA_ARG_BPRM: {
			struct file *f = BPF_CORE_READ((struct linux_binprm *)v, file);
			ev->str_len[i] = sa_path_to_slot(ev->str[i], &f->f_path);
			break;
		}
		case SA_ARG_KSOCKADDR:
			__builtin_memset(ev->str[i], 0, 28);
			if (bpf_probe_read_kernel(ev->str[i], 28, (void *)v) == 0)
				ev->str_len[i] = 28;
			break;
		case SA_ARG_KSTRING: {
			long n = bpf_probe_read_kernel_str(ev->str[i], SA_STR_MAX, (void *)v);
			ev->str_len[i] = n > 0 ? n - 1 : 0;
			break;
		}
		}
		if (sa_is_str(a->type) && (h->reverse_mask & (1 << i)))
			sa_reverse(x->s->rev[i], ev->str[i], ev->str_len[i]);
	}
}
#endif
