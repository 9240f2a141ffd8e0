// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* BPF LSM hooks for tracing policies (`lsmhooks:`), on kernels with CONFIG_BPF_LSM and "bpf" in lsm=.
 * Returning the policy's errno from the hook denies the operation (Override) in the kernel. One program per
 * supported hook, each serving one attach point with a fixed id. */
#define SA_FAMILY SA_FAMILY_FUNCTION
#include "policy.h"
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline int sa_lsm(void *ctx, __u32 ap, __u64 a0, __u64 a1, __u64 a2)
{
	/* The hook's arguments are typed kernel pointers; a copy through probe_read makes them plain numbers
	 * the argument reader may mask and compare (the verifier forbids that on typed pointers). */
	__u64 typed[SA_MAX_FN_ARGS] = { a0, a1, a2, 0, 0 };
	struct sa_source src;
	bpf_probe_read_kernel(src.raw, sizeof(src.raw), typed);
	src.ctx = ctx;
	return sa_policy_run(ap, SA_OP_LSM, &src, NULL);
}

SEC("lsm/file_open")
int BPF_PROG(sa_lsm_file_open, struct file *file, int ret)
{
	return ret ? ret : sa_lsm(ctx, SA_AP_LSM_FILE_OPEN, (__u64)file, 0, 0);
}

SEC("lsm/bprm_check_security")
int BPF_PROG(sa_lsm_bprm_check_security, struct linux_binprm *bprm, int ret)
{
	return ret ? ret : sa_lsm(ctx, SA_AP_LSM_BPRM_CHECK_SECURITY, (__u64)bprm, 0, 0);
}

SEC("lsm/socket_connect")
int BPF_PROG(sa_lsm_socket_connect, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	return ret ? ret : sa_lsm(ctx, SA_AP_LSM_SOCKET_CONNECT, (__u64)sock, (__u64)address, (__u64)addrlen);
}

SEC("lsm/file_permission")
int BPF_PROG(sa_lsm_file_permission, struct file *file, int mask, int ret)
{
	return ret ? ret : sa_lsm(ctx, SA_AP_LSM_FILE_PERMISSION, (__u64)file, (__u64)mask, 0);
}
