using System.Runtime.CompilerServices;
using SecurityAgent.Containers;
using SecurityAgent.Export;
using SecurityAgent.Processes;

namespace SecurityAgent.Pipeline;

/// <summary>The last step of enrichment, and the one place an event waits: an event of a pod's container whose pod
/// the watch has not delivered yet is held, at most <see cref="Wait"/>, and goes out with its pod as soon as the pod
/// is known (or without it after the wait). Order is kept: once one event waits, the ones behind it wait too.
/// Bounded: past <paramref name="capacity"/> held events the oldest goes out as it is. Pipeline thread only.</summary>
public sealed class PodWait(PodCache? pods, TimeProvider clock, int capacity)
{
    /// <summary>How long an event of a pod's container waits for the pod watch before it goes out without pod fields.</summary>
    public static readonly TimeSpan Wait = TimeSpan.FromSeconds(5);

    private readonly Queue<(AgentEvent Event, long Since)> _held = new();

    public int Held => _held.Count;

    /// <summary>Hands <paramref name="e"/> on to <paramref name="export"/> now, or holds it. Returns false when the
    /// queue was full and the oldest event had to go out without its pod.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool Offer(AgentEvent e, Action<AgentEvent> export)
    {
        if (_held.Count == 0 && Complete(e))
        {
            export(e);
            return true;
        }
        bool full = _held.Count >= capacity;
        if (full)
            export(_held.Dequeue().Event);
        _held.Enqueue((e, clock.GetTimestamp()));
        return !full;
    }

    /// <summary>Sends on the held events whose pod arrived or whose wait is over (all of them when <paramref name="all"/>).</summary>
    public void Release(Action<AgentEvent> export, bool all = false)
    {
        while (_held.TryPeek(out var x))
        {
            if (!Complete(x.Event) && !all && clock.GetElapsedTime(x.Since) < Wait) break;
            _held.Dequeue();
            export(x.Event);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool Complete(AgentEvent e) => PodKnownOrNotExpected(e.Process) & (e.Parent is not { } pa || PodKnownOrNotExpected(pa));

    /// <summary>Fills in the pod of a process in a pod's container once the pod watch has it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool PodKnownOrNotExpected(ProcessInfo p)
    {
        if (p.Pod is not null || p.Container is not { PodUid: not null } c || pods is not { Active: true }) return true;
        p.Pod = pods.Lookup(c);
        return p.Pod is not null;
    }
}
