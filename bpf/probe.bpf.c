// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* One trivial program per mechanism. The feature probe loads each alone (and attaches
 * where loading alone proves nothing) to learn what this kernel really allows. No CO-RE relocations here (see
 * probeima.bpf.c): only the probes of BTF-typed programs then need the kernel's BTF. */
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

/* usdt Set writes user memory; a kernel in lockdown (integrity or confidentiality) refuses the helper at load. Loaded
 * only, never attached. */
SEC("uprobe")
int probe_write_user(struct pt_regs *ctx)
{
	__u32 zero = 0;
	__u64 id = bpf_get_current_pid_tgid();
	/* The address is any scalar (never written: no task has id 0). Not PT_REGS_SP: a pt_regs field is a CO-RE
	 * relocation, and one in this object makes libbpf parse the kernel's BTF (~100 ms of CPU) for every probe. */
	if (id == 0)
		bpf_probe_write_user((void *)id, &zero, sizeof(zero));
	return 0;
}

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

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} probe_ring SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int probe_ringbuf_query(void *ctx)
{
	return bpf_ringbuf_query(&probe_ring, BPF_RB_AVAIL_DATA) > 0;
}

/* Attached to a syscall (on the error-injection list) and loaded only: the pid test keeps it from ever
 * overriding anything while the probe holds it. */
SEC("kprobe/__x64_sys_getppid")
int probe_override_return(struct pt_regs *ctx)
{
	if (bpf_get_current_pid_tgid() == 0)
		bpf_override_return(ctx, 0);
	return 0;
}

/* fmod_ret returning 0 leaves the function's own result. On a security_ function (allowed without error
 * injection, which distribution kernels may lack), reading its cookie (Linux 6.0), as the policy program does. */
/* fexit reading the return value and its cookie, as the return program of an overridden security_ function does. */
SEC("fexit/security_task_prctl")
int BPF_PROG(probe_fexit, int option)
{
	__u64 ret = 0;
	bpf_get_func_ret(ctx, &ret);
	volatile __u64 cookie = bpf_get_attach_cookie(ctx) + ret;
	(void)cookie;
	return 0;
}

SEC("fmod_ret/security_task_prctl")
int BPF_PROG(probe_fmod_ret, int option)
{
	volatile __u64 cookie = bpf_get_attach_cookie(ctx);
	(void)cookie;
	return 0;
}
