namespace SecurityAgent.Policies;

/// <summary>What kind of value a policy argument type holds: decides which matchArgs operators apply.</summary>
internal enum ArgClass { None, String, Int, Sock, Syscall64, Cred }

/// <summary>A hook argument as the policy declares it, its class, and (when the layout is known) its place in the
/// kernel record. A skipped argument (Tetragon's `nop`) keeps its index but is neither read nor reported.</summary>
internal sealed record ArgInfo(ArgSpec Spec, ArgClass Class, ArgPlan? Plan, bool Skipped = false)
{
    public bool Complete => Plan is not null || Skipped;
}

/// <summary>Argument layout: each declared argument → the kernel record slot, type and offset it is read from.</summary>
internal static class ArgumentLayout
{
    public const int MaxArgs = Events.Contract.MaxArgs;

    private static readonly HashSet<string> StringTypes = ["string", "char_buf", "char_iovec", "file", "path", "filename", "linux_binprm", "dentry", "data_loc"];
    private static readonly HashSet<string> IntTypes = ["int", "uint", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "sint8", "sint16", "sint32", "sint64", "s8", "u8", "s16", "u16", "s32", "u32", "s64", "u64", "size_t", "long", "ulong", "auto", "fd", "bpf_cmd"];
    private static readonly HashSet<string> SockTypes = ["sockaddr", "sockaddr_un", "sock", "socket", "skb"];

    /// <summary>Tetragon's types that read a kernel object through a function argument, with what the event carries of it
    /// (KernelObjectArgs, PolicyArgs); the types not in <see cref="KernelObjectReads"/> are refused as engine gaps.</summary>
    private static readonly Dictionary<string, string> KernelObjectTypes = new()
    {
        ["sock"] = "sock_arg: family, type, protocol, mark, priority, saddr, daddr, sport, dport, cookie, state",
        ["socket"] = "sock_arg of the socket's sock: family, type, protocol, mark, priority, saddr, daddr, sport, dport, cookie, state",
        ["skb"] = "skb_arg: hash, len, priority, mark, saddr, daddr, sport, dport, proto, protocol, family",
        ["cred"] = "process_credentials_arg: uid, gid, euid, egid, suid, sgid, fsuid, fsgid, securebits, caps (permitted, effective, inheritable), user_ns",
        ["bpf_attr"] = "bpf_attr_arg: ProgType, InsnCnt, ProgName (of a BPF_PROG_LOAD)",
        ["perf_event"] = "perf_event_arg: KprobeFunc, Type, Config, ProbeOffset",
        ["bpf_map"] = "bpf_map_arg: MapType, KeySize, ValueSize, MaxEntries, MapName",
        ["bpf_prog"] = "bpf_prog_arg: ProgType, InsnCnt, ProgName",
        ["user_namespace"] = "user_ns_arg: level, uid and gid of the owner, ns (inum, is_host)",
        ["capability"] = "capability_arg: value and name (CAP_SYS_ADMIN)",
        ["kernel_cap_t"] = "kernel_cap_t_arg: the set as 16 hex digits", ["cap_inheritable"] = "cap_inheritable_arg: the set as 16 hex digits",
        ["cap_permitted"] = "cap_permitted_arg: the set as 16 hex digits", ["cap_effective"] = "cap_effective_arg: the set as 16 hex digits",
        ["kiocb"] = "file_arg of the iocb's file: path, flags, permission", ["iov_iter"] = "bytes of the iterator's buffers",
        ["load_info"] = "module_arg: the name of the module being loaded", ["module"] = "module_arg: the module's name",
        ["sockaddr_un"] = "sockaddr of a unix socket: its path", ["const_buf"] = "bytes of a fixed-size buffer",
        ["net_device"] = "net_dev_arg: the device's name", ["dentry"] = "path_arg: the dentry's name (its last component)", ["char_iovec"] = "bytes of the iovec's buffers",
    };

    /// <summary>What an argument of a kernel-object type (or bpf_cmd) is emitted as, for --explain; null for other types.</summary>
    public static string? Emits(string type) =>
        type == "bpf_cmd" ? "bpf_cmd_arg: the command's name (BPF_PROG_LOAD)" : KernelObjectReads.ContainsKey(type) ? KernelObjectTypes[type] : null;

    /// <summary>The kernel object types the engine reads (bpf/include/kobjects.h): how, and the bytes of the slot.</summary>
    private static readonly Dictionary<string, (ArgType, int)> KernelObjectReads = new()
    {
        ["sock"] = (ArgType.Sock, 8), ["socket"] = (ArgType.Socket, 8), ["skb"] = (ArgType.Skb, 8),
        ["cred"] = (ArgType.Cred, 8), ["user_namespace"] = (ArgType.UserNs, 8),
        ["kernel_cap_t"] = (ArgType.Caps, 8), ["cap_inheritable"] = (ArgType.Caps, 8), ["cap_permitted"] = (ArgType.Caps, 8), ["cap_effective"] = (ArgType.Caps, 8),
        ["capability"] = (ArgType.Int, 4),
        ["net_device"] = (ArgType.NetDev, 8), ["dentry"] = (ArgType.Dentry, 8), ["kiocb"] = (ArgType.Kiocb, 8),
        ["module"] = (ArgType.Module, 8), ["load_info"] = (ArgType.LoadInfo, 8),
        ["bpf_attr"] = (ArgType.BpfAttr, 8), ["bpf_map"] = (ArgType.BpfMap, 8), ["perf_event"] = (ArgType.PerfEvent, 8),
        ["bpf_prog"] = (ArgType.BpfProg, 8),
    };

    /// <summary>Kernel object types compared as integers (capability sets as masks, a capability as its number) or as
    /// strings (a device's name).</summary>
    private static readonly HashSet<string> IntObjectTypes = ["kernel_cap_t", "cap_inheritable", "cap_permitted", "cap_effective", "capability"];

    public static ArgClass Class(string type) =>
        StringTypes.Contains(type) || type == "net_device" ? ArgClass.String : IntTypes.Contains(type) || IntObjectTypes.Contains(type) ? ArgClass.Int : SockTypes.Contains(type) ? ArgClass.Sock
        : type == "syscall64" ? ArgClass.Syscall64 : type == "cred" ? ArgClass.Cred : ArgClass.None;

    /// <param name="btf">The kernel BTF resolve: paths are followed in; null when judging for another kernel (the
    /// paths are then followed in the node's BTF when the policy loads there).</param>
    public static List<ArgInfo> Layout(HookSpec hook, Placement? placement, DiagnosticBag d, Func<KernelBtf?>? btf = null)
    {
        var infos = new List<ArgInfo>();
        if (hook.Args.Count > MaxArgs)
            d.Error(hook.Args[MaxArgs].Pos, hook.Args[MaxArgs].Path, $"{hook.Args.Count} arguments, at most {MaxArgs} per hook");
        var seen = new HashSet<(int, string)>();
        int slot = 0;
        foreach (var a in hook.Args.Take(MaxArgs))
        {
            var type = a.Type.Value;
            // One argument may be read twice through different resolve: paths (as Tetragon's examples do).
            if (!seen.Add((a.Index.Value, a.Resolve?.Value ?? "")))
                d.Error(a.Index.Pos, a.Index.Path, $"argument index {a.Index.Value} is listed twice" + (a.Resolve is null ? "" : " with the same resolve"));
            Modifiers(a, placement, d);
            // Tetragon's socket_connect(struct socket *sock, struct sockaddr *address, int addrlen): the socket is
            // declared by Tetragon-style policies; its fields are not read here, and the event says so.
            if (type == "nop" || placement is { Mechanism: Kernel.Mechanism.CgroupSockAddr } && a.Index.Value == 0 && type is "socket" or "sock")
            {
                if (type != "nop")
                    d.Warning(a.Type.Pos, a.Type.Path, $"the socket (index 0) is not read on {placement!.Describe}: events carry the destination (index 1) only");
                infos.Add(new ArgInfo(a, Class(type), null, Skipped: true));
                continue;
            }
            ArgPlan? plan = null;
            if (type == "pointer")
                d.Error(a.Type.Pos, a.Type.Path, $"unsupported: '{type}' is not an argument type Tetragon defines");
            else if (placement is { FieldsKnown: true })
                plan = placement.Field is null ? placement.UserSpace || placement.SyscallRegisters ? UserArg(a, slot, placement, d) : FunctionArg(a, slot, placement, d) : RecordArg(a, slot, placement, d);
            if (plan is not null && a.Resolve is { Value.Length: > 0 } r && Resolves(placement))
                plan = ResolvedArg(plan, a, r, placement!, btf, d);
            if (plan is not null) slot++;
            infos.Add(new ArgInfo(a, Class(type), plan));
        }
        // A buffer read at return is the event's only data: the kernel writes it at the start of the record.
        if (infos.FirstOrDefault(i => i.Plan?.KernelType == ArgType.BufRet) is { } copy
            && infos.FirstOrDefault(i => i != copy && i.Plan is { KernelType: not (ArgType.Int or ArgType.UInt or ArgType.Fd or ArgType.Syscall64) }) is { } other)
            d.EngineGap(other.Spec.Type.Pos, other.Spec.Type.Path, $"a '{other.Spec.Type.Value}' argument beside a returnCopy buffer (the other arguments of such a hook are integers here)");
        return infos;
    }

    /// <summary>A return probe's returnArg where the placement reads the return value (a syscall's exit tracepoint: the
    /// `long ret` field; a kernel function's kretprobe: the return register). A syscall returns an integer; a kernel
    /// function an integer or a struct sock * (read as sock_arg, the one pointer returnArgAction tracks). The returnArg
    /// type says how it is compared and rendered.</summary>
    public static ReturnPlan? ReturnArg(HookSpec hook, Placement? placement, DiagnosticBag d)
    {
        if (hook is not KprobeSpec { Return.Value: true, ReturnArg: { } ra } k || placement?.ReturnTracepoint is not { } tp)
            return null;
        var type = ra.Type.Value;
        bool function = placement.Syscall is null;
        var (kt, size) = function && type == "sock" ? (ArgType.Sock, 8)
            : Class(type) == ArgClass.Int && type is not ("capability" or "kernel_cap_t" or "cap_inheritable" or "cap_permitted" or "cap_effective")
            ? KernelType(type, new TracepointField("ret", "long", 0, 8, true)) : (ArgType.None, 0);
        if (kt == ArgType.None)
        {
            d.Error(ra.Type.Pos, ra.Type.Path, function
                ? $"returnArg type '{PolicyValues.Shorten(type)}' on {placement.Describe}: a kernel function's return value is read here as an integer (int, long, size_t, uint64, fd, ...) or a sock"
                : $"returnArg type '{PolicyValues.Shorten(type)}': syscall {placement.Syscall} returns an integer (long); use int, long, size_t, uint64 or fd");
            return null;
        }
        var track = k.ReturnArgAction?.Value switch { "TrackSock" => Actions.TrackSock, "UntrackSock" => Actions.UntrackSock, _ => Actions.None };
        if (track != Actions.None && kt != ArgType.Sock && function) // a syscall: refused by the placement
            d.Error(k.ReturnArgAction!.Pos, k.ReturnArgAction.Path, $"returnArgAction {k.ReturnArgAction.Value} takes the struct sock * the function returns: it needs returnArg type sock, not '{PolicyValues.Shorten(type)}'");
        return new ReturnPlan(type, kt, size, ra.Label, tp) { ArgAction = track };
    }

    /// <summary>sizeArgIndex, returnCopy, maxData and resolve: checked as Tetragon does, and what the engine does
    /// not carry reported (never ignored: each changes what the event holds).</summary>
    private static void Modifiers(ArgSpec a, Placement? placement, DiagnosticBag d)
    {
        bool buffer = a.Type.Value is "char_buf" or "char_iovec";
        // A syscall's char_buf on its tracepoint: the record has the pointer and the count (or the return value).
        bool syscallBuffer = a.Type.Value == "char_buf" && placement is { RawSyscallStrings: true, Field: not null };
        // A kernel function's char_buf (kprobe): the count is another register argument.
        bool functionBuffer = a.Type.Value == "char_buf" && placement is { Kind: HookKind.Kprobe, Mechanism: Kernel.Mechanism.Kprobe, Field: null, SyscallRegisters: false };
        if (a.SizeArgIndex is { Value: > 0 } size)
        {
            if (!buffer)
                d.Error(size.Pos, size.Path, $"sizeArgIndex applies to char_buf and char_iovec arguments, not '{a.Type.Value}'");
            else if (size.Value > 15)
                d.Error(size.Pos, size.Path, $"sizeArgIndex {size.Value} is out of range: it names argument sizeArgIndex-1 (1..15, as Tetragon counts)");
            else if (functionBuffer && size.Value - 1 >= Events.Contract.MaxFnArgs)
                d.Error(size.Pos, size.Path, $"sizeArgIndex {size.Value} names argument {size.Value - 1}; only the first {Events.Contract.MaxFnArgs} function arguments can be read (sizeArgIndex 1..{Events.Contract.MaxFnArgs})");
            else if (!syscallBuffer && !functionBuffer && placement is not null)
                d.EngineGap(size.Pos, size.Path, $"sizeArgIndex (exactly the byte count in argument {size.Value - 1}, reported as bytes_arg) on {placement?.Describe ?? "this hook"} (syscall and kernel-function char_buf arguments have it)");
            else if (syscallBuffer && placement!.Field!(size.Value - 1) is null)
                d.Error(size.Pos, size.Path, $"sizeArgIndex {size.Value} names argument {size.Value - 1}, and syscall {placement.Syscall} has {placement.FieldCount} (0..{placement.FieldCount - 1})");
        }
        if (a.ReturnCopy is { Value: true } rc)
        {
            if (!buffer)
                d.Error(rc.Pos, rc.Path, $"returnCopy applies to char_buf and char_iovec arguments, not '{a.Type.Value}'");
            else if (!syscallBuffer || placement!.ReturnTracepoint is null)
                d.EngineGap(rc.Pos, rc.Path, "returnCopy (the buffer read when the call returns) " + (syscallBuffer
                    ? "without a return probe: it needs return: true and a returnArg, as in Tetragon" : $"on {placement?.Describe ?? "this hook"} (syscall char_buf arguments of a return probe have it)"));
        }
        if (a.MaxData is { Value: true } md)
        {
            // Tetragon: up to 327360 bytes of a char_buf or iov_iter read in chunks (4096 without maxData), not with returnCopy.
            // Here: the buffer in data records joined to the event (ArgType.BufMax / IovIterMax, bpf/include/maxdata.h).
            bool iovIter = a.Type.Value == "iov_iter" && placement is { Mechanism: Kernel.Mechanism.Kprobe, Field: null, SyscallRegisters: false };
            bool sized = (syscallBuffer || functionBuffer) && a.SizeArgIndex is { Value: > 0 };
            if (a.Type.Value is not ("char_buf" or "char_iovec" or "iov_iter"))
                d.Warning(md.Pos, md.Path, $"maxData has no effect on type '{a.Type.Value}' (Tetragon reads it for char_buf and iov_iter buffers)");
            else if (a.ReturnCopy?.Value == true)
                d.Error(md.Pos, md.Path, "maxData does not work with returnCopy (as in Tetragon): drop one of them");
            else if (!iovIter && !sized)
                d.EngineGap(md.Pos, md.Path, $"maxData on a '{a.Type.Value}' read as a string on {placement?.Describe ?? "this hook"} (buffers read as bytes: char_buf with sizeArgIndex, iov_iter on kprobes)");
        }
        if (a.Resolve is { Value.Length: > 0 } r && placement is not null && !Resolves(placement))
        {
            if (placement is { Field: not null } or { SyscallRegisters: true })
                d.Error(r.Pos, r.Path, $"resolve follows the fields of a kernel pointer argument, which {placement.Describe} does not pass (a kprobe, LSM hook or raw tracepoint does)");
            else
                d.EngineGap(r.Pos, r.Path, $"resolve '{PolicyValues.Shorten(r.Value)}' on {placement?.Describe ?? "this hook"} (kernel functions, LSM hooks and raw tracepoints have it; a uprobe's btfPath is not read)");
        }
    }

    /// <summary>A buffer read as bytes, with maxData: beyond the event's bytes, whole (up to 327,360) in data records.</summary>
    private static ArgType MaxData(ArgSpec a, ArgType plain) => a.MaxData?.Value != true || a.ReturnCopy?.Value == true ? plain
        : plain == ArgType.IovIter ? ArgType.IovIterMax : ArgType.BufMax;

    /// <summary>Whether the placement passes kernel function arguments, which resolve: follows.</summary>
    private static bool Resolves(Placement? p) => p is { Field: null, UserSpace: false, SyscallRegisters: false, Mechanism: Kernel.Mechanism.Kprobe or Kernel.Mechanism.Lsm or Kernel.Mechanism.Fentry or Kernel.Mechanism.RawTracepoint };

    /// <summary>Tetragon's resolve: the argument's BTF type (the function's, the LSM hook's, the raw tracepoint's
    /// prototype) followed through the field path; the leaf is read as the argument's type.</summary>
    private static ArgPlan? ResolvedArg(ArgPlan plan, ArgSpec a, Located<string> r, Placement p, Func<KernelBtf?>? btf, DiagnosticBag d)
    {
        if (plan.KernelType is ArgType.Buf or ArgType.IovIter)
        {
            d.EngineGap(r.Pos, r.Path, $"resolve on a '{a.Type.Value}' read as a buffer (sizeArgIndex, iov_iter)");
            return null;
        }
        if (btf is null)
            return plan with { Resolve = new ResolvePlan(r.Value, "", null, "") };
        var kernel = btf();
        if (kernel is null)
        {
            d.Error(r.Pos, r.Path, $"resolve needs the kernel's BTF ({KernelBtf.VmlinuxPath}), which this kernel does not expose");
            return null;
        }
        bool raw = p.Mechanism == Kernel.Mechanism.RawTracepoint;
        int? type = kernel.ArgumentType(raw ? p.Target : p.Kind == HookKind.LsmHook ? "bpf_lsm_" + p.Name : p.Name, a.Index.Value, raw, out var why);
        if (type is null && p.Kind == HookKind.LsmHook)
            type = kernel.ArgumentType("security_" + p.Name, a.Index.Value, false, out _);
        if (type is null)
        {
            d.Error(a.Index.Pos, a.Index.Path, $"resolve '{PolicyValues.Shorten(r.Value)}': {why}");
            return null;
        }
        if (kernel.Resolve(type.Value, r.Value, out why) is not { } path)
        {
            d.Error(r.Pos, r.Path, $"resolve '{PolicyValues.Shorten(r.Value)}' from argument {a.Index.Value} ({kernel.Describe(type.Value)}): {why}");
            return null;
        }
        if (KernelBtf.Mismatch(a.Type.Value, path.Leaf) is { } bad)
        {
            d.Error(a.Type.Pos, a.Type.Path, $"resolve '{PolicyValues.Shorten(r.Value)}' ends at a {path.Leaf}: {bad}");
            return null;
        }
        return plan with { Resolve = path };
    }

    /// <summary>An argument read from a record field (tracepoint, syscall kprobe on its tracepoint, cgroup connect).</summary>
    private static ArgPlan? RecordArg(ArgSpec a, int slot, Placement p, DiagnosticBag d)
    {
        var f = p.Field!(a.Index.Value);
        if (f is null)
        {
            d.Error(a.Index.Pos, a.Index.Path, p.Kind switch
            {
                HookKind.Tracepoint => $"no argument {a.Index.Value} at this hook: tracepoint {p.Name} has {p.FieldCount} fields (index 0..{p.FieldCount - 1}, the common fields included)",
                HookKind.Kprobe => $"no argument {a.Index.Value} at this hook: syscall {p.Syscall} has {p.FieldCount} arguments (index 0..{p.FieldCount - 1})",
                _ => $"no argument {a.Index.Value} at this hook: {p.Describe} reads the destination as index 1 (type sockaddr); index 0 is the socket (type socket, not read)",
            });
            return null;
        }
        var (kernelType, size) = KernelType(a.Type.Value, f);
        if (a.Type.Value == "char_buf" && kernelType == ArgType.String && p.RawSyscallStrings)
        {
            // Exactly the bytes: the count from another argument (sizeArgIndex) or the return value (returnCopy);
            // the point argument's size byte holds the count's record offset.
            if (a.ReturnCopy?.Value == true && p.ReturnTracepoint is not null)
                return new ArgPlan(slot, a.Index.Value, a.Type.Value, ArgType.BufRet, f.Offset, 8, a.Label);
            if (a.SizeArgIndex is { Value: > 0 and <= 15 } sz && p.Field!(sz.Value - 1) is { } count)
                return new ArgPlan(slot, a.Index.Value, a.Type.Value, MaxData(a, ArgType.Buf), f.Offset, count.Offset, a.Label);
        }
        if (a.Type.Value == "data_loc")
        {
            d.EngineGap(a.Type.Pos, a.Type.Path, $"argument type 'data_loc' (the tracepoint's dynamic string '{f.Name}')");
            return new ArgPlan(slot, a.Index.Value, "data_loc", ArgType.None, f.Offset, 4, a.Label);
        }
        if (KernelObjectTypes.ContainsKey(a.Type.Value))
        {
            d.Error(a.Type.Pos, a.Type.Path, $"type '{a.Type.Value}' reads a kernel object through a function argument; {p.Describe} passes '{f.CType} {f.Name}' (use a kprobe, LSM hook or raw tracepoint)");
            return null;
        }
        if (kernelType == ArgType.None)
        {
            d.Error(a.Type.Pos, a.Type.Path, $"unsupported: type '{a.Type.Value}' for '{f.CType} {f.Name}' at this hook");
            return null;
        }
        return new ArgPlan(slot, a.Index.Value, a.Type.Value, kernelType, f.Offset, size, a.Label);
    }

    /// <summary>An argument of a kernel function (LSM hook, kprobe): Offset is the argument number.</summary>
    private static ArgPlan? FunctionArg(ArgSpec a, int slot, Placement p, DiagnosticBag d)
    {
        var type = a.Type.Value;
        // Exactly the count's bytes (sizeArgIndex names the count's argument, 1-based): Size holds its index.
        if (type == "char_buf" && p.Mechanism == Kernel.Mechanism.Kprobe && a.SizeArgIndex is { Value: > 0 } sz && sz.Value - 1 < Events.Contract.MaxFnArgs
            && a.Index.Value < Events.Contract.MaxFnArgs)
            return new ArgPlan(slot, a.Index.Value, type, MaxData(a, ArgType.Buf), a.Index.Value, sz.Value - 1, a.Label);
        if (a.Index.Value >= Events.Contract.MaxFnArgs)
        {
            d.Error(a.Index.Pos, a.Index.Path, $"only the first {Events.Contract.MaxFnArgs} function arguments can be read (index 0..{Events.Contract.MaxFnArgs - 1})");
            return null;
        }
        // An iov_iter's user data (bpf/include/args.h): on kprobes, whose objects have the stack for a buffer read.
        if (type == "iov_iter" && p is { Mechanism: Kernel.Mechanism.Kprobe, SyscallRegisters: false })
            return new ArgPlan(slot, a.Index.Value, type, MaxData(a, ArgType.IovIter), a.Index.Value, 8, a.Label);
        if (!KernelObjectReads.ContainsKey(type) && KernelObjectTypes.TryGetValue(type, out var what))
        {
            d.EngineGap(a.Type.Pos, a.Type.Path, $"argument type '{type}' ({what})");
            return new ArgPlan(slot, a.Index.Value, type, ArgType.None, a.Index.Value, 8, a.Label);
        }
        var (kt, size) = type switch
        {
            _ when KernelObjectReads.TryGetValue(type, out var read) => read,
            "file" => (ArgType.File, 8),
            "path" => (ArgType.Path, 8),
            "linux_binprm" => (ArgType.Bprm, 8),
            "sockaddr" => (ArgType.KSockAddr, 8),
            "string" or "char_buf" or "filename" => (ArgType.KString, 8),
            _ => KernelType(type, new TracepointField("arg", "long", 0, 8, true)),
        };
        if (kt is ArgType.None or ArgType.String or ArgType.SockAddr)
        {
            d.Error(a.Type.Pos, a.Type.Path, $"unsupported: type '{type}' for a kernel function argument");
            return null;
        }
        return new ArgPlan(slot, a.Index.Value, type, kt, a.Index.Value, size, a.Label);
    }

    /// <summary>An argument of a user-space function (uprobe: the registers of the calling convention) or of a USDT
    /// probe (its note's argument spec): integers, and strings and sockaddrs in the process's memory.</summary>
    private static ArgPlan? UserArg(ArgSpec a, int slot, Placement p, DiagnosticBag d)
    {
        var type = a.Type.Value;
        if (p.SyscallRegisters && a.Index.Value >= p.FieldCount)
        {
            d.Error(a.Index.Pos, a.Index.Path, $"no argument {a.Index.Value} at this hook: syscall {p.Syscall} has {p.FieldCount} arguments (index 0..{p.FieldCount - 1})");
            return null;
        }
        if (a.Index.Value >= Events.Contract.MaxFnArgs)
        {
            d.Error(a.Index.Pos, a.Index.Path, $"only the first {Events.Contract.MaxFnArgs} arguments of a {(p.Kind == HookKind.Usdt ? "usdt" : p.SyscallRegisters ? "syscall kprobe" : "uprobe")} can be read (index 0..{Events.Contract.MaxFnArgs - 1})");
            return null;
        }
        var (kt, size) = KernelType(type, new TracepointField("arg", "long", 0, 8, true));
        if (type is "string" or "char_buf" or "filename")
            (kt, size) = (ArgType.String, 8);
        else if (type == "sockaddr")
            (kt, size) = (ArgType.SockAddr, 8);
        if (kt == ArgType.None)
        {
            d.Error(a.Type.Pos, a.Type.Path, $"unsupported: type '{type}' for a user-space argument of {p.Describe} (integers, string, char_buf, sockaddr)");
            return null;
        }
        return new ArgPlan(slot, a.Index.Value, type, kt, a.Index.Value, size, a.Label);
    }

    /// <summary>How the kernel reads a policy type from a record field.</summary>
    internal static (ArgType, int) KernelType(string type, TracepointField f)
    {
        bool pointer = f.CType.Contains('*') || f.Size == 8 && f.CType.Contains("long");
        return type switch
        {
            "int" or "int32" or "s32" or "sint32" => (ArgType.Int, 4),
            "int8" or "s8" or "sint8" => (ArgType.Int, 1),
            "int16" or "s16" or "sint16" => (ArgType.Int, 2),
            "int64" or "s64" or "sint64" or "long" => (ArgType.Int, 8),
            "uint" or "uint32" or "u32" => (ArgType.UInt, 4),
            "uint8" or "u8" => (ArgType.UInt, 1),
            "uint16" or "u16" => (ArgType.UInt, 2),
            "uint64" or "u64" or "size_t" or "ulong" => (ArgType.UInt, 8),
            "syscall64" => (ArgType.Syscall64, 8),
            "auto" => f.Signed ? (ArgType.Int, Math.Clamp(f.Size, 1, 8)) : (ArgType.UInt, Math.Clamp(f.Size, 1, 8)),
            "fd" => (ArgType.Fd, 4),
            "bpf_cmd" => (ArgType.Int, 4), // Tetragon's user-space type: an int, emitted as the BpfCmd name
            "string" or "filename" or "char_buf" when pointer => (ArgType.String, 8),
            "sockaddr" when pointer => (ArgType.SockAddr, 8),
            _ => (ArgType.None, 0),
        };
    }

    /// <summary>The argument a matchArgs entry refers to, by the one rule: `args: [N]` names the N-th entry of the hook's
    /// args; `index` names the argument with that index, and for tracepoints an index no argument has is taken as a
    /// position in args (what Tetragon's own tracepoint examples do). Null when it names none (reported into
    /// <paramref name="d"/> when given).</summary>
    public static ArgInfo? Resolve(ArgMatcherSpec m, IReadOnlyList<ArgInfo> args, HookKind kind, DiagnosticBag? d)
    {
        if (m.Args.Count > 0)
        {
            if (m.Args.Count > 1 && m.Operator.Value != "CapabilitiesGained")
                d?.Error(m.Args[1].Pos, m.Args[1].Path, "only the CapabilitiesGained operator compares several arguments (as in Tetragon)");
            int n = m.Args[0].Value;
            if (n < args.Count) return args[n];
            d?.Error(m.Args[0].Pos, m.Args[0].Path, $"args[{n}] names entry {n} of the hook's args, which has {args.Count} (0..{args.Count - 1})");
            return null;
        }
        if (m.Index is { } idx)
        {
            var arg = args.FirstOrDefault(a => a.Spec.Index.Value == idx.Value) ?? (kind == HookKind.Tracepoint && idx.Value < args.Count ? args[idx.Value] : null);
            if (arg is null)
                d?.Error(idx.Pos, idx.Path, $"no argument with index {idx.Value} in the hook's args (indexes: {string.Join(", ", args.Select(a => a.Spec.Index.Value))})");
            return arg;
        }
        d?.Error(m.Pos, m.Path, "needs 'index' or 'args'");
        return null;
    }
}
