using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Timeouts;
using SecurityAgent.Export;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;

namespace SecurityAgent.Api;

/// <summary>The local API (HTTP/JSON on a root-only Unix socket) that `secagent status|events|policy` use.
/// Policies added through it are files in the policy directory, so the directory stays the one source of truth; enable,
/// disable and mode are runtime switches of the <see cref="PolicyManager"/> (as tetra's), kept until the agent restarts.</summary>
public static class LocalApi
{
    public static void Map(WebApplication app, AgentState state)
    {
        app.MapGet("/v1/status", () => Results.Json(Status(state)));
        app.MapGet("/v1/events", (HttpContext ctx) => StreamEvents(ctx, state)).DisableRequestTimeout();
        MapPolicies(app, state.Policies);
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
            policy_programs = s.PolicyPrograms?.Invoke() switch
            {
                PolicyProgramsState.Loading => "loading", PolicyProgramsState.Loaded => "loaded", PolicyProgramsState.Failed => "failed", _ => null,
            },
            policies = ListPolicies(s.Policies),
            events = c is null ? null : new
            {
                received = c.Received, exported = c.Exported, kernel_lost = c.KernelLost,
                decode_errors = c.DecodeErrors, user_space_filtered = c.UserSpaceFiltered,
            },
            process_cache = s.Pipeline is null ? null : new { size = s.Pipeline.Cache.Count, evictions = s.Pipeline.Cache.Evictions },
            fanotify = s.Fanotify?.Counters is { } f ? new
            {
                marks = s.Fanotify.Marks.Count, events = f.Events, allowed = f.Allowed, denied = f.Denied, exempt = f.Exempt,
                defaulted = new { timeout = f.DefaultedBy(Fanotify.DefaultReason.Timeout), overload = f.DefaultedBy(Fanotify.DefaultReason.Overload), error = f.DefaultedBy(Fanotify.DefaultReason.Error) },
                late_decisions = f.LateDecisions, reports_dropped = f.ReportsDropped, max_latency_us = f.MaxLatencyNs / 1000,
            } : null,
            exporters = new object?[]
            {
                new { name = "json", written = s.Exporter?.Written ?? 0, failed = s.Exporter?.Failed ?? 0 },
                new { name = "api-stream", dropped = s.Live.Dropped },
                s.Otlp is { } o ? new { name = "otlp", enqueued = o.Enqueued, delivered = o.Delivered, dropped = o.Dropped, failures = o.Failures, queue_depth = o.QueueDepth } : null,
            }.Where(x => x is not null),
        };
    }

    /// <summary>The policy endpoints: list, add (a file in the policy directory, applied before the answer), delete,
    /// and the runtime switches enable, disable and mode.</summary>
    private static void MapPolicies(WebApplication app, PolicyManager policies)
    {
        app.MapGet("/v1/policies", () => Results.Json(ListPolicies(policies)));
        app.MapPost("/v1/policies", async (HttpRequest req) => await AddPolicy(policies, req));
        app.MapDelete("/v1/policies/{name}", (string name) => Answer(policies.Directory?.Delete(name) ?? NotReady));
        app.MapPost("/v1/policies/{name}/disable", (string name) => Answer(policies.Disable(name)));
        app.MapPost("/v1/policies/{name}/enable", (string name) => Answer(policies.Enable(name)));
        app.MapPost("/v1/policies/{name}/mode/{mode}", (string name, string mode) =>
            mode is "enforce" or "monitor" ? Answer(policies.SetMode(name, mode == "enforce")) : Results.BadRequest(new { errors = new[] { "mode is enforce or monitor" } }));
    }

    private static readonly PolicyOutcome NotReady = PolicyOutcome.Failed("the agent is not ready", PolicyFailure.NotReady);

    private static List<object> ListPolicies(PolicyManager policies) =>
        policies.List().Select(p => (object)new
        {
            name = p.Key.Name, @namespace = p.Key.Namespace, source = p.Source, file = p.Origin, enabled = p.Enabled, loaded = p.Loaded,
            mode = p.Enforce ? "enforce" : "monitor", error = p.Error, warnings = p.Warnings,
            hooks = p.Hooks.Select(h => new
            {
                hook = h.Hook, mechanism = h.Mechanism, target = h.Target, seen = h.Stats.Seen, matched = h.Stats.Matched, filtered = h.Stats.Filtered,
                posted = h.Stats.Posted, enforced = h.Stats.Enforced, rate_limited = h.Stats.RateLimited,
            }).ToList(),
        }).ToList();

    /// <summary>The body is read up to the policy size limit and no further: a larger request is refused unread.</summary>
    private static async Task<IResult> AddPolicy(PolicyManager policies, HttpRequest req)
    {
        if (policies.Directory is not { } dir) return Answer(NotReady);
        var tooLarge = Results.Json(new { errors = new[] { $"the policy is larger than the limit of {PolicyLimits.MaxBytes} bytes" } }, statusCode: StatusCodes.Status413PayloadTooLarge);
        if (req.ContentLength > PolicyLimits.MaxBytes) return tooLarge;
        var buffer = new byte[PolicyLimits.MaxBytes + 1];
        int n = 0, r;
        while (n < buffer.Length && (r = await req.Body.ReadAsync(buffer.AsMemory(n), req.HttpContext.RequestAborted)) > 0)
            n += r;
        if (n > PolicyLimits.MaxBytes) return tooLarge;
        string text;
        try { text = new System.Text.UTF8Encoding(false, true).GetString(buffer, 0, n); }
        catch (System.Text.DecoderFallbackException) { return Results.BadRequest(new { errors = new[] { "the policy is not UTF-8 text" } }); }
        var outcome = dir.Add(text, req.Query["replace"] == "true");
        return outcome.Ok
            ? Results.Created($"/v1/policies/{outcome.Loaded.FirstOrDefault()?.Name}", new { loaded = outcome.Loaded.Select(k => k.ToString()), warnings = outcome.Warnings })
            : Answer(outcome);
    }

    private static IResult Answer(PolicyOutcome o) => o.Failure switch
    {
        PolicyFailure.None when o.Ok => Results.Ok(new { policies = o.Loaded.Select(k => k.ToString()), warnings = o.Warnings }),
        PolicyFailure.Invalid => Results.BadRequest(new { errors = o.Errors, warnings = o.Warnings }),
        PolicyFailure.Conflict => Results.Conflict(new { errors = o.Errors, warnings = o.Warnings }),
        PolicyFailure.NotFound => Results.NotFound(new { errors = o.Errors }),
        PolicyFailure.NotReady => Results.Json(new { errors = o.Errors }, statusCode: StatusCodes.Status503ServiceUnavailable),
        _ => Results.UnprocessableEntity(new { errors = o.Errors, warnings = o.Warnings }),
    };

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
