namespace SecurityAgent.Export;

/// <summary>A destination of enriched events. Called from the pipeline's single reader only.</summary>
public interface IEventExporter : IAsyncDisposable
{
    void Export(AgentEvent e);

    /// <summary>Called when the pipeline has no more events queued: push out what is buffered.</summary>
    void Flush();
}
