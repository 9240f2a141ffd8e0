using System.Collections.Concurrent;
using SecurityAgent.Bpf;
using SecurityAgent.Interop;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using SecurityAgent.Sensors;

namespace SecurityAgent.Hosting;

/// <summary>The kernel side of start-up, begun as soon as the options are bound and run on threads of its own while the
/// host, the API and the exporters are built: the shared maps and the process sensor's programs (what "ready" needs
/// without policies), then the policy programs in the background (the verifier's time on those is most of start-up;
/// a policy waits for them, so with policies at start the agent is ready once they enforce), and beside them the
/// feature probe; with policies at start, their check and encoding beside the verifier (<see cref="PolicyPrecheck"/>) and
/// then the objects their hooks need beyond the policy programs. <see cref="AgentService"/> takes what was loaded; whatever
/// it does not take is freed on dispose.</summary>
public sealed class KernelStart : IDisposable
{
    private readonly ConcurrentQueue<(int Level, string Text)> _early = new();
    private readonly Task<KernelFeatures> _features;
    private readonly Task<(ProcessSensor Sensor, PolicyEngine Engine)> _sensors;
    private readonly Task _warmUp;
    private readonly BackgroundLoads? _background;
    private bool _taken;
    private volatile HashSet<Mechanism>? _startMechanisms;

    private KernelStart(AgentOptions options, StartupPhases phases)
    {
        LibbpfLog.Sink = (level, text) => _early.Enqueue((level, text)); // until the agent's logger takes over
        LoaderMemory.KeepBetweenLoads(); // until StartupMemory.Release, once the background loads are done
        // Without policies at start, "ready" waits for neither the probe nor the policy programs: they load at the
        // lowest priority until then. With policies, ready means they enforce, so everything loads at once.
        _background = HasPolicyFiles(options.PolicyDir) ? null : new BackgroundLoads();
        _features = ParallelLoad.Start(() =>
        {
            var features = FeatureProbe.Run();
            phases.Mark("probe");
            return features;
        }, _background);
        Validator = _features.ContinueWith(t => new PolicyValidator(t.GetAwaiter().GetResult()), CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        // With policies at start, theirs is the first check: it runs while the verifier checks the programs.
        if (_background is null)
        {
            Precheck = PolicyPrecheck.Start(options.PolicyDir, Validator,
                plans => _startMechanisms = plans.SelectMany(p => p.Hooks).Select(h => h.Mechanism).ToHashSet());
            Precheck.Completion.ContinueWith(_ => phases.Mark("policy-precheck"), CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
        _sensors = ParallelLoad.Start(() =>
        {
            if (Libc.geteuid() != 0)
                throw new UnauthorizedAccessException("the agent loads BPF programs and must run as root (or with CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN)");
            KernelMounts.EnsureTraceFs();
            var maps = ProcessSensor.CreateMaps(options.RingBufferBytes);
            phases.Mark("maps");
            // The policy maps are created beside the process sensor's load; "ready" waits for neither them nor the
            // policy programs loaded on them when the agent starts without policies.
            var policyMaps = ParallelLoad.Start(() =>
            {
                var created = PolicySensor.CreateMaps(maps);
                phases.Mark("policy-maps");
                return created;
            }, _background);
            var sensor = ParallelLoad.Beside(policyMaps,
                () => ProcessSensor.Load(maps, options.EnableProcessEnvironmentVariables, () => _features.GetAwaiter().GetResult()),
                afterBeside: maps.Dispose);
            phases.Mark("process-sensor");
            PolicyEngine? engine = null;
            Task<PolicySensor>? programs = null;
            try
            {
                engine = new PolicyEngine(sensor, Environment.ProcessId, options.DebugUserspaceFilter);
                programs = ParallelLoad.Start(() =>
                {
                    var loaded = PolicySensor.Load(policyMaps.GetAwaiter().GetResult(), exitOnly: !options.DebugNoExitOnly);
                    phases.Mark("policy-programs");
                    return loaded;
                }, _background);
                engine.Prepare(programs);
                if (Precheck is { } precheck)
                    Task.WhenAll(programs, precheck.Completion).ContinueWith(_ =>
                    {
                        if (programs.IsCompletedSuccessfully && _startMechanisms is { } mechanisms)
                            programs.Result.Preload(mechanisms);
                    }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                return (sensor, engine);
            }
            catch
            {
                if (programs is null)
                    ParallelLoad.DisposeWhenDone(policyMaps);
                engine?.Dispose(); // after the policy programs' load, which reads the maps
                sensor.Dispose();
                throw;
            }
        });
        // The first policy's check and encoding run cold code (~0.4 s): done once the probe is known and the verifier is
        // through, so that it does not take a core from what "ready" waits for. With policies at start, their own check
        // (Precheck, beside the verifier) is the warm-up.
        _warmUp = Task.WhenAll(_features, _sensors).ContinueWith(_ =>
        {
            _sensors.Result.Engine.AwaitPrograms();
            if (_background is null) return;
            PolicyManager.WarmUp(Validator.Result);
            phases.Mark("policy-warm-up");
        }, CancellationToken.None,
            TaskContinuationOptions.OnlyOnRanToCompletion | TaskContinuationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>The policy check for this kernel, once the feature probe is through.</summary>
    public Task<PolicyValidator> Validator { get; }

    /// <summary>The start-up policies' check, begun beside the verifier (null when the agent started without policies).</summary>
    public PolicyPrecheck? Precheck { get; }

    /// <summary>Done when the policy programs are loaded and, when the agent started without policies, the first
    /// policy's cold code has run (after "ready").</summary>
    public Task Background => _warmUp;

    /// <summary>Starts loading; the caller has claimed the API socket (a second agent is refused before this).</summary>
    public static KernelStart Begin(AgentOptions options, StartupPhases phases) => new(options, phases);

    /// <summary>The loaded kernel objects, now owned by the caller, and the feature probe's answer: done already when
    /// the agent started with policies, still running (at the lowest priority until <see cref="Raise"/>) when not.
    /// libbpf's messages so far go to <paramref name="sink"/>, and from now on too. Throws what the loading threw.</summary>
    public async Task<(Task<KernelFeatures> Features, ProcessSensor Sensor, PolicyEngine Engine)> TakeAsync(Action<int, string> sink)
    {
        try
        {
            if (_background is null)
                await _features;
            var (sensor, engine) = await _sensors;
            _taken = true;
            return (_features, sensor, engine);
        }
        finally
        {
            LibbpfLog.Sink = sink;
            while (_early.TryDequeue(out var m)) sink(m.Level, m.Text);
        }
    }

    /// <summary>The agent is ready: what still loads runs at the process's priority from now on.</summary>
    public void Raise() => _background?.Raise();

    private static bool HasPolicyFiles(string dir)
    {
        try { return Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any(PolicyFiles.IsPolicyFile); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return true; }
    }

    public void Dispose()
    {
        Raise(); // the agent stops before it was ready: what still loads is awaited below
        try { _features.Wait(); } catch (AggregateException) { }
        try { _warmUp.Wait(); } catch (AggregateException) { } // cancelled when the probe failed
        try
        {
            var (sensor, engine) = _sensors.GetAwaiter().GetResult();
            if (!_taken)
            {
                engine.Dispose();
                sensor.Dispose();
            }
        }
        catch (Exception) { } // a failed load freed what it had made; TakeAsync threw it to the agent
    }
}
