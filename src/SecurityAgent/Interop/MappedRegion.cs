using System.Runtime.InteropServices;

namespace SecurityAgent.Interop;

/// <summary>A shared mapping of a file descriptor (an mmappable BPF array: the kernel writes and the agent reads, or
/// the other way round, without a syscall). Accesses are bounds-checked; a volatile read orders the reads after it.</summary>
public sealed unsafe class MappedRegion : SafeHandle
{
    public long Length { get; }

    private MappedRegion(nint address, long length) : base(-1, ownsHandle: true) => (handle, Length) = (address, length);

    public override bool IsInvalid => handle == -1;

    /// <summary>Maps <paramref name="length"/> bytes of <paramref name="fd"/> shared, read-only unless <paramref name="writable"/>.</summary>
    public static MappedRegion Map(int fd, long length, bool writable = false)
    {
        var p = Libc.mmap(0, (nuint)length, writable ? Libc.PROT_READ | Libc.PROT_WRITE : Libc.PROT_READ, Libc.MAP_SHARED, fd, 0);
        if (p == -1)
            throw new IOException($"mmap(fd {fd}, {length} bytes) failed: {Errno.Name(Marshal.GetLastPInvokeError())}");
        return new MappedRegion(p, length);
    }

    public ulong ReadUInt64Volatile(long offset)
    {
        Check(offset, 8);
        return Volatile.Read(ref *(ulong*)(handle + (nint)offset));
    }

    /// <summary>Stores <paramref name="value"/>, then a full fence: a read after it (of a ring's positions, say) is not
    /// made before the store is visible to the kernel's programs.</summary>
    public void WriteUInt32Fenced(long offset, uint value)
    {
        Check(offset, 4);
        Volatile.Write(ref *(uint*)(handle + (nint)offset), value);
        Interlocked.MemoryBarrier();
    }

    public void Copy(long offset, Span<byte> into)
    {
        Check(offset, into.Length);
        new ReadOnlySpan<byte>((void*)(handle + (nint)offset), into.Length).CopyTo(into);
    }

    private void Check(long offset, int length)
    {
        if (offset < 0 || offset + length > Length)
            throw new ArgumentOutOfRangeException(nameof(offset));
    }

    protected override bool ReleaseHandle() => Libc.munmap(handle, (nuint)Length) == 0;
}

internal static unsafe partial class Libc
{
    internal const int PROT_READ = 1, PROT_WRITE = 2;
    internal const int MAP_SHARED = 1;

    [LibraryImport(Lib, EntryPoint = "mmap", SetLastError = true)]
    internal static partial nint mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport(Lib, EntryPoint = "munmap")]
    internal static partial int munmap(nint addr, nuint length);
}
