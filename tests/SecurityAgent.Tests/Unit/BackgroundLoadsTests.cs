using SecurityAgent.Bpf;
using SecurityAgent.Interop;

namespace SecurityAgent.Tests.Unit;

public class BackgroundLoadsTests
{
    [Fact]
    public async Task Background_loads_run_at_nice_19_until_raised_and_then_at_the_process_priority()
    {
        int normal = Libc.ThreadNice();
        var loads = new BackgroundLoads();
        using var gate = new ManualResetEventSlim();

        Assert.Equal(19, await ParallelLoad.Start(Libc.ThreadNice, loads));
        // A load begun from one of them (the policy objects loaded side by side) is one of them.
        Assert.Equal(19, await ParallelLoad.Start(() => ParallelLoad.Start(Libc.ThreadNice).GetAwaiter().GetResult(), loads));
        var running = ParallelLoad.Start(() => { gate.Wait(); return Libc.ThreadNice(); }, loads);

        loads.Raise();
        gate.Set();
        Assert.Equal(normal, await running);
        Assert.Equal(normal, await ParallelLoad.Start(Libc.ThreadNice, loads));
    }

    [Fact]
    public async Task What_runs_after_a_background_load_on_its_thread_has_the_process_priority()
    {
        // Continuations of the load's task run on its thread, and the threads they create inherit its priority.
        int normal = Libc.ThreadNice();
        var after = ParallelLoad.Start(() => 0, new BackgroundLoads())
            .ContinueWith(_ => Libc.ThreadNice(), TaskContinuationOptions.ExecuteSynchronously);
        Assert.Equal(normal, await after);
    }

    [Fact]
    public async Task A_load_outside_the_background_ones_keeps_the_process_priority()
    {
        Assert.Equal(Libc.ThreadNice(), await ParallelLoad.Start(Libc.ThreadNice));
    }
}
