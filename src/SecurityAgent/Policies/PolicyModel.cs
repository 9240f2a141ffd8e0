namespace SecurityAgent.Policies;

// The typed form of a tracing policy (schemas/tracingpolicy.schema.json), read from YAML by PolicyReader. Every
// node carries its source position and field path, so each later stage reports file:line:column and the field.

/// <summary>A scalar from the policy, with where it was written.</summary>
public sealed record Located<T>(T Value, SourcePos Pos, string Path);

public abstract record PolicyNode(SourcePos Pos, string Path);

public sealed record TracingPolicy(SourcePos Pos, string Path, Located<string> ApiVersion, Located<string> Kind, PolicyMetadata Metadata, PolicySpec Spec)
    : PolicyNode(Pos, Path)
{
    public bool Namespaced => Kind.Value == "TracingPolicyNamespaced";
    /// <summary>The namespace a TracingPolicyNamespaced applies to (metadata.namespace, else "default"); null for a cluster-wide policy.</summary>
    public string? Namespace => Namespaced ? Metadata.Namespace?.Value ?? "default" : null;
}

public sealed record PolicyMetadata(SourcePos Pos, string Path, Located<string> Name, Located<string>? Namespace,
    IReadOnlyDictionary<string, string> Labels, IReadOnlyDictionary<string, string> Annotations) : PolicyNode(Pos, Path);

public sealed record PolicySpec(SourcePos Pos, string Path, IReadOnlyList<HookSpec> Hooks, IReadOnlyList<ListSpec> Lists,
    IReadOnlyList<OptionSpec> Options, LabelSelectorSpec? PodSelector, LabelSelectorSpec? ContainerSelector,
    IReadOnlyList<EnforcerSpec> Enforcers, Located<bool>? Loader, IReadOnlyList<MacroSpec> Macros) : PolicyNode(Pos, Path);

/// <summary>spec.selectorsMacros entry: a named selector whose fields selectors take with `macros: [NAME]`.</summary>
public sealed record MacroSpec(Located<string> Name, SelectorSpec Selector);

/// <summary>spec.enforcers entry: the calls a NotifyEnforcer action denies.</summary>
public sealed record EnforcerSpec(SourcePos Pos, string Path, IReadOnlyList<Located<string>> Calls) : PolicyNode(Pos, Path);

public abstract record HookSpec(SourcePos Pos, string Path, IReadOnlyList<ArgSpec> Args, IReadOnlyList<SelectorSpec> Selectors,
    Located<string>? Message, IReadOnlyList<string> Tags) : PolicyNode(Pos, Path);

public sealed record TracepointSpec(SourcePos Pos, string Path, Located<string> Subsystem, Located<string> Event, Located<bool>? Raw,
    IReadOnlyList<ArgSpec> Args, IReadOnlyList<SelectorSpec> Selectors, Located<string>? Message, IReadOnlyList<string> Tags)
    : HookSpec(Pos, Path, Args, Selectors, Message, Tags);

public sealed record KprobeSpec(SourcePos Pos, string Path, Located<string> Call, bool Syscall, Located<bool>? Return, ArgSpec? ReturnArg,
    Located<string>? ReturnArgAction, Located<bool>? IgnoreCallNotFound, IReadOnlyList<ArgSpec> Args, IReadOnlyList<SelectorSpec> Selectors,
    Located<string>? Message, IReadOnlyList<string> Tags) : HookSpec(Pos, Path, Args, Selectors, Message, Tags);

/// <summary>spec.uprobes entry: a function of a user-space binary, by symbol or offset.</summary>
public sealed record UprobeSpec(SourcePos Pos, string Path, Located<string> Binary, IReadOnlyList<Located<string>> Symbols, IReadOnlyList<Located<int>> Offsets,
    IReadOnlyList<Located<int>> Addrs, IReadOnlyList<Located<int>> RefCtrOffsets, Located<string>? BtfPath, Located<bool>? Return, ArgSpec? ReturnArg, IReadOnlyList<ArgSpec> Args, IReadOnlyList<SelectorSpec> Selectors, Located<string>? Message, IReadOnlyList<string> Tags)
    : HookSpec(Pos, Path, Args, Selectors, Message, Tags);

/// <summary>spec.usdts entry: a statically defined probe of a user-space binary.</summary>
public sealed record UsdtSpec(SourcePos Pos, string Path, Located<string> Binary, Located<string> Provider, Located<string> Name, Located<string>? BtfPath,
    IReadOnlyList<ArgSpec> Args, IReadOnlyList<SelectorSpec> Selectors, Located<string>? Message, IReadOnlyList<string> Tags)
    : HookSpec(Pos, Path, Args, Selectors, Message, Tags);

public sealed record LsmHookSpec(SourcePos Pos, string Path, Located<string> Hook,
    IReadOnlyList<ArgSpec> Args, IReadOnlyList<SelectorSpec> Selectors, Located<string>? Message, IReadOnlyList<string> Tags)
    : HookSpec(Pos, Path, Args, Selectors, Message, Tags);

public sealed record ArgSpec(SourcePos Pos, string Path, Located<int> Index, Located<string> Type, string? Label,
    Located<int>? SizeArgIndex, Located<bool>? ReturnCopy, Located<bool>? MaxData, Located<string>? Resolve) : PolicyNode(Pos, Path);

public sealed record SelectorSpec(SourcePos Pos, string Path, Located<string>? Label, IReadOnlyList<Located<string>> Macros,
    IReadOnlyList<ArgMatcherSpec> MatchArgs,
    IReadOnlyList<ArgMatcherSpec> MatchData,
    IReadOnlyList<ArgMatcherSpec> MatchReturnArgs,
    IReadOnlyList<PidMatcherSpec> MatchPids,
    IReadOnlyList<BinaryMatcherSpec> MatchBinaries,
    IReadOnlyList<BinaryMatcherSpec> MatchParentBinaries,
    IReadOnlyList<NamespaceMatcherSpec> MatchNamespaces,
    IReadOnlyList<NamespaceChangeSpec> MatchNamespaceChanges,
    IReadOnlyList<CapabilityMatcherSpec> MatchCapabilities,
    IReadOnlyList<CapabilityMatcherSpec> MatchCapabilityChanges,
    IReadOnlyList<ActionSpec> MatchActions,
    IReadOnlyList<ActionSpec> MatchReturnActions) : PolicyNode(Pos, Path)
{
    /// <summary>Whether the selector has any condition at all (without one it matches every call of every process).</summary>
    public bool HasConditions => MatchArgs.Count + MatchData.Count + MatchReturnArgs.Count + MatchPids.Count + MatchBinaries.Count
        + MatchParentBinaries.Count + MatchNamespaces.Count + MatchCapabilities.Count + MatchNamespaceChanges.Count + MatchCapabilityChanges.Count > 0;
}

/// <summary>matchArgs (and matchData / matchReturnArgs) entry.</summary>
public sealed record ArgMatcherSpec(SourcePos Pos, string Path, Located<int>? Index, IReadOnlyList<Located<int>> Args,
    Located<string> Operator, IReadOnlyList<Located<string>> Values) : PolicyNode(Pos, Path);

public sealed record PidMatcherSpec(SourcePos Pos, string Path, Located<string> Operator, IReadOnlyList<Located<string>> Values,
    bool IsNamespacePid, bool FollowForks) : PolicyNode(Pos, Path);

/// <summary>matchBinaries and matchParentBinaries entry.</summary>
public sealed record BinaryMatcherSpec(SourcePos Pos, string Path, Located<string> Operator, IReadOnlyList<Located<string>> Values,
    Located<bool>? FollowChildren) : PolicyNode(Pos, Path);

public sealed record NamespaceMatcherSpec(SourcePos Pos, string Path, Located<string> Namespace, Located<string> Operator,
    IReadOnlyList<Located<string>> Values) : PolicyNode(Pos, Path);

/// <summary>matchNamespaceChanges entry: the namespaces whose change (since exec) matches.</summary>
public sealed record NamespaceChangeSpec(SourcePos Pos, string Path, Located<string> Operator, IReadOnlyList<Located<string>> Values) : PolicyNode(Pos, Path);

public sealed record CapabilityMatcherSpec(SourcePos Pos, string Path, Located<string>? Type, Located<string> Operator,
    Located<bool>? IsNamespaceCapability, IReadOnlyList<Located<string>> Values) : PolicyNode(Pos, Path);

public sealed record ActionSpec(SourcePos Pos, string Path, Located<string> Action, Located<int>? ArgSig, Located<int>? ArgError,
    Located<int>? ArgFd, Located<int>? ArgName, Located<string>? ArgUrl, Located<string>? ArgFqdn, Located<int>? ArgSock, Located<int>? ArgIndex,
    Located<int>? ArgValue, Located<string>? RateLimit,
    Located<string>? RateLimitScope, Located<bool>? KernelStackTrace, Located<bool>? UserStackTrace, Located<bool>? ImaHash) : PolicyNode(Pos, Path);

public sealed record ListSpec(SourcePos Pos, string Path, Located<string> Name, Located<string> Type, IReadOnlyList<Located<string>> Values,
    Located<string>? Pattern, Located<bool>? Validated) : PolicyNode(Pos, Path);

public sealed record OptionSpec(SourcePos Pos, string Path, Located<string> Name, Located<string>? Value) : PolicyNode(Pos, Path);

public sealed record LabelSelectorSpec(SourcePos Pos, string Path, IReadOnlyDictionary<string, string> MatchLabels,
    IReadOnlyList<LabelExpressionSpec> MatchExpressions) : PolicyNode(Pos, Path);

public sealed record LabelExpressionSpec(SourcePos Pos, string Path, string Key, Located<string> Operator, IReadOnlyList<string> Values)
    : PolicyNode(Pos, Path);
