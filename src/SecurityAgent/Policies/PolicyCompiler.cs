using SecurityAgent.Kernel;

namespace SecurityAgent.Policies;

/// <summary>A policy that validated but cannot be compiled for this kernel. Carries diagnostics like the validator.</summary>
public sealed class PolicyCompileException(IReadOnlyList<PolicyDiagnostic> diagnostics)
    : Exception(string.Join(Environment.NewLine, diagnostics))
{
    public IReadOnlyList<PolicyDiagnostic> Diagnostics { get; } = diagnostics;
}

/// <summary>Pure function from a validated policy to a <see cref="PolicyPlan"/> for a kernel: no kernel calls. It runs
/// the same <see cref="SemanticPass"/> as the validator, with this kernel's features and tracepoint formats, so a
/// policy validated for this kernel always compiles, and one refused is refused with the validator's message.</summary>
public sealed class PolicyCompiler(KernelFeatures features, Func<string, string, TracepointFormat?> formats, SyscallTable? syscalls = null)
{
    private readonly SyscallTable _syscalls = syscalls ?? SyscallTable.X86_64;

    /// <summary>This node's tracefs available_filter_functions, which generated_ftrace lists are resolved from.</summary>
    public string FilterFunctions { get; init; } = FtraceFunctions.DefaultPath;

    public static Func<string, string, TracepointFormat?> TraceFsFormats(string tracefs = KernelMounts.TraceFs) =>
        (subsys, ev) => TracepointFormat.TryRead(tracefs, subsys, ev);

    public PolicyPlan Compile(ValidatedPolicy policy)
    {
        if (!policy.Ok)
            throw new PolicyCompileException(policy.Diagnostics);
        var d = new DiagnosticBag(policy.File);
        var plan = new SemanticPass(features, formats, _syscalls, FilterFunctions).Run(policy.Policy!, policy.File, d);
        if (d.HasErrors || plan is null)
            throw new PolicyCompileException(d.Errors);
        return plan;
    }
}
