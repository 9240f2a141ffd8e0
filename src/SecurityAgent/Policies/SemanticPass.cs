using SecurityAgent.Kernel;

namespace SecurityAgent.Policies;

/// <summary>The one semantic pass over a typed policy: options, lists, then per hook placement (<see cref="HookPlacement"/>),
/// argument layout (<see cref="ArgumentLayout"/>) and selectors (<see cref="SelectorCompiler"/>), then scope. It reports
/// every error once, at its position, and the warnings; and when nothing is wrong and the layout is known, it yields the
/// plan. The validator and the compiler both run it, so what validates compiles.</summary>
/// <param name="filterFunctions">This node's tracefs available_filter_functions, which generated_ftrace lists are resolved
/// from; null when judging for another kernel (the lists are then resolved when the policy loads on the node).</param>
internal sealed class SemanticPass(KernelFeatures features, Func<string, string, TracepointFormat?>? formats, SyscallTable syscalls, string? filterFunctions = null)
{
    private readonly HashSet<HookSpec> _deferred = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<string, FtraceListPlan> _ftraceLists = [];

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
        var (enforce, failClosed) = Options(p.Spec.Options, d);
        var lists = Lists(p.Spec.Lists, d);
        var enforcer = Enforcers(p.Spec, lists, d);
        var sets = new List<ValueSet>();
        var selectors = new SelectorCompiler(d, sets, lists, enforcer, features);
        var placement = new HookPlacement(features, formats);
        var hooks = new List<HookPlan>();
        bool complete = true;
        var macros = Macros(p.Spec.Macros, d);
        foreach (var hook in p.Spec.Hooks.Select(h => WithMacros(h, macros, d)).SelectMany(h => Expand(h, lists, d)))
        {
            var place = placement.Place(hook, d);
            var args = ArgumentLayout.Layout(hook, place, d, filterFunctions is null ? null : () => KernelBtf.Vmlinux);
            var ret = ArgumentLayout.ReturnArg(hook, place, d);
            var sels = selectors.Compile(hook, place, args, ret);
            Warn(hook, place, args, d);
            if (_deferred.Contains(hook))
                continue;
            if (place is { FieldsKnown: true } && args.All(a => a.Complete))
            {
                var plan = new HookPlan(place.Kind, place.Mechanism, place.Target, place.Name, place.Why, args.Where(a => a.Plan is not null).Select(a => a.Plan!).ToList(),
                    sels, hook.Message?.Value, hook.Tags) { Pids = PidFlags(hook), Return = ret };
                if (place.Mechanism == Mechanism.FanotifyPerm)
                    foreach (var (sel, message) in Fanotify.FanotifyPolicies.Unsupported(plan))
                        d.Error(sel >= 0 ? hook.Selectors[sel].Pos : hook.Pos, sel >= 0 ? hook.Selectors[sel].Path : hook.Path, message);
                if (place.Sites is { } sites)
                {
                    bool writes = sels.Any(sel => sel.Set is not null);
                    hooks.AddRange(sites.Select(site => site with { Writes = writes && site.IsUsdt })
                        .Select(site => plan with { Target = site.Target, Name = site.Symbol ?? site.Probe ?? $"+0x{site.Offset:x}", Site = site }));
                }
                else
                    hooks.Add(plan);
            }
            else
                complete = false;
        }
        if (p.Spec.Hooks.Count == 0 && p.Spec.Loader is null)
            d.Error(p.Spec.Pos, p.Spec.Path, "the policy has no tracepoints, kprobes, lsmhooks, uprobes or usdts");
        var scope = ScopeCompiler.Compile(p, d);
        return d.HasErrors || !complete ? null : new PolicyPlan(p.Metadata.Name.Value, file, enforce, hooks, sets, scope)
        {
            FailClosed = failClosed, FtraceLists = [.. _ftraceLists.Values], Loader = p.Spec.Loader is { Value: true },
            EnforcedCalls = hooks.Any(h => h.Selectors.Any(s => s.Actions.HasFlag(Actions.NotifyNext))) ? [.. enforcer!.Calls.Order()] : [],
        };
    }

    /// <summary>spec.selectorsMacros by name; a macro cannot use macros (as in Tetragon).</summary>
    private static Dictionary<string, SelectorSpec> Macros(IReadOnlyList<MacroSpec> macros, DiagnosticBag d)
    {
        foreach (var m in macros.Where(m => m.Selector.Macros.Count > 0))
            d.Error(m.Selector.Macros[0].Pos, m.Selector.Macros[0].Path, $"macro '{PolicyValues.Shorten(m.Name.Value)}' uses another macro: a macro definition cannot");
        return macros.ToDictionary(m => m.Name.Value, m => m.Selector);
    }

    /// <summary>A hook whose selectors take the fields of the macros they name: each field from one place only
    /// (the selector or one macro), the selector's label before a macro's, as Tetragon's appendMacrosSelectors.</summary>
    private static HookSpec WithMacros(HookSpec hook, Dictionary<string, SelectorSpec> macros, DiagnosticBag d)
    {
        if (hook.Selectors.All(s => s.Macros.Count == 0)) return hook;
        return hook with { Selectors = hook.Selectors.Select(s => s.Macros.Aggregate(s, (sel, name) => Apply(sel, name, macros, d))).ToList() };
    }

    private static SelectorSpec Apply(SelectorSpec s, Located<string> name, Dictionary<string, SelectorSpec> macros, DiagnosticBag d)
    {
        if (!macros.TryGetValue(name.Value, out var m))
        {
            d.Error(name.Pos, name.Path, macros.Count == 0 ? $"macro '{PolicyValues.Shorten(name.Value)}' is used, but spec.selectorsMacros defines none"
                : $"undefined macro '{PolicyValues.Shorten(name.Value)}' (spec.selectorsMacros defines {string.Join(", ", macros.Keys.Take(10))})");
            return s;
        }
        IReadOnlyList<T> Use<T>(IReadOnlyList<T> mine, IReadOnlyList<T> theirs, string field)
        {
            if (mine.Count == 0 || theirs.Count == 0) return [.. mine, .. theirs];
            d.Error(name.Pos, name.Path, $"{field} comes both from this selector (or an earlier macro) and from macro '{PolicyValues.Shorten(name.Value)}': a field comes from one place");
            return mine;
        }
        return s with
        {
            Label = s.Label ?? m.Label,
            MatchPids = Use(s.MatchPids, m.MatchPids, "matchPIDs"),
            MatchArgs = Use(s.MatchArgs, m.MatchArgs, "matchArgs"),
            MatchData = Use(s.MatchData, m.MatchData, "matchData"),
            MatchActions = Use(s.MatchActions, m.MatchActions, "matchActions"),
            MatchReturnArgs = Use(s.MatchReturnArgs, m.MatchReturnArgs, "matchReturnArgs"),
            MatchReturnActions = Use(s.MatchReturnActions, m.MatchReturnActions, "matchReturnActions"),
            MatchBinaries = Use(s.MatchBinaries, m.MatchBinaries, "matchBinaries"),
            MatchParentBinaries = Use(s.MatchParentBinaries, m.MatchParentBinaries, "matchParentBinaries"),
            MatchNamespaces = Use(s.MatchNamespaces, m.MatchNamespaces, "matchNamespaces"),
            MatchNamespaceChanges = Use(s.MatchNamespaceChanges, m.MatchNamespaceChanges, "matchNamespaceChanges"),
            MatchCapabilities = Use(s.MatchCapabilities, m.MatchCapabilities, "matchCapabilities"),
            MatchCapabilityChanges = Use(s.MatchCapabilityChanges, m.MatchCapabilityChanges, "matchCapabilityChanges"),
        };
    }

    /// <summary>The matchPIDs flags of each selector as written (the explanation shows them even where a flag is refused).</summary>
    private static IReadOnlyList<string> PidFlags(HookSpec hook) =>
        hook.Selectors.Select(s => string.Join("; ", s.MatchPids.Select(m => $"{m.Operator.Value} [{string.Join(", ", m.Values.Select(v => v.Value))}] "
            + $"isNamespacePID={(m.IsNamespacePid ? "true" : "false")} followForks={(m.FollowForks ? "true" : "false")}"))).ToList();

    /// <summary>A kprobe on `call: "list:NAME"` is one kprobe per entry of the list, as in Tetragon: a syscalls list's
    /// entries are syscall kprobes (on their tracepoints where the kernel has no kprobes), a generated_syscalls list is
    /// every syscall of the architecture, and a generated_ftrace list (functions matching a pattern) needs kprobes.</summary>
    private IEnumerable<HookSpec> Expand(HookSpec hook, IReadOnlyDictionary<string, ListInfo> lists, DiagnosticBag d)
    {
        if (hook is not KprobeSpec { Call.Value: var call } k || !call.StartsWith("list:"))
            return [hook];
        var name = call[5..];
        if (!lists.TryGetValue(name, out var list))
        {
            d.Error(k.Call.Pos, k.Call.Path, $"no list named '{PolicyValues.Shorten(name)}' in spec.lists");
            return [];
        }
        switch (list.Spec.Type.Value)
        {
            case "syscalls":
                return list.Spec.Values.Select(v => k with { Call = v with { Pos = k.Call.Pos, Path = k.Call.Path }, Syscall = true });
            case "generated_syscalls":
                // Every syscall that has an entry tracepoint on the target (where formats are known), each a syscall kprobe.
                return syscalls.Names.Where(n => formats is null || formats("syscalls", "sys_enter_" + n) is not null)
                    .Select(n => k with { Call = new Located<string>("sys_" + n, k.Call.Pos, k.Call.Path), Syscall = true });
            default:
                return Ftrace(k, call, list, d);
        }
    }

    /// <summary>A generated_ftrace list: a kprobe (not a syscall one) on each kernel function of this node's
    /// available_filter_functions the pattern matches; for another kernel, the hook is checked once and the list noted.</summary>
    private IEnumerable<HookSpec> Ftrace(KprobeSpec k, string call, ListInfo list, DiagnosticBag d)
    {
        var pattern = list.Spec.Pattern?.Value ?? "";
        if (!features.Has(Mechanism.Kprobe))
        {
            d.Error(k.Call.Pos, k.Call.Path, $"needs kprobes to hook the kernel functions of {call} (generated_ftrace: the functions matching "
                + $"'{PolicyValues.Shorten(pattern)}'), and this kernel has none (kprobe: {Detail(Mechanism.Kprobe)})");
            return [];
        }
        if (pattern.Length == 0 || FtraceFunctions.Compile(pattern, out _) is not { } regex)
            return []; // reported at the list
        var name = list.Spec.Name.Value;
        var hook = k with { Syscall = false };
        if (filterFunctions is null)
        {
            d.Note(k.Call.Pos, k.Call.Path, $"{call}: a kprobe on each kernel function matching '{PolicyValues.Shorten(pattern)}' in tracefs "
                + $"{FtraceFunctions.FileName}, read on the node when the policy loads (at most {FtraceFunctions.MaxFunctions})");
            _ftraceLists.TryAdd(name, new FtraceListPlan(name, pattern, FtraceFunctions.DefaultPath, null));
            _deferred.Add(hook);
            return [hook];
        }
        IReadOnlyList<string>? functions;
        string? error;
        try
        {
            functions = FtraceFunctions.Match(FtraceFunctions.Read(filterFunctions), regex, FtraceFunctions.MaxFunctions, out error);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            (functions, error) = (null, $"{filterFunctions} cannot be read ({e.Message})");
        }
        if (functions is null)
        {
            d.Error(k.Call.Pos, k.Call.Path, $"{call}: the kernel functions matching '{PolicyValues.Shorten(pattern)}' in {filterFunctions}: {error}");
            return [];
        }
        _ftraceLists.TryAdd(name, new FtraceListPlan(name, pattern, filterFunctions, functions));
        return functions.Select(f => hook with { Call = new Located<string>(f, k.Call.Pos, k.Call.Path) });
    }

    /// <summary>spec.enforcers: the syscalls a NotifyEnforcer action enforces at (x86-64 names with or without their
    /// prefixes, `__ia32_sys_*` entries, `list:NAME` of a syscalls list). Tetragon's enforcer is a program on each
    /// listed call that consumes the thread's notification. Here, a notifying hook that can only be one of those calls
    /// enforces at once (the same call); any other leaves the thread a notification that the enforcer program
    /// (bpf/enforcer.bpf.c, at raw_syscalls/sys_enter) consumes at its next call among them.</summary>
    private EnforcerCalls? Enforcers(PolicySpec spec, IReadOnlyDictionary<string, ListInfo> lists, DiagnosticBag d)
    {
        if (spec.Enforcers.Count == 0) return null;
        var calls = new HashSet<ulong>();
        foreach (var e in spec.Enforcers)
            foreach (var c in e.Calls)
            {
                if (c.Value.StartsWith("list:"))
                {
                    if (!lists.TryGetValue(c.Value[5..], out var list))
                        d.Error(c.Pos, c.Path, $"no list named '{PolicyValues.Shorten(c.Value[5..])}' in spec.lists");
                    else if (list.Syscalls is null)
                        d.Error(c.Pos, c.Path, $"unsupported: enforcer calls from '{PolicyValues.Shorten(c.Value)}', a list of type {list.Spec.Type.Value}: the enforcer acts at syscalls (a syscalls list)");
                    else
                        calls.UnionWith(list.Syscalls);
                }
                else if (HookPlacement.Ia32(c.Value) && SyscallTable.I386.Number(HookPlacement.Ia32SyscallName(c.Value)) is { } n32)
                    calls.Add(n32 | SyscallTable.Compat32);
                else if (!HookPlacement.Ia32(c.Value) && syscalls.Number(c.Value) is { } n)
                    calls.Add(n);
                else
                    d.Error(c.Pos, c.Path, $"unsupported: enforcer call '{PolicyValues.Shorten(c.Value)}' is not a syscall of this table: the enforcer acts at syscalls (sys_NAME, __x64_sys_NAME, __ia32_sys_NAME or list:NAME)");
            }
        return new EnforcerCalls(calls, syscalls.Number);
    }

    private string Detail(Mechanism m) => features.Mechanisms.TryGetValue(m, out var a) ? a.Detail : "unknown";

    /// <summary>spec.options, as Tetragon defines them: the policy mode (true: enforce, the default, as in Tetragon), and
    /// ours, the fail mode of denies the agent answers itself (fanotify permission events: fail-open, the default, or
    /// fail-closed); Tetragon's others tune how it attaches and change nothing here, so they are checked and noted.</summary>
    private static (bool Enforce, bool FailClosed) Options(IReadOnlyList<OptionSpec> options, DiagnosticBag d)
    {
        bool enforce = true, failClosed = false;
        foreach (var o in options)
        {
            var value = o.Value?.Value ?? "";
            var (pos, path) = (o.Value?.Pos ?? o.Pos, o.Value?.Path ?? PolicySchema.Child(o.Path, "value"));
            switch (o.Name.Value)
            {
                case "policy-mode" when value is "enforce" or "monitor":
                    enforce = value == "enforce";
                    break;
                case "policy-mode":
                    d.Error(pos, path, $"policy-mode must be 'enforce' or 'monitor', not '{PolicyValues.Shorten(value)}'");
                    break;
                case "fail-mode" when value is "fail-open" or "fail-closed":
                    failClosed = value == "fail-closed";
                    break;
                case "fail-mode":
                    d.Error(pos, path, $"fail-mode must be 'fail-open' or 'fail-closed', not '{PolicyValues.Shorten(value)}'");
                    break;
                case "disable-kprobe-multi" or "disable-uprobe-multi" when GoBool(value):
                    d.Note(o.Name.Pos, o.Name.Path, $"option {o.Name.Value} has no effect here: SecurityAgent attaches each kprobe and uprobe on its own");
                    break;
                case "override-method" when value is "fmod-ret" or "override-return":
                    d.Note(o.Name.Pos, o.Name.Path, $"option override-method {value} has no effect here: Override runs where the hook's mechanism allows it (BPF LSM, cgroup connect)");
                    break;
                case "sleepable-preload-size" when int.TryParse(value, out var n) && n > 0:
                    d.Note(o.Name.Pos, o.Name.Path, "option sleepable-preload-size has no effect here: SecurityAgent runs no sleepable programs");
                    break;
                case "disable-kprobe-multi" or "disable-uprobe-multi" or "override-method" or "sleepable-preload-size":
                    d.Error(pos, path, $"option {o.Name.Value}: '{PolicyValues.Shorten(value)}' is not "
                        + (o.Name.Value == "override-method" ? "fmod-ret or override-return" : o.Name.Value == "sleepable-preload-size" ? "a positive integer" : "true or false"));
                    break;
                default:
                    d.Error(o.Name.Pos, o.Name.Path, $"unsupported option '{PolicyValues.Shorten(o.Name.Value)}' (supported: policy-mode, fail-mode, and Tetragon's "
                        + "disable-kprobe-multi, disable-uprobe-multi, override-method, sleepable-preload-size)");
                    break;
            }
        }
        return (enforce, failClosed);
    }

    /// <summary>What Go's strconv.ParseBool accepts (Tetragon reads boolean options with it).</summary>
    private static bool GoBool(string s) => s is "1" or "t" or "T" or "TRUE" or "true" or "True" or "0" or "f" or "F" or "FALSE" or "false" or "False";

    /// <summary>spec.lists by name; syscalls lists resolved to their numbers (x86-64) here, once.</summary>
    private Dictionary<string, ListInfo> Lists(IReadOnlyList<ListSpec> lists, DiagnosticBag d)
    {
        var byName = new Dictionary<string, ListInfo>();
        foreach (var l in lists)
        {
            IReadOnlyList<ulong>? numbers = null;
            if (l.Type.Value == "generated_syscalls")
                numbers = syscalls.Names.Select(n => syscalls.Number(n)!.Value).ToList();
            else if (l.Type.Value == "syscalls")
            {
                var list = new List<ulong>();
                foreach (var v in l.Values)
                {
                    if (HookPlacement.Ia32(v.Value))
                    {
                        // As Tetragon: the 32-bit ABI's number with the compat bit that syscall64 values carry.
                        if (SyscallTable.I386.Number(HookPlacement.Ia32SyscallName(v.Value)) is { } n32) list.Add(n32 | SyscallTable.Compat32);
                        else d.Error(v.Pos, v.Path, $"list {PolicyValues.Shorten(l.Name.Value)}: unknown 32-bit (i386) syscall '{PolicyValues.Shorten(v.Value)}'");
                    }
                    else if (syscalls.Number(v.Value) is { } n) list.Add(n);
                    else d.Error(v.Pos, v.Path, $"list {PolicyValues.Shorten(l.Name.Value)}: unknown syscall '{PolicyValues.Shorten(v.Value)}'");
                }
                numbers = list;
            }
            else if (l.Type.Value == "generated_ftrace")
                FtracePattern(l, d);
            if (!byName.TryAdd(l.Name.Value, new ListInfo(l, numbers)))
                d.Error(l.Name.Pos, l.Name.Path, $"a list named '{PolicyValues.Shorten(l.Name.Value)}' is defined twice");
        }
        return byName;
    }

    /// <summary>A generated_ftrace list takes its functions from its pattern, never from values (as in Tetragon).</summary>
    private static void FtracePattern(ListSpec l, DiagnosticBag d)
    {
        var name = PolicyValues.Shorten(l.Name.Value);
        if (l.Values.Count > 0)
            d.Error(l.Values[0].Pos, l.Values[0].Path, $"list {name}: a generated_ftrace list is generated from its pattern and takes no values");
        if (l.Pattern is not { Value.Length: > 0 } pattern)
            d.Error(l.Name.Pos, l.Name.Path, $"list {name}: a generated_ftrace list needs a pattern (a regular expression over kernel function names)");
        else if (FtraceFunctions.Compile(pattern.Value, out var error) is null)
            d.Error(pattern.Pos, pattern.Path, $"list {name}: pattern '{PolicyValues.Shorten(pattern.Value)}' is not a regular expression: {error}");
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
            // File names of the file syscalls are resolved in the kernel (PathArguments); other strings are the raw bytes.
            if (arg is { Class: ArgClass.String, Plan: { } a } && PathArguments.Resolved(place.Target, a.Offset, a.KernelType) is null && m.Operator.Value is "Equal" or "NotEqual" or "Prefix" or "NotPrefix" or "Postfix" or "NotPostfix"
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
