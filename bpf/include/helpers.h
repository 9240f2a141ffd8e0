/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What every object shares with the process sensor (the ring buffer, loss counters, settings, pid -> binary,
 * followed pids) and the small helpers around them: record header, submit with batched wake-ups, path walk. */
#pragma once
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "contract.h"

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((void *)(ptr) - __builtin_offsetof(type, member)))
#endif

/* A global BPF function: the verifier checks it once, on its own. In the maps-only object (shared.bpf.c defines
 * SA_MAPS_ONLY) a static one instead, which clang drops since nothing calls it: that object then has no code and no
 * CO-RE relocation, so libbpf loads it without parsing the kernel's BTF (~65 ms of CPU at start-up). */
#ifdef SA_MAPS_ONLY
#define SA_GLOBAL_FN static __attribute__((noinline))
#else
#define SA_GLOBAL_FN __attribute__((noinline))
#endif

#define SA_PATH_DEPTH 64
#define SA_MASK_4K 0xfff
#define SA_MASK_8K 0x1fff

/* Scratch space for building a path backwards. 8 KiB so that a write at any
 * offset below 4 KiB of at most 255 bytes stays inside the value. */
struct path_scratch {
	char buf[2 * (SA_PATH_MAX + 1)];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct path_scratch);
} sa_path_scratch SEC(".maps");

/* ---- Owned by the process sensor, shared (declared in the agent's object specs) by the policy objects ---- */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 32 * 1024 * 1024);
} sa_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SA_LOST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} sa_lost SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sa_settings);
} sa_settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct sa_reader);
} sa_reader SEC(".maps");

/* pid (tgid) -> current binary; written by the process sensor, read by the policy hooks. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 131072);
	__type(key, __u32);
	__type(value, struct sa_binary);
} sa_exec_binary SEC(".maps");

/* tgid -> bit mask of followed pid sets (matchPIDs followForks); children inherit it at fork. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} sa_follow SEC(".maps");

/* sa_proc: struct sa_proc (contract.h), per tgid. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct sa_proc);
} sa_proc SEC(".maps");

static __always_inline struct sa_settings *sa_get_settings(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&sa_settings, &zero);
}

static __always_inline void sa_count_lost(__u32 reason)
{
	__u64 *v = bpf_map_lookup_elem(&sa_lost, &reason);
	if (v)
		*v += 1;
}

static __always_inline void sa_header(struct event_header *h, __u8 op, __u32 size)
{
	h->op = op;
	h->pad0 = 0;
	h->size = size;
	h->cpu = bpf_get_smp_processor_id();
	h->ktime = bpf_ktime_get_boot_ns();
}

/* Sends the first `size` bytes of a scratch record; counts a full ring buffer. The reader is not woken for
 * every record: only once the agent's threshold of pending bytes is reached, when `urgent` (a record user
 * space must decide on), or when it sleeps without a timer because the ring was empty (an idle agent then costs
 * no wake-ups). In between, the reader polls on a short timer. */
static __always_inline void sa_submit(void *rec, __u64 size, bool urgent)
{
	struct sa_settings *st = sa_get_settings();
	__u32 zero = 0;
	struct sa_reader *rd = bpf_map_lookup_elem(&sa_reader, &zero);
	__u64 flags = 0;
	if (urgent || (rd && rd->asleep))
		flags = BPF_RB_FORCE_WAKEUP;
	else if (st && st->wakeup_bytes)
		flags = bpf_ringbuf_query(&sa_events, BPF_RB_AVAIL_DATA) + size >= st->wakeup_bytes ? BPF_RB_FORCE_WAKEUP
														: BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&sa_events, rec, size, flags) < 0)
		sa_count_lost(SA_LOST_RINGBUF_FULL);
}

struct sa_walk {
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	struct dentry *root_dentry;
	struct vfsmount *root_mnt;
	__u32 off;
	bool done;
	bool canonical;
};

#define SA_SB_MOUNTS 8

/* Kernels before the per-superblock mount chain (6.1) keep a list of a superblock's mounts instead. */
struct mount___list {
	struct list_head mnt_instance;
} __attribute__((preserve_access_index));
struct super_block___list {
	struct list_head s_mounts;
} __attribute__((preserve_access_index));

static __always_inline __u32 sa_mnt_ns_inum(struct mount *m)
{
	return BPF_CORE_READ(m, mnt_ns, ns.inum);
}

static __always_inline bool sa_is_host_mount_of(struct mount *m, struct dentry *sb_root, __u32 ns)
{
	return BPF_CORE_READ(m, mnt.mnt_root) == sb_root && sa_mnt_ns_inum(m) == ns;
}

/* A mount of the whole filesystem `sb` in mount namespace `ns`, among the first few of its mounts (NULL: none):
 * through the per-superblock chain, or on kernels before it (6.1) the superblock's list of mounts. */
static __always_inline struct mount *sa_host_mount(struct super_block *sb, __u32 ns)
{
	struct dentry *sb_root = BPF_CORE_READ(sb, s_root);
	if (bpf_core_field_exists(struct mount, mnt_next_for_sb)) {
		struct mount *m = BPF_CORE_READ(sb, s_mounts);
		for (int i = 0; i < SA_SB_MOUNTS && m; i++) {
			if (sa_is_host_mount_of(m, sb_root, ns))
				return m;
			m = BPF_CORE_READ(m, mnt_next_for_sb);
		}
		return NULL;
	}
	if (!bpf_core_field_exists(struct mount___list, mnt_instance))
		return NULL;
	struct super_block___list *sbl = (void *)sb;
	struct list_head *head = &sbl->s_mounts;
	struct list_head *node = BPF_CORE_READ(sbl, s_mounts.next);
	__u32 at = bpf_core_field_offset(struct mount___list, mnt_instance);
	for (int i = 0; i < SA_SB_MOUNTS && node && node != head; i++) {
		struct mount *m = (void *)node - at;
		if (sa_is_host_mount_of(m, sb_root, ns))
			return m;
		node = BPF_CORE_READ(node, next);
	}
	return NULL;
}

/* Prepends one path component, the dentry's name and the '/' before it, ending at s->buf[*off]; 1 when it does not
 * fit. The walks build paths backwards from the file up. */
static __always_inline int sa_prepend_component(struct path_scratch *s, __u32 *offp, struct dentry *dentry)
{
	struct qstr name = BPF_CORE_READ(dentry, d_name);
	__u32 len = name.len & 0xff;
	__u32 off = *offp;
	if (len + 1 >= off || off > SA_PATH_MAX + 1)
		return 1;
	off -= len;
	bpf_probe_read_kernel(&s->buf[off & SA_MASK_4K], len, name.name);
	off -= 1;
	s->buf[off & SA_MASK_4K] = '/';
	*offp = off;
	return 0;
}

/* One step of the walk: a bpf_loop callback, so the verifier checks it once. */
static long sa_walk_step(__u32 i, struct sa_walk *w)
{
	__u32 zero = 0;
	struct path_scratch *s = bpf_map_lookup_elem(&sa_path_scratch, &zero);
	if (!s)
		return 1;
	/* Locals first: CO-RE relocations must not cover the accesses to *w. */
	struct dentry *dentry = w->dentry;
	struct vfsmount *vfsmnt = w->vfsmnt;
	struct mount *mnt = w->mnt;
	if (dentry == w->root_dentry && vfsmnt == w->root_mnt) {
		w->done = true;
		return 1;
	}
	struct dentry *mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
	struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
	if (w->canonical && dentry == mnt_root && dentry != parent) {
		/* The root of a bind mount (of a directory or a file): go on through the filesystem's own mount, its
		 * mount of the filesystem's root in the same namespace, so a file reached through the bind mount has the
		 * path it has there. */
		struct mount *primary = sa_host_mount(BPF_CORE_READ(vfsmnt, mnt_sb), sa_mnt_ns_inum(mnt));
		if (primary) {
			w->mnt = primary;
			w->vfsmnt = &primary->mnt;
			return 0;
		}
	}
	if (dentry == mnt_root || dentry == parent) {
		struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
		if (mnt == mnt_parent) {
			w->done = true; /* global root */
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

/* Resolves `path` to an absolute path as seen from `root`, like d_path(), by walking
 * dentries and crossing mount points. The result is written backwards into the path
 * scratch buffer, ending at SA_PATH_MAX; returns the start offset (SA_PATH_MAX + 1, i.e.
 * empty, means "/"). *truncated is set when the walk did not reach the root.
 * `canonical`: a file under a bind mount gets its path through its filesystem's own mount. */
static __always_inline __u32 sa_resolve_path(const struct path *path, const struct path *root,
					     bool *truncated, bool canonical)
{
	struct sa_walk w = { .canonical = canonical };
	w.dentry = BPF_CORE_READ(path, dentry);
	w.vfsmnt = BPF_CORE_READ(path, mnt);
	w.mnt = container_of(w.vfsmnt, struct mount, mnt);
	w.root_dentry = BPF_CORE_READ(root, dentry);
	w.root_mnt = BPF_CORE_READ(root, mnt);
	w.off = SA_PATH_MAX + 1;
	bpf_loop(SA_PATH_DEPTH, sa_walk_step, &w, 0);
	*truncated = !w.done;
	return w.off;
}

/* The open file behind descriptor `fd` of the current task, or NULL. The table is reached through the task's BTF
 * pointer (plain loads, not helper calls; a program type with task helpers). */
static __always_inline struct file *sa_fd_file(__s64 fd)
{
	struct fdtable *fdt = bpf_get_current_task_btf()->files->fdt;
	if (fd < 0 || fd >= fdt->max_fds)
		return NULL;
	struct file **fds = fdt->fd;
	struct file *f = NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* Copies a resolved path from the scratch buffer to dst; returns its length. */
static __always_inline __u32 sa_copy_path(char *dst, struct path_scratch *s, __u32 off)
{
	if (off > SA_PATH_MAX) {
		dst[0] = '/';
		return 1;
	}
	__u32 len = (SA_PATH_MAX + 1 - off) & SA_MASK_4K;
	bpf_probe_read_kernel(dst, len, &s->buf[off & SA_MASK_4K]);
	return len;
}

static __always_inline __u64 sa_read_cap(const kernel_cap_t *cap)
{
	/* 8 bytes in every layout: u64 val (>= 6.3) or u32 cap[2] (older). */
	__u64 v = 0;
	bpf_probe_read_kernel(&v, sizeof(v), cap);
	return v;
}
