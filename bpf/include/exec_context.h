/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What an exec record carries beside ids, path and argv, read at sched_process_exec (user space would race the
 * process): the executed file's inode, the exec's privilege change, the credentials' secure bits and user
 * namespace, and the task's namespaces. Straight-line CO-RE reads, no loop. */
#pragma once
#include "helpers.h"

/* The task's pid in the pid namespace it lives in (task_active_pid_ns): thread_pid->numbers[level]. */
static __always_inline struct upid *sa_task_upid(struct task_struct *task)
{
	struct pid *pid = BPF_CORE_READ(task, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid *numbers = (struct upid *)((char *)pid + bpf_core_field_offset(struct pid, numbers));
	return numbers + (level & 63);
}

static __always_inline __u32 sa_pid_ns_inum(struct task_struct *task)
{
	return BPF_CORE_READ(sa_task_upid(task), ns, ns.inum);
}

/* The pid of the task's thread group in the task's own pid namespace (a container's init is 1). */
static __always_inline __u32 sa_task_nspid(struct task_struct *task)
{
	struct pid *pid = BPF_CORE_READ(task, group_leader, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid *numbers = (struct upid *)((char *)pid + bpf_core_field_offset(struct pid, numbers));
	return BPF_CORE_READ(numbers + (level & 63), nr);
}

/* Namespace `i` (enum sa_ns) of the task: its inode number, 0 where the kernel has no such namespace. */
static __always_inline __u32 sa_ns_inum(struct task_struct *task, __u32 i)
{
	struct nsproxy *nsp = BPF_CORE_READ(task, nsproxy);
	switch (i) {
	case SA_NS_UTS:
		return BPF_CORE_READ(nsp, uts_ns, ns.inum);
	case SA_NS_IPC:
		return BPF_CORE_READ(nsp, ipc_ns, ns.inum);
	case SA_NS_MNT:
		return BPF_CORE_READ(nsp, mnt_ns, ns.inum);
	case SA_NS_PID:
		return sa_pid_ns_inum(task);
	case SA_NS_PID_FOR_CHILDREN:
		return BPF_CORE_READ(nsp, pid_ns_for_children, ns.inum);
	case SA_NS_NET:
		return BPF_CORE_READ(nsp, net_ns, ns.inum);
	case SA_NS_TIME:
		return bpf_core_field_exists(nsp->time_ns) ? BPF_CORE_READ(nsp, time_ns, ns.inum) : 0;
	case SA_NS_TIME_FOR_CHILDREN:
		return bpf_core_field_exists(nsp->time_ns_for_children) ? BPF_CORE_READ(nsp, time_ns_for_children, ns.inum) : 0;
	case SA_NS_CGROUP:
		return BPF_CORE_READ(nsp, cgroup_ns, ns.inum);
	case SA_NS_USER:
		return BPF_CORE_READ(task, cred, user_ns, ns.inum);
	}
	return 0;
}

static __always_inline void sa_read_namespaces(__u32 *ns, struct task_struct *task)
{
#pragma unroll
	for (int i = 0; i < SA_NS_COUNT; i++)
		ns[i] = sa_ns_inum(task, i);
}

static __always_inline void sa_read_exec_context(struct exec_event *ev, struct task_struct *task,
						 const struct cred *cred, struct linux_binprm *bprm)
{
	struct inode *inode = BPF_CORE_READ(bprm, file, f_inode);
	ev->file_ino = BPF_CORE_READ(inode, i_ino);
	ev->file_nlink = BPF_CORE_READ(inode, __i_nlink);
	ev->file_uid = BPF_CORE_READ(inode, i_uid.val);
	ev->file_gid = BPF_CORE_READ(inode, i_gid.val);
	ev->file_mode = BPF_CORE_READ(inode, i_mode);
	ev->pad3 = 0;
	ev->per_clear = BPF_CORE_READ(bprm, per_clear);
	ev->securebits = BPF_CORE_READ(cred, securebits);
	ev->cap_ambient = sa_read_cap(&cred->cap_ambient);

	struct user_namespace *userns = BPF_CORE_READ(cred, user_ns);
	ev->userns_level = BPF_CORE_READ(userns, level);
	ev->userns_uid = BPF_CORE_READ(userns, owner.val);
	ev->userns_gid = BPF_CORE_READ(userns, group.val);

	sa_read_namespaces(ev->ns, task);
}
