/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Selector evaluation by bitmap intersection. Every selector of every hook at an attach point has a bit.
 * Each indexed dimension (a string argument's exact value, prefix or postfix; an integer argument's set; a
 * sockaddr's address, port or family; the binary's path) is one map lookup keyed by {generation, attach
 * point, dimension, value}, whose value is the bitmap of the selectors whose set holds the value. Per
 * dimension a selector survives when it does not care, or when the lookup's bit differs from its negation
 * bit (NotIn, NotPrefix ... are negated). The cost of a call is one lookup per dimension, whatever the
 * number of policies. What is not indexed runs only for the bits that survive every dimension. */
#pragma once
#include "args.h"

/* The call being evaluated. Lives on the program's stack; bpf_loop callbacks get a pointer to it. What a matched
 * selector's actions read and write is in the call state instead (sa_call.act): they run in a global function, and a
 * stack argument holding pointers (c, pt) would come back from one with the pointers forgotten by the verifier. */
struct sa_run {
	struct sa_call *c;
	const struct sa_point *pt;
	__u32 ap;
	__u32 gen;
	__u32 tgid;
	__u32 tid;
	__u32 dim_from;              /* dimensions [dim_from, dim_end) are evaluated next */
	__u32 dim_end;
	__u32 op;
	__u32 bit;                   /* next selector bit to consider */
	bool alive;
	bool at_exit;                /* a syscall's exit, on the object the kernel looked up */
	__s64 ret;                   /* at a syscall's exit: its return value */
};

static __always_inline const void *sa_lookup_exact(struct sa_call *c, struct sa_value_hdr hdr, const char *s, __u32 len)
{
	__builtin_memset(&c->key.str, 0, sizeof(c->key.str));
	c->key.str.hdr = hdr;
	bpf_probe_read_kernel(c->key.str.data, len & (SA_STR_MAX - 1), s);
	return bpf_map_lookup_elem(&sa_str_set, &c->key.str);
}

static __always_inline const void *sa_lookup_prefix(struct sa_call *c, struct sa_value_hdr hdr, const char *s, __u32 len)
{
	if (len > SA_LPM_STR_MAX)
		len = SA_LPM_STR_MAX;
	c->key.lpm.prefixlen = 8 * sizeof(hdr) + 8 * len;
	c->key.lpm.hdr = hdr;
	bpf_probe_read_kernel(c->key.lpm.data, len & 0xff, s);
	return bpf_map_lookup_elem(&sa_str_prefix, &c->key.lpm);
}

static __always_inline const void *sa_lookup_int(struct sa_call *c, struct sa_value_hdr hdr, __u64 v)
{
	c->key.num.hdr = hdr;
	c->key.num.value = v;
	return bpf_map_lookup_elem(&sa_int_set, &c->key.num);
}

static __always_inline const void *sa_lookup_addr(struct sa_call *c, struct sa_value_hdr hdr, const char *sa)
{
	__u16 family = sa_sockaddr_family(sa);
	__builtin_memset(&c->key.addr, 0, sizeof(c->key.addr));
	c->key.addr.hdr = hdr;
	c->key.addr.family = family;
	if (family == SA_AF_INET) {
		__builtin_memcpy(c->key.addr.addr, sa + 4, 4);
		c->key.addr.prefixlen = 8 * sizeof(hdr) + 8 + 32;
	} else if (family == SA_AF_INET6) {
		__builtin_memcpy(c->key.addr.addr, sa + 8, 16);
		c->key.addr.prefixlen = 8 * sizeof(hdr) + 8 + 128;
	} else {
		return NULL;
	}
	return bpf_map_lookup_elem(&sa_addr_lpm, &c->key.addr);
}

/* The bitmap of the selectors whose value set holds this call's value of dimension `di` (NULL: none). */
static __always_inline const struct sa_bitmap *sa_dim_lookup(struct sa_run *r, const struct sa_dim *d, __u32 di)
{
	struct sa_call *c = r->c;
	struct sa_value_hdr hdr = { .gen = r->gen, .ap = r->ap, .dim = di };
	__u32 p = d->slot & (SA_POINT_ARGS - 1);
	/* The process's binary (unknown: the call state's empty one), looked up here rather than kept in sa_run: a map
	 * value pointer of either of two maps in the run's state would have the verifier walk all the rest twice. */
	const struct sa_binary *b = &c->no_bin;
	if (d->kind <= SA_DIM_BIN_POSTFIX) {
		const struct sa_binary *found = bpf_map_lookup_elem(&sa_exec_binary, &r->tgid);
		if (found)
			b = found;
	}
	const char *bin = b->path;
	__u32 bin_len = b->len & (SA_STR_MAX - 1);

	switch (d->kind) {
	case SA_DIM_BIN_EXACT:
		/* Binaries are kept zero padded: the key is a plain copy. */
		c->key.str.hdr = hdr;
		__builtin_memcpy(c->key.str.data, bin, SA_STR_MAX);
		return bpf_map_lookup_elem(&sa_str_set, &c->key.str);
	case SA_DIM_BIN_PREFIX:
		return sa_lookup_prefix(c, hdr, bin, bin_len);
	case SA_DIM_BIN_POSTFIX:
		sa_reverse(c->bin_rev, bin, bin_len);
		return sa_lookup_prefix(c, hdr, c->bin_rev, bin_len);
	case SA_DIM_STR_EXACT:
		return sa_lookup_exact(c, hdr, c->str[p], c->str_len[p]);
	case SA_DIM_STR_PREFIX:
		return sa_lookup_prefix(c, hdr, c->str[p], c->str_len[p]);
	case SA_DIM_STR_POSTFIX:
		return sa_lookup_prefix(c, hdr, c->rev[p], c->str_len[p]);
	case SA_DIM_INT:
		return sa_lookup_int(c, hdr, c->ints[p]);
	case SA_DIM_PORT:
		return c->str_len[p] ? sa_lookup_int(c, hdr, sa_sockaddr_port(c->str[p])) : NULL;
	case SA_DIM_FAMILY:
		return c->str_len[p] ? sa_lookup_int(c, hdr, sa_sockaddr_family(c->str[p])) : NULL;
	case SA_DIM_ADDR:
		return c->str_len[p] ? sa_lookup_addr(c, hdr, c->str[p]) : NULL;
	/* A struct sa_sock_info slot (sock, socket, skb): its local end and fields. */
	case SA_DIM_S_ADDR:
		return c->str_len[p] ? sa_lookup_addr(c, hdr, ((struct sa_sock_info *)c->str[p])->local) : NULL;
	case SA_DIM_S_PORT:
		return c->str_len[p] ? sa_lookup_int(c, hdr, sa_sockaddr_port(((struct sa_sock_info *)c->str[p])->local)) : NULL;
	case SA_DIM_PROTOCOL:
		return c->str_len[p] ? sa_lookup_int(c, hdr, ((struct sa_sock_info *)c->str[p])->protocol) : NULL;
	case SA_DIM_STATE:
		return c->str_len[p] ? sa_lookup_int(c, hdr, ((struct sa_sock_info *)c->str[p])->state) : NULL;
	}
	return NULL;
}

/* One dimension (a bpf_loop callback: verified once, whatever the number of dimensions). */
static long sa_eval_dim(__u32 i, struct sa_run *r)
{
	__u64 di = i + r->dim_from;
	asm volatile("" : "+r"(di));
	if (di >= r->dim_end || di >= SA_MAX_DIMS)
		return 1;
	const struct sa_dim *d = &r->pt->dims[di];
	/* The union of the bitmaps that hold this call's value, built up in the call state: with NULL-or-not pointers
	 * live to the end the verifier would walk the loop below once per combination. */
	__u64 *acc = r->c->dim_hits;
	const struct sa_bitmap *hit = sa_dim_lookup(r, d, di);
	if (hit)
		__builtin_memcpy(acc, hit->w, sizeof(r->c->dim_hits));
	else
		__builtin_memset(acc, 0, sizeof(r->c->dim_hits));
#if SA_FAMILY == SA_FAMILY_TRACEPOINT
	/* A file with several names matches when any of its names the policy lists does. */
	if (r->c->file_ino && d->kind >= SA_DIM_STR_EXACT && d->kind <= SA_DIM_STR_POSTFIX) {
		struct sa_inode_key *k = &r->c->key.inode;
		k->hdr = (struct sa_value_hdr){ .gen = r->gen, .ap = r->ap, .dim = di };
		k->dev = r->c->file_dev;
		k->pad = 0;
		k->ino = r->c->file_ino;
		const struct sa_bitmap *alias = bpf_map_lookup_elem(&sa_inode_set, k);
		if (alias)
			for (int w = 0; w < SA_SEL_WORDS; w++)
				acc[w] |= alias->w[w];
	}
	/* A file under another root (a chroot, a container) matches by its host path as well (a Postfix is the same
	 * on both: sa_dim_lookup). */
	struct sa_call *c = r->c;
	if (c->host_len && (d->slot & (SA_POINT_ARGS - 1)) == c->host_slot &&
	    (d->kind == SA_DIM_STR_EXACT || d->kind == SA_DIM_STR_PREFIX)) {
		struct sa_value_hdr hdr = { .gen = r->gen, .ap = r->ap, .dim = di };
		const struct sa_bitmap *host = d->kind == SA_DIM_STR_EXACT ? sa_lookup_exact(c, hdr, c->host, c->host_len)
									   : sa_lookup_prefix(c, hdr, c->host, c->host_len);
		if (host)
			for (int w = 0; w < SA_SEL_WORDS; w++)
				acc[w] |= host->w[w];
	}
#endif
	__u64 any = 0;
	for (int w = 0; w < SA_SEL_WORDS; w++) {
		r->c->live[w] &= ~d->care[w] | (acc[w] ^ d->neg[w]);
		any |= r->c->live[w];
	}
	r->alive = any != 0;
	return any ? 0 : 1;
}

/* Evaluates dimensions [from, to); false when no selector survives. */
static __always_inline bool sa_eval_dims(struct sa_run *r, __u32 from, __u32 to)
{
	if (from >= to)
		return r->alive;
	r->dim_from = from;
	r->dim_end = to;
	bpf_loop(to - from, sa_eval_dim, r, 0);
	return r->alive;
}
