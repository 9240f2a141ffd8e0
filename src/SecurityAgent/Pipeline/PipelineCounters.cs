namespace SecurityAgent.Pipeline;

/// <summary>Where events go and where they are lost, stage by stage. Written by one thread each,
/// read by anyone (status, log reports, tests).</summary>
public sealed class PipelineCounters
{
    private long _received, _channelDropped, _decodeErrors, _exported, _kernelLost, _unknownHook, _userSpaceFiltered;

    /// <summary>Records read from the kernel ring buffer.</summary>
    public long Received => Volatile.Read(ref _received);
    /// <summary>Records dropped because the pipeline channel was full.</summary>
    public long ChannelDropped => Volatile.Read(ref _channelDropped);
    public long DecodeErrors => Volatile.Read(ref _decodeErrors);
    public long Exported => Volatile.Read(ref _exported);
    /// <summary>Records the kernel could not write: ring buffer full (from the sa_lost map).</summary>
    public long KernelLost => Volatile.Read(ref _kernelLost);

    /// <summary>Policy events whose hook was unloaded before they were read.</summary>
    public long UnknownHook => Volatile.Read(ref _unknownHook);
    /// <summary>Policy events the user-space stage (ancestry) decided not to report.</summary>
    public long UserSpaceFiltered => Volatile.Read(ref _userSpaceFiltered);

    internal void OnUnknownHook() => Interlocked.Increment(ref _unknownHook);
    internal void OnUserSpaceFiltered() => Interlocked.Increment(ref _userSpaceFiltered);
    internal void OnReceived() => Interlocked.Increment(ref _received);
    internal void OnChannelDropped() => Interlocked.Increment(ref _channelDropped);
    internal void OnDecodeError() => Interlocked.Increment(ref _decodeErrors);
    internal void OnExported() => Interlocked.Increment(ref _exported);

    /// <summary>Events exported, by type and policy ("" for lifecycle events).</summary>
    public System.Collections.Concurrent.ConcurrentDictionary<(string Type, string Policy), long> ByType { get; } = new();

    internal void OnExported(string type, string policy)
    {
        OnExported();
        ByType.AddOrUpdate((type, policy), 1, (_, n) => n + 1);
    }
    internal void SetKernelLost(long value) => Volatile.Write(ref _kernelLost, value);

    public long TotalLost => ChannelDropped + KernelLost + DecodeErrors;

    public override string ToString() =>
        $"received={Received} exported={Exported} kernel_lost={KernelLost} channel_dropped={ChannelDropped} decode_errors={DecodeErrors} unknown_hook={UnknownHook} user_space_filtered={UserSpaceFiltered}";
}
