using System.Collections.Concurrent;
using System.Net;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace SecurityAgent.Policies;

/// <summary>Tetragon's DnsLookup (resolve <see cref="Target"/>) and GetUrl (HTTP GET <see cref="Target"/>) actions.</summary>
public sealed record Notification(NotificationKind Kind, string Target);

public enum NotificationKind { DnsLookup, GetUrl }

/// <summary>Carries out DnsLookup and GetUrl for matching events, in user space and off the event path: the
/// pipeline only queues (never blocks; a full queue drops and counts), and each target is contacted at most once
/// per <see cref="Interval"/> (a policy matching a hot call cannot make the agent flood a server).</summary>
public sealed partial class PolicyNotifier : IAsyncDisposable
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);
    private const int QueueCapacity = 256;

    private readonly Channel<Notification> _queue = Channel.CreateBounded<Notification>(new BoundedChannelOptions(QueueCapacity)
    {
        FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true,
    });
    private readonly ConcurrentDictionary<Notification, long> _last = new();
    private HttpClient? _http; // made at the first request: an agent without notify actions never loads System.Net.Http
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _worker;
    private long _dropped, _done, _failed;

    public PolicyNotifier(ILogger log, TimeProvider? time = null)
    {
        (_log, _time) = (log, time ?? TimeProvider.System);
        _worker = Task.Run(RunAsync);
    }

    /// <summary>Notifications carried out, failed (the lookup or request failed or timed out) and dropped (queue full or
    /// rate limited).</summary>
    public (long Done, long Failed, long Dropped) Counters => (Interlocked.Read(ref _done), Interlocked.Read(ref _failed), Interlocked.Read(ref _dropped));

    /// <summary>From the pipeline thread: queue the selector's notifications; never blocks.</summary>
    public void Enqueue(IReadOnlyList<Notification> notifications)
    {
        long now = _time.GetTimestamp();
        foreach (var n in notifications)
        {
            bool due = !_last.TryGetValue(n, out var last) || _time.GetElapsedTime(last, now) >= Interval;
            if (due && _queue.Writer.TryWrite(n)) _last[n] = now;
            else Interlocked.Increment(ref _dropped);
        }
    }

    private async Task RunAsync()
    {
        await foreach (var n in _queue.Reader.ReadAllAsync(_stop.Token))
        {
            try
            {
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                cts.CancelAfter(Timeout);
                if (n.Kind == NotificationKind.DnsLookup)
                    await Dns.GetHostAddressesAsync(n.Target, cts.Token);
                else
                    await GetAsync(n.Target, cts.Token);
                Interlocked.Increment(ref _done);
            }
            catch (Exception e) when (!_stop.IsCancellationRequested) // a failed lookup or request is that notification's failure only
            {
                Interlocked.Increment(ref _failed);
                LogFailed(_log, n.Kind, n.Target, e.Message);
            }
        }
    }

    /// <summary>Stops at once: what is queued or under way is abandoned.</summary>
    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _stop.CancelAsync();
        try { await _worker; }
        catch (OperationCanceledException) { }
        _http?.Dispose();
        _stop.Dispose();
    }

    /// <summary>Apart from <see cref="RunAsync"/>, whose state machine would otherwise hold an HTTP awaiter and so load
    /// System.Net.Http when the notifier starts.</summary>
    private async Task GetAsync(string target, CancellationToken cancel)
    {
        _http ??= new(new SocketsHttpHandler { AllowAutoRedirect = false, UseProxy = false }) { Timeout = Timeout };
        (await _http.GetAsync(target, HttpCompletionOption.ResponseHeadersRead, cancel)).Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Policy action {Kind} {Target} failed: {Reason}")]
    private static partial void LogFailed(ILogger log, NotificationKind kind, string target, string reason);
}
