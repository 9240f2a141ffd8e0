using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>The built binary as a person runs it: help starts nothing, mistakes exit 2 with a suggestion and no
/// stack trace, --version names the commit, `events` reads a file or stdin.</summary>
[Collection("kernel")]
public class CliBinaryTests
{
    private static (int Code, string Stdout, string Stderr) Secagent(params string[] args) => Run.Wait("dotnet", [Repo.AgentDll, .. args], timeoutMs: 30_000);

    [Fact]
    public void Asking_run_for_help_prints_every_option_and_starts_nothing()
    {
        using var dir = new TempDir();
        var r = Secagent("run", "--help", "--api-socket", dir.File("agent.sock"), "--policy-dir", dir.Path);
        Assert.Equal(0, r.Code);
        Assert.Contains("--export-file <PATH|->", r.Stdout);
        Assert.Contains("--metrics-label-filter", r.Stdout);
        Assert.DoesNotContain("Agent ready", r.Stderr);
        Assert.False(File.Exists(dir.File("agent.sock")));
        Assert.False(File.Exists(dir.File("agent.sock.lock")));
    }

    [Fact]
    public void A_mistyped_option_exits_2_with_a_suggestion_and_no_stack_trace()
    {
        var r = Secagent("run", "--export-fle", "/tmp/x");
        Assert.Equal(2, r.Code);
        Assert.Contains("unknown option '--export-fle' (did you mean '--export-file'?)", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void Run_refuses_an_address_that_is_not_one_and_a_missing_policy_directory_before_loading_anything()
    {
        using var dir = new TempDir();
        var r = Secagent("run", "--metrics-address", "9090", "--policy-dir", dir.File("missing"), "--api-socket", dir.File("agent.sock"));
        Assert.Equal(2, r.Code);
        Assert.Contains("--metrics-address '9090': expected HOST:PORT", r.Stderr);
        Assert.Contains($"--policy-dir '{dir.File("missing")}': no such directory", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
        Assert.False(File.Exists(dir.File("agent.sock")));
    }

    [Fact]
    public void Version_names_the_git_commit_and_the_build_date()
    {
        var r = Secagent("--version");
        Assert.Equal(0, r.Code);
        var m = System.Text.RegularExpressions.Regex.Match(r.Stdout, @"^secagent \d+\.\d+\.\d+ \(commit ([0-9a-f]{12}), built \d{4}-\d{2}-\d{2}, \.NET [0-9.]+\)");
        Assert.True(m.Success, r.Stdout);
        if (Run.Wait("git", ["-C", Repo.Root, "rev-parse", "HEAD"]).Code == 0) // built from this checkout (commits may have followed)
            Assert.Equal(0, Run.Wait("git", ["-C", Repo.Root, "merge-base", "--is-ancestor", m.Groups[1].Value, "HEAD"]).Code);
    }

    private const string Lines = """
        {"process_exec":{"process":{"exec_id":"YQ==","pid":7,"uid":0,"cwd":"/","binary":"/usr/bin/curl","arguments":"https://ebpf.io","flags":"execve","start_time":"2026-11-22T06:10:00.000000000Z","auid":0,"tid":7,"pod":{"namespace":"default","name":"xwing","uid":"u","pod_labels":{},"workload":"xwing","workload_kind":"Deployment"}}},"node_name":"n1","time":"2026-11-22T06:10:00.100000000Z"}
        kubectl says hello
        {"process_lsm":{"process":{"exec_id":"Yg==","pid":8,"uid":0,"cwd":"/","binary":"/tmp/victim-bash","arguments":"-c x","flags":"execve","start_time":"2026-11-22T06:10:00.000000000Z","auid":0,"tid":8},"function_name":"socket_connect","args":[{"sockaddr_arg":{"family":"AF_INET","addr":"10.0.0.1","port":443}}],"action":"KPROBE_ACTION_OVERRIDE","policy_name":"egress","policy_mode":"enforce","enforced":true,"decided_by":"kernel"},"node_name":"n1","time":"2026-11-22T06:10:01.000000000Z"}

        """;

    [Fact]
    public void Events_from_a_file_or_from_stdin_are_rendered_compact_and_filtered()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("events.json"), Lines);
        var all = Secagent("events", "-i", dir.File("events.json"), "-o", "compact");
        Assert.Equal(0, all.Code);
        Assert.Equal(["🚀 process default/xwing /usr/bin/curl https://ebpf.io", "🔌 connect n1 /tmp/victim-bash 10.0.0.1:443  denied [egress]"],
            all.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("1 line(s)", all.Stderr);
        Assert.Single(Secagent("events", "-i", dir.File("events.json"), "--namespace", "default").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("egress", Secagent("events", "-i", dir.File("events.json"), "--namespace", "", "--type", "process_lsm").Stdout);
        Assert.Equal("", Secagent("events", "-i", dir.File("events.json"), "--pod", "^tie", "--policy", "egress").Stdout);

        // kubectl logs ... | secagent events -o compact: stdin is a pipe, so it is read.
        using var p = Run.Start("dotnet", [Repo.AgentDll, "events", "-o", "compact", "--timestamps", "--process", "victim"]);
        p.StandardInput.Write(Lines);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(30_000));
        Assert.Equal(0, p.ExitCode);
        Assert.Equal("2026-11-22T06:10:01.000000000Z 🔌 connect n1 /tmp/victim-bash 10.0.0.1:443  denied [egress]\n", stdout);

        var missing = Secagent("events", "-i", dir.File("nope.json"));
        Assert.Equal(1, missing.Code);
        Assert.Contains("nope.json", missing.Stderr);
    }

    [Fact]
    public void An_agent_asked_for_compact_output_writes_one_readable_line_per_event_instead_of_json()
    {
        using var dir = new TempDir();
        var echo = dir.CopyBinary("/bin/echo", "compact-echo");
        var marker = "compact-" + Guid.NewGuid().ToString("N")[..8];
        using var agent = new AgentProcess("--output", "compact");
        Run.Wait(echo, [marker]);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        string? line = null;
        while (line is null && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(100);
            if (File.Exists(agent.Events.Path))
                line = File.ReadAllLines(agent.Events.Path).FirstOrDefault(l => l.Contains(marker) && l.Contains("compact-echo"));
        }
        Assert.NotNull(line);
        Assert.Contains("\U0001F680", line); // the exec emoji of a compact line
        Assert.False(line!.TrimStart().StartsWith('{'), "a JSON line was written: " + line);
    }
}
