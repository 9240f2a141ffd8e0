// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Tracepoint hooks for tracing policies: one program, attached once per tracepoint that has policy hooks,
 * with the attach point's id as bpf_cookie. This object also creates the policy maps the other families
 * share. */
#define SA_FAMILY SA_FAMILY_TRACEPOINT
#include "policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SA_EXIT_AT_EXEC (1ULL << 32)

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
	struct sa_call *c = sa_call_state();
	if (!c)
		return 0;
	src.ctx = ctx;
	/* Not a syscall's exit: no file opened yet. Left as stack garbage (the verifier lets a CAP_PERFMON program read
	 * uninitialized stack), a nonzero file had the arguments read as that "file"'s path ("/") and the exit check
	 * not armed: on 6.1 a relative openat of a watched file went unmatched now and then. */
	src.file = 0;
	src.ret = 0;
	/* The record is read through its address as a plain number: the verifier forbids variable offsets from the
	 * context pointer itself. A store to a map value and a load make it one (the agent loads with CAP_PERFMON,
	 * which lets a pointer be stored); a helper call to copy it cost more. */
	c->ctx_addr = (__u64)ctx;
	src.record = *(volatile __u64 *)&c->ctx_addr; /* volatile: the compiler would forward the pointer itself */
	sa_policy_run(bpf_get_attach_cookie(ctx), SA_OP_TRACEPOINT, &src, NULL);
	return 0;
}

/* The exit of a syscall whose enter armed an exit check (open*, creat, exec*): the hooks of the enter's attach
 * point (the bpf_cookie) run again, their path arguments now the path of the object the kernel opened or
 * executed; hooks that matched at enter are skipped. A Sigkill here lands before the return to user space.
 * Execs are checked at sched_process_exec instead (cookie: the point | SA_EXIT_AT_EXEC): sys_exit_execveat
 * does not fire after a successful execveat on some kernels; their sys_exit then only drops a failed call's
 * state. The return value is read through its address, not as a context field: this program also runs on
 * sched_process_exec's shorter record, whose attach would refuse a program reading past its end. */
SEC("tracepoint")
int sa_policy_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	struct sa_pending *pend = bpf_task_storage_get(&sa_pending, bpf_get_current_task_btf(), 0, 0);
	if (!pend || !pend->flags)
		return 0;
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 ap = (__u32)cookie;
	if (cookie & SA_EXIT_AT_EXEC && (pend->ap != ap || !(pend->flags & SA_POINT_EXIT_EXE)))
		return 0; /* another exec point's, or not an exec's */
	__u8 flags = pend->flags;
	pend->flags = 0;
	struct sa_call *c = sa_call_state();
	if (!c || pend->ap != ap)
		return 0;
	/* Nothing left to re-check: every hook the enter let through on the process matched there. */
	__u64 left = 0;
	for (int w = 0; w < SA_SEL_WORDS; w++)
		left |= pend->proc_live[w] & ~pend->fired[w];
	if (!left)
		return 0;
	/* Read into the call state: a stack slot more would pass the 6.1 verifier's 512 bytes over all frames. */
	c->exit_ret = 0;
	if (!(cookie & SA_EXIT_AT_EXEC))
		bpf_probe_read_kernel(&c->exit_ret, sizeof(c->exit_ret), &ctx->ret);
	long ret = c->exit_ret;
	struct file *f = NULL;
	if (flags & SA_POINT_EXIT_FD && ret >= 0)
		f = sa_fd_file(ret);
	else if (flags & SA_POINT_EXIT_EXE && ret == 0) /* at sched_process_exec: a failed exec never gets there */
		f = BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), mm, exe_file);
	if (!f)
		return 0;
	sa_exit_recheck(c, pend, f, SA_OP_TRACEPOINT, ctx);
	return 0;
}

/* The exit of an open at a point whose hooks all match at the exit alone (SA_POINT_EXIT_ONLY: they take no action that
 * must come before the call, so the point has no enter program): the hooks run once, on the file the call opened, or on
 * the name passed when it failed (policy.h, sa_policy_exit_only). */
SEC("tracepoint")
int sa_policy_xonly(struct trace_event_raw_sys_exit *ctx)
{
	sa_policy_exit_only(bpf_get_attach_cookie(ctx), ctx, SA_XONLY_HELPER_READS);
	return 0;
}

/* The same, its quick answer's reads of the opened file and its directories typed loads (bpf_rdonly_cast, 6.2 on): loaded
 * instead of sa_policy_xonly where the kernel takes it. */
SEC("tracepoint")
int sa_policy_xcast(struct trace_event_raw_sys_exit *ctx)
{
	sa_policy_exit_only(bpf_get_attach_cookie(ctx), ctx, SA_XONLY_TYPED_LOADS);
	return 0;
}

/* The exit of a syscall with return probes (attached only to such points, with the enter's attach point id). */
SEC("tracepoint")
int sa_policy_ret_tp(struct trace_event_raw_sys_exit *ctx)
{
	sa_policy_return(bpf_get_attach_cookie(ctx), ctx->ret);
	return 0;
}
