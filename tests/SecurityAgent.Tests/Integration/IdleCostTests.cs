using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>The one cost check that belongs in the test suite: an idle agent must not spin. It asserts the
/// absence of a busy loop (CPU time far below the window), not a speed; speed is measured by `make bench`.</summary>
[Collection("kernel")]
public class IdleCostTests
{
    [Fact]
    public void An_idle_agent_with_the_shipped_policies_uses_almost_no_cpu()
    {
        var policies = Directory.GetFiles(Repo.File_("policies"), "*.yaml").ToDictionary(f => Path.GetFileName(f), File.ReadAllText);
        using var agent = new AgentProcess(policies);
        Thread.Sleep(1000); // start-up work (JIT, /proc scan) is over
        var (cpu0, wall0) = (ProcStat.CpuSeconds(agent.Pid), DateTime.UtcNow);
        Thread.Sleep(5000);
        var (cpu1, wall1) = (ProcStat.CpuSeconds(agent.Pid), DateTime.UtcNow);
        double share = (cpu1 - cpu0) / (wall1 - wall0).TotalSeconds;
        Assert.True(share < 0.10, $"the idle agent used {share:P1} of a core over {(wall1 - wall0).TotalSeconds:F1} s: something spins");
    }

    /// <summary>Each wake-up of a thread is a voluntary context switch: on its 80 ms timer the event thread would switch
    /// at least 60 times in 5 s; waiting for the kernel, about once a second and once or twice per batch of events (the
    /// host's own execs, which the lifecycle sensor reports, are the only ones in a quiet window).</summary>
    [Fact]
    public void An_idle_agents_event_thread_waits_for_the_kernel_to_wake_it_and_an_exec_after_the_quiet_spell_is_exported()
    {
        using var dir = new TempDir();
        var tool = dir.CopyBinary("/usr/bin/true", "after-quiet");
        using var agent = new AgentProcess();
        Assert.True(agent.WaitForLog("Policy programs loaded", 60_000), agent.Stderr);
        Thread.Sleep(1000);
        int tid = Directory.GetDirectories($"/proc/{agent.Pid}/task").Select(t => int.Parse(Path.GetFileName(t)))
            .Single(t => File.ReadAllText($"/proc/{agent.Pid}/task/{t}/comm").Trim() == "secagent events");
        long Switches() => long.Parse(File.ReadLines($"/proc/{agent.Pid}/task/{tid}/status")
            .First(l => l.StartsWith("voluntary_ctxt_switches:"))["voluntary_ctxt_switches:".Length..].Trim());
        int Exported() => agent.Events.All.Count;

        var (switches0, exported0) = (Switches(), Exported());
        Thread.Sleep(5000);
        var (switches, exported) = (Switches() - switches0, Exported() - exported0);
        Assert.True(switches < 25 + 2 * exported, $"the event thread woke {switches} times in 5 s for {exported} events: it polls on its timer");

        Assert.Equal(0, Run.Wait(tool, ["late-one"]).Code);
        agent.Events.WaitFor(e => ExportedEvents.IsExecOf(e, "late-one"), "the exec after the quiet spell");
    }
}
