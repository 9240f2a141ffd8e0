using System.Runtime.InteropServices;
using System.Text;

namespace SecurityAgent.Interop;

/// <summary>A failed system call: names the call (and its object) and the errno. The one place the fanotify
/// subsystem turns an errno into an exception.</summary>
public sealed class SyscallException(string call, int errno)
    : IOException($"{call} failed: {Interop.Errno.Name(errno)} ({errno}): {Marshal.GetPInvokeErrorMessage(errno)}")
{
    public string Call { get; } = call;
    public int Errno { get; } = errno;
}

/// <summary>A file descriptor the agent owns (a fanotify group, an inotify instance, an eventfd): closed exactly once,
/// and never while a call that uses it is in flight.</summary>
public sealed class FdHandle : SafeHandle
{
    internal FdHandle(int fd) : base(-1, ownsHandle: true) => SetHandle(fd);

    public override bool IsInvalid => handle == -1;

    protected override bool ReleaseHandle() => Libc.close((int)handle) == 0;
}

/// <summary>fanotify(7), inotify(7), poll(2), eventfd(2) and the allocation-free /proc reads of the fanotify decision
/// thread. Everything that takes a path takes it NUL-terminated in UTF-8, so the hot path builds paths in stack buffers.</summary>
internal static unsafe partial class Libc
{
    // fanotify_init flags
    internal const uint FAN_CLOEXEC = 0x1, FAN_NONBLOCK = 0x2, FAN_CLASS_CONTENT = 0x4, FAN_UNLIMITED_QUEUE = 0x10;
    // fanotify_mark flags
    internal const uint FAN_MARK_ADD = 0x1, FAN_MARK_DONT_FOLLOW = 0x4, FAN_MARK_ONLYDIR = 0x8, FAN_MARK_MOUNT = 0x10, FAN_MARK_FILESYSTEM = 0x100;
    // events
    internal const ulong FAN_OPEN_PERM = 0x10000, FAN_ACCESS_PERM = 0x20000, FAN_OPEN_EXEC_PERM = 0x40000, FAN_EVENT_ON_CHILD = 0x08000000;
    internal const ulong FAN_Q_OVERFLOW = 0x4000;
    internal const uint FAN_ALLOW = 1, FAN_DENY = 2;
    internal const int FanotifyMetadataVersion = 3, FanotifyMetadataLength = 24;

    // inotify
    internal const uint IN_CREATE = 0x100, IN_MOVED_TO = 0x80, IN_ONLYDIR = 0x01000000, IN_DONT_FOLLOW = 0x02000000;
    internal const uint IN_ISDIR = 0x40000000, IN_Q_OVERFLOW = 0x4000, IN_IGNORED = 0x8000;
    private const int IN_NONBLOCK = 0x800, IN_CLOEXEC = 0x80000;
    private const int EFD_CLOEXEC = 0x80000, EFD_NONBLOCK = 0x800;
    internal const short POLLIN = 1;
    internal const int EAGAIN = 11, EINTR = 4;
    private const int O_LARGEFILE = 0x8000;

    [StructLayout(LayoutKind.Sequential)]
    internal struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport(Lib, EntryPoint = "fanotify_init", SetLastError = true)]
    private static partial int fanotify_init(uint flags, uint eventFlags);

    [LibraryImport(Lib, EntryPoint = "fanotify_mark", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int fanotify_mark(FdHandle fd, uint flags, ulong mask, int dirfd, string path);

    [LibraryImport(Lib, EntryPoint = "read", SetLastError = true)]
    private static partial nint read(FdHandle fd, byte* buf, nuint count);

    [LibraryImport(Lib, EntryPoint = "read", SetLastError = true)]
    private static partial nint read(int fd, byte* buf, nuint count);

    [LibraryImport(Lib, EntryPoint = "write", SetLastError = true)]
    private static partial nint write(FdHandle fd, byte* buf, nuint count);

    [LibraryImport(Lib, EntryPoint = "poll", SetLastError = true)]
    private static partial int poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport(Lib, EntryPoint = "readlink", SetLastError = true)]
    private static partial nint readlink(byte* path, byte* buf, nuint size);

    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true)]
    private static partial int open(byte* path, int flags);

    [LibraryImport(Lib, EntryPoint = "stat", SetLastError = true)]
    private static partial int stat(byte* path, byte* buf);

    [LibraryImport(Lib, EntryPoint = "realpath", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint realpath(string path, nint resolved);

    [LibraryImport(Lib, EntryPoint = "free")]
    private static partial void free(nint p);

    [LibraryImport(Lib, EntryPoint = "inotify_init1", SetLastError = true)]
    private static partial int inotify_init1(int flags);

    [LibraryImport(Lib, EntryPoint = "inotify_add_watch", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int inotify_add_watch(FdHandle fd, string path, uint mask);

    [LibraryImport(Lib, EntryPoint = "eventfd", SetLastError = true)]
    private static partial int eventfd(uint initval, int flags);

    private static SyscallException Failed(string call) => new(call, Marshal.GetLastPInvokeError());

    /// <summary>A fanotify group: the fd whose closing releases every process waiting for one of its answers.</summary>
    internal static FdHandle FanotifyInit(uint flags) =>
        fanotify_init(flags, O_RDONLY | O_LARGEFILE | O_CLOEXEC) is var fd and >= 0 ? new FdHandle(fd) : throw Failed("fanotify_init");

    /// <summary>Adds a mark; the errno on failure (0 on success), so a caller can tell a path that vanished from a bug.</summary>
    internal static int FanotifyMark(FdHandle group, uint flags, ulong mask, string path) =>
        fanotify_mark(group, flags, mask, -100 /* AT_FDCWD */, path) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>Reads what is queued (non-blocking fds): the byte count, 0 when nothing is (EAGAIN).</summary>
    internal static int Read(FdHandle fd, Span<byte> buffer, string call)
    {
        fixed (byte* b = buffer)
        {
            while (true)
            {
                nint n = read(fd, b, (nuint)buffer.Length);
                if (n >= 0) return (int)n;
                int errno = Marshal.GetLastPInvokeError();
                if (errno == EAGAIN) return 0;
                if (errno != EINTR) throw new SyscallException(call, errno);
            }
        }
    }

    /// <summary>Answers one permission event. False when the event is no longer pending (ENOENT: its process was
    /// killed while waiting, or the answer was already given).</summary>
    internal static bool FanotifyRespond(FdHandle group, int eventFd, uint response)
    {
        long r = (uint)eventFd | ((long)response << 32);
        if (write(group, (byte*)&r, 8) == 8) return true;
        int errno = Marshal.GetLastPInvokeError();
        return errno == Errno.ENOENT ? false : throw new SyscallException("write(fanotify response)", errno);
    }

    /// <summary>poll(2) on up to 4 fds; EINTR counts as a timeout. Returns the number ready.</summary>
    internal static int Poll(Span<PollFd> fds, int timeoutMs)
    {
        fixed (PollFd* p = fds)
        {
            int n = poll(p, (nuint)fds.Length, timeoutMs);
            if (n >= 0) return n;
            int errno = Marshal.GetLastPInvokeError();
            return errno == EINTR ? 0 : throw new SyscallException("poll", errno);
        }
    }

    /// <summary>readlink(2) of a NUL-terminated path into <paramref name="buffer"/>: the length, or -errno.</summary>
    internal static int ReadLink(ReadOnlySpan<byte> pathZ, Span<byte> buffer)
    {
        fixed (byte* p = pathZ)
        fixed (byte* b = buffer)
        {
            nint n = readlink(p, b, (nuint)buffer.Length);
            return n >= 0 ? (int)n : -Marshal.GetLastPInvokeError();
        }
    }

    /// <summary>The start of a small file (a /proc file), read with one read(2): the length, or -errno.</summary>
    internal static int ReadSmallFile(ReadOnlySpan<byte> pathZ, Span<byte> buffer)
    {
        int fd;
        fixed (byte* p = pathZ)
            fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return -Marshal.GetLastPInvokeError();
        try
        {
            fixed (byte* b = buffer)
            {
                nint n = read(fd, b, (nuint)buffer.Length);
                return n >= 0 ? (int)n : -Marshal.GetLastPInvokeError();
            }
        }
        finally
        {
            close(fd);
        }
    }

    /// <summary>(st_dev, st_ino) of an open fd, or null.</summary>
    internal static (ulong Dev, ulong Ino)? FdIdentity(int fd)
    {
        byte* buf = stackalloc byte[256];
        return fstat(fd, buf) == 0 ? (*(ulong*)buf, *(ulong*)(buf + 8)) : null;
    }

    /// <summary>(st_dev, st_ino, st_mode) of a path, following symlinks; null when it does not exist.</summary>
    internal static (ulong Dev, ulong Ino, uint Mode)? Stat(string path)
    {
        byte* buf = stackalloc byte[256];
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
            if (stat(p, buf) == 0)
                return (*(ulong*)buf, *(ulong*)(buf + 8), *(uint*)(buf + 24));
        int errno = Marshal.GetLastPInvokeError();
        return errno is Errno.ENOENT or 20 /* ENOTDIR */ or 40 /* ELOOP */ ? null : throw new SyscallException($"stat({path})", errno);
    }

    /// <summary>realpath(3): the canonical path (symlinks, ".", "..", repeated "/" resolved), or null when a component
    /// does not exist.</summary>
    internal static string? RealPath(string path)
    {
        nint r = realpath(path, 0);
        if (r == 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            return errno is Errno.ENOENT or 20 /* ENOTDIR */ ? null : throw new SyscallException($"realpath({path})", errno);
        }
        try { return Marshal.PtrToStringUTF8(r); }
        finally { free(r); }
    }

    // notification groups that report directory handles and names (Linux 5.9; FAN_RENAME 5.17)
    internal const uint FAN_CLASS_NOTIF = 0, FAN_REPORT_TID = 0x100, FAN_REPORT_FID = 0x200, FAN_REPORT_DIR_FID = 0x400, FAN_REPORT_NAME = 0x800;
    internal const ulong FAN_MODIFY = 0x2, FAN_ATTRIB = 0x4, FAN_CREATE = 0x100, FAN_DELETE = 0x200, FAN_MOVE_SELF = 0x800,
        FAN_RENAME = 0x10000000, FAN_ONDIR = 0x40000000;
    internal const byte FAN_EVENT_INFO_TYPE_FID = 1, FAN_EVENT_INFO_TYPE_DFID_NAME = 2, FAN_EVENT_INFO_TYPE_OLD_DFID_NAME = 10,
        FAN_EVENT_INFO_TYPE_NEW_DFID_NAME = 12;

    [LibraryImport(Lib, EntryPoint = "name_to_handle_at", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int name_to_handle_at(int dirfd, string path, byte* handle, int* mountId, int flags);

    [LibraryImport(Lib, EntryPoint = "fstatfs", SetLastError = true)]
    private static partial int fstatfs(int fd, byte* buf);

    /// <summary>A notification group: events carry the parent directory's handle and the entry's name (and the object's
    /// handle), not an fd, so reading them opens nothing; and the thread that made the change.</summary>
    internal static FdHandle FanotifyInitNames() =>
        FanotifyInit(FAN_CLASS_NOTIF | FAN_REPORT_TID | FAN_REPORT_FID | FAN_REPORT_DIR_FID | FAN_REPORT_NAME | FAN_CLOEXEC | FAN_NONBLOCK);

    /// <summary>A directory opened read-only (the mount fd of open_by_handle_at: an O_PATH fd is refused there), or null
    /// when it is gone.</summary>
    internal static FdHandle? OpenDirectoryFd(string path)
    {
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
            return open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC) is var fd and >= 0 ? new FdHandle(fd) : null;
    }

    /// <summary>The f_fsid of the file system holding an fd (what a fanotify event names its file system by).</summary>
    internal static ulong FsId(FdHandle fd)
    {
        byte* buf = stackalloc byte[128];
        return fstatfs((int)fd.DangerousGetHandle(), buf) == 0 ? *(ulong*)(buf + 56) : throw Failed("fstatfs");
    }

    /// <summary>The file handle of a path (struct file_handle: bytes, type, handle), symlinks followed; null when gone.</summary>
    internal static byte[]? NameToHandle(string path)
    {
        byte* buf = stackalloc byte[8 + 128];
        *(uint*)buf = 128;
        int mountId;
        if (name_to_handle_at(-100 /* AT_FDCWD */, path, buf, &mountId, 0x400 /* AT_SYMLINK_FOLLOW */) != 0)
            return null;
        return new ReadOnlySpan<byte>(buf, 8 + (int)*(uint*)buf).ToArray();
    }

    /// <summary>The path of the object a file handle (struct file_handle) names, through an fd on its file system; null
    /// when it is gone or not reachable from that mount.</summary>
    internal static string? HandlePath(FdHandle mount, ReadOnlySpan<byte> handle, Span<byte> scratch)
    {
        int fd;
        fixed (byte* h = handle)
            fd = open_by_handle_at((int)mount.DangerousGetHandle(), h, O_PATH | O_CLOEXEC);
        if (fd < 0) return null;
        try
        {
            Span<byte> link = stackalloc byte[32];
            int n = ReadLink(link[..WriteProcFd(link, fd)], scratch);
            return n > 0 ? Encoding.UTF8.GetString(scratch[..n]) : null;
        }
        finally
        {
            close(fd);
        }
    }

    private static int WriteProcFd(Span<byte> buffer, int fd)
    {
        System.Text.Unicode.Utf8.TryWrite(buffer, $"/proc/self/fd/{fd}\0", out int n);
        return n;
    }

    internal static FdHandle InotifyInit() =>
        inotify_init1(IN_NONBLOCK | IN_CLOEXEC) is var fd and >= 0 ? new FdHandle(fd) : throw Failed("inotify_init1");

    /// <summary>The watch descriptor, or -errno.</summary>
    internal static int InotifyAddWatch(FdHandle inotify, string path, uint mask) =>
        inotify_add_watch(inotify, path, mask) is var wd and >= 0 ? wd : -Marshal.GetLastPInvokeError();

    internal static FdHandle EventFd() =>
        eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) is var fd and >= 0 ? new FdHandle(fd) : throw Failed("eventfd");

    internal static void Signal(FdHandle eventFd)
    {
        long one = 1;
        write(eventFd, (byte*)&one, 8);
    }
}
