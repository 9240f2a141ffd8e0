using System.Text.Json;
using SecurityAgent.Export.Otlp.Proto;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>OTLP export of real kernel events to a real OTLP receiver running in the test.</summary>
[Collection("kernel")]
public class OtlpExportTests
{
    private static bool Wait(Func<bool> condition, int seconds)
    {
        for (var end = DateTime.UtcNow.AddSeconds(seconds); DateTime.UtcNow < end; Thread.Sleep(100))
            if (condition()) return true;
        return condition();
    }

    [Theory]
    [InlineData("grpc")]
    [InlineData("http/protobuf")]
    public async Task Events_arrive_as_log_records_with_semantic_convention_attributes_severity_by_decision_and_one_resource_for_logs_and_metrics(string protocol)
    {
        await using var receiver = await OtlpReceiver.Start(protocol == "grpc", prefix: "/otlp");
        using var dir = new TempDir();
        var tool = dir.CopyBinary("/usr/bin/cat", "otlp-cat");
        var victim = dir.CopyBinary("/usr/bin/cat", "otlp-victim");
        File.WriteAllText(dir.File("watched"), "x");
        File.WriteAllText(dir.File("secret"), "x");
        using var agent = new AgentProcess(new Dictionary<string, string>
            {
                ["monitor.yaml"] = TestPolicies.OpenatKill("otlp-policy", tool, dir.File("watched"), mode: "monitor"),
                ["enforce.yaml"] = TestPolicies.OpenatKill("otlp-kill", victim, dir.File("secret")),
            },
            "--otlp-endpoint", receiver.Endpoint, "--otlp-protocol", protocol, "--otlp-headers", "authorization=Bearer test-token",
            "--otlp-metrics-interval-ms", "500", "--node-name", "otlp-node");
        Run.Wait(tool, [dir.File("watched")]);
        Assert.Equal(137, Run.Wait(victim, [dir.File("secret")]).Code);

        bool Is(LogRecord r, string binary, string name) => r.Attr("process.executable.path") == binary && r.EventName == "securityagent." + name;
        Assert.True(Wait(() => receiver.Records(r => Is(r, tool, "process_tracepoint")).Count == 1 && receiver.Records(r => Is(r, victim, "process_tracepoint")).Count == 1, 20),
            "policy events did not arrive under the endpoint's path");
        var exec = receiver.Records(r => Is(r, tool, "process_exec")).Single();
        Assert.Equal((SeverityNumber.Info, "INFO"), (exec.SeverityNumber, exec.SeverityText));
        Assert.Equal("process_exec", exec.Attr("securityagent.event.type"));
        Assert.Equal($"{tool} {dir.File("watched")}", exec.Attr("process.command_args"));
        Assert.Equal($"{tool} {dir.File("watched")}", exec.Attr("process.command_line"));
        Assert.Equal("otlp-cat", exec.Attr("process.executable.name"));
        Assert.Equal(Environment.CurrentDirectory, exec.Attr("process.working_directory"));
        Assert.Equal("0", exec.Attr("user.id"));
        Assert.True(int.Parse(exec.Attr("process.pid")!) > 0);
        Assert.True(int.Parse(exec.Attr("process.parent_pid")!) > 0);
        var body = JsonDocument.Parse(exec.Body.StringValue).RootElement;
        Assert.Equal(tool, body.GetProperty("process_exec").GetProperty("process").GetProperty("binary").GetString());
        Assert.True(exec.TimeUnixNano > 1_700_000_000_000_000_000UL);
        Assert.Equal("Bearer test-token", receiver.Authorization);

        var hit = receiver.Records(r => Is(r, tool, "process_tracepoint")).Single();
        Assert.Equal((SeverityNumber.Warn, "WARN"), (hit.SeverityNumber, hit.SeverityText)); // a monitor-mode hit
        Assert.Equal("otlp-policy", hit.Attr("securityagent.policy"));
        Assert.Equal("syscalls/sys_enter_openat", hit.Attr("securityagent.hook"));
        Assert.Equal("KPROBE_ACTION_SIGKILL", hit.Attr("securityagent.action"));
        Assert.Equal("monitor", hit.Attr("securityagent.policy_mode"));
        Assert.Equal(dir.File("watched"), hit.Attr("file.path"));

        var kill = receiver.Records(r => Is(r, victim, "process_tracepoint")).Single();
        Assert.Equal((SeverityNumber.Error, "ERROR"), (kill.SeverityNumber, kill.SeverityText)); // enforced
        Assert.Equal("True", kill.Attr("securityagent.enforced"));

        Assert.True(Wait(() => { lock (receiver.MetricResources) return receiver.MetricResources.Count > 0; }, 10), "the agent's metrics did not arrive under the endpoint's path");
        static List<string> Attributes(Resource r) => r.Attributes.Select(a => $"{a.Key}={a.Value.StringValue}").Order().ToList();
        List<string> logs;
        lock (receiver.Logs) logs = Attributes(receiver.Logs[0].Resource);
        Assert.Equal(["host.name=otlp-node", "service.instance.id=otlp-node", "service.name=securityagent", $"service.version={SecurityAgent.Hosting.BuildInfo.Version}"], logs);
        lock (receiver.MetricResources) Assert.All(receiver.MetricResources, m => Assert.Equal(logs, Attributes(m)));
    }

    [Fact]
    public async Task A_collector_answering_500_megabytes_costs_the_agent_no_memory_and_the_events_still_count_as_delivered()
    {
        await using var receiver = await OtlpReceiver.Start(grpc: false);
        receiver.ReplyBytes = 500L * 1024 * 1024;
        using var dir = new TempDir();
        var tool = dir.CopyBinary("/usr/bin/true", "big-reply-tool");
        var stats = dir.File("stats.json");
        using var agent = new AgentProcess("--otlp-endpoint", receiver.Endpoint, "--otlp-protocol", "http/protobuf", "--stats-file", stats,
            "--export-allowlist", $$"""{"binary_regex":["{{tool}}$"]}""");
        long Stat(string field) => JsonDocument.Parse(File.ReadAllText(stats)).RootElement.GetProperty("otlp").GetProperty(field).GetInt64();
        var before = ProcStat.RssMb(agent.Pid);
        for (int i = 0; i < 5; i++)
        {
            Run.Wait(tool, []);
            Assert.True(Wait(() => File.Exists(stats) && Stat("delivered") == 2 * (i + 1), 20), $"batch {i}: delivered {Stat("delivered")}");
        }
        var after = ProcStat.RssMb(agent.Pid);
        Console.WriteLine($"RSS {before:F0} MB before, {after:F0} MB after 5 answers of 500 MB");
        Assert.Equal(0, Stat("failures"));
        Assert.True(after - before < 60, $"RSS grew from {before:F0} MB to {after:F0} MB over 5 answers of 500 MB");
    }

    [Fact]
    public async Task After_a_ten_second_outage_queued_events_arrive_and_what_overflowed_the_queue_is_counted_exactly()
    {
        await using var receiver = await OtlpReceiver.Start(grpc: true);
        using var dir = new TempDir();
        var tool = dir.CopyBinary("/usr/bin/true", "outage-tool");
        var stats = dir.File("stats.json");
        using var agent = new AgentProcess(
            "--otlp-endpoint", receiver.Endpoint, "--otlp-protocol", "grpc", "--otlp-queue-size", "50", "--stats-file", stats,
            "--export-allowlist", $$"""{"binary_regex":["{{tool}}$"]}""");
        long Stat(string field) => JsonDocument.Parse(File.ReadAllText(stats)).RootElement.GetProperty("otlp").GetProperty(field).GetInt64();
        int Arrived() => receiver.Records(r => r.Attr("process.executable.path") == tool).Count;

        Run.Wait(tool, []);
        Assert.True(Wait(() => Arrived() == 2, 20), "exec and exit before the outage");

        await receiver.StopAsync();
        for (int i = 0; i < 40; i++) Run.Wait(tool, []); // 80 events for a queue of 50
        Thread.Sleep(10_000);
        Assert.True(Wait(() => Stat("dropped") == 30, 5), $"dropped {Stat("dropped")}");
        Assert.Equal(50, Stat("queue_depth"));
        Assert.Equal(2, Arrived());

        await receiver.StartAsync();
        Assert.True(Wait(() => Arrived() == 52, 30), $"{Arrived()} arrived after the outage");
        Assert.True(Wait(() => Stat("queue_depth") == 0, 5));
        Assert.Equal(52, Stat("delivered"));
        Assert.Equal(30, Stat("dropped"));
    }
}
