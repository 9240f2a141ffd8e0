using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SecurityAgent.Export;
using SecurityAgent.Export.Otlp;
using SecurityAgent.Interop;
using SecurityAgent.Kernel;
using SecurityAgent.Pipeline;
using SecurityAgent.Policies;
using SecurityAgent.Processes;
using SecurityAgent.Sensors;

namespace SecurityAgent.Hosting;

/// <summary>The daemon: takes the sensors <see cref="KernelStart"/> loaded, attaches them, seeds the process cache
/// from /proc and runs the event pipeline until stopped; on stop, detaches and frees every kernel object.</summary>
public sealed partial class AgentService(IOptions<AgentOptions> options, ILogger<AgentService> log, IHostApplicationLifetime lifetime, Api.AgentState state, StartupPhases phases, KernelStart kernel) : BackgroundService
{
    private readonly AgentOptions _opt = options.Value;

    /// <summary>How often the agent reads the kernel's loss counters, writes --stats-file and checks the event thread.</summary>
    private static readonly TimeSpan ControlInterval = TimeSpan.FromMilliseconds(500);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await RunAsync(stoppingToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogFatal(log, e.Message);
            Environment.ExitCode = 1;
            lifetime.StopApplication();
        }
    }

    private async Task RunAsync(CancellationToken stop)
    {
        phases.Mark("service");
        // What is not the kernel's is set up while KernelStart loads the programs; they are awaited below.

        var node = _opt.ResolveNodeName();
        var clockTickNs = 1_000_000_000L / Libc.sysconf(Libc._SC_CLK_TCK);
        var cache = new ProcessCache(node, new ProcessCacheOptions
        {
            MaxEntries = _opt.ProcessCacheSize,
            ExitGrace = TimeSpan.FromSeconds(_opt.ExitGraceSeconds),
            EnvironmentFilter = _opt.EnvironmentFilter(),
        }, TimeProvider.System, clockTickNs);

        var formatter = new JsonEventFormatter(node, BootClock.System(), _opt.ToEventFormat(), Redactor.Parse(_opt.RedactionFilters), cache.Parent);
        int? group = string.IsNullOrEmpty(_opt.ExportFileGroup) ? null : PrivateFiles.Gid(_opt.ExportFileGroup);
        bool terminal = _opt.ExportFile == "-" && !Console.IsOutputRedirected;
        Export.Compact.CompactStyle? compact = _opt.CompactOutput(terminal)
            ? new(Color: terminal && Environment.GetEnvironmentVariable("NO_COLOR") is null, Timestamps: true)
            : null;
        // Compact lines and the live API (`secagent events`) are the agent's own views: they show the decision.
        await using var exporter = new JsonLinesExporter(JsonLinesExporter.OpenTarget(_opt.ExportFile, _opt.ExportFileMaxSize, _opt.ExportFileMaxBackups, group),
            compact is null ? formatter : formatter.WithExtensions(), log, FieldFilter.ParseList(_opt.FieldFilters), compact);
        var stats = string.IsNullOrEmpty(_opt.StatsFile) ? null : new StatsFile(_opt.StatsFile, group, log);
        var otlpOptions = OtlpOptions.From(_opt);
        await using var otlp = otlpOptions is null ? null : new OtlpLogExporter(otlpOptions, formatter, BootClock.System(), log);
        state.Otlp = otlp;
        using var otlpMetrics = otlpOptions is null ? null : OtlpMetrics.Start(state, otlpOptions, _opt.OtlpMetricsIntervalMs);
        var filtered = new FilteringExporter(otlp is null ? [exporter] : [exporter, otlp], ExportFilter.ParseList(_opt.ExportAllowlist), ExportFilter.ParseList(_opt.ExportDenylist),
            _opt.ExportRateLimit, TimeProvider.System, exporter.WriteRateLimitInfo);
        state.Live.Formatter = formatter.WithExtensions();
        // What does not need the loaded programs is made while they load.
        var cgroup2 = KernelMounts.Cgroup2Mount();
        using var cgroups = cgroup2 is not null ? new Containers.CgroupMap(cgroup2) : null;
        var pods = new Containers.PodCache();
        await using var notifier = new PolicyNotifier(log);
        var afterCall = new Fanotify.AfterCallMatches();
        var enricher = new Enricher(cache, cgroups, clockTickNs);
        var podWait = new PodWait(pods, TimeProvider.System, _opt.ChannelCapacity);
        var symbolizer = new Stacks.StackSymbolizer(_opt.ExposeStackAddresses);
        phases.Mark("exporters");
        var loaded = await kernel.TakeAsync((level, text) => { if (level == 0) LogLibbpf(log, text); });
        using var sensor = loaded.Sensor;
        using var engine = loaded.Engine;
        phases.Mark("kernel");
        // Without policies at start the probe may still run: the first policy waits for it, as for the policy programs.
        _ = loaded.Features.ContinueWith(t =>
        {
            if (t.IsCompletedSuccessfully)
            {
                state.Features = t.Result;
                LogFeatures(log, t.Result.KernelRelease, string.Join(", ", t.Result.Mechanisms.Where(m => m.Value.Available).Select(m => KernelFeatures.MechanismName(m.Key))));
                return;
            }
            LogFatal(log, "feature probe: " + t.Exception?.InnerException?.Message);
            Environment.ExitCode = 1;
            lifetime.StopApplication();
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        if (_opt.DebugUserspaceFilter)
            LogDebugFilter(log);
        var pipeline = new EventPipeline(
            enricher,
            new Decider(engine.Hooks, engine, (p, signal) => Responder.Signal(p, signal, clockTickNs), notifier.Enqueue, symbolizer, afterCall),
            podWait, [filtered, state.Live, state.EventMetrics], log);
        using var reader = new KernelEventReader(sensor.Events, sensor.ReaderState, pipeline, _opt.EventThreadNice, errno => LogNiceFailed(log, _opt.EventThreadNice, errno));
        // Attach first, then scan /proc: a process that starts in between is seen by both, and the
        // cache keeps one entry. Events wait in the ring buffer until the reader starts.
        sensor.Attach();
        phases.Mark("attach");
        var found = ProcFsScanner.ScanTree(node, clockTickNs);
        foreach (var p in found)
        {
            cache.AddProcFs(p);
            sensor.RememberBinary(p.Pid, p.Binary);
        }
        sensor.SeedProcesses(found);
        int seeded = found.Count;
        cache.LinkProcFsParents();
        phases.Mark("proc-scan");
        if (!Directory.Exists(_opt.PolicyDir))
            LogNoPolicyDir(log, _opt.PolicyDir);
        if (cgroups is not null)
        {
            engine.Scopes = new ScopeManager(pods, cgroups);
            pods.Changed += engine.RefreshScopes;
        }
        using var fanotify = new Fanotify.FanotifyLoader(new EngineLoader(engine), engine.Hooks, pipeline.Post,
            new Fanotify.FanotifyOptions { Logger = log, Cgroup2Mount = cgroup2 }, engine.Scopes);
        state.Fanotify = fanotify;
        using var changes = new Fanotify.PathChangeLoader(fanotify, pipeline.Post, afterCall, log,
            () => new Fanotify.AfterCallNotes(engine.AfterNotesFd(), Fanotify.PathChanges.ChangesOfNumber, Fanotify.AfterCallNotes.WorkersMap(engine.IoWorkersFd())));
        state.PathChanges = changes;
        state.PolicyKernelCounters = engine.KernelCounters;
        state.PolicyPrograms = () => engine.ProgramsState;
        state.ExitOnlyMatching = () => engine.ExitOnlyState;
        state.Policies.Precheck = kernel.Precheck;
        state.Policies.Attach(new Lazy<PolicyValidator>(() => kernel.Validator.GetAwaiter().GetResult()), changes, log);
        var policies = new PolicyDirectory(_opt.PolicyDir, state.Policies, log);
        policies.Sync();
        state.Policies.Precheck = null; // what it checked and nothing took is stale from here on
        phases.Mark("policies");
        using var watchStop = new CancellationTokenSource();
        new Thread(() => policies.Watch(watchStop.Token)) { IsBackground = true, Name = "policy-dir" }.Start(); // inotify: changes apply within ms
        (state.Pipeline, state.Exporter) = (pipeline, exporter);
        var kube = StartKubernetes(pods, stop);
        reader.Start();
        phases.Mark("ready");
        kernel.Raise();
        LogPhases(log, phases); // made into text only when debug is on
        LogReady(log, sensor.Links.Count, seeded, state.Policies.LoadedCount, _opt.ExportFile == "-" ? "stdout" : _opt.ExportFile);
        // Start-up garbage (compiler, YAML, libbpf's BTF copies) is given back once the policy programs are loaded too.
        _ = kernel.Background.ContinueWith(_ =>
        {
            if (engine.ProgramsError is { } error) LogPolicyProgramsFailed(log, error);
            else
            {
                LogPolicyPrograms(log, phases.ToString());
                engine.AwaitExitOnly();
                if (engine.ExitOnlyState is { } x && x.StartsWith("unavailable: "))
                    LogExitOnlyUnavailable(log, x["unavailable: ".Length..]);
            }
            StartupMemory.Release();
        }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);

        // The agent's periodic work on a thread of its own: a timer's tick on the thread pool wakes the timer thread, a
        // worker and the pool's gate thread (three wake-ups where one does; ~0.1 % of a core when idle, measured).
        long reportedLoss = 0, ticks = 0;
        Exception? controlFailure = null;
        var control = new Thread(() =>
        {
            try
            {
                while (!stop.WaitHandle.WaitOne(ControlInterval))
                {
                    if (++ticks % 4 == 0)
                        engine.RefreshScopes(); // containers' cgroups appear after their pods are reported
                    pipeline.Counters.SetKernelLost(sensor.KernelLost());
                    stats?.Write(() => Stats(pipeline, cache, exporter, filtered));
                    if (pipeline.Counters.TotalLost != reportedLoss)
                    {
                        reportedLoss = pipeline.Counters.TotalLost;
                        LogLoss(log, pipeline.Counters.ToString());
                    }
                    if (reader.Failed)
                    {
                        Environment.ExitCode = 1; // set now: the failure itself surfaces from reader.Stop() below
                        break;
                    }
                }
            }
            catch (Exception e)
            {
                controlFailure = e;
                Environment.ExitCode = 1;
            }
            lifetime.StopApplication(); // the reader failed, the loop did, or the agent is stopping anyway
        }) { IsBackground = true, Name = "secagent control" };
        control.Start();
        try
        {
            await Task.Delay(Timeout.Infinite, stop).ContinueWith(_ => { }, CancellationToken.None);
            control.Join();
            if (controlFailure is not null)
                throw new InvalidOperationException("the agent's periodic work failed: " + controlFailure.Message, controlFailure);
        }
        finally
        {
            kube?.Cancel();
            watchStop.Cancel();
            foreach (var h in state.Policies.HookStats())
                LogHookStats(log, h.Policy, h.Hook, h.Stats.Seen, h.Stats.Matched, h.Stats.Filtered, h.Stats.Posted, h.Stats.Enforced, h.Stats.RateLimited);
            state.Policies.Detach(); // the API and late cluster events change nothing from here on
            engine.Dispose(); // detach policy hooks before the reader stops
            fanotify.Dispose(); // closing the group allows every open still waiting
            reader.Stop(); // drains the ring buffer and sends on everything held
            pipeline.Counters.SetKernelLost(sensor.KernelLost());
            stats?.Write(() => Stats(pipeline, cache, exporter, filtered), force: true);
            LogStopped(log, pipeline.Counters.ToString(), cache.Count, cache.Evictions);
        }
    }

    /// <summary>Watches policy CRDs when a kubeconfig is given or the agent runs in a cluster; says once when not.</summary>
    private CancellationTokenSource? StartKubernetes(Containers.PodCache pods, CancellationToken stop)
    {
        Kubernetes.KubeConfig config;
        if (!string.IsNullOrEmpty(_opt.Kubeconfig)) config = Kubernetes.KubeConfig.FromFile(_opt.Kubeconfig);
        else if (Kubernetes.KubeConfig.InCluster) config = Kubernetes.KubeConfig.FromCluster();
        else
        {
            LogNoKubernetes(log);
            return null;
        }
        var cts = CancellationTokenSource.CreateLinkedTokenSource(stop);
        pods.Active = true;
        var client = new Kubernetes.KubeClient(config);
        var crds = new Kubernetes.CrdPolicySource(client, state.Policies, log);
        var node = _opt.ResolveNodeName();
        _ = Task.Run(async () =>
        {
            try { await Task.WhenAll(crds.RunAsync(cts.Token), pods.WatchAsync(client, node, log, cts.Token)); }
            catch (OperationCanceledException) { }
            finally { client.Dispose(); }
        });
        LogKubernetes(log, config.Server.ToString());
        return cts;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "--event-thread-nice {Nice}: the event thread keeps the agent's priority (setpriority: errno {Errno})")]
    private static partial void LogNiceFailed(ILogger log, int nice, int errno);

    [LoggerMessage(Level = LogLevel.Information, Message = "Running without Kubernetes (no --kubeconfig, KUBERNETES_SERVICE_HOST not set): policies come from the policy directory only")]
    private static partial void LogNoKubernetes(ILogger log);

    [LoggerMessage(Level = LogLevel.Information, Message = "Watching policy CRDs on {Server}")]
    private static partial void LogKubernetes(ILogger log, string server);

    /// <summary>The counters --stats-file holds.</summary>
    private object Stats(EventPipeline pipeline, ProcessCache cache, JsonLinesExporter exporter, FilteringExporter filtered)
    {
        var c = pipeline.Counters;
        return new
        {
            received = c.Received, exported = c.Exported, kernel_lost = c.KernelLost, decode_errors = c.DecodeErrors,
            user_space_filtered = c.UserSpaceFiltered, pod_wait_overflow = c.PodWaitOverflow, exporter_faults = c.ExporterFaults,
            process_cache = cache.Count, process_cache_evictions = cache.Evictions, export_written = exporter.Written, export_failed = exporter.Failed,
            export_filtered = filtered.Filtered, export_rate_limited = filtered.RateLimited,
            otlp = state.Otlp is { } o ? new { enqueued = o.Enqueued, delivered = o.Delivered, dropped = o.Dropped, failures = o.Failures, queue_depth = o.QueueDepth } : null,
            hooks = state.Policies.HookStats().Select(h => new
            {
                policy = h.Policy, hook = h.Hook, seen = h.Stats.Seen, matched = h.Stats.Matched, filtered = h.Stats.Filtered, posted = h.Stats.Posted,
                enforced = h.Stats.Enforced, rate_limited = h.Stats.RateLimited,
            }).ToList(),
        };
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "--debug-userspace-filter: policy selectors run in user space and nothing is enforced (a benchmark comparison, not for production)")]
    private static partial void LogDebugFilter(ILogger log);

    [LoggerMessage(Level = LogLevel.Information, Message = "Kernel {Release}: available mechanisms: {Mechanisms}")]
    private static partial void LogFeatures(ILogger log, string release, string mechanisms);

    [LoggerMessage(Level = LogLevel.Information, Message = "Agent ready: {Links} programs attached, {Seeded} processes from /proc, {Policies} policies loaded, events to {Target}")]
    private static partial void LogReady(ILogger log, int links, int seeded, int policies, string target);

    [LoggerMessage(Level = LogLevel.Information, Message = "Policy {Policy} hook {Hook}: seen={Seen} matched={Matched} filtered={Filtered} posted={Posted} enforced={Enforced} rate_limited={RateLimited}")]
    private static partial void LogHookStats(ILogger log, string policy, string hook, ulong seen, ulong matched, ulong filtered, ulong posted, ulong enforced, ulong rateLimited);

    [LoggerMessage(Level = LogLevel.Information, Message = "Policy programs loaded (a policy added now only writes maps and attaches); start-up phases, ms since process start: {Phases}")]
    private static partial void LogPolicyPrograms(ILogger log, string phases);

    [LoggerMessage(Level = LogLevel.Error, Message = "Policy programs failed to load: {Error}; policies cannot be loaded")]
    private static partial void LogPolicyProgramsFailed(ILogger log, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Opens whose hooks only post are matched at enter and exit, not at the exit alone (the exit-only program did not load: {Error})")]
    private static partial void LogExitOnlyUnavailable(ILogger log, string error);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Start-up phases, ms since process start: {Phases}")]
    private static partial void LogPhases(ILogger log, StartupPhases phases);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Policy directory {Dir} does not exist; no tracing policies")]
    private static partial void LogNoPolicyDir(ILogger log, string dir);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Events lost: {Counters}")]
    private static partial void LogLoss(ILogger log, string counters);

    [LoggerMessage(Level = LogLevel.Information, Message = "Agent stopped, all programs detached: {Counters}; process cache {Count} entries, {Evictions} evictions")]
    private static partial void LogStopped(ILogger log, string counters, int count, long evictions);

    [LoggerMessage(Level = LogLevel.Warning, Message = "libbpf: {Text}")]
    private static partial void LogLibbpf(ILogger log, string text);

    [LoggerMessage(Level = LogLevel.Critical, Message = "Agent failed: {Reason}")]
    private static partial void LogFatal(ILogger log, string reason);
}
