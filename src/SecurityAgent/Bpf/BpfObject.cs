using System.Runtime.InteropServices;
using System.Text;
using SecurityAgent.Interop;

namespace SecurityAgent.Bpf;

/// <summary>An opened (and later loaded) BPF ELF object. Owns the libbpf bpf_object: closing it
/// unloads every program and map the object created that no link or other fd still holds.</summary>
public sealed unsafe class BpfObject : SafeHandle
{
    public string Name { get; }
    public bool IsLoaded { get; private set; }

    private BpfObject(string name) : base(0, ownsHandle: true) => Name = name;

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle()
    {
        Libbpf.bpf_object__close(handle);
        return true;
    }

    /// <summary>Opens an object from its ELF bytes (embedded in the agent, see <see cref="EmbeddedObjects"/>).</summary>
    public static BpfObject Open(string name, ReadOnlySpan<byte> elf)
    {
        LibbpfLog.EnsureInstalled();
        var obj = new BpfObject(name);
        var nameBytes = Encoding.UTF8.GetBytes(name + "\0");
        fixed (byte* p = elf)
        fixed (byte* n = nameBytes)
        {
            var opts = new Libbpf.BpfObjectOpenOpts { sz = (nuint)sizeof(Libbpf.BpfObjectOpenOpts), object_name = n };
            using var capture = LibbpfLog.BeginCapture();
            var h = Libbpf.bpf_object__open_mem(p, (nuint)elf.Length, &opts);
            obj.SetHandle(LibbpfException.Check(h, $"bpf_object__open_mem({name})", () => capture.VerifierTail()));
        }
        return obj;
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

    public BpfProgram Program(string name) =>
        Programs.FirstOrDefault(p => p.Name == name) ?? throw new KeyNotFoundException($"{Name}: no program '{name}'");

    /// <summary>Names of the object's maps (libbpf's internal .rodata/.bss maps included).</summary>
    public IEnumerable<string> MapNames
    {
        get
        {
            nint map = 0;
            while ((map = Libbpf.bpf_object__next_map(handle, map)) != 0)
                yield return MapName(map);
        }
    }

    private static string MapName(nint map) => Marshal.PtrToStringUTF8((nint)Libbpf.bpf_map__name(map)) ?? "";

    public BpfMap Map(string name)
    {
        var m = Libbpf.bpf_object__find_map_by_name(handle, name);
        if (m == 0)
            throw new KeyNotFoundException($"{Name}: no map '{name}'");
        return new BpfMap(this, m, name);
    }

    /// <summary>Loads every program still marked for autoload. On a verifier rejection the exception
    /// names the program and carries the tail of the verifier log.</summary>
    public void Load()
    {
        using var capture = LibbpfLog.BeginCapture();
        int rc = Libbpf.bpf_object__load(handle);
        if (rc < 0)
        {
            var failed = FailedProgram(capture.Text);
            throw new LibbpfException($"bpf_object__load({Name}{(failed is null ? "" : ", program " + failed)})", -rc, capture.VerifierTail());
        }
        IsLoaded = true;
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

    internal nint Raw => handle;
}
