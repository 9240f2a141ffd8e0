using SecurityAgent.Export;
using SecurityAgent.Kernel;
using SecurityAgent.Pipeline;
using SecurityAgent.Policies;

namespace SecurityAgent.Api;

/// <summary>What the running agent shares with the local API: set by the agent service once it is up.</summary>
public sealed class AgentState
{
    public KernelFeatures? Features { get; set; }
    public EventPipeline? Pipeline { get; set; }
    public PolicyEngine? Engine { get; set; }
    public PolicyDirectory? Policies { get; set; }
    public JsonLinesExporter? Exporter { get; set; }
    public Export.Otlp.OtlpLogExporter? Otlp { get; set; }
    public LiveEvents Live { get; } = new();
    public EventMetrics EventMetrics { get; init; } = new([]);
    public string PolicyDir { get; set; } = "";
    public PolicyValidator? Validator { get; set; }
    public PolicyCompiler? Compiler { get; set; }
    public Kubernetes.CrdPolicySource? Crds { get; set; }
    public Containers.PodCache? Pods { get; set; }
    public Containers.CgroupMap? Cgroups { get; set; }

    /// <summary>Every loaded policy: from the policy directory and from the cluster.</summary>
    public IEnumerable<LoadedPolicy> LoadedPolicies() =>
        (Policies?.Loaded ?? []).Concat(Crds?.Loaded ?? []);

    /// <summary>Serializes policy changes from the API with the hot-reload loop.</summary>
    public object PolicyLock { get; } = new();
}
