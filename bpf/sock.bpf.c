// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Connect hooks for tracing policies on kernels without BPF LSM: `lsmhooks: socket_connect` runs on
 * cgroup connect4/connect6 at the cgroup v2 root, so it sees every process and can deny in the kernel.
 * The pair is one attach point with a fixed id; the destination is presented to the selectors as a
 * sockaddr (argument slots of type sockaddr). */
#define SA_FAMILY SA_FAMILY_CGROUP /* no task helpers: no capabilities, namespace pids or signals here */
#include "policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The destination as a struct sockaddr (family, port in network order, address); v6 is a constant of each
 * program: connect4 may read only user_ip4, connect6 only user_ip6. */
static __always_inline void sa_dest(char *sa, struct bpf_sock_addr *ctx, const bool v6)
{
	__builtin_memset(sa, 0, SA_SOCKADDR_SIZE);
	*(__u16 *)sa = v6 ? SA_AF_INET6 : SA_AF_INET;
	*(__u16 *)(sa + 2) = (__u16)ctx->user_port;
	if (!v6) {
		*(__u32 *)(sa + 4) = ctx->user_ip4;
	} else {
		*(__u32 *)(sa + 8) = ctx->user_ip6[0];
		*(__u32 *)(sa + 12) = ctx->user_ip6[1];
		*(__u32 *)(sa + 16) = ctx->user_ip6[2];
		*(__u32 *)(sa + 20) = ctx->user_ip6[3];
	}
}

/* Returns 1 to allow the connect, 0 to deny it (EPERM, or the policy's errno via bpf_set_retval). */
static __always_inline int sa_connect(struct bpf_sock_addr *ctx, const bool v6)
{
	struct sa_source src = {}; /* zeroed: a stale file or ret would be read as this call's */
	sa_dest(src.dest, ctx, v6);
	__s32 verdict = sa_policy_run(SA_AP_CONNECT, SA_OP_SOCK, &src, NULL);
	if (verdict == 0)
		return 1;
	if (verdict != -1)
		bpf_set_retval(verdict);
	return 0;
}

SEC("cgroup/connect4")
int sa_connect4(struct bpf_sock_addr *ctx) { return sa_connect(ctx, false); }

SEC("cgroup/connect6")
int sa_connect6(struct bpf_sock_addr *ctx) { return sa_connect(ctx, true); }
