using System.Text.Json;
using SecurityAgent.Processes;

namespace SecurityAgent.Export;

/// <summary>Writes events in Tetragon's JSON export format (one object per line, the event type as the
/// top-level key, then node_name and time), so SIEM parsers written for Tetragon work unchanged.
/// docs/events.md and schemas/events.schema.json describe it.</summary>
public sealed class JsonEventFormatter(string nodeName, BootClock clock)
{
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
        }
    }

    public void WriteProcess(Utf8JsonWriter w, string name, ProcessInfo p)
    {
        w.WriteStartObject(name);
        w.WriteString("exec_id", p.ExecId);
        w.WriteNumber("pid", p.Pid);
        w.WriteNumber("uid", p.Creds.Uid);
        w.WriteString("cwd", p.Cwd);
        w.WriteString("binary", p.Binary);
        w.WriteString("arguments", p.Arguments);
        w.WriteString("flags", p.FlagsText);
        w.WriteString("start_time", clock.Format(p.StartTime));
        w.WriteNumber("auid", p.Auid);
        if (p.ParentExecId is not null)
            w.WriteString("parent_exec_id", p.ParentExecId);
        w.WriteNumber("tid", p.Tid == 0 ? p.Pid : p.Tid);
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

    private static void WriteCapSet(Utf8JsonWriter w, string name, ulong mask)
    {
        if (mask == 0) return;
        w.WriteStartArray(name);
        foreach (var c in LinuxNames.CapabilitySet(mask))
            w.WriteStringValue(c);
        w.WriteEndArray();
    }
}
