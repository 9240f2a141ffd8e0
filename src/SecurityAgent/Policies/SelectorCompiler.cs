using System.Text;
using SecurityAgent.Export;
using SecurityAgent.Kernel;

namespace SecurityAgent.Policies;

/// <summary>A `spec.lists` entry; for a syscalls list, its syscall numbers (32-bit (ia32) entries as their i386 number
/// with the compat bit, as Tetragon tells them apart by syscall64's ABI bit).</summary>
internal sealed record ListInfo(ListSpec Spec, IReadOnlyList<ulong>? Syscalls);

/// <summary>spec.enforcers resolved: the syscall numbers NotifyEnforcer acts at (32-bit ones with the compat bit, as
/// syscall64 values carry it).</summary>
/// <summary>Where a selector's NotifyEnforcer is enforced: at the notifying call itself, at the thread's next enforced
/// call, or (refused) either, depending on the call.</summary>
internal enum EnforcerSite { Here, Later, Either }

internal sealed record EnforcerCalls(IReadOnlySet<ulong> Calls, Func<string, ulong?> Number);

/// <summary>Selectors: one function per matcher (as Tetragon's pkg/selectors does), each checking its own entries,
/// parsing its values once into the plan and reporting what this placement cannot carry.</summary>
internal sealed class SelectorCompiler(DiagnosticBag d, List<ValueSet> sets, IReadOnlyDictionary<string, ListInfo> lists, EnforcerCalls? enforcer, KernelFeatures features)
{
    public const int MaxSelectors = 5;
    public const int MaxMatchArgs = 4;
    public const int MaxPids = Events.Contract.MaxPids;
    public const int MaxExact = Events.Contract.StrMax - 1, MaxPrefix = Events.Contract.LpmStrMax;

    private static readonly Dictionary<ArgClass, string[]> Operators = new()
    {
        [ArgClass.String] = ["Equal", "NotEqual", "Prefix", "NotPrefix", "Postfix", "NotPostfix", "SubString", "SubStringIgnCase", "FileType", "NotFileType"],
        [ArgClass.Int] = ["Equal", "NotEqual", "GreaterThan", "GT", "LessThan", "LT", "Mask", "InMap", "NotInMap", "InRange", "NotInRange", "CapabilitiesGained"],
        [ArgClass.Sock] = ["DAddr", "NotDAddr", "SAddr", "NotSAddr", "DPort", "NotDPort", "SPort", "NotSPort", "DPortPriv", "NotDPortPriv", "SPortPriv",
            "NotSPortPriv", "NotSportPriv", "Family", "NotFamily", "Protocol", "NotProtocol", "State"],
        [ArgClass.Syscall64] = ["Equal", "NotEqual", "InMap", "NotInMap"],
        [ArgClass.Cred] = [],
        [ArgClass.None] = [],
    };

    /// <summary>Namespaces a selector can name (matchNamespaces, matchNamespaceChanges), as Tetragon spells them.</summary>
    private static readonly HashSet<string> Namespaces = ["Uts", "Ipc", "Mnt", "Pid", "PidForChildren", "Net", "Time", "TimeForChildren", "Cgroup", "User"];

    private int AddSet(ValueSetKind kind, IReadOnlyList<string> values, IReadOnlyList<ulong>? integers = null)
    {
        sets.Add(new ValueSet(kind, values) { Integers = integers ?? [] });
        return sets.Count - 1;
    }

    public List<SelectorPlan> Compile(HookSpec hook, Placement? placement, IReadOnlyList<ArgInfo> args, ReturnPlan? ret = null)
    {
        if (hook.Selectors.Count > MaxSelectors)
            d.Error(hook.Selectors[MaxSelectors].Pos, hook.Selectors[MaxSelectors].Path, $"{hook.Selectors.Count} selectors, at most {MaxSelectors} per hook");
        var kind = placement?.Kind ?? hook switch { TracepointSpec => HookKind.Tracepoint, KprobeSpec => HookKind.Kprobe, _ => HookKind.LsmHook };
        return hook.Selectors.Take(MaxSelectors).Select(s => Selector(s, kind, placement, args, hook, ret)).ToList();
    }

    private SelectorPlan Selector(SelectorSpec s, HookKind kind, Placement? placement, IReadOnlyList<ArgInfo> args, HookSpec hook, ReturnPlan? ret)
    {
        if (s.Label is { } label)
            d.Warning(label.Pos, label.Path, "events do not carry selector labels yet: the label is not reported");
        if (s.MatchData.Count > 0)
            d.Error(s.MatchData[0].Pos, PolicySchema.Child(s.Path, "matchData"), "unsupported: matchData filters a hook's data: entries, which SecurityAgent does not read");
        var returnArgs = MatchReturnArgs(s, hook, ret);
        var namespaces = MatchNamespaces(s.MatchNamespaces, placement);
        var (nsChgCmp, nsChgMask) = MatchNamespaceChanges(s.MatchNamespaceChanges, placement);
        var (capChgCmp, capChgSet, capChgMask, capChgNs) = MatchCapabilityChanges(s.MatchCapabilityChanges, placement);
        var (returnActions, returnSignal) = (Actions.Post, 0);
        if (s.MatchReturnActions.Count > 0)
        {
            var returnNotify = new List<Notification>();
            (returnActions, returnSignal, _, _, _, _) = MatchActions(s.MatchReturnActions, placement, args, returning: true, returnNotify);
            if (ret is null)
                d.EngineGap(s.MatchReturnActions[0].Pos, PolicySchema.Child(s.Path, "matchReturnActions"), "matchReturnActions (actions when the call returns) where no return probe runs (syscall kprobes with return: true have one)");
            else if (returnNotify.Count > 0)
                d.EngineGap(s.MatchReturnActions[0].Pos, PolicySchema.Child(s.Path, "matchReturnActions"), "DnsLookup and GetUrl in matchReturnActions");
        }
        var notify = new List<Notification>();
        var (actions, signal, error, rate, sockArg, set) = MatchActions(s.MatchActions, placement, args, returning: false, notify, EnforcedWhere(s, placement, args));
        var (binCmp, binSet) = MatchBinaries(s.MatchBinaries, s.Path);
        var (pidCmp, pids, follow, pidNs) = MatchPids(s.MatchPids, placement);
        var (capCmp, capSet, capMask, capNs) = MatchCapabilities(s.MatchCapabilities, placement);
        var parents = MatchParentBinaries(s.MatchParentBinaries);
        var filters = MatchArgs(s, kind, args);
        var plan = new SelectorPlan(actions, signal, rate, error, binCmp, binSet, pidCmp, pids, follow, pidNs, capCmp, capSet, capMask, filters, parents)
        {
            Notify = notify, Set = set, Enforcer = EnforcerMeaning(actions, signal, error, placement), ReturnArgs = returnArgs, ReturnActions = returnActions, ReturnSignal = returnSignal, SockArg = sockArg,
            Namespaces = namespaces, NamespaceChangeCmp = nsChgCmp, NamespaceChangeMask = nsChgMask,
            CapChangeCmp = capChgCmp, CapChangeSet = capChgSet, CapChangeMask = capChgMask, CapNamespaceOnly = capNs, CapChangeNamespaceOnly = capChgNs,
        };
        if ((actions & (Actions.NotifyNext | Actions.EnfCleanup)) != 0 && !plan.KernelOnly)
            d.Error(s.MatchParentBinaries[0].Pos, PolicySchema.Child(s.Path, "matchParentBinaries"),
                "unsupported: NotifyEnforcer for a later call, or CleanupEnforcerNotification, with matchParentBinaries: the thread's notification is written or dropped in the kernel as the hook fires, and the parent binaries are decided in user space after it");
        if (set is not null && !plan.KernelOnly)
            d.Error(s.MatchParentBinaries[0].Pos, PolicySchema.Child(s.Path, "matchParentBinaries"),
                "unsupported: Set with matchParentBinaries: the write happens in the kernel as the probe fires, and the parent binaries are decided in user space after it");
        // The fanotify decision reads the process from /proc and has no per-process record from fork and exec.
        if (placement is { Mechanism: Kernel.Mechanism.FanotifyPerm } && (plan.HasNamespaceChecks || plan.PidTree))
            d.Error(s.Pos, s.Path, $"unsupported: matchNamespaces, matchNamespaceChanges, matchCapabilityChanges, isNamespaceCapability and matchPIDs isNamespacePID+followForks on {placement.Describe} (the agent's fanotify decision does not evaluate them)");
        return plan;
    }

    /// <summary>matchReturnArgs: filters on the return value (index 0), which needs `return: true` and a returnArg. On a
    /// syscall's exit tracepoint the value is an integer: Equal / NotEqual (up to RetValues values each), GreaterThan,
    /// LessThan, Mask; at most RetCmps entries, ANDed (as in Tetragon).</summary>
    private List<ReturnFilterPlan> MatchReturnArgs(SelectorSpec s, HookSpec hook, ReturnPlan? ret)
    {
        var list = new List<ReturnFilterPlan>();
        if (s.MatchReturnArgs.Count == 0) return list;
        var returnArg = hook switch { KprobeSpec k when k.Return?.Value == true => k.ReturnArg, UprobeSpec u when u.Return?.Value == true => u.ReturnArg, _ => null };
        if (returnArg is null)
        {
            d.Error(s.MatchReturnArgs[0].Pos, s.MatchReturnArgs[0].Path, "matchReturnArgs needs 'return: true' and a returnArg on the hook");
            return list;
        }
        if (ret is not null && s.MatchReturnArgs.Count > Events.Contract.RetCmps)
            d.Error(s.MatchReturnArgs[Events.Contract.RetCmps].Pos, s.MatchReturnArgs[Events.Contract.RetCmps].Path,
                $"{s.MatchReturnArgs.Count} matchReturnArgs entries, at most {Events.Contract.RetCmps} per selector");
        var info = new ArgInfo(returnArg, ArgumentLayout.Class(returnArg.Type.Value), null);
        foreach (var m in s.MatchReturnArgs)
        {
            if (m.Index is { Value: not 0 } idx)
                d.Error(idx.Pos, idx.Path, "matchReturnArgs compares the return value: index 0");
            if (ret is null)
            {
                MatchArg(m, info);
                continue;
            }
            if (ret.KernelType == ArgType.Sock)
                d.EngineGap(m.Pos, m.Path, "matchReturnArgs on a returned sock (the return filters compare integers)");
            else if (ReturnFilter(m) is { } f) list.Add(f);
        }
        return list;
    }

    /// <summary>One matchReturnArgs entry on a syscall's integer return value.</summary>
    private ReturnFilterPlan? ReturnFilter(ArgMatcherSpec m)
    {
        var op = m.Operator.Value;
        var cmp = op switch
        {
            "Equal" => Cmp.In,
            "NotEqual" => Cmp.NotIn,
            "GreaterThan" or "GT" => Cmp.GreaterThan,
            "LessThan" or "LT" => Cmp.LessThan,
            "Mask" => Cmp.Mask,
            _ => Cmp.None,
        };
        if (cmp == Cmp.None)
        {
            d.Error(m.Operator.Pos, m.Operator.Path, $"operator {op} does not apply to a syscall's return value (an integer): use Equal, NotEqual, GreaterThan, LessThan or Mask");
            return null;
        }
        if (m.Values.Count == 0)
        {
            d.Error(m.Pos, PolicySchema.Child(m.Path, "values"), $"operator {op} needs at least one value");
            return null;
        }
        int max = cmp is Cmp.In or Cmp.NotIn ? Events.Contract.RetValues : cmp == Cmp.Mask ? int.MaxValue : 1;
        if (m.Values.Count > max)
        {
            d.Error(m.Values[max].Pos, m.Values[max].Path, cmp is Cmp.In or Cmp.NotIn
                ? $"{m.Values.Count} values, at most {max} per matchReturnArgs {op} entry" : $"operator {op} takes one value");
            return null;
        }
        var ints = Integers(m.Values, allowLists: false);
        if (ints is null) return null;
        return cmp == Cmp.Mask
            ? new ReturnFilterPlan(cmp, [ints.Aggregate(0UL, (mask, i) => mask | i.Value)])
            : new ReturnFilterPlan(cmp, ints.Select(i => i.Value).ToList());
    }

    /// <summary>matchNamespaces: the task's namespace inodes, read in the kernel when the hook runs.</summary>
    private List<NamespaceMatch> MatchNamespaces(IReadOnlyList<NamespaceMatcherSpec> m, Placement? placement)
    {
        var result = new List<NamespaceMatch>();
        if (m.Count == 0) return result;
        if (placement?.Traits is { HasTask: false })
            d.Error(m[0].Pos, m[0].Path, $"unsupported: matchNamespaces on {placement.Describe} (no task there)");
        if (m.Count > Events.Contract.NsMaxMatch)
            d.Error(m[Events.Contract.NsMaxMatch].Pos, m[Events.Contract.NsMaxMatch].Path, $"{m.Count} matchNamespaces entries, at most {Events.Contract.NsMaxMatch} per selector");
        var seen = new HashSet<string>();
        foreach (var e in m.Take(Events.Contract.NsMaxMatch))
        {
            if (!seen.Add(e.Namespace.Value))
                d.Error(e.Namespace.Pos, e.Namespace.Path, $"namespace {e.Namespace.Value} is named twice in this selector");
            if (e.Values.Count == 0)
                d.Error(e.Pos, PolicySchema.Child(e.Path, "values"), "matchNamespaces needs at least one value");
            if (e.Values.Count > Events.Contract.NsMaxValues)
                d.Error(e.Values[Events.Contract.NsMaxValues].Pos, e.Values[Events.Contract.NsMaxValues].Path, $"{e.Values.Count} namespaces, at most {Events.Contract.NsMaxValues} per matchNamespaces entry");
            foreach (var v in e.Values)
                if (v.Value != "host_ns" && !PolicyValues.TryParseInRange(v.Value, 0, uint.MaxValue, out _))
                    d.Error(v.Pos, v.Path, $"'{PolicyValues.Shorten(v.Value)}' is neither a namespace inode number nor host_ns");
            if (Enum.TryParse<Events.Wire.Namespace>(e.Namespace.Value, out var ns) && ns != Events.Wire.Namespace.Count && Namespaces.Contains(e.Namespace.Value))
                result.Add(new NamespaceMatch(ns, e.Operator.Value == "In" ? Cmp.In : Cmp.NotIn, e.Values.Select(v => v.Value).ToList()));
        }
        return result;
    }

    private (Cmp, ushort) MatchNamespaceChanges(IReadOnlyList<NamespaceChangeSpec> m, Placement? placement)
    {
        if (m.Count == 0) return (Cmp.None, 0);
        if (placement?.Traits is { HasTask: false })
            d.Error(m[0].Pos, m[0].Path, $"unsupported: matchNamespaceChanges on {placement.Describe} (no task there)");
        if (m.Count > 1)
            d.EngineGap(m[1].Pos, m[1].Path, "several matchNamespaceChanges entries in one selector (use several selectors)");
        ushort mask = 0;
        foreach (var v in m[0].Values)
        {
            if (Namespaces.Contains(v.Value)) mask |= (ushort)(1 << (int)Enum.Parse<Events.Wire.Namespace>(v.Value));
            else d.Error(v.Pos, v.Path, $"'{PolicyValues.Shorten(v.Value)}' is not a namespace ({string.Join(", ", Namespaces)})");
        }
        if (m[0].Values.Count == 0)
            d.Error(m[0].Pos, PolicySchema.Child(m[0].Path, "values"), "matchNamespaceChanges needs at least one namespace");
        return (m[0].Operator.Value == "In" ? Cmp.In : Cmp.NotIn, mask);
    }

    private (Cmp, byte, ulong, bool) MatchCapabilityChanges(IReadOnlyList<CapabilityMatcherSpec> m, Placement? placement)
    {
        if (m.Count == 0) return (Cmp.None, 0, 0, false);
        if (placement?.Traits is { HasTask: false })
            d.Error(m[0].Pos, m[0].Path, $"unsupported: matchCapabilityChanges on {placement.Describe} (no task there)");
        if (m.Count > 1)
            d.EngineGap(m[1].Pos, m[1].Path, "several matchCapabilityChanges entries in one selector (use several selectors)");
        foreach (var e in m.Skip(1)) CapabilityMask(e);
        var first = m[0];
        return (first.Operator.Value == "In" ? Cmp.In : Cmp.NotIn, CapabilitySet(first), CapabilityMask(first), first.IsNamespaceCapability?.Value == true);
    }

    /// <summary>kernelStackTrace / userStackTrace: bpf_get_stack in the hook's program, which needs a task context
    /// (not a cgroup hook, not a fanotify permission event).</summary>
    private Actions StackTrace(Located<bool> flag, Placement? placement, Actions bit, string name)
    {
        if (placement is { Mechanism: Kernel.Mechanism.CgroupSockAddr or Kernel.Mechanism.FanotifyPerm })
        {
            d.Error(flag.Pos, flag.Path, $"unsupported: {name} on {placement.Describe}: the stack is taken with bpf_get_stack, which this hook's program cannot call");
            return Actions.None;
        }
        return bit;
    }

    /// <summary>imaHash: on bprm_check_security, a sleepable LSM program after the hook's hashes the executed file
    /// (bpf_ima_file_hash), as Tetragon does; Tetragon also has it on file hooks, which have no sleepable program here.</summary>
    private Actions ImaHash(Located<bool> flag, Placement? placement, bool returning)
    {
        if (returning)
            d.Error(flag.Pos, flag.Path, "imaHash applies to matchActions (the event of the hook's call), not matchReturnActions");
        else if (placement is { Mechanism: Kernel.Mechanism.FanotifyPerm })
            d.Error(flag.Pos, flag.Path, $"needs BPF LSM for imaHash (a sleepable program calling bpf_ima_file_hash): {placement.Describe} runs here through fanotify, which has no IMA hash");
        else if (placement is not { Mechanism: Kernel.Mechanism.Lsm, Target: "bprm_check_security" })
            d.EngineGap(flag.Pos, flag.Path, $"imaHash on {placement?.Describe ?? "this hook"} (the IMA hash is computed on lsmhooks bprm_check_security)");
        else if (!features.ImaFileHash.Available)
            d.Error(flag.Pos, flag.Path, $"needs a sleepable BPF LSM program calling bpf_ima_file_hash for imaHash (Linux 5.18, CONFIG_IMA), and this kernel's probe says: {features.ImaFileHash.Detail}");
        else
            return Actions.ImaHash;
        return Actions.None;
    }

    private static byte CapabilitySet(CapabilityMatcherSpec e) => e.Type?.Value switch { "Permitted" => 1, "Inheritable" => 2, _ => 0 };

    private (Actions, int Signal, int Error, ulong RateNs, int? SockArg, UsdtSetPlan? Set) MatchActions(IReadOnlyList<ActionSpec> actions, Placement? placement, IReadOnlyList<ArgInfo> args,
        bool returning, List<Notification> notify, EnforcerSite enforced = EnforcerSite.Later)
    {
        var result = Actions.None;
        int signal = 0, error = 0;
        int? sockArg = null;
        UsdtSetPlan? set = null;
        ulong rate = 0;
        bool noPost = false;
        var traits = placement?.Traits;
        foreach (var a in actions)
        {
            var action = a.Action.Value;
            switch (action)
            {
                case "Post":
                    result |= Actions.Post;
                    if (a.RateLimit is { } rl && !PolicyValues.TryParseRateLimit(rl.Value, out rate))
                        d.Error(rl.Pos, rl.Path, $"rateLimit '{PolicyValues.Shorten(rl.Value)}' is not a duration of at most a day (N seconds, Nm or Nh)");
                    if (a.RateLimitScope is { Value: not "process" } scope)
                        d.EngineGap(scope.Pos, scope.Path, $"rateLimitScope {scope.Value} (rate limits are per process here)");
                    if (a.KernelStackTrace is { Value: true } ks)
                        result |= StackTrace(ks, placement, Actions.KernelStack, "kernelStackTrace");
                    if (a.UserStackTrace is { Value: true } us)
                        result |= StackTrace(us, placement, Actions.UserStack, "userStackTrace");
                    if (a.ImaHash is { Value: true } ima)
                        result |= ImaHash(ima, placement, returning);
                    break;
                case "NoPost":
                    noPost = true;
                    break;
                case "Sigkill" or "Signal":
                    result |= action == "Sigkill" ? Actions.Sigkill : Actions.Signal;
                    if (action == "Signal")
                    {
                        if (a.ArgSig is { } sig) signal = sig.Value;
                        else d.Error(a.Pos, a.Path, "action Signal needs argSig (the signal number)");
                    }
                    if (traits is { CanSignal: false })
                        d.Error(a.Action.Pos, a.Action.Path, $"unsupported: {action} on {placement!.Describe} (no signal helper there); use Override to deny");
                    break;
                case "Override":
                    result |= Actions.Override;
                    if (a.ArgError is not { } err)
                        d.Error(a.Pos, a.Path, "action Override needs argError (a negative errno, e.g. -1 for EPERM)");
                    else if (placement is { Mechanism: Kernel.Mechanism.Kprobe or Kernel.Mechanism.Fentry } && placement.Syscall is null)
                    {
                        // bpf_override_return or fmod_ret sets the kernel function's return value, whatever it means there (as in Tetragon).
                        error = err.Value;
                        if (err.Value >= 0)
                            d.Warning(err.Pos, err.Path, $"argError {err.Value} is not a negative errno: '{placement.Name}' returns {err.Value} without running, and its callers may not take that as a failure");
                    }
                    else if (err.Value is < -4095 or > -1)
                        d.Error(err.Pos, err.Path, $"unsupported: argError {err.Value}: Override returns a negative errno here (-4095..-1, e.g. -1 for EPERM)");
                    else
                        error = err.Value;
                    if (placement is { Mechanism: Kernel.Mechanism.Uprobe })
                    {
                        d.Error(a.Action.Pos, a.Action.Path, $"unsupported: Override on {placement.Describe}: a user-space function's return cannot be overridden (Tetragon changes its registers with argRegs); kill with Sigkill");
                        break;
                    }
                    if (placement is { Mechanism: Kernel.Mechanism.Kprobe })
                        break; // the placement chose the override program (and checked the kernel has bpf_override_return)
                    if (traits is { CanOverride: false })
                        d.Error(a.Action.Pos, a.Action.Path, placement!.Mechanism == Kernel.Mechanism.Tracepoint
                            ? $"Override cannot change a tracepoint's outcome ({placement.Describe}) and this kernel has no kprobes for bpf_override_return; deny with an lsmhook (BPF LSM, or socket_connect) or kill with Sigkill"
                            : $"unsupported: Override on {placement.Describe}; deny with an lsmhook or kill with Sigkill");
                    break;
                case "TrackSock" or "UntrackSock":
                    // argSock defaults to 0, as Tetragon's does. The sock's owner is the process; later events whose sock
                    // or socket argument is that sock are the owner's (bpf/include/args.h), until UntrackSock.
                    int sockIndex = a.ArgSock?.Value ?? 0;
                    if (returning)
                        d.EngineGap(a.Action.Pos, a.Action.Path, $"action {action} in matchReturnActions (returnArgAction: {action} tracks the sock a kernel function returns)");
                    else if (args.FirstOrDefault(x => x.Spec.Index.Value == sockIndex) is not { Spec.Type.Value: "sock" })
                        d.Error(a.ArgSock?.Pos ?? a.Action.Pos, a.ArgSock?.Path ?? a.Action.Path, $"{action} takes the sock of argument {sockIndex} (argSock), and the hook has no argument {sockIndex} of type sock");
                    else if (sockArg is { } other && other != sockIndex)
                        d.EngineGap(a.ArgSock?.Pos ?? a.Action.Pos, a.ArgSock?.Path ?? a.Action.Path, $"TrackSock and UntrackSock on two arguments ({other} and {sockIndex}) in one selector");
                    else
                    {
                        result |= action == "TrackSock" ? Actions.TrackSock : Actions.UntrackSock;
                        sockArg = sockIndex;
                    }
                    break;
                case "DnsLookup":
                    // Done by the agent on the matching event (PolicyNotifier): a name it can resolve, nothing more.
                    if (a.ArgFqdn is not { } fqdn || Uri.CheckHostName(fqdn.Value.TrimEnd('.')) != UriHostNameType.Dns)
                        d.Error(a.ArgFqdn?.Pos ?? a.Pos, a.ArgFqdn?.Path ?? a.Path, "action DnsLookup needs argFqdn, a DNS name to resolve");
                    else
                        notify.Add(new Notification(NotificationKind.DnsLookup, fqdn.Value));
                    break;
                case "GetUrl":
                    if (a.ArgUrl is not { } url || !Uri.TryCreate(url.Value, UriKind.Absolute, out var u) || u.Scheme is not ("http" or "https"))
                        d.Error(a.ArgUrl?.Pos ?? a.Pos, a.ArgUrl?.Path ?? a.Path, "action GetUrl needs argUrl, an http or https URL");
                    else
                        notify.Add(new Notification(NotificationKind.GetUrl, u.AbsoluteUri));
                    break;
                case "NotifyEnforcer":
                    if (enforcer is null)
                        d.Error(a.Action.Pos, a.Action.Path, "action NotifyEnforcer needs spec.enforcers (the calls it denies)");
                    else if (a.ArgError is null && a.ArgSig is null)
                        d.Error(a.Pos, a.Path, "action NotifyEnforcer needs argError or argSig (what the enforcer does)");
                    else if (returning)
                        d.Error(a.Action.Pos, a.Action.Path, "unsupported: NotifyEnforcer in matchReturnActions: the call has run by then; notify at the call's entry (matchActions)");
                    else if (enforced == EnforcerSite.Either)
                        d.Error(a.Action.Pos, a.Action.Path, $"unsupported: NotifyEnforcer on {placement!.Describe} whose selector can match both spec.enforcers' calls and others: "
                            + "restrict its syscall64 argument (Equal or InMap) to the enforced calls (enforced at once, at this call) or to other calls "
                            + "(enforced at the thread's next enforced call), e.g. with one selector for each");
                    else if (enforced == EnforcerSite.Later && placement is { Mechanism: Kernel.Mechanism.FanotifyPerm })
                        d.Error(a.Action.Pos, a.Action.Path, $"unsupported: NotifyEnforcer on {placement.Describe}: the notification for the thread's next enforced call is written by a BPF hook, and fanotify events are answered in user space");
                    else if (enforced == EnforcerSite.Here)
                    {
                        result |= Actions.NotifyEnforcer;
                        if (a.ArgSig is { } sig)
                        {
                            if (sig.Value is < 1 or > 64)
                                d.Error(sig.Pos, sig.Path, $"argSig {sig.Value} is not a signal number (1..64)");
                            else if (traits is { CanSignal: false })
                                d.Error(a.Action.Pos, a.Action.Path, $"unsupported: NotifyEnforcer argSig on {placement!.Describe} (no signal helper there)");
                            else
                                (result, signal) = (result | Actions.Signal, sig.Value);
                        }
                        if (a.ArgError is { } enfErr)
                            error = EnforcerError(enfErr, a.ArgSig?.Value, placement, ref result);
                    }
                    else
                    {
                        // The enforcer program (raw_syscalls/sys_enter) sends argSig at the thread's next enforced call.
                        result |= Actions.NotifyEnforcer | Actions.NotifyNext;
                        if (a.ArgSig is { } sig)
                        {
                            if (sig.Value is < 1 or > 64)
                                d.Error(sig.Pos, sig.Path, $"argSig {sig.Value} is not a signal number (1..64)");
                            else
                                signal = sig.Value;
                        }
                        if (a.ArgError is { } enfErr)
                            NextCallError(enfErr, a.ArgSig?.Value);
                    }
                    break;
                case "CleanupEnforcerNotification":
                    // Drops the thread's notification of this policy that its next enforced call has not consumed yet.
                    if (enforcer is null)
                        d.Error(a.Action.Pos, a.Action.Path, "action CleanupEnforcerNotification needs spec.enforcers (it drops this policy's NotifyEnforcer notifications)");
                    else if (placement is { Mechanism: Kernel.Mechanism.FanotifyPerm })
                        d.Error(a.Action.Pos, a.Action.Path, $"unsupported: CleanupEnforcerNotification on {placement.Describe}: notifications are kept by the BPF hooks, and fanotify events are answered in user space");
                    else
                        result |= Actions.EnfCleanup;
                    break;
                case "Set":
                    if (placement is not null && placement.Kind != HookKind.Usdt)
                        d.Error(a.Action.Pos, a.Action.Path, "action Set writes a usdt argument: it applies to usdts only");
                    else if (a.ArgIndex is null || a.ArgValue is null)
                        d.Error(a.Pos, a.Path, "action Set needs argIndex and argValue");
                    else if (returning)
                        d.Error(a.Action.Pos, a.Action.Path, "action Set writes the argument when the probe fires: it belongs in matchActions");
                    else if (set is not null)
                        d.Error(a.Action.Pos, a.Action.Path, "one Set action per selector (its argument is written once per call)");
                    else if (placement is not null && !features.ProbeWriteUser.Available)
                        d.Error(a.Action.Pos, a.Action.Path, $"needs bpf_probe_write_user to write the usdt argument (as Tetragon does), and this kernel's probe says: {features.ProbeWriteUser.Detail}");
                    else if (placement is not null)
                        set = UsdtSet(a, a.ArgIndex, a.ArgValue, placement, args);
                    if (set is not null) result |= Actions.Set;
                    break;
                default: // FollowFD, UnfollowFD, CopyFD
                    d.Error(a.Action.Pos, a.Action.Path, $"unsupported: action {action} was removed from Tetragon's policy language (file descriptors are followed by the file argument types)");
                    break;
            }
            if (a.RateLimit is { } r && action != "Post")
                d.Error(r.Pos, r.Path, "rateLimit applies to the Post action only");
            if (action != "Post" && (a.KernelStackTrace?.Value == true || a.UserStackTrace?.Value == true))
                d.Error(a.Pos, a.Path, "kernelStackTrace and userStackTrace go with the Post action only (as in Tetragon)");
        }
        if (noPost && notify.Count > 0)
            d.Error(actions[0].Pos, actions[0].Path, "DnsLookup and GetUrl are carried out by the agent on the matching event, which NoPost keeps in the kernel: drop NoPost");
        if (!noPost) result |= Actions.Post; // events are posted unless NoPost, as in Tetragon
        return (result, signal, error, rate, sockArg, set);
    }

    /// <summary>usdt Set (as Tetragon): argIndex names an entry of the hook's args, whose index is the note argument
    /// written; the note must place it in memory. The note is read now when the binary is here, else at load.</summary>
    private UsdtSetPlan? UsdtSet(ActionSpec a, Located<int> argIndex, Located<int> argValue, Placement placement, IReadOnlyList<ArgInfo> args)
    {
        if (argIndex.Value < 0 || argIndex.Value >= args.Count)
        {
            d.Error(argIndex.Pos, argIndex.Path, $"argIndex {argIndex.Value} names an entry of the usdt's args, and it has {args.Count} (0..{args.Count - 1})");
            return null;
        }
        var site = placement.Sites![0];
        int noteArg = args[argIndex.Value].Spec.Index.Value;
        int size = 0;
        try
        {
            string? error;
            (size, error) = UsdtNotes.SetTarget(site.Binary, site.Provider!, site.Probe!, noteArg);
            if (error is not null)
            {
                d.Error(argIndex.Pos, argIndex.Path, error);
                return null;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            d.Warning(a.Action.Pos, a.Action.Path, $"the USDT note of '{site.Binary}' cannot be read here ({e.Message}): that argument {noteArg} is a memory operand, which Set writes, is checked when the policy loads");
        }
        if (size is 1 or 2 && (argValue.Value < -(1 << (8 * size - 1)) || argValue.Value >= 1 << (8 * size)))
        {
            d.Error(argValue.Pos, argValue.Path, $"argValue {argValue.Value} does not fit the {size}-byte argument {noteArg} it is written to");
            return null;
        }
        return new UsdtSetPlan(noteArg, size, argValue.Value);
    }

    /// <summary>Where a NotifyEnforcer of this selector is enforced: Here when every call it can match is one of
    /// spec.enforcers' calls (the entry of one of them, a syscall tracepoint or syscall kprobe, or raw_syscalls/sys_enter
    /// with an Equal or InMap on its syscall64 argument that names only them); Later (the thread's next enforced call)
    /// when it can match none; Either for raw_syscalls/sys_enter that may match both, where the order of the
    /// notifying and the enforcer programs at that one tracepoint would decide.</summary>
    private EnforcerSite EnforcedWhere(SelectorSpec s, Placement? placement, IReadOnlyList<ArgInfo> args)
    {
        if (enforcer is null || placement?.Syscall is not { } name) return EnforcerSite.Later;
        if (placement.Target == "raw_syscalls/sys_enter")
        {
            var confining = s.MatchArgs.Where(m => m.Operator.Value is "Equal" or "InMap" && m.Values.Count > 0
                && ArgumentLayout.Resolve(m, args, placement.Kind, null) is { Spec.Type.Value: "syscall64" }).ToList();
            if (confining.Any(m => m.Values.All(v => Enforced(v.Value))))
                return EnforcerSite.Here;
            return confining.Any(m => m.Values.All(v => NotEnforced(v.Value))) ? EnforcerSite.Later : EnforcerSite.Either;
        }
        return !placement.Target.StartsWith("syscalls/sys_exit_") && !placement.Target.StartsWith("raw_syscalls/")
            && enforcer.Number(name) is { } n && enforcer.Calls.Contains(n) ? EnforcerSite.Here : EnforcerSite.Later;
    }

    private bool NotEnforced(string value) => value.StartsWith("list:")
        ? lists.TryGetValue(value[5..], out var l) && l.Syscalls is { } sys && !sys.Any(enforcer!.Calls.Contains)
        : PolicyValues.TryParseInteger(value, out var n, out var negative) && !negative && !enforcer!.Calls.Contains(n);

    private bool Enforced(string value) => value.StartsWith("list:")
        ? lists.TryGetValue(value[5..], out var l) && l.Syscalls is { } sys && sys.All(enforcer!.Calls.Contains)
        : PolicyValues.TryParseInteger(value, out var n, out var negative) && !negative && enforcer!.Calls.Contains(n);

    /// <summary>NotifyEnforcer's argError: the call fails with it where the hook overrides the syscall (a syscall kprobe
    /// with bpf_override_return); elsewhere (a tracepoint) only with argSig 9, where the process never sees the result.</summary>
    private int EnforcerError(Located<int> err, int? sig, Placement? placement, ref Actions result)
    {
        const string missing = "failing the call needs bpf_override_return (a kprobe on the syscall function, CONFIG_BPF_KPROBE_OVERRIDE) "
            + "or fmod_ret on __x64_sys_* (CONFIG_FUNCTION_ERROR_INJECTION), and a tracepoint can do neither";
        if (err.Value is < -4095 or > -1)
            d.Error(err.Pos, err.Path, $"unsupported: argError {err.Value}: NotifyEnforcer fails the call with a negative errno (-4095..-1, e.g. -1 for EPERM)");
        else if (placement is { Mechanism: Kernel.Mechanism.Kprobe, Syscall: not null })
        {
            result |= Actions.Override;
            return err.Value;
        }
        else if (sig == 9)
            d.Warning(err.Pos, err.Path, $"argError {err.Value} is not applied on {placement?.Describe}: {missing}; the call runs, and argSig 9 kills the process before it returns, so it never sees the result");
        else
            d.Error(err.Pos, err.Path, $"unsupported: NotifyEnforcer argError {err.Value} on {placement?.Describe}: {missing}; add argSig: 9 (the call runs, the process is killed before it returns)");
        return 0;
    }

    /// <summary>NotifyEnforcer's argError at the thread's next enforced call: the enforcer runs on a tracepoint, which
    /// cannot fail the call; with argSig 9 the process never sees the result.</summary>
    private void NextCallError(Located<int> err, int? sig)
    {
        if (err.Value is < -4095 or > -1)
            d.Error(err.Pos, err.Path, $"unsupported: argError {err.Value}: NotifyEnforcer fails the call with a negative errno (-4095..-1, e.g. -1 for EPERM)");
        else if (sig == 9)
            d.Warning(err.Pos, err.Path, $"argError {err.Value} is not applied: the enforcer program runs at raw_syscalls/sys_enter, and a tracepoint cannot fail the call; "
                + "argSig 9 kills the process before the enforced call returns, so it never sees the result");
        else if (features.Has(Kernel.Mechanism.Kprobe) && features.OverrideReturn.Available)
            d.EngineGap(err.Pos, err.Path, "NotifyEnforcer argError at the thread's next enforced call (the enforcer on syscall kprobes with bpf_override_return); "
                + "argSig 9 is, and argError at a hook that is itself the enforced call");
        else
            d.Error(err.Pos, err.Path, $"unsupported: NotifyEnforcer argError {err.Value} at the thread's next enforced call: the enforcer program runs at raw_syscalls/sys_enter, "
                + "and failing the call needs bpf_override_return (a kprobe on the syscall function, CONFIG_BPF_KPROBE_OVERRIDE) or fmod_ret on __x64_sys_*; add argSig: 9 (the process is killed before the call returns)");
    }

    /// <summary>What a NotifyEnforcer selector does here, for --explain.</summary>
    private static string? EnforcerMeaning(Actions actions, int signal, int error, Placement? placement) =>
        !actions.HasFlag(Actions.NotifyEnforcer) ? null
        : actions.HasFlag(Actions.NotifyNext)
        ? "NotifyEnforcer: the thread is notified here, and the enforcer program (raw_syscalls/sys_enter) "
            + (signal != 0 ? $"sends signal {signal} at its next call among spec.enforcers' calls, before that call runs" : "acts at its next call among spec.enforcers' calls, with nothing to do (no argSig)")
            + "; one notification per thread (a newer one replaces it), kept until then or until the thread exits; argError is not applied (a tracepoint cannot fail the call)"
        : "NotifyEnforcer, enforced at this hook (it is one of spec.enforcers' calls): "
            + string.Join(" and ", new[]
            {
                signal != 0 ? $"signal {signal} from the hook, before the call runs" : null,
                error != 0 ? $"the call fails with errno {error} (bpf_override_return)" : null,
            }.OfType<string>())
            + (error == 0 && placement?.Mechanism != Kernel.Mechanism.Kprobe ? "; argError is not applied: the call runs (no bpf_override_return or fmod_ret on a tracepoint)" : "");

    private (Cmp, int?) MatchBinaries(IReadOnlyList<BinaryMatcherSpec> m, string selector)
    {
        if (m.Count == 0) return (Cmp.None, null);
        if (m.Count > 1)
            d.EngineGap(m[1].Pos, m[1].Path, "several matchBinaries entries in one selector (use several selectors)");
        var e = m[0];
        if (e.FollowChildren is { Value: true } fc)
            d.EngineGap(fc.Pos, fc.Path, "matchBinaries followChildren (the binary's descendants too)");
        var (cmp, kind) = BinaryOperator(e.Operator.Value);
        if (!Strings(e, kind)) return (cmp, null);
        return (cmp, AddSet(kind, e.Values.Select(v => v.Value).ToList()));
    }

    private static (Cmp, ValueSetKind) BinaryOperator(string op) => op switch
    {
        "In" => (Cmp.In, ValueSetKind.StringExact),
        "NotIn" => (Cmp.NotIn, ValueSetKind.StringExact),
        "Prefix" => (Cmp.Prefix, ValueSetKind.StringPrefix),
        "NotPrefix" => (Cmp.NotPrefix, ValueSetKind.StringPrefix),
        "Postfix" => (Cmp.Postfix, ValueSetKind.StringPostfix),
        _ => (Cmp.NotPostfix, ValueSetKind.StringPostfix),
    };

    /// <summary>At least one value, each within what the kernel filter compares.</summary>
    private bool Strings(BinaryMatcherSpec e, ValueSetKind kind)
    {
        if (e.Values.Count == 0)
        {
            d.Error(e.Pos, PolicySchema.Child(e.Path, "values"), $"operator {e.Operator.Value} needs at least one value");
            return false;
        }
        return e.Values.All(v => StringFits(v, kind));
    }

    private bool StringFits(Located<string> v, ValueSetKind kind)
    {
        int max = kind == ValueSetKind.StringExact ? MaxExact : MaxPrefix;
        if (Encoding.UTF8.GetByteCount(v.Value) <= max) return true;
        d.Error(v.Pos, v.Path, $"'{PolicyValues.Shorten(v.Value)}' is longer than the {max} bytes the kernel filter compares");
        return false;
    }

    private List<ParentBinaryRule> MatchParentBinaries(IReadOnlyList<BinaryMatcherSpec> m)
    {
        var rules = new List<ParentBinaryRule>();
        foreach (var e in m)
        {
            if (e.FollowChildren is { Value: true } fc)
                d.EngineGap(fc.Pos, fc.Path, "matchParentBinaries followChildren");
            if (e.Values.Count == 0)
                d.Error(e.Pos, PolicySchema.Child(e.Path, "values"), $"operator {e.Operator.Value} needs at least one value");
            rules.Add(new ParentBinaryRule(e.Operator.Value, e.Values.Select(v => v.Value).ToList()));
        }
        return rules;
    }

    private (Cmp, IReadOnlyList<uint>, bool, bool) MatchPids(IReadOnlyList<PidMatcherSpec> m, Placement? placement)
    {
        if (m.Count == 0) return (Cmp.None, [], false, false);
        var first = m[0];
        // Several NotIn entries with the same flags are one NotIn of their union (AND of NotIns).
        if (m.Count > 1 && !m.All(e => e.Operator.Value == "NotIn" && e.FollowForks == first.FollowForks && e.IsNamespacePid == first.IsNamespacePid))
            d.EngineGap(m[1].Pos, m[1].Path, "several matchPIDs entries other than NotIn entries with the same flags");
        // isNamespacePID with followForks is Tetragon's walk of the process and its ancestors (sa_proc in the kernel);
        // --explain states it.
        if (first.IsNamespacePid && placement?.Traits is { HasTask: false })
            d.Error(first.Pos, first.Path, $"unsupported: isNamespacePID on {placement.Describe} (no task there)");
        var pids = new List<uint>();
        foreach (var v in m.SelectMany(e => e.Values))
        {
            if (PolicyValues.TryParsePid(v.Value, out var pid)) pids.Add(pid);
            else d.Error(v.Pos, v.Path, $"'{PolicyValues.Shorten(v.Value)}' is not a pid");
        }
        pids = pids.Distinct().ToList();
        if (pids.Count == 0 && m.All(e => e.Values.Count == 0))
            d.Error(first.Pos, PolicySchema.Child(first.Path, "values"), "matchPIDs needs at least one pid");
        if (pids.Count > MaxPids)
            d.Error(first.Pos, first.Path, $"{pids.Count} pids, at most {MaxPids} per selector");
        return (first.Operator.Value == "In" ? Cmp.In : Cmp.NotIn, pids.Take(MaxPids).ToList(), first.FollowForks, first.IsNamespacePid);
    }

    private (Cmp, byte, ulong, bool) MatchCapabilities(IReadOnlyList<CapabilityMatcherSpec> m, Placement? placement)
    {
        if (m.Count == 0) return (Cmp.None, 0, 0, false);
        if (m.Count > 1)
            d.EngineGap(m[1].Pos, m[1].Path, "several matchCapabilities entries in one selector");
        var e = m[0];
        if (placement?.Traits is { HasTask: false })
            d.Error(e.Pos, e.Path, $"unsupported: matchCapabilities on {placement.Describe} (no task there)");
        return (e.Operator.Value == "In" ? Cmp.In : Cmp.NotIn, CapabilitySet(e), CapabilityMask(e), e.IsNamespaceCapability?.Value == true);
    }

    private ulong CapabilityMask(CapabilityMatcherSpec e)
    {
        ulong mask = 0;
        foreach (var v in e.Values)
        {
            if (LinuxNames.CapabilityNumber(v.Value) is { } n and >= 0 and < 64) mask |= 1UL << n;
            else d.Error(v.Pos, v.Path, $"unknown capability '{PolicyValues.Shorten(v.Value)}'");
        }
        if (e.Values.Count == 0)
            d.Error(e.Pos, PolicySchema.Child(e.Path, "values"), $"{(e.Path.Contains("Changes") ? "matchCapabilityChanges" : "matchCapabilities")} needs at least one capability");
        return mask;
    }

    private List<ArgFilterPlan> MatchArgs(SelectorSpec s, HookKind kind, IReadOnlyList<ArgInfo> args)
    {
        var list = new List<ArgFilterPlan>();
        if (s.MatchArgs.Count > MaxMatchArgs)
            d.Error(s.MatchArgs[MaxMatchArgs].Pos, s.MatchArgs[MaxMatchArgs].Path, $"{s.MatchArgs.Count} matchArgs entries, at most {MaxMatchArgs} per selector");
        foreach (var m in s.MatchArgs.Take(MaxMatchArgs))
        {
            if (ArgumentLayout.Resolve(m, args, kind, d) is not { } arg) continue;
            if (arg.Plan?.KernelType == ArgType.BufRet)
            {
                d.Error(m.Pos, m.Path, "matchArgs cannot filter a returnCopy buffer: it is read when the call returns, after the entry selectors decided");
                continue;
            }
            if (m.Operator.Value == "CapabilitiesGained")
            {
                if (CapabilitiesGained(m, arg, kind, args) is { } g) list.Add(g);
                continue;
            }
            if (MatchArg(m, arg) is { } f) list.Add(f);
        }
        return list;
    }

    /// <summary>One matchArgs entry: the operator must apply to the argument's type; values are parsed here, once.</summary>
    private ArgFilterPlan? MatchArg(ArgMatcherSpec m, ArgInfo arg)
    {
        var op = m.Operator.Value;
        var allowed = Operators[arg.Class];
        if (!allowed.Contains(op))
        {
            d.Error(m.Operator.Pos, m.Operator.Path, $"operator {op} does not apply to an argument of type '{arg.Spec.Type.Value}'"
                + (allowed.Length > 0 ? $" (use one of {string.Join(", ", allowed)})" : ""));
            return null;
        }
        bool valueless = op.Contains("Priv") || op == "CapabilitiesGained";
        if (m.Values.Count == 0 && !valueless)
        {
            d.Error(m.Pos, PolicySchema.Child(m.Path, "values"), $"operator {op} needs at least one value");
            return null;
        }
        if (m.Values.Count > 0 && valueless && op != "CapabilitiesGained")
            d.Error(m.Values[0].Pos, m.Values[0].Path, $"operator {op} takes no values (it tests for a privileged port, 0..1023)");
        int slot = arg.Plan?.Slot ?? 0;
        // sock, socket and skb are read into both ends and their fields (struct sa_sock_info); a sockaddr has one end.
        bool kernelSock = arg.Plan?.KernelType is ArgType.Sock or ArgType.Socket or ArgType.Skb;
        switch (op)
        {
            case "Equal" or "NotEqual" or "InMap" or "NotInMap":
            {
                var cmp = op is "Equal" or "InMap" ? Cmp.In : Cmp.NotIn;
                if (arg.Class == ArgClass.String)
                    return m.Values.All(v => StringFits(v, ValueSetKind.StringExact))
                        ? new(slot, cmp, AddSet(ValueSetKind.StringExact, m.Values.Select(v => v.Value).ToList()), 0) : null;
                var ints = Integers(m.Values, allowLists: op is "InMap" or "NotInMap", allowRanges: op is "InMap" or "NotInMap");
                return ints is null ? null : new(slot, cmp, AddSet(ValueSetKind.Int, ints.Select(i => PolicyValues.Canonical(i.Value, i.Negative)).ToList(), ints.Select(i => i.Value).ToList()), 0);
            }
            case "Prefix" or "NotPrefix" or "Postfix" or "NotPostfix":
            {
                var kind = op.EndsWith("Prefix") ? ValueSetKind.StringPrefix : ValueSetKind.StringPostfix;
                var cmp = op switch { "Prefix" => Cmp.Prefix, "NotPrefix" => Cmp.NotPrefix, "Postfix" => Cmp.Postfix, _ => Cmp.NotPostfix };
                return m.Values.All(v => StringFits(v, kind)) ? new(slot, cmp, AddSet(kind, m.Values.Select(v => v.Value).ToList()), 0) : null;
            }
            case "GreaterThan" or "GT" or "LessThan" or "LT":
            {
                if (m.Values.Count > 1)
                    d.Error(m.Values[1].Pos, m.Values[1].Path, $"operator {op} takes one value");
                var ints = Integers(m.Values.Take(1).ToList(), allowLists: false);
                return ints is null ? null : new(slot, op is "GreaterThan" or "GT" ? Cmp.GreaterThan : Cmp.LessThan, null, ints[0].Value);
            }
            case "Mask":
            {
                var ints = Integers(m.Values, allowLists: false);
                return ints is null ? null : new(slot, Cmp.Mask, null, ints.Aggregate(0UL, (mask, i) => mask | i.Value));
            }
            case "DAddr" or "NotDAddr":
            {
                var nets = new List<string>();
                foreach (var v in m.Values)
                {
                    if (PolicyValues.CanonicalNetwork(v.Value) is { } net) nets.Add(net);
                    else d.Error(v.Pos, v.Path, $"'{PolicyValues.Shorten(v.Value)}' is not an address or CIDR (a.b.c.d, a.b.c.d/n or IPv6)");
                }
                return nets.Count == m.Values.Count ? new(slot, op == "DAddr" ? Cmp.DAddr : Cmp.NotDAddr, AddSet(ValueSetKind.Address, nets), 0) : null;
            }
            case "DPort" or "NotDPort" or "DPortPriv" or "NotDPortPriv":
            {
                var ports = op.EndsWith("Priv") ? PrivilegedPorts : Ports(m.Values);
                return ports is null ? null : new(slot, op.StartsWith("Not") ? Cmp.NotDPort : Cmp.DPort, AddSet(ValueSetKind.Int, ports.Select(p => p.ToString()).ToList(), ports), 0);
            }
            case "Family" or "NotFamily":
            {
                var families = new List<ulong>();
                foreach (var v in m.Values)
                {
                    if (PolicyValues.TryParseFamily(v.Value, out var f)) families.Add((ulong)f);
                    else d.Error(v.Pos, v.Path, $"'{PolicyValues.Shorten(v.Value)}' is not an address family (AF_INET, AF_INET6, AF_UNIX or 0..255)");
                }
                return families.Count == m.Values.Count ? new(slot, op == "Family" ? Cmp.Family : Cmp.NotFamily, AddSet(ValueSetKind.Int, families.Select(f => f.ToString()).ToList(), families), 0) : null;
            }
            case "SAddr" or "NotSAddr":
            {
                var nets = new List<string>();
                foreach (var v in m.Values)
                {
                    if (PolicyValues.CanonicalNetwork(v.Value) is { } net) nets.Add(net);
                    else d.Error(v.Pos, v.Path, $"'{PolicyValues.Shorten(v.Value)}' is not an address or CIDR (a.b.c.d, a.b.c.d/n or IPv6)");
                }
                // Tetragon reads a sockaddr's one address and port as the source end (SAddr, SPort): here they are
                // the address and port that DAddr and DPort index for a sockaddr argument.
                if (nets.Count == m.Values.Count)
                    return new(slot, (kernelSock, op == "SAddr") switch { (true, true) => Cmp.SAddr, (true, false) => Cmp.NotSAddr, (false, true) => Cmp.DAddr, _ => Cmp.NotDAddr },
                        AddSet(ValueSetKind.Address, nets), 0);
                break;
            }
            case "SPort" or "NotSPort" or "SPortPriv" or "NotSPortPriv" or "NotSportPriv":
            {
                var ports = op.EndsWith("Priv", StringComparison.OrdinalIgnoreCase) ? PrivilegedPorts : Ports(m.Values);
                if (ports is not null)
                    return new(slot, (kernelSock, op.StartsWith("Not")) switch { (true, false) => Cmp.SPort, (true, true) => Cmp.NotSPort, (false, false) => Cmp.DPort, _ => Cmp.NotDPort },
                        AddSet(ValueSetKind.Int, ports.Select(p => p.ToString()).ToList(), ports), 0);
                break;
            }
            case "Protocol" or "NotProtocol":
            {
                var protocols = new List<ulong>();
                foreach (var v in m.Values)
                {
                    if (PolicyValues.TryParseProtocol(v.Value, out var pr) && pr < 256) protocols.Add((ulong)pr);
                    else d.Error(v.Pos, v.Path, $"'{PolicyValues.Shorten(v.Value)}' is not a protocol (IPPROTO_TCP, IPPROTO_UDP, ... or 0..255)");
                }
                if (kernelSock && protocols.Count == m.Values.Count)
                    return new(slot, op == "Protocol" ? Cmp.Protocol : Cmp.NotProtocol, AddSet(ValueSetKind.Int, protocols.Select(x => x.ToString()).ToList(), protocols), 0);
                break;
            }
            case "State":
            {
                var states = new List<ulong>();
                foreach (var v in m.Values)
                {
                    int named = PolicyValues.TcpStates.ToList().IndexOf(v.Value);
                    if (named >= 0) states.Add((ulong)named + 1);
                    else if (PolicyValues.TryParseInRange(v.Value, 1, PolicyValues.TcpStates.Count, out var n)) states.Add((ulong)n);
                    else d.Error(v.Pos, v.Path, $"'{PolicyValues.Shorten(v.Value)}' is not a socket state ({string.Join(", ", PolicyValues.TcpStates)}, or 1..{PolicyValues.TcpStates.Count})");
                }
                if (arg.Plan?.KernelType is ArgType.Sock or ArgType.Socket && states.Count == m.Values.Count)
                    return new(slot, Cmp.State, AddSet(ValueSetKind.Int, states.Select(x => x.ToString()).ToList(), states), 0);
                break;
            }
            case "InRange" or "NotInRange" when arg.Class == ArgClass.Int:
            {
                // Both bounds included, as in Tetragon; carried exactly as the set of the values in the ranges.
                if (m.Values.Any(v => !v.Value.Contains(':')))
                {
                    var v = m.Values.First(v => !v.Value.Contains(':'));
                    d.Error(v.Pos, v.Path, $"'{PolicyValues.Shorten(v.Value)}' is not a range 'min:max' of integers");
                    return null;
                }
                var ints = Integers(m.Values, allowLists: false, allowRanges: true);
                return ints is null ? null : new(slot, op == "InRange" ? Cmp.In : Cmp.NotIn, AddSet(ValueSetKind.Int, ints.Select(i => PolicyValues.Canonical(i.Value, i.Negative)).ToList(), ints.Select(i => i.Value).ToList()), 0);
            }
            case "FileType" or "NotFileType":
                foreach (var v in m.Values)
                    if (v.Value is not ("reg" or "dir" or "lnk" or "chr" or "blk" or "fifo" or "sock"))
                        d.Error(v.Pos, v.Path, $"'{PolicyValues.Shorten(v.Value)}' is not a file type (reg, dir, lnk, chr, blk, fifo, sock)");
                break;
        }
        // Operators the language defines and the kernel filter of this build does not evaluate.
        d.EngineGap(m.Operator.Pos, m.Operator.Path, $"operator {op}" + (op is "SubString" or "SubStringIgnCase" ? " (needs the bpf_strnstr kfunc, Linux 6.17+)" : ""));
        return null;
    }

    private static readonly HashSet<string> CapabilitySets = ["kernel_cap_t", "cap_effective", "cap_permitted", "cap_inheritable"];

    /// <summary>Tetragon's CapabilitiesGained: `args: [old, new]` name two capability-set arguments; the selector matches
    /// when the new set holds a capability the old one lacks (new &amp; ~old != 0). Evaluated in the kernel beside
    /// GreaterThan/LessThan/Mask (struct sa_int_cmp: slot the old set, value the new one's slot).</summary>
    private ArgFilterPlan? CapabilitiesGained(ArgMatcherSpec m, ArgInfo old, HookKind kind, IReadOnlyList<ArgInfo> args)
    {
        if (m.Args.Count != 2)
        {
            d.Error(m.Pos, m.Path, "operator CapabilitiesGained compares two capability sets: args: [old, new] (entries of the hook's args)");
            return null;
        }
        if (m.Values.Count > 0)
            d.Error(m.Values[0].Pos, m.Values[0].Path, "operator CapabilitiesGained takes no values: it compares its two args");
        if (m.Args[1].Value >= args.Count)
        {
            d.Error(m.Args[1].Pos, m.Args[1].Path, $"args[{m.Args[1].Value}] names entry {m.Args[1].Value} of the hook's args, which has {args.Count} (0..{args.Count - 1})");
            return null;
        }
        var @new = args[m.Args[1].Value];
        foreach (var (a, at) in new[] { (old, m.Args[0]), (@new, m.Args[1]) })
            if (!CapabilitySets.Contains(a.Spec.Type.Value))
            {
                d.Error(at.Pos, at.Path, $"operator CapabilitiesGained compares capability sets (types {string.Join(", ", CapabilitySets)}), and args[{at.Value}] is of type '{a.Spec.Type.Value}'"
                    + (a.Spec.Type.Value == "cred" ? " (read a cred's set with type cap_effective and resolve: cap_effective, as Tetragon's examples do)" : ""));
                return null;
            }
        if (kind is HookKind.Tracepoint or HookKind.Uprobe or HookKind.Usdt && old.Plan is not null && old.Plan.KernelType != ArgType.Caps)
        {
            d.Error(m.Pos, m.Path, "operator CapabilitiesGained compares capability sets of kernel function arguments (kprobes, LSM hooks, raw tracepoints)");
            return null;
        }
        return old.Plan is { } o && @new.Plan is { } n ? new ArgFilterPlan(o.Slot, Cmp.CapsGained, null, (ulong)n.Slot) : null;
    }

    private static readonly List<ulong> PrivilegedPorts = [.. Enumerable.Range(0, 1024).Select(p => (ulong)p)];

    /// <summary>Ports and "min:max" port ranges (both included, as Tetragon's port operators take them); null after reporting.</summary>
    private List<ulong>? Ports(IReadOnlyList<Located<string>> values)
    {
        var ports = new List<ulong>();
        bool ok = true;
        foreach (var v in values)
        {
            if (PolicyValues.TryParsePort(v.Value, out var port)) ports.Add(port);
            else if (PolicyValues.TryParseRange(v.Value, out var lo, out var hi) && lo >= 0 && hi <= 65535 && ports.Count + hi - lo < MaxRangeValues)
                for (long p = lo; p <= hi; p++) ports.Add((ulong)p);
            else
            {
                d.Error(v.Pos, v.Path, $"'{PolicyValues.Shorten(v.Value)}' is not a port (0..65535) or a range min:max of at most {MaxRangeValues} ports");
                ok = false;
            }
        }
        return ok ? ports.Distinct().ToList() : null;
    }

    /// <summary>Values a range may stand for in a set (a range is stored value by value, as Tetragon's InMap does).</summary>
    public const int MaxRangeValues = 4096;

    /// <summary>Integers (Tetragon's base-0 forms), with InMap also `list:NAME` of a syscalls list, and with ranges
    /// "min:max" (both included) each value of the range; null after reporting.</summary>
    private List<(ulong Value, bool Negative)>? Integers(IReadOnlyList<Located<string>> values, bool allowLists, bool allowRanges = false)
    {
        var result = new List<(ulong, bool)>();
        bool ok = true;
        foreach (var v in values)
        {
            if (allowRanges && v.Value.Contains(':') && !v.Value.StartsWith("list:"))
            {
                if (!PolicyValues.TryParseRange(v.Value, out var lo, out var hi))
                {
                    d.Error(v.Pos, v.Path, $"'{PolicyValues.Shorten(v.Value)}' is not a range 'min:max' of integers (min at most max)");
                    ok = false;
                }
                else if ((ulong)(hi - lo) >= MaxRangeValues || result.Count + (int)(hi - lo) + 1 > MaxRangeValues)
                {
                    d.Error(v.Pos, v.Path, $"unsupported: range {PolicyValues.Shorten(v.Value)} holds more than the {MaxRangeValues} values a filter's set stores");
                    ok = false;
                }
                else
                    for (long x = lo; x <= hi; x++) result.Add(((ulong)x, x < 0));
                continue;
            }
            if (allowLists && v.Value.StartsWith("list:"))
            {
                var name = v.Value[5..];
                if (!lists.TryGetValue(name, out var list))
                {
                    d.Error(v.Pos, v.Path, $"no list named '{PolicyValues.Shorten(name)}' in spec.lists");
                    ok = false;
                }
                else if (list.Syscalls is null)
                {
                    d.Error(v.Pos, v.Path, $"unsupported: '{PolicyValues.Shorten(v.Value)}' is a list of type {list.Spec.Type.Value}; only syscalls lists are implemented");
                    ok = false;
                }
                else
                    result.AddRange(list.Syscalls.Select(n => (n, false)));
            }
            else if (PolicyValues.TryParseInteger(v.Value, out var n, out var negative))
                result.Add((n, negative));
            else
            {
                d.Error(v.Pos, v.Path, allowLists ? $"'{PolicyValues.Shorten(v.Value)}' is neither an integer nor a list:NAME reference" : $"'{PolicyValues.Shorten(v.Value)}' is not an integer");
                ok = false;
            }
        }
        return ok ? result : null;
    }
}
