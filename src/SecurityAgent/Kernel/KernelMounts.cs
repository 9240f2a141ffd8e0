using System.Runtime.InteropServices;
using SecurityAgent.Interop;

namespace SecurityAgent.Kernel;

/// <summary>The pseudo file systems the agent reads: mounted on demand when missing (as root).</summary>
public static class KernelMounts
{
    public const string TraceFs = "/sys/kernel/tracing";
    public const string SecurityFs = "/sys/kernel/security";
    public const string BpfFs = "/sys/fs/bpf";

    public static void EnsureTraceFs() => Ensure("tracefs", TraceFs, probe: Path.Combine(TraceFs, "events"));
    /// <summary>For read-only tools: mounts tracefs when allowed, otherwise leaves it to the caller.</summary>
    public static void TryEnsureTraceFs()
    {
        try { EnsureTraceFs(); } catch (IOException) { }
    }

    public static void EnsureSecurityFs() => Ensure("securityfs", SecurityFs, probe: Path.Combine(SecurityFs, "lsm"));
    public static void EnsureBpfFs() => Ensure("bpf", BpfFs, probe: null);

    private static void Ensure(string fstype, string target, string? probe)
    {
        if (probe is not null ? Path.Exists(probe) : IsMountPoint(target, fstype))
            return;
        if (!Directory.Exists(target))
            return;
        if (Libc.mount(fstype, target, fstype, 0, 0) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != Errno.EBUSY)
                throw new IOException($"mount -t {fstype} {target} failed: {Errno.Name(errno)}");
        }
    }

    public static bool IsMountPoint(string target, string fstype) =>
        File.ReadLines("/proc/self/mountinfo").Any(l =>
        {
            var parts = l.Split(' ');
            int sep = Array.IndexOf(parts, "-");
            return parts.Length > 4 && parts[4] == target && sep > 0 && parts[sep + 1] == fstype;
        });

    /// <summary>Where the cgroup v2 hierarchy is mounted (unified or hybrid), or null.</summary>
    public static string? Cgroup2Mount() =>
        File.ReadLines("/proc/self/mountinfo")
            .Select(l => l.Split(' '))
            .Where(p => { int sep = Array.IndexOf(p, "-"); return sep > 0 && p[sep + 1] == "cgroup2"; })
            .Select(p => p[4])
            .OrderBy(p => p.Length)
            .FirstOrDefault();
}
