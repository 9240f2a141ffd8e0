/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* io_uring requests as the calls of the syscalls they stand for. A request's operation (IORING_OP_OPENAT...) is
 * prepared at submission: the kernel has copied the file name (struct filename) and the dirfd, flags and mode into the
 * request's command area (struct io_kiocb.cmd: struct io_open, io_unlink...), and the io_uring_submit_req tracepoint
 * fires then, in the submitting task (the ring's SQPOLL thread: a thread of the process that set the ring up). The
 * program lays these values out as the syscall's enter record (struct sa_uring_record) and runs the hooks of the
 * syscall's attach point on it: the same selectors, path resolution and actions. */
#pragma once

/* An operation's entry in sa_uring_ops: the syscall's attach point, the operation and the layout of the record. */
#define SA_URING_AP(op) ((__u32)(op))
#define SA_URING_OPCODE(op) ((__u8)((op) >> 32))
#define SA_URING_KIND(op) ((__u8)((op) >> 40))
#define SA_URING_NR(op) ((__u16)((op) >> 48))

/* The layouts of the records (the syscalls' enter tracepoints: the common fields, the syscall number, the arguments). */
enum sa_uring_kind {
	SA_URING_OPENAT = 1,  /* openat(dfd, filename, flags, mode) */
	SA_URING_OPENAT2 = 2, /* openat2(dfd, filename, how, usize): `how` is the kernel's copy, not the caller's pointer */
};

struct sa_uring_record {
	__u64 common;
	__s64 nr;
	__u64 args[6];
};
