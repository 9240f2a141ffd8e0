namespace SecurityAgent.Fanotify;

/// <summary>What the kernel was told: <see cref="Denied"/> (an enforcing rule matched: EPERM), <see cref="Allowed"/>
/// (a monitor rule matched: it would have been denied), or a default answered without a full decision.</summary>
public enum FanotifyVerdict { Denied, Allowed, DefaultDenied, DefaultAllowed }

/// <summary>Why an answer is a default: the decision took longer than the bound (<see cref="Timeout"/>), the event was
/// answered by the watchdog while the decision thread was busy (<see cref="Overload"/>), or deciding failed
/// (<see cref="Error"/>).</summary>
public enum DefaultReason { None, Timeout, Overload, Error }

/// <summary>One matched permission event, for the event pipeline (which turns it into a process_lsm policy event).
/// <paramref name="Pid"/> is the thread group id (fanotify reports either the tid or the tgid; the tgid makes the
/// agent's own-process check a comparison). <paramref name="Ktime"/> is CLOCK_BOOTTIME ns, as every event's time.</summary>
public sealed record FanotifyReport(
    string RuleId, int Pid, string Path, FileOperations Operation, RuleMode Mode,
    FanotifyVerdict Verdict, DefaultReason Reason, ulong Ktime)
{
    /// <summary>Whether the process got EPERM (the event's "enforced").</summary>
    public bool Enforced => Verdict is FanotifyVerdict.Denied or FanotifyVerdict.DefaultDenied;
}

/// <summary>Counters of one <see cref="FanotifyEnforcer"/> (a copy; every field only grows).</summary>
/// <param name="Events">Permission events read from the kernel.</param>
/// <param name="Allowed">Answered allow (including defaults and exempt processes).</param>
/// <param name="Denied">Answered deny (including fail-closed defaults).</param>
/// <param name="Exempt">Allowed without a decision: the agent itself, pid 1, kernel threads, processes outside the agent's pid namespace.</param>
/// <param name="Defaulted">Answered with the default, by <see cref="DefaultReason"/> (index 0 unused).</param>
/// <param name="LateDecisions">Decisions finished after the watchdog had answered with the default.</param>
/// <param name="ReportsDropped">Reports not handed to the callback because its queue was full.</param>
/// <param name="LatencyBuckets">Answers by time from read to answer: ≤10 µs, ≤100 µs, ≤1 ms, ≤10 ms, ≤100 ms, ≤1 s, more.</param>
public sealed record FanotifyStats(
    long Events, long Allowed, long Denied, long Exempt, IReadOnlyList<long> Defaulted, long LateDecisions,
    long Reports, long ReportsDropped, IReadOnlyList<long> LatencyBuckets, long MaxLatencyNs)
{
    public long DefaultedBy(DefaultReason r) => Defaulted[(int)r];
}

internal sealed class FanotifyCounters
{
    public long Events, Allowed, Denied, Exempt, LateDecisions, Reports, ReportsDropped, MaxLatencyNs;
    public readonly long[] Defaulted = new long[4];
    public readonly long[] Latency = new long[7];

    public void OnAnswer(bool deny, DefaultReason reason, long latencyNs)
    {
        Interlocked.Increment(ref deny ? ref Denied : ref Allowed);
        if (reason != DefaultReason.None) Interlocked.Increment(ref Defaulted[(int)reason]);
        int bucket = 0;
        for (long limit = 10_000; bucket < Latency.Length - 1 && latencyNs > limit; limit *= 10) bucket++;
        Interlocked.Increment(ref Latency[bucket]);
        long max;
        while (latencyNs > (max = Volatile.Read(ref MaxLatencyNs)) && Interlocked.CompareExchange(ref MaxLatencyNs, latencyNs, max) != max) { }
    }

    public FanotifyStats Snapshot() => new(
        Volatile.Read(ref Events), Volatile.Read(ref Allowed), Volatile.Read(ref Denied), Volatile.Read(ref Exempt),
        Defaulted.ToArray(), Volatile.Read(ref LateDecisions), Volatile.Read(ref Reports),
        Volatile.Read(ref ReportsDropped), Latency.ToArray(), Volatile.Read(ref MaxLatencyNs));
}
