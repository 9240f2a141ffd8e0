using System.Net.Sockets;
using System.Text.Json;
using SecurityAgent.Hosting;

namespace SecurityAgent.Cli;

/// <summary>HTTP over the agent's Unix socket, for the CLI commands that talk to a running agent. Every failure
/// (no agent, permission, an error answer) becomes a <see cref="CliException"/> with the message a user needs.</summary>
public sealed class ApiClient : IDisposable
{
    public string Socket { get; }
    private readonly HttpClient _http;

    public ApiClient(string? socket)
    {
        Socket = socket ?? AgentOptions.DefaultApiSocket;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await s.ConnectAsync(new UnixDomainSocketEndPoint(Socket), ct);
                    return new NetworkStream(s, ownsSocket: true);
                }
                catch
                {
                    s.Dispose();
                    throw;
                }
            },
        };
        _http = new HttpClient(handler) { BaseAddress = new Uri("http://agent"), Timeout = Timeout.InfiniteTimeSpan };
        // A body goes out only after the agent has accepted the headers: a refused request (too large) gets its
        // answer instead of a broken pipe half-way through the upload.
        _http.DefaultRequestHeaders.ExpectContinue = true;
    }

    /// <summary>Sends a request; a non-success answer throws with the agent's error messages.</summary>
    public async Task<HttpResponseMessage> Send(HttpRequestMessage request, HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        HttpResponseMessage r;
        try
        {
            r = await _http.SendAsync(request, completion);
        }
        catch (HttpRequestException e) when (e.InnerException is SocketException se)
        {
            throw new CliException(se.SocketErrorCode switch
            {
                SocketError.AccessDenied => $"permission denied on {Socket}: the agent's API is for root only",
                SocketError.AddressNotAvailable or SocketError.ConnectionRefused => $"no agent is listening on {Socket} (start one with `secagent run`, or give --api-socket)",
                _ => $"cannot reach the agent on {Socket}: {se.Message}",
            });
        }
        catch (HttpRequestException e)
        {
            throw new CliException($"the agent on {Socket} closed the connection: {e.Message}");
        }
        if (r.IsSuccessStatusCode) return r;
        using (r)
            throw new CliException(Errors(await r.Content.ReadAsStringAsync(), (int)r.StatusCode));
    }

    public async Task<JsonElement> GetJson(string path) => await ReadJson(await Send(new HttpRequestMessage(HttpMethod.Get, path)));

    public static async Task<JsonElement> ReadJson(HttpResponseMessage r)
    {
        using (r)
        {
            var body = await r.Content.ReadAsStringAsync();
            try { return JsonDocument.Parse(body).RootElement.Clone(); }
            catch (JsonException) { throw new CliException($"the agent answered something other than JSON: {body}"); }
        }
    }

    /// <summary>An error answer's messages: {"errors":[...]} one per line, {"error":"..."}, or the status and body.</summary>
    private static string Errors(string body, int status)
    {
        try
        {
            var doc = JsonDocument.Parse(body).RootElement;
            if (doc.ValueKind == JsonValueKind.Object && doc.TryGetProperty("errors", out var errs) && errs.ValueKind == JsonValueKind.Array)
                return string.Join('\n', errs.EnumerateArray().Select(e => e.ToString()));
            if (doc.ValueKind == JsonValueKind.Object && doc.TryGetProperty("error", out var err))
                return err.ToString();
        }
        catch (JsonException) { }
        return body.Length > 0 ? $"the agent answered {status}: {body.Trim()}" : $"the agent answered {status}";
    }

    public void Dispose() => _http.Dispose();
}
