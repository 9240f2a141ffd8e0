// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Tracepoint hooks for tracing policies: one program, attached once per tracepoint that has policy hooks,
 * with the attach point's id as bpf_cookie. This object also creates the policy maps the other families
 * share. */
#define SA_FAMILY SA_FAMILY_TRACEPOINT
#include "policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* After flipping an attach point to a new generation the agent updates this map-in-map: the kernel then
 * waits for every program already running (synchronize_rcu), so the old generation can be deleted. */
struct sa_rcu_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} sa_rcu_inner SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct sa_rcu_inner);
} sa_rcu_barrier SEC(".maps") = {
	.values = { [0] = &sa_rcu_inner },
};

SEC("tracepoint")
int sa_policy_tp(void *ctx)
{
	struct sa_source src;
	void *ctxp = ctx;
	src.ctx = ctx;
	/* The record is read through its address as a plain number: the verifier forbids variable
	 * offsets from the context pointer itself. */
	bpf_probe_read_kernel(&src.record, sizeof(src.record), &ctxp);
	sa_policy_run(bpf_get_attach_cookie(ctx), SA_OP_TRACEPOINT, &src, NULL);
	return 0;
}

/* The exit of a syscall whose enter armed an exit check (open*, creat, exec*): the hooks of the enter's attach
 * point (the bpf_cookie) run again, their path arguments now the path of the object the kernel opened or
 * executed; hooks that matched at enter are skipped. A Sigkill here lands before the return to user space. */
SEC("tracepoint")
int sa_policy_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sa_pending *pend = bpf_map_lookup_elem(&sa_pending, &id);
	if (!pend)
		return 0;
	__u32 ap = bpf_get_attach_cookie(ctx);
	long ret = ctx->ret;
	struct sa_call *c = sa_call_state();
	if (!c || pend->ap != ap) {
		bpf_map_delete_elem(&sa_pending, &id);
		return 0;
	}
	__u8 flags = pend->flags;
	__u32 gen = pend->gen;
	__builtin_memcpy(c->skip, pend->fired, sizeof(c->skip));
	__builtin_memcpy(c->proc_live, pend->proc_live, sizeof(c->proc_live));
	__builtin_memcpy(c->exit_record, pend->record, sizeof(c->exit_record));
	__u32 slot = pend->slot & (SA_POINT_ARGS - 1);
	c->raw_len[slot] = pend->raw_len;
	bpf_probe_read_kernel(c->raw[slot], SA_STR_MAX, pend->raw);
	bpf_map_delete_elem(&sa_pending, &id);

	struct file *f = NULL;
	if (flags & SA_POINT_EXIT_FD && ret >= 0)
		f = sa_fd_file(ret);
	else if (flags & SA_POINT_EXIT_EXE && ret == 0)
		f = BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), mm, exe_file);
	if (!f)
		return 0;
	__u32 *active = bpf_map_lookup_elem(&sa_active, &ap);
	if (!active || *active != gen)
		return 0; /* the policies changed in between: the saved selector bits mean other selectors now */

	struct sa_source src = { .file = (__u64)f, .ret = ret, .ctx = ctx };
	void *rec = c->exit_record;
	bpf_probe_read_kernel(&src.record, sizeof(src.record), &rec);
	sa_policy_run(ap, SA_OP_TRACEPOINT, &src, c->skip);
	return 0;
}

/* The exit of a syscall with return probes (attached only to such points): the events its enter kept for the
 * return hooks that matched there are posted with the return value when their return filters pass, after the
 * return actions (a Sigkill here lands before the return to user space). */
SEC("tracepoint")
int sa_policy_ret_tp(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sa_ret_state *rs = bpf_map_lookup_elem(&sa_ret_pending, &id);
	if (!rs)
		return 0;
	__u32 ap = bpf_get_attach_cookie(ctx);
	struct sa_ret_state st = *rs;
	bpf_map_delete_elem(&sa_ret_pending, &id);
	if (st.ap != ap)
		return 0; /* left by a call that did not return (its thread's next syscall is another) */
	long ret = ctx->ret;
	for (__u32 i = 0; i < SA_RET_MAX; i++) {
		if (i >= st.n)
			break;
		struct sa_ret_key k = { .id = id, .n = i };
		struct policy_event *ev = bpf_map_lookup_elem(&sa_ret_events, &k);
		struct sa_selector_key sk = { .ap = ap, .gen = st.gen, .bit = st.bits[i] };
		const struct sa_selector *sel = bpf_map_lookup_elem(&sa_selectors, &sk);
		if (ev && sel)
			sa_return(sel, ev, ret, id >> 32);
		bpf_map_delete_elem(&sa_ret_events, &k);
	}
	return 0;
}
