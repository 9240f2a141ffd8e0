using SecurityAgent.Processes;

namespace SecurityAgent.Policies;

/// <summary>matchParentBinaries, evaluated on the enriched event (the kernel does not know ancestry).</summary>
public static class ParentRules
{
    public static bool Match(IReadOnlyList<ParentBinaryRule> rules, ProcessInfo? parent)
    {
        var binary = parent?.Binary ?? "";
        return rules.All(r => r.Operator switch
        {
            "In" => r.Values.Contains(binary),
            "NotIn" => !r.Values.Contains(binary),
            "Prefix" => r.Values.Any(binary.StartsWith),
            "NotPrefix" => !r.Values.Any(binary.StartsWith),
            "Postfix" => r.Values.Any(binary.EndsWith),
            "NotPostfix" => !r.Values.Any(binary.EndsWith),
            _ => false,
        });
    }
}
