/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Argument reading, in one place for every hook family: the attach point's configuration lists the union of
 * the arguments its hooks read (each once); each is read into a slot of the per-CPU call state. Where the raw
 * value comes from is the family's (a tracepoint record, function arguments, a connect's destination); how
 * it is turned into an integer, a string or a sockaddr is the same for all. */
#pragma once
#include "paths.h"
#include "kobjects.h"
#include "resolve.h"

/* struct sa_source (what a family hands to the reader): policy_maps.h, the call state holds the exit's. */

struct sa_rev_ctx {
	const char *src;
	char *dst;
	__u32 len;
};

static long sa_rev_step(__u32 i, struct sa_rev_ctx *c)
{
	if (i >= c->len)
		return 1;
	char ch;
	bpf_probe_read_kernel(&ch, 1, c->src + ((c->len - 1 - i) & (SA_STR_MAX - 1)));
	c->dst[i & (SA_STR_MAX - 1)] = ch;
	return 0;
}

/* Writes the first `len` bytes of src reversed into dst (for Postfix lookups in the prefix trie). */
static __always_inline void sa_reverse(char *dst, const char *src, __u32 len)
{
	struct sa_rev_ctx c = { .src = src, .dst = dst, .len = len & (SA_STR_MAX - 1) };
	bpf_loop(SA_STR_MAX, sa_rev_step, &c, 0);
}

/* Writes the path of `p` (resolved against the task's root) into a string slot; returns its length. *info gets
 * the inode's mode and whether the path was resolved whole (enum sa_ev_file_info). */
static __always_inline __u32 sa_path_to_slot(char *dst, const struct path *p, __u64 *info)
{
	__u32 zero = 0;
	struct path_scratch *ps = bpf_map_lookup_elem(&sa_path_scratch, &zero);
	if (!ps || !SA_TASK_HELPERS)
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	bool truncated = false;
	__u32 off = sa_resolve_path(p, &fs->root, &truncated, false);
	*info = (__u64)BPF_CORE_READ(p, dentry, d_inode, i_mode) | (truncated || off > SA_PATH_MAX ? SA_EV_FILE_UNRESOLVED : 0);
	if (off > SA_PATH_MAX) {
		dst[0] = '/';
		dst[1] = 0;
		return 1;
	}
	__u32 len = (SA_PATH_MAX + 1 - off) & SA_MASK_4K;
	if (len > SA_STR_MAX - 1)
		len = SA_STR_MAX - 1;   /* keep the beginning: prefixes are what policies match */
	bpf_probe_read_kernel(dst, len & (SA_STR_MAX - 1), &ps->buf[off & SA_MASK_4K]);
	dst[len & (SA_STR_MAX - 1)] = 0;
	return len;
}

static __always_inline __u32 sa_str_result(long n, struct sa_call *c, __u32 p)
{
	__u32 len = n > 0 ? n - 1 : 0;
	if (len >= SA_STR_MAX - 1)
		c->trunc_mask |= 1 << p;
	return len;
}

/* Reads argument slot p. The seam for richer argument types (and path resolution of user-space strings) is
 * this function: everything after it only sees ints[p], str[p] and str_len[p]. */
/* A sock TrackSock follows: the call's event is attributed to its owner. */
static __always_inline void sa_sock_owner_of(struct sa_call *c, __u64 sk)
{
	const struct sa_sock_owner *o = sk ? bpf_map_lookup_elem(&sa_socktrack, &sk) : NULL;
	if (o)
		c->sock_owner = *o;
}

#define SA_TS_COMPAT 0x0002 /* x86 thread_info.status: the task is in a 32-bit syscall */
#ifdef SA_FN_SIZED_BUF
/* An iov_iter's user data as Tetragon reads it: the buffer of ITER_UBUF, or the first segment of ITER_IOVEC (its kvec
 * view has the iovec's layout and the same name on 6.1 and later); other kinds (kernel, pipe, bio pages) carry no user
 * buffer and read as 0 bytes. *count gets the buffer's byte count. */
static __always_inline __u32 sa_read_iov_iter(char *str, struct iov_iter *it, __u64 *count, __u64 *at)
{
	__u8 type = BPF_CORE_READ(it, iter_type);
	const void *buf = NULL;
	__u64 n = 0;
	if (bpf_core_enum_value_exists(enum iter_type, ITER_UBUF) && type == bpf_core_enum_value(enum iter_type, ITER_UBUF)) {
		buf = BPF_CORE_READ(it, ubuf);
		n = BPF_CORE_READ(it, count);
	} else if (type == bpf_core_enum_value(enum iter_type, ITER_IOVEC)) {
		const struct kvec *seg = BPF_CORE_READ(it, kvec);
		buf = BPF_CORE_READ(seg, iov_base);
		n = BPF_CORE_READ(seg, iov_len);
	}
	*count = n;
	*at = (__u64)buf;
	__u32 len = n < SA_STR_MAX - 1 ? n : SA_STR_MAX - 1;
	if (!buf || bpf_probe_read_user(str, len & (SA_STR_MAX - 1), buf) != 0)
		return 0;
	return len;
}
#endif

static __always_inline void sa_read_arg(struct sa_call *c, __u32 p, const struct sa_point_arg *a, const struct sa_source *src)
{
	p &= SA_POINT_ARGS - 1;
	char *str = c->str[p];
	__u64 v = 0;
	__u32 len = 0;

	if (SA_FAMILY == SA_FAMILY_TRACEPOINT)
		bpf_probe_read_kernel(&v, a->size <= 8 && a->type != SA_ARG_BUF && a->type != SA_ARG_BUF_MAX ? a->size & 0xf : 8, (void *)(src->record + a->offset));
	else if (SA_FAMILY == SA_FAMILY_FUNCTION || SA_FAMILY == SA_FAMILY_USER)
		v = src->raw[a->offset < SA_MAX_FN_ARGS ? a->offset : 0];
	if (SA_FAMILY == SA_FAMILY_FUNCTION && a->type == SA_ARG_RESOLVED) {
		a = sa_resolve_arg(v, &c->ints[p], a);
		v = c->ints[p];
	}

	switch (a->type) {
	case SA_ARG_INT:
		v = sa_sign_extend(v, a->size);
		break;
	case SA_ARG_U_INT:
	case SA_ARG_FD:
		v = sa_zero_extend(v, a->size);
		break;
	case SA_ARG_SYSCALL64:
		v = sa_zero_extend(v, a->size);
		if (BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), thread_info.status) & SA_TS_COMPAT)
			v |= 0x80000000;
		break;
	case SA_ARG_STRING:
		if (SA_FAMILY == SA_FAMILY_TRACEPOINT || SA_FAMILY == SA_FAMILY_USER)
			len = sa_str_result(SA_READ_NAME_STR(str, SA_STR_MAX, (void *)v), c, p);
		break;
	case SA_ARG_USER_PATH:
	case SA_ARG_USER_PATH_AT:
		if (SA_FAMILY != SA_FAMILY_TRACEPOINT)
			break;
		if (src->file) {
			len = sa_file_to_slot(c, p, (struct file *)src->file);
		} else {
			/* The dirfd (the argument before the name) is read only for a relative name. */
			__u64 dirfd_at = a->type == SA_ARG_USER_PATH_AT && a->offset >= 8 ? src->record + a->offset - 8 : 0;
			len = sa_read_user_path(c, p, (void *)v, dirfd_at);
		}
		c->str_len[p] = len;
		sa_host_view(c, p, (struct file *)src->file);
		break;
	case SA_ARG_BUF_MAX:
		c->buf_ptr[p] = v;
		/* fallthrough */
	case SA_ARG_BUF:
		if (SA_FAMILY == SA_FAMILY_TRACEPOINT) {
			/* Exactly the count's bytes (NULs included), up to the slot's size; ints[] carries the count. */
			__u64 count = 0;
			bpf_probe_read_kernel(&count, sizeof(count), (void *)(src->record + a->size));
			len = count < SA_STR_MAX - 1 ? count : SA_STR_MAX - 1;
			if (bpf_probe_read_user(str, len & (SA_STR_MAX - 1), (void *)v) != 0)
				len = 0;
			if (count > len)
				c->trunc_mask |= 1 << p;
			v = count;
		}
#ifdef SA_FN_SIZED_BUF
		else if (SA_FAMILY == SA_FAMILY_FUNCTION) {
			/* A kprobe'd function's char_buf with sizeArgIndex: the count is argument `size`; the buffer is a user
			 * pointer (tty_write, vfs_write) or a kernel one. Only the kprobe objects define SA_FN_SIZED_BUF: the
			 * LSM programs' frames leave no stack for it (combined stack over 512 bytes). */
			__u64 count = src->raw[a->size < SA_MAX_FN_ARGS ? a->size : 0];
			len = count < SA_STR_MAX - 1 ? count : SA_STR_MAX - 1;
			if (bpf_probe_read_user(str, len & (SA_STR_MAX - 1), (void *)v) != 0 && bpf_probe_read_kernel(str, len & (SA_STR_MAX - 1), (void *)v) != 0)
				len = 0;
			if (count > len)
				c->trunc_mask |= 1 << p;
			v = count;
		}
#endif
		break;
	case SA_ARG_SOCK_ADDR:
		if (SA_FAMILY == SA_FAMILY_CGROUP) {
			__builtin_memcpy(str, src->dest, SA_SOCKADDR_SIZE);
			len = SA_SOCKADDR_SIZE;
		} else if (SA_FAMILY == SA_FAMILY_TRACEPOINT || SA_FAMILY == SA_FAMILY_USER) {
			__builtin_memset(str, 0, SA_SOCKADDR_UN_SIZE);
			if (bpf_probe_read_user(str, SA_SOCKADDR_SIZE, (void *)v) == 0)
				len = SA_SOCKADDR_SIZE;
			if (len && sa_sockaddr_family(str) == SA_AF_UNIX && bpf_probe_read_user(str, SA_SOCKADDR_UN_SIZE, (void *)v) == 0)
				len = SA_SOCKADDR_UN_SIZE;
		}
		break;
	}
	if (SA_FAMILY == SA_FAMILY_FUNCTION) {
		switch (a->type) {
		case SA_ARG_K_STRING:
			len = sa_str_result(bpf_probe_read_kernel_str(str, SA_STR_MAX, (void *)v), c, p);
			break;
		case SA_ARG_K_SOCK_ADDR:
			__builtin_memset(str, 0, SA_SOCKADDR_UN_SIZE);
			if (bpf_probe_read_kernel(str, SA_SOCKADDR_SIZE, (void *)v) == 0)
				len = SA_SOCKADDR_SIZE;
			if (len && sa_sockaddr_family(str) == SA_AF_UNIX && bpf_probe_read_kernel(str, SA_SOCKADDR_UN_SIZE, (void *)v) == 0)
				len = SA_SOCKADDR_UN_SIZE;
			break;
		case SA_ARG_FILE:
			len = sa_path_to_slot(str, &((struct file *)v)->f_path, &v);
			break;
		case SA_ARG_PATH:
			len = sa_path_to_slot(str, (const struct path *)v, &v);
			break;
		case SA_ARG_BPRM: {
			struct file *f = BPF_CORE_READ((struct linux_binprm *)v, file);
			len = sa_path_to_slot(str, &f->f_path, &v);
			break;
		}
		case SA_ARG_KIOCB: {
			struct file *f = BPF_CORE_READ((struct kiocb *)v, ki_filp);
			len = sa_path_to_slot(str, &f->f_path, &v);
			break;
		}
		case SA_ARG_CAPS: {
			__u64 mask = 0;
			bpf_probe_read_kernel(&mask, sizeof(mask), (void *)v);
			v = mask;
			break;
		}
		case SA_ARG_SOCK:
		case SA_ARG_SOCKET:
			len = sa_read_sock(str, a->type == SA_ARG_SOCK ? (struct sock *)v : BPF_CORE_READ((struct socket *)v, sk));
			sa_sock_owner_of(c, ((struct sa_sock_info *)str)->cookie);
			break;
		case SA_ARG_SKB:
			len = sa_read_skb(str, (struct sk_buff *)v);
			break;
		case SA_ARG_CRED:
			len = sa_read_cred(str, (const struct cred *)v, NULL);
			break;
		case SA_ARG_USER_NS:
			len = sa_read_cred(str, NULL, (struct user_namespace *)v);
			break;
		case SA_ARG_NET_DEV:
			len = sa_str_result(bpf_probe_read_kernel_str(str, 16, __builtin_preserve_access_index(&((struct net_device *)v)->name)), c, p);
			break;
		case SA_ARG_DENTRY:
			len = sa_str_result(bpf_probe_read_kernel_str(str, SA_STR_MAX, BPF_CORE_READ((struct dentry *)v, d_name.name)), c, p);
			break;
		case SA_ARG_MODULE:
			if (bpf_core_type_exists(struct module))
				len = sa_str_result(bpf_probe_read_kernel_str(str, 56, __builtin_preserve_access_index(&((struct module *)v)->name)), c, p);
			break;
		case SA_ARG_LOAD_INFO:
			/* A kernel built without modules has no struct load_info: the read is dropped at load, not refused. */
			if (bpf_core_type_exists(struct load_info___sa))
				len = sa_str_result(bpf_probe_read_kernel_str(str, SA_STR_MAX, BPF_CORE_READ((struct load_info___sa *)v, name)), c, p);
			break;
		case SA_ARG_BPF_ATTR:
			len = sa_read_bpf_attr(str, (union bpf_attr *)v);
			break;
		case SA_ARG_BPF_MAP:
			len = sa_read_bpf_map(str, (struct bpf_map *)v);
			break;
		case SA_ARG_PERF_EVENT:
			len = sa_read_perf_event(str, (struct perf_event *)v);
			break;
		case SA_ARG_BPF_PROG:
			len = sa_read_bpf_prog(str, (struct bpf_prog *)v);
			break;
#ifdef SA_FN_SIZED_BUF
		case SA_ARG_IOV_ITER:
		case SA_ARG_IOV_ITER_MAX: {
			__u64 count = 0;
			len = sa_read_iov_iter(str, (struct iov_iter *)v, &count, &c->buf_ptr[p]);
			if (count > len)
				c->trunc_mask |= 1 << p;
			v = count;
			break;
		}
#endif
		}
	}
	c->ints[p] = v;
	c->str_len[p] = len;
	if (a->type != SA_ARG_USER_PATH && a->type != SA_ARG_USER_PATH_AT)
		c->raw_len[p] = 0;
}

struct sa_read_ctx {
	struct sa_call *c;
	const struct sa_point *pt;
	const struct sa_source *src;
};

/* One argument slot (a bpf_loop callback: the reader is verified once, not once per slot). */
static long sa_read_arg_step(__u32 i, struct sa_read_ctx *x)
{
	__u64 p = i;
	asm volatile("" : "+r"(p));
	if (p >= SA_POINT_ARGS)
		return 1;
	sa_read_arg(x->c, p, &x->pt->args[p], x->src);
	if (x->pt->reverse_mask & (1 << p))
		sa_reverse(x->c->rev[p], x->c->str[p], x->c->str_len[p]);
	return 0;
}

/* Reads every argument the attach point's hooks use, and the reversed strings Postfix dimensions need. */
static __always_inline void sa_read_args(struct sa_call *c, const struct sa_point *pt, const struct sa_source *src)
{
	struct sa_read_ctx x = { .c = c, .pt = pt, .src = src };
	c->trunc_mask = 0;
	c->host_len = 0;
	c->sock_owner.tgid = 0;
	bpf_loop(pt->nargs, sa_read_arg_step, &x, 0);
}
