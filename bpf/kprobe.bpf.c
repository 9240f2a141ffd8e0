// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* kprobes on kernel functions for tracing policies (`kprobes:` without syscall: true), on kernels with
 * CONFIG_KPROBES. Attached once per hook with the hook id as bpf_cookie; arguments from the registers. */
#include "policy.h"
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline int sa_kprobe(struct pt_regs *ctx)
{
	struct sa_hook_ctx x;
	if (!sa_begin(&x, bpf_get_attach_cookie(ctx)))
		return 0;
	__u64 raw[SA_MAX_ARGS] = { PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM3(ctx), PT_REGS_PARM4(ctx), PT_REGS_PARM5(ctx) };
	sa_read_fn_args(&x, raw);
	sa_decide(&x, SA_OP_KPROBE);
	return 0;
}

#define SA_KPROBE_SLOT(n) SEC("kprobe") int sa_policy_kprobe##n(struct pt_regs *ctx) { return sa_kprobe(ctx); }
SA_KPROBE_SLOT(0)
SA_KPROBE_SLOT(1)
SA_KPROBE_SLOT(2)
SA_KPROBE_SLOT(3)
SA_KPROBE_SLOT(4)
SA_KPROBE_SLOT(5)
SA_KPROBE_SLOT(6)
SA_KPROBE_SLOT(7)
