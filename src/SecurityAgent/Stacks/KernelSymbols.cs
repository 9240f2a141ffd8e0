using System.Globalization;

namespace SecurityAgent.Stacks;

/// <summary>The kernel's text symbols from /proc/kallsyms, sorted by address (module symbols named "name [module]"
/// are kept as name).</summary>
internal sealed class KernelSymbols(ulong[] addresses, string[] names)
{
    public (ulong Address, string Name)? Find(ulong address)
    {
        int i = Array.BinarySearch(addresses, address);
        if (i < 0) i = ~i - 1;
        return i < 0 ? null : (addresses[i], names[i]);
    }

    public static KernelSymbols Load(string file)
    {
        var list = new List<(ulong, string)>();
        try
        {
            foreach (var line in File.ReadLines(file))
                if (Parse(line) is { } s) list.Add(s);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        list.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return new KernelSymbols([.. list.Select(s => s.Item1)], [.. list.Select(s => s.Item2)]);
    }

    /// <summary>"ffffffff81000000 T _stext" or "ffffffffc0a01000 t fn\t[module]": text symbols (t, T, w, W) only.</summary>
    internal static (ulong, string)? Parse(string line)
    {
        int a = line.IndexOf(' ');
        if (a <= 0 || a + 3 >= line.Length || line[a + 2] != ' ') return null;
        if (line[a + 1] is not ('t' or 'T' or 'w' or 'W')) return null;
        if (!ulong.TryParse(line.AsSpan(0, a), NumberStyles.HexNumber, null, out var addr) || addr == 0) return null;
        var name = line[(a + 3)..];
        int tab = name.IndexOf('\t');
        return (addr, tab >= 0 ? name[..tab] : name);
    }
}
