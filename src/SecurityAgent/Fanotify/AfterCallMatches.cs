using System.Text;
using SecurityAgent.Events;

namespace SecurityAgent.Fanotify;

/// <summary>One event per call for hooks matched both at entry (the kernel, on the name the process passed) and after the
/// call (fanotify, on the real path). A call is known by its note's seq (bpf/include/aftercall.h), which the kernel's
/// record carries and the change watcher gives each after-the-call record it joined to the note: a seq already reported
/// for the hook (the kernel's match of the call, or another notification of the same change: an unlink is FAN_DELETE
/// and a link count falling) is a repeat; N calls are N seqs, N events. A change no note stands for (a note overwritten,
/// an io_uring ring set up before the agent) falls back to its process and path: it repeats the kernel's match of the same hook, process and path that
/// no after-the-call match followed yet (up to 30 s before: the agent may read the change late), or an after-the-call
/// match of them within a second (the other notification of the same change).
/// The kernel's record is in the ring buffer before the call runs, so before fanotify reports its change; the pipeline
/// keeps an after-the-call record back for one drain of the ring, so the kernel's record of the same call has been seen
/// by then. Pipeline thread only, except <see cref="Cover"/>.</summary>
public sealed class AfterCallMatches
{
    /// <summary>How long an after-the-call match absorbs the other notifications of its change without a note (boot-time ns).</summary>
    private const ulong Window = 1_000_000_000;

    /// <summary>How long the kernel's match of a call waits for the after-the-call match of its change without a note: the
    /// kernel's time is the call's, the other the agent's when it read the change (late under load, at start-up).</summary>
    private const ulong EchoWindow = 30_000_000_000;
    private const int Pruned = 4096;

    /// <summary>How many seqs back a call is remembered: an after-the-call record joins a note still in the kernel's ring.</summary>
    private const ulong Seqs = 4 * (ulong)Contract.AfterNotes;

    // Hook id → its file-name slots; replaced whole by Cover, so the per-event lookup takes no lock (null: none).
    private volatile Dictionary<uint, int[]>? _hooks;
    private readonly object _cover = new();
    // (hook, process, path) → the time of its last match, and whether that was after the call (Echoed) or the kernel's.
    private readonly Dictionary<(uint Hook, int Pid, string Path), (ulong At, bool Echoed)> _recent = [];
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
    public void Kernel(PolicyKernelEvent e) => Remember(e, echoed: false);

    private void Remember(PolicyKernelEvent e, bool echoed)
    {
        if (_hooks is not { } hooks || !hooks.TryGetValue(e.HookId, out var slots)) return;
        if (e.NoteSeq != 0)
            Reported(e.HookId, e.NoteSeq);
        if (_recent.Count >= Pruned)
            foreach (var k in _recent.Where(kv => kv.Value.At + EchoWindow < e.Ktime).Select(kv => kv.Key).ToList())
                _recent.Remove(k);
        foreach (var slot in slots)
            if (slot < e.Strings.Length && e.Strings[slot].Length > 0)
                _recent[(e.HookId, e.Pid, Encoding.UTF8.GetString(e.Strings[slot]))] = (e.Ktime, echoed);
    }

    /// <summary>Whether an after-the-call match repeats a match of the same call: the kernel's at entry, or another
    /// notification of the same change.</summary>
    public bool Repeats(PolicyKernelEvent e)
    {
        bool repeat = false;
        if (e.NoteSeq != 0)
            repeat = !Reported(e.HookId, e.NoteSeq);
        else
        {
            foreach (var s in e.Strings)
                if (s.Length > 0 && _recent.TryGetValue((e.HookId, e.Pid, Encoding.UTF8.GetString(s)), out var m)
                    && (m.Echoed ? m.At + Window >= e.Ktime : m.At + EchoWindow >= e.Ktime))
                {
                    if (m.Echoed) return true;
                    repeat = true; // the kernel's match: its change is echoed now, a later change is another call
                    break;
                }
        }
        // The kernel's match of these paths has had its after-the-call match (this one, or its note's).
        Remember(e, echoed: true);
        return repeat;
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
