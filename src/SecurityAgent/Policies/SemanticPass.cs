using SecurityAgent.Kernel;

namespace SecurityAgent.Policies;

/// <summary>The one semantic pass over a typed policy: options, lists, then per hook placement (<see cref="HookPlacement"/>),
/// argument layout (<see cref="ArgumentLayout"/>) and selectors (<see cref="SelectorCompiler"/>), then scope. It reports
/// every error once, at its position, and the warnings; and when nothing is wrong and the layout is known, it yields the
/// plan. The validator and the compiler both run it, so what validates compiles.</summary>
internal sealed class SemanticPass(KernelFeatures features, Func<string, string, TracepointFormat?>? formats, SyscallTable syscalls)
{
    /// <summary>Syscalls called so often that a selector matching every call of every process floods the agent.</summary>
    private static readonly HashSet<string> HotSyscalls =
    [
        "syscall", "read", "write", "open", "openat", "openat2", "close", "close_range", "stat", "fstat", "lstat", "newfstatat", "statx",
        "lseek", "mmap", "munmap", "mprotect", "brk", "pread64", "pwrite64", "readv", "writev", "access", "faccessat", "faccessat2",
        "getdents64", "futex", "poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2", "ioctl", "fcntl",
        "recvfrom", "recvmsg", "sendto", "sendmsg", "clock_gettime", "gettimeofday", "nanosleep", "clock_nanosleep", "getpid", "gettid",
        "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sched_yield", "readlink", "readlinkat", "dup", "dup2", "dup3", "pipe2",
        "file_open", "file_permission",
    ];

    public PolicyPlan? Run(TracingPolicy p, string file, DiagnosticBag d)
    {
        foreach (var n in p.Spec.NotImplemented)
            d.Error(n.Pos, n.Path, $"unsupported: '{n.Value}' is not implemented by SecurityAgent yet");
        bool enforce = Options(p.Spec.Options, d);
        var sets = new List<ValueSet>();
        var selectors = new SelectorCompiler(d, sets, Lists(p.Spec.Lists, d));
        var placement = new HookPlacement(features, formats);
        var hooks = new List<HookPlan>();
        bool complete = true;
        foreach (var hook in p.Spec.Hooks)
        {
            var place = placement.Place(hook, d);
            var args = ArgumentLayout.Layout(hook, place, d);
            var sels = selectors.Compile(hook, place, args);
            Warn(hook, place, args, d);
            if (place is { FieldsKnown: true } && args.All(a => a.Plan is not null))
                hooks.Add(new HookPlan(place.Kind, place.Mechanism, place.Target, place.Name, place.Why, args.Select(a => a.Plan!).ToList(),
                    sels, hook.Message?.Value, hook.Tags));
            else
                complete = false;
        }
        if (p.Spec.Hooks.Count == 0 && !p.Spec.NotImplemented.Any(n => n.Value is "uprobes" or "usdts"))
            d.Error(p.Spec.Pos, p.Spec.Path, "the policy has no tracepoints, kprobes or lsmhooks");
        var scope = ScopeCompiler.Compile(p, d);
        return d.HasErrors || !complete ? null : new PolicyPlan(p.Metadata.Name.Value, file, enforce, hooks, sets, scope);
    }

    /// <summary>spec.options: the policy mode (true: enforce, the default, as in Tetragon).</summary>
    private static bool Options(IReadOnlyList<OptionSpec> options, DiagnosticBag d)
    {
        bool enforce = true;
        foreach (var o in options)
        {
            if (o.Name.Value != "policy-mode")
            {
                d.Error(o.Name.Pos, o.Name.Path, $"unsupported option '{PolicyValues.Shorten(o.Name.Value)}' (supported: policy-mode)");
                continue;
            }
            if (o.Value?.Value is "enforce" or "monitor")
                enforce = o.Value.Value == "enforce";
            else
                d.Error(o.Value?.Pos ?? o.Pos, o.Value?.Path ?? PolicySchema.Child(o.Path, "value"), $"policy-mode must be 'enforce' or 'monitor', not '{PolicyValues.Shorten(o.Value?.Value ?? "")}'");
        }
        return enforce;
    }

    /// <summary>spec.lists by name; syscalls lists resolved to their numbers (x86-64) here, once.</summary>
    private Dictionary<string, ListInfo> Lists(IReadOnlyList<ListSpec> lists, DiagnosticBag d)
    {
        var byName = new Dictionary<string, ListInfo>();
        foreach (var l in lists)
        {
            IReadOnlyList<ulong>? numbers = null;
            if (l.Type.Value == "syscalls")
            {
                var list = new List<ulong>();
                foreach (var v in l.Values)
                {
                    if (syscalls.Number(v.Value) is { } n) list.Add(n);
                    else d.Error(v.Pos, v.Path, $"list {PolicyValues.Shorten(l.Name.Value)}: unknown syscall '{PolicyValues.Shorten(v.Value)}'");
                }
                numbers = list;
            }
            if (!byName.TryAdd(l.Name.Value, new ListInfo(l, numbers)))
                d.Error(l.Name.Pos, l.Name.Path, $"a list named '{PolicyValues.Shorten(l.Name.Value)}' is defined twice");
        }
        return byName;
    }

    /// <summary>What is almost certainly a mistake, though it loads: a selector that matches every call of every
    /// process (on a hot syscall, or beside other selectors it then overrides), and a path selector on a raw syscall
    /// string, which a process can dodge by spelling the path differently.</summary>
    private static void Warn(HookSpec hook, Placement? place, IReadOnlyList<ArgInfo> args, DiagnosticBag d)
    {
        var what = place?.Syscall ?? (hook as LsmHookSpec)?.Hook.Value;
        bool hot = what is not null && HotSyscalls.Contains(what);
        if (hook.Selectors.Count == 0 && hot)
            d.Warning(hook.Pos, hook.Path, $"no selectors: every {what} of every process is posted; {what} is among the most frequent calls (add matchBinaries or matchArgs)");
        for (int i = 0; i < hook.Selectors.Count; i++)
        {
            var s = hook.Selectors[i];
            if (s.HasConditions) continue;
            if (hook.Selectors.Count > 1)
                d.Warning(s.Pos, s.Path, $"selector {i} has no match conditions: it matches every call of every process, so the other selectors never decide (a stray '-' that split one selector into two?)");
            else if (hot)
                d.Warning(s.Pos, s.Path, $"selector {i} has no match conditions: it matches every {what} of every process");
        }
        if (place is not { RawSyscallStrings: true }) return;
        foreach (var m in hook.Selectors.SelectMany(s => s.MatchArgs))
        {
            var arg = ArgumentLayout.Resolve(m, args, place.Kind, null);
            if (arg is { Class: ArgClass.String } && m.Operator.Value is "Equal" or "NotEqual" or "Prefix" or "NotPrefix" or "Postfix" or "NotPostfix"
                && m.Values.Any(v => v.Value.StartsWith('/')))
                d.Warning(m.Operator.Pos, m.Operator.Path, $"matches the raw path string the process passes to {place.Syscall}: a relative path, '..', '//', '/./' "
                    + "or a symlink reaches the same file without matching (an lsmhook file_open or a kprobe on a file/path argument sees the resolved path)");
        }
    }
}

/// <summary>Scope: which pods' containers a policy applies to (podSelector, containerSelector, a namespaced policy's namespace).</summary>
internal static class ScopeCompiler
{
    public static PolicyScope? Compile(TracingPolicy p, DiagnosticBag d)
    {
        var pods = Selector(p.Spec.PodSelector, d);
        var containers = Selector(p.Spec.ContainerSelector, d);
        return p.Namespace is null && pods is null && containers is null ? null : new PolicyScope(p.Namespace, pods, containers);
    }

    private static LabelSelector? Selector(LabelSelectorSpec? s, DiagnosticBag d)
    {
        if (s is null) return null;
        foreach (var e in s.MatchExpressions)
        {
            bool needsValues = e.Operator.Value is "In" or "NotIn";
            if (needsValues && e.Values.Count == 0)
                d.Error(e.Operator.Pos, e.Operator.Path, $"operator {e.Operator.Value} needs at least one value");
            if (!needsValues && e.Values.Count > 0)
                d.Error(e.Operator.Pos, e.Operator.Path, $"operator {e.Operator.Value} takes no values");
        }
        return new LabelSelector(s.MatchLabels, s.MatchExpressions.Select(e => (e.Key, e.Operator.Value, e.Values)).ToList());
    }
}
