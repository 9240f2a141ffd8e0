using SecurityAgent.Containers;
using SecurityAgent.Events;
using SecurityAgent.Export;
using SecurityAgent.Export.Otlp;
using SecurityAgent.Export.Otlp.Proto;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using SecurityAgent.Processes;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

/// <summary>What a collector receives for an event of a pod: the attributes it maps to the pod and the decision.</summary>
public class OtlpMappingTests
{
    private static readonly PodInfo Pod = new("shop", "cart-7d9f-x2", "uid-1", new Dictionary<string, string> { ["app"] = "cart" }, "cart", "Deployment",
        new ContainerInfo("containerd://abc123", "cart", "registry/cart:1.2", "sha256:ff"));

    private static ProcessInfo Proc() => new()
    {
        ExecId = "eA==", Pid = 42, StartTime = 1, Ktime = 1, Binary = "/usr/bin/curl", Args = ["curl", "-s", "https://x"], Cwd = "/srv",
        Creds = new Credentials(1000, 1000, 1000, 1000), Origin = ProcessOrigin.Exec, Container = new ContainerRef("abc123", "uid-1", "containerd"), Pod = Pod,
    };

    private static HookPlan Hook(HookKind kind, string name) => new(kind, Mechanism.Tracepoint, name, name, "", [], [], "outbound connection", []);

    private static Dictionary<string, AnyValue> Attributes(LogRecord r) => r.Attributes.ToDictionary(a => a.Key, a => a.Value);

    [Fact]
    public void The_opt_in_context_rides_as_attributes_only_with_its_flag_and_the_environment_redacted_as_in_the_body()
    {
        var nsProc = new NamespaceInums();
        nsProc[(int)Wire.Namespace.Pid] = 4026531836;
        var p = new ProcessInfo
        {
            ExecId = "eA==", Pid = 42, StartTime = 1, Ktime = 1, Binary = "/usr/bin/mysql", Args = ["mysql"], Cwd = "/", Creds = new Credentials(1000, 0, 1000, 1000),
            Origin = ProcessOrigin.Exec, Nspid = 1, Environment = [new("LANG", "C"), new("DB_PASSWORD", "hunter2")], Namespaces = nsProc,
            Caps = new Events.Capabilities(1UL << 21, 1UL << 21, 0), BinaryProperties = new BinaryProperties(0, null, PrivilegesChanged.Setuid, 0, 1),
        };
        var redactor = Redactor.Parse("""{"redact":["DB_PASSWORD=(.*)"]}""");
        var everything = new JsonEventFormatter("n", new BootClock(0), new EventFormat { ProcessCredentials = true, ProcessNamespaces = true }, redactor);
        var a = Attributes(OtlpMapping.ToLogRecord(new ProcessExecEvent(1, p, null), "{}", new BootClock(0), everything));
        Assert.Equal(1, a["process.vpid"].IntValue);
        Assert.Equal("C", a["process.environment_variable.LANG"].StringValue);
        Assert.Equal("*****", a["process.environment_variable.DB_PASSWORD"].StringValue);
        Assert.Equal(4026531836, a["securityagent.process.ns.pid"].IntValue);
        Assert.Equal(["CAP_SYS_ADMIN"], a["securityagent.process.cap.effective"].ArrayValue.Values.Select(v => v.StringValue));
        Assert.Equal(0, a["securityagent.process.binary_properties.setuid"].IntValue);
        Assert.Equal(["PRIVILEGES_RAISED_EXEC_FILE_SETUID"], a["securityagent.process.binary_properties.privileges_changed"].ArrayValue.Values.Select(v => v.StringValue));

        var plain = Attributes(OtlpMapping.ToLogRecord(new ProcessExecEvent(1, p, null), "{}", new BootClock(0), new JsonEventFormatter("n", new BootClock(0))));
        Assert.DoesNotContain(plain.Keys, k => k.StartsWith("securityagent.process.", StringComparison.Ordinal));
    }

    [Fact]
    public void A_process_of_a_pod_carries_the_kubernetes_and_container_attributes_a_collector_maps_to_the_pod()
    {
        var r = OtlpMapping.ToLogRecord(new ProcessExecEvent(1, Proc(), null), "{}", new BootClock(0));
        var a = Attributes(r);
        Assert.Equal("securityagent.process_exec", r.EventName);
        Assert.Equal(SeverityNumber.Info, r.SeverityNumber);
        Assert.Equal("shop", a["k8s.namespace.name"].StringValue);
        Assert.Equal("cart-7d9f-x2", a["k8s.pod.name"].StringValue);
        Assert.Equal("uid-1", a["k8s.pod.uid"].StringValue);
        Assert.Equal("cart", a["k8s.container.name"].StringValue);
        Assert.Equal("cart", a["k8s.deployment.name"].StringValue);
        Assert.Equal("cart", a["k8s.pod.label.app"].StringValue);
        Assert.Equal("abc123", a["container.id"].StringValue);
        Assert.Equal("registry/cart:1.2", a["container.image.name"].StringValue);
        Assert.Equal("/usr/bin/curl -s https://x", a["process.command_line"].StringValue);
        Assert.Equal("/srv", a["process.working_directory"].StringValue);
        Assert.Equal("1000", a["user.id"].StringValue);
        Assert.Equal("curl", a["process.executable.name"].StringValue);
    }

    [Fact]
    public void A_denied_connect_is_an_error_with_its_destination_and_a_monitor_hit_is_a_warning_with_its_file()
    {
        var connect = new PolicyMatchEvent(1, Proc(), null, "egress", Hook(HookKind.LsmHook, "socket_connect"), "KPROBE_ACTION_OVERRIDE", Enforce: true, Enforced: true,
            SafetyRefused: false, "kernel", [new RenderedArg("sockaddr_arg", new SockAddr("AF_INET6", "2001:db8::1", 443), null)]);
        var r = OtlpMapping.ToLogRecord(connect, "{}", new BootClock(0));
        var a = Attributes(r);
        Assert.Equal((SeverityNumber.Error, "ERROR"), (r.SeverityNumber, r.SeverityText));
        Assert.Equal("securityagent.process_lsm", r.EventName);
        Assert.Equal("2001:db8::1", a["destination.address"].StringValue);
        Assert.Equal(443, a["destination.port"].IntValue);
        Assert.Equal("ipv6", a["network.type"].StringValue);
        Assert.Equal("outbound connection", a["securityagent.message"].StringValue);
        Assert.True(a["securityagent.enforced"].BoolValue);

        var open = new PolicyMatchEvent(1, Proc(), null, "reads", Hook(HookKind.Kprobe, "__x64_sys_openat"), "KPROBE_ACTION_SIGKILL", Enforce: false, Enforced: false,
            SafetyRefused: false, "kernel", [new RenderedArg("int_arg", -100L, null), new RenderedArg("string_arg", "/etc/shadow", "path")]);
        var w = OtlpMapping.ToLogRecord(open, "{}", new BootClock(0));
        Assert.Equal((SeverityNumber.Warn, "WARN"), (w.SeverityNumber, w.SeverityText));
        Assert.Equal("/etc/shadow", Attributes(w)["file.path"].StringValue);
        Assert.Equal("monitor", Attributes(w)["securityagent.policy_mode"].StringValue);
    }

    [Fact]
    public void A_policy_event_names_the_calling_thread_in_thread_id_and_the_process_by_its_pid()
    {
        var hit = new PolicyMatchEvent(1, Proc(), null, "reads", Hook(HookKind.Tracepoint, "syscalls/sys_enter_openat"), "KPROBE_ACTION_POST", Enforce: false,
            Enforced: false, SafetyRefused: false, "kernel", []) { Tid = 4321 };
        var a = Attributes(OtlpMapping.ToLogRecord(hit, "{}", new BootClock(0)));
        Assert.Equal((42L, 4321L), (a["process.pid"].IntValue, a["thread.id"].IntValue));
    }

    [Fact]
    public void Severity_numbers_are_the_specifications()
    {
        // opentelemetry-proto logs.proto: SEVERITY_NUMBER_INFO = 9, WARN = 13, ERROR = 17.
        Assert.Equal([9, 13, 17], new[] { SeverityNumber.Info, SeverityNumber.Warn, SeverityNumber.Error }.Select(s => (int)s));
    }

    [Theory]
    [InlineData("http://gw:4318", "v1/logs", "http://gw:4318/v1/logs")]
    [InlineData("http://gw:4318/otlp", "v1/logs", "http://gw:4318/otlp/v1/logs")]
    [InlineData("http://gw:4318/otlp/", "v1/metrics", "http://gw:4318/otlp/v1/metrics")]
    [InlineData("https://gw/a/b?tenant=1", "v1/logs", "https://gw/a/b/v1/logs?tenant=1")]
    [InlineData("http://gw:4317/otlp", "", "http://gw:4317/otlp/")]
    public void An_endpoints_path_is_kept_before_the_signals_path(string endpoint, string signal, string expected) =>
        Assert.Equal(expected, new OtlpOptions(new Uri(endpoint), OtlpProtocol.HttpProtobuf, new Dictionary<string, string>(), []).SignalUri(signal).ToString());

    [Fact]
    public void The_resource_names_the_service_its_version_and_the_node_for_kubernetes()
    {
        using var dir = new TempDir();
        var o = OtlpOptions.From(new Hosting.AgentOptions { OtlpEndpoint = "http://c:4317", NodeName = "node-7", Kubeconfig = dir.File("kubeconfig") })!;
        Assert.Equal(["host.name=node-7", "k8s.node.name=node-7", "service.instance.id=node-7", "service.name=securityagent", $"service.version={Hosting.BuildInfo.Version}"],
            o.Resource.Select(kv => $"{kv.Key}={kv.Value}").Order());
        Assert.DoesNotContain(OtlpOptions.ResourceAttributes("n", kubernetes: false), kv => kv.Key == "k8s.node.name");
        Assert.Contains(new("k8s.cluster.name", "prod"), OtlpOptions.ResourceAttributes("n", kubernetes: true, cluster: "prod"));
        Assert.Null(OtlpOptions.From(new Hosting.AgentOptions()));
    }

    [Fact]
    public void Credentials_annotations_and_the_agents_own_fields_are_attributes_whatever_the_json_carries()
    {
        var setuid = new ProcessInfo
        {
            ExecId = "eQ==", Pid = 43, StartTime = 1, Ktime = 1, Binary = "/usr/bin/su", Args = ["su"], Cwd = "/", Creds = new Credentials(1000, 0, 100, 0),
            Origin = ProcessOrigin.Exec, Unattributed = "gone",
        };
        setuid.Pod = Pod with { Annotations = new Dictionary<string, string> { ["team"] = "payments" } };
        var hit = new PolicyMatchEvent(1, setuid, null, "p", Hook(HookKind.Kprobe, "f"), "KPROBE_ACTION_SIGKILL", Enforce: true, Enforced: false,
            SafetyRefused: true, "user_space", []);
        var a = Attributes(OtlpMapping.ToLogRecord(hit, "{}", new BootClock(0)));
        Assert.Equal((1000L, 0L, 0L, 100L, 0L, 0L), (a["process.real_user.id"].IntValue, a["process.user.id"].IntValue, a["process.saved_user.id"].IntValue,
            a["process.real_group.id"].IntValue, a["process.group.id"].IntValue, a["process.saved_group.id"].IntValue));
        Assert.Equal("payments", a["k8s.pod.annotation.team"].StringValue);
        Assert.Equal(("user_space", true, "gone"), (a["securityagent.decided_by"].StringValue, a["securityagent.safety_refused"].BoolValue, a["securityagent.process_unattributed"].StringValue));
    }
}
