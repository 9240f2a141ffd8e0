using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace SecurityAgent.Tests.Support;

/// <summary>An in-test Kubernetes API server for the resources the agent reads, speaking the real wire format:
/// JSON lists with metadata.resourceVersion, watch streams of {"type","object"} lines from a resourceVersion,
/// BOOKMARK events, an ERROR event with code 410 once the history is gone, dropped connections, bearer tokens.</summary>
public sealed class FakeKubeApiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly object _lock = new();
    private long _rv = 100, _oldestRv;
    private readonly Dictionary<string, Dictionary<string, JsonObject>> _objects = new();      // path -> name -> object
    private readonly List<(long Rv, string Path, string Type, JsonObject Obj)> _history = [];
    private readonly List<(string Path, Channel<string> Events)> _watchers = [];
    public string Token { get; } = "test-token-" + Guid.NewGuid().ToString("N")[..8];
    public int Port { get; }
    public int Requests;
    /// <summary>Query strings of the requests, for assertions on selectors.</summary>
    public List<string> Queries { get; } = [];

    public FakeKubeApiServer()
    {
        using (var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0)) { probe.Start(); Port = ((IPEndPoint)probe.LocalEndpoint).Port; }
        var b = WebApplication.CreateSlimBuilder();
        b.Logging.ClearProviders();
        b.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, Port));
        _app = b.Build();
        _app.MapGet("/apis/{group}/{version}/{resource}", (HttpContext ctx, string group, string version, string resource) =>
            group == "securityagent.io" || _groups.ContainsKey($"{group}/{version}") ? Serve(ctx, $"/apis/{group}/{version}/{resource}") : NotFound(ctx));
        _app.MapGet("/apis/{group}/{version}", (HttpContext ctx, string group, string version) => Discovery(ctx, $"{group}/{version}"));
        _app.MapGet("/api/v1/{resource}", (HttpContext ctx, string resource) => Serve(ctx, $"/api/v1/{resource}"));
        _app.StartAsync().GetAwaiter().GetResult();
    }

    /// <summary>API groups installed beside ours (their CRDs exist): served, and listed by discovery.</summary>
    private readonly Dictionary<string, string[]> _groups = new();

    /// <summary>Installs a group's CRDs (e.g. Tetragon's cilium.io/v1alpha1 tracingpolicies and tracingpoliciesnamespaced).</summary>
    public void InstallGroup(string groupVersion, params string[] resources)
    {
        lock (_lock) _groups[groupVersion] = resources;
    }

    private static Task NotFound(HttpContext ctx)
    {
        ctx.Response.StatusCode = 404;
        return Task.CompletedTask;
    }

    /// <summary>The discovery document of an API group version (APIResourceList), 404 when it is not installed.</summary>
    private async Task Discovery(HttpContext ctx, string groupVersion)
    {
        string[]? resources;
        lock (_lock) resources = _groups.GetValueOrDefault(groupVersion);
        if (ctx.Request.Headers.Authorization != $"Bearer {Token}") { ctx.Response.StatusCode = 401; return; }
        if (resources is null) { ctx.Response.StatusCode = 404; return; }
        await ctx.Response.WriteAsJsonAsync(new JsonObject
        {
            ["kind"] = "APIResourceList", ["groupVersion"] = groupVersion,
            ["resources"] = new JsonArray(resources.Select(r => (JsonNode)new JsonObject { ["name"] = r, ["namespaced"] = r.EndsWith("namespaced") }).ToArray()),
        }, Deep);
    }

    /// <summary>Objects as deep as the API server accepts (hostile ones included) are stored and served.</summary>
    private static readonly JsonSerializerOptions Deep = new() { MaxDepth = 1000 };

    public string WriteKubeconfig(string dir)
    {
        var path = Path.Combine(dir, "kubeconfig");
        File.WriteAllText(path, $"""
            apiVersion: v1
            kind: Config
            current-context: test
            clusters:
            - name: fake
              cluster:
                server: http://127.0.0.1:{Port}
            users:
            - name: agent
              user:
                token: {Token}
            contexts:
            - name: test
              context:
                cluster: fake
                user: agent
            """);
        return path;
    }

    private async Task Serve(HttpContext ctx, string path)
    {
        Interlocked.Increment(ref Requests);
        lock (Queries) Queries.Add(ctx.Request.Path + ctx.Request.QueryString);
        if (ctx.Request.Headers.Authorization != $"Bearer {Token}")
        {
            ctx.Response.StatusCode = 401;
            return;
        }
        if (ctx.Request.Query["watch"] != "true")
        {
            JsonObject list;
            lock (_lock)
                list = new JsonObject
                {
                    ["kind"] = "List", ["apiVersion"] = "v1",
                    ["metadata"] = new JsonObject { ["resourceVersion"] = _rv.ToString() },
                    ["items"] = new JsonArray(Objects(path).Select(o => (JsonNode)o.DeepClone()).ToArray()),
                };
            await ctx.Response.WriteAsJsonAsync(list, Deep);
            return;
        }
        long from = long.Parse(ctx.Request.Query["resourceVersion"]!);
        var ch = Channel.CreateUnbounded<string>();
        lock (_lock)
        {
            if (from < _oldestRv)
                ch.Writer.TryWrite(Line("ERROR", new JsonObject { ["kind"] = "Status", ["code"] = 410, ["reason"] = "Expired", ["message"] = $"too old resource version: {from} ({_oldestRv})" }));
            else
            {
                foreach (var h in _history.Where(h => h.Path == path && h.Rv > from))
                    ch.Writer.TryWrite(Line(h.Type, h.Obj));
                _watchers.Add((path, ch));
            }
        }
        ctx.Response.ContentType = "application/json";
        await ctx.Response.Body.FlushAsync();
        try
        {
            await foreach (var line in ch.Reader.ReadAllAsync(ctx.RequestAborted))
            {
                await ctx.Response.WriteAsync(line + "\n");
                await ctx.Response.Body.FlushAsync();
                if (line.Contains("\"ERROR\"")) break;
            }
        }
        catch (OperationCanceledException) { }
        finally { lock (_lock) _watchers.RemoveAll(w => w.Events == ch); }
    }

    private static string Line(string type, JsonObject obj) => new JsonObject { ["type"] = type, ["object"] = obj.DeepClone() }.ToJsonString(Deep);

    private IEnumerable<JsonObject> Objects(string path) => _objects.TryGetValue(path, out var d) ? d.Values : [];

    /// <summary>kubectl apply: create or update (the server sets uid and resourceVersion).</summary>
    public void Apply(string resource, string json) => ApplyAt($"/apis/securityagent.io/v1alpha1/{resource}", json);

    /// <summary>A pod, as the kubelet reports it (core API).</summary>
    public void ApplyPod(string json) => ApplyAt("/api/v1/pods", json);

    public void ApplyAt(string path, string json)
    {
        var obj = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { MaxDepth = 1000 })!.AsObject();
        lock (_lock)
        {
            var byName = _objects.TryGetValue(path, out var d) ? d : _objects[path] = new();
            var name = obj["metadata"]!["name"]!.GetValue<string>();
            var meta = obj["metadata"]!.AsObject();
            bool exists = byName.TryGetValue(name, out var old);
            meta["uid"] = exists ? old!["metadata"]!["uid"]!.GetValue<string>() : meta["uid"]?.GetValue<string>() ?? Guid.NewGuid().ToString();
            meta["resourceVersion"] = (++_rv).ToString();
            meta["generation"] = 1;
            meta["creationTimestamp"] = "2026-11-22T00:00:00Z";
            meta["managedFields"] = new JsonArray(new JsonObject { ["manager"] = "kubectl" });
            byName[name] = obj;
            Publish(path, exists ? "MODIFIED" : "ADDED", obj);
        }
    }

    public void Delete(string resource, string name)
    {
        var path = $"/apis/securityagent.io/v1alpha1/{resource}";
        lock (_lock)
        {
            if (!_objects.TryGetValue(path, out var d) || !d.Remove(name, out var obj)) return;
            obj["metadata"]!["resourceVersion"] = (++_rv).ToString();
            Publish(path, "DELETED", obj);
        }
    }

    private void Publish(string path, string type, JsonObject obj)
    {
        _history.Add((_rv, path, type, (JsonObject)obj.DeepClone()));
        foreach (var w in _watchers.Where(w => w.Path == path))
            w.Events.Writer.TryWrite(Line(type, obj));
    }

    /// <summary>A BOOKMARK to every watcher: the current resourceVersion, no object change.</summary>
    public void Bookmark()
    {
        lock (_lock)
            foreach (var w in _watchers)
                w.Events.Writer.TryWrite(Line("BOOKMARK", new JsonObject { ["kind"] = "TracingPolicy", ["metadata"] = new JsonObject { ["resourceVersion"] = _rv.ToString() } }));
    }

    /// <summary>Compaction: watches from an older resourceVersion now get 410 and must relist.</summary>
    public void Expire()
    {
        lock (_lock)
        {
            _history.Clear();
            _oldestRv = _rv + 1;
        }
    }

    /// <summary>Ends every open watch stream, as an API server restart or a load balancer would.</summary>
    public void DropWatches()
    {
        lock (_lock)
        {
            foreach (var w in _watchers) w.Events.Writer.TryComplete();
            _watchers.Clear();
        }
    }

    public async ValueTask DisposeAsync()
    {
        DropWatches();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
