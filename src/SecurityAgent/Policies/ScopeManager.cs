using System.Buffers.Binary;
using SecurityAgent.Containers;
using SecurityAgent.Sensors;

namespace SecurityAgent.Policies;

/// <summary>Keeps each scoped policy's set of cgroup ids (sa_scope) in line with the node's pods: the containers
/// of the pods its scope selects, found in the cgroup v2 tree by container id. Refreshed when pods change and
/// when asked (new containers' cgroups appear after their pods).</summary>
public sealed class ScopeManager(PodCache pods, CgroupMap cgroups)
{
    private readonly Dictionary<uint, (PolicyScope Scope, HashSet<ulong> Cgroups)> _scopes = new();

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

    public void Refresh(PolicySensor sensor)
    {
        lock (_scopes)
        {
            if (_scopes.Count == 0) return;
            // Containers of this node's pods, with their pod: (container id, pod, container name).
            var containers = pods.Pods.SelectMany(p =>
                p.TryGetProperty("status", out var st) && st.TryGetProperty("containerStatuses", out var cs)
                    ? cs.EnumerateArray().Where(c => c.TryGetProperty("containerID", out _))
                        .Select(c => (Id: CgroupNames.StripRuntime(c.GetProperty("containerID").GetString()!), Pod: PodCache.ToInfo(p, null), Name: c.GetProperty("name").GetString()!))
                    : []).ToList();
            var byContainer = containers.ToDictionary(c => c.Id);
            var cgroupOf = cgroups.Find(path => CgroupNames.Parse(path) is { } r && byContainer.ContainsKey(r.ContainerId))
                .ToDictionary(x => x.Id, x => CgroupNames.Parse(x.Path)!.ContainerId);
            foreach (var (id, (scope, current)) in _scopes)
            {
                var wanted = cgroupOf.Where(kv => byContainer[kv.Value] is var c && scope.Matches(c.Pod, c.Name)).Select(kv => kv.Key).ToHashSet();
                foreach (var cg in wanted.Except(current)) sensor.Map(Bpf.BpfNames.Maps.Scope).Update(Key(id, cg), [1]);
                foreach (var cg in current.Except(wanted)) sensor.Map(Bpf.BpfNames.Maps.Scope).Delete(Key(id, cg));
                current.Clear();
                current.UnionWith(wanted);
            }
        }
    }

    private static byte[] Key(uint scopeId, ulong cgroupId)
    {
        var k = new byte[Events.PolicyWire.ScopeKey.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(k, scopeId);
        BinaryPrimitives.WriteUInt64LittleEndian(k.AsSpan(Events.PolicyWire.ScopeKey.CgroupId), cgroupId);
        return k;
    }
}
