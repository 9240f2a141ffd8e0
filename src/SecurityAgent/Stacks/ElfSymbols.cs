using System.Buffers.Binary;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace SecurityAgent.Stacks;

/// <summary>The function symbols of an ELF64 little-endian file (.symtab, else .dynsym), looked up by file offset
/// through its PT_LOAD segments. Only the headers and the symbol and string tables are read.</summary>
internal sealed class ElfSymbols
{
    private const int MaxTableBytes = 64 << 20;
    private readonly (ulong Offset, ulong Vaddr, ulong Size)[] _loads;
    private readonly ulong[] _starts;
    private readonly ulong[] _sizes;
    private readonly string[] _names;

    private ElfSymbols((ulong, ulong, ulong)[] loads, List<(ulong Start, ulong Size, string Name)> syms)
    {
        _loads = loads;
        syms.Sort((a, b) => a.Start.CompareTo(b.Start));
        _starts = [.. syms.Select(s => s.Start)];
        _sizes = [.. syms.Select(s => s.Size)];
        _names = [.. syms.Select(s => s.Name)];
    }

    /// <summary>The function containing the byte at <paramref name="fileOffset"/>, if a symbol covers it.</summary>
    public string? Find(ulong fileOffset)
    {
        ulong? vaddr = null;
        foreach (var (off, va, size) in _loads)
            if (fileOffset >= off && fileOffset < off + size) { vaddr = fileOffset - off + va; break; }
        if (vaddr is not { } v) return null;
        int i = Array.BinarySearch(_starts, v);
        if (i < 0) i = ~i - 1;
        // Several symbols may share a start (aliases); any whose extent covers v names it.
        for (; i >= 0 && _starts[i] <= v; i--)
            if (v < _starts[i] + Math.Max(_sizes[i], 1)) return _names[i];
        return null;
    }

    public static ElfSymbols? TryLoad(string path)
    {
        try
        {
            using var h = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
            return Load(h);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or ArgumentException) { return null; }
    }

    private static byte[] Read(SafeFileHandle h, ulong offset, ulong length)
    {
        if (length > MaxTableBytes) throw new FormatException("ELF table too large");
        var b = new byte[length];
        if (RandomAccess.Read(h, b, (long)offset) != (int)length) throw new FormatException("short ELF read");
        return b;
    }

    private static ElfSymbols Load(SafeFileHandle h)
    {
        var eh = Read(h, 0, 64);
        if (eh[0] != 0x7f || eh[1] != 'E' || eh[2] != 'L' || eh[3] != 'F' || eh[4] != 2 || eh[5] != 1)
            throw new FormatException("not an ELF64 little-endian file");
        ulong phoff = U64(eh, 32), shoff = U64(eh, 40);
        int phentsize = U16(eh, 54), phnum = U16(eh, 56), shentsize = U16(eh, 58), shnum = U16(eh, 60);
        var loads = new List<(ulong, ulong, ulong)>();
        var ph = Read(h, phoff, (ulong)(phentsize * phnum));
        for (int i = 0; i < phnum; i++)
        {
            int o = i * phentsize;
            if (U32(ph, o) == 1) // PT_LOAD
                loads.Add((U64(ph, o + 8), U64(ph, o + 16), U64(ph, o + 32)));
        }
        var syms = new List<(ulong, ulong, string)>();
        if (shoff != 0 && shnum > 0)
        {
            var sh = Read(h, shoff, (ulong)(shentsize * shnum));
            // .symtab (2) when the file is not stripped, else .dynsym (11).
            foreach (uint wanted in new uint[] { 2, 11 })
            {
                for (int i = 0; i < shnum && syms.Count == 0; i++)
                {
                    int o = i * shentsize;
                    if (U32(sh, o + 4) != wanted) continue;
                    ulong off = U64(sh, o + 24), size = U64(sh, o + 32);
                    int link = (int)U32(sh, o + 40);
                    if (link >= shnum) continue;
                    int so = link * shentsize;
                    var strtab = Read(h, U64(sh, so + 24), U64(sh, so + 32));
                    var table = Read(h, off, size);
                    for (int s = 0; s + 24 <= table.Length; s += 24)
                    {
                        if ((table[s + 4] & 0xf) != 2) continue; // STT_FUNC
                        ulong value = U64(table, s + 8), ssize = U64(table, s + 16);
                        uint name = U32(table, s);
                        if (value == 0 || name >= strtab.Length) continue;
                        int end = Array.IndexOf(strtab, (byte)0, (int)name);
                        syms.Add((value, ssize, Encoding.UTF8.GetString(strtab, (int)name, (end < 0 ? strtab.Length : end) - (int)name)));
                    }
                }
                if (syms.Count > 0) break;
            }
        }
        return new ElfSymbols([.. loads], syms);
    }

    private static ulong U64(byte[] b, int o) => BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(o));
    private static uint U32(byte[] b, int o) => BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(o));
    private static int U16(byte[] b, int o) => BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(o));
}
