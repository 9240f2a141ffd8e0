using System.Text.Json;
using SecurityAgent.Policies;
using SecurityAgent.Processes;

namespace SecurityAgent.Export;

/// <summary>Writes events in Tetragon's JSON export format (one object per line, the event type as the
/// top-level key, then node_name and time), so SIEM parsers written for Tetragon work unchanged.
/// docs/events.md and schemas/events.schema.json describe it.</summary>
public sealed class JsonEventFormatter(string nodeName, BootClock clock, bool includeCredentials = false, Redactor? redactor = null)
{
    // A process's JSON never changes once it is in events: render it once, reuse it for every event of the
    // process and of its children (as "parent").
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<ProcessInfo, byte[]> _rendered = new();

    private readonly System.Buffers.ArrayBufferWriter<byte> _lastBytes = new(4096);
    private AgentEvent? _last;

    /// <summary>The event as one JSON object (no newline). Every exporter of the pipeline asks for the same event in
    /// turn, so the last rendering is kept: one event is rendered once, whatever the number of exporters.
    /// Valid until the next call; pipeline thread only.</summary>
    public ReadOnlySpan<byte> Render(AgentEvent e)
    {
        if (!ReferenceEquals(e, _last))
        {
            _lastBytes.ResetWrittenCount();
            using (var w = new Utf8JsonWriter(_lastBytes, new JsonWriterOptions { SkipValidation = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
                Write(w, e);
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
        w.WriteString("time", clock.Format(e.Ktime));
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
                w.WriteString("time", clock.Format(x.Ktime));
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

    public void WriteProcess(Utf8JsonWriter w, string name, ProcessInfo p)
    {
        w.WritePropertyName(name);
        w.WriteRawValue(_rendered.GetValue(p, Render), skipInputValidation: true);
    }

    private byte[] Render(ProcessInfo p)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            WriteProcessObject(w, p);
        return buffer.WrittenSpan.ToArray();
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
        w.WriteString("start_time", clock.Format(p.StartTime));
        w.WriteNumber("auid", p.Auid);
        if (p.ParentExecId is not null)
            w.WriteString("parent_exec_id", p.ParentExecId);
        w.WriteNumber("tid", p.Tid == 0 ? p.Pid : p.Tid);
        if (p.Container is { } c)
            w.WriteString("docker", c.ContainerId);
        if (p.Pod is { } pod)
            WritePod(w, pod);
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
