using System.Buffers.Binary;
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

    private static ElfSymbols Load(SafeFileHandle h)
    {
        var elf = new Elf.ElfFile(h, MaxTableBytes);
        var loads = elf.Segments().Where(p => p.Type == Elf.ElfFile.PtLoad).Select(p => (p.Offset, p.Vaddr, p.FileSize)).ToArray();
        var sections = elf.Sections();
        var syms = new List<(ulong, ulong, string)>();
        // .symtab (2) when the file is not stripped, else .dynsym (11).
        foreach (uint wanted in new uint[] { 2, 11 })
        {
            foreach (var section in sections)
            {
                if (syms.Count > 0) break;
                if (section.Type != wanted || section.Link >= sections.Count) continue;
                var strtab = elf.Read(sections[(int)section.Link].Offset, sections[(int)section.Link].Size);
                var table = elf.Read(section.Offset, section.Size);
                for (int s = 0; s + 24 <= table.Length; s += 24)
                {
                    if ((table[s + 4] & 0xf) != 2) continue; // STT_FUNC
                    ulong value = BinaryPrimitives.ReadUInt64LittleEndian(table.AsSpan(s + 8)), ssize = BinaryPrimitives.ReadUInt64LittleEndian(table.AsSpan(s + 16));
                    uint name = BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(s));
                    if (value == 0 || name >= strtab.Length) continue;
                    syms.Add((value, ssize, Elf.ElfFile.CString(strtab, (int)name)));
                }
            }
            if (syms.Count > 0) break;
        }
        return new ElfSymbols(loads, syms);
    }
}
