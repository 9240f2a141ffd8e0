using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text;
using System.Threading.Channels;
using SecurityAgent.Export;

namespace SecurityAgent.Api;

/// <summary>An exporter that fans events out to API subscribers (`secagent events`). Each subscriber has a
/// bounded queue: a slow reader loses events (counted), and never slows the pipeline. With no subscriber an event
/// costs one array read.</summary>
public sealed class LiveEvents : IEventExporter
{
    private Subscriber[] _subscribers = [];
    private readonly object _change = new();
    public JsonEventFormatter? Formatter { get; set; }
    public long Dropped => Volatile.Read(ref _subscribers).Sum(s => Interlocked.Read(ref s.Dropped)) + Interlocked.Read(ref _dropped);
    private long _dropped;

    public sealed class Subscriber(Func<AgentEvent, bool> filter)
    {
        internal Channel<string> Queue { get; } = Channel.CreateBounded<string>(new BoundedChannelOptions(10_000) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        internal Func<AgentEvent, bool> Filter => filter;
        public long Dropped;
        public ChannelReader<string> Reader => Queue.Reader;
    }

    public Subscriber Subscribe(Func<AgentEvent, bool> filter)
    {
        var s = new Subscriber(filter);
        lock (_change) Volatile.Write(ref _subscribers, [.. _subscribers, s]);
        return s;
    }

    public void Unsubscribe(Subscriber s)
    {
        lock (_change)
        {
            if (Array.IndexOf(_subscribers, s) < 0) return;
            Volatile.Write(ref _subscribers, _subscribers.Where(x => x != s).ToArray());
            Interlocked.Add(ref _dropped, Interlocked.Read(ref s.Dropped));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Export(AgentEvent e)
    {
        var subscribers = Volatile.Read(ref _subscribers);
        if (subscribers.Length == 0 || Formatter is null) return;
        string? line = null;
        foreach (var s in subscribers)
        {
            if (!s.Filter(e)) continue;
            line ??= Render(e);
            if (!s.Queue.Writer.TryWrite(line))
                Interlocked.Increment(ref s.Dropped);
        }
    }

    private string Render(AgentEvent e) => Encoding.UTF8.GetString(Formatter!.Render(e));

    public void Flush() { }

    public ValueTask DisposeAsync()
    {
        foreach (var s in Volatile.Read(ref _subscribers)) s.Queue.Writer.TryComplete();
        return ValueTask.CompletedTask;
    }
}
