// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* io_uring requests seen by the policies on the syscalls they stand for (include/iouring.h). One program at
 * io_uring/io_uring_submit_req, attached while an attach point has an io_uring operation: a request of an operation
 * no point has costs one array lookup. */
#define SA_FAMILY SA_FAMILY_TRACEPOINT
#define SA_IO_URING 1
#define SA_READ_NAME_STR bpf_probe_read_kernel_str
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
	if (!rec)
		return 0;
	/* The operation's prepared state is the request's command area (the union at its start). */
	struct io_open *io = (void *)ctx->req + bpf_core_field_offset(struct io_kiocb, cmd);
	__builtin_memset(rec, 0, sizeof(*rec));
	rec->nr = SA_URING_NR(op);
	rec->args[0] = (__s64)BPF_CORE_READ(io, dfd);
	rec->args[1] = (__u64)BPF_CORE_READ(io, filename, name);
	if (SA_URING_KIND(op) == SA_URING_OPENAT) {
		rec->args[2] = BPF_CORE_READ(io, how.flags);
		rec->args[3] = BPF_CORE_READ(io, how.mode);
	} else {
		rec->args[3] = sizeof(struct open_how);
	}
	struct sa_source src = { .ctx = ctx, .record = (__u64)rec };
	sa_policy_run(SA_URING_AP(op), SA_OP_IO_URING, &src, NULL);
	return 0;
}
