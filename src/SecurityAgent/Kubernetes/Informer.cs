using System.Text.Json;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace SecurityAgent.Kubernetes;

/// <summary>Keeps a local view of one resource collection: list, then watch from the list's resourceVersion,
/// following bookmarks; relists on 410 Gone; reconnects after errors with exponential backoff and jitter
/// (never a tight loop against a failing API server). Reports adds, updates and deletes by uid.</summary>
public sealed partial class Informer(KubeClient client, string path, ILogger log)
{
    public event Action<JsonElement>? Upserted;
    public event Action<JsonElement>? Deleted;

    private readonly Dictionary<string, (string ResourceVersion, JsonElement Object)> _known = new();

    private static string Uid(JsonElement o) => o.GetProperty("metadata").GetProperty("uid").GetString()!;
    private static string Version(JsonElement o) => o.GetProperty("metadata").GetProperty("resourceVersion").GetString() ?? "";

    public async Task RunAsync(CancellationToken ct)
    {
        var backoff = new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<Exception>(e => e is not OperationCanceledException),
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = TimeSpan.FromMilliseconds(200),
            MaxDelay = TimeSpan.FromSeconds(30),
            MaxRetryAttempts = int.MaxValue,
            OnRetry = a => { LogRetry(log, path, a.AttemptNumber, a.RetryDelay.TotalMilliseconds, a.Outcome.Exception?.Message ?? ""); return default; },
        }).Build();
        await backoff.ExecuteAsync(async token =>
        {
            while (!token.IsCancellationRequested)
            {
                var rv = await Relist(token);
                try
                {
                    while (!token.IsCancellationRequested)
                        rv = await Watch(rv, token); // the server ends a watch now and then: resume from rv
                }
                catch (ResourceExpiredException e)
                {
                    LogRelist(log, path, e.Message);
                }
            }
        }, ct);
    }

    private async Task<string> Relist(CancellationToken ct)
    {
        var (items, rv) = await client.ListAsync(path, ct);
        var seen = new HashSet<string>();
        foreach (var item in items)
        {
            seen.Add(Uid(item));
            Apply("MODIFIED", item);
        }
        foreach (var gone in _known.Keys.Where(k => !seen.Contains(k)).ToList())
        {
            var obj = _known[gone].Object;
            _known.Remove(gone);
            Deleted?.Invoke(obj);
        }
        return rv;
    }

    private async Task<string> Watch(string rv, CancellationToken ct)
    {
        await foreach (var e in client.WatchAsync(path, rv, ct))
        {
            if (e.Type == "BOOKMARK")
            {
                rv = Version(e.Object);
                continue;
            }
            Apply(e.Type, e.Object);
            rv = Version(e.Object);
        }
        return rv;
    }

    private void Apply(string type, JsonElement obj)
    {
        var uid = Uid(obj);
        if (type == "DELETED")
        {
            if (_known.Remove(uid)) Deleted?.Invoke(obj);
            return;
        }
        if (_known.TryGetValue(uid, out var old) && old.ResourceVersion == Version(obj))
            return; // nothing new (a relist repeats what we have)
        _known[uid] = (Version(obj), obj);
        Upserted?.Invoke(obj);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Kubernetes {Path}: retry {Attempt} in {DelayMs:F0} ms: {Reason}")]
    private static partial void LogRetry(ILogger log, string path, int attempt, double delayMs, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Kubernetes {Path}: relisting ({Reason})")]
    private static partial void LogRelist(ILogger log, string path, string reason);
}
