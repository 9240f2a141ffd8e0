using System.Buffers.Binary;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace SecurityAgent.Elf;

/// <summary>An ELF64 little-endian file read through an open handle: its program headers, section headers and the
/// tables and notes they point to. Every read is bounded by <c>maxRead</c> (files come from processes and policies);
/// what is not such a file, or does not hold together, is a <see cref="FormatException"/>.</summary>
public sealed class ElfFile
{
    public const uint PtLoad = 1, PtNote = 4;

    public readonly record struct Segment(uint Type, ulong Offset, ulong Vaddr, ulong FileSize);

    /// <summary>A section; its name is empty when the file has no section-name table.</summary>
    public readonly record struct Section(string Name, uint Type, ulong Offset, ulong Size, uint Link);

    private readonly SafeFileHandle _h;
    private readonly ulong _maxRead;
    private readonly byte[] _header;

    public ElfFile(SafeFileHandle h, ulong maxRead)
    {
        (_h, _maxRead) = (h, maxRead);
        _header = Read(0, 64);
        if (_header[0] != 0x7f || _header[1] != 'E' || _header[2] != 'L' || _header[3] != 'F' || _header[4] != 2 || _header[5] != 1)
            throw new FormatException("not an ELF64 little-endian file");
    }

    public byte[] Read(ulong offset, ulong length)
    {
        if (length > _maxRead) throw new FormatException("ELF table too large");
        var b = new byte[length];
        if (RandomAccess.Read(_h, b, (long)offset) != (int)length) throw new FormatException("short ELF read");
        return b;
    }

    public IReadOnlyList<Segment> Segments()
    {
        ulong phoff = U64(_header, 32);
        int phentsize = U16(_header, 54), phnum = U16(_header, 56);
        if (phnum == 0) return [];
        if (phentsize < 56) throw new FormatException("program headers too small");
        var ph = Read(phoff, (ulong)(phentsize * phnum));
        var segments = new Segment[phnum];
        for (int i = 0; i < phnum; i++)
        {
            int o = i * phentsize;
            segments[i] = new Segment(U32(ph, o), U64(ph, o + 8), U64(ph, o + 16), U64(ph, o + 32));
        }
        return segments;
    }

    /// <summary>The section headers, by index (empty when the file has none).</summary>
    public IReadOnlyList<Section> Sections()
    {
        ulong shoff = U64(_header, 40);
        int shentsize = U16(_header, 58), shnum = U16(_header, 60), shstrndx = U16(_header, 62);
        if (shoff == 0 || shnum == 0) return [];
        if (shentsize < 64) throw new FormatException("section headers too small");
        var sh = Read(shoff, (ulong)(shentsize * shnum));
        byte[] names = shstrndx < shnum ? Read(U64(sh, shstrndx * shentsize + 24), U64(sh, shstrndx * shentsize + 32)) : [];
        var sections = new Section[shnum];
        for (int i = 0; i < shnum; i++)
        {
            int o = i * shentsize;
            uint name = U32(sh, o);
            sections[i] = new Section(name < names.Length ? CString(names, (int)name) : "", U32(sh, o + 4), U64(sh, o + 24), U64(sh, o + 32), U32(sh, o + 40));
        }
        return sections;
    }

    /// <summary>The string at <paramref name="at"/> of a string table, up to its NUL.</summary>
    public static string CString(byte[] table, int at)
    {
        int end = Array.IndexOf(table, (byte)0, at);
        return Encoding.UTF8.GetString(table, at, (end < 0 ? table.Length : end) - at);
    }

    private static ulong U64(byte[] b, int o) => BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(o));
    private static uint U32(byte[] b, int o) => BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(o));
    private static int U16(byte[] b, int o) => BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(o));
}

/// <summary>The notes of a note section or segment, in order: namesz, descsz and type, then the name (with its NUL)
/// and the descriptor, each padded to 4 bytes. Stops at the first note that does not fit.</summary>
public ref struct ElfNotes(ReadOnlySpan<byte> notes)
{
    private ReadOnlySpan<byte> _rest = notes;

    public bool Next(out uint type, out ReadOnlySpan<byte> name, out ReadOnlySpan<byte> desc)
    {
        type = 0;
        name = desc = default;
        if (_rest.Length < 12) return false;
        uint namesz = BinaryPrimitives.ReadUInt32LittleEndian(_rest), descsz = BinaryPrimitives.ReadUInt32LittleEndian(_rest[4..]);
        long descAt = 12 + ((namesz + 3L) & ~3L), end = descAt + ((descsz + 3L) & ~3L);
        if (descAt + descsz > _rest.Length) return false;
        type = BinaryPrimitives.ReadUInt32LittleEndian(_rest[8..]);
        name = _rest.Slice(12, (int)namesz);
        desc = _rest.Slice((int)descAt, (int)descsz);
        _rest = end <= _rest.Length ? _rest[(int)end..] : default;
        return true;
    }
}
