using SecurityAgent.Interop;

namespace SecurityAgent.Containers;

/// <summary>cgroup id → cgroup path (relative to the cgroup v2 mount), from the cgroup v2 tree. A miss rescans
/// the tree, at most every 200 ms (containers come and go; their cgroup directories with them).</summary>
public sealed class CgroupMap(string root)
{
    private readonly Dictionary<ulong, string> _paths = new();
    private DateTime _scanned = DateTime.MinValue;

    public string Root => root;

    public string? PathOf(ulong cgroupId)
    {
        lock (_paths)
        {
            if (_paths.TryGetValue(cgroupId, out var p)) return p;
            if (DateTime.UtcNow - _scanned < TimeSpan.FromMilliseconds(200)) return null;
            Scan();
            return _paths.GetValueOrDefault(cgroupId);
        }
    }

    /// <summary>The cgroup ids of every directory below the root whose path satisfies <paramref name="match"/>.</summary>
    public List<(ulong Id, string Path)> Find(Func<string, bool> match)
    {
        lock (_paths)
        {
            Scan();
            return _paths.Where(kv => match(kv.Value)).Select(kv => (kv.Key, kv.Value)).ToList();
        }
    }

    private void Scan()
    {
        _scanned = DateTime.UtcNow;
        _paths.Clear();
        var stack = new Stack<string>([root]);
        while (stack.TryPop(out var dir))
        {
            try
            {
                var rel = Path.GetRelativePath(root, dir);
                _paths[Libc.Inode(dir)] = rel == "." ? "/" : "/" + rel;
                foreach (var d in Directory.EnumerateDirectories(dir)) stack.Push(d);
            }
            catch (IOException) { }               // removed while we walked
            catch (UnauthorizedAccessException) { }
        }
    }
}
