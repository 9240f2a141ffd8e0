using SecurityAgent.Interop;

namespace SecurityAgent.Bpf;

/// <summary>Objects loaded side by side: the verifier runs in the loading thread, so each load gets a thread of its own.</summary>
public static class ParallelLoad
{
    /// <summary>Begins a load on a thread of its own, one of <paramref name="background"/> when given, or of the
    /// <see cref="BackgroundLoads"/> the calling thread runs for.</summary>
    public static Task<T> Start<T>(Func<T> load, BackgroundLoads? background = null)
    {
        background ??= BackgroundLoads.Current;
        return Task.Factory.StartNew(background is null ? load : () => background.Run(load), CancellationToken.None,
            TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>Runs <paramref name="load"/> on this thread while <paramref name="beside"/> loads on its own. When
    /// <paramref name="load"/> throws, what <paramref name="beside"/> loaded is disposed once it is done (its own failure
    /// is not the one reported), then <paramref name="afterBeside"/> runs (e.g. freeing the maps both loaded on), and the
    /// exception goes on.</summary>
    public static T Beside<T, TBeside>(Task<TBeside> beside, Func<T> load, Action? afterBeside = null) where TBeside : IDisposable
    {
        try
        {
            return load();
        }
        catch
        {
            DisposeWhenDone(beside); // the failure of this thread's load is the one reported
            afterBeside?.Invoke();
            throw;
        }
    }

    /// <summary>Frees what a load beside a failed one made, once it is done (its own failure is not the one reported).</summary>
    public static void DisposeWhenDone<T>(Task<T> load) where T : IDisposable?
    {
        try { load.GetAwaiter().GetResult()?.Dispose(); }
        catch (Exception) { }
    }
}

/// <summary>Loads that "ready" does not wait for (the policy programs and the feature probe when the agent starts
/// without policies): their threads run at the lowest CPU priority (nice 19) until <see cref="Raise"/>, so that on a
/// busy or small machine the verifier's time on them does not take a core from what "ready" waits for, and they
/// still use every cycle it leaves. The verifier runs in the loading thread's system call, so its priority is the
/// thread's. A thread gets the process's own priority back before its load's task completes: the threads its
/// continuations create inherit it.</summary>
public sealed class BackgroundLoads
{
    private const int CapSysNice = 23;
    [ThreadStatic] private static BackgroundLoads? t_current;
    private readonly int _normal = Libc.ThreadNice();
    // Giving a thread its priority back needs CAP_SYS_NICE: without it the loads keep the process's priority.
    private readonly int _lowest = HasCapability(CapSysNice) ? 19 : Libc.ThreadNice();
    private readonly HashSet<int> _threads = [];
    private bool _raised;

    /// <summary>The loads the calling thread runs for (null outside them).</summary>
    internal static BackgroundLoads? Current => t_current;

    /// <summary>Runs <paramref name="load"/> on this thread as one of these loads.</summary>
    public T Run<T>(Func<T> load)
    {
        int tid = Libc.gettid();
        lock (_threads)
        {
            _threads.Add(tid);
            Libc.SetThreadNice(tid, _raised ? _normal : _lowest);
        }
        var outer = t_current;
        t_current = this;
        try
        {
            return load();
        }
        finally
        {
            t_current = outer;
            lock (_threads)
            {
                _threads.Remove(tid);
                if (outer is null)
                    Libc.SetThreadNice(tid, _normal);
            }
        }
    }

    private static bool HasCapability(int cap)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("CapEff:", StringComparison.Ordinal))
                return ulong.TryParse(line.AsSpan(7).Trim(), System.Globalization.NumberStyles.HexNumber, null, out var caps) && (caps & (1UL << cap)) != 0;
        return false;
    }

    /// <summary>From now on these loads run at the process's priority.</summary>
    public void Raise()
    {
        lock (_threads)
        {
            _raised = true;
            foreach (var tid in _threads)
                Libc.SetThreadNice(tid, _normal);
        }
    }
}
