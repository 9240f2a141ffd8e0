using SecurityAgent.Pipeline;

namespace SecurityAgent.Tests.Unit;

public class ResponderTests
{
    [Fact]
    public void The_agent_refuses_to_signal_pid_1_itself_and_kernel_threads()
    {
        Assert.False(Responder.MaySignal(1));
        Assert.False(Responder.MaySignal(Environment.ProcessId));
        Assert.False(Responder.MaySignal(2)); // kthreadd
        Assert.False(Responder.MaySignal(0));
    }

    [Fact]
    public void An_ordinary_process_started_by_the_test_may_be_signalled()
    {
        using var p = Support.Run.Start("/usr/bin/sleep", ["5"]);
        try { Assert.True(Responder.MaySignal(p.Id)); }
        finally { p.Kill(); }
    }
}
