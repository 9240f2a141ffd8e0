// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* kprobes on kernel functions for tracing policies (`kprobes:` without syscall: true), on kernels with
 * CONFIG_KPROBES: one program, attached once per function with the attach point's id as bpf_cookie. */
#define SA_FAMILY SA_FAMILY_FUNCTION
#include "policy.h"
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("kprobe")
int sa_policy_kprobe(struct pt_regs *ctx)
{
	struct sa_source src = { .raw = { PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM3(ctx), PT_REGS_PARM4(ctx), PT_REGS_PARM5(ctx) }, .ctx = ctx };
	sa_policy_run(bpf_get_attach_cookie(ctx), SA_OP_KPROBE, &src, NULL);
	return 0;
}
