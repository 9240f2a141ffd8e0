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
        try
        {
            var elf = new Elf.ElfFile(h, MaxNoteBytes);
            foreach (var seg in elf.Segments())
                if (seg.Type == Elf.ElfFile.PtNote && seg.FileSize != 0 && seg.FileSize <= MaxNoteBytes && FindGnuBuildId(elf.Read(seg.Offset, seg.FileSize)) is { } id)
                    return id;
        }
        catch (FormatException) { }
        return null;
    }

    internal static byte[]? FindGnuBuildId(ReadOnlySpan<byte> notes)
    {
        var reader = new Elf.ElfNotes(notes);
        while (reader.Next(out uint type, out var name, out var desc))
            if (type == 3 && name.SequenceEqual("GNU\0"u8) && desc.Length is > 0 and <= 64)
                return desc.ToArray();
        return null;
    }
}
