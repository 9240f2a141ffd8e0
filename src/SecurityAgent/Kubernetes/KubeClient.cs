using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Runtime.CompilerServices;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;

namespace SecurityAgent.Kubernetes;

/// <summary>The resource version a watch asked for is gone (HTTP 410, or an ERROR event with code 410): relist.</summary>
public sealed class ResourceExpiredException(string message) : Exception(message);

public readonly record struct WatchEvent(string Type, JsonElement Object);

/// <summary>The few Kubernetes API calls the agent makes: list and watch, JSON over HTTPS.</summary>
public sealed class KubeClient : IDisposable
{
    /// <summary>The API server refuses JSON nested deeper than 10000 levels; parsing allows that much (the default of 64
    /// would let one deep custom object break every list and watch of its collection) and no more (parsing cost grows
    /// with depth). What a consumer accepts is its own, stricter check.</summary>
    private static readonly JsonDocumentOptions Json = new() { MaxDepth = 10_000 };

    private readonly KubeConfig _config;
    private readonly HttpClient _http;

    public KubeClient(KubeConfig config)
    {
        _config = config;
        var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
        if (config.ClientCertificate is not null)
            handler.SslOptions.ClientCertificates = [config.ClientCertificate];
        handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, _, errors) => Validate(cert, errors);
        _http = new HttpClient(handler) { BaseAddress = config.Server, Timeout = Timeout.InfiniteTimeSpan };
    }

    private bool Validate(X509Certificate? cert, SslPolicyErrors errors)
    {
        if (_config.InsecureSkipTlsVerify || errors == SslPolicyErrors.None) return true;
        if (_config.CertificateAuthority is null || cert is null || errors != SslPolicyErrors.RemoteCertificateChainErrors) return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(_config.CertificateAuthority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(new X509Certificate2(cert));
    }

    private HttpRequestMessage Request(string pathAndQuery)
    {
        var req = new HttpRequestMessage(HttpMethod.Get, pathAndQuery);
        if (_config.Token() is { } token)
            req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        req.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        return req;
    }

    public async Task<(List<JsonElement> Items, string ResourceVersion)> ListAsync(string path, CancellationToken ct)
    {
        using var resp = await _http.SendAsync(Request(path), ct);
        if (resp.StatusCode == HttpStatusCode.Gone) throw new ResourceExpiredException($"list {path}: 410 Gone");
        resp.EnsureSuccessStatusCode();
        var doc = JsonDocument.Parse(await resp.Content.ReadAsStringAsync(ct), Json).RootElement;
        return (doc.GetProperty("items").EnumerateArray().Select(i => i.Clone()).ToList(),
            doc.GetProperty("metadata").GetProperty("resourceVersion").GetString() ?? "");
    }

    /// <summary>A GET of one object (e.g. an API group's discovery document); null when the server says 404.</summary>
    public async Task<JsonElement?> GetAsync(string path, CancellationToken ct)
    {
        using var resp = await _http.SendAsync(Request(path), ct);
        if (resp.StatusCode == HttpStatusCode.NotFound) return null;
        resp.EnsureSuccessStatusCode();
        return JsonDocument.Parse(await resp.Content.ReadAsStringAsync(ct), Json).RootElement.Clone();
    }

    /// <summary>The watch stream from resourceVersion: one JSON object per line, until the server ends it.</summary>
    public async IAsyncEnumerable<WatchEvent> WatchAsync(string path, string resourceVersion, [EnumeratorCancellation] CancellationToken ct)
    {
        var sep = path.Contains('?') ? '&' : '?';
        using var resp = await _http.SendAsync(Request($"{path}{sep}watch=true&resourceVersion={Uri.EscapeDataString(resourceVersion)}&allowWatchBookmarks=true&timeoutSeconds=300"),
            HttpCompletionOption.ResponseHeadersRead, ct);
        if (resp.StatusCode == HttpStatusCode.Gone) throw new ResourceExpiredException($"watch {path}: 410 Gone");
        resp.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync(ct));
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (line.Length == 0) continue;
            var e = JsonDocument.Parse(line, Json).RootElement;
            var type = e.GetProperty("type").GetString()!;
            var obj = e.GetProperty("object").Clone();
            if (type == "ERROR" && obj.TryGetProperty("code", out var code) && code.GetInt32() == 410)
                throw new ResourceExpiredException($"watch {path}: {obj.GetProperty("message").GetString()}");
            yield return new WatchEvent(type, obj);
        }
    }

    public void Dispose() => _http.Dispose();
}
