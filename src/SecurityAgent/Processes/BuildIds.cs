using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;

namespace SecurityAgent.Processes;

/// <summary>The GNU build ids (NT_GNU_BUILD_ID notes) of the files processes map executable (spec.loader), read from
/// the file once per (device, inode, modification time) and cached, bounded: a hit costs no syscall. The file is
/// opened through the process's root (/proc/PID/root, so a container's files are found), else by its path, and
/// used only when it is the inode the kernel named. Pipeline thread only.</summary>
public sealed class BuildIds(string procRoot = "/proc")
{
    public const int Capacity = 4096;
    private const int MaxNoteBytes = 64 << 10;
    private readonly Dictionary<(ulong Dev, ulong Ino, long Mtime), byte[]?> _cache = new();

    /// <summary>The build id of the file; null when it has none (not ELF, no note) or could not be opened as that inode.</summary>
    /// <param name="kernelDev">The superblock's s_dev as the kernel encodes it (major &lt;&lt; 20 | minor).</param>
    public byte[]? Get(int pid, string path, ulong kernelDev, ulong ino, long mtime)
    {
        var key = (kernelDev, ino, mtime);
        if (_cache.TryGetValue(key, out var id)) return id;
        ulong dev = UserDev(kernelDev);
        foreach (var candidate in (ReadOnlySpan<string>)[$"{procRoot}/{pid}/root{path}", path])
        {
            try
            {
                using var h = File.OpenHandle(candidate, FileMode.Open, FileAccess.Read);
                if (Interop.Libc.Fstat(h, out _) is not { } st || st.Inode != ino || st.Dev != dev)
                    continue;
                id = Read(h);
                if (_cache.Count >= Capacity) _cache.Clear();
                _cache[key] = id;
                return id;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException) { }
        }
        return null; // not cached: the process may be gone, a later mapping may find the file
    }

    /// <summary>The kernel's dev_t (MAJOR &lt;&lt; 20 | MINOR) as stat(2) reports it.</summary>
    internal static ulong UserDev(ulong kernelDev)
    {
        ulong major = kernelDev >> 20, minor = kernelDev & 0xfffff;
        return ((major & 0xfffff000) << 32) | ((major & 0xfff) << 8) | ((minor & 0xffffff00) << 12) | (minor & 0xff);
    }

    /// <summary>The NT_GNU_BUILD_ID note's descriptor from the PT_NOTE segments of an ELF64 little-endian file.</summary>
    internal static byte[]? Read(SafeFileHandle h)
    {
        Span<byte> eh = stackalloc byte[64];
        if (RandomAccess.Read(h, eh, 0) != 64 || eh[0] != 0x7f || eh[1] != 'E' || eh[2] != 'L' || eh[3] != 'F' || eh[4] != 2 || eh[5] != 1)
            return null;
        long phoff = (long)BinaryPrimitives.ReadUInt64LittleEndian(eh[32..]);
        int phentsize = BinaryPrimitives.ReadUInt16LittleEndian(eh[54..]), phnum = BinaryPrimitives.ReadUInt16LittleEndian(eh[56..]);
        if (phentsize < 56 || phnum == 0 || phnum > 256) return null;
        var ph = new byte[phentsize * phnum];
        if (RandomAccess.Read(h, ph, phoff) != ph.Length) return null;
        for (int i = 0; i < phnum; i++)
        {
            var p = ph.AsSpan(i * phentsize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(p) != 4) continue; // PT_NOTE
            long offset = (long)BinaryPrimitives.ReadUInt64LittleEndian(p[8..]);
            ulong size = BinaryPrimitives.ReadUInt64LittleEndian(p[32..]);
            if (size == 0 || size > MaxNoteBytes) continue;
            var notes = new byte[size];
            if (RandomAccess.Read(h, notes, offset) != notes.Length) continue;
            if (FindGnuBuildId(notes) is { } id) return id;
        }
        return null;
    }

    /// <summary>Walks the notes (namesz, descsz, type, then name and descriptor, each padded to 4 bytes).</summary>
    internal static byte[]? FindGnuBuildId(ReadOnlySpan<byte> notes)
    {
        while (notes.Length >= 12)
        {
            uint namesz = BinaryPrimitives.ReadUInt32LittleEndian(notes), descsz = BinaryPrimitives.ReadUInt32LittleEndian(notes[4..]);
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(notes[8..]);
            long name = 12, desc = name + ((namesz + 3L) & ~3L), end = desc + ((descsz + 3L) & ~3L);
            if (end > notes.Length || desc + descsz > notes.Length) return null;
            if (type == 3 && namesz == 4 && notes.Slice(12, 4).SequenceEqual("GNU\0"u8) && descsz is > 0 and <= 64)
                return notes.Slice((int)desc, (int)descsz).ToArray();
            notes = notes[(int)end..];
        }
        return null;
    }
}
