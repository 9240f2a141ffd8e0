// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* spec.loader (Tetragon's loader sensor): an event when a process maps a file executable. Tetragon reads the
 * perf subsystem's mmap records through a kprobe on perf_event_mmap_output; this kernel has no kprobes, so the
 * program runs at sys_exit_mmap: a successful mmap whose prot has PROT_EXEC and which maps a file descriptor.
 * The mappings exec makes in the kernel (the binary and its ELF interpreter, PT_INTERP) never go through mmap: a
 * second program at sched_process_exec reports the new mm's exe_file and the file mapped at the interpreter's
 * base (AT_BASE of the saved auxiliary vector; 0 for a static binary).
 * The arguments come from the task's saved user registers (the syscall's exit tracepoint carries only the
 * return value). Each (address space, file) is reported once: an exec gives the process a new address space,
 * so a library mapped again after an exec is reported again. The build id is read by the agent from the file
 * (cached per inode), since the mapped pages are not readable here before the process touches them. */
#include "helpers.h"
#include "scope_map.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SA_PROT_EXEC 0x4
#define SA_MAP_ANONYMOUS 0x20
#define SA_LOADER_SEEN 16384

/* The address space with its process's start: a freed mm's address is reused by later processes. */
struct sa_loader_key {
	__u64 mm;
	__u64 start;
	__u64 inode;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SA_LOADER_SEEN);
	__type(key, struct sa_loader_key);
	__type(value, __u8);
} sa_loader_seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct loader_event);
} sa_loader_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sa_loader_config);
} sa_loader_config SEC(".maps");

/* A process the loaded spec.loader policies cover: any, or one in a scoped policy's pods. */
static __always_inline bool sa_loader_wanted(void)
{
	__u32 zero = 0;
	struct sa_loader_config *cfg = bpf_map_lookup_elem(&sa_loader_config, &zero);
	if (!cfg)
		return false;
	if (cfg->unscoped)
		return true;
	struct sa_scope_key k = { .cgroup_id = bpf_get_current_cgroup_id() };
	for (int i = 0; i < SA_LOADER_SCOPES; i++) {
		if (i >= cfg->nscopes)
			break;
		k.scope_id = cfg->scope_ids[i];
		if (bpf_map_lookup_elem(&sa_scope, &k))
			return true;
	}
	return false;
}

struct inode___timespec {
	struct timespec64 i_mtime;
} __attribute__((preserve_access_index));

static __always_inline __s64 sa_inode_mtime(struct inode *inode)
{
	if (bpf_core_field_exists(inode->i_mtime_sec))
		return BPF_CORE_READ(inode, i_mtime_sec);
	return BPF_CORE_READ((struct inode___timespec *)inode, i_mtime.tv_sec);
}

struct sa_exit_args {
	__u64 pad;
	long nr;
	long ret;
};

/* One event per (address space, file): the file's identity and path, as the process sees it. */
static __always_inline void sa_loader_report(struct task_struct *task, struct file *f, __u32 tgid)
{
	struct inode *inode = BPF_CORE_READ(f, f_inode);
	struct sa_loader_key key = {
		.mm = (__u64)BPF_CORE_READ(task, mm),
		.start = BPF_CORE_READ(task, group_leader, start_time),
		.inode = (__u64)inode,
	};
	if (bpf_map_update_elem(&sa_loader_seen, &key, &(__u8){ 1 }, BPF_NOEXIST))
		return; /* reported already for this address space */

	__u32 zero = 0;
	struct loader_event *ev = bpf_map_lookup_elem(&sa_loader_scratch, &zero);
	struct path_scratch *ps = bpf_map_lookup_elem(&sa_path_scratch, &zero);
	if (!ev || !ps)
		return;
	ev->pid = tgid;
	ev->tid = (__u32)bpf_get_current_pid_tgid();
	ev->dev = BPF_CORE_READ(inode, i_sb, s_dev);
	ev->ino = BPF_CORE_READ(inode, i_ino);
	ev->mtime = sa_inode_mtime(inode);
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	bool truncated = false;
	__u32 off = sa_resolve_path(&f->f_path, &fs->root, &truncated, false);
	__u32 len = sa_copy_path(ev->data, ps, off) & SA_MASK_4K;
	ev->path_len = len;
	ev->truncated = truncated;
	__u32 size = (offsetof(struct loader_event, data) + len) & 0x1fff;
	sa_header(&ev->hdr, SA_OP_LOADER, size);
	sa_submit(ev, size, false);
}

SEC("tracepoint/syscalls/sys_exit_mmap")
int sa_loader_mmap(struct sa_exit_args *ctx)
{
	/* The no-match path (most mmaps: anonymous, not executable, failed) is two register reads. */
	if (ctx->ret < 0 && ctx->ret > -4096)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	__u64 prot = BPF_CORE_READ(regs, dx), flags = BPF_CORE_READ(regs, r10);
	if (!(prot & SA_PROT_EXEC) || (flags & SA_MAP_ANONYMOUS))
		return 0;
	__s32 fd = (__s32)BPF_CORE_READ(regs, r8);
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct sa_settings *st = sa_get_settings();
	if (fd < 0 || (st && st->agent_tgid == tgid) || !sa_loader_wanted())
		return 0;

	struct file *f = sa_fd_file(fd);
	if (f)
		sa_loader_report(task, f, tgid);
	return 0;
}

#define SA_AT_NULL 0
#define SA_AT_BASE 7
#define SA_AUXV_PAIRS 32

static long sa_loader_vma_file(struct task_struct *task, struct vm_area_struct *vma, struct file **out)
{
	*out = BPF_CORE_READ(vma, vm_file);
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int sa_loader_exec(void *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct sa_settings *st = sa_get_settings();
	if ((st && st->agent_tgid == tgid) || !sa_loader_wanted())
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	struct file *exe = BPF_CORE_READ(mm, exe_file);
	if (exe)
		sa_loader_report(task, exe, tgid);
	/* The interpreter's base address from the auxiliary vector exec gave the process. */
	__u64 base = 0;
	for (int i = 0; i < SA_AUXV_PAIRS; i++) {
		__u64 pair[2];
		if (bpf_probe_read_kernel(pair, sizeof(pair), &mm->saved_auxv[2 * i]) || pair[0] == SA_AT_NULL)
			break;
		if (pair[0] == SA_AT_BASE) {
			base = pair[1];
			break;
		}
	}
	struct file *interp = NULL;
	if (base && bpf_find_vma(task, base, sa_loader_vma_file, &interp, 0) == 0 && interp)
		sa_loader_report(task, interp, tgid);
	return 0;
}
