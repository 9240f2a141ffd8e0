using System.Buffers.Binary;
using System.Net;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using SecurityAgent.Events;
using SecurityAgent.Policies;

namespace SecurityAgent.Export;

/// <summary>Tetragon's sockaddr_arg (AF_INET, AF_INET6): {"family", "addr", "port"}.</summary>
public sealed record SockAddr(string Family, string Addr, int Port);

/// <summary>Tetragon's sockaddrun_arg (AF_UNIX): {"family", "path"}; an abstract address's path starts with '@'.</summary>
public sealed record UnixSockAddr(string Family, string Path);

/// <summary>Tetragon's file_arg / path_arg / linux_binprm_arg: the path, Tetragon's path flags
/// ("unresolvedPathComponents" when the kernel could not resolve it whole) and the inode's mode as ls(1) writes it
/// ("-rw-r-----"); empty where the kernel did not read the inode. Tetragon leaves mount empty, and so does the agent.</summary>
public sealed record PathArg(string Path, string Flags = "", string Permission = "");

/// <summary>Tetragon's truncated_bytes_arg: the first bytes of a buffer and its whole size (orig_size, a uint64).</summary>
public sealed record TruncatedBytes(byte[] Bytes, ulong OrigSize);

/// <summary>Tetragon's syscall_id: {"id": N, "abi": "x64"}.</summary>
public sealed record SyscallId(uint Id, string Abi);

/// <summary>Renders the raw values of a policy event as Tetragon's typed arguments, with the CLR type that decides the
/// protojson encoding: int (int_arg) and uint (uint_arg) are numbers; long (long_arg) and ulong (size_arg) are 64-bit
/// and so strings; byte[] (bytes_arg) is base64.</summary>
public static class PolicyArgs
{
    private static readonly (string Native, string Compat) Abi = RuntimeInformation.OSArchitecture switch
    {
        Architecture.X64 => ("x64", "i386"),
        Architecture.Arm64 => ("arm64", "arm32"),
        _ => ("unknown", "unknown"),
    };

    /// <summary>The arguments of a policy event; <paramref name="passed"/> holds, per slot, the string the process passed
    /// where the kernel resolved it to another path; <paramref name="host"/> the host's path of slot
    /// <paramref name="hostArg"/> where the process's root is not the host's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static IReadOnlyList<RenderedArg> Render(HookPlan hook, ulong[] ints, byte[][] strings, byte[]?[]? passed = null, int hostArg = -1, byte[]? host = null)
    {
        var list = new RenderedArg[hook.Args.Count]; // an array, not a List: one object less per event
        int n = 0;
        for (int i = 0; i < hook.Args.Count; i++) // indexed: foreach over an interface allocates its enumerator
        {
            var a = hook.Args[i];
            if (a.Slot >= ints.Length) break;
            ulong v = ints[a.Slot];
            if (KernelObjectArgs.Render(a, v, strings[a.Slot]) is { } obj)
            {
                list[n++] = obj;
                continue;
            }
            list[n++] = a.KernelType switch
            {
                ArgType.Buf or ArgType.BufRet or ArgType.IovIter or ArgType.BufMax or ArgType.IovIterMax when v > (ulong)strings[a.Slot].Length =>
                    new RenderedArg("truncated_bytes_arg", new TruncatedBytes(strings[a.Slot], v), a.Label),
                ArgType.Buf or ArgType.BufRet or ArgType.IovIter or ArgType.BufMax or ArgType.IovIterMax => new RenderedArg("bytes_arg", strings[a.Slot], a.Label),
                ArgType.String or ArgType.KString when a.Type is "char_buf" or "char_iovec" => new RenderedArg("bytes_arg", strings[a.Slot], a.Label),
                ArgType.String or ArgType.KString => StringArg(a, strings[a.Slot],
                    a.KernelType == ArgType.String && passed?[a.Slot] is { } p && !p.AsSpan().SequenceEqual(strings[a.Slot]) ? p : null,
                    a.Slot == hostArg ? host : null),
                ArgType.SockAddr or ArgType.KSockAddr => SockAddrArg(strings[a.Slot], a.Label),
                ArgType.File => new RenderedArg("file_arg", PathArgOf(strings[a.Slot], v), a.Label),
                ArgType.Path => new RenderedArg("path_arg", PathArgOf(strings[a.Slot], v), a.Label),
                ArgType.Bprm => new RenderedArg("linux_binprm_arg", PathArgOf(strings[a.Slot], v), a.Label),
                ArgType.Kiocb => new RenderedArg("file_arg", PathArgOf(strings[a.Slot], v), a.Label),
                ArgType.Fd => new RenderedArg("int_arg", (int)v, a.Label),
                _ when a.Type == "syscall64" => new RenderedArg("syscall_id", SyscallIdOf(v), a.Label),
                ArgType.Int when a.Size == 8 => new RenderedArg("long_arg", (long)v, a.Label),
                ArgType.Int => new RenderedArg("int_arg", (int)v, a.Label),
                ArgType.UInt when a.Size == 8 => new RenderedArg("size_arg", v, a.Label),
                _ => new RenderedArg("uint_arg", (uint)v, a.Label),
            };
        }
        if (n < list.Length) Array.Resize(ref list, n);
        return list;
    }

    /// <summary>A path argument from its string slot and its integer slot, where the kernel put the inode's mode and the
    /// unresolved flag (PolicyWire.FileInfo).</summary>
    public static PathArg PathArgOf(byte[] path, ulong info) =>
        new(Utf8Strings.Get(path),
            (info & (ulong)PolicyWire.FileInfo.Unresolved) != 0 ? "unresolvedPathComponents" : "",
            Permission((ushort)(info & (ulong)PolicyWire.FileInfo.Mode)));

    /// <summary>A file mode as ls(1) writes it and Tetragon's permission field carries it: the type ('-', 'd', 'l', 'c',
    /// 'b', 'p', 's'), then rwx for owner, group and others with s/S, s/S and t/T for set-user-ID, set-group-ID and
    /// sticky. 0 (no inode read): empty.</summary>
    public static string Permission(ushort mode)
    {
        if (mode == 0) return "";
        ref var slot = ref ModeTexts[(mode ^ (mode >> 8)) & (ModeTexts.Length - 1)];
        if (slot is { } known && known.Mode == mode) return known.Text;
        var text = PermissionText(mode);
        slot = new ModeText(mode, text);
        return text;
    }

    // The few modes files have, each written once (a string per file event otherwise); immutable entries: any thread.
    private sealed record ModeText(ushort Mode, string Text);
    private static readonly ModeText?[] ModeTexts = new ModeText?[256];

    private static string PermissionText(ushort mode)
    {
        Span<char> s = stackalloc char[10];
        int n = 0;
        char type = (mode & 0xf000) switch
        {
            0x6000 => 'b', 0x2000 => 'c', 0x4000 => 'd', 0x1000 => 'p', 0xa000 => 'l', 0x8000 => '-', 0xc000 => 's', _ => '\0',
        };
        if (type != '\0') s[n++] = type;
        for (int who = 2; who >= 0; who--)
        {
            int bits = (mode >> (3 * who)) & 7;
            bool special = (mode & (0x200 << who)) != 0; // S_ISUID (owner), S_ISGID (group), S_ISVTX (others)
            char mark = who == 0 ? 't' : 's';
            s[n++] = (bits & 4) != 0 ? 'r' : '-';
            s[n++] = (bits & 2) != 0 ? 'w' : '-';
            s[n++] = special ? ((bits & 1) != 0 ? mark : char.ToUpperInvariant(mark)) : (bits & 1) != 0 ? 'x' : '-';
        }
        return new string(s[..n]);
    }
    /// <summary>A return probe's value as Tetragon's `return` KprobeArgument, typed by the returnArg; a returned sock
    /// from the bytes the kernel read at return (<paramref name="data"/>).</summary>
    public static RenderedArg RenderReturn(ReturnPlan r, long value, byte[]? data = null) => r.KernelType switch
    {
        ArgType.Sock => KernelObjectArgs.Render(new ArgPlan(0, 0, r.Type, r.KernelType, 0, r.Size, r.Label), (ulong)value,
            data is { Length: >= PolicyWire.SockInfo.Length } ? data : new byte[PolicyWire.SockInfo.Length])!,
        ArgType.Int when r.Size == 8 => new RenderedArg("long_arg", value, r.Label),
        ArgType.Int or ArgType.Fd => new RenderedArg("int_arg", (int)value, r.Label),
        ArgType.UInt when r.Size == 8 => new RenderedArg("size_arg", (ulong)value, r.Label),
        _ => new RenderedArg("uint_arg", (uint)value, r.Label),
    };

    public static SyscallId SyscallIdOf(ulong v) =>
        (v & SyscallTable.Compat32) != 0 ? new SyscallId((uint)(v & ~SyscallTable.Compat32), Abi.Compat) : new SyscallId((uint)v, Abi.Native);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static RenderedArg StringArg(ArgPlan a, byte[] value, byte[]? passed, byte[]? host)
    {
        var kept = Utf8Strings.GetEntry(value);
        return new RenderedArg("string_arg", kept?.Text ?? Utf8Strings.Get(value), a.Label, passed is null ? null : Utf8Strings.Get(passed))
        {
            HostPath = host is null ? null : Utf8Strings.Get(host),
            Kept = kept,
        };
    }

    private static RenderedArg SockAddrArg(byte[] raw, string? label) =>
        raw.Length >= 2 && BinaryPrimitives.ReadUInt16LittleEndian(raw) == 1
            ? new RenderedArg("sockaddrun_arg", UnixOf(raw), label)
            : new RenderedArg("sockaddr_arg", SockAddrOf(raw), label);

    /// <summary>sun_path as far as the kernel record holds it: up to its NUL, or for an abstract address (a leading
    /// NUL) the rest, shown with '@' as ss(8) and Tetragon do.</summary>
    public static UnixSockAddr UnixOf(byte[] raw)
    {
        var path = raw.AsSpan(2);
        bool isAbstract = path.Length > 0 && path[0] == 0;
        if (isAbstract) path = path[1..];
        int nul = path.IndexOf((byte)0);
        if (nul >= 0) path = path[..nul];
        return new UnixSockAddr("AF_UNIX", (isAbstract ? "@" : "") + Encoding.UTF8.GetString(path));
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
            0 => new SockAddr("AF_UNSPEC", "", 0),
            _ => new SockAddr(family.ToString(System.Globalization.CultureInfo.InvariantCulture), "", port),
        };
    }

    /// <summary>Tetragon's action names; the enforcing action wins over Post.</summary>
    public static string ActionName(Actions a) =>
        a.HasFlag(Actions.NotifyEnforcer) ? "KPROBE_ACTION_NOTIFYENFORCER"
        : a.HasFlag(Actions.Sigkill) ? "KPROBE_ACTION_SIGKILL"
        : a.HasFlag(Actions.Override) ? "KPROBE_ACTION_OVERRIDE"
        : a.HasFlag(Actions.Signal) ? "KPROBE_ACTION_SIGNAL"
        : a.HasFlag(Actions.Set) ? "KPROBE_ACTION_SET"
        : a.HasFlag(Actions.EnfCleanup) ? "KPROBE_ACTION_CLEANUPENFORCERNOTIFICATION"
        : "KPROBE_ACTION_POST";
}
