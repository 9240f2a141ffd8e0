using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Return probes on syscalls (`return: true` on a syscall kprobe), on the real kernel: the enter decides the
/// entry selectors and keeps the event, the syscall's exit tracepoint reads the return value, runs matchReturnArgs and
/// matchReturnActions and posts one event with `return`. Policies are scoped to binaries copied into the test's temp
/// dir and to files inside it.</summary>
[Collection("kernel")]
public class ReturnProbeTests
{
    private static string Policy(string name, string binary, string dir, string returnActions) => $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: {name}
        spec:
          kprobes:
          - call: sys_openat
            syscall: true
            return: true
            args:
            - index: 1
              type: string
            - index: 2
              type: int
            returnArg:
              index: 0
              type: int
            selectors:
            - matchBinaries:
              - operator: In
                values: ["{binary}"]
              matchArgs:
              - index: 1
                operator: Prefix
                values: ["{dir}/"]
              matchReturnArgs:
              - index: 0
                operator: LessThan
                values: ["0"]
        {returnActions}
        """;

    private static JsonElement? Kprobe(JsonElement e, string policy) =>
        e.TryGetProperty("process_kprobe", out var k) && k.GetProperty("policy_name").GetString() == policy ? k : null;

    [Fact]
    public void A_failed_open_posts_one_event_with_its_return_value_and_arguments_and_a_successful_open_posts_none()
    {
        using var dir = new TempDir();
        var cat = dir.CopyBinary("/usr/bin/cat", "ret-cat");
        File.WriteAllText(dir.File("present.txt"), "here\n");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = Policy("ret-open", cat, dir.Path, "") });
        Assert.Contains("Policy ret-open loaded", agent.Stderr);

        var r = Run.Wait(cat, [dir.File("missing.txt"), dir.File("present.txt")]);
        Assert.Equal(1, r.Code);
        Assert.Contains("here", r.Stdout);
        var ev = Kprobe(agent.Events.WaitFor(e => Kprobe(e, "ret-open") is not null, "the failed open's event"), "ret-open")!.Value;
        Assert.Equal(dir.File("missing.txt"), ev.GetProperty("args")[0].GetProperty("string_arg").GetString());
        Assert.Equal(-2, ev.GetProperty("return").GetProperty("int_arg").GetInt32()); // -ENOENT
        Assert.Equal("KPROBE_ACTION_POST", ev.GetProperty("action").GetString());
        Assert.Equal("KPROBE_ACTION_POST", ev.GetProperty("return_action").GetString());
        Assert.Equal("__x64_sys_openat", ev.GetProperty("function_name").GetString());
        Thread.Sleep(500);
        var all = agent.Events.Where(e => Kprobe(e, "ret-open") is not null);
        Assert.Single(all); // the successful open of present.txt matched at entry, and its return value did not
    }

    [Fact]
    public void Sigkill_on_a_return_match_kills_the_process_before_it_runs_its_next_line()
    {
        using var dir = new TempDir();
        var sh = dir.CopyBinary("/usr/bin/dash", "ret-sh");
        File.WriteAllText(dir.File("present.txt"), "here\n");
        using var agent = new AgentProcess(new Dictionary<string, string>
        {
            ["p.yaml"] = Policy("ret-kill", sh, dir.Path, "      matchReturnActions:\n      - action: Sigkill"),
        });
        Assert.Contains("Policy ret-kill loaded", agent.Stderr);

        // The shell opens both files itself (exec redirections): the successful open lets it go on, the failed one
        // is killed at the syscall's return, before `echo NEXT`.
        var r = Run.Wait(sh, ["-c", $"echo FIRST; exec 3< {dir.File("present.txt")}; echo SECOND; exec 4< {dir.File("missing.txt")}; echo NEXT"]);
        Assert.Equal(128 + 9, r.Code);
        Assert.Contains("SECOND", r.Stdout);
        Assert.DoesNotContain("NEXT", r.Stdout);
        var ev = Kprobe(agent.Events.WaitFor(e => Kprobe(e, "ret-kill") is not null, "the killed open's event"), "ret-kill")!.Value;
        Assert.Equal(dir.File("missing.txt"), ev.GetProperty("args")[0].GetProperty("string_arg").GetString());
        Assert.Equal(-2, ev.GetProperty("return").GetProperty("int_arg").GetInt32());
        Assert.Equal("KPROBE_ACTION_SIGKILL", ev.GetProperty("return_action").GetString());
    }
}
