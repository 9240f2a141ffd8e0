/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What happens when a hook's selector matched: the deny set user space feeds, enforcement (a signal, or the
 * errno an LSM or cgroup hook returns; reported but not done in monitor mode, never done to pid 1, kernel
 * threads or the agent), the rate limit, and the event. */
#pragma once
#include "selectors.h"

/* Sets bits [from, to) of a selector bitmap. */
static __always_inline void sa_set_bits(__u64 *w, __u32 from, __u32 to)
{
	for (int i = 0; i < SA_SEL_WORDS; i++) {
		__u32 lo = i * 64;
		if (to <= lo || from >= lo + 64)
			continue;
		__u64 m = ~0ULL;
		if (from > lo)
			m <<= from - lo;
		if (to < lo + 64)
			m &= (1ULL << (to - lo)) - 1;
		w[i] |= m;
	}
}

static __always_inline void sa_post(struct sa_run *r, const struct sa_selector *sel, __u32 hook_id, __u32 actions, __u8 flags)
{
	struct sa_call *c = r->c;
	struct policy_event *ev = &c->ev;
	ev->pid = r->tgid;
	ev->tid = r->tid;
	ev->hook_id = hook_id;
	ev->policy_id = sel->policy_id;
	ev->selector = sel->index;
	ev->nargs = sel->nargs;
	ev->pad0 = 0;
	ev->actions = actions;
	/* Only the used bytes of the hook's strings travel, back to back. */
	__u32 off = 0;
	for (int j = 0; j < SA_MAX_ARGS; j++) {
		ev->ints[j] = 0;
		ev->str_len[j] = 0;
		if (j >= sel->nargs)
			continue;
		__u32 p = sel->args[j] & (SA_POINT_ARGS - 1);
		__u32 len = c->str_len[p] & (SA_STR_MAX - 1);
		ev->ints[j] = c->ints[p];
		if (c->trunc_mask & (1 << p))
			flags |= SA_PEV_STR_TRUNCATED;
		if (!len)
			continue;
		bpf_probe_read_kernel(&ev->data[off & 0x7ff], len, c->str[p]);
		ev->str_len[j] = len;
		off += len;
	}
	/* Then the strings the process passed, where the path argument was resolved to something else. */
	for (int j = 0; j < SA_MAX_ARGS; j++) {
		ev->raw_len[j] = 0;
		if (j >= sel->nargs)
			continue;
		__u32 p = sel->args[j] & (SA_POINT_ARGS - 1);
		__u32 len = c->raw_len[p] & (SA_STR_MAX - 1);
		__u32 o = off;
		if (!len || o > SA_EVENT_DATA - SA_STR_MAX)
			continue;
		bpf_probe_read_kernel(&ev->data[o], len, c->raw[p]);
		ev->raw_len[j] = len;
		off = o + len;
	}
	if (r->at_exit)
		flags |= SA_PEV_AT_EXIT;
	ev->flags = flags;
	__u64 size = offsetof(struct policy_event, data) + (off & (SA_EVENT_DATA - 1));
	sa_header(&ev->hdr, r->op, size);
	sa_submit(ev, size, sel->flags & SA_SEL_USER_SPACE);
}

/* The actions of the hook whose selector `sel` matched this call. */
static __always_inline void sa_act(struct sa_run *r, const struct sa_selector *sel)
{
	__u32 hook_id = sel->hook_id;
	struct sa_hook_stats *st = bpf_map_lookup_elem(&sa_hook_stats, &hook_id);
	__u32 actions = sel->actions;
	__u32 sig = actions & SA_ACT_SIGNAL ? sel->signal : SA_SIGKILL;
	bool enforce = sel->flags & SA_SEL_ENFORCE;
	__u8 flags = 0;
	if (!st)
		return;

	if (sel->flags & SA_SEL_USER_SPACE) {
		struct sa_deny_key dk = { .hook_id = hook_id, .selector = sel->index, .tgid = r->tgid };
		__u32 *deny = bpf_map_lookup_elem(&sa_deny, &dk);
		if (deny) {
			actions |= *deny;
			if (*deny & SA_ACT_SIGNAL)
				sig = sel->signal;
			flags |= SA_PEV_DENY_SET;
		}
	}
	__sync_fetch_and_add(&st->matched, 1);
	sa_set_bits(r->c->fired, r->bit - 1 - sel->index, sel->hook_end);

	if (actions & SA_ACT_OVERRIDE) {
		if (!enforce) {
			flags |= SA_PEV_MONITOR;
		} else {
			if (r->verdict == 0)
				r->verdict = sel->error < 0 ? sel->error : -1;
			flags |= SA_PEV_ENFORCED;
			__sync_fetch_and_add(&st->enforced, 1);
		}
	}
	if (SA_TASK_HELPERS && (actions & (SA_ACT_SIGKILL | SA_ACT_SIGNAL))) {
		if (!enforce) {
			flags |= SA_PEV_MONITOR;
		} else if (!sa_may_signal(r->tgid)) {
			flags |= SA_PEV_SAFETY_REFUSED;
		} else if (bpf_send_signal(sig) == 0) {
			flags |= SA_PEV_ENFORCED;
			__sync_fetch_and_add(&st->enforced, 1);
		}
	}

	if (!(actions & SA_ACT_POST))
		return;
	if (sel->rate_limit_ns) {
		struct sa_rate_key rk = { .hook_id = hook_id, .selector = sel->index, .tgid = r->tgid };
		__u64 now = bpf_ktime_get_boot_ns();
		__u64 *last = bpf_map_lookup_elem(&sa_rate, &rk);
		if (last && now - *last < sel->rate_limit_ns) {
			__sync_fetch_and_add(&st->rate_limited, 1);
			return;
		}
		bpf_map_update_elem(&sa_rate, &rk, &now, BPF_ANY);
	}
	sa_post(r, sel, hook_id, actions, flags);
	__sync_fetch_and_add(&st->posted, 1);
}
