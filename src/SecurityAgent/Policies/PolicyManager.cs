using System.Diagnostics;
using Microsoft.Extensions.Logging;
using SecurityAgent.Kernel;
using SecurityAgent.Sensors;

namespace SecurityAgent.Policies;

/// <summary>Where a policy came from: a file of the policy directory, or a policy object of the cluster.</summary>
public sealed record PolicyOrigin(string Source, string Id, string Display)
{
    public static PolicyOrigin File(string path) => new("file", path, path);
    public static PolicyOrigin Crd(string uid, string display) => new("crd", uid, display);
}

/// <summary>What the kernel side does with plans (the engine, or a fake in tests).</summary>
public interface IPolicyLoader
{
    LoadedPolicy Load(PolicyPlan plan);
    void Unload(LoadedPolicy loaded);
    HookStats Stats(uint hookId);
}

public enum PolicyFailure { None, Invalid, Conflict, NotFound, NotReady, LoadFailed }

/// <summary>The result of giving the manager a source's policies: what loaded, and every problem as text.</summary>
public sealed record PolicyOutcome(IReadOnlyList<PolicyKey> Loaded, IReadOnlyList<string> Errors, IReadOnlyList<string> Warnings,
    PolicyFailure Failure = PolicyFailure.None)
{
    public bool Ok => Errors.Count == 0;
    public static PolicyOutcome Failed(string error, PolicyFailure failure = PolicyFailure.LoadFailed) => new([], [error], [], failure);
}

/// <summary>A policy as `policy list` shows it.</summary>
public sealed record PolicyStatus(PolicyKey Key, string Source, string Origin, bool Enabled, bool Loaded, bool Enforce, string? Error,
    IReadOnlyList<string> Warnings, IReadOnlyList<HookStatus> Hooks);

/// <summary>One hook of a loaded policy with its kernel counters; Actions is what its selectors can do, Enforce
/// whether the policy enforces them (else monitor mode).</summary>
public sealed record HookStatus(string Policy, string Hook, string Mechanism, string Target, HookStats Stats, Actions Actions = Actions.None, bool Enforce = false);

/// <summary>The one policy lifecycle. Sources (the policy directory, the cluster's policy objects) only say which
/// policies an origin holds now; the manager validates, compiles, loads the new version before unloading the old,
/// keeps the last good version when a new one fails, refuses a name another origin already holds (and loads the
/// waiting one when the holder goes), and applies the runtime switches (mode, enable, disable) of the API. Any
/// exception while handling one policy becomes that policy's error: it never reaches the caller.</summary>
public sealed partial class PolicyManager
{
    private ILogger log = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

    private sealed record Candidate(PolicyKey Key, PolicyPlan Plan, string Content, IReadOnlyList<string> Warnings);

    private sealed class Entry(PolicyKey key, PolicyOrigin origin, Candidate version)
    {
        public PolicyKey Key { get; } = key;
        public PolicyOrigin Origin { get; } = origin;
        public Candidate Version { get; set; } = version;
        public LoadedPolicy? Loaded { get; set; }
        public bool Enabled { get; set; } = true;
        public bool? EnforceOverride { get; set; }
        public string? Error { get; set; }
        public bool Enforce => EnforceOverride ?? Version.Plan.Enforce;
    }

    private readonly object _lock = new();
    private readonly Dictionary<PolicyKey, Entry> _entries = new();
    private readonly Dictionary<string, (PolicyOrigin Origin, List<Candidate> Candidates)> _origins = new();
    private Lazy<PolicyValidator>? _validator;
    /// <summary>How long the text being applied took to check (for the loaded message; written under the lock).</summary>
    private double _checkMs;
    private IPolicyLoader? _loader;

    /// <summary>The start-up policies checked while the policy programs loaded (<see cref="PolicyPrecheck"/>); null after.</summary>
    public PolicyPrecheck? Precheck { get; set; }

    /// <summary>The policy directory, for `policy add` and `policy delete` (policies added through the API are files there).</summary>
    public PolicyDirectory? Directory { get; internal set; }

    /// <summary>Starts the lifecycle once the kernel side is up: from here on sources can apply policies.</summary>
    public void Attach(PolicyValidator validator, IPolicyLoader loader, ILogger logger) => Attach(new Lazy<PolicyValidator>(validator), loader, logger);

    /// <summary>As <see cref="Attach(PolicyValidator, IPolicyLoader, ILogger)"/>, with a validator made on the first policy
    /// (the agent is ready without policies before the feature probe is through).</summary>
    public void Attach(Lazy<PolicyValidator> validator, IPolicyLoader loader, ILogger logger)
    {
        lock (_lock) (_validator, _loader, log) = (validator, loader, logger);
    }

    /// <summary>Checks and encodes a policy once without loading it. The first policy otherwise pays ~0.4 s of type
    /// loading, schema set-up and first calls of precompiled code; start-up runs this beside the verifier.</summary>
    /// <returns>False when the warm-up policy does not compile here (then the first policy is loaded cold).</returns>
    public static bool WarmUp(PolicyValidator validator)
    {
        if (validator.ValidateText("(warm-up)", WarmUpPolicy).FirstOrDefault()?.Plan is not { } plan)
            return false;
        PolicyEngine.Encode(plan);
        return true;
    }

    private const string WarmUpPolicy = """
        apiVersion: securityagent.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: warm-up
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
                values: ["/nonexistent-secagent-warm-up/"]
              matchBinaries:
              - operator: In
                values: ["/nonexistent-secagent-warm-up"]
              matchActions:
              - action: Sigkill
        """;

    /// <summary>Stops applying anything (the agent is stopping and the engine unloads what is loaded).</summary>
    public void Detach()
    {
        lock (_lock)
        {
            _loader = null;
            foreach (var e in _entries.Values) e.Loaded = null;
        }
    }

    /// <summary>The first policy waits for the feature probe outside the lock (status and list do not wait with it); a
    /// failed probe is reported by the validation that follows.</summary>
    private void AwaitValidator()
    {
        Lazy<PolicyValidator>? v;
        lock (_lock) v = _validator;
        if (v is null || v.IsValueCreated) return;
        try { _ = v.Value; }
        catch (Exception e) when (e is not OutOfMemoryException) { }
    }

    /// <summary>Checks policy text for this kernel without loading it (the API's dry run before it writes a file).</summary>
    public IReadOnlyList<ValidatedPolicy> Check(string source, string text)
    {
        Lazy<PolicyValidator>? v;
        lock (_lock) v = _validator;
        return v is null ? [PolicyValidator.Refused(source, "the agent is not ready")] : v.Value.ValidateText(source, text);
    }

    /// <summary>The origin now holds the policies of this text (one or more YAML documents).</summary>
    public PolicyOutcome Apply(PolicyOrigin origin, string text)
    {
        AwaitValidator();
        var prechecked = Precheck?.Take(origin.Display, text); // waits outside the lock, as for the validator
        lock (_lock)
        {
            if (_validator is null || _loader is null) return PolicyOutcome.Failed($"{origin.Display}: the agent is not ready", PolicyFailure.NotReady);
            try
            {
                long start = Stopwatch.GetTimestamp();
                var results = prechecked?.Results ?? _validator.Value.ValidateText(origin.Display, text);
                _checkMs = prechecked?.Ms ?? Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                var errors = new List<string>();
                var warnings = results.SelectMany(r => r.Warnings.Concat(r.Notes)).Select(w => w.ToString()).ToList();
                foreach (var w in warnings) LogWarning(log, w);
                var candidates = new List<Candidate>();
                var failedKeys = new HashSet<PolicyKey>();
                bool broken = false;
                foreach (var r in results)
                {
                    if (r.Ok && r.Plan is { } plan)
                    {
                        candidates.Add(new Candidate(r.Key!, plan, r.Content!, r.Warnings.Concat(r.Notes).Select(w => w.ToString()).ToList()));
                        continue;
                    }
                    errors.AddRange(r.Diagnostics.Select(d => Error(d.ToString())));
                    if (r.Ok) errors.Add(Error($"{origin.Display}: policy {r.Key}: cannot be compiled without this kernel's tracepoint formats"));
                    if (r.Key is { } k) failedKeys.Add(k);
                    else if (r.Diagnostics.Count > 0) broken = true; // a syntax error may hide which policy the document was
                }
                return Reconcile(origin, candidates, failedKeys, broken, errors, warnings);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                return Failure(origin, $"{origin.Display}: internal error ({e.GetType().Name}: {e.Message}); what was loaded from it stays loaded");
            }
        }
    }

    /// <summary>The origin exists but could not be read (refused file, limit): what it had loaded stays loaded.</summary>
    public PolicyOutcome Fail(PolicyOrigin origin, string reason)
    {
        lock (_lock) return Failure(origin, new PolicyDiagnostic(origin.Display, SourcePos.Start, "", reason).ToString());
    }

    private PolicyOutcome Failure(PolicyOrigin origin, string error)
    {
        LogError(log, error);
        foreach (var e in _entries.Values.Where(e => e.Origin.Id == origin.Id))
            LogKeptOld(log, e.Key.ToString());
        return PolicyOutcome.Failed(error);
    }

    /// <summary>The origin is gone (file deleted, object deleted from the cluster): its policies are unloaded.</summary>
    public void Remove(PolicyOrigin origin, string why)
    {
        lock (_lock)
        {
            _origins.Remove(origin.Id);
            foreach (var e in _entries.Values.Where(e => e.Origin.Id == origin.Id).ToList())
                Drop(e, why);
        }
    }

    private PolicyOutcome Reconcile(PolicyOrigin origin, List<Candidate> candidates, HashSet<PolicyKey> failedKeys, bool broken, List<string> errors, List<string> warnings)
    {
        var loaded = new List<PolicyKey>();
        var now = new HashSet<PolicyKey>();
        var accepted = new List<Candidate>();
        foreach (var c in candidates)
        {
            if (!now.Add(c.Key))
            {
                errors.Add(Error($"{origin.Display}: policy {c.Key} is defined twice; the second definition is not loaded"));
                continue;
            }
            accepted.Add(c);
            if (_entries.TryGetValue(c.Key, out var held) && held.Origin.Id != origin.Id)
            {
                errors.Add(Error($"{origin.Display}: policy {c.Key} is already loaded from {held.Origin.Display}; not loaded from here (it loads when that one goes)"));
                continue;
            }
            if (held is not null && held.Version.Content == c.Content && (held.Loaded is not null || !held.Enabled))
            {
                held.Version = c; // same content: nothing to reload
                loaded.Add(c.Key);
                continue;
            }
            var entry = held ?? new Entry(c.Key, origin, c);
            if (Install(entry, c)) loaded.Add(c.Key);
            else errors.Add(entry.Error!);
        }
        _origins[origin.Id] = (origin, accepted);
        foreach (var e in _entries.Values.Where(e => e.Origin.Id == origin.Id && !now.Contains(e.Key)).ToList())
        {
            if (broken || failedKeys.Contains(e.Key))
            {
                LogKeptOld(log, e.Key.ToString()); // a broken edit never unloads a good policy
                continue;
            }
            Drop(e, $"no longer in {origin.Display}");
        }
        return new PolicyOutcome(loaded, errors, warnings);
    }

    /// <summary>Loads a new version of an entry (attached before the old one is detached); on failure the old one stays.</summary>
    private bool Install(Entry entry, Candidate version)
    {
        var plan = entry.EnforceOverride is { } enforce ? version.Plan with { Enforce = enforce } : version.Plan;
        if (!entry.Enabled)
        {
            entry.Version = version;
            _entries[entry.Key] = entry;
            return true;
        }
        try
        {
            long start = Stopwatch.GetTimestamp();
            var loaded = _loader!.Load(plan);
            var kernelMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (entry.Loaded is { } old) Unload(old);
            entry.Loaded = loaded;
            entry.Version = version;
            entry.Error = null;
            _entries[entry.Key] = entry;
            LogLoaded(log, entry.Key.ToString(), entry.Origin.Display, plan.Enforce ? "enforce" : "monitor", Math.Round(_checkMs, 1), Math.Round(kernelMs, 1),
                string.Join(", ", plan.Hooks.Select(h => $"{h.Name} via {KernelFeatures.MechanismName(h.Mechanism)}")));
            return true;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            entry.Error = Error($"{entry.Origin.Display}: policy {entry.Key} failed to load: {e.Message}"
                + (entry.Loaded is not null ? "; the previous version stays loaded" : ""));
            if (entry.Loaded is not null) _entries[entry.Key] = entry;
            return false;
        }
    }

    private void Drop(Entry e, string why)
    {
        if (e.Loaded is { } l) Unload(l);
        _entries.Remove(e.Key);
        LogUnloaded(log, e.Key.ToString(), why);
        Promote(e.Key);
    }

    /// <summary>A name became free: the first other origin that also defines it gets it.</summary>
    private void Promote(PolicyKey key)
    {
        foreach (var (origin, candidates) in _origins.Values.OrderBy(o => o.Origin.Id, StringComparer.Ordinal))
            if (candidates.FirstOrDefault(c => c.Key == key) is { } c)
            {
                Install(new Entry(key, origin, c), c);
                return;
            }
    }

    private void Unload(LoadedPolicy loaded)
    {
        try { _loader?.Unload(loaded); }
        catch (Exception e) when (e is not OutOfMemoryException) { LogError(log, $"policy {loaded.Plan.Name}: unload failed: {e.Message}"); }
    }

    private string Error(string message)
    {
        LogError(log, message);
        return message;
    }

    /// <summary>The entry a name refers to: "name", or "namespace/name" for a namespaced policy.</summary>
    private Entry? Find(string name) =>
        _entries.Values.FirstOrDefault(e => e.Key.ToString() == name) ?? (_entries.Values.Count(e => e.Key.Name == name) == 1 ? _entries.Values.First(e => e.Key.Name == name) : null);

    /// <summary>Runtime switch (as `tetra tracingpolicy` does): kept until the agent restarts or the policy goes.</summary>
    public PolicyOutcome SetMode(string name, bool enforce) => Switch(name, e =>
    {
        var before = e.EnforceOverride;
        e.EnforceOverride = enforce;
        if (e.Loaded is not null && !Install(e, e.Version))
        {
            e.EnforceOverride = before;
            return e.Error;
        }
        return null;
    });

    public PolicyOutcome Disable(string name) => Switch(name, e =>
    {
        if (e.Loaded is { } l) Unload(l);
        e.Loaded = null;
        e.Enabled = false;
        LogUnloaded(log, e.Key.ToString(), "disabled");
        return null;
    });

    public PolicyOutcome Enable(string name) => Switch(name, e =>
    {
        if (e.Enabled) return null;
        e.Enabled = true;
        return Install(e, e.Version) ? null : e.Error;
    });

    private PolicyOutcome Switch(string name, Func<Entry, string?> change)
    {
        lock (_lock)
        {
            if (_loader is null) return PolicyOutcome.Failed("the agent is not ready", PolicyFailure.NotReady);
            if (Find(name) is not { } e) return PolicyOutcome.Failed($"no policy {name}", PolicyFailure.NotFound);
            return change(e) is { } error ? PolicyOutcome.Failed(error) : new PolicyOutcome([e.Key], [], []);
        }
    }

    /// <summary>The origin a policy was loaded from, for the API's delete.</summary>
    public PolicyOrigin? OriginOf(string name)
    {
        lock (_lock) return Find(name)?.Origin;
    }

    /// <summary>Every policy, with its hooks' kernel counters.</summary>
    public IReadOnlyList<PolicyStatus> List()
    {
        lock (_lock)
            return _entries.Values.OrderBy(e => e.Key.ToString(), StringComparer.Ordinal).Select(e => new PolicyStatus(e.Key, e.Origin.Source, e.Origin.Display,
                e.Enabled, e.Loaded is not null, e.Enforce, e.Error, e.Version.Warnings, Hooks(e))).ToList();
    }

    /// <summary>The kernel counters of every loaded hook (status, metrics, the stats file, the log at stop).</summary>
    public IReadOnlyList<HookStatus> HookStats()
    {
        lock (_lock) return _entries.Values.SelectMany(Hooks).ToList();
    }

    private List<HookStatus> Hooks(Entry e) =>
        e.Loaded is not { } l || _loader is null ? []
        : l.HookIds.Select((id, i) => new HookStatus(e.Key.Name, l.Plan.Hooks[i].Name, KernelFeatures.MechanismName(l.Plan.Hooks[i].Mechanism),
            l.Plan.Hooks[i].Target, _loader.Stats(id), l.Plan.Hooks[i].Selectors.Aggregate(Actions.None, (a, sel) => a | sel.Actions), e.Enforce)).ToList();

    /// <summary>Attached to the kernel (between <see cref="Attach"/> and <see cref="Detach"/>).</summary>
    public bool Ready
    {
        get { lock (_lock) return _loader is not null; }
    }

    public int LoadedCount
    {
        get { lock (_lock) return _entries.Values.Count(e => e.Loaded is not null); }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Policy {Name} loaded from {Origin} (mode {Mode}): {Hooks}; checked in {CheckMs} ms, loaded in {LoadMs} ms")]
    private static partial void LogLoaded(ILogger log, string name, string origin, string mode, double checkMs, double loadMs, string hooks);

    [LoggerMessage(Level = LogLevel.Information, Message = "Policy {Name} unloaded ({Why})")]
    private static partial void LogUnloaded(ILogger log, string name, string why);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Policy {Name}: the new version is broken; the last good version stays loaded")]
    private static partial void LogKeptOld(ILogger log, string name);

    [LoggerMessage(Level = LogLevel.Error, Message = "Policy error: {Diagnostic}")]
    private static partial void LogError(ILogger log, string diagnostic);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Policy warning: {Diagnostic}")]
    private static partial void LogWarning(ILogger log, string diagnostic);
}

/// <summary>The engine as the manager's loader.</summary>
public sealed class EngineLoader(PolicyEngine engine) : IPolicyLoader
{
    public LoadedPolicy Load(PolicyPlan plan) => engine.Load(plan);
    public void Unload(LoadedPolicy loaded) => engine.Unload(loaded);
    public HookStats Stats(uint hookId) => engine.Stats(hookId);
}
