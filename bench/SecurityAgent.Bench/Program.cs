using System.Diagnostics;
using System.Text;
using System.Text.Json;
using SecurityAgent.Bench;

// make bench / make bench-quick: every configuration measured interleaved (A B C ... A B C ...), as ratios to
// the baseline measured in the same run. Writes bench/results/latest.json and latest.md. Needs root.
bool quick = args.Contains("--quick");
var repo = FindRepo();
var paths = new Paths(repo);
int reps = quick ? 3 : 5;
long opens = quick ? 100_000 : 300_000, forks = quick ? 500 : 2_000, connects = quick ? 2_000 : 10_000;

var work = Directory.CreateTempSubdirectory("secagent-bench-").FullName;
Directory.CreateDirectory(Path.Combine(work, "other"));
Directory.CreateDirectory(Path.Combine(work, "watched"));
var otherFile = Path.Combine(work, "other", "f");
var watchedFile = Path.Combine(work, "watched", "f");
File.WriteAllText(otherFile, "x");
File.WriteAllText(watchedFile, "x");
var openloop = paths.Tool("openloop");

string FilePolicy(string prefix) => $"""
    apiVersion: securityagent.io/v1alpha1
    kind: TracingPolicy
    metadata:
      name: bench-files
    spec:
      options:
      - name: policy-mode
        value: monitor
      kprobes:
      - call: sys_openat
        syscall: true
        args:
        - index: 1
          type: string
        selectors:
        - matchArgs:
          - index: 1
            operator: Prefix
            values: ["{prefix}"]
    """;

var workloads = new (string Name, string Description, long Ops, Func<long> Run)[]
{
    ("open_nomatch", $"open+close of a file no rule watches ({opens} times)", opens, () => Long(Host.Run(openloop, otherFile, opens.ToString()).Stdout)),
    ("open_match", $"open+close of the watched file ({opens} times)", opens, () => Long(Host.Run(openloop, watchedFile, opens.ToString()).Stdout)),
    ("fork_exec", $"fork+exec of a tiny binary ({forks} times)", forks, () => Long(Host.Run(paths.Tool("forkexec"), paths.Tool("tiny"), forks.ToString()).Stdout)),
    ("tcp_connect", $"TCP connect to a local listener ({connects} times)", connects, () => Long(Host.Run(paths.Tool("connectloop"), connects.ToString()).Stdout)),
};

var configs = new Config[]
{
    new Baseline(),
    new Agent(paths, "agent_lifecycle", "agent, process lifecycle only", null),
    new Agent(paths, "agent_policy_nomatch", "agent + openat policy whose selectors match nothing (filtered in the kernel)", FilePolicy("/nonexistent-bench-path/")),
    new Agent(paths, "agent_policy_match", "agent + openat policy matching every workload open, events to a JSON file", FilePolicy(work + "/")),
    new Agent(paths, "agent_userspace_filter", "agent + the no-match policy, every openat sent to user space and filtered there (--debug-userspace-filter)", FilePolicy("/nonexistent-bench-path/"), userSpaceFilter: true),
    new Auditd(Path.Combine(work, "watched")),
    new Bpftrace(watchedFile),
};

EnsurePeers();
try
{
var samples = new Dictionary<(string Config, string Workload), List<Sample>>();
var sw = Stopwatch.StartNew();
for (int rep = 0; rep < reps; rep++)
{
    // Interleaved: every configuration once per repetition, the order rotated between repetitions.
    foreach (var cfg in configs.Skip(rep % configs.Length).Concat(configs.Take(rep % configs.Length)))
    {
        try
        {
            cfg.Start();
            foreach (var w in workloads)
            {
                var before = cfg.Read();
                var t = Stopwatch.StartNew();
                long done = w.Run();
                var elapsed = t.Elapsed.TotalSeconds;
                var after = cfg.Read();
                if (done != w.Ops) Console.Error.WriteLine($"warning: {cfg.Name}/{w.Name} completed {done} of {w.Ops} ops");
                var list = samples.TryGetValue((cfg.Name, w.Name), out var l) ? l : samples[(cfg.Name, w.Name)] = [];
                list.Add(new Sample(done / elapsed, done, after.CpuMs - before.CpuMs, after.Delivered - before.Delivered, after.Lost - before.Lost, cfg.PeakRssMb()));
            }
        }
        finally
        {
            cfg.Dispose();
        }
    }
    Console.Error.WriteLine($"repetition {rep + 1}/{reps} done ({sw.Elapsed.TotalSeconds:F0} s)");
}

var extras = MeasureExtras(paths, work, FilePolicy(work + "/"), quick);
Report.Write(repo, quick, reps, workloads.Select(w => (w.Name, w.Description)).ToList(),
    configs.Select(c => (c.Name, c.Description)).ToList(), samples, extras);
return 0;
}
finally
{
    Directory.Delete(work, true); // also when a configuration failed
}

static long Long(string s) => long.TryParse(s.Trim(), out var v) ? v : 0;

static string FindRepo()
{
    for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        if (File.Exists(Path.Combine(d.FullName, "SecurityAgent.sln"))) return d.FullName;
    throw new DirectoryNotFoundException("SecurityAgent.sln");
}

static void EnsurePeers()
{
    var missing = new[] { ("auditctl", "auditd"), ("bpftrace", "bpftrace") }.Where(t => Host.Run("sh", "-c", $"command -v {t.Item1}").Code != 0).Select(t => t.Item2).ToList();
    if (missing.Count == 0) return;
    Console.Error.WriteLine("installing " + string.Join(" ", missing));
    Host.Run("sh", "-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq " + string.Join(" ", missing) + " >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq " + string.Join(" ", missing) + ")");
    // Debian may start auditd on install: a daemon outside its own configuration would skew every baseline.
    Host.Run("sh", "-c", "auditctl -D >/dev/null 2>&1; auditctl -e 0 >/dev/null 2>&1; [ -f /var/run/auditd.pid ] && kill $(cat /var/run/auditd.pid) 2>/dev/null; true");
}

static Dictionary<string, object> MeasureExtras(Paths paths, string work, string matchAll, bool quick)
{
    var extras = new Dictionary<string, object>();
    // Start-up: process start to "Agent ready" (programs attached, /proc scanned).
    var ready = new List<double>();
    for (int i = 0; i < (quick ? 2 : 5); i++)
    {
        using var a = new Agent(paths, "startup", "", null);
        a.Start();
        ready.Add(a.ReadyMs);
    }
    extras["startup_ms_to_attached"] = Median(ready);

    // Policy add to enforcement: write a Sigkill policy, run the victim until it dies.
    var victim = Path.Combine(work, "victim");
    File.Copy("/usr/bin/cat", victim, true);
    Host.Run("chmod", "755", victim);
    var latencies = new List<double>();
    for (int i = 0; i < (quick ? 2 : 5); i++)
    {
        var dir = Directory.CreateTempSubdirectory("secagent-bench-hot-").FullName;
        Directory.CreateDirectory(Path.Combine(dir, "p"));
        using var agent = new Host.Background("dotnet", [paths.AgentDll, "run", "--policy-dir", Path.Combine(dir, "p"), "--export-file", Path.Combine(dir, "e.json"), "--api-socket", Path.Combine(dir, "agent.sock")]);
        agent.WaitFor(b => b.Stderr.Contains("Agent ready"), TimeSpan.FromSeconds(30));
        var t = Stopwatch.StartNew();
        File.WriteAllText(Path.Combine(dir, "p", "kill.yaml"), $"""
            apiVersion: securityagent.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: bench-kill
            spec:
              tracepoints:
              - subsystem: syscalls
                event: sys_enter_openat
                args:
                - index: 6
                  type: string
                selectors:
                - matchArgs:
                  - index: 6
                    operator: Prefix
                    values: ["{work}/watched/"]
                  matchBinaries:
                  - operator: In
                    values: ["{victim}"]
                  matchActions:
                  - action: Sigkill
            """);
        while (Host.Run(victim, Path.Combine(work, "watched", "f")).Code != 137 && t.Elapsed < TimeSpan.FromSeconds(10))
            Thread.Sleep(5);
        latencies.Add(t.Elapsed.TotalMilliseconds);
        agent.Stop();
        Directory.Delete(dir, true);
    }
    extras["policy_add_to_enforcement_ms"] = Median(latencies);

    // Pipeline sustained rate: policy matching every open, 1, 2 and 4 writers; where loss begins.
    var rates = new List<object>();
    foreach (int writers in quick ? new[] { 1, 2, 4 } : new[] { 1, 2, 4, 8 })
    {
        using var a = new Agent(paths, "pipeline", "", matchAll);
        a.Start();
        var before = a.Read();
        long per = quick ? 100_000 : 250_000;
        var t = Stopwatch.StartNew();
        Parallel.For(0, writers, _ => Host.Run(paths.Tool("openloop"), Path.Combine(work, "watched", "f"), per.ToString()));
        var produceS = t.Elapsed.TotalSeconds;
        var after = a.Read();
        long delivered = after.Delivered - before.Delivered, lost = after.Lost - before.Lost;
        rates.Add(new { writers, events_produced = writers * per, events_delivered = delivered, events_lost = lost,
            events_per_s = Math.Round(delivered / t.Elapsed.TotalSeconds), produce_s = Math.Round(produceS, 2) });
    }
    extras["pipeline"] = rates;
    return extras;
}

static double Median(List<double> v) { var s = v.Order().ToList(); return s.Count == 0 ? 0 : s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2; }

public readonly record struct Sample(double OpsPerS, long Ops, double AgentCpuMs, long Delivered, long Lost, double PeakRssMb);
