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
	SA_OP_LSM = 12,
	SA_OP_KPROBE = 13,
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

/* ---- Tracing policies: hook configuration (written by the agent) and policy events ---- */

#define SA_MAX_ARGS 5          /* arguments read per hook */
#define SA_MAX_SELECTORS 5     /* Tetragon's limit */
#define SA_MAX_MATCH_ARGS 4    /* matchArgs entries per selector */
#define SA_MAX_PIDS 4          /* matchPIDs values per selector */
#define SA_STR_MAX 256         /* bytes of a string argument that are matched and sent */
#define SA_MAX_HOOKS 1024
#define SA_TP_SLOTS 8          /* hooks on one tracepoint at a time */

/* How to read and render an argument. */
enum sa_arg_type {
	SA_ARG_NONE = 0,
	SA_ARG_INT = 1,        /* signed integer of `size` bytes */
	SA_ARG_UINT = 2,       /* unsigned integer of `size` bytes */
	SA_ARG_STRING = 3,     /* user-space char *, read as a string */
	SA_ARG_SOCKADDR = 4,   /* user-space struct sockaddr * */
	SA_ARG_FD = 5,         /* file descriptor (int) */
	SA_ARG_FILE = 6,       /* struct file *: its path */
	SA_ARG_PATH = 7,       /* struct path *: the path */
	SA_ARG_BPRM = 8,       /* struct linux_binprm *: the executed file's path */
	SA_ARG_KSOCKADDR = 9,  /* kernel struct sockaddr * */
	SA_ARG_KSTRING = 10,   /* kernel char * */
};

/* Comparisons of a selector (matchArgs, matchBinaries). Numbered: shared with C#. */
enum sa_cmp {
	SA_CMP_NONE = 0,
	SA_CMP_IN = 1,         /* Equal / In / InMap: value in the filter's set */
	SA_CMP_NOT_IN = 2,
	SA_CMP_PREFIX = 3,
	SA_CMP_NOT_PREFIX = 4,
	SA_CMP_POSTFIX = 5,
	SA_CMP_NOT_POSTFIX = 6,
	SA_CMP_GT = 7,
	SA_CMP_LT = 8,
	SA_CMP_MASK = 9,
	SA_CMP_DADDR = 10,
	SA_CMP_NOT_DADDR = 11,
	SA_CMP_DPORT = 12,     /* port in the filter's int set */
	SA_CMP_NOT_DPORT = 13,
	SA_CMP_FAMILY = 14,
	SA_CMP_NOT_FAMILY = 15,
};

enum sa_action {
	SA_ACT_POST = 1 << 0,
	SA_ACT_SIGKILL = 1 << 1,
	SA_ACT_SIGNAL = 1 << 2,
	SA_ACT_OVERRIDE = 1 << 3,
};

/* policy_event.flags */
enum sa_policy_event_flags {
	SA_PEV_ENFORCED = 1 << 0,        /* the signal was sent */
	SA_PEV_MONITOR = 1 << 1,         /* policy-mode monitor: would have enforced */
	SA_PEV_SAFETY_REFUSED = 1 << 2,  /* target was pid 1, a kernel thread or the agent */
	SA_PEV_STR_TRUNCATED = 1 << 3,
	SA_PEV_DENY_SET = 1 << 4,        /* enforced because user space put the process in the deny set */
};

struct sa_arg_filter {
	__u32 filter_id;       /* key prefix in the value-set maps */
	__u8 arg;              /* slot in the hook's args */
	__u8 cmp;              /* enum sa_cmp */
	__u16 pad;
	__u64 value;           /* GT / LT / MASK operand */
};

struct sa_selector {
	__u32 actions;         /* enum sa_action bits */
	__u32 signal;          /* for SA_ACT_SIGNAL */
	__u64 rate_limit_ns;   /* Post at most once per window per process; 0: no limit */
	__u32 bin_filter;
	__u8 bin_cmp;          /* SA_CMP_IN / NOT_IN / PREFIX / NOT_PREFIX / POSTFIX / NOT_POSTFIX */
	__u8 nargs;
	__u8 pid_cmp;          /* SA_CMP_IN / SA_CMP_NOT_IN */
	__u8 npids;
	__u32 pids[SA_MAX_PIDS];
	__u64 cap_mask;
	__u8 cap_cmp;          /* SA_CMP_IN: any of the mask held; SA_CMP_NOT_IN: none held */
	__u8 cap_set;          /* 0 effective, 1 permitted, 2 inheritable */
	__u8 follow;           /* matchPIDs followForks: 1 + bit in sa_follow masks; 0 none */
	__u8 pid_ns;           /* matchPIDs isNamespacePID: compare the pid as seen in its own pid namespace */
	__s32 error;           /* Override errno (negative) */
	struct sa_arg_filter args[SA_MAX_MATCH_ARGS];
};

struct sa_hook_arg {
	__u16 offset;          /* in the tracepoint record */
	__u8 size;
	__u8 type;             /* enum sa_arg_type */
};

struct sa_hook {
	__u32 policy_id;
	__u8 nargs;
	__u8 nselectors;
	__u8 enforce;          /* 0: policy-mode monitor */
	__u8 reverse_mask;     /* bit i: arg i needs its reversed string (Postfix filters) */
	struct sa_hook_arg args[SA_MAX_ARGS];
	struct sa_selector sel[SA_MAX_SELECTORS];
	__u32 scope_id;        /* non-zero: only processes whose cgroup is in sa_scope[scope_id] (podSelector...) */
	__u32 pad1;
};

/* A policy's scope: the cgroups (containers) of the pods its podSelector / namespace selects. */
struct sa_scope_key {
	__u32 scope_id;
	__u32 pad;
	__u64 cgroup_id;
};

/* Kernel-side counters per hook (per-CPU, summed by the agent). */
struct sa_hook_stats {
	__u64 seen;
	__u64 matched;
	__u64 posted;
	__u64 enforced;
	__u64 rate_limited;
};

struct sa_settings {
	__u32 agent_tgid;      /* never signalled */
	__u32 pad;
};

/* Processes user space decided against (ancestry rules): their next matches are enforced in the kernel. */
struct sa_deny_key {
	__u32 hook_id;
	__u32 selector;
	__u32 tgid;
};

/* The current binary of a process, for matchBinaries (kept by the process sensor). */
struct sa_binary {
	__u32 len;
	char path[SA_STR_MAX];
};

struct policy_event {
	struct event_header hdr;
	__u32 pid;
	__u32 tid;
	__u32 hook_id;
	__u32 policy_id;
	__u8 selector;
	__u8 flags;            /* enum sa_policy_event_flags */
	__u8 nargs;
	__u8 pad0;
	__u32 actions;
	__u64 ints[SA_MAX_ARGS];
	__u16 str_len[SA_MAX_ARGS];
	__u16 pad1[3];
	char str[SA_MAX_ARGS][SA_STR_MAX];
};
