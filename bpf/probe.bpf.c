// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* One trivial program per mechanism. The feature probe loads each alone (and attaches
 * where loading alone proves nothing) to learn what this kernel really allows. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tracepoint/syscalls/sys_enter_getppid")
int probe_tracepoint(void *ctx) { return 0; }

SEC("raw_tp/sys_enter")
int probe_raw_tp(void *ctx) { return 0; }

SEC("tp_btf/sched_process_fork")
int probe_tp_btf(void *ctx) { return 0; }

SEC("lsm/file_open")
int BPF_PROG(probe_lsm, struct file *file) { return 0; }

SEC("fentry/security_file_open")
int BPF_PROG(probe_fentry, struct file *file) { return 0; }

SEC("kprobe/security_file_open")
int probe_kprobe(struct pt_regs *ctx) { return 0; }

SEC("uprobe")
int probe_uprobe(struct pt_regs *ctx) { return 0; }

SEC("cgroup/connect4")
int probe_cgroup_connect4(struct bpf_sock_addr *ctx) { return 1; }

SEC("tracepoint/syscalls/sys_enter_getppid")
int probe_send_signal(void *ctx)
{
	/* Never reached with a real signal: the probe only loads it. */
	if (bpf_get_current_pid_tgid() == 0)
		bpf_send_signal(9);
	return 0;
}
