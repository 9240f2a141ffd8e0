using System.Buffers;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using SecurityAgent.Events;
using SecurityAgent.Export;
using SecurityAgent.Processes;

namespace SecurityAgent.Pipeline;

/// <summary>ring buffer thread → bounded channel → (one reader) decode → enrich → export.
/// The ring buffer side never blocks: when the channel is full the record is dropped and counted.</summary>
public sealed partial class EventPipeline
{
    private readonly Channel<RawRecord> _channel;
    private readonly ProcessCache _cache;
    private readonly IReadOnlyList<IEventExporter> _exporters;
    private readonly ILogger _log;

    public PipelineCounters Counters { get; } = new();
    public ProcessCache Cache => _cache;

    private readonly record struct RawRecord(byte[] Buffer, int Length);

    public EventPipeline(int capacity, ProcessCache cache, IReadOnlyList<IEventExporter> exporters, ILogger log)
    {
        _channel = Channel.CreateBounded<RawRecord>(new BoundedChannelOptions(capacity)
        {
            SingleReader = true,
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait, // TryWrite then fails instead of blocking; we count it
        });
        _cache = cache;
        _exporters = exporters;
        _log = log;
    }

    /// <summary>Called on the ring buffer thread for each record (the span is only valid during the call).</summary>
    public void Enqueue(ReadOnlySpan<byte> record)
    {
        Counters.OnReceived();
        var buf = ArrayPool<byte>.Shared.Rent(record.Length);
        record.CopyTo(buf);
        if (!_channel.Writer.TryWrite(new RawRecord(buf, record.Length)))
        {
            ArrayPool<byte>.Shared.Return(buf);
            Counters.OnChannelDropped();
        }
    }

    /// <summary>No more records will come; <see cref="RunAsync"/> finishes once the queue is drained.</summary>
    public void Complete() => _channel.Writer.TryComplete();

    public async Task RunAsync(CancellationToken ct)
    {
        var reader = _channel.Reader;
        try
        {
            while (await reader.WaitToReadAsync(ct).ConfigureAwait(false))
            {
                while (reader.TryRead(out var r))
                {
                    try { Handle(r.Buffer.AsSpan(0, r.Length)); }
                    finally { ArrayPool<byte>.Shared.Return(r.Buffer); }
                }
                foreach (var e in _exporters)
                    e.Flush();
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private void Handle(ReadOnlySpan<byte> raw)
    {
        KernelEvent ev;
        try
        {
            ev = EventDecoder.Decode(raw);
        }
        catch (FormatException ex)
        {
            Counters.OnDecodeError();
            LogDecodeError(_log, ex.Message);
            return;
        }

        AgentEvent? output = ev switch
        {
            ExecEvent exec => Exec(exec),
            ForkEvent fork => Fork(fork),
            ExitEvent exit => Exit(exit),
            _ => null,
        };
        if (output is not null)
            Export(output);
    }

    private ProcessExecEvent Exec(ExecEvent e)
    {
        var p = _cache.OnExec(e);
        return new ProcessExecEvent(e.Ktime, p, _cache.Parent(p));
    }

    private AgentEvent? Fork(ForkEvent e)
    {
        _cache.OnFork(e);
        return null; // clones are context for later events, not exported themselves (as Tetragon)
    }

    private ProcessExitEvent Exit(ExitEvent e)
    {
        var p = _cache.OnExit(e) ?? Unknown(e);
        return new ProcessExitEvent(e.Ktime, p, _cache.Parent(p), e.Status, e.Signal);
    }

    /// <summary>An exit of a process the cache never saw (evicted, or lost events): still reported.</summary>
    private ProcessInfo Unknown(ExitEvent e) => new()
    {
        ExecId = ExecId.Make(_cache.NodeName, e.StartTime, e.Pid),
        Pid = e.Pid,
        Tid = e.Tid,
        StartTime = e.StartTime,
        Ktime = e.StartTime,
        Binary = "",
        Args = [],
        Cwd = "",
        Creds = new Credentials(0, 0, 0, 0),
        Origin = ProcessOrigin.Clone,
    };

    private void Export(AgentEvent e)
    {
        foreach (var x in _exporters)
            x.Export(e);
        Counters.OnExported();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dropped a malformed kernel record: {Reason}")]
    private static partial void LogDecodeError(ILogger log, string reason);
}
