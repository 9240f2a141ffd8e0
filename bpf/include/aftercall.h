/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Name-only syscalls (unlink, rename, chmod, chown, mkdir, link, symlink, mknod, truncate) are matched again after the
 * call by the agent's fanotify group, on the real path of what the call changed. fanotify names the thread, not the
 * call: the enter hook notes each call that passes the process-level dimensions (its syscall and the strings it
 * passed) in a ring the agent maps, and the agent joins a change to its thread's note. */
#pragma once
#include "selectors.h"

#if SA_FAMILY == SA_FAMILY_TRACEPOINT
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SA_AFTER_NOTES);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct sa_after_note);
} sa_after_notes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sa_after_seq SEC(".maps");

/* io_uring's worker threads (io-wq, SQPOLL) by thread id -> their process (iouring.bpf.c, at their creation): an
 * IORING_OP_UNLINKAT/RENAMEAT/... is made by an io-wq worker, which fanotify names, and which is usually gone (with its
 * ring) by the time the agent reads the change: /proc cannot tell its process then, this map can; and only a thread
 * found here has its changes joined to its process's io_uring requests' notes (tid 0). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SA_IO_WORKERS);
	__type(key, __u32);
	__type(value, __u32);
} sa_io_workers SEC(".maps");

struct sa_note_ctx {
	struct sa_call *c;
	const struct sa_point *pt;
	struct sa_after_note *n;
	__u32 k;
};

/* One argument slot: a string (a name read as passed, or resolved with the passed one kept in raw[]) is noted. */
static long sa_note_step(__u32 i, struct sa_note_ctx *x)
{
	__u64 p = i;
	asm volatile("" : "+r"(p));
	if (p >= SA_POINT_ARGS || x->k >= 2)
		return 1;
	__u8 t = x->pt->args[p].type;
	if (t != SA_ARG_STRING && t != SA_ARG_USER_PATH && t != SA_ARG_USER_PATH_AT)
		return 0;
	__u32 k = x->k & 1;
	bool same = x->c->raw_len[p] == 0;
	__u32 len = same ? x->c->str_len[p] : x->c->raw_len[p];
	x->n->off[k] = x->pt->args[p].offset;
	x->n->len[k] = len;
	bpf_probe_read_kernel(x->n->name[k], sa_bound(len, SA_STR_MAX - 1) + 1, same ? x->c->str[p] : x->c->raw[p]);
	x->k++;
	return 0;
}

struct sa_note_arg {
	struct sa_run *r;
	__u64 record;
};

/* The note (a bpf_loop callback of one step: verified once, and the hook's program after it does not fork on whether
 * the point notes its calls, which would double the states the verifier walks). */
static long sa_note_call(__u32 i, struct sa_note_arg *a)
{
	struct sa_run *r = a->r;
	r->c->ev.note_seq = 0;
	if (!(r->pt->flags & SA_POINT_EXIT_AFTER_NOTE))
		return 1;
	__u32 zero = 0;
	__u64 *head = bpf_map_lookup_elem(&sa_after_seq, &zero);
	if (!head)
		return 1;
	__u64 seq = __sync_fetch_and_add(head, 1) + 1;
	__u32 at = seq & (SA_AFTER_NOTES - 1);
	struct sa_after_note *n = bpf_map_lookup_elem(&sa_after_notes, &at);
	if (!n)
		return 1;
	/* seq 0 while written, the call's number once whole: the agent copies an entry and checks seq again. */
	__sync_lock_test_and_set(&n->seq, 0);
	__s64 nr = -1;
	bpf_probe_read_kernel(&nr, sizeof(nr), (void *)(a->record + 8));
	n->ktime = bpf_ktime_get_boot_ns();
#ifdef SA_IO_URING
	/* A request is made by an io-wq worker, not by the thread that submitted it: tid 0, the agent joins it to a change
	 * by any io_uring worker of the process (sa_io_workers). */
	n->tid = 0;
#else
	n->tid = r->tid;
#endif
	n->tgid = r->tgid;
	n->nr = nr;
	n->len[0] = 0;
	n->len[1] = 0;
	struct sa_note_ctx x = { .c = r->c, .pt = r->pt, .n = n };
	bpf_loop(r->pt->nargs, sa_note_step, &x, 0);
	__sync_lock_test_and_set(&n->seq, seq);
	/* The hook's records of this call carry the seq: the agent tells the kernel's match of a call from its fanotify echo. */
	r->c->ev.note_seq = seq;
	return 1;
}

static __always_inline void sa_after_note(struct sa_run *r, const struct sa_source *src)
{
	struct sa_note_arg a = { .r = r, .record = src->record };
	bpf_loop(1, sa_note_call, &a, 0);
}
#else
static __always_inline void sa_after_note(struct sa_run *r, const struct sa_source *src) {}
#endif
