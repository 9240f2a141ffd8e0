using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SecurityAgent.Interop;

namespace SecurityAgent.Api;

/// <summary>The HTTP server of the agent: the local API on its Unix socket (every connection's peer must be root,
/// checked with SO_PEERCRED) and, with --metrics-address, /metrics, /healthz and /readyz over TCP. Bounded: request
/// line, headers and body sizes, header and body timeouts, a time limit per request, concurrent connections.</summary>
public static partial class ApiServer
{
    public const long MaxRequestBodyBytes = 1024 * 1024;
    public const int MaxConnections = 64;
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan HeadersTimeout = TimeSpan.FromSeconds(5);
    /// <summary>A request body above this size leaves garbage worth a full compacting collection.</summary>
    private const long LargeRequestBytes = 64 * 1024;

    private static long _refusedPeers;
    /// <summary>Connections to the socket closed because the peer was not root.</summary>
    public static long RefusedPeers => Interlocked.Read(ref _refusedPeers);

    public static void Configure(WebApplicationBuilder builder, ApiSocket socket, IPEndPoint? metrics)
    {
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            var l = k.Limits;
            l.MaxConcurrentConnections = MaxConnections;
            l.MaxConcurrentUpgradedConnections = 0;
            l.MaxRequestBodySize = MaxRequestBodyBytes;
            l.MaxRequestLineSize = 8 * 1024;
            l.MaxRequestHeadersTotalSize = 16 * 1024;
            l.MaxRequestHeaderCount = 32;
            l.RequestHeadersTimeout = HeadersTimeout;
            l.KeepAliveTimeout = TimeSpan.FromSeconds(30);
            l.MinRequestBodyDataRate = new MinDataRate(bytesPerSecond: 1024, gracePeriod: TimeSpan.FromSeconds(5));
            k.ListenHandle(socket.Handle, o =>
            {
                o.Protocols = HttpProtocols.Http1;
                var log = o.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger("SecurityAgent.Api");
                o.Use(next => PeerMustBeRoot(next, log));
            });
            if (metrics is not null)
                k.Listen(metrics, o => o.Protocols = HttpProtocols.Http1);
        });
        builder.Services.AddRequestTimeouts(o => o.DefaultPolicy = new RequestTimeoutPolicy { Timeout = RequestTimeout });
    }

    public static void Map(WebApplication app, AgentState state, IPEndPoint? metrics)
    {
        if (metrics is not null)
        {
            // Over TCP only metrics and health answer; everything else stays on the root-only socket.
            app.Use(async (ctx, next) =>
            {
                if (ctx.Connection.LocalPort == metrics.Port && ctx.Request.Path.Value is not ("/metrics" or "/healthz" or "/readyz"))
                {
                    ctx.Response.StatusCode = StatusCodes.Status404NotFound;
                    return;
                }
                await next();
            });
        }
        app.Use(async (ctx, next) =>
        {
            if (ctx.Request.ContentLength > LargeRequestBytes || ctx.Request.ContentLength is null && ctx.Request.Headers.TransferEncoding.Count > 0)
                ctx.Response.OnCompleted(ReturnMemory);
            await next();
        });
        app.UseRequestTimeouts();
        app.MapGet("/metrics", () => Results.Text(Metrics.Render(Metrics.Collect(state)), "text/plain; version=0.0.4"));
        app.MapGet("/healthz", () => Results.Text("ok\n"));
        app.MapGet("/readyz", () => state.Policies.Ready && state.Pipeline is not null
            ? Results.Text("ready\n")
            : Results.Text("not ready: the agent is starting or stopping\n", statusCode: StatusCodes.Status503ServiceUnavailable));
        LocalApi.Map(app, state);
    }

    /// <summary>A large request (a policy near the size limit) parses into far more memory than its size; without a
    /// compacting collection that returns it to the system, the agent's RSS would stay at its peak.</summary>
    private static Task ReturnMemory()
    {
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        return Task.CompletedTask;
    }

    private static ConnectionDelegate PeerMustBeRoot(ConnectionDelegate next, ILogger log) => async connection =>
    {
        var socket = connection.Features.Get<IConnectionSocketFeature>()?.Socket;
        var uid = socket is null ? null : PeerUid(socket);
        if (uid != Libc.geteuid())
        {
            if (Interlocked.Increment(ref _refusedPeers) is var n && (n & (n - 1)) == 0) // 1, 2, 4, 8, ...: bounded logging
                LogRefused(log, uid?.ToString() ?? "unknown", n);
            connection.Abort();
            return;
        }
        await next(connection);
    };

    /// <summary>The connecting process's uid (SO_PEERCRED: struct ucred { pid, uid, gid }).</summary>
    private static uint? PeerUid(Socket s)
    {
        Span<byte> cred = stackalloc byte[12];
        try
        {
            return s.GetRawSocketOption(1 /* SOL_SOCKET */, 17 /* SO_PEERCRED */, cred) == 12 ? BitConverter.ToUInt32(cred[4..8]) : null;
        }
        catch (SocketException)
        {
            return null;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "API socket: refused a connection from uid {Uid} (only root may use the API; {Count} refused so far)")]
    private static partial void LogRefused(ILogger log, string uid, long count);
}
