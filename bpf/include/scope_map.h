/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* sa_scope: the cgroups of each scoped policy's pods (written by the agent's ScopeManager). Its own header because
 * the loader sensor (loader.bpf.c) shares it without the rest of the policy maps. */
#pragma once
#include "contract.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sa_scope_key);
	__type(value, __u8);
} sa_scope SEC(".maps");
