using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Tests that load BPF programs into this machine's kernel run one at a time, and share one
/// running agent (started from the real binary) where they only read its events.</summary>
[CollectionDefinition("kernel")]
public sealed class KernelCollection : ICollectionFixture<SharedAgent>;

public sealed class SharedAgent : IDisposable
{
    private readonly Lazy<AgentProcess> _agent = new(() => new AgentProcess());
    public AgentProcess Agent => _agent.Value;

    public void Dispose()
    {
        if (_agent.IsValueCreated) _agent.Value.Dispose();
    }
}
