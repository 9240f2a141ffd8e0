// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Generic tracepoint hook for tracing policies. One program, attached once per policy hook with the
 * hook id as bpf_cookie; sa_hooks[hook id] says which record fields to read and which selectors to
 * evaluate. Only an event that matches a selector reaches the ring buffer. */
#include "policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keeps the record type in BTF for LayoutTests. */
struct policy_event *sa_btf_policy_event __attribute__((unused));

/* Reads the hook's arguments from the tracepoint record into the event. */
static __always_inline void sa_read_args(struct sa_policy_scratch *s, struct sa_hook *h, void *ctx)
{
	struct policy_event *ev = &s->ev;
	__u64 base;
	ev->flags = 0;
	void *ctxp = ctx;
	/* The record is read through its address as a plain number: the verifier forbids variable
	 * offsets from the context pointer itself. */
	bpf_probe_read_kernel(&base, sizeof(base), &ctxp);

	for (int i = 0; i < SA_MAX_ARGS; i++) {
		ev->str_len[i] = 0;
		ev->ints[i] = 0;
		if (i >= h->nargs)
			continue;
		struct sa_hook_arg *a = &h->args[i];
		__u64 raw = 0;
		bpf_probe_read_kernel(&raw, a->size <= 8 ? a->size & 0xf : 8, (void *)(base + a->offset));
		if (a->type == SA_ARG_INT)
			raw = sa_sign_extend(raw, a->size);
		ev->ints[i] = raw;
		if (a->type == SA_ARG_STRING) {
			long n = bpf_probe_read_user_str(ev->str[i], SA_STR_MAX, (void *)raw);
			__u32 len = n > 0 ? n - 1 : 0;
			if (len >= SA_STR_MAX - 1)
				ev->flags |= SA_PEV_STR_TRUNCATED;
			ev->str_len[i] = len;
			if (h->reverse_mask & (1 << i))
				sa_reverse(s->rev[i], ev->str[i], len);
		} else if (a->type == SA_ARG_SOCKADDR) {
			__builtin_memset(ev->str[i], 0, 28);
			if (bpf_probe_read_user(ev->str[i], 28, (void *)raw) == 0)
				ev->str_len[i] = 28;
		}
	}
}

static __always_inline int sa_policy_hook(void *ctx)
{
	struct sa_hook_ctx x;
	if (!sa_begin(&x, bpf_get_attach_cookie(ctx)))
		return 0;
	sa_read_args(x.s, x.h, ctx);
	sa_decide(&x, SA_OP_TRACEPOINT);
	return 0;
}

/* The kernel refuses the same program twice on one tracepoint (EEXIST), so the object carries
 * SA_TP_SLOTS identical programs: the agent attaches each hook with a slot free on its tracepoint. */
#define SA_TP_SLOT(n) \
	SEC("tracepoint") int sa_policy_tp##n(void *ctx) { return sa_policy_hook(ctx); }
SA_TP_SLOT(0)
SA_TP_SLOT(1)
SA_TP_SLOT(2)
SA_TP_SLOT(3)
SA_TP_SLOT(4)
SA_TP_SLOT(5)
SA_TP_SLOT(6)
SA_TP_SLOT(7)
