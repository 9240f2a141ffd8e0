using SecurityAgent.Interop;

namespace SecurityAgent.Bpf;

/// <summary>libbpf parses the kernel's BTF (megabytes, tens of MB of malloc) for every object load and frees it. glibc
/// keeps the freed pages unless asked to return them; returning them after every load makes the next load fault them in
/// again (a BTF parse ~45 ms instead of ~4 ms, measured). So while loads come back to back (start-up) the pages are kept,
/// and given back once when start-up ends; a load after that returns them at once.</summary>
public static class LoaderMemory
{
    private static volatile bool s_keep;

    /// <summary>A load holds its copy of the kernel's BTF until its programs are verified; the verifier is CPU-bound, so
    /// more loads at once than CPUs only add copies (measured: peak RSS ~140 MB with five objects loading at once on two
    /// CPUs).</summary>
    private static readonly SemaphoreSlim s_slots = new(Math.Max(1, Environment.ProcessorCount));

    /// <summary>Waits for one of the CPU-count slots a load runs in; dispose to leave it.</summary>
    internal static Slot LoadSlot()
    {
        s_slots.Wait();
        return default;
    }

    internal readonly struct Slot : IDisposable
    {
        public void Dispose() => s_slots.Release();
    }

    /// <summary>Keep libbpf's freed memory across loads until <see cref="Release"/>.</summary>
    public static void KeepBetweenLoads() => s_keep = true;

    internal static void AfterLoad()
    {
        if (!s_keep)
            Libc.malloc_trim(0);
    }

    /// <summary>Ends <see cref="KeepBetweenLoads"/> and returns what malloc holds free to the kernel.</summary>
    public static void Release()
    {
        s_keep = false;
        Libc.malloc_trim(0);
    }
}
