// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Deliberately rejected by the verifier (reads past a map value): the tests check that the
 * load error names the program and carries the verifier's explanation. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} small SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int reads_out_of_bounds(void *ctx)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&small, &zero);
	if (!v)
		return 0;
	return *(v + 64);
}
