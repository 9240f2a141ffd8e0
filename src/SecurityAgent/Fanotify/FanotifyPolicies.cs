using SecurityAgent.Kernel;
using SecurityAgent.Policies;

namespace SecurityAgent.Fanotify;

/// <summary>Policies on the fanotify mechanism: which hooks can deny through fanotify permission events, the placement
/// that says so (and why), the compile-time check of what a fanotify decision can evaluate, and the translation of a
/// placed hook's selectors into <see cref="FanotifyRule"/>s.</summary>
internal static class FanotifyPolicies
{
    private static readonly Dictionary<string, FileOperations> LsmHooks = new()
    {
        ["file_open"] = FileOperations.Open,
        ["file_permission"] = FileOperations.Read,
        ["bprm_check_security"] = FileOperations.Exec,
    };

    private static readonly Dictionary<string, FileOperations> Syscalls = new()
    {
        ["open"] = FileOperations.Open,
        ["openat"] = FileOperations.Open,
        ["openat2"] = FileOperations.Open,
        ["creat"] = FileOperations.Open,
        ["execve"] = FileOperations.Exec,
        ["execveat"] = FileOperations.Exec,
    };

    /// <summary>The operation a hook checks through fanotify, or None when fanotify cannot stand in for it.</summary>
    public static FileOperations OperationOf(HookKind kind, string name) => kind switch
    {
        HookKind.LsmHook => LsmHooks.GetValueOrDefault(name),
        HookKind.Kprobe => Syscalls.GetValueOrDefault(HookPlacement.SyscallName(name)),
        _ => FileOperations.None,
    };

    private static string EventName(FileOperations op) => op switch
    {
        FileOperations.Exec => "FAN_OPEN_EXEC_PERM",
        FileOperations.Read => "FAN_ACCESS_PERM",
        _ => "FAN_OPEN_PERM",
    };

    private static bool AsksOverride(HookSpec hook) => hook.Selectors.Any(s => s.MatchActions.Any(a => a.Action.Value == "Override"));

    /// <summary>The fanotify placement of a hook whose selectors deny (Override) where the kernel's own deny hook is
    /// missing; null when fanotify cannot stand in (another hook, no Override, no fanotify permission events).</summary>
    /// <param name="missing">What is missing, for the why ("no BPF LSM (lsm: ...)").</param>
    public static Placement? Place(HookSpec hook, HookKind kind, string name, KernelFeatures features, string missing)
    {
        var op = OperationOf(kind, name);
        if (op == FileOperations.None || !AsksOverride(hook) || !features.Has(Mechanism.FanotifyPerm))
            return null;
        var what = kind == HookKind.LsmHook ? $"lsmhooks {name}" : $"kprobe {name}";
        var why = $"{what} with Override: {missing}, so the deny runs on fanotify permission events ({EventName(op)}): only the files and "
            + "directories the selectors' paths name are marked, the agent answers each event (EPERM on deny) on its decision thread, and an "
            + "event not decided in time gets the default (fail-open; spec.options fail-mode: fail-closed to deny)";
        return new Placement(kind, Mechanism.FanotifyPerm, EventName(op), name, why, null, true,
            kind == HookKind.Kprobe ? HookPlacement.SyscallName(name) : null, 0);
    }

    private static bool IsPath(ArgType t) => t is ArgType.File or ArgType.Path or ArgType.Bprm or ArgType.KString or ArgType.String;

    /// <summary>What a fanotify decision cannot evaluate in a placed hook, each as (selector index or -1, message):
    /// it sees the opened file and the process, not the other arguments of the call.</summary>
    public static IEnumerable<(int Selector, string Message)> Unsupported(HookPlan hook)
    {
        var pathSlots = hook.Args.Where(a => IsPath(a.KernelType)).Select(a => a.Slot).ToHashSet();
        for (int i = 0; i < hook.Selectors.Count; i++)
        {
            var s = hook.Selectors[i];
            foreach (var f in s.Args.Where(f => !pathSlots.Contains(f.Slot)))
                yield return (i, $"matchArgs on argument slot {f.Slot} on fanotify permission events: the decision sees the opened file's path only (match the file, path or filename argument)");
            foreach (var f in s.Args.Where(f => pathSlots.Contains(f.Slot) && f.Cmp is not (Cmp.In or Cmp.NotIn or Cmp.Prefix or Cmp.NotPrefix or Cmp.Postfix or Cmp.NotPostfix)))
                yield return (i, $"operator {f.Cmp} on a path on fanotify permission events (use Equal, Prefix, Postfix or their negations)");
            if (!s.KernelOnly)
                yield return (i, "matchParentBinaries on fanotify permission events is not implemented yet");
            if (s.Actions.HasFlag(Actions.Override) && s.Error != -1)
                yield return (i, $"argError {s.Error} on fanotify permission events: a denied open or exec fails with EPERM only (use argError -1)");
            if (s.RateLimitNs != 0)
                yield return (i, "rateLimit on fanotify permission events is not implemented yet");
        }
    }

    /// <summary>The rules of one placed hook, one per selector in order (the first selector that matches decides, as in
    /// the kernel): an Override selector enforces (monitor when the policy does not), any other only reports.</summary>
    /// <param name="inScope">For a scoped policy (podSelector, containerSelector, namespaced): whether a cgroup id is one
    /// of its pods' containers; null there means no pods are known, and the policy applies to nothing, as in the kernel.</param>
    public static List<(FanotifyRule Rule, int Selector)> Rules(PolicyPlan plan, HookPlan hook, string idPrefix, Func<ulong, bool>? inScope = null)
    {
        if (plan.Scope is not null) inScope ??= static _ => false;
        else inScope = null;
        var op = OperationOf(hook.Kind, hook.Name);
        var pathSlots = hook.Args.Where(a => IsPath(a.KernelType)).Select(a => a.Slot).ToHashSet();
        var rules = new List<(FanotifyRule, int)>();
        var selectors = hook.Selectors.Count > 0 ? hook.Selectors.Cast<SelectorPlan?>().ToList() : [null];
        for (int i = 0; i < selectors.Count; i++)
        {
            var s = selectors[i];
            var paths = s?.Args.Where(f => pathSlots.Contains(f.Slot)).Select(f => PathFilterOf(f.Cmp, plan.ValueSets[f.ValueSet!.Value].Values)).ToList() ?? [];
            bool deny = plan.Enforce && s is not null && s.Actions.HasFlag(Actions.Override);
            var mode = deny ? RuleMode.Enforce : RuleMode.Monitor;
            rules.Add((new FanotifyRule($"{idPrefix}/{i}", op, paths, ProcessOf(plan, s, inScope), mode,
                plan.FailClosed ? FailMode.Closed : FailMode.Open, Group: idPrefix), i));
        }
        return rules;
    }

    internal static PathFilter PathFilterOf(Cmp cmp, IReadOnlyList<string> values) => new(cmp switch
    {
        Cmp.In => StringOp.Equal,
        Cmp.NotIn => StringOp.NotEqual,
        Cmp.Prefix => StringOp.Prefix,
        Cmp.NotPrefix => StringOp.NotPrefix,
        Cmp.Postfix => StringOp.Postfix,
        _ => StringOp.NotPostfix,
    }, values);

    private static ProcessSelector? ProcessOf(PolicyPlan plan, SelectorPlan? s, Func<ulong, bool>? inScope)
    {
        if (s is null) return inScope is null ? null : new ProcessSelector(CgroupInScope: inScope);
        var binary = s.BinaryCmp == Cmp.None ? null : PathFilterOf(s.BinaryCmp, plan.ValueSets[s.BinaryValueSet!.Value].Values);
        var pids = s.PidCmp == Cmp.None ? null : new PidFilter(s.PidCmp == Cmp.In, s.Pids.Select(p => (int)p).ToList(), s.FollowForks && !s.NamespacePids, s.NamespacePids);
        var caps = s.CapCmp == Cmp.None ? null : new CapabilityFilter(s.CapCmp == Cmp.In, (CapabilitySet)s.CapSet, s.CapMask);
        return binary is null && pids is null && caps is null && inScope is null ? null : new ProcessSelector(binary, pids, caps, CgroupInScope: inScope);
    }

    /// <summary>For --explain: what the hook marks, from its selectors' paths (the file system decides the rest at load).</summary>
    public static IEnumerable<string> DescribeMarks(PolicyPlan plan, HookPlan hook)
    {
        if (plan.Scope is not null)
            yield return "scope: applies; the decision compares the process's cgroup v2 id (from /proc/PID/cgroup) with the scope's "
                + "cgroup ids, kept current from the pod watch, before any selector: a process outside the scope is allowed, and "
                + "events of processes outside it still wait for the agent on the marked files";
        foreach (var (rule, i) in Rules(plan, hook, "explain"))
        {
            var eq = rule.Paths.FirstOrDefault(p => p.Op == StringOp.Equal);
            var pre = rule.Paths.FirstOrDefault(p => p.Op == StringOp.Prefix);
            var marks = eq is not null ? $"the inode of {string.Join(", ", eq.Values)} (and its directory watched for a replacement)"
                : pre is not null && !pre.Values.Contains("/") ? $"the directories of {string.Join(", ", pre.Values)} and every directory below, with FAN_EVENT_ON_CHILD"
                : "every file system (no Equal or Prefix path narrower than '/'): every open waits for the agent";
            yield return $"selector {i}: {(rule.Mode == RuleMode.Enforce ? "denies (EPERM)" : "reports")}; marks {marks}; default on timeout: {(rule.FailMode == FailMode.Closed && rule.Mode == RuleMode.Enforce ? "deny (fail-closed)" : "allow (fail-open)")}";
        }
    }
}
