namespace SecurityAgent.Hosting;

/// <summary>Start-up leaves garbage that the steady state never reuses: the policy compiler's and YAML parser's objects
/// in the managed heap, and libbpf's BTF copies kept in malloc's heap between the start-up loads (<see cref="Bpf.LoaderMemory"/>). Once the agent is ready, one
/// compacting collection and a malloc trim give those pages back (a few milliseconds, once), so idle RSS is what the
/// agent keeps, not what it once needed.</summary>
public static class StartupMemory
{
    public static void Release()
    {
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        Bpf.LoaderMemory.Release();
    }
}
