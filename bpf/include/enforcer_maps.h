/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The policy maps the enforcer program (enforcer.bpf.c) shares with the policy programs, kept apart so that its
 * object creates nothing else of the policy engine. */
#pragma once
#include "helpers.h"

/* Per hook id: matched, posted, enforced, rate-limited. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SA_MAX_HOOKS);
	__type(key, __u32);
	__type(value, struct sa_hook_stats);
} sa_hook_stats SEC(".maps");

/* NotifyEnforcer's pending notifications, one per thread (pid_tgid): written by the notifying hook, consumed by the
 * enforcer program at the thread's next call among the policy's enforced calls, deleted when the thread exits.
 * A full map refuses a notification (counted in sa_lost), it never forgets one silently. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SA_ENF_NOTIFY_MAX);
	__type(key, __u64);
	__type(value, struct sa_enf_note);
} sa_enf_notify SEC(".maps");
