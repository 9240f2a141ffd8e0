using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Threading.Channels;
using SecurityAgent.Export;

namespace SecurityAgent.Api;

/// <summary>An exporter that fans events out to API subscribers (`secagent events`). Events are rendered on the pipeline
/// thread straight into a subscriber's chunk (one rendering per event, copied for further subscribers), and a chunk is
/// handed to the subscriber's connection per batch: no allocation and no hand-off per event. Each subscriber owns at most
/// <see cref="Limits.MaxChunks"/> chunks of about <see cref="Limits.ChunkBytes"/>: when every one is queued or being
/// sent, further events for it are dropped (counted per subscriber, and the next chunk it gets begins with a
/// `stream_drop_info` line saying how many); one that has made no progress for <see cref="Limits.StallLimit"/> while
/// dropping is disconnected. The pipeline never waits for a subscriber. With no subscriber an event costs one array read.</summary>
public sealed class LiveEvents : IEventExporter
{
    /// <summary>Per subscriber: chunks held at most, the size at which a chunk is handed over before the batch ends, and
    /// how long a subscriber may drop events without taking a chunk before it is disconnected.</summary>
    public sealed record Limits(int MaxChunks, int ChunkBytes, TimeSpan StallLimit)
    {
        public static readonly Limits Default = new(8, 256 * 1024, TimeSpan.FromSeconds(5)); // a chunk per batch, as the export file's write
    }

    private readonly Limits _limits;
    private readonly TimeProvider _clock;
    private Subscriber[] _subscribers = [];
    private readonly object _change = new();
    private long _dropped, _disconnected;
    private int _nextId;
    private Utf8JsonWriter? _notice;
    public JsonEventFormatter? Formatter { get; set; }

    public LiveEvents(Limits? limits = null, TimeProvider? clock = null) => (_limits, _clock) = (limits ?? Limits.Default, clock ?? TimeProvider.System);

    /// <summary>Events dropped for slow subscribers, the attached ones' and the departed ones'.</summary>
    public long Dropped
    {
        get
        {
            long sum = Interlocked.Read(ref _dropped);
            foreach (var s in Volatile.Read(ref _subscribers)) sum += s.Dropped;
            return sum;
        }
    }

    /// <summary>Subscribers disconnected for not reading.</summary>
    public long Disconnected => Interlocked.Read(ref _disconnected);

    public IReadOnlyList<Subscriber> Subscribers => Volatile.Read(ref _subscribers);

    /// <summary>Rendered lines for one subscriber, reused once sent.</summary>
    public sealed class Chunk(int capacity)
    {
        internal readonly ArrayBufferWriter<byte> Bytes = new(capacity);
        internal int Lines;
        public ReadOnlyMemory<byte> Memory => Bytes.WrittenMemory;
    }

    public sealed class Subscriber
    {
        internal Subscriber(int id, Func<AgentEvent, bool> filter, DateTimeOffset since, int maxChunks) =>
            (Id, Filter, Since, _maxChunks) = (id, filter, since, maxChunks);
        public int Id { get; }
        public DateTimeOffset Since { get; }
        internal Func<AgentEvent, bool> Filter { get; }
        internal readonly Channel<Chunk> Queue = Channel.CreateUnbounded<Chunk>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        private readonly ConcurrentQueue<Chunk> _free = new();
        private readonly CancellationTokenSource _kill = new();
        private readonly int _maxChunks;
        internal Chunk? Current;
        internal int Allocated;
        internal long PendingNotice, DroppingSince, ProgressAtDrop;
        internal bool Closed, Dropping;
        private long _dropped, _delivered, _progress;
        private int _queued;

        /// <summary>Chunks handed to the connection and not yet sent.</summary>
        internal int Queued => Volatile.Read(ref _queued);
        internal void Send(Chunk c)
        {
            Interlocked.Increment(ref _queued);
            if (!Queue.Writer.TryWrite(c)) Discard(c); // the connection has ended
        }

        /// <summary>Events dropped for this subscriber (it read too slowly).</summary>
        public long Dropped => Volatile.Read(ref _dropped);
        /// <summary>Events handed to its connection.</summary>
        public long Delivered => Volatile.Read(ref _delivered);
        /// <summary>Cancelled when the agent disconnects this subscriber.</summary>
        public CancellationToken Killed => _kill.Token;
        public ChannelReader<Chunk> Reader => Queue.Reader;
        internal long Progress => Volatile.Read(ref _progress);

        /// <summary>A chunk the connection has sent: it is reused.</summary>
        public void Return(Chunk c)
        {
            Interlocked.Add(ref _delivered, c.Lines);
            Interlocked.Decrement(ref _queued);
            c.Lines = 0;
            c.Bytes.ResetWrittenCount();
            _free.Enqueue(c);
            Interlocked.Increment(ref _progress);
        }

        internal Chunk? Take(int capacity)
        {
            if (_free.TryDequeue(out var c)) return c;
            if (Allocated >= _maxChunks) return null;
            Allocated++;
            return new Chunk(capacity);
        }

        internal void CountDrop() => Interlocked.Increment(ref _dropped);

        /// <summary>A chunk that will not be sent (the connection ended): its events count as dropped.</summary>
        public void Discard(Chunk c) => Discard(c, queued: true);

        internal void Discard(Chunk c, bool queued)
        {
            Interlocked.Add(ref _dropped, c.Lines);
            if (queued) Interlocked.Decrement(ref _queued);
            c.Lines = 0;
            c.Bytes.ResetWrittenCount();
            _free.Enqueue(c);
        }
        internal void Kill() => ThreadPool.UnsafeQueueUserWorkItem(static k => k.Cancel(), _kill, preferLocal: false);
    }

    public Subscriber Subscribe(Func<AgentEvent, bool> filter)
    {
        lock (_change)
        {
            var s = new Subscriber(++_nextId, filter, _clock.GetUtcNow(), _limits.MaxChunks);
            Volatile.Write(ref _subscribers, [.. _subscribers, s]);
            return s;
        }
    }

    /// <summary>The connection has ended: what it had not sent is counted as dropped, and it leaves the list.</summary>
    public void Unsubscribe(Subscriber s)
    {
        s.Queue.Writer.TryComplete();
        while (s.Queue.Reader.TryRead(out var left)) s.Discard(left);
        lock (_change)
        {
            if (Array.IndexOf(_subscribers, s) < 0) return;
            Volatile.Write(ref _subscribers, _subscribers.Where(x => x != s).ToArray());
            Interlocked.Add(ref _dropped, s.Dropped);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Export(AgentEvent e)
    {
        var subscribers = Volatile.Read(ref _subscribers);
        if (subscribers.Length == 0 || Formatter is not { } formatter) return;
        foreach (var s in subscribers)
        {
            if (s.Closed || !s.Filter(e)) continue;
            var c = s.Current ??= Begin(s);
            if (c is null)
            {
                s.CountDrop();
                s.PendingNotice++;
                if (!s.Dropping)
                    (s.Dropping, s.DroppingSince, s.ProgressAtDrop) = (true, _clock.GetTimestamp(), s.Progress);
                continue;
            }
            formatter.RenderInto(e, c.Bytes);
            c.Bytes.Write("\n"u8);
            c.Lines++;
            if (c.Bytes.WrittenCount >= _limits.ChunkBytes)
                HandOff(s, formatter);
        }
    }

    /// <summary>A chunk to render into; it begins with the notice of the events dropped since the last one.</summary>
    private Chunk? Begin(Subscriber s)
    {
        var c = s.Take(_limits.ChunkBytes + 16 * 1024);
        if (c is null || s.PendingNotice == 0) return c;
        var w = _notice ??= new Utf8JsonWriter(c.Bytes, new JsonWriterOptions { SkipValidation = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        w.Reset(c.Bytes);
        Formatter!.WriteStreamDropInfo(w, s.PendingNotice, (ulong)Interop.Libc.ClockNs(Interop.Libc.CLOCK_BOOTTIME));
        w.Flush();
        c.Bytes.Write("\n"u8);
        (s.PendingNotice, s.Dropping) = (0, false);
        return c;
    }

    private static void HandOff(Subscriber s, JsonEventFormatter formatter)
    {
        var c = s.Current!;
        s.Current = null;
        formatter.Released(c.Bytes);
        s.Send(c);
    }

    /// <summary>End of a batch: each subscriber's chunk goes to its connection, unless the connection is still busy with
    /// an earlier one and this one has room (it is then sent with the next batch's, within one poll interval);
    /// a subscriber that has been dropping without progress for too long is disconnected.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Flush()
    {
        var subscribers = Volatile.Read(ref _subscribers);
        if (subscribers.Length == 0 || Formatter is not { } formatter) return;
        foreach (var s in subscribers)
        {
            if (s.Current is { } c && (s.Queued == 0 || c.Bytes.WrittenCount >= _limits.ChunkBytes / 2))
                HandOff(s, formatter);
            if (s.Dropping && !s.Closed)
            {
                if (s.Queued < s.Allocated)
                    s.Dropping = false; // it has caught up: a chunk is free for the next event
                else if (s.Progress != s.ProgressAtDrop)
                    (s.DroppingSince, s.ProgressAtDrop) = (_clock.GetTimestamp(), s.Progress);
                else if (_clock.GetElapsedTime(s.DroppingSince) >= _limits.StallLimit)
                {
                    Interlocked.Increment(ref _disconnected);
                    Disconnect(s);
                }
            }
        }
    }

    /// <summary>A chunk held back while its connection was busy goes with the next Flush; a dropping subscriber is
    /// disconnected by a Flush once it has stalled too long.</summary>
    public bool FlushPending
    {
        get
        {
            foreach (var s in Volatile.Read(ref _subscribers))
                if (!s.Closed && (s.Current is not null || s.Dropping))
                    return true;
            return false;
        }
    }

    /// <summary>Its connection is closed; it leaves the list when the connection's writer has counted what it had not sent.</summary>
    private static void Disconnect(Subscriber s)
    {
        s.Closed = true;
        if (s.Current is { } c)
        {
            s.Current = null;
            s.Discard(c, queued: false);
        }
        s.Queue.Writer.TryComplete();
        s.Kill();
    }

    /// <summary>Subscribers still attached (the agent is stopping).</summary>
    public ValueTask DisposeAsync()
    {
        foreach (var s in Volatile.Read(ref _subscribers)) s.Queue.Writer.TryComplete();
        return ValueTask.CompletedTask;
    }
}
