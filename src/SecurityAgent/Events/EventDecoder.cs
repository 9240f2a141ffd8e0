using System.Buffers.Binary;
using System.Text;

namespace SecurityAgent.Events;

/// <summary>Turns raw ring-buffer records into <see cref="KernelEvent"/>s. Pure: bytes in, record out.</summary>
public static class EventDecoder
{
    public static Op PeekOp(ReadOnlySpan<byte> raw) => raw.Length >= Wire.Header.Length ? (Op)raw[Wire.Header.Op] : 0;

    /// <summary>Decodes one record; throws <see cref="FormatException"/> on a malformed record.</summary>
    public static KernelEvent Decode(ReadOnlySpan<byte> raw)
    {
        if (raw.Length < Wire.Header.Length)
            throw new FormatException($"record of {raw.Length} bytes is shorter than the event header");
        ulong ktime = U64(raw, Wire.Header.Ktime);
        switch ((Op)raw[Wire.Header.Op])
        {
            case Op.Exec:
                return DecodeExec(raw, ktime);
            case Op.Fork:
                raw = Need(raw, Wire.Fork.Length, "fork");
                return new ForkEvent(ktime, I32(raw, Wire.Fork.Pid), I32(raw, Wire.Fork.Ppid),
                    U64(raw, Wire.Fork.StartTime), U64(raw, Wire.Fork.ParentStartTime));
            case Op.Exit:
                raw = Need(raw, Wire.Exit.Length, "exit");
                return new ExitEvent(ktime, I32(raw, Wire.Exit.Pid), I32(raw, Wire.Exit.Tid),
                    U64(raw, Wire.Exit.StartTime), U32(raw, Wire.Exit.ExitCode));
            case Op.Tracepoint or Op.Sock or Op.Lsm or Op.Kprobe:
                return DecodePolicy(Need(raw, PolicyWire.Event.Data, "policy"), ktime);
            default:
                throw new FormatException($"unknown op code {raw[Wire.Header.Op]}");
        }
    }

    private static ExecEvent DecodeExec(ReadOnlySpan<byte> raw, ulong ktime)
    {
        raw = Need(raw, Wire.Exec.Data, "exec");
        int pathLen = U16(raw, Wire.Exec.PathLen), argsLen = U16(raw, Wire.Exec.ArgsLen), cwdLen = U16(raw, Wire.Exec.CwdLen);
        var data = raw[Wire.Exec.Data..];
        if (pathLen + argsLen + cwdLen > data.Length)
            throw new FormatException($"exec record: path {pathLen} + args {argsLen} + cwd {cwdLen} bytes exceed the {data.Length} sent");
        return new ExecEvent(
            ktime,
            I32(raw, Wire.Exec.Pid), I32(raw, Wire.Exec.Tid), I32(raw, Wire.Exec.Ppid),
            U64(raw, Wire.Exec.StartTime), U64(raw, Wire.Exec.ParentStartTime), U64(raw, Wire.Exec.CgroupId),
            new Credentials(U32(raw, Wire.Exec.Uid), U32(raw, Wire.Exec.Euid), U32(raw, Wire.Exec.Gid), U32(raw, Wire.Exec.Egid)),
            U32(raw, Wire.Exec.Auid),
            new Capabilities(U64(raw, Wire.Exec.CapPermitted), U64(raw, Wire.Exec.CapEffective), U64(raw, Wire.Exec.CapInheritable)),
            Utf8(data[..pathLen]),
            SplitArgs(data.Slice(pathLen, argsLen)),
            Utf8(data.Slice(pathLen + argsLen, cwdLen)),
            (Wire.ExecFlags)U32(raw, Wire.Exec.Flags));
    }

    /// <summary>A policy_event: the fixed part, then the strings of the hook's arguments back to back, then the
    /// strings the process passed for the path arguments that were resolved to something else.</summary>
    private static PolicyKernelEvent DecodePolicy(ReadOnlySpan<byte> raw, ulong ktime)
    {
        int n = Math.Min((int)raw[PolicyWire.Event.Nargs], Contract.MaxArgs);
        var ints = new ulong[n];
        var strings = new byte[n][];
        var data = raw[PolicyWire.Event.Data..];
        for (int i = 0; i < n; i++)
        {
            ints[i] = U64(raw, PolicyWire.Event.Ints + 8 * i);
            int len = U16(raw, PolicyWire.Event.StrLen + 2 * i);
            if (len > data.Length)
                throw new FormatException($"policy record: argument {i} of {len} bytes exceeds the {data.Length} sent");
            strings[i] = data[..len].ToArray();
            data = data[len..];
        }
        byte[][]? passed = null;
        for (int i = 0; i < n; i++)
        {
            int len = U16(raw, PolicyWire.Event.RawLen + 2 * i);
            if (len == 0) continue;
            if (len > data.Length)
                throw new FormatException($"policy record: passed string of argument {i} of {len} bytes exceeds the {data.Length} sent");
            passed ??= new byte[n][];
            passed[i] = data[..len].ToArray();
            data = data[len..];
        }
        return new PolicyKernelEvent(ktime, I32(raw, PolicyWire.Event.Pid), I32(raw, PolicyWire.Event.Tid),
            U32(raw, PolicyWire.Event.HookId), U32(raw, PolicyWire.Event.PolicyId), raw[PolicyWire.Event.Selector],
            (PolicyWire.EventFlags)raw[PolicyWire.Event.Flags], U32(raw, PolicyWire.Event.Actions), ints, strings, passed);
    }

    /// <summary>argv as the kernel lays it out: NUL-terminated strings back to back (the last may be cut).</summary>
    public static IReadOnlyList<string> SplitArgs(ReadOnlySpan<byte> args)
    {
        var list = new List<string>();
        while (!args.IsEmpty)
        {
            int nul = args.IndexOf((byte)0);
            if (nul < 0) { list.Add(Utf8(args)); break; }
            list.Add(Utf8(args[..nul]));
            args = args[(nul + 1)..];
        }
        return list;
    }

    private static ReadOnlySpan<byte> Need(ReadOnlySpan<byte> raw, int length, string what) =>
        raw.Length >= length ? raw : throw new FormatException($"{what} record of {raw.Length} bytes, need {length}");

    internal static string Utf8(ReadOnlySpan<byte> s)
    {
        int nul = s.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul >= 0 ? s[..nul] : s);
    }

    internal static ushort U16(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt16LittleEndian(s[o..]);
    internal static uint U32(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt32LittleEndian(s[o..]);
    internal static int I32(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadInt32LittleEndian(s[o..]);
    internal static ulong U64(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt64LittleEndian(s[o..]);
}
