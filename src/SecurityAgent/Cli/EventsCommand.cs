using SecurityAgent.Export.Compact;
using System.CommandLine;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using SecurityAgent.Interop;

namespace SecurityAgent.Cli;

/// <summary>`secagent events`: the running agent's events, live, or events read from a file or stdin
/// (`kubectl logs ... | secagent events -o compact`), as JSON lines or compact lines, filtered.</summary>
public static class EventsCommand
{
    public static readonly string[] EventTypes = ["process_exec", "process_exit", "process_kprobe", "process_tracepoint", "process_lsm", "process_uprobe", "process_usdt", "process_loader"];

    public static Command Create()
    {
        var output = new Option<string>("--output", "-o") { Description = "json (Tetragon's lines) or compact (one readable line per event)", DefaultValueFactory = _ => "json" }.Choices("json", "compact");
        var input = new Option<string>("--input", "-i") { Description = "Read events from a file (- for stdin) instead of the agent; stdin is read by default when it is a pipe or a file", HelpName = "FILE|-" };
        var types = new Option<string[]>("--type", "--event-types", "-e") { Description = "Only these event types", HelpName = "TYPE", AllowMultipleArgumentsPerToken = false }.Choices(EventTypes);
        var namespaces = new Option<string[]>("--namespace", "-n") { Description = "Only processes in this Kubernetes namespace (\"\" for host processes)", HelpName = "NS" };
        var pods = new Option<string[]>("--pod") { Description = "Only pods whose name matches this regex", HelpName = "REGEX" };
        var processes = new Option<string[]>("--process", "--binary-regex") { Description = "Only processes whose binary path matches this regex", HelpName = "REGEX" };
        var policies = new Option<string[]>("--policy") { Description = "Only hits of this policy (checked against the agent's policies)", HelpName = "NAME" };
        var allow = new Option<string>("--allow") { Description = "Export-filter JSON lines (as --export-allowlist): events matching one of them", HelpName = "JSON" };
        var deny = new Option<string>("--deny") { Description = "Export-filter JSON lines (as --export-denylist): events matching none of them", HelpName = "JSON" };
        var timestamps = new Option<bool>("--timestamps") { Description = "Compact lines start with the event's time" };
        var color = new Option<string>("--color") { Description = "Colour compact lines: auto (on a terminal, unless NO_COLOR is set), always, never", DefaultValueFactory = _ => "auto" }.Choices("auto", "always", "never");
        var socket = Commands.ApiSocketOption();
        foreach (var regexOption in new[] { pods, processes })
            regexOption.Validators.Add(r =>
            {
                foreach (var t in r.Tokens)
                    if (RegexError(t.Value) is { } error) r.AddError($"{r.IdentifierToken?.Value} '{t.Value}' is not a valid regex: {error}");
            });
        var c = new Command("events", "Stream the running agent's events, or read events from a file or stdin, as JSON or compact lines")
        {
            output, input, types, namespaces, pods, processes, policies, allow, deny, timestamps, color, socket,
        };
        c.SetAction(async (pr, ct) =>
        {
            var query = new EventQuery(pr.GetValue(types) ?? [], pr.GetValue(namespaces) ?? [], pr.GetValue(pods) ?? [], pr.GetValue(processes) ?? [], pr.GetValue(policies) ?? []);
            bool compact = pr.GetValue(output) == "compact";
            var style = new CompactStyle(pr.GetValue(color) switch
            {
                "always" => true,
                "never" => false,
                _ => !Console.IsOutputRedirected && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NO_COLOR")),
            }, pr.GetValue(timestamps));
            var file = pr.GetValue(input) ?? (pr.GetResult(socket) is { Implicit: false } ? null : StdinHasEvents() ? "-" : null);
            using var writer = new LineWriter(compact, style);
            if (file is not null)
            {
                if (pr.GetValue(allow) is not null || pr.GetValue(deny) is not null)
                    throw new CliException("--allow and --deny filter the agent's live stream; for events read from a file or stdin use --type, --namespace, --pod, --process, --policy", Commands.UsageError);
                return await FromFile(file, query, writer, ct);
            }
            using var api = new ApiClient(pr.GetValue(socket));
            return await FromAgent(api, query, pr.GetValue(allow), pr.GetValue(deny), writer, ct);
        });
        return c;
    }

    private static string? RegexError(string pattern)
    {
        try
        {
            _ = new Regex(pattern);
            return null;
        }
        catch (ArgumentException e)
        {
            return e.Message;
        }
    }

    /// <summary>stdin carries events when it is a pipe or a file, as tetra decides (a terminal or /dev/null does not).</summary>
    private static bool StdinHasEvents()
    {
        try { return (Libc.FdMode(0) & Libc.S_IFMT) != Libc.S_IFCHR; }
        catch (IOException) { return false; }
    }

    private static async Task<int> FromFile(string file, EventQuery query, LineWriter writer, CancellationToken ct)
    {
        using var reader = file == "-" ? new StreamReader(Console.OpenStandardInput()) : OpenFile(file);
        long notEvents = 0;
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (line.Length == 0) continue;
            var bytes = Encoding.UTF8.GetBytes(line);
            if (EventView.Parse(bytes) is not { } view)
            {
                notEvents++;
                continue;
            }
            if (query.Matches(view)) writer.Write(line, view);
        }
        if (notEvents > 0)
            Console.Error.WriteLine($"secagent events: {notEvents} line(s) of {(file == "-" ? "stdin" : file)} were not events and were skipped");
        return 0;
    }

    private static StreamReader OpenFile(string file)
    {
        try { return new StreamReader(file); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new CliException($"--input {file}: {e.Message}"); }
    }

    private static async Task<int> FromAgent(ApiClient api, EventQuery query, string? allow, string? deny, LineWriter writer, CancellationToken ct)
    {
        if (query.Policies.Count > 0)
        {
            var loaded = (await api.GetJson("/v1/policies")).EnumerateArray().Select(p => p.TryGetProperty("name", out var n) ? n.GetString() : null).ToHashSet();
            foreach (var p in query.Policies.Where(p => !loaded.Contains(p)))
                throw new CliException($"--policy '{p}': the agent has no such policy{Commands.DidYouMean(p, loaded.OfType<string>())} (policies: {string.Join(", ", loaded.Order())})", Commands.UsageError);
        }
        var q = new List<string>();
        foreach (var w in query.ExportFilters()) q.Add("where=" + Uri.EscapeDataString(w));
        if (allow is not null) q.Add("allow=" + Uri.EscapeDataString(allow));
        if (deny is not null) q.Add("deny=" + Uri.EscapeDataString(deny));
        using var r = await api.Send(new HttpRequestMessage(HttpMethod.Get, "/v1/events" + (q.Count > 0 ? "?" + string.Join('&', q) : "")), HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await r.Content.ReadAsStreamAsync(ct));
        try
        {
            while (await reader.ReadLineAsync(ct) is { } line)
                if (EventView.Parse(Encoding.UTF8.GetBytes(line)) is { } view)
                    writer.Write(line, view);
        }
        catch (OperationCanceledException) { }
        catch (IOException) { throw new CliException($"the agent on {api.Socket} closed the stream"); }
        return 0;
    }

    /// <summary>Writes JSON lines unchanged or compact lines, flushed when nothing else is waiting.</summary>
    private sealed class LineWriter(bool compact, CompactStyle style) : IDisposable
    {
        private readonly TextWriter _out = Console.Out;

        public void Write(string json, EventView view)
        {
            _out.Write(compact ? CompactRenderer.Line(view, style) : json);
            _out.Write('\n');
            _out.Flush();
        }

        public void Dispose() => _out.Flush();
    }
}

/// <summary>The `events` filters: every given filter must match (values of one filter are alternatives). The same
/// semantics on the agent (as export-filter lines, <see cref="ExportFilters"/>) and on events read from a file
/// (<see cref="Matches"/>).</summary>
public sealed class EventQuery(IReadOnlyList<string> types, IReadOnlyList<string> namespaces, IReadOnlyList<string> pods, IReadOnlyList<string> processes, IReadOnlyList<string> policies)
{
    private readonly Regex[] _pods = pods.Select(p => new Regex(p)).ToArray();
    private readonly Regex[] _processes = processes.Select(p => new Regex(p)).ToArray();
    public IReadOnlyList<string> Policies => policies;

    public bool Matches(EventView e) =>
        (types.Count == 0 || types.Contains(e.Type))
        && (namespaces.Count == 0 || namespaces.Contains(e.Namespace ?? ""))
        && (_pods.Length == 0 || e.Pod is { } pod && _pods.Any(r => r.IsMatch(pod)))
        && (_processes.Length == 0 || _processes.Any(r => r.IsMatch(e.Binary)))
        && (policies.Count == 0 || e.Policy is { } p && policies.Contains(p));

    /// <summary>One export-filter line per given filter (Tetragon's field names), for the agent's live stream.</summary>
    public IEnumerable<string> ExportFilters()
    {
        if (types.Count > 0) yield return JsonSerializer.Serialize(new { event_set = types.Select(t => t.ToUpperInvariant()) });
        if (namespaces.Count > 0) yield return JsonSerializer.Serialize(new { @namespace = namespaces });
        if (pods.Count > 0) yield return JsonSerializer.Serialize(new { pod_regex = pods });
        if (processes.Count > 0) yield return JsonSerializer.Serialize(new { binary_regex = processes });
        if (policies.Count > 0) yield return JsonSerializer.Serialize(new { policy_names = policies });
    }
}
