using System.Diagnostics;

namespace SecurityAgent.Tests.Support;

/// <summary>Waiting for something the agent does asynchronously.</summary>
public static class Poll
{
    /// <summary>Whether <paramref name="condition"/> held at some look within <paramref name="timeout"/>, looking every
    /// <paramref name="everyMs"/> (a condition that runs a process looks less often).</summary>
    public static bool Within(TimeSpan timeout, Func<bool> condition, int everyMs = 20)
    {
        for (var sw = Stopwatch.StartNew(); sw.Elapsed < timeout; Thread.Sleep(everyMs))
            if (condition()) return true;
        return false;
    }
}
