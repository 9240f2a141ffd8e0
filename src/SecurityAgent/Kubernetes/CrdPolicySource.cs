using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SecurityAgent.Policies;

namespace SecurityAgent.Kubernetes;

/// <summary>Policies from the cluster's policy objects, watched through the API server: ours (securityagent.io) always,
/// and Tetragon's (cilium.io TracingPolicy, TracingPolicyNamespaced) whenever those CRDs exist, so a cluster moving
/// from Tetragon keeps its objects. Each object is an origin of the <see cref="PolicyManager"/>; an object larger or
/// deeper than the limits, or of an unexpected apiVersion or kind, is rejected with the reason, and nothing an object
/// holds can stop the watch.</summary>
public sealed partial class CrdPolicySource(KubeClient client, PolicyManager policies, ILogger log)
{
    public const string CiliumGroupVersion = "cilium.io/v1alpha1";
    private static readonly TimeSpan DiscoveryInterval = TimeSpan.FromSeconds(60);

    /// <summary>A watched collection: where, and what apiVersion and kind its objects must have.</summary>
    private sealed record Collection(string Path, string ApiVersion, string Kind);

    private static Collection[] Collections(string groupVersion) =>
    [
        new($"/apis/{groupVersion}/tracingpolicies", groupVersion, "TracingPolicy"),
        new($"/apis/{groupVersion}/tracingpoliciesnamespaced", groupVersion, "TracingPolicyNamespaced"),
    ];

    public Task RunAsync(CancellationToken ct) =>
        Task.WhenAll(Collections("securityagent.io/v1alpha1").Select(c => Watch(c, ct)).Append(WatchCiliumWhenPresent(ct)));

    private Task Watch(Collection c, CancellationToken ct)
    {
        var informer = new Informer(client, c.Path, log);
        informer.Upserted += o => Upsert(c, o);
        informer.Deleted += Delete;
        return informer.RunAsync(ct);
    }

    /// <summary>Tetragon's CRDs may be installed before or after the agent starts: asks the API group's discovery
    /// document now and then until they are there, then watches the collections it lists.</summary>
    private async Task WatchCiliumWhenPresent(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (await client.GetAsync($"/apis/{CiliumGroupVersion}", ct) is { } discovery && discovery.TryGetProperty("resources", out var resources))
                {
                    var served = resources.EnumerateArray().Select(r => r.TryGetProperty("name", out var n) ? n.GetString() : null).ToHashSet();
                    var watched = Collections(CiliumGroupVersion).Where(c => served.Contains(c.Path[(c.Path.LastIndexOf('/') + 1)..])).ToList();
                    if (watched.Count > 0)
                    {
                        LogCilium(log, string.Join(", ", watched.Select(w => w.Kind)));
                        await Task.WhenAll(watched.Select(w => Watch(w, ct)));
                        return;
                    }
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogDiscoveryFailed(log, CiliumGroupVersion, e.Message);
            }
            await Task.Delay(DiscoveryInterval, ct).ContinueWith(_ => { }, CancellationToken.None);
        }
    }

    private static string Name(JsonElement o) =>
        o.TryGetProperty("metadata", out var m) && m.ValueKind == JsonValueKind.Object && m.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : "(unnamed)";

    private static string? Namespace(JsonElement o) =>
        o.TryGetProperty("metadata", out var m) && m.ValueKind == JsonValueKind.Object && m.TryGetProperty("namespace", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null;

    private static PolicyOrigin Origin(JsonElement o) =>
        PolicyOrigin.Crd(o.GetProperty("metadata").GetProperty("uid").GetString()!, Namespace(o) is { } ns ? $"crd/{ns}/{Name(o)}" : $"crd/{Name(o)}");

    /// <summary>Why an object from the API server is not taken as a policy, or null.</summary>
    internal static string? Problem(JsonElement o, string apiVersion, string kind)
    {
        var bytes = Encoding.UTF8.GetByteCount(o.GetRawText());
        if (bytes > PolicyLimits.MaxBytes)
            return $"the object is {bytes} bytes, more than the limit of {PolicyLimits.MaxBytes}";
        if (Depth(o) > PolicyLimits.MaxDepth)
            return $"the object nests deeper than {PolicyLimits.MaxDepth} levels (limit)";
        var v = o.TryGetProperty("apiVersion", out var av) && av.ValueKind == JsonValueKind.String ? av.GetString() : null;
        var k = o.TryGetProperty("kind", out var kv) && kv.ValueKind == JsonValueKind.String ? kv.GetString() : null;
        if (v != apiVersion || k != kind)
            return $"unknown apiVersion/kind '{v}/{k}' in the {kind} collection (this agent reads {apiVersion} {kind})";
        return null;
    }

    /// <summary>Nesting depth, without recursion: it is checked before anything recursive sees the object.</summary>
    private static int Depth(JsonElement root)
    {
        int max = 0;
        var stack = new Stack<(JsonElement, int)>();
        stack.Push((root, 1));
        while (stack.Count > 0)
        {
            var (e, d) = stack.Pop();
            max = Math.Max(max, d);
            if (max > PolicyLimits.MaxDepth) return max;
            if (e.ValueKind == JsonValueKind.Object)
                foreach (var p in e.EnumerateObject()) stack.Push((p.Value, d + 1));
            else if (e.ValueKind == JsonValueKind.Array)
                foreach (var x in e.EnumerateArray()) stack.Push((x, d + 1));
        }
        return max;
    }

    /// <summary>The policy as its author wrote it: what the API server adds (uid, managedFields, status...) is not policy.</summary>
    public static string PolicyText(JsonElement o)
    {
        var node = JsonNode.Parse(o.GetRawText(), documentOptions: new JsonDocumentOptions { MaxDepth = PolicyLimits.MaxDepth + 1 })!.AsObject();
        var meta = node["metadata"] as JsonObject ?? [];
        var kept = new JsonObject();
        foreach (var key in new[] { "name", "namespace", "labels", "annotations" })
            if (meta[key] is { } v) kept[key] = v.DeepClone();
        if (kept["annotations"] is JsonObject ann) ann.Remove("kubectl.kubernetes.io/last-applied-configuration");
        var policy = new JsonObject { ["apiVersion"] = node["apiVersion"]?.DeepClone(), ["kind"] = node["kind"]?.DeepClone(), ["metadata"] = kept, ["spec"] = node["spec"]?.DeepClone() };
        return policy.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    private void Upsert(Collection c, JsonElement o)
    {
        var name = Name(o);
        try
        {
            if (Problem(o, c.ApiVersion, c.Kind) is { } problem)
            {
                LogRejected(log, name, problem);
                policies.Fail(Origin(o), problem);
                return;
            }
            var outcome = policies.Apply(Origin(o), PolicyText(o));
            if (!outcome.Ok)
                LogRejected(log, name, outcome.Errors.Count == 1 ? outcome.Errors[0] : $"{outcome.Errors[0]} (and {outcome.Errors.Count - 1} more, above)");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            LogRejected(log, name, $"{e.GetType().Name}: {e.Message}");
        }
    }

    private void Delete(JsonElement o)
    {
        try { policies.Remove(Origin(o), "deleted from the cluster"); }
        catch (Exception e) when (e is not OutOfMemoryException) { LogRejected(log, Name(o), $"{e.GetType().Name}: {e.Message}"); }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Policy {Name} from the cluster rejected: {Reason}")]
    private static partial void LogRejected(ILogger log, string name, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Tetragon's policy CRDs are installed: watching cilium.io {Kinds} too")]
    private static partial void LogCilium(ILogger log, string kinds);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Discovery of {GroupVersion} failed: {Reason}")]
    private static partial void LogDiscoveryFailed(ILogger log, string groupVersion, string reason);
}
