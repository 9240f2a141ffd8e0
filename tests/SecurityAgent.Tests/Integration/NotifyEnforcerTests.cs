using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>spec.enforcers + NotifyEnforcer on this kernel, scoped to programs the test builds: as in Tetragon's
/// killer.yaml (raw_syscalls/sys_enter notifies for dup/dup2 and the process is killed before the call returns), and
/// with Tetragon's "next enforced call" meaning (an open notifies, the enforcer program kills at the next dup).</summary>
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

    private const string OpenThenDupSource = """
        #include <fcntl.h>
        #include <stdio.h>
        #include <unistd.h>

        int main(int argc, char **argv)
        {
            int f = open(argv[1], O_RDONLY);
            printf("opened %d\n", f >= 0);
            fflush(stdout);
            if (argc > 2)
                getppid(); /* the policy's cleanup hook */
            int fd = dup(1);
            printf("after %d\n", fd >= 0);
            fflush(stdout);
            return 0;
        }
        """;

    private static string OpenNotifiesPolicy(string bin, string marker) => $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: open-then-dup
        spec:
          enforcers:
          - calls: ["sys_dup"]
          tracepoints:
          - subsystem: syscalls
            event: sys_enter_openat
            args:
            - index: 6
              type: string
            selectors:
            - matchArgs:
              - index: 6
                operator: Equal
                values: ["{marker}"]
              matchBinaries:
              - operator: In
                values: ["{bin}"]
              matchActions:
              - action: NotifyEnforcer
                argSig: 9
          - subsystem: syscalls
            event: sys_enter_getppid
            selectors:
            - matchBinaries:
              - operator: In
                values: ["{bin}"]
              matchActions:
              - action: CleanupEnforcerNotification
        """;

    [Fact]
    public void An_open_notifies_and_the_program_is_killed_at_its_next_dup_not_before_unless_a_cleanup_hook_ran_between_and_another_copy_runs_on()
    {
        using var dir = new TempDir();
        var bin = CProgram.Build(dir, "open-dup-victim", OpenThenDupSource, "-O1");
        var other = dir.File("open-dup-bystander");
        File.Copy(bin, other);
        File.SetUnixFileMode(other, File.GetUnixFileMode(bin));
        var marker = dir.File("marker");
        File.WriteAllText(marker, "x");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["n.yaml"] = OpenNotifiesPolicy(bin, marker) }, "--export-extensions");
        Assert.Contains("Policy open-then-dup loaded", agent.Stderr);

        // The open itself runs and returns, the printf's write runs (not an enforced call), the dup is where it dies.
        var killed = Run.Wait(bin, [marker]);
        Assert.Equal((137, "opened 1\n"), (killed.Code, killed.Stdout));
        // Not notified (another path): nothing happens at its dup.
        var notNotified = Run.Wait(bin, [dir.File("other")]);
        Assert.Equal((0, "opened 0\nafter 1\n"), (notNotified.Code, notNotified.Stdout));
        var bystander = Run.Wait(other, [marker]);
        Assert.Equal((0, "opened 1\nafter 1\n"), (bystander.Code, bystander.Stdout));
        // CleanupEnforcerNotification (at getppid, between the open and the dup) drops the notification: the dup runs.
        var cleaned = Run.Wait(bin, [marker, "clean"]);
        Assert.Equal((0, "opened 1\nafter 1\n"), (cleaned.Code, cleaned.Stdout));

        var ev = agent.Events.WaitFor(e => e.TryGetProperty("process_tracepoint", out var t) && t.GetProperty("policy_name").GetString() == "open-then-dup",
            "the open-then-dup event").GetProperty("process_tracepoint");
        Assert.Equal(bin, ev.GetProperty("process").GetProperty("binary").GetString());
        Assert.Equal("KPROBE_ACTION_NOTIFYENFORCER", ev.GetProperty("action").GetString());
        Assert.Equal(marker, ev.GetProperty("args")[0].GetProperty("string_arg").GetString());
        var exit = agent.Events.WaitFor(e => e.TryGetProperty("process_exit", out var x) && x.GetProperty("process").GetProperty("binary").GetString() == bin
            && x.TryGetProperty("signal", out var sig) && sig.GetString() == "SIGKILL", "the victim's exit by SIGKILL");
        Assert.NotEqual(default, exit);
    }
}
