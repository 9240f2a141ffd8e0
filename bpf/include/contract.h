/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The contract between the BPF programs and the agent: every constant, enum, record and map key both sides
 * use is written here, once. `make bpf` compiles it into BTF (bpf/contract.bpf.c names every type) and
 * tools/ContractGen emits the C# from that BTF into src/SecurityAgent/Events/Contract.g.cs; a test fails
 * when the committed file drifts from what the generator emits, and LayoutTests compare the C# with the BTF
 * of the real objects.
 * C# names come from the C names: the enum's common prefix is dropped and each underscore-separated word
 * is capitalised (SA_CMP_NOT_D_ADDR -> Cmp.NotDAddr, hook_id -> HookId). Constants are enumerators (BTF has
 * no #defines). */
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
	SA_OP_UPROBE = 14,       /* uprobes on user-space functions (spec.uprobes) */
	SA_OP_USDT = 15,         /* USDT probes (spec.usdts) */
	SA_OP_RAW_TP = 16,       /* raw tracepoints (tracepoints with raw: true) */
	SA_OP_LOADER = 17,       /* spec.loader: an executable file mapping (struct loader_event) */
	SA_OP_DATA = 22,         /* maxData: one chunk of a buffer argument (struct sa_data_event), sent before its event */
	SA_OP_IO_URING = 23,     /* a syscall tracepoint's policy_event for an io_uring request (IORING_OP_OPENAT...) */
};

/* Sizes and limits. */
enum sa_limit {
	SA_PATH_MAX = 4095,        /* bytes of a resolved path, without terminator */
	SA_ARGS_MAX = 4095,        /* bytes of an exec's argv */
	SA_DATA_MAX = 16384,       /* exec_event.data */
	SA_STR_MAX = 256,          /* bytes of a string argument that are matched and sent (terminator included) */
	SA_LPM_STR_MAX = 248,      /* bytes of a stored prefix: an LPM key holds 256 data bytes, 8 are its header */
	SA_SOCKADDR_SIZE = 28,     /* bytes of a sockaddr argument (sockaddr_in6, the larger of the two) */
	SA_SOCKADDR_UN_SIZE = 110, /* bytes of an AF_UNIX sockaddr argument (family and the whole sun_path) */
	SA_ENV_MAX = 4095,         /* bytes of an exec's environment (--enable-process-environment-variables) */
	SA_MAX_ARGS = 5,           /* arguments one hook reads */
	SA_LOADER_SCOPES = 8,      /* scoped spec.loader policies (pod scopes) loaded at once */
	SA_MAX_FN_ARGS = 5,        /* function arguments (LSM hooks, kprobes) that can be read */
	SA_POINT_ARGS = 8,         /* argument reads at one attach point: the union of its hooks' */
	SA_MAX_PIDS = 4,           /* matchPIDs values per selector */
	SA_MAX_INT_CMPS = 4,       /* GreaterThan / LessThan / Mask filters per selector */
	SA_SEL_BITS = 512,         /* selectors at one attach point (64 policies x 5 selectors, and room) */
	SA_SEL_WORDS = 8,          /* SA_SEL_BITS / 64 */
	SA_MAX_DIMS = 16,          /* indexed dimensions at one attach point */
	SA_MAX_HOOKS = 4096,       /* policy hooks loaded at once (ids into sa_hook_stats) */
	SA_MAX_POINTS = 1024,      /* attach points with policy hooks at once */
	SA_EVENT_DATA = 4096,      /* policy_event.data: SA_MAX_ARGS strings of < SA_STR_MAX bytes, then as many
				    * strings as passed (where they differ from the resolved path), packed */
	SA_RESOLVE_DEPTH = 10,     /* steps of a resolve: field path (Tetragon's depth) */
	SA_RESOLVE_MAX = 256,      /* distinct resolve: paths over the agent's life (sa_resolve; entry 0 unused) */
	SA_NORM_DEPTH = 64,        /* path components `..` can go back over when a path is normalised */
	SA_AFTER_NOTES = 4096,     /* sa_after_notes: the last name-only calls noted for the after-call match (a power of 2) */
	SA_IO_WORKERS = 4096,      /* sa_io_workers: io_uring worker threads -> their process, for a change fanotify names a gone worker for */
	SA_SYSCALL_RECORD = 64,    /* bytes of a sys_enter_* tracepoint record (header, number, 6 arguments) */
	SA_FOLLOW_BITS = 64,       /* matchPIDs followForks sets (bits of sa_follow values) */
	SA_SYSID_BITS = 512,       /* syscall numbers a raw_syscalls point's syscall filter (sa_point.sysids) covers */
	SA_SYSID_WORDS = 8,        /* SA_SYSID_BITS / 64 */
	SA_SIGKILL = 9,
	SA_PF_KTHREAD = 0x00200000, /* task_struct.flags (and /proc/PID/stat flags) of a kernel thread */
	SA_AF_UNIX = 1,
	SA_AF_INET = 2,
	SA_AF_INET6 = 10,
	/* Return probes (Tetragon's return: true on a syscall kprobe): the enter keeps the event of each return hook
	 * that matched there, the exit posts it with the return value when the selector's return filters pass. */
	SA_RET_CMPS = 2,           /* matchReturnArgs entries per selector (ANDed) */
	SA_RET_VALUES = 4,         /* values of one Equal / NotEqual entry (ORed) */
	SA_RET_MAX = 4,            /* return hooks one call can arm (several policies on one syscall) */
	SA_RET_PENDING = 1024,     /* kept return events (threads inside a return-probed call); beyond, counted as lost */
	SA_SOCK_TRACKED = 32768,   /* socks TrackSock follows at once (LRU: beyond, the oldest is forgotten) */
	SA_NS_MAX_MATCH = 4,       /* matchNamespaces entries per selector */
	SA_NS_MAX_VALUES = 4,      /* inode numbers per matchNamespaces entry */
	SA_NS_TREE_DEPTH = 9,      /* matchPIDs isNamespacePID+followForks: the process and 8 ancestors (as Tetragon) */
	/* Stack traces (kernelStackTrace / userStackTrace): taken with bpf_get_stack into the call state when a hook at
	 * the attach point asks for them; an event that asks carries them at fixed places at the end of its data (the
	 * strings take at most 2 * SA_MAX_ARGS * 255 bytes) and is then sent up to the end of the user stack. */
	SA_EXTRAS_STACK_DEPTH = 63,      /* frames of one stack (a deeper stack keeps its innermost frames) */
	SA_EXTRAS_STACK_BYTES = 504,     /* SA_EXTRAS_STACK_DEPTH * 8 */
	SA_EXTRAS_STACK_SLOT = 512,      /* bytes reserved for each stack in policy_event.data */
	SA_EXTRAS_KSTACK_AT = 3072,      /* policy_event.data offset of the kernel stack */
	SA_EXTRAS_USTACK_AT = 3584,      /* ... and of the user stack */
	/* NotifyEnforcer at another hook than the enforced calls: the thread's notification waits in sa_enf_notify for
	 * its next call among them (as Tetragon's enforcer_data, 32768 threads); the enforcer program consumes it. */
	SA_ENF_NOTIFY_MAX = 32768,
	SA_ENF_SYSCALLS = 2048,          /* sa_enf_nrs: x86-64 syscall numbers 0..1023, then ia32 ones at 1024 + nr */
	SA_IMA_HASH_MAX = 64,            /* imaHash: the digest's bytes appended to the event's data (sha512 fits) */
	/* maxData (Tetragon's meaning): a buffer argument longer than the event's SA_STR_MAX - 1 bytes is also sent whole,
	 * up to SA_MAXDATA_BYTES, in data records of SA_MAXDATA_CHUNK bytes that precede its event on the ring. */
	SA_MAXDATA_CHUNK = 32736,        /* bytes of one data record (struct sa_data_event fills 32 KiB) */
	SA_MAXDATA_CHUNKS = 10,
	SA_MAXDATA_BYTES = 327360,       /* SA_MAXDATA_CHUNKS * SA_MAXDATA_CHUNK: beyond, the event says orig_size */
};

/* Attach points whose program serves one point only: their id is fixed (the others get theirs from the
 * agent, passed as the link's bpf_cookie). */
enum sa_fixed_point {
	SA_AP_LSM_FILE_OPEN = 0,
	SA_AP_LSM_BPRM_CHECK_SECURITY = 1,
	SA_AP_LSM_SOCKET_CONNECT = 2,
	SA_AP_LSM_FILE_PERMISSION = 3,
	SA_AP_CONNECT = 4,         /* cgroup connect4 + connect6 */
	SA_AP_FIRST_DYNAMIC = 8,
};

/* exec_event.flags */
enum sa_exec_flags {
	SA_EXEC_ARGS_TRUNCATED = 1 << 0,
	SA_EXEC_PATH_TRUNCATED = 1 << 1,
	SA_EXEC_CWD_TRUNCATED = 1 << 2,
	SA_EXEC_ARGS_FAULT = 1 << 3,
	SA_EXEC_NO_AUID = 1 << 4,
	SA_EXEC_ENV_TRUNCATED = 1 << 7,  /* the environment is longer than SA_ENV_MAX: its last variable is cut */
	SA_EXEC_ENV_FAULT = 1 << 8,      /* the environment could not be read */
	SA_EXEC_IN_INIT_TREE = 1 << 5, /* the process or an ancestor (at its fork) was its pid namespace's init */
};

/* Indexes of exec_event.ns: a process's namespace inode numbers, in the order of Tetragon's Namespaces. */
enum sa_ns {
	SA_NS_UTS = 0,
	SA_NS_IPC = 1,
	SA_NS_MNT = 2,
	SA_NS_PID = 3,
	SA_NS_PID_FOR_CHILDREN = 4,
	SA_NS_NET = 5,
	SA_NS_TIME = 6,
	SA_NS_TIME_FOR_CHILDREN = 7,
	SA_NS_CGROUP = 8,
	SA_NS_USER = 9,
	SA_NS_COUNT = 10,
};

/* Indexes of the per-CPU loss counters (map sa_lost). */
enum sa_lost_reason {
	SA_LOST_RINGBUF_FULL = 0,
	SA_LOST_RET_EVENT = 2,     /* a return probe's kept event that could not be posted (its map full, or never read) */
	SA_LOST_ENF_FULL = 5,      /* NotifyEnforcer: a thread's notification not kept, sa_enf_notify full (not an event) */
	SA_LOST_ENF_REPLACED = 6,  /* NotifyEnforcer: a notification not yet consumed, replaced by a newer one (not an event) */
	SA_LOST_DATA_RING = 7,     /* maxData: a data record not sent, the ring full (its event keeps SA_STR_MAX - 1 bytes) */
	SA_LOST_DATA_FAULT = 8,    /* maxData: a chunk of the buffer not readable (a user page not present) */
	SA_LOST_MAX = 9,
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
	__u32 nspid;             /* the pid in the task's own pid namespace (a container's init: 1) */
	__u64 cap_permitted;
	__u64 cap_effective;
	__u64 cap_inheritable;
	/* Read at exec, where user space would race: the executed file, the exec's privilege change, namespaces. */
	__u64 file_ino;
	__u32 file_nlink;
	__u32 file_uid;
	__u32 file_gid;
	__u16 file_mode;
	__u16 pad3;
	__u32 per_clear;         /* linux_binprm.per_clear: non-zero when the exec changed ids or raised capabilities */
	__u32 securebits;
	__u64 cap_ambient;
	__u32 userns_level;      /* the credentials' user namespace: nesting level, owner, group */
	__u32 userns_uid;
	__u32 userns_gid;
	__u32 ns[SA_NS_COUNT];   /* zero where the kernel has no such namespace */
	__u16 path_len;
	__u16 args_len;          /* argv, NUL separated */
	__u16 cwd_len;
	__u16 env_len;           /* envp, NUL separated; 0 unless sa_settings.env_vars */
	char data[SA_DATA_MAX];  /* path | args | cwd | env; only the used part is sent */
};

struct fork_event {
	struct event_header hdr;
	__u32 pid;
	__u32 ppid;
	__u64 start_time;
	__u64 parent_start_time;
	__u32 nspid;             /* the child's pid in its own pid namespace */
	__u32 flags;             /* SA_EXEC_IN_INIT_TREE */
};

struct exit_event {
	struct event_header hdr;
	__u32 pid;
	__u32 tid;
	__u64 start_time;
	__u32 exit_code;         /* wait(2) status: code << 8, or the signal number */
	__u32 pad0;
};

/* spec.loader (Tetragon's loader sensor): a process mapped a file executable (mmap with PROT_EXEC, seen at
 * sys_exit_mmap), once per address space and file. dev/ino/mtime name the file for the agent's build-id cache;
 * data holds the path (path_len bytes, no terminator) as the process sees it. */
struct loader_event {
	struct event_header hdr;
	__u32 pid;
	__u32 tid;
	__u64 dev;               /* the superblock's s_dev (kernel encoding: major << 20 | minor) */
	__u64 ino;
	__s64 mtime;             /* the inode's modification time, seconds */
	__u16 path_len;
	__u8 truncated;          /* the path walk did not reach the root */
	__u8 pad0[5];
	char data[SA_PATH_MAX + 1];
};

/* maxData: one chunk of a buffer argument of the policy event that follows it on the ring from the same thread
 * (SA_OP_DATA). A buffer's chunks go out in order, off 0 first; the agent joins those of a thread and argument whose
 * offsets follow each other up to total, and hands them to that thread's next policy event with the argument. */
struct sa_data_event {
	struct event_header hdr;
	__u32 tid;
	__u32 total;             /* bytes of the buffer sent (its byte count, at most SA_MAXDATA_BYTES) */
	__u32 off;               /* where this chunk starts in the buffer */
	__u8 arg;                /* the event's argument index */
	__u8 pad0[3];
	char data[SA_MAXDATA_CHUNK];
};

/* Which processes the loader sensor reports (sa_loader_config[0]): all of them while an unscoped spec.loader policy
 * is loaded, else those whose cgroup is in one of the scopes' sets (sa_scope). */
struct sa_loader_config {
	__u32 unscoped;          /* loaded spec.loader policies without a scope */
	__u32 nscopes;
	__u32 scope_ids[SA_LOADER_SCOPES];
};

/* What the kernel keeps per process (tgid) from its fork and its first exec after it (as Tetragon's execve_map):
 * the parent at fork and the pid in its own namespace (matchPIDs isNamespacePID+followForks walks these), the
 * namespaces and capabilities to compare with (matchNamespaceChanges, matchCapabilityChanges), in_init_tree.
 * The agent writes the processes that were running before it started, from /proc (BPF_NOEXIST: a record the
 * kernel wrote in between is newer). */
enum sa_proc_flags {
	SA_PROC_IN_INIT_TREE = 1 << 0,
	SA_PROC_FORKED = 1 << 1,     /* forked and not exec'd since: the next exec sets the namespaces and caps */
};

struct sa_proc {
	__u32 ppid;
	__u32 nspid;
	__u32 flags;                 /* enum sa_proc_flags */
	__u32 pad;
	__u64 caps[3];               /* effective, permitted, inheritable */
	__u32 ns[SA_NS_COUNT];
};

/* Written by the agent; read by every program. */
struct sa_settings {
	__u32 agent_tgid;        /* never subject to policies, never signalled */
	__u32 wakeup_bytes;      /* wake the reader once this many bytes are pending; 0: the kernel's default */
	__u32 env_vars;          /* non-zero: exec records carry the environment */
	__u32 host_mnt_ns;       /* the host's mount namespace (inode number): file paths as the host sees them */
};

/* Written by the event reader through a shared mapping, no syscall: non-zero while it sleeps in epoll without a timer
 * (the ring was empty at its last look), so the next record wakes it; read by every submit. */
struct sa_reader {
	__u32 asleep;
};

/* The current binary of a process, for matchBinaries (kept by the process sensor). */
struct sa_binary {
	__u32 len;
	char path[SA_STR_MAX];
};

/* ---- Tracing policies ---- */

/* How to read and render an argument. */
enum sa_arg_type {
	SA_ARG_NONE = 0,
	SA_ARG_INT = 1,          /* signed integer of `size` bytes */
	SA_ARG_U_INT = 2,        /* unsigned integer of `size` bytes */
	SA_ARG_STRING = 3,       /* user-space char *, read as a string */
	SA_ARG_SOCK_ADDR = 4,    /* user-space struct sockaddr * (cgroup hooks: the connect's destination) */
	SA_ARG_FD = 5,           /* file descriptor (int) */
	SA_ARG_FILE = 6,         /* struct file *: its path */
	SA_ARG_PATH = 7,         /* struct path *: the path */
	SA_ARG_BPRM = 8,         /* struct linux_binprm *: the executed file's path */
	SA_ARG_K_SOCK_ADDR = 9,  /* kernel struct sockaddr * */
	SA_ARG_K_STRING = 10,    /* kernel char * */
	SA_ARG_USER_PATH = 11,   /* user-space file name: joined to the cwd when relative, normalised (., .., //) */
	SA_ARG_USER_PATH_AT = 12,/* ... relative to the directory fd in the record's previous argument (AT_FDCWD: cwd) */
	SA_ARG_BUF = 13,         /* user-space buffer of exactly the byte count at record offset `size` (sizeArgIndex):
				  * up to SA_STR_MAX - 1 bytes are sent; ints[] holds the count */
	SA_ARG_BUF_RET = 14,     /* user-space buffer read at return, the count being the return value (returnCopy) */
	/* Kernel objects of a function argument (kprobes, LSM hooks), read with CO-RE into the slot's bytes. */
	SA_ARG_SOCK = 19,        /* struct sock *: struct sa_sock_info */
	SA_ARG_SOCKET = 20,      /* struct socket *: its sock, struct sa_sock_info */
	SA_ARG_SKB = 21,         /* struct sk_buff *: the IP and TCP/UDP headers, struct sa_sock_info */
	SA_ARG_CRED = 22,        /* struct cred *: struct sa_cred_info */
	SA_ARG_USER_NS = 23,     /* struct user_namespace *: struct sa_cred_info (userns fields only) */
	SA_ARG_CAPS = 24,        /* const kernel_cap_t *: the 64-bit mask (ints) */
	SA_ARG_NET_DEV = 25,     /* struct net_device *: its name (a string) */
	SA_ARG_DENTRY = 26,      /* struct dentry *: its name (a string) */
	SA_ARG_KIOCB = 27,       /* struct kiocb *: the path of its file */
	SA_ARG_MODULE = 28,      /* struct module *: its name (a string) */
	SA_ARG_LOAD_INFO = 29,   /* struct load_info *: the name of the module being loaded (a string) */
	SA_ARG_BPF_ATTR = 30,    /* union bpf_attr * of BPF_PROG_LOAD: struct sa_bpf_info */
	SA_ARG_BPF_MAP = 31,     /* struct bpf_map *: struct sa_bpf_info */
	SA_ARG_PERF_EVENT = 32,  /* struct perf_event *: struct sa_bpf_info (type, config, the kprobe's function) */
	SA_ARG_BPF_PROG = 45,    /* struct bpf_prog *: struct sa_bpf_info (type, instructions, name) */
	SA_ARG_SYSCALL64 = 46,   /* a syscall number, | 0x80000000 when the task is in a 32-bit (ia32) syscall (Tetragon's syscall64) */
	SA_ARG_IOV_ITER = 50,    /* struct iov_iter *: the bytes of its user buffer (ITER_UBUF, or ITER_IOVEC's first
				  * segment), up to SA_STR_MAX - 1; ints[] holds the segment's byte count (kprobes) */
	SA_ARG_BUF_MAX = 57,     /* SA_ARG_BUF with maxData: beyond SA_STR_MAX - 1 bytes, also sent in data records */
	SA_ARG_IOV_ITER_MAX = 58,/* SA_ARG_IOV_ITER with maxData: likewise */
	SA_ARG_RESOLVED = 60,    /* resolve: a field path followed from function argument `offset` (kprobes, LSM hooks, raw
				  * tracepoints); sa_resolve[size] holds the steps and the leaf's type and size */
};

/* policy_event.ints of a file, path or linux_binprm argument: what Tetragon's flags and permission come from. */
enum sa_ev_file_info {
	SA_EV_FILE_MODE = 0xffff,         /* the inode's i_mode (type and permission bits) */
	SA_EV_FILE_UNRESOLVED = 1 << 16,  /* the path could not be resolved whole (Tetragon's unresolvedPathComponents) */
};

/* sa_point.flags: the exit of the syscall looks the object up again (symlinks, bind mounts, hard links,
 * /proc/self/fd): the attach point's path arguments become the path of what was opened or executed. */
enum sa_point_flags {
	SA_POINT_EXIT_FD = 1 << 0,   /* the return value is a file descriptor (open, openat, openat2, creat) */
	SA_POINT_EXIT_EXE = 1 << 1,  /* a successful exec: the new mm->exe_file */
	SA_POINT_EXIT_RETURN = 1 << 2,/* return probes: the exit reads the return value for the hooks armed at enter */
	SA_POINT_EXIT_ONLY = 1 << 3, /* with EXIT_FD, every hook Post-only: no enter program; the exit program matches alone
				      * (arguments from the task's saved registers, the path of the file opened, or for a failed
				      * call the name passed, resolved as the enter would) */
	SA_POINT_EXIT_QUICK = 1 << 4,/* with EXIT_ONLY: dims[ndims] (not counted in ndims) holds, per selector with a positive
				      * Prefix/Equal on the path, "/" + the first component of its values (+ "/" when the value
				      * goes on): the opened file's top directory looked up there rejects a call before its path
				      * is built; dims[ndims + 1], per selector with a positive Postfix on the path whose values
				      * all hold a "/", "/" + their last component + "/": the file's own name looked up there
				      * does the same (a dimension of kind 0: none) */
	SA_POINT_EXIT_AFTER_NOTE = 1 << 5, /* a name-only syscall matched again after the call (fanotify): calls that pass the
				       * process-level dimensions leave a struct sa_after_note (what was passed) */
	SA_POINT_EXIT_NO_LINKS = 1 << 6, /* with EXIT_QUICK: no file is known here by its inode (no sa_inode_set entry), so no
				       * other name of a file (a hard link) can match: the quick answer skips the link count */
	SA_POINT_EXIT_IMA = 1 << 7,  /* imaHash (bprm_check_security): the hook's verdict waits, with the held events, for the
				      * sleepable program that hashes the file (lsm.bpf.c), which returns it */
};

/* Comparisons of a selector (matchArgs, matchBinaries, matchPIDs, matchCapabilities). */
enum sa_cmp {
	SA_CMP_NONE = 0,
	SA_CMP_IN = 1,           /* Equal / In / InMap: value in the filter's set */
	SA_CMP_NOT_IN = 2,
	SA_CMP_PREFIX = 3,
	SA_CMP_NOT_PREFIX = 4,
	SA_CMP_POSTFIX = 5,
	SA_CMP_NOT_POSTFIX = 6,
	SA_CMP_GREATER_THAN = 7,
	SA_CMP_LESS_THAN = 8,
	SA_CMP_MASK = 9,
	SA_CMP_D_ADDR = 10,
	SA_CMP_NOT_D_ADDR = 11,
	SA_CMP_D_PORT = 12,
	SA_CMP_NOT_D_PORT = 13,
	SA_CMP_FAMILY = 14,
	SA_CMP_NOT_FAMILY = 15,
	SA_CMP_S_ADDR = 26,      /* sock / skb: the local (source) address */
	SA_CMP_NOT_S_ADDR = 27,
	SA_CMP_S_PORT = 28,
	SA_CMP_NOT_S_PORT = 29,
	SA_CMP_PROTOCOL = 30,
	SA_CMP_NOT_PROTOCOL = 31,
	SA_CMP_STATE = 32,       /* sock: the TCP state */
	SA_CMP_NOT_STATE = 33,
	SA_CMP_CAPS_GAINED = 42, /* CapabilitiesGained (struct sa_int_cmp): the mask in slot `value` has a bit the mask in
				  * `slot` lacks (new & ~old != 0), slot holding the old set */
};

enum sa_action {
	SA_ACT_NONE = 0,
	SA_ACT_POST = 1 << 0,
	SA_ACT_SIGKILL = 1 << 1,
	SA_ACT_SIGNAL = 1 << 2,
	SA_ACT_OVERRIDE = 1 << 3,
	SA_ACT_TRACK_SOCK = 1 << 4,   /* the sock (argSock, or at return the returned one) belongs to this process */
	SA_ACT_UNTRACK_SOCK = 1 << 5, /* ... no longer */
	SA_ACT_NOTIFY_ENFORCER = 1 << 6, /* NotifyEnforcer, enforced at the hook through SIGNAL/OVERRIDE: names the event's action */
	SA_ACT_NOTIFY_NEXT = 1 << 7,     /* NotifyEnforcer at another hook: the thread's notification (signal, error) is
					  * consumed by the enforcer program at its next call among the policy's spec.enforcers */
	SA_ACT_ENF_CLEANUP = 1 << 8,     /* CleanupEnforcerNotification: drop the thread's pending notification of this policy */
	SA_ACT_KERNEL_STACK = 1 << 9,    /* Post with kernelStackTrace: the event carries the kernel stack */
	SA_ACT_USER_STACK = 1 << 10,     /* Post with userStackTrace: the event carries the user stack */
	SA_ACT_SET = 1 << 11,            /* usdt Set: argValue written at the probe argument's memory operand */
	SA_ACT_IMA_HASH = 1 << 12,       /* Post with imaHash: the event waits for the sleepable LSM program, which appends the
					  * file's IMA hash (SA_IMA_HASH_MAX bytes at the end of data, the algorithm in ret) */
	SA_ACT_MAX_DATA = 1 << 13,       /* Post of a hook with maxData arguments: their buffers go out in data records first */
};

/* policy_event.flags */
enum sa_policy_event_flags {
	SA_PEV_ENFORCED = 1 << 0,        /* the signal was sent / the errno returned */
	SA_PEV_MONITOR = 1 << 1,         /* policy-mode monitor: would have enforced */
	SA_PEV_SAFETY_REFUSED = 1 << 2,  /* target was pid 1, a kernel thread or the agent */
	SA_PEV_STR_TRUNCATED = 1 << 3,
	SA_PEV_DENY_SET = 1 << 4,        /* enforced because user space put the process in the deny set */
	SA_PEV_AT_EXIT = 1 << 5,         /* matched at the syscall's exit, on the object the kernel looked up */
	SA_PEV_RETURN = 1 << 6,          /* a return probe's event, posted at return: ret and ret_actions are set */
	SA_PEV_RETURN_ENFORCED = 1 << 7, /* the return actions' signal was sent */
};

/* One matchReturnArgs entry on the return value (signed, as a syscall returns it). cmp: SA_CMP_IN (Equal, any of
 * the values), SA_CMP_NOT_IN, SA_CMP_GREATER_THAN, SA_CMP_LESS_THAN, SA_CMP_MASK (values[0]). */
struct sa_ret_cmp {
	__u8 cmp;
	__u8 nvalues;
	__u8 is_signed;          /* the returnArg type is signed (int, long, fd): else compared unsigned (size_t, uint64) */
	__u8 pad[5];
	__s64 values[SA_RET_VALUES];
};

/* An indexed dimension of the selectors at an attach point: one map lookup per call gives the bitmap of the
 * selectors whose value set holds the call's value. Process-level kinds (the binary) sort first. */
enum sa_dim_kind {
	SA_DIM_BIN_EXACT = 1,    /* sa_str_set, the binary's path */
	SA_DIM_BIN_PREFIX = 2,   /* sa_str_prefix, the binary's path */
	SA_DIM_BIN_POSTFIX = 3,  /* sa_str_prefix, the binary's path reversed */
	SA_DIM_STR_EXACT = 4,    /* sa_str_set, a string argument */
	SA_DIM_STR_PREFIX = 5,   /* sa_str_prefix, a string argument */
	SA_DIM_STR_POSTFIX = 6,  /* sa_str_prefix, a string argument reversed */
	SA_DIM_INT = 7,          /* sa_int_set, an integer argument */
	SA_DIM_ADDR = 8,         /* sa_addr_lpm, a sockaddr's address */
	SA_DIM_PORT = 9,         /* sa_int_set, a sockaddr's port */
	SA_DIM_FAMILY = 10,      /* sa_int_set, a sockaddr's family */
	/* kargs (phase 4): fields of a struct sa_sock_info slot */
	SA_DIM_S_ADDR = 24,      /* sa_addr_lpm, the local end's address */
	SA_DIM_S_PORT = 25,      /* sa_int_set, the local end's port */
	SA_DIM_PROTOCOL = 26,    /* sa_int_set, the IP protocol */
	SA_DIM_STATE = 27,       /* sa_int_set, the TCP state */
};

/* sa_selector.flags */
enum sa_selector_flags {
	SA_SEL_ENFORCE = 1 << 0,     /* policy-mode enforce (else monitor) */
	SA_SEL_USER_SPACE = 1 << 1,  /* matchParentBinaries: user space decides; check the deny set, wake the reader */
	SA_SEL_PID_NS = 1 << 2,      /* matchPIDs isNamespacePID */
};

/* Where an argument comes from and how it is read. */
struct sa_point_arg {
	__u16 offset;            /* tracepoints: offset in the record; functions: argument number */
	__u8 size;
	__u8 type;               /* enum sa_arg_type */
};

struct sa_dim {
	__u8 kind;               /* enum sa_dim_kind */
	__u8 slot;               /* point argument slot (argument kinds) */
	__u16 pad;
	__u64 care[SA_SEL_WORDS];    /* selectors that constrain this dimension */
	__u64 neg[SA_SEL_WORDS];     /* ... with a negated operator (NotIn, NotPrefix, NotDAddr, ...) */
};

/* One generation of an attach point's configuration (sa_points[{ap, gen}]): the union of the arguments its
 * hooks read and the indexed dimensions of their selectors. */
struct sa_point {
	__u16 nbits;             /* selector bits in use */
	__u8 nargs;
	__u8 ndims;
	__u8 nproc_dims;         /* the first nproc_dims dimensions need no argument */
	__u8 reverse_mask;       /* argument slots whose reversed string a Postfix dimension looks up */
	__u8 flags;              /* enum sa_point_flags */
	__u8 stacks;             /* 1: a hook here posts stack traces; calls that survive the indexed dimensions take them */
	struct sa_point_arg args[SA_POINT_ARGS];
	__u64 valid[SA_SEL_WORDS];   /* bits < nbits */
	struct sa_dim dims[SA_MAX_DIMS];
	/* raw_syscalls/sys_enter and sys_exit fire on every syscall: when each selector at the point wants the syscall number
	 * in a set, the union of those sets, so that the other syscalls leave before the selectors run. */
	__u32 sysid_filter;      /* 1: sysids applies */
	__u32 pad;
	__u64 sysids[SA_SYSID_WORDS];
};

/* One call of a name-only syscall (SA_POINT_EXIT_AFTER_NOTE) as the process made it: the agent joins the fanotify change it
 * made (reported with the thread's id) to it, so the after-call event names the syscall and carries the strings passed.
 * sa_after_notes is an mmapped ring indexed by seq % SA_AFTER_NOTES: seq is 0 while the entry is written, then the
 * call's number (from 1) in the order the calls were noted. */
struct sa_after_note {
	__u64 seq;
	__u64 ktime;
	__u32 tid;               /* the calling thread; 0: an io_uring request (made by one of tgid's io_uring workers) */
	__u32 tgid;
	__u32 nr;                /* the syscall's number (the sys_enter record's id) */
	__u16 off[2];            /* the record offsets of the first two string arguments read at the point ... */
	__u16 len[2];            /* ... their lengths without the terminator (0: none) ... */
	__u32 pad;
	char name[2][SA_STR_MAX];/* ... and the strings as passed */
};

/* A resolve: field path (sa_resolve, indexed by the point argument's size byte). From the argument's value, step i
 * adds off[i] and, when bit i of deref is set, reads the pointer there; the result is read as `type` of `size`
 * bytes, as if it were the argument (a struct leaf is its address, a pointer or integer leaf its value). */
struct sa_resolve {
	struct sa_point_arg leaf;/* type and size the leaf is read as (offset unused) */
	__u8 nsteps;
	__u8 pad[3];
	__u32 deref;
	__u32 off[SA_RESOLVE_DEPTH];
};

/* The key of sa_selectors (sa_points: an array, policy_maps.h's sa_point_index). */
struct sa_selector_key {
	__u32 ap;
	__u32 gen;
	__u32 bit;
};

/* A comparison that is not indexed: evaluated only for selectors that survive every dimension. */
struct sa_int_cmp {
	__u8 slot;               /* point argument slot */
	__u8 cmp;                /* SA_CMP_GREATER_THAN / LESS_THAN / MASK */
	__u8 is_signed;
	__u8 pad[5];
	__u64 value;
};

/* A matchNamespaces entry: the task's namespace `ns` (enum sa_ns) is (SA_CMP_IN) or is not one of the values. */
struct sa_ns_match {
	__u8 ns;
	__u8 cmp;
	__u8 nvals;
	__u8 pad;
	__u32 vals[SA_NS_MAX_VALUES];
};

/* One selector bit of one generation: what is not indexed, and the actions of its hook. */
struct sa_selector {
	__u32 hook_id;
	__u32 policy_id;
	__u16 hook_end;          /* first bit after this hook's selectors */
	__u8 index;              /* selector number within the hook */
	__u8 flags;              /* enum sa_selector_flags */
	__u32 actions;           /* enum sa_action bits */
	__u32 signal;            /* for SA_ACT_SIGNAL */
	__s32 error;             /* Override errno (negative) */
	__u64 rate_limit_ns;     /* Post at most once per window per process; 0: no limit */
	__u32 scope_id;          /* non-zero: only processes whose cgroup is in sa_scope[scope_id] */
	__u8 pid_cmp;            /* SA_CMP_IN / SA_CMP_NOT_IN */
	__u8 npids;
	__u8 follow;             /* matchPIDs followForks: 1 + bit in sa_follow masks; 0 none */
	__u8 cap_cmp;            /* SA_CMP_IN: any of the mask held; SA_CMP_NOT_IN: none held */
	__u32 pids[SA_MAX_PIDS];
	__u64 cap_mask;
	__u8 cap_set;            /* 0 effective, 1 permitted, 2 inheritable */
	__u8 ncmps;
	__u8 nargs;              /* the hook's arguments ... */
	__u8 args[SA_MAX_ARGS];  /* ... and the point slot each is read into */
	struct sa_int_cmp cmps[SA_MAX_INT_CMPS];
	/* Return probes (appended): the return filters and the actions at return (matchReturnActions). */
	__u8 ret_hook;           /* 1: the hook is a return probe, its event is posted at return */
	__u8 ret_ncmps;
	__u8 ret_copy;           /* 1 + the event argument read at return (returnCopy); 0 none */
	__u8 ret_sock;           /* 1: the return value is a struct sock *, its struct sa_sock_info appended to the event */
	__u32 ret_actions;       /* enum sa_action bits done at return; SA_ACT_POST posts the kept event */
	__u32 ret_signal;        /* for SA_ACT_SIGNAL at return */
	__u32 ret_pad2;
	struct sa_ret_cmp ret_cmps[SA_RET_CMPS];
	/* Namespaces, pid tree and capability changes: checked only when ns_any is set. */
	__u8 ns_any;
	__u8 pid_tree;           /* matchPIDs isNamespacePID+followForks: the pids of the process and its ancestors */
	__u8 ns_nmatch;          /* matchNamespaces entries */
	__u8 ns_chg_cmp;         /* matchNamespaceChanges: SA_CMP_IN / SA_CMP_NOT_IN; 0 none */
	__u16 ns_chg_mask;       /* bits 1 << enum sa_ns */
	__u8 cap_chg_cmp;        /* matchCapabilityChanges: SA_CMP_IN / SA_CMP_NOT_IN; 0 none */
	__u8 cap_chg_set;        /* 0 effective, 1 permitted, 2 inheritable */
	__u32 cap_userns;        /* isNamespaceCapability: the host's user namespace inode (0: any namespace) */
	__u32 cap_chg_userns;    /* ... of matchCapabilityChanges */
	__u64 cap_chg_mask;
	struct sa_ns_match ns_match[SA_NS_MAX_MATCH];
	/* TrackSock / UntrackSock (matchActions): the point slot of the argSock argument. */
	__u8 sock_slot;
	__u8 sock_pad[7];
	/* usdt Set (appended): the note argument written, as 1 + its number (0: none), and the note's size of it. */
	__u8 set_arg;
	__u8 set_size;
	__u8 set_pad[6];
	__u64 set_value;         /* argValue, its low set_size bytes written */
};

/* Value-set maps: {generation, attach point, dimension, value} -> bitmap of the selectors whose set holds the
 * value (for prefixes and CIDRs: of every stored prefix of it, so the longest match answers for all). */
struct sa_value_hdr {
	__u32 gen;
	__u16 ap;
	__u16 dim;
};

struct sa_bitmap {
	__u64 w[SA_SEL_WORDS];
};

struct sa_str_key {
	struct sa_value_hdr hdr;
	char data[SA_STR_MAX];   /* zero padded */
};

struct sa_lpm_key {
	__u32 prefixlen;         /* 64 (header) + 8 * bytes */
	struct sa_value_hdr hdr;
	char data[SA_LPM_STR_MAX];
};

/* The other names of a file: a value of a file-name dimension that names an existing file (or, for a prefix,
 * the files under it when loaded) is also stored by inode, which a syscall's exit looks up when the file it
 * opened or executed has more than one link. */
struct sa_inode_key {
	struct sa_value_hdr hdr;
	__u32 dev;               /* the kernel's s_dev: major << 20 | minor */
	__u32 pad;
	__u64 ino;
};

struct sa_int_key {
	struct sa_value_hdr hdr;
	__u64 value;
};

struct sa_addr_key {
	__u32 prefixlen;         /* 64 (header) + 8 (family) + address bits */
	struct sa_value_hdr hdr;
	__u8 family;
	__u8 addr[16];
};

/* A policy's scope: the cgroups (containers) of the pods its podSelector / namespace selects. */
struct sa_scope_key {
	__u32 scope_id;
	__u32 pad;
	__u64 cgroup_id;
};

/* Processes user space decided against (ancestry rules): their next matches are enforced in the kernel. */
struct sa_deny_key {
	__u32 hook_id;
	__u32 selector;
	__u32 tgid;
};

struct sa_rate_key {
	__u32 hook_id;
	__u32 selector;
	__u32 tgid;
	__u32 pad;
};

/* Kernel-side counters (per-CPU, summed by the agent): per hook, and calls seen per attach point. */
struct sa_hook_stats {
	__u64 matched;
	__u64 posted;
	__u64 enforced;
	__u64 rate_limited;
};

/* Indexes of sa_socktrack_stats: TrackSock's new entries and UntrackSock's removals. The LRU map forgets its oldest
 * entry when a new one does not fit; those evictions are the added entries less the removed ones and those there. */
enum sa_socktrack_stat {
	SA_SOCKTRACK_ADDED = 0,
	SA_SOCKTRACK_REMOVED = 1,
	SA_SOCKTRACK_STATS = 2,
};

/* sa_enf_notify's value: a thread's pending NotifyEnforcer (key: its pid_tgid). */
struct sa_enf_note {
	__u32 policy_id;         /* whose spec.enforcers calls consume it */
	__u32 hook_id;           /* the notifying hook: its sa_hook_stats.enforced counts the enforcement */
	__s32 signal;            /* argSig (0: none) */
	__s32 error;             /* argError (not applied on a tracepoint) */
};

/* sa_enf_calls' key: a syscall among a policy's spec.enforcers calls. */
struct sa_enf_call_key {
	__u32 policy_id;
	__u32 nr;                /* the syscall number, | 0x80000000 for an ia32 one (as syscall64) */
};

struct sa_point_stats {
	__u64 seen;
};

/* A sock, socket or skb argument as the slot's bytes: both ends laid out as a struct sockaddr_in / sockaddr_in6
 * (family, port in network order, address), the peer first, so the destination operators (DAddr, DPort,
 * Family) read it as they read a sockaddr argument. For an skb the peer is the IP header's destination. */
struct sa_sock_info {
	char peer[SA_SOCKADDR_SIZE];
	char local[SA_SOCKADDR_SIZE];
	__u16 type;              /* SOCK_STREAM, ... (sock) */
	__u8 protocol;           /* IPPROTO_* */
	__u8 state;              /* TCP_ESTABLISHED, ... (sock) */
	__u32 mark;
	__u32 priority;
	__u32 len;               /* skb: bytes */
	__u32 hash;              /* skb */
	__u32 pad;
	__u64 cookie;            /* sock: the socket's address, as Tetragon's cookie */
};

/* A cred (or user_namespace) argument as the slot's bytes. */
struct sa_cred_info {
	__u32 uid, gid, suid, sgid, euid, egid, fsuid, fsgid;
	__u32 securebits;
	__u32 userns_level;
	__u32 userns_uid;
	__u32 userns_gid;
	__u32 userns_inum;
	__u32 pad;
	__u64 cap_permitted;
	__u64 cap_effective;
	__u64 cap_inheritable;
};

/* A bpf_attr (BPF_PROG_LOAD), bpf_map or perf_event argument as the slot's bytes. */
struct sa_bpf_info {
	__u32 type;              /* program type, map type, or perf event type */
	__u32 count;             /* instructions; a map's key size */
	__u32 value_size;        /* map */
	__u32 max_entries;       /* map */
	__u64 config;            /* perf_event */
	__u64 probe_offset;      /* perf_event: a kprobe's offset */
	char name[64];           /* program or map name; a perf_event kprobe's function */
};

/* A policy hook's match. Only the used part travels: the strings (and sockaddrs) of the hook's arguments
 * follow the fixed part back to back, in argument order, each str_len bytes; then the passed strings of the
 * path arguments whose raw_len is not 0, in argument order; then host_len bytes, the host's path of a file
 * argument whose path differs under the process's root (a chroot or a container). */
struct policy_event {
	struct event_header hdr;
	__u32 pid;
	__u32 tid;
	__u32 hook_id;
	__u32 policy_id;
	__u8 selector;
	__u8 flags;              /* enum sa_policy_event_flags */
	__u8 nargs;
	__u8 pad0;
	__u32 actions;
	__u64 ints[SA_MAX_ARGS];
	__u16 str_len[SA_MAX_ARGS];
	__u16 raw_len[SA_MAX_ARGS];  /* path arguments: the string the process passed, when not the resolved one */
	__u16 kstack_len;        /* bytes of the kernel stack (SA_ACT_KERNEL_STACK) at data[SA_EXTRAS_KSTACK_AT] */
	__u16 ustack_len;        /* bytes of the user stack (SA_ACT_USER_STACK) at data[SA_EXTRAS_USTACK_AT] */
	__s64 ret;               /* SA_PEV_RETURN: the syscall's return value */
	__u32 ret_actions;       /* SA_PEV_RETURN: the actions done at return */
	__u16 host_len;          /* the path as the host sees it, of argument host_arg (a chroot, a container) */
	__u8 host_arg;
	__u8 pad1;
	__u64 note_seq;          /* a name-only call at a point that notes its calls: its sa_after_note's seq (0: none) */
	char data[SA_EVENT_DATA];
};
