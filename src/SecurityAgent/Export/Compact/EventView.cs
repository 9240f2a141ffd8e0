using System.Text;
using System.Text.Json;

namespace SecurityAgent.Export.Compact;

/// <summary>One argument of a policy event: its kind (string_arg, file_arg, sockaddr_arg, ...), its value as text
/// (a path, addr:port, a number) and the policy's label.</summary>
public sealed record ArgView(string Kind, string Text, string? Label);

/// <summary>What a person (and the `events` filters) look at in an exported event, read from its JSON line (Tetragon's
/// export format, docs/events.md) with a forward-only reader: type, time, node, process and pod, the exit status, and
/// for policy events the hook, arguments, policy, action and decision. Unknown fields are skipped.</summary>
public sealed class EventView
{
    public string Type { get; private set; } = "";
    public string? Time { get; private set; }
    public string? Node { get; private set; }
    public string Binary { get; private set; } = "";
    public string Arguments { get; private set; } = "";
    public long Pid { get; private set; }
    public string? Namespace { get; private set; }
    public string? Pod { get; private set; }
    public string? Workload { get; private set; }
    public long? Status { get; private set; }
    public string? Signal { get; private set; }
    /// <summary>function_name (kprobes, LSM hooks) or subsys/event (tracepoints).</summary>
    public string? Hook { get; private set; }
    public string? Policy { get; private set; }
    public string? Action { get; private set; }
    public string? Mode { get; private set; }
    public bool Enforced { get; private set; }
    public bool SafetyRefused { get; private set; }
    public string? Message { get; private set; }
    public long? Dropped { get; private set; }
    public List<ArgView> Args { get; } = [];

    /// <summary>The view of one event line; null when it is not a JSON object with an event.</summary>
    public static EventView? Parse(ReadOnlySpan<byte> utf8Json)
    {
        var v = new EventView();
        var r = new Utf8JsonReader(utf8Json, new JsonReaderOptions { MaxDepth = 64 });
        try
        {
            if (!r.Read() || r.TokenType != JsonTokenType.StartObject) return null;
            string? subsys = null, tpEvent = null;
            while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
            {
                var name = r.GetString()!;
                r.Read();
                switch (name)
                {
                    case "node_name": v.Node = Str(ref r); break;
                    case "time": v.Time = Str(ref r); break;
                    default:
                        if (r.TokenType != JsonTokenType.StartObject || v.Type.Length > 0) { r.Skip(); break; }
                        v.Type = name;
                        ReadBody(ref r, v, ref subsys, ref tpEvent);
                        break;
                }
            }
            if (v.Hook is null && subsys is not null && tpEvent is not null) v.Hook = subsys + "/" + tpEvent;
            return v.Type.Length > 0 ? v : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static void ReadBody(ref Utf8JsonReader r, EventView v, ref string? subsys, ref string? tpEvent)
    {
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            var name = r.GetString()!;
            r.Read();
            switch (name)
            {
                case "process" when r.TokenType == JsonTokenType.StartObject: ReadProcess(ref r, v); break;
                case "args" when r.TokenType == JsonTokenType.StartArray: ReadArgs(ref r, v); break;
                case "function_name": v.Hook = Str(ref r); break;
                case "subsys": subsys = Str(ref r); break;
                case "event": tpEvent = Str(ref r); break;
                case "policy_name": v.Policy = Str(ref r); break;
                case "action": v.Action = Str(ref r); break;
                case "policy_mode": v.Mode = Str(ref r); break;
                case "message": v.Message = Str(ref r); break;
                case "enforced": v.Enforced = r.TokenType == JsonTokenType.True; break;
                case "safety_refused": v.SafetyRefused = r.TokenType == JsonTokenType.True; break;
                case "status": v.Status = Num(ref r); break;
                case "signal": v.Signal = Str(ref r); break;
                case "number_of_dropped_process_events": v.Dropped = Num(ref r); break;
                default: r.Skip(); break;
            }
        }
    }

    private static void ReadProcess(ref Utf8JsonReader r, EventView v)
    {
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            var name = r.GetString()!;
            r.Read();
            switch (name)
            {
                case "binary": v.Binary = Str(ref r) ?? ""; break;
                case "arguments": v.Arguments = Str(ref r) ?? ""; break;
                case "pid": v.Pid = Num(ref r) ?? 0; break;
                case "pod" when r.TokenType == JsonTokenType.StartObject:
                    while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
                    {
                        var field = r.GetString();
                        r.Read();
                        switch (field)
                        {
                            case "namespace": v.Namespace = Str(ref r); break;
                            case "name": v.Pod = Str(ref r); break;
                            case "workload": v.Workload = Str(ref r); break;
                            default: r.Skip(); break;
                        }
                    }
                    break;
                default: r.Skip(); break;
            }
        }
    }

    /// <summary>[{"string_arg":"/etc/shadow","label":"path"}, {"sockaddr_arg":{"family":"AF_INET","addr":"1.1.1.1","port":443}}, ...]</summary>
    private static void ReadArgs(ref Utf8JsonReader r, EventView v)
    {
        while (r.Read() && r.TokenType == JsonTokenType.StartObject)
        {
            string? kind = null, text = null, label = null;
            while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
            {
                var name = r.GetString()!;
                r.Read();
                if (name == "label") { label = Str(ref r); continue; }
                kind = name;
                if (r.TokenType != JsonTokenType.StartObject) { text = Scalar(ref r); continue; }
                string? path = null, addr = null, port = null, family = null;
                while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
                {
                    var field = r.GetString();
                    r.Read();
                    switch (field)
                    {
                        case "path": path = Str(ref r); break;
                        case "addr": addr = Str(ref r); break;
                        case "port": port = Scalar(ref r); break;
                        case "family": family = Str(ref r); break;
                        default: r.Skip(); break;
                    }
                }
                text = path ?? (addr is null ? null : family == "AF_INET6" ? $"[{addr}]:{port}" : $"{addr}:{port}");
            }
            if (kind is not null) v.Args.Add(new ArgView(kind, text ?? "", label));
        }
    }

    private static string? Str(ref Utf8JsonReader r)
    {
        if (r.TokenType == JsonTokenType.String) return r.GetString();
        r.Skip();
        return null;
    }

    private static long? Num(ref Utf8JsonReader r) => r.TokenType == JsonTokenType.Number && r.TryGetInt64(out var n) ? n : null;

    private static string Scalar(ref Utf8JsonReader r) => r.TokenType switch
    {
        JsonTokenType.String => r.GetString()!,
        JsonTokenType.Number or JsonTokenType.True or JsonTokenType.False => Encoding.UTF8.GetString(r.ValueSpan),
        _ => Skipped(ref r),
    };

    private static string Skipped(ref Utf8JsonReader r)
    {
        r.Skip();
        return "";
    }
}
