using System.Globalization;
using SecurityAgent.Events;

namespace SecurityAgent.Stacks;

/// <summary>One entry of Tetragon's kernel_stack_trace / user_stack_trace: the return address (0 unless addresses are
/// exposed), the offset (kernel: into the function; user: into the module's file), the symbol and, for user space,
/// the module's path.</summary>
public readonly record struct StackFrame(ulong Address, ulong Offset, string? Symbol, string? Module);

/// <summary>Turns the stacks the kernel took (kernelStackTrace / userStackTrace) into Tetragon's entries. Kernel
/// symbols come from /proc/kallsyms, read once on the first kernel stack; user addresses from the process's
/// /proc/PID/maps (cached per execution, read again once when an address falls outside it: a dlopen) and the
/// symbol tables of each mapped file (cached per file, by device and inode). Pipeline thread only.</summary>
public sealed class StackSymbolizer(bool exposeAddresses = false, string procRoot = "/proc")
{
    private const int MaxProcesses = 1024;
    private const int MaxFiles = 256;

    private KernelSymbols? _kernel;
    private readonly Dictionary<(int Pid, ulong Exec), Mapping[]> _maps = [];
    private readonly Dictionary<(ulong Dev, ulong Ino), ElfSymbols?> _files = [];

    /// <summary>Events whose Post asked for a stack the kernel could not walk (a length of 0).</summary>
    public long StacksMissing { get; private set; }

    /// <summary>Frames left out because no symbol or mapping covers their address.</summary>
    public long FramesUnresolved { get; private set; }

    public void Missing() => StacksMissing++;

    public IReadOnlyList<StackFrame> Kernel(ulong[] addresses)
    {
        _kernel ??= KernelSymbols.Load(Path.Combine(procRoot, "kallsyms"));
        var frames = new List<StackFrame>(addresses.Length);
        foreach (var a in addresses)
        {
            if (a == 0) continue;
            if (_kernel.Find(a) is not { } sym) { FramesUnresolved++; continue; }
            frames.Add(new StackFrame(exposeAddresses ? a : 0, a - sym.Address, sym.Name, null));
        }
        return frames;
    }

    public IReadOnlyList<StackFrame> User(int pid, ulong exec, ulong[] addresses)
    {
        var frames = new List<StackFrame>(addresses.Length);
        var maps = Maps(pid, exec, reread: false);
        foreach (var a in addresses)
        {
            if (a == 0) continue;
            var m = Find(maps, a);
            if (m is null && maps.Length > 0)
            {
                maps = Maps(pid, exec, reread: true);
                m = Find(maps, a);
            }
            if (m is not { } map) { FramesUnresolved++; continue; }
            ulong fileOffset = a - map.Start + map.FileOffset;
            string? symbol = Elf(pid, map)?.Find(fileOffset);
            frames.Add(new StackFrame(exposeAddresses ? a : 0, fileOffset, symbol, map.Path));
        }
        return frames;
    }

    /// <summary>A process that exited (or exec'd) leaves the maps cache.</summary>
    public void Forget(int pid)
    {
        foreach (var k in _maps.Keys.Where(k => k.Pid == pid).ToList())
            _maps.Remove(k);
    }

    private Mapping[] Maps(int pid, ulong exec, bool reread)
    {
        if (!reread && _maps.TryGetValue((pid, exec), out var cached))
            return cached;
        var maps = ReadMaps(Path.Combine(procRoot, pid.ToString(CultureInfo.InvariantCulture), "maps"));
        if (_maps.Count >= MaxProcesses) _maps.Clear();
        _maps[(pid, exec)] = maps;
        return maps;
    }

    private ElfSymbols? Elf(int pid, Mapping m)
    {
        if (_files.TryGetValue((m.Dev, m.Inode), out var elf))
            return elf;
        // Through the process's root: the path in maps is in its mount namespace (a container's file).
        elf = ElfSymbols.TryLoad(Path.Combine(procRoot, pid.ToString(CultureInfo.InvariantCulture), "root") + m.Path);
        if (_files.Count >= MaxFiles) _files.Clear();
        _files[(m.Dev, m.Inode)] = elf;
        return elf;
    }

    private static Mapping? Find(Mapping[] maps, ulong a)
    {
        foreach (var m in maps)
            if (a >= m.Start && a < m.End) return m;
        return null;
    }

    internal readonly record struct Mapping(ulong Start, ulong End, ulong FileOffset, ulong Dev, ulong Inode, string Path);

    /// <summary>The file-backed executable mappings of /proc/PID/maps ("start-end perms offset major:minor inode path").</summary>
    internal static Mapping[] ReadMaps(string file)
    {
        var list = new List<Mapping>();
        try
        {
            foreach (var line in File.ReadLines(file))
                if (ParseMapsLine(line) is { } m) list.Add(m);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // the process is gone
        return [.. list];
    }

    internal static Mapping? ParseMapsLine(string line)
    {
        var f = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
        if (f.Length < 6 || f[1].Length < 3 || f[1][2] != 'x' || !f[5].StartsWith('/')) return null;
        var range = f[0].Split('-');
        var dev = f[3].Split(':');
        if (range.Length != 2 || dev.Length != 2) return null;
        var hex = NumberStyles.HexNumber;
        if (!ulong.TryParse(range[0], hex, null, out var start) || !ulong.TryParse(range[1], hex, null, out var end)
            || !ulong.TryParse(f[2], hex, null, out var off) || !ulong.TryParse(dev[0], hex, null, out var major)
            || !ulong.TryParse(dev[1], hex, null, out var minor) || !ulong.TryParse(f[4], out var ino))
            return null;
        var path = f[5].Trim();
        if (path.EndsWith(" (deleted)", StringComparison.Ordinal)) path = path[..^10];
        return new Mapping(start, end, off, major << 20 | minor, ino, path);
    }
}
