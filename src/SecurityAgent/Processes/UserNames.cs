namespace SecurityAgent.Processes;

/// <summary>User names by uid from the host's passwd file, for process objects' "user" (Tetragon's
/// --username-metadata unix: the file only, no name service). The file is read again when its modification time
/// changed, looked at no more than once per <see cref="Recheck"/> milliseconds: a process's name costs a dictionary
/// lookup. Bounded: at most <see cref="MaxEntries"/> entries are read. Pipeline thread only.</summary>
public sealed class UserNames(string path)
{
    public const int MaxEntries = 100_000;
    private const long Recheck = 10_000;
    private Dictionary<uint, string> _names = [];
    private DateTime _modified = DateTime.MinValue;
    private long? _checkedAt;

    public string? Name(uint uid)
    {
        long now = Environment.TickCount64;
        if (_checkedAt is not { } at || now - at >= Recheck)
        {
            _checkedAt = now;
            Reload();
        }
        return _names.GetValueOrDefault(uid);
    }

    private void Reload()
    {
        try
        {
            var modified = File.GetLastWriteTimeUtc(path);
            if (modified == _modified) return;
            var names = new Dictionary<uint, string>();
            foreach (var line in File.ReadLines(path).Take(MaxEntries))
            {
                var f = line.Split(':', 4);
                if (f.Length >= 3 && f[0].Length > 0 && uint.TryParse(f[2], out var uid))
                    names.TryAdd(uid, f[0]);
            }
            (_names, _modified) = (names, modified);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
