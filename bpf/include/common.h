/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Layouts shared with user space. Every ring-buffer record starts with struct event_header.
 * The C# side mirrors these in src/SecurityAgent/Events/Wire.cs; LayoutTests compare both
 * against the BTF that clang emits into the objects, so a change here that is not made there fails. */
#pragma once

/* Op codes are numbered explicitly: they are a wire format. */
enum sa_op {
	SA_OP_EXEC = 1,
	SA_OP_EXIT = 2,
	SA_OP_FORK = 3,
	SA_OP_TRACEPOINT = 10,
	SA_OP_SOCK = 11,
};

/* Limits of variable-length fields (bytes, without terminator). */
#define SA_PATH_MAX 4095
#define SA_ARGS_MAX 4095
#define SA_DATA_MAX 16384
#define SA_MASK_4K 0xfff
#define SA_MASK_8K 0x1fff

/* exec_event.flags */
enum sa_exec_flags {
	SA_EXEC_ARGS_TRUNCATED = 1 << 0,
	SA_EXEC_PATH_TRUNCATED = 1 << 1,
	SA_EXEC_CWD_TRUNCATED = 1 << 2,
	SA_EXEC_ARGS_FAULT = 1 << 3,
	SA_EXEC_NO_AUID = 1 << 4,
};

/* Indexes of the per-CPU loss counters (map sa_lost). */
enum sa_lost_reason {
	SA_LOST_RINGBUF_FULL = 0,
	SA_LOST_SCRATCH = 1,
	SA_LOST_MAX = 4,
};

struct event_header {
	__u8 op;
	__u8 pad0;
	__u16 size;      /* whole record, header included */
	__u32 cpu;
	__u64 ktime;     /* bpf_ktime_get_boot_ns(), CLOCK_BOOTTIME */
};

struct exec_event {
	struct event_header hdr;
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u32 flags;
	__u64 start_time;        /* task start, CLOCK_BOOTTIME ns (as /proc/PID/stat starttime) */
	__u64 parent_start_time;
	__u64 cgroup_id;
	__u32 uid;
	__u32 euid;
	__u32 gid;
	__u32 egid;
	__u32 auid;
	__u32 pad1;
	__u64 cap_permitted;
	__u64 cap_effective;
	__u64 cap_inheritable;
	__u16 path_len;
	__u16 args_len;          /* argv, NUL separated */
	__u16 cwd_len;
	__u16 pad2;
	char data[SA_DATA_MAX];  /* path | args | cwd; only the used part is sent */
};

struct fork_event {
	struct event_header hdr;
	__u32 pid;
	__u32 ppid;
	__u64 start_time;
	__u64 parent_start_time;
};

struct exit_event {
	struct event_header hdr;
	__u32 pid;
	__u32 tid;
	__u64 start_time;
	__u32 exit_code;         /* wait(2) status: code << 8, or the signal number */
	__u32 pad0;
};
