// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Generic tracepoint hook for tracing policies. One program, attached once per policy hook with the
 * hook id as bpf_cookie; sa_hooks[hook id] says which record fields to read and which selectors to
 * evaluate. Only an event that matches a selector reaches the ring buffer. */
#include "policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keeps the record type in BTF for LayoutTests. */
struct policy_event *sa_btf_policy_event __attribute__((unused));

/* Reads the hook's arguments from the tracepoint record into the event. */
static __always_inline void sa_read_args(struct sa_policy_scratch *s, struct sa_hook *h, void *ctx)
{
	struct policy_event *ev = &s->ev;
	__u64 base;
	void *ctxp = ctx;
	/* The record is read through its address as a plain number: the verifier forbids variable
	 * offsets from the context pointer itself. */
	bpf_probe_read_kernel(&base, sizeof(base), &ctxp);

	for (int i = 0; i < SA_MAX_ARGS; i++) {
		ev->str_len[i] = 0;
		ev->ints[i] = 0;
		if (i >= h->nargs)
			continue;
		struct sa_hook_arg *a = &h->args[i];
		__u64 raw = 0;
		bpf_probe_read_kernel(&raw, a->size <= 8 ? a->size & 0xf : 8, (void *)(base + a->offset));
		if (a->type == SA_ARG_INT) {
			if (a->size == 4) raw = (__s64)(__s32)raw;
			else if (a->size == 2) raw = (__s64)(__s16)raw;
			else if (a->size == 1) raw = (__s64)(__s8)raw;
		}
		ev->ints[i] = raw;
		if (a->type == SA_ARG_STRING) {
			long n = bpf_probe_read_user_str(ev->str[i], SA_STR_MAX, (void *)raw);
			__u32 len = n > 0 ? n - 1 : 0;
			if (len >= SA_STR_MAX - 1)
				ev->flags |= SA_PEV_STR_TRUNCATED;
			ev->str_len[i] = len;
			if (h->reverse_mask & (1 << i))
				sa_reverse(s->rev[i], ev->str[i], len);
		} else if (a->type == SA_ARG_SOCKADDR) {
			__builtin_memset(ev->str[i], 0, 28);
			if (bpf_probe_read_user(ev->str[i], 28, (void *)raw) == 0)
				ev->str_len[i] = 28;
		}
	}
}

static __always_inline int sa_policy_hook(void *ctx)
{
	__u32 hook_id = bpf_get_attach_cookie(ctx);
	struct sa_hook *h = bpf_map_lookup_elem(&sa_hooks, &hook_id);
	struct sa_hook_stats *st = sa_stats(hook_id);
	struct sa_policy_scratch *s = sa_scratch();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!h || !st || !s || sa_is_agent(pid_tgid >> 32))
		return 0;
	__sync_fetch_and_add(&st->seen, 1);

	struct sa_eval c = { .hook_id = hook_id, .tgid = pid_tgid >> 32, .matched = -1 };
	struct policy_event *ev = &s->ev;
	ev->flags = 0;
	sa_read_args(s, h, ctx);

	__u32 actions = SA_ACT_POST, sig = SA_SIGKILL;
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
		if (actions & SA_ACT_SIGNAL)
			sig = sel->signal;
		struct sa_deny_key dk = { .hook_id = hook_id, .selector = m, .tgid = c.tgid };
		__u32 *deny = bpf_map_lookup_elem(&sa_deny, &dk);
		if (deny) {
			actions |= *deny;
			if (*deny & SA_ACT_SIGNAL)
				sig = sel->signal;
			ev->flags |= SA_PEV_DENY_SET;
		}
	}
	__sync_fetch_and_add(&st->matched, 1);

	if (actions & (SA_ACT_SIGKILL | SA_ACT_SIGNAL)) {
		if (!h->enforce) {
			ev->flags |= SA_PEV_MONITOR;
		} else if (!sa_may_signal(c.tgid)) {
			ev->flags |= SA_PEV_SAFETY_REFUSED;
		} else if (bpf_send_signal(sig) == 0) {
			ev->flags |= SA_PEV_ENFORCED;
			__sync_fetch_and_add(&st->enforced, 1);
		}
	}

	if (!(actions & SA_ACT_POST))
		return 0;
	if (window) {
		struct sa_rate_key rk = { .hook_id = hook_id, .selector = m, .tgid = c.tgid };
		__u64 now = bpf_ktime_get_boot_ns();
		__u64 *last = bpf_map_lookup_elem(&sa_rate, &rk);
		if (last && now - *last < window) {
			__sync_fetch_and_add(&st->rate_limited, 1);
			return 0;
		}
		bpf_map_update_elem(&sa_rate, &rk, &now, BPF_ANY);
	}

	ev->pid = c.tgid;
	ev->tid = (__u32)pid_tgid;
	ev->hook_id = hook_id;
	ev->policy_id = h->policy_id;
	ev->selector = m;
	ev->nargs = h->nargs;
	ev->actions = actions;
	ev->pad0 = 0;
	sa_header(&ev->hdr, SA_OP_TRACEPOINT, sizeof(*ev));
	sa_submit(ev, sizeof(*ev));
	__sync_fetch_and_add(&st->posted, 1);
	return 0;
}

/* The kernel refuses the same program twice on one tracepoint (EEXIST), so the object carries
 * SA_TP_SLOTS identical programs: the agent attaches each hook with a slot free on its tracepoint. */
#define SA_TP_SLOT(n) \
	SEC("tracepoint") int sa_policy_tp##n(void *ctx) { return sa_policy_hook(ctx); }
SA_TP_SLOT(0)
SA_TP_SLOT(1)
SA_TP_SLOT(2)
SA_TP_SLOT(3)
SA_TP_SLOT(4)
SA_TP_SLOT(5)
SA_TP_SLOT(6)
SA_TP_SLOT(7)
