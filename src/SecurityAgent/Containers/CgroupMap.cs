using SecurityAgent.Interop;

namespace SecurityAgent.Containers;

/// <summary>cgroup id → cgroup path (relative to the cgroup v2 mount). A cgroup id is the kernfs file handle of its
/// directory, so an unknown id costs one open_by_handle_at and a readlink, never a walk of the tree; answers are
/// cached (bounded), including "no such cgroup".</summary>
public sealed class CgroupMap(string root) : IDisposable
{
    private const int Cap = 16_384;
    private readonly Dictionary<ulong, string?> _paths = new();
    private Microsoft.Win32.SafeHandles.SafeFileHandle? _mount;

    public string Root => root;

    /// <summary>Pipeline thread.</summary>
    public string? PathOf(ulong cgroupId)
    {
        lock (_paths)
        {
            if (_paths.TryGetValue(cgroupId, out var p)) return p;
            _mount ??= Libc.OpenDirectory(root);
            var full = Libc.CgroupPath(_mount, cgroupId);
            p = full is null ? null : Relative(full);
            if (_paths.Count >= Cap) _paths.Clear();
            _paths[cgroupId] = p;
            return p;
        }
    }

    private string Relative(string full)
    {
        var rel = Path.GetRelativePath(root, full);
        return rel == "." ? "/" : "/" + rel;
    }

    /// <summary>The cgroup ids of every directory below the root whose path satisfies <paramref name="match"/> (a walk
    /// of the tree: for policy scopes when pods change, not per event).</summary>
    public List<(ulong Id, string Path)> Find(Func<string, bool> match)
    {
        var found = new List<(ulong, string)>();
        var stack = new Stack<string>([root]);
        while (stack.TryPop(out var dir))
        {
            try
            {
                var rel = Relative(dir);
                if (match(rel)) found.Add((Libc.Inode(dir), rel));
                foreach (var d in Directory.EnumerateDirectories(dir)) stack.Push(d);
            }
            catch (IOException) { }               // removed while we walked
            catch (UnauthorizedAccessException) { }
        }
        return found;
    }

    public void Dispose() => _mount?.Dispose();
}
