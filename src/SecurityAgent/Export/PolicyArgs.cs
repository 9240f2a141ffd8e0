using System.Buffers.Binary;
using System.Net;
using System.Text;
using SecurityAgent.Policies;

namespace SecurityAgent.Export;

public sealed record SockAddr(string Family, string Addr, int Port);

/// <summary>Tetragon's file_arg / path_arg / linux_binprm_arg: {"path": ...}.</summary>
public sealed record PathArg(string Path);

/// <summary>Renders the raw values of a policy event as Tetragon's typed arguments.</summary>
public static class PolicyArgs
{
    public static IReadOnlyList<RenderedArg> Render(HookPlan hook, ulong[] ints, byte[][] strings, byte[]?[]? passed = null)
    {
        var list = new List<RenderedArg>(hook.Args.Count);
        foreach (var a in hook.Args)
        {
            if (a.Slot >= ints.Length) break;
            ulong v = ints[a.Slot];
            list.Add(a.KernelType switch
            {
                ArgType.String => new RenderedArg("string_arg", Encoding.UTF8.GetString(strings[a.Slot]), a.Label,
                    passed?[a.Slot] is { } p ? Encoding.UTF8.GetString(p) : null),
                ArgType.SockAddr or ArgType.KSockAddr => new RenderedArg("sockaddr_arg", SockAddrOf(strings[a.Slot]), a.Label),
                ArgType.KString => new RenderedArg("string_arg", Encoding.UTF8.GetString(strings[a.Slot]), a.Label),
                ArgType.File => new RenderedArg("file_arg", new PathArg(Encoding.UTF8.GetString(strings[a.Slot])), a.Label),
                ArgType.Path => new RenderedArg("path_arg", new PathArg(Encoding.UTF8.GetString(strings[a.Slot])), a.Label),
                ArgType.Bprm => new RenderedArg("linux_binprm_arg", new PathArg(Encoding.UTF8.GetString(strings[a.Slot])), a.Label),
                ArgType.Fd => new RenderedArg("int_arg", (long)(int)v, a.Label),
                _ when a.Type == "syscall64" => new RenderedArg("syscall_id", v, a.Label),
                ArgType.Int when a.Size == 8 => new RenderedArg("long_arg", (long)v, a.Label),
                ArgType.Int => new RenderedArg("int_arg", (long)v, a.Label),
                ArgType.UInt when a.Size == 8 => new RenderedArg("size_arg", v, a.Label),
                _ => new RenderedArg("uint_arg", v, a.Label),
            });
        }
        return list;
    }

    public static SockAddr SockAddrOf(byte[] raw)
    {
        if (raw.Length < 8) return new SockAddr("AF_UNSPEC", "", 0);
        ushort family = BinaryPrimitives.ReadUInt16LittleEndian(raw);
        int port = BinaryPrimitives.ReadUInt16BigEndian(raw.AsSpan(2));
        return family switch
        {
            2 => new SockAddr("AF_INET", new IPAddress(raw.AsSpan(4, 4)).ToString(), port),
            10 when raw.Length >= 24 => new SockAddr("AF_INET6", new IPAddress(raw.AsSpan(8, 16)).ToString(), port),
            1 => new SockAddr("AF_UNIX", "", 0),
            _ => new SockAddr(family.ToString(), "", port),
        };
    }

    /// <summary>Tetragon's action names; the enforcing action wins over Post.</summary>
    public static string ActionName(Actions a) =>
        a.HasFlag(Actions.Sigkill) ? "KPROBE_ACTION_SIGKILL"
        : a.HasFlag(Actions.Override) ? "KPROBE_ACTION_OVERRIDE"
        : a.HasFlag(Actions.Signal) ? "KPROBE_ACTION_SIGNAL"
        : "KPROBE_ACTION_POST";
}
