namespace SecurityAgent.Policies;

/// <summary>A tracepoint's record layout from tracefs (events/SUBSYS/EVENT/format). Field indexes count the
/// common fields too, as Tetragon does (sys_enter_openat: filename is index 6).</summary>
public sealed record TracepointFormat(string Subsystem, string Event, int Id, IReadOnlyList<TracepointField> Fields)
{
    /// <summary>Format files are a few KB; anything larger is not one.</summary>
    private const int MaxFormatBytes = 64 * 1024;

    /// <summary>Subsystem and event names as tracefs has them: nothing else is ever turned into a path.</summary>
    public static bool IsName(string s) => s.Length is > 0 and <= 128 && s.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_');

    /// <summary>The format, or null when there is no such tracepoint (or the names are not tracepoint names, or the
    /// file does not parse): a name is only ever resolved inside tracefs/events.</summary>
    public static TracepointFormat? TryRead(string? tracefs, string subsystem, string ev)
    {
        if (tracefs is null || !IsName(subsystem) || !IsName(ev)) return null;
        var read = PolicyFiles.ReadAny(Path.Combine(tracefs, "events", subsystem, ev, "format"));
        return read.Text is { Length: <= MaxFormatBytes } text ? TryParse(subsystem, ev, text) : null;
    }

    public static TracepointFormat Parse(string subsystem, string ev, string text) =>
        TryParse(subsystem, ev, text) ?? throw new FormatException($"not a tracepoint format: {subsystem}/{ev}");

    public static TracepointFormat? TryParse(string subsystem, string ev, string text)
    {
        int id = 0;
        var fields = new List<TracepointField>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.StartsWith("ID:") && !int.TryParse(line[3..].Trim(), out id)) return null;
            if (!line.StartsWith("field:")) continue;
            // field:const char * filename;	offset:24;	size:8;	signed:0;
            var parts = line.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            var decl = parts[0]["field:".Length..].Trim();
            string? Get(string key) => parts.FirstOrDefault(p => p.StartsWith(key + ":"))?[(key.Length + 1)..];
            int nameStart = decl.LastIndexOfAny([' ', '*']) + 1;
            var name = decl[nameStart..];
            var bracket = name.IndexOf('[');
            if (bracket >= 0) name = name[..bracket];
            if (!int.TryParse(Get("offset"), out var offset) || !int.TryParse(Get("size"), out var size) || Get("signed") is not { } signed
                || offset is < 0 or > ushort.MaxValue || size is < 0 or > 4096)
                return null;
            fields.Add(new TracepointField(name, decl[..nameStart].Trim(), offset, size, signed == "1"));
        }
        return new TracepointFormat(subsystem, ev, id, fields);
    }
}

public sealed record TracepointField(string Name, string CType, int Offset, int Size, bool Signed);
