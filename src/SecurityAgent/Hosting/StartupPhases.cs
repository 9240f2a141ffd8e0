using System.Diagnostics;
using System.Text;
using SecurityAgent.Interop;

namespace SecurityAgent.Hosting;

/// <summary>Where start-up time goes, logged once at "Agent ready" (debug level:
/// SECAGENT_Logging__LogLevel__Default=Debug): per phase, the milliseconds since the process started at its end, the
/// process's CPU time then, and the CPU time the marking thread spent since its previous mark (or since it started:
/// the loading threads are threads of their own, so that is the phase's cost). Measured for issue 10.</summary>
public sealed class StartupPhases
{
    private readonly StringBuilder _text = new();
    private readonly DateTime _processStart = Process.GetCurrentProcess().StartTime.ToUniversalTime();
    [ThreadStatic] private static long t_lastThreadCpuNs;

    /// <summary>Marks the end of a phase (from any of the start-up threads).</summary>
    public void Mark(string phase)
    {
        long thread = Libc.ClockNs(Libc.CLOCK_THREAD_CPUTIME_ID);
        long threadMs = (thread - t_lastThreadCpuNs) / 1_000_000;
        t_lastThreadCpuNs = thread;
        var wall = (int)(DateTime.UtcNow - _processStart).TotalMilliseconds;
        var cpu = (int)Environment.CpuUsage.TotalTime.TotalMilliseconds;
        lock (_text)
            _text.Append(_text.Length == 0 ? "" : ", ").Append(phase).Append(' ').Append(wall)
                .Append(" (cpu ").Append(cpu).Append(", thread ").Append(threadMs)
                .Append(", jit ").Append(System.Runtime.JitInfo.GetCompiledMethodCount()).Append(')');
    }

    public override string ToString()
    {
        lock (_text) return _text.ToString();
    }
}
