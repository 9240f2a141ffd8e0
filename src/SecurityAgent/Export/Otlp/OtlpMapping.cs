using System.Text;
using System.Text.Json;
using SecurityAgent.Export.Otlp.Proto;

namespace SecurityAgent.Export.Otlp;

/// <summary>An event as an OTLP LogRecord: the body is the event's JSON line, the attributes follow the
/// OpenTelemetry semantic conventions (process.*, container.*, k8s.*) plus securityagent.*. Pure.</summary>
public static class OtlpMapping
{
    public static LogRecord ToLogRecord(AgentEvent e, string json, BootClock clock)
    {
        var r = new LogRecord
        {
            TimeUnixNano = (ulong)clock.ToUnixNs(e.Ktime),
            ObservedTimeUnixNano = (ulong)(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000),
            SeverityNumber = e is PolicyMatchEvent { Enforced: true } ? SeverityNumber.Warn : SeverityNumber.Info,
            SeverityText = e is PolicyMatchEvent { Enforced: true } ? "WARN" : "INFO",
            EventName = e.Type,
            Body = new AnyValue { StringValue = json },
        };
        var a = r.Attributes;
        a.Add(Kv("securityagent.event.type", e.Type));
        a.Add(new KeyValue { Key = "process.pid", Value = new AnyValue { IntValue = e.Process.Pid } });
        a.Add(Kv("process.executable.path", e.Process.Binary));
        var args = new ArrayValue();
        args.Values.AddRange(e.Process.Args.Select(x => new AnyValue { StringValue = x }));
        a.Add(new KeyValue { Key = "process.command_args", Value = new AnyValue { ArrayValue = args } });
        if (e.Parent is { } p)
            a.Add(new KeyValue { Key = "process.parent_pid", Value = new AnyValue { IntValue = p.Pid } });
        a.Add(Kv("securityagent.exec_id", e.Process.ExecId));
        if (e is PolicyMatchEvent m)
        {
            a.Add(Kv("securityagent.policy", m.PolicyName));
            a.Add(Kv("securityagent.action", m.Action));
            a.Add(Kv("securityagent.policy_mode", m.Enforce ? "enforce" : "monitor"));
            a.Add(new KeyValue { Key = "securityagent.enforced", Value = new AnyValue { BoolValue = m.Enforced } });
        }
        // container.id, k8s.pod.name and k8s.namespace.name are added when the agent knows the process's pod.
        return r;
    }

    public static KeyValue Kv(string key, string value) => new() { Key = key, Value = new AnyValue { StringValue = value } };

    public static ExportLogsServiceRequest Request(IEnumerable<LogRecord> records, string nodeName)
    {
        var resource = new Resource();
        resource.Attributes.Add(Kv("service.name", "securityagent"));
        resource.Attributes.Add(Kv("host.name", nodeName));
        var scope = new ScopeLogs { Scope = new InstrumentationScope { Name = "securityagent", Version = typeof(OtlpMapping).Assembly.GetName().Version?.ToString() ?? "" } };
        scope.LogRecords.AddRange(records);
        var rl = new ResourceLogs { Resource = resource };
        rl.ScopeLogs.Add(scope);
        var req = new ExportLogsServiceRequest();
        req.ResourceLogs.Add(rl);
        return req;
    }
}
