using SecurityAgent.Kernel;

namespace SecurityAgent.Policies;

/// <summary>The compiled form of a policy: plain data, what the engine loads into the kernel and what
/// `secagent policy compile --explain` shows. Value sets are referenced by index into <see cref="ValueSets"/>;
/// the engine stores their values under each attach point's generation (see <see cref="PolicyEncoding"/>).</summary>
public sealed record PolicyPlan(string Name, string File, bool Enforce, IReadOnlyList<HookPlan> Hooks, IReadOnlyList<ValueSet> ValueSets, PolicyScope? Scope = null)
{
    /// <summary>spec.options fail-mode: fail-closed: a deny the agent cannot decide in time (fanotify permission
    /// events) is answered with deny instead of allow.</summary>
    public bool FailClosed { get; init; }

    /// <summary>The generated_ftrace lists the kprobes came from (for the explanation).</summary>
    public IReadOnlyList<FtraceListPlan> FtraceLists { get; init; } = [];

    /// <summary>spec.loader: an event (process_loader) for each file a process of the policy's scope maps executable.</summary>
    public bool Loader { get; init; }

    /// <summary>spec.enforcers' syscalls (ia32 ones | <see cref="SyscallTable.Compat32"/>), when a selector notifies for
    /// later calls (<see cref="Actions.NotifyNext"/>): the enforcer program consumes the notification at them.</summary>
    public IReadOnlyList<ulong> EnforcedCalls { get; init; } = [];
}

/// <summary>A generated_ftrace list: the kernel functions of <paramref name="Source"/> matching <paramref name="Pattern"/>,
/// each hooked by a kprobe of the policy; <paramref name="Functions"/> is null when they are resolved later, on the node.</summary>
public sealed record FtraceListPlan(string Name, string Pattern, string Source, IReadOnlyList<string>? Functions);

public enum HookKind { Tracepoint, Kprobe, LsmHook, Uprobe, Usdt }

/// <param name="Kind">How the policy named the hook.</param>
/// <param name="Mechanism">How this kernel runs it.</param>
/// <param name="Target">Attach point, e.g. "syscalls/sys_enter_openat", or the cgroup for sock_addr hooks.</param>
/// <param name="Name">What events call it: the tracepoint "subsys/event", a kprobe's function, an LSM hook.</param>
public sealed record HookPlan(HookKind Kind, Mechanism Mechanism, string Target, string Name, string Why,
    IReadOnlyList<ArgPlan> Args, IReadOnlyList<SelectorPlan> Selectors, string? Message, IReadOnlyList<string> Tags)
{
    /// <summary>Per selector, its matchPIDs entries with both flags as the policy wrote them (for the explanation).</summary>
    public IReadOnlyList<string> Pids { get; init; } = [];

    /// <summary>Uprobes and USDT probes: where in which binary (the Target is its <see cref="UserProbeSite.Target"/>).</summary>
    public UserProbeSite? Site { get; init; }

    /// <summary>A return probe (`return: true`): the event is posted when the call returns, with its value.</summary>
    public ReturnPlan? Return { get; init; }
}

/// <summary>Where a uprobe or USDT probe attaches: a binary's symbol, or its file offset, or a USDT probe by provider
/// and name. One site is one attach point. RefCtrOffset: the file offset of the probe's semaphore (refCtrOffsets), which
/// the kernel increments while the probe is attached; 0 for none.</summary>
/// <summary>usdt Set: <paramref name="Value"/> written at the memory operand of note argument <paramref name="NoteArg"/>,
/// its low <paramref name="Size"/> bytes (the note's size; 0 when the note could not be read at compile time: read at load).</summary>
public sealed record UsdtSetPlan(int NoteArg, int Size, long Value);

public sealed record UserProbeSite(string Binary, string? Symbol, ulong Offset, string? Provider = null, string? Probe = null, ulong RefCtrOffset = 0)
{
    /// <summary>A USDT site whose hooks Set an argument: its own attach point, run by the program that can write
    /// user memory (bpf_probe_write_user), which the other sites do not load.</summary>
    public bool Writes { get; init; }

    public bool IsUsdt => Provider is not null;

    private const string RefCtr = "|ref+0x";

    /// <summary>The attach point's target: "uprobe|BINARY|SYMBOL-or-+0xOFFSET[|ref+0xOFFSET]" or "usdt|BINARY|PROVIDER|NAME"
    /// ("usdt-set|..." when it <see cref="Writes"/>).</summary>
    public string Target => IsUsdt ? $"{(Writes ? "usdt-set" : "usdt")}|{Binary}|{Provider}|{Probe}"
        : $"uprobe|{Binary}|{Symbol ?? $"+0x{Offset:x}"}" + (RefCtrOffset != 0 ? $"{RefCtr}{RefCtrOffset:x}" : "");

    /// <summary>The site back from an attach point's target.</summary>
    public static UserProbeSite Parse(string target)
    {
        bool writes = target.StartsWith("usdt-set|", StringComparison.Ordinal), usdt = writes || target.StartsWith("usdt|", StringComparison.Ordinal);
        var rest = target[(target.IndexOf('|') + 1)..];
        if (usdt)
        {
            int b = rest.LastIndexOf('|'), a = rest.LastIndexOf('|', b - 1);
            return new UserProbeSite(rest[..a], null, 0, rest[(a + 1)..b], rest[(b + 1)..]) { Writes = writes };
        }
        ulong refCtr = 0;
        int r = rest.LastIndexOf(RefCtr, StringComparison.Ordinal);
        if (r >= 0 && rest.IndexOf('|', r + 1) < 0)
            (refCtr, rest) = (Convert.ToUInt64(rest[(r + RefCtr.Length)..], 16), rest[..r]);
        int s = rest.LastIndexOf('|');
        var site = rest[(s + 1)..];
        return site.StartsWith("+0x", StringComparison.Ordinal)
            ? new UserProbeSite(rest[..s], null, Convert.ToUInt64(site[3..], 16), RefCtrOffset: refCtr)
            : new UserProbeSite(rest[..s], site, 0, RefCtrOffset: refCtr);
    }

    public override string ToString() => IsUsdt ? $"{Binary} {Provider}:{Probe}" : $"{Binary} {Symbol ?? $"+0x{Offset:x}"}";
}

/// <summary>A return probe: the returnArg's type (how the value is compared and rendered as Tetragon's `return`) and
/// the tracepoint that reads it (a syscall's syscalls/sys_exit_NAME, attached beside the enter's).</summary>
public sealed record ReturnPlan(string Type, ArgType KernelType, int Size, string? Label, string Tracepoint)
{
    public bool Signed => KernelType is ArgType.Int or ArgType.Fd;

    /// <summary>returnArgAction: TrackSock or UntrackSock on the returned sock (done at return, before the return filters).</summary>
    public Actions ArgAction { get; init; }
}

/// <summary>One matchReturnArgs entry: Equal / NotEqual (In / NotIn over the values), GreaterThan, LessThan, Mask.</summary>
public sealed record ReturnFilterPlan(Cmp Cmp, IReadOnlyList<ulong> Values);

/// <summary>One argument read by the hook. Slot is its position in the kernel record; Index the policy's numbering.</summary>
public sealed record ArgPlan(int Slot, int Index, string Type, ArgType KernelType, int Offset, int Size, string? Label)
{
    /// <summary>resolve: the field path followed from the argument; the leaf is read as <see cref="KernelType"/>.</summary>
    public ResolvePlan? Resolve { get; init; }
}

// ArgType (enum sa_arg_type), Cmp (enum sa_cmp) and Actions (enum sa_action) are generated from
// bpf/include/contract.h into Events/Contract.g.cs, in this namespace.

public sealed record ArgFilterPlan(int Slot, Cmp Cmp, int? ValueSet, ulong Value);

public sealed record SelectorPlan(
    Actions Actions, int Signal, ulong RateLimitNs, int Error,
    Cmp BinaryCmp, int? BinaryValueSet,
    Cmp PidCmp, IReadOnlyList<uint> Pids, bool FollowForks, bool NamespacePids,
    Cmp CapCmp, byte CapSet, ulong CapMask,
    IReadOnlyList<ArgFilterPlan> Args,
    IReadOnlyList<ParentBinaryRule> ParentBinaries)
{
    /// <summary>DnsLookup and GetUrl: carried out by the agent for each matching event (<see cref="PolicyNotifier"/>).</summary>
    public IReadOnlyList<Notification> Notify { get; init; } = [];

    /// <summary>NotifyEnforcer: what the enforcement does at this hook (shown by --explain).</summary>
    public string? Enforcer { get; init; }

    /// <summary>Return probes: matchReturnArgs, ANDed, on the return value.</summary>
    public IReadOnlyList<ReturnFilterPlan> ReturnArgs { get; init; } = [];

    /// <summary>Return probes: matchReturnActions, done at return (Post unless NoPost, as at entry).</summary>
    public Actions ReturnActions { get; init; } = Actions.Post;

    public int ReturnSignal { get; init; }

    /// <summary>usdt Set in matchActions: what is written where (null: no Set).</summary>
    public UsdtSetPlan? Set { get; init; }

    /// <summary>TrackSock / UntrackSock in matchActions: the argument (argSock) whose sock they take.</summary>
    public int? SockArg { get; init; }
    /// <summary>matchNamespaces: each entry compares one namespace of the task (values: inode numbers or host_ns).</summary>
    public IReadOnlyList<NamespaceMatch> Namespaces { get; init; } = [];

    /// <summary>matchNamespaceChanges: In, one of the mask's namespaces (bits 1 &lt;&lt; Wire.Namespace) differs from
    /// the one at exec; NotIn, one outside the mask does.</summary>
    public Cmp NamespaceChangeCmp { get; init; }
    public ushort NamespaceChangeMask { get; init; }

    /// <summary>matchCapabilityChanges: set 0 effective, 1 permitted, 2 inheritable; compared with the set at exec.</summary>
    public Cmp CapChangeCmp { get; init; }
    public byte CapChangeSet { get; init; }
    public ulong CapChangeMask { get; init; }

    /// <summary>isNamespaceCapability on matchCapabilities / matchCapabilityChanges: only processes outside the
    /// host's user namespace match.</summary>
    public bool CapNamespaceOnly { get; init; }
    public bool CapChangeNamespaceOnly { get; init; }

    /// <summary>matchPIDs isNamespacePID+followForks: the namespace pids of the process and its ancestors.</summary>
    public bool PidTree => FollowForks && NamespacePids;

    /// <summary>Whether the selector has a namespace, pid-tree or capability-change check (the kernel evaluates
    /// them only then).</summary>
    public bool HasNamespaceChecks => Namespaces.Count > 0 || NamespaceChangeCmp != Cmp.None || CapChangeCmp != Cmp.None || CapNamespaceOnly;

    /// <summary>Whether the kernel alone decides (no user-space stage for this selector).</summary>
    public bool KernelOnly => ParentBinaries.Count == 0;
}

/// <summary>A matchNamespaces entry: namespace <paramref name="Namespace"/> is (In) or is not (NotIn) one of the
/// values, inode numbers or "host_ns" (the namespace of the host's init, resolved when the policy is loaded).</summary>
public sealed record NamespaceMatch(Events.Wire.Namespace Namespace, Cmp Cmp, IReadOnlyList<string> Values);

/// <summary>matchParentBinaries: decided in user space on the enriched event (the kernel has no ancestry).</summary>
public sealed record ParentBinaryRule(string Operator, IReadOnlyList<string> Values);

public enum ValueSetKind { StringExact, StringPrefix, StringPostfix, Int, Address }

/// <summary>The values of one filter, as they go into the value-set maps. Int sets carry their values parsed once by
/// the compiler (<see cref="Integers"/>; <see cref="Values"/> holds their canonical decimal text); Address sets hold
/// canonical networks ("10.0.0.0/8", "127.0.0.1/32").</summary>
public sealed record ValueSet(ValueSetKind Kind, IReadOnlyList<string> Values)
{
    public IReadOnlyList<ulong> Integers { get; init; } = [];

    private HashSet<ulong>? _integerSet;

    /// <summary>Whether an Int set holds a value (for user-space evaluation; built once, on first use).</summary>
    public bool ContainsInteger(ulong value) => (_integerSet ??= [.. Integers]).Contains(value);
}

/// <summary>Kubernetes label selector: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist).</summary>
public sealed record LabelSelector(IReadOnlyDictionary<string, string> MatchLabels, IReadOnlyList<(string Key, string Operator, IReadOnlyList<string> Values)> Expressions)
{
    public bool Matches(IReadOnlyDictionary<string, string> labels) =>
        MatchLabels.All(kv => labels.TryGetValue(kv.Key, out var v) && v == kv.Value)
        && Expressions.All(e => e.Operator switch
        {
            "In" => labels.TryGetValue(e.Key, out var v) && e.Values.Contains(v),
            "NotIn" => !labels.TryGetValue(e.Key, out var v) || !e.Values.Contains(v),
            "Exists" => labels.ContainsKey(e.Key),
            "DoesNotExist" => !labels.ContainsKey(e.Key),
            _ => false,
        });
}

/// <summary>Which pods' containers a policy applies to (podSelector, containerSelector, a namespaced policy's namespace).</summary>
public sealed record PolicyScope(string? Namespace, LabelSelector? Pods, LabelSelector? Containers)
{
    public bool Matches(Containers.PodInfo pod, string containerName) =>
        (Namespace is null || pod.Namespace == Namespace)
        && (Pods is null || Pods.Matches(pod.Labels))
        && (Containers is null || Containers.Matches(new Dictionary<string, string> { ["name"] = containerName }));
}
