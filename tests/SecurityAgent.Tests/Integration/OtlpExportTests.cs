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
    public async Task Exec_and_policy_events_arrive_as_log_records_with_semantic_convention_attributes(string protocol)
    {
        await using var receiver = await OtlpReceiver.Start(protocol == "grpc");
        using var dir = new TempDir();
        var tool = dir.CopyBinary("/usr/bin/cat", "otlp-cat");
        File.WriteAllText(dir.File("watched"), "x");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = TestPolicies.OpenatKill("otlp-policy", tool, dir.File("watched"), mode: "monitor") },
            "--otlp-endpoint", receiver.Endpoint, "--otlp-protocol", protocol, "--otlp-headers", "authorization=Bearer test-token",
            "--otlp-metrics-interval-ms", "500");
        Run.Wait(tool, [dir.File("watched")]);

        bool IsTool(LogRecord r) => r.Attr("process.executable.path") == tool;
        Assert.True(Wait(() => receiver.Records(r => IsTool(r) && r.EventName == "process_tracepoint").Count == 1, 20), "policy event did not arrive");
        var exec = receiver.Records(r => IsTool(r) && r.EventName == "process_exec").Single();
        Assert.Equal("process_exec", exec.Attr("securityagent.event.type"));
        Assert.Equal($"{tool} {dir.File("watched")}", exec.Attr("process.command_args"));
        Assert.True(int.Parse(exec.Attr("process.pid")!) > 0);
        var body = JsonDocument.Parse(exec.Body.StringValue).RootElement;
        Assert.Equal(tool, body.GetProperty("process_exec").GetProperty("process").GetProperty("binary").GetString());
        Assert.True(exec.TimeUnixNano > 1_700_000_000_000_000_000UL);
        Assert.Equal("Bearer test-token", receiver.Authorization);

        var pol = receiver.Records(r => IsTool(r) && r.EventName == "process_tracepoint").Single();
        Assert.Equal("otlp-policy", pol.Attr("securityagent.policy"));
        Assert.Equal("KPROBE_ACTION_SIGKILL", pol.Attr("securityagent.action"));
        Assert.Equal("monitor", pol.Attr("securityagent.policy_mode"));
        lock (receiver.Logs)
            Assert.Contains(receiver.Logs, l => l.Resource.Attributes.Any(a => a.Key == "service.name" && a.Value.StringValue == "securityagent"));
        Assert.True(Wait(() => receiver.MetricRequests > 0, 10), "the agent's metrics did not arrive over OTLP");
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
