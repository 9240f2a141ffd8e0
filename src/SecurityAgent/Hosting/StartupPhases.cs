using System.Diagnostics;
using System.Text;

namespace SecurityAgent.Hosting;

/// <summary>Where start-up time goes: milliseconds since the process started at each phase's end, logged once at
/// "Agent ready" (debug level: SECAGENT_Logging__LogLevel__Default=Debug). Measured for issue 10.</summary>
public sealed class StartupPhases
{
    private readonly StringBuilder _text = new();
    private readonly DateTime _processStart = Process.GetCurrentProcess().StartTime.ToUniversalTime();

    /// <summary>Marks the end of a phase (from any of the start-up threads).</summary>
    public void Mark(string phase)
    {
        lock (_text)
            _text.Append(_text.Length == 0 ? "" : ", ").Append(phase).Append(' ').Append((int)(DateTime.UtcNow - _processStart).TotalMilliseconds);
    }

    public override string ToString()
    {
        lock (_text) return _text.ToString();
    }
}
