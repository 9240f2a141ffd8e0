using System.Runtime.InteropServices;

namespace SecurityAgent.Interop;

/// <summary>The few libc calls the agent needs (Tmds.LibC is not available here).</summary>
internal static unsafe partial class Libc
{
    private const string Lib = "libc.so.6";

    internal const int CLOCK_REALTIME = 0;
    internal const int CLOCK_BOOTTIME = 7;
    internal const int CLOCK_THREAD_CPUTIME_ID = 3;
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

    private const int M_ARENA_MAX = -8;

    [LibraryImport(Lib, EntryPoint = "mallopt")]
    private static partial int mallopt(int param, int value);

    /// <summary>Caps glibc's malloc arenas (MALLOC_ARENA_MAX, which glibc reads before the runtime starts): threads
    /// started from now on share them instead of each reserving its own. False where the libc refuses.</summary>
    internal static bool LimitMallocArenas(int arenas) => mallopt(M_ARENA_MAX, arenas) == 1;

    [LibraryImport(Lib, EntryPoint = "vsnprintf")]
    internal static partial int vsnprintf(byte* buf, nuint size, byte* format, nint args);

    [LibraryImport(Lib, EntryPoint = "mount", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int mount(string source, string target, string fstype, ulong flags, nint data);

    internal const int EPOLL_CTL_ADD = 1, EPOLL_CTL_MOD = 3;
    internal const uint EPOLLIN = 0x001, EPOLLET = 1u << 31;

    /// <summary>struct epoll_event, packed on x86-64 as the kernel's uapi header declares it.</summary>
    [StructLayout(LayoutKind.Sequential, Pack = 4)]
    internal struct EpollEvent
    {
        public uint Events;
        public ulong Data;
    }

    [LibraryImport(Lib, EntryPoint = "epoll_ctl", SetLastError = true)]
    internal static partial int epoll_ctl(int epfd, int op, int fd, EpollEvent* ev);

    [LibraryImport(Lib, EntryPoint = "geteuid")]
    internal static partial uint geteuid();

    [LibraryImport(Lib, EntryPoint = "gettid")]
    internal static partial int gettid();

    private const int PRIO_PROCESS = 0;

    [LibraryImport(Lib, EntryPoint = "setpriority", SetLastError = true)]
    private static partial int setpriority(int which, uint who, int prio);

    [LibraryImport(Lib, EntryPoint = "getpriority", SetLastError = true)]
    private static partial int getpriority(int which, uint who);

    /// <summary>Sets one thread's nice value (Linux keeps it per thread; new threads inherit their creator's).</summary>
    internal static bool SetThreadNice(int tid, int nice) => setpriority(PRIO_PROCESS, (uint)tid, nice) == 0;

    /// <summary>The calling thread's nice value.</summary>
    internal static int ThreadNice()
    {
        Marshal.SetLastPInvokeError(0);
        int nice = getpriority(PRIO_PROCESS, 0); // -1 is also a valid value: errno tells
        return nice == -1 && Marshal.GetLastPInvokeError() != 0 ? 0 : nice;
    }

    [LibraryImport(Lib, EntryPoint = "malloc_trim")]
    internal static partial int malloc_trim(nuint pad);

    [LibraryImport(Lib, EntryPoint = "sysconf")]
    internal static partial long sysconf(int name);

    [LibraryImport(Lib, EntryPoint = "syscall", SetLastError = true)]
    private static partial long syscall(long number, long a1, long a2, long a3, long a4);

    /// <summary>Sets the calling thread's nice value (PRIO_PROCESS with a thread id: Linux applies it to that thread
    /// only). Returns the errno of a failure, 0 on success.</summary>
    internal static int SetThreadNice(int nice) => setpriority(PRIO_PROCESS, (uint)gettid(), nice) == 0 ? 0 : Marshal.GetLastPInvokeError();

    [LibraryImport(Lib, EntryPoint = "stat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int stat(string path, byte* buf);

    [LibraryImport(Lib, EntryPoint = "ftruncate", SetLastError = true)]
    private static partial int ftruncate(int fd, long length);

    [LibraryImport(Lib, EntryPoint = "write", SetLastError = true)]
    private static partial nint write(int fd, byte* buf, nuint count);

    /// <summary>write(2) until all is written or it fails; returns the bytes written and the errno of a failure (0: none).</summary>
    internal static long WriteAll(SafeHandle fd, ReadOnlySpan<byte> data, out int errno)
    {
        long done = 0;
        errno = 0;
        fixed (byte* p = data)
            while (done < data.Length)
            {
                nint n = write((int)fd.DangerousGetHandle(), p + done, (nuint)(data.Length - done));
                if (n > 0) { done += n; continue; }
                errno = n == 0 ? Errno.ENOSPC : Marshal.GetLastPInvokeError();
                if (errno == 4) { errno = 0; continue; } // EINTR
                break;
            }
        return done;
    }

    internal static void Ftruncate(SafeHandle fd, long length)
    {
        if (ftruncate((int)fd.DangerousGetHandle(), length) != 0)
            throw new IOException($"ftruncate failed: {Errno.Name(Marshal.GetLastPInvokeError())}");
    }

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
    /// (major &lt;&lt; 20 | minor, not glibc's dev_t encoding) and inode number; false when it is not one. On overlayfs
    /// the inode an open file has is the overlay's, but a file's st_dev there can be its layer's (layers on different
    /// file systems, no xino: a per-layer device), so the device is taken from the directory holding it, for which
    /// overlayfs always reports its own.</summary>
    internal static bool TryFileId(string path, out uint dev, out ulong ino)
    {
        byte* buf = stackalloc byte[256];
        (dev, ino) = (0, 0);
        if (stat(path, buf) != 0 || (*(uint*)(buf + 24) & 0xF000) != 0x8000) // st_mode: S_IFREG
            return false;
        ino = *(ulong*)(buf + 8);
        ulong d = *(ulong*)buf;
        if (statfs(path, buf) == 0 && *(long*)buf == OverlayfsSuperMagic) // f_type
        {
            if (RealPath(path) is not { } real || stat(real[..Math.Max(1, real.LastIndexOf('/'))], buf) != 0)
                return false;
            d = *(ulong*)buf;
        }
        ulong major = ((d >> 8) & 0xfff) | ((d >> 32) & ~0xfffUL), minor = (d & 0xff) | ((d >> 12) & ~0xffUL);
        dev = (uint)(major << 20 | minor);
        return true;
    }

    private const long OverlayfsSuperMagic = 0x794c7630;

    [LibraryImport(Lib, EntryPoint = "statfs", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statfs(string path, byte* buf);

    [LibraryImport(Lib, EntryPoint = "close")]
    internal static partial int close(int fd);

    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int open(string path, int flags);

    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags, uint mode);

    [LibraryImport(Lib, EntryPoint = "fstat", SetLastError = true)]
    private static partial int fstat(int fd, byte* buf);

    [LibraryImport(Lib, EntryPoint = "lstat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int lstat(string path, byte* buf);

    [LibraryImport(Lib, EntryPoint = "fchown", SetLastError = true)]
    private static partial int fchown(int fd, int owner, int group);

    [LibraryImport(Lib, EntryPoint = "open_by_handle_at", SetLastError = true)]
    private static partial int open_by_handle_at(int mountFd, byte* handle, int flags);

    internal const int O_WRONLY = 1, O_CREAT = 0x40, O_TRUNC = 0x200, O_APPEND = 0x400, O_NOFOLLOW = 0x20000, O_PATH = 0x200000;
    internal const int ELOOP = 40;

    /// <summary>The fields of struct stat (x86-64 layout) the agent checks on its own files.</summary>
    internal readonly record struct FileStat(ulong Inode, ulong Links, uint Mode, uint Uid, uint Gid, long Size)
    {
        public bool IsDirectory => (Mode & 0xF000) == 0x4000;
        public bool IsRegular => (Mode & 0xF000) == 0x8000;
        public bool IsSymlink => (Mode & 0xF000) == 0xA000;

        /// <summary>st_dev, in user space's encoding (glibc's makedev).</summary>
        public ulong Dev { get; init; }
    }

    private static FileStat Parse(byte* b) =>
        new(*(ulong*)(b + 8), *(ulong*)(b + 16), *(uint*)(b + 24), *(uint*)(b + 28), *(uint*)(b + 32), *(long*)(b + 48)) { Dev = *(ulong*)b };

    /// <summary>fstat(2); null with the errno in <paramref name="errno"/> on failure.</summary>
    internal static FileStat? Fstat(SafeHandle fd, out int errno)
    {
        byte* buf = stackalloc byte[256];
        int rc = fstat((int)fd.DangerousGetHandle(), buf);
        errno = rc == 0 ? 0 : Marshal.GetLastPInvokeError();
        return rc == 0 ? Parse(buf) : null;
    }

    /// <summary>lstat(2): the path itself, a symlink not followed; null when it does not exist.</summary>
    internal static FileStat? Lstat(string path)
    {
        byte* buf = stackalloc byte[256];
        if (lstat(path, buf) == 0) return Parse(buf);
        int errno = Marshal.GetLastPInvokeError();
        return errno == Errno.ENOENT ? null : throw new IOException($"lstat({path}) failed: {Errno.Name(errno)}");
    }

    /// <summary>open(2) with O_CLOEXEC and a creation mode; the errno is in the exception (ELOOP: a symlink).</summary>
    internal static Microsoft.Win32.SafeHandles.SafeFileHandle OpenFile(string path, int flags, uint mode)
    {
        int fd = open(path, flags | O_CLOEXEC, mode);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException(errno == ELOOP ? $"{path} is a symbolic link: refused" : $"open({path}) failed: {Errno.Name(errno)}", errno);
        }
        return new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
    }

    internal static void Fchown(SafeHandle fd, int group)
    {
        if (fchown((int)fd.DangerousGetHandle(), -1, group) != 0)
            throw new IOException($"fchown(group {group}) failed: {Errno.Name(Marshal.GetLastPInvokeError())}");
    }

    /// <summary>The path of a cgroup v2 directory by its id: the id is the kernfs file handle (FILEID_KERNFS), so one
    /// open_by_handle_at on the cgroup2 mount and a readlink of the fd answer it without walking the tree.
    /// Null when no such cgroup exists (any more).</summary>
    internal static string? CgroupPath(SafeHandle mount, ulong cgroupId)
    {
        byte* handle = stackalloc byte[16];
        *(uint*)handle = 8;          // handle_bytes
        *(int*)(handle + 4) = 0xfe;  // handle_type FILEID_KERNFS
        *(ulong*)(handle + 8) = cgroupId;
        int fd = open_by_handle_at((int)mount.DangerousGetHandle(), handle, O_PATH | O_CLOEXEC);
        if (fd < 0) return null;
        try { return new FileInfo($"/proc/self/fd/{fd}").LinkTarget; }
        finally { close(fd); }
    }

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

    internal static int PidfdOpen(int pid) => (int)syscall(SYS_pidfd_open, pid, 0, 0, 0);

    internal static int PidfdSendSignal(int pidfd, int signal) => (int)syscall(SYS_pidfd_send_signal, pidfd, signal, 0, 0);
}
