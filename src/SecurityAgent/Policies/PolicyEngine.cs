using System.Collections.Concurrent;
using SecurityAgent.Bpf;
using SecurityAgent.Kernel;
using SecurityAgent.Sensors;

namespace SecurityAgent.Policies;

/// <summary>What the pipeline needs to know about a hook id found in a kernel event.</summary>
public sealed record HookInfo(uint HookId, string PolicyName, HookPlan Hook, bool Enforce, PolicyPlan Plan, bool UserSpaceFilter);

/// <summary>A policy in the kernel: its hook ids, links and the map entries written for it.</summary>
public sealed class LoadedPolicy
{
    public required PolicyPlan Plan { get; init; }
    public List<uint> HookIds { get; } = [];
    internal List<BpfLink> Links { get; } = [];
    internal List<(string Map, byte[] Key)> Keys { get; } = [];
    internal List<int> FollowBits { get; } = [];
    internal List<(string Target, int Slot)> Slots { get; } = [];
    internal uint ScopeId { get; set; }
}

/// <summary>Loads compiled policies into the shared policy program: allocates hook and filter ids, writes the
/// value sets and hook configurations, then attaches. Unloading detaches first, then clears the maps.
/// Thread-safe; <see cref="Hooks"/> is read by the pipeline while policies change.</summary>
public sealed class PolicyEngine(ProcessSensor process, int agentTgid, bool userSpaceFilter = false) : Pipeline.EventPipeline.IDenySet, IDisposable
{
    private readonly object _lock = new();
    private PolicySensor? _sensor;
    private readonly Stack<uint> _freeHookIds = new(Enumerable.Range(0, Events.PolicyWire.MaxHooks).Select(i => (uint)(Events.PolicyWire.MaxHooks - 1 - i)));
    private uint _nextFilterId = 1, _nextPolicyId = 1;
    private ulong _usedFollowBits;
    private readonly Dictionary<string, bool[]> _slots = new(); // tracepoint -> program slots in use
    private readonly bool[] _sockSlots = new bool[PolicySensor.SockSlots];

    private readonly HashSet<LoadedPolicy> _loaded = [];

    public ConcurrentDictionary<uint, HookInfo> Hooks { get; } = new();

    /// <summary>Set when the agent knows pods: scoped policies (podSelector, namespace) apply to their pods only;
    /// without it a scoped policy applies to nothing.</summary>
    public ScopeManager? Scopes { get; set; }

    /// <summary>Re-reads pods and cgroups into the scoped policies' cgroup sets.</summary>
    public void RefreshScopes()
    {
        lock (_lock)
            if (_sensor is not null) Scopes?.Refresh(_sensor);
    }

    /// <summary>Loads the policy program now (verification takes a while), so adding a policy later only
    /// writes maps and attaches.</summary>
    public void Prepare()
    {
        lock (_lock) _sensor ??= PolicySensor.Load(process, agentTgid);
    }

    public LoadedPolicy Load(PolicyPlan plan)
    {
        lock (_lock)
        {
            if (userSpaceFilter && !UserSpaceSelectors.Supports(plan, out var why))
                throw new NotSupportedException($"policy {plan.Name}: --debug-userspace-filter: {why}");
            var sensor = _sensor ??= PolicySensor.Load(process, agentTgid);
            var loaded = new LoadedPolicy { Plan = plan };
            try
            {
                var filterIds = plan.ValueSets.Select(_ => _nextFilterId++).ToList();
                for (int i = 0; i < plan.ValueSets.Count; i++)
                    foreach (var (map, key) in PolicyEncoding.Keys(plan.ValueSets[i], filterIds[i]))
                    {
                        sensor.Map(map).Update(key, [1]);
                        loaded.Keys.Add((map, key));
                    }
                uint policyId = _nextPolicyId++;
                if (plan.Scope is not null)
                {
                    // The scope's id is the policy's; its cgroup set is filled before any hook is attached.
                    loaded.ScopeId = policyId;
                    Scopes?.Add(policyId, plan.Scope, sensor);
                }
                foreach (var hook in plan.Hooks)
                {
                    if (!_freeHookIds.TryPop(out var id))
                        throw new InvalidOperationException($"no free hook slot: {Events.PolicyWire.MaxHooks} hooks are loaded");
                    loaded.HookIds.Add(id);
                    sensor.ResetStats(id);
                    // followForks from host pids; for namespace pids the in-kernel check alone applies.
                    var follow = hook.Selectors.Select(sel => sel.FollowForks && !sel.NamespacePids ? Follow(sel.Pids, loaded) : -1).ToList();
                    // --debug-userspace-filter: no selectors in the kernel, every call is posted (and monitor only).
                    var kernelHook = userSpaceFilter ? hook with { Selectors = [] } : hook;
                    sensor.WriteHook(id, PolicyEncoding.Hook(kernelHook, policyId, plan.Enforce && !userSpaceFilter, filterIds, follow,
                        plan.Scope is null ? 0 : policyId));
                    Hooks[id] = new HookInfo(id, plan.Name, hook, plan.Enforce && !userSpaceFilter, plan, userSpaceFilter);
                    if (hook.Mechanism == Mechanism.CgroupSockAddr)
                    {
                        int sockSlot = Array.IndexOf(_sockSlots, false);
                        if (sockSlot < 0)
                            throw new InvalidOperationException($"{PolicySensor.SockSlots} connect policy hooks are already loaded");
                        var (v4, v6) = sensor.AttachConnect(sockSlot, id, hook.Target);
                        loaded.Links.Add(v4);
                        loaded.Links.Add(v6);
                        _sockSlots[sockSlot] = true;
                        loaded.Slots.Add(("connect", sockSlot));
                        continue;
                    }
                    // One program copy per hook on the same attach point (the kernel takes a program once per point).
                    var key = $"{hook.Mechanism}:{hook.Target}";
                    int capacity = hook.Mechanism == Mechanism.Lsm ? PolicySensor.LsmSlots : PolicySensor.TracepointSlots;
                    var used = _slots.TryGetValue(key, out var u) ? u : _slots[key] = new bool[capacity];
                    int slot = Array.IndexOf(used, false);
                    if (slot < 0)
                        throw new InvalidOperationException($"{hook.Target} already has {capacity} policy hooks");
                    loaded.Links.Add(hook.Mechanism switch
                    {
                        Mechanism.Lsm => sensor.AttachLsm(hook.Target, slot, id),
                        Mechanism.Kprobe => sensor.AttachKprobe(slot, id, hook.Target),
                        _ => sensor.AttachTracepoint(slot, id, Split(hook.Target).Item1, Split(hook.Target).Item2),
                    });
                    used[slot] = true;
                    loaded.Slots.Add((key, slot));
                }
                _loaded.Add(loaded);
                return loaded;
            }
            catch
            {
                UnloadLocked(loaded);
                throw;
            }
        }
    }

    public void Unload(LoadedPolicy loaded)
    {
        lock (_lock) UnloadLocked(loaded);
    }

    private void UnloadLocked(LoadedPolicy loaded)
    {
        _loaded.Remove(loaded);
        foreach (var l in loaded.Links) l.Dispose();
        loaded.Links.Clear();
        foreach (var (target, slot) in loaded.Slots)
        {
            if (target == "connect")
            {
                _sensor?.ReleaseConnectSlot(slot);
                _sockSlots[slot] = false;
            }
            else
            {
                if (target.StartsWith($"{Mechanism.Lsm}:"))
                    _sensor?.ReleaseLsmSlot(target[(target.IndexOf(':') + 1)..], slot);
                _slots[target][slot] = false;
            }
        }
        loaded.Slots.Clear();
        if (_sensor is null) return;
        foreach (var id in loaded.HookIds)
        {
            _sensor.ClearHook(id);
            Hooks.TryRemove(id, out _);
            _freeHookIds.Push(id);
        }
        loaded.HookIds.Clear();
        foreach (var (map, key) in loaded.Keys)
            _sensor.Map(map).Delete(key);
        loaded.Keys.Clear();
        foreach (var bit in loaded.FollowBits)
        {
            ulong clear = ~(1UL << bit);
            foreach (var key in process.Follow.Keys())
                if (process.Follow.TryLookup(BitConverter.ToUInt32(key), out ulong mask))
                {
                    if ((mask & clear) == 0) process.Follow.Delete(key);
                    else process.Follow.Update(BitConverter.ToUInt32(key), mask & clear);
                }
            _usedFollowBits &= clear;
        }
        loaded.FollowBits.Clear();
        if (loaded.ScopeId != 0)
        {
            Scopes?.Remove(loaded.ScopeId, _sensor);
            loaded.ScopeId = 0;
        }
    }

    /// <summary>Takes a free sa_follow bit and marks the pids and their live descendants with it;
    /// the process sensor passes it on to every later child.</summary>
    private int Follow(IReadOnlyList<uint> pids, LoadedPolicy loaded)
    {
        int bit = Enumerable.Range(0, 64).FirstOrDefault(b => (_usedFollowBits & (1UL << b)) == 0, -1);
        if (bit < 0) throw new InvalidOperationException("no free followForks slot: 64 followed pid sets are loaded");
        _usedFollowBits |= 1UL << bit;
        loaded.FollowBits.Add(bit);
        foreach (var pid in Descendants(pids))
        {
            process.Follow.TryLookup(pid, out ulong mask);
            process.Follow.Update(pid, mask | (1UL << bit));
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

    public HookStats Stats(uint hookId)
    {
        lock (_lock) return _sensor?.Stats(hookId) ?? new HookStats(0, 0, 0, 0, 0);
    }

    private static (string, string) Split(string target)
    {
        int slash = target.IndexOf('/');
        return (target[..slash], target[(slash + 1)..]);
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var p in _loaded.ToList())
                UnloadLocked(p);
            _sensor?.Dispose();
            _sensor = null;
        }
    }
}
