using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using SecurityAgent.Events;
using SecurityAgent.Export;
using SecurityAgent.Policies;

namespace SecurityAgent.Pipeline;

/// <summary>decode → enrich → decide → (pod wait) → export, for each record, on the thread that drains the ring buffer
/// (<see cref="KernelEventReader"/>): no queue and no thread hop per record. <see cref="EndBatch"/> after each drain
/// releases what waited for its pod and lets every exporter write its batch at once. Single-threaded.
/// The methods every event runs through, here and in the stages and exporters, are marked AggressiveOptimization: the
/// agent runs its ReadyToRun code without tiering, and those are instead compiled fully optimised at the first event
/// (cross-assembly inlining included; make bench-pipeline: about a third less CPU per exported event).</summary>
public sealed partial class EventPipeline
{
    private readonly Enricher _enrich;
    private readonly Decider _decide;
    private readonly PodWait _pods;
    private readonly IEventExporter[] _exporters;
    private readonly FaultLog[] _faults;
    private readonly Action<AgentEvent> _export;
    private readonly ILogger _log;

    private readonly Processes.BuildIds _buildIds = new();

    public PipelineCounters Counters { get; } = new();
    public Processes.ProcessCache Cache => _enrich.Cache;

    public EventPipeline(Enricher enrich, Decider decide, PodWait pods, IReadOnlyList<IEventExporter> exporters, ILogger log)
    {
        (_enrich, _decide, _pods, _exporters, _log) = (enrich, decide, pods, [.. exporters], log);
        _faults = exporters.Select(x => new FaultLog(log, "exporter " + x.GetType().Name + " call")).ToArray();
        _export = ExportNow;
    }

    /// <summary>The in-kernel deny set the decide stage feeds (the policy engine).</summary>
    public interface IDenySet
    {
        void Deny(uint hookId, int selector, int tgid, Actions enforce);
        void ProcessExited(int tgid);
    }

    /// <summary>The most policy records waiting from other threads (fanotify decisions) between two batches.</summary>
    public const int MaxPosted = 16384;
    private readonly System.Collections.Concurrent.ConcurrentQueue<PolicyKernelEvent> _posted = new();
    private int _postedCount;

    /// <summary>A policy record decided outside the ring buffer (a fanotify permission event the agent answered): from
    /// any thread; it goes through decide and export on the pipeline thread at the end of the next batch. False
    /// (dropped) when <see cref="MaxPosted"/> are waiting.</summary>
    public bool Post(PolicyKernelEvent e)
    {
        if (Interlocked.Increment(ref _postedCount) > MaxPosted)
        {
            Interlocked.Decrement(ref _postedCount);
            return false;
        }
        _posted.Enqueue(e);
        // Enqueue's interlocked update orders this read after it (the reader's TrySleep is the other half).
        if (Volatile.Read(ref _readerAsleep) == 1 && Interlocked.Exchange(ref _readerAsleep, 0) == 1)
            _wakeReader?.Invoke();
        return true;
    }

    private int _readerAsleep;
    private Action? _wakeReader;

    /// <summary>The reader, after a batch that found the ring empty, asks to wait without its timer: true when nothing
    /// waits in user space for a later batch (no record posted from another thread, no after-call record held for the
    /// next drain, no event waiting for its pod, no exporter with work for a later flush). From then until <see cref="Awake"/> the next <see cref="Post"/> calls
    /// <paramref name="wake"/> once.</summary>
    public bool TrySleep(Action wake)
    {
        _wakeReader = wake;
        Interlocked.Exchange(ref _readerAsleep, 1); // a full fence: a Post that ran before it is seen below
        if (_posted.IsEmpty && _afterCall.Count == 0 && _pods.Held == 0 && !ExportersPending())
            return true;
        Volatile.Write(ref _readerAsleep, 0);
        return false;
    }

    private bool ExportersPending()
    {
        foreach (var x in _exporters)
            if (x.FlushPending) return true;
        return false;
    }

    /// <summary>Whether the reader's sleep still holds: no <see cref="Post"/> since <see cref="TrySleep"/>.</summary>
    public bool Sleeping => Volatile.Read(ref _readerAsleep) == 1;

    /// <summary>The reader waits on its timer again.</summary>
    public void Awake() => Volatile.Write(ref _readerAsleep, 0);

    /// <summary>One ring-buffer record (the span is valid only during the call).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void OnRecord(ReadOnlySpan<byte> raw)
    {
        Counters.OnReceived();
        try
        {
            var record = EventDecoder.Decode(raw);
            AgentEvent? e = record.Op switch
            {
                Op.Exec => _enrich.Exec(record.Exec),
                Op.Fork => Fork(record.Fork),
                Op.Exit => Exit(record.Exit),
                Op.Loader => Loader(record.Loader),
                Op.Data => Data(record.Data),
                _ => Policy(record.Policy),
            };
            if (e is not null && !_pods.Offer(e, _export))
                Counters.OnPodWaitOverflow();
        }
        catch (FormatException ex)
        {
            Counters.OnDecodeError();
            LogDecodeError(_log, ex.Message);
        }
    }

    private AgentEvent? Fork(ForkEvent e)
    {
        _enrich.Fork(e);
        return null; // clones are context for later events, not exported themselves (as Tetragon)
    }

    private ProcessExitEvent Exit(ExitEvent e)
    {
        _decide.ProcessExited(e.Pid);
        return _enrich.Exit(e);
    }

    /// <summary>As Tetragon, only mappings of files with a build id are reported.</summary>
    private ProcessLoaderEvent? Loader(in LoaderEvent e)
    {
        var path = System.Text.Encoding.UTF8.GetString(e.Path);
        if (_buildIds.Get(e.Pid, path, e.Dev, e.Ino, e.Mtime) is not { } id)
        {
            Counters.OnLoaderWithoutBuildId();
            return null;
        }
        var (p, parent) = _enrich.ProcessOf(e.Pid, e.Tid);
        return new ProcessLoaderEvent(e.Ktime, p, parent, path, id);
    }

    /// <summary>maxData buffers being joined to their events.</summary>
    public MaxDataJoiner MaxData { get; } = new();

    private AgentEvent? Data(in DataChunk c)
    {
        MaxData.Add(c);
        return null;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private PolicyMatchEvent? Policy(PolicyKernelEvent e)
    {
        if ((e.Actions & (uint)Actions.MaxData) != 0 && _decide.HookOf(e.HookId) is { } hook)
            MaxData.Join(e, hook);
        var (p, parent) = _enrich.ProcessOf(e.Pid, e.Tid);
        var (verdict, match) = _decide.Decide(e, p, parent);
        if (verdict == Decider.Verdict.UnknownHook) Counters.OnUnknownHook();
        else if (verdict == Decider.Verdict.Filtered) Counters.OnUserSpaceFiltered();
        return match;
    }

    /// <summary>After each drain of the ring buffer (and on each poll timeout): held events whose pod came or whose
    /// wait is over go out, then every exporter writes what it collected.</summary>
    public void EndBatch() => Finish(all: false);

    /// <summary>No more records will come: everything held goes out, then the exporters write.</summary>
    public void Complete() => Finish(all: true);

    // After-the-call records (fanotify changes) wait for one more drain of the ring buffer, so that the kernel's record of
    // the same call, submitted before the call ran, has been decided first (Fanotify.AfterCallMatches drops the repeat).
    private List<PolicyKernelEvent> _afterCall = [], _afterCallNext = [];

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Finish(bool all)
    {
        _enrich.EndBatch();
        foreach (var held in _afterCall)
            Decided(held);
        _afterCall.Clear();
        while (_posted.TryDequeue(out var posted))
        {
            Interlocked.Decrement(ref _postedCount);
            if (posted.AfterCall && !all) _afterCallNext.Add(posted);
            else Decided(posted);
        }
        (_afterCall, _afterCallNext) = (_afterCallNext, _afterCall);
        _pods.Release(_export, all);
        for (int i = 0; i < _exporters.Length; i++)
        {
            try
            {
                _exporters[i].Flush();
                _faults[i].Succeeded();
            }
            catch (Exception ex)
            {
                Counters.OnExporterFault();
                _faults[i].Failed(1, ex.Message);
            }
        }
    }

    private void Decided(PolicyKernelEvent posted)
    {
        Counters.OnReceived();
        if (Policy(posted) is { } e && !_pods.Offer(e, _export))
            Counters.OnPodWaitOverflow();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void ExportNow(AgentEvent e)
    {
        for (int i = 0; i < _exporters.Length; i++)
        {
            try { _exporters[i].Export(e); }
            catch (Exception ex)
            {
                Counters.OnExporterFault();
                _faults[i].Failed(1, ex.Message);
            }
        }
        Counters.OnExported(e.Type, e is PolicyMatchEvent m ? m.PolicyName : "");
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dropped a malformed kernel record: {Reason}")]
    private static partial void LogDecodeError(ILogger log, string reason);
}
