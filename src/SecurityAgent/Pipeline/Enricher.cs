using System.Runtime.CompilerServices;
using SecurityAgent.Containers;
using SecurityAgent.Events;
using SecurityAgent.Export;
using SecurityAgent.Processes;

namespace SecurityAgent.Pipeline;

/// <summary>Stage 2, enrich: who did it. Keeps the process cache in step with exec, fork and exit, and gives each
/// event its process, parent and container as plain data. A process the cache does not know is read from /proc,
/// and when it is gone from there too the event says so. Pipeline thread only.</summary>
public sealed class Enricher(ProcessCache cache, CgroupMap? cgroups, long clockTickNs, string procRoot = "/proc")
{
    private const int ContainerCap = 16_384;
    private readonly Dictionary<ulong, ContainerRef?> _containers = new();

    public ProcessCache Cache => cache;

    // The last policy event's process and parent: a run of events of one process looks its parent up (by exec id, a
    // string hash) once. Forgotten whenever the cache changes: at exec, clone and exit, and after each batch.
    private ProcessInfo? _lastProcess, _lastParent;

    /// <summary>The cache may change outside the pipeline's records (a /proc scan, an eviction) between batches.</summary>
    public void EndBatch() => _lastProcess = _lastParent = null;

    public ProcessExecEvent Exec(in ExecEvent e)
    {
        EndBatch();
        var p = cache.OnExec(e);
        p.Container = ContainerOf(e.CgroupId);
        return new ProcessExecEvent(e.Ktime, p, cache.Parent(p));
    }

    public void Fork(ForkEvent e)
    {
        EndBatch();
        cache.OnFork(e);
    }

    public ProcessExitEvent Exit(ExitEvent e)
    {
        EndBatch();
        var p = cache.OnExit(e) ?? Unknown(e.Pid, e.Tid, e.StartTime, "its start was not seen (evicted from the process cache, or lost)");
        return new ProcessExitEvent(e.Ktime, p, cache.Parent(p), e.Status, e.Signal);
    }

    /// <summary>The process of a policy event: the cache's; else /proc's (kept from then on); else a stub saying why.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public (ProcessInfo Process, ProcessInfo? Parent) ProcessOf(int pid, int tid)
    {
        var p = cache.ByPid(pid);
        if (p is not null && ReferenceEquals(p, _lastProcess))
            return (p, _lastParent);
        if (p is null)
        {
            try { p = ProcFsScanner.Read(Path.Combine(procRoot, pid.ToString()), pid, cache.NodeName, clockTickNs); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            if (p is not null)
            {
                cache.AddProcFs(p);
                cache.LinkParent(p);
            }
            else
                p = cache.ExitedByPid(pid) ?? Unknown(pid, tid, 0, $"pid {pid} was not in the process cache and had exited before its event was read");
            EndBatch();
            return (p, cache.Parent(p));
        }
        (_lastProcess, _lastParent) = (p, cache.Parent(p));
        return (p, _lastParent);
    }

    private ContainerRef? ContainerOf(ulong cgroupId)
    {
        if (cgroups is null || cgroupId == 0) return null;
        if (_containers.TryGetValue(cgroupId, out var c)) return c;
        if (_containers.Count >= ContainerCap) _containers.Clear();
        return _containers[cgroupId] = cgroups.PathOf(cgroupId) is { } path ? CgroupNames.Parse(path) : null;
    }

    private ProcessInfo Unknown(int pid, int tid, ulong start, string why) => new()
    {
        ExecId = ExecId.Make(cache.NodeName, start, pid),
        Pid = pid,
        Tid = tid,
        StartTime = start,
        Ktime = start,
        Binary = "",
        Args = [],
        Cwd = "",
        Creds = new Credentials(0, 0, 0, 0),
        Origin = ProcessOrigin.Clone,
        Unattributed = why,
    };
}
