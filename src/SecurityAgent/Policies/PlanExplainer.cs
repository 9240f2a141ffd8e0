using System.Text;
using SecurityAgent.Kernel;

namespace SecurityAgent.Policies;

/// <summary>Renders a <see cref="PolicyPlan"/> for people: each hook, the mechanism chosen for this kernel and
/// why, the arguments read, every selector and every map entry the engine will write.</summary>
public static class PlanExplainer
{
    public static string Explain(PolicyPlan plan)
    {
        var b = new StringBuilder();
        b.AppendLine($"policy {plan.Name} ({plan.File}): mode {(plan.Enforce ? "enforce" : "monitor: enforcing actions are reported, not carried out")}");
        if (plan.Scope is { } scope)
            b.AppendLine("  scope: processes in the containers of pods" + (scope.Namespace is null ? "" : $" in namespace {scope.Namespace}")
                + (scope.Pods is null ? "" : " with " + Describe(scope.Pods)) + (scope.Containers is null ? "" : ", containers with " + Describe(scope.Containers))
                + " (their cgroup ids in sa_scope, checked before any selector; kept current from the pod watch)");
        if (plan.Loader)
            b.AppendLine("  loader: a process_loader event for each file a process" + (plan.Scope is null ? "" : " in the scope") + " maps executable "
                + "(tracepoint syscalls/sys_exit_mmap: a successful mmap with PROT_EXEC of a file descriptor; Tetragon reads perf's mmap records "
                + "through a kprobe), once per address space and file, with the file's GNU build id read by the agent (cached per inode); "
                + "files without a build id are not reported, as in Tetragon");
        foreach (var l in plan.FtraceLists)
            b.AppendLine($"  list:{l.Name} (generated_ftrace): a kprobe on each kernel function matching '{l.Pattern}' (an unanchored regular expression; "
                + "functions of modules left out) in " + (l.Functions is null
                    ? $"{l.Source}, read on the node when the policy loads (at most {FtraceFunctions.MaxFunctions}: a pattern matching none or more refuses the policy there)"
                    : $"{l.Source}: {l.Functions.Count} function(s): {string.Join(", ", l.Functions.Take(16))}{(l.Functions.Count > 16 ? ", ..." : "")}"));
        for (int h = 0; h < plan.Hooks.Count; h++)
        {
            var hook = plan.Hooks[h];
            b.AppendLine($"  hook {h}: {hook.Kind.ToString().ToLowerInvariant()} {hook.Name}");
            b.AppendLine($"    mechanism: {KernelFeatures.MechanismName(hook.Mechanism)} {hook.Target}");
            b.AppendLine($"    why: {hook.Why}");
            if (PathArguments.MatchedWhere(hook) is { } where && hook.Selectors.Any(sel => sel.Args.Any(f => f.ValueSet is not null
                    && PathArguments.Resolved(hook.Target, hook.Args.First(a => a.Slot == f.Slot).Offset, hook.Args.First(a => a.Slot == f.Slot).KernelType) is not null)))
                b.AppendLine("    " + where);
            if (hook.Mechanism == Mechanism.Tracepoint && hook.Target.StartsWith("raw_syscalls/"))
                b.AppendLine("    " + SyscallFilter(plan, hook));
            if (hook.Mechanism == Mechanism.Tracepoint && IoUringOps.Explain(hook.Target) is { } uring)
                b.AppendLine("    " + uring);
            if (hook.Mechanism == Mechanism.FanotifyPerm)
                foreach (var line in Fanotify.FanotifyPolicies.DescribeMarks(plan, hook))
                    b.AppendLine($"    fanotify {line}");
            foreach (var a in hook.Args)
                b.AppendLine($"    arg slot {a.Slot}: index {a.Index} {a.Type}{(a.Label is null ? "" : $" \"{a.Label}\"")} -> " + Resolved(a)
                    + (hook.Mechanism switch
                    {
                        Mechanism.CgroupSockAddr => "the destination from the connect context",
                        Mechanism.FanotifyPerm => "the opened file's canonical path (from the event's fd)",
                        Mechanism.Kprobe when a.KernelType is ArgType.Buf or ArgType.BufMax => $"the buffer in argument {a.Offset}: exactly the byte count in argument {a.Size} (sizeArgIndex), "
                            + BufferSent(a.KernelType),
                        _ when a.KernelType is ArgType.IovIter or ArgType.IovIterMax => $"the user data of the iov_iter in argument {a.Offset} (the buffer of ITER_UBUF, or the first segment of ITER_IOVEC; "
                            + $"kernel, pipe and page iterators: no bytes): " + BufferSent(a.KernelType),
                        _ when a.KernelType is ArgType.Buf or ArgType.BufMax => $"the buffer at record offset {a.Offset}: exactly the byte count at record offset {a.Size} (sizeArgIndex), "
                            + BufferSent(a.KernelType),
                        _ when a.KernelType == ArgType.BufRet => $"the buffer at record offset {a.Offset}, read at return: as many bytes as the call returned (returnCopy), "
                            + $"up to {Events.Contract.StrMax - 1} sent as bytes_arg (more: truncated_bytes_arg with orig_size)",
                        _ when ArgumentLayout.Emits(a.Type) is { } emits => a.Type != "bpf_cmd"
                            ? $"function argument {a.Offset}, read as {a.KernelType}: {emits}" : $"read {a.KernelType} ({a.Size} bytes) at record offset {a.Offset}: {emits}",
                        _ => $"read {a.KernelType} ({a.Size} bytes) at record offset {a.Offset}",
                    }));
            if (hook.Return is { } ret)
                b.AppendLine($"    return probe: {ret.Tracepoint} reads the return value as returnArg {ret.Type} ({ret.KernelType}, {ret.Size} bytes{(ret.Signed ? ", signed" : "")}); "
                    + "the selectors' matchArgs, matchBinaries, matchPIDs and matchActions are decided at entry, where the event is built with the arguments "
                    + "as the call saw them; a matching call's event waits (per thread, sa_ret_events) and is posted at return, with `return`, only when "
                    + "that selector's matchReturnArgs pass, after its matchReturnActions (a Sigkill there lands before the return to user space)"
                    + (ret.ArgAction == Actions.None ? "" : $"; returnArgAction {(ret.ArgAction == Actions.TrackSock ? "TrackSock: the returned sock becomes the calling process's (later events "
                        + "whose sock or socket argument is that sock are attributed to it, in any context, until UntrackSock)" : "UntrackSock: the returned sock is no longer tracked")}"
                        + ", done at return before the return filters"));
            if (hook.Selectors.Count == 0)
                b.AppendLine(hook.Return is null ? "    no selectors: every call is posted" : "    no selectors: every call is posted at return");
            for (int s = 0; s < hook.Selectors.Count; s++)
            {
                var sel = hook.Selectors[s];
                b.AppendLine($"    selector {s} (decided {(hook.Mechanism == Mechanism.FanotifyPerm ? "by the agent's fanotify decision thread" : sel.KernelOnly ? "in the kernel" : "in the kernel, then in user space for ancestry")}): actions {sel.Actions}"
                    + (sel.Signal != 0 ? $" signal {sel.Signal}" : "") + (sel.Error != 0 ? $" errno {sel.Error}" : "")
                    + (sel.RateLimitNs != 0 ? $" rate limit {sel.RateLimitNs / 1_000_000_000}s" : ""));
                if (sel.Enforcer is { } enforcer)
                    b.AppendLine($"      {enforcer}");
                if (sel.PidCmp != Cmp.None)
                    b.AppendLine($"      matchPIDs {(s < hook.Pids.Count ? hook.Pids[s] : "")} -> pid {sel.PidCmp} [{string.Join(", ", sel.Pids)}] of "
                        + (sel.NamespacePids ? "the process's pid in its own pid namespace" : "the process (its pid in the host's pid namespace)")
                        + (sel.PidTree ? $", or of one of its {Events.Contract.NsTreeDepth - 1} nearest ancestors (recorded in the kernel at fork, while they live)"
                            + (sel.PidCmp == Cmp.NotIn && sel.Pids.Contains(1u) ? ": NotIn [1] selects processes not descended from their pid namespace's init (kubectl exec, nsenter sessions)" : "")
                            + "; a process the kernel has no record of (started before the agent, not exec'd since) does not match"
                            : sel.FollowForks ? ", or of any ancestor: descendants are followed from fork" : ""));
                if (sel.BinaryCmp != Cmp.None) b.AppendLine($"      binary {sel.BinaryCmp} {Set(plan, sel.BinaryValueSet)}");
                if (sel.CapCmp != Cmp.None) b.AppendLine($"      capabilities {sel.CapCmp} mask 0x{sel.CapMask:x} ({CapSetName(sel.CapSet)})"
                    + (sel.CapNamespaceOnly ? ", only outside the host's user namespace (isNamespaceCapability)" : ""));
                foreach (var n in sel.Namespaces)
                    b.AppendLine($"      namespace {n.Namespace} {n.Cmp} [{string.Join(", ", n.Values)}] (the task's namespace inode, read in the kernel"
                        + (n.Values.Contains("host_ns") ? "; host_ns: the namespace of the host's init, /proc/1/ns, resolved when the policy loads)" : ")"));
                if (sel.NamespaceChangeCmp != Cmp.None)
                    b.AppendLine($"      namespace changes {sel.NamespaceChangeCmp} [{string.Join(", ", Enum.GetValues<Events.Wire.Namespace>().Where(n => (sel.NamespaceChangeMask & (1 << (int)n)) != 0 && n != Events.Wire.Namespace.Count))}]: "
                        + (sel.NamespaceChangeCmp == Cmp.In ? "one of these" : "a namespace other than these") + " differs from the one the process had at exec (kept in the kernel); processes with no exec record do not match");
                if (sel.CapChangeCmp != Cmp.None)
                    b.AppendLine($"      capability changes {sel.CapChangeCmp} mask 0x{sel.CapChangeMask:x} ({CapSetName(sel.CapChangeSet)}): "
                        + (sel.CapChangeCmp == Cmp.In ? "one of these differs" : "only capabilities other than these differ") + " from the set at exec (kept in the kernel)"
                        + (sel.CapChangeNamespaceOnly ? ", only outside the host's user namespace (isNamespaceCapability)" : ""));
                foreach (var f in sel.Args)
                    b.AppendLine(f.Cmp == Cmp.CapsGained
                        ? $"      arg slot {f.Slot} CapabilitiesGained arg slot {f.Value}: the set in slot {f.Value} (new) holds a capability the set in slot {f.Slot} (old) lacks (new & ~old != 0, in the kernel)"
                        : $"      arg slot {f.Slot} {f.Cmp} " + (f.ValueSet is null ? $"0x{f.Value:x}" : Set(plan, f.ValueSet)) + Matches(hook, f));
                if (hook.Return is not null)
                    b.AppendLine("      at return: " + (sel.ReturnArgs.Count == 0 ? "any return value" : string.Join(" and ", sel.ReturnArgs.Select(r => ReturnFilter(r, hook.Return))))
                        + $" -> actions {sel.ReturnActions}" + (sel.ReturnSignal != 0 ? $" signal {sel.ReturnSignal}" : ""));
                if (sel.Set is { } set)
                    b.AppendLine($"      Set: writes {set.Value} into the probed process's memory at the note's memory operand of USDT argument {set.NoteArg}, "
                        + (set.Size == 0 ? "its size read from the note when the policy loads" : $"{set.Size} bytes (the note's size)")
                        + " (bpf_probe_write_user, when the probe fires, before the program goes on; only where the note places that argument in memory, "
                        + (plan.Enforce ? "never in pid 1 or the agent; the event's enforced says whether it was written)" : "policy-mode monitor: nothing is written, the event says it would have been)"));
                foreach (var p in sel.ParentBinaries)
                    b.AppendLine($"      parent binary {p.Operator} [{string.Join(", ", p.Values)}] (user space)");
            }
        }
        b.AppendLine("  map entries:");
        for (int i = 0; i < plan.ValueSets.Count; i++)
        {
            var v = plan.ValueSets[i];
            var map = v.Kind switch
            {
                ValueSetKind.StringExact => "sa_str_set (hash)",
                ValueSetKind.StringPrefix => "sa_str_prefix (LPM trie)",
                ValueSetKind.StringPostfix => "sa_str_prefix (LPM trie, reversed)",
                ValueSetKind.Int => "sa_int_set (hash)",
                _ => "sa_addr_lpm (LPM trie)",
            };
            foreach (var value in v.Values)
                b.AppendLine($"    set {i} -> {map}: \"{value}\"");
        }
        b.AppendLine($"  selectors: one bit each at their attach point (sa_points, sa_selectors), counters in sa_hook_stats");
        return b.ToString();
    }

    /// <summary>What turns the other syscalls away at a raw_syscalls point, which fires on every syscall (PolicyEncoding.SyscallFilter).</summary>
    private static string SyscallFilter(PolicyPlan plan, HookPlan hook)
    {
        var placed = new PlacedHook(1, 1, plan, hook, plan.Enforce, 0, hook.Selectors.Select(_ => -1).ToList());
        var ids = PolicyEncoding.Layout([placed], hook.Target).Syscalls;
        if (ids is null)
            return "syscall filter: none: every syscall of every process runs the selectors (a selector without Equal, In or InMap on the "
                + "syscall number, or with a number the filter does not cover, takes them all)";
        var numbers = Enumerable.Range(0, Events.Contract.SysidBits).Where(n => (ids[n / 64] & (1UL << (n % 64))) != 0);
        return $"syscall filter: only syscall numbers [{string.Join(", ", numbers)}] go on to the selectors; the others leave at the "
            + "program's first check (with other policies at this point: the union of theirs, or none if one of them has none)";
    }

    private static string CapSetName(byte set) => set switch { 1 => "permitted", 2 => "inheritable", _ => "effective" };

    /// <summary>resolve: the field path the argument is followed through, before its type reads the leaf.</summary>
    private static string Resolved(ArgPlan a) => a.Resolve switch
    {
        null => "",
        { Steps: null } r => $"resolve '{r.Path}': followed in the node's BTF when the policy loads there (not checked against this kernel); then ",
        var r => $"resolve '{r.Path}' from {r.From} to a {r.Leaf} (BTF of this kernel: "
            + string.Join(", ", r.Steps.Select(s => s.Deref ? $"+{s.Offset} read" : $"+{s.Offset}")) + "; a failed read gives 0); the leaf as ",
    };

    /// <summary>For string filters: whether they match the string as passed or the path the kernel resolves.</summary>
    private static string Matches(HookPlan hook, ArgFilterPlan f)
    {
        if (f.Cmp is not (Cmp.In or Cmp.NotIn or Cmp.Prefix or Cmp.NotPrefix or Cmp.Postfix or Cmp.NotPostfix)
            || hook.Args.FirstOrDefault(a => a.Slot == f.Slot) is not { KernelType: ArgType.String } arg)
            return "";
        return "\n        matches " + (PathArguments.Explain(hook, arg, f.Cmp) ?? "the string as the process passed it (not a file name the kernel resolves)");
    }

    private static string ReturnFilter(ReturnFilterPlan r, ReturnPlan ret)
    {
        string V(ulong v) => ret.Signed ? ((long)v).ToString(System.Globalization.CultureInfo.InvariantCulture) : v.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return r.Cmp switch
        {
            Cmp.In => $"return in [{string.Join(", ", r.Values.Select(V))}]",
            Cmp.NotIn => $"return not in [{string.Join(", ", r.Values.Select(V))}]",
            Cmp.GreaterThan => $"return > {V(r.Values[0])}",
            Cmp.LessThan => $"return < {V(r.Values[0])}",
            _ => $"return & 0x{r.Values[0]:x} != 0",
        } + (ret.Signed ? "" : " (unsigned)");
    }

    private static string Describe(LabelSelector s) =>
        string.Join(", ", s.MatchLabels.Select(kv => $"{kv.Key}={kv.Value}").Concat(s.Expressions.Select(e => $"{e.Key} {e.Operator} [{string.Join(",", e.Values)}]")));

    private static string Set(PolicyPlan plan, int? set) =>
        set is { } i ? $"set {i} [{string.Join(", ", plan.ValueSets[i].Values)}]" : "";

    /// <summary>How much of a buffer argument the event carries (maxData: whole, up to 327,360 bytes, in data records).</summary>
    private static string BufferSent(ArgType t) => t is ArgType.BufMax or ArgType.IovIterMax
        ? $"maxData: up to {Events.Contract.StrMax - 1} bytes in the event, a longer buffer also sent whole up to {Events.Contract.MaxdataBytes} bytes in data records "
            + $"of {Events.Contract.MaxdataChunk} bytes ahead of the event and joined to it by the agent: bytes_arg (longer: its first {Events.Contract.MaxdataBytes} bytes as "
            + "truncated_bytes_arg with orig_size; a record lost: the event's bytes, truncated_bytes_arg)"
        : $"up to {Events.Contract.StrMax - 1} bytes sent as bytes_arg (more: truncated_bytes_arg with orig_size)";
}
