using SecurityAgent.Processes;

namespace SecurityAgent.Export;

/// <summary>An enriched event, ready for the exporters. Time is CLOCK_BOOTTIME ns (see <see cref="BootClock"/>).</summary>
public abstract record AgentEvent(ulong Ktime, ProcessInfo Process, ProcessInfo? Parent)
{
    /// <summary>The top-level key of the exported JSON object (Tetragon's event type names).</summary>
    public abstract string Type { get; }
}

public sealed record ProcessExecEvent(ulong Ktime, ProcessInfo Process, ProcessInfo? Parent) : AgentEvent(Ktime, Process, Parent)
{
    public override string Type => "process_exec";
}

public sealed record ProcessExitEvent(ulong Ktime, ProcessInfo Process, ProcessInfo? Parent, int Status, int Signal) : AgentEvent(Ktime, Process, Parent)
{
    public override string Type => "process_exit";
}
