using System.Buffers.Binary;
using SecurityAgent.Containers;
using SecurityAgent.Sensors;

namespace SecurityAgent.Policies;

/// <summary>The cgroup ids a scope holds, for a decision made in user space (fanotify permission events): a lookup is one
/// volatile read and a set probe, no lock; <see cref="ScopeManager"/> replaces the set (never changes it) when it refreshes.
/// A plain HashSet, from the core library: the fanotify decision thread must not load an assembly (it could open a
/// marked file and wait for itself).</summary>
public sealed class ScopeSet
{
    private volatile HashSet<ulong> _ids = [];

    internal ScopeSet(PolicyScope scope) => Scope = scope;

    internal PolicyScope Scope { get; }

    public bool Contains(ulong cgroupId) => _ids.Contains(cgroupId);

    internal void Publish(HashSet<ulong> ids) => _ids = ids;
}

/// <summary>Keeps each scoped policy's set of cgroup ids in line with the node's pods: the containers of the pods its
/// scope selects, found in the cgroup v2 tree by container id. Kernel hooks read the set from sa_scope; user-space
/// decisions from a <see cref="ScopeSet"/>. Refreshed when pods change and when asked (new containers' cgroups appear
/// after their pods).</summary>
public sealed class ScopeManager(PodCache pods, CgroupMap cgroups)
{
    private readonly Dictionary<uint, (PolicyScope Scope, HashSet<ulong> Cgroups)> _scopes = new();
    private readonly List<ScopeSet> _sets = [];

    public void Add(uint scopeId, PolicyScope scope, PolicySensor sensor)
    {
        lock (_scopes) _scopes[scopeId] = (scope, []);
        Refresh(sensor);
    }

    public void Remove(uint scopeId, PolicySensor sensor)
    {
        lock (_scopes)
        {
            if (!_scopes.Remove(scopeId, out var s)) return;
            foreach (var cg in s.Cgroups) sensor.Map(Bpf.BpfNames.Maps.Scope).Delete(Key(scopeId, cg));
        }
    }

    /// <summary>A scope for a user-space decision, filled now and kept current by every <see cref="Refresh"/> until
    /// <see cref="Untrack"/>.</summary>
    public ScopeSet Track(PolicyScope scope)
    {
        var set = new ScopeSet(scope);
        lock (_scopes)
        {
            var containers = ContainerCgroups();
            set.Publish(Wanted(scope, containers));
            set.Contains(0); // compiled here, not on the decision thread
            _sets.Add(set);
        }
        return set;
    }

    public void Untrack(ScopeSet set)
    {
        lock (_scopes) _sets.Remove(set);
    }

    /// <param name="sensor">The policy programs' maps, for the kernel's scopes; null while those programs are still
    /// loading (no kernel scope exists then: <see cref="Add"/> needs them), and the user-space sets are still refreshed.</param>
    public void Refresh(PolicySensor? sensor)
    {
        lock (_scopes)
        {
            if (_scopes.Count == 0 && _sets.Count == 0) return;
            var containers = ContainerCgroups();
            if (sensor is not null)
                foreach (var (id, (scope, current)) in _scopes)
                {
                    var wanted = Wanted(scope, containers);
                    foreach (var cg in wanted.Except(current)) sensor.Map(Bpf.BpfNames.Maps.Scope).Update(Key(id, cg), [1]);
                    foreach (var cg in current.Except(wanted)) sensor.Map(Bpf.BpfNames.Maps.Scope).Delete(Key(id, cg));
                    current.Clear();
                    current.UnionWith(wanted);
                }
            foreach (var set in _sets)
                set.Publish(Wanted(set.Scope, containers));
        }
    }

    /// <summary>The cgroups of this node's pods' containers: cgroup id → (pod, container name).</summary>
    private Dictionary<ulong, (PodInfo Pod, string Name)> ContainerCgroups()
    {
        var byContainer = pods.Pods.SelectMany(p =>
            p.TryGetProperty("status", out var st) && st.TryGetProperty("containerStatuses", out var cs)
                ? cs.EnumerateArray().Where(c => c.TryGetProperty("containerID", out _))
                    .Select(c => (Id: CgroupNames.StripRuntime(c.GetProperty("containerID").GetString()!), Pod: PodCache.ToInfo(p, null), Name: c.GetProperty("name").GetString()!))
                : []).ToDictionary(c => c.Id);
        return cgroups.Find(path => CgroupNames.Parse(path) is { } r && byContainer.ContainsKey(r.ContainerId))
            .ToDictionary(x => x.Id, x => byContainer[CgroupNames.Parse(x.Path)!.ContainerId] is var c ? (c.Pod, c.Name) : default);
    }

    private static HashSet<ulong> Wanted(PolicyScope scope, Dictionary<ulong, (PodInfo Pod, string Name)> containers) =>
        containers.Where(kv => scope.Matches(kv.Value.Pod, kv.Value.Name)).Select(kv => kv.Key).ToHashSet();

    private static byte[] Key(uint scopeId, ulong cgroupId)
    {
        var k = new byte[Events.PolicyWire.ScopeKey.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(k, scopeId);
        BinaryPrimitives.WriteUInt64LittleEndian(k.AsSpan(Events.PolicyWire.ScopeKey.CgroupId), cgroupId);
        return k;
    }
}
