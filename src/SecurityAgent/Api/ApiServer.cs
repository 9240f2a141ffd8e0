using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SecurityAgent.Interop;

namespace SecurityAgent.Api;

/// <summary>The agent's HTTP endpoints: the local API on its Unix socket (every connection's peer must be root, checked
/// with SO_PEERCRED) and, with --metrics-address, /metrics, /healthz and /readyz over TCP, both served by
/// <see cref="HttpServer"/> (bounded request line, headers, body, header and body time, connections).</summary>
public sealed partial class ApiServer(ApiSocket socket, IPEndPoint? metrics, AgentState state, ILoggerFactory logs) : IHostedService
{
    public const long MaxRequestBodyBytes = 1024 * 1024;
    public const int MaxConnections = 64;
    public static readonly TimeSpan HeadersTimeout = TimeSpan.FromSeconds(5);
    private static readonly HttpServer.Limits Bounds = new(MaxConnections, MaxRequestBodyBytes, HeadersTimeout, KeepAliveTimeout: TimeSpan.FromSeconds(30), MinBodyBytesPerSecond: 1024);

    private static long _refusedPeers;
    /// <summary>Connections to the socket closed because the peer was not root.</summary>
    public static long RefusedPeers => Interlocked.Read(ref _refusedPeers);

    private readonly ILogger _log = logs.CreateLogger("SecurityAgent.Api");
    private readonly List<HttpServer> _servers = [];

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var unix = new Socket(new SafeSocketHandle((IntPtr)(long)socket.Handle, ownsHandle: true));
        unix.Listen(128);
        _servers.Add(new HttpServer(unix, Bounds, r => LocalApi.Handle(r, state), PeerIsRoot, LogError, ReturnMemory, LocalApi.TooLarge));
        if (metrics is not null)
        {
            var tcp = new Socket(metrics.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            tcp.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            tcp.Bind(metrics);
            tcp.Listen(128);
            // Over TCP only metrics and health answer; everything else stays on the root-only socket.
            _servers.Add(new HttpServer(tcp, Bounds, r => r.Path is "/metrics" or "/healthz" or "/readyz" ? LocalApi.Handle(r, state) : LocalApi.NotFound, _ => true, LogError));
        }
        foreach (var s in _servers) s.Start();
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var s in _servers) await s.DisposeAsync();
        _servers.Clear();
    }

    /// <summary>A large request (a policy near the size limit) parses into far more memory than its size; without a
    /// compacting collection that returns it to the system, the agent's RSS would stay at its peak.</summary>
    private static void ReturnMemory(long bytes) => GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);

    private void LogError(Exception e) => LogHandlerFailed(_log, e);

    private bool PeerIsRoot(Socket s)
    {
        var uid = PeerUid(s);
        if (uid == Libc.geteuid()) return true;
        if (Interlocked.Increment(ref _refusedPeers) is var n && (n & (n - 1)) == 0) // 1, 2, 4, 8, ...: bounded logging
            LogRefused(_log, uid?.ToString() ?? "unknown", n);
        return false;
    }

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

    [LoggerMessage(Level = LogLevel.Error, Message = "API: a request failed")]
    private static partial void LogHandlerFailed(ILogger log, Exception e);
}
