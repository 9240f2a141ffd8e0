using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using SecurityAgent.Kubernetes;

namespace SecurityAgent.Containers;

public sealed record ContainerInfo(string Id, string Name, string Image, string ImageId);

/// <summary>What events say about a process's pod (Tetragon's pod object).</summary>
public sealed record PodInfo(string Namespace, string Name, string Uid, IReadOnlyDictionary<string, string> Labels,
    string Workload, string WorkloadKind, ContainerInfo? Container);

/// <summary>The pods of this node, from a node-scoped watch (fieldSelector=spec.nodeName), by pod uid and by
/// container id. Written by the informer, read by the pipeline. Each pod is kept as the few fields events and
/// scopes read (not the whole object), with at most <see cref="MaxLabels"/> labels.</summary>
public sealed class PodCache
{
    /// <summary>Labels kept per pod (the first by key); Kubernetes bounds each label's size, not their number.</summary>
    public const int MaxLabels = 64;

    private readonly ConcurrentDictionary<string, JsonElement> _byUid = new();
    private readonly ConcurrentDictionary<string, string> _podOfContainer = new();
    /// <summary>Set as soon as the agent knows it will watch pods (before the first list arrives), so events of a
    /// pod's container wait for it from the start.</summary>
    public bool Active { get; set; }
    public event Action? Changed;

    public Task WatchAsync(KubeClient client, string node, ILogger log, CancellationToken ct)
    {
        Active = true;
        var informer = new Informer(client, $"/api/v1/pods?fieldSelector={Uri.EscapeDataString("spec.nodeName=" + node)}", log);
        informer.Upserted += Upsert;
        informer.Deleted += o => _byUid.TryRemove(Uid(o), out _);
        return informer.RunAsync(ct);
    }

    private static string Uid(JsonElement pod) => pod.GetProperty("metadata").GetProperty("uid").GetString()!;

    public void Upsert(JsonElement pod)
    {
        pod = Trim(pod);
        _byUid[Uid(pod)] = pod;
        if (pod.TryGetProperty("status", out var st) && st.TryGetProperty("containerStatuses", out var cs))
            foreach (var c in cs.EnumerateArray())
                if (c.TryGetProperty("containerID", out var id) && id.GetString() is { Length: > 0 } cid)
                    _podOfContainer[CgroupNames.StripRuntime(cid)] = Uid(pod);
        Changed?.Invoke();
    }

    public IEnumerable<JsonElement> Pods => _byUid.Values;

    /// <summary>metadata (name, namespace, uid, bounded labels, owners) and status.containerStatuses (name, ids, image).</summary>
    private static JsonElement Trim(JsonElement pod)
    {
        var meta = pod.GetProperty("metadata");
        var m = new System.Text.Json.Nodes.JsonObject();
        foreach (var key in new[] { "name", "namespace", "uid" })
            if (meta.TryGetProperty(key, out var v)) m[key] = v.GetString();
        if (meta.TryGetProperty("labels", out var labels) && labels.ValueKind == JsonValueKind.Object)
        {
            var kept = new System.Text.Json.Nodes.JsonObject();
            foreach (var l in labels.EnumerateObject().OrderBy(l => l.Name, StringComparer.Ordinal).Take(MaxLabels))
                kept[l.Name] = l.Value.ValueKind == JsonValueKind.String ? l.Value.GetString() : "";
            m["labels"] = kept;
        }
        if (meta.TryGetProperty("ownerReferences", out var owners) && owners.ValueKind == JsonValueKind.Array && owners.GetArrayLength() > 0)
            m["ownerReferences"] = new System.Text.Json.Nodes.JsonArray(new System.Text.Json.Nodes.JsonObject
            {
                ["kind"] = owners[0].GetProperty("kind").GetString(),
                ["name"] = owners[0].GetProperty("name").GetString(),
            });
        var root = new System.Text.Json.Nodes.JsonObject { ["metadata"] = m };
        if (pod.TryGetProperty("status", out var st) && st.TryGetProperty("containerStatuses", out var cs) && cs.ValueKind == JsonValueKind.Array)
        {
            var list = new System.Text.Json.Nodes.JsonArray();
            foreach (var c in cs.EnumerateArray())
            {
                var o = new System.Text.Json.Nodes.JsonObject();
                foreach (var key in new[] { "name", "containerID", "image", "imageID" })
                    if (c.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String) o[key] = v.GetString();
                list.Add(o);
            }
            root["status"] = new System.Text.Json.Nodes.JsonObject { ["containerStatuses"] = list };
        }
        return JsonSerializer.SerializeToElement(root);
    }

    /// <summary>The pod of a container, by its container id or, before the kubelet reported the id, by pod uid.</summary>
    public PodInfo? Lookup(ContainerRef c)
    {
        var uid = _podOfContainer.TryGetValue(c.ContainerId, out var u) ? u : c.PodUid;
        if (uid is null || !_byUid.TryGetValue(uid, out var pod)) return null;
        return ToInfo(pod, c.ContainerId);
    }

    public static PodInfo ToInfo(JsonElement pod, string? containerId)
    {
        var meta = pod.GetProperty("metadata");
        var labels = meta.TryGetProperty("labels", out var l) ? l.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "") : [];
        var (workload, kind) = Workload(meta);
        ContainerInfo? container = null;
        if (containerId is not null && pod.TryGetProperty("status", out var st) && st.TryGetProperty("containerStatuses", out var cs))
            container = cs.EnumerateArray().Where(c => c.TryGetProperty("containerID", out var id) && CgroupNames.StripRuntime(id.GetString() ?? "") == containerId)
                .Select(c => new ContainerInfo(c.GetProperty("containerID").GetString()!, c.GetProperty("name").GetString()!,
                    c.TryGetProperty("image", out var im) ? im.GetString()! : "", c.TryGetProperty("imageID", out var iid) ? iid.GetString()! : ""))
                .FirstOrDefault();
        container ??= containerId is null ? null : new ContainerInfo(containerId, "", "", "");
        return new PodInfo(meta.GetProperty("namespace").GetString()!, meta.GetProperty("name").GetString()!, meta.GetProperty("uid").GetString()!,
            labels, workload, kind, container);
    }

    /// <summary>The controlling workload: a ReplicaSet's Deployment (its name minus the hash), else the owner, else the pod.</summary>
    private static (string, string) Workload(JsonElement meta)
    {
        if (meta.TryGetProperty("ownerReferences", out var owners))
            foreach (var o in owners.EnumerateArray())
            {
                var kind = o.GetProperty("kind").GetString()!;
                var name = o.GetProperty("name").GetString()!;
                if (kind == "ReplicaSet" && name.LastIndexOf('-') is var dash and > 0)
                    return (name[..dash], "Deployment");
                return (name, kind);
            }
        return (meta.GetProperty("name").GetString()!, "Pod");
    }
}
