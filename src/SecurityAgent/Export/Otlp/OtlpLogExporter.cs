using System.Buffers.Binary;
using System.Net;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using SecurityAgent.Export.Otlp.Proto;

namespace SecurityAgent.Export.Otlp;

public enum OtlpProtocol { Grpc, HttpProtobuf }

/// <param name="Resource">The resource of logs and metrics alike: service.name, service.version, host.name, and
/// k8s.node.name when the agent runs with Kubernetes, k8s.cluster.name with --cluster-name.</param>
public sealed record OtlpOptions(Uri Endpoint, OtlpProtocol Protocol, IReadOnlyDictionary<string, string> Headers,
    IReadOnlyList<KeyValuePair<string, string>> Resource, int QueueSize = 10_000, int BatchSize = 512)
{
    /// <summary>The OTLP settings of `secagent run`, or null without --otlp-endpoint.</summary>
    public static OtlpOptions? From(Hosting.AgentOptions o) => string.IsNullOrEmpty(o.OtlpEndpoint) ? null
        : new OtlpOptions(new Uri(o.OtlpEndpoint), ParseProtocol(o.OtlpProtocol), ParseHeaders(o.OtlpHeaders),
            ResourceAttributes(o.ResolveNodeName(), kubernetes: !string.IsNullOrEmpty(o.Kubeconfig) || Kubernetes.KubeConfig.InCluster, o.ClusterName), o.OtlpQueueSize);

    public static List<KeyValuePair<string, string>> ResourceAttributes(string node, bool kubernetes, string? cluster = null)
    {
        var r = new List<KeyValuePair<string, string>>
        {
            new("service.name", "securityagent"),
            new("service.version", Hosting.BuildInfo.Version),
            new("service.instance.id", node),
            new("host.name", node),
        };
        if (kubernetes) r.Add(new("k8s.node.name", node));
        if (!string.IsNullOrEmpty(cluster)) r.Add(new("k8s.cluster.name", cluster));
        return r;
    }

    public static OtlpProtocol ParseProtocol(string? s) => s switch
    {
        null or "" or "grpc" => OtlpProtocol.Grpc,
        "http/protobuf" => OtlpProtocol.HttpProtobuf,
        _ => throw new FormatException($"--otlp-protocol is grpc or http/protobuf, not '{s}'"),
    };

    /// <summary>"key=value,key2=value2" (as OTEL_EXPORTER_OTLP_HEADERS).</summary>
    public static Dictionary<string, string> ParseHeaders(string? s) =>
        (s ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(h => h.Split('=', 2)).ToDictionary(p => p[0].Trim(), p => p.Length > 1 ? Uri.UnescapeDataString(p[1].Trim()) : "");

    /// <summary>The endpoint's path, kept, followed by the signal's path: http://gw:4318/otlp + v1/logs is
    /// http://gw:4318/otlp/v1/logs (as OTEL_EXPORTER_OTLP_ENDPOINT is read).</summary>
    public Uri SignalUri(string signalPath) =>
        new(Endpoint.GetLeftPart(UriPartial.Path).TrimEnd('/') + "/" + signalPath.TrimStart('/') + Endpoint.Query);
}

/// <summary>Events as OTLP log records. The pipeline only enqueues (never blocks): the queue is bounded, and an
/// event leaves it only once delivered, so an outage keeps up to QueueSize events for later and every event
/// beyond that is counted as dropped, exactly. One sender task retries with backoff and a circuit breaker.</summary>
public sealed partial class OtlpLogExporter : IEventExporter
{
    private readonly OtlpOptions _opt;
    private readonly JsonEventFormatter _formatter;
    private readonly BootClock _clock;
    private readonly ILogger _log;
    private readonly HttpClient _http;
    private readonly ResiliencePipeline _resilience;
    private readonly Queue<LogRecord> _queue = new();
    private readonly SemaphoreSlim _signal = new(0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _sender;
    private long _enqueued, _delivered, _dropped, _failures, _bytesSent, _lastExportMs;

    /// <summary>A collector's answer is read up to this size: a valid one is a few bytes, and a hostile or broken
    /// endpoint must not make the agent buffer hundreds of megabytes.</summary>
    public const int MaxResponseBytes = 64 * 1024;

    public long Enqueued => Interlocked.Read(ref _enqueued);
    public long Delivered => Interlocked.Read(ref _delivered);
    public long Dropped => Interlocked.Read(ref _dropped);
    public long Failures => Interlocked.Read(ref _failures);
    public int QueueDepth { get { lock (_queue) return _queue.Count; } }
    /// <summary>Request bytes of delivered batches.</summary>
    public long BytesSent => Interlocked.Read(ref _bytesSent);
    public double LastExportUnixSeconds => Interlocked.Read(ref _lastExportMs) / 1000.0;

    public OtlpLogExporter(OtlpOptions opt, JsonEventFormatter formatter, BootClock clock, ILogger log)
    {
        (_opt, _formatter, _clock, _log) = (opt, formatter, clock, log);
        _http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            Timeout = TimeSpan.FromSeconds(10),
            MaxResponseContentBufferSize = MaxResponseBytes,
        };
        _resilience = new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = 3,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(200),
                ShouldHandle = new PredicateBuilder().Handle<HttpRequestException>().Handle<OtlpExportException>().Handle<TaskCanceledException>(),
            })
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                FailureRatio = 0.5,
                MinimumThroughput = 3,
                SamplingDuration = TimeSpan.FromSeconds(10),
                BreakDuration = TimeSpan.FromSeconds(2),
                ShouldHandle = new PredicateBuilder().Handle<HttpRequestException>().Handle<OtlpExportException>().Handle<TaskCanceledException>(),
            })
            .Build();
        _sender = Task.Run(SendLoop);
    }

    /// <summary>Pipeline thread: render, map, enqueue or count as dropped.</summary>
    public void Export(AgentEvent e)
    {
        var record = OtlpMapping.ToLogRecord(e, Encoding.UTF8.GetString(_formatter.Render(e)), _clock, _formatter);
        lock (_queue)
        {
            if (_queue.Count >= _opt.QueueSize)
            {
                _dropped++;
                return;
            }
            _queue.Enqueue(record);
            _enqueued++;
        }
        _signal.Release();
    }

    public void Flush() { }

    private async Task SendLoop()
    {
        var ct = _stop.Token;
        while (!ct.IsCancellationRequested)
        {
            try { await _signal.WaitAsync(ct); }
            catch (OperationCanceledException) { break; }
            List<LogRecord> batch;
            lock (_queue) batch = _queue.Take(_opt.BatchSize).ToList(); // stays queued until delivered
            if (batch.Count == 0) continue;
            try
            {
                int bytes = await _resilience.ExecuteAsync(async t => await Send(batch, t), ct);
                lock (_queue)
                    for (int i = 0; i < batch.Count; i++) _queue.Dequeue();
                Interlocked.Add(ref _delivered, batch.Count);
                Interlocked.Add(ref _bytesSent, bytes);
                Interlocked.Exchange(ref _lastExportMs, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                // Absorb the wake-ups of the records just sent; keep one if more wait.
                while (_signal.CurrentCount > 0 && _signal.Wait(0)) { }
                if (QueueDepth > 0) _signal.Release();
            }
            catch (Exception ex) when (ex is HttpRequestException or OtlpExportException or BrokenCircuitException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                if (Interlocked.Increment(ref _failures) % 20 == 1)
                    LogExportFailed(_log, _opt.Endpoint.ToString(), QueueDepth, ex.Message);
                try { await Task.Delay(TimeSpan.FromMilliseconds(500), ct); } catch (OperationCanceledException) { break; }
                _signal.Release(); // try the same batch again
            }
        }
    }

    /// <summary>One batch; returns the request's size. The answer is read to its end (a gRPC status comes in the
    /// trailers after the body) but never past <see cref="MaxResponseBytes"/>.</summary>
    private async Task<int> Send(List<LogRecord> batch, CancellationToken ct)
    {
        var body = OtlpMapping.Request(batch, _opt.Resource).ToByteArray();
        using var req = _opt.Protocol == OtlpProtocol.HttpProtobuf ? HttpRequest(body) : GrpcRequest(body);
        foreach (var (k, v) in _opt.Headers) req.Headers.TryAddWithoutValidation(k, v);
        using var resp = await _http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, ct);
        if (!resp.IsSuccessStatusCode)
            throw new OtlpExportException($"HTTP {(int)resp.StatusCode}");
        bool complete = await DrainBounded(resp.Content, ct);
        if (_opt.Protocol == OtlpProtocol.Grpc)
        {
            if (!complete)
                throw new OtlpExportException($"gRPC answer larger than {MaxResponseBytes} bytes");
            var status = resp.TrailingHeaders.TryGetValues("grpc-status", out var t) ? t.First()
                : resp.Headers.TryGetValues("grpc-status", out var h) ? h.First() : null;
            if (status != "0")
                throw new OtlpExportException($"grpc-status {status ?? "missing"}");
        }
        return body.Length;
    }

    /// <summary>Reads and discards a response body; false when it is larger than the limit (the rest is not read: disposing
    /// the response aborts the connection).</summary>
    private static async Task<bool> DrainBounded(HttpContent content, CancellationToken ct)
    {
        await using var stream = await content.ReadAsStreamAsync(ct);
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            long total = 0;
            int n;
            while ((n = await stream.ReadAsync(buffer, ct)) > 0)
                if ((total += n) > MaxResponseBytes)
                    return false;
            return true;
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private HttpRequestMessage HttpRequest(byte[] body) => new(HttpMethod.Post, _opt.SignalUri("v1/logs"))
    {
        Content = new ByteArrayContent(body) { Headers = { ContentType = new("application/x-protobuf") } },
    };

    /// <summary>A gRPC unary call by hand: HTTP/2 (cleartext with prior knowledge), a 5-byte length prefix, grpc-status in the trailers.</summary>
    private HttpRequestMessage GrpcRequest(byte[] body)
    {
        var framed = new byte[5 + body.Length];
        BinaryPrimitives.WriteUInt32BigEndian(framed.AsSpan(1), (uint)body.Length);
        body.CopyTo(framed, 5);
        var req = new HttpRequestMessage(HttpMethod.Post, _opt.SignalUri("opentelemetry.proto.collector.logs.v1.LogsService/Export"))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(framed) { Headers = { ContentType = new("application/grpc") } },
        };
        req.Headers.TryAddWithoutValidation("te", "trailers");
        return req;
    }

    public async ValueTask DisposeAsync()
    {
        // Give queued events a moment to go out, then stop.
        for (int i = 0; i < 20 && QueueDepth > 0; i++) await Task.Delay(100);
        _stop.Cancel();
        try { await _sender; } catch (OperationCanceledException) { }
        _http.Dispose();
    }

    private sealed class OtlpExportException(string message) : Exception(message);

    [LoggerMessage(Level = LogLevel.Warning, Message = "OTLP export to {Endpoint} failing ({Queued} events queued): {Reason}")]
    private static partial void LogExportFailed(ILogger log, string endpoint, int queued, string reason);
}
