using System.Text;
using SecurityAgent.Export;

namespace SecurityAgent.Policies;

/// <summary>A `spec.lists` entry; for a syscalls list, its syscall numbers.</summary>
internal sealed record ListInfo(ListSpec Spec, IReadOnlyList<ulong>? Syscalls);

/// <summary>Selectors: one function per matcher (as Tetragon's pkg/selectors does), each checking its own entries,
/// parsing its values once into the plan and reporting what this placement cannot carry.</summary>
internal sealed class SelectorCompiler(DiagnosticBag d, List<ValueSet> sets, IReadOnlyDictionary<string, ListInfo> lists)
{
    public const int MaxSelectors = 5;
    public const int MaxMatchArgs = 4;
    public const int MaxPids = Events.Contract.MaxPids;
    public const int MaxExact = Events.Contract.StrMax - 1, MaxPrefix = Events.Contract.LpmStrMax;

    private static readonly HashSet<string> UnsupportedActions = ["FollowFD", "UnfollowFD", "CopyFD", "GetUrl", "DnsLookup", "TrackSock", "UntrackSock", "NotifyEnforcer", "CleanupEnforcerNotification", "Set"];

    private static readonly Dictionary<ArgClass, string[]> Operators = new()
    {
        [ArgClass.String] = ["Equal", "NotEqual", "Prefix", "NotPrefix", "Postfix", "NotPostfix"],
        [ArgClass.Int] = ["Equal", "NotEqual", "GreaterThan", "GT", "LessThan", "LT", "Mask", "InMap", "NotInMap", "InRange", "NotInRange"],
        [ArgClass.Sock] = ["DAddr", "NotDAddr", "SAddr", "NotSAddr", "DPort", "NotDPort", "SPort", "NotSPort", "Family", "NotFamily", "Protocol", "NotProtocol", "State"],
        [ArgClass.Syscall64] = ["Equal", "NotEqual", "InMap", "NotInMap"],
        [ArgClass.None] = [],
    };

    private int AddSet(ValueSetKind kind, IReadOnlyList<string> values, IReadOnlyList<ulong>? integers = null)
    {
        sets.Add(new ValueSet(kind, values) { Integers = integers ?? [] });
        return sets.Count - 1;
    }

    public List<SelectorPlan> Compile(HookSpec hook, Placement? placement, IReadOnlyList<ArgInfo> args)
    {
        if (hook.Selectors.Count > MaxSelectors)
            d.Error(hook.Selectors[MaxSelectors].Pos, hook.Selectors[MaxSelectors].Path, $"{hook.Selectors.Count} selectors, at most {MaxSelectors} per hook");
        var kind = placement?.Kind ?? hook switch { TracepointSpec => HookKind.Tracepoint, KprobeSpec => HookKind.Kprobe, _ => HookKind.LsmHook };
        return hook.Selectors.Take(MaxSelectors).Select(s => Selector(s, kind, placement, args)).ToList();
    }

    private SelectorPlan Selector(SelectorSpec s, HookKind kind, Placement? placement, IReadOnlyList<ArgInfo> args)
    {
        NotImplemented(s.MatchData.FirstOrDefault()?.Pos, s.Path, "matchData");
        NotImplemented(s.MatchReturnArgs.FirstOrDefault()?.Pos, s.Path, "matchReturnArgs");
        NotImplemented(s.MatchNamespaces.FirstOrDefault()?.Pos, s.Path, "matchNamespaces");
        NotImplemented(s.MatchNamespaceChanges, s.Path, "matchNamespaceChanges");
        NotImplemented(s.MatchCapabilityChanges, s.Path, "matchCapabilityChanges");
        NotImplemented(s.MatchReturnActions, s.Path, "matchReturnActions");
        var (actions, signal, error, rate) = MatchActions(s.MatchActions, placement);
        var (binCmp, binSet) = MatchBinaries(s.MatchBinaries, s.Path);
        var (pidCmp, pids, follow, pidNs) = MatchPids(s.MatchPids, placement);
        var (capCmp, capSet, capMask) = MatchCapabilities(s.MatchCapabilities, placement);
        var parents = MatchParentBinaries(s.MatchParentBinaries);
        var filters = MatchArgs(s, kind, args);
        return new SelectorPlan(actions, signal, rate, error, binCmp, binSet, pidCmp, pids, follow, pidNs, capCmp, capSet, capMask, filters, parents);
    }

    private void NotImplemented(SourcePos? pos, string selector, string field)
    {
        if (pos is { } p)
            d.Error(p, PolicySchema.Child(selector, field), $"unsupported: '{field}' is not implemented yet");
    }

    private (Actions, int Signal, int Error, ulong RateNs) MatchActions(IReadOnlyList<ActionSpec> actions, Placement? placement)
    {
        var result = Actions.None;
        int signal = 0, error = 0;
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
                        d.Error(scope.Pos, scope.Path, $"unsupported: rateLimitScope {scope.Value} (rate limits are per process)");
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
                    else if (err.Value is < -4095 or > -1)
                        d.Error(err.Pos, err.Path, $"unsupported: argError {err.Value}: Override returns a negative errno here (-4095..-1, e.g. -1 for EPERM)");
                    else
                        error = err.Value;
                    if (traits is { CanOverride: false })
                        d.Error(a.Action.Pos, a.Action.Path, placement!.Mechanism == Kernel.Mechanism.Tracepoint
                            ? $"Override cannot change a tracepoint's outcome ({placement.Describe}); deny with an lsmhook (BPF LSM, or socket_connect) or kill with Sigkill"
                            : $"unsupported: Override on {placement.Describe} (needs bpf_override_return, not used yet); deny with an lsmhook or kill with Sigkill");
                    break;
                default:
                    d.Error(a.Action.Pos, a.Action.Path, UnsupportedActions.Contains(action) ? $"unsupported: action {action} is not implemented yet" : $"unsupported: action {action}");
                    break;
            }
            if (a.RateLimit is { } r && action != "Post")
                d.Error(r.Pos, r.Path, "rateLimit applies to the Post action only");
        }
        if (!noPost) result |= Actions.Post; // events are posted unless NoPost, as in Tetragon
        return (result, signal, error, rate);
    }

    private (Cmp, int?) MatchBinaries(IReadOnlyList<BinaryMatcherSpec> m, string selector)
    {
        if (m.Count == 0) return (Cmp.None, null);
        if (m.Count > 1)
            d.Error(m[1].Pos, m[1].Path, "unsupported: one matchBinaries entry per selector (use several selectors)");
        var e = m[0];
        if (e.FollowChildren is { Value: true } fc)
            d.Error(fc.Pos, fc.Path, "unsupported: followChildren is not implemented yet");
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
                d.Error(fc.Pos, fc.Path, "unsupported: followChildren is not implemented yet");
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
            d.Error(m[1].Pos, m[1].Path, "unsupported: several matchPIDs entries are supported only as NotIn entries with the same flags");
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

    private (Cmp, byte, ulong) MatchCapabilities(IReadOnlyList<CapabilityMatcherSpec> m, Placement? placement)
    {
        if (m.Count == 0) return (Cmp.None, 0, 0);
        if (m.Count > 1)
            d.Error(m[1].Pos, m[1].Path, "unsupported: one matchCapabilities entry per selector");
        var e = m[0];
        if (placement?.Traits is { HasTask: false })
            d.Error(e.Pos, e.Path, $"unsupported: matchCapabilities on {placement.Describe} (no task there)");
        if (e.IsNamespaceCapability is { Value: true } ns)
            d.Error(ns.Pos, ns.Path, "unsupported: namespace capabilities are not implemented yet");
        ulong mask = 0;
        foreach (var v in e.Values)
        {
            if (LinuxNames.CapabilityNumber(v.Value) is { } n and >= 0 and < 64) mask |= 1UL << n;
            else d.Error(v.Pos, v.Path, $"unknown capability '{PolicyValues.Shorten(v.Value)}'");
        }
        if (e.Values.Count == 0)
            d.Error(e.Pos, PolicySchema.Child(e.Path, "values"), "matchCapabilities needs at least one capability");
        byte set = e.Type?.Value switch { "Permitted" => 1, "Inheritable" => 2, _ => 0 };
        return (e.Operator.Value == "In" ? Cmp.In : Cmp.NotIn, set, mask);
    }

    private List<ArgFilterPlan> MatchArgs(SelectorSpec s, HookKind kind, IReadOnlyList<ArgInfo> args)
    {
        var list = new List<ArgFilterPlan>();
        if (s.MatchArgs.Count > MaxMatchArgs)
            d.Error(s.MatchArgs[MaxMatchArgs].Pos, s.MatchArgs[MaxMatchArgs].Path, $"{s.MatchArgs.Count} matchArgs entries, at most {MaxMatchArgs} per selector");
        foreach (var m in s.MatchArgs.Take(MaxMatchArgs))
        {
            if (ArgumentLayout.Resolve(m, args, kind, d) is not { } arg) continue;
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
        if (m.Values.Count == 0)
        {
            d.Error(m.Pos, PolicySchema.Child(m.Path, "values"), $"operator {op} needs at least one value");
            return null;
        }
        int slot = arg.Plan?.Slot ?? 0;
        switch (op)
        {
            case "Equal" or "NotEqual" or "InMap" or "NotInMap":
            {
                var cmp = op is "Equal" or "InMap" ? Cmp.In : Cmp.NotIn;
                if (arg.Class == ArgClass.String)
                    return m.Values.All(v => StringFits(v, ValueSetKind.StringExact))
                        ? new(slot, cmp, AddSet(ValueSetKind.StringExact, m.Values.Select(v => v.Value).ToList()), 0) : null;
                var ints = Integers(m.Values, allowLists: op is "InMap" or "NotInMap");
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
            case "DPort" or "NotDPort":
            {
                var ports = new List<ulong>();
                foreach (var v in m.Values)
                {
                    if (PolicyValues.TryParsePort(v.Value, out var port)) ports.Add(port);
                    else d.Error(v.Pos, v.Path, $"'{PolicyValues.Shorten(v.Value)}' is not a port (0..65535)");
                }
                return ports.Count == m.Values.Count ? new(slot, op == "DPort" ? Cmp.DPort : Cmp.NotDPort, AddSet(ValueSetKind.Int, ports.Select(p => p.ToString()).ToList(), ports), 0) : null;
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
            default:
                d.Error(m.Operator.Pos, m.Operator.Path, $"unsupported: operator {op} is not implemented in the kernel filter yet");
                return null;
        }
    }

    /// <summary>Integers (Tetragon's base-0 forms), or with InMap also `list:NAME` of a syscalls list; null after reporting.</summary>
    private List<(ulong Value, bool Negative)>? Integers(IReadOnlyList<Located<string>> values, bool allowLists)
    {
        var result = new List<(ulong, bool)>();
        bool ok = true;
        foreach (var v in values)
        {
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
