using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using SecurityAgent.Export;

namespace SecurityAgent.Api;

/// <summary>An exporter that fans events out to API subscribers (`secagent events`). Each subscriber has a
/// bounded queue: a slow reader loses events (counted), and never slows the pipeline.</summary>
public sealed class LiveEvents : IEventExporter
{
    private readonly ConcurrentDictionary<Subscriber, byte> _subscribers = new();
    public JsonEventFormatter? Formatter { get; set; }
    public long Dropped => _subscribers.Keys.Sum(s => s.Dropped) + _dropped;
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
        _subscribers[s] = 0;
        return s;
    }

    public void Unsubscribe(Subscriber s)
    {
        if (_subscribers.TryRemove(s, out _))
            Interlocked.Add(ref _dropped, s.Dropped);
    }

    public void Export(AgentEvent e)
    {
        if (_subscribers.IsEmpty || Formatter is null) return;
        string? line = null;
        foreach (var s in _subscribers.Keys)
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
        foreach (var s in _subscribers.Keys) s.Queue.Writer.TryComplete();
        return ValueTask.CompletedTask;
    }
}
