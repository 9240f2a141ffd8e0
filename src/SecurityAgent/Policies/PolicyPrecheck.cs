using System.Diagnostics;
using SecurityAgent.Interop;

namespace SecurityAgent.Policies;

/// <summary>The start-up policies' check, run while the kernel verifies the policy programs: checking and encoding is pure
/// (YAML → plan → map bytes) and its first run is cold (~0.3 s of type loading and first calls, measured in issue 10), so
/// it need not wait for the programs. The manager takes a file's result when it applies the same text from the same
/// path; anything else (a file changed meanwhile, a new file, a failed precheck) is checked then, as without it.</summary>
public sealed class PolicyPrecheck
{
    private readonly Task<Dictionary<(string Source, string Text), (IReadOnlyList<ValidatedPolicy> Results, double Ms)>> _done;

    private PolicyPrecheck(Task<Dictionary<(string, string), (IReadOnlyList<ValidatedPolicy>, double)>> done) => _done = done;

    /// <summary>Reads the policy directory as <see cref="PolicyDirectory.Sync"/> does (a directory it would refuse is not
    /// read) and checks each file once <paramref name="validator"/> is there, on a thread of its own; then encodes the
    /// first plan (what the first load would run cold). <paramref name="plans"/> gets every plan checked.</summary>
    public static PolicyPrecheck Start(string dir, Task<PolicyValidator> validator, Action<IReadOnlyList<PolicyPlan>>? plans = null) =>
        new(validator.ContinueWith(t => Run(dir, t.Result, plans), CancellationToken.None,
            TaskContinuationOptions.OnlyOnRanToCompletion | TaskContinuationOptions.LongRunning, TaskScheduler.Default));

    private static Dictionary<(string, string), (IReadOnlyList<ValidatedPolicy>, double)> Run(string dir, PolicyValidator validator, Action<IReadOnlyList<PolicyPlan>>? plans)
    {
        var checkedFiles = new Dictionary<(string, string), (IReadOnlyList<ValidatedPolicy>, double)>();
        var full = Path.GetFullPath(dir);
        if (!Directory.Exists(full) || PolicyFiles.DirectoryProblem(full) is not null)
            return checkedFiles;
        var realDir = PosixFiles.RealPath(full) ?? full;
        foreach (var file in Directory.EnumerateFileSystemEntries(full).Where(PolicyFiles.IsPolicyFile).Order(StringComparer.Ordinal))
        {
            if (PolicyFiles.ReadTrusted(realDir, file).Text is not { } text)
                continue;
            long start = Stopwatch.GetTimestamp();
            var results = validator.ValidateText(file, text);
            checkedFiles[(file, text)] = (results, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        var all = checkedFiles.Values.SelectMany(c => c.Item1).Select(r => r.Plan).OfType<PolicyPlan>().ToList();
        plans?.Invoke(all);
        if (all.Count > 0)
            PolicyEngine.Encode(all[0]);
        return checkedFiles;
    }

    /// <summary>The precheck's result for this text from this source and how long it took, once (null when it was not
    /// checked or the precheck failed). Waits for the precheck: checking the same text beside it would only take its core.</summary>
    public (IReadOnlyList<ValidatedPolicy> Results, double Ms)? Take(string source, string text)
    {
        try
        {
            var done = _done.GetAwaiter().GetResult();
            lock (done)
                return done.Remove((source, text), out var r) ? r : null;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return null; // the manager checks the text itself and reports what is wrong with it
        }
    }

    /// <summary>Done (or failed) checking.</summary>
    public Task Completion => _done;
}
