using System.Text;
using System.Text.Json;
using SecurityAgent.Api;
using SecurityAgent.Events;
using SecurityAgent.Export;
using SecurityAgent.Processes;

namespace SecurityAgent.Tests.Unit;

/// <summary>The live stream's fan-out on the pipeline thread: chunks per batch, a bound per client, drops counted and
/// announced, a stalled client disconnected. The clock is a test's own: no sleeping, no timing.</summary>
public class LiveEventsTests
{
    private sealed class ManualClock : TimeProvider
    {
        public long Ticks;
        public override long GetTimestamp() => Ticks;
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
    }

    private static AgentEvent Exec(int i) => new ProcessExecEvent((ulong)i, new ProcessInfo
    {
        ExecId = "x" + i, Pid = 7, StartTime = 1, Ktime = 1, Binary = "/usr/bin/tool", Args = ["/usr/bin/tool", "n" + i], Cwd = "/",
        Creds = new Credentials(0, 0, 0, 0), Origin = ProcessOrigin.Exec,
    }, null);

    private static LiveEvents Live(LiveEvents.Limits limits, TimeProvider? clock = null) =>
        new(limits, clock) { Formatter = new JsonEventFormatter("n", new BootClock(0)).WithExtensions() };

    /// <summary>What a connection would send: every chunk there is, returned for reuse.</summary>
    private static List<string> Drain(LiveEvents.Subscriber s) => Drain(s, out _);

    private static List<string> Drain(LiveEvents.Subscriber s, out int chunks)
    {
        var lines = new List<string>();
        chunks = 0;
        while (s.Reader.TryRead(out var c))
        {
            chunks++;
            lines.AddRange(Encoding.UTF8.GetString(c.Memory.Span).Split('\n', StringSplitOptions.RemoveEmptyEntries));
            s.Return(c);
        }
        return lines;
    }

    private static string Arg(string line) => JsonDocument.Parse(line).RootElement.GetProperty("process_exec").GetProperty("process").GetProperty("arguments").GetString()!;

    [Fact]
    public void Each_client_gets_its_filtered_events_in_order_in_one_chunk_per_batch()
    {
        var live = Live(LiveEvents.Limits.Default);
        var all = live.Subscribe(_ => true);
        var even = live.Subscribe(e => e.Ktime % 2 == 0);
        for (int i = 0; i < 10; i++) live.Export(Exec(i));
        live.Flush();
        Assert.Equal(Enumerable.Range(0, 10).Select(i => "n" + i), Drain(all, out int chunks).Select(Arg));
        Assert.Equal(1, chunks);
        Assert.Equal([0, 2, 4, 6, 8], Drain(even).Select(l => int.Parse(Arg(l)[1..])));
        Assert.Equal((10, 5, 0L), (all.Delivered, even.Delivered, live.Dropped));
    }

    [Fact]
    public void A_client_that_does_not_read_loses_what_is_over_its_bound_counted_and_is_told_how_many_when_it_reads_again()
    {
        var live = Live(new LiveEvents.Limits(MaxChunks: 2, ChunkBytes: 1, TimeSpan.FromSeconds(5))); // one event per chunk
        var slow = live.Subscribe(_ => true);
        var other = live.Subscribe(_ => true);
        for (int i = 0; i < 5; i++) live.Export(Exec(i));
        live.Flush();
        Assert.Equal((3L, 3L), (slow.Dropped, live.Dropped - other.Dropped));
        var first = Drain(slow);
        Assert.Equal(["n0", "n1"], first.Select(Arg));
        Drain(other);
        live.Export(Exec(5));
        live.Flush();
        var next = Drain(slow);
        var notice = JsonDocument.Parse(next[0]).RootElement.GetProperty("stream_drop_info");
        Assert.Equal("3", notice.GetProperty("number_of_dropped_process_events").GetString());
        Assert.Equal("n5", Arg(next[1]));
    }

    [Fact]
    public void A_client_that_stops_reading_while_events_are_dropped_is_disconnected_after_the_stall_limit_and_counted()
    {
        var clock = new ManualClock();
        var live = Live(new LiveEvents.Limits(MaxChunks: 2, ChunkBytes: 1, TimeSpan.FromSeconds(5)), clock);
        var stalled = live.Subscribe(_ => true);
        var reader = live.Subscribe(_ => true);
        for (int i = 0; i < 4; i++) { live.Export(Exec(i)); live.Flush(); Drain(reader); }
        clock.Ticks += TimeSpan.FromSeconds(4).Ticks;
        live.Export(Exec(4));
        live.Flush();
        Drain(reader);
        Assert.False(stalled.Killed.IsCancellationRequested);
        Assert.Equal(0, live.Disconnected);
        clock.Ticks += TimeSpan.FromSeconds(5).Ticks;
        live.Flush();
        Assert.Equal(1, live.Disconnected);
        Assert.True(stalled.Killed.WaitHandle.WaitOne(TimeSpan.FromSeconds(10)));
        live.Unsubscribe(stalled); // the connection's writer ends: what it had not sent counts as dropped
        Assert.Equal(5, stalled.Dropped + stalled.Delivered);
        Assert.Equal(stalled.Dropped, live.Dropped);
        Assert.Equal([reader], live.Subscribers);
        Assert.Equal(5, reader.Delivered);
    }

    [Fact]
    public void A_client_that_caught_up_after_drops_stays_connected_when_no_more_events_come()
    {
        var clock = new ManualClock();
        var live = Live(new LiveEvents.Limits(MaxChunks: 2, ChunkBytes: 1, TimeSpan.FromSeconds(5)), clock);
        var client = live.Subscribe(_ => true);
        for (int i = 0; i < 4; i++) live.Export(Exec(i));
        live.Flush();
        Assert.Equal(2, client.Dropped);
        Drain(client);
        live.Flush();
        clock.Ticks += TimeSpan.FromSeconds(60).Ticks;
        live.Flush();
        Assert.Equal(0, live.Disconnected);
        Assert.False(client.Killed.IsCancellationRequested);
    }
}
