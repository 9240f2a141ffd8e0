using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text.Json;
using SecurityAgent.Events;
using SecurityAgent.Policies;
using SecurityAgent.Processes;

namespace SecurityAgent.Export;

/// <summary>Writes events in Tetragon's JSON export format: one GetEventsResponse per line as protojson renders it
/// (proto field names, 64-bit integers as strings, enums by name, bytes as base64, RFC 3339 timestamps with
/// nanoseconds), so SIEM parsers written for Tetragon work unchanged. With <see cref="EventFormat"/>'s defaults every
/// line parses strictly with Tetragon's .proto files; docs/events.md lists each field.</summary>
public sealed class JsonEventFormatter
{
    private static readonly JsonWriterOptions Options = new() { SkipValidation = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private readonly System.Buffers.ArrayBufferWriter<byte> _lastBytes = new(4096);
    private readonly Utf8JsonWriter _writer = new(new System.Buffers.ArrayBufferWriter<byte>(), Options);
    private readonly string _nodeName;
    private readonly BootClock _clock;
    private readonly EventFormat _format;
    private readonly ProcessRenderer _processes;
    private readonly Func<ProcessInfo, ProcessInfo?>? _parentOf;
    private AgentEvent? _last;
    private readonly TimeText _time;
    private readonly JsonEncodedText _nodeNameText;
    private readonly Dictionary<string, JsonEncodedText> _encoded = new(ReferenceEqualityComparer.Instance);

    // Property names of every event, escaped and encoded once instead of transcoded per event.
    private static readonly JsonEncodedText ProcessName = JsonEncodedText.Encode("process"), ParentName = JsonEncodedText.Encode("parent"),
        ArgsName = JsonEncodedText.Encode("args"),
        ActionName = JsonEncodedText.Encode("action"), PolicyName = JsonEncodedText.Encode("policy_name"), LabelName = JsonEncodedText.Encode("label"),
        FunctionName = JsonEncodedText.Encode("function_name"), SubsysName = JsonEncodedText.Encode("subsys"), EventName = JsonEncodedText.Encode("event"),
        MessageName = JsonEncodedText.Encode("message"), PathName = JsonEncodedText.Encode("path");

    /// <param name="parentOf">The process cache's parent lookup, for ancestors.</param>
    public JsonEventFormatter(string nodeName, BootClock clock, EventFormat? format = null, Redactor? redactor = null, Func<ProcessInfo, ProcessInfo?>? parentOf = null)
        : this(nodeName, clock, format ?? EventFormat.Default, new ProcessRenderer(clock, format ?? EventFormat.Default, redactor), parentOf)
    {
    }

    private JsonEventFormatter(string nodeName, BootClock clock, EventFormat format, ProcessRenderer processes, Func<ProcessInfo, ProcessInfo?>? parentOf)
    {
        (_nodeName, _clock, _format, _processes, _parentOf) = (nodeName, clock, format, processes, parentOf);
        _time = new TimeText(clock);
        _nodeNameText = JsonEncodedText.Encode(nodeName, Options.Encoder);
        byte[] head = [.. "\"node_name\":\""u8, .. _nodeNameText.EncodedUtf8Bytes, .. "\",\"time\":\""u8];
        _tail = new byte[head.Length + TimeText.Longest + 1];
        head.CopyTo(_tail, 0);
        _tailTimeAt = head.Length;
        _plainTop = string.IsNullOrEmpty(format.ClusterName) && format.NodeLabels.Count == 0 && !format.Extensions;
    }

    // The top level's node name and time, the time's place left to fill per event.
    private readonly byte[] _tail;
    private readonly int _tailTimeAt;

    // Whether the top level is only node_name and time (no cluster name or node labels): the direct path's condition.
    private readonly bool _plainTop;

    /// <summary>"node_name":"...","time":"..." with the time of <paramref name="ktime"/>; valid until the next call.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private ReadOnlySpan<byte> Tail(ulong ktime)
    {
        var time = _time.Format(ktime);
        var tail = _tail.AsSpan();
        time.CopyTo(tail[_tailTimeAt..]);
        tail[_tailTimeAt + time.Length] = (byte)'"';
        return tail[..(_tailTimeAt + time.Length + 1)];
    }

    /// <summary>A long-lived string an event refers to (its type, policy, hook, action, argument kinds and labels),
    /// escaped and encoded once; keyed by reference, so only strings held by the plans and constants belong here. Each
    /// call site keeps its last string in a <see cref="Slot"/>: a run of events of one policy does no lookup.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private JsonEncodedText Encoded(ref Slot slot, string s)
    {
        if (ReferenceEquals(slot.Key, s)) return slot.Text;
        if (!_encoded.TryGetValue(s, out var text))
        {
            if (_encoded.Count >= 4096) _encoded.Clear(); // plans replaced over a long run: start over rather than grow
            _encoded[s] = text = JsonEncodedText.Encode(s, Options.Encoder);
        }
        slot = new Slot(s, text);
        return text;
    }

    private record struct Slot(string? Key, JsonEncodedText Text);

    private Slot _type, _hook, _action, _policy, _message, _kind, _label;

    /// <summary>The options this formatter renders with (which opt-in context the events carry).</summary>
    public EventFormat Format => _format;

    /// <summary>The process's environment as its events show it (after the redaction filters).</summary>
    public IEnumerable<EnvVar> Environment(ProcessInfo p) => _processes.Environment(p);

    /// <summary>The same events with the extension object on (for the agent's own views of the stream), sharing this
    /// formatter's rendered processes. Pipeline thread only, as this formatter.</summary>
    public JsonEventFormatter WithExtensions() =>
        _format.Extensions ? this : new JsonEventFormatter(_nodeName, _clock, _format with { Extensions = true }, _processes, _parentOf);

    /// <summary>The event as one JSON object (no newline). Every exporter of the pipeline asks for the same event in
    /// turn, so the last rendering is kept: one event is rendered once, whatever the number of exporters.
    /// Valid until the next call; pipeline thread only.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public ReadOnlySpan<byte> Render(AgentEvent e)
    {
        if (ReferenceEquals(e, _last))
            return _lastIn is null ? _lastBytes.WrittenSpan : _lastIn.WrittenSpan[_lastStart.._lastEnd];
        _lastBytes.ResetWrittenCount();
        if (e is not PolicyMatchEvent m || !TryWritePlain(m, _lastBytes))
        {
            _writer.Reset(_lastBytes);
            Write(_writer, e);
            _writer.Flush();
        }
        (_last, _lastIn) = (e, null);
        return _lastBytes.WrittenSpan;
    }

    /// <summary>The event rendered through the JSON writer alone (as every event was before the plain policy events'
    /// direct path): for the tests that hold the two to the same bytes.</summary>
    internal byte[] RenderWithWriter(AgentEvent e)
    {
        var bytes = new ArrayBufferWriter<byte>();
        _writer.Reset(bytes);
        Write(_writer, e);
        _writer.Flush();
        _last = null;
        return bytes.WrittenSpan.ToArray();
    }

    // Where the last event was rendered by RenderInto: in an exporter's batch, until the exporter releases it.
    private ArrayBufferWriter<byte>? _lastIn;
    private int _lastStart, _lastEnd;

    /// <summary>Appends the event as one JSON object to an exporter's batch, rendered there directly (not rendered
    /// aside and copied), unless another exporter had it rendered already. Until <see cref="Released"/>, a
    /// <see cref="Render"/> of the same event reads it there. Pipeline thread only.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void RenderInto(AgentEvent e, ArrayBufferWriter<byte> into)
    {
        if (ReferenceEquals(e, _last))
        {
            into.Write(Render(e));
            return;
        }
        int start = into.WrittenCount;
        if (e is not PolicyMatchEvent m || !TryWritePlain(m, into))
        {
            _writer.Reset(into);
            Write(_writer, e);
            _writer.Flush();
        }
        (_last, _lastIn, _lastStart, _lastEnd) = (e, into, start, into.WrittenCount);
    }

    /// <summary>A policy event with nothing but Tetragon's usual fields (no return, stacks, tags, message, extension or
    /// ancestors; a kprobe or LSM hook) whose arguments are kept strings and ints, written as bytes straight into
    /// <paramref name="into"/>, in one span taken at once: its fixed parts are the encoded names this formatter keeps,
    /// the processes their rendered JSON, string arguments their kept UTF-8, so it costs copies instead of the JSON
    /// writer's work per property. The same bytes as <see cref="Write"/> (JsonFormatTests holds them to it). False, with
    /// nothing written, for any other event.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool TryWritePlain(PolicyMatchEvent m, ArrayBufferWriter<byte> into)
    {
        var hook = m.Hook;
        if (!_plainTop || hook.Site is not null || hook.Kind == HookKind.Tracepoint || m.Return is not null || m.ReturnAction is not null
            || hook.Message is not null || hook.Tags.Count > 0 || m.ImaHash is not null || m.KernelStackTrace is not null
            || m.UserStackTrace is not null || (_format.Ancestors & AncestorsOf(m)) != 0)
            return false;
        var args = m.Args;
        int need = 160 + _tail.Length;
        for (int i = 0; i < args.Count; i++)
        {
            var a = args[i];
            if (a.Value is string s && a.Kept is { } kept && ReferenceEquals(kept.Text, s))
                need += kept.Json.EncodedUtf8Bytes.Length;
            else if (a.Value is not int)
                return false;
            need += 32 + Encoded(ref _kind, a.Kind).EncodedUtf8Bytes.Length + (a.Label is null ? 0 : Encoded(ref _label, a.Label).EncodedUtf8Bytes.Length);
        }
        var type = Encoded(ref _type, m.Type).EncodedUtf8Bytes;
        var function = Encoded(ref _hook, hook.Name).EncodedUtf8Bytes;
        var action = Encoded(ref _action, m.Action).EncodedUtf8Bytes;
        var policy = Encoded(ref _policy, m.PolicyName).EncodedUtf8Bytes;
        var process = _processes.JsonOf(m.Process);
        ReadOnlySpan<byte> parent = m.Parent is null ? default : _processes.JsonOf(m.Parent);
        need += type.Length + function.Length + action.Length + policy.Length + process.Length + parent.Length;

        var d = into.GetSpan(need);
        int at = 0;
        Put(d, ref at, "{\""u8);
        Put(d, ref at, type);
        Put(d, ref at, "\":{\"process\":"u8);
        at += _processes.CopyThread(d[at..], m.Process, process, m.Tid);
        if (m.Parent is not null)
        {
            Put(d, ref at, ",\"parent\":"u8);
            Put(d, ref at, parent);
        }
        Put(d, ref at, ",\"function_name\":\""u8);
        Put(d, ref at, function);
        Put(d, ref at, "\",\"args\":["u8);
        for (int i = 0; i < args.Count; i++)
        {
            var a = args[i];
            Put(d, ref at, i == 0 ? "{\""u8 : ",{\""u8);
            Put(d, ref at, Encoded(ref _kind, a.Kind).EncodedUtf8Bytes);
            if (a.Value is int n)
            {
                Put(d, ref at, "\":"u8);
                n.TryFormat(d[at..], out int digits, provider: System.Globalization.CultureInfo.InvariantCulture);
                at += digits;
            }
            else
            {
                Put(d, ref at, "\":\""u8);
                Put(d, ref at, a.Kept!.Json.EncodedUtf8Bytes);
                Put(d, ref at, "\""u8);
            }
            if (a.Label is not null)
            {
                Put(d, ref at, ",\"label\":\""u8);
                Put(d, ref at, Encoded(ref _label, a.Label).EncodedUtf8Bytes);
                Put(d, ref at, "\""u8);
            }
            Put(d, ref at, "}"u8);
        }
        Put(d, ref at, "],\"action\":\""u8);
        Put(d, ref at, action);
        Put(d, ref at, "\",\"policy_name\":\""u8);
        Put(d, ref at, policy);
        Put(d, ref at, "\"},"u8);
        Put(d, ref at, Tail(m.Ktime));
        Put(d, ref at, "}"u8);
        into.Advance(at);
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put(Span<byte> d, ref int at, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(d[at..]);
        at += bytes.Length;
    }

    /// <summary>The batch given to <see cref="RenderInto"/> is about to be reused: what was rendered there is gone.</summary>
    public void Released(ArrayBufferWriter<byte> batch)
    {
        if (!ReferenceEquals(batch, _lastIn)) return;
        (_last, _lastIn) = (null, null);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Write(Utf8JsonWriter w, AgentEvent e)
    {
        w.WriteStartObject();
        w.WriteStartObject(Encoded(ref _type, e.Type));
        if (e is ProcessExecEvent)
            _processes.WriteExec(w, e.Process);
        else if (e is PolicyMatchEvent { Tid: not 0 } m)
            _processes.WriteThread(w, ProcessName, e.Process, m.Tid);
        else
            _processes.Write(w, ProcessName, e.Process);
        if (e.Parent is not null)
            _processes.Write(w, ParentName, e.Parent);
        WriteBody(w, e);
        if ((_format.Ancestors & AncestorsOf(e)) != 0)
            WriteAncestors(w, e.Parent);
        if (_format.Extensions)
            WriteExtension(w, e);
        w.WriteEndObject();
        WriteTopLevel(w, e.Ktime);
        w.WriteEndObject();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void WriteTopLevel(Utf8JsonWriter w, ulong ktime)
    {
        // "node_name":"...","time":"..." as one raw piece after the fixed part: two properties of every event written
        // without the writer's per-property work (the writers here skip validation, so a raw piece may hold a
        // property; the writer puts the comma before it and goes on after it as after a value).
        if (w.Options.SkipValidation)
            w.WriteRawValue(Tail(ktime), skipInputValidation: true);
        else
        {
            // A validating writer (a caller's own) refuses a property written as a raw value.
            w.WriteString("node_name"u8, _nodeNameText);
            w.WriteString("time"u8, _time.Format(ktime));
        }
        if (!string.IsNullOrEmpty(_format.ClusterName))
            w.WriteString("cluster_name", _format.ClusterName);
        if (_format.NodeLabels.Count > 0)
        {
            w.WriteStartObject("node_labels");
            foreach (var (k, v) in _format.NodeLabels) w.WriteString(k, v);
            w.WriteEndObject();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static AncestorEvents AncestorsOf(AgentEvent e) => e switch
    {
        ProcessExecEvent or ProcessExitEvent => AncestorEvents.Base,
        ProcessLoaderEvent => AncestorEvents.Loader,
        PolicyMatchEvent { Hook.Kind: HookKind.Kprobe } => AncestorEvents.Kprobe,
        PolicyMatchEvent { Hook.Kind: HookKind.LsmHook } => AncestorEvents.Lsm,
        PolicyMatchEvent { Hook.Kind: HookKind.Uprobe } => AncestorEvents.Uprobe,
        PolicyMatchEvent { Hook.Kind: HookKind.Usdt } => AncestorEvents.Usdt,
        _ => AncestorEvents.Tracepoint,
    };

    /// <summary>Tetragon's ancestors: the parent's parent and up, as far as the cache knows, ending with pid 1. Each is
    /// the process's rendered JSON (no allocation unless a process renders for the first time).</summary>
    private void WriteAncestors(Utf8JsonWriter w, ProcessInfo? parent)
    {
        if (parent is null || _parentOf is null || parent.Pid <= 1 || _parentOf(parent) is null) return;
        w.WriteStartArray("ancestors");
        var p = parent;
        for (int i = 0; i < 128 && p.Pid > 1 && _parentOf(p) is { } a; i++, p = a)
            _processes.WriteValue(w, a);
        w.WriteEndArray();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void WriteBody(Utf8JsonWriter w, AgentEvent e)
    {
        switch (e)
        {
            case ProcessExitEvent x:
                if (x.Signal != 0)
                    w.WriteString("signal", LinuxNames.Signal(x.Signal));
                w.WriteNumber("status", (uint)x.Status);
                w.WriteString("time", _time.Format(x.Ktime));
                break;
            case PolicyMatchEvent m:
                WritePolicyMatch(w, m);
                break;
            case ProcessLoaderEvent l:
                w.WriteString("path", l.Path);
                w.WriteBase64String("buildid", l.BuildId);
                break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void WritePolicyMatch(Utf8JsonWriter w, PolicyMatchEvent m)
    {
        if (m.Hook.Site is { } site)
        {
            WriteUserProbe(w, m, site);
            return;
        }
        switch (m.Hook.Kind)
        {
            case HookKind.Tracepoint:
                var slash = m.Hook.Name.IndexOf('/');
                w.WriteString(SubsysName, m.Hook.Name.AsSpan(0, slash));
                w.WriteString(EventName, m.Hook.Name.AsSpan(slash + 1));
                break;
            default:
                w.WriteString(FunctionName, Encoded(ref _hook, m.Hook.Name));
                break;
        }
        w.WriteStartArray(ArgsName);
        for (int i = 0; i < m.Args.Count; i++) // indexed: foreach over an interface boxes its enumerator
            WriteArg(w, m.Args[i]);
        w.WriteEndArray();
        if (m.Return is not null)
        {
            w.WritePropertyName("return");
            WriteArg(w, m.Return);
        }
        w.WriteString(ActionName, Encoded(ref _action, m.Action));
        bool tetragonStacks = m.Hook.Kind == HookKind.Kprobe;
        if (tetragonStacks) WriteStack(w, "kernel_stack_trace", m.KernelStackTrace);
        w.WriteString(PolicyName, Encoded(ref _policy, m.PolicyName));
        if (m.ReturnAction is not null) w.WriteString("return_action", m.ReturnAction);
        if (m.Hook.Message is not null) w.WriteString(MessageName, Encoded(ref _message, m.Hook.Message));
        if (m.Hook.Tags.Count > 0)
        {
            w.WriteStartArray("tags");
            for (int i = 0; i < m.Hook.Tags.Count; i++) w.WriteStringValue(m.Hook.Tags[i]);
            w.WriteEndArray();
        }
        if (tetragonStacks) WriteStack(w, "user_stack_trace", m.UserStackTrace);
        if (m.ImaHash is not null) w.WriteString("ima_hash", m.ImaHash);
    }

    /// <summary>Tetragon's StackTraceEntry list (uint64 as strings; address only when exposed). Tetragon defines these
    /// on process_kprobe only: other hooks' stacks ride in the extension object (a strict parser rejects them elsewhere).</summary>
    private static void WriteStack(Utf8JsonWriter w, string name, IReadOnlyList<Stacks.StackFrame>? frames)
    {
        if (frames is null) return;
        w.WriteStartArray(name);
        for (int i = 0; i < frames.Count; i++)
        {
            var f = frames[i];
            w.WriteStartObject();
            if (f.Address != 0) w.WriteString("address", f.Address.ToString(System.Globalization.CultureInfo.InvariantCulture));
            if (f.Offset != 0) w.WriteString("offset", f.Offset.ToString(System.Globalization.CultureInfo.InvariantCulture));
            if (f.Symbol is not null) w.WriteString("symbol", f.Symbol);
            if (f.Module is not null) w.WriteString("module", f.Module);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    /// <summary>ProcessUprobe (path, symbol or offset) and ProcessUsdt (path, provider, name), fields in Tetragon's order.</summary>
    private void WriteUserProbe(Utf8JsonWriter w, PolicyMatchEvent m, UserProbeSite site)
    {
        w.WriteString("path", site.Binary);
        if (site.IsUsdt)
        {
            w.WriteString("provider", site.Provider);
            w.WriteString("name", site.Probe);
        }
        else if (site.Symbol is not null)
            w.WriteString("symbol", site.Symbol);
        w.WriteString("policy_name", m.PolicyName);
        if (m.Hook.Message is not null) w.WriteString("message", m.Hook.Message);
        w.WriteStartArray("args");
        for (int i = 0; i < m.Args.Count; i++)
            WriteArg(w, m.Args[i]);
        w.WriteEndArray();
        if (m.Hook.Tags.Count > 0)
        {
            w.WriteStartArray("tags");
            for (int i = 0; i < m.Hook.Tags.Count; i++) w.WriteStringValue(m.Hook.Tags[i]);
            w.WriteEndArray();
        }
        if (!site.IsUsdt && site.Symbol is null)
            w.WriteString("offset", site.Offset.ToString(System.Globalization.CultureInfo.InvariantCulture)); // uint64: a string in protojson
        if (site.RefCtrOffset != 0)
            w.WriteString("ref_ctr_offset", site.RefCtrOffset.ToString(System.Globalization.CultureInfo.InvariantCulture));
        w.WriteString("action", m.Action);
    }

    /// <summary>One KprobeArgument: {"&lt;kind&gt;": value, "label": ...}.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void WriteArg(Utf8JsonWriter w, RenderedArg a)
    {
        Span<byte> digits = stackalloc byte[20];
        w.WriteStartObject();
        var kind = Encoded(ref _kind, a.Kind);
        switch (a.Value)
        {
            case string s when a.Kept is { } kept && ReferenceEquals(kept.Text, s): w.WriteString(kind, kept.Json); break;
            case string s: w.WriteString(kind, s); break;
            case int i: w.WriteNumber(kind, i); break;
            case uint u: w.WriteNumber(kind, u); break;
            case long l: l.TryFormat(digits, out int n); w.WriteString(kind, digits[..n]); break;
            case ulong u: u.TryFormat(digits, out int m); w.WriteString(kind, digits[..m]); break;
            case byte[] bytes: w.WriteBase64String(kind, bytes); break;
            case TruncatedBytes tb:
                w.WriteStartObject(a.Kind);
                w.WriteBase64String("bytes_arg", tb.Bytes);
                tb.OrigSize.TryFormat(digits, out int sz);
                w.WriteString("orig_size", digits[..sz]);
                w.WriteEndObject();
                break;
            case PathArg pa:
                WritePathArg(w, a.Kind, pa);
                break;
            case SockAddr sa:
                w.WriteStartObject(a.Kind);
                w.WriteString("family", sa.Family);
                w.WriteString("addr", sa.Addr);
                w.WriteNumber("port", sa.Port);
                w.WriteEndObject();
                break;
            case UnixSockAddr un:
                w.WriteStartObject(a.Kind);
                w.WriteString("family", un.Family);
                w.WriteString("path", un.Path);
                w.WriteEndObject();
                break;
            case SyscallId id:
                w.WriteStartObject(a.Kind);
                w.WriteNumber("id", id.Id);
                w.WriteString("abi", id.Abi);
                w.WriteEndObject();
                break;
            case ObjectArg o:
                w.WritePropertyName(a.Kind);
                WriteObject(w, o);
                break;
        }
        if (a.Label is not null) w.WriteString(LabelName, Encoded(ref _label, a.Label));
        w.WriteEndObject();
    }

    /// <summary>KprobeFile / KprobePath / KprobeLinuxBinprm: path, and flags and permission where the kernel read the
    /// inode (protojson leaves out the empty ones; Tetragon leaves mount empty too).</summary>
    private static void WritePathArg(Utf8JsonWriter w, string kind, PathArg pa)
    {
        w.WriteStartObject(kind);
        w.WriteString("path", pa.Path);
        if (pa.Flags.Length > 0) w.WriteString("flags", pa.Flags);
        if (pa.Permission.Length > 0) w.WriteString("permission", pa.Permission);
        w.WriteEndObject();
    }

    /// <summary>A kernel object's argument message (KernelObjectArgs): 64-bit integers as strings, as protojson writes them.</summary>
    private static void WriteObject(Utf8JsonWriter w, ObjectArg o)
    {
        w.WriteStartObject();
        foreach (var (name, value) in o.Fields)
        {
            switch (value)
            {
                case null: break;
                case string s: w.WriteString(name, s); break;
                case int i: w.WriteNumber(name, i); break;
                case uint u: w.WriteNumber(name, u); break;
                case ulong u: w.WriteString(name, u.ToString(System.Globalization.CultureInfo.InvariantCulture)); break;
                case bool b: w.WriteBoolean(name, b); break;
                case string[] list:
                    w.WriteStartArray(name);
                    foreach (var item in list) w.WriteStringValue(item);
                    w.WriteEndArray();
                    break;
                case ObjectArg nested:
                    w.WritePropertyName(name);
                    WriteObject(w, nested);
                    break;
            }
        }
        w.WriteEndObject();
    }

    /// <summary>The agent's fields beyond Tetragon's, in one object (EventFormat.Extensions).</summary>
    private static void WriteExtension(Utf8JsonWriter w, AgentEvent e)
    {
        var m = e as PolicyMatchEvent;
        bool envCut = e.Process.Flags.HasFlag(Events.Wire.ExecFlags.EnvTruncated) && e.Process.Environment.Count > 0;
        if (m is null && e.Process.Unattributed is null && e.Parent?.Unattributed is null && !envCut) return;
        w.WriteStartObject(Extension);
        if (m is not null)
        {
            w.WriteString("policy_mode", m.Enforce ? "enforce" : "monitor");
            w.WriteBoolean("enforced", m.Enforced);
            if (m.SafetyRefused) w.WriteBoolean("safety_refused", true);
            w.WriteString("decided_by", m.DecidedBy);
            if (m.MatchedAtExit) w.WriteBoolean("matched_at_exit", true);
            if (m.IoUring) w.WriteBoolean("io_uring", true);
            WriteArgStrings(w, m.Args, "passed_args", static a => a.Passed);
            WriteArgStrings(w, m.Args, "host_args", static a => a.HostPath);
            if (m.Hook.Kind != HookKind.Kprobe)
            {
                WriteStack(w, "kernel_stack_trace", m.KernelStackTrace);
                WriteStack(w, "user_stack_trace", m.UserStackTrace);
            }
        }
        if (e.Process.Unattributed is { } why) w.WriteString("process_unattributed", why);
        if (e.Parent?.Unattributed is { } parentWhy) w.WriteString("parent_unattributed", parentWhy);
        if (envCut) w.WriteBoolean("environment_truncated", true);
        w.WriteEndObject();
    }

    /// <summary>Per file-name argument, another spelling of it: passed_args, the string the process passed where the
    /// kernel resolved it to another path (string_arg holds the resolved one); host_args, the path the host sees where
    /// the process's root is another (a chroot, a container): [{"arg": position in args, "string_arg": ...}].</summary>
    private static void WriteArgStrings(Utf8JsonWriter w, IReadOnlyList<RenderedArg> args, string name, Func<RenderedArg, string?> pick)
    {
        bool any = false;
        for (int i = 0; i < args.Count; i++)
        {
            if (pick(args[i]) is not { } s) continue;
            if (!any) w.WriteStartArray(name);
            any = true;
            w.WriteStartObject();
            w.WriteNumber("arg", i);
            w.WriteString("string_arg", s);
            w.WriteEndObject();
        }
        if (any) w.WriteEndArray();
    }

    /// <summary>The key of the extension object in an event body.</summary>
    public const string Extension = "securityagent";

    /// <summary>The live stream's notice to one client that events were dropped because it read too slowly (shaped as
    /// Tetragon's rate_limit_info).</summary>
    public void WriteStreamDropInfo(Utf8JsonWriter w, long dropped, ulong ktime) =>
        WriteDropNotice(w, "stream_drop_info"u8, dropped, "this client read the stream too slowly"u8, ktime);

    /// <summary>Tetragon's notice that the export rate limit dropped events.</summary>
    public void WriteRateLimitInfo(Utf8JsonWriter w, long dropped, ulong ktime) =>
        WriteDropNotice(w, "rate_limit_info"u8, dropped, default, ktime);

    private void WriteDropNotice(Utf8JsonWriter w, ReadOnlySpan<byte> kind, long dropped, ReadOnlySpan<byte> reason, ulong ktime)
    {
        Span<byte> digits = stackalloc byte[20];
        dropped.TryFormat(digits, out int n);
        w.WriteStartObject();
        w.WriteStartObject(kind);
        w.WriteString("number_of_dropped_process_events"u8, digits[..n]);
        if (!reason.IsEmpty)
            w.WriteString("reason"u8, reason);
        w.WriteEndObject();
        WriteTopLevel(w, ktime);
        w.WriteEndObject();
    }
}

/// <summary>Tetragon's Process object. A process's JSON is rendered once and reused for every event of the process, of
/// its children (as "parent") and descendants (as an ancestor), as long as what it was rendered from holds:
/// everything of a process is fixed at creation except its pod, which the pod watch may deliver later. So the rendering
/// is kept with the pod it saw, and redone once a pod arrives. Formatters that differ only in event-level options share
/// one renderer.</summary>
internal sealed class ProcessRenderer(BootClock clock, EventFormat format, Redactor? redactor)
{
    private readonly bool _credentials = format.ProcessCredentials;
    private readonly bool _namespaces = format.ProcessNamespaces;
    private readonly NamespaceInums _host = format.ProcessNamespaces ? format.HostNamespaces ?? ProcFsScanner.ReadHostNamespaces() : default;
    private readonly ArrayBufferWriter<byte> _execBytes = new(1024);
    private readonly UserNames? _users = format.PasswdFile is { } passwd ? new UserNames(passwd) : null;
    private static readonly JsonWriterOptions Options = new() { SkipValidation = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private readonly System.Buffers.ArrayBufferWriter<byte> _bytes = new(1024);
    private readonly Utf8JsonWriter _writer = new(new System.Buffers.ArrayBufferWriter<byte>(), Options);
    private readonly TimeText _time = new(clock);
    private static readonly JsonEncodedText ProcessName = JsonEncodedText.Encode("process");

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Write(Utf8JsonWriter w, JsonEncodedText name, ProcessInfo p)
    {
        w.WritePropertyName(name);
        WriteValue(w, p);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void WriteValue(Utf8JsonWriter w, ProcessInfo p) => w.WriteRawValue(Json(p), skipInputValidation: true);

    /// <summary>The process's rendered JSON (rendered now if it has not been or is stale).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public byte[] JsonOf(ProcessInfo p) => Json(p);

    /// <summary>Copies <paramref name="json"/> (<see cref="JsonOf"/> of <paramref name="p"/>) as thread <paramref name="tid"/>
    /// (0: not known) saw the process into <paramref name="into"/>, as <see cref="WriteThread"/> writes it; returns the
    /// bytes written (at most the JSON's length and 11).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int CopyThread(Span<byte> into, ProcessInfo p, byte[] json, int tid)
    {
        var r = p.Rendered!;
        if (tid == 0 || tid == (p.Tid == 0 ? p.Pid : p.Tid) || r.TidLength == 0)
        {
            json.CopyTo(into);
            return json.Length;
        }
        json.AsSpan(0, r.TidAt).CopyTo(into);
        tid.TryFormat(into[r.TidAt..], out int n, provider: System.Globalization.CultureInfo.InvariantCulture);
        json.AsSpan(r.TidAt + r.TidLength).CopyTo(into[(r.TidAt + n)..]);
        return json.Length - r.TidLength + n;
    }

    private readonly ArrayBufferWriter<byte> _threadBytes = new(1024);

    /// <summary>The process as a thread of it saw it: Tetragon's tid is the calling thread's (a policy event); the rendered
    /// process with its tid's digits replaced (no rendering when the thread is the one rendered: the leader).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void WriteThread(Utf8JsonWriter w, JsonEncodedText name, ProcessInfo p, int tid)
    {
        var json = Json(p);
        var r = p.Rendered!;
        if (tid == (p.Tid == 0 ? p.Pid : p.Tid) || r.TidLength == 0)
        {
            Write(w, name, p);
            return;
        }
        Span<byte> digits = stackalloc byte[11];
        tid.TryFormat(digits, out int n, provider: System.Globalization.CultureInfo.InvariantCulture);
        _threadBytes.ResetWrittenCount();
        _threadBytes.Write(json.AsSpan(0, r.TidAt));
        _threadBytes.Write(digits[..n]);
        _threadBytes.Write(json.AsSpan(r.TidAt + r.TidLength));
        w.WritePropertyName(name);
        w.WriteRawValue(_threadBytes.WrittenSpan, skipInputValidation: true);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private byte[] Json(ProcessInfo p)
    {
        if (p.Rendered is not { } r || !ReferenceEquals(r.By, this) || !ReferenceEquals(r.Pod, p.Pod))
        {
            _bytes.ResetWrittenCount();
            _writer.Reset(_bytes);
            var (tidAt, tidLength) = WriteObject(_writer, p);
            _writer.Flush();
            p.Rendered = r = new RenderedProcess(this, p.Pod, _bytes.WrittenSpan.ToArray()) { TidAt = tidAt, TidLength = tidLength };
        }
        return r.Json;
    }

    /// <summary>The exec event's process: with --enable-process-cred and a privilege change or an unlinked binary, the
    /// rendered process plus binary_properties, which Tetragon puts on exec events only.</summary>
    public void WriteExec(Utf8JsonWriter w, ProcessInfo p)
    {
        if (!_credentials || p.BinaryProperties.IsEmpty)
        {
            Write(w, ProcessName, p);
            return;
        }
        var json = Json(p);
        _bytes.ResetWrittenCount();
        _writer.Reset(_bytes);
        _writer.WriteStartObject();
        WriteBinaryProperties(_writer, p.BinaryProperties);
        _writer.WriteEndObject();
        _writer.Flush();
        _execBytes.ResetWrittenCount();
        _execBytes.Write(json.AsSpan(0, json.Length - 1));
        _execBytes.Write(","u8);
        _execBytes.Write(_bytes.WrittenSpan[1..]);
        w.WritePropertyName(ProcessName);
        w.WriteRawValue(_execBytes.WrittenSpan, skipInputValidation: true);
    }

    private static void WriteBinaryProperties(Utf8JsonWriter w, Events.BinaryProperties b)
    {
        w.WriteStartObject("binary_properties");
        if (b.Setuid is { } uid) w.WriteNumber("setuid", uid);
        if (b.Setgid is { } gid) w.WriteNumber("setgid", gid);
        if (b.Changed != PrivilegesChanged.None)
        {
            w.WriteStartArray("privileges_changed");
            foreach (var name in PrivilegesChangedNames(b.Changed)) w.WriteStringValue(name);
            w.WriteEndArray();
        }
        if (b.Unlinked)
        {
            w.WriteStartObject("file");
            w.WriteStartObject("inode");
            w.WriteString("number", Utf8Number(b.Inode, stackalloc byte[20]));
            w.WriteNumber("links", b.Links);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }

    /// <summary>Tetragon's ProcessPrivilegesChanged names.</summary>
    internal static IEnumerable<string> PrivilegesChangedNames(PrivilegesChanged changed)
    {
        if (changed.HasFlag(PrivilegesChanged.FileCap)) yield return "PRIVILEGES_RAISED_EXEC_FILE_CAP";
        if (changed.HasFlag(PrivilegesChanged.Setuid)) yield return "PRIVILEGES_RAISED_EXEC_FILE_SETUID";
        if (changed.HasFlag(PrivilegesChanged.Setgid)) yield return "PRIVILEGES_RAISED_EXEC_FILE_SETGID";
    }

    private static ReadOnlySpan<byte> Utf8Number(ulong n, Span<byte> digits)
    {
        n.TryFormat(digits, out int written);
        return digits[..written];
    }

    /// <summary>Tetragon's Namespaces: each {inum, is_host}, protojson leaving out zero inums and false.</summary>
    private void WriteNamespaces(Utf8JsonWriter w, in NamespaceInums ns)
    {
        w.WriteStartObject("ns");
        for (int i = 0; i < (int)Events.Wire.Namespace.Count; i++)
        {
            w.WriteStartObject(NamespaceInums.Names[i]);
            if (ns[i] != 0)
            {
                w.WriteNumber("inum", ns[i]);
                if (ns[i] == _host[i]) w.WriteBoolean("is_host", true);
            }
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }

    /// <summary>Writes the process; returns where its tid's digits are in what the writer wrote.</summary>
    private (int TidAt, int TidLength) WriteObject(Utf8JsonWriter w, ProcessInfo p)
    {
        w.WriteStartObject();
        w.WriteString("exec_id", p.ExecId);
        w.WriteNumber("pid", p.Pid);
        w.WriteNumber("uid", p.Creds.Uid);
        w.WriteString("cwd", p.Cwd);
        w.WriteString("binary", p.Binary);
        w.WriteString("arguments", redactor is { IsEmpty: false } ? redactor.Redact(p.Binary, p.Arguments) : p.Arguments);
        w.WriteString("flags", p.FlagsText);
        w.WriteString("start_time", _time.Format(p.StartTime));
        w.WriteNumber("auid", p.Auid);
        if (p.Pod is { } pod)
            WritePod(w, pod, p.Nspid);
        if (p.Container is { } c)
            w.WriteString("docker", c.ContainerId);
        if (p.ParentExecId is not null)
            w.WriteString("parent_exec_id", p.ParentExecId);
        if (_credentials && p.Caps is { } caps)
            WriteCaps(w, "cap", caps);
        if (_namespaces && !p.Namespaces.IsEmpty)
            WriteNamespaces(w, p.Namespaces);
        int tid = p.Tid == 0 ? p.Pid : p.Tid;
        w.WriteNumber("tid", tid);
        w.Flush();
        int tidLength = tid.ToString(System.Globalization.CultureInfo.InvariantCulture).Length, tidAt = (int)w.BytesCommitted - tidLength;
        if (_credentials)
            WriteCredentials(w, p);
        if (p.Container is null && p.Unattributed is null && _users?.Name(p.Creds.Uid) is { } user)
        {
            w.WriteStartObject("user");
            w.WriteString("name", user);
            w.WriteEndObject();
        }
        if (p.Environment.Count > 0)
            WriteEnvironment(w, p);
        w.WriteBoolean("in_init_tree", p.InInitTree);
        w.WriteEndObject();
        return (tidAt, tidLength);
    }

    /// <summary>Tetragon's environment_variables ({"Key", "Value"}, its proto's field names), after the redaction filters
    /// of the binary, which apply to each "KEY=value" as Tetragon's do.</summary>
    private void WriteEnvironment(Utf8JsonWriter w, ProcessInfo p)
    {
        w.WriteStartArray("environment_variables");
        foreach (var (key, value) in Environment(p))
        {
            w.WriteStartObject();
            if (key.Length > 0) w.WriteString("Key", key);
            if (value.Length > 0) w.WriteString("Value", value);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    public IEnumerable<EnvVar> Environment(ProcessInfo p)
    {
        if (redactor is not { IsEmpty: false })
            return p.Environment;
        return p.Environment.Select(v =>
        {
            var redacted = redactor.Redact(p.Binary, v.Key + "=" + v.Value);
            int eq = redacted.IndexOf('=');
            return eq >= 0 ? new EnvVar(redacted[..eq], redacted[(eq + 1)..]) : new EnvVar("invalid", redacted);
        });
    }

    /// <summary>Tetragon's process_credentials.</summary>
    private void WriteCredentials(Utf8JsonWriter w, ProcessInfo p)
    {
        var c = p.Creds;
        w.WriteStartObject("process_credentials");
        w.WriteNumber("uid", c.Uid);
        w.WriteNumber("gid", c.Gid);
        w.WriteNumber("euid", c.Euid);
        w.WriteNumber("egid", c.Egid);
        w.WriteNumber("suid", c.Suid);
        w.WriteNumber("sgid", c.Sgid);
        w.WriteNumber("fsuid", c.Fsuid);
        w.WriteNumber("fsgid", c.Fsgid);
        if (p.Securebits != 0)
        {
            w.WriteStartArray("securebits");
            for (int i = 0; i < LinuxNames.SecureBits.Length; i++)
                if ((p.Securebits & (1u << i)) != 0) w.WriteStringValue(LinuxNames.SecureBits[i]);
            w.WriteEndArray();
        }
        if (p.Caps is { } caps)
            WriteCaps(w, "caps", caps);
        if (p.UserNs is { Inum: not 0 } userNs)
        {
            w.WriteStartObject("user_ns");
            w.WriteNumber("level", userNs.Level);
            w.WriteNumber("uid", userNs.Uid);
            w.WriteNumber("gid", userNs.Gid);
            w.WriteStartObject("ns");
            w.WriteNumber("inum", userNs.Inum);
            if (_host[(int)Events.Wire.Namespace.User] is var hostUser && (hostUser == 0 ? userNs.Level == 0 : hostUser == userNs.Inum))
                w.WriteBoolean("is_host", true);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }

    private static void WriteCaps(Utf8JsonWriter w, string name, Events.Capabilities caps)
    {
        w.WriteStartObject(name);
        WriteCapSet(w, "permitted", caps.Permitted);
        WriteCapSet(w, "effective", caps.Effective);
        WriteCapSet(w, "inheritable", caps.Inheritable);
        w.WriteEndObject();
    }

    /// <summary>Tetragon's pod object (labels as pod_labels, annotations as pod_annotations).</summary>
    private static void WritePod(Utf8JsonWriter w, Containers.PodInfo pod, uint nspid)
    {
        w.WriteStartObject("pod");
        w.WriteString("namespace", pod.Namespace);
        w.WriteString("name", pod.Name);
        w.WriteString("uid", pod.Uid);
        if (pod.Container is { } c)
        {
            w.WriteStartObject("container");
            w.WriteString("id", c.Id);
            w.WriteString("name", c.Name);
            w.WriteStartObject("image");
            w.WriteString("id", c.ImageId);
            w.WriteString("name", c.Image);
            w.WriteEndObject();
            if (c.StartedAt is not null)
                w.WriteString("start_time", c.StartedAt);
            if (nspid != 0)
                w.WriteNumber("pid", nspid);
            if (c.Privileged)
            {
                w.WriteStartObject("security_context");
                w.WriteBoolean("privileged", true);
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        w.WriteStartObject("pod_labels");
        foreach (var (k, v) in pod.Labels) w.WriteString(k, v);
        w.WriteEndObject();
        w.WriteString("workload", pod.Workload);
        w.WriteString("workload_kind", pod.WorkloadKind);
        if (pod.Annotations.Count > 0)
        {
            w.WriteStartObject("pod_annotations");
            foreach (var (k, v) in pod.Annotations) w.WriteString(k, v);
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }

    /// <summary>A repeated CapabilitiesType: enum names, the empty set left out (protojson). A bit newer than the
    /// enum is left out too: a strict parser refuses a name the enum does not have.</summary>
    private static void WriteCapSet(Utf8JsonWriter w, string name, ulong mask)
    {
        mask &= LinuxNames.CapabilityCount >= 64 ? ulong.MaxValue : (1UL << LinuxNames.CapabilityCount) - 1;
        if (mask == 0) return;
        w.WriteStartArray(name);
        for (int i = 0; i < LinuxNames.CapabilityCount; i++)
            if ((mask & (1UL << i)) != 0)
                w.WriteStringValue(LinuxNames.Capability(i));
        w.WriteEndArray();
    }
}

/// <summary>A process's JSON, with the renderer and the pod it was rendered with.</summary>
public sealed record RenderedProcess(object By, Containers.PodInfo? Pod, byte[] Json)
{
    /// <summary>Where the digits of its tid are in <see cref="Json"/> (a policy event puts its thread's there).</summary>
    public int TidAt { get; init; }

    public int TidLength { get; init; }
}

/// <summary>Timestamps as Tetragon writes them (protojson: RFC 3339, UTC, with 9, 6, 3 or no fractional digits, the
/// fewest that hold the nanoseconds exactly) without a string per event: the text up to the second is kept while events
/// stay within the same second.</summary>
internal sealed class TimeText(BootClock clock)
{
    /// <summary>The longest text: yyyy-MM-ddTHH:mm:ss.nnnnnnnnnZ.</summary>
    public const int Longest = 30;

    private readonly byte[] _text = new byte[Longest];
    private long _second = long.MinValue;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public ReadOnlySpan<byte> Format(ulong boottimeNs)
    {
        long secs = Math.DivRem(clock.ToUnixNs(boottimeNs), 1_000_000_000L, out long nanos);
        if (nanos < 0) { secs--; nanos += 1_000_000_000L; }
        if (secs != _second)
        {
            DateTime.UnixEpoch.AddSeconds(secs).TryFormat(_text, out _, "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'", System.Globalization.CultureInfo.InvariantCulture);
            _second = secs;
        }
        if (nanos == 0)
        {
            _text[19] = (byte)'Z';
            return _text.AsSpan(0, 20);
        }
        int digits = nanos % 1_000_000 == 0 ? 3 : nanos % 1_000 == 0 ? 6 : 9;
        for (int skip = 9 - digits; skip > 0; skip -= 3) nanos /= 1000;
        for (int i = 19 + digits; i >= 20; i--, nanos /= 10)
            _text[i] = (byte)('0' + nanos % 10);
        _text[19] = (byte)'.';
        _text[20 + digits] = (byte)'Z';
        return _text.AsSpan(0, 21 + digits);
    }
}
