using System.Runtime.CompilerServices;
using SecurityAgent.Events;

namespace SecurityAgent.Processes;

public sealed record ProcessCacheOptions
{
    /// <summary>How long an exited process stays for late lookups (children's parent, late events).</summary>
    public TimeSpan ExitGrace { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Hard cap on entries. Past it the oldest exited entries go first, then the oldest live ones.</summary>
    public int MaxEntries { get; init; } = 100_000;

    /// <summary>The environment variables kept from exec records (Tetragon's --filter-environment-variables); null:
    /// all of them. The kernel sends the environment only with --enable-process-environment-variables.</summary>
    public IReadOnlySet<string>? EnvironmentFilter { get; init; }
}

/// <summary>Executions by exec_id, the current one by pid, with parent links. Single-threaded: only the
/// pipeline's one reader touches it. Memory is bounded by <see cref="ProcessCacheOptions.MaxEntries"/>.</summary>
public sealed class ProcessCache(string nodeName, ProcessCacheOptions options, TimeProvider clock, long clockTickNs = 10_000_000)
{
    private readonly Dictionary<string, ProcessInfo> _byExecId = new(StringComparer.Ordinal);
    private readonly Dictionary<int, ProcessInfo> _byPid = new();
    private readonly LinkedList<ProcessInfo> _age = new();
    private readonly Queue<ProcessInfo> _exited = new();
    private readonly ValueInterner _values = new();

    public string NodeName => nodeName;
    public int Count => _byExecId.Count;
    public long Evictions { get; private set; }
    public long Expired { get; private set; }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public ProcessInfo? Get(string? execId) => execId is not null && _byExecId.TryGetValue(execId, out var p) ? p : null;

    /// <summary>The current execution of a pid (if its start time is known, it must match: no pid reuse mix-ups).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public ProcessInfo? ByPid(int pid, ulong startTime = 0) =>
        _byPid.TryGetValue(pid, out var p) && (startTime == 0 || SameStart(p.StartTime, startTime)) ? p : null;

    /// <summary>The newest execution of a pid that exited within the grace period (an event decided outside the ring
    /// buffer, a fanotify permission event, can reach the pipeline after its process's exit).</summary>
    public ProcessInfo? ExitedByPid(int pid)
    {
        ProcessInfo? found = null;
        foreach (var p in _exited)
            if (p.Pid == pid && p.Node is not null) found = p;
        return found;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public ProcessInfo? Parent(ProcessInfo p) => Get(p.ParentExecId);

    /// <summary>Parent, grandparent, ... as far as the cache knows (bounded against cycles).</summary>
    public IEnumerable<ProcessInfo> Ancestors(ProcessInfo p)
    {
        for (int i = 0; i < 128 && Parent(p) is { } parent; i++)
        {
            yield return parent;
            p = parent;
        }
    }

    private bool SameStart(ulong a, ulong b) => a / (ulong)clockTickNs == b / (ulong)clockTickNs;

    public ProcessInfo OnExec(in ExecEvent e)
    {
        Expire();
        var previous = ByPid(e.Pid, e.StartTime);
        // The parent of an exec is the process it was cloned from (what Tetragon reports), even when
        // that process has exec'd since; without a clone entry, the current execution of ppid.
        var parent = previous is not null ? Get(previous.ParentExecId) ?? ByPid(e.Ppid, e.ParentStartTime) : ByPid(e.Ppid, e.ParentStartTime);
        var info = new ProcessInfo
        {
            ExecId = ExecId.Make(nodeName, e.Ktime, e.Pid),
            Pid = e.Pid,
            Tid = e.Tid,
            StartTime = e.StartTime,
            Ktime = e.Ktime,
            Binary = _values.Path(e.Binary),
            Args = EventDecoder.SplitArgs(e.Args),
            Cwd = _values.Path(e.Cwd),
            Creds = _values.Creds(e.Uid, e.Euid, e.Gid, e.Egid),
            Auid = e.Auid,
            Nspid = e.Nspid,
            Environment = e.Env.IsEmpty ? [] : EventDecoder.SplitEnvironment(e.Env, e.Flags.HasFlag(Wire.ExecFlags.EnvTruncated), options.EnvironmentFilter),
            Caps = _values.Caps(e.CapPermitted, e.CapEffective, e.CapInheritable),
            Securebits = e.Securebits,
            UserNs = e.UserNs,
            Namespaces = e.Namespaces,
            BinaryProperties = e.BinaryProperties,
            CgroupId = e.CgroupId,
            Ppid = e.Ppid,
            ParentExecId = parent?.ExecId ?? previous?.ParentExecId,
            Origin = ProcessOrigin.Exec,
            Flags = e.Flags,
        };
        if (previous is not null)
            Retire(previous);
        Add(info);
        return info;
    }

    public ProcessInfo OnFork(ForkEvent e)
    {
        Expire();
        if (ByPid(e.Pid, e.StartTime) is { } known)
            return known; // already seeded from /proc
        var parent = ByPid(e.Ppid, e.ParentStartTime);
        var info = new ProcessInfo
        {
            ExecId = ExecId.Make(nodeName, e.StartTime, e.Pid),
            Pid = e.Pid,
            Tid = e.Pid,
            StartTime = e.StartTime,
            Ktime = e.StartTime,
            Binary = parent?.Binary ?? "",
            Args = parent?.Args ?? [],
            Cwd = parent?.Cwd ?? "",
            Creds = parent?.Creds ?? new Credentials(0, 0, 0, 0),
            Auid = parent?.Auid ?? uint.MaxValue,
            Nspid = e.Nspid,
            Environment = parent?.Environment ?? [],
            Caps = parent?.Caps,
            Securebits = parent?.Securebits ?? 0,
            UserNs = parent?.UserNs ?? default,
            Namespaces = parent?.Namespaces ?? default,
            CgroupId = parent?.CgroupId ?? 0,
            Ppid = e.Ppid,
            ParentExecId = parent?.ExecId,
            Origin = ProcessOrigin.Clone,
            Flags = (parent?.Flags ?? 0) & ~Wire.ExecFlags.InInitTree | e.Flags,
            Container = parent?.Container,
            Pod = parent?.Pod,
        };
        Add(info);
        return info;
    }

    /// <summary>Marks the process exited; it stays for <see cref="ProcessCacheOptions.ExitGrace"/>.</summary>
    public ProcessInfo? OnExit(ExitEvent e)
    {
        Expire();
        var p = ByPid(e.Pid, e.StartTime);
        if (p is not null)
        {
            _byPid.Remove(e.Pid);
            Retire(p);
        }
        return p;
    }

    /// <summary>Seeds an entry from the /proc scan at start-up (parents are linked by <see cref="LinkProcFsParents"/>).</summary>
    public void AddProcFs(ProcessInfo p)
    {
        if (_byPid.ContainsKey(p.Pid)) return;
        Add(p);
    }

    /// <summary>After a /proc scan: sets ParentExecId from ppid for the entries the scan added.</summary>
    public void LinkProcFsParents()
    {
        foreach (var p in _byPid.Values)
            LinkParent(p);
    }

    /// <summary>One entry read from /proc later (a process the hooks had not shown the cache).</summary>
    public void LinkParent(ProcessInfo p)
    {
        if (p.Origin == ProcessOrigin.ProcFs && p.ParentExecId is null && ByPid(p.Ppid) is { } parent && !ReferenceEquals(parent, p))
            p.ParentExecId = parent.ExecId;
    }

    private void Add(ProcessInfo p)
    {
        while (_byExecId.Count >= options.MaxEntries)
            EvictOne();
        p.Node = _age.AddLast(p);
        _byExecId[p.ExecId] = p;
        _byPid[p.Pid] = p;
    }

    /// <summary>An execution that ended (exit) or was replaced (exec): kept for the grace period.</summary>
    private void Retire(ProcessInfo p)
    {
        if (p.Exited) return;
        p.Exited = true;
        p.RemoveAfter = clock.GetTimestamp() + (long)(options.ExitGrace.TotalSeconds * clock.TimestampFrequency);
        _exited.Enqueue(p);
    }

    /// <summary>Drops exited entries whose grace period is over. Cheap: looks at the queue head only.</summary>
    public void Expire()
    {
        long now = clock.GetTimestamp();
        while (_exited.TryPeek(out var p) && (p.Node is null || p.RemoveAfter <= now))
        {
            _exited.Dequeue();
            if (p.Node is not null)
            {
                Remove(p);
                Expired++;
            }
        }
    }

    private void EvictOne()
    {
        ProcessInfo? victim = null;
        while (_exited.TryDequeue(out var p))
            if (p.Node is not null) { victim = p; break; }
        victim ??= _age.First?.Value;
        if (victim is null) return;
        Remove(victim);
        Evictions++;
    }

    private void Remove(ProcessInfo p)
    {
        _age.Remove(p.Node!);
        p.Node = null;
        _byExecId.Remove(p.ExecId);
        if (_byPid.TryGetValue(p.Pid, out var cur) && ReferenceEquals(cur, p))
            _byPid.Remove(p.Pid);
    }
}

/// <summary>The values many processes share (binary paths, cwds, credentials, capability sets), kept once: a fork+exec
/// loop then allocates only what is new about each execution. Bounded: past its cap it starts over.</summary>
internal sealed class ValueInterner
{
    private const int Cap = 4096;
    private readonly Dictionary<string, string> _paths = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> _pathLookup;
    private readonly Dictionary<(uint, uint, uint, uint), Credentials> _creds = new();
    private readonly Dictionary<(ulong, ulong, ulong), Capabilities> _caps = new();

    public ValueInterner() => _pathLookup = _paths.GetAlternateLookup<ReadOnlySpan<char>>();

    public string Path(ReadOnlySpan<byte> utf8)
    {
        Span<char> chars = stackalloc char[512];
        if (utf8.Length > chars.Length
            || System.Text.Unicode.Utf8.ToUtf16(utf8, chars, out _, out int n) != System.Buffers.OperationStatus.Done)
            return System.Text.Encoding.UTF8.GetString(utf8);
        if (_pathLookup.TryGetValue(chars[..n], out var known)) return known;
        if (_paths.Count >= Cap) _paths.Clear();
        var s = new string(chars[..n]);
        _paths[s] = s;
        return s;
    }

    public Credentials Creds(uint uid, uint euid, uint gid, uint egid)
    {
        if (_creds.TryGetValue((uid, euid, gid, egid), out var c)) return c;
        if (_creds.Count >= Cap) _creds.Clear();
        return _creds[(uid, euid, gid, egid)] = new Credentials(uid, euid, gid, egid);
    }

    public Capabilities Caps(ulong permitted, ulong effective, ulong inheritable)
    {
        if (_caps.TryGetValue((permitted, effective, inheritable), out var c)) return c;
        if (_caps.Count >= Cap) _caps.Clear();
        return _caps[(permitted, effective, inheritable)] = new Capabilities(permitted, effective, inheritable);
    }
}
