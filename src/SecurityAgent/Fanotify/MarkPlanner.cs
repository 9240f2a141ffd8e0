namespace SecurityAgent.Fanotify;

/// <summary>What the planner needs to know about the file system (a fake in unit tests).</summary>
public interface IFileSystemView
{
    /// <summary>The canonical path (symlinks, ".", ".." resolved) of an existing absolute path, null when it does not exist.</summary>
    string? RealPath(string path);

    bool IsDirectory(string canonicalPath);

    /// <summary>Names of the sub-directories (not symlinks to directories) of a canonical directory.</summary>
    IEnumerable<string> SubdirectoryNames(string canonicalDirectory);

    /// <summary>Every mount point of the agent's mount namespace.</summary>
    IEnumerable<string> MountPoints();
}

/// <summary>A fanotify mark: <see cref="MarkKind.Inode"/> on one file (an Equal path), <see cref="MarkKind.Children"/>
/// on a directory with FAN_EVENT_ON_CHILD (its direct children: a Prefix), <see cref="MarkKind.Filesystem"/> on the
/// file system holding the path (a selector as broad as "/").</summary>
public enum MarkKind { Inode, Children, Filesystem }

public sealed record Mark(MarkKind Kind, string Path, FileOperations Operations);

/// <summary>What a rule marks: <see cref="AnchorKind.File"/> one path, <see cref="AnchorKind.Tree"/> every path with a
/// prefix, <see cref="AnchorKind.Everything"/> every file (a "/" prefix, or only Postfix/Not* filters).</summary>
public enum AnchorKind { File, Tree, Everything }

public sealed record Anchor(AnchorKind Kind, string Path, FileOperations Operations);

/// <summary>The marks to add and the directories to watch for new entries (a new sub-directory under a prefix, the
/// file of an Equal path (re)created or renamed into place, a missing component of a path that does not exist yet).</summary>
public sealed record MarkSet(IReadOnlyList<Mark> Marks, IReadOnlyList<string> Watches)
{
    public static MarkSet Empty { get; } = new([], []);
}

/// <summary>The plan for a rule set: the rules with canonical paths (what the decision matches against), what they mark,
/// why anything is broad, and the rules refused (each with the reason).</summary>
public sealed record MarkPlan(
    IReadOnlyList<FanotifyRule> Rules,
    IReadOnlyList<Anchor> Anchors,
    MarkSet Initial,
    IReadOnlyList<string> Notes,
    IReadOnlyList<(string RuleId, string Error)> Errors);

/// <summary>Pure: rules (and a view of the file system) in, marks out. Marks only what the rules name, so opens of
/// anything else never leave the kernel: the inode of an Equal path; for a Prefix, the directory holding the prefix's
/// last component and every directory below the prefix (each with FAN_EVENT_ON_CHILD); a whole file system only for a
/// rule that names no narrower path. Symlinks and "."/".." in rule paths are resolved, so the canonical path the
/// kernel reports for an open is what the rule's values are compared with.</summary>
public sealed class MarkPlanner(IFileSystemView fs, int maxTreeDirectories = 4096)
{
    public MarkPlan Plan(IEnumerable<FanotifyRule> rules)
    {
        var canonical = new List<FanotifyRule>();
        var errors = new List<(string, string)>();
        var anchors = new Dictionary<(AnchorKind, string), FileOperations>();
        foreach (var rule in rules)
        {
            if (Validate(rule) is { } error)
            {
                errors.Add((rule.Id, error));
                continue;
            }
            var paths = rule.Paths.Select(f => f with { Values = f.Values.Select(v => Canonical(f.Op, v)).ToList() }).ToList();
            canonical.Add(rule with { Paths = paths });
            foreach (var a in AnchorsOf(paths))
                anchors[a] = anchors.GetValueOrDefault(a) | rule.Operations;
        }
        var list = anchors.Select(kv => new Anchor(kv.Key.Item1, kv.Key.Item2, kv.Value)).OrderBy(a => a.Path, StringComparer.Ordinal).ToList();
        var notes = new List<string>();
        return new MarkPlan(canonical, list, Expand(list, notes), notes, errors);
    }

    /// <summary>Every mark and watch of the anchors as the file system is now (at start, and again when inotify lost events).</summary>
    public MarkSet Expand(IEnumerable<Anchor> anchors, List<string>? notes = null)
    {
        var acc = new Acc();
        foreach (var a in anchors)
            Expand(a, acc, notes ?? []);
        return acc.ToSet();
    }

    /// <summary>What to add when <paramref name="name"/> appeared in a watched <paramref name="directory"/> (created or
    /// renamed into it): a new directory under a prefix, an Equal path's file, a missing component of a rule path.</summary>
    public MarkSet OnCreated(IEnumerable<Anchor> anchors, string directory, string name, bool isDirectory)
    {
        var acc = new Acc();
        OnCreated(anchors, Join(directory, name), isDirectory, acc);
        return acc.ToSet();
    }

    /// <summary>What to add for what a directory held before its watch existed. A plan looks at a directory and the watch
    /// is added after: an entry made in between has no event of its own, so once the watch is in place the directory is
    /// looked at again. Its sub-directories not <paramref name="watched"/> yet are treated as new, and the rule files
    /// directly in it are marked if they exist now.</summary>
    public MarkSet OnWatched(IEnumerable<Anchor> anchors, string directory, Func<string, bool> watched)
    {
        var acc = new Acc();
        foreach (var sub in fs.SubdirectoryNames(directory))
            if (Join(directory, sub) is var path && !watched(path))
                OnCreated(anchors, path, isDirectory: true, acc);
        foreach (var a in anchors)
            if (a.Kind == AnchorKind.File && Parent(a.Path) == directory)
                Expand(a, acc, []);
        return acc.ToSet();
    }

    private void OnCreated(IEnumerable<Anchor> anchors, string path, bool isDirectory, Acc acc)
    {
        var notes = new List<string>();
        foreach (var a in anchors)
        {
            switch (a.Kind)
            {
                case AnchorKind.File when a.Path == path || isDirectory && a.Path.StartsWith(path + "/", StringComparison.Ordinal):
                    Expand(a, acc, notes);
                    break;
                case AnchorKind.Tree when isDirectory:
                    var (dir, _) = SplitPrefix(a.Path);
                    if (dir == path || dir.StartsWith(path + "/", StringComparison.Ordinal))
                        Expand(a, acc, notes);
                    else if ((path + "/").StartsWith(a.Path, StringComparison.Ordinal))
                        Recurse(path, a.Operations, acc, int.MaxValue);
                    break;
            }
        }
    }

    private static string? Validate(FanotifyRule rule)
    {
        if (rule.Operations == FileOperations.None)
            return "no operation (open, read or exec) to check";
        foreach (var f in rule.Paths)
        {
            if (f.Values.Count == 0)
                return $"{f.Op} has no values";
            if (f.Op is not (StringOp.Postfix or StringOp.NotPostfix) && f.Values.FirstOrDefault(v => !v.StartsWith('/')) is { } relative)
                return $"{f.Op} path '{relative}' is not absolute";
            if (f.Values.FirstOrDefault(v => v.Length == 0 || v.Contains('\0')) is { } bad)
                return $"{f.Op} value '{bad}' is empty or contains NUL";
        }
        return null;
    }

    /// <summary>The narrowest positive filter decides the marks (Equal before Prefix); a rule without one is broad.</summary>
    private static IEnumerable<(AnchorKind, string)> AnchorsOf(IReadOnlyList<PathFilter> paths)
    {
        if (paths.FirstOrDefault(f => f.Op == StringOp.Equal) is { } eq)
            return eq.Values.Select(v => (AnchorKind.File, v));
        if (paths.FirstOrDefault(f => f.Op == StringOp.Prefix) is { } pre && !pre.Values.Contains("/"))
            return pre.Values.Select(v => (AnchorKind.Tree, v));
        return [(AnchorKind.Everything, "/")];
    }

    /// <summary>Equal and Prefix values with symlinks and "."/".." resolved (a trailing "/" of an Equal path dropped;
    /// a Prefix keeps its last, partial component as is). Postfix values are compared as written.</summary>
    private string Canonical(StringOp op, string value)
    {
        switch (op)
        {
            case StringOp.Equal or StringOp.NotEqual:
                return Resolve(value);
            case StringOp.Prefix or StringOp.NotPrefix:
                int slash = value.LastIndexOf('/');
                return Join(Resolve(value[..(slash + 1)]), value[(slash + 1)..]);
            default:
                return value;
        }
    }

    /// <summary>The canonical form of an absolute path: the longest existing part resolved by the file system, the rest
    /// normalised lexically (a component that does not exist yet cannot be a symlink).</summary>
    private string Resolve(string path)
    {
        var parts = Normalise(path);
        for (int n = parts.Count; n >= 0; n--)
        {
            var head = "/" + string.Join('/', parts.Take(n));
            if (fs.RealPath(head) is not { } real) continue;
            var rest = parts.Skip(n).ToList();
            return rest.Count == 0 ? real : Resolve(real, rest);
        }
        return "/" + string.Join('/', parts);
    }

    private static string Resolve(string real, List<string> rest) => "/" + string.Join('/', Normalise(real + "/" + string.Join('/', rest)));

    private static List<string> Normalise(string path)
    {
        var parts = new List<string>();
        foreach (var p in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (p == ".") continue;
            if (p == "..") { if (parts.Count > 0) parts.RemoveAt(parts.Count - 1); continue; }
            parts.Add(p);
        }
        return parts;
    }

    private void Expand(Anchor a, Acc acc, List<string> notes)
    {
        switch (a.Kind)
        {
            case AnchorKind.Everything:
                foreach (var m in fs.MountPoints())
                    acc.Mark(MarkKind.Filesystem, m, a.Operations);
                notes.Add("a rule names no narrower path than '/': every file system is marked, so every open (read, exec) in the system waits for the agent");
                break;
            case AnchorKind.File:
                var existing = DeepestExisting(a.Path);
                if (existing == a.Path)
                    acc.Mark(MarkKind.Inode, a.Path, a.Operations);
                acc.Watch(existing == a.Path ? Parent(a.Path) : existing);
                break;
            case AnchorKind.Tree:
                var (dir, namePrefix) = SplitPrefix(a.Path);
                var top = DeepestExisting(dir);
                if (top != dir || !fs.IsDirectory(dir))
                {
                    acc.Watch(top == dir ? Parent(dir) : top);
                    break;
                }
                var tree = new Acc();
                tree.Mark(MarkKind.Children, dir, a.Operations);
                tree.Watch(dir);
                int budget = maxTreeDirectories;
                foreach (var sub in fs.SubdirectoryNames(dir).Where(s => s.StartsWith(namePrefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
                    budget = Recurse(Join(dir, sub), a.Operations, tree, budget);
                if (budget < 0)
                {
                    acc.Mark(MarkKind.Filesystem, dir, a.Operations);
                    notes.Add($"prefix '{a.Path}' covers more than {maxTreeDirectories} directories: its file system is marked instead, and every open on it waits for the agent");
                }
                else
                    acc.Add(tree);
                break;
        }
    }

    /// <summary>Marks a directory and everything below it; returns the directory budget left (negative: exceeded).</summary>
    private int Recurse(string dir, FileOperations ops, Acc acc, int budget)
    {
        var pending = new Stack<string>([dir]);
        while (pending.TryPop(out var d))
        {
            if (--budget < 0) return budget;
            acc.Mark(MarkKind.Children, d, ops);
            acc.Watch(d);
            foreach (var sub in fs.SubdirectoryNames(d))
                pending.Push(Join(d, sub));
        }
        return budget;
    }

    private string DeepestExisting(string path)
    {
        for (var p = path; ; p = Parent(p))
            if (p == "/" || fs.RealPath(p) == p)
                return p;
    }

    /// <summary>"/etc/sh" → ("/etc", "sh"); "/etc/" → ("/etc", "").</summary>
    private static (string Directory, string NamePrefix) SplitPrefix(string prefix)
    {
        int slash = prefix.LastIndexOf('/');
        return (slash == 0 ? "/" : prefix[..slash], prefix[(slash + 1)..]);
    }

    private static string Parent(string path) => path.LastIndexOf('/') is var i and > 0 ? path[..i] : "/";

    private static string Join(string dir, string name) => dir == "/" ? "/" + name : dir + "/" + name;

    /// <summary>Marks merged per object (the kernel ORs the masks of one object's mark as well), watches once each.</summary>
    private sealed class Acc
    {
        private readonly Dictionary<(MarkKind, string), FileOperations> _marks = [];
        private readonly List<(MarkKind, string)> _order = [];
        private readonly List<string> _watches = [];
        private readonly HashSet<string> _watched = [];

        public void Mark(MarkKind kind, string path, FileOperations ops)
        {
            if (!_marks.TryGetValue((kind, path), out var old)) _order.Add((kind, path));
            _marks[(kind, path)] = old | ops;
        }

        public void Watch(string dir)
        {
            if (_watched.Add(dir)) _watches.Add(dir);
        }

        public void Add(Acc other)
        {
            foreach (var k in other._order) Mark(k.Item1, k.Item2, other._marks[k]);
            foreach (var w in other._watches) Watch(w);
        }

        public MarkSet ToSet() => new(_order.Select(k => new Mark(k.Item1, k.Item2, _marks[k])).ToList(), _watches);
    }
}
