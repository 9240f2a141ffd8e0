using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SecurityAgent.Interop;

namespace SecurityAgent.Fanotify;

public sealed record FanotifyOptions
{
    /// <summary>The bound on a decision: an event not answered within it gets its default (the watchdog looks every
    /// quarter of it, so every open waits at most 1.25 × this for the agent).</summary>
    public TimeSpan DecisionTimeout { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Reports waiting for the callback; beyond this they are dropped (and counted).</summary>
    public int ReportQueue { get; init; } = 4096;

    /// <summary>pid → binary from the agent's kernel map; null: /proc/PID/exe.</summary>
    public BinarySource? Binaries { get; init; }

    /// <summary>Where cgroup v2 is mounted, for cgroup (pod scope) predicates; null: no cgroup ids.</summary>
    public string? Cgroup2Mount { get; init; }

    /// <summary>A prefix covering more directories than this marks its whole file system instead.</summary>
    public int MaxTreeDirectories { get; init; } = 4096;

    public ILogger? Logger { get; init; }
}

/// <summary>Denies (or reports) opens, reads and execs with fanotify permission events, for kernels without BPF LSM.
/// One fanotify group per rule set (to change rules, start a new enforcer, then dispose the old one: both answer in
/// between). Threads: the decision thread reads events and answers each; the watchdog answers with the rule's default
/// any event not decided within <see cref="FanotifyOptions.DecisionTimeout"/> (and, while the decision thread is stuck,
/// every new event); the watcher marks directories and files as they appear (inotify); the reporter hands reports to
/// the callback, so a slow callback never delays an answer. Disposing (or the agent dying) closes the group, and the
/// kernel then allows every open still waiting.</summary>
public sealed partial class FanotifyEnforcer : IDisposable
{
    private const int MaxBatch = 64;
    private const long Pending = 0, Claimed = 1, Done = 2;

    private readonly CompiledRule[] _rules;
    private readonly bool _anyFailClosed;
    private readonly FdHandle _group, _inotify, _stop;
    private readonly MarkPlanner _planner;
    private readonly IReadOnlyList<Anchor> _anchors;
    private readonly FanotifyOptions _options;
    private readonly ILogger _log;
    private readonly Channel<FanotifyReport> _reports;
    private readonly Action<FanotifyReport> _callback;
    private readonly FanotifyCounters _counters = new();
    private readonly long _timeoutTicks;
    private readonly int _self = Environment.ProcessId;
    private readonly Dictionary<int, string> _watchDirs = [];
    // A watched directory's path → its watch and the inode watched, so a directory of that name made since (the old one
    // deleted, its IN_IGNORED not read yet) does not pass for watched.
    private readonly Dictionary<string, (int Wd, ulong Dev, ulong Ino)> _watchedPaths = new(StringComparer.Ordinal);
    private readonly List<string> _refusedFileSystems = [];
    private readonly List<Thread> _threads = [];
    private Task _reporter = Task.CompletedTask;
    private volatile Dictionary<(ulong, ulong), byte[]> _identities = [];
    private volatile bool _stopping;

    // The batch the decision thread is working on, shared with the watchdog. An entry's token is seq * 4 + state:
    // whoever moves it from Pending to Claimed answers the event; only the decision thread closes its fd, once Done.
    private readonly Entry[] _batch = Enumerable.Range(0, MaxBatch).Select(_ => new Entry()).ToArray();
    private long _batchSeq, _batchDeadline;
    private int _batchCount;

    private sealed class Entry
    {
        public long Token = -1;
        public int Fd, Pid;
        public ulong Mask;
    }

    private sealed record CompiledRule(FanotifyRule Rule, PathMatcher Paths);

    public MarkPlan Plan { get; }

    /// <summary>File systems that refused a permission mark (procfs and other pseudo file systems).</summary>
    public IReadOnlyList<string> RefusedFileSystems => _refusedFileSystems;

    public FanotifyStats Counters => _counters.Snapshot();

    private FanotifyEnforcer(MarkPlan plan, MarkPlanner planner, Action<FanotifyReport> callback, FanotifyOptions options)
    {
        Plan = plan;
        _planner = planner;
        _anchors = plan.Anchors;
        _options = options;
        _log = options.Logger ?? NullLogger.Instance;
        _callback = callback;
        _rules = plan.Rules.Select(r => new CompiledRule(r, new PathMatcher(r.Paths))).ToArray();
        _anyFailClosed = plan.Rules.Any(r => r.Mode == RuleMode.Enforce && r.FailMode == FailMode.Closed);
        _timeoutTicks = (long)(options.DecisionTimeout.TotalSeconds * Stopwatch.Frequency);
        _reports = Channel.CreateBounded<FanotifyReport>(new BoundedChannelOptions(options.ReportQueue)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait, // TryWrite fails instead; the drop is counted
        });
        _group = Libc.FanotifyInit(Libc.FAN_CLASS_CONTENT | Libc.FAN_CLOEXEC | Libc.FAN_NONBLOCK | Libc.FAN_UNLIMITED_QUEUE);
        try
        {
            _inotify = Libc.InotifyInit();
            _stop = Libc.EventFd();
        }
        catch
        {
            _group.Dispose();
            _inotify?.Dispose();
            throw;
        }
    }

    /// <summary>Plans the marks, starts the threads and adds the marks. Throws <see cref="ArgumentException"/> naming
    /// every refused rule, or <see cref="SyscallException"/> when the kernel refuses the group or a mark.</summary>
    /// <remarks>The group is FAN_CLASS_CONTENT with FAN_UNLIMITED_QUEUE: every queued permission event holds a blocked
    /// thread, so the queue is bounded by the threads of the system, and a limited queue would make the kernel allow
    /// events silently when it is full.</remarks>
    public static FanotifyEnforcer Start(IEnumerable<FanotifyRule> rules, Action<FanotifyReport> callback, FanotifyOptions? options = null)
    {
        options ??= new FanotifyOptions();
        var planner = new MarkPlanner(new LocalFileSystem(), options.MaxTreeDirectories);
        var plan = planner.Plan(rules);
        if (plan.Errors.Count > 0)
            throw new ArgumentException(string.Join("; ", plan.Errors.Select(e => $"rule {e.RuleId}: {e.Error}")));
        var e = new FanotifyEnforcer(plan, planner, callback, options);
        try
        {
            e.WarmUp();
            // If the decision thread dies, the watchdog answers every event with its default from then on.
            e.StartThread(e.DecideLoop, "fanotify-decide", () => Volatile.Write(ref e._batchDeadline, 1));
            e.StartThread(e.WatchdogLoop, "fanotify-watchdog");
            e._reporter = Task.Run(e.ReportLoop);
            e.Apply(plan.Initial, initial: true);
            e.StartThread(e.WatchLoop, "fanotify-watch");
            foreach (var note in plan.Notes) LogNote(e._log, note);
            return e;
        }
        catch
        {
            e.Dispose();
            throw;
        }
    }

    private void StartThread(ThreadStart body, string name, Action? onFailure = null)
    {
        var t = new Thread(() =>
        {
            try { body(); }
            catch (Exception ex) when (_stopping && ex is ObjectDisposedException or SyscallException) { }
            catch (Exception ex)
            {
                LogThreadFailed(_log, name, ex);
                onFailure?.Invoke();
            }
        }) { IsBackground = true, Name = name };
        _threads.Add(t);
        t.Start();
    }

    // ---- the decision thread ----

    private void DecideLoop()
    {
        var s = new Scratch(this);
        Span<Libc.PollFd> fds = stackalloc Libc.PollFd[2];
        for (long seq = 1; ; seq++)
        {
            fds[0] = new Libc.PollFd { Fd = (int)_group.DangerousGetHandle(), Events = Libc.POLLIN };
            fds[1] = new Libc.PollFd { Fd = (int)_stop.DangerousGetHandle(), Events = Libc.POLLIN };
            Libc.Poll(fds, -1);
            if (fds[1].Revents != 0) return;
            int n = Libc.Read(_group, s.Events, "read(fanotify)");
            int count = 0;
            foreach (var (fd, mask, pid) in new Events(s.Events.AsSpan(0, n)))
            {
                var e = _batch[count++];
                (e.Fd, e.Mask, e.Pid) = (fd, mask, pid);
                Volatile.Write(ref e.Token, seq * 4 + Pending);
            }
            if (count == 0) continue;
            Interlocked.Add(ref _counters.Events, count);
            long start = Stopwatch.GetTimestamp();
            _batchCount = count;
            Volatile.Write(ref _batchSeq, seq);
            Volatile.Write(ref _batchDeadline, start + _timeoutTicks);
            for (int i = 0; i < count; i++)
                Decide(_batch[i], seq, start, s);
            Volatile.Write(ref _batchDeadline, 0);
            for (int i = 0; i < count; i++)
            {
                var e = _batch[i];
                var spin = new SpinWait();
                while (Volatile.Read(ref e.Token) != seq * 4 + Done) spin.SpinOnce();
                Libc.close(e.Fd);
            }
        }
    }

    private void Decide(Entry e, long seq, long start, Scratch s)
    {
        bool deny = false, exempt = false;
        var reason = DefaultReason.None;
        int n = -1, count = 0, hits = 0;
        try
        {
            if (IsExempt(e.Pid))
                exempt = true;
            else if ((n = Classify(e.Fd, e.Mask, s, out count)) < 0)
                (deny, reason) = (_anyFailClosed, DefaultReason.Error);
            else if (count > 0)
            {
                s.View.Reset(e.Pid);
                for (int k = 0; k < count; k++)
                    if (!GroupDecided(s.Hits, hits, _rules[s.Matched[k]].Rule.Group) && (_rules[s.Matched[k]].Rule.Process?.Matches(s.View) ?? true))
                        s.Hits[hits++] = s.Matched[k];
                if (hits > 0 && s.View.IsKernelThread)
                    (exempt, hits) = (true, 0);
                for (int k = 0; k < hits; k++)
                    deny |= _rules[s.Hits[k]].Rule.Mode == RuleMode.Enforce;
            }
        }
        catch (Exception ex)
        {
            // A predicate or a /proc read failed: the default of the rules the path matched.
            (deny, reason, hits) = (DefaultFor(s.Matched, count), DefaultReason.Error, 0);
            LogDecisionFailed(_log, ex);
        }
        if (Interlocked.CompareExchange(ref e.Token, seq * 4 + Claimed, seq * 4 + Pending) != seq * 4 + Pending)
        {
            Interlocked.Increment(ref _counters.LateDecisions); // the watchdog answered (and reported) the default
            return;
        }
        // The event's time is before the answer: the process may exit right after it, and its exit must come later.
        ulong ktime = hits > 0 ? (ulong)Libc.ClockNs(Libc.CLOCK_BOOTTIME) : 0;
        Answer(e.Fd, deny, reason, exempt, start);
        Volatile.Write(ref e.Token, seq * 4 + Done);
        if (hits == 0) return;
        var path = Encoding.UTF8.GetString(s.Path, 0, n);
        for (int k = 0; k < hits; k++)
        {
            var rule = _rules[s.Hits[k]].Rule;
            Report(rule, e.Pid, path, e.Mask, rule.Mode == RuleMode.Enforce ? FanotifyVerdict.Denied : FanotifyVerdict.Allowed, DefaultReason.None, ktime);
        }
    }

    /// <summary>A thread's reusable buffers: a decision allocates nothing until it reports.</summary>
    private sealed class Scratch(FanotifyEnforcer owner)
    {
        public readonly byte[] Events = new byte[MaxBatch * Libc.FanotifyMetadataLength];
        public readonly byte[] Path = new byte[4096];
        public readonly int[] Matched = new int[owner._rules.Length], Hits = new int[owner._rules.Length];
        public readonly ProcProcessView View = new(owner._options.Binaries, owner._options.Cgroup2Mount);
    }

    // ---- the watchdog ----

    private void WatchdogLoop()
    {
        int periodMs = Math.Max(1, (int)(_options.DecisionTimeout.TotalMilliseconds / 4));
        var s = new Scratch(this);
        Span<Libc.PollFd> fds = stackalloc Libc.PollFd[2];
        while (!_stopping)
        {
            long deadline = Volatile.Read(ref _batchDeadline);
            long now = Stopwatch.GetTimestamp();
            fds[0] = new Libc.PollFd { Fd = (int)_stop.DangerousGetHandle(), Events = Libc.POLLIN };
            if (deadline == 0 || now < deadline)
            {
                long waitMs = deadline == 0 ? periodMs : (deadline - now) * 1000 / Stopwatch.Frequency + 1;
                Libc.Poll(fds[..1], (int)Math.Min(waitMs, periodMs));
                continue;
            }
            // The decision thread is past the bound: answer what it has not, then every new event until it is back.
            long seq = Volatile.Read(ref _batchSeq);
            for (int i = 0, count = Volatile.Read(ref _batchCount); i < count; i++)
            {
                var e = _batch[i];
                if (Interlocked.CompareExchange(ref e.Token, seq * 4 + Claimed, seq * 4 + Pending) != seq * 4 + Pending) continue;
                AnswerDefault(e.Fd, e.Mask, e.Pid, DefaultReason.Timeout, deadline - _timeoutTicks, s);
                Volatile.Write(ref e.Token, seq * 4 + Done);
            }
            fds[1] = new Libc.PollFd { Fd = (int)_group.DangerousGetHandle(), Events = Libc.POLLIN };
            while (!_stopping && Volatile.Read(ref _batchDeadline) == deadline)
            {
                if (Libc.Poll(fds, periodMs) == 0 || fds[1].Revents == 0) continue;
                int n = Libc.Read(_group, s.Events, "read(fanotify)");
                long start = Stopwatch.GetTimestamp();
                foreach (var (fd, mask, pid) in new Events(s.Events.AsSpan(0, n)))
                {
                    Interlocked.Increment(ref _counters.Events);
                    AnswerDefault(fd, mask, pid, DefaultReason.Overload, start, s);
                    Libc.close(fd);
                }
            }
        }
    }

    /// <summary>The answer without a decision: deny only when an enforcing, fail-closed rule's path matched.</summary>
    private void AnswerDefault(int fd, ulong mask, int pid, DefaultReason reason, long start, Scratch s)
    {
        if (IsExempt(pid))
        {
            Answer(fd, false, DefaultReason.None, true, start);
            return;
        }
        int n = Classify(fd, mask, s, out int count);
        bool deny = n < 0 ? _anyFailClosed : DefaultFor(s.Matched, count);
        ulong ktime = (ulong)Libc.ClockNs(Libc.CLOCK_BOOTTIME);
        bool exempt = false;
        if (deny)
        {
            s.View.Reset(pid);
            exempt = s.View.IsKernelThread;
            deny = !exempt;
        }
        Answer(fd, deny, reason, exempt, start);
        if (n < 0 || count == 0 || exempt) return;
        var rule = _rules[s.Matched[0]].Rule;
        for (int k = 0; k < count && deny; k++)
            if (_rules[s.Matched[k]].Rule is { Mode: RuleMode.Enforce, FailMode: FailMode.Closed } closed) { rule = closed; break; }
        Report(rule, pid, Encoding.UTF8.GetString(s.Path, 0, n), mask, deny ? FanotifyVerdict.DefaultDenied : FanotifyVerdict.DefaultAllowed, reason, ktime);
    }

    /// <summary>Whether an earlier rule of the group already matched (then this one neither decides nor reports).</summary>
    private bool GroupDecided(int[] hits, int count, string? group)
    {
        if (group is null) return false;
        for (int k = 0; k < count; k++)
            if (_rules[hits[k]].Rule.Group == group)
                return true;
        return false;
    }

    private bool DefaultFor(int[] matched, int count)
    {
        for (int k = 0; k < count; k++)
            if (_rules[matched[k]].Rule is { Mode: RuleMode.Enforce, FailMode: FailMode.Closed })
                return true;
        return false;
    }

    // ---- shared by both ----

    /// <summary>The agent itself, pid 1, and processes outside the agent's pid namespace (reported as pid 0).</summary>
    private bool IsExempt(int pid) => pid <= 1 || pid == _self;

    /// <summary>Resolves the opened file's path from the event's fd and lists the rules whose operation and path
    /// filters match it: the path's length, or -1 when it cannot be read.</summary>
    private int Classify(int fd, ulong mask, Scratch s, out int count)
    {
        count = 0;
        var matched = s.Matched;
        Span<byte> link = stackalloc byte[32];
        int n = Libc.ReadLink(ProcProcessView.Format(link, $"/proc/self/fd/{fd}\0"), s.Path);
        if (n <= 0) return -1;
        var op = OperationOf(mask);
        ReadOnlySpan<byte> opened = s.Path.AsSpan(0, n);
        for (int i = 0; i < _rules.Length; i++)
            if ((_rules[i].Rule.Operations & op) != 0 && _rules[i].Paths.Matches(opened))
                matched[count++] = i;
        // The file an Equal path names, reached through another name (a hard link, a bind mount): match it as named.
        if (count == 0 && _identities is { Count: > 0 } ids && Libc.FdIdentity(fd) is { } id && ids.TryGetValue(id, out var named))
            for (int i = 0; i < _rules.Length; i++)
                if ((_rules[i].Rule.Operations & op) != 0 && _rules[i].Paths.Matches(named))
                    matched[count++] = i;
        return n;
    }

    private static FileOperations OperationOf(ulong mask) =>
        (mask & Libc.FAN_OPEN_EXEC_PERM) != 0 ? FileOperations.Exec
        : (mask & Libc.FAN_ACCESS_PERM) != 0 ? FileOperations.Read
        : FileOperations.Open;

    private void Answer(int fd, bool deny, DefaultReason reason, bool exempt, long start)
    {
        Libc.FanotifyRespond(_group, fd, deny ? Libc.FAN_DENY : Libc.FAN_ALLOW);
        if (exempt) Interlocked.Increment(ref _counters.Exempt);
        _counters.OnAnswer(deny, reason, (Stopwatch.GetTimestamp() - start) * 1_000_000_000 / Stopwatch.Frequency);
    }

    private void Report(FanotifyRule rule, int pid, string path, ulong mask, FanotifyVerdict verdict, DefaultReason reason, ulong ktime)
    {
        var r = new FanotifyReport(rule.Id, pid, path, OperationOf(mask), rule.Mode, verdict, reason, ktime);
        Interlocked.Increment(ref _reports.Writer.TryWrite(r) ? ref _counters.Reports : ref _counters.ReportsDropped);
    }

    private async Task ReportLoop()
    {
        await foreach (var r in _reports.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try { _callback(r); }
            catch (Exception ex) { LogCallbackFailed(_log, ex); }
        }
    }

    /// <summary>The permission events of one read(2): (fd, mask, pid) of each, skipping those without an fd (a queue
    /// overflow notice, which an unlimited queue never sends).</summary>
    private ref struct Events(ReadOnlySpan<byte> buffer)
    {
        private ReadOnlySpan<byte> _rest = buffer;
        public (int Fd, ulong Mask, int Pid) Current { get; private set; }

        public readonly Events GetEnumerator() => this;

        public bool MoveNext()
        {
            while (_rest.Length >= Libc.FanotifyMetadataLength)
            {
                int len = (int)BinaryPrimitives.ReadUInt32LittleEndian(_rest);
                if (_rest[4] != Libc.FanotifyMetadataVersion || len < Libc.FanotifyMetadataLength || len > _rest.Length)
                    throw new InvalidDataException($"fanotify event metadata version {_rest[4]}, length {len}: not what this agent reads (version {Libc.FanotifyMetadataVersion})");
                ulong mask = BinaryPrimitives.ReadUInt64LittleEndian(_rest[8..]);
                int fd = BinaryPrimitives.ReadInt32LittleEndian(_rest[16..]);
                int pid = BinaryPrimitives.ReadInt32LittleEndian(_rest[20..]);
                _rest = _rest[len..];
                if (fd < 0) continue;
                Current = (fd, mask, pid);
                return true;
            }
            return false;
        }
    }

    // ---- marks, and the watcher that adds them as paths appear ----

    /// <summary>Adds the set's marks and watches, then looks again in each directory it newly watches (and in those that
    /// look adds): what appeared there between the plan's look and the watch has no inotify event of its own.</summary>
    private void Apply(MarkSet set, bool initial)
    {
        var fresh = new Stack<string>();
        ApplyOnce(set, initial, fresh);
        while (fresh.TryPop(out var dir))
            ApplyOnce(_planner.OnWatched(_anchors, dir, IsWatched), initial: false, fresh); // made meanwhile: not the plan's to refuse
    }

    private bool IsWatched(string dir) =>
        _watchedPaths.TryGetValue(dir, out var w) && Libc.Stat(dir) is { } st && (st.Dev, st.Ino) == (w.Dev, w.Ino);

    private void ApplyOnce(MarkSet set, bool initial, Stack<string> fresh)
    {
        foreach (var m in set.Marks)
        {
            ulong mask = MaskOf(m.Operations) | (m.Kind == MarkKind.Children ? Libc.FAN_EVENT_ON_CHILD : 0);
            uint flags = Libc.FAN_MARK_ADD | m.Kind switch
            {
                MarkKind.Filesystem => Libc.FAN_MARK_FILESYSTEM,
                MarkKind.Children => Libc.FAN_MARK_DONT_FOLLOW | Libc.FAN_MARK_ONLYDIR,
                _ => Libc.FAN_MARK_DONT_FOLLOW,
            };
            int errno = Libc.FanotifyMark(_group, flags, mask, m.Path);
            if (errno == 0)
            {
                if (m.Kind == MarkKind.Inode && Libc.Stat(m.Path) is { } st)
                    _identities = new Dictionary<(ulong, ulong), byte[]>(_identities) { [(st.Dev, st.Ino)] = Encoding.UTF8.GetBytes(m.Path) };
            }
            else if (errno is Errno.ENOENT or 20 /* ENOTDIR */)
            {
                // Gone since it was planned; the watch on its directory sees it come back.
            }
            else if (m.Kind == MarkKind.Filesystem && errno is Errno.EINVAL or 19 /* ENODEV */ or 18 /* EXDEV */)
            {
                if (initial) _refusedFileSystems.Add(m.Path); // procfs and other pseudo file systems take no permission marks
            }
            else if (initial)
                throw new SyscallException($"fanotify_mark({m.Path})", errno);
            else
                LogMarkFailed(_log, m.Path, Errno.Name(errno));
        }
        foreach (var dir in set.Watches)
        {
            int wd = Libc.InotifyAddWatch(_inotify, dir, Libc.IN_CREATE | Libc.IN_MOVED_TO | Libc.IN_ONLYDIR | Libc.IN_DONT_FOLLOW);
            if (wd >= 0)
            {
                bool isNew = _watchDirs.TryAdd(wd, dir);
                if (!isNew && _watchDirs[wd] is var old && old != dir)
                {
                    // The watched directory was renamed (the kernel gives its watch's descriptor again): its events come
                    // under the new path from now on; its entries were looked at when it was first watched.
                    if (_watchedPaths.TryGetValue(old, out var was) && was.Wd == wd) _watchedPaths.Remove(old);
                    _watchDirs[wd] = dir;
                }
                if (Libc.Stat(dir) is { } st) _watchedPaths[dir] = (wd, st.Dev, st.Ino);
                if (isNew) fresh.Push(dir);
            }
            else if (-wd is not (Errno.ENOENT or 20))
            {
                if (initial) throw new SyscallException($"inotify_add_watch({dir})", -wd);
                LogMarkFailed(_log, dir, Errno.Name(-wd));
            }
        }
    }

    private static ulong MaskOf(FileOperations ops) =>
        ((ops & FileOperations.Open) != 0 ? Libc.FAN_OPEN_PERM : 0)
        | ((ops & FileOperations.Read) != 0 ? Libc.FAN_ACCESS_PERM : 0)
        | ((ops & FileOperations.Exec) != 0 ? Libc.FAN_OPEN_EXEC_PERM : 0);

    private void WatchLoop()
    {
        var buffer = new byte[64 * 1024];
        Span<Libc.PollFd> fds = stackalloc Libc.PollFd[2];
        while (true)
        {
            fds[0] = new Libc.PollFd { Fd = (int)_inotify.DangerousGetHandle(), Events = Libc.POLLIN };
            fds[1] = new Libc.PollFd { Fd = (int)_stop.DangerousGetHandle(), Events = Libc.POLLIN };
            Libc.Poll(fds, -1);
            if (fds[1].Revents != 0) return;
            int n = Libc.Read(_inotify, buffer, "read(inotify)");
            for (int at = 0; at + 16 <= n;)
            {
                var ev = buffer.AsSpan(at);
                int wd = BinaryPrimitives.ReadInt32LittleEndian(ev);
                uint mask = BinaryPrimitives.ReadUInt32LittleEndian(ev[4..]);
                int len = (int)BinaryPrimitives.ReadUInt32LittleEndian(ev[12..]);
                var name = ev.Slice(16, len);
                at += 16 + len;
                if ((mask & Libc.IN_Q_OVERFLOW) != 0)
                    Apply(_planner.Expand(_anchors), initial: false); // events were lost: look at everything again
                else if ((mask & Libc.IN_IGNORED) != 0)
                {
                    if (_watchDirs.Remove(wd, out var gone) && _watchedPaths.TryGetValue(gone, out var w) && w.Wd == wd)
                        _watchedPaths.Remove(gone);
                }
                else if (_watchDirs.TryGetValue(wd, out var dir))
                    Apply(_planner.OnCreated(_anchors, dir, Encoding.UTF8.GetString(name.IndexOf((byte)0) is var z and >= 0 ? name[..z] : name), (mask & Libc.IN_ISDIR) != 0), initial: false);
            }
        }
    }

    // ---- start and stop ----

    /// <summary>Compiles the decision path before the first mark exists: a method compiled (or an assembly loaded) later
    /// would open the runtime's files from the decision thread, which waits for itself if a rule marks them.</summary>
    private void WarmUp()
    {
        foreach (var type in new[] { typeof(FanotifyEnforcer), typeof(ProcProcessView), typeof(PathMatcher), typeof(ProcessSelector), typeof(FanotifyCounters) })
            foreach (var m in type.GetMethods(System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.DeclaredOnly))
                if (!m.IsAbstract && !m.ContainsGenericParameters)
                    RuntimeHelpers.PrepareMethod(m.MethodHandle);
        // The rules' predicates are not called here: they are the caller's code, and may take their time.
        var view = new ProcProcessView(_options.Binaries, _options.Cgroup2Mount);
        view.Reset(_self);
        foreach (var r in _rules)
            r.Paths.Matches("/"u8);
        _ = (view.Binary.Length, view.IsKernelThread, view.Status, view.CgroupId, view.Namespace("mnt"), view.ParentOf(_self));
        _counters.Snapshot();
        _ = new FanotifyReport("", 0, "", FileOperations.Open, RuleMode.Enforce, FanotifyVerdict.Allowed, DefaultReason.None, 0).Enforced;
    }

    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        if (_stop is not null && !_stop.IsClosed) Libc.Signal(_stop);
        foreach (var t in _threads)
            t.Join(TimeSpan.FromSeconds(2)); // a decision stuck in a predicate must not hold the group open
        _group.Dispose(); // the kernel allows every event still waiting
        _inotify?.Dispose();
        _stop?.Dispose();
        _reports.Writer.TryComplete();
        _reporter.Wait(TimeSpan.FromSeconds(2));
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "fanotify: {Note}")]
    private static partial void LogNote(ILogger log, string note);

    [LoggerMessage(Level = LogLevel.Error, Message = "fanotify thread {Thread} failed")]
    private static partial void LogThreadFailed(ILogger log, string thread, Exception ex);

    [LoggerMessage(Level = LogLevel.Warning, Message = "fanotify decision failed; answered with the rules' default")]
    private static partial void LogDecisionFailed(ILogger log, Exception ex);

    [LoggerMessage(Level = LogLevel.Warning, Message = "fanotify report callback failed")]
    private static partial void LogCallbackFailed(ILogger log, Exception ex);

    [LoggerMessage(Level = LogLevel.Warning, Message = "fanotify: cannot mark or watch {Path}: {Error}")]
    private static partial void LogMarkFailed(ILogger log, string path, string error);
}
