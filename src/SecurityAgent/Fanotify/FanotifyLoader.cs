using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using SecurityAgent.Events;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using SecurityAgent.Sensors;

namespace SecurityAgent.Fanotify;

/// <summary>The policy loader in front of the engine: hooks placed on fanotify permission events go to one
/// <see cref="FanotifyEnforcer"/> holding the rules of every loaded policy, every other hook to the engine. A fanotify
/// hook gets a hook id above the kernel's range and a <see cref="HookInfo"/> in the engine's table, and each of its
/// reports becomes a policy record posted to the pipeline, so its event is the one the LSM path makes (process_lsm,
/// action, enforced). Changing the rules starts a new enforcer before the old one is disposed: both answer in between,
/// so no open escapes a rule that stays.</summary>
public sealed partial class FanotifyLoader : IPolicyLoader, IDisposable
{
    /// <summary>Fanotify hook ids start here, far above the kernel's hook ids.</summary>
    public const uint FirstHookId = 0x8000_0000;

    private readonly IPolicyLoader _inner;
    private readonly ConcurrentDictionary<uint, HookInfo> _hooks;
    private readonly Func<PolicyKernelEvent, bool> _post;
    private readonly FanotifyOptions _options;
    private readonly ILogger _log;
    private readonly object _lock = new();
    private readonly Dictionary<LoadedPolicy, (LoadedPolicy? Inner, List<Placed> Hooks)> _policies = [];
    private readonly ConcurrentDictionary<string, (Placed Hook, int Selector)> _ruleOwners = new();
    private FanotifyEnforcer? _enforcer;
    private FanotifyStats? _retired;
    private uint _nextId = FirstHookId;

    private sealed class Placed(uint id, HookPlan hook, List<(FanotifyRule Rule, int Selector)> rules, int pathSlot)
    {
        public uint Id { get; } = id;
        public HookPlan Hook { get; } = hook;
        public List<(FanotifyRule Rule, int Selector)> Rules { get; } = rules;
        public int PathSlot { get; } = pathSlot;
        public long Seen, Posted, Enforced;
    }

    /// <param name="post">Hands a policy record to the pipeline (any thread); false when it was dropped.</param>
    public FanotifyLoader(IPolicyLoader inner, ConcurrentDictionary<uint, HookInfo> hooks, Func<PolicyKernelEvent, bool> post, FanotifyOptions options)
    {
        (_inner, _hooks, _post, _options) = (inner, hooks, post, options);
        _log = options.Logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
    }

    /// <summary>Answers, defaults and latency of every enforcer this loader ran; null when none ran.</summary>
    public FanotifyStats? Counters
    {
        get
        {
            lock (_lock) return Sum(_retired, _enforcer?.Counters);
        }
    }

    /// <summary>Marks of the running enforcer (empty when no policy uses fanotify).</summary>
    public IReadOnlyList<Mark> Marks
    {
        get
        {
            lock (_lock) return _enforcer?.Plan.Initial.Marks ?? [];
        }
    }

    public LoadedPolicy Load(PolicyPlan plan)
    {
        if (!plan.Hooks.Any(h => h.Mechanism == Mechanism.FanotifyPerm))
            return _inner.Load(plan);
        lock (_lock)
        {
            var rest = plan with { Hooks = plan.Hooks.Where(h => h.Mechanism != Mechanism.FanotifyPerm).ToList() };
            var inner = rest.Hooks.Count > 0 ? _inner.Load(rest) : null;
            var combined = new LoadedPolicy { Plan = plan };
            var placed = new List<Placed>();
            try
            {
                int k = 0;
                foreach (var hook in plan.Hooks)
                {
                    if (hook.Mechanism != Mechanism.FanotifyPerm)
                    {
                        combined.HookIds.Add(inner!.HookIds[k++]);
                        continue;
                    }
                    var id = _nextId++;
                    var slot = hook.Args.FirstOrDefault(a => a.KernelType is ArgType.File or ArgType.Path or ArgType.Bprm or ArgType.KString or ArgType.String)?.Slot ?? -1;
                    placed.Add(new Placed(id, hook, FanotifyPolicies.Rules(plan, hook, $"{plan.Name}#{id - FirstHookId}"), slot));
                    combined.HookIds.Add(id);
                }
                Restart(_policies.Values.SelectMany(p => p.Hooks).Concat(placed));
            }
            catch
            {
                if (inner is not null) _inner.Unload(inner);
                throw;
            }
            foreach (var p in placed)
            {
                foreach (var (rule, selector) in p.Rules) _ruleOwners[rule.Id] = (p, selector);
                _hooks[p.Id] = new HookInfo(p.Id, plan.Name, p.Hook, plan.Enforce, plan, false);
            }
            _policies[combined] = (inner, placed);
            return combined;
        }
    }

    public void Unload(LoadedPolicy loaded)
    {
        lock (_lock)
        {
            if (!_policies.Remove(loaded, out var entry))
            {
                _inner.Unload(loaded);
                return;
            }
            if (entry.Inner is not null) _inner.Unload(entry.Inner);
            try
            {
                Restart(_policies.Values.SelectMany(p => p.Hooks));
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // The others' rules could not be re-marked (a path went away oddly): stop rather than keep the unloaded rules.
                LogRestartFailed(_log, e.Message);
                Retire();
            }
            foreach (var p in entry.Hooks)
            {
                foreach (var (rule, _) in p.Rules) _ruleOwners.TryRemove(rule.Id, out _);
                _hooks.TryRemove(p.Id, out _);
            }
        }
    }

    public HookStats Stats(uint hookId)
    {
        if (hookId < FirstHookId) return _inner.Stats(hookId);
        lock (_lock)
        {
            var p = _policies.Values.SelectMany(x => x.Hooks).FirstOrDefault(h => h.Id == hookId);
            return p is null ? new HookStats(0, 0, 0, 0, 0)
                : new HookStats((ulong)Interlocked.Read(ref p.Seen), (ulong)Interlocked.Read(ref p.Seen), (ulong)Interlocked.Read(ref p.Posted), (ulong)Interlocked.Read(ref p.Enforced), 0);
        }
    }

    private void Restart(IEnumerable<Placed> hooks)
    {
        var rules = hooks.SelectMany(h => h.Rules.Select(r => r.Rule)).ToList();
        var next = rules.Count == 0 ? null : FanotifyEnforcer.Start(rules, OnReport, _options);
        Retire();
        _enforcer = next;
    }

    private void Retire()
    {
        if (_enforcer is null) return;
        _enforcer.Dispose();
        _retired = Sum(_retired, _enforcer.Counters);
        _enforcer = null;
    }

    /// <summary>Reporter thread of the enforcer: one policy record per report, as the kernel would have posted it.</summary>
    private void OnReport(FanotifyReport r)
    {
        if (!_ruleOwners.TryGetValue(r.RuleId, out var owner)) return; // its policy was unloaded meanwhile
        var (p, selector) = owner;
        Interlocked.Increment(ref p.Seen);
        if (r.Enforced) Interlocked.Increment(ref p.Enforced);
        var sel = selector < p.Hook.Selectors.Count ? p.Hook.Selectors[selector] : null;
        var actions = sel?.Actions ?? Actions.Post;
        int n = p.Hook.Args.Count;
        var strings = new byte[n][];
        for (int i = 0; i < n; i++) strings[i] = i == p.PathSlot ? System.Text.Encoding.UTF8.GetBytes(r.Path) : [];
        var e = new PolicyKernelEvent(r.Ktime, r.Pid, r.Pid, p.Id, 0, selector,
            r.Enforced ? PolicyWire.EventFlags.Enforced : 0, (uint)actions, new ulong[n], strings);
        if (_post(e)) Interlocked.Increment(ref p.Posted);
    }

    private static FanotifyStats? Sum(FanotifyStats? a, FanotifyStats? b) => a is null ? b : b is null ? a : new(
        a.Events + b.Events, a.Allowed + b.Allowed, a.Denied + b.Denied, a.Exempt + b.Exempt,
        a.Defaulted.Zip(b.Defaulted, (x, y) => x + y).ToList(), a.LateDecisions + b.LateDecisions, a.Reports + b.Reports,
        a.ReportsDropped + b.ReportsDropped, a.LatencyBuckets.Zip(b.LatencyBuckets, (x, y) => x + y).ToList(), Math.Max(a.MaxLatencyNs, b.MaxLatencyNs));

    public void Dispose()
    {
        lock (_lock) Retire();
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "fanotify: the remaining rules could not be applied after an unload ({Error}); fanotify enforcement stopped")]
    private static partial void LogRestartFailed(ILogger log, string error);
}
