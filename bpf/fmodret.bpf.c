// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Override on a security_ function (a `kprobes:` hook whose selector has Override, as Tetragon runs it there):
 * an fmod_ret program on the function, loaded once per function (a BPF trampoline is verified for one function),
 * with the attach point's id as cookie (Linux 6.0). It runs the same policy path as a kprobe; a nonzero return
 * (the selector's argError) makes the function return it without running. bpf_override_return cannot be used
 * there: security_ functions are not on the kernel's error-injection list. With return: true, an fexit program on
 * the same function (its own object, same cookie) feeds the return loop with the value the caller sees: argError
 * when the fmod_ret program overrode the call, the function's own result otherwise. */
#define SA_FAMILY SA_FAMILY_FUNCTION
#define SA_OVERRIDE_ANY_VALUE 1 /* actions.h: argError as given */
#include "policy.h"
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("fmod_ret")
int sa_policy_fmod_ret(unsigned long long *ctx)
{
	struct sa_source src = {};
	/* bpf_get_func_arg: the function's own arguments only (the verifier knows their number from BTF). */
	for (int i = 0; i < SA_MAX_FN_ARGS; i++)
		bpf_get_func_arg(ctx, i, &src.raw[i]);
	return sa_policy_run(bpf_get_attach_cookie(ctx), SA_OP_KPROBE, &src, NULL);
}

SEC("fexit")
int sa_policy_fexit(unsigned long long *ctx)
{
	__u64 ret = 0;
	bpf_get_func_ret(ctx, &ret);
	/* An int-returning function leaves the upper half of the register undefined. */
	sa_policy_return(bpf_get_attach_cookie(ctx), (__s64)(__s32)ret);
	return 0;
}
