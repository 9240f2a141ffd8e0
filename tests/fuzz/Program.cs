using SecurityAgent.Fuzz;

// `make fuzz N=1000000 [SEED=1] [THREADS=2]`: N mutated policies through the front end; non-zero exit on any finding.
long count = 100_000;
ulong seed = 1;
int threads = Environment.ProcessorCount;
for (int i = 0; i + 1 < args.Length; i += 2)
    switch (args[i])
    {
        case "--count": count = long.Parse(args[i + 1]); break;
        case "--seed": seed = ulong.Parse(args[i + 1]); break;
        case "--threads": threads = int.Parse(args[i + 1]); break;
        default: Console.Error.WriteLine($"unknown option {args[i]} (--count N --seed S --threads T)"); return 2;
    }
var root = AppContext.BaseDirectory;
while (!File.Exists(Path.Combine(root, "SecurityAgent.sln"))) root = Path.GetDirectoryName(root.TrimEnd('/')) ?? throw new DirectoryNotFoundException("repository root");
var shared = Environment.GetEnvironmentVariable("SECAGENT_SHARED_DIR") is { Length: > 0 } s ? s : Path.GetFullPath(Path.Combine(root, "..", "shared"));
var corpus = PolicyFuzzer.Corpus(root, shared, out var note);
var findings = Path.Combine(root, "build", "fuzz", "findings");
Console.WriteLine($"fuzz: {count} inputs, seed {seed}, {threads} threads, {corpus.Count} seed policies; {note}");
var started = DateTime.UtcNow;
var report = PolicyFuzzer.Run(corpus, count, seed, threads, findings, r => Console.WriteLine($"  {r.Inputs} inputs, {(DateTime.UtcNow - started).TotalSeconds:F0} s"));
Console.WriteLine($"fuzz: {report} in {(DateTime.UtcNow - started).TotalSeconds:F0} s");
foreach (var f in report.Findings.Take(10))
    Console.WriteLine($"  {f.Kind} at input {f.Index} ({f.Mutations}): {f.Detail.Split('\n')[0]}");
if (!report.Clean) Console.WriteLine($"fuzz: findings saved in {findings}");
return report.Clean ? 0 : 1;
