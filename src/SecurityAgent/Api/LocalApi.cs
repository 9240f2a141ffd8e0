using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Timeouts;
using SecurityAgent.Export;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using YamlDotNet.RepresentationModel;

namespace SecurityAgent.Api;

/// <summary>The local API (HTTP/JSON on a root-only Unix socket) that `secagent status|events|policy` use.
/// Policies added through it are files in the policy directory, so the directory stays the one source of truth.</summary>
public static class LocalApi
{
    public static void Map(WebApplication app, AgentState state)
    {
        app.MapGet("/v1/status", () => Results.Json(Status(state)));
        app.MapGet("/v1/events", (HttpContext ctx) => StreamEvents(ctx, state)).DisableRequestTimeout();
        app.MapGet("/v1/policies", () => Results.Json(ListPolicies(state)));
        app.MapPost("/v1/policies", async (HttpRequest req) => AddPolicy(state, await new StreamReader(req.Body).ReadToEndAsync(), req.Query["replace"] == "true"));
        app.MapDelete("/v1/policies/{name}", (string name) => Change(state, name, file => { File.Delete(file); return null; }));
        app.MapPost("/v1/policies/{name}/disable", (string name) => Change(state, name, file => { File.Move(file, file + ".disabled"); return null; }));
        app.MapPost("/v1/policies/{name}/enable", (string name) => Enable(state, name));
        app.MapPost("/v1/policies/{name}/mode/{mode}", (string name, string mode) =>
            mode is "enforce" or "monitor" ? Change(state, name, file => SetMode(file, mode)) : Results.BadRequest(new { error = "mode is enforce or monitor" }));
    }

    private static object Status(AgentState s)
    {
        var c = s.Pipeline?.Counters;
        return new
        {
            kernel = s.Features is null ? null : new
            {
                release = s.Features.KernelRelease,
                mechanisms = s.Features.Mechanisms.ToDictionary(m => KernelFeatures.MechanismName(m.Key), m => m.Value.Available),
                active_lsms = s.Features.ActiveLsms,
            },
            policies = ListPolicies(s),
            events = c is null ? null : new
            {
                received = c.Received, exported = c.Exported, kernel_lost = c.KernelLost,
                decode_errors = c.DecodeErrors, user_space_filtered = c.UserSpaceFiltered,
            },
            process_cache = s.Pipeline is null ? null : new { size = s.Pipeline.Cache.Count, evictions = s.Pipeline.Cache.Evictions },
            exporters = new object?[]
            {
                new { name = "json", written = s.Exporter?.Written ?? 0, failed = s.Exporter?.Failed ?? 0 },
                new { name = "api-stream", dropped = s.Live.Dropped },
                s.Otlp is { } o ? new { name = "otlp", enqueued = o.Enqueued, delivered = o.Delivered, dropped = o.Dropped, failures = o.Failures, queue_depth = o.QueueDepth } : null,
            }.Where(x => x is not null),
        };
    }

    private static List<object> ListPolicies(AgentState s)
    {
        var list = new List<object>();
        lock (s.PolicyLock)
        {
            foreach (var p in s.LoadedPolicies())
                list.Add(new
                {
                    name = p.Plan.Name, file = p.Plan.File, enabled = true, mode = p.Plan.Enforce ? "enforce" : "monitor",
                    hooks = p.HookIds.Select((id, i) =>
                    {
                        var st = s.Engine!.Stats(id);
                        var h = p.Plan.Hooks[i];
                        return new { hook = h.Name, mechanism = KernelFeatures.MechanismName(h.Mechanism), target = h.Target,
                            seen = st.Seen, matched = st.Matched, filtered = st.Filtered, posted = st.Posted, enforced = st.Enforced, rate_limited = st.RateLimited };
                    }).ToList(),
                });
            if (Directory.Exists(s.PolicyDir))
                foreach (var f in Directory.GetFiles(s.PolicyDir, "*.disabled"))
                    list.Add(new { name = Path.GetFileName(f)[..^".yaml.disabled".Length], file = f, enabled = false, mode = "", hooks = new List<object>() });
        }
        return list;
    }

    private static IResult AddPolicy(AgentState s, string yaml, bool replace)
    {
        var results = s.Validator!.ValidateText("(request)", yaml);
        var errors = results.SelectMany(r => r.Diagnostics).Select(d => d.ToString()).ToList();
        foreach (var r in results.Where(r => r.Ok))
        {
            try { s.Compiler!.Compile(r); }
            catch (PolicyCompileException e) { errors.AddRange(e.Diagnostics.Select(d => d.ToString())); }
        }
        if (errors.Count > 0 || results.Count == 0)
            return Results.BadRequest(new { errors = errors.Count > 0 ? errors : ["no policy in the request"] });
        var name = results[0].Name!;
        var file = Path.Combine(s.PolicyDir, name + ".yaml");
        if (File.Exists(file) && !replace)
            return Results.Conflict(new { error = $"{file} exists (replace=true to overwrite)" });
        lock (s.PolicyLock)
        {
            Directory.CreateDirectory(s.PolicyDir);
            File.WriteAllText(file, yaml);
            s.Policies!.Sync();
            var loaded = s.Policies.Loaded.Select(p => p.Plan.Name).ToHashSet();
            var names = results.Select(r => r.Name!).ToList();
            return names.All(loaded.Contains)
                ? Results.Created($"/v1/policies/{name}", new { loaded = names, file })
                : Results.UnprocessableEntity(new { error = "validated but did not load; see the agent log", file });
        }
    }

    /// <summary>Applies a file-level change to the file that holds only the named policy, then reloads.</summary>
    private static IResult Change(AgentState s, string name, Func<string, IResult?> change)
    {
        lock (s.PolicyLock)
        {
            var p = s.Policies!.Loaded.FirstOrDefault(l => l.Plan.Name == name);
            if (p is null)
            {
                var disabled = Path.Combine(s.PolicyDir, name + ".yaml.disabled");
                if (File.Exists(disabled)) { File.Delete(disabled); return Results.Ok(new { deleted = name }); }
                return Results.NotFound(new { error = $"no policy {name}" });
            }
            if (s.Policies.Loaded.Count(l => l.Plan.File == p.Plan.File) > 1)
                return Results.Conflict(new { error = $"{p.Plan.File} holds other policies too: change that file" });
            var result = change(p.Plan.File);
            if (result is not null) return result;
            s.Policies.Sync();
            return Results.Ok(new { policy = name, file = p.Plan.File });
        }
    }

    private static IResult Enable(AgentState s, string name)
    {
        lock (s.PolicyLock)
        {
            var file = Path.Combine(s.PolicyDir, name + ".yaml.disabled");
            if (!File.Exists(file)) return Results.NotFound(new { error = $"no disabled policy {name}" });
            File.Move(file, file[..^".disabled".Length]);
            s.Policies!.Sync();
            return Results.Ok(new { enabled = name });
        }
    }

    /// <summary>Sets spec.options policy-mode in a one-policy file (comments are not kept).</summary>
    private static IResult? SetMode(string file, string mode)
    {
        var yaml = new YamlStream();
        yaml.Load(new StringReader(File.ReadAllText(file)));
        var spec = (YamlMappingNode)((YamlMappingNode)yaml.Documents[0].RootNode)["spec"];
        if (!spec.Children.TryGetValue("options", out var opts))
            spec.Children["options"] = opts = new YamlSequenceNode();
        var seq = (YamlSequenceNode)opts;
        var entry = seq.Children.OfType<YamlMappingNode>().FirstOrDefault(o => o.Children.TryGetValue("name", out var n) && n.ToString() == "policy-mode");
        if (entry is null)
            seq.Add(new YamlMappingNode(new YamlScalarNode("name"), new YamlScalarNode("policy-mode"), new YamlScalarNode("value"), new YamlScalarNode(mode)));
        else
            entry.Children[new YamlScalarNode("value")] = new YamlScalarNode(mode);
        using var w = new StringWriter();
        yaml.Save(w, assignAnchors: false);
        File.WriteAllText(file, w.ToString().Replace("...\n", "").TrimEnd() + "\n");
        return null;
    }

    /// <summary>The live stream (NDJSON). Filters: allow and deny (export-filter JSON lines: an event passes when it matches
    /// one allow line, if any, and no deny line), where (export-filter lines that must all match: the CLI's --type,
    /// --namespace, --pod, --process, --policy), and the older type, binary_regex and policy parameters. A filter that
    /// does not parse is a 400 naming it.</summary>
    private static async Task StreamEvents(HttpContext ctx, AgentState s)
    {
        var q = ctx.Request.Query;
        List<ExportFilter> allow, deny, where;
        try
        {
            allow = ExportFilter.ParseList(q["allow"].FirstOrDefault());
            deny = ExportFilter.ParseList(q["deny"].FirstOrDefault());
            where = [.. q["where"].SelectMany(w => ExportFilter.ParseList(w)), .. LegacyFilters(q)];
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            ctx.Response.StatusCode = 400;
            await ctx.Response.WriteAsJsonAsync(new { errors = new[] { e.Message } });
            return;
        }
        var sub = s.Live.Subscribe(e =>
            (allow.Count == 0 || allow.Any(f => f.Matches(e))) && !deny.Any(f => f.Matches(e)) && where.All(f => f.Matches(e)));
        ctx.Response.ContentType = "application/x-ndjson";
        await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
        try
        {
            await foreach (var line in sub.Reader.ReadAllAsync(ctx.RequestAborted))
            {
                await ctx.Response.WriteAsync(line + "\n", ctx.RequestAborted);
                if (sub.Reader.Count == 0) await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
            }
        }
        catch (OperationCanceledException) { }
        finally { s.Live.Unsubscribe(sub); }
    }

    /// <summary>type=process_exec (repeatable), binary_regex=R, policy=NAME as export filters.</summary>
    private static IEnumerable<ExportFilter> LegacyFilters(IQueryCollection q)
    {
        var json = new List<string>();
        if (q["type"].Count > 0)
            json.Add(JsonSerializer.Serialize(new { event_set = q["type"].Select(t => t!.ToUpperInvariant()) }));
        if (q["binary_regex"].FirstOrDefault() is { } b)
            json.Add(JsonSerializer.Serialize(new { binary_regex = new[] { b } }));
        if (q["policy"].FirstOrDefault() is { } p)
            json.Add(JsonSerializer.Serialize(new { policy_names = new[] { p } }));
        return ExportFilter.ParseList(string.Join('\n', json));
    }
}
