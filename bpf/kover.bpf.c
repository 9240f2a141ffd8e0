// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Override on a kprobe'd kernel function (`kprobes:` without syscall: true, a selector with Override): the same
 * policy path as kprobe.bpf.c, then bpf_override_return makes the function return the selector's argError
 * without running. A separate object because the helper exists only with CONFIG_BPF_KPROBE_OVERRIDE (a kernel
 * without it refuses the whole object), and the kernel attaches such a program only to functions on its
 * error-injection list (/sys/kernel/debug/error_injection/list). */
#define SA_FAMILY SA_FAMILY_FUNCTION
#define SA_OVERRIDE_ANY_VALUE 1 /* actions.h: argError as given */
#define SA_FN_SIZED_BUF 1 /* sizeArgIndex on char_buf arguments (args.h) */
#include "policy.h"
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("kprobe")
int sa_policy_kprobe_override(struct pt_regs *ctx)
{
	struct sa_source src = { .raw = { PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM3(ctx), PT_REGS_PARM4(ctx), PT_REGS_PARM5(ctx) } };
	__s32 verdict = sa_policy_run(bpf_get_attach_cookie(ctx), SA_OP_KPROBE, &src, NULL);
	if (verdict)
		bpf_override_return(ctx, (__u64)(__s64)verdict);
	return 0;
}
