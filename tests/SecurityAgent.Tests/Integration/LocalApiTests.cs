using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>The CLI against a running agent through its local API socket.</summary>
[Collection("kernel")]
public class LocalApiTests
{
    private static (int Code, string Stdout, string Stderr) Cli(AgentProcess agent, params string[] args) =>
        Run.Wait("dotnet", [Repo.AgentDll, .. args, "--api-socket", agent.Socket]);

    [Fact]
    public void Policy_add_list_mode_and_delete_work_against_a_running_agent_and_status_shows_the_hooks()
    {
        using var dir = new TempDir();
        var victim = dir.CopyBinary("/usr/bin/cat", "api-victim");
        File.WriteAllText(dir.File("secret"), "S\n");
        File.WriteAllText(dir.File("p.yaml"), TestPolicies.OpenatKill("api-policy", victim, dir.File("secret")));
        using var agent = new AgentProcess();

        var add = Cli(agent, "policy", "add", dir.File("p.yaml"));
        Assert.True(add.Code == 0, add.Stderr);
        Assert.Equal(137, Run.Wait(victim, [dir.File("secret")]).Code);

        var list = JsonDocument.Parse(Cli(agent, "policy", "list", "-o", "json").Stdout).RootElement;
        var p = list.EnumerateArray().Single(x => x.GetProperty("name").GetString() == "api-policy");
        Assert.Equal("enforce", p.GetProperty("mode").GetString());
        Assert.Equal("tracepoint", p.GetProperty("hooks")[0].GetProperty("mechanism").GetString());
        Assert.True(p.GetProperty("hooks")[0].GetProperty("enforced").GetInt64() >= 1);

        Assert.Equal(0, Cli(agent, "policy", "mode", "api-policy", "monitor").Code);
        Assert.Equal(0, Run.Wait(victim, [dir.File("secret")]).Code);

        var status = JsonDocument.Parse(Cli(agent, "status", "-o", "json").Stdout).RootElement;
        Assert.True(status.GetProperty("kernel").GetProperty("mechanisms").GetProperty("tracepoint").GetBoolean());
        Assert.Equal("monitor", status.GetProperty("policies").EnumerateArray().Single(x => x.GetProperty("name").GetString() == "api-policy").GetProperty("mode").GetString());
        Assert.True(status.GetProperty("events").GetProperty("exported").GetInt64() > 0);

        Assert.Equal(0, Cli(agent, "policy", "delete", "api-policy").Code);
        Assert.DoesNotContain("api-policy", Cli(agent, "policy", "list").Stdout);
    }

    [Fact]
    public void A_broken_policy_added_through_the_api_is_refused_with_file_line_column()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("bad.yaml"), TestPolicies.OpenatKill("bad", "/x", "/y").Replace("selectors:", "selectros:"));
        using var agent = new AgentProcess();
        var r = Cli(agent, "policy", "add", dir.File("bad.yaml"));
        Assert.Equal(1, r.Code);
        Assert.Matches(@"\(request\):15:5: spec\.tracepoints\[0\]\.selectros: unknown field", r.Stderr);
    }

    [Fact]
    public void Events_stream_in_compact_form_one_readable_line_per_event()
    {
        using var agent = new AgentProcess();
        using var dir = new TempDir();
        var tool = dir.CopyBinary("/usr/bin/true", "compact-tool");
        using var stream = Run.Start("dotnet", [Repo.AgentDll, "events", "-o", "compact", "--binary-regex", "compact-tool$",
            "--deny", """{"event_set":["PROCESS_KPROBE"]}""", "--api-socket", agent.Socket]);
        var lines = new List<string>();
        var reader = Task.Run(async () => { while (await stream.StandardOutput.ReadLineAsync() is { } l) lock (lines) lines.Add(l); });
        for (int i = 0; i < 50 && !Has(lines, "💥 exit "); i++)
        {
            Run.Wait(tool, ["arg-one"]);
            Thread.Sleep(200);
        }
        stream.Kill();
        Assert.Contains(lines, l => l.StartsWith("🚀 process ") && l.Contains(tool + " arg-one"));
        Assert.Contains(lines, l => l.StartsWith("💥 exit    ") && l.Contains(tool));
        Assert.All(lines, l => Assert.Contains("compact-tool", l)); // the binary filter applied
    }

    private static bool Has(List<string> lines, string prefix) { lock (lines) return lines.Any(l => l.StartsWith(prefix)); }

    [Fact]
    public async Task Prometheus_metrics_show_event_counts_kernel_hook_counters_and_losses()
    {
        using var dir = new TempDir();
        var victim = dir.CopyBinary("/usr/bin/cat", "metrics-victim");
        File.WriteAllText(dir.File("s"), "x");
        int port;
        using (var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0)) { probe.Start(); port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port; }
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = TestPolicies.OpenatKill("metrics-policy", victim, dir.File("s"), mode: "monitor") },
            "--metrics-address", $"127.0.0.1:{port}");
        Run.Wait(victim, [dir.File("s")]);
        agent.Events.WaitFor(e => e.TryGetProperty("process_tracepoint", out _), "policy event");
        using var http = new HttpClient();
        var text = await http.GetStringAsync($"http://127.0.0.1:{port}/metrics");
        double Value(string series) => double.Parse(text.Split('\n').Single(l => l.StartsWith(series + " ")).Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(Value("secagent_events_total{type=\"process_exec\",policy=\"\"}") >= 1);
        Assert.Equal(1, Value("secagent_events_total{type=\"process_tracepoint\",policy=\"metrics-policy\"}"));
        Assert.True(Value("secagent_hook_seen_total{policy=\"metrics-policy\",hook=\"syscalls/sys_enter_openat\"}") > Value("secagent_hook_matched_total{policy=\"metrics-policy\",hook=\"syscalls/sys_enter_openat\"}"));
        Assert.Equal(0, Value("secagent_observer_ringbuf_events_lost_total"));
        Assert.Contains("# TYPE secagent_process_cache_size gauge", text);
        // The TCP listener serves metrics only: the API stays on the root-only socket.
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await http.GetAsync($"http://127.0.0.1:{port}/v1/policies")).StatusCode);
    }

    [Fact]
    public void A_non_root_user_gets_a_permission_error_from_the_socket()
    {
        using var agent = new AgentProcess();
        File.SetUnixFileMode(agent.Dir.Path, (UnixFileMode)0b111_101_101); // the directory is open: only the socket's 0600 guards it
        var r = Run.Wait("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "env", "HOME=/tmp", "DOTNET_CLI_HOME=/tmp",
            "dotnet", Repo.AgentDll, "status", "--api-socket", agent.Socket]);
        Assert.NotEqual(0, r.Code);
        Assert.Contains("permission denied", r.Stderr);
        Assert.Contains("root only", r.Stderr);
    }
}
