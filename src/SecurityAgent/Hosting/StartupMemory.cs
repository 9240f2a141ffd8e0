using SecurityAgent.Interop;

namespace SecurityAgent.Hosting;

/// <summary>Start-up leaves garbage that the steady state never reuses: the policy compiler's and YAML parser's objects
/// in the managed heap, and what was freed in malloc's heap after the loader's own trims. Once the agent is ready, one
/// compacting collection and a malloc trim give those pages back (a few milliseconds, once), so idle RSS is what the
/// agent keeps, not what it once needed.</summary>
public static class StartupMemory
{
    public static void Release()
    {
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        Libc.malloc_trim(0);
    }
}
