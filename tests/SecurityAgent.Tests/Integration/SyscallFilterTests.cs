using System.Text.Json;
using SecurityAgent.Kernel;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>raw_syscalls/sys_enter fires on every syscall of every process; a policy whose selector wants one syscall number
/// turns the others away before its selectors run (the point's syscall filter), and still sees each call of that one.</summary>
[Collection("kernel")]
public class SyscallFilterTests
{
    // personality(0xffffffff) only queries the persona; the getppid calls are the syscalls the filter must turn away.
    private const string Source = """
        #include <stdio.h>
        #include <unistd.h>
        #include <sys/syscall.h>
        int main(void)
        {
            for (int i = 0; i < 3; i++)
                syscall(SYS_personality, 0xffffffffUL);
            for (int i = 0; i < 20000; i++)
                syscall(SYS_getppid);
            printf("done\n");
            return 0;
        }
        """;

    [RequiresKernel(Mechanism.Tracepoint)]
    public void A_raw_sys_enter_policy_on_one_syscall_reports_each_call_of_it_and_the_kernel_counts_no_other_syscall_as_seen()
    {
        using var dir = new TempDir();
        var bin = CProgram.Build(dir, "personality3", Source, "-O2");
        var stats = dir.File("stats.json");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = Ia32SyscallTests.Policy("personality-calls", bin, "sys_personality") }, "--stats-file", stats);

        Assert.Equal((0, "done\n"), (Run.Wait(bin, []).Code, Run.Wait(bin, []).Stdout));
        for (var deadline = DateTime.UtcNow.AddSeconds(10); DateTime.UtcNow < deadline && agent.Events.Where(IsPersonality).Count < 6; Thread.Sleep(100)) { }
        Thread.Sleep(300); // and nothing more
        var events = agent.Events.Where(IsPersonality);
        Assert.Equal(6, events.Count);
        Assert.All(events, e => Assert.Equal(135, e.GetProperty("process_tracepoint").GetProperty("args")[0].GetProperty("syscall_id").GetProperty("id").GetInt32()));

        // The stats file is rewritten about once a second: wait for one that counts the calls.
        JsonElement hook = default;
        for (var deadline = DateTime.UtcNow.AddSeconds(10); DateTime.UtcNow < deadline; Thread.Sleep(200))
            if (File.Exists(stats) && TryHook(stats, out hook) && hook.GetProperty("matched").GetInt64() >= 6)
                break;
        Assert.Equal(6, hook.GetProperty("matched").GetInt64());
        // Without the filter every syscall of every process is seen: the two runs alone make 40,000 getppid calls.
        var seen = hook.GetProperty("seen").GetInt64();
        Assert.InRange(seen, 6, 2000);
    }

    private static bool IsPersonality(JsonElement e) =>
        e.TryGetProperty("process_tracepoint", out var t) && t.GetProperty("policy_name").GetString() == "personality-calls";

    private static bool TryHook(string stats, out JsonElement hook)
    {
        hook = default;
        try
        {
            var hooks = JsonDocument.Parse(File.ReadAllText(stats)).RootElement.GetProperty("hooks");
            if (hooks.GetArrayLength() == 0)
                return false;
            hook = hooks[0].Clone();
            return true;
        }
        catch (JsonException)
        {
            return false; // caught mid-write
        }
    }
}
