/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* io_uring requests as the calls of the syscalls they stand for. A request's operation (IORING_OP_OPENAT...) is
 * prepared at submission: the kernel has copied the file name (struct filename) and the dirfd, flags and mode into the
 * request's command area (struct io_kiocb.cmd: struct io_open, io_unlink...), and the io_uring_submit_req tracepoint
 * fires then, in the submitting task (the ring's SQPOLL thread: a thread of the process that set the ring up). The
 * program lays these values out as the syscall's enter record (struct sa_uring_record) and runs the hooks of the
 * syscall's attach point on it: the same selectors, path resolution and actions. The names in the record are the
 * kernel's copies (kernel addresses: this object reads strings with bpf_probe_read_kernel_str). */
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
	SA_URING_UNLINKAT = 3,  /* unlinkat(dfd, pathname, flag) */
	SA_URING_RENAMEAT = 4,  /* renameat2(olddfd, oldname, newdfd, newname, flags) */
	SA_URING_MKDIRAT = 5,   /* mkdirat(dfd, pathname, mode) */
	SA_URING_SYMLINKAT = 6, /* symlinkat(oldname, newdfd, newname) */
	SA_URING_LINKAT = 7,    /* linkat(olddfd, oldname, newdfd, newname, flags) */
};

struct sa_uring_record {
	__u64 common;
	__s64 nr;
	__u64 args[6];
};

#define SA_RESOLVE_IN_ROOT 0x10              /* uapi linux/openat2.h */
#define SA_URING_ROOT_SLASHES 8              /* leading '/'s of a RESOLVE_IN_ROOT name skipped (more: absolute) */
#define SA_REQ_F_CQE_SKIP_BIT 6              /* io_uring_types.h: REQ_F_CQE_SKIP, IOSQE_CQE_SKIP_SUCCESS's bit (5.17+) */
#define SA_IORING_FILE_INDEX_ALLOC (~0U)     /* uapi: the kernel picks the fixed-file slot, the result is its index */
#define SA_FFS_MASK (~7UL)                   /* a fixed file's file_ptr: the file, flags in the low bits */

/* Before 6.13 (6.1): the ring's fixed files were an array of io_fixed_file, their count in the ring. */
struct io_fixed_file___old {
	unsigned long file_ptr;
} __attribute__((preserve_access_index));
struct io_file_table___old {
	struct io_fixed_file___old *files;
} __attribute__((preserve_access_index));
struct io_ring_ctx___files {
	struct io_file_table___old file_table;
	unsigned int nr_user_files;
} __attribute__((preserve_access_index));
