using System.Text;
using System.Text.Json;
using SecurityAgent.Export;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;

namespace SecurityAgent.Api;

/// <summary>The local API (HTTP/JSON on a root-only Unix socket) that `secagent status|events|policy` use, with the
/// health and metrics endpoints. Policies added through it are files in the policy directory, so the directory stays the
/// one source of truth; enable, disable and mode are runtime switches of the <see cref="PolicyManager"/> (as tetra's),
/// kept until the agent restarts.</summary>
public static class LocalApi
{
    public static readonly HttpResponse NotFound = HttpResponse.Json(new { errors = new[] { "no such endpoint" } }, 404);

    /// <summary>Routes a request: GET /metrics, /healthz, /readyz, /v1/status, /v1/events, /v1/policies; POST /v1/policies;
    /// DELETE /v1/policies/NAME; POST /v1/policies/NAME/enable|disable|mode/MODE.</summary>
    public static HttpResponse Handle(HttpRequest r, AgentState state)
    {
        var policies = state.Policies;
        var segments = r.Path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        return (r.Method, segments) switch
        {
            ("GET", ["metrics"]) => HttpResponse.Text(Metrics.Render(Metrics.Collect(state)), contentType: "text/plain; version=0.0.4"),
            ("GET", ["healthz"]) => HttpResponse.Text("ok\n"),
            ("GET", ["readyz"]) => state.Policies.Ready && state.Pipeline is not null
                ? HttpResponse.Text("ready\n")
                : HttpResponse.Text("not ready: the agent is starting or stopping\n", 503),
            ("GET", ["v1", "status"]) => HttpResponse.Json(Status(state)),
            ("GET", ["v1", "events"]) => StreamEvents(r, state),
            ("GET", ["v1", "policies"]) => HttpResponse.Json(ListPolicies(policies)),
            ("POST", ["v1", "policies"]) => AddPolicy(policies, r),
            ("DELETE", ["v1", "policies", var name]) => Answer(policies.Directory?.Delete(name) ?? NotReady),
            ("POST", ["v1", "policies", var name, "disable"]) => Answer(policies.Disable(name)),
            ("POST", ["v1", "policies", var name, "enable"]) => Answer(policies.Enable(name)),
            ("POST", ["v1", "policies", var name, "mode", var mode]) => mode is "enforce" or "monitor"
                ? Answer(policies.SetMode(name, mode == "enforce"))
                : HttpResponse.Json(new { errors = new[] { "mode is enforce or monitor" } }, 400),
            _ => NotFound,
        };
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
            exit_only_matching = s.ExitOnlyMatching?.Invoke(),
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
                new
                {
                    name = "api-stream", dropped = s.Live.Dropped, disconnected = s.Live.Disconnected,
                    clients = s.Live.Subscribers.Select(c => new { id = c.Id, since = c.Since, delivered = c.Delivered, dropped = c.Dropped }),
                },
                s.Otlp is { } o ? new { name = "otlp", enqueued = o.Enqueued, delivered = o.Delivered, dropped = o.Dropped, failures = o.Failures, queue_depth = o.QueueDepth } : null,
            }.Where(x => x is not null),
        };
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

    /// <summary>The answer to a request whose body is over the server's limit (refused unread).</summary>
    public static HttpResponse TooLarge(HttpRequest r) => r is { Method: "POST", Path: "/v1/policies" } ? PolicyTooLarge
        : HttpResponse.Json(new { errors = new[] { $"the request body is larger than the limit of {ApiServer.MaxRequestBodyBytes} bytes" } }, 413);

    private static readonly HttpResponse PolicyTooLarge =
        HttpResponse.Json(new { errors = new[] { $"the policy is larger than the limit of {PolicyLimits.MaxBytes} bytes" } }, 413);

    /// <summary>The body was read up to the API's request limit; above the policy size limit it is refused.</summary>
    private static HttpResponse AddPolicy(PolicyManager policies, HttpRequest req)
    {
        if (policies.Directory is not { } dir) return Answer(NotReady);
        if (req.Body.Length > PolicyLimits.MaxBytes) return PolicyTooLarge;
        string text;
        try { text = new UTF8Encoding(false, true).GetString(req.Body); }
        catch (DecoderFallbackException) { return HttpResponse.Json(new { errors = new[] { "the policy is not UTF-8 text" } }, 400); }
        var outcome = dir.Add(text, req.QueryValue("replace") == "true");
        return outcome.Ok
            ? HttpResponse.Json(new { loaded = outcome.Loaded.Select(k => k.ToString()), warnings = outcome.Warnings }, 201) with { Location = $"/v1/policies/{outcome.Loaded.FirstOrDefault()?.Name}" }
            : Answer(outcome);
    }

    private static HttpResponse Answer(PolicyOutcome o) => o.Failure switch
    {
        PolicyFailure.None when o.Ok => HttpResponse.Json(new { policies = o.Loaded.Select(k => k.ToString()), warnings = o.Warnings }),
        PolicyFailure.Invalid => HttpResponse.Json(new { errors = o.Errors, warnings = o.Warnings }, 400),
        PolicyFailure.Conflict => HttpResponse.Json(new { errors = o.Errors, warnings = o.Warnings }, 409),
        PolicyFailure.NotFound => HttpResponse.Json(new { errors = o.Errors }, 404),
        PolicyFailure.NotReady => HttpResponse.Json(new { errors = o.Errors }, 503),
        _ => HttpResponse.Json(new { errors = o.Errors, warnings = o.Warnings }, 422),
    };

    /// <summary>The live stream (NDJSON). Filters: allow and deny (export-filter JSON lines: an event passes when it matches
    /// one allow line, if any, and no deny line), where (export-filter lines that must all match: the CLI's --type,
    /// --namespace, --pod, --process, --policy), and the older type, binary_regex and policy parameters. A filter that
    /// does not parse is a 400 naming it.</summary>
    private static HttpResponse StreamEvents(HttpRequest r, AgentState s)
    {
        List<ExportFilter> allow, deny, where;
        try
        {
            allow = ExportFilter.ParseList(r.QueryValue("allow"));
            deny = ExportFilter.ParseList(r.QueryValue("deny"));
            where = [.. r.Query("where").SelectMany(w => ExportFilter.ParseList(w)), .. LegacyFilters(r)];
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            return HttpResponse.Json(new { errors = new[] { e.Message } }, 400);
        }
        ExportFilter[] allowed = [.. allow], denied = [.. deny], required = [.. where];
        return HttpResponse.Stream("application/x-ndjson", async (body, ct) =>
        {
            var sub = s.Live.Subscribe(e => Passes(e, allowed, denied, required));
            using var end = CancellationTokenSource.CreateLinkedTokenSource(ct, sub.Killed);
            try
            {
                await foreach (var chunk in sub.Reader.ReadAllAsync(end.Token))
                {
                    try { await body.WriteAsync(chunk.Memory, end.Token); }
                    catch { sub.Discard(chunk); throw; }
                    sub.Return(chunk);
                }
            }
            catch (OperationCanceledException) { } // the client went away, the agent stops, or it disconnected a client that does not read
            catch (IOException) { }
            finally { s.Live.Unsubscribe(sub); }
        });
    }

    /// <summary>An event passes when it matches one allow line (if any), no deny line and every where line. Loops over
    /// arrays: this runs per event and subscriber on the pipeline thread.</summary>
    private static bool Passes(AgentEvent e, ExportFilter[] allow, ExportFilter[] deny, ExportFilter[] where)
    {
        bool allowed = allow.Length == 0;
        foreach (var f in allow)
            if (f.Matches(e)) { allowed = true; break; }
        if (!allowed) return false;
        foreach (var f in deny)
            if (f.Matches(e)) return false;
        foreach (var f in where)
            if (!f.Matches(e)) return false;
        return true;
    }

    /// <summary>type=process_exec (repeatable), binary_regex=R, policy=NAME as export filters.</summary>
    private static IEnumerable<ExportFilter> LegacyFilters(HttpRequest r)
    {
        var json = new List<string>();
        if (r.Query("type").Count > 0)
            json.Add(JsonSerializer.Serialize(new { event_set = r.Query("type").Select(t => t.ToUpperInvariant()) }));
        if (r.QueryValue("binary_regex") is { } b)
            json.Add(JsonSerializer.Serialize(new { binary_regex = new[] { b } }));
        if (r.QueryValue("policy") is { } p)
            json.Add(JsonSerializer.Serialize(new { policy_names = new[] { p } }));
        return ExportFilter.ParseList(string.Join('\n', json));
    }
}
