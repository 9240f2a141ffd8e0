using System.Runtime.InteropServices;

namespace SecurityAgent.Interop;

/// <summary>The few libc calls the agent needs (Tmds.LibC is not available here).</summary>
internal static unsafe partial class Libc
{
    private const string Lib = "libc.so.6";

    internal const int CLOCK_REALTIME = 0;
    internal const int CLOCK_BOOTTIME = 7;
    private const long SYS_pidfd_open = 434;
    private const long SYS_pidfd_send_signal = 424;

    [StructLayout(LayoutKind.Sequential)]
    internal struct Timespec
    {
        public long tv_sec;
        public long tv_nsec;
    }

    [LibraryImport(Lib, EntryPoint = "clock_gettime", SetLastError = true)]
    internal static partial int clock_gettime(int clock, Timespec* ts);

    [LibraryImport(Lib, EntryPoint = "vsnprintf")]
    internal static partial int vsnprintf(byte* buf, nuint size, byte* format, nint args);

    [LibraryImport(Lib, EntryPoint = "mount", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int mount(string source, string target, string fstype, ulong flags, nint data);

    [LibraryImport(Lib, EntryPoint = "geteuid")]
    internal static partial uint geteuid();

    [LibraryImport(Lib, EntryPoint = "sysconf")]
    internal static partial long sysconf(int name);

    [LibraryImport(Lib, EntryPoint = "syscall", SetLastError = true)]
    private static partial long syscall(long number, long a1, long a2, long a3, long a4);

    [LibraryImport(Lib, EntryPoint = "stat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int stat(string path, byte* buf);

    /// <summary>st_ino of a path (x86-64 struct stat: st_dev u64, then st_ino u64). A cgroup v2 directory's
    /// inode is its cgroup id, the value BPF's bpf_get_current_cgroup_id() returns.</summary>
    internal static ulong Inode(string path)
    {
        byte* buf = stackalloc byte[256];
        if (stat(path, buf) != 0)
            throw new IOException($"stat({path}) failed: {Errno.Name(Marshal.GetLastPInvokeError())}");
        return *(ulong*)(buf + 8);
    }

    /// <summary>The kernel's identity of a regular file (following symlinks): its superblock's s_dev
    /// (major &lt;&lt; 20 | minor, not glibc's dev_t encoding) and inode number; false when it is not one.</summary>
    internal static bool TryFileId(string path, out uint dev, out ulong ino)
    {
        byte* buf = stackalloc byte[256];
        (dev, ino) = (0, 0);
        if (stat(path, buf) != 0 || (*(uint*)(buf + 24) & 0xF000) != 0x8000) // st_mode: S_IFREG
            return false;
        ulong d = *(ulong*)buf;
        ulong major = ((d >> 8) & 0xfff) | ((d >> 32) & ~0xfffUL), minor = (d & 0xff) | ((d >> 12) & ~0xffUL);
        dev = (uint)(major << 20 | minor);
        ino = *(ulong*)(buf + 8);
        return true;
    }

    [LibraryImport(Lib, EntryPoint = "close")]
    internal static partial int close(int fd);

    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int open(string path, int flags);

    internal const int O_RDONLY = 0;
    internal const int O_DIRECTORY = 0x10000;
    internal const int O_CLOEXEC = 0x80000;
    internal const int _SC_CLK_TCK = 2;

    internal static long ClockNs(int clock)
    {
        Timespec ts;
        if (clock_gettime(clock, &ts) != 0)
            throw new InvalidOperationException($"clock_gettime({clock}) failed: errno {Marshal.GetLastPInvokeError()}");
        return ts.tv_sec * 1_000_000_000L + ts.tv_nsec;
    }

    /// <summary>A directory opened for its fd (e.g. a cgroup, to attach programs to it).</summary>
    internal static Microsoft.Win32.SafeHandles.SafeFileHandle OpenDirectory(string path)
    {
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            throw new IOException($"open({path}) failed: {Errno.Name(Marshal.GetLastPInvokeError())}");
        return new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
    }

    [LibraryImport(Lib, EntryPoint = "fanotify_init", SetLastError = true)]
    internal static partial int fanotify_init(uint flags, uint eventFlags);

    [LibraryImport(Lib, EntryPoint = "fanotify_mark", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int fanotify_mark(int fd, uint flags, ulong mask, int dirfd, string path);

    internal const uint FAN_CLASS_CONTENT = 0x4;
    internal const uint FAN_CLOEXEC = 0x1;
    internal const uint FAN_MARK_ADD = 0x1;
    internal const ulong FAN_OPEN_PERM = 0x10000;
    internal const int AT_FDCWD = -100;

    internal static int PidfdOpen(int pid) => (int)syscall(SYS_pidfd_open, pid, 0, 0, 0);

    internal static int PidfdSendSignal(int pidfd, int signal) => (int)syscall(SYS_pidfd_send_signal, pidfd, signal, 0, 0);
}
