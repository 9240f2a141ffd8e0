// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The imaHash feature probe, apart from probe.bpf.c: reading bprm->file is a CO-RE relocation, and libbpf parses the
 * kernel's BTF (~100 ms of CPU) for every load of an object that has one, whichever of its programs is loaded. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* imaHash: a sleepable LSM program on bprm_check_security that may call bpf_ima_file_hash (Linux 5.18). */
SEC("lsm.s/bprm_check_security")
int BPF_PROG(probe_ima_file_hash, struct linux_binprm *bprm)
{
	char digest[64];
	bpf_ima_file_hash(bprm->file, digest, sizeof(digest));
	return 0;
}
