using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using SecurityAgent.Hosting;

namespace SecurityAgent.Cli;

/// <summary>HTTP over the agent's Unix socket, for the CLI commands that talk to a running agent.</summary>
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
    }

    /// <summary>Runs a request; turns connection failures into the message a user needs.</summary>
    public async Task<T> Call<T>(Func<HttpClient, Task<T>> call)
    {
        try
        {
            return await call(_http);
        }
        catch (HttpRequestException e) when (e.InnerException is SocketException se)
        {
            throw new InvalidOperationException(se.SocketErrorCode switch
            {
                SocketError.AccessDenied => $"permission denied on {Socket}: the agent's API is for root only",
                SocketError.AddressNotAvailable or SocketError.ConnectionRefused => $"no agent is listening on {Socket}",
                _ => $"cannot reach the agent on {Socket}: {se.Message}",
            });
        }
    }

    public static async Task<int> Print(HttpResponseMessage r)
    {
        var body = await r.Content.ReadAsStringAsync();
        try
        {
            var doc = JsonDocument.Parse(body).RootElement;
            if (!r.IsSuccessStatusCode && doc.TryGetProperty("errors", out var errs))
            {
                foreach (var e in errs.EnumerateArray()) Console.Error.WriteLine(e.GetString());
                return 1;
            }
            (r.IsSuccessStatusCode ? Console.Out : Console.Error).WriteLine(JsonSerializer.Serialize(doc, new JsonSerializerOptions { WriteIndented = true }));
        }
        catch (JsonException)
        {
            Console.Error.WriteLine($"{(int)r.StatusCode}: {body}");
        }
        return r.IsSuccessStatusCode ? 0 : 1;
    }

    public void Dispose() => _http.Dispose();
}
