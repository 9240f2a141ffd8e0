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
	/* The record is read through its address as a plain number: the verifier forbids variable
	 * offsets from the context pointer itself. */
	bpf_probe_read_kernel(&src.record, sizeof(src.record), &ctxp);
	sa_policy_run(bpf_get_attach_cookie(ctx), SA_OP_TRACEPOINT, &src);
	return 0;
}
