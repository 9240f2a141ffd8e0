using SecurityAgent.Kernel;

namespace SecurityAgent.Policies;

/// <summary>A policy's identity: its name, and for a TracingPolicyNamespaced its namespace (so a namespace's policy
/// can never take the name of a cluster-wide one).</summary>
public sealed record PolicyKey(string? Namespace, string Name)
{
    public override string ToString() => Namespace is null ? Name : $"{Namespace}/{Name}";
}

/// <summary>The outcome for one policy document of a source. <see cref="Diagnostics"/> are the errors (a policy loads
/// only without any); <see cref="Warnings"/> do not stop it. <see cref="Plan"/> is set when the validator knew this
/// kernel's tracepoint formats and nothing was wrong.</summary>
public sealed record ValidatedPolicy(string File, string? Name, string? Kind, TracingPolicy? Policy, IReadOnlyList<PolicyDiagnostic> Diagnostics)
{
    public IReadOnlyList<PolicyDiagnostic> Warnings { get; init; } = [];
    /// <summary>What changes nothing here but is worth knowing (an option without effect; with
    /// <see cref="PolicyValidator.ForOtherKernel"/>, what this build's engine does not carry yet).</summary>
    public IReadOnlyList<PolicyDiagnostic> Notes { get; init; } = [];
    public PolicyPlan? Plan { get; init; }
    /// <summary>The document's content (not its layout): an unchanged policy is not reloaded.</summary>
    public string? Content { get; init; }
    public string? Namespace { get; init; }

    /// <summary>No errors, and a policy (an empty file yields an entry with only a warning).</summary>
    public bool Ok => Diagnostics.Count == 0 && Policy is not null;
    public PolicyKey? Key => Name is null ? null : new(Namespace, Name);
}

/// <summary>Checks tracing policies: bounded YAML (<see cref="YamlDocuments"/>), the shape from the JSON schema
/// (<see cref="PolicySchema"/>), the typed model (<see cref="PolicyReader"/>), then the <see cref="SemanticPass"/> with this
/// kernel's features. Every problem names file:line:column and the field; nothing a document contains can make this
/// throw: an unexpected failure is a diagnostic of that document.</summary>
public sealed class PolicyValidator(KernelFeatures features, Func<string, string, TracepointFormat?>? formats, SyscallTable? syscalls = null)
{
    public const int MaxSelectors = SelectorCompiler.MaxSelectors;

    private readonly SyscallTable _syscalls = syscalls ?? SyscallTable.X86_64;

    /// <summary>Checking for another kernel (`--for-kernel`), not for loading here: what this build's engine does not
    /// carry yet is a note rather than an error, so the policy's language and mechanisms are judged on their own.</summary>
    public bool ForOtherKernel { get; init; }

    /// <summary>This node's tracefs available_filter_functions (generated_ftrace lists); not read for another kernel.</summary>
    public string FilterFunctions { get; init; } = FtraceFunctions.DefaultPath;

    /// <param name="tracefs">Where tracepoint formats are read; null (or not mounted): tracepoint layouts are not checked.</param>
    public PolicyValidator(KernelFeatures features, string? tracefs = KernelMounts.TraceFs)
        : this(features, tracefs is not null && Directory.Exists(Path.Combine(tracefs, "events")) ? PolicyCompiler.TraceFsFormats(tracefs) : null) { }

    public IReadOnlyList<ValidatedPolicy> ValidateFile(string path)
    {
        var read = PolicyFiles.ReadAny(path);
        return read.Text is null ? [Refused(path, read.Refusal!)] : ValidateText(path, read.Text);
    }

    /// <summary>A source that could not be read at all: one diagnostic at its start.</summary>
    public static ValidatedPolicy Refused(string file, string reason) =>
        new(file, null, null, null, [new PolicyDiagnostic(file, SourcePos.Start, "", reason)]);

    public IReadOnlyList<ValidatedPolicy> ValidateText(string file, string text)
    {
        var (docs, syntax) = YamlDocuments.Parse(file, text);
        var results = syntax.Select(e => new ValidatedPolicy(file, null, null, null, [e])).ToList();
        foreach (var doc in docs)
            results.Add(ValidateDocument(file, doc));
        if (results.Count == 0)
            results.Add(new ValidatedPolicy(file, null, null, null, [])
            {
                Warnings = [new PolicyDiagnostic(file, SourcePos.Start, "", "the file holds no policy (it is empty or only comments)", Severity.Warning)],
            });
        return results;
    }

    private ValidatedPolicy ValidateDocument(string file, YamlDocument doc)
    {
        var d = new DiagnosticBag(file) { GapsAreNotes = ForOtherKernel };
        var (name, kind, ns) = Identity(doc.Root);
        TracingPolicy? policy = null;
        PolicyPlan? plan = null;
        string? content = null;
        try
        {
            content = doc.Content;
            if (PolicySchema.Check(doc.Root, d))
            {
                policy = PolicyReader.Read(doc, d);
                plan = new SemanticPass(features, formats, _syscalls, ForOtherKernel ? null : FilterFunctions).Run(policy, file, d);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            d.Error(doc.Root.Pos, "", $"internal error while checking this policy ({e.GetType().Name}: {e.Message}); please report it");
        }
        return new ValidatedPolicy(file, name, kind, d.HasErrors ? null : policy, d.Errors)
        {
            Warnings = d.Warnings, Notes = d.Notes, Plan = plan, Content = content, Namespace = ns,
        };
    }

    /// <summary>Name, kind and namespace as written, even when the rest of the document is broken: a broken version
    /// of a loaded policy must still be recognised as that policy.</summary>
    private static (string? Name, string? Kind, string? Namespace) Identity(YNode root)
    {
        if (root is not YMapping m) return (null, null, null);
        var meta = m.Entry("metadata")?.Value as YMapping;
        string? Str(YMapping? map, string key) => map?.Entry(key)?.Value is YScalar { IsNull: false } s ? s.Value : null;
        var kind = Str(m, "kind");
        var ns = kind == "TracingPolicyNamespaced" ? Str(meta, "namespace") ?? "default" : null;
        return (Str(meta, "name"), kind, ns);
    }
}
