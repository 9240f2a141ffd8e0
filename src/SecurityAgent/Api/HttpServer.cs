using System.Buffers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace SecurityAgent.Api;

/// <summary>A request as the API's handlers see it: method, decoded path, query parameters (repeatable), the whole body.</summary>
public sealed class HttpRequest(string method, string path, Dictionary<string, List<string>> query, byte[] body, int bodyLength)
{
    public string Method => method;
    public string Path => path;
    public ReadOnlySpan<byte> Body => body.AsSpan(0, bodyLength);
    public IReadOnlyList<string> Query(string name) => query.TryGetValue(name, out var v) ? v : [];
    public string? QueryValue(string name) => query.TryGetValue(name, out var v) ? v[0] : null;
}

/// <summary>An answer: a whole body, or a stream written until the client goes away (<see cref="Streamed"/>).</summary>
public sealed record HttpResponse(int Status, string ContentType, byte[] Body)
{
    public string? Location { get; init; }
    /// <summary>Writes the body until the token is cancelled (the client closed the connection) or it returns.</summary>
    public Func<Stream, CancellationToken, Task>? Streamed { get; init; }

    public static HttpResponse Json(object value, int status = 200) =>
        new(status, "application/json; charset=utf-8", JsonSerializer.SerializeToUtf8Bytes(value, JsonSerializerOptions.Web));
    public static HttpResponse Text(string text, int status = 200, string contentType = "text/plain; charset=utf-8") =>
        new(status, contentType, Encoding.UTF8.GetBytes(text));
    public static HttpResponse Stream(string contentType, Func<Stream, CancellationToken, Task> write) =>
        new(200, contentType, []) { Streamed = write };
}

/// <summary>The agent's HTTP/1.1 server: a few fixed routes on a Unix socket and an optional TCP port, written for hostile
/// input rather than for generality. Bounded everywhere: the request line (8 KiB), the header block (16 KiB, 32 headers),
/// the body (Content-Length only, up to a limit, refused unread above it; chunked uploads are refused), the time for the
/// headers to arrive and for the body (a minimum rate), idle keep-alive, and the number of connections (the excess is
/// closed at accept). One pending accept per listener and one task per connection: no thread of its own.</summary>
public sealed class HttpServer : IAsyncDisposable
{
    public const int MaxRequestLineBytes = 8 * 1024;
    public const int MaxHeaderBytes = 16 * 1024;
    public const int MaxHeaderCount = 32;

    public sealed record Limits(int MaxConnections, long MaxBodyBytes, TimeSpan HeadersTimeout, TimeSpan KeepAliveTimeout, int MinBodyBytesPerSecond);

    private readonly Socket _listener;
    private readonly Func<HttpRequest, HttpResponse> _handle;
    private readonly Func<Socket, bool> _admit;
    private readonly Limits _limits;
    private readonly CancellationTokenSource _stop = new();
    private readonly Action<Exception> _onError;
    private readonly Action<long>? _onLargeRequest;
    private readonly Func<HttpRequest, HttpResponse>? _tooLarge;
    private int _connections;
    private Task? _accepting;

    /// <param name="admit">Decides on each accepted connection before anything is read (false: closed at once).</param>
    /// <param name="onLargeRequest">Called after answering a request whose body was at least 64 KiB.</param>
    /// <param name="tooLarge">The answer to a request (without its body) whose body is over the limit; a generic 413 if null.</param>
    public HttpServer(Socket listener, Limits limits, Func<HttpRequest, HttpResponse> handle, Func<Socket, bool> admit, Action<Exception> onError,
        Action<long>? onLargeRequest = null, Func<HttpRequest, HttpResponse>? tooLarge = null) =>
        (_listener, _limits, _handle, _admit, _onError, _onLargeRequest, _tooLarge) = (listener, limits, handle, admit, onError, onLargeRequest, tooLarge);

    public void Start() => _accepting = AcceptLoop();

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket s;
            try { s = await _listener.AcceptAsync(_stop.Token); }
            catch (OperationCanceledException) { return; }
            catch (ObjectDisposedException) { return; }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionAborted or SocketError.Interrupted) { continue; }
            if (Interlocked.Increment(ref _connections) > _limits.MaxConnections || !_admit(s))
            {
                Interlocked.Decrement(ref _connections);
                s.Dispose();
                continue;
            }
            _ = Serve(s);
        }
    }

    private async Task Serve(Socket s)
    {
        var head = ArrayPool<byte>.Shared.Rent(MaxRequestLineBytes + MaxHeaderBytes + 4);
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        try
        {
            int have = 0;
            while (true)
            {
                // The first byte of a request may take up to the keep-alive timeout; the rest of its headers only the headers timeout.
                timer.CancelAfter(have == 0 ? _limits.KeepAliveTimeout : _limits.HeadersTimeout);
                (int end, int status, have) = await ReadHead(s, head, have, timer, _limits.HeadersTimeout);
                if (status != 0)
                {
                    if (status > 0) await Send(s, Error(status), close: true, _stop.Token);
                    return;
                }
                var parsed = Parse(head.AsSpan(0, end), out var request);
                if (parsed.Status != 0)
                {
                    await Send(s, Error(parsed.Status), close: true, _stop.Token);
                    return;
                }
                int extra = have - end;
                if (parsed.ContentLength > _limits.MaxBodyBytes)
                {
                    var refusal = _tooLarge?.Invoke(request([], 0))
                        ?? HttpResponse.Json(new { errors = new[] { $"the request body is larger than the limit of {_limits.MaxBodyBytes} bytes" } }, 413);
                    await Send(s, refusal, close: true, _stop.Token);
                    return;
                }
                var body = parsed.ContentLength > 0 ? ArrayPool<byte>.Shared.Rent((int)parsed.ContentLength) : [];
                try
                {
                    if (parsed.ContentLength > 0)
                    {
                        if (parsed.ExpectContinue && extra == 0)
                            await s.SendAsync("HTTP/1.1 100 Continue\r\n\r\n"u8.ToArray(), _stop.Token);
                        int n = Math.Min(extra, (int)parsed.ContentLength);
                        head.AsSpan(end, n).CopyTo(body);
                        Buffer.BlockCopy(head, end + n, head, 0, extra - n);
                        have = extra - n;
                        timer.CancelAfter(_limits.HeadersTimeout + TimeSpan.FromSeconds(parsed.ContentLength / (double)_limits.MinBodyBytesPerSecond));
                        while (n < parsed.ContentLength)
                        {
                            int r = await s.ReceiveAsync(body.AsMemory(n, (int)parsed.ContentLength - n), timer.Token);
                            if (r == 0) return;
                            n += r;
                        }
                    }
                    else
                    {
                        Buffer.BlockCopy(head, end, head, 0, extra);
                        have = extra;
                    }
                    timer.CancelAfter(Timeout.InfiniteTimeSpan);
                    HttpResponse response;
                    try { response = _handle(request(body, (int)parsed.ContentLength)); }
                    catch (Exception e)
                    {
                        _onError(e);
                        response = HttpResponse.Json(new { errors = new[] { "internal error: " + e.Message } }, 500);
                    }
                    bool close = parsed.Close || response.Streamed is not null;
                    await Send(s, response, close, _stop.Token);
                    if (response.Streamed is { } stream)
                    {
                        await Stream(s, stream);
                        return;
                    }
                    if (close) return;
                }
                finally
                {
                    if (parsed.ContentLength > 0)
                    {
                        ArrayPool<byte>.Shared.Return(body);
                        if (parsed.ContentLength >= 64 * 1024) _onLargeRequest?.Invoke(parsed.ContentLength);
                    }
                }
                if (!timer.TryReset()) return; // stopping
            }
        }
        catch (OperationCanceledException) { } // a timeout or the agent stopping: the connection is closed
        catch (SocketException) { }
        catch (IOException) { }
        catch (ObjectDisposedException) { }
        catch (Exception e) { _onError(e); } // a fault in this server: the connection is closed, the agent goes on
        finally
        {
            ArrayPool<byte>.Shared.Return(head);
            s.Dispose();
            Interlocked.Decrement(ref _connections);
        }
    }

    /// <summary>Reads until the blank line that ends the headers. Returns the offset just past it and the bytes now in
    /// the buffer (the next request's may follow), or a status to answer
    /// (414, 431) and close, or -1 to close silently (the peer went away or timed out before a whole request).</summary>
    private static async Task<(int End, int Status, int Have)> ReadHead(Socket s, byte[] buf, int have, CancellationTokenSource timer, TimeSpan headersTimeout)
    {
        int limit = MaxRequestLineBytes + MaxHeaderBytes;
        int scanned = 0;
        while (true)
        {
            int end = buf.AsSpan(Math.Max(0, scanned - 3), have - Math.Max(0, scanned - 3)).IndexOf("\r\n\r\n"u8);
            if (end >= 0) return (Math.Max(0, scanned - 3) + end + 4, 0, have);
            scanned = have;
            int lineEnd = buf.AsSpan(0, have).IndexOf((byte)'\n');
            if (lineEnd < 0 && have > MaxRequestLineBytes) return (0, 414, have);
            if (have >= limit) return (0, 431, have);
            int r;
            try { r = await s.ReceiveAsync(buf.AsMemory(have, limit - have), timer.Token); }
            catch (OperationCanceledException) { return (0, have > 0 ? 408 : -1, have); }
            if (r == 0) return (0, -1, have);
            if (have == 0) timer.CancelAfter(headersTimeout); // the request has begun: its headers have this long to arrive
            have += r;
        }
    }

    private readonly record struct Head(int Status, long ContentLength, bool Close, bool ExpectContinue);

    /// <summary>The request line and headers; anything malformed is a 400, a chunked or unsupported upload 411/501.</summary>
    private static Head Parse(ReadOnlySpan<byte> raw, out Func<byte[], int, HttpRequest> request)
    {
        request = null!;
        int lineEnd = raw.IndexOf("\r\n"u8);
        var line = raw[..lineEnd];
        if (lineEnd > MaxRequestLineBytes) return new Head(414, 0, true, false);
        int sp1 = line.IndexOf((byte)' '), sp2 = line.LastIndexOf((byte)' ');
        if (sp1 <= 0 || sp2 <= sp1 + 1) return new Head(400, 0, true, false);
        var method = line[..sp1];
        var target = line[(sp1 + 1)..sp2];
        var version = line[(sp2 + 1)..];
        bool http11 = version.SequenceEqual("HTTP/1.1"u8);
        if (!http11 && !version.SequenceEqual("HTTP/1.0"u8)) return new Head(400, 0, true, false);
        foreach (var b in method) if (b is < (byte)'A' or > (byte)'Z') return new Head(400, 0, true, false);
        foreach (var b in target) if (b is <= 0x20 or >= 0x7f) return new Head(400, 0, true, false);
        if (target.Length == 0 || target[0] != '/') return new Head(400, 0, true, false);

        long contentLength = 0;
        bool close = !http11, expect = false, sawLength = false;
        int count = 0;
        var rest = raw[(lineEnd + 2)..^2];
        if (rest.Length > MaxHeaderBytes) return new Head(431, 0, true, false);
        while (rest.Length > 0)
        {
            int e = rest.IndexOf("\r\n"u8);
            var h = rest[..e];
            rest = rest[(e + 2)..];
            if (++count > MaxHeaderCount) return new Head(431, 0, true, false);
            int colon = h.IndexOf((byte)':');
            if (colon <= 0) return new Head(400, 0, true, false);
            var name = h[..colon];
            foreach (var b in name) if (b is <= 0x20 or >= 0x7f) return new Head(400, 0, true, false);
            var value = h[(colon + 1)..].Trim(" \t"u8);
            foreach (var b in value) if (b is < 0x20 and not (byte)'\t' or 0x7f) return new Head(400, 0, true, false);
            if (Ascii.EqualsIgnoreCase(name, "content-length"u8))
            {
                if (sawLength || value.Length is 0 or > 18) return new Head(400, 0, true, false);
                foreach (var b in value) if (b is < (byte)'0' or > (byte)'9') return new Head(400, 0, true, false);
                contentLength = long.Parse(Encoding.ASCII.GetString(value));
                sawLength = true;
            }
            else if (Ascii.EqualsIgnoreCase(name, "transfer-encoding"u8))
                return new Head(411, 0, true, false);
            else if (Ascii.EqualsIgnoreCase(name, "connection"u8))
            {
                if (Ascii.EqualsIgnoreCase(value, "close"u8)) close = true;
                else if (Ascii.EqualsIgnoreCase(value, "keep-alive"u8)) close = false;
            }
            else if (Ascii.EqualsIgnoreCase(name, "expect"u8))
            {
                if (!Ascii.EqualsIgnoreCase(value, "100-continue"u8)) return new Head(417, 0, true, false);
                expect = http11;
            }
        }

        var methodText = Encoding.ASCII.GetString(method);
        int q = target.IndexOf((byte)'?');
        string path;
        Dictionary<string, List<string>> query;
        try
        {
            path = Uri.UnescapeDataString(Encoding.ASCII.GetString(q < 0 ? target : target[..q]));
            query = ParseQuery(q < 0 ? "" : Encoding.ASCII.GetString(target[(q + 1)..]));
        }
        catch (UriFormatException) { return new Head(400, 0, true, false); }
        request = (body, length) => new HttpRequest(methodText, path, query, body, length);
        return new Head(0, contentLength, close, expect);
    }

    private static Dictionary<string, List<string>> ParseQuery(string q)
    {
        var d = new Dictionary<string, List<string>>(StringComparer.OrdinalIgnoreCase);
        foreach (var pair in q.Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = pair.IndexOf('=');
            var key = Unescape(eq < 0 ? pair : pair[..eq]);
            var value = eq < 0 ? "" : Unescape(pair[(eq + 1)..]);
            if (!d.TryGetValue(key, out var list)) d[key] = list = [];
            list.Add(value);
        }
        return d;
    }

    private static string Unescape(string s) => Uri.UnescapeDataString(s.Replace('+', ' '));

    private static HttpResponse Error(int status) => HttpResponse.Json(new { errors = new[] { Reason(status) } }, status);

    private static async Task Send(Socket s, HttpResponse r, bool close, CancellationToken ct)
    {
        var head = new StringBuilder(160)
            .Append("HTTP/1.1 ").Append(r.Status).Append(' ').Append(Reason(r.Status)).Append("\r\nContent-Type: ").Append(r.ContentType).Append("\r\n");
        if (r.Location is { } location) head.Append("Location: ").Append(location).Append("\r\n");
        if (r.Streamed is null) head.Append("Content-Length: ").Append(r.Body.Length).Append("\r\n");
        if (close) head.Append("Connection: close\r\n");
        var text = head.Append("\r\n").ToString();
        var bytes = new byte[text.Length + r.Body.Length];
        int n = Encoding.ASCII.GetBytes(text, bytes);
        r.Body.CopyTo(bytes, n);
        await s.SendAsync(bytes, ct);
        if (close && r.Streamed is null) s.Shutdown(SocketShutdown.Send);
    }

    /// <summary>A streamed body ends with the connection: the client closing it (a read returns 0) cancels the writer.</summary>
    private async Task Stream(Socket s, Func<Stream, CancellationToken, Task> write)
    {
        using var gone = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        var watch = WatchClose(s, gone);
        await using var stream = new NetworkStream(s, ownsSocket: false);
        try { await write(stream, gone.Token); }
        finally
        {
            await gone.CancelAsync();
            await watch;
        }
    }

    private static async Task WatchClose(Socket s, CancellationTokenSource gone)
    {
        var buf = new byte[256];
        try
        {
            while (await s.ReceiveAsync(buf, gone.Token) > 0) { }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException) { }
        await gone.CancelAsync();
    }

    private static string Reason(int status) => status switch
    {
        200 => "OK", 201 => "Created", 400 => "Bad Request", 404 => "Not Found", 405 => "Method Not Allowed", 408 => "Request Timeout",
        409 => "Conflict", 411 => "Length Required", 413 => "Payload Too Large", 414 => "URI Too Long", 417 => "Expectation Failed",
        422 => "Unprocessable Entity", 431 => "Request Header Fields Too Large", 500 => "Internal Server Error", 503 => "Service Unavailable",
        _ => "Status",
    };

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        if (_accepting is not null) await _accepting;
        _stop.Dispose();
    }
}
