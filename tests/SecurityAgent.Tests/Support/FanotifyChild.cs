using SecurityAgent.Fanotify;

namespace SecurityAgent.Tests.Support;

/// <summary>`SecurityAgent.Tests.dll --fanotify-child PREFIX`: holds a fanotify group whose decision never finishes
/// (the predicate blocks), so a test can kill this process with SIGKILL mid-decision and see the kernel release the
/// opener. Prints "ready" once the marks are in, "deciding PID" when an open is waiting for it.</summary>
public static class FanotifyChild
{
    private sealed class Blocks : IProcessPredicate
    {
        public bool Matches(IProcessView process)
        {
            Console.WriteLine($"deciding {process.Pid}");
            Thread.Sleep(Timeout.Infinite);
            return true;
        }
    }

    public static string Dll => typeof(FanotifyChild).Assembly.Location;

    public static int Run(string prefix)
    {
        using var enforcer = FanotifyEnforcer.Start(
            [new FanotifyRule("held", FileOperations.Open, [new PathFilter(StringOp.Prefix, [prefix])], new Blocks(), FailMode: FailMode.Closed)],
            _ => { },
            new FanotifyOptions { DecisionTimeout = TimeSpan.FromHours(1) });
        Console.WriteLine("ready");
        Thread.Sleep(Timeout.Infinite);
        return 0;
    }
}
