using System.Buffers.Binary;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using SecurityAgent.Export.Otlp.Proto;

namespace SecurityAgent.Tests.Support;

/// <summary>A real OTLP receiver for tests: Kestrel on 127.0.0.1, OTLP/HTTP (protobuf on /v1/logs) or OTLP/gRPC
/// (HTTP/2 cleartext, length-prefixed messages, grpc-status trailers). Decodes log requests with Google.Protobuf
/// and keeps the records and the resources of metric requests. Serves under a path prefix when given (a gateway's
/// /otlp). Can answer with a huge body (a broken or hostile collector). Can be stopped and started again on the same port.</summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    private WebApplication? _app;
    private readonly bool _grpc;
    private readonly string _prefix;
    public int Port { get; }
    public string Endpoint => $"http://127.0.0.1:{Port}{_prefix}";
    public List<(Resource Resource, LogRecord Record)> Logs { get; } = [];
    public List<Resource> MetricResources { get; } = [];
    public int MetricRequests;
    /// <summary>The authorization header of the last log request.</summary>
    public string? Authorization { get; private set; }
    /// <summary>When set, log requests are answered with this many extra bytes of body.</summary>
    public long ReplyBytes { get; set; }

    private OtlpReceiver(bool grpc, int port, string prefix) => (_grpc, Port, _prefix) = (grpc, port, prefix);

    public static async Task<OtlpReceiver> Start(bool grpc, string prefix = "")
    {
        int port;
        using (var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0)) { probe.Start(); port = ((IPEndPoint)probe.LocalEndpoint).Port; }
        var r = new OtlpReceiver(grpc, port, prefix);
        await r.StartAsync();
        return r;
    }

    public async Task StartAsync()
    {
        var b = WebApplication.CreateSlimBuilder();
        b.Logging.ClearProviders();
        b.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, Port, o => o.Protocols = _grpc ? HttpProtocols.Http2 : HttpProtocols.Http1));
        _app = b.Build();
        _app.MapPost(_prefix + "/v1/logs", async (HttpContext ctx) =>
        {
            Keep(ExportLogsServiceRequest.Parser.ParseFrom(await Body(ctx)));
            ctx.Response.ContentType = "application/x-protobuf";
            await Filler(ctx);
            await ctx.Response.Body.WriteAsync(new ExportLogsServiceResponse().ToByteArrayEx());
        });
        _app.MapPost(_prefix + "/opentelemetry.proto.collector.logs.v1.LogsService/Export", async (HttpContext ctx) =>
        {
            var body = await Body(ctx);
            int len = (int)BinaryPrimitives.ReadUInt32BigEndian(body.AsSpan(1));
            Keep(ExportLogsServiceRequest.Parser.ParseFrom(body, 5, len));
            ctx.Response.ContentType = "application/grpc";
            await Filler(ctx);
            var reply = new ExportLogsServiceResponse().ToByteArrayEx();
            var framed = new byte[5 + reply.Length];
            BinaryPrimitives.WriteUInt32BigEndian(framed.AsSpan(1), (uint)reply.Length);
            reply.CopyTo(framed, 5);
            await ctx.Response.Body.WriteAsync(framed);
            ctx.Response.AppendTrailer("grpc-status", "0");
        });
        _app.MapPost(_prefix + "/v1/metrics", async (HttpContext ctx) =>
        {
            KeepMetrics(await Body(ctx));
            return Results.Ok();
        });
        _app.MapPost(_prefix + "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", async (HttpContext ctx) =>
        {
            KeepMetrics((await Body(ctx))[5..]);
            ctx.Response.ContentType = "application/grpc";
            await ctx.Response.Body.WriteAsync(new byte[5]);
            ctx.Response.AppendTrailer("grpc-status", "0");
        });
        await _app.StartAsync();
    }

    public async Task StopAsync()
    {
        if (_app is null) return;
        await _app.StopAsync();
        await _app.DisposeAsync();
        _app = null;
    }

    private async Task<byte[]> Body(HttpContext ctx)
    {
        Authorization = ctx.Request.Headers.Authorization.ToString();
        using var ms = new MemoryStream();
        await ctx.Request.Body.CopyToAsync(ms);
        return ms.ToArray();
    }

    /// <summary>ReplyBytes of body before the real answer, written in chunks (never held in memory).</summary>
    private async Task Filler(HttpContext ctx)
    {
        var chunk = new byte[64 * 1024];
        try
        {
            for (long left = ReplyBytes; left > 0; left -= chunk.Length)
                await ctx.Response.Body.WriteAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, left)), ctx.RequestAborted);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException) { } // the agent stopped reading, as it should
    }

    /// <summary>The resource of an ExportMetricsServiceRequest: resource_metrics = 1, its resource = 1.</summary>
    private void KeepMetrics(byte[] request)
    {
        Interlocked.Increment(ref MetricRequests);
        var input = new Google.Protobuf.CodedInputStream(request);
        while (input.ReadTag() is var tag && tag != 0)
        {
            if (tag >> 3 != 1) { input.SkipLastField(); continue; }
            var rm = new Google.Protobuf.CodedInputStream(input.ReadBytes().ToByteArray());
            while (rm.ReadTag() is var t && t != 0)
            {
                if (t >> 3 != 1) { rm.SkipLastField(); continue; }
                var resource = Resource.Parser.ParseFrom(rm.ReadBytes());
                lock (MetricResources) MetricResources.Add(resource);
            }
        }
    }

    private void Keep(ExportLogsServiceRequest req)
    {
        lock (Logs)
            foreach (var rl in req.ResourceLogs)
                foreach (var sl in rl.ScopeLogs)
                    foreach (var lr in sl.LogRecords)
                        Logs.Add((rl.Resource, lr));
    }

    public List<LogRecord> Records(Func<LogRecord, bool> where)
    {
        lock (Logs) return Logs.Select(l => l.Record).Where(where).ToList();
    }

    public async ValueTask DisposeAsync() => await StopAsync();
}

internal static class ProtoExtensions
{
    public static byte[] ToByteArrayEx(this Google.Protobuf.IMessage m) => Google.Protobuf.MessageExtensions.ToByteArray(m);

    public static string? Attr(this LogRecord r, string key) =>
        r.Attributes.FirstOrDefault(a => a.Key == key)?.Value is { } v ? v.ValueCase switch
        {
            AnyValue.ValueOneofCase.StringValue => v.StringValue,
            AnyValue.ValueOneofCase.IntValue => v.IntValue.ToString(),
            AnyValue.ValueOneofCase.BoolValue => v.BoolValue.ToString(),
            AnyValue.ValueOneofCase.ArrayValue => string.Join(' ', v.ArrayValue.Values.Select(x => x.StringValue)),
            _ => v.ToString(),
        } : null;
}
