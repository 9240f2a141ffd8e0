/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Kernel objects passed to a kprobe or LSM hook (sock, skb, cred, ...), read with CO-RE into an argument
 * slot's bytes in the layouts of contract.h (struct sa_sock_info, sa_cred_info, sa_bpf_info). Function
 * hooks only: a tracepoint record holds no kernel pointers these types could follow. */
#pragma once
#include <bpf/bpf_core_read.h>

/* Writes one end as a sockaddr_in / sockaddr_in6: family, port (network order), address. */
static __always_inline void sa_put_end(char *dst, __u16 family, __u16 port_be, const void *addr)
{
	*(__u16 *)dst = family;
	*(__u16 *)(dst + 2) = port_be;
	if (family == SA_AF_INET)
		bpf_probe_read_kernel(dst + 4, 4, addr);
	else if (family == SA_AF_INET6)
		bpf_probe_read_kernel(dst + 8, 16, addr);
}

static __always_inline __u32 sa_read_sock(char *dst, struct sock *sk)
{
	__builtin_memset(dst, 0, sizeof(struct sa_sock_info));
	if (!sk)
		return 0;
	struct sa_sock_info *si = (struct sa_sock_info *)dst;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 dport = BPF_CORE_READ(sk, __sk_common.skc_dport);
	__u16 sport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_num));
	if (family == SA_AF_INET) {
		__u32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr), s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		sa_put_end(si->peer, family, dport, &d);
		sa_put_end(si->local, family, sport, &s);
	} else if (family == SA_AF_INET6) {
		struct in6_addr d = BPF_CORE_READ(sk, __sk_common.skc_v6_daddr), s = BPF_CORE_READ(sk, __sk_common.skc_v6_rcv_saddr);
		sa_put_end(si->peer, family, dport, &d);
		sa_put_end(si->local, family, sport, &s);
	} else {
		*(__u16 *)si->peer = family;
		*(__u16 *)si->local = family;
	}
	si->type = BPF_CORE_READ(sk, sk_type);
	si->protocol = BPF_CORE_READ(sk, sk_protocol);
	si->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	si->mark = BPF_CORE_READ(sk, sk_mark);
	si->priority = BPF_CORE_READ(sk, sk_priority);
	si->cookie = (__u64)sk;
	return sizeof(struct sa_sock_info);
}

/* The IP header's ends (destination as the peer) and, for TCP and UDP, the ports. */
static __always_inline __u32 sa_read_skb(char *dst, struct sk_buff *skb)
{
	__builtin_memset(dst, 0, sizeof(struct sa_sock_info));
	if (!skb)
		return 0;
	struct sa_sock_info *si = (struct sa_sock_info *)dst;
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header), th = BPF_CORE_READ(skb, transport_header);
	__u8 vihl = 0;
	bpf_probe_read_kernel(&vihl, 1, head + nh);
	__u16 ports[2] = {};
	__u8 proto = 0;
	if (vihl >> 4 == 4) {
		struct iphdr ip = {};
		bpf_probe_read_kernel(&ip, sizeof(ip), head + nh);
		proto = ip.protocol;
		if (proto == IPPROTO_TCP || proto == IPPROTO_UDP)
			bpf_probe_read_kernel(ports, sizeof(ports), head + th);
		sa_put_end(si->peer, SA_AF_INET, ports[1], &ip.daddr);
		sa_put_end(si->local, SA_AF_INET, ports[0], &ip.saddr);
	} else if (vihl >> 4 == 6) {
		struct ipv6hdr ip = {};
		bpf_probe_read_kernel(&ip, sizeof(ip), head + nh);
		proto = ip.nexthdr;
		if (proto == IPPROTO_TCP || proto == IPPROTO_UDP)
			bpf_probe_read_kernel(ports, sizeof(ports), head + th);
		sa_put_end(si->peer, SA_AF_INET6, ports[1], &ip.daddr);
		sa_put_end(si->local, SA_AF_INET6, ports[0], &ip.saddr);
	}
	si->protocol = proto;
	si->len = BPF_CORE_READ(skb, len);
	si->mark = BPF_CORE_READ(skb, mark);
	si->priority = BPF_CORE_READ(skb, priority);
	si->hash = BPF_CORE_READ(skb, hash);
	return sizeof(struct sa_sock_info);
}

static __always_inline void sa_read_userns(struct sa_cred_info *ci, struct user_namespace *ns)
{
	ci->userns_level = BPF_CORE_READ(ns, level);
	ci->userns_uid = BPF_CORE_READ(ns, owner.val);
	ci->userns_gid = BPF_CORE_READ(ns, group.val);
	ci->userns_inum = BPF_CORE_READ(ns, ns.inum);
}

static __always_inline __u32 sa_read_cred(char *dst, const struct cred *cr, struct user_namespace *ns)
{
	struct sa_cred_info *ci = (struct sa_cred_info *)dst;
	__builtin_memset(dst, 0, sizeof(*ci));
	if (cr) {
		ci->uid = BPF_CORE_READ(cr, uid.val);
		ci->gid = BPF_CORE_READ(cr, gid.val);
		ci->suid = BPF_CORE_READ(cr, suid.val);
		ci->sgid = BPF_CORE_READ(cr, sgid.val);
		ci->euid = BPF_CORE_READ(cr, euid.val);
		ci->egid = BPF_CORE_READ(cr, egid.val);
		ci->fsuid = BPF_CORE_READ(cr, fsuid.val);
		ci->fsgid = BPF_CORE_READ(cr, fsgid.val);
		ci->securebits = BPF_CORE_READ(cr, securebits);
		/* kernel_cap_t is u32[2] before 6.3 and a u64 after: 8 bytes at the relocated offset either way. */
		bpf_probe_read_kernel(&ci->cap_permitted, 8, __builtin_preserve_access_index(&cr->cap_permitted));
		bpf_probe_read_kernel(&ci->cap_effective, 8, __builtin_preserve_access_index(&cr->cap_effective));
		bpf_probe_read_kernel(&ci->cap_inheritable, 8, __builtin_preserve_access_index(&cr->cap_inheritable));
		ns = BPF_CORE_READ(cr, user_ns);
	}
	if (ns)
		sa_read_userns(ci, ns);
	return sizeof(*ci);
}

static __always_inline __u32 sa_read_bpf_attr(char *dst, union bpf_attr *attr)
{
	struct sa_bpf_info *bi = (struct sa_bpf_info *)dst;
	__builtin_memset(dst, 0, sizeof(*bi));
	bi->type = BPF_CORE_READ(attr, prog_type);
	bi->count = BPF_CORE_READ(attr, insn_cnt);
	bpf_probe_read_kernel(bi->name, 16, __builtin_preserve_access_index(&attr->prog_name));
	return sizeof(*bi);
}

static __always_inline __u32 sa_read_bpf_map(char *dst, struct bpf_map *map)
{
	struct sa_bpf_info *bi = (struct sa_bpf_info *)dst;
	__builtin_memset(dst, 0, sizeof(*bi));
	bi->type = BPF_CORE_READ(map, map_type);
	bi->count = BPF_CORE_READ(map, key_size);
	bi->value_size = BPF_CORE_READ(map, value_size);
	bi->max_entries = BPF_CORE_READ(map, max_entries);
	bpf_probe_read_kernel(bi->name, 16, __builtin_preserve_access_index(&map->name));
	return sizeof(*bi);
}

static __always_inline __u32 sa_read_bpf_prog(char *dst, struct bpf_prog *prog)
{
	struct sa_bpf_info *bi = (struct sa_bpf_info *)dst;
	__builtin_memset(dst, 0, sizeof(*bi));
	bi->type = BPF_CORE_READ(prog, type);
	bi->count = BPF_CORE_READ(prog, len);
	struct bpf_prog_aux *aux = BPF_CORE_READ(prog, aux);
	if (aux)
		bpf_probe_read_kernel(bi->name, 16, __builtin_preserve_access_index(&aux->name));
	return sizeof(*bi);
}

/* perf_event_open's attribute: a kprobe's function name is a user-space string of the calling process. */
static __always_inline __u32 sa_read_perf_event(char *dst, struct perf_event *ev)
{
	struct sa_bpf_info *bi = (struct sa_bpf_info *)dst;
	__builtin_memset(dst, 0, sizeof(*bi));
	bi->type = BPF_CORE_READ(ev, attr.type);
	bi->config = BPF_CORE_READ(ev, attr.config);
	bi->probe_offset = BPF_CORE_READ(ev, attr.probe_offset);
	__u64 func = BPF_CORE_READ(ev, attr.kprobe_func);
	if (func)
		bpf_probe_read_user_str(bi->name, sizeof(bi->name), (void *)func);
	return sizeof(*bi);
}

/* Not in vmlinux.h (kernel/module/internal.h); CO-RE finds it by name in the running kernel's BTF. */
struct load_info___sa {
	const char *name;
} __attribute__((preserve_access_index));
