using System.Collections.Concurrent;
using SecurityAgent.Bpf;
using SecurityAgent.Events;
using SecurityAgent.Kernel;
using SecurityAgent.Sensors;

namespace SecurityAgent.Policies;

/// <summary>What the pipeline needs to know about a hook id found in a kernel event.</summary>
public sealed record HookInfo(uint HookId, string PolicyName, HookPlan Hook, bool Enforce, PolicyPlan Plan, bool UserSpaceFilter);

/// <summary>Whether the policy programs are in the kernel yet (start-up loads them after the lifecycle programs).</summary>
public enum PolicyProgramsState { Loading, Loaded, Failed }

public sealed record PolicyKernelCounters(ulong EnforcerNotificationsFull, ulong EnforcerNotificationsReplaced, ulong SocktrackEvictions,
    ulong DataRecordsRingFull = 0, ulong DataRecordsUnreadable = 0);

/// <summary>A policy in the kernel: its hook ids and what the engine reserved for it.</summary>
public sealed class LoadedPolicy
{
    public required PolicyPlan Plan { get; init; }
    public List<uint> HookIds { get; } = [];
    internal List<PlacedHook> Placed { get; } = [];
    internal List<int> FollowBits { get; } = [];
    internal uint ScopeId { get; set; }
    internal uint PolicyId { get; set; }
}

/// <summary>Loads compiled policies into the policy programs. Every attach point (a tracepoint, a kprobe'd
/// function, an LSM hook, the cgroup connect pair) has one program attachment, whatever the number of policy
/// hooks there, and a versioned configuration: a change writes a complete new generation (configuration,
/// selector records, value-set entries), flips the point to it with one map update, waits for the programs
/// still running on the old one, then deletes it. A policy that does not fit is refused before anything is
/// written; a failed change leaves every other policy as it was. Thread-safe; <see cref="Hooks"/> is read by
/// the pipeline while policies change.</summary>
public sealed class PolicyEngine : Pipeline.EventPipeline.IDenySet, IDisposable
{
    /// <summary>Values (of all its selectors) one policy may put into one value-set map.</summary>
    public const int MaxValuesPerPolicy = 16384;

    private sealed class AttachPoint(uint id, Mechanism mechanism, string target)
    {
        public uint Id => id;
        public Mechanism Mechanism => mechanism;
        public string Target => target;
        public string Name => $"{KernelFeatures.MechanismName(mechanism)} {target}";
        public uint Gen { get; set; }
        public List<PlacedHook> Hooks { get; set; } = [];
        public PointGeneration? Active { get; set; }
        public List<BpfLink> Links { get; } = [];

        /// <summary>The return probes' exit program (one of <see cref="Links"/>), while the point has return hooks.</summary>
        public BpfLink? ReturnLink { get; set; }

        /// <summary>Its programs are those of an open matched at the exit alone (<see cref="PolicyWire.PointFlags.Only"/>).</summary>
        public bool ExitOnly { get; set; }
    }

    private static bool IsExitOnly(PointGeneration gen) => gen.Layout.Flags.HasFlag(PolicyWire.PointFlags.Only);

    private readonly object _lock = new();
    private readonly ProcessSensor _process;
    private readonly bool _userSpaceFilter;
    private PolicySensor? _sensor;
    private Task<PolicySensor>? _loading;
    private readonly Stack<uint> _freeHookIds = new(Enumerable.Range(0, Contract.MaxHooks).Select(i => (uint)(Contract.MaxHooks - 1 - i)));
    private readonly Stack<uint> _freePointIds = new(Enumerable.Range((int)PolicyWire.FixedPoint.FirstDynamic, Contract.MaxPoints - (int)PolicyWire.FixedPoint.FirstDynamic)
        .Select(i => (uint)(Contract.MaxPoints - 1 - i + (int)PolicyWire.FixedPoint.FirstDynamic)));
    private readonly Dictionary<string, AttachPoint> _points = new();
    private readonly Dictionary<string, byte> _resolveIds = new();
    private readonly Dictionary<uint, (AttachPoint Point, ulong SeenBase)> _hookPoints = new();
    private readonly Dictionary<string, int> _mapEntries = new();
    private uint _nextPolicyId = 1;
    private ulong _usedFollowBits;
    private readonly HashSet<LoadedPolicy> _loaded = [];
    private readonly List<LoadedPolicy> _loaderPolicies = [];
    private IReadOnlyList<BpfLink> _loaderLinks = [];
    private readonly List<LoadedPolicy> _enforcerPolicies = [];
    private readonly Dictionary<uint, uint> _enforcedCounts = new();
    private IReadOnlyList<BpfLink> _enforcerLinks = [];

    public PolicyEngine(ProcessSensor process, int agentTgid, bool userSpaceFilter = false)
    {
        _process = process;
        _userSpaceFilter = userSpaceFilter;
        process.ExcludeFromPolicies(agentTgid);
    }

    public ConcurrentDictionary<uint, HookInfo> Hooks { get; } = new();

    /// <summary>Set when the agent knows pods: scoped policies (podSelector, namespace) apply to their pods only;
    /// without it a scoped policy applies to nothing.</summary>
    public ScopeManager? Scopes { get; set; }

    /// <summary>Attach points with policy hooks, and their program attachments (for tests and status).</summary>
    public IReadOnlyList<(string Point, int Hooks, int Links, uint Generation)> AttachPoints
    {
        get { lock (_lock) return _points.Values.Select(p => (p.Name, p.Hooks.Count, p.Links.Count, p.Gen)).ToList(); }
    }

    /// <summary>Re-reads pods and cgroups into the scoped policies' cgroup sets.</summary>
    public void RefreshScopes()
    {
        lock (_lock)
            Scopes?.Refresh(_sensor); // fanotify's pod scopes need no policy programs, only the pods
    }

    /// <summary>Takes the policy programs' load, begun on the shared maps beside the process sensor's (verification takes
    /// a while): the first policy waits for it (outside the engine's lock), later ones only write maps and attach.</summary>
    public void Prepare(Task<PolicySensor> loading)
    {
        lock (_lock) _loading ??= loading;
    }

    /// <summary>Loading: the policy programs' load has not finished; Failed: it threw (policies then fail to load with
    /// its error).</summary>
    public PolicyProgramsState ProgramsState
    {
        get
        {
            lock (_lock)
                return _sensor is not null || _loading is null ? PolicyProgramsState.Loaded
                    : !_loading.IsCompleted ? PolicyProgramsState.Loading
                    : _loading.IsCompletedSuccessfully ? PolicyProgramsState.Loaded : PolicyProgramsState.Failed;
        }
    }

    /// <summary>Why the policy programs' load failed (null while it runs or when it succeeded).</summary>
    public string? ProgramsError => _loading?.Exception?.InnerException?.Message;

    /// <summary>The policy programs, waiting for their load when it is still under way (called under the lock, after
    /// <see cref="AwaitPrograms"/> waited outside it).</summary>
    private PolicySensor Sensor() => _sensor ??= _loading?.GetAwaiter().GetResult() ?? PolicySensor.Load(PolicySensor.CreateMaps(_process.Maps));

    /// <summary>Waits, without the engine's lock (status and counters stay answerable), for the policy programs' load.</summary>
    public void AwaitPrograms()
    {
        Task<PolicySensor>? loading;
        lock (_lock) loading = _sensor is null ? _loading : null;
        ((IAsyncResult?)loading)?.AsyncWaitHandle.WaitOne();
    }

    /// <summary>The map of the calls the enter hooks note for the after-call match (Fanotify.AfterCallNotes maps it): one
    /// of the policy maps, so this waits for the policy programs' load.</summary>
    public int AfterNotesFd() => PolicyMap(Bpf.BpfNames.Maps.AfterNotes).Fd;

    /// <summary>sa_io_workers: io_uring worker threads by thread id → their process (bpf/include/aftercall.h).</summary>
    public int IoWorkersFd() => PolicyMap(Bpf.BpfNames.Maps.IoWorkers).Fd;

    private Bpf.BpfMap PolicyMap(string name)
    {
        AwaitPrograms();
        lock (_lock) return Sensor().Map(name);
    }

    /// <summary>Whether opens whose hooks only post are matched at their exit alone: "loaded", "loading", or why not (this
    /// kernel refused the program: they are matched at enter and exit). Null before the policy programs are loaded.</summary>
    public string? ExitOnlyState
    {
        get
        {
            var s = LoadedSensor();
            return s is null ? null : !s.ExitOnlySettled ? "loading" : s.ExitOnlyError is { } e ? "unavailable: " + e : "loaded";
        }
    }

    /// <summary>Which exit-only program this kernel took (<see cref="PolicySensor.ExitOnlyProgram"/>).</summary>
    public string? ExitOnlyProgram => LoadedSensor()?.ExitOnlyProgram;

    /// <summary>The policy sensor once its programs have loaded; null before.</summary>
    private PolicySensor? LoadedSensor()
    {
        lock (_lock) return _sensor ?? (_loading is { IsCompletedSuccessfully: true } l ? l.Result : null);
    }

    /// <summary>Waits for the exit-only program's load (after <see cref="AwaitPrograms"/>; never throws).</summary>
    public void AwaitExitOnly() => LoadedSensor()?.AwaitExitOnly();

    /// <summary>The policy objects loaded so far (<see cref="PolicySensor.LoadedObjects"/>).</summary>
    public IReadOnlyList<string> PolicyObjects
    {
        get => LoadedSensor()?.LoadedObjects ?? [];
    }

    /// <summary>Encodes a plan as a load would, writing nothing (<see cref="PolicyManager.WarmUp"/>).</summary>
    public static void Encode(PolicyPlan plan)
    {
        PolicyEncoding.ValueCounts(plan);
        var hooks = plan.Hooks.Select((h, i) => new PlacedHook((uint)i, 1, plan, h, plan.Enforce, 0, h.Selectors.Select(_ => -1).ToList())).ToList();
        PolicyEncoding.Generation(1, 1, PolicyEncoding.Layout(hooks, "warm-up"), hooks, PathArguments.Files);
    }

    public LoadedPolicy Load(PolicyPlan plan)
    {
        AwaitPrograms();
        lock (_lock)
        {
            plan = UsdtNotes.ResolveSets(plan);
            if (_userSpaceFilter && !UserSpaceSelectors.Supports(plan, out var why))
                throw new NotSupportedException($"policy {plan.Name}: --debug-userspace-filter: {why}");
            foreach (var (map, n) in PolicyEncoding.ValueCounts(plan))
                if (n > MaxValuesPerPolicy)
                    throw new PolicyLimitException($"policy {plan.Name}: {n} values for {map}, at most {MaxValuesPerPolicy} per policy");
            if (_freeHookIds.Count < plan.Hooks.Count)
                throw new PolicyLimitException($"policy {plan.Name}: {plan.Hooks.Count} hooks, but only {_freeHookIds.Count} of {Contract.MaxHooks} hook ids are free");
            var sensor = Sensor();
            uint policyId = _nextPolicyId++;
            bool enforce = plan.Enforce && !_userSpaceFilter;
            var loaded = new LoadedPolicy { Plan = plan, PolicyId = policyId };
            try
            {
                if (plan.Scope is not null)
                {
                    // The scope's id is the policy's; its cgroup set is filled before any hook uses it.
                    loaded.ScopeId = policyId;
                    Scopes?.Add(policyId, plan.Scope, sensor);
                }
                var changes = new Dictionary<AttachPoint, List<PlacedHook>>();
                foreach (var hook in plan.Hooks)
                {
                    var id = _freeHookIds.Pop();
                    loaded.HookIds.Add(id);
                    // followForks from host pids; for namespace pids the in-kernel check alone applies.
                    var follow = hook.Selectors.Select(sel => sel.FollowForks && !sel.NamespacePids ? Follow(sel.Pids, loaded) : -1).ToList();
                    var placed = new PlacedHook(id, policyId, plan, hook, enforce, loaded.ScopeId, follow, KernelSelectors: !_userSpaceFilter);
                    loaded.Placed.Add(placed);
                    var point = PointOf(hook);
                    if (!changes.TryGetValue(point, out var hooks))
                        changes[point] = hooks = [.. point.Hooks];
                    hooks.Add(placed);
                    Hooks[id] = new HookInfo(id, plan.Name, hook, enforce, plan, _userSpaceFilter);
                }
                foreach (var id in loaded.HookIds)
                    sensor.ResetHookCounters(id);
                if (plan.Loader)
                    AddLoader(sensor, loaded);
                try
                {
                    if (plan.EnforcedCalls.Count > 0)
                        AddEnforcer(sensor, loaded);
                    Apply(sensor, changes, growing: true);
                }
                catch
                {
                    if (plan.Loader) RemoveLoader(sensor, loaded);
                    RemoveEnforcer(sensor, loaded);
                    throw;
                }
                _loaded.Add(loaded);
                return loaded;
            }
            catch
            {
                Release(loaded);
                ForgetEmptyNewPoints();
                throw;
            }
        }
    }

    public void Unload(LoadedPolicy loaded)
    {
        lock (_lock)
        {
            if (!_loaded.Contains(loaded) || _sensor is null) return;
            // One attach point at a time: each rewrite then fits in the room every load keeps free (see Apply).
            foreach (var group in loaded.Placed.GroupBy(p => _hookPoints[p.HookId].Point).ToList())
                Apply(_sensor, new() { [group.Key] = group.Key.Hooks.Except(group).ToList() }, growing: false);
            if (loaded.Plan.Loader)
                RemoveLoader(_sensor, loaded);
            RemoveEnforcer(_sensor, loaded);
            _loaded.Remove(loaded);
            Release(loaded);
        }
    }

    /// <summary>spec.loader: the sensor reports every process while an unscoped loader policy is loaded, else the pods of
    /// the scoped ones; attached with the first loader policy, detached after the last.</summary>
    private void AddLoader(PolicySensor sensor, LoadedPolicy loaded)
    {
        var policies = _loaderPolicies.Append(loaded).ToList();
        if (policies.Count(p => p.ScopeId != 0) > Contract.LoaderScopes)
            throw new PolicyLimitException($"policy {loaded.Plan.Name}: spec.loader with a pod scope: at most {Contract.LoaderScopes} such policies are loaded at once");
        WriteLoaderConfig(sensor, policies);
        try
        {
            if (_loaderLinks.Count == 0)
                _loaderLinks = sensor.AttachLoader();
        }
        catch
        {
            WriteLoaderConfig(sensor, _loaderPolicies);
            throw;
        }
        _loaderPolicies.Add(loaded);
    }

    private void RemoveLoader(PolicySensor sensor, LoadedPolicy loaded)
    {
        if (!_loaderPolicies.Remove(loaded)) return;
        WriteLoaderConfig(sensor, _loaderPolicies);
        if (_loaderPolicies.Count == 0)
        {
            foreach (var l in _loaderLinks) l.Dispose();
            _loaderLinks = [];
        }
    }

    private static void WriteLoaderConfig(PolicySensor sensor, List<LoadedPolicy> policies) =>
        sensor.ConfigureLoader(policies.Count(p => p.ScopeId == 0), policies.Where(p => p.ScopeId != 0).Select(p => p.ScopeId).ToList());

    /// <summary>spec.enforcers of a policy that notifies for later calls: its calls in the enforcer's maps (before its hooks
    /// can notify); the enforcer program attached with the first such policy, detached after the last, when the
    /// notifications still pending are dropped.</summary>
    private void AddEnforcer(PolicySensor sensor, LoadedPolicy loaded)
    {
        _enforcerPolicies.Add(loaded);
        try
        {
            foreach (var nr in loaded.Plan.EnforcedCalls)
            {
                sensor.SetEnforcedCall(loaded.PolicyId, (uint)nr, enforced: true);
                CountEnforced(sensor, nr, +1);
            }
            if (_enforcerLinks.Count == 0)
                _enforcerLinks = sensor.AttachEnforcer();
        }
        catch
        {
            RemoveEnforcer(sensor, loaded);
            throw;
        }
    }

    private void RemoveEnforcer(PolicySensor sensor, LoadedPolicy loaded)
    {
        if (!_enforcerPolicies.Remove(loaded)) return;
        foreach (var nr in loaded.Plan.EnforcedCalls)
        {
            sensor.SetEnforcedCall(loaded.PolicyId, (uint)nr, enforced: false);
            CountEnforced(sensor, nr, -1);
        }
        if (_enforcerPolicies.Count > 0) return;
        foreach (var l in _enforcerLinks) l.Dispose();
        _enforcerLinks = [];
        sensor.ClearEnforcerNotifications();
    }

    /// <summary>sa_enf_nrs: per syscall slot (ia32 at 1024 + nr), how many loaded policies enforce it.</summary>
    private void CountEnforced(PolicySensor sensor, ulong nr, int delta)
    {
        ulong number = nr & ~SyscallTable.Compat32;
        if (number >= Contract.EnfSyscalls / 2) return; // not a syscall the enforcer program sees (it checks the same bound)
        uint slot = (uint)number + ((nr & SyscallTable.Compat32) != 0 ? (uint)Contract.EnfSyscalls / 2 : 0);
        _enforcedCounts.TryGetValue(slot, out var n);
        n = (uint)Math.Max(0, (int)n + delta);
        sensor.SetEnforcedCount(slot, n);
        if (n == 0) _enforcedCounts.Remove(slot);
        else _enforcedCounts[slot] = n;
    }

    /// <summary>The attach point of a hook, created (with an id, nothing written yet) when it is new.</summary>
    private AttachPoint PointOf(HookPlan hook)
    {
        var key = $"{hook.Mechanism}:{hook.Target}";
        if (_points.TryGetValue(key, out var p)) return p;
        uint id = PolicySensor.FixedPoint(hook.Mechanism, hook.Target)
            ?? (_freePointIds.TryPop(out var free) ? free : throw new PolicyLimitException($"no free attach point: {Contract.MaxPoints - (int)PolicyWire.FixedPoint.FirstDynamic} attach points have policy hooks"));
        return _points[key] = new AttachPoint(id, hook.Mechanism, hook.Target);
    }

    /// <summary>Gives each resolve: read not seen before its entry in sa_resolve (entries are never rewritten: a generation
    /// that names one always finds the same path there, and equal reads of later policies share it).</summary>
    private void WriteResolvePaths(PolicySensor sensor, IEnumerable<PlacedHook> hooks)
    {
        foreach (var a in hooks.SelectMany(h => h.Hook.Args).Where(a => a.Resolve is not null))
        {
            var key = PolicyEncoding.ResolveKey(a);
            if (_resolveIds.ContainsKey(key))
                continue;
            if (_resolveIds.Count >= Contract.ResolveMax - 1)
                throw new PolicyLimitException($"resolve '{a.Resolve!.Path}': {_resolveIds.Count} distinct resolve paths were loaded, at most {Contract.ResolveMax - 1}");
            var id = (byte)(_resolveIds.Count + 1);
            sensor.Map(BpfNames.Maps.Resolve).Update(BitConverter.GetBytes((uint)id), PolicyEncoding.ResolveEntry(a), Interop.Libbpf.BPF_ANY);
            _resolveIds[key] = id;
        }
    }

    /// <summary>Moves each attach point to the given hooks: writes every new generation, flips, attaches new points,
    /// waits for running programs, deletes the old generations and detaches emptied points. On failure nothing
    /// changed: every point keeps its generation.</summary>
    /// <param name="growing">A load: it must leave each map room for a rewrite of its largest attach point
    /// (old and new generation side by side), so that a later unload, which rewrites one point at a time with
    /// fewer entries, always fits.</param>
    private void Apply(PolicySensor sensor, Dictionary<AttachPoint, List<PlacedHook>> changes, bool growing)
    {
        // 1. Everything that can be refused is refused before anything is written.
        WriteResolvePaths(sensor, changes.Values.SelectMany(h => h));
        var next = changes.Select(c => (Point: c.Key, Hooks: c.Value,
            Gen: c.Value.Count == 0 ? null : PolicyEncoding.Generation(c.Key.Id, c.Key.Gen + 1, PolicyEncoding.Layout(c.Value, c.Key.Name, () => sensor.ExitOnlyLoaded), c.Value, PathArguments.Files, _resolveIds))).ToList();
        foreach (var map in next.SelectMany(n => n.Gen?.All ?? []).Select(e => e.Map).Distinct())
        {
            int max = (int)sensor.Map(map).MaxEntries, used = _mapEntries.GetValueOrDefault(map);
            int add = next.Sum(n => Entries(n.Gen, map));
            int after = used + add - next.Sum(n => Entries(n.Point.Active, map));
            int largest = _points.Values.Select(p => next.FirstOrDefault(n => n.Point == p) is { Point: not null } n ? Entries(n.Gen, map) : Entries(p.Active, map)).DefaultIfEmpty(0).Max();
            if (used + add > max || growing && after + largest > max)
                throw new PolicyLimitException($"policy {next.SelectMany(n => n.Hooks).Last().Plan.Name}: {map} would hold {after} entries, "
                    + $"and its limit of {max} must leave room for rewriting the largest attach point ({largest} entries) beside itself");
        }

        // 2. Write the new generations.
        var written = new List<MapEntry>();
        try
        {
            foreach (var e in next.SelectMany(n => n.Gen?.All ?? []))
            {
                // sa_points is an array: its slot for this generation's parity holds the generation before the active one.
                sensor.Map(e.Map).Update(e.Key, e.Value, e.Map == BpfNames.Maps.Points ? Interop.Libbpf.BPF_ANY : Interop.Libbpf.BPF_NOEXIST);
                written.Add(e);
                _mapEntries[e.Map] = _mapEntries.GetValueOrDefault(e.Map) + 1;
            }
        }
        catch
        {
            Delete(sensor, written);
            throw;
        }

        // 3. Flip: from here each point's programs use its new generation. New points are attached after.
        var seenBase = new Dictionary<uint, ulong>();
        foreach (var (point, hooks, gen) in next)
        {
            if (gen is not null && point.Links.Count == 0)
                sensor.ResetPointCounters(point.Id);
            foreach (var h in hooks.Where(h => !_hookPoints.ContainsKey(h.HookId)))
                seenBase[h.HookId] = sensor.PointSeen(point.Id);
        }
        // A point that changes between matching at the exit alone and at enter and exit gets the other mode's programs
        // before the flip (each runs only on a generation of its own mode); its old ones are detached once unused.
        var switched = new List<(AttachPoint Point, List<BpfLink> Old, List<BpfLink> Fresh)>();
        try
        {
            foreach (var (point, _, gen) in next.Where(n => n.Gen is not null && n.Point.Links.Count > 0 && n.Point.ExitOnly != IsExitOnly(n.Gen)))
            {
                var fresh = sensor.Attach(point.Mechanism, point.Target, point.Id, exitOnly: IsExitOnly(gen!)).ToList();
                var old = point.Links.Where(l => l != point.ReturnLink).ToList();
                point.Links.RemoveAll(old.Contains);
                point.Links.AddRange(fresh);
                point.ExitOnly = IsExitOnly(gen!);
                switched.Add((point, old, fresh));
            }
        }
        catch
        {
            UndoSwitch(sensor, switched);
            Delete(sensor, written);
            throw;
        }
        var active = sensor.Map(BpfNames.Maps.Active);
        foreach (var (point, _, gen) in next)
            active.Update(BitConverter.GetBytes(point.Id), BitConverter.GetBytes(gen?.Gen ?? 0));
        var attached = new List<AttachPoint>();
        var returnAttached = new List<AttachPoint>();
        try
        {
            foreach (var (point, _, gen) in next.Where(n => n.Gen is not null && n.Point.Links.Count == 0))
            {
                if (gen!.Layout.Flags.HasFlag(PolicyWire.PointFlags.Ima))
                {
                    // imaHash: the sleepable program must run after the hook's, and a trampoline runs the programs
                    // attached last first: it is attached before.
                    point.ReturnLink = sensor.AttachReturn(point.Mechanism, point.Target, point.Id);
                    point.Links.Add(point.ReturnLink);
                    returnAttached.Add(point);
                }
                point.Links.AddRange(sensor.Attach(point.Mechanism, point.Target, point.Id, exitOnly: IsExitOnly(gen)));
                point.ExitOnly = IsExitOnly(gen);
                attached.Add(point);
            }
            foreach (var (point, _, _) in next.Where(n => n.Gen is { Layout.Flags: var f } && f.HasFlag(PolicyWire.PointFlags.Return) && n.Point.ReturnLink is null))
            {
                if (next.First(n => n.Point == point).Gen!.Layout.Flags.HasFlag(PolicyWire.PointFlags.Ima))
                    throw new InvalidOperationException($"imaHash on {point.Target}: the hook is already attached for other policies without it, and the program "
                        + "that hashes the file must be attached before the hook's; load the imaHash policy first (or remove and re-add the others)");

                point.ReturnLink = sensor.AttachReturn(point.Mechanism, point.Target, point.Id);
                point.Links.Add(point.ReturnLink);
                returnAttached.Add(point);
            }
        }
        catch
        {
            foreach (var p in returnAttached)
            {
                p.Links.Remove(p.ReturnLink!);
                p.ReturnLink!.Dispose();
                p.ReturnLink = null;
            }
            foreach (var l in attached.SelectMany(p => p.Links)) l.Dispose();
            foreach (var p in attached) p.Links.Clear();
            foreach (var (point, _, _) in next)
                active.Update(BitConverter.GetBytes(point.Id), BitConverter.GetBytes(point.Gen));
            sensor.WaitForRunningPrograms();
            UndoSwitch(sensor, switched);
            Delete(sensor, written);
            throw;
        }

        // 4. No program uses the old generations any more: delete them; detach emptied points.
        sensor.WaitForRunningPrograms();
        foreach (var l in switched.SelectMany(s => s.Old))
            l.Dispose();
        foreach (var (point, hooks, gen) in next)
        {
            if (point.Active is { } old)
                Delete(sensor, old.All);
            foreach (var h in point.Hooks.Except(hooks))
                _hookPoints.Remove(h.HookId);
            foreach (var h in hooks.Where(h => seenBase.ContainsKey(h.HookId)))
                _hookPoints[h.HookId] = (point, seenBase[h.HookId]);
            point.Hooks = hooks;
            point.Active = gen;
            point.Gen = gen?.Gen ?? 0;
            if (gen is null)
            {
                foreach (var l in point.Links) l.Dispose();
                point.Links.Clear();
                if (point.Mechanism == Mechanism.Tracepoint)
                    sensor.DetachIoUring(point.Id);
                point.ReturnLink = null;
                RemovePoint(point);
            }
            else if (point.ReturnLink is { } rl && !gen.Layout.Flags.HasFlag(PolicyWire.PointFlags.Return))
            {
                point.Links.Remove(rl);
                rl.Dispose();
                point.ReturnLink = null;
            }
        }
    }

    /// <summary>Puts back the programs of points whose mode change failed (their io_uring operation again on the old enter).</summary>
    private static void UndoSwitch(PolicySensor sensor, List<(AttachPoint Point, List<BpfLink> Old, List<BpfLink> Fresh)> switched)
    {
        foreach (var (point, old, fresh) in switched)
        {
            foreach (var l in fresh)
            {
                point.Links.Remove(l);
                l.Dispose();
            }
            point.Links.AddRange(old);
            point.ExitOnly = !point.ExitOnly;
            if (point.Mechanism == Mechanism.Tracepoint && old.Count > 0)
                sensor.ReattachIoUring(point.Target, point.Id, old[0]);
        }
        switched.Clear();
    }

    private static int Entries(PointGeneration? gen, string map) => gen?.All.Count(e => e.Map == map) ?? 0;

    private void Delete(PolicySensor sensor, IEnumerable<MapEntry> entries)
    {
        foreach (var e in entries)
            if (e.Map == BpfNames.Maps.Points || sensor.Map(e.Map).Delete(e.Key)) // an array's slot is rewritten, never deleted
                _mapEntries[e.Map] = _mapEntries.GetValueOrDefault(e.Map) - 1;
    }

    /// <summary>Points made for a change that failed, before any generation of theirs was active.</summary>
    private void ForgetEmptyNewPoints()
    {
        foreach (var p in _points.Values.Where(p => p.Gen == 0 && p.Links.Count == 0).ToList())
            RemovePoint(p);
    }

    private void RemovePoint(AttachPoint point)
    {
        _points.Remove($"{point.Mechanism}:{point.Target}");
        if (PolicySensor.FixedPoint(point.Mechanism, point.Target) is null)
            _freePointIds.Push(point.Id);
    }

    /// <summary>Gives back what a policy reserved (hook ids, follow bits, scope).</summary>
    private void Release(LoadedPolicy loaded)
    {
        foreach (var id in loaded.HookIds)
        {
            Hooks.TryRemove(id, out _);
            _hookPoints.Remove(id);
            _freeHookIds.Push(id);
        }
        loaded.HookIds.Clear();
        loaded.Placed.Clear();
        foreach (var bit in loaded.FollowBits)
        {
            ulong clear = ~(1UL << bit);
            foreach (var key in _process.Follow.Keys())
                if (_process.Follow.TryLookup(BitConverter.ToUInt32(key), out ulong mask))
                {
                    if ((mask & clear) == 0) _process.Follow.Delete(key);
                    else _process.Follow.Update(BitConverter.ToUInt32(key), mask & clear);
                }
            _usedFollowBits &= clear;
        }
        loaded.FollowBits.Clear();
        if (loaded.ScopeId != 0 && _sensor is not null)
        {
            Scopes?.Remove(loaded.ScopeId, _sensor);
            loaded.ScopeId = 0;
        }
    }

    /// <summary>Takes a free sa_follow bit and marks the pids and their live descendants with it;
    /// the process sensor passes it on to every later child.</summary>
    private int Follow(IReadOnlyList<uint> pids, LoadedPolicy loaded)
    {
        int bit = Enumerable.Range(0, Contract.FollowBits).FirstOrDefault(b => (_usedFollowBits & (1UL << b)) == 0, -1);
        if (bit < 0) throw new PolicyLimitException($"policy {loaded.Plan.Name}: no free followForks slot: {Contract.FollowBits} followed pid sets are loaded");
        _usedFollowBits |= 1UL << bit;
        loaded.FollowBits.Add(bit);
        foreach (var pid in Descendants(pids))
        {
            _process.Follow.TryLookup(pid, out ulong mask);
            _process.Follow.Update(pid, mask | (1UL << bit));
        }
        return bit;
    }

    private static HashSet<uint> Descendants(IReadOnlyList<uint> roots)
    {
        var children = new Dictionary<uint, List<uint>>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!uint.TryParse(Path.GetFileName(dir), out var pid)) continue;
            try
            {
                var ppid = (uint)Processes.ProcFsScanner.ParseStat(File.ReadAllText(Path.Combine(dir, "stat"))).Ppid;
                (children.TryGetValue(ppid, out var l) ? l : children[ppid] = []).Add(pid);
            }
            catch (IOException) { }
        }
        var all = new HashSet<uint>(roots);
        var queue = new Queue<uint>(roots);
        while (queue.TryDequeue(out var p))
            foreach (var c in children.GetValueOrDefault(p) ?? [])
                if (all.Add(c)) queue.Enqueue(c);
        return all;
    }

    private readonly Dictionary<int, List<(uint Hook, int Selector)>> _denied = new();

    /// <summary>Called by the user-space rules stage after it decided against a process.</summary>
    public void Deny(uint hookId, int selector, int tgid, Actions enforce)
    {
        lock (_lock)
        {
            if (_sensor is null || !Hooks.ContainsKey(hookId)) return;
            _sensor.Deny(hookId, selector, tgid, (uint)enforce);
            (_denied.TryGetValue(tgid, out var l) ? l : _denied[tgid] = []).Add((hookId, selector));
        }
    }

    /// <summary>Drops a process that exited from every deny set (pids are reused).</summary>
    public void ProcessExited(int tgid)
    {
        lock (_lock)
        {
            if (!_denied.Remove(tgid, out var entries) || _sensor is null) return;
            foreach (var (hook, sel) in entries)
                _sensor.Forgive(hook, sel, tgid);
        }
    }

    /// <summary>Kernel counters of what the policies keep per thread or sock: NotifyEnforcer notifications not kept (the
    /// map full) or replaced before their enforced call, TrackSock's socks forgotten at the map's capacity, and maxData
    /// data records not sent (the ring full, or the buffer's page not readable).</summary>
    public PolicyKernelCounters KernelCounters()
    {
        lock (_lock)
            return new PolicyKernelCounters(_process.Lost.SumPerCpu((uint)Wire.LostReason.EnfFull), _process.Lost.SumPerCpu((uint)Wire.LostReason.EnfReplaced),
                _sensor?.SocktrackEvictions() ?? 0, _process.Lost.SumPerCpu((uint)Wire.LostReason.DataRing), _process.Lost.SumPerCpu((uint)Wire.LostReason.DataFault));
    }

    public HookStats Stats(uint hookId)
    {
        lock (_lock)
        {
            if (_sensor is null || !_hookPoints.TryGetValue(hookId, out var hp)) return new HookStats(0, 0, 0, 0, 0);
            var (matched, posted, enforced, rateLimited) = _sensor.HookCounters(hookId);
            ulong seen = _sensor.PointSeen(hp.Point.Id);
            return new HookStats(seen > hp.SeenBase ? seen - hp.SeenBase : 0, matched, posted, enforced, rateLimited);
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var p in _points.Values)
                foreach (var l in p.Links) l.Dispose();
            _points.Clear();
            foreach (var l in _loaderLinks) l.Dispose();
            _loaderLinks = [];
            _loaderPolicies.Clear();
            foreach (var l in _enforcerLinks) l.Dispose();
            _enforcerLinks = [];
            _enforcerPolicies.Clear();
            foreach (var p in _loaded.ToList())
                Release(p);
            _loaded.Clear();
            if (_sensor is null && _loading is not null)
                try { _sensor = _loading.GetAwaiter().GetResult(); }
                catch (Exception) { } // a failed load freed what it had made
            _sensor?.Dispose();
            _sensor = null;
            _loading = null;
        }
    }
}
