using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>spec.enforcers + NotifyEnforcer as in Tetragon's killer.yaml, on this kernel: raw_syscalls/sys_enter
/// notifies for dup/dup2 and the process is killed before the call returns; scoped to a program the test builds.</summary>
[Collection("kernel")]
public class NotifyEnforcerTests
{
    private const string Source = """
        #include <stdio.h>
        #include <unistd.h>

        int main(void)
        {
            printf("before\n");
            fflush(stdout);
            int fd = dup(1);
            printf("after %d\n", fd >= 0);
            fflush(stdout);
            return 0;
        }
        """;

    private static string Policy(string bin) => $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: kill-dups
        spec:
          lists:
          - name: dups
            type: syscalls
            values: ["sys_dup", "sys_dup2"]
          enforcers:
          - calls: ["list:dups"]
          tracepoints:
          - subsystem: raw_syscalls
            event: sys_enter
            args:
            - index: 4
              type: syscall64
            selectors:
            - matchArgs:
              - index: 0
                operator: InMap
                values: ["list:dups"]
              matchBinaries:
              - operator: In
                values: ["{bin}"]
              matchActions:
              - action: NotifyEnforcer
                argError: -1
                argSig: 9
        """;

    [Fact]
    public void The_notified_program_is_killed_at_dup_before_it_sees_the_result_and_another_copy_runs_on()
    {
        using var dir = new TempDir();
        var bin = CProgram.Build(dir, "dup-victim", Source, "-O1");
        var other = dir.File("dup-bystander");
        File.Copy(bin, other);
        File.SetUnixFileMode(other, File.GetUnixFileMode(bin));
        using var agent = new AgentProcess(new Dictionary<string, string> { ["k.yaml"] = Policy(bin) }, "--export-extensions");
        Assert.Contains("Policy kill-dups loaded", agent.Stderr);

        var killed = Run.Wait(bin, []);
        Assert.Equal((137, "before\n"), (killed.Code, killed.Stdout));
        var bystander = Run.Wait(other, []);
        Assert.Equal((0, "before\nafter 1\n"), (bystander.Code, bystander.Stdout));

        var ev = agent.Events.WaitFor(e => e.TryGetProperty("process_tracepoint", out var t) && t.GetProperty("policy_name").GetString() == "kill-dups",
            "the kill-dups event").GetProperty("process_tracepoint");
        Assert.Equal(bin, ev.GetProperty("process").GetProperty("binary").GetString());
        Assert.Equal("KPROBE_ACTION_NOTIFYENFORCER", ev.GetProperty("action").GetString());
        Assert.True(ev.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
    }
}
