using System.Diagnostics;
using System.Text.Json;
using SecurityAgent.Tests.Support;
using SecurityAgent.Tests.Unit;

namespace SecurityAgent.Tests.Integration;

[Collection("kernel")]
public class ProcessLifecycleTests(SharedAgent shared)
{
    private static string Marker() => "sa-" + Guid.NewGuid().ToString("N")[..12];

    private static JsonElement Proc(JsonElement e, string type) => e.GetProperty(type).GetProperty("process");

    [Fact]
    public void A_child_of_the_test_yields_an_exec_with_binary_arguments_cwd_uid_and_parent_then_its_exit_code()
    {
        var agent = shared.Agent;
        using var dir = new TempDir();
        var sh = dir.CopyBinary("/usr/bin/dash", "lifecycle-sh");
        var marker = Marker();

        var (code, _, _) = Run.Wait(sh, ["-c", "exit 7", marker, "two words"], cwd: dir.Path);
        Assert.Equal(7, code);

        var exec = agent.Events.WaitFor(e => ExportedEvents.IsExecOf(e, marker), "exec of " + marker);
        var p = Proc(exec, "process_exec");
        Assert.Equal(sh, p.GetProperty("binary").GetString());
        Assert.Equal($"-c \"exit 7\" {marker} \"two words\"", p.GetProperty("arguments").GetString());
        Assert.Equal(dir.Path, p.GetProperty("cwd").GetString());
        Assert.Equal(0, p.GetProperty("uid").GetInt32());
        Assert.StartsWith("execve", p.GetProperty("flags").GetString());
        var parent = exec.GetProperty("process_exec").GetProperty("parent");
        Assert.Equal(Environment.ProcessId, parent.GetProperty("pid").GetInt32());
        Assert.Equal(new FileInfo("/proc/self/exe").LinkTarget, parent.GetProperty("binary").GetString());
        Assert.Equal(parent.GetProperty("exec_id").GetString(), p.GetProperty("parent_exec_id").GetString());

        var exit = agent.Events.WaitFor(e => ExportedEvents.IsExitOf(e, marker), "exit of " + marker);
        Assert.Equal(7, exit.GetProperty("process_exit").GetProperty("status").GetInt32());
        Assert.False(exit.GetProperty("process_exit").TryGetProperty("signal", out _));
        Assert.Equal(p.GetProperty("exec_id").GetString(), Proc(exit, "process_exit").GetProperty("exec_id").GetString());
    }

    [Fact]
    public void A_child_killed_with_sigkill_exits_with_signal_sigkill()
    {
        var agent = shared.Agent;
        using var dir = new TempDir();
        var sh = dir.CopyBinary("/usr/bin/dash", "lifecycle-sh");
        var marker = Marker();
        using var p = Run.Start(sh, ["-c", "read line", marker]); // blocks on its stdin until killed
        agent.Events.WaitFor(e => ExportedEvents.IsExecOf(e, marker), "exec of " + marker);
        p.Kill(); // SIGKILL, to the process this test started
        p.WaitForExit();

        var exit = agent.Events.WaitFor(e => ExportedEvents.IsExitOf(e, marker), "exit of " + marker);
        Assert.True(exit.GetProperty("process_exit").TryGetProperty("signal", out var signal), exit.ToString());
        Assert.Equal("SIGKILL", signal.GetString());
        Assert.Equal(p.Id, Proc(exit, "process_exit").GetProperty("pid").GetInt32());
    }

    [Fact]
    public void Every_emitted_line_validates_against_the_event_schema()
    {
        var agent = shared.Agent;
        var marker = Marker();
        Run.Wait("/bin/sh", ["-c", "true", marker]);
        agent.Events.WaitFor(e => ExportedEvents.IsExitOf(e, marker), "exit of " + marker);
        Assert.NotEmpty(agent.Events.RawLines);
        foreach (var line in agent.Events.RawLines.TakeLast(200))
            JsonFormatTests.AssertValid(line);
    }

    [Fact]
    public void Export_filters_and_redaction_apply_to_what_the_agent_writes()
    {
        using var dir = new TempDir();
        var tool = dir.CopyBinary("/usr/bin/true", "mysql");
        using var agent = new AgentProcess(
            "--export-allowlist", """{"event_set":["PROCESS_EXEC"],"binary_regex":["mysql$"]}""",
            "--redaction-filters", """{"redact":["--password(?:\\s+|=)(\\S+)"]}""");
        Run.Wait(tool, ["-u", "root", "--password", "hunter2"]);
        Run.Wait("/bin/true", ["not-exported"]);
        var exec = agent.Events.WaitFor(e => e.TryGetProperty("process_exec", out var x) && x.GetProperty("process").GetProperty("binary").GetString() == tool, "exec of mysql");
        Assert.Equal("-u root --password *****", exec.GetProperty("process_exec").GetProperty("process").GetProperty("arguments").GetString());
        Thread.Sleep(500);
        Assert.All(agent.Events.All, e => Assert.True(e.TryGetProperty("process_exec", out var x) && x.GetProperty("process").GetProperty("binary").GetString()!.EndsWith("mysql"), e.ToString()));
        Assert.DoesNotContain(agent.Events.RawLines, l => l.Contains("hunter2"));
    }

    [Fact]
    public void A_burst_of_ten_thousand_short_lived_processes_yields_ten_thousand_execs_and_exits()
    {
        var agent = shared.Agent;
        using var dir = new TempDir();
        var tru = dir.CopyBinary("/usr/bin/true", "burst-true");
        var marker = Marker();
        const int n = 10_000;
        var sw = Stopwatch.StartNew();
        var (code, _, err) = Run.Wait("/bin/sh", ["-c", $"i=0; while [ $i -lt {n} ]; do {tru} {marker}; i=$((i+1)); done"], timeoutMs: 300_000);
        Assert.True(code == 0, err);
        var spawn = sw.Elapsed;

        int execs = 0, exits = 0;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            execs = agent.Events.Where(e => ExportedEvents.IsExecOf(e, marker) && Binary(e, "process_exec") == tru).Count;
            exits = agent.Events.Where(e => ExportedEvents.IsExitOf(e, marker) && Binary(e, "process_exit") == tru).Count;
            if (execs == n && exits == n) break;
            Thread.Sleep(200);
        }
        var lost = LossLine(agent.Stderr);
        Console.WriteLine($"burst: {n} processes in {spawn.TotalSeconds:F1}s; {execs} exec and {exits} exit events; loss report: {lost ?? "none"}");
        if (execs != n || exits != n)
            Assert.Fail($"burst of {n}: {execs} exec and {exits} exit events; the agent counted: {lost ?? "no loss"}");
    }

    private static string? Binary(JsonElement e, string type) => Proc(e, type).GetProperty("binary").GetString();

    private static string? LossLine(string stderr) => stderr.Split('\n').LastOrDefault(l => l.Contains("Events lost"));
}
