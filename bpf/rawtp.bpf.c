// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Raw tracepoints for tracing policies (`tracepoints:` with `raw: true`): the arguments are the tracepoint
 * function's (TP_PROTO), kernel values, as for a kprobe. One program, attached once per tracepoint with the
 * attach point's id as bpf_cookie (raw tracepoint cookies need Linux 6.10). */
#define SA_FAMILY SA_FAMILY_FUNCTION
#include "policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("raw_tp")
int sa_policy_raw_tp(struct bpf_raw_tracepoint_args *ctx)
{
	struct sa_source src = { .ctx = ctx }; /* zeroed: a stale file or ret would be read as this call's */
	/* Copied through probe_read so the argument reader may treat them as plain numbers. */
	bpf_probe_read_kernel(src.raw, sizeof(src.raw), ctx->args);
	sa_policy_run(bpf_get_attach_cookie(ctx), SA_OP_RAW_TP, &src, NULL);
	return 0;
}
