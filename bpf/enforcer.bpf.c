// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* spec.enforcers (Tetragon's enforcer sensor): a NotifyEnforcer at a hook that is not one of the enforced calls
 * leaves the thread a notification (sa_enf_notify, actions.h); this program, at raw_syscalls/sys_enter, consumes it
 * when the thread next makes one of the notifying policy's enforced calls, and sends its argSig before the call
 * runs. Tetragon's enforcer overrides the call's return with argError through a kprobe or fmod_ret on the syscall
 * function; a tracepoint cannot, so the policy compiler asks for argSig 9 with argError here. A syscall no loaded
 * policy enforces costs two array lookups. Loaded and attached only while such a policy is loaded. */
#include "enforcer_maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SA_TS_COMPAT 0x0002 /* x86 thread_info.status: the task is in a 32-bit syscall */
#define SA_ENF_CALLS 4096

/* Per syscall (x86-64 nr, ia32 1024 + nr): how many loaded policies enforce it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SA_ENF_SYSCALLS);
	__type(key, __u32);
	__type(value, __u32);
} sa_enf_nrs SEC(".maps");

/* The enforced calls of each policy. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SA_ENF_CALLS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sa_enf_call_key);
	__type(value, __u8);
} sa_enf_calls SEC(".maps");

struct sa_raw_sys_enter {
	__u64 common;
	long id;
	unsigned long args[6];
};

static __always_inline bool sa_enf_wanted(__u32 idx)
{
	__u32 *n = bpf_map_lookup_elem(&sa_enf_nrs, &idx);
	return n && *n;
}

SEC("tracepoint/raw_syscalls/sys_enter")
int sa_enforcer(struct sa_raw_sys_enter *ctx)
{
	long nr = ctx->id;
	if (nr < 0 || nr >= SA_ENF_SYSCALLS / 2)
		return 0;
	bool x64 = sa_enf_wanted(nr), ia32 = sa_enf_wanted(nr + SA_ENF_SYSCALLS / 2);
	if (!x64 && !ia32)
		return 0;
	bool compat = BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), thread_info.status) & SA_TS_COMPAT;
	if (compat ? !ia32 : !x64)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct sa_enf_note *found = bpf_map_lookup_elem(&sa_enf_notify, &id);
	if (!found)
		return 0;
	struct sa_enf_note note = *found;
	struct sa_enf_call_key k = { .policy_id = note.policy_id, .nr = (__u32)nr | (compat ? 0x80000000 : 0) };
	if (!bpf_map_lookup_elem(&sa_enf_calls, &k))
		return 0; /* another policy's enforced call: the notification waits for its own */
	bpf_map_delete_elem(&sa_enf_notify, &id);
	__u32 tgid = id >> 32;
	struct sa_settings *st = sa_get_settings();
	if (!note.signal || tgid <= 1 || !st || st->agent_tgid == tgid)
		return 0;
	if (bpf_send_signal(note.signal) == 0) {
		struct sa_hook_stats *hs = bpf_map_lookup_elem(&sa_hook_stats, &note.hook_id);
		if (hs)
			__sync_fetch_and_add(&hs->enforced, 1);
	}
	return 0;
}

/* A thread that exits with a notification never consumes it. */
SEC("tracepoint/sched/sched_process_exit")
int sa_enforcer_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	bpf_map_delete_elem(&sa_enf_notify, &id);
	return 0;
}
