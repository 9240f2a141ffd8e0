using System.Text.Json;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>kernelStackTrace / userStackTrace on the hooks this kernel runs (syscall kprobes on tracepoints, uprobes,
/// raw tracepoints), against a small C program compiled with frame pointers into the test's temp dir; every policy
/// is scoped to that binary.</summary>
[Collection("kernel")]
public class StackTraceTests
{
    /// <summary>main -> sa_stack_outer -> sa_stack_inner, which makes the getppid syscall itself (no libc frame in
    /// between) and calls sa_stack_probe (the uprobe target); then it stays 2 s, as user addresses are symbolised
    /// through the live process's maps (as in Tetragon).</summary>
    private const string Source = """
        #include <stdio.h>
        #include <unistd.h>
        #include <sys/syscall.h>

        __attribute__((noinline)) int sa_stack_probe(int v)
        {
            __asm__ __volatile__("" ::: "memory");
            return v + 1;
        }

        __attribute__((noinline)) long sa_stack_inner(int v)
        {
            long ret;
            __asm__ __volatile__("syscall" : "=a"(ret) : "0"((long)SYS_getppid) : "rcx", "r11", "memory");
            return ret + sa_stack_probe(v);
        }

        __attribute__((noinline)) long sa_stack_outer(int v)
        {
            long r = sa_stack_inner(v);
            __asm__ __volatile__("" ::: "memory");
            return r + 1;
        }

        int main(void)
        {
            printf("%ld\n", sa_stack_outer(1) > 0);
            fflush(stdout);
            sleep(2); /* user stacks are symbolised from /proc/PID/maps: the process must still be there */
            return 0;
        }
        """;

    private static string Policy(string bin) => $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: stacks-getppid
        spec:
          kprobes:
          - call: sys_getppid
            syscall: true
            selectors:
            - matchBinaries:
              - operator: In
                values: ["{bin}"]
              matchActions:
              - action: Post
                kernelStackTrace: true
                userStackTrace: true
          uprobes:
          - path: "{bin}"
            symbols: ["sa_stack_probe"]
            selectors:
            - matchActions:
              - action: Post
                userStackTrace: true
          tracepoints:
          - subsystem: raw_syscalls
            event: sys_exit
            raw: true
            selectors:
            - matchBinaries:
              - operator: In
                values: ["{bin}"]
              matchActions:
              - action: Post
                kernelStackTrace: true
        """;

    private static List<JsonElement> Bodies(AgentProcess agent, string type) =>
        agent.Events.Where(e => e.TryGetProperty(type, out var b) && b.GetProperty("policy_name").GetString() == "stacks-getppid")
            .Select(e => e.GetProperty(type)).ToList();

    private static List<(string? Symbol, string? Module, bool HasAddress, bool HasOffset)> Frames(JsonElement body, string field) =>
        body.GetProperty(field).EnumerateArray().Select(f => (
            f.TryGetProperty("symbol", out var s) ? s.GetString() : null,
            f.TryGetProperty("module", out var m) ? m.GetString() : null,
            f.TryGetProperty("address", out _),
            f.TryGetProperty("offset", out _))).ToList();

    [Fact]
    public void Stack_traces_name_the_kernel_functions_and_the_programs_own_functions_in_call_order()
    {
        using var dir = new TempDir();
        var bin = CProgram.Build(dir, "stack-target", Source, "-O1", "-fno-omit-frame-pointer", "-fno-inline");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["s.yaml"] = Policy(bin) }, "--export-extensions");
        Assert.Contains("Policy stacks-getppid loaded", agent.Stderr);

        var r = Run.Wait(bin, []);
        Assert.Equal((0, "1\n"), (r.Code, r.Stdout));
        agent.Events.WaitFor(e => e.TryGetProperty("process_exit", out var x) && x.GetProperty("process").GetProperty("binary").GetString() == bin, "exit of " + bin);
        Thread.Sleep(300);

        // The syscall: the kernel's entry path under the tracepoint, and the program's frames from the syscall up.
        var kprobe = Assert.Single(Bodies(agent, "process_kprobe"));
        var kernel = Frames(kprobe, "kernel_stack_trace");
        Assert.Contains(kernel, f => f.Symbol == "do_syscall_64");
        Assert.All(kernel, f => Assert.False(f.HasAddress)); // addresses only with --expose-stack-addresses, as Tetragon
        Assert.All(kernel, f => Assert.NotNull(f.Symbol));
        var user = Frames(kprobe, "user_stack_trace");
        var own = user.Where(f => f.Module == bin).Select(f => f.Symbol).ToList();
        Assert.True(own.Take(3).SequenceEqual(["sa_stack_inner", "sa_stack_outer", "main"]), string.Join(", ", user));
        Assert.All(user.Where(f => f.Module == bin), f => Assert.True(f.HasOffset));

        // The uprobe at sa_stack_probe's entry: the probed function first, then its callers; no kernel stack asked.
        // Tetragon defines the stack fields on process_kprobe only: elsewhere they ride in the extension object, so a
        // strict parser of Tetragon's format still reads the event.
        var uprobeBody = Assert.Single(Bodies(agent, "process_uprobe"));
        Assert.False(uprobeBody.TryGetProperty("user_stack_trace", out _));
        var uprobe = uprobeBody.GetProperty("securityagent");
        Assert.False(uprobe.TryGetProperty("kernel_stack_trace", out _));
        // (At a function's entry its frame is not set up yet: whether its caller shows depends on the kernel's unwinder.)
        var probed = Frames(uprobe, "user_stack_trace").Where(f => f.Module == bin).Select(f => f.Symbol).ToList();
        Assert.Equal("sa_stack_probe", probed.FirstOrDefault());
        Assert.True(probed.IndexOf("sa_stack_outer") > 0 && probed.IndexOf("main") > probed.IndexOf("sa_stack_outer"), string.Join(" < ", probed));

        // The raw tracepoint (every syscall exit of the program): kernel stacks only, each through the syscall path.
        var raw = Bodies(agent, "process_tracepoint");
        Assert.NotEmpty(raw);
        Assert.All(raw, body =>
        {
            Assert.False(body.TryGetProperty("kernel_stack_trace", out _));
            var ev = body.GetProperty("securityagent");
            Assert.False(ev.TryGetProperty("user_stack_trace", out _));
            Assert.Contains(Frames(ev, "kernel_stack_trace"), f => f.Symbol == "do_syscall_64");
        });
    }
}
