using System.Diagnostics;
using System.Text;
using System.Text.Json;
using SecurityAgent.Bench;

// make bench / make bench-quick: every configuration measured interleaved (A B C ... A B C ...), as ratios to
// the baseline measured in the same run. Writes bench/results/latest.json and latest.md. Needs root.
// --pipeline-rate [--quick] [--compare OTHER/secagent.dll] [--variant "AGENT OPTIONS"] [--writers 4,8]: only the event
// pipeline's row (make bench-rate); each --compare build and each --variant (this build with those options) beside this build.
if (args.Contains("--pipeline") && OperatingSystem.IsLinux())
    return PipelineMicro.Run(args.SkipWhile(a => a != "--pipeline").Skip(1).Select(a => long.TryParse(a, out var n) ? n : 0).FirstOrDefault() is > 0 and var n ? n : 1_000_000);
bool quick = args.Contains("--quick");
var repo = FindRepo();
var paths = new Paths(repo);
// The full bench fits in about 50 minutes on this machine (2 cores): six kernel builds (~4 min each), the extras
// (~3 min), and three repetitions of every configuration, where fork_exec (10,000 execs: ~30 s per configuration)
// runs in two of them. Each repetition costs ~2 min of agent starts and stops besides the workloads.
int reps = 3;
long opens = quick ? 100_000 : 300_000, forks = quick ? 2_000 : 10_000, connects = quick ? 2_000 : 10_000;
int forkReps = quick ? reps : 2;

var work = Directory.CreateTempSubdirectory("secagent-bench-").FullName;
Directory.CreateDirectory(Path.Combine(work, "other"));
Directory.CreateDirectory(Path.Combine(work, "watched"));
var otherFile = Path.Combine(work, "other", "f");
var watchedFile = Path.Combine(work, "watched", "f");
File.WriteAllText(otherFile, "x");
File.WriteAllText(watchedFile, "x");
var openloop = paths.Tool("openloop");
if (args.Contains("--kernel-build"))
{
    // Only the kernel build row (make bench-kbuild): bench/results/kernel-build.*.
    try
    {
        Report.WriteKernelBuild(repo, KernelBuild(paths, work, ShippedPolicies(repo)));
    }
    finally
    {
        Directory.Delete(work, true);
    }
    return 0;
}
if (args.Contains("--pipeline-rate"))
{
    // Only the pipeline row, printed; each --compare DLL (another build's secagent.dll) measured beside this build's.
    var compare = args.Select((a, i) => (a, i)).Where(t => t.a == "--compare" && t.i + 1 < args.Length).Select(t => paths with { Agent = Path.GetFullPath(args[t.i + 1]) })
        .Concat(args.Select((a, i) => (a, i)).Where(t => t.a == "--variant" && t.i + 1 < args.Length)
            .Select(t => paths with { Args = args[t.i + 1].Split(' ', StringSplitOptions.RemoveEmptyEntries) }));
    try
    {
        var writerCounts = args.Select((a, i) => (a, i)).Where(t => t.a == "--writers" && t.i + 1 < args.Length)
            .SelectMany(t => args[t.i + 1].Split(',').Select(int.Parse)).ToArray();
        foreach (var row in PipelineRates([.. compare, paths], work, FilePolicy(work + "/"), quick, writerCounts))
            Console.WriteLine(JsonSerializer.Serialize(row));
    }
    finally
    {
        Directory.Delete(work, true);
    }
    return 0;
}

string FilePolicy(string prefix, string name = "bench-files") => $"""
    apiVersion: securityagent.io/v1alpha1
    kind: TracingPolicy
    metadata:
      name: {name}
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

// A deny rule on the watched directory for another binary: the workload's opens of the watched file wait for the
// agent's fanotify answer (allow); opens of the other file never leave the kernel.
string FanotifyDenyPolicy(string prefix) => $"""
    apiVersion: cilium.io/v1alpha1
    kind: TracingPolicy
    metadata:
      name: bench-fanotify-deny
    spec:
      lsmhooks:
      - hook: file_open
        args:
        - index: 0
          type: file
        selectors:
        - matchBinaries:
          - operator: In
            values: ["/nonexistent-bench-binary"]
          matchArgs:
          - index: 0
            operator: Prefix
            values: ["{prefix}"]
          matchActions:
          - action: Override
            argError: -1
    """;

// The open loops (under half a second each) run `Runs` times per sample and count at their fastest: on this VM another
// tenant's burst only ever slows a run down, and it moved single runs by up to 40 % (baseline 0.93-1.42 in one run).
// A sample's agent CPU and events are over all its runs.
const int openRuns = 3;
var workloads = new (string Name, string Description, long Ops, int Reps, int Runs, Func<long> Run)[]
{
    ("open_nomatch", $"open+close of a file no rule watches ({opens} times, the fastest of {openRuns} runs)", opens, reps, openRuns, () => Long(Host.Run(openloop, otherFile, opens.ToString()).Stdout)),
    ("open_match", $"open+close of the watched file ({opens} times, the fastest of {openRuns} runs)", opens, reps, openRuns, () => Long(Host.Run(openloop, watchedFile, opens.ToString()).Stdout)),
    ("fork_exec", $"fork+exec of a tiny binary ({forks} times{(forkReps < reps ? $", in {forkReps} of the {reps} repetitions" : "")})", forks, forkReps, 1,
        () => Long(Host.Run(paths.Tool("forkexec"), paths.Tool("tiny"), forks.ToString()).Stdout)),
    ("tcp_connect", $"TCP connect to a local listener ({connects} times)", connects, reps, 1, () => Long(Host.Run(paths.Tool("connectloop"), connects.ToString()).Stdout)),
};

Config[] configs =
[
    new Baseline(),
    new Agent(paths, "agent_lifecycle", "agent, process lifecycle only", new Dictionary<string, string>()),
    new Agent(paths, "agent_policy_nomatch", "agent + openat policy whose selectors match nothing (filtered in the kernel)", FilePolicy("/nonexistent-bench-path/")),
    new Agent(paths, "agent_policy_match", "agent + openat policy matching every workload open, events to a JSON file", FilePolicy(work + "/")),
    new Agent(paths, "agent_userspace_filter", "agent + the no-match policy, every openat sent to user space and filtered there (--debug-userspace-filter)", FilePolicy("/nonexistent-bench-path/"), userSpaceFilter: true),
    .. new[] { 1, 8, 64 }.Select(n => new Agent(paths, $"agent_policies_{n}", $"agent + {n} openat policies whose selectors match nothing (open loop only)",
        Enumerable.Range(0, n).ToDictionary(i => $"nomatch-{i}.yaml", i => FilePolicy($"/nonexistent-bench-path-{i}/", $"bench-nomatch-{i}")), only: ["open_nomatch"])),
    new Agent(paths, "agent_fanotify_deny", "agent + a file_open deny for another binary on the watched directory (fanotify here: each watched open waits for the agent's allow)",
        FanotifyDenyPolicy(Path.Combine(work, "watched") + "/"), only: ["open_nomatch", "open_match"]),
    new Auditd(Path.Combine(work, "watched")),
    new Bpftrace(watchedFile),
];

EnsurePeers();
try
{
var samples = new Dictionary<(string Config, string Workload), List<Sample>>();
var setupErrors = new Dictionary<string, string>();
var sw = Stopwatch.StartNew();
for (int rep = 0; rep < reps; rep++)
{
    // Interleaved: every configuration once per repetition, the order rotated between repetitions.
    foreach (var cfg in configs.Skip(rep % configs.Length).Concat(configs.Take(rep % configs.Length)))
    {
        try
        {
            try { cfg.Start(); }
            catch (InvalidOperationException e)
            {
                setupErrors[cfg.Name] = e.Message.Split('\n')[0];
                continue;
            }
            if (cfg.SetupError is { } why)
            {
                setupErrors[cfg.Name] = why; // reported in its row instead of figures
                continue;
            }
            foreach (var w in workloads.Where(w => (cfg.Only is null || cfg.Only.Contains(w.Name)) && rep < w.Reps))
            {
                var before = cfg.Read();
                double best = 0;
                long total = 0;
                for (int run = 0; run < w.Runs; run++)
                {
                    var t = Stopwatch.StartNew();
                    long done = w.Run();
                    var elapsed = t.Elapsed.TotalSeconds;
                    if (done != w.Ops) Console.Error.WriteLine($"warning: {cfg.Name}/{w.Name} completed {done} of {w.Ops} ops");
                    best = Math.Max(best, done / elapsed);
                    total += done;
                }
                var after = cfg.Read();
                var list = samples.TryGetValue((cfg.Name, w.Name), out var l) ? l : samples[(cfg.Name, w.Name)] = [];
                list.Add(new Sample(best, total, after.CpuMs - before.CpuMs, after.Delivered - before.Delivered, after.Lost - before.Lost, cfg.PeakRssMb(), cfg.StartupPeakRssMb));
            }
        }
        finally
        {
            cfg.Dispose();
        }
    }
    Console.Error.WriteLine($"repetition {rep + 1}/{reps} done ({sw.Elapsed.TotalSeconds:F0} s)");
}

var shipped = ShippedPolicies(repo);
var extras = MeasureExtras(paths, work, FilePolicy(work + "/"), shipped, quick);
extras["kernel_ns_per_open"] = KernelNsPerOpen([new Agent(paths, "agent_policy_nomatch", "", FilePolicy("/nonexistent-bench-path/")), new Bpftrace(watchedFile)],
    () => workloads[0].Run(), opens, reps);
if (!quick)
    extras["kernel_build"] = KernelBuild(paths, work, shipped);
Console.Error.WriteLine($"bench done in {sw.Elapsed.TotalMinutes:F1} min");
Report.Write(repo, quick, reps, workloads.Select(w => (w.Name, w.Description)).ToList(),
    configs.Select(c => (c.Name, c.Description)).ToList(), samples, setupErrors, extras);
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

static Dictionary<string, object> MeasureExtras(Paths paths, string work, string matchAll, IReadOnlyDictionary<string, string> shipped, bool quick)
{
    var extras = new Dictionary<string, object>();
    // Start-up: process start to "Agent ready" (programs attached, /proc scanned, policies loaded).
    foreach (var (key, policies) in new[] { ("startup_ms_to_attached", new Dictionary<string, string>()), ("startup_ms_shipped_policies", shipped) })
    {
        var ready = new List<double>();
        for (int i = 0; i < (quick ? 2 : 5); i++)
        {
            // Each start on a machine at rest, as a node starts its agent: the kernel frees the maps of the agent stopped
            // just before in deferred work, which otherwise runs on the cores this start needs (~50 ms more to ready).
            Thread.Sleep(1000);
            using var a = new Agent(paths, "startup", "", policies);
            a.Start();
            ready.Add(a.ReadyMs);
        }
        extras[key] = Median(ready);
    }

    // Idle: the agent with the shipped policies on a quiet machine, after start-up work is over.
    {
        using var a = new Agent(paths, "idle", "", shipped);
        a.Start();
        // Start-up work goes on after ready: tiered JIT recompiles the 500 ms control loop once it has run 30 times.
        Thread.Sleep(20_000);
        double cpu0 = Host.CpuMs(a.Pid);
        var t = Stopwatch.StartNew();
        Thread.Sleep(TimeSpan.FromSeconds(quick ? 10 : 60));
        extras["idle"] = new { seconds = Math.Round(t.Elapsed.TotalSeconds), cpu_percent = Math.Round((Host.CpuMs(a.Pid) - cpu0) / t.Elapsed.TotalMilliseconds * 100, 2),
            rss_mb = Math.Round(Host.RssMb(a.Pid), 1) };
    }

    // Policy add to enforcement: write a Sigkill policy, run the victim until it dies.
    var victim = Path.Combine(work, "victim");
    File.Copy("/usr/bin/cat", victim, true);
    Host.Run("chmod", "755", victim);
    var latencies = new List<double>();
    var agentShare = new List<double>();
    for (int i = 0; i < (quick ? 2 : 5); i++)
    {
        var dir = Directory.CreateTempSubdirectory("secagent-bench-hot-").FullName;
        Directory.CreateDirectory(Path.Combine(dir, "p"));
        using var agent = paths.StartAgent(["run", "--policy-dir", Path.Combine(dir, "p"), "--export-file", Path.Combine(dir, "e.json"), "--api-socket", Path.Combine(dir, "agent.sock")]);
        agent.WaitFor(b => b.Stderr.Contains("Agent ready"), TimeSpan.FromSeconds(30));
        // Without policies the agent is ready before the policy programs are loaded: a policy added then waits for them.
        agent.WaitFor(b => b.Stderr.Contains("Policy programs loaded"), TimeSpan.FromSeconds(30));
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
        // The agent's own share: the check and the kernel load it logs (the rest: inotify, the victim's runs).
        agent.WaitFor(b => b.Stderr.Contains("Policy bench-kill loaded"), TimeSpan.FromSeconds(5));
        var took = System.Text.RegularExpressions.Regex.Match(agent.Stderr, @"checked in ([\d.]+) ms, loaded in ([\d.]+) ms");
        if (took.Success)
            agentShare.Add(double.Parse(took.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) + double.Parse(took.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture));
        agent.Stop();
        Directory.Delete(dir, true);
    }
    extras["policy_add_to_enforcement_ms"] = Median(latencies);
    extras["policy_add_check_and_load_ms"] = Median(agentShare);

    extras["pipeline"] = PipelineRates([paths], work, matchAll, quick);
    return extras;
}

// Pipeline sustained rate: policy matching every open, 1, 2 and 4 writers; where loss begins. A run of a fixed number of
// events (split between the writers) after a warm-up the agent is not measured on (its first events compile the event
// path: ~50 ms of CPU, a third of a 100k-event run's), repeated, medians; next to it the same writers with no agent
// (their rate with the agent over this one is their open_match ratio). With several agents (--pipeline-rate
// --compare DLL), each writer count runs every agent in turn, so that before and after share the machine's state.
static List<object> PipelineRates(IReadOnlyList<Paths> agents, string work, string matchAll, bool quick, int[]? writerCounts = null)
{
    var rates = new List<object>();
    long total = quick ? 200_000 : 500_000;
    int reps = quick ? 3 : 5;
    var watched = Path.Combine(work, "watched", "f");
    var openloop = agents[0].Tool("openloop");
    double Produce(int writers, long per)
    {
        var t = Stopwatch.StartNew();
        Parallel.For(0, writers, _ => Host.Run(openloop, watched, per.ToString()));
        return t.Elapsed.TotalSeconds;
    }
    foreach (int writers in writerCounts is { Length: > 0 } ? writerCounts : quick ? [1, 2, 4] : [1, 2, 4, 8])
    {
        long per = total / writers;
        double alone = Median(Enumerable.Range(0, reps).Select(_ => writers * per / Produce(writers, per)).ToList());
        foreach (var paths in agents)
        {
            using var a = new Agent(paths, "pipeline", "", matchAll);
            a.Start();
            Produce(writers, 20_000 / writers);
            var runs = new List<(double PerS, double CpuUs, long Delivered, long Lost)>();
            for (int r = 0; r < reps; r++)
            {
                var before = a.Read();
                var produceS = Produce(writers, per);
                var after = a.Read();
                long delivered = after.Delivered - before.Delivered;
                runs.Add((delivered / produceS, delivered > 0 ? (after.CpuMs - before.CpuMs) * 1000 / delivered : 0, delivered, after.Lost - before.Lost));
            }
            rates.Add(new { writers, agent = agents.Count > 1 ? paths.Label : null, repetitions = reps, events_produced = writers * per * reps,
                events_delivered = runs.Sum(x => x.Delivered), events_lost = runs.Sum(x => x.Lost), events_per_s = Math.Round(Median(runs.Select(x => x.PerS).ToList())),
                events_per_s_min = Math.Round(runs.Min(x => x.PerS)), events_per_s_max = Math.Round(runs.Max(x => x.PerS)),
                writers_alone_events_per_s = Math.Round(alone),
                agent_cpu_us_per_event = Math.Round(Median(runs.Select(x => x.CpuUs).ToList()), 2),
                agent_cpu_us_per_event_min = Math.Round(runs.Min(x => x.CpuUs), 2), agent_cpu_us_per_event_max = Math.Round(runs.Max(x => x.CpuUs), 2),
                peak_rss_mb = Math.Round(a.PeakRssMb(), 1), startup_peak_rss_mb = Math.Round(a.StartupPeakRssMb, 1) });
        }
    }
    return rates;
}

// A real workload (full bench only): `make -j2 tinyconfig` then `make -j2` of Debian's Linux 6.1 source, wall time as a
// ratio to no agent, for the lifecycle-only agent and for the shipped policies (monitor mode). Two rounds in mirrored
// order (baseline, lifecycle, shipped, then shipped, lifecycle, baseline), each configuration's wall time the mean of
// its two builds: a drift of the machine's speed over the ~25 minutes (another tenant, the page cache) then weighs on
// every configuration alike. One build each, in one order, put lifecycle-only at 0.985x in one run and 0.913x in the
// next, and two builds of the same configuration here differ by up to a quarter. So the row also says what the agent
// costs in CPU, which another tenant does not move: the agent's own CPU time, and the build's (every process of it,
// where the BPF programs' time is counted too) against the build's with no agent.
static Dictionary<string, object> KernelBuild(Paths paths, string work, IReadOnlyDictionary<string, string> shipped)
{
    var tarball = Directory.Exists("/usr/src") ? Directory.GetFiles("/usr/src", "linux-source-6.1*.tar.xz").FirstOrDefault() : null;
    if (tarball is null)
    {
        Console.Error.WriteLine("installing linux-source-6.1 (and the kernel build tools)");
        Host.Run("sh", "-c", "apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-source-6.1 build-essential bc bison flex libelf-dev libssl-dev >/dev/null 2>&1");
        tarball = Directory.GetFiles("/usr/src", "linux-source-6.1*.tar.xz").FirstOrDefault();
        if (tarball is null) return new() { ["error"] = "linux-source-6.1 could not be installed" };
    }
    var src = Path.Combine(work, "linux");
    Directory.CreateDirectory(src);
    Host.Run("tar", "-xf", tarball, "-C", src, "--strip-components=1");
    (double Wall, double Cpu) Build()
    {
        Host.Run("make", "-C", src, "-s", "mrproper");
        var t = Stopwatch.StartNew();
        double cpu = Host.ChildrenCpuMs();
        var r = Host.Run("sh", "-c", $"make -C {src} -s -j2 tinyconfig && make -C {src} -s -j2 >/dev/null");
        if (r.Code != 0) throw new InvalidOperationException("kernel build failed: " + r.Stderr[^Math.Min(400, r.Stderr.Length)..]);
        return (t.Elapsed.TotalSeconds, (Host.ChildrenCpuMs() - cpu) / 1000);
    }
    var configs = new (string Name, Func<Config> Make)[]
    {
        ("baseline", () => new Baseline()),
        ("agent_lifecycle", () => new Agent(paths, "agent_lifecycle", "", new Dictionary<string, string>())),
        ("agent_shipped_policies", () => new Agent(paths, "agent_shipped_policies", "", shipped)),
    };
    var wall = configs.ToDictionary(c => c.Name, _ => new List<double>());
    var buildCpu = configs.ToDictionary(c => c.Name, _ => new List<double>());
    var agentCpu = configs.ToDictionary(c => c.Name, _ => new List<double>());
    foreach (var (name, make) in configs.Concat(configs.Reverse()))
    {
        using var cfg = make();
        cfg.Start();
        var before = cfg.Read();
        var (w, c) = Build();
        wall[name].Add(w);
        buildCpu[name].Add(c);
        agentCpu[name].Add((cfg.Read().CpuMs - before.CpuMs) / 1000);
    }
    double baseline = wall["baseline"].Average(), baselineCpu = buildCpu["baseline"].Average();
    return configs.ToDictionary(c => c.Name, c => (object)new
    {
        wall_s = Math.Round(wall[c.Name].Average(), 1), ratio_to_baseline = Math.Round(baseline / wall[c.Name].Average(), 3),
        builds_s = wall[c.Name].Select(w => Math.Round(w, 1)).ToArray(),
        build_cpu_s = Math.Round(buildCpu[c.Name].Average(), 1), build_cpu_ratio = Math.Round(baselineCpu / buildCpu[c.Name].Average(), 3),
        agent_cpu_s = Math.Round(agentCpu[c.Name].Average(), 1),
    });
}

// The kernel side of an open no rule watches, apart from the rest of the loop: the BPF programs' own run time per
// open+close, from the kernel's per-program statistics (kernel.bpf_stats_enabled, on only for these runs: it adds two clock
// reads to every program run, the same for every observer). Observers interleaved, the lowest of the repetitions.
static Dictionary<string, double> KernelNsPerOpen(Config[] observers, Func<long> openLoop, long opens, int reps)
{
    const string sysctl = "/proc/sys/kernel/bpf_stats_enabled";
    var lowest = observers.ToDictionary(o => o.Name, _ => double.MaxValue);
    var was = File.ReadAllText(sysctl).Trim();
    try
    {
        for (int rep = 0; rep < reps; rep++)
            foreach (var o in observers)
            {
                try
                {
                    o.Start();
                    if (o.SetupError is not null)
                        continue;
                    File.WriteAllText(sysctl, "1");
                    var before = BpfRunTimeNs();
                    long done = openLoop();
                    var after = BpfRunTimeNs();
                    File.WriteAllText(sysctl, was);
                    long ns = after.Sum(p => p.Value - before.GetValueOrDefault(p.Key));
                    if (done > 0) lowest[o.Name] = Math.Min(lowest[o.Name], Math.Round((double)ns / done, 1));
                }
                catch (InvalidOperationException e)
                {
                    Console.Error.WriteLine($"kernel cost per open: {o.Name} not measured: {e.Message.Split('\n')[0]}");
                }
                finally
                {
                    o.Dispose();
                }
            }
    }
    finally
    {
        File.WriteAllText(sysctl, was);
    }
    return lowest.Where(p => p.Value < double.MaxValue).ToDictionary();
}

// Every loaded BPF program's total run time so far (bpftool: the kernel's own counters), by program id.
static Dictionary<long, long> BpfRunTimeNs()
{
    using var doc = JsonDocument.Parse(Host.Run("bpftool", "prog", "show", "--json").Stdout);
    return doc.RootElement.EnumerateArray().ToDictionary(p => p.GetProperty("id").GetInt64(),
        p => p.TryGetProperty("run_time_ns", out var t) ? t.GetInt64() : 0);
}

// The policies in policies/ by file name: what `make run` loads.
static Dictionary<string, string> ShippedPolicies(string repo) =>
    Directory.GetFiles(Path.Combine(repo, "policies"), "*.yaml").ToDictionary(f => Path.GetFileName(f), File.ReadAllText);

static double Median(List<double> v) { var s = v.Order().ToList(); return s.Count == 0 ? 0 : s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2; }

public readonly record struct Sample(double OpsPerS, long Ops, double AgentCpuMs, long Delivered, long Lost, double PeakRssMb, double StartupPeakRssMb);
