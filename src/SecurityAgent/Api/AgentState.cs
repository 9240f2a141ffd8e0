using SecurityAgent.Export;
using SecurityAgent.Kernel;
using SecurityAgent.Pipeline;
using SecurityAgent.Policies;

namespace SecurityAgent.Api;

/// <summary>What the running agent shares with the local API and metrics: the policy lifecycle (there from the start,
/// ready once the agent has attached it) and the status sources the agent service sets once it is up.</summary>
public sealed class AgentState
{
    public PolicyManager Policies { get; } = new();
    public KernelFeatures? Features { get; set; }
    public EventPipeline? Pipeline { get; set; }
    public JsonLinesExporter? Exporter { get; set; }
    public Export.Otlp.OtlpLogExporter? Otlp { get; set; }
    public Fanotify.FanotifyLoader? Fanotify { get; set; }
    public Fanotify.PathChangeLoader? PathChanges { get; set; }
    /// <summary>The policy engine's kernel counters (NotifyEnforcer notifications, TrackSock evictions), when it runs.</summary>
    public Func<PolicyKernelCounters>? PolicyKernelCounters { get; set; }
    /// <summary>Whether the policy programs are loaded yet (start-up loads them after the lifecycle programs).</summary>
    public Func<PolicyProgramsState>? PolicyPrograms { get; set; }
    /// <summary>Whether opens whose hooks only post are matched at their exit alone (<see cref="PolicyEngine.ExitOnlyState"/>).</summary>
    public Func<string?>? ExitOnlyMatching { get; set; }
    public LiveEvents Live { get; } = new();
    public EventMetrics EventMetrics { get; init; } = new([]);
}
