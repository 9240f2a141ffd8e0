using SecurityAgent.Events;
using SecurityAgent.Policies;

namespace SecurityAgent.Pipeline;

/// <summary>maxData (Tetragon's meaning): a buffer argument longer than the event's 255 bytes comes, up to
/// <see cref="Contract.MaxdataBytes"/> bytes, in data records that precede its policy event on the ring
/// (bpf/include/maxdata.h). They are joined here, per thread and argument, and handed to that thread's next policy event
/// with a maxData argument, which then carries the whole buffer (bytes_arg; a longer one truncated_bytes_arg with its
/// orig_size). A buffer whose records did not all come keeps the event's 255 bytes. Buffers that no event takes (its
/// return filter failed, its record was lost) are bounded: at most <see cref="MaxPending"/> at once, the oldest dropped.
/// Pipeline thread only.</summary>
public sealed class MaxDataJoiner
{
    /// <summary>Buffers being joined at once (at most 32 × 327,360 bytes).</summary>
    public const int MaxPending = 32;

    private sealed class Pending(byte[] buffer, long seq)
    {
        public readonly byte[] Buffer = buffer;
        public int Received;
        public readonly long Seq = seq;
    }

    private readonly Dictionary<long, Pending> _pending = new();
    private long _seq, _joined, _incomplete, _discarded;

    /// <summary>Buffers joined whole to their event.</summary>
    public long Joined => Volatile.Read(ref _joined);
    /// <summary>Events whose maxData buffer did not come whole (a record lost or unreadable in the kernel): they keep
    /// their 255 bytes and the buffer's size.</summary>
    public long Incomplete => Volatile.Read(ref _incomplete);
    /// <summary>Buffers no event took: replaced by the thread's next buffer, dropped at <see cref="MaxPending"/>, or
    /// broken by a record missing in the middle.</summary>
    public long Discarded => Volatile.Read(ref _discarded);
    public int PendingCount => _pending.Count;

    private static long Key(int tid, int arg) => ((long)tid << 8) | (byte)arg;

    /// <summary>One data record (checked by the decoder: off + its bytes within total, total within the limit).</summary>
    public void Add(in DataChunk chunk)
    {
        long key = Key(chunk.Tid, chunk.Arg);
        _pending.TryGetValue(key, out var p);
        if (chunk.Off == 0)
        {
            if (p is not null)
            {
                _pending.Remove(key);
                Count(ref _discarded);
            }
            else if (_pending.Count >= MaxPending)
            {
                DropOldest();
            }
            _pending[key] = p = new Pending(new byte[chunk.Total], ++_seq);
        }
        else if (p is null)
        {
            return; // the start of its buffer was lost (counted by the kernel) or dropped here
        }
        if (p.Buffer.Length != chunk.Total || p.Received != chunk.Off)
        {
            _pending.Remove(key); // a record in between is missing: the event gets its 255 bytes
            Count(ref _discarded);
            return;
        }
        chunk.Bytes.CopyTo(p.Buffer.AsSpan(p.Received));
        p.Received += chunk.Bytes.Length;
    }

    /// <summary>Gives the event's maxData arguments their whole buffer, where it came.</summary>
    public void Join(PolicyKernelEvent e, HookPlan hook)
    {
        for (int i = 0; i < hook.Args.Count; i++)
        {
            var a = hook.Args[i];
            if (a.KernelType is not (ArgType.BufMax or ArgType.IovIterMax) || a.Slot >= e.Ints.Length)
                continue;
            ulong size = e.Ints[a.Slot];
            if (size <= (ulong)e.Strings[a.Slot].Length)
                continue;
            long key = Key(e.Tid, a.Slot);
            if (_pending.Remove(key, out var p) && p.Received == p.Buffer.Length && (ulong)p.Buffer.Length == Math.Min(size, (ulong)Contract.MaxdataBytes))
            {
                e.Strings[a.Slot] = p.Buffer;
                Count(ref _joined);
            }
            else
            {
                Count(ref _incomplete);
            }
        }
    }

    private void DropOldest()
    {
        long oldestKey = 0, oldest = long.MaxValue;
        foreach (var (k, v) in _pending)
            if (v.Seq < oldest)
                (oldest, oldestKey) = (v.Seq, k);
        _pending.Remove(oldestKey);
        Count(ref _discarded);
    }

    private static void Count(ref long c) => Volatile.Write(ref c, c + 1);
}
