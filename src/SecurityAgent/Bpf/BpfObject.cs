using System.Runtime.InteropServices;
using System.Text;
using SecurityAgent.Interop;

namespace SecurityAgent.Bpf;

/// <summary>A loaded BPF object (cilium/ebpf's Collection): its programs and maps live in the kernel as long as
/// this handle (or a link, or another object sharing a map) holds them. Made only by <see cref="Load"/>, from a
/// <see cref="BpfObjectSpec"/>, so there is no half-loaded state.</summary>
public sealed unsafe class BpfObject : SafeHandle
{
    public BpfObjectSpec Spec { get; }
    public string Name => Spec.Name;

    private BpfObject(BpfObjectSpec spec) : base(0, ownsHandle: true) => Spec = spec;

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle()
    {
        Libbpf.bpf_object__close(handle);
        return true;
    }

    /// <summary>Opens the spec's ELF, sizes and shares its maps as declared (each shared map from the loaded
    /// object the spec names as its owner), loads the chosen programs. On a verifier rejection the exception
    /// names the program and carries the tail of the verifier log.</summary>
    public static BpfObject Load(BpfObjectSpec spec, params BpfObject[] owners) => Load(spec, EmbeddedObjects.Read(spec.File), owners);

    public static BpfObject Load(BpfObjectSpec spec, ReadOnlySpan<byte> elf, params BpfObject[] owners)
    {
        var obj = Open(spec, elf);
        try
        {
            foreach (var (name, max) in spec.MaxEntries)
                obj.Map(name).SetMaxEntries(max);
            foreach (var share in spec.Shares)
            {
                var owner = owners.FirstOrDefault(o => o.Name == share.Owner)
                    ?? throw new InvalidOperationException($"{spec.Name}: map {share.Map} is shared from {share.Owner}, which was not given");
                obj.Map(share.Map).ReuseFd(owner.Map(share.Map).Fd);
            }
            if (spec.Creates is { } creates)
                foreach (var m in obj.Maps)
                    if (!creates.Contains(m.Name) && !spec.Shares.Any(s => s.Map == m.Name))
                        m.SkipCreation();
            if (spec.Programs is { } wanted)
                foreach (var p in obj.Programs)
                    p.AutoLoad = wanted.Contains(p.Name);
            foreach (var p in obj.Programs)
                if (spec.AttachTargets.TryGetValue(p.Name, out var function))
                    p.AttachTarget = function;
            obj.LoadPrograms();
            return obj;
        }
        catch
        {
            obj.Dispose();
            throw;
        }
    }

    private static BpfObject Open(BpfObjectSpec spec, ReadOnlySpan<byte> elf)
    {
        LibbpfLog.EnsureInstalled();
        var obj = new BpfObject(spec);
        var nameBytes = Encoding.UTF8.GetBytes(spec.Name + "\0");
        fixed (byte* p = elf)
        fixed (byte* n = nameBytes)
        {
            var opts = new Libbpf.BpfObjectOpenOpts { sz = (nuint)sizeof(Libbpf.BpfObjectOpenOpts), object_name = n };
            using var capture = LibbpfLog.BeginCapture();
            var h = Libbpf.bpf_object__open_mem(p, (nuint)elf.Length, &opts);
            obj.SetHandle(LibbpfException.Check(h, $"bpf_object__open_mem({spec.Name})", () => capture.VerifierTail()));
        }
        return obj;
    }

    private void LoadPrograms()
    {
        using var capture = LibbpfLog.BeginCapture();
        int rc;
        using (LoaderMemory.LoadSlot())
            rc = Libbpf.bpf_object__load(handle);
        LoaderMemory.AfterLoad(); // libbpf's BTF copies: ~26 MB of RSS kept if never returned
        if (rc < 0)
        {
            var failed = FailedProgram(capture.Text);
            throw new LibbpfException($"bpf_object__load({Name}{(failed is null ? "" : ", program " + failed)})", -rc, capture.VerifierTail());
        }
    }

    public IEnumerable<BpfProgram> Programs
    {
        get
        {
            nint prog = 0;
            while ((prog = Libbpf.bpf_object__next_program(handle, prog)) != 0)
                yield return new BpfProgram(this, prog);
        }
    }

    public IEnumerable<BpfMap> Maps
    {
        get
        {
            nint map = 0;
            while ((map = Libbpf.bpf_object__next_map(handle, map)) != 0)
                yield return new BpfMap(this, map, MapName(map));
        }
    }

    private static string MapName(nint map) => Marshal.PtrToStringUTF8((nint)Libbpf.bpf_map__name(map)) ?? "";

    public BpfProgram Program(string name) =>
        Programs.FirstOrDefault(p => p.Name == name) ?? throw new KeyNotFoundException($"{Name}: no program '{name}'");

    public BpfMap Map(string name)
    {
        var m = Libbpf.bpf_object__find_map_by_name(handle, name);
        if (m == 0)
            throw new KeyNotFoundException($"{Name}: no map '{name}'");
        return new BpfMap(this, m, name);
    }

    private static string? FailedProgram(string log)
    {
        const string marker = "libbpf: prog '";
        int i = log.LastIndexOf(marker, StringComparison.Ordinal);
        if (i < 0) return null;
        int start = i + marker.Length;
        int end = log.IndexOf('\'', start);
        return end > start ? log[start..end] : null;
    }
}
