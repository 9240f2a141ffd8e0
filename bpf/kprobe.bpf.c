// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* kprobes on kernel functions for tracing policies (`kprobes:` without syscall: true), on kernels with
 * CONFIG_KPROBES: one program, attached once per function with the attach point's id as bpf_cookie; and, for
 * functions with return probes (return: true), a kretprobe with the same cookie. */
#define SA_FAMILY SA_FAMILY_FUNCTION
#define SA_FN_SIZED_BUF 1 /* sizeArgIndex on char_buf arguments (args.h) */
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

SEC("kretprobe")
int sa_policy_kretprobe(struct pt_regs *ctx)
{
	sa_policy_return(bpf_get_attach_cookie(ctx), PT_REGS_RC(ctx));
	return 0;
}
