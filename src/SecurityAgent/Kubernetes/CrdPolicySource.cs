using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using SecurityAgent.Api;
using SecurityAgent.Policies;

namespace SecurityAgent.Kubernetes;

/// <summary>Policies from kubectl-applied CRDs: watched through the API server and loaded, changed and unloaded
/// through the same validator, compiler and engine as files. A policy that fails validation is reported (with the
/// object's name) and, if an earlier version of it was loaded, that version keeps running.</summary>
public sealed partial class CrdPolicySource(KubeClient client, AgentState state, ILogger log)
{
    public const string ClusterPath = "/apis/securityagent.io/v1alpha1/tracingpolicies";
    public const string NamespacedPath = "/apis/securityagent.io/v1alpha1/tracingpoliciesnamespaced";

    private readonly Dictionary<string, LoadedPolicy> _loaded = new(); // by uid

    public IEnumerable<LoadedPolicy> Loaded { get { lock (state.PolicyLock) return _loaded.Values.ToList(); } }

    public Task RunAsync(CancellationToken ct)
    {
        var cluster = new Informer(client, ClusterPath, log);
        cluster.Upserted += Upsert;
        cluster.Deleted += Delete;
        var namespaced = new Informer(client, NamespacedPath, log); // scoped to their namespace's pods in the kernel
        namespaced.Upserted += Upsert;
        namespaced.Deleted += Delete;
        return Task.WhenAll(cluster.RunAsync(ct), namespaced.RunAsync(ct));
    }

    private static string Name(JsonElement o) => o.GetProperty("metadata").GetProperty("name").GetString()!;
    private static string Uid(JsonElement o) => o.GetProperty("metadata").GetProperty("uid").GetString()!;

    /// <summary>The policy as its author wrote it: what the API server adds (uid, managedFields, status...) is not policy.</summary>
    public static string PolicyText(JsonElement o)
    {
        var node = JsonNode.Parse(o.GetRawText())!.AsObject();
        var meta = node["metadata"]!.AsObject();
        var kept = new JsonObject();
        foreach (var key in new[] { "name", "namespace", "labels", "annotations" })
            if (meta[key] is { } v) kept[key] = v.DeepClone();
        if (kept["annotations"] is JsonObject ann) ann.Remove("kubectl.kubernetes.io/last-applied-configuration");
        var policy = new JsonObject { ["apiVersion"] = node["apiVersion"]?.DeepClone(), ["kind"] = node["kind"]?.DeepClone(), ["metadata"] = kept, ["spec"] = node["spec"]?.DeepClone() };
        return policy.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    private void Upsert(JsonElement o)
    {
        var name = Name(o);
        var source = $"crd/{name}";
        lock (state.PolicyLock)
        {
            if (state.Validator is null || state.Compiler is null || state.Engine is null) return;
            var v = state.Validator.ValidateText(source, PolicyText(o)).Single();
            if (!v.Ok)
            {
                foreach (var d in v.Diagnostics) LogRejected(log, name, d.ToString());
                return;
            }
            if (state.Policies?.Loaded.Any(p => p.Plan.Name == name) == true)
            {
                LogRejected(log, name, "a policy of that name is already loaded from the policy directory");
                return;
            }
            try
            {
                var loaded = state.Engine.Load(state.Compiler.Compile(v));
                if (_loaded.Remove(Uid(o), out var old)) state.Engine.Unload(old); // after the new version is attached
                _loaded[Uid(o)] = loaded;
                LogLoaded(log, name, loaded.Plan.Enforce ? "enforce" : "monitor");
            }
            catch (PolicyCompileException e)
            {
                foreach (var d in e.Diagnostics) LogRejected(log, name, d.ToString());
            }
            catch (Exception e) when (e is Interop.LibbpfException or InvalidOperationException or NotSupportedException)
            {
                LogRejected(log, name, e.Message);
            }
        }
    }

    private void Delete(JsonElement o)
    {
        lock (state.PolicyLock)
        {
            if (_loaded.Remove(Uid(o), out var old) && state.Engine is not null)
            {
                state.Engine.Unload(old);
                LogUnloaded(log, Name(o));
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Policy {Name} loaded from the cluster (mode {Mode})")]
    private static partial void LogLoaded(ILogger log, string name, string mode);

    [LoggerMessage(Level = LogLevel.Information, Message = "Policy {Name} unloaded (deleted from the cluster)")]
    private static partial void LogUnloaded(ILogger log, string name);

    [LoggerMessage(Level = LogLevel.Error, Message = "Policy {Name} from the cluster rejected: {Reason}")]
    private static partial void LogRejected(ILogger log, string name, string reason);
}
