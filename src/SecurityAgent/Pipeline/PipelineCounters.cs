using System.Runtime.CompilerServices;

namespace SecurityAgent.Pipeline;

/// <summary>Where events go and where they are lost, stage by stage. Written by the pipeline thread (kernel losses
/// by the control loop), read by anyone (status, log reports, tests).</summary>
public sealed class PipelineCounters
{
    private long _received, _decodeErrors, _exported, _kernelLost, _unknownHook, _userSpaceFiltered, _podWaitOverflow, _exporterFaults, _loaderWithoutBuildId;
    private Dictionary<(string Type, string Policy), long[]> _byType = new();
    // The last (type, policy) and its cell: a run of events of one policy skips hashing both strings per event.
    private string? _lastType, _lastPolicy;
    private long[]? _lastCell;

    /// <summary>Records read from the kernel ring buffer.</summary>
    public long Received => Volatile.Read(ref _received);
    public long DecodeErrors => Volatile.Read(ref _decodeErrors);
    public long Exported => Volatile.Read(ref _exported);
    /// <summary>Records the kernel could not write: ring buffer full, or a return probe's event it could not keep until
    /// the return (from the sa_lost map).</summary>
    public long KernelLost => Volatile.Read(ref _kernelLost);
    /// <summary>Policy events whose hook was unloaded before they were read.</summary>
    public long UnknownHook => Volatile.Read(ref _unknownHook);
    /// <summary>Policy events the user-space stage (ancestry) decided not to report.</summary>
    public long UserSpaceFiltered => Volatile.Read(ref _userSpaceFiltered);
    /// <summary>Events sent on without their pod because too many were already waiting for theirs.</summary>
    public long PodWaitOverflow => Volatile.Read(ref _podWaitOverflow);
    /// <summary>Exceptions an exporter threw (each is isolated: the event still went to the others).</summary>
    public long ExporterFaults => Volatile.Read(ref _exporterFaults);

    /// <summary>spec.loader mappings not reported: the file has no build id, or could not be read as the inode mapped.</summary>
    public long LoaderWithoutBuildId => Volatile.Read(ref _loaderWithoutBuildId);

    internal void OnReceived() => Volatile.Write(ref _received, _received + 1);
    internal void OnDecodeError() => Volatile.Write(ref _decodeErrors, _decodeErrors + 1);
    internal void OnUnknownHook() => Volatile.Write(ref _unknownHook, _unknownHook + 1);
    internal void OnUserSpaceFiltered() => Volatile.Write(ref _userSpaceFiltered, _userSpaceFiltered + 1);
    internal void OnPodWaitOverflow() => Volatile.Write(ref _podWaitOverflow, _podWaitOverflow + 1);
    internal void OnLoaderWithoutBuildId() => Volatile.Write(ref _loaderWithoutBuildId, _loaderWithoutBuildId + 1);
    internal void OnExporterFault() => Volatile.Write(ref _exporterFaults, _exporterFaults + 1);
    internal void SetKernelLost(long value) => Volatile.Write(ref _kernelLost, value);

    /// <summary>Events exported, by type and policy ("" for lifecycle events): a snapshot.</summary>
    public IReadOnlyList<KeyValuePair<(string Type, string Policy), long>> ByType =>
        Volatile.Read(ref _byType).Select(kv => KeyValuePair.Create(kv.Key, Volatile.Read(ref kv.Value[0]))).ToList();

    /// <summary>Pipeline thread. A new (type, policy) pair copies the table, so readers never see it change under them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void OnExported(string type, string policy)
    {
        Volatile.Write(ref _exported, _exported + 1);
        var cell = _lastCell;
        if (cell is null || !ReferenceEquals(type, _lastType) || !ReferenceEquals(policy, _lastPolicy))
        {
            if (!_byType.TryGetValue((type, policy), out cell))
            {
                var copy = new Dictionary<(string, string), long[]>(_byType) { [(type, policy)] = cell = new long[1] };
                Volatile.Write(ref _byType, copy);
            }
            (_lastType, _lastPolicy, _lastCell) = (type, policy, cell);
        }
        Volatile.Write(ref cell[0], cell[0] + 1);
    }

    public long TotalLost => KernelLost + DecodeErrors;

    public override string ToString() =>
        $"received={Received} exported={Exported} kernel_lost={KernelLost} decode_errors={DecodeErrors} unknown_hook={UnknownHook} user_space_filtered={UserSpaceFiltered} pod_wait_overflow={PodWaitOverflow} exporter_faults={ExporterFaults} loader_without_build_id={LoaderWithoutBuildId}";
}
