namespace SecurityAgent.Tests.Support;

/// <summary>The team's shared corpus of peer policies (../shared beside the clone, or SECAGENT_SHARED_DIR). CI lays it
/// there; a fresh clone has none, and the tests that read it are then skipped with this reason, never failed.</summary>
public static class SharedCorpus
{
    public static string TetragonPolicies => Path.Combine(Repo.Shared, "peer-policies", "tetragon");

    public static bool Present => Directory.Exists(TetragonPolicies);

    public static string? SkipReason => Present ? null
        : $"the shared peer-policy corpus is absent ({TetragonPolicies}): set SECAGENT_SHARED_DIR or put the team's shared folder beside the clone";
}

/// <summary>A fact that reads the shared corpus: skipped, with the reason, where the corpus is absent.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class SharedCorpusFactAttribute : FactAttribute
{
    public SharedCorpusFactAttribute() => Skip = SharedCorpus.SkipReason;
}

/// <summary>A theory over the shared corpus: skipped, with the reason, where the corpus is absent.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class SharedCorpusTheoryAttribute : TheoryAttribute
{
    public SharedCorpusTheoryAttribute() => Skip = SharedCorpus.SkipReason;
}
