/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* File names passed to syscalls, made into the path the kernel will use, before selectors see them:
 * a relative name is joined to the task's cwd or to its dirfd's directory (both found by walking dentries),
 * and `.`, `..` and repeated `/` are folded, as the kernel's lookup does. The string the process passed is
 * kept beside it (sa_call.raw) for the event. Symlinks, bind mounts and hard links need the lookup itself:
 * the syscall's exit reads the path of the object from the fd table or mm->exe_file (sa_file_to_slot). */
#pragma once
#include "predicates.h"

#define SA_AT_FDCWD -100

/* How a file name or string argument is read: io_uring's programs (iouring.bpf.c) read the kernel's copy (struct filename). */
#ifndef SA_READ_NAME_STR
#define SA_READ_NAME_STR bpf_probe_read_user_str
#endif


/* x & mask, kept as an instruction: the verifier must see the bound even where the compiler proved it. */
static __always_inline __u32 sa_bound(__u32 x, __u32 mask)
{
	asm volatile("%0 &= %1" : "+r"(x) : "i"(mask));
	return x;
}

/* The end of a component (a '/' or the end of the input): drop it when empty or ".", go back one for "..". */
static __always_inline void sa_norm_component(struct sa_norm *n, struct sa_call *c, char *out)
{
	__u32 comp = n->comp, ol = n->out_len;
	__u32 seg = ol - comp;
	if (seg == 0)
		return;
	if (seg == 1 && out[comp & (SA_STR_MAX - 1)] == '.') {
		n->out_len = comp;
		return;
	}
	if (seg == 2 && out[comp & (SA_STR_MAX - 1)] == '.' && out[(comp + 1) & (SA_STR_MAX - 1)] == '.') {
		ol = comp;
		if (n->depth > 0) {
			n->depth--;
			if (n->depth < SA_NORM_DEPTH)
				ol = c->norm_stack[sa_bound(n->depth, SA_NORM_DEPTH - 1)];
			else
				n->trunc = true; /* deeper than we can come back from */
		}
		n->out_len = ol;
		n->comp = ol;
		return;
	}
	if (n->depth < SA_NORM_DEPTH)
		c->norm_stack[sa_bound(n->depth, SA_NORM_DEPTH - 1)] = comp;
	n->depth++;
	if (ol < SA_STR_MAX - 1) {
		out[ol & (SA_STR_MAX - 1)] = '/';
		n->out_len = ol + 1;
	} else {
		n->trunc = true;
	}
	n->comp = n->out_len;
}

/* One input byte (a bpf_loop callback; the call state is looked up here, so its arrays index directly). */
static long sa_norm_step(__u32 i, void *unused)
{
	struct sa_call *c = sa_call_state();
	__u32 zero = 0;
	if (!c)
		return 1;
	struct sa_norm *n = &c->norm;
	char ch = 0;
	if (i < n->len) {
		if (n->from) {
			struct path_scratch *ps = bpf_map_lookup_elem(&sa_path_scratch, &zero);
			if (!ps)
				return 1;
			ch = ps->buf[(n->start + i) & SA_MASK_4K];
		} else {
			ch = c->raw[n->slot & (SA_POINT_ARGS - 1)][i & (SA_STR_MAX - 1)];
		}
	}
	char *out = c->str[n->slot & (SA_POINT_ARGS - 1)];
	if (ch == '/' || ch == 0) {
		sa_norm_component(n, c, out);
		return ch == 0;
	}
	__u32 ol = n->out_len;
	if (ol < SA_STR_MAX - 1) {
		out[ol & (SA_STR_MAX - 1)] = ch;
		n->out_len = ol + 1;
	} else {
		n->trunc = true;
	}
	return 0;
}

static __always_inline void sa_norm_feed(struct sa_norm *n, __u32 from, __u32 start, __u32 len)
{
	n->from = from;
	n->start = start;
	n->len = len;
	bpf_loop(len + 1, sa_norm_step, NULL, 0);
}

#define SA_BYTES(b) (0x0101010101010101ULL * (b))

/* 0x80 in the bytes of x equal to b (and possibly above one: a false "maybe" only costs the slow path). */
static __always_inline __u64 sa_bytes_eq(__u64 x, __u8 b)
{
	x ^= SA_BYTES(b);
	return (x - SA_BYTES(1)) & ~x & SA_BYTES(0x80);
}

struct sa_canon {
	__u32 slot;
	__u32 len;
	bool bad;
};

/* An absolute name, eight bytes at a time: "//" or "/." anywhere (".", "..", and hidden names, which only take the
 * slow path) make it not plainly normal. One callback with the words in a bounded loop: a callback per word cost a
 * call and a call-state lookup per eight bytes. */
static long sa_canon_scan(__u32 i, struct sa_canon *k)
{
	struct sa_call *c = sa_call_state();
	if (!c)
		return 1;
	const char *name = c->str[k->slot & (SA_POINT_ARGS - 1)];
	__u64 carry = 0;
	for (__u32 at = 0; at < SA_STR_MAX; at += 8) {
		if (at >= k->len)
			break;
		__u64 w;
		__builtin_memcpy(&w, &name[at & (SA_STR_MAX - 8)], 8);
		__u32 n = k->len - at;
		__u64 live = n < 8 ? (1ULL << (8 * n)) - 1 : ~0ULL; /* bytes past the end: neither '/' nor '.' */
		w &= live;
		__u64 slash = sa_bytes_eq(w, '/') & live;
		__u64 dot = sa_bytes_eq(w, '.') & live;
		if ((slash & (slash >> 8 | dot >> 8)) || (carry & (slash | dot))) {
			k->bad = true;
			return 1;
		}
		carry = slash >> 56;
	}
	return 1;
}

/* The fast path: an absolute name without "//", "/." or a final '/' is already the path (no walk, no copy).
 * `name`: str[p], where the name was read. */
static __always_inline bool sa_plainly_normal(__u32 p, const char *name, __u32 len)
{
	if (name[0] != '/' || (len > 1 && name[(len - 1) & (SA_STR_MAX - 1)] == '/'))
		return false;
	struct sa_canon k = { .slot = p, .len = len };
	bpf_loop(1, sa_canon_scan, &k, 0);
	return !k.bad;
}

/* Reads the user-space file name at `uptr` into sa_call.raw[p] and its resolved absolute form into str[p]
 * (relative names against the directory of the dirfd at kernel address `dirfd_at`, or the cwd for AT_FDCWD / none). Returns the resolved
 * length; raw_len[p] is 0 when the passed string is already the resolved path (the fast path: an absolute,
 * normal name needs no walk). */
static __always_inline __u32 sa_read_user_path(struct sa_call *c, __u32 p, void *uptr, __u64 dirfd_at)
{
	p &= SA_POINT_ARGS - 1;
	char *raw = c->raw[p];
	/* Read where the path goes: most names are absolute and normal already (then raw[p] is not needed). */
	long n = SA_READ_NAME_STR(c->str[p], SA_STR_MAX, uptr);
	__u32 rlen = n > 0 ? n - 1 : 0;
	if (rlen >= SA_STR_MAX - 1)
		c->trunc_mask |= 1 << p;

	if (rlen && sa_plainly_normal(p, c->str[p], rlen)) {
		c->raw_len[p] = 0;
		return rlen;
	}
	bpf_probe_read_kernel(raw, sa_bound(rlen, SA_STR_MAX - 1) + 1, c->str[p]);
	struct sa_norm *st = &c->norm;
	__builtin_memset(st, 0, sizeof(*st));
	st->slot = p;
	st->out_len = 1;
	st->comp = 1;
	c->str[p][0] = '/';
	if (raw[0] != '/') { /* relative, or empty (execveat/AT_EMPTY_PATH: the dirfd itself) */
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		struct fs_struct *fs = BPF_CORE_READ(task, fs);
		const struct path *base = &fs->pwd;
		__s64 dirfd = SA_AT_FDCWD;
		if (dirfd_at)
			bpf_probe_read_kernel(&dirfd, sizeof(dirfd), (void *)dirfd_at);
		if ((__s32)dirfd != SA_AT_FDCWD) {
			struct file *f = sa_fd_file((__s32)dirfd);
			if (f)
				base = &f->f_path;
		}
		bool truncated = false;
		__u32 off = sa_resolve_path(base, &fs->root, &truncated, true);
		if (truncated)
			c->trunc_mask |= 1 << p;
		if (off <= SA_PATH_MAX)
			sa_norm_feed(st, 1, off, (SA_PATH_MAX + 1 - off) & SA_MASK_4K);
	}
	sa_norm_feed(st, 0, 0, rlen);
	__u32 len = st->out_len & (SA_STR_MAX - 1);
	if (len > 1)
		len--; /* the '/' after the last component */
	c->str[p][len & (SA_STR_MAX - 1)] = 0;
	if (st->trunc)
		c->trunc_mask |= 1 << p;
	/* Normalising an absolute name only ever shortens it: the same length is the same string. */
	c->raw_len[p] = raw[0] == '/' && len == rlen ? 0 : rlen;
	return len;
}

/* The exit side: raw[p] holds the name passed, as the enter saved it; str[p] becomes the path of the object
 * the kernel found. */
static __always_inline __u32 sa_file_to_slot(struct sa_call *c, __u32 p, struct file *f)
{
	p &= SA_POINT_ARGS - 1;
	__u32 zero = 0;
	struct path_scratch *ps = bpf_map_lookup_elem(&sa_path_scratch, &zero);
	if (!ps)
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	bool truncated = false;
	__u32 off = sa_resolve_path(&f->f_path, &fs->root, &truncated, true);
	struct inode *inode = BPF_CORE_READ(f, f_inode);
	if (BPF_CORE_READ(inode, __i_nlink) > 1) {
		c->file_ino = BPF_CORE_READ(inode, i_ino);
		c->file_dev = BPF_CORE_READ(inode, i_sb, s_dev);
	}
	char *dst = c->str[p];
	__u32 len = 1;
	if (off > SA_PATH_MAX) {
		dst[0] = '/';
	} else {
		len = (SA_PATH_MAX + 1 - off) & SA_MASK_4K;
		if (len > SA_STR_MAX - 1) {
			len = SA_STR_MAX - 1;
			truncated = true;
		}
		bpf_probe_read_kernel(dst, len & (SA_STR_MAX - 1), &ps->buf[off & SA_MASK_4K]);
	}
	dst[len & (SA_STR_MAX - 1)] = 0;
	if (truncated)
		c->trunc_mask |= 1 << p;
	return len;
}

/* The exit's quick answer: is the object opened reached from the task's root by exactly `name` (absolute, normal),
 * and has it no other name? Then the exit's selectors would see what the enter's saw (no symlink, bind mount or
 * /proc fd was on the way), and the exit has nothing to do. The walk goes up from the file, comparing each dentry's
 * name with the name's components from its end, with one read per component: a dentry's parent, name and inline
 * name bytes come in one piece. Whatever it does not know how to compare quickly (a bind mount's root, the top of
 * the mount tree, a long component) answers no, and the exit resolves the path in full. */
#define SA_SAME_NAME (SA_PATH_MAX + 1)             /* path scratch: the name compared with */
#define SA_SAME_PIECE (SA_SAME_NAME + SA_STR_MAX)  /* path scratch: a dentry from d_parent on */
#define SA_SAME_LONG (SA_SAME_PIECE + 128)         /* path scratch: a component not stored in its dentry */
#define SA_DPIECE 80                               /* d_parent, d_name, d_inode and the inline name bytes */
#define SA_SAME_COMP_MAX 64                        /* longer components take the full walk */

struct sa_same_walk {
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct dentry *mnt_root;
	struct dentry *root_dentry;
	struct vfsmount *root_mnt;
	__u32 pos;       /* the bytes of the name not matched yet, from its start */
	bool same;
};

static long sa_same_step(__u32 i, struct sa_same_walk *w)
{
	__u32 zero = 0;
	struct path_scratch *s = bpf_map_lookup_elem(&sa_path_scratch, &zero);
	if (!s)
		return 1;
	/* Locals first: CO-RE relocations must not cover the accesses to *w. */
	struct dentry *dentry = w->dentry;
	struct vfsmount *vfsmnt = w->vfsmnt;
	if (dentry == w->root_dentry && vfsmnt == w->root_mnt) {
		w->same = w->pos == 0;
		return 1;
	}
	if (dentry == w->mnt_root) {
		struct mount *mnt = container_of(vfsmnt, struct mount, mnt);
		struct mount *up = BPF_CORE_READ(mnt, mnt_parent);
		if (up == mnt || BPF_CORE_READ(dentry, d_parent) != dentry)
			return 1;
		w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->vfsmnt = &up->mnt;
		w->mnt_root = BPF_CORE_READ(up, mnt.mnt_root);
		return 0;
	}
	__u32 base = bpf_core_field_offset(struct dentry, d_parent);
	__u32 len_at = bpf_core_field_offset(struct dentry, d_name) + bpf_core_field_offset(struct qstr, len) - base;
	__u32 name_at = bpf_core_field_offset(struct dentry, d_name) + bpf_core_field_offset(struct qstr, name) - base;
	char *piece = &s->buf[SA_SAME_PIECE];
	if (bpf_probe_read_kernel(piece, SA_DPIECE, (void *)dentry + base))
		return 1;
	struct dentry *parent = *(struct dentry **)piece;
	__u32 len = *(__u32 *)&piece[len_at & 63];
	__u64 name = *(__u64 *)&piece[name_at & 63];
	__u32 pos = w->pos;
	if (parent == dentry || len == 0 || len > SA_SAME_COMP_MAX || len + 1 > pos || pos > SA_STR_MAX - 1)
		return 1;
	__u32 at = pos - len; /* the component's first byte in the name, after its '/' */
	if (s->buf[SA_SAME_NAME + ((at - 1) & (SA_STR_MAX - 1))] != '/')
		return 1;
	__u64 inl = name - (__u64)dentry - base;
	const char *got = &s->buf[SA_SAME_LONG];
	if (inl + len <= SA_DPIECE)
		got = &s->buf[SA_SAME_PIECE + (inl & 127)];
	else if (bpf_probe_read_kernel(&s->buf[SA_SAME_LONG], sa_bound(len, 127), (void *)name))
		return 1;
	for (int k = 0; k < SA_SAME_COMP_MAX / 8; k++) {
		__u32 b = k * 8;
		if (b >= len)
			break;
		__u64 x = *(__u64 *)(got + b);
		__u64 y = *(__u64 *)&s->buf[SA_SAME_NAME + ((at + b) & (SA_STR_MAX - 1))];
		if (len - b < 8) {
			__u64 mask = (1ULL << (8 * (len - b))) - 1;
			x &= mask;
			y &= mask;
		}
		if (x != y)
			return 1;
	}
	w->pos = at - 1;
	w->dentry = parent;
	return 0;
}

#define SA_FILE_SPAN 64 /* bytes of struct file read at once, from the first of f_inode and f_path */

struct sa_same_ctx {
	__u64 file;
	__u32 len;
	bool same;
};

/* The walk's state lives in this callback's frame, not in the caller's (the exit program's frame is near the
 * verifier's combined limit). */
static long sa_same_begin(__u32 i, struct sa_same_ctx *x)
{
	struct file *f = (struct file *)x->file;
	/* f_inode and f_path in one read (they are a few words apart on every kernel we load on). */
	__u32 ino_at = bpf_core_field_offset(struct file, f_inode), path_at = bpf_core_field_offset(struct file, f_path);
	__u32 from = ino_at < path_at ? ino_at : path_at;
	__u32 span = (ino_at < path_at ? path_at + sizeof(struct path) : ino_at + 8) - from;
	struct path fp;
	struct inode *inode;
	__u32 zero = 0;
	struct path_scratch *s = bpf_map_lookup_elem(&sa_path_scratch, &zero);
	if (!s)
		return 1;
	if (span <= SA_FILE_SPAN) {
		__u64 *piece = (__u64 *)&s->buf[SA_SAME_LONG]; /* free until the walk */
		if (bpf_probe_read_kernel(piece, SA_FILE_SPAN, (void *)f + from))
			return 1;
		inode = (struct inode *)piece[((ino_at - from) / 8) & (SA_FILE_SPAN / 8 - 1)];
		fp.mnt = (struct vfsmount *)piece[((path_at - from) / 8) & (SA_FILE_SPAN / 8 - 1)];
		fp.dentry = (struct dentry *)piece[((path_at - from) / 8 + 1) & (SA_FILE_SPAN / 8 - 1)];
	} else {
		inode = BPF_CORE_READ(f, f_inode);
		if (bpf_probe_read_kernel(&fp, sizeof(fp), &f->f_path))
			return 1;
	}
	if (BPF_CORE_READ(inode, __i_nlink) > 1)
		return 1; /* other names: the exit looks them up */
	struct fs_struct *fs = bpf_get_current_task_btf()->fs;
	struct sa_same_walk w = { .dentry = fp.dentry, .vfsmnt = fp.mnt, .root_dentry = fs->root.dentry, .root_mnt = fs->root.mnt, .pos = x->len };
	w.mnt_root = BPF_CORE_READ(fp.mnt, mnt_root);
	bpf_loop(SA_PATH_DEPTH, sa_same_step, &w, 0);
	x->same = w.same;
	return 1;
}

static __always_inline bool sa_file_has_name(struct file *f, const char *name, __u32 len)
{
	__u32 zero = 0;
	struct path_scratch *s = bpf_map_lookup_elem(&sa_path_scratch, &zero);
	if (!s || len < 2 || len > SA_STR_MAX - 1)
		return false;
	if (bpf_probe_read_kernel(&s->buf[SA_SAME_NAME], sa_bound(len, SA_STR_MAX - 1), name))
		return false;
	struct sa_same_ctx x = { .file = (__u64)f, .len = len };
	bpf_loop(1, sa_same_begin, &x, 0);
	return x.same;
}

/* The host's view of a path: the walk goes past the task's root (a chroot) up to the root of the host's mount
 * namespace, and out of another mount namespace (a container's) through the host's mount of the same
 * filesystem. Its own bpf_loop callback, so the process-view walk (sa_walk_step) stays as small as it was; its
 * state is in the call state (sa_call.host_walk), not on the stack, which the 6.1 verifier counts across frames. */

static long sa_host_step(__u32 i, void *unused)
{
	__u32 zero = 0;
	struct path_scratch *s = bpf_map_lookup_elem(&sa_path_scratch, &zero);
	struct sa_call *c = sa_call_state();
	if (!s || !c)
		return 1;
	struct sa_host_walk *w = &c->host_walk;
	struct dentry *dentry = w->dentry;
	struct vfsmount *vfsmnt = w->vfsmnt;
	struct mount *mnt = w->mnt;
	struct dentry *mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
	struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
	if (dentry == mnt_root || dentry == parent) {
		if (sa_mnt_ns_inum(mnt) != w->host_ns) {
			/* Another namespace's mount: on through the host's mount of the filesystem, from this dentry. */
			struct mount *host = sa_host_mount(BPF_CORE_READ(vfsmnt, mnt_sb), w->host_ns);
			if (!host || host == mnt)
				return 1;
			w->mnt = host;
			w->vfsmnt = &host->mnt;
			return 0;
		}
		struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
		if (mnt == mnt_parent) {
			w->done = true;
			return 1;
		}
		w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = mnt_parent;
		w->vfsmnt = &mnt_parent->mnt;
		return 0;
	}
	if (sa_prepend_component(s, &w->off, dentry))
		return 1;
	w->dentry = parent;
	return 0;
}

/* Is the task's root the host's: the root of a mount at the top of the host's mount namespace (or right under
 * it)? Also yes when the host's namespace is not known. */
static __always_inline bool sa_root_is_host(struct fs_struct *fs, __u32 host_ns)
{
	if (!host_ns)
		return true;
	struct vfsmount *vm = BPF_CORE_READ(fs, root.mnt);
	struct mount *m = container_of(vm, struct mount, mnt);
	if (BPF_CORE_READ(fs, root.dentry) != BPF_CORE_READ(vm, mnt_root) || sa_mnt_ns_inum(m) != host_ns)
		return false;
	struct mount *parent = BPF_CORE_READ(m, mnt_parent);
	return parent == m || BPF_CORE_READ(parent, mnt_parent) == parent;
}

/* The host's path of path argument p (into c->host, c->host_slot = p), for a task whose root is not the host's:
 * at enter the host's path of the task's root, then the name resolved under it; at exit (f) the host's path of
 * the object opened. Only the first path argument gets one; host_len stays 0 when the host sees the same path
 * (or when the walk does not reach the host's root: a filesystem the host has not mounted). */
static __always_inline void sa_host_view(struct sa_call *c, __u32 p, struct file *f)
{
	p &= SA_POINT_ARGS - 1;
	if (c->host_len)
		return;
	struct sa_settings *st = sa_get_settings();
	/* Through the task's BTF pointer: plain loads, not helper calls. */
	struct fs_struct *fs = bpf_get_current_task_btf()->fs;
	/* Most calls come from processes whose root is the host's: the last root found to be the host's, per CPU, answers
	 * without the mount walk. */
	c->root_now[0] = (__u64)fs->root.mnt;
	c->root_now[1] = (__u64)fs->root.dentry;
	if (c->root_now[0] == c->host_root[0] && c->root_now[1] == c->host_root[1] && c->host_root[0])
		return;
	if (!st || sa_root_is_host(fs, st->host_mnt_ns)) {
		if (st)
			__builtin_memcpy(c->host_root, c->root_now, sizeof(c->host_root));
		return;
	}
	__u32 zero = 0;
	struct path_scratch *ps = bpf_map_lookup_elem(&sa_path_scratch, &zero);
	if (!ps)
		return;
	struct sa_host_walk *w = &c->host_walk;
	const struct path *from = f ? &f->f_path : &fs->root;
	w->host_ns = st->host_mnt_ns;
	w->off = SA_PATH_MAX + 1;
	w->done = false;
	w->dentry = BPF_CORE_READ(from, dentry);
	w->vfsmnt = BPF_CORE_READ(from, mnt);
	w->mnt = container_of(w->vfsmnt, struct mount, mnt);
	bpf_loop(SA_PATH_DEPTH, sa_host_step, NULL, 0);
	if (!w->done)
		return;
	__u32 off = w->off;
	__u32 len = off > SA_PATH_MAX ? 0 : (SA_PATH_MAX + 1 - off) & SA_MASK_4K;
	if (len > SA_STR_MAX - 1)
		len = SA_STR_MAX - 1;
	len = sa_bound(len, SA_STR_MAX - 1);
	if (len)
		bpf_probe_read_kernel(c->host, len, &ps->buf[off & SA_MASK_4K]);
	if (!f) {
		/* After the root's path, the name as resolved under the root ("/" adds nothing after a root). */
		__u32 n = sa_bound(c->str_len[p], SA_STR_MAX - 1);
		if (n == 1 && len)
			n = 0;
		if (n)
			bpf_probe_read_kernel(&c->host[len], n, c->str[p]);
		len += n;
	} else if (!len) {
		c->host[0] = '/';
		len = 1;
	}
	if (len > SA_STR_MAX - 1)
		len = SA_STR_MAX - 1; /* cut: the beginning is what a Prefix matches */
	if (len == c->str_len[p])
		return; /* the same path: a root that is the host's in all but name */
	/* The verifier of older kernels (6.1) loses the bound through the compare above: masked as an instruction. */
	__u32 end = sa_bound(len, SA_STR_MAX - 1);
	c->host[end] = 0;
	c->host_len = end;
	c->host_slot = p;
}
