using System.Text;
using SecurityAgent.Events;

namespace SecurityAgent.Fanotify;

/// <summary>One event per call for hooks matched both at entry (the kernel, on the name the process passed) and after the
/// call (fanotify, on the real path): the kernel's matches of such hooks are remembered for a moment, and an after-the-call
/// match of the same hook, process and path is dropped. The kernel's record is in the ring buffer before the call runs, so
/// before fanotify reports its change; the pipeline keeps an after-the-call record back for one drain of the ring, so the
/// kernel's record of the same call has been seen by then. Pipeline thread only, except <see cref="Cover"/>.</summary>
public sealed class AfterCallMatches
{
    /// <summary>How long a kernel match is remembered (boot-time ns).</summary>
    private const ulong Window = 1_000_000_000;
    private const int Pruned = 4096;

    // Hook id → its file-name slots; replaced whole by Cover, so the per-event lookup takes no lock (null: none).
    private volatile Dictionary<uint, int[]>? _hooks;
    private readonly object _cover = new();
    private readonly Dictionary<(uint Hook, int Pid, string Path), ulong> _recent = [];

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
        if (_recent.Count >= Pruned)
            foreach (var k in _recent.Where(kv => kv.Value + Window < e.Ktime).Select(kv => kv.Key).ToList())
                _recent.Remove(k);
        foreach (var slot in slots)
            if (slot < e.Strings.Length && e.Strings[slot].Length > 0)
                _recent[(e.HookId, e.Pid, Encoding.UTF8.GetString(e.Strings[slot]))] = e.Ktime;
    }

    /// <summary>Whether an after-the-call match repeats a match of the same call: the kernel's at entry, or another
    /// notification of the same change (an unlink is FAN_DELETE in the directory and a link count falling on the file).</summary>
    public bool Repeats(PolicyKernelEvent e)
    {
        foreach (var s in e.Strings)
            if (s.Length > 0 && _recent.TryGetValue((e.HookId, e.Pid, Encoding.UTF8.GetString(s)), out var at) && at + Window >= e.Ktime)
                return true;
        Kernel(e);
        return false;
    }
}
