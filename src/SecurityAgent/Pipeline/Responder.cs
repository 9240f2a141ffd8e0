using System.Runtime.InteropServices;
using SecurityAgent.Interop;
using SecurityAgent.Processes;

namespace SecurityAgent.Pipeline;

/// <summary>User-space enforcement: signals a process through a pidfd, so a recycled pid is never hit.
/// Refuses pid 1, kernel threads and the agent itself, whatever a policy says.</summary>
public static class Responder
{
    public enum Outcome { Sent, Refused, Gone }

    public static Outcome Signal(ProcessInfo p, int signal, long clockTickNs)
    {
        if (!MaySignal(p.Pid)) return Outcome.Refused;
        int fd = Libc.PidfdOpen(p.Pid);
        if (fd < 0) return Outcome.Gone;
        try
        {
            // The pidfd pins the process: if its start time is still the one we know, it is the same process.
            var stat = ProcFsScanner.ParseStat(File.ReadAllText($"/proc/{p.Pid}/stat"));
            if (stat.StartTicks != p.StartTime / (ulong)clockTickNs)
                return Outcome.Gone;
            return Libc.PidfdSendSignal(fd, signal) == 0 ? Outcome.Sent
                : Marshal.GetLastPInvokeError() == Errno.ESRCH ? Outcome.Gone : Outcome.Refused;
        }
        catch (IOException)
        {
            return Outcome.Gone;
        }
        finally
        {
            Libc.close(fd);
        }
    }

    /// <summary>Never pid 1, the agent, or a kernel thread (PF_KTHREAD in /proc/PID/stat flags).</summary>
    public static bool MaySignal(int pid)
    {
        if (pid <= 1 || pid == Environment.ProcessId) return false;
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (ulong.Parse(fields[6]) & Events.Contract.PfKthread) == 0; // field 9: flags
        }
        catch (IOException)
        {
            return false;
        }
    }
}
