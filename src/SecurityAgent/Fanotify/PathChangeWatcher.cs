using System.Buffers.Binary;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SecurityAgent.Events;
using SecurityAgent.Interop;
using SecurityAgent.Policies;

namespace SecurityAgent.Fanotify;

/// <summary>A hook on a name-only syscall (unlink, rename, chmod, ...) that is matched again after the call: its kernel
/// hook id, the changes that stand for its syscall, its file-name slots (which name of the call each is, and its offset
/// in the syscall's record), the positive path filters of each selector (one of them must hold before a change is
/// posted), and the syscall's number (what the kernel's note of a call names).</summary>
public sealed record PathChangeHook(uint HookId, PathChange Changes, IReadOnlyList<(int Slot, int Position, int Offset)> Names, int Args,
    IReadOnlyList<IReadOnlyList<PathFilter>> Selectors, int Nr = -1);

/// <summary>What a watcher counted: changes read and posted, overflows of the kernel's queue, calls fanotify merged into
/// another call's notification (each reported from its note), and notes of calls overwritten before they were read
/// (their changes are reported without the strings the call passed).</summary>
public readonly record struct PathChangeCounters(long Events, long Posted, long Overflows, long Merged, long NotesLost)
{
    public static PathChangeCounters operator +(PathChangeCounters a, PathChangeCounters b) =>
        new(a.Events + b.Events, a.Posted + b.Posted, a.Overflows + b.Overflows, a.Merged + b.Merged, a.NotesLost + b.NotesLost);
}

/// <summary>Watches the directories (and the files) the hooks' Equal and Prefix paths name with a fanotify notification
/// group that reports the parent directory's handle and the entry's name (FAN_REPORT_DIR_FID|FAN_REPORT_NAME) and the
/// object's handle (FAN_REPORT_FID). Each change is resolved to the real path (the directory's handle opened on its file
/// system and read back: no symlink in the name the process used survives; a watched file's handle gives its own path,
/// whatever hard link was used) and, when a hook's path filters hold, posted as that hook's policy record with
/// <see cref="PolicyKernelEvent.AfterCall"/>: the pipeline then runs the hook's selectors on it, drops it when the
/// kernel already matched the same call at entry, and enforces (after the call). Notifications never block anyone:
/// the group is FAN_CLASS_NOTIF, and an overflow of its queue is counted.</summary>
public sealed partial class PathChangeWatcher : IDisposable
{
    private const ulong DirectoryMask = Libc.FAN_CREATE | Libc.FAN_DELETE | Libc.FAN_RENAME | Libc.FAN_ATTRIB | Libc.FAN_MODIFY
        | Libc.FAN_ONDIR | Libc.FAN_EVENT_ON_CHILD;
    private const ulong FileMask = Libc.FAN_ATTRIB | Libc.FAN_MODIFY | Libc.FAN_MOVE_SELF;

    private readonly FdHandle _group, _stop;
    private readonly PathChangeHook[] _hooks;
    private readonly PathMatcher[][] _filters;
    private readonly Func<PolicyKernelEvent, bool> _post;
    private readonly AfterCallNotes? _notes;
    private static readonly Func<int, PathChange> _changesOf = PathChanges.ChangesOfNumber;
    private readonly ILogger _log;
    private readonly Dictionary<ulong, FdHandle> _mounts = [];
    // Keyed by the file system's id and the handle, a char each 16 bits / byte (Key): looked up from a stack span, no allocation.
    private readonly Dictionary<string, string> _files = new(StringComparer.Ordinal); // a watched file's handle → its path
    private readonly Dictionary<string, string> _dirs = new(StringComparer.Ordinal);  // a directory's handle → its path (cleared when a directory moves)
    private readonly Dictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> _fileLookup, _dirLookup;
    private readonly Dictionary<string, Libc.FileStat> _stats = []; // a file's stat when last seen: what an attribute change changed
    private readonly List<string> _trees;                      // Prefix directories: a directory created below one is marked too
    private readonly Thread _thread;
    private const int MaxTreeDirectories = 4096; // the mark planner's default: past it, a Prefix watches its file system
    private const int MaxFiles = 65536; // files watched by inode: those named at load, and those created under a Prefix since
    private const int MaxHandle = 136; // MAX_HANDLE_SZ and the handle's 8-byte header
    private readonly byte[] _scratch = new byte[4096];
    private long _events, _posted, _overflows, _merged;
    private volatile bool _stopping;

    public IReadOnlyList<string> MarkedDirectories { get; }

    /// <summary>What this watcher has counted so far.</summary>
    public PathChangeCounters Counters =>
        new(Interlocked.Read(ref _events), Interlocked.Read(ref _posted), Interlocked.Read(ref _overflows), Interlocked.Read(ref _merged), _notes?.Lost ?? 0);

    public PathChangeWatcher(IReadOnlyList<PathChangeHook> hooks, Func<PolicyKernelEvent, bool> post, ILogger? log = null, AfterCallNotes? notes = null)
    {
        _post = post;
        _notes = notes;
        _log = log ?? NullLogger.Instance;
        // The mark planner canonicalises the values and expands Prefix trees, as for permission events: a rule per selector.
        var rules = hooks.SelectMany((h, i) => h.Selectors.Select(s => new FanotifyRule(i.ToString(System.Globalization.CultureInfo.InvariantCulture),
            FileOperations.Open, s, null))).ToList();
        var plan = new MarkPlanner(new LocalFileSystem()).Plan(rules);
        if (plan.Errors.Count > 0)
            throw new ArgumentException(string.Join("; ", plan.Errors.Select(e => e.Error)));
        _hooks = hooks.ToArray();
        _fileLookup = _files.GetAlternateLookup<ReadOnlySpan<char>>();
        _dirLookup = _dirs.GetAlternateLookup<ReadOnlySpan<char>>();
        var canonical = plan.Rules.SelectMany(r => r.Paths.Select(f => (Hook: int.Parse(r.Id, System.Globalization.CultureInfo.InvariantCulture), Filter: f))).ToList();
        _filters = _hooks.Select((_, i) => canonical.Where(c => c.Hook == i).Select(c => new PathMatcher([c.Filter])).ToArray()).ToArray();
        var filters = canonical.Select(c => c.Filter).ToList();
        _trees = filters.Where(f => f.Op == StringOp.Prefix).SelectMany(f => f.Values).ToList();
        _group = Libc.FanotifyInitNames();
        _stop = Libc.EventFd();
        try
        {
            var dirs = new List<string>();
            foreach (var m in plan.Initial.Marks)
            {
                if (m.Kind == MarkKind.Inode) dirs.Add(Parent(m.Path));
                else if (m.Kind == MarkKind.Children) dirs.Add(m.Path);
                else Mark(Libc.FAN_MARK_FILESYSTEM, DirectoryMask, m.Path);
            }
            // An Equal path that does not exist yet (the directory mkdir makes, the name a rename gives): its directory.
            foreach (var v in filters.Where(f => f.Op == StringOp.Equal).SelectMany(f => f.Values))
                if (Directory.Exists(Parent(v))) dirs.Add(Parent(v));
            MarkedDirectories = dirs.Distinct().ToList();
            foreach (var d in MarkedDirectories)
                Mark(Libc.FAN_MARK_ONLYDIR, DirectoryMask, d);
            foreach (var f in filters.Where(f => f.Op is StringOp.Equal or StringOp.Prefix)
                         .SelectMany(f => f.Values.SelectMany(v => PathArguments.Files(v, f.Op == StringOp.Prefix))).DistinctBy(f => f.Path))
            {
                WatchFile(f.Path);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
        _thread = new Thread(Loop) { IsBackground = true, Name = "fanotify-changes" };
        _thread.Start();
    }

    /// <summary>Marks a file by inode (changes through any of its names are reported on it) and remembers its handle.</summary>
    private void WatchFile(string path)
    {
        if (Libc.NameToHandle(path) is not { } handle || Mark(0, FileMask, path) != 0) return;
        _files.TryAdd(new string(Key(FsIdOf(Parent(path)), handle, new char[KeyLength(handle)])), path);
        if (Libc.Lstat(path) is { } st) _stats[path] = st;
    }

    private static readonly EnumerationOptions Entries = new()
    {
        AttributesToSkip = FileAttributes.ReparsePoint, // never descend through a symlink
        IgnoreInaccessible = true,
        ReturnSpecialDirectories = false,
    };

    /// <summary>A directory or regular file that appeared under a Prefix is watched as those named at load are (a hard
    /// link made to the file later, anywhere, is then seen on the file).</summary>
    private void WatchIfInTree(string path, bool isDir)
    {
        if (!InTree(path)) return;
        if (isDir)
            WatchTree(path);
        else if (_files.Count < MaxFiles && Libc.Lstat(path) is { IsRegular: true })
            WatchFile(path);
    }

    /// <summary>Marks a directory that appeared under a Prefix, then what it already holds: what was made in it before the
    /// mark existed (mkdir -p, an archive unpacked, a tree moved in) has no event of its own, what is made after has.</summary>
    private void WatchTree(string created)
    {
        var pending = new Stack<string>([created]);
        for (int budget = MaxTreeDirectories; pending.TryPop(out var dir); budget--)
        {
            if (budget == 0)
            {
                // As the plan does for a Prefix over this many directories at load: the file system instead.
                Mark(Libc.FAN_MARK_FILESYSTEM, DirectoryMask, created);
                LogTreeTooLarge(_log, created, MaxTreeDirectories);
                return;
            }
            // Not through a symlink: a directory swapped for a link to / in this instant must not walk the file system.
            if (Libc.Lstat(dir) is not { IsDirectory: true } || Mark(Libc.FAN_MARK_ONLYDIR | Libc.FAN_MARK_DONT_FOLLOW, DirectoryMask, dir) != 0)
                continue;
            try
            {
                foreach (var entry in new DirectoryInfo(dir).EnumerateFileSystemInfos("*", Entries))
                {
                    if (entry is DirectoryInfo) pending.Push(entry.FullName);
                    else if (_files.Count < MaxFiles && Libc.Lstat(entry.FullName) is { IsRegular: true }) WatchFile(entry.FullName);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // removed while we looked
        }
    }

    private bool InTree(string path) => _trees.Any(t => path.StartsWith(t, StringComparison.Ordinal));

    private int Mark(uint flags, ulong mask, string path)
    {
        int errno = Libc.FanotifyMark(_group, Libc.FAN_MARK_ADD | flags, mask, path);
        if (errno == 0)
            FsIdOf((flags & (Libc.FAN_MARK_ONLYDIR | Libc.FAN_MARK_FILESYSTEM)) != 0 ? path : Parent(path));
        else if (errno != Errno.ENOENT)
            LogMarkRefused(_log, path, Errno.Name(errno)); // a file system without file handles: that path is matched as spelled

        return errno;
    }

    /// <summary>The file system of a directory, remembering an fd on it to open the handles its events carry.</summary>
    private ulong FsIdOf(string directory)
    {
        if (Libc.OpenDirectoryFd(directory) is not { } fd) return 0;
        ulong fsid = Libc.FsId(fd);
        if (!_mounts.TryAdd(fsid, fd)) fd.Dispose();
        return fsid;
    }

    private static int KeyLength(ReadOnlySpan<byte> handle) => 4 + handle.Length;

    private static ReadOnlySpan<char> Key(ulong fsid, ReadOnlySpan<byte> handle, Span<char> into)
    {
        for (int i = 0; i < 4; i++) into[i] = (char)(fsid >> (16 * i));
        for (int i = 0; i < handle.Length; i++) into[4 + i] = (char)handle[i];
        return into;
    }

    private void Loop()
    {
        var buffer = new byte[64 * 1024];
        Span<Libc.PollFd> fds = stackalloc Libc.PollFd[2];
        var seen = new HashSet<(uint, int, string, long)>();
        try
        {
            while (!_stopping)
            {
                fds[0] = new Libc.PollFd { Fd = (int)_group.DangerousGetHandle(), Events = Libc.POLLIN };
                fds[1] = new Libc.PollFd { Fd = (int)_stop.DangerousGetHandle(), Events = Libc.POLLIN };
                Libc.Poll(fds, -1);
                if (fds[1].Revents != 0) return;
                int n = Libc.Read(_group, buffer, "read(fanotify)");
                // The calls a change of this read can stand for were noted before it returned: fanotify merges a call's
                // change into a queued one until the read takes it, so a time taken before the read would leave out the
                // calls made while this thread waited to run read() (seen: 22 of a loop's 50 unlinks).
                ulong readAt = (ulong)Libc.ClockNs(Libc.CLOCK_BOOTTIME);
                seen.Clear(); // a rename of a watched file comes as FAN_RENAME and FAN_MOVE_SELF in one read: one event
                for (int at = 0; at + Libc.FanotifyMetadataLength <= n;)
                {
                    int len = (int)BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(at));
                    if (len < Libc.FanotifyMetadataLength || at + len > n) break;
                    try { OnEvent(buffer.AsSpan(at, len), seen, readAt); }
                    catch (Exception e) when (e is not OutOfMemoryException) { LogEventFailed(_log, e.Message); }
                    at += len;
                }
            }
        }
        catch (Exception e) when (!_stopping)
        {
            LogStopped(_log, e.Message);
        }
    }

    private ref struct Info
    {
        public ulong FsId;
        public ReadOnlySpan<byte> Handle;
        public ReadOnlySpan<byte> Name;
        public bool Present;
    }

    private void OnEvent(ReadOnlySpan<byte> e, HashSet<(uint, int, string, long)> seen, ulong readAt)
    {
        Interlocked.Increment(ref _events);
        ulong mask = BinaryPrimitives.ReadUInt64LittleEndian(e[8..]);
        int tid = BinaryPrimitives.ReadInt32LittleEndian(e[20..]); // FAN_REPORT_TID
        if ((mask & Libc.FAN_Q_OVERFLOW) != 0)
        {
            Interlocked.Increment(ref _overflows);
            LogOverflow(_log);
            return;
        }
        Info dir = default, old = default, @new = default, obj = default;
        for (int at = BinaryPrimitives.ReadUInt16LittleEndian(e[6..]); at + 4 <= e.Length;)
        {
            byte type = e[at];
            int len = BinaryPrimitives.ReadUInt16LittleEndian(e[(at + 2)..]);
            if (len < 4 || at + len > e.Length) break;
            var info = ParseFid(e.Slice(at, len), type != Libc.FAN_EVENT_INFO_TYPE_FID);
            switch (type)
            {
                case Libc.FAN_EVENT_INFO_TYPE_DFID_NAME: dir = info; break;
                case Libc.FAN_EVENT_INFO_TYPE_OLD_DFID_NAME: old = info; break;
                case Libc.FAN_EVENT_INFO_TYPE_NEW_DFID_NAME: @new = info; break;
                case Libc.FAN_EVENT_INFO_TYPE_FID: obj = info; break;
            }
            at += len;
        }
        bool isDir = (mask & Libc.FAN_ONDIR) != 0;
        if (isDir && (mask & (Libc.FAN_RENAME | Libc.FAN_DELETE)) != 0)
            _dirs.Clear(); // a directory moved or went: the paths of the handles below it changed
        string? watched = null;
        if (obj.Present && obj.Handle.Length <= MaxHandle)
        {
            Span<char> key = stackalloc char[KeyLength(obj.Handle)];
            watched = _fileLookup.TryGetValue(Key(obj.FsId, obj.Handle, key), out var w) ? w : null;
        }
        // What the change can stand for, its paths, and the entry's name (what the call's string ends in).
        string? first = null, second = null;
        PathChange candidates;
        ReadOnlySpan<byte> name = dir.Name;
        if ((mask & Libc.FAN_RENAME) != 0)
        {
            (candidates, first, second) = (PathChange.Rename, PathOf(old), PathOf(@new));
            name = old.Name;
            if (second is not null && (first is null || !InTree(first)))
                WatchIfInTree(second, isDir); // moved in from elsewhere: what it holds was never marked
        }
        else if ((mask & Libc.FAN_MOVE_SELF) != 0 && watched is not null)
        {
            (candidates, first) = (PathChange.Rename, watched);
            name = default;
        }
        else if ((mask & Libc.FAN_DELETE) != 0)
            (candidates, first) = (PathChange.Delete, PathOf(dir));
        else if ((mask & Libc.FAN_CREATE) != 0 && PathOf(dir) is { } created)
        {
            candidates = isDir ? PathChange.Directory : PathChange.Symlink | PathChange.Node | PathChange.Link;
            WatchIfInTree(created, isDir);
            first = created;
        }
        else if ((mask & Libc.FAN_ATTRIB) != 0)
        {
            candidates = dir.Present ? PathChange.Mode | PathChange.Owner : PathChange.Link | PathChange.Unlink;
            first = dir.Present ? watched ?? PathOf(dir) : watched;
        }
        else if ((mask & Libc.FAN_MODIFY) != 0)
            (candidates, first) = (PathChange.Shortened, watched ?? PathOf(dir));
        else
            return;
        if (first is null && second is null)
            return;
        // The calls that made it, as the kernel noted them at entry: their syscall and the strings they passed. fanotify
        // merges identical changes of a thread still queued into one notification: each call it stands for is an event.
        // An io_uring worker's change joins its process's requests. Without a note (a call the notes missed: an
        // overwritten note, a request submitted before the agent looked), the change is told by the file's stat.
        _joined.Clear();
        int calls = _notes?.JoinAll(tid, candidates, name, readAt, _joined) ?? 0;
        if (calls > 1)
            Interlocked.Add(ref _merged, calls - 1);
        for (int c = 0; c < Math.Max(calls, 1); c++)
            Post(calls > 0 ? _joined[c] : null, mask, candidates, first, second, dir.Present, tid, seen);
    }

    private readonly List<AfterCallNote> _joined = [];

    /// <summary>The change as the events of the hooks it matches, for the call <paramref name="note"/> (null: unknown).</summary>
    private void Post(AfterCallNote? note, ulong mask, PathChange candidates, string? first, string? second, bool named, int tid,
        HashSet<(uint, int, string, long)> seen)
    {
        var change = note is not null ? _changesOf(note.Nr) & candidates : Guess(mask, candidates, first, named);
        if ((change & PathChange.Link) != 0 && (mask & Libc.FAN_CREATE) != 0)
            (first, second) = (null, first); // the new name of a link is its second
        if (change == PathChange.None)
            return;
        int pid = note?.Tgid ?? ProcessOf(tid);
        byte[]? firstBytes = first is null ? null : Encoding.UTF8.GetBytes(first), secondBytes = second is null ? null : Encoding.UTF8.GetBytes(second);
        for (int h = 0; h < _hooks.Length; h++)
        {
            var hook = _hooks[h];
            if ((note is not null ? hook.Nr != note.Nr : (hook.Changes & change) == 0) || !Passes(h, firstBytes, secondBytes))
                continue;
            // One event per call and hook in a read: a rename of a watched file is FAN_RENAME and FAN_MOVE_SELF; without
            // a note, per path.
            if (!seen.Add((hook.HookId, pid, note is null ? first ?? second! : "", note?.Seq ?? 0)))
                continue;
            var strings = new byte[hook.Args][];
            byte[]?[]? passed = null;
            for (int i = 0; i < strings.Length; i++) strings[i] = [];
            foreach (var (slot, position, offset) in hook.Names)
            {
                if ((position == 0 ? firstBytes : position == 1 ? secondBytes : null) is { } p)
                    strings[slot] = p;
                if (note?.Passed(offset) is { } raw && !raw.AsSpan().SequenceEqual(strings[slot]))
                    (passed ??= new byte[hook.Args][])[slot] = raw;
            }
            var record = new PolicyKernelEvent((ulong)Libc.ClockNs(Libc.CLOCK_BOOTTIME), pid, tid, hook.HookId, 0, 0, 0, 0,
                new ulong[hook.Args], strings, passed) { AfterCall = true, NoteSeq = (ulong)(note?.Seq ?? 0) };
            if (_post(record)) Interlocked.Increment(ref _posted);
        }
    }

    /// <summary>Without the call's note: which of the candidate changes the file's stat before and after tells.</summary>
    private PathChange Guess(ulong mask, PathChange candidates, string? first, bool named)
    {
        if ((mask & (Libc.FAN_RENAME | Libc.FAN_MOVE_SELF | Libc.FAN_DELETE)) != 0 || candidates == PathChange.Directory)
            return candidates;
        if ((mask & Libc.FAN_CREATE) != 0)
            return Libc.Lstat(first!) switch
            {
                { IsSymlink: true } => PathChange.Symlink,
                { IsRegular: true, Links: > 1 } => PathChange.Link,
                { IsRegular: false, IsDirectory: false } => PathChange.Node,
                _ => PathChange.None, // open(O_CREAT), creat: the open hooks see those
            };
        var (before, after) = Restat(first);
        if ((mask & Libc.FAN_ATTRIB) != 0)
        {
            if (named)
                return before is { } b && after is { } a && (a.Mode != b.Mode) != (a.Uid != b.Uid || a.Gid != b.Gid)
                    ? a.Mode != b.Mode ? PathChange.Mode : PathChange.Owner
                    : PathChange.Mode | PathChange.Owner;
            return before is { } b2 ? (after?.Links ?? 0) > b2.Links ? PathChange.Link : PathChange.Unlink : PathChange.None;
        }
        return before is not { } b3 || after is not { } a3 || a3.Size < b3.Size ? PathChange.Shortened : PathChange.None;
    }

    /// <summary>The process of a thread (fanotify names the thread): /proc's Tgid, read only for a change no note stands
    /// for; for a thread gone by now, the kernel's record of io_uring workers (an io_uring path operation is made by an
    /// io-wq worker, which exits with its ring, often before the change is read).</summary>
    private int ProcessOf(int tid) => ProcFsProcessOf(tid) ?? _notes?.IoWorkerProcess(tid) ?? tid; // else its id is all there is

    private static int? ProcFsProcessOf(int tid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{tid}/status"))
                if (line.StartsWith("Tgid:", StringComparison.Ordinal))
                    return int.Parse(line.AsSpan(5).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (IOException) { }
        return null;
    }

    /// <summary>The file's stat as last seen (at load for the watched files) and now; the latter is kept for next time.</summary>
    private (Libc.FileStat? Before, Libc.FileStat? After) Restat(string? path)
    {
        if (path is null) return (null, null);
        _stats.TryGetValue(path, out var before);
        var after = Libc.Lstat(path);
        if (after is { } a)
        {
            if (_stats.Count > 65536) _stats.Clear();
            _stats[path] = a;
        }
        else _stats.Remove(path);
        return (before, after);
    }

    private bool Passes(int hook, byte[]? first, byte[]? second)
    {
        foreach (var m in _filters[hook])
            if (first is not null && m.Matches(first) || second is not null && m.Matches(second))
                return true;
        return false;
    }

    private static Info ParseFid(ReadOnlySpan<byte> info, bool named)
    {
        // header (4), __kernel_fsid_t (8), struct file_handle: handle_bytes (4), handle_type (4), f_handle; then the name
        if (info.Length < 20) return default;
        int bytes = (int)BinaryPrimitives.ReadUInt32LittleEndian(info[12..]);
        if (20 + bytes > info.Length) return default;
        var r = new Info { FsId = BinaryPrimitives.ReadUInt64LittleEndian(info[4..]), Handle = info.Slice(12, 8 + bytes), Present = true };
        if (named)
        {
            var name = info[(20 + bytes)..];
            int nul = name.IndexOf((byte)0);
            r.Name = nul < 0 ? name : name[..nul];
        }
        return r;
    }

    /// <summary>The real path of directory handle + name, or null when the directory cannot be opened (gone, or on a file
    /// system nothing was marked on).</summary>
    private string? PathOf(Info i)
    {
        if (!i.Present || !_mounts.TryGetValue(i.FsId, out var mount)) return null;
        if (i.Handle.Length > MaxHandle) return null;
        Span<char> key = stackalloc char[KeyLength(i.Handle)];
        if (!_dirLookup.TryGetValue(Key(i.FsId, i.Handle, key), out var dir))
        {
            if (Libc.HandlePath(mount, i.Handle, _scratch) is not { } resolved) return null;
            if (_dirs.Count > 4096) _dirs.Clear();
            _dirs[new string(key)] = dir = resolved;
        }
        if (i.Name.IsEmpty || i.Name.SequenceEqual("."u8)) return dir;
        return (dir == "/" ? "/" : dir + "/") + Encoding.UTF8.GetString(i.Name);
    }

    private static string Parent(string path) => path.LastIndexOf('/') is var i and > 0 ? path[..i] : "/";

    public void Dispose()
    {
        _stopping = true;
        if (_stop is not null) Libc.Signal(_stop);
        if (_thread is not null && _thread != Thread.CurrentThread) _thread.Join();
        _group?.Dispose();
        _stop?.Dispose();
        foreach (var fd in _mounts.Values) fd.Dispose();
        _notes?.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "fanotify changes: a change could not be resolved: {Error}")]
    private static partial void LogEventFailed(ILogger log, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "fanotify changes: {Path} cannot be watched ({Error}): changes there are matched on the name the process passed only")]
    private static partial void LogMarkRefused(ILogger log, string path, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "fanotify changes: {Path} holds more than {Max} directories: its file system is watched instead")]
    private static partial void LogTreeTooLarge(ILogger log, string path, int max);

    [LoggerMessage(Level = LogLevel.Warning, Message = "fanotify changes: the kernel's queue overflowed; changes were lost")]
    private static partial void LogOverflow(ILogger log);

    [LoggerMessage(Level = LogLevel.Error, Message = "fanotify changes: stopped: {Error}")]
    private static partial void LogStopped(ILogger log, string error);
}
