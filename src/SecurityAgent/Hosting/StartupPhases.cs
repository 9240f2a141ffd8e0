using System.Diagnostics;
using System.Text;
using SecurityAgent.Interop;

namespace SecurityAgent.Hosting;

/// <summary>Where start-up time goes, logged once at "Agent ready" (debug level:
/// SECAGENT_Logging__LogLevel__Default=Debug): per phase, the milliseconds since the process started at its end, the
/// process's CPU time then, and the CPU time the marking thread spent since its previous mark (or since it started:
/// the loading threads are threads of their own, so that is the phase's cost). Measured for issue 10. A mark only
/// reads clocks; the process's start time (~20 ms the first time: System.Diagnostics.Process) is asked when the text
/// is made, after "ready".</summary>
public sealed class StartupPhases
{
    private readonly List<(string Phase, DateTime At, int CpuMs, long ThreadMs, long Jit)> _marks = [];
    [ThreadStatic] private static long t_lastThreadCpuNs;

    /// <summary>Marks the end of a phase (from any of the start-up threads).</summary>
    public void Mark(string phase)
    {
        long thread = Libc.ClockNs(Libc.CLOCK_THREAD_CPUTIME_ID);
        long threadMs = (thread - t_lastThreadCpuNs) / 1_000_000;
        t_lastThreadCpuNs = thread;
        var mark = (phase, DateTime.UtcNow, (int)Environment.CpuUsage.TotalTime.TotalMilliseconds, threadMs, System.Runtime.JitInfo.GetCompiledMethodCount());
        lock (_marks) _marks.Add(mark);
    }

    public override string ToString()
    {
        using var self = Process.GetCurrentProcess();
        var start = self.StartTime.ToUniversalTime();
        var text = new StringBuilder();
        lock (_marks)
            foreach (var m in _marks)
                text.Append(text.Length == 0 ? "" : ", ").Append(m.Phase).Append(' ').Append((int)(m.At - start).TotalMilliseconds)
                    .Append(" (cpu ").Append(m.CpuMs).Append(", thread ").Append(m.ThreadMs).Append(", jit ").Append(m.Jit).Append(')');
        return text.ToString();
    }
}
