using System.Runtime.InteropServices;
using SecurityAgent.Interop;

namespace SecurityAgent.Bpf;

/// <summary>An attachment of a program to a hook. Disposing it detaches the program.</summary>
public sealed class BpfLink : SafeHandle
{
    public string Description { get; }

    internal BpfLink(nint link, string description) : base(0, ownsHandle: true)
    {
        SetHandle(link);
        Description = description;
    }

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle() => Libbpf.bpf_link__destroy(handle) == 0;
}
