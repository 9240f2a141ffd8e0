using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text;

namespace SecurityAgent.Events;

/// <summary>A ring-buffer record whose header and length were checked: its op says which view to read it as.
/// A view over the bytes, valid only while they are.</summary>
public readonly ref struct KernelRecord(Op op, ulong ktime, ReadOnlySpan<byte> raw)
{
    private readonly ReadOnlySpan<byte> _raw = raw;
    public Op Op { get; } = op;
    public ulong Ktime { get; } = ktime;

    public ExecEvent Exec
    {
        get
        {
            int pathLen = EventDecoder.U16(_raw, Wire.Exec.PathLen), argsLen = EventDecoder.U16(_raw, Wire.Exec.ArgsLen), cwdLen = EventDecoder.U16(_raw, Wire.Exec.CwdLen);
            var data = _raw[Wire.Exec.Data..];
            return new ExecEvent(_raw, Ktime, EventDecoder.UntilNul(data[..pathLen]), data.Slice(pathLen, argsLen),
                EventDecoder.UntilNul(data.Slice(pathLen + argsLen, cwdLen)), data.Slice(pathLen + argsLen + cwdLen, EventDecoder.U16(_raw, Wire.Exec.EnvLen)));
        }
    }

    public ForkEvent Fork => new(Ktime, EventDecoder.I32(_raw, Wire.Fork.Pid), EventDecoder.I32(_raw, Wire.Fork.Ppid),
        EventDecoder.U64(_raw, Wire.Fork.StartTime), EventDecoder.U64(_raw, Wire.Fork.ParentStartTime), EventDecoder.U32(_raw, Wire.Fork.Nspid),
        (Wire.ExecFlags)EventDecoder.U32(_raw, Wire.Fork.Flags));

    public ExitEvent Exit => new(Ktime, EventDecoder.I32(_raw, Wire.Exit.Pid), EventDecoder.I32(_raw, Wire.Exit.Tid),
        EventDecoder.U64(_raw, Wire.Exit.StartTime), EventDecoder.U32(_raw, Wire.Exit.ExitCode));

    public LoaderEvent Loader => new(Ktime, EventDecoder.I32(_raw, Wire.Loader.Pid), EventDecoder.I32(_raw, Wire.Loader.Tid),
        EventDecoder.U64(_raw, Wire.Loader.Dev), EventDecoder.U64(_raw, Wire.Loader.Ino), (long)EventDecoder.U64(_raw, Wire.Loader.Mtime),
        _raw.Slice(Wire.Loader.Data, EventDecoder.U16(_raw, Wire.Loader.PathLen)), _raw[Wire.Loader.Truncated] != 0);

    public DataChunk Data => new(EventDecoder.I32(_raw, Wire.DataChunk.Tid), _raw[Wire.DataChunk.Arg], EventDecoder.U32(_raw, Wire.DataChunk.Total),
        EventDecoder.U32(_raw, Wire.DataChunk.Off), _raw[Wire.DataChunk.Data..]);

    /// <summary>Throws <see cref="FormatException"/> on a malformed policy record.</summary>
    public PolicyKernelEvent Policy => EventDecoder.DecodePolicy(_raw, Ktime);
}

/// <summary>Reads raw ring-buffer records. Pure functions over spans: nothing is allocated to decode lifecycle
/// records; strings are made only by the stage that keeps them.</summary>
public static class EventDecoder
{
    /// <summary>Checks one record's header and lengths; throws <see cref="FormatException"/> on a malformed record.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static KernelRecord Decode(ReadOnlySpan<byte> raw)
    {
        if (raw.Length < Wire.Header.Length)
            throw new FormatException($"record of {raw.Length} bytes is shorter than the event header");
        ulong ktime = U64(raw, Wire.Header.Ktime);
        var op = (Op)raw[Wire.Header.Op];
        switch (op)
        {
            case Op.Exec:
                raw = Need(raw, Wire.Exec.Data, "exec");
                int pathLen = U16(raw, Wire.Exec.PathLen), argsLen = U16(raw, Wire.Exec.ArgsLen), cwdLen = U16(raw, Wire.Exec.CwdLen), envLen = U16(raw, Wire.Exec.EnvLen);
                if (pathLen + argsLen + cwdLen + envLen > raw.Length - Wire.Exec.Data)
                    throw new FormatException($"exec record: path {pathLen} + args {argsLen} + cwd {cwdLen} + env {envLen} bytes exceed the {raw.Length - Wire.Exec.Data} sent");
                break;
            case Op.Fork:
                raw = Need(raw, Wire.Fork.Length, "fork");
                break;
            case Op.Exit:
                raw = Need(raw, Wire.Exit.Length, "exit");
                break;
            case Op.Loader:
                raw = Need(raw, Wire.Loader.Data, "loader");
                if (U16(raw, Wire.Loader.PathLen) > raw.Length - Wire.Loader.Data)
                    throw new FormatException($"loader record: path of {U16(raw, Wire.Loader.PathLen)} bytes exceeds the {raw.Length - Wire.Loader.Data} sent");
                break;
            case Op.Data:
                raw = Need(raw, Wire.DataChunk.Data, "data");
                uint total = U32(raw, Wire.DataChunk.Total), off = U32(raw, Wire.DataChunk.Off);
                if (total > Contract.MaxdataBytes || off > total || raw.Length - Wire.DataChunk.Data > total - off || raw[Wire.DataChunk.Arg] >= Contract.MaxArgs)
                    throw new FormatException($"data record: {raw.Length - Wire.DataChunk.Data} bytes at {off} of {total} (argument {raw[Wire.DataChunk.Arg]})");
                break;
            case Op.Tracepoint or Op.Sock or Op.Lsm or Op.Kprobe or Op.Uprobe or Op.Usdt or Op.RawTp or Op.IoUring:
                raw = Need(raw, PolicyWire.Event.Data, "policy");
                break;
            default:
                throw new FormatException($"unknown op code {raw[Wire.Header.Op]}");
        }
        return new KernelRecord(op, ktime, raw);
    }

    /// <summary>A policy_event: the fixed part, then the strings of the hook's arguments back to back, then the
    /// strings the process passed for the path arguments that were resolved to something else.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static PolicyKernelEvent DecodePolicy(ReadOnlySpan<byte> raw, ulong ktime)
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
        byte[]?[]? passed = null;
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
        var flags = (PolicyWire.EventFlags)raw[PolicyWire.Event.Flags];
        int hostLen = U16(raw, PolicyWire.Event.HostLen), hostArg = raw[PolicyWire.Event.HostArg];
        if (hostLen > data.Length || (hostLen > 0 && hostArg >= n))
            throw new FormatException($"policy record: host path of argument {hostArg} of {hostLen} bytes, {data.Length} sent for {n} arguments");
        var host = data[..hostLen];
        data = data[hostLen..];
        // The stacks (kernelStackTrace / userStackTrace), at their fixed places in data; a returned sock follows them.
        int kl = U16(raw, PolicyWire.Event.KstackLen), ul = U16(raw, PolicyWire.Event.UstackLen);
        ulong[]? kstack = null, ustack = null;
        if (kl + ul > 0)
        {
            var all = raw[PolicyWire.Event.Data..];
            if (kl % 8 != 0 || ul % 8 != 0 || kl > Contract.ExtrasStackSlot || ul > Contract.ExtrasStackSlot || Contract.ExtrasUstackAt + ul > all.Length)
                throw new FormatException($"policy record: stacks of {kl} + {ul} bytes exceed the {all.Length} sent");
            kstack = Stack(all.Slice(Contract.ExtrasKstackAt, kl));
            ustack = Stack(all.Slice(Contract.ExtrasUstackAt, ul));
            data = all[(Contract.ExtrasUstackAt + ul)..];
        }
        return new PolicyKernelEvent(ktime, I32(raw, PolicyWire.Event.Pid), I32(raw, PolicyWire.Event.Tid),
            U32(raw, PolicyWire.Event.HookId), U32(raw, PolicyWire.Event.PolicyId), raw[PolicyWire.Event.Selector],
            flags, U32(raw, PolicyWire.Event.Actions), ints, strings, passed)
        {
            Return = (long)U64(raw, PolicyWire.Event.Ret), ReturnActions = U32(raw, PolicyWire.Event.RetActions),
            HostArg = hostLen > 0 ? hostArg : -1, Host = hostLen > 0 ? host.ToArray() : null,
            ReturnData = flags.HasFlag(PolicyWire.EventFlags.Return) && !data.IsEmpty ? data.ToArray() : null,
            KernelStack = kstack, UserStack = ustack,
            IoUring = raw[Wire.Header.Op] == (byte)Op.IoUring,
            NoteSeq = U64(raw, PolicyWire.Event.NoteSeq),
            ImaHash = ((Policies.Actions)U32(raw, PolicyWire.Event.Actions)).HasFlag(Policies.Actions.ImaHash) && data.Length >= Contract.ImaHashMax
                ? ImaHashText((long)U64(raw, PolicyWire.Event.Ret), data[^Contract.ImaHashMax..]) : null,
        };
    }

    /// <summary>bpf_ima_file_hash's result as Tetragon writes ima_hash: the algorithm (enum hash_algo) and the digest's
    /// hex; other algorithms and errors (negative) give none, as in Tetragon.</summary>
    public static string? ImaHashText(long algo, ReadOnlySpan<byte> digest)
    {
        var (name, length) = algo switch
        {
            1 => ("md5", 16),
            2 => ("sha1", 20),
            4 => ("sha256", 32),
            6 => ("sha512", 64),
            13 => ("wp512", 64),
            17 => ("sm3", 32),
            _ => (null, 0),
        };
        return name is null || digest.Length < length ? null : name + ":" + Convert.ToHexStringLower(digest[..length]);
    }

    private static ulong[]? Stack(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty) return null;
        var frames = new ulong[bytes.Length / 8];
        for (int i = 0; i < frames.Length; i++)
            frames[i] = BinaryPrimitives.ReadUInt64LittleEndian(bytes[(8 * i)..]);
        return frames;
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

    /// <summary>envp as the kernel lays it out, as Tetragon's EnvVars (split at the first '='), keeping only the names
    /// in <paramref name="filter"/> when there is one. When the kernel cut the environment, the cut (last) variable is
    /// left out rather than shown with a wrong value.</summary>
    public static IReadOnlyList<EnvVar> SplitEnvironment(ReadOnlySpan<byte> env, bool truncated, IReadOnlySet<string>? filter)
    {
        if (truncated)
        {
            int lastNul = env.LastIndexOf((byte)0);
            env = lastNul >= 0 ? env[..(lastNul + 1)] : default;
        }
        var list = new List<EnvVar>();
        while (!env.IsEmpty)
        {
            int nul = env.IndexOf((byte)0);
            var item = nul >= 0 ? env[..nul] : env;
            env = nul >= 0 ? env[(nul + 1)..] : default;
            if (item.IsEmpty) continue;
            int eq = item.IndexOf((byte)'=');
            string key = eq >= 0 ? Encoding.UTF8.GetString(item[..eq]) : "invalid";
            if (filter is not null && (eq < 0 || !filter.Contains(key))) continue;
            list.Add(new EnvVar(key, Encoding.UTF8.GetString(eq >= 0 ? item[(eq + 1)..] : item)));
        }
        return list;
    }

    private static ReadOnlySpan<byte> Need(ReadOnlySpan<byte> raw, int length, string what) =>
        raw.Length >= length ? raw : throw new FormatException($"{what} record of {raw.Length} bytes, need {length}");

    internal static ReadOnlySpan<byte> UntilNul(ReadOnlySpan<byte> s)
    {
        int nul = s.IndexOf((byte)0);
        return nul >= 0 ? s[..nul] : s;
    }

    internal static string Utf8(ReadOnlySpan<byte> s) => Encoding.UTF8.GetString(UntilNul(s));

    internal static ushort U16(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt16LittleEndian(s[o..]);
    internal static uint U32(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt32LittleEndian(s[o..]);
    internal static int I32(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadInt32LittleEndian(s[o..]);
    internal static ulong U64(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt64LittleEndian(s[o..]);
}
