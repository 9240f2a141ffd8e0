namespace SecurityAgent.Bpf;

/// <summary>The compiled BPF objects, embedded in the agent assembly by the build (see the csproj),
/// so the agent binary needs no source tree.</summary>
public static class EmbeddedObjects
{
    public static byte[] Read(string file)
    {
        using var s = typeof(EmbeddedObjects).Assembly.GetManifestResourceStream("bpf/" + file)
            ?? throw new FileNotFoundException($"BPF object {file} is not embedded in the agent; build with `make build`");
        var bytes = new byte[s.Length];
        s.ReadExactly(bytes);
        return bytes;
    }
}
