// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Connect hooks for tracing policies on kernels without BPF LSM: `lsmhooks: socket_connect` runs on
 * cgroup connect4/connect6 at the cgroup v2 root, so it sees every process and can deny in the kernel.
 * The destination is presented to the selectors as a sockaddr (argument slots of type sockaddr). */
#define SA_NO_TASK /* cgroup programs have no task helpers: no capabilities or namespace pids here */
#include "policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SA_SOCK_SLOTS 8
#define SA_NO_HOOK 0xffffffff

/* Program slot -> hook id (cgroup programs have no attach cookie). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SA_SOCK_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} sa_sock_slots SEC(".maps");

/* The destination as a struct sockaddr (family, port in network order, address). */
struct sa_dest {
	__u32 family;
	__u32 port;
	__u32 ip[4];
};

/* v6 is a constant of each program: connect4 may read only user_ip4, connect6 only user_ip6. */
static __always_inline void sa_read_dest(struct sa_dest *d, struct bpf_sock_addr *ctx, const bool v6)
{
	d->family = v6 ? 10 : 2;
	d->port = ctx->user_port;
	if (!v6) {
		d->ip[0] = ctx->user_ip4;
	} else {
		d->ip[0] = ctx->user_ip6[0];
		d->ip[1] = ctx->user_ip6[1];
		d->ip[2] = ctx->user_ip6[2];
		d->ip[3] = ctx->user_ip6[3];
	}
}

static __always_inline void sa_sockaddr(char *sa, const struct sa_dest *d)
{
	__builtin_memset(sa, 0, 28);
	*(__u16 *)sa = d->family;
	*(__u16 *)(sa + 2) = (__u16)d->port;
	if (d->family == 2)
		__builtin_memcpy(sa + 4, d->ip, 4);
	else if (d->family == 10)
		__builtin_memcpy(sa + 8, d->ip, 16);
}

/* Returns 1 to allow the connect, 0 to deny it (EPERM, or the policy's errno via bpf_set_retval). */
static __always_inline int sa_connect(struct bpf_sock_addr *ctx, __u32 slot, const bool v6)
{
	struct sa_dest dest = {};
	sa_read_dest(&dest, ctx, v6);
	__u32 *hid = bpf_map_lookup_elem(&sa_sock_slots, &slot);
	struct sa_hook_ctx x;
	if (!hid || *hid == SA_NO_HOOK || !sa_begin(&x, *hid))
		return 1;
	struct policy_event *ev = &x.s->ev;
	for (int i = 0; i < SA_MAX_ARGS; i++) {
		ev->ints[i] = 0;
		ev->str_len[i] = 0;
		if (i < x.h->nargs && sa_is_sockaddr(x.h->args[i].type)) {
			sa_sockaddr(ev->str[i], &dest);
			ev->str_len[i] = 28;
		}
	}
	__s32 verdict = sa_decide(&x, SA_OP_SOCK);
	if (verdict == 0)
		return 1;
	if (verdict != -1)
		bpf_set_retval(verdict);
	return 0;
}

#define SA_SOCK_SLOT(n) \
	SEC("cgroup/connect4") int sa_connect4_##n(struct bpf_sock_addr *ctx) { return sa_connect(ctx, n, false); } \
	SEC("cgroup/connect6") int sa_connect6_##n(struct bpf_sock_addr *ctx) { return sa_connect(ctx, n, true); }
SA_SOCK_SLOT(0)
SA_SOCK_SLOT(1)
SA_SOCK_SLOT(2)
SA_SOCK_SLOT(3)
SA_SOCK_SLOT(4)
SA_SOCK_SLOT(5)
SA_SOCK_SLOT(6)
SA_SOCK_SLOT(7)
