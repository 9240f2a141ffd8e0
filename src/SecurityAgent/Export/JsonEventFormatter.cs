using System.Text.Json;
using SecurityAgent.Policies;
using SecurityAgent.Processes;

namespace SecurityAgent.Export;

/// <summary>Writes events in Tetragon's JSON export format (one object per line, the event type as the
/// top-level key, then node_name and time), so SIEM parsers written for Tetragon work unchanged.
/// docs/events.md and schemas/events.schema.json describe it.</summary>
public sealed class JsonEventFormatter(string nodeName, BootClock clock, bool includeCredentials = false, Redactor? redactor = null)
{
    private static readonly JsonWriterOptions Options = new() { SkipValidation = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private readonly System.Buffers.ArrayBufferWriter<byte> _lastBytes = new(4096), _processBytes = new(1024);
    private readonly Utf8JsonWriter _writer = new(new System.Buffers.ArrayBufferWriter<byte>(), Options), _processWriter = new(new System.Buffers.ArrayBufferWriter<byte>(), Options);
    private AgentEvent? _last;
    private readonly TimeText _time = new(clock);

    /// <summary>The event as one JSON object (no newline). Every exporter of the pipeline asks for the same event in
    /// turn, so the last rendering is kept: one event is rendered once, whatever the number of exporters.
    /// Valid until the next call; pipeline thread only.</summary>
    public ReadOnlySpan<byte> Render(AgentEvent e)
    {
        if (!ReferenceEquals(e, _last))
        {
            _lastBytes.ResetWrittenCount();
            _writer.Reset(_lastBytes);
            Write(_writer, e);
            _writer.Flush();
            _last = e;
        }
        return _lastBytes.WrittenSpan;
    }

    public void Write(Utf8JsonWriter w, AgentEvent e)
    {
        w.WriteStartObject();
        w.WriteStartObject(e.Type);
        WriteProcess(w, "process", e.Process);
        if (e.Parent is not null)
            WriteProcess(w, "parent", e.Parent);
        WriteBody(w, e);
        w.WriteEndObject();
        w.WriteString("node_name", nodeName);
        w.WriteString("time", _time.Format(e.Ktime));
        w.WriteEndObject();
    }

    private void WriteBody(Utf8JsonWriter w, AgentEvent e)
    {
        switch (e)
        {
            case ProcessExitEvent x:
                w.WriteNumber("status", x.Status);
                if (x.Signal != 0)
                    w.WriteString("signal", LinuxNames.Signal(x.Signal));
                w.WriteString("time", _time.Format(x.Ktime));
                break;
            case PolicyMatchEvent m:
                WritePolicyMatch(w, m);
                break;
        }
    }

    private static void WritePolicyMatch(Utf8JsonWriter w, PolicyMatchEvent m)
    {
        switch (m.Hook.Kind)
        {
            case HookKind.Tracepoint:
                var slash = m.Hook.Name.IndexOf('/');
                w.WriteString("subsys", m.Hook.Name[..slash]);
                w.WriteString("event", m.Hook.Name[(slash + 1)..]);
                break;
            case HookKind.Kprobe:
                w.WriteString("function_name", m.Hook.Name);
                break;
            default:
                w.WriteString("function_name", m.Hook.Name);
                break;
        }
        w.WriteStartArray("args");
        foreach (var a in m.Args)
        {
            w.WriteStartObject();
            switch (a.Value)
            {
                case string s: w.WriteString(a.Kind, s); break;
                case long l: w.WriteNumber(a.Kind, l); break;
                case ulong u: w.WriteNumber(a.Kind, u); break;
                case PathArg pa:
                    w.WriteStartObject(a.Kind);
                    w.WriteString("path", pa.Path);
                    w.WriteEndObject();
                    break;
                case SockAddr sa:
                    w.WriteStartObject(a.Kind);
                    w.WriteString("family", sa.Family);
                    w.WriteString("addr", sa.Addr);
                    w.WriteNumber("port", sa.Port);
                    w.WriteEndObject();
                    break;
            }
            if (a.Passed is not null) w.WriteString("passed_string_arg", a.Passed);
            if (a.Label is not null) w.WriteString("label", a.Label);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteString("action", m.Action);
        w.WriteString("policy_name", m.PolicyName);
        if (m.Hook.Message is not null) w.WriteString("message", m.Hook.Message);
        if (m.Hook.Tags.Count > 0)
        {
            w.WriteStartArray("tags");
            foreach (var t in m.Hook.Tags) w.WriteStringValue(t);
            w.WriteEndArray();
        }
        w.WriteString("policy_mode", m.Enforce ? "enforce" : "monitor");
        w.WriteBoolean("enforced", m.Enforced);
        if (m.SafetyRefused) w.WriteBoolean("safety_refused", true);
        w.WriteString("decided_by", m.DecidedBy);
    }

    /// <summary>Tetragon's notice that the export rate limit dropped events.</summary>
    public void WriteRateLimitInfo(Utf8JsonWriter w, long dropped, ulong ktime)
    {
        w.WriteStartObject();
        w.WriteStartObject("rate_limit_info");
        w.WriteNumber("number_of_dropped_process_events", dropped);
        w.WriteEndObject();
        w.WriteString("node_name", nodeName);
        w.WriteString("time", clock.Format(ktime));
        w.WriteEndObject();
    }

    /// <summary>A process's JSON is rendered once and reused for every event of the process and of its children (as
    /// "parent"), as long as what it was rendered from holds: everything of a process is fixed at creation except its
    /// pod, which the pod watch may deliver later. So the rendering is kept with the pod it saw, and redone once a pod
    /// arrives.</summary>
    public void WriteProcess(Utf8JsonWriter w, string name, ProcessInfo p)
    {
        w.WritePropertyName(name);
        if (p.Rendered is not { } r || !ReferenceEquals(r.By, this) || !ReferenceEquals(r.Pod, p.Pod))
        {
            _processBytes.ResetWrittenCount();
            _processWriter.Reset(_processBytes);
            WriteProcessObject(_processWriter, p);
            _processWriter.Flush();
            p.Rendered = r = new RenderedProcess(this, p.Pod, _processBytes.WrittenSpan.ToArray());
        }
        w.WriteRawValue(r.Json, skipInputValidation: true);
    }

    private void WriteProcessObject(Utf8JsonWriter w, ProcessInfo p)
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
        if (p.ParentExecId is not null)
            w.WriteString("parent_exec_id", p.ParentExecId);
        w.WriteNumber("tid", p.Tid == 0 ? p.Pid : p.Tid);
        if (p.Container is { } c)
            w.WriteString("docker", c.ContainerId);
        if (p.Pod is { } pod)
            WritePod(w, pod);
        if (p.Unattributed is { } why)
            w.WriteString("unattributed", why);
        if (!includeCredentials)
        {
            w.WriteEndObject();
            return;
        }
        if (p.Caps is { } caps)
        {
            w.WriteStartObject("cap");
            WriteCapSet(w, "permitted", caps.Permitted);
            WriteCapSet(w, "effective", caps.Effective);
            WriteCapSet(w, "inheritable", caps.Inheritable);
            w.WriteEndObject();
        }
        w.WriteStartObject("process_credentials");
        w.WriteNumber("uid", p.Creds.Uid);
        w.WriteNumber("gid", p.Creds.Gid);
        w.WriteNumber("euid", p.Creds.Euid);
        w.WriteNumber("egid", p.Creds.Egid);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>Tetragon's pod object (labels as pod_labels), plus the pod's uid.</summary>
    private static void WritePod(Utf8JsonWriter w, Containers.PodInfo pod)
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
            w.WriteEndObject();
        }
        w.WriteStartObject("pod_labels");
        foreach (var (k, v) in pod.Labels) w.WriteString(k, v);
        w.WriteEndObject();
        w.WriteString("workload", pod.Workload);
        w.WriteString("workload_kind", pod.WorkloadKind);
        w.WriteEndObject();
    }

    private static void WriteCapSet(Utf8JsonWriter w, string name, ulong mask)
    {
        if (mask == 0) return;
        w.WriteStartArray(name);
        foreach (var c in LinuxNames.CapabilitySet(mask))
            w.WriteStringValue(c);
        w.WriteEndArray();
    }
}

/// <summary>A process's JSON, with the formatter and the pod it was rendered with.</summary>
public sealed record RenderedProcess(object By, Containers.PodInfo? Pod, byte[] Json);

/// <summary>Timestamps as Tetragon writes them (RFC 3339, UTC, nanoseconds) without a string per event: the text up to
/// the second is kept while events stay within the same second.</summary>
internal sealed class TimeText(BootClock clock)
{
    private readonly byte[] _text = new byte[30]; // yyyy-MM-ddTHH:mm:ss.nnnnnnnnnZ
    private long _second = long.MinValue;

    public ReadOnlySpan<byte> Format(ulong boottimeNs)
    {
        long secs = Math.DivRem(clock.ToUnixNs(boottimeNs), 1_000_000_000L, out long nanos);
        if (nanos < 0) { secs--; nanos += 1_000_000_000L; }
        if (secs != _second)
        {
            DateTime.UnixEpoch.AddSeconds(secs).TryFormat(_text, out _, "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'", System.Globalization.CultureInfo.InvariantCulture);
            _text[29] = (byte)'Z';
            _second = secs;
        }
        for (int i = 28; i >= 20; i--, nanos /= 10)
            _text[i] = (byte)('0' + nanos % 10);
        return _text;
    }
}
