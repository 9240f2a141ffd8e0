using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace SecurityAgent.Interop;

/// <summary>libc calls of the local API's socket set-up: a lock file that proves which agent owns a socket, and a
/// umask around bind so the socket is never reachable by anyone but root, not even for a moment.</summary>
internal static unsafe partial class Libc
{
    private const int O_RDWR = 2;
    private const int LOCK_EX = 2;
    private const int LOCK_NB = 4;
    private const int EWOULDBLOCK = 11;
    internal const uint S_IFMT = 0xF000;
    internal const uint S_IFSOCK = 0xC000;
    internal const uint S_IFDIR = 0x4000;
    internal const uint S_IFCHR = 0x2000;

    [LibraryImport(Lib, EntryPoint = "umask")]
    internal static partial uint umask(uint mask);

    [LibraryImport(Lib, EntryPoint = "flock", SetLastError = true)]
    private static partial int flock(int fd, int operation);

    [LibraryImport(Lib, EntryPoint = "socket", SetLastError = true)]
    private static partial int socket(int domain, int type, int protocol);

    [LibraryImport(Lib, EntryPoint = "bind", SetLastError = true)]
    private static partial int bind(int fd, byte* addr, int len);

    /// <summary>A Unix stream socket bound to <paramref name="path"/>, as a raw descriptor for a server that takes
    /// ownership of it (the API server). The caller sets the umask the socket file is created with.</summary>
    internal static int BindUnixSocket(string path)
    {
        const int AF_UNIX = 1, SOCK_STREAM = 1, SOCK_CLOEXEC = 0x80000;
        var bytes = System.Text.Encoding.UTF8.GetBytes(path);
        if (bytes.Length >= 108) throw new IOException($"{path}: longer than a Unix socket path may be");
        byte* addr = stackalloc byte[110];
        new Span<byte>(addr, 110).Clear();
        *(ushort*)addr = AF_UNIX;
        bytes.CopyTo(new Span<byte>(addr + 2, 108));
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) throw new IOException($"socket(AF_UNIX) failed: {Errno.Name(Marshal.GetLastPInvokeError())}");
        if (bind(fd, addr, 2 + bytes.Length + 1) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            close(fd);
            throw new IOException($"bind({path}) failed: {Errno.Name(errno)}");
        }
        return fd;
    }

    /// <summary>The file type and permission bits of an open descriptor (st_mode), e.g. to tell a pipe from a terminal.</summary>
    internal static uint FdMode(int fd)
    {
        byte* buf = stackalloc byte[256];
        return fstat(fd, buf) == 0 ? *(uint*)(buf + 24) : throw new IOException($"fstat({fd}) failed: {Errno.Name(Marshal.GetLastPInvokeError())}");
    }

    /// <summary>File type and permission bits, owner and inode of a path, without following a symlink
    /// (x86-64 struct stat: st_ino at 8, st_mode at 24, st_uid at 28). Null when the path does not exist.</summary>
    internal static (uint Mode, uint Uid, ulong Inode)? LStat(string path)
    {
        byte* buf = stackalloc byte[256];
        if (lstat(path, buf) == 0)
            return (*(uint*)(buf + 24), *(uint*)(buf + 28), *(ulong*)(buf + 8));
        int errno = Marshal.GetLastPInvokeError();
        return errno == Errno.ENOENT ? null : throw new IOException($"lstat({path}) failed: {Errno.Name(errno)}");
    }

    /// <summary>Opens (creating, 0600, never through a symlink) and exclusively locks a lock file. The lock lives as
    /// long as the returned handle, and the kernel drops it when the process dies however it dies. Null when another
    /// process holds it.</summary>
    internal static SafeFileHandle? TryLockFile(string path)
    {
        int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0b110_000_000);
        if (fd < 0)
            throw new IOException($"cannot open lock file {path}: {Errno.Name(Marshal.GetLastPInvokeError())}");
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return handle;
        int errno = Marshal.GetLastPInvokeError();
        handle.Dispose();
        return errno == EWOULDBLOCK ? null : throw new IOException($"cannot lock {path}: {Errno.Name(errno)}");
    }

    /// <summary>A small file's content, read without taking a lock (.NET's File APIs take a shared flock, which a
    /// lock file's exclusive holder refuses).</summary>
    internal static string ReadUnlocked(string path)
    {
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
        if (fd < 0) throw new IOException($"open({path}) failed: {Errno.Name(Marshal.GetLastPInvokeError())}");
        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        Span<byte> buf = stackalloc byte[64];
        return System.Text.Encoding.ASCII.GetString(buf[..RandomAccess.Read(handle, buf, 0)]);
    }

    /// <summary>Replaces a (locked) file's content.</summary>
    internal static void Rewrite(SafeFileHandle file, ReadOnlySpan<byte> content)
    {
        if (ftruncate((int)file.DangerousGetHandle(), 0) != 0)
            throw new IOException($"ftruncate failed: {Errno.Name(Marshal.GetLastPInvokeError())}");
        RandomAccess.Write(file, content, 0);
    }
}
