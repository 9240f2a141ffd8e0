using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace SecurityAgent.Interop;

/// <summary>What fstat says about an open file (x86-64 struct stat).</summary>
internal readonly record struct FileStatus(uint Mode, uint Uid, long Size)
{
    private const uint S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFDIR = 0x4000;
    public bool IsRegular => (Mode & S_IFMT) == S_IFREG;
    /// <summary>Writable by the group or by others.</summary>
    public bool SharedWritable => (Mode & 0b000_010_010) != 0;
    /// <summary>The sticky bit: only an entry's owner may rename or remove it (/tmp, Kubernetes ConfigMap volumes).</summary>
    public bool Sticky => (Mode & 0x200) != 0;
    public string Permissions => Convert.ToString(Mode & 0xFFF, 8).PadLeft(4, '0');
    public string Type => (Mode & S_IFMT) switch
    {
        S_IFREG => "a regular file", S_IFDIR => "a directory", 0x1000 => "a FIFO", 0x2000 => "a character device",
        0x6000 => "a block device", 0xA000 => "a symlink", 0xC000 => "a socket", _ => "not a regular file",
    };
}

/// <summary>Opening files that an untrusted party may have swapped for something else: never blocking (a FIFO opens
/// at once and is refused after fstat), never through a final symlink unless asked, and fstat on the opened fd.</summary>
internal static unsafe partial class PosixFiles
{
    private const string Lib = "libc.so.6";
    private const int O_RDONLY = 0, O_NONBLOCK = 0x800, O_DIRECTORY = 0x10000, O_NOFOLLOW = 0x20000, O_CLOEXEC = 0x80000, O_PATH = 0x200000;
    internal const int ELOOP = 40;

    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport(Lib, EntryPoint = "fstat", SetLastError = true)]
    private static partial int fstat(int fd, byte* buf);

    [LibraryImport(Lib, EntryPoint = "realpath", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint realpath(string path, nint resolved);

    [LibraryImport(Lib, EntryPoint = "free")]
    private static partial void free(nint p);

    /// <summary>Opens for reading without blocking; with <paramref name="noFollow"/> a final symlink fails with ELOOP.
    /// Throws IOException naming the errno.</summary>
    internal static SafeFileHandle OpenRead(string path, bool noFollow, bool directory = false)
    {
        int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | (noFollow ? O_NOFOLLOW : 0) | (directory ? O_DIRECTORY : 0));
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException($"{(errno == ELOOP && noFollow ? "a symlink" : Marshal.GetPInvokeErrorMessage(errno))} ({Errno.Name(errno)})", errno);
        }
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>What fstat says about a symlink itself (not its target).</summary>
    internal static FileStatus LinkStatus(string path)
    {
        int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) throw new IOException($"{Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())} ({Errno.Name(Marshal.GetLastPInvokeError())})");
        using var h = new SafeFileHandle(fd, ownsHandle: true);
        return Stat(h);
    }

    internal static FileStatus Stat(SafeFileHandle handle)
    {
        byte* buf = stackalloc byte[256];
        bool added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            if (fstat((int)handle.DangerousGetHandle(), buf) != 0)
                throw new IOException($"fstat failed: {Errno.Name(Marshal.GetLastPInvokeError())}");
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
        return new FileStatus(*(uint*)(buf + 24), *(uint*)(buf + 28), *(long*)(buf + 48));
    }

    /// <summary>The canonical absolute path (every symlink resolved), or null when it does not resolve.</summary>
    internal static string? RealPath(string path)
    {
        nint p = realpath(path, 0);
        if (p == 0) return null;
        try { return Marshal.PtrToStringUTF8(p); }
        finally { free(p); }
    }

    internal static uint EffectiveUid => Libc.geteuid();
}
