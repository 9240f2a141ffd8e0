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
    IReadOnlyList<Located<string>> NotImplemented) : PolicyNode(Pos, Path);

public abstract record HookSpec(SourcePos Pos, string Path, IReadOnlyList<ArgSpec> Args, IReadOnlyList<SelectorSpec> Selectors,
    Located<string>? Message, IReadOnlyList<string> Tags) : PolicyNode(Pos, Path);

public sealed record TracepointSpec(SourcePos Pos, string Path, Located<string> Subsystem, Located<string> Event, Located<bool>? Raw,
    IReadOnlyList<ArgSpec> Args, IReadOnlyList<SelectorSpec> Selectors, Located<string>? Message, IReadOnlyList<string> Tags)
    : HookSpec(Pos, Path, Args, Selectors, Message, Tags);

public sealed record KprobeSpec(SourcePos Pos, string Path, Located<string> Call, bool Syscall, Located<bool>? Return, ArgSpec? ReturnArg,
    Located<string>? ReturnArgAction, SourcePos? Ignore, IReadOnlyList<ArgSpec> Args, IReadOnlyList<SelectorSpec> Selectors,
    Located<string>? Message, IReadOnlyList<string> Tags) : HookSpec(Pos, Path, Args, Selectors, Message, Tags);

public sealed record LsmHookSpec(SourcePos Pos, string Path, Located<string> Hook,
    IReadOnlyList<ArgSpec> Args, IReadOnlyList<SelectorSpec> Selectors, Located<string>? Message, IReadOnlyList<string> Tags)
    : HookSpec(Pos, Path, Args, Selectors, Message, Tags);

public sealed record ArgSpec(SourcePos Pos, string Path, Located<int> Index, Located<string> Type, string? Label,
    Located<int>? SizeArgIndex, Located<bool>? ReturnCopy, Located<bool>? MaxData, Located<string>? Resolve) : PolicyNode(Pos, Path);

public sealed record SelectorSpec(SourcePos Pos, string Path,
    IReadOnlyList<ArgMatcherSpec> MatchArgs,
    IReadOnlyList<ArgMatcherSpec> MatchData,
    IReadOnlyList<ArgMatcherSpec> MatchReturnArgs,
    IReadOnlyList<PidMatcherSpec> MatchPids,
    IReadOnlyList<BinaryMatcherSpec> MatchBinaries,
    IReadOnlyList<BinaryMatcherSpec> MatchParentBinaries,
    IReadOnlyList<NamespaceMatcherSpec> MatchNamespaces,
    SourcePos? MatchNamespaceChanges,
    IReadOnlyList<CapabilityMatcherSpec> MatchCapabilities,
    SourcePos? MatchCapabilityChanges,
    IReadOnlyList<ActionSpec> MatchActions,
    SourcePos? MatchReturnActions) : PolicyNode(Pos, Path)
{
    /// <summary>Whether the selector has any condition at all (without one it matches every call of every process).</summary>
    public bool HasConditions => MatchArgs.Count + MatchData.Count + MatchReturnArgs.Count + MatchPids.Count + MatchBinaries.Count
        + MatchParentBinaries.Count + MatchNamespaces.Count + MatchCapabilities.Count > 0 || MatchNamespaceChanges is not null || MatchCapabilityChanges is not null;
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

public sealed record CapabilityMatcherSpec(SourcePos Pos, string Path, Located<string>? Type, Located<string> Operator,
    Located<bool>? IsNamespaceCapability, IReadOnlyList<Located<string>> Values) : PolicyNode(Pos, Path);

public sealed record ActionSpec(SourcePos Pos, string Path, Located<string> Action, Located<int>? ArgSig, Located<int>? ArgError,
    Located<int>? ArgFd, Located<int>? ArgName, Located<string>? ArgUrl, Located<string>? ArgFqdn, Located<string>? RateLimit,
    Located<string>? RateLimitScope, Located<bool>? KernelStackTrace, Located<bool>? UserStackTrace, Located<bool>? ImaHash) : PolicyNode(Pos, Path);

public sealed record ListSpec(SourcePos Pos, string Path, Located<string> Name, Located<string> Type, IReadOnlyList<Located<string>> Values,
    Located<string>? Pattern, Located<bool>? Validated) : PolicyNode(Pos, Path);

public sealed record OptionSpec(SourcePos Pos, string Path, Located<string> Name, Located<string>? Value) : PolicyNode(Pos, Path);

public sealed record LabelSelectorSpec(SourcePos Pos, string Path, IReadOnlyDictionary<string, string> MatchLabels,
    IReadOnlyList<LabelExpressionSpec> MatchExpressions) : PolicyNode(Pos, Path);

public sealed record LabelExpressionSpec(SourcePos Pos, string Path, string Key, Located<string> Operator, IReadOnlyList<string> Values)
    : PolicyNode(Pos, Path);
