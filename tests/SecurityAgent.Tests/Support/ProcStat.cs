namespace SecurityAgent.Tests.Support;

/// <summary>Readings from /proc/PID/stat.</summary>
public static class ProcStat
{
    private static readonly double TicksPerSecond = 100; // USER_HZ on Linux x86-64

    /// <summary>utime + stime of every thread of the process, in seconds.</summary>
    public static double CpuSeconds(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // f[0] is field 3 (state): utime is field 14, stime field 15.
        return (long.Parse(f[11]) + long.Parse(f[12])) / TicksPerSecond;
    }

    /// <summary>Resident set size (VmRSS of /proc/PID/status), in MB.</summary>
    public static double RssMb(int pid) =>
        long.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:"))["VmRSS:".Length..].Trim().Split(' ')[0]) / 1024.0;
}
