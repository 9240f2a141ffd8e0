/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The common path of every policy hook: one program attachment per attach point serves every policy hook
 * there. A call costs a few lookups whatever the number of policies:
 *   1. the point's active generation and configuration;
 *   2. the process-level dimensions (the binary): most calls of most processes end here;
 *   3. only if a selector survives, the arguments are read, then the argument dimensions;
 *   4. for each surviving bit, in order, the checks that are not indexed (scope, pids, capabilities,
 *      GreaterThan/LessThan/Mask); each hook's first selector that passes decides its actions. */
#pragma once
#include "actions.h"
#include "aftercall.h"

static __always_inline bool sa_selector_passes(struct sa_act_run *r, struct sa_call *c, const struct sa_selector *sel)
{
	if (!sa_in_scope(sel) || !sa_match_pids(sel, r->tgid) || !sa_match_caps(sel))
		return false;
	if (sel->ns_any && !sa_match_ns(sel, r->tgid))
		return false;
	for (int i = 0; i < SA_MAX_INT_CMPS; i++) {
		if (i >= sel->ncmps)
			break;
		const struct sa_int_cmp *cmp = &sel->cmps[i];
		__u64 v = c->ints[cmp->slot & (SA_POINT_ARGS - 1)];
		/* CapabilitiesGained: the new set (slot `value`) holds a capability the old one (`slot`) lacks. */
		if (SA_FAMILY == SA_FAMILY_FUNCTION && cmp->cmp == SA_CMP_CAPS_GAINED) {
			if (!(c->ints[cmp->value & (SA_POINT_ARGS - 1)] & ~v))
				return false;
		} else if (!sa_match_int_cmp(cmp, v))
			return false;
	}
	return true;
}

/* Selector bit `bit`: its checks that are not indexed, then, when they pass, its hook's actions. Returns the next bit
 * to consider: past the hook's later selectors once one matched (they do not count then). A global function: the
 * verifier checks it once, on its own, instead of once per path of the selector walk of every program (sa_policy_tp:
 * 636k processed instructions when inlined). Its only argument is a number: the call state (the run's values in
 * sa_call.act) and the selector are looked up here, so the event is a map value, as 6.1 wants of a map update's value. */
SA_GLOBAL_FN int sa_selector_run(__u32 bit)
{
	struct sa_call *c = sa_call_state();
	if (!c)
		return SA_SEL_BITS;
	struct sa_act_run *r = &c->act;
	struct sa_selector_key *k = &c->sel_key;
	k->ap = r->ap;
	k->gen = r->gen;
	k->bit = bit;
	const struct sa_selector *sel = bpf_map_lookup_elem(&sa_selectors, k);
	if (!sel || !sa_selector_passes(r, c, sel))
		return bit + 1;
	r->bit = bit + 1;
	sa_act(r, c, sel);
	return sel->hook_end;
}

/* The next surviving selector bit (a bpf_loop callback: each step skips an empty word or handles one bit). */
static long sa_next_selector(__u32 i, struct sa_run *r)
{
	__u32 bit = r->bit;
	if (bit >= SA_SEL_BITS)
		return 1;
	__u32 w = bit >> 6;
	__u64 word = r->c->live[w & (SA_SEL_WORDS - 1)] & (~0ULL << (bit & 63));
	if (!word) {
		r->bit = (w + 1) << 6;
		return 0;
	}
	bit = (w << 6) | sa_lowest_bit(word);
	r->bit = sa_selector_run(bit);
	return 0;
}

/* Where a call's exit check is armed: the thread's (an io_uring request's completion has its own, iouring.bpf.c). */
#ifndef SA_PENDING_GET
#define SA_PENDING_GET() bpf_task_storage_get(&sa_pending, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE)
#endif

/* A syscall whose exit looks the object up again: saves what the exit needs (after the process-level
 * dimensions passed, so only calls that entered a hook pay for it). */
static __always_inline void sa_arm_exit(struct sa_run *r, const struct sa_source *src)
{
#if SA_FAMILY == SA_FAMILY_TRACEPOINT
	__u8 flags = r->pt->flags & (SA_POINT_EXIT_FD | SA_POINT_EXIT_EXE);
	if (!flags || src->file)
		return;
	struct sa_pending *pend = SA_PENDING_GET();
	if (!pend)
		return;
	pend->ap = r->ap;
	pend->gen = r->gen;
	pend->flags = flags;
	__builtin_memcpy(pend->fired, r->c->fired, sizeof(pend->fired));
	__builtin_memcpy(pend->proc_live, r->c->proc_live, sizeof(pend->proc_live));
	bpf_probe_read_kernel(pend->record, sizeof(pend->record), (void *)src->record);
	/* The first path argument (opens and execs have one). */
	pend->slot = 0;
	for (int p = SA_POINT_ARGS - 1; p >= 0; p--)
		if (p < r->pt->nargs && (r->pt->args[p].type == SA_ARG_USER_PATH || r->pt->args[p].type == SA_ARG_USER_PATH_AT))
			pend->slot = p;
	__u32 slot = pend->slot & (SA_POINT_ARGS - 1);
	bool same = r->c->raw_len[slot] == 0; /* passed as resolved: the resolved string is the passed one */
	pend->raw_len = same ? r->c->str_len[slot] : r->c->raw_len[slot];
	pend->plain = same && !r->c->host_len && !(r->c->trunc_mask & (1 << slot));
	/* The name and its terminator (the exit reads raw_len bytes). */
	bpf_probe_read_kernel(pend->raw, sa_bound(pend->raw_len, SA_STR_MAX - 1) + 1, same ? r->c->str[slot] : r->c->raw[slot]);
#endif
}

/* kernelStackTrace / userStackTrace: the stacks are taken here, where the program's context is at hand (the
 * selectors run in a bpf_loop callback), only at points with such a hook and only for calls a selector may still
 * match; each event that asks copies them. A failed walk leaves a length of 0 (counted by the agent). */
static __always_inline void sa_take_stacks(struct sa_run *r, void *ctx)
{
	r->c->kstack_len = 0;
	r->c->ustack_len = 0;
#if SA_FAMILY != SA_FAMILY_CGROUP
	if (!r->pt->stacks || !ctx)
		return;
	long n = bpf_get_stack(ctx, r->c->kstack, SA_EXTRAS_STACK_BYTES, 0);
	r->c->kstack_len = n > 0 ? n : 0;
	n = bpf_get_stack(ctx, r->c->ustack, SA_EXTRAS_STACK_BYTES, BPF_F_USER_STACK);
	r->c->ustack_len = n > 0 ? n : 0;
#endif
}

/* How an exit-only program reads the kernel objects of its quick answer: through bpf_probe_read_kernel (sa_policy_xonly,
 * every kernel), or as typed loads (sa_policy_xcast): the address made a read-only BTF pointer by bpf_rdonly_cast (6.2
 * on; the verifier turns the call into a move) and read by plain loads the JIT guards, not by a helper call each. */
enum sa_exit_only { SA_NOT_EXIT_ONLY = 0, SA_XONLY_HELPER_READS = 1, SA_XONLY_TYPED_LOADS = 2 };

#if SA_FAMILY == SA_FAMILY_TRACEPOINT && !defined(SA_IO_URING)
#define SA_QUICK_DEPTH 24 /* directories from an opened file up to the task's root the quick answer walks; deeper: none */

/* __weak: on a kernel whose BTF lacks it the object still loads (libbpf leaves the call unresolved) as long as
 * sa_policy_xcast, the one program that calls it, is not among the programs loaded. */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;
#define SA_KCAST(type, addr) ((type *)bpf_rdonly_cast((void *)(addr), bpf_core_type_id_kernel(type)))

/* A typed load's result as a plain number (written to the call state and read back): the walk below keeps kernel
 * addresses as numbers, for mount arithmetic and so that the verifier does not see a pointer on some paths and a
 * number on others (twice the states). */
static __always_inline __u64 sa_as_number(__u64 *slot, __u64 v)
{
	*slot = v;
	return *(volatile __u64 *)slot;
}

/* The root dentry of mount `vfsmnt` (the task's root mount's is known: root_mnt_root). */
static __always_inline __u64 sa_mnt_root_of(struct sa_call *c, __u64 vfsmnt, __u64 root_mnt, __u64 root_mnt_root,
					    enum sa_exit_only reads)
{
	__u64 mnt_root = root_mnt_root;
	if (vfsmnt == root_mnt)
		return mnt_root;
	if (reads == SA_XONLY_TYPED_LOADS)
		return sa_as_number(&c->quick_piece[6], (__u64)SA_KCAST(struct vfsmount, vfsmnt)->mnt_root);
	bpf_probe_read_kernel(&mnt_root, sizeof(mnt_root), &((struct vfsmount *)vfsmnt)->mnt_root);
	return mnt_root;
}

/* A dentry's parent: one helper read of the span from d_parent (kept in c->quick_piece: the dentry's name and inode are a
 * few words after it on every kernel we load on), or a typed load. False: not read. */
static __always_inline bool sa_dentry_parent(struct sa_call *c, __u64 dentry, __u64 *parent, enum sa_exit_only reads)
{
	__u64 *piece = c->quick_piece; /* in the call state, not on the stack (6.1's 512 bytes over all frames) */
	if (reads == SA_XONLY_TYPED_LOADS) {
		*parent = sa_as_number(&piece[0], (__u64)SA_KCAST(struct dentry, dentry)->d_parent);
		return true;
	}
	__u32 base = bpf_core_field_offset(struct dentry, d_parent);
	__u32 hash_at = bpf_core_field_offset(struct dentry, d_name) - base; /* struct qstr starts with hash_len */
	__u32 ino_at = bpf_core_field_offset(struct dentry, d_inode) - base;
	if (ino_at + 8 > 4 * sizeof(__u64) || hash_at + 8 > 4 * sizeof(__u64))
		return false;
	if (bpf_probe_read_kernel(piece, 4 * sizeof(__u64), (void *)(dentry + base)))
		return false;
	*parent = piece[0];
	return true;
}

/* The name and inode of the dentry sa_dentry_parent read last, as the opened file's top directory so far. */
static __always_inline void sa_dentry_as_top(struct sa_call *c, __u64 dentry, enum sa_exit_only reads)
{
	struct sa_top *top = &c->quick_top;
	top->dentry = dentry;
	if (reads == SA_XONLY_TYPED_LOADS) {
		struct dentry *d = SA_KCAST(struct dentry, dentry);
		top->hash_len = d->d_name.hash_len;
		top->inode = (__u64)d->d_inode;
		top->name = (__u64)d->d_name.name;
		top->len = d->d_name.len;
		return;
	}
	__u32 base = bpf_core_field_offset(struct dentry, d_parent);
	__u32 hash_at = bpf_core_field_offset(struct dentry, d_name) - base;
	__u32 len_at = bpf_core_field_offset(struct dentry, d_name) + bpf_core_field_offset(struct qstr, len) - base;
	__u32 name_at = bpf_core_field_offset(struct dentry, d_name) + bpf_core_field_offset(struct qstr, name) - base;
	__u32 ino_at = bpf_core_field_offset(struct dentry, d_inode) - base;
	char *piece = (char *)c->quick_piece;
	top->hash_len = *(__u64 *)(piece + (hash_at & 31));
	top->inode = *(__u64 *)(piece + (ino_at & 31));
	top->name = *(__u64 *)(piece + (name_at & 31));
	top->len = *(__u32 *)(piece + (len_at & 31));
}

/* The first component of the opened file's path as the task sees it (the top directory under its root, or the file
 * itself when it is there), found by walking the dentries up to the task's root without building the path, into
 * c->quick_top. Not found (len 0) when the walk is longer than SA_QUICK_DEPTH, leaves the task's tree, or the file is the
 * root. `root_mnt_root`: the root dentry of the task's root mount (known without a read). */
static __always_inline void sa_top_of(struct sa_call *c, __u64 dentry, __u64 vfsmnt, __u64 root_d, __u64 root_mnt,
				      __u64 root_mnt_root, enum sa_exit_only reads)
{
	__u32 mnt_at = bpf_core_field_offset(struct mount, mnt);
	__u64 mnt_root = sa_mnt_root_of(c, vfsmnt, root_mnt, root_mnt_root, reads);
	c->quick_top.len = 0;
	for (int i = 0; i < SA_QUICK_DEPTH; i++) {
		if (dentry == root_d && vfsmnt == root_mnt)
			return;
		__u64 parent = 0;
		if (!sa_dentry_parent(c, dentry, &parent, reads))
			break;
		if (dentry == mnt_root) {
			/* A bind mount of a directory: the full walk goes on through the filesystem's own mount (sa_walk_step),
			 * so the path's first component is not this one's. */
			if (parent != dentry)
				break;
			/* A filesystem's root: on from where it is mounted, in the mount above. */
			__u64 m = vfsmnt - mnt_at, up, at;
			if (reads == SA_XONLY_TYPED_LOADS) {
				up = sa_as_number(&c->quick_piece[4], (__u64)SA_KCAST(struct mount, m)->mnt_parent);
				at = sa_as_number(&c->quick_piece[5], (__u64)SA_KCAST(struct mount, m)->mnt_mountpoint);
			} else {
				up = (__u64)BPF_CORE_READ((struct mount *)m, mnt_parent);
				at = (__u64)BPF_CORE_READ((struct mount *)m, mnt_mountpoint);
			}
			if (up == m)
				break;
			dentry = at;
			vfsmnt = up + mnt_at;
			mnt_root = sa_mnt_root_of(c, vfsmnt, root_mnt, root_mnt_root, reads);
			continue;
		}
		if (parent == dentry)
			break;
		/* Written as the walk goes (not kept in registers: the exit-only program's stack is at 6.1's limit). */
		sa_dentry_as_top(c, dentry, reads);
		dentry = parent;
	}
	c->quick_top.len = 0;
}

/* The selectors whose quick values allow the top directory's name: the last answer on this CPU for the same directory,
 * point and generation (a process's opens stay in a few trees), else looked up. The same directory:
 * the same dentry with the same name hash, length and inode; a rename changes the hash, and only root can make names
 * in the root directory, where a stale dentry address would have to come back with a colliding hash. NULL: the name
 * could not be read. */
static __always_inline const __u64 *sa_quick_hits(struct sa_run *r, const struct sa_top *top, __u32 qd)
{
	struct sa_call *c = r->c;
	struct sa_quick_seen *seen = &c->quick_seen[(__u32)top->hash_len & (SA_QUICK_SEEN - 1)];
	if (seen->dentry == top->dentry && seen->hash_len == top->hash_len && seen->inode == top->inode &&
	    seen->ap == r->ap && seen->gen == r->gen && seen->dim == qd)
		return seen->hit;
	struct sa_lpm_key *k = &c->key.lpm;
	k->hdr = (struct sa_value_hdr){ .gen = r->gen, .ap = r->ap, .dim = qd };
	k->data[0] = '/';
	if (bpf_probe_read_kernel(&k->data[1], sa_bound(top->len, 0xff), (void *)top->name))
		return NULL;
	k->data[sa_bound(top->len + 1, 0xff)] = '/';
	k->prefixlen = 8 * sizeof(k->hdr) + 8 * (top->len + 2);
	const struct sa_bitmap *hit = bpf_map_lookup_elem(&sa_str_prefix, k);
	seen->dentry = 0;
	for (int w = 0; w < SA_SEL_WORDS; w++)
		seen->hit[w] = hit ? hit->w[w] : 0;
	seen->hash_len = top->hash_len;
	seen->inode = top->inode;
	seen->ap = r->ap;
	seen->gen = r->gen;
	seen->dim = qd;
	seen->dentry = top->dentry;
	return seen->hit;
}

/* Drops the selectors quick dimension `qd` (at `d`) cares for whose values do not allow `top`'s name. True when no selector
 * is left. */
static __always_inline bool sa_quick_drop(struct sa_run *r, const struct sa_top *top, __u32 qd, const struct sa_dim *d)
{
	if (!top->len || top->len > SA_LPM_STR_MAX - 2)
		return false;
	const __u64 *hit = sa_quick_hits(r, top, qd);
	if (!hit)
		return false;
	__u64 any = 0;
	for (int w = 0; w < SA_SEL_WORDS; w++) {
		r->c->live[w] &= ~d->care[w] | (hit[w] ^ d->neg[w]);
		any |= r->c->live[w];
	}
	return !any;
}

/* The quick answer of a point matched at exit alone: the selectors that need a Prefix or Equal of the path (the point's
 * quick dimension, dims[ndims]) are dropped unless the first component of the opened file's path is one their values
 * allow, and those that need a Postfix of it (dims[ndims + 1]) unless the file's own name is the last component of one of
 * their values. True when no selector is left. Only where the full path would not say more: the task's root is the host's (a
 * chroot or container also matches by the host's path) and the file has no other name (hard links) that a selector could
 * know by its inode (SA_POINT_EXIT_NO_LINKS: none can). */
static __always_inline bool sa_quick_reject(struct sa_run *r, __u64 f, enum sa_exit_only reads)
{
	struct sa_call *c = r->c;
	__u32 qd = r->pt->ndims;
	if (!(r->pt->flags & SA_POINT_EXIT_QUICK) || qd >= SA_MAX_DIMS)
		return false;
	struct fs_struct *fs = bpf_get_current_task_btf()->fs;
	struct vfsmount *root_vm = fs->root.mnt;
	__u64 root_mnt = (__u64)root_vm, root_d = (__u64)fs->root.dentry;
	if (root_mnt != c->host_root[0] || root_d != c->host_root[1] || !root_mnt)
		return false;
	__u64 vfsmnt, dentry;
	/* Another name of the file (a hard link) may be one a selector lists by inode: the full path looks it up. */
	bool links = !(r->pt->flags & SA_POINT_EXIT_NO_LINKS);
	if (reads == SA_XONLY_TYPED_LOADS) {
		struct file *file = SA_KCAST(struct file, f);
		if (links && file->f_inode->__i_nlink > 1)
			return false;
		vfsmnt = sa_as_number(&c->quick_piece[4], (__u64)file->f_path.mnt);
		dentry = sa_as_number(&c->quick_piece[5], (__u64)file->f_path.dentry);
	} else {
		/* f_inode and f_path in one read (a few words apart on every kernel we load on), as sa_same_begin. */
		__u32 ino_at = bpf_core_field_offset(struct file, f_inode), path_at = bpf_core_field_offset(struct file, f_path);
		__u32 from = ino_at < path_at ? ino_at : path_at;
		__u64 *span = c->quick_piece;
		if (bpf_probe_read_kernel(span, sizeof(c->quick_piece), (void *)(f + from)))
			return false;
		__u64 inode = span[((ino_at - from) / 8) & (SA_FILE_SPAN / 8 - 1)];
		vfsmnt = span[((path_at - from) / 8) & (SA_FILE_SPAN / 8 - 1)];
		dentry = span[((path_at - from) / 8 + 1) & (SA_FILE_SPAN / 8 - 1)];
		if ((ino_at < path_at ? path_at + 16 : ino_at + 8) - from > SA_FILE_SPAN)
			return false;
		if (links && BPF_CORE_READ((struct inode *)inode, __i_nlink) > 1)
			return false;
	}
	__u64 root_mnt_root = (__u64)root_vm->mnt_root;
	/* The file's own name first: one dentry read, no walk. Not where the file is the root of its mount (a bind mount of a
	 * file, a mount point): the path's last component is then another dentry's name. */
	const struct sa_dim *nd = &r->pt->dims[sa_bound(qd + 1, SA_MAX_DIMS - 1)]; /* 6.1 loses a spilled u32's bound */
	if (qd + 1 < SA_MAX_DIMS && nd->kind && dentry != sa_mnt_root_of(c, vfsmnt, root_mnt, root_mnt_root, reads)) {
		__u64 parent = 0;
		if (!sa_dentry_parent(c, dentry, &parent, reads) || parent == dentry)
			return false;
		sa_dentry_as_top(c, dentry, reads);
		if (sa_quick_drop(r, &c->quick_top, qd + 1, nd))
			return true;
	}
	const struct sa_dim *d = &r->pt->dims[sa_bound(qd, SA_MAX_DIMS - 1)];
	if (!d->kind)
		return false;
	sa_top_of(c, dentry, vfsmnt, root_d, root_mnt, root_mnt_root, reads);
	return sa_quick_drop(r, &c->quick_top, qd, d);
}

/* What an exit-only point's hooks read, as the enter would have had it: the syscall's arguments from the task's saved
 * user registers (the record the enter tracepoint would have got, in the call state), the return value, and for a
 * successful open the file it opened: the path argument is that file's path, the string passed is read again from user
 * memory for the event. A failed call has no file: its name is resolved as at enter. NULL: the quick answer rejected
 * the call. */
static __always_inline const struct sa_source *sa_exit_only_source(struct sa_run *r, struct trace_event_raw_sys_exit *ctx,
								   enum sa_exit_only reads)
{
	struct sa_call *c = r->c;
	long ret = ctx->ret;
	__u64 f = 0;
	if (ret >= 0) {
		f = (__u64)sa_fd_file(ret);
		if (f && sa_quick_reject(r, f, reads))
			return NULL;
	}
	r->at_exit = true;
	r->ret = ret;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	__u64 *rec = (__u64 *)c->exit_record;
	rec[0] = 0;
	rec[1] = regs->orig_ax;
	rec[2] = regs->di;
	rec[3] = regs->si;
	rec[4] = regs->dx;
	rec[5] = regs->r10;
	rec[6] = regs->r8;
	rec[7] = regs->r9;
	struct sa_source *src = &c->exit_src;
	__builtin_memset(src, 0, sizeof(*src));
	src->file = f;
	src->ret = ret;
	void *at = c->exit_record;
	bpf_probe_read_kernel(&src->record, sizeof(src->record), &at);
	if (!f)
		return src;
	/* The first path argument's passed string (the file's path replaces the name in str[]). */
	for (int p = 0; p < SA_POINT_ARGS; p++) {
		if (p >= r->pt->nargs)
			break;
		__u8 t = r->pt->args[p].type;
		if (t != SA_ARG_USER_PATH && t != SA_ARG_USER_PATH_AT)
			continue;
		__u64 uptr = rec[(r->pt->args[p].offset / 8) & 7];
		long n = bpf_probe_read_user_str(c->raw[p], SA_STR_MAX, (void *)uptr);
		c->raw_len[p] = n > 1 ? n - 1 : 0;
		break;
	}
	return src;
}
#endif

#if SA_FAMILY == SA_FAMILY_TRACEPOINT && !defined(SA_IO_URING)
/* A raw_syscalls/sys_enter or sys_exit record (both: the syscall number at offset 8): whether the point's syscall filter
 * lets the call on to the selectors. Read through the record's address, not as a context field: a context read at offset
 * 8 would make the attach of this program refuse records shorter than 16 bytes (sys_enter_getppid's). */
static __always_inline bool sa_sysid_wanted(const struct sa_point *pt, const struct sa_source *src)
{
	__u64 id = ~0ULL;
	bpf_probe_read_kernel(&id, sizeof(id), (void *)(src->record + offsetof(struct trace_event_raw_sys_enter, id)));
	if (id >= SA_SYSID_BITS)
		return false;
	return pt->sysids[id / 64] & (1ULL << (id % 64));
}
#endif

/* Runs the policy hooks of attach point `ap` on this call; returns the errno an LSM or cgroup hook should
 * return (0: allow). `skip`: at a syscall's exit, the selector bits whose hooks matched at its enter. `ctx`: the
 * program's context for stack traces, apart from `src` (the syscall exit's src lives in the call state, where a
 * pointer loses its type). */
static __always_inline __s32 sa_policy_run_ctx(__u32 ap, __u8 op, const struct sa_source *src, const __u64 *skip, void *ctx,
						enum sa_exit_only exit_only)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__s32 verdict = 0;
	__u16 nret __attribute__((unused)) = 0; /* an io_uring request runs no return hooks */
	struct sa_run r = { .ap = ap, .op = op, .tgid = pid_tgid >> 32, .tid = (__u32)pid_tgid, .alive = true, .ret = src ? src->ret : 0 };
	__u32 *gen = bpf_map_lookup_elem(&sa_active, &ap);
	if (!gen || !*gen || sa_is_agent(r.tgid))
		return 0;
	r.gen = *gen;
	__u32 pi = sa_point_index(ap, r.gen);
	r.pt = bpf_map_lookup_elem(&sa_points, &pi);
	if (!r.pt)
		return 0;
#if SA_FAMILY == SA_FAMILY_TRACEPOINT && !defined(SA_IO_URING)
	/* Before anything else: the other syscalls are not this point's calls (nor counted as seen). */
	if (r.pt->sysid_filter && src && !skip && !exit_only && !sa_sysid_wanted(r.pt, src))
		return 0;
#endif
	r.c = sa_call_state();
	struct sa_point_stats *ps = bpf_map_lookup_elem(&sa_point_stats, &ap);
	if (!r.c || !ps)
		return 0;
#if SA_FAMILY == SA_FAMILY_TRACEPOINT && !defined(SA_IO_URING)
	/* A point matched at its exit alone has no enter program; while the agent switches a point between the two modes
	 * both programs are attached, and the generation says which one runs. */
	if (op == SA_OP_TRACEPOINT && !skip && !!exit_only != !!(r.pt->flags & SA_POINT_EXIT_ONLY))
		return 0;
#endif
	ps->seen++; /* a per-CPU slot: no atomic needed */
	__builtin_memcpy(r.c->live, r.pt->valid, sizeof(r.c->live));
	__builtin_memset(r.c->fired, 0, sizeof(r.c->fired));
	r.c->file_ino = 0;
	if (skip) {
		/* The process-level dimensions as the enter found them: after an exec, the binary is the new
		 * program, and matchBinaries is about the one that called exec. */
		r.at_exit = true;
		__u64 any = 0;
		for (int w = 0; w < SA_SEL_WORDS; w++) {
			r.c->live[w] = r.c->proc_live[w] & ~skip[w];
			any |= r.c->live[w];
		}
		if (!any)
			return 0;
	} else if (r.pt->nproc_dims && !sa_eval_dims(&r, 0, r.pt->nproc_dims)) {
		return 0;
	}
#if SA_FAMILY == SA_FAMILY_TRACEPOINT && !defined(SA_IO_URING)
	if (exit_only) {
		src = sa_exit_only_source(&r, (struct trace_event_raw_sys_exit *)ctx, exit_only);
		if (!src)
			return 0;
	} else
#endif
#if SA_FAMILY == SA_FAMILY_TRACEPOINT
	if (!skip && r.pt->flags & (SA_POINT_EXIT_FD | SA_POINT_EXIT_EXE))
		__builtin_memcpy(r.c->proc_live, r.c->live, sizeof(r.c->proc_live));
#endif
	sa_read_args(r.c, r.pt, src);
	if (!skip && !exit_only)
		sa_after_note(&r, src);
	if (sa_eval_dims(&r, r.pt->nproc_dims, r.pt->ndims)) {
		sa_take_stacks(&r, ctx);
		struct sa_act_run *a = &r.c->act;
		a->ap = ap;
		a->gen = r.gen;
		a->tgid = r.tgid;
		a->tid = r.tid;
		a->op = op;
		a->at_exit = r.at_exit;
		a->ret = r.ret;
		a->verdict = 0;
		a->nret = 0;
#ifdef SA_USDT
		if (op == SA_OP_USDT)
			sa_usdt_locations(ctx, a->wloc);
#endif
		bpf_loop(SA_SEL_BITS + SA_SEL_WORDS, sa_next_selector, &r, 0);
		verdict = a->verdict;
		nret = a->nret;
	}
	if (!exit_only)
		sa_arm_exit(&r, src);
#ifndef SA_IO_URING /* an io_uring request has no syscall return here: its return hooks are not run (docs/policies.md) */
	if (nret) {
		/* The return hooks that matched: their events wait in sa_ret_events for the return. */
		struct sa_ret_state rs = { .ap = ap, .gen = r.gen, .n = nret };
		__builtin_memcpy(rs.bits, r.c->act.ret_bits, sizeof(rs.bits));
		if (r.pt->flags & SA_POINT_EXIT_IMA) {
			/* A nonzero return here would skip the sleepable program after this one on the hook: it returns it. */
			rs.verdict = verdict;
			verdict = 0;
		}
		/* The key in the call state: the syscall exit program's frame is at the verifier's combined limit. */
		struct sa_ret_key *k = &r.c->ret_key;
		k->id = pid_tgid;
		k->n = 0;
		k->ap = ap;
		bpf_map_update_elem(&sa_ret_pending, k, &rs, BPF_ANY);
	}
#endif
	return verdict;
}

static __always_inline __s32 sa_policy_run(__u32 ap, __u8 op, const struct sa_source *src, const __u64 *skip)
{
	return sa_policy_run_ctx(ap, op, src, skip, src->ctx, SA_NOT_EXIT_ONLY);
}

#if SA_FAMILY == SA_FAMILY_TRACEPOINT && !defined(SA_IO_URING)
/* The exit of an open whose hooks match at the exit alone (SA_POINT_EXIT_ONLY; ctx: its sys_exit record). */
static __always_inline void sa_policy_exit_only(__u32 ap, struct trace_event_raw_sys_exit *ctx, enum sa_exit_only reads)
{
	sa_policy_run_ctx(ap, SA_OP_TRACEPOINT, NULL, NULL, ctx, reads);
}
#endif

#if SA_FAMILY == SA_FAMILY_TRACEPOINT
/* The exit side of sa_arm_exit (a syscall's exit, an io_uring open's completion): `f` is the object the call opened or
 * executed, its return in c->exit_ret. Unless `f` has exactly the name the enter matched on, the point's hooks the
 * enter let through on the process and did not match run again, their path arguments now `f`'s path. */
static __always_inline void sa_exit_recheck(struct sa_call *c, const struct sa_pending *pend, struct file *f, __u8 op, void *ctx)
{
	/* The object opened has the path the enter matched its hooks on (pend->plain: the name passed, absolute and
	 * normal), and no other name: the selectors would see what the enter's saw. */
	if (pend->plain && sa_file_has_name(f, pend->raw, pend->raw_len))
		return;
	__u32 ap = pend->ap, gen = pend->gen;
	__builtin_memcpy(c->skip, pend->fired, sizeof(c->skip));
	__builtin_memcpy(c->proc_live, pend->proc_live, sizeof(c->proc_live));
	__builtin_memcpy(c->exit_record, pend->record, sizeof(c->exit_record));
	__u32 slot = pend->slot & (SA_POINT_ARGS - 1);
	c->raw_len[slot] = pend->raw_len;
	bpf_probe_read_kernel(c->raw[slot], SA_STR_MAX, pend->raw);
	__u32 *active = bpf_map_lookup_elem(&sa_active, &ap);
	if (!active || *active != gen)
		return; /* the policies changed in between: the saved selector bits mean other selectors now */
	struct sa_source *src = &c->exit_src;
	__builtin_memset(src, 0, sizeof(*src));
	src->file = (__u64)f;
	src->ret = c->exit_ret;
	void *rec = c->exit_record;
	bpf_probe_read_kernel(&src->record, sizeof(src->record), &rec);
	sa_policy_run_ctx(ap, op, src, c->skip, ctx, SA_NOT_EXIT_ONLY);
}
#endif

/* The events a call's enter (or hook) held for its return (sa_ret_events) and the state that says which: taken once,
 * by the return probe or by the sleepable program that completes them (lsm.bpf.c's imaHash). */
static __always_inline bool sa_held_take(__u64 id, __u32 ap, struct sa_ret_state *st)
{
	struct sa_ret_key pk = { .id = id, .n = 0, .ap = ap };
	struct sa_ret_state *rs = bpf_map_lookup_elem(&sa_ret_pending, &pk);
	if (!rs)
		return false;
	*st = *rs;
	bpf_map_delete_elem(&sa_ret_pending, &pk);
	return true;
}

/* The i-th held event and the selector that held it; a held event evicted while the call ran is counted lost. The
 * caller deletes the entry at *k once done with it. */
static __always_inline struct policy_event *sa_held_event(struct sa_ret_key *k, const struct sa_ret_state *st, __u32 i,
							  const struct sa_selector **sel)
{
	struct policy_event *ev = bpf_map_lookup_elem(&sa_ret_events, k);
	if (!ev) {
		sa_count_lost(SA_LOST_RET_EVENT);
		return NULL;
	}
	struct sa_selector_key sk = { .ap = k->ap, .gen = st->gen, .bit = st->bits[i & (SA_RET_MAX - 1)] };
	*sel = bpf_map_lookup_elem(&sa_selectors, &sk);
	return ev;
}

/* The return of a call with return probes (a syscall's exit tracepoint, a kernel function's kretprobe): the events
 * its enter kept for the return hooks that matched there are posted with the return value when their return
 * filters pass, after the return actions (a Sigkill here lands before the return to user space). */
static __always_inline void sa_policy_return(__u32 ap, __s64 ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sa_ret_state st;
	if (!sa_held_take(id, ap, &st))
		return;
	for (__u32 i = 0; i < SA_RET_MAX; i++) {
		if (i >= st.n)
			break;
		struct sa_ret_key k = { .id = id, .n = i, .ap = ap };
		const struct sa_selector *sel = NULL;
		struct policy_event *ev = sa_held_event(&k, &st, i, &sel);
		if (!ev)
			continue;
		if (sel)
			sa_return(sel, ev, ret, id >> 32);
		bpf_map_delete_elem(&sa_ret_events, &k);
	}
}
