using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>A burst of events reaches the export file in batches: the kernel wakes the agent once per batch of pending
/// bytes and the agent writes whole batches, so the write() calls are counted in tens, not one per few events. Counts
/// syscalls (/proc/PID/io), not time.</summary>
[Collection("kernel")]
public class EventBatchingTests
{
    [Fact]
    public void Twenty_thousand_matching_opens_are_all_exported_in_a_few_large_writes()
    {
        using var dir = new TempDir();
        var loop = dir.CopyBinary(Repo.File_("build", "bench", "openloop"), "openloop");
        var watched = dir.File("watched.txt");
        File.WriteAllText(watched, "x\n");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["p.yaml"] = TestPolicies.OpenatKill("batching", loop, watched, mode: "monitor") });
        long writes0 = Writes(agent.Pid);

        const int Opens = 20_000;
        var r = Run.Wait(loop, [watched, Opens.ToString()]);
        Assert.Equal((0, $"{Opens}\n"), (r.Code, r.Stdout));
        int exported = 0;
        for (var until = DateTime.UtcNow.AddSeconds(10); DateTime.UtcNow < until && exported < Opens; Thread.Sleep(100))
            exported = agent.Events.Where(e => e.TryGetProperty("process_tracepoint", out var b) && b.GetProperty("policy_name").GetString() == "batching").Count;
        long writes = Writes(agent.Pid) - writes0;

        Assert.Equal(Opens, exported);
        Assert.True(writes <= Opens / 100, $"{writes} write() calls for {Opens} events: the agent is woken (or writes) every few events");
    }

    private static long Writes(int pid) =>
        long.Parse(File.ReadLines($"/proc/{pid}/io").First(l => l.StartsWith("syscw:")).Split(':')[1].Trim());
}
