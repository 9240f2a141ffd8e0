namespace SecurityAgent.Bpf;

/// <summary>Objects loaded side by side: the verifier runs in the loading thread, so each load gets a thread of its own.</summary>
public static class ParallelLoad
{
    /// <summary>Begins a load on a thread of its own.</summary>
    public static Task<T> Start<T>(Func<T> load) =>
        Task.Factory.StartNew(load, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

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
            try { beside.GetAwaiter().GetResult().Dispose(); }
            catch (Exception) { } // the failure of this thread's load is the one reported
            afterBeside?.Invoke();
            throw;
        }
    }
}
