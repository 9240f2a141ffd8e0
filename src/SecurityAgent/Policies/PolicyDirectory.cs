using System.Text;
using Microsoft.Extensions.Logging;
using SecurityAgent.Interop;

namespace SecurityAgent.Policies;

/// <summary>The policy directory as a policy source: says what each *.yaml file holds now (through
/// <see cref="PolicyManager"/>), reacting to inotify events within milliseconds (an editor's rename into place, a
/// write that is closed, a ConfigMap's symlink swap, a chmod), with a slow rescan as a safety net. The directory is a
/// trust boundary: see <see cref="PolicyFiles"/>. Policies added through the API are written here.</summary>
public sealed partial class PolicyDirectory
{
    /// <summary>Where the agent reads policies unless told otherwise (absolute: never relative to a working directory).</summary>
    public const string DefaultPath = "/etc/secagent/policies";

    private const uint Events = Inotify.IN_CLOSE_WRITE | Inotify.IN_MOVED_TO | Inotify.IN_MOVED_FROM | Inotify.IN_DELETE | Inotify.IN_CREATE
        | Inotify.IN_ATTRIB | Inotify.IN_DELETE_SELF | Inotify.IN_MOVE_SELF;
    private static readonly TimeSpan Rescan = TimeSpan.FromSeconds(10);

    private readonly string _dir;
    private readonly PolicyManager _manager;
    private readonly ILogger _log;
    private readonly object _sync = new();
    private readonly Dictionary<string, string> _files = new(); // path -> what was applied (or the refusal), compared whole: no hash library loaded
    private string? _dirProblem;

    public PolicyDirectory(string dir, PolicyManager manager, ILogger log)
    {
        _dir = System.IO.Path.GetFullPath(dir);
        _manager = manager;
        _log = log;
        manager.Directory = this;
    }

    public string Path => _dir;

    /// <summary>Brings the manager in line with the directory. Returns true when anything changed.</summary>
    public bool Sync()
    {
        lock (_sync)
        {
            if (!System.IO.Directory.Exists(_dir))
                return RemoveAll();
            if (PolicyFiles.DirectoryProblem(_dir) is { } problem)
            {
                if (problem != _dirProblem) LogUntrusted(_log, problem);
                _dirProblem = problem;
                return false; // what was loaded stays; nothing new is read from an untrusted directory
            }
            _dirProblem = null;
            var realDir = PosixFiles.RealPath(_dir) ?? _dir;
            List<string> present;
            try { present = System.IO.Directory.EnumerateFileSystemEntries(_dir).Where(PolicyFiles.IsPolicyFile).Order(StringComparer.Ordinal).ToList(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                LogWatchFailed(_log, _dir, e.Message);
                return false; // gone or unreadable right now: the next event or rescan looks again
            }
            bool changed = false;
            foreach (var gone in _files.Keys.Except(present).ToList())
            {
                _files.Remove(gone);
                _manager.Remove(PolicyOrigin.File(gone), $"{gone} removed");
                changed = true;
            }
            foreach (var file in present)
                changed |= Apply(realDir, file).Changed;
            return changed;
        }
    }

    private bool RemoveAll()
    {
        foreach (var f in _files.Keys) _manager.Remove(PolicyOrigin.File(f), $"{_dir} removed");
        bool any = _files.Count > 0;
        _files.Clear();
        return any;
    }

    private (bool Changed, PolicyOutcome Outcome) Apply(string realDir, string file)
    {
        PolicyFileRead read;
        try { read = PolicyFiles.ReadTrusted(realDir, file); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            read = new PolicyFileRead(file, null, $"cannot read: {e.GetType().Name}: {e.Message}");
        }
        var content = read.Text ?? "refused: " + read.Refusal;
        if (_files.TryGetValue(file, out var old) && old == content)
            return (false, new PolicyOutcome([], [], []));
        _files[file] = content;
        var origin = PolicyOrigin.File(file);
        return (true, read.Text is null ? _manager.Fail(origin, read.Refusal!) : _manager.Apply(origin, read.Text));
    }

    /// <summary>Keeps the directory applied until cancelled: inotify events trigger a sync at once; a rescan runs every
    /// few seconds regardless (a missed event, a queue overflow, a directory that appears later).</summary>
    public void Watch(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                using var inotify = Inotify.Create();
                try
                {
                    Inotify.Watch(inotify, _dir, Events);
                }
                catch (IOException)
                {
                    // Not there (yet), or not a directory: look again later.
                    stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
                    Sync();
                    continue;
                }
                Sync(); // anything that changed before the watch existed
                var lastSync = DateTime.UtcNow;
                while (!stop.IsCancellationRequested)
                {
                    if (Inotify.Wait(inotify, 1000))
                    {
                        var events = Inotify.Drain(inotify);
                        if (events.Any(e => (e.Mask & (Inotify.IN_DELETE_SELF | Inotify.IN_MOVE_SELF | Inotify.IN_IGNORED)) != 0))
                        {
                            Sync();
                            break; // the directory itself went: watch it again once it is back
                        }
                        if (!events.Any(Relevant)) continue;
                        Thread.Sleep(2); // let a burst (a copy of several files) arrive, then sync once
                        Inotify.Drain(inotify);
                    }
                    else if (DateTime.UtcNow - lastSync < Rescan)
                        continue;
                    Sync();
                    lastSync = DateTime.UtcNow;
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                LogWatchFailed(_log, _dir, e.Message);
                stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
            }
        }
    }

    /// <summary>A file being created is not ready (its close follows); everything else may change what is loaded.</summary>
    private bool Relevant((int Wd, uint Mask, string Name) e)
    {
        if ((e.Mask & Inotify.IN_Q_OVERFLOW) != 0) return true;
        if (e.Mask == Inotify.IN_CREATE)
            return new FileInfo(System.IO.Path.Combine(_dir, e.Name)).LinkTarget is not null; // a symlink is complete when created
        return true;
    }

    /// <summary>`policy add`: checks the text, writes it as NAME.yaml (0600, renamed into place) and applies it now.</summary>
    public PolicyOutcome Add(string text, bool replace)
    {
        var results = _manager.Check("(request)", text);
        var errors = results.SelectMany(r => r.Diagnostics).Select(d => d.ToString()).ToList();
        var warnings = results.SelectMany(r => r.Warnings).Select(d => d.ToString()).ToList();
        var keys = results.Where(r => r.Ok).Select(r => r.Key!).ToList();
        if (errors.Count > 0 || keys.Count == 0)
            return new PolicyOutcome([], errors.Count > 0 ? errors : ["no policy in the request"], warnings, PolicyFailure.Invalid);
        var file = System.IO.Path.Combine(_dir, keys[0].Name + ".yaml");
        foreach (var key in keys)
            if (_manager.OriginOf(key.ToString()) is { } origin && origin.Id != file)
                return new PolicyOutcome([], [$"policy {key} is already loaded from {origin.Display}"], warnings, PolicyFailure.Conflict);
        lock (_sync)
        {
            if (PolicyFiles.DirectoryProblem(_dir) is { } problem && System.IO.Directory.Exists(_dir))
                return new PolicyOutcome([], [problem], warnings, PolicyFailure.Conflict);
            if (File.Exists(file) && !replace)
                return new PolicyOutcome([], [$"{file} exists (replace=true to overwrite)"], warnings, PolicyFailure.Conflict);
            var tmp = System.IO.Path.Combine(_dir, $".{keys[0].Name}.{Guid.NewGuid():N}.tmp");
            try
            {
                System.IO.Directory.CreateDirectory(_dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                using (var fs = new FileStream(tmp, new FileStreamOptions
                {
                    Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                }))
                {
                    fs.Write(Encoding.UTF8.GetBytes(text));
                    fs.Flush(flushToDisk: true);
                }
                File.Move(tmp, file, overwrite: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                File.Delete(tmp);
                return new PolicyOutcome([], [$"cannot write {file}: {e.Message}"], warnings, PolicyFailure.LoadFailed);
            }
            var (changed, outcome) = Apply(PosixFiles.RealPath(_dir) ?? _dir, file);
            if (!changed) // the same text again: what it holds is what is loaded
                outcome = outcome with { Loaded = _manager.List().Where(p => p.Origin == file && p.Loaded).Select(p => p.Key).ToList() };
            return outcome with { Warnings = warnings, Failure = outcome.Ok ? PolicyFailure.None : PolicyFailure.LoadFailed };
        }
    }

    /// <summary>`policy delete`: removes the file that holds only this policy.</summary>
    public PolicyOutcome Delete(string name)
    {
        if (_manager.OriginOf(name) is not { } origin)
            return new PolicyOutcome([], [$"no policy {name}"], [], PolicyFailure.NotFound);
        if (origin.Source != "file")
            return new PolicyOutcome([], [$"policy {name} comes from {origin.Display}: delete it there (kubectl delete)"], [], PolicyFailure.Conflict);
        if (_manager.List().Count(p => p.Origin == origin.Display) > 1)
            return new PolicyOutcome([], [$"{origin.Display} holds other policies too: change that file"], [], PolicyFailure.Conflict);
        lock (_sync)
        {
            try { File.Delete(origin.Id); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return new PolicyOutcome([], [$"cannot delete {origin.Id}: {e.Message}"], [], PolicyFailure.LoadFailed);
            }
            _files.Remove(origin.Id);
            _manager.Remove(origin, $"{origin.Id} deleted");
            return new PolicyOutcome([], [], []);
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Policy directory refused: {Problem}; policies already loaded stay, nothing new is read from it")]
    private static partial void LogUntrusted(ILogger log, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Reading the policy directory {Dir} failed ({Reason}); retrying")]
    private static partial void LogWatchFailed(ILogger log, string dir, string reason);
}
