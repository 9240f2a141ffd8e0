// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* io_uring requests seen by the policies on the syscalls they stand for (include/iouring.h). One program at
 * io_uring/io_uring_submit_req, attached while an attach point has an io_uring operation: a request of an operation
 * no point has costs one array lookup. Opens are looked up again on the object opened at io_uring/io_uring_complete
 * (attached with the first open operation), as a syscall's exit does: that program costs one hash lookup per
 * completion, a hit only for an open whose hooks are left to re-check. */
#define SA_FAMILY SA_FAMILY_TRACEPOINT
#define SA_IO_URING 1
#define SA_READ_NAME_STR bpf_probe_read_kernel_str
/* An open's exit check is armed in a per-CPU entry, then kept per request (sa_uring_pending) until its completion. */
#define SA_PENDING_GET() sa_uring_arming()
struct sa_pending;
static inline __attribute__((always_inline)) struct sa_pending *sa_uring_arming(void);
#include "policy.h"
#include "iouring.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Per operation (enum io_uring_op): the syscall's attach point, the operation and the record's layout (SA_URING_*);
 * 0: none. Written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} sa_uring_ops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sa_uring_record);
} sa_uring_rec SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sa_pending);
} sa_uring_arm SEC(".maps");

/* Opens in flight whose hooks are left to re-check on the object opened, by request (struct io_kiocb *). LRU: a
 * request that never completes (its ring torn down) does not hold an entry for ever. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 2048);
	__type(key, __u64);
	__type(value, struct sa_pending);
} sa_uring_pending SEC(".maps");

static __always_inline struct sa_pending *sa_uring_arming(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&sa_uring_arm, &zero);
}

/* The record of io_uring_submit_req (io_uring_submit_sqe before Linux 6.0): the same offsets up to the opcode. */
struct sa_uring_submit {
	__u64 common;
	void *ring;
	struct io_kiocb *req;
	__u64 user_data;
	__u8 opcode;
};

SEC("tracepoint")
int sa_uring_submit(struct sa_uring_submit *ctx)
{
	__u32 opcode = ctx->opcode;
	__u64 *op_of = bpf_map_lookup_elem(&sa_uring_ops, &opcode);
	if (!op_of || !*op_of)
		return 0;
	__u64 op = *op_of;
	__u32 zero = 0;
	struct sa_uring_record *rec = bpf_map_lookup_elem(&sa_uring_rec, &zero);
	struct sa_pending *arm = sa_uring_arming();
	if (!rec || !arm)
		return 0;
	struct io_kiocb *req = ctx->req;
	/* The operation's prepared state is the request's command area (the union at its start). */
	void *cmd = (void *)req + bpf_core_field_offset(struct io_kiocb, cmd);
	__builtin_memset(rec, 0, sizeof(*rec));
	rec->nr = SA_URING_NR(op);
	switch (SA_URING_KIND(op)) {
	case SA_URING_OPENAT:
	case SA_URING_OPENAT2: {
		struct io_open *io = cmd;
		rec->args[0] = (__s64)BPF_CORE_READ(io, dfd);
		rec->args[1] = (__u64)BPF_CORE_READ(io, filename, name);
		if (SA_URING_KIND(op) == SA_URING_OPENAT) {
			rec->args[2] = BPF_CORE_READ(io, how.flags);
			rec->args[3] = BPF_CORE_READ(io, how.mode);
			break;
		}
		rec->args[3] = sizeof(struct open_how);
		/* RESOLVE_IN_ROOT: the dirfd is the root, an absolute name is looked up under it, as if relative. */
		if (BPF_CORE_READ(io, how.resolve) & SA_RESOLVE_IN_ROOT) {
			char lead[SA_URING_ROOT_SLASHES];
			if (!bpf_probe_read_kernel(lead, sizeof(lead), (void *)rec->args[1]))
				for (int i = 0; i < SA_URING_ROOT_SLASHES && lead[i] == '/'; i++)
					rec->args[1]++;
		}
		break;
	}
	case SA_URING_UNLINKAT: {
		struct io_unlink *io = cmd;
		rec->args[0] = (__s64)BPF_CORE_READ(io, dfd);
		rec->args[1] = (__u64)BPF_CORE_READ(io, filename, name);
		rec->args[2] = (__s64)BPF_CORE_READ(io, flags);
		break;
	}
	case SA_URING_MKDIRAT: {
		struct io_mkdir *io = cmd;
		rec->args[0] = (__s64)BPF_CORE_READ(io, dfd);
		rec->args[1] = (__u64)BPF_CORE_READ(io, filename, name);
		rec->args[2] = BPF_CORE_READ(io, mode);
		break;
	}
	case SA_URING_SYMLINKAT: {
		/* io_link: oldpath is the link's content, newpath the link made (relative to new_dfd). */
		struct io_link *io = cmd;
		rec->args[0] = (__u64)BPF_CORE_READ(io, oldpath, name);
		rec->args[1] = (__s64)BPF_CORE_READ(io, new_dfd);
		rec->args[2] = (__u64)BPF_CORE_READ(io, newpath, name);
		break;
	}
	case SA_URING_RENAMEAT: {
		struct io_rename *io = cmd;
		rec->args[0] = (__s64)BPF_CORE_READ(io, old_dfd);
		rec->args[1] = (__u64)BPF_CORE_READ(io, oldpath, name);
		rec->args[2] = (__s64)BPF_CORE_READ(io, new_dfd);
		rec->args[3] = (__u64)BPF_CORE_READ(io, newpath, name);
		rec->args[4] = (__s64)BPF_CORE_READ(io, flags);
		break;
	}
	case SA_URING_LINKAT: {
		struct io_link *io = cmd;
		rec->args[0] = (__s64)BPF_CORE_READ(io, old_dfd);
		rec->args[1] = (__u64)BPF_CORE_READ(io, oldpath, name);
		rec->args[2] = (__s64)BPF_CORE_READ(io, new_dfd);
		rec->args[3] = (__u64)BPF_CORE_READ(io, newpath, name);
		rec->args[4] = (__s64)BPF_CORE_READ(io, flags);
		break;
	}
	default:
		return 0;
	}
	arm->flags = 0;
	struct sa_source src = { .ctx = ctx, .record = (__u64)rec };
	sa_policy_run(SA_URING_AP(op), SA_OP_IO_URING, &src, NULL);
	/* Armed (hooks left to re-check), and a completion will be posted: with IOSQE_CQE_SKIP_SUCCESS a successful
	 * open posts none (docs/policies.md). */
	if (arm->flags && !(BPF_CORE_READ(req, flags) & (1ULL << SA_REQ_F_CQE_SKIP_BIT))) {
		arm->tgid = bpf_get_current_pid_tgid() >> 32;
		__u64 key = (__u64)req;
		bpf_map_update_elem(&sa_uring_pending, &key, arm, BPF_ANY);
	}
	return 0;
}

/* The record of io_uring_complete (the same from 5.19 to 6.18). */
struct sa_uring_complete {
	__u64 common;
	void *ring;
	struct io_kiocb *req;
	__u64 user_data;
	__s32 res;
};

/* The file an open request installed: the fd (res) in the process's table, or the ring's fixed-file slot. */
static __always_inline struct file *sa_uring_opened(struct io_kiocb *req, __s32 res)
{
	if (res < 0)
		return NULL;
	struct io_open *io = (void *)req + bpf_core_field_offset(struct io_kiocb, cmd);
	__u32 slot = BPF_CORE_READ(io, file_slot);
	if (!slot)
		return sa_fd_file(res);
	slot = slot == SA_IORING_FILE_INDEX_ALLOC ? (__u32)res : slot - 1;
	struct io_ring_ctx *ring = BPF_CORE_READ(req, ctx);
	unsigned long file_ptr = 0;
	if (bpf_core_field_exists(struct io_file_table, data)) {
		if (slot >= BPF_CORE_READ(ring, file_table.data.nr))
			return NULL;
		struct io_rsrc_node *node = NULL;
		struct io_rsrc_node **nodes = BPF_CORE_READ(ring, file_table.data.nodes);
		bpf_probe_read_kernel(&node, sizeof(node), &nodes[slot]);
		if (node)
			file_ptr = BPF_CORE_READ(node, file_ptr);
	} else {
		struct io_ring_ctx___files *old = (void *)ring;
		struct io_fixed_file___old *files = BPF_CORE_READ(old, file_table.files);
		if (slot >= BPF_CORE_READ(old, nr_user_files))
			return NULL;
		bpf_probe_read_kernel(&file_ptr, sizeof(file_ptr), &files[slot].file_ptr);
	}
	return (struct file *)(file_ptr & SA_FFS_MASK);
}

/* An open request's completion, with hooks left to re-check (armed at submission): they run again on the object
 * opened, as a syscall's exit does (tracepoint.bpf.c, sa_policy_exit_tp), in the thread that completes it (the
 * submitter, an io-wq worker or the SQPOLL thread: each a thread of the process); hooks that matched at submission
 * are skipped. */
SEC("tracepoint")
int sa_uring_complete(struct sa_uring_complete *ctx)
{
	__u64 key = (__u64)ctx->req;
	struct sa_pending *pend = bpf_map_lookup_elem(&sa_uring_pending, &key);
	if (!pend)
		return 0;
	/* An entry whose request never completed (LRU-evicted later) must not meet another request at the same address:
	 * the completion is the same process's (the submitter, its io-wq worker or its SQPOLL thread) and still an open. */
	struct io_kiocb *req = ctx->req; /* the record's own struct has no CO-RE relocation in the kernel's BTF */
	__u8 opcode = BPF_CORE_READ(req, opcode);
	if (pend->tgid != bpf_get_current_pid_tgid() >> 32 || (opcode != IORING_OP_OPENAT && opcode != IORING_OP_OPENAT2))
		goto done;
	struct sa_call *c = sa_call_state();
	if (!c)
		goto done;
	c->exit_ret = ctx->res;
	struct file *f = sa_uring_opened(ctx->req, ctx->res);
	if (!f)
		goto done;
	sa_exit_recheck(c, pend, f, SA_OP_IO_URING, ctx);
done:
	bpf_map_delete_elem(&sa_uring_pending, &key);
	return 0;
}

/* The record of task/task_newtask (the same from 5.x to 6.18). */
struct sa_task_newtask {
	__u64 common;
	__s32 pid;
	char comm[16];
	__u64 clone_flags;
};

#define SA_CLONE_THREAD 0x00010000
#define SA_CLONE_IO 0x80000000ULL

/* A new thread made with CLONE_IO: an io_uring worker (io-wq, SQPOLL; create_io_thread), made by a thread of its process
 * (the submitter, or a task_work run by it). Kept by thread id in sa_io_workers for the agent's after-call match of the
 * changes these threads make (aftercall.h). Attached while an io_uring path operation has hooks. */
SEC("tracepoint")
int sa_uring_worker(struct sa_task_newtask *ctx)
{
	if ((ctx->clone_flags & (SA_CLONE_THREAD | SA_CLONE_IO)) != (SA_CLONE_THREAD | SA_CLONE_IO))
		return 0;
	__u32 tid = ctx->pid;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	bpf_map_update_elem(&sa_io_workers, &tid, &tgid, BPF_ANY);
	return 0;
}
