// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* User-space hooks for tracing policies: uprobes on a binary's functions (`uprobes:`) and USDT probes
 * (`usdts:`). One program per kind, attached once per probe site with the attach point's id as cookie.
 * Arguments are user-space values: strings and sockaddrs are read from the process's memory. */
#define SA_FAMILY SA_FAMILY_USER
#include "policy.h"
#include <bpf/bpf_tracing.h>
#include "usdt_run.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* A uprobe at a function's entry: its arguments are in the registers of the x86-64 calling convention. */
SEC("uprobe")
int sa_policy_uprobe(struct pt_regs *ctx)
{
	struct sa_source src = { .raw = { PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM3(ctx), PT_REGS_PARM4(ctx), PT_REGS_PARM5(ctx) }, .ctx = ctx };
	sa_policy_run(bpf_get_attach_cookie(ctx), SA_OP_UPROBE, &src, NULL);
	return 0;
}

/* A USDT probe (usdt_run.h). */
SEC("usdt")
int sa_policy_usdt(struct pt_regs *ctx)
{
	return sa_usdt_run(ctx);
}
