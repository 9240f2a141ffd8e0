/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The maps of the policy engine. tracepoint.bpf.o creates them; the other hook families' objects share them
 * (the agent's object specs list each shared map). Written by the agent (PolicyEngine), read by the hooks.
 *
 * An attach point's configuration is versioned: the agent writes a complete generation (sa_points[{ap, g}],
 * sa_selectors[{ap, g, bit}], every value-set entry under g), flips sa_active[ap] to g, waits for the programs
 * that may still use the old generation, then deletes it. A program reads sa_active once per call and uses
 * that generation throughout, so it sees either the old configuration or the new one, never a mix. */
#pragma once
#include "helpers.h"
#include "enforcer_maps.h"

#define SA_FAMILY_TRACEPOINT 1 /* arguments from the tracepoint record */
#define SA_FAMILY_FUNCTION 2   /* LSM hooks and kprobes: arguments are the function's (kernel values) */
#define SA_FAMILY_CGROUP 3     /* cgroup sock_addr: the argument is the connect's destination */
#define SA_FAMILY_USER 4       /* uprobes and USDT probes: arguments are a user-space function's (user values) */
#ifndef SA_FAMILY
#error "define SA_FAMILY before including the policy headers"
#endif

/* The maps whose memory follows what is loaded are created with BPF_F_NO_PREALLOC; their max_entries are
 * ceilings the engine accounts for before it writes anything (a hash map still allocates its buckets: 16 bytes
 * per entry of the ceiling, rounded up to a power of two). While an attach point changes, its old and new
 * generations are both stored. */
#define SA_VALUE_ENTRIES 262144

/* Attach point -> active generation (0: no hook there). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SA_MAX_POINTS);
	__type(key, __u32);
	__type(value, __u32);
} sa_active SEC(".maps");

/* An attach point's configuration per generation, at index sa_point_index(ap, gen): an array, so every call's first
 * lookup is an indexed load, not a hash (measured: the hash lookup was ~10 % of a no-match open's BPF time). A
 * generation's slot is rewritten two generations later, after the agent has waited for the programs that could
 * still run the one in between (PolicyEngine.Apply). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * SA_MAX_POINTS);
	__type(key, __u32);
	__type(value, struct sa_point);
} sa_points SEC(".maps");

static __always_inline __u32 sa_point_index(__u32 ap, __u32 gen)
{
	return ap * 2 + (gen & 1);
}

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sa_selector_key);
	__type(value, struct sa_selector);
} sa_selectors SEC(".maps");

/* Exact strings (arguments and binaries). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SA_VALUE_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sa_str_key);
	__type(value, struct sa_bitmap);
} sa_str_set SEC(".maps");

/* Prefixes, and reversed postfixes (other dimensions). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SA_VALUE_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sa_lpm_key);
	__type(value, struct sa_bitmap);
} sa_str_prefix SEC(".maps");

/* Integers, ports and address families. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SA_VALUE_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sa_int_key);
	__type(value, struct sa_bitmap);
} sa_int_set SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sa_addr_key);
	__type(value, struct sa_bitmap);
} sa_addr_lpm SEC(".maps");


struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SA_MAX_POINTS);
	__type(key, __u32);
	__type(value, struct sa_point_stats);
} sa_point_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct sa_deny_key);
	__type(value, __u32); /* enum sa_action bits to enforce */
} sa_deny SEC(".maps");

#include "scope_map.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct sa_rate_key);
	__type(value, __u64);
} sa_rate SEC(".maps");

/* The state of one normalisation (sa_call.norm): the output (a call slot) always starts with '/'; `comp` is
 * where the component being copied starts; sa_call.norm_stack[d] is where component d starts, for `..`. It
 * lives in the map value, not on the stack: the verifier then sees one state per step, whatever the length. */
struct sa_norm {
	__u32 slot;
	__u32 from;      /* input: 0 the slot's passed string (sa_call.raw), 1 the path scratch buffer at `start` */
	__u32 start;
	__u32 len;
	__u32 out_len;
	__u32 comp;
	__u32 depth;
	bool trunc;
};

/* The walk to a file's path as the host sees it (paths.h, sa_host_view); in the map value like sa_norm. */
struct sa_host_walk {
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	__u32 off;
	__u32 host_ns;
	bool done;
};

/* TrackSock: a sock's owner, so that later events on it (from softirq, or another task) are the owner's. */
struct sa_sock_owner {
	__u32 tgid;
	__u32 tid;
};

/* Return probes' keys (sa_ret_pending, sa_ret_events): by thread and attach point. */
struct sa_ret_key {
	__u64 id;                /* pid_tgid */
	__u32 n;                 /* the hook's rank among those the call armed (the state's key: 0) */
	__u32 ap;                /* nested calls of one thread (a syscall, a kernel function inside it) do not collide */
};

/* A matched selector's view of the call (policy.h's sa_selector_run, a global function, gets no pointer to the run on
 * the stack): copied from the run before the selector walk; verdict and the return hooks are read back after it. */
struct sa_act_run {
	__u32 ap;
	__u32 gen;
	__u32 tgid;
	__u32 tid;
	__u32 op;
	__u32 bit;                   /* the matched selector's bit + 1 */
	__s32 verdict;               /* errno for LSM and cgroup hooks (0: allow) */
	bool at_exit;                /* a syscall's exit, on the object the kernel looked up */
	__u8 pad;
	__u16 nret;                  /* return hooks matched at enter, their bits: */
	__u16 ret_bits[SA_RET_MAX];
	__s64 ret;                   /* at a syscall's exit: its return value */
	/* A USDT probe's arguments that the note places in memory: address | size << 56 (0: not in memory), for Set.
	 * Numbers, not the context: the selectors run in a bpf_loop callback. */
	__u64 wloc[SA_MAX_FN_ARGS];
};

/* Per-CPU state of one call: the arguments read at the attach point, the surviving selector bits, a lookup
 * key and the record being built. */
/* What a family hands to the reader. */
struct sa_source {
	__u64 record;                   /* tracepoints: the record's address, as a number */
	union {                         /* one family reads one of them: the union keeps the families' frames (where this
	                                 * lives on the stack) well under 6.1's 512 bytes over all calls */
		__u64 raw[SA_MAX_FN_ARGS];  /* LSM hooks, kprobes, raw tracepoints, uprobes, USDT: the arguments */
		char dest[SA_SOCKADDR_SIZE];/* cgroup connect hooks: the destination as a struct sockaddr */
	};
	__u64 file;                     /* a syscall's exit: the struct file it opened or executed */
	__s64 ret;                      /* a syscall's exit: its return value */
	void *ctx;                      /* the program's context, for bpf_get_stack (NULL: no stack traces) */
};

/* The top directory of an opened file's path (policy.h, sa_top_of): a child of the task's root, or the file itself. */
struct sa_top {
	__u64 dentry;
	__u64 hash_len;          /* its name's hash and length as the kernel keeps them */
	__u64 inode;
	__u64 name;              /* its name (kernel address) */
	__u32 len;               /* 0: not known cheaply */
	__u32 pad;
};

/* One of the exit-only quick answer's last lookups on this CPU (policy.h, sa_quick_hits): the top directory it was for,
 * known by its dentry, name hash and length, and inode, and the selectors of point `ap` at generation `gen` whose values
 * allow that name. SA_QUICK_SEEN of them, by the name's hash. */
#define SA_QUICK_SEEN 8
struct sa_quick_seen {
	__u64 dentry;            /* 0: none */
	__u64 hash_len;
	__u64 inode;
	__u32 ap;
	__u32 gen;
	__u32 dim;               /* the quick dimension asked: the top directory's, or the file's own name's */
	__u32 pad;
	__u64 hit[SA_SEL_WORDS];
};

struct sa_call {
	__u64 live[SA_SEL_WORDS];
	__u64 ints[SA_POINT_ARGS];
	__u64 fired[SA_SEL_WORDS];   /* the bits of the hooks that matched on this call */
	__u16 str_len[SA_POINT_ARGS];
	__u16 raw_len[SA_POINT_ARGS];/* path slots: length of the passed string in raw[] (0: same as str[]) */
	__u8 trunc_mask;         /* argument slots whose string was cut at SA_STR_MAX - 1 bytes */
	__u8 pad[7];
	char str[SA_POINT_ARGS][SA_STR_MAX];
	char raw[SA_POINT_ARGS][SA_STR_MAX];
	struct sa_norm norm;
	__u16 norm_stack[SA_NORM_DEPTH];     /* path normalisation: where each component starts */
	__u64 skip[SA_SEL_WORDS];    /* a syscall's exit: the bits of the hooks that matched at its enter */
	__u64 proc_live[SA_SEL_WORDS]; /* the bits that passed the process-level dimensions (at enter; at exit: then) */
	__u8 exit_record[SA_SYSCALL_RECORD]; /* ... and the record its enter saw */
	__u64 file_ino;          /* a syscall's exit: the file's inode when it has more than one link, else 0 */
	__u32 file_dev;
	__u16 host_len;          /* the first path argument as the host sees it (0: as the process sees it) */
	__u8 host_slot;
	__u8 pad2;
	char host[2 * SA_STR_MAX];   /* the root's host path and the argument, side by side */
	struct sa_host_walk host_walk;
	struct sa_source exit_src; /* a syscall's exit: here, not on the stack (6.1's 512 bytes over all frames) */
	__s64 exit_ret;          /* a syscall's exit: its return value (0 at sched_process_exec) */
	char rev[SA_POINT_ARGS][SA_STR_MAX];
	char bin_rev[SA_STR_MAX];
	struct sa_binary no_bin; /* never written: the binary of a process the sensor does not know, "" */
	union {
		struct sa_str_key str;
		struct sa_lpm_key lpm;
		struct sa_int_key num;
		struct sa_addr_key addr;
		struct sa_inode_key inode;
	} key;
	__u64 kstack[SA_EXTRAS_STACK_DEPTH]; /* SA_POINT_STACKS: this call's stacks, copied into the events that ask */
	__u64 ustack[SA_EXTRAS_STACK_DEPTH];
	__u32 kstack_len;
	__u32 ustack_len;
	struct policy_event ev;
	struct sa_sock_owner sock_owner; /* a tracked sock argument's owner (TrackSock); tgid 0: none */
	struct sa_ret_key ret_key;
	struct sa_act_run act;
	/* sa_selector_run's map keys and the rate limit's time: here, not on its frame (6.1's 512 bytes over all frames). */
	struct sa_selector_key sel_key;
	struct sa_deny_key deny_key;
	struct sa_rate_key rate_key;
	struct sa_ret_key held_key;
	__u64 now;
	__u64 root_now[2];       /* the task's root (vfsmount, dentry) ... */
	__u64 host_root[2];      /* ... and the last one found to be the host's (sa_host_view) */
	__u64 dim_hits[SA_SEL_WORDS]; /* sa_eval_dim: the selectors whose value set holds the call's value */
	__u64 buf_ptr[SA_POINT_ARGS]; /* maxData buffer slots: the buffer's address, for its data records (maxdata.h) */
	__u64 ctx_addr;          /* a tracepoint's record address, as a number (tracepoint.bpf.c) */
	__u64 quick_piece[8];    /* an exit-only point's quick answer (policy.h): a struct file's span, then a dentry's parent and name */
	struct sa_top quick_top;  /* ... the opened file's top directory */
	struct sa_quick_seen quick_seen[SA_QUICK_SEEN]; /* ... and the last answers */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sa_call);
} sa_call SEC(".maps");

#if SA_FAMILY == SA_FAMILY_TRACEPOINT
/* A syscall whose exit looks the object up again (sa_point.flags): what its enter saw, by thread. The exit
 * re-reads the arguments from the saved record and skips the hooks that already matched at enter. Task
 * storage: written in place (no hash update and delete per call), never evicted, freed with the thread;
 * flags 0 means not armed. */
struct sa_pending {
	__u32 ap;
	__u32 gen;
	__u8 flags;              /* the point's SA_POINT_EXIT_* */
	__u8 slot;               /* the path argument's slot ... */
	__u16 raw_len;           /* ... and the name passed (after an exec, the old memory is gone) */
	__u8 plain;              /* raw is the path the enter matched (absolute, normal, whole; no host view) */
	__u8 pad[3];
	__u32 tgid;              /* io_uring: the submitting process (a completion at a reused request address is not its) */
	__u64 fired[SA_SEL_WORDS];
	__u64 proc_live[SA_SEL_WORDS];   /* the selectors the caller passed on process-level dimensions (an exec changes the binary) */
	__u8 record[SA_SYSCALL_RECORD];
	char raw[SA_STR_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sa_pending);
} sa_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sa_inode_key);
	__type(value, struct sa_bitmap);
} sa_inode_set SEC(".maps");

#endif

/* Return probes (a syscall's exit tracepoint, a kernel function's kretprobe): per thread and attach point, the
 * return hooks its enter matched (selector bits of generation `gen`), and the event of each, built at enter (the
 * arguments as the call saw them) and posted at return with the return value. Bounded (LRU): a thread that never
 * returns is evicted; the return deletes what it read. An event that cannot be posted is counted
 * (SA_LOST_RET_EVENT): evicted before its return, left by a call that did not return, or beyond SA_RET_MAX.
 * The states outnumber the events, so the events are evicted first, where the return sees and counts it. */
struct sa_ret_state {
	__u32 ap;
	__u32 gen;
	__u32 n;
	__u16 bits[SA_RET_MAX];
	__s32 verdict;           /* SA_POINT_EXIT_IMA: the hook's verdict, returned by the program that hashes the file */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4 * SA_RET_PENDING);
	__type(key, struct sa_ret_key);
	__type(value, struct sa_ret_state);
} sa_ret_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SA_RET_PENDING);
	__type(key, struct sa_ret_key);
	__type(value, struct policy_event);
} sa_ret_events SEC(".maps");

/* TrackSock's socks and their owners. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SA_SOCK_TRACKED);
	__type(key, __u64);      /* the struct sock's address */
	__type(value, struct sa_sock_owner);
} sa_socktrack SEC(".maps");

/* sa_socktrack's entries added and removed (enum sa_socktrack_stat), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SA_SOCKTRACK_STATS);
	__type(key, __u32);
	__type(value, __u64);
} sa_socktrack_stats SEC(".maps");


static __always_inline struct sa_call *sa_call_state(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&sa_call, &zero);
}
