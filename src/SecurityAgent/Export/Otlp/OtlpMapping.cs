using SecurityAgent.Export.Otlp.Proto;

namespace SecurityAgent.Export.Otlp;

/// <summary>An event as an OTLP LogRecord. The body is the event's JSON line; event_name is namespaced
/// (securityagent.process_exec); the attributes follow the OpenTelemetry semantic conventions: process.* (pid,
/// executable, command line and arguments, working directory, parent), user.id, container.* and k8s.* (pod,
/// namespace, container, workload) so a collector maps the record to its pod, file.path and destination.* for what a
/// policy event is about (for process_loader: file.path and securityagent.build_id, hex), and securityagent.* for the policy's decision. Severity: INFO for process events, WARN for
/// a policy hit, ERROR for a hit the agent enforced. The agent's own fields (the JSON's --export-extensions) are always
/// here as securityagent.* attributes. Pure.</summary>
public static class OtlpMapping
{
    public const string EventNamespace = "securityagent.";

    /// <param name="formatter">The JSON formatter of the body: its opt-in options decide which of the process's context
    /// (namespaces, credentials and binary properties, environment) the attributes carry, as the body does.</param>
    public static LogRecord ToLogRecord(AgentEvent e, string json, BootClock clock, JsonEventFormatter? formatter = null)
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
        if (p.Unattributed is { } why) a.Add(Kv("securityagent.process_unattributed", why));
        a.Add(Int("process.pid", p.Pid));
        a.Add(Kv("process.executable.path", p.Binary));
        a.Add(Kv("process.executable.name", Path.GetFileName(p.Binary)));
        a.Add(Strings("process.command_args", p.Args));
        a.Add(Kv("process.command_line", p.Arguments.Length > 0 ? $"{p.Binary} {p.Arguments}" : p.Binary));
        a.Add(Kv("process.working_directory", p.Cwd));
        a.Add(Kv("user.id", p.Creds.Uid.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        a.Add(Int("process.real_user.id", p.Creds.Uid));
        a.Add(Int("process.user.id", p.Creds.Euid));
        a.Add(Int("process.saved_user.id", p.Creds.Suid));
        a.Add(Int("process.real_group.id", p.Creds.Gid));
        a.Add(Int("process.group.id", p.Creds.Egid));
        a.Add(Int("process.saved_group.id", p.Creds.Sgid));
        if (e.Parent is { } parent)
        {
            a.Add(Int("process.parent_pid", parent.Pid));
            a.Add(Kv("securityagent.parent.executable.path", parent.Binary));
        }
        if (formatter is not null)
            AddOptInContext(a, e, formatter);
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
            foreach (var (k, v) in pod.Annotations)
                a.Add(Kv("k8s.pod.annotation." + k, v));
        }
        if (e is PolicyMatchEvent m)
        {
            a.Add(Int("thread.id", m.Tid != 0 ? m.Tid : p.Tid != 0 ? p.Tid : p.Pid));
            a.Add(Kv("securityagent.policy", m.PolicyName));
            a.Add(Kv("securityagent.hook", m.Hook.Name));
            a.Add(Kv("securityagent.action", m.Action));
            a.Add(Kv("securityagent.policy_mode", m.Enforce ? "enforce" : "monitor"));
            a.Add(new KeyValue { Key = "securityagent.enforced", Value = new AnyValue { BoolValue = m.Enforced } });
            a.Add(Kv("securityagent.decided_by", m.DecidedBy));
            if (m.SafetyRefused) a.Add(new KeyValue { Key = "securityagent.safety_refused", Value = new AnyValue { BoolValue = true } });
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
            AddStacks(a, m);
        }
        else if (e is ProcessLoaderEvent l)
        {
            a.Add(Kv("file.path", l.Path));
            a.Add(Kv("securityagent.build_id", Convert.ToHexStringLower(l.BuildId)));
        }
        return r;
    }

    /// <summary>kernelStackTrace / userStackTrace: each frame as "symbol+0xoffset" (user frames: "... (module)") in
    /// securityagent.kernel_stack_trace / securityagent.user_stack_trace, and both, kernel first, as the convention's
    /// code.stacktrace text.</summary>
    private static void AddStacks(Google.Protobuf.Collections.RepeatedField<KeyValue> a, PolicyMatchEvent m)
    {
        if (m.KernelStackTrace is null && m.UserStackTrace is null) return;
        static string Frame(Stacks.StackFrame f) =>
            (f.Symbol ?? "?") + "+0x" + f.Offset.ToString("x", System.Globalization.CultureInfo.InvariantCulture) + (f.Module is null ? "" : " (" + f.Module + ")");
        var kernel = m.KernelStackTrace?.Select(Frame).ToList() ?? [];
        var user = m.UserStackTrace?.Select(Frame).ToList() ?? [];
        if (m.KernelStackTrace is not null) a.Add(Strings("securityagent.kernel_stack_trace", kernel));
        if (m.UserStackTrace is not null) a.Add(Strings("securityagent.user_stack_trace", user));
        a.Add(Kv("code.stacktrace", string.Join('\n', kernel.Concat(user))));
    }

    /// <summary>The context the JSON carries with opt-in flags: process.vpid (the pid in the process's pid namespace, Tetragon's
    /// container pid) always where known; process.environment_variable.&lt;key&gt; (after redaction) with
    /// --enable-process-environment-variables; capabilities, secure bits and the exec's binary properties with
    /// --enable-process-cred; the namespaces' inode numbers with --enable-process-ns. The semantic conventions name the
    /// first two; the others have no convention and are securityagent.process.*.</summary>
    private static void AddOptInContext(Google.Protobuf.Collections.RepeatedField<KeyValue> a, AgentEvent e, JsonEventFormatter formatter)
    {
        var p = e.Process;
        var format = formatter.Format;
        if (p.Nspid != 0) a.Add(Int("process.vpid", p.Nspid));
        foreach (var (key, value) in formatter.Environment(p))
            a.Add(Kv("process.environment_variable." + key, value));
        if (format.ProcessNamespaces && !p.Namespaces.IsEmpty)
            for (int i = 0; i < (int)Events.Wire.Namespace.Count; i++)
                if (p.Namespaces[i] != 0) a.Add(Int("securityagent.process.ns." + Events.NamespaceInums.Names[i], p.Namespaces[i]));
        if (!format.ProcessCredentials) return;
        if (p.Caps is { } caps)
        {
            a.Add(Strings("securityagent.process.cap.effective", CapNames(caps.Effective)));
            a.Add(Strings("securityagent.process.cap.permitted", CapNames(caps.Permitted)));
        }
        if (p.Securebits != 0)
            a.Add(Strings("securityagent.process.securebits", Enumerable.Range(0, LinuxNames.SecureBits.Length).Where(i => (p.Securebits & (1u << i)) != 0).Select(i => LinuxNames.SecureBits[i])));
        if (e is ProcessExecEvent && !p.BinaryProperties.IsEmpty)
        {
            var b = p.BinaryProperties;
            if (b.Setuid is { } setuid) a.Add(Int("securityagent.process.binary_properties.setuid", setuid));
            if (b.Setgid is { } setgid) a.Add(Int("securityagent.process.binary_properties.setgid", setgid));
            if (b.Changed != Events.PrivilegesChanged.None)
                a.Add(Strings("securityagent.process.binary_properties.privileges_changed", ProcessRenderer.PrivilegesChangedNames(b.Changed)));
            if (b.Unlinked) a.Add(Int("securityagent.process.binary_properties.file.inode", (long)b.Inode));
        }
    }

    private static IEnumerable<string> CapNames(ulong mask) =>
        Enumerable.Range(0, Math.Min(64, LinuxNames.CapabilityCount)).Where(i => (mask & (1UL << i)) != 0).Select(LinuxNames.Capability);

    private static KeyValue Strings(string key, IEnumerable<string> values)
    {
        var array = new ArrayValue();
        array.Values.AddRange(values.Select(v => new AnyValue { StringValue = v }));
        return new KeyValue { Key = key, Value = new AnyValue { ArrayValue = array } };
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
