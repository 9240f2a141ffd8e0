namespace SecurityAgent.Export;

/// <summary>A destination of enriched events. Called from the pipeline's single reader only.</summary>
public interface IEventExporter : IAsyncDisposable
{
    void Export(AgentEvent e);

    /// <summary>Called when the pipeline has no more events queued: push out what is buffered.</summary>
    void Flush();

    /// <summary>Whether a later <see cref="Flush"/> has work without a new event (something held back, a deadline to
    /// check): the pipeline's reader then keeps waking on its timer instead of waiting for the kernel.</summary>
    bool FlushPending => false;
}
