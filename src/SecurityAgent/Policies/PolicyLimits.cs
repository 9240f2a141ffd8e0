namespace SecurityAgent.Policies;

/// <summary>Bounds on untrusted policy input, the same for every source (directory, API, CRD). Each is far above
/// what a real policy needs and low enough that no input can exhaust the agent's memory, stack or time.</summary>
public static class PolicyLimits
{
    /// <summary>Bytes per policy file, API request or CRD object.</summary>
    public const int MaxBytes = 1 << 20;

    /// <summary>Nesting of mappings and sequences (a policy needs about 8).</summary>
    public const int MaxDepth = 64;

    /// <summary>YAML nodes per document, aliases counted as the nodes they expand to.</summary>
    public const int MaxNodes = 200_000;

    /// <summary>Characters in one scalar (the kernel compares at most 255 bytes of a string).</summary>
    public const int MaxScalarLength = 4096;

    /// <summary>Diagnostics kept per document and severity; the rest are counted.</summary>
    public const int MaxDiagnostics = 100;

    /// <summary>Field names longer than this get no "did you mean" suggestion.</summary>
    public const int MaxSuggestedNameLength = 64;
}
