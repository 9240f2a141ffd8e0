namespace SecurityAgent.Policies;

/// <summary>A tracepoint's record layout from tracefs (events/SUBSYS/EVENT/format). Field indexes count the
/// common fields too, as Tetragon does (sys_enter_openat: filename is index 6).</summary>
public sealed record TracepointFormat(string Subsystem, string Event, int Id, IReadOnlyList<TracepointField> Fields)
{
    public static TracepointFormat? TryRead(string? tracefs, string subsystem, string ev)
    {
        if (tracefs is null) return null;
        var path = Path.Combine(tracefs, "events", subsystem, ev, "format");
        try
        {
            return Parse(subsystem, ev, File.ReadAllText(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static TracepointFormat Parse(string subsystem, string ev, string text)
    {
        int id = 0;
        var fields = new List<TracepointField>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.StartsWith("ID:")) id = int.Parse(line[3..].Trim());
            if (!line.StartsWith("field:")) continue;
            // field:const char * filename;	offset:24;	size:8;	signed:0;
            var parts = line.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            var decl = parts[0]["field:".Length..].Trim();
            string Get(string key) => parts.First(p => p.StartsWith(key + ":"))[(key.Length + 1)..];
            int nameStart = decl.LastIndexOfAny([' ', '*']) + 1;
            var name = decl[nameStart..];
            var bracket = name.IndexOf('[');
            if (bracket >= 0) name = name[..bracket];
            fields.Add(new TracepointField(name, decl[..nameStart].Trim(), int.Parse(Get("offset")), int.Parse(Get("size")), Get("signed") == "1"));
        }
        return new TracepointFormat(subsystem, ev, id, fields);
    }
}

public sealed record TracepointField(string Name, string CType, int Offset, int Size, bool Signed);
