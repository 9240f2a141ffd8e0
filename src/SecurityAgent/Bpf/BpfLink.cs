using System.Runtime.InteropServices;
using SecurityAgent.Interop;

namespace SecurityAgent.Bpf;

/// <summary>An attachment of a program to a hook: a libbpf link, or a link fd the agent opened itself (raw
/// tracepoints with a cookie). Disposing it detaches the program.</summary>
public sealed class BpfLink : SafeHandle
{
    private readonly bool _isFd;

    public string Description { get; }

    internal BpfLink(nint link, string description, bool isFd = false) : base(isFd ? -1 : 0, ownsHandle: true)
    {
        SetHandle(link);
        Description = description;
        _isFd = isFd;
    }

    public override bool IsInvalid => _isFd ? handle < 0 : handle == 0;

    protected override bool ReleaseHandle() => _isFd ? Libc.close((int)handle) == 0 : Libbpf.bpf_link__destroy(handle) == 0;
}
