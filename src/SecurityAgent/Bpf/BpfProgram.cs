using System.Runtime.InteropServices;
using SecurityAgent.Interop;

namespace SecurityAgent.Bpf;

/// <summary>A program inside a <see cref="BpfObject"/>; lives as long as its object.</summary>
public sealed unsafe class BpfProgram
{
    private readonly BpfObject _owner;
    private readonly nint _prog;

    internal BpfProgram(BpfObject owner, nint prog)
    {
        _owner = owner;
        _prog = prog;
    }

    public string Name => Marshal.PtrToStringUTF8((nint)Libbpf.bpf_program__name(_prog)) ?? "";
    public string Section => Marshal.PtrToStringUTF8((nint)Libbpf.bpf_program__section_name(_prog)) ?? "";
    public int Fd => Libbpf.bpf_program__fd(_prog);

    public bool AutoLoad
    {
        set => LibbpfException.Check(Libbpf.bpf_program__set_autoload(_prog, value), $"bpf_program__set_autoload({Name})");
    }

    /// <summary>Attaches where the section name says (tp_btf, raw_tp, lsm, fentry, ...).</summary>
    public BpfLink Attach() => Link(Libbpf.bpf_program__attach(_prog), $"bpf_program__attach({Name})");

    public BpfLink AttachTracepoint(string category, string name, ulong cookie = 0)
    {
        var opts = new Libbpf.BpfTracepointOpts { sz = (nuint)sizeof(Libbpf.BpfTracepointOpts), bpf_cookie = cookie };
        return Link(Libbpf.bpf_program__attach_tracepoint_opts(_prog, category, name, &opts),
            $"bpf_program__attach_tracepoint({Name}, {category}/{name})");
    }

    /// <summary>The kernel function an fentry, fexit or fmod_ret program is verified for (before the object loads).</summary>
    public string AttachTarget
    {
        set => LibbpfException.Check(Libbpf.bpf_program__set_attach_target(_prog, 0, value), $"bpf_program__set_attach_target({Name}, {value})");
    }

    /// <summary>Attaches an fentry, fexit or fmod_ret program to the function it was loaded for, with a cookie.</summary>
    public BpfLink AttachTrace(ulong cookie)
    {
        var opts = new Libbpf.BpfTraceOpts { sz = (nuint)sizeof(Libbpf.BpfTraceOpts), cookie = cookie };
        return Link(Libbpf.bpf_program__attach_trace_opts(_prog, &opts), $"bpf_program__attach_trace({Name})");
    }

    public BpfLink AttachKprobe(string function, ulong cookie = 0, bool retprobe = false)
    {
        var opts = new Libbpf.BpfKprobeOpts { sz = (nuint)sizeof(Libbpf.BpfKprobeOpts), bpf_cookie = cookie, retprobe = retprobe ? (byte)1 : (byte)0 };
        return Link(Libbpf.bpf_program__attach_kprobe_opts(_prog, function, &opts), $"bpf_program__attach_kprobe({Name}, {function}{(retprobe ? ", retprobe" : "")})");
    }

    /// <summary>A uprobe in every process that maps the binary: at a symbol (libbpf finds its file offset in the
    /// ELF symbol tables) or, without one, at a file offset. A non-zero <paramref name="refCtrOffset"/> is the file offset
    /// of a semaphore the kernel increments in each process while the probe is attached.</summary>
    public BpfLink AttachUprobe(string binary, string? symbol, ulong offset, ulong cookie = 0, ulong refCtrOffset = 0)
    {
        var name = symbol is null ? null : System.Text.Encoding.UTF8.GetBytes(symbol + "\0");
        fixed (byte* n = name)
        {
            var opts = new Libbpf.BpfUprobeOpts { sz = (nuint)sizeof(Libbpf.BpfUprobeOpts), bpf_cookie = cookie, func_name = n, ref_ctr_offset = (nuint)refCtrOffset };
            return Link(Libbpf.bpf_program__attach_uprobe_opts(_prog, -1, binary, (nuint)offset, &opts),
                $"bpf_program__attach_uprobe({Name}, {binary}, {symbol ?? $"0x{offset:x}"})");
        }
    }

    /// <summary>A USDT probe of a binary in every process that maps it (libbpf reads the .note.stapsdt notes).</summary>
    public BpfLink AttachUsdt(string binary, string provider, string name, ulong cookie = 0)
    {
        var opts = new Libbpf.BpfUsdtOpts { sz = (nuint)sizeof(Libbpf.BpfUsdtOpts), usdt_cookie = cookie };
        return Link(Libbpf.bpf_program__attach_usdt(_prog, -1, binary, provider, name, &opts), $"bpf_program__attach_usdt({Name}, {binary}, {provider}:{name})");
    }

    /// <summary>A raw tracepoint with a bpf_cookie: needs Linux 6.10 (older kernels refuse the cookie with EINVAL).</summary>
    public BpfLink AttachRawTracepoint(string name, ulong cookie)
    {
        int fd;
        try { fd = Libbpf.RawTracepointOpen(name, Fd, cookie); }
        catch (LibbpfException e) when (e.Errno == Errno.EINVAL)
        {
            throw new LibbpfException($"{e.Call} (a raw tracepoint with a bpf_cookie needs Linux 6.10 or later)", e.Errno);
        }
        GC.KeepAlive(_owner);
        return new BpfLink(fd, $"raw_tracepoint_open({Name}, {name})", isFd: true);
    }

    public BpfLink AttachCgroup(SafeHandle cgroupFd)
    {
        bool added = false;
        cgroupFd.DangerousAddRef(ref added);
        try
        {
            return Link(Libbpf.bpf_program__attach_cgroup(_prog, (int)cgroupFd.DangerousGetHandle()), $"bpf_program__attach_cgroup({Name})");
        }
        finally
        {
            if (added) cgroupFd.DangerousRelease();
        }
    }

    private BpfLink Link(nint link, string call)
    {
        GC.KeepAlive(_owner);
        return new BpfLink(LibbpfException.Check(link, call), call);
    }
}
