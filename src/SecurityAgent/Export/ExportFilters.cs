using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using SecurityAgent.Policies;

namespace SecurityAgent.Export;

/// <summary>Tetragon's export filters: each filter is a JSON object whose fields must all match (AND); a list of
/// filters (one JSON object per line) matches when any filter does (OR). An event is exported when it matches
/// the allow list (if any) and does not match the deny list. Pod fields match host processes as Tetragon
/// does: namespace "" and no pod, until the agent knows pods.</summary>
public sealed class ExportFilter
{
    private readonly HashSet<string>? _types;
    private readonly Regex[]? _binary, _parentBinary, _args, _pod;
    private readonly HashSet<string>? _namespaces, _policies;
    private readonly HashSet<int>? _pids;
    private readonly List<string>? _labels;

    private static readonly Dictionary<string, string> EventSet = new()
    {
        ["PROCESS_EXEC"] = "process_exec", ["PROCESS_EXIT"] = "process_exit", ["PROCESS_KPROBE"] = "process_kprobe",
        ["PROCESS_TRACEPOINT"] = "process_tracepoint", ["PROCESS_LSM"] = "process_lsm",
        ["PROCESS_UPROBE"] = "process_uprobe", ["PROCESS_USDT"] = "process_usdt", ["PROCESS_LOADER"] = "process_loader",
    };

    private ExportFilter(JsonElement f)
    {
        foreach (var p in f.EnumerateObject())
        {
            var values = p.Value.ValueKind == JsonValueKind.Array ? p.Value.EnumerateArray().Select(v => v.ToString()).ToList() : [p.Value.ToString()];
            switch (p.Name)
            {
                case "event_set": _types = values.Select(v => EventSet.TryGetValue(v, out var t) ? t : throw new FormatException($"unknown event type {v} in event_set (known: {string.Join(", ", EventSet.Keys)})")).ToHashSet(); break;
                case "binary_regex": _binary = values.Select(v => new Regex(v, RegexOptions.Compiled)).ToArray(); break;
                case "parent_binary_regex": _parentBinary = values.Select(v => new Regex(v, RegexOptions.Compiled)).ToArray(); break;
                case "arguments_regex": _args = values.Select(v => new Regex(v, RegexOptions.Compiled)).ToArray(); break;
                case "pod_regex": _pod = values.Select(v => new Regex(v, RegexOptions.Compiled)).ToArray(); break;
                case "labels": _labels = values; break;
                case "namespace": _namespaces = values.ToHashSet(); break;
                case "policy_names": _policies = values.ToHashSet(); break;
                case "pid": _pids = values.Select(int.Parse).ToHashSet(); break;
                default: throw new FormatException($"unsupported export filter field '{p.Name}'");
            }
        }
    }

    public bool Matches(AgentEvent e) =>
        (_types is null || _types.Contains(e.Type))
        && (_binary is null || _binary.Any(r => r.IsMatch(e.Process.Binary)))
        && (_parentBinary is null || e.Parent is { } pa && _parentBinary.Any(r => r.IsMatch(pa.Binary)))
        && (_args is null || _args.Any(r => r.IsMatch(e.Process.Arguments)))
        && (_pod is null) // no pod context yet: a pod regex matches nothing
        && (_labels is null) // ... and neither does a pod label selector
        && (_namespaces is null || _namespaces.Contains(""))
        && (_policies is null || e is PolicyMatchEvent m && _policies.Contains(m.PolicyName))
        && (_pids is null || _pids.Contains(e.Process.Pid));

    /// <summary>One JSON object per line (Tetragon's --export-allowlist / --export-denylist format).</summary>
    public static List<ExportFilter> ParseList(string? text)
    {
        var list = new List<ExportFilter>();
        foreach (var line in (text ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            try { list.Add(new ExportFilter(JsonDocument.Parse(line).RootElement)); }
            catch (JsonException e) { throw new FormatException($"export filter '{line}': {e.Message}"); }
        }
        return list;
    }
}

/// <summary>The allow list, deny list and rate limit in front of an exporter.</summary>
public sealed class FilteringExporter(IReadOnlyList<IEventExporter> inner, List<ExportFilter> allow, List<ExportFilter> deny, int ratePerMinute, TimeProvider clock, Action<long>? rateLimitInfo = null) : IEventExporter
{
    private long _windowStart = clock.GetTimestamp(), _inWindow, _droppedInWindow;
    private readonly IEventExporter[] _inner = [.. inner];
    public long Filtered { get; private set; }
    public long RateLimited { get; private set; }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Export(AgentEvent e)
    {
        if ((allow.Count > 0 && !allow.Any(f => f.Matches(e))) || (deny.Count > 0 && deny.Any(f => f.Matches(e))))
        {
            Filtered++;
            return;
        }
        if (ratePerMinute > 0)
        {
            long now = clock.GetTimestamp();
            if (now - _windowStart >= 60 * clock.TimestampFrequency)
            {
                if (_droppedInWindow > 0) rateLimitInfo?.Invoke(_droppedInWindow);
                (_windowStart, _inWindow, _droppedInWindow) = (now, 0, 0);
            }
            if (++_inWindow > ratePerMinute)
            {
                _droppedInWindow++;
                RateLimited++;
                return;
            }
        }
        for (int i = 0; i < _inner.Length; i++) // an array: foreach over the interface allocates an enumerator per event
            _inner[i].Export(e);
    }

    public void Flush()
    {
        foreach (var x in _inner) x.Flush();
    }

    public bool FlushPending => _inner.Any(x => x.FlushPending);

    public ValueTask DisposeAsync() => ValueTask.CompletedTask; // the exporters are owned (and disposed) by whoever made them
}

/// <summary>Tetragon's redaction filters: regexes whose capture groups are replaced by "*****" in process
/// arguments, optionally only for matching binaries. Applied once, when a process is first rendered.</summary>
public sealed class Redactor
{
    private readonly List<(Regex? Binary, Regex[] Redact)> _rules = [];

    public static Redactor Parse(string? text)
    {
        var r = new Redactor();
        foreach (var line in (text ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var j = JsonDocument.Parse(line).RootElement;
            Regex? binary = j.TryGetProperty("match", out var m) && m.TryGetProperty("binary_regex", out var b)
                ? new Regex(string.Join('|', b.EnumerateArray().Select(x => $"(?:{x.GetString()})")), RegexOptions.Compiled) : null;
            var redact = j.GetProperty("redact").EnumerateArray().Select(x => new Regex(x.GetString()!, RegexOptions.Compiled)).ToArray();
            if (redact.Any(x => x.GetGroupNumbers().Length < 2))
                throw new FormatException($"redaction filter '{line}': each regex needs a capture group (the part that is redacted)");
            r._rules.Add((binary, redact));
        }
        return r;
    }

    public bool IsEmpty => _rules.Count == 0;

    public string Redact(string binary, string arguments)
    {
        foreach (var (bin, regexes) in _rules)
        {
            if (bin is not null && !bin.IsMatch(binary)) continue;
            foreach (var re in regexes)
                arguments = re.Replace(arguments, m =>
                {
                    var s = m.Value;
                    for (int g = m.Groups.Count - 1; g >= 1; g--)
                        if (m.Groups[g].Success)
                            s = s[..(m.Groups[g].Index - m.Index)] + "*****" + s[(m.Groups[g].Index - m.Index + m.Groups[g].Length)..];
                    return s;
                });
        }
        return arguments;
    }
}

/// <summary>Tetragon's field filters: `{"fields":"process.binary,process.pid","action":"INCLUDE"|"EXCLUDE",
/// "event_set":[...]}` per line; paths are relative to the event body. Applied to the rendered event, so they
/// cost a parse per event, and only when configured.</summary>
public sealed class FieldFilter
{
    private readonly HashSet<string>? _types;
    private readonly string[][] _paths;
    private readonly bool _include;

    private FieldFilter(JsonElement j)
    {
        _paths = j.GetProperty("fields").GetString()!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(p => p.Split('.')).ToArray();
        _include = j.TryGetProperty("action", out var a) && a.GetString()!.Equals("INCLUDE", StringComparison.OrdinalIgnoreCase);
        if (j.TryGetProperty("event_set", out var set))
            _types = set.EnumerateArray().Select(v => v.GetString()!.ToLowerInvariant()).ToHashSet();
    }

    public static List<FieldFilter> ParseList(string? text) =>
        (text ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => new FieldFilter(JsonDocument.Parse(l).RootElement)).ToList();

    /// <summary>Applies the filters to one rendered event line.</summary>
    public static string Apply(List<FieldFilter> filters, string line)
    {
        var root = System.Text.Json.Nodes.JsonNode.Parse(line)!.AsObject();
        var (type, body) = root.Where(p => p.Value is System.Text.Json.Nodes.JsonObject).Select(p => (p.Key, p.Value!.AsObject())).First();
        foreach (var f in filters.Where(f => f._types is null || f._types.Contains(type)))
        {
            if (f._include)
            {
                var kept = new System.Text.Json.Nodes.JsonObject();
                foreach (var path in f._paths)
                    Copy(body, kept, path);
                root[type] = body = kept;
            }
            else
                foreach (var path in f._paths)
                    Remove(body, path);
        }
        return root.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }

    private static void Copy(System.Text.Json.Nodes.JsonObject from, System.Text.Json.Nodes.JsonObject to, string[] path)
    {
        if (!from.TryGetPropertyValue(path[0], out var v) || v is null) return;
        if (path.Length == 1) { to[path[0]] = v.DeepClone(); return; }
        if (v is not System.Text.Json.Nodes.JsonObject child) return;
        if (to[path[0]] is not System.Text.Json.Nodes.JsonObject target) to[path[0]] = target = new System.Text.Json.Nodes.JsonObject();
        Copy(child, target, path[1..]);
    }

    private static void Remove(System.Text.Json.Nodes.JsonObject from, string[] path)
    {
        if (path.Length == 1) { from.Remove(path[0]); return; }
        if (from[path[0]] is System.Text.Json.Nodes.JsonObject child) Remove(child, path[1..]);
    }
}
