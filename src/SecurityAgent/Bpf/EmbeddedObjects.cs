namespace SecurityAgent.Bpf;

/// <summary>The compiled BPF objects, embedded in the agent assembly by the build (see the csproj),
/// so the agent binary needs no source tree.</summary>
public static class EmbeddedObjects
{
    public const string Process = "process.bpf.o";
    public const string Probe = "probe.bpf.o";
    public const string Tracepoint = "tracepoint.bpf.o";
    public const string Sock = "sock.bpf.o";
    public const string Lsm = "lsm.bpf.o";
    public const string Kprobe = "kprobe.bpf.o";

    public static byte[] Read(string name)
    {
        using var s = typeof(EmbeddedObjects).Assembly.GetManifestResourceStream("bpf/" + name)
            ?? throw new FileNotFoundException($"BPF object {name} is not embedded in the agent; build with `make build`");
        var bytes = new byte[s.Length];
        s.ReadExactly(bytes);
        return bytes;
    }

    public static BpfObject Open(string name) => BpfObject.Open(Path.GetFileNameWithoutExtension(Path.GetFileNameWithoutExtension(name)), Read(name));
}
