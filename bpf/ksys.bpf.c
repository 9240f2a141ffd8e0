// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Override on a syscall (`kprobes:` with syscall: true and a selector with Override, on a kernel with
 * CONFIG_BPF_KPROBE_OVERRIDE): a kprobe on the syscall's function (__x64_sys_NAME, error-injectable by
 * definition), whose one argument is the caller's saved registers. The syscall's arguments are user-space
 * values, read as the syscall tracepoints read them (strings from the process's memory, not resolved paths:
 * Tetragon's syscall kprobes read the same). bpf_override_return makes the syscall return argError unrun. */
#define SA_FAMILY SA_FAMILY_USER
#include "policy.h"
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("kprobe")
int sa_policy_ksys_override(struct pt_regs *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)PT_REGS_PARM1(ctx);
	struct sa_source src = { .raw = { PT_REGS_PARM1_CORE_SYSCALL(regs), PT_REGS_PARM2_CORE_SYSCALL(regs), PT_REGS_PARM3_CORE_SYSCALL(regs),
		PT_REGS_PARM4_CORE_SYSCALL(regs), PT_REGS_PARM5_CORE_SYSCALL(regs) } };
	__s32 verdict = sa_policy_run(bpf_get_attach_cookie(ctx), SA_OP_KPROBE, &src, NULL);
	if (verdict)
		bpf_override_return(ctx, (__u64)(__s64)verdict);
	return 0;
}
