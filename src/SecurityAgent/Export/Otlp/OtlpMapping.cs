using SecurityAgent.Export.Otlp.Proto;

namespace SecurityAgent.Export.Otlp;

/// <summary>An event as an OTLP LogRecord. The body is the event's JSON line; event_name is namespaced
/// (securityagent.process_exec); the attributes follow the OpenTelemetry semantic conventions: process.* (pid,
/// executable, command line and arguments, working directory, parent), user.id, container.* and k8s.* (pod,
/// namespace, container, workload) so a collector maps the record to its pod, file.path and destination.* for what a
/// policy event is about, and securityagent.* for the policy's decision. Severity: INFO for process events, WARN for
/// a policy hit, ERROR for a hit the agent enforced. Pure.</summary>
public static class OtlpMapping
{
    public const string EventNamespace = "securityagent.";

    public static LogRecord ToLogRecord(AgentEvent e, string json, BootClock clock)
    {
        var (severity, text) = e switch
        {
            PolicyMatchEvent { Enforced: true } => (SeverityNumber.Error, "ERROR"),
            PolicyMatchEvent => (SeverityNumber.Warn, "WARN"),
            _ => (SeverityNumber.Info, "INFO"),
        };
        var r = new LogRecord
        {
            TimeUnixNano = (ulong)clock.ToUnixNs(e.Ktime),
            ObservedTimeUnixNano = (ulong)(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000),
            SeverityNumber = severity,
            SeverityText = text,
            EventName = EventNamespace + e.Type,
            Body = new AnyValue { StringValue = json },
        };
        var a = r.Attributes;
        var p = e.Process;
        a.Add(Kv("securityagent.event.type", e.Type));
        a.Add(Kv("securityagent.exec_id", p.ExecId));
        a.Add(Int("process.pid", p.Pid));
        a.Add(Kv("process.executable.path", p.Binary));
        a.Add(Kv("process.executable.name", Path.GetFileName(p.Binary)));
        var args = new ArrayValue();
        args.Values.AddRange(p.Args.Select(x => new AnyValue { StringValue = x }));
        a.Add(new KeyValue { Key = "process.command_args", Value = new AnyValue { ArrayValue = args } });
        a.Add(Kv("process.command_line", p.Arguments.Length > 0 ? $"{p.Binary} {p.Arguments}" : p.Binary));
        a.Add(Kv("process.working_directory", p.Cwd));
        a.Add(Kv("user.id", p.Creds.Uid.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        a.Add(Int("process.real_user.id", p.Creds.Uid));
        if (e.Parent is { } parent)
        {
            a.Add(Int("process.parent_pid", parent.Pid));
            a.Add(Kv("securityagent.parent.executable.path", parent.Binary));
        }
        if (p.Container is { } c)
            a.Add(Kv("container.id", c.ContainerId));
        if (p.Pod is { } pod)
        {
            a.Add(Kv("k8s.namespace.name", pod.Namespace));
            a.Add(Kv("k8s.pod.name", pod.Name));
            a.Add(Kv("k8s.pod.uid", pod.Uid));
            if (pod.Container is { } pc)
            {
                a.Add(Kv("k8s.container.name", pc.Name));
                a.Add(Kv("container.image.name", pc.Image));
                if (p.Container is null) a.Add(Kv("container.id", pc.Id));
            }
            if (WorkloadAttribute(pod.WorkloadKind) is { } workload && pod.Workload.Length > 0)
                a.Add(Kv(workload, pod.Workload));
            foreach (var (k, v) in pod.Labels)
                a.Add(Kv("k8s.pod.label." + k, v));
        }
        if (e is PolicyMatchEvent m)
        {
            a.Add(Kv("securityagent.policy", m.PolicyName));
            a.Add(Kv("securityagent.hook", m.Hook.Name));
            a.Add(Kv("securityagent.action", m.Action));
            a.Add(Kv("securityagent.policy_mode", m.Enforce ? "enforce" : "monitor"));
            a.Add(new KeyValue { Key = "securityagent.enforced", Value = new AnyValue { BoolValue = m.Enforced } });
            if (m.Hook.Message is { } message) a.Add(Kv("securityagent.message", message));
            if (m.Args.Select(x => x.Value).OfType<PathArg>().FirstOrDefault() is { } path)
                a.Add(Kv("file.path", path.Path));
            else if (m.Args.Select(x => x.Value).OfType<string>().FirstOrDefault(s => s.StartsWith('/')) is { } stringPath)
                a.Add(Kv("file.path", stringPath));
            if (m.Args.Select(x => x.Value).OfType<SockAddr>().FirstOrDefault() is { } dest)
            {
                a.Add(Kv("destination.address", dest.Addr));
                a.Add(Int("destination.port", dest.Port));
                a.Add(Kv("network.type", dest.Family == "AF_INET6" ? "ipv6" : "ipv4"));
            }
        }
        return r;
    }

    /// <summary>k8s.deployment.name etc. for Tetragon's workload_kind.</summary>
    private static string? WorkloadAttribute(string kind) => kind switch
    {
        "Deployment" => "k8s.deployment.name",
        "DaemonSet" => "k8s.daemonset.name",
        "StatefulSet" => "k8s.statefulset.name",
        "ReplicaSet" => "k8s.replicaset.name",
        "Job" => "k8s.job.name",
        "CronJob" => "k8s.cronjob.name",
        _ => null,
    };

    public static KeyValue Kv(string key, string value) => new() { Key = key, Value = new AnyValue { StringValue = value } };

    private static KeyValue Int(string key, long value) => new() { Key = key, Value = new AnyValue { IntValue = value } };

    public static ExportLogsServiceRequest Request(IEnumerable<LogRecord> records, IEnumerable<KeyValuePair<string, string>> resourceAttributes)
    {
        var resource = new Resource();
        resource.Attributes.AddRange(resourceAttributes.Select(kv => Kv(kv.Key, kv.Value)));
        var scope = new ScopeLogs { Scope = new InstrumentationScope { Name = "securityagent", Version = Hosting.BuildInfo.Version } };
        scope.LogRecords.AddRange(records);
        var rl = new ResourceLogs { Resource = resource };
        rl.ScopeLogs.Add(scope);
        var req = new ExportLogsServiceRequest();
        req.ResourceLogs.Add(rl);
        return req;
    }
}
