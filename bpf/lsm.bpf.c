// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* BPF LSM hooks for tracing policies (`lsmhooks:`), on kernels with CONFIG_BPF_LSM and "bpf" in lsm=.
 * Returning the policy's errno from the hook denies the operation (Override) in the kernel. Each supported
 * hook has SA_LSM_SLOTS program copies; sa_lsm_slots[hook * SA_LSM_SLOTS + slot] holds the policy hook id. */
#include "policy.h"
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SA_LSM_SLOTS 4
#define SA_NO_HOOK 0xffffffff

enum sa_lsm_hook { SA_LSM_FILE_OPEN = 0, SA_LSM_BPRM_CHECK = 1, SA_LSM_SOCKET_CONNECT = 2, SA_LSM_FILE_PERMISSION = 3, SA_LSM_HOOKS = 4 };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SA_LSM_HOOKS * SA_LSM_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} sa_lsm_slots SEC(".maps");

static __always_inline int sa_lsm(__u32 hook, __u32 slot, __u64 a0, __u64 a1, __u64 a2)
{
	__u32 key = hook * SA_LSM_SLOTS + slot;
	__u32 *hid = bpf_map_lookup_elem(&sa_lsm_slots, &key);
	struct sa_hook_ctx x;
	if (!hid || *hid == SA_NO_HOOK || !sa_begin(&x, *hid))
		return 0;
	/* The hook's arguments are typed kernel pointers; a copy through probe_read makes them plain numbers
	 * the shared argument reader may mask and compare (the verifier forbids that on typed pointers). */
	__u64 typed[SA_MAX_ARGS] = { a0, a1, a2, 0, 0 }, raw[SA_MAX_ARGS];
	bpf_probe_read_kernel(raw, sizeof(raw), typed);
	sa_read_fn_args(&x, raw);
	return sa_decide(&x, SA_OP_LSM);
}

#define SA_LSM_SLOT(n) \
	SEC("lsm/file_open") int BPF_PROG(sa_lsm_file_open_##n, struct file *file, int ret) \
	{ return ret ? ret : sa_lsm(SA_LSM_FILE_OPEN, n, (__u64)file, 0, 0); } \
	SEC("lsm/bprm_check_security") int BPF_PROG(sa_lsm_bprm_check_security_##n, struct linux_binprm *bprm, int ret) \
	{ return ret ? ret : sa_lsm(SA_LSM_BPRM_CHECK, n, (__u64)bprm, 0, 0); } \
	SEC("lsm/socket_connect") int BPF_PROG(sa_lsm_socket_connect_##n, struct socket *sock, struct sockaddr *address, int addrlen, int ret) \
	{ return ret ? ret : sa_lsm(SA_LSM_SOCKET_CONNECT, n, (__u64)sock, (__u64)address, (__u64)addrlen); } \
	SEC("lsm/file_permission") int BPF_PROG(sa_lsm_file_permission_##n, struct file *file, int mask, int ret) \
	{ return ret ? ret : sa_lsm(SA_LSM_FILE_PERMISSION, n, (__u64)file, (__u64)mask, 0); }
SA_LSM_SLOT(0)
SA_LSM_SLOT(1)
SA_LSM_SLOT(2)
SA_LSM_SLOT(3)
