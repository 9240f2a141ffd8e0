using System.Collections.Concurrent;
using System.Diagnostics;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;

namespace SecurityAgent.Fuzz;

/// <summary>One problem the fuzzer found, with the input that shows it.</summary>
public sealed record FuzzFinding(string Kind, long Index, string Mutations, string Detail, string Input);

/// <summary>What a run saw. Escapes, hangs and location-less diagnostics must all be 0.</summary>
public sealed class FuzzReport
{
    public long Inputs, Documents, Accepted, Errors, Warnings, Escapes, Hangs, Locationless, Disagreements;
    public double MaxMs;
    public ConcurrentQueue<FuzzFinding> Findings { get; } = new();
    public bool Clean => Escapes == 0 && Hangs == 0 && Locationless == 0 && Disagreements == 0;

    public override string ToString() =>
        $"{Inputs} inputs, {Documents} documents ({Accepted} compiled), {Errors} errors and {Warnings} warnings reported; "
        + $"escapes {Escapes}, hangs (> 1 s) {Hangs}, diagnostics without file:line:column {Locationless}, validator/compiler disagreements {Disagreements}; "
        + $"slowest input {MaxMs:F1} ms";
}

/// <summary>Runs mutated policies through the whole front end (bounded YAML, shape, typed model, semantic pass) for two
/// kernels (ours: tracepoints and cgroup hooks only; one with every mechanism), then the compiler, the plan explainer and
/// the plan's kernel encoding. Asserts: nothing throws, no input takes more than a second, every diagnostic names
/// file:line:column within the input, and what the validator compiled the compiler compiles too.</summary>
public static class PolicyFuzzer
{
    public static readonly TimeSpan HangLimit = TimeSpan.FromSeconds(1);

    /// <summary>The seeds: the repository's own policies, plus the shared peer corpus when it is there.</summary>
    public static List<string> Corpus(string repoRoot, string? sharedDir, out string sharedNote)
    {
        var files = Directory.GetFiles(Path.Combine(repoRoot, "policies"), "*.yaml").Order(StringComparer.Ordinal).ToList();
        var peers = sharedDir is null ? null : Path.Combine(sharedDir, "peer-policies", "tetragon");
        if (peers is not null && Directory.Exists(peers))
        {
            var more = Directory.GetFiles(peers).Where(f => f.EndsWith(".yaml") || f.EndsWith(".tmpl")).Order(StringComparer.Ordinal).ToList();
            files.AddRange(more);
            sharedNote = $"shared corpus: {more.Count} peer policies from {peers}";
        }
        else
            sharedNote = $"shared corpus: skipped, not found ({peers ?? "no SECAGENT_SHARED_DIR and no ../shared"}); seeds are the repository's policies only";
        return files.Select(File.ReadAllText).ToList();
    }

    /// <summary>A kernel to check for; <paramref name="forOtherKernel"/>: as `--for-kernel` does (engine gaps are notes,
    /// plans are explained, never encoded).</summary>
    private sealed class Target(KernelFeatures features, bool forOtherKernel = false)
    {
        public PolicyValidator Validator { get; } = new(features, Formats) { ForOtherKernel = forOtherKernel };
        public PolicyCompiler? Compiler { get; } = forOtherKernel ? null : new(features, Formats);
    }

    private static readonly KernelFeatures OurKernel = KernelFeatures.Everything with
    {
        Mechanisms = KernelFeatures.Everything.Mechanisms.ToDictionary(m => m.Key,
            m => m.Key is Mechanism.Lsm or Mechanism.Fentry or Mechanism.Kprobe ? Availability.No("not on this kernel") : m.Value),
    };

    /// <summary>Tracepoint formats as a kernel has them: a few real layouts, a generic one for other syscalls.</summary>
    public static TracepointFormat? Formats(string sub, string ev)
    {
        if (!TracepointFormat.IsName(sub) || !TracepointFormat.IsName(ev)) return null;
        var fields = new List<TracepointField>
        {
            new("common_type", "unsigned short", 0, 2, false), new("common_flags", "unsigned char", 2, 1, false),
            new("common_preempt_count", "unsigned char", 3, 1, false), new("common_pid", "int", 4, 4, true),
        };
        (string, string)[] args;
        if (sub == "raw_syscalls" && ev == "sys_enter")
        {
            fields.Add(new("id", "long", 8, 8, true));
            fields.Add(new("args", "unsigned long", 16, 48, false));
            return new TracepointFormat(sub, ev, 1, fields);
        }
        if (sub != "syscalls" || !ev.StartsWith("sys_enter_")) return null;
        args = ev["sys_enter_".Length..] switch
        {
            "openat" => [("int", "dfd"), ("const char *", "filename"), ("int", "flags"), ("umode_t", "mode")],
            "execve" => [("const char *", "filename"), ("const char *const *", "argv"), ("const char *const *", "envp")],
            "connect" => [("int", "fd"), ("struct sockaddr *", "uservaddr"), ("int", "addrlen")],
            "nonexistent" => [],
            _ => [("const char *", "a0"), ("long", "a1"), ("unsigned long", "a2"), ("int", "a3"), ("long", "a4"), ("long", "a5")],
        };
        if (args.Length == 0) return null;
        fields.Add(new("__syscall_nr", "int", 8, 4, true));
        for (int i = 0; i < args.Length; i++)
            fields.Add(new(args[i].Item2, args[i].Item1, 16 + 8 * i, 8, false));
        return new TracepointFormat(sub, ev, 1, fields);
    }

    /// <summary>Inputs [first, first + count) of the seed's sequence, on <paramref name="threads"/> threads. A run that
    /// hangs for 10 s writes the input to <paramref name="findingsDir"/> and ends the process (nothing else can stop it).</summary>
    public static FuzzReport Run(IReadOnlyList<string> corpus, long count, ulong seed, int threads, string? findingsDir = null, Action<FuzzReport>? progress = null)
    {
        var report = new FuzzReport();
        var targets = new[] { new Target(OurKernel), new Target(KernelFeatures.Everything), new Target(KernelFeatures.Everything, forOtherKernel: true) };
        long next = -1;
        var started = new long[threads];
        var current = new string?[threads];
        using var done = new ManualResetEventSlim();
        var watchdog = new Thread(() =>
        {
            while (!done.Wait(1000))
                for (int t = 0; t < threads; t++)
                    if (Volatile.Read(ref started[t]) is var s and > 0 && Stopwatch.GetElapsedTime(s) > TimeSpan.FromSeconds(10))
                    {
                        Save(findingsDir, new FuzzFinding("hang", -1, "", "did not finish in 10 s", current[t] ?? ""));
                        Console.Error.WriteLine("fuzz: an input did not finish in 10 s; it is saved in " + findingsDir);
                        Environment.Exit(3);
                    }
        }) { IsBackground = true };
        watchdog.Start();
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            long i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                var input = new Mutator(corpus, seed * 1_000_003UL + (ulong)i).Next(out var mutations);
                current[t] = input;
                Volatile.Write(ref started[t], Stopwatch.GetTimestamp());
                long start = started[t];
                foreach (var target in targets)
                    Check(input, i, mutations, target.Validator, target.Compiler, report, findingsDir);
                var ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                Volatile.Write(ref started[t], 0);
                if (ms > HangLimit.TotalMilliseconds)
                {
                    Interlocked.Increment(ref report.Hangs);
                    Record(report, findingsDir, new FuzzFinding("hang", i, mutations, $"{ms:F0} ms", input));
                }
                lock (report) report.MaxMs = Math.Max(report.MaxMs, ms);
                if (Interlocked.Increment(ref report.Inputs) % 100_000 == 0) progress?.Invoke(report);
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        done.Set();
        return report;
    }

    private static void Check(string input, long index, string mutations, PolicyValidator validator, PolicyCompiler? compiler, FuzzReport report, string? findingsDir)
    {
        int lines = input.Replace("\r\n", "\n").Count(c => c is '\n' or '\r') + 1; // YAML's line breaks: \r\n, \r, \n
        try
        {
            foreach (var r in validator.ValidateText("fuzz.yaml", input))
            {
                Interlocked.Increment(ref report.Documents);
                Interlocked.Add(ref report.Errors, r.Diagnostics.Count);
                Interlocked.Add(ref report.Warnings, r.Warnings.Count);
                foreach (var d in r.Diagnostics.Concat(r.Warnings).Concat(r.Notes))
                    if (d.File != "fuzz.yaml" || d.Line < 1 || d.Column < 1 || d.Line > lines + 1)
                    {
                        Interlocked.Increment(ref report.Locationless);
                        Record(report, findingsDir, new FuzzFinding("location", index, mutations, d.ToString(), input));
                    }
                if (!r.Ok) continue;
                if (compiler is null)
                {
                    if (r.Plan is { } other) PlanExplainer.Explain(other);
                    continue;
                }
                PolicyPlan plan;
                try { plan = compiler.Compile(r); }
                catch (PolicyCompileException e)
                {
                    if (r.Plan is not null)
                    {
                        Interlocked.Increment(ref report.Disagreements);
                        Record(report, findingsDir, new FuzzFinding("disagreement", index, mutations, e.Message, input));
                    }
                    continue;
                }
                Interlocked.Increment(ref report.Accepted);
                PlanExplainer.Explain(plan);
                PolicyEncoding.ValueCounts(plan);
                try { PolicyEncoding.Alone(plan); }
                catch (PolicyLimitException) { } // refused by name and limit at load, as documented
            }
        }
        catch (Exception e)
        {
            Interlocked.Increment(ref report.Escapes);
            Record(report, findingsDir, new FuzzFinding("escape", index, mutations, e.ToString(), input));
        }
    }

    private static void Record(FuzzReport report, string? dir, FuzzFinding f)
    {
        if (report.Findings.Count < 50) report.Findings.Enqueue(f);
        if (report.Findings.Count <= 50) Save(dir, f);
    }

    private static void Save(string? dir, FuzzFinding f)
    {
        if (dir is null) return;
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, $"{f.Kind}-{f.Index}.yaml"), $"# {f.Kind} (input {f.Index}; mutations: {f.Mutations})\n# {f.Detail.Split('\n')[0]}\n{f.Input}");
    }
}
