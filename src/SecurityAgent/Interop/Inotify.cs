using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace SecurityAgent.Interop;

/// <summary>An inotify instance (closed on dispose).</summary>
internal sealed class InotifyHandle() : SafeHandleZeroOrMinusOneIsInvalid(ownsHandle: true)
{
    internal InotifyHandle(int fd) : this() => SetHandle(fd);

    internal int Fd => (int)handle;

    protected override bool ReleaseHandle() => Libc.close((int)handle) == 0;
}

/// <summary>inotify(7): directory change notifications, read without blocking after poll(2) says they are there.</summary>
internal static unsafe partial class Inotify
{
    private const string Lib = "libc.so.6";

    internal const uint IN_ATTRIB = 0x4, IN_CLOSE_WRITE = 0x8, IN_MOVED_FROM = 0x40, IN_MOVED_TO = 0x80, IN_CREATE = 0x100,
        IN_DELETE = 0x200, IN_DELETE_SELF = 0x400, IN_MOVE_SELF = 0x800, IN_Q_OVERFLOW = 0x4000, IN_IGNORED = 0x8000,
        IN_ONLYDIR = 0x1000000;
    private const int IN_NONBLOCK = 0x800, IN_CLOEXEC = 0x80000, EAGAIN = 11, EINTR = 4;
    private const short POLLIN = 1;

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int fd;
        public short events;
        public short revents;
    }

    [LibraryImport(Lib, EntryPoint = "inotify_init1", SetLastError = true)]
    private static partial int inotify_init1(int flags);

    [LibraryImport(Lib, EntryPoint = "inotify_add_watch", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int inotify_add_watch(int fd, string path, uint mask);

    [LibraryImport(Lib, EntryPoint = "read", SetLastError = true)]
    private static partial nint read(int fd, byte* buf, nint count);

    [LibraryImport(Lib, EntryPoint = "poll", SetLastError = true)]
    private static partial int poll(PollFd* fds, nuint nfds, int timeout);

    internal static InotifyHandle Create()
    {
        int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (fd < 0) throw new IOException($"inotify_init1 failed: {Errno.Name(Marshal.GetLastPInvokeError())}");
        return new InotifyHandle(fd);
    }

    /// <summary>Watches a directory; returns the watch descriptor, or throws naming the errno (ENOENT when it is missing).</summary>
    internal static int Watch(InotifyHandle h, string dir, uint mask)
    {
        int wd = inotify_add_watch(h.Fd, dir, mask | IN_ONLYDIR);
        if (wd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException($"inotify_add_watch({dir}) failed: {Errno.Name(errno)}", errno);
        }
        return wd;
    }

    /// <summary>Waits up to <paramref name="timeoutMs"/> for events; true when some are ready.</summary>
    internal static bool Wait(InotifyHandle h, int timeoutMs)
    {
        var p = new PollFd { fd = h.Fd, events = POLLIN };
        int r = poll(&p, 1, timeoutMs);
        if (r < 0 && Marshal.GetLastPInvokeError() != EINTR)
            throw new IOException($"poll on inotify failed: {Errno.Name(Marshal.GetLastPInvokeError())}");
        return r > 0 && (p.revents & POLLIN) != 0;
    }

    /// <summary>Every event queued now (none when there are none).</summary>
    internal static List<(int Wd, uint Mask, string Name)> Drain(InotifyHandle h)
    {
        var events = new List<(int, uint, string)>();
        var buf = stackalloc byte[8192];
        while (true)
        {
            nint n = read(h.Fd, buf, 8192);
            if (n <= 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (n < 0 && errno != EAGAIN && errno != EINTR)
                    throw new IOException($"read on inotify failed: {Errno.Name(errno)}");
                return events;
            }
            // struct inotify_event { int wd; uint32 mask; uint32 cookie; uint32 len; char name[len]; }
            for (int off = 0; off + 16 <= n;)
            {
                int wd = *(int*)(buf + off);
                uint mask = *(uint*)(buf + off + 4);
                int len = *(int*)(buf + off + 12);
                var name = len > 0 ? Marshal.PtrToStringUTF8((nint)(buf + off + 16)) ?? "" : "";
                events.Add((wd, mask, name));
                off += 16 + len;
            }
        }
    }
}
