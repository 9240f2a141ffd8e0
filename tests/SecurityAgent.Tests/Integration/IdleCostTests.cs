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
}
