// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* USDT probes whose policy hooks Set an argument (matchActions Set): the USDT program of uprobe.bpf.c, plus the
 * write into the probed process's memory (bpf_probe_write_user). Its own object, loaded only for such probes:
 * kernels in lockdown refuse the helper, and the other user-space hooks must load there. */
#define SA_FAMILY SA_FAMILY_USER
#define SA_USDT 1
#include "policy.h"
#include <bpf/bpf_tracing.h>
#include "usdt_run.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The arguments that the probe's note places in memory ("-4@-20(%rbp)": libbpf's register-relative kind), for
 * Set: the register's value plus the offset, and the size. Registers and constants have no location. */
static __always_inline void sa_usdt_locations(void *ctx, __u64 *wloc)
{
	int id = __bpf_usdt_spec_id(ctx);
	struct __bpf_usdt_spec *spec = id < 0 ? NULL : bpf_map_lookup_elem(&__bpf_usdt_specs, &id);
	for (int i = 0; i < SA_MAX_FN_ARGS; i++) {
		wloc[i] = 0;
		if (!spec || i >= spec->arg_cnt)
			continue;
		const struct __bpf_usdt_arg_spec *a = &spec->args[i];
		unsigned long base;
		__u64 size = 8 - ((__u8)a->arg_bitshift >> 3);
		if (a->arg_type != BPF_USDT_ARG_REG_DEREF || (size != 1 && size != 2 && size != 4 && size != 8)
		    || bpf_probe_read_kernel(&base, sizeof(base), (void *)ctx + (a->reg_off & 0xfff)) != 0)
			continue;
		__u64 addr = base + a->val_off;
		if (addr >> 56)
			continue;
		wloc[i] = addr | size << 56;
	}
}

SEC("usdt")
int sa_policy_usdt_set(struct pt_regs *ctx)
{
	return sa_usdt_run(ctx);
}
