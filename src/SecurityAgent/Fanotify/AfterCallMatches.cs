using System.Text;
using SecurityAgent.Events;

namespace SecurityAgent.Fanotify;

/// <summary>One event per call for hooks matched both at entry (the kernel, on the name the process passed) and after the
/// call (fanotify, on the real path). A call is known by its note's seq (bpf/include/aftercall.h), which the kernel's
/// record carries and the change watcher gives each after-the-call record it joined to the note: a seq already reported
/// for the hook (the kernel's match of the call, or another notification of the same change: an unlink is FAN_DELETE
/// and a link count falling) is a repeat; N calls are N seqs, N events. A change no note stands for (io_uring, a note
/// overwritten) falls back to its process and path: a match of the same hook, process and path within a second.
/// The kernel's record is in the ring buffer before the call runs, so before fanotify reports its change; the pipeline
/// keeps an after-the-call record back for one drain of the ring, so the kernel's record of the same call has been seen
/// by then. Pipeline thread only, except <see cref="Cover"/>.</summary>
public sealed class AfterCallMatches
{
    /// <summary>How long a match is remembered for a change without a note (boot-time ns).</summary>
    private const ulong Window = 1_000_000_000;
    private const int Pruned = 4096;

    /// <summary>How many seqs back a call is remembered: an after-the-call record joins a note still in the kernel's ring.</summary>
    private const ulong Seqs = 4 * (ulong)Contract.AfterNotes;

    // Hook id → its file-name slots; replaced whole by Cover, so the per-event lookup takes no lock (null: none).
    private volatile Dictionary<uint, int[]>? _hooks;
    private readonly object _cover = new();
    private readonly Dictionary<(uint Hook, int Pid, string Path), ulong> _recent = [];
    private readonly HashSet<(uint Hook, ulong Seq)> _calls = [];
    private ulong _newest;
    private int _pruneAt = Pruned;

    /// <summary>A hook is (or, with null, no longer is) matched after the call too.</summary>
    public void Cover(uint hookId, int[]? nameSlots)
    {
        lock (_cover)
        {
            var next = _hooks is { } now ? new Dictionary<uint, int[]>(now) : [];
            if (nameSlots is null) next.Remove(hookId);
            else next[hookId] = nameSlots;
            _hooks = next.Count == 0 ? null : next;
        }
    }

    /// <summary>A match: remembered when its hook is matched after the call too (one lookup otherwise).</summary>
    public void Kernel(PolicyKernelEvent e)
    {
        if (_hooks is not { } hooks || !hooks.TryGetValue(e.HookId, out var slots)) return;
        if (e.NoteSeq != 0)
            Reported(e.HookId, e.NoteSeq);
        if (_recent.Count >= Pruned)
            foreach (var k in _recent.Where(kv => kv.Value + Window < e.Ktime).Select(kv => kv.Key).ToList())
                _recent.Remove(k);
        foreach (var slot in slots)
            if (slot < e.Strings.Length && e.Strings[slot].Length > 0)
                _recent[(e.HookId, e.Pid, Encoding.UTF8.GetString(e.Strings[slot]))] = e.Ktime;
    }

    /// <summary>Whether an after-the-call match repeats a match of the same call: the kernel's at entry, or another
    /// notification of the same change.</summary>
    public bool Repeats(PolicyKernelEvent e)
    {
        if (e.NoteSeq != 0)
        {
            if (!Reported(e.HookId, e.NoteSeq))
                return true;
        }
        else
        {
            foreach (var s in e.Strings)
                if (s.Length > 0 && _recent.TryGetValue((e.HookId, e.Pid, Encoding.UTF8.GetString(s)), out var at) && at + Window >= e.Ktime)
                    return true;
        }
        Kernel(e);
        return false;
    }

    /// <summary>Remembers a call of a hook as reported; false when it was already.</summary>
    private bool Reported(uint hook, ulong seq)
    {
        if (!_calls.Add((hook, seq)))
            return false;
        if (seq > _newest) _newest = seq;
        if (_calls.Count >= _pruneAt)
        {
            if (_newest > Seqs) _calls.RemoveWhere(c => c.Seq < _newest - Seqs);
            _pruneAt = Math.Max(Pruned, 2 * _calls.Count);
        }
        return true;
    }
}
