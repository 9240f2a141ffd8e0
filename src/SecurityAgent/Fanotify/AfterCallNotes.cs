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
/// the one call). Calls noted before the one joined are dropped (fanotify reports a thread's changes in call order).
/// One reader thread (the watcher's).</summary>
public sealed class AfterCallNotes : IDisposable
{
    private const int Entries = Contract.AfterNotes;
    private const int PerThread = 16;
    private readonly MappedRegion _ring;
    private readonly Func<int, PathChange> _changesOf;
    private readonly Dictionary<int, List<(long Seq, PathChange Used)>> _byTid = [];
    private readonly byte[] _entry = new byte[W.Length];
    private long _next = 1;
    private long _lost;

    /// <param name="fd">The sa_after_notes map (BPF_F_MMAPABLE).</param>
    /// <param name="changesOf">The changes a syscall (by number) can make; None for another syscall.</param>
    public AfterCallNotes(int fd, Func<int, PathChange> changesOf)
    {
        _changesOf = changesOf;
        _ring = MappedRegion.Map(fd, (long)Entries * W.Length);
        // Calls noted before the agent looked are not joined: start after the newest entry.
        for (long i = 0; i < Entries; i++)
            _next = Math.Max(_next, (long)_ring.ReadUInt64Volatile(i * W.Length + W.Seq) + 1);
    }

    /// <summary>Notes overwritten before they were read (the ring wrapped: more than its size of calls in between).</summary>
    public long Lost => _lost;

    /// <summary>Indexes the calls noted since the last look, by thread.</summary>
    private void Sync()
    {
        Span<byte> head = stackalloc byte[W.Name];
        while (true)
        {
            long at = (_next & (Entries - 1)) * W.Length;
            long seq = (long)_ring.ReadUInt64Volatile(at + W.Seq);
            if (seq > _next)
            {
                _lost++; // overwritten before it was read
                _next++;
                continue;
            }
            if (seq != _next)
                return; // not written yet (or being written: seen on the next look)
            _ring.Copy(at, head);
            if ((long)_ring.ReadUInt64Volatile(at + W.Seq) == seq)
            {
                int tid = BinaryPrimitives.ReadInt32LittleEndian(head[W.Tid..]);
                if (!_byTid.TryGetValue(tid, out var list))
                {
                    if (_byTid.Count >= 4 * Entries) Prune();
                    _byTid[tid] = list = [];
                }
                if (list.Count >= PerThread) list.RemoveAt(0);
                list.Add((seq, PathChange.None));
            }
            _next++;
        }
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
        Sync();
        if (!_byTid.TryGetValue(tid, out var list))
            return null;
        for (int i = 0; i < list.Count; i++)
        {
            var (seq, used) = list[i];
            long at = (seq & (Entries - 1)) * W.Length;
            if ((used & candidates) != 0 || (long)_ring.ReadUInt64Volatile(at + W.Seq) != seq)
                continue;
            _ring.Copy(at, _entry);
            if ((long)_ring.ReadUInt64Volatile(at + W.Seq) != seq)
                continue; // overwritten while read
            var e = _entry.AsSpan();
            int nr = BinaryPrimitives.ReadInt32LittleEndian(e[W.Nr..]);
            var kind = _changesOf(nr) & candidates;
            if (kind == PathChange.None || !name.IsEmpty && !EndsIn(e, name))
                continue;
            list[i] = (seq, used | candidates);
            list.RemoveRange(0, i);
            var strings = new List<(int, byte[])>(2);
            for (int k = 0; k < 2; k++)
                if (Length(e, k) is var len and > 0)
                    strings.Add((BinaryPrimitives.ReadUInt16LittleEndian(e[(W.Off + 2 * k)..]), e.Slice(W.Name + k * Contract.StrMax, len).ToArray()));
            return new AfterCallNote(seq, tid, BinaryPrimitives.ReadInt32LittleEndian(e[W.Tgid..]), nr, strings.ToArray());
        }
        return null;
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

    public void Dispose() => _ring.Dispose();
}
