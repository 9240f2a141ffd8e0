using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using SecurityAgent.Api;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

/// <summary>The agent's own HTTP/1.1 server on a Unix socket the test creates, with a handler that echoes what it was
/// given: what a client (HttpClient, curl, a hostile peer) sends is answered or refused within its limits.</summary>
public sealed class HttpServerTests : IAsyncLifetime
{
    private readonly TempDir _dir = new();
    private HttpServer _server = null!;
    private string Path => _dir.File("api.sock");
    private int _handled;
    private readonly List<Exception> _faults = [];

    public Task InitializeAsync()
    {
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(Path));
        listener.Listen(16);
        var limits = new HttpServer.Limits(MaxConnections: 4, MaxBodyBytes: 1000, HeadersTimeout: TimeSpan.FromMilliseconds(500),
            KeepAliveTimeout: TimeSpan.FromSeconds(30), MinBodyBytesPerSecond: 1024);
        _server = new HttpServer(listener, limits, Handle, _ => true, e => { lock (_faults) _faults.Add(e); });
        _server.Start();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _dir.Dispose();
        lock (_faults) Assert.Empty(_faults);
    }

    private HttpResponse Handle(HttpRequest r)
    {
        Interlocked.Increment(ref _handled);
        if (r.Path == "/stream")
            return HttpResponse.Stream("application/x-ndjson", async (body, ct) =>
            {
                await body.WriteAsync("{\"n\":1}\n"u8.ToArray(), ct);
                await Task.Delay(Timeout.Infinite, ct);
            });
        return HttpResponse.Json(new { method = r.Method, path = r.Path, tags = r.Query("tag"), body = Encoding.UTF8.GetString(r.Body) });
    }

    private HttpClient Client() => new(new SocketsHttpHandler
    {
        ConnectCallback = async (_, ct) =>
        {
            var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await s.ConnectAsync(new UnixDomainSocketEndPoint(Path), ct);
            return new NetworkStream(s, true);
        },
    }) { BaseAddress = new Uri("http://agent"), Timeout = TimeSpan.FromSeconds(10) };

    private async Task<string> Raw(byte[] request, int readTimeoutMs = 5000)
    {
        using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await s.ConnectAsync(new UnixDomainSocketEndPoint(Path));
        try { await s.SendAsync(request); }
        catch (SocketException) { } // the server may close before it has read everything
        var buf = new byte[4096];
        using var cts = new CancellationTokenSource(readTimeoutMs);
        var text = new StringBuilder();
        try
        {
            int n;
            while ((n = await s.ReceiveAsync(buf, cts.Token)) > 0) text.Append(Encoding.ASCII.GetString(buf, 0, n));
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException) { }
        return text.ToString();
    }

    [Fact]
    public async Task HttpClient_gets_json_answers_with_decoded_paths_repeated_query_values_and_a_body_sent_after_100_continue()
    {
        using var http = Client();
        http.DefaultRequestHeaders.ExpectContinue = true;
        var get = await http.GetStringAsync("/v1/policies/my%20policy?tag=a&tag=b+c&tag=%2Fx");
        Assert.Equal("{\"method\":\"GET\",\"path\":\"/v1/policies/my policy\",\"tags\":[\"a\",\"b c\",\"/x\"],\"body\":\"\"}", get);
        var post = await http.PostAsync("/v1/policies", new StringContent("name: x\n"));
        Assert.Equal(200, (int)post.StatusCode);
        Assert.Contains("\"body\":\"name: x\\n\"", await post.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Two_requests_pipelined_on_one_connection_are_both_answered_in_order()
    {
        var answer = await Raw("GET /one HTTP/1.1\r\nHost: a\r\n\r\nPOST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"u8.ToArray());
        int one = answer.IndexOf("\"path\":\"/one\""), two = answer.IndexOf("\"path\":\"/two\"");
        Assert.True(one > 0 && two > one, answer);
        Assert.Contains("\"body\":\"abc\"", answer);
    }

    [Theory]
    [InlineData("GET /x HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n", "400")]
    [InlineData("\u0016\u0003\u0001\u0000\u00a5\u0001\r\n\r\n", "400")]
    [InlineData("GET /x HTTP/2.0\r\n\r\n", "400")]
    [InlineData("GET x HTTP/1.1\r\n\r\n", "400")]
    [InlineData("POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nab", "400")]
    [InlineData("POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "400")]
    [InlineData("POST /x HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", "400")]
    [InlineData("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "411")]
    [InlineData("POST /x HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", "413")]
    public async Task A_malformed_or_oversized_request_is_refused_with_its_status_and_never_reaches_the_handler(string request, string status)
    {
        var answer = await Raw(Encoding.Latin1.GetBytes(request));
        Assert.StartsWith($"HTTP/1.1 {status}", answer);
        Assert.Equal(0, _handled);
    }

    [Fact]
    public async Task Too_many_or_too_long_headers_get_431_and_a_request_line_past_8_KiB_gets_414()
    {
        var many = string.Concat(Enumerable.Range(0, 40).Select(i => $"X-{i}: y\r\n"));
        Assert.StartsWith("HTTP/1.1 431", await Raw(Encoding.ASCII.GetBytes($"GET /x HTTP/1.1\r\n{many}\r\n")));
        Assert.StartsWith("HTTP/1.1 431", await Raw(Encoding.ASCII.GetBytes($"GET /x HTTP/1.1\r\nX: {new string('x', 20_000)}\r\n\r\n")));
        Assert.StartsWith("HTTP/1.1 414", await Raw(Encoding.ASCII.GetBytes($"GET /{new string('x', 9000)} HTTP/1.1\r\n\r\n")));
        Assert.Equal(0, _handled);
    }

    [Fact]
    public async Task Headers_that_never_end_and_a_body_that_never_comes_are_cut_off_by_the_timeouts()
    {
        var t = Stopwatch.StartNew();
        Assert.StartsWith("HTTP/1.1 408", await Raw("GET /x HTTP/1.1\r\nHost: a\r\n"u8.ToArray()));
        Assert.InRange(t.Elapsed.TotalSeconds, 0.3, 3);
        t.Restart();
        var answer = await Raw("POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nab"u8.ToArray());
        Assert.Equal("", answer);
        Assert.InRange(t.Elapsed.TotalSeconds, 0.3, 4);
        Assert.Equal(0, _handled);
    }

    [Fact]
    public async Task Connections_beyond_the_limit_are_closed_at_once_and_accepted_again_when_one_ends()
    {
        var held = new List<Socket>();
        try
        {
            for (int i = 0; i < 4; i++)
            {
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await s.ConnectAsync(new UnixDomainSocketEndPoint(Path));
                held.Add(s);
            }
            await Task.Delay(300);
            Assert.Equal("", await Raw("GET /x HTTP/1.0\r\n\r\n"u8.ToArray(), readTimeoutMs: 1500));
            held[0].Dispose();
            await Task.Delay(300);
            Assert.StartsWith("HTTP/1.1 200", await Raw("GET /x HTTP/1.0\r\n\r\n"u8.ToArray()));
        }
        finally
        {
            foreach (var s in held) s.Dispose();
        }
    }

    [Fact]
    public async Task A_streamed_answer_ends_for_the_server_when_the_client_closes_and_frees_its_connection_slot()
    {
        for (int i = 0; i < 6; i++) // more streams than connection slots: each closed one must give its slot back
        {
            using var http = Client();
            using var r = await http.GetAsync("/stream", HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal("application/x-ndjson", r.Content.Headers.ContentType?.MediaType);
            using var reader = new StreamReader(await r.Content.ReadAsStreamAsync());
            Assert.Equal("{\"n\":1}", await reader.ReadLineAsync());
        }
        await Task.Delay(300);
        Assert.StartsWith("HTTP/1.1 200", await Raw("GET /x HTTP/1.0\r\n\r\n"u8.ToArray()));
    }
}
