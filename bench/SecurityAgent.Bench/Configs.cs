using System.Text.Json;

namespace SecurityAgent.Bench;

/// <summary>Counters a configuration reports around one workload run.</summary>
public readonly record struct Snapshot(double CpuMs, long Delivered, long Lost);

/// <summary>One configuration of the comparison: started before, and stopped after, each repetition's workloads.</summary>
public abstract class Config : IDisposable
{
    public abstract string Name { get; }
    public abstract string Description { get; }
    /// <summary>The workloads this configuration runs (null: all).</summary>
    public virtual IReadOnlyCollection<string>? Only => null;
    /// <summary>Why the configuration could not be set up as described (e.g. policies the agent refused), or null.</summary>
    public virtual string? SetupError => null;
    public virtual void Start() { }
    public virtual Snapshot Read() => default;
    /// <summary>Peak RSS of the observing process over the session's workloads, MB (0: no such process).</summary>
    public virtual double PeakRssMb() => 0;
    /// <summary>Peak RSS of the observing process while it started, MB (0: not measured apart).</summary>
    public virtual double StartupPeakRssMb => 0;
    public virtual void Dispose() { }
}

public sealed class Baseline : Config
{
    public override string Name => "baseline";
    public override string Description => "no agent";
}

/// <summary>The agent (build/app/secagent.dll) with the given policy files, JSON events to a file.</summary>
public sealed class Agent(Paths paths, string name, string description, IReadOnlyDictionary<string, string> policies, bool userSpaceFilter = false,
    IReadOnlyCollection<string>? only = null) : Config
{
    private Host.Background? _agent;
    private string _dir = "";
    private double _peak, _startupPeak;
    private string? _setupError;
    public override string Name => name;
    public override string Description => description;
    public override IReadOnlyCollection<string>? Only => only;
    public override string? SetupError => _setupError;
    public double ReadyMs { get; private set; }
    public int Pid => _agent!.Pid;

    public Agent(Paths paths, string name, string description, string? policyYaml, bool userSpaceFilter = false, IReadOnlyCollection<string>? only = null)
        : this(paths, name, description, policyYaml is null ? new Dictionary<string, string>() : new() { ["bench.yaml"] = policyYaml }, userSpaceFilter, only) { }

    public override void Start()
    {
        _dir = Directory.CreateTempSubdirectory("secagent-bench-agent-").FullName;
        Directory.CreateDirectory(Path.Combine(_dir, "policies"));
        foreach (var (file, yaml) in policies)
            File.WriteAllText(Path.Combine(_dir, "policies", file), yaml);
        var args = new List<string> { "run", "--policy-dir", Path.Combine(_dir, "policies"),
            "--export-file", Path.Combine(_dir, "events.json"), "--stats-file", Path.Combine(_dir, "stats.json"),
            "--api-socket", Path.Combine(_dir, "agent.sock") };
        if (userSpaceFilter) args.AddRange(["--debug-userspace-filter", "true"]);
        if (paths.Args is { } extra) args.AddRange(extra);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        _agent = paths.StartAgent([.. args]);
        if (!_agent.WaitFor(b => b.Stderr.Contains("Agent ready"), TimeSpan.FromSeconds(60)))
            throw new InvalidOperationException($"agent ({name}) did not start:\n{_agent.Stderr}");
        ReadyMs = sw.Elapsed.TotalMilliseconds;
        var loaded = System.Text.RegularExpressions.Regex.Match(_agent.Stderr, @"(\d+) policies loaded");
        _setupError = loaded.Success && int.Parse(loaded.Groups[1].Value) < policies.Count
            ? $"{loaded.Groups[1].Value} of {policies.Count} policies loaded: " + (_agent.Stderr.Split('\n').FirstOrDefault(l => l.Contains("failed to load") || l.Contains("Policy error"))?.Split(": ", 2).Last().Trim() ?? "?")
            : null;
        // Start-up's own peak (libbpf's copies of the kernel's BTF while the verifier runs, the policy compiler's garbage)
        // is measured apart from the workloads': the agent's background loads are through once it says so, and given
        // back a moment later; then the kernel's high-water mark is reset (clear_refs 5), so the workloads' peak is theirs.
        _agent.WaitFor(b => b.Stderr.Contains("Policy programs loaded") || b.Stderr.Contains("Policy programs failed"), TimeSpan.FromSeconds(30));
        Thread.Sleep(300);
        _startupPeak = Host.PeakRssMb(_agent.Pid);
        Host.ResetPeakRss(_agent.Pid);
        _peak = 0;
    }

    public override double StartupPeakRssMb => _startupPeak;

    public override Snapshot Read()
    {
        Thread.Sleep(700); // the agent drains every 80 ms and writes its stats every 500 ms
        var stats = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "stats.json"))).RootElement;
        _peak = Math.Max(_peak, Host.PeakRssMb(_agent!.Pid));
        return new Snapshot(Host.CpuMs(_agent.Pid), stats.GetProperty("exported").GetInt64(),
            stats.GetProperty("kernel_lost").GetInt64() + stats.GetProperty("export_failed").GetInt64());
    }

    public override double PeakRssMb() => _peak;

    public override void Dispose()
    {
        _agent?.Dispose();
        _agent = null;
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }
}

/// <summary>auditd with a syscall rule on openat below the watched directory (Debian's auditd).</summary>
public sealed class Auditd(string watchedDir) : Config
{
    private string _log = "";
    private int _pid;
    private double _peak;
    public override string Name => "auditd";
    public override string Description => $"auditd, rule: -S openat -F dir={watchedDir}";

    public override void Start()
    {
        _log = Directory.CreateTempSubdirectory("secagent-bench-audit-").FullName;
        File.WriteAllText(Path.Combine(_log, "auditd.conf"), $"log_file = {_log}/audit.log\nlog_format = RAW\nflush = none\nmax_log_file = 1024\nmax_log_file_action = ignore\nspace_left = 2\nadmin_space_left = 1\nspace_left_action = ignore\nadmin_space_left_action = ignore\ndisk_full_action = ignore\ndisk_error_action = ignore\n");
        Host.Run("auditd", "-c", _log);
        for (int i = 0; i < 100 && !File.Exists("/var/run/auditd.pid"); i++) Thread.Sleep(20);
        _pid = int.Parse(File.ReadAllText("/var/run/auditd.pid").Trim());
        Host.Run("auditctl", "-D");
        Host.Run("auditctl", "-e", "1");
        Host.Run("auditctl", "-a", "always,exit", "-F", "arch=b64", "-S", "openat", "-F", $"dir={watchedDir}", "-k", "secagent-bench");
        _peak = 0;
    }

    public override Snapshot Read()
    {
        Thread.Sleep(300);
        var log = Path.Combine(_log, "audit.log");
        long delivered = File.Exists(log) ? File.ReadLines(log).Count(l => l.Contains("key=\"secagent-bench\"")) : 0;
        var status = Host.Run("auditctl", "-s").Stdout;
        long lost = long.Parse(status.Split('\n').First(l => l.StartsWith("lost ")).Split(' ')[1]);
        _peak = Math.Max(_peak, Host.PeakRssMb(_pid));
        return new Snapshot(Host.CpuMs(_pid), delivered, lost);
    }

    public override double PeakRssMb() => _peak;

    public override void Dispose()
    {
        if (_pid != 0)
        {
            Host.Run("auditctl", "-D");
            Host.Run("auditctl", "-e", "0");
            Host.Run("kill", "-TERM", _pid.ToString());
            for (int i = 0; i < 100 && Directory.Exists($"/proc/{_pid}"); i++) Thread.Sleep(50);
            _pid = 0;
        }
        if (_log.Length > 0 && Directory.Exists(_log))
            try { Directory.Delete(_log, true); } catch (IOException) { }
    }
}

/// <summary>bpftrace on sys_enter_openat with an in-kernel predicate on the filename, printing each match.</summary>
public sealed class Bpftrace(string watchedFile) : Config
{
    private Host.Background? _bt;
    private double _peak;
    public override string Name => "bpftrace";
    public override string Description => $"bpftrace, sys_enter_openat /str(filename) == \"{watchedFile}\"/ printf";

    public override void Start()
    {
        _bt = new Host.Background("bpftrace", ["-e", $"tracepoint:syscalls:sys_enter_openat /str(args->filename) == \"{watchedFile}\"/ {{ printf(\"x\\n\"); }}"]);
        if (!_bt.WaitFor(b => b.StdoutLines > 0 || b.Stderr.Contains("Attaching"), TimeSpan.FromSeconds(30)))
            throw new InvalidOperationException("bpftrace did not attach:\n" + _bt.Stderr);
        Thread.Sleep(300);
        _peak = 0;
    }

    public override Snapshot Read()
    {
        Thread.Sleep(300);
        _peak = Math.Max(_peak, Host.PeakRssMb(_bt!.Pid));
        long delivered = Math.Max(0, _bt.StdoutLines - 1); // "Attaching 1 probe..."
        var lost = System.Text.RegularExpressions.Regex.Matches(_bt.Stderr + _bt.Stdout, @"Lost (\d+) events").Sum(m => long.Parse(m.Groups[1].Value));
        return new Snapshot(Host.CpuMs(_bt.Pid), delivered, lost);
    }

    public override double PeakRssMb() => _peak;

    public override void Dispose()
    {
        _bt?.Stop("INT");
        _bt?.Dispose();
        _bt = null;
    }
}

/// <summary>Where the bench finds what it runs.</summary>
public sealed record Paths(string Repo, string? Agent = null, string[]? Args = null)
{
    /// <summary>The agent and the options it runs with beyond the benchmark's own.</summary>
    public string Label => AgentDll + (Args is { Length: > 0 } a ? " " + string.Join(' ', a) : "");
    public string AgentDll => Agent ?? Path.Combine(Repo, "build", "app", "secagent.dll");

    /// <summary>The agent started as it is deployed: through its apphost beside the dll (`make run`, the image), else
    /// `dotnet` with the dll (the muxer adds ~18 ms to start-up); with the deployed environment.</summary>
    public Host.Background StartAgent(string[] args) =>
        Path.ChangeExtension(AgentDll, null) is var host && File.Exists(host)
            ? new Host.Background(host, args, env: Host.AgentEnv)
            : new Host.Background("dotnet", [AgentDll, .. args], env: Host.AgentEnv);
    public string Tool(string name) => Path.Combine(Repo, "build", "bench", name);
}
