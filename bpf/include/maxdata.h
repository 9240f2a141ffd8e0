/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* maxData (Tetragon's meaning): a Post whose hook reads a buffer argument with maxData sends that buffer, when it is
 * longer than the event's SA_STR_MAX - 1 bytes, in data records of SA_MAXDATA_CHUNK bytes (at most SA_MAXDATA_BYTES)
 * just before the event; the agent joins them to it. One bpf_loop callback sends one chunk, from a global function. Only tracepoints (sizeArgIndex on a syscall's char_buf) and the kprobe objects
 * (char_buf with sizeArgIndex, iov_iter) read such buffers. */
#pragma once

#if SA_FAMILY == SA_FAMILY_TRACEPOINT || defined(SA_FN_SIZED_BUF)
#define SA_MAXDATA 1

/* The record being filled (32 KiB: a per-CPU array value can be no larger). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sa_data_event);
} sa_data_scratch SEC(".maps");

struct sa_data_ctx {
	struct sa_call *c;
	const struct sa_point *pt;
	const struct sa_selector *sel;
	__u32 tid;
	__u32 failed;            /* arguments whose buffer could not be read whole: their other chunks are not sent */
};

static __always_inline bool sa_is_maxdata_arg(__u8 type)
{
	return type == SA_ARG_BUF_MAX || type == SA_ARG_IOV_ITER_MAX;
}

/* Chunk i % SA_MAXDATA_CHUNKS of the event's argument i / SA_MAXDATA_CHUNKS. */
static long sa_data_chunk(__u32 i, struct sa_data_ctx *x)
{
	__u64 j = i / SA_MAXDATA_CHUNKS, k = i % SA_MAXDATA_CHUNKS;
	asm volatile("" : "+r"(j));
	if (j >= SA_MAX_ARGS || j >= x->sel->nargs)
		return 1;
	if (x->failed & (1 << j))
		return 0;
	__u32 p = x->sel->args[j] & (SA_POINT_ARGS - 1);
	__u64 count = x->c->ints[p];
	if (!sa_is_maxdata_arg(x->pt->args[p].type) || count <= x->c->str_len[p])
		return 0;
	__u32 total = count < SA_MAXDATA_BYTES ? count : SA_MAXDATA_BYTES;
	__u32 off = k * SA_MAXDATA_CHUNK;
	if (off >= total)
		return 0;
	__u32 zero = 0;
	struct sa_data_event *d = bpf_map_lookup_elem(&sa_data_scratch, &zero);
	if (!d)
		return 1;
	__u32 len = total - off < SA_MAXDATA_CHUNK ? total - off : SA_MAXDATA_CHUNK;
	asm volatile("%[len] &= 0x7fff" : [len] "+r"(len));
	if (len > SA_MAXDATA_CHUNK)
		return 1;
	const void *src = (const void *)(x->c->buf_ptr[p] + off);
	if (bpf_probe_read_user(d->data, len, src) != 0
#ifdef SA_FN_SIZED_BUF
	    && bpf_probe_read_kernel(d->data, len, src) != 0 /* a kernel function's buffer may be a kernel one */
#endif
	) {
		/* The agent finds the buffer incomplete and keeps the event's bytes: the rest of it is not sent. */
		sa_count_lost(SA_LOST_DATA_FAULT);
		x->failed |= 1 << j;
		return 0;
	}
	d->tid = x->tid;
	d->total = total;
	d->off = off;
	d->arg = j;
	d->pad0[0] = d->pad0[1] = d->pad0[2] = 0;
	sa_header(&d->hdr, SA_OP_DATA, offsetof(struct sa_data_event, data) + len);
	if (bpf_ringbuf_output(&sa_events, d, offsetof(struct sa_data_event, data) + len, BPF_RB_NO_WAKEUP) < 0)
		sa_count_lost(SA_LOST_DATA_RING);
	return 0;
}

/* A global function: the verifier checks it once, not once per state of the actions that call it. */
SA_GLOBAL_FN int sa_data_send(struct sa_call *c, const struct sa_point *pt, const struct sa_selector *sel, __u32 tid)
{
	if (!c || !pt || !sel)
		return 0;
	struct sa_data_ctx x = { .c = c, .pt = pt, .sel = sel, .tid = tid };
	bpf_loop(SA_MAX_ARGS * SA_MAXDATA_CHUNKS, sa_data_chunk, &x, 0);
	return 0;
}

/* The point is looked up again: this runs in sa_selector_run, which has no pointer to it. */
static __always_inline void sa_send_data(struct sa_act_run *r, struct sa_call *c, const struct sa_selector *sel)
{
	__u32 pi = sa_point_index(r->ap, r->gen);
	const struct sa_point *pt = bpf_map_lookup_elem(&sa_points, &pi);
	if (pt)
		sa_data_send(c, pt, sel, r->tid);
}
#else
static __always_inline void sa_send_data(struct sa_act_run *r, struct sa_call *c, const struct sa_selector *sel) {}
#endif
