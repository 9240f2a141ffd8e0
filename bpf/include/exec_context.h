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

/* task_pid_vnr: a container's (pid namespace's) init is 1. */
static __always_inline __u32 sa_task_nspid(struct task_struct *task)
{
	return BPF_CORE_READ(sa_task_upid(task), nr);
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

	struct nsproxy *nsp = BPF_CORE_READ(task, nsproxy);
	ev->ns[SA_NS_UTS] = BPF_CORE_READ(nsp, uts_ns, ns.inum);
	ev->ns[SA_NS_IPC] = BPF_CORE_READ(nsp, ipc_ns, ns.inum);
	ev->ns[SA_NS_MNT] = BPF_CORE_READ(nsp, mnt_ns, ns.inum);
	ev->ns[SA_NS_PID] = sa_pid_ns_inum(task);
	ev->ns[SA_NS_PID_FOR_CHILDREN] = BPF_CORE_READ(nsp, pid_ns_for_children, ns.inum);
	ev->ns[SA_NS_NET] = BPF_CORE_READ(nsp, net_ns, ns.inum);
	if (bpf_core_field_exists(nsp->time_ns)) {
		ev->ns[SA_NS_TIME] = BPF_CORE_READ(nsp, time_ns, ns.inum);
		ev->ns[SA_NS_TIME_FOR_CHILDREN] = BPF_CORE_READ(nsp, time_ns_for_children, ns.inum);
	} else {
		ev->ns[SA_NS_TIME] = 0;
		ev->ns[SA_NS_TIME_FOR_CHILDREN] = 0;
	}
	ev->ns[SA_NS_CGROUP] = BPF_CORE_READ(nsp, cgroup_ns, ns.inum);
	ev->ns[SA_NS_USER] = BPF_CORE_READ(userns, ns.inum);
}
