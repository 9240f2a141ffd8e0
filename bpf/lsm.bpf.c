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
	struct sa_source src = { .ctx = ctx }; /* zeroed: a stale file or ret would be read as this call's */
	bpf_probe_read_kernel(src.raw, sizeof(src.raw), typed);
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

/* imaHash (Tetragon's Post imaHash on bprm_check_security): the events the hook above held for it (SA_ACT_IMA_HASH)
 * get the executed file's IMA hash, which only a sleepable program may compute (bpf_ima_file_hash, Linux 5.18). It is
 * attached after the hook's program, which left its verdict with the events (a nonzero return would skip this one),
 * and returns that verdict. */
SEC("lsm.s/bprm_check_security")
int BPF_PROG(sa_lsm_ima_bprm_check_security, struct linux_binprm *bprm, int ret)
{
	__u32 ap = SA_AP_LSM_BPRM_CHECK_SECURITY;
	__u64 id = bpf_get_current_pid_tgid();
	struct sa_ret_state st;
	if (!sa_held_take(id, ap, &st))
		return ret;
	for (__u32 i = 0; i < SA_RET_MAX; i++) {
		if (i >= st.n)
			break;
		struct sa_ret_key k = { .id = id, .n = i, .ap = ap };
		const struct sa_selector *sel = NULL;
		struct policy_event *ev = sa_held_event(&k, &st, i, &sel);
		if (!ev)
			continue;
		__u32 hook_id = sel ? sel->hook_id : 0;
		struct sa_hook_stats *hs = bpf_map_lookup_elem(&sa_hook_stats, &hook_id);
		__u64 size = ev->hdr.size;
		__u64 off = size - offsetof(struct policy_event, data);
		if (!sel || !hs || size < offsetof(struct policy_event, data) || off > SA_EVENT_DATA - SA_IMA_HASH_MAX) {
			bpf_map_delete_elem(&sa_ret_events, &k);
			continue;
		}
		asm volatile("" : "+r"(off)); /* the bound above is what the verifier sees, not size's */
		/* The algorithm (enum hash_algo) or a negative errno in ret, the digest after the data. */
		ev->ret = bpf_ima_file_hash(bprm->file, &ev->data[off], SA_IMA_HASH_MAX);
		size = offsetof(struct policy_event, data) + off + SA_IMA_HASH_MAX;
		ev->hdr.size = size;
		sa_submit(ev, size, sel->flags & SA_SEL_USER_SPACE);
		__sync_fetch_and_add(&hs->posted, 1);
		bpf_map_delete_elem(&sa_ret_events, &k);
	}
	return ret ? ret : st.verdict;
}
