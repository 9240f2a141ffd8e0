/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What happens when a hook's selector matched: the deny set user space feeds, enforcement (a signal, or the
 * errno an LSM or cgroup hook returns; reported but not done in monitor mode, never done to pid 1, kernel
 * threads or the agent), the rate limit, and the event. */
#pragma once
#include "selectors.h"
#include "maxdata.h"

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

/* TrackSock / UntrackSock: the sock at `sk` is (no longer) the process's. */
static __always_inline void sa_track_sock(__u64 sk, bool track, __u32 tgid, __u32 tid)
{
	if (!sk)
		return;
	/* Added and removed entries are counted: the agent's evictions (the LRU forgetting the oldest at the map's
	 * capacity) are those added, less those removed and those still there. */
	__u32 stat = track ? SA_SOCKTRACK_ADDED : SA_SOCKTRACK_REMOVED;
	if (!track) {
		if (bpf_map_delete_elem(&sa_socktrack, &sk) != 0)
			return;
	} else {
		struct sa_sock_owner owner = { .tgid = tgid, .tid = tid };
		if (bpf_map_update_elem(&sa_socktrack, &sk, &owner, BPF_NOEXIST) != 0) {
			bpf_map_update_elem(&sa_socktrack, &sk, &owner, BPF_ANY); /* tracked already: a new owner */
			return;
		}
	}
	__u64 *n = bpf_map_lookup_elem(&sa_socktrack_stats, &stat);
	if (n)
		*n += 1;
}

/* NotifyEnforcer at a hook that is not one of the enforced calls: the thread's next call among them is enforced by
 * the enforcer program. One notification per thread: a newer one replaces an unconsumed one (counted). */
static __always_inline void sa_enf_notify_write(const struct sa_selector *sel, __u32 tgid, __u32 tid)
{
	__u64 id = ((__u64)tgid << 32) | tid;
	struct sa_enf_note note = { .policy_id = sel->policy_id, .hook_id = sel->hook_id, .signal = sel->signal, .error = sel->error };
	struct sa_enf_note *old = bpf_map_lookup_elem(&sa_enf_notify, &id);
	if (old) {
		sa_count_lost(SA_LOST_ENF_REPLACED);
		*old = note;
	} else if (bpf_map_update_elem(&sa_enf_notify, &id, &note, BPF_ANY) != 0) {
		sa_count_lost(SA_LOST_ENF_FULL);
	}
}

/* CleanupEnforcerNotification: the thread's notification of this policy, if any, is dropped unconsumed. */
static __always_inline void sa_enf_cleanup(__u32 policy_id, __u32 tgid, __u32 tid)
{
	__u64 id = ((__u64)tgid << 32) | tid;
	struct sa_enf_note *note = bpf_map_lookup_elem(&sa_enf_notify, &id);
	if (note && note->policy_id == policy_id)
		bpf_map_delete_elem(&sa_enf_notify, &id);
}

/* Builds the hook's record in the call state's event; returns its size. */
/* A global function (apart from the selector's: the two frames are not on the stack at once with maxData's). */
SA_GLOBAL_FN int sa_fill(struct sa_act_run *r, struct sa_call *c, const struct sa_selector *sel, __u32 actions,
				      __u32 flags)
{
	if (!r || !c || !sel)
		return 0;
	__u32 hook_id = sel->hook_id;
	struct policy_event *ev = &c->ev;
	/* A sock argument TrackSock follows: the event is its owner's (Tetragon's socket tracking). */
	bool owned = c->sock_owner.tgid != 0;
	ev->pid = owned ? c->sock_owner.tgid : r->tgid;
	ev->tid = owned ? c->sock_owner.tid : r->tid;
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
	/* Then the host's path of the file argument, where the process's root is another (sa_host_view). */
	ev->host_len = 0;
	ev->host_arg = 0;
	ev->pad1 = 0;
	__u32 hlen = c->host_len & (SA_STR_MAX - 1);
	for (int j = 0; j < SA_MAX_ARGS && hlen; j++) {
		__u32 o = off;
		if (j >= sel->nargs || (sel->args[j] & (SA_POINT_ARGS - 1)) != c->host_slot || o > SA_EVENT_DATA - SA_STR_MAX)
			continue;
		bpf_probe_read_kernel(&ev->data[o], hlen, c->host);
		ev->host_len = hlen;
		ev->host_arg = j;
		off = o + hlen;
		break;
	}
	/* Then the stacks the Post asked for, at fixed places at the end of data: one branch for both (the verifier walks
	 * this callback once per caller state), and none of the two helper calls for an event without stacks. */
	__u32 kl = c->kstack_len & (SA_EXTRAS_STACK_SLOT - 1) & -((actions / SA_ACT_KERNEL_STACK) & 1);
	__u32 ul = c->ustack_len & (SA_EXTRAS_STACK_SLOT - 1) & -((actions / SA_ACT_USER_STACK) & 1);
	ev->kstack_len = kl;
	ev->ustack_len = ul;
	if (kl | ul) {
		bpf_probe_read_kernel(&ev->data[SA_EXTRAS_KSTACK_AT], kl, c->kstack);
		bpf_probe_read_kernel(&ev->data[SA_EXTRAS_USTACK_AT], ul, c->ustack);
		off = SA_EXTRAS_USTACK_AT + ul;
	}
	if (r->at_exit)
		flags |= SA_PEV_AT_EXIT;
	ev->flags = flags;
	ev->ret = 0;
	ev->ret_actions = 0;
	__u64 size = offsetof(struct policy_event, data) + (off & (SA_EVENT_DATA - 1));
	sa_header(&ev->hdr, r->op, size);
	return size;
}

static __always_inline void sa_post(struct sa_act_run *r, struct sa_call *c, const struct sa_selector *sel, __u32 hook_id,
				   __u32 actions, __u8 flags)
{
	__u64 size = sa_fill(r, c, sel, actions, flags);
	if (size > sizeof(c->ev))
		return;
	sa_submit(&c->ev, size, sel->flags & SA_SEL_USER_SPACE);
}

/* matchReturnArgs: every entry passes (Equal / NotEqual: any of its values). */
static __always_inline bool sa_match_return(const struct sa_selector *sel, __s64 ret)
{
	for (int i = 0; i < SA_RET_CMPS; i++) {
		if (i >= sel->ret_ncmps)
			break;
		const struct sa_ret_cmp *c = &sel->ret_cmps[i];
		__s64 v = c->values[0];
		bool any = false;
		switch (c->cmp) {
		case SA_CMP_IN:
		case SA_CMP_NOT_IN:
			for (int j = 0; j < SA_RET_VALUES; j++)
				if (j < c->nvalues && c->values[j] == ret)
					any = true;
			if (any != (c->cmp == SA_CMP_IN))
				return false;
			break;
		case SA_CMP_GREATER_THAN:
			if (c->is_signed ? !(ret > v) : !((__u64)ret > (__u64)v))
				return false;
			break;
		case SA_CMP_LESS_THAN:
			if (c->is_signed ? !(ret < v) : !((__u64)ret < (__u64)v))
				return false;
			break;
		case SA_CMP_MASK:
			if (!((__u64)ret & (__u64)v))
				return false;
			break;
		default:
			return false;
		}
	}
	return true;
}

/* A return hook's event at the syscall's exit: the return filters, then the return actions (a signal lands
 * before the return to user space), then the event built at enter goes out with the return value. */
static __always_inline void sa_return(const struct sa_selector *sel, struct policy_event *ev, __s64 ret, __u32 tgid)
{
	__u32 hook_id = sel->hook_id;
	struct sa_hook_stats *st = bpf_map_lookup_elem(&sa_hook_stats, &hook_id);
	__u32 actions = sel->ret_actions;
#if SA_FAMILY == SA_FAMILY_FUNCTION
	/* returnArgAction, before the return filters (as Tetragon does it while reading the return value). */
	if (actions & (SA_ACT_TRACK_SOCK | SA_ACT_UNTRACK_SOCK))
		sa_track_sock(ret, actions & SA_ACT_TRACK_SOCK, ev->pid, ev->tid);
#endif
	if (!st || !sa_match_return(sel, ret))
		return;
	if (actions & SA_ACT_ENF_CLEANUP)
		sa_enf_cleanup(sel->policy_id, ev->pid, ev->tid);
	__u8 flags = ev->flags | SA_PEV_RETURN;
	if (SA_TASK_HELPERS && (actions & (SA_ACT_SIGKILL | SA_ACT_SIGNAL))) {
		if (!(sel->flags & SA_SEL_ENFORCE)) {
			flags |= SA_PEV_MONITOR;
		} else if (!sa_may_signal(tgid)) {
			flags |= SA_PEV_SAFETY_REFUSED;
		} else if (bpf_send_signal(actions & SA_ACT_SIGNAL ? sel->ret_signal : SA_SIGKILL) == 0) {
			flags |= SA_PEV_RETURN_ENFORCED;
			__sync_fetch_and_add(&st->enforced, 1);
		}
	}
	if (!(actions & SA_ACT_POST))
		return;
	ev->ret = ret;
	ev->ret_actions = actions;
	ev->flags = flags;
	__u64 size = ev->hdr.size;
	if (size < offsetof(struct policy_event, data) || size > sizeof(*ev))
		return;
#if SA_FAMILY == SA_FAMILY_FUNCTION
	if (sel->ret_sock) {
		/* returnArg sock: the returned sock, after the event's data. */
		__u64 off = size - offsetof(struct policy_event, data);
		if (off > SA_EVENT_DATA - sizeof(struct sa_sock_info))
			return;
		asm volatile("" : "+r"(off)); /* the bound above is what the verifier sees, not size's */
		sa_read_sock(&ev->data[off], (struct sock *)ret);
		size = offsetof(struct policy_event, data) + off + sizeof(struct sa_sock_info);
		ev->hdr.size = size;
	}
#endif
	if (sel->ret_copy) {
		/* returnCopy: the buffer holds what the call returned, its length (the compiler keeps it the hook's
		 * only data, so it goes first). */
		__u32 j = (sel->ret_copy - 1) & 7;
		if (j >= SA_MAX_ARGS)
			return;
		__u32 n = ret > 0 ? (ret < SA_STR_MAX - 1 ? ret : SA_STR_MAX - 1) : 0;
		if (bpf_probe_read_user(ev->data, n & (SA_STR_MAX - 1), (void *)ev->ints[j]) != 0)
			n = 0;
		if (ret > (__s64)n)
			ev->flags |= SA_PEV_STR_TRUNCATED;
		ev->str_len[j] = n;
		ev->ints[j] = ret > 0 ? ret : 0;
		ev->kstack_len = 0;
		ev->ustack_len = 0;
		size = offsetof(struct policy_event, data) + (n & (SA_STR_MAX - 1));
		ev->hdr.size = size;
	}
	sa_submit(ev, size, sel->flags & SA_SEL_USER_SPACE);
	__sync_fetch_and_add(&st->posted, 1);
}

#ifdef SA_USDT
/* Where a USDT probe's arguments are in memory (uprobe.bpf.c: from libbpf's reading of the note). */
static __always_inline void sa_usdt_locations(void *ctx, __u64 *wloc);

/* usdt Set: writes argValue into the probed process (current) at the argument's memory operand, exactly the
 * note's size of it. Nothing is written when the note does not place that argument in memory at this site or
 * gives it another size than the policy was compiled against. */
static __always_inline long sa_usdt_write(const __u64 *wloc, const struct sa_selector *sel)
{
	__u32 j = (sel->set_arg - 1) & 7;
	if (!sel->set_arg || j >= SA_MAX_FN_ARGS)
		return -1;
	__u64 loc = wloc[j];
	void *addr = (void *)(loc & ((1ULL << 56) - 1));
	__u64 v = sel->set_value;
	if (!loc || (loc >> 56) != sel->set_size)
		return -1;
	switch (sel->set_size) {
	case 1: return bpf_probe_write_user(addr, &v, 1);
	case 2: return bpf_probe_write_user(addr, &v, 2);
	case 4: return bpf_probe_write_user(addr, &v, 4);
	case 8: return bpf_probe_write_user(addr, &v, 8);
	}
	return -1;
}
#endif

/* The actions of the hook whose selector `sel` matched this call. */
static __always_inline void sa_act(struct sa_act_run *r, struct sa_call *c, const struct sa_selector *sel)
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
		struct sa_deny_key *dk = &c->deny_key;
		dk->hook_id = hook_id;
		dk->selector = sel->index;
		dk->tgid = r->tgid;
		__u32 *deny = bpf_map_lookup_elem(&sa_deny, dk);
		if (deny) {
			actions |= *deny;
			if (*deny & SA_ACT_SIGNAL)
				sig = sel->signal;
			flags |= SA_PEV_DENY_SET;
		}
	}
	__sync_fetch_and_add(&st->matched, 1);
	sa_set_bits(c->fired, r->bit - 1 - sel->index, sel->hook_end);

	if (actions & SA_ACT_OVERRIDE) {
		if (!enforce) {
			flags |= SA_PEV_MONITOR;
		} else {
			if (r->verdict == 0)
#ifdef SA_OVERRIDE_ANY_VALUE
				/* A kernel function returns argError as given, positive too (Tetragon's overlayfs CVE policy
				 * returns 1 from security_inode_copy_up_xattr to skip the copy without failing it). */
				r->verdict = sel->error ? sel->error : -1;
#else
				r->verdict = sel->error < 0 ? sel->error : -1;
#endif
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

	if (actions & SA_ACT_NOTIFY_NEXT) {
		if (!enforce)
			flags |= SA_PEV_MONITOR; /* as Tetragon: a monitor-mode policy notifies no enforcer */
		else
			sa_enf_notify_write(sel, r->tgid, r->tid);
	}
	if (actions & SA_ACT_ENF_CLEANUP)
		sa_enf_cleanup(sel->policy_id, r->tgid, r->tid); /* in monitor mode too, as Tetragon */

#ifdef SA_USDT
	if (actions & SA_ACT_SET) {
		if (!enforce)
			flags |= SA_PEV_MONITOR;
		else if (!sa_may_signal(r->tgid))
			flags |= SA_PEV_SAFETY_REFUSED; /* the agent's safety rules: no writes into pid 1 or the agent */
		else if (r->op == SA_OP_USDT && sa_usdt_write(r->wloc, sel) == 0) {
			flags |= SA_PEV_ENFORCED;
			__sync_fetch_and_add(&st->enforced, 1);
		}
	}
#endif

#if SA_FAMILY != SA_FAMILY_TRACEPOINT /* a tracepoint record has no sock */
	if (actions & (SA_ACT_TRACK_SOCK | SA_ACT_UNTRACK_SOCK))
		sa_track_sock(((struct sa_sock_info *)c->str[sel->sock_slot & (SA_POINT_ARGS - 1)])->cookie,
			      actions & SA_ACT_TRACK_SOCK, r->tgid, r->tid);
#endif

	if (!(actions & SA_ACT_POST))
		return;
	if (sel->rate_limit_ns) {
		struct sa_rate_key *rk = &c->rate_key;
		rk->hook_id = hook_id;
		rk->selector = sel->index;
		rk->tgid = r->tgid;
		rk->pad = 0;
		c->now = bpf_ktime_get_boot_ns();
		__u64 *last = bpf_map_lookup_elem(&sa_rate, rk);
		if (last && c->now - *last < sel->rate_limit_ns) {
			__sync_fetch_and_add(&st->rate_limited, 1);
			return;
		}
		bpf_map_update_elem(&sa_rate, rk, &c->now, BPF_ANY);
	}
	if (actions & SA_ACT_MAX_DATA)
		sa_send_data(r, c, sel);
	if (sel->ret_hook) {
		/* A return probe: the event, with the arguments as the enter saw them, waits for the return value. */
		sa_fill(r, c, sel, actions, flags);
#if SA_FAMILY == SA_FAMILY_TRACEPOINT
		if (r->at_exit) {
			/* Matched at the syscall's exit (on the object it looked up): the return value is known. */
			sa_return(sel, &c->ev, r->ret, r->tgid);
			return;
		}
#endif
		if (r->nret < SA_RET_MAX) {
			struct sa_ret_key *k = &c->held_key;
			k->id = ((__u64)r->tgid << 32) | r->tid;
			k->n = r->nret;
			k->ap = r->ap;
			long err = bpf_map_update_elem(&sa_ret_events, k, &c->ev, BPF_NOEXIST);
			if (err == -17 /* EEXIST */) {
				/* Left by a call of this thread that did not return here: lost, replaced. */
				sa_count_lost(SA_LOST_RET_EVENT);
				err = bpf_map_update_elem(&sa_ret_events, k, &c->ev, BPF_ANY);
			}
			if (err == 0)
				r->ret_bits[r->nret++ & (SA_RET_MAX - 1)] = r->bit - 1;
			else
				sa_count_lost(SA_LOST_RET_EVENT);
		} else {
			sa_count_lost(SA_LOST_RET_EVENT);
		}
		return;
	}
	sa_post(r, c, sel, hook_id, actions, flags);
	__sync_fetch_and_add(&st->posted, 1);
}

