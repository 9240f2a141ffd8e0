/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A USDT probe: libbpf resolved the note's argument specs (register, memory, constant); bpf_usdt_arg reads each as
 * the note describes it. Shared by uprobe.bpf.c and usdtset.bpf.c (the same program, with usdt Set). */
#pragma once
#include <bpf/usdt.bpf.h>

static __always_inline int sa_usdt_run(struct pt_regs *ctx)
{
	struct sa_source src = { .ctx = ctx };
	for (int i = 0; i < SA_MAX_FN_ARGS; i++) {
		long v = 0;
		bpf_usdt_arg(ctx, i, &v);
		src.raw[i] = v;
	}
	sa_policy_run(bpf_usdt_cookie(ctx), SA_OP_USDT, &src, NULL);
	return 0;
}
