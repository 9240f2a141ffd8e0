using System.Buffers.Binary;
using SecurityAgent.Events;
using SecurityAgent.Interop;
using W = SecurityAgent.Events.PolicyWire.AfterNote;

namespace SecurityAgent.Fanotify;

/// <summary>A call of a name-only syscall as the process made it: its thread and process, the syscall's number, and
/// the strings it passed by their record offset (a sys_enter record's argument i is at 16 + 8 i).</summary>
public sealed record AfterCallNote(long Seq, int Tid, int Tgid, int Nr, (int Offset, byte[] Passed)[] Strings)
{
    /// <summary>The string the call passed as the record field at <paramref name="offset"/>; null when not noted.</summary>
    public byte[]? Passed(int offset)
    {
        foreach (var (o, s) in Strings)
            if (o == offset) return s;
        return null;
    }
}

/// <summary>The calls the kernel noted for the after-call match (bpf/include/aftercall.h: each call of a name-only
/// syscall at a point with a covered hook that passed the process-level dimensions), read from the mapped ring
/// sa_after_notes without a syscall. A fanotify change names its thread; <see cref="Join"/> finds that thread's call
/// that made it: the oldest noted call whose syscall can make the change and whose name ends in the entry's name,
/// and that has not yet stood for a change of that kind (an unlink is FAN_DELETE and a link count falling: both join
/// the one call). fanotify merges a change into an identical one still queued (same thread, kind and entry: a loop
/// that unlinks and re-creates one name is a single FAN_CREATE|FAN_DELETE), so <see cref="JoinAll"/> joins every such
/// call noted before the read that returned the change had returned. Calls noted before the oldest one joined are dropped
/// (their changes were read earlier, or they failed). An io_uring request is noted at its submission without a thread (the
/// io-wq worker that runs it is not known yet) and joined to a change by one of its process's io_uring workers.
/// One reader thread (the watcher's).</summary>
public sealed class AfterCallNotes : IDisposable
{
    private const int Entries = Contract.AfterNotes;
    private readonly MappedRegion _ring;
    private readonly Func<int, int?>? _ioWorkerProcess;
    private readonly Func<int, PathChange> _changesOf;
    private readonly Dictionary<int, List<Noted>> _byTid = [];
    private readonly byte[] _entry = new byte[W.Length];
    // Entries a writer had claimed but not finished when a later one was whole (another CPU noting a call at the time):
    // looked at again on each sync, so the later calls are not held up behind them.
    private readonly List<long> _unfinished = [];
    private const int MaxUnfinished = 64, LookAhead = 16;
    private long _next = 1;
    private long _lost;

    /// <summary>A thread's noted call: the changes it stood for so far, and whether it was joined as the thread's last
    /// call before a read (it may have been under way then: its change can come in the next read, as a repeat).</summary>
    private record struct Noted(long Seq, ulong Ktime, PathChange Used, bool Open);

    /// <param name="fd">The sa_after_notes map (BPF_F_MMAPABLE).</param>
    /// <param name="changesOf">The changes a syscall (by number) can make; None for another syscall.</param>
    /// <param name="ioWorkerProcess">The process of an io_uring worker thread (<see cref="WorkersMap"/>), null for
    /// another thread; null: none known.</param>
    public AfterCallNotes(int fd, Func<int, PathChange> changesOf, Func<int, int?>? ioWorkerProcess = null)
    {
        _changesOf = changesOf;
        _ioWorkerProcess = ioWorkerProcess;
        _ring = MappedRegion.Map(fd, (long)Entries * W.Length);
        // Calls noted before the agent looked are not joined: start after the newest entry.
        for (long i = 0; i < Entries; i++)
            _next = Math.Max(_next, (long)_ring.ReadUInt64Volatile(i * W.Length + W.Seq) + 1);
    }

    /// <summary>Notes not read: overwritten before they were (the ring wrapped: more than its size of calls in between), or
    /// more unfinished at once than are followed.</summary>
    public long Lost => Volatile.Read(ref _lost);

    /// <summary>Indexes the calls noted since the last look, by thread.</summary>
    private void Sync()
    {
        for (int i = _unfinished.Count - 1; i >= 0; i--)
        {
            long seq = _unfinished[i], now = SeqAt(seq);
            if (now == seq) Index(seq);
            else if (now < seq) continue; // still being written
            else _lost++; // overwritten before it was whole
            _unfinished.RemoveAt(i);
        }
        while (true)
        {
            long seq = SeqAt(_next);
            if (seq > _next)
                _lost++; // overwritten before it was read
            else if (seq == _next)
                Index(seq);
            else if (Claimed(_next))
            {
                // Being written while a later entry is whole: a call on another CPU that has not finished its note.
                if (_unfinished.Count < MaxUnfinished) _unfinished.Add(_next);
                else _lost++;
            }
            else
                return; // not written yet
            _next++;
        }
    }

    private long SeqAt(long seq) => (long)_ring.ReadUInt64Volatile((seq & (Entries - 1)) * W.Length + W.Seq);

    /// <summary>Whether a writer has claimed entry <paramref name="seq"/>: a later one is whole (the kernel hands out
    /// seqs in order; a writer zeroes its entry's seq while it writes).</summary>
    private bool Claimed(long seq)
    {
        for (long later = seq + 1; later <= seq + LookAhead; later++)
            if (SeqAt(later) == later)
                return true;
        return false;
    }

    /// <summary>Adds whole entry <paramref name="seq"/> to its thread's calls, in seq order.</summary>
    private void Index(long seq)
    {
        Span<byte> head = stackalloc byte[W.Name];
        long at = (seq & (Entries - 1)) * W.Length;
        _ring.Copy(at, head);
        if (SeqAt(seq) != seq)
        {
            _lost++; // overwritten while read
            return;
        }
        int tid = BinaryPrimitives.ReadInt32LittleEndian(head[W.Tid..]);
        if (tid == 0)
            tid = -BinaryPrimitives.ReadInt32LittleEndian(head[W.Tgid..]); // an io_uring request: its process's
        if (!_byTid.TryGetValue(tid, out var list))
        {
            if (_byTid.Count >= 4 * Entries) Prune();
            _byTid[tid] = list = [];
        }
        // Entries the ring has overwritten since cannot be read again: a thread keeps at most the ring's worth.
        int stale = 0;
        while (stale < list.Count && list[stale].Seq <= seq - Entries) stale++;
        if (stale > 0) list.RemoveRange(0, stale);
        int where = list.Count;
        while (where > 0 && list[where - 1].Seq > seq) where--; // an unfinished entry indexed late
        list.Insert(where, new Noted(seq, BinaryPrimitives.ReadUInt64LittleEndian(head[W.Ktime..]), PathChange.None, false));
    }

    private void Prune()
    {
        foreach (var (tid, list) in _byTid.ToList())
            if (list.Count == 0 || list[^1].Seq <= _next - Entries)
                _byTid.Remove(tid);
    }

    /// <summary>The call of thread <paramref name="tid"/> that made a change of one of the kinds
    /// <paramref name="candidates"/> to the entry <paramref name="name"/> (empty: a change fanotify reports without a
    /// name, as a watched file's link count); null when none was noted (a call the kernel hook let go at the process
    /// level, io_uring, or a note overwritten).</summary>
    public AfterCallNote? Join(int tid, PathChange candidates, ReadOnlySpan<byte> name)
    {
        var into = new List<AfterCallNote>(1);
        Join(tid, candidates, name, ulong.MaxValue, into, all: false);
        return into.Count > 0 ? into[0] : null;
    }

    /// <summary>Every call of thread <paramref name="tid"/> noted before <paramref name="readAt"/> (boot-time ns, taken
    /// once the read that returned the change had returned) that made a change of the kinds <paramref name="candidates"/> to the
    /// entry <paramref name="name"/>: the calls fanotify merged into this one notification, oldest first, added to
    /// <paramref name="into"/>. A change without a name joins one call. When none is left, the thread's last call of
    /// an earlier read, if it fits: its change had not been made by then, and it is this one (a repeat the pipeline
    /// drops by its seq). A change by one of a process's io_uring workers (an IORING_OP_UNLINKAT... runs in an io-wq
    /// worker, not in the thread that submitted it) joins the process's io_uring requests (noted with tid 0).</summary>
    public int JoinAll(int tid, PathChange candidates, ReadOnlySpan<byte> name, ulong readAt, List<AfterCallNote> into)
    {
        int joined = Join(tid, candidates, name, readAt, into, all: !name.IsEmpty);
        if (joined == 0 && _byTid.Count > 0 && _ioWorkerProcess?.Invoke(tid) is { } process)
            joined = Join(-process, candidates, name, readAt, into, all: !name.IsEmpty);
        return joined;
    }

    private int Join(int tid, PathChange candidates, ReadOnlySpan<byte> name, ulong readAt, List<AfterCallNote> into, bool all)
    {
        Sync();
        if (!_byTid.TryGetValue(tid, out var list))
            return 0;
        int first = -1, joined = 0, last = -1;
        for (int i = 0; i < list.Count && list[i].Ktime < readAt; i++)
            last = i;
        for (int i = 0; i < list.Count; i++)
        {
            var n = list[i];
            if ((n.Used & candidates) != 0 || n.Ktime >= readAt || Read(n, candidates, name) is not { } note)
                continue;
            list[i] = n with { Used = n.Used | candidates, Open = all && i == last };
            into.Add(note);
            joined++;
            if (first < 0) first = i;
            if (!all) break;
        }
        if (joined == 0)
        {
            for (int i = 0; i < list.Count; i++)
                if (list[i].Open && (list[i].Used & candidates) != 0 && Read(list[i], candidates, name) is { } again)
                {
                    list[i] = list[i] with { Open = false };
                    into.Add(again);
                    return 1;
                }
            return 0;
        }
        list.RemoveRange(0, first);
        return joined;
    }

    /// <summary>The noted call, when it is still in the ring, its syscall can make one of the changes and its name ends
    /// in the entry's.</summary>
    private AfterCallNote? Read(Noted n, PathChange candidates, ReadOnlySpan<byte> name)
    {
        long seq = n.Seq, at = (seq & (Entries - 1)) * W.Length;
        if ((long)_ring.ReadUInt64Volatile(at + W.Seq) != seq)
            return null;
        _ring.Copy(at, _entry);
        if ((long)_ring.ReadUInt64Volatile(at + W.Seq) != seq)
            return null; // overwritten while read
        var e = _entry.AsSpan();
        int nr = BinaryPrimitives.ReadInt32LittleEndian(e[W.Nr..]);
        if ((_changesOf(nr) & candidates) == PathChange.None || !name.IsEmpty && !EndsIn(e, name))
            return null;
        var strings = new List<(int, byte[])>(2);
        for (int k = 0; k < 2; k++)
            if (Length(e, k) is var len and > 0)
                strings.Add((BinaryPrimitives.ReadUInt16LittleEndian(e[(W.Off + 2 * k)..]), e.Slice(W.Name + k * Contract.StrMax, len).ToArray()));
        return new AfterCallNote(seq, BinaryPrimitives.ReadInt32LittleEndian(e[W.Tid..]), BinaryPrimitives.ReadInt32LittleEndian(e[W.Tgid..]), nr, strings.ToArray());
    }

    private static int Length(ReadOnlySpan<byte> e, int k) => Math.Min((int)BinaryPrimitives.ReadUInt16LittleEndian(e[(W.Len + 2 * k)..]), Contract.StrMax - 1);

    /// <summary>Does one of the noted strings name the entry (its last component, trailing slashes aside)?</summary>
    private static bool EndsIn(ReadOnlySpan<byte> e, ReadOnlySpan<byte> name)
    {
        for (int k = 0; k < 2; k++)
        {
            var s = e.Slice(W.Name + k * Contract.StrMax, Length(e, k)).TrimEnd((byte)'/');
            int slash = s.LastIndexOf((byte)'/');
            if (s[(slash + 1)..].SequenceEqual(name))
                return true;
        }
        return false;
    }

    /// <summary>The process of io_uring worker thread <paramref name="tid"/> as the kernel saw it made (also once the
    /// thread is gone), or null. A map lookup: asked only for a change whose thread /proc no longer has.</summary>
    public int? IoWorkerProcess(int tid) => _ioWorkerProcess?.Invoke(tid);

    /// <summary>The process of an io_uring worker thread as the sa_io_workers map (<paramref name="fd"/>) has it: one
    /// lookup.</summary>
    public static Func<int, int?> WorkersMap(int fd) => tid => Lookup(fd, tid);

    private static unsafe int? Lookup(int fd, int tid)
    {
        uint key = (uint)tid, tgid = 0;
        return Libbpf.bpf_map_lookup_elem(fd, &key, &tgid) == 0 && tgid != 0 ? (int)tgid : null;
    }

    public void Dispose() => _ring.Dispose();
}
