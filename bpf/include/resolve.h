/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Tetragon's resolve: an argument of a kernel function (kprobe, LSM hook, raw tracepoint) followed through a field
 * path the agent computed from the kernel's BTF: each step adds an offset and, where the field is a pointer (or the
 * leaf an integer), reads the value there. The leaf is then read as the argument's declared type. */
#pragma once
#include "policy_maps.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SA_RESOLVE_MAX);
	__type(key, __u32);
	__type(value, struct sa_resolve);
} sa_resolve SEC(".maps");

static const struct sa_point_arg sa_resolve_none = { .type = SA_ARG_NONE };

/* Follows path `id` (the point argument's size byte) from the argument's value v, in *x (the slot's place in the
 * per-CPU call state: the reads need memory, and the LSM programs' frames have little stack left); returns how the
 * result is read (the entry's leaf). A step whose read fails leaves 0, which every reader takes as nothing to read. */
static __always_inline const struct sa_point_arg *sa_resolve_arg(__u64 v, __u64 *x, const struct sa_point_arg *a)
{
	__u32 id = a->size;
	const struct sa_resolve *r = bpf_map_lookup_elem(&sa_resolve, &id);
	*x = 0;
	if (!r)
		return &sa_resolve_none;
	*x = v;
	for (int i = 0; i < SA_RESOLVE_DEPTH; i++) {
		if (i >= r->nsteps)
			break;
		*x += r->off[i];
		if (r->deref & (1U << i) && bpf_probe_read_kernel(x, sizeof(*x), (void *)*x) != 0) {
			*x = 0;
			break;
		}
	}
	return &r->leaf;
}
