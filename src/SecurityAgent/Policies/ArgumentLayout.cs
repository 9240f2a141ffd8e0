namespace SecurityAgent.Policies;

/// <summary>What kind of value a policy argument type holds: decides which matchArgs operators apply.</summary>
internal enum ArgClass { None, String, Int, Sock, Syscall64 }

/// <summary>A hook argument as the policy declares it, its class, and (when the layout is known) its place in the
/// kernel record.</summary>
internal sealed record ArgInfo(ArgSpec Spec, ArgClass Class, ArgPlan? Plan);

/// <summary>Argument layout: each declared argument → the kernel record slot, type and offset it is read from.</summary>
internal static class ArgumentLayout
{
    public const int MaxArgs = Events.Contract.MaxArgs;

    private static readonly HashSet<string> StringTypes = ["string", "char_buf", "char_iovec", "file", "path", "filename", "linux_binprm", "dentry", "data_loc"];
    private static readonly HashSet<string> IntTypes = ["int", "uint", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "s8", "u8", "s16", "u16", "s32", "u32", "s64", "u64", "size_t", "long", "ulong", "auto", "fd"];
    private static readonly HashSet<string> SockTypes = ["sockaddr", "sock", "socket", "skb"];
    private static readonly HashSet<string> UnsupportedTypes = ["cred", "bpf_attr", "perf_event", "bpf_map", "user_namespace", "capability", "kiocb", "iov_iter", "load_info", "module", "kernel_cap_t", "cap_inheritable", "cap_permitted", "cap_effective", "net_device", "bpf_cmd", "pointer"];

    public static ArgClass Class(string type) =>
        StringTypes.Contains(type) ? ArgClass.String : IntTypes.Contains(type) ? ArgClass.Int : SockTypes.Contains(type) ? ArgClass.Sock
        : type == "syscall64" ? ArgClass.Syscall64 : ArgClass.None;

    public static List<ArgInfo> Layout(HookSpec hook, Placement? placement, DiagnosticBag d)
    {
        var infos = new List<ArgInfo>();
        if (hook.Args.Count > MaxArgs)
            d.Error(hook.Args[MaxArgs].Pos, hook.Args[MaxArgs].Path, $"{hook.Args.Count} arguments, at most {MaxArgs} per hook");
        var seen = new HashSet<int>();
        int slot = 0;
        foreach (var a in hook.Args.Take(MaxArgs))
        {
            var type = a.Type.Value;
            if (!seen.Add(a.Index.Value))
                d.Error(a.Index.Pos, a.Index.Path, $"argument index {a.Index.Value} is listed twice");
            ArgPlan? plan = null;
            if (UnsupportedTypes.Contains(type))
                d.Error(a.Type.Pos, a.Type.Path, $"unsupported: argument type '{type}' is not implemented yet");
            else if (placement is { FieldsKnown: true })
                plan = placement.Field is null ? FunctionArg(a, slot, d) : RecordArg(a, slot, placement, d);
            if (plan is not null) slot++;
            infos.Add(new ArgInfo(a, Class(type), plan));
        }
        return infos;
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
                _ => $"no argument {a.Index.Value} at this hook: {p.Describe} reads the destination as index 1 (type sockaddr)",
            });
            return null;
        }
        var (kernelType, size) = KernelType(a.Type.Value, f);
        if (kernelType == ArgType.None)
        {
            d.Error(a.Type.Pos, a.Type.Path, $"unsupported: type '{a.Type.Value}' for '{f.CType} {f.Name}' at this hook");
            return null;
        }
        return new ArgPlan(slot, a.Index.Value, a.Type.Value, kernelType, f.Offset, size, a.Label);
    }

    /// <summary>An argument of a kernel function (LSM hook, kprobe): Offset is the argument number.</summary>
    private static ArgPlan? FunctionArg(ArgSpec a, int slot, DiagnosticBag d)
    {
        var type = a.Type.Value;
        if (a.Index.Value >= Events.Contract.MaxFnArgs)
        {
            d.Error(a.Index.Pos, a.Index.Path, $"only the first {Events.Contract.MaxFnArgs} function arguments can be read (index 0..{Events.Contract.MaxFnArgs - 1})");
            return null;
        }
        var (kt, size) = type switch
        {
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

    /// <summary>How the kernel reads a policy type from a record field.</summary>
    internal static (ArgType, int) KernelType(string type, TracepointField f)
    {
        bool pointer = f.CType.Contains('*') || f.Size == 8 && f.CType.Contains("long");
        return type switch
        {
            "int" or "int32" or "s32" => (ArgType.Int, 4),
            "int8" or "s8" => (ArgType.Int, 1),
            "int16" or "s16" => (ArgType.Int, 2),
            "int64" or "s64" or "long" => (ArgType.Int, 8),
            "uint" or "uint32" or "u32" => (ArgType.UInt, 4),
            "uint8" or "u8" => (ArgType.UInt, 1),
            "uint16" or "u16" => (ArgType.UInt, 2),
            "uint64" or "u64" or "size_t" or "ulong" or "syscall64" => (ArgType.UInt, 8),
            "auto" => f.Signed ? (ArgType.Int, Math.Clamp(f.Size, 1, 8)) : (ArgType.UInt, Math.Clamp(f.Size, 1, 8)),
            "fd" => (ArgType.Fd, 4),
            "string" or "filename" or "char_buf" when pointer => (ArgType.String, 8),
            "sockaddr" when pointer => (ArgType.SockAddr, 8),
            "nop" => (ArgType.UInt, Math.Clamp(f.Size, 1, 8)),
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
            if (m.Args.Count > 1)
                d?.Error(m.Args[1].Pos, m.Args[1].Path, "unsupported: a matchArgs entry on several arguments is not implemented yet");
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
