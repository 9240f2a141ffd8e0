// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Process lifecycle sensor: exec, fork (new thread groups only) and exit (whole group). */
#include "helpers.h"
#include "exec_context.h"
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_event);
} sa_exec_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sa_binary);
} sa_binary_scratch SEC(".maps");

/* Records the binary of pid for matchBinaries: the first SA_STR_MAX - 1 bytes of its path, zero padded
 * (the value-set maps compare whole keys). */
static __always_inline void sa_remember_binary(__u32 pid, const char *path, __u32 len)
{
	__u32 zero = 0;
	struct sa_binary *b = bpf_map_lookup_elem(&sa_binary_scratch, &zero);
	if (!b)
		return;
	__builtin_memset(b, 0, sizeof(*b));
	if (len > SA_STR_MAX - 1)
		len = SA_STR_MAX - 1;
	bpf_probe_read_kernel(b->path, len & (SA_STR_MAX - 1), path);
	b->len = len;
	bpf_map_update_elem(&sa_exec_binary, &pid, b, BPF_ANY);
}

/* Stack-only record types are not in BTF unless something global names them; LayoutTests need them. */
struct fork_event *sa_btf_fork __attribute__((unused));
struct exit_event *sa_btf_exit __attribute__((unused));

static __always_inline __u64 sa_task_start(struct task_struct *t)
{
	return BPF_CORE_READ(t, group_leader, start_boottime);
}

/* The caller's credentials' capabilities, in sa_proc.caps order. */
static __always_inline void sa_read_caps(__u64 *caps, const struct cred *cred)
{
	caps[0] = sa_read_cap(&cred->cap_effective);
	caps[1] = sa_read_cap(&cred->cap_permitted);
	caps[2] = sa_read_cap(&cred->cap_inheritable);
}

/* At fork: the child's parent, namespace pid, namespaces and capabilities; in the init tree when its parent is
 * or when it is its pid namespace's init. Returns the flags for the fork record. */
static __always_inline __u32 sa_proc_fork(struct task_struct *child, __u32 pid, __u32 ppid)
{
	struct sa_proc p = { .ppid = ppid, .flags = SA_PROC_FORKED };
	p.nspid = sa_task_nspid(child);
	struct sa_proc *parent = bpf_map_lookup_elem(&sa_proc, &ppid);
	if (p.nspid == 1 || (parent && (parent->flags & SA_PROC_IN_INIT_TREE)))
		p.flags |= SA_PROC_IN_INIT_TREE;
	sa_read_caps(p.caps, BPF_CORE_READ(child, cred));
	sa_read_namespaces(p.ns, child);
	bpf_map_update_elem(&sa_proc, &pid, &p, BPF_ANY);
	return p.flags & SA_PROC_IN_INIT_TREE ? SA_EXEC_IN_INIT_TREE : 0;
}

/* At exec: the first exec after a fork (or of a process the map does not know) takes the exec's namespaces and
 * capabilities as the ones later changes are compared with. Returns the flags for the exec record. */
static __always_inline __u32 sa_proc_exec(struct exec_event *ev)
{
	struct sa_proc *cur = bpf_map_lookup_elem(&sa_proc, &ev->pid);
	__u32 nspid = sa_task_nspid((struct task_struct *)bpf_get_current_task());
	if (cur && !(cur->flags & SA_PROC_FORKED)) {
		cur->nspid = nspid;
		if (nspid == 1)
			cur->flags |= SA_PROC_IN_INIT_TREE;
		return cur->flags & SA_PROC_IN_INIT_TREE ? SA_EXEC_IN_INIT_TREE : 0;
	}
	struct sa_proc p = { .ppid = ev->ppid, .nspid = nspid };
	if (cur)
		p.ppid = cur->ppid, p.flags = cur->flags & SA_PROC_IN_INIT_TREE;
	else {
		struct sa_proc *parent = bpf_map_lookup_elem(&sa_proc, &ev->ppid);
		if (parent && (parent->flags & SA_PROC_IN_INIT_TREE))
			p.flags |= SA_PROC_IN_INIT_TREE;
	}
	if (nspid == 1)
		p.flags |= SA_PROC_IN_INIT_TREE;
	p.caps[0] = ev->cap_effective;
	p.caps[1] = ev->cap_permitted;
	p.caps[2] = ev->cap_inheritable;
	__builtin_memcpy(p.ns, ev->ns, sizeof(p.ns));
	bpf_map_update_elem(&sa_proc, &ev->pid, &p, BPF_ANY);
	return p.flags & SA_PROC_IN_INIT_TREE ? SA_EXEC_IN_INIT_TREE : 0;
}

static __always_inline __u32 sa_read_args(struct exec_event *ev, struct task_struct *task, __u32 off)
{
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	unsigned long start = BPF_CORE_READ(mm, arg_start);
	unsigned long end = BPF_CORE_READ(mm, arg_end);
	__u64 len = end > start ? end - start : 0;

	if (len > SA_ARGS_MAX) {
		len = SA_ARGS_MAX;
		ev->flags |= SA_EXEC_ARGS_TRUNCATED;
	}
	len &= SA_MASK_4K;
	if (len && bpf_probe_read_user(&ev->data[off & SA_MASK_8K], len, (void *)start) < 0) {
		ev->flags |= SA_EXEC_ARGS_FAULT;
		return 0;
	}
	return len;
}

/* envp as the kernel laid it out (NUL-separated strings), at most SA_ENV_MAX bytes; off is where it goes in data. */
static __always_inline __u32 sa_read_env(struct exec_event *ev, struct task_struct *task, __u32 off)
{
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	unsigned long start = BPF_CORE_READ(mm, env_start);
	unsigned long end = BPF_CORE_READ(mm, env_end);
	__u64 len = end > start ? end - start : 0;

	if (len > SA_ENV_MAX) {
		len = SA_ENV_MAX;
		ev->flags |= SA_EXEC_ENV_TRUNCATED;
	}
	len &= SA_MASK_4K;
	if (off > SA_DATA_MAX - SA_ENV_MAX - 1)
		return 0;
	if (len && bpf_probe_read_user(&ev->data[off], len, (void *)start) < 0) {
		ev->flags |= SA_EXEC_ENV_FAULT;
		return 0;
	}
	return len;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sa_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 zero = 0;
	struct exec_event *ev = bpf_map_lookup_elem(&sa_exec_scratch, &zero);
	struct path_scratch *ps = bpf_map_lookup_elem(&sa_path_scratch, &zero);
	if (!ev || !ps)
		return 0;

	struct task_struct *parent = BPF_CORE_READ(task, real_parent);
	const struct cred *cred = BPF_CORE_READ(task, cred);
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	bool truncated = false;

	ev->pid = BPF_CORE_READ(task, tgid);
	ev->tid = BPF_CORE_READ(task, pid);
	ev->ppid = BPF_CORE_READ(parent, tgid);
	ev->flags = 0;
	ev->start_time = sa_task_start(task);
	ev->parent_start_time = sa_task_start(parent);
	ev->cgroup_id = bpf_get_current_cgroup_id();
	ev->uid = BPF_CORE_READ(cred, uid.val);
	ev->euid = BPF_CORE_READ(cred, euid.val);
	ev->gid = BPF_CORE_READ(cred, gid.val);
	ev->egid = BPF_CORE_READ(cred, egid.val);
	if (bpf_core_field_exists(task->loginuid)) {
		ev->auid = BPF_CORE_READ(task, loginuid.val);
	} else {
		ev->auid = (__u32)-1;
		ev->flags |= SA_EXEC_NO_AUID;
	}
	ev->cap_permitted = sa_read_cap(&cred->cap_permitted);
	ev->cap_effective = sa_read_cap(&cred->cap_effective);
	ev->cap_inheritable = sa_read_cap(&cred->cap_inheritable);
	ev->nspid = sa_task_nspid(task);
	sa_read_exec_context(ev, task, cred, bprm);

	/* The executed file, resolved against the task's root. */
	struct file *file = BPF_CORE_READ(bprm, file);
	__u32 start = sa_resolve_path(&file->f_path, &fs->root, &truncated, false);
	if (truncated)
		ev->flags |= SA_EXEC_PATH_TRUNCATED;
	__u32 path_len = sa_copy_path(ev->data, ps, start) & SA_MASK_4K;
	ev->path_len = path_len;

	__u32 args_len = sa_read_args(ev, task, path_len) & SA_MASK_4K;
	ev->args_len = args_len;

	__u32 off = (path_len + args_len) & SA_MASK_8K;
	start = sa_resolve_path(&fs->pwd, &fs->root, &truncated, false);
	if (truncated)
		ev->flags |= SA_EXEC_CWD_TRUNCATED;
	__u32 cwd_len = sa_copy_path(&ev->data[off], ps, start) & SA_MASK_4K;
	ev->cwd_len = cwd_len;

	off += cwd_len;
	__u32 env_len = 0;
	struct sa_settings *st = sa_get_settings();
	if (st && st->env_vars)
		env_len = sa_read_env(ev, task, off) & SA_MASK_4K;
	ev->env_len = env_len;

	sa_remember_binary(ev->pid, ev->data, path_len);
	ev->flags |= sa_proc_exec(ev);

	__u64 size = offsetof(struct exec_event, data) + off + env_len;
	sa_header(&ev->hdr, SA_OP_EXEC, size);
	if (size > sizeof(*ev))
		return 0;
	sa_submit(ev, size, false);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(sa_fork, struct task_struct *parent, struct task_struct *child)
{
	/* Threads share their group's process entry: only new thread groups matter. */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;

	struct fork_event ev = {};
	ev.pid = BPF_CORE_READ(child, tgid);
	ev.ppid = BPF_CORE_READ(parent, tgid);
	struct sa_binary *pb = bpf_map_lookup_elem(&sa_exec_binary, &ev.ppid);
	if (pb)
		bpf_map_update_elem(&sa_exec_binary, &ev.pid, pb, BPF_ANY);
	__u64 *follow = bpf_map_lookup_elem(&sa_follow, &ev.ppid);
	if (follow) {
		__u64 mask = *follow;
		bpf_map_update_elem(&sa_follow, &ev.pid, &mask, BPF_ANY);
	}
	ev.flags = sa_proc_fork(child, ev.pid, ev.ppid);
	ev.start_time = BPF_CORE_READ(child, start_boottime);
	ev.parent_start_time = sa_task_start(parent);
	ev.nspid = sa_task_nspid(child);
	sa_header(&ev.hdr, SA_OP_FORK, sizeof(ev));
	sa_submit(&ev, sizeof(ev), false);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(sa_exit, struct task_struct *task)
{
	/* signal->live reached zero before this tracepoint when the whole group is gone. */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;

	struct exit_event ev = {};
	ev.pid = BPF_CORE_READ(task, tgid);
	bpf_map_delete_elem(&sa_exec_binary, &ev.pid);
	bpf_map_delete_elem(&sa_follow, &ev.pid);
	bpf_map_delete_elem(&sa_proc, &ev.pid);
	ev.tid = BPF_CORE_READ(task, pid);
	ev.start_time = sa_task_start(task);
	ev.exit_code = BPF_CORE_READ(task, exit_code);
	sa_header(&ev.hdr, SA_OP_EXIT, sizeof(ev));
	sa_submit(&ev, sizeof(ev), false);
	return 0;
}
