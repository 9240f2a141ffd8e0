using SecurityAgent.Kernel;

namespace SecurityAgent.Policies;

/// <summary>What a mechanism can do from its hook: every rule that depends on where a hook runs reads this.</summary>
internal sealed record MechanismTraits(bool CanSignal, bool CanOverride, bool HasTask)
{
    public static MechanismTraits Of(Mechanism m) => m switch
    {
        Mechanism.Lsm => new(true, true, true),
        Mechanism.CgroupSockAddr => new(false, true, false), // cgroup programs: no signal helper, no task
        Mechanism.FanotifyPerm => new(false, true, true), // the agent answers the permission event: deny, no signal
        Mechanism.Fentry => new(true, true, true), // fmod_ret: its return value replaces the function's
        _ => new(true, false, true),
    };
}

/// <summary>Where a hook runs on this kernel and how its arguments are found. <see cref="Field"/> maps a policy
/// argument index to a record field (tracepoints, syscall kprobes, cgroup connect); null for kernel-function hooks
/// (kprobes, BPF LSM), whose arguments are read from the registers. <see cref="FieldsKnown"/> is false when the
/// tracepoint formats are not available (validation without tracefs): the mechanism is known, the layout is not.</summary>
internal sealed record Placement(HookKind Kind, Mechanism Mechanism, string Target, string Name, string Why,
    Func<int, TracepointField?>? Field, bool FieldsKnown, string? Syscall, int FieldCount)
{
    /// <summary>Uprobes and USDT probes: one hook (one attach point) per site, each with the same arguments and selectors.</summary>
    public IReadOnlyList<UserProbeSite>? Sites { get; init; }

    /// <summary>Arguments are a user-space function's: strings and sockaddrs are read from the process's memory.</summary>
    public bool UserSpace => Kind is HookKind.Uprobe or HookKind.Usdt;

    public MechanismTraits Traits => MechanismTraits.Of(Mechanism);

    /// <summary>A syscall on a kprobe of its function (for Override): arguments are the syscall's user-space values,
    /// read from the caller's saved registers.</summary>
    public bool SyscallRegisters { get; init; }

    /// <summary>A return probe's tracepoint (syscalls/sys_exit_NAME) where this placement can read the return value.</summary>
    public string? ReturnTracepoint { get; init; }

    /// <summary>String arguments are the raw user-space string a process passed to a syscall.</summary>
    public bool RawSyscallStrings => Syscall is not null && Mechanism == Mechanism.Tracepoint;

    public string Describe => Kind switch
    {
        HookKind.Tracepoint when Mechanism == Mechanism.RawTracepoint => $"raw tracepoint {Name}",
        HookKind.Kprobe when Mechanism == Mechanism.Kprobe && Syscall is not null => $"kprobe {Name} (a kprobe on the syscall function, for Override)",
        HookKind.Uprobe => $"uprobe {Name}",
        HookKind.Usdt => $"usdt {Name}",
        HookKind.Tracepoint => $"tracepoint {Name}",
        HookKind.Kprobe when Mechanism == Mechanism.Tracepoint => $"kprobe {Name} (on the tracepoint {Target} here)",
        HookKind.Kprobe when Mechanism == Mechanism.Fentry => $"kprobe {Name} (an fmod_ret program, for Override)",
        HookKind.Kprobe => $"kprobe {Name}",
        _ => $"lsmhook {Name}" + (Mechanism == Mechanism.CgroupSockAddr ? " (on cgroup connect hooks here)" : ""),
    };
}

internal enum KprobeKind { Plain, Override, SyscallOverride }

/// <summary>A kprobe attach point's target: the function, and which program runs there. Override hooks have their
/// own attach point (bpf_override_return is in a program of its own), written "override:FUNCTION" for a kernel
/// function (arguments from the registers) and "override-syscall:__x64_sys_NAME" for a syscall (arguments from
/// the caller's registers the syscall function gets).</summary>
internal sealed record KprobeTarget(KprobeKind Kind, string Function)
{
    private const string OverridePrefix = "override:", SyscallPrefix = "override-syscall:";

    public override string ToString() => Kind switch
    {
        KprobeKind.Override => OverridePrefix + Function,
        KprobeKind.SyscallOverride => SyscallPrefix + Function,
        _ => Function,
    };

    public static KprobeTarget Parse(string target) =>
        target.StartsWith(SyscallPrefix, StringComparison.Ordinal) ? new(KprobeKind.SyscallOverride, target[SyscallPrefix.Length..])
        : target.StartsWith(OverridePrefix, StringComparison.Ordinal) ? new(KprobeKind.Override, target[OverridePrefix.Length..])
        : new(KprobeKind.Plain, target);
}

/// <summary>Hook placement: which mechanism runs each hook of a policy on this kernel, or why none can.</summary>
internal sealed class HookPlacement(KernelFeatures features, Func<string, string, TracepointFormat?>? formats)
{
    /// <summary>Common fields plus __syscall_nr: a syscall's first argument is format field 5.</summary>
    private const int SyscallFirstField = 5;

    public Placement? Place(HookSpec hook, DiagnosticBag d) => hook switch
    {
        TracepointSpec t => Tracepoint(t, d),
        KprobeSpec k => Kprobe(k, d),
        LsmHookSpec l => LsmHook(l, d),
        UprobeSpec u => Uprobe(u, d),
        UsdtSpec u => Usdt(u, d),
        _ => null,
    };

    /// <summary>Whether a hook's selectors deny the call (Override), which a tracepoint cannot.</summary>
    /// <summary>Whether the hook fails calls: Override, or on a syscall kprobe a NotifyEnforcer's argError where the
    /// kernel has bpf_override_return (elsewhere SelectorCompiler applies only its signal).</summary>
    private bool Overrides(HookSpec hook) => hook.Selectors.Any(s => s.MatchActions.Any(a => a.Action.Value == "Override"
        || (a.Action.Value == "NotifyEnforcer" && a.ArgError is not null && hook is KprobeSpec { Syscall: true } && features.OverrideReturn.Available)));

    private Placement? Tracepoint(TracepointSpec t, DiagnosticBag d)
    {
        var (sub, ev) = (t.Subsystem.Value, t.Event.Value);
        if (t.Raw?.Value == true)
        {
            // Tetragon's raw tracepoint: arguments are the tracepoint function's (BTF) arguments, not format fields.
            if (!features.Has(Mechanism.RawTracepoint))
            {
                d.Error(t.Raw.Pos, t.Raw.Path, $"needs raw tracepoints to run 'raw: true' on {sub}/{ev} ({Detail(Mechanism.RawTracepoint)})");
                return null;
            }
            if (formats is not null && formats(sub, ev) is null)
            {
                d.Error(t.Event.Pos, t.Event.Path, $"unknown tracepoint '{sub}/{ev}' on this kernel (no events/{sub}/{ev} in tracefs)");
                return null;
            }
            return new Placement(HookKind.Tracepoint, Mechanism.RawTracepoint, ev, $"{sub}/{ev}",
                "raw tracepoint: arguments are the tracepoint function's arguments (TP_PROTO), as Tetragon reads them; the raw_tp program gets the point's id as bpf_cookie (Linux 6.10)", null, true, null, 0);
        }
        var syscall = sub == "raw_syscalls" ? "syscall"
            : sub == "syscalls" && ev.StartsWith("sys_enter_") ? ev["sys_enter_".Length..]
            : sub == "syscalls" && ev.StartsWith("sys_exit_") ? ev["sys_exit_".Length..]
            : null;
        const string why = "tracepoint: read by the generic tracepoint program, arguments at their format offsets";
        if (formats is null)
            return new Placement(HookKind.Tracepoint, Mechanism.Tracepoint, $"{sub}/{ev}", $"{sub}/{ev}", why, null, false, syscall, 0);
        var format = formats(sub, ev);
        if (format is null)
        {
            d.Error(t.Event.Pos, t.Event.Path, $"unknown tracepoint '{sub}/{ev}' on this kernel (no events/{sub}/{ev}/format in tracefs)");
            return null;
        }
        return new Placement(HookKind.Tracepoint, Mechanism.Tracepoint, $"{sub}/{ev}", $"{sub}/{ev}", why,
            i => i < format.Fields.Count ? format.Fields[i] : null, true, syscall, format.Fields.Count);
    }

    private Placement? Kprobe(KprobeSpec k, DiagnosticBag d)
    {
        var call = k.Call.Value;
        bool returns = k.Return?.Value == true;
        if (k.ReturnArg is { } ra && !returns)
            d.Warning(ra.Pos, PolicySchema.Child(k.Path, "returnArg"), "returnArg is read only with 'return: true': ignored here, as in Tetragon");
        if (k.ReturnArgAction is { } rac && !returns)
            d.Warning(rac.Pos, rac.Path, "returnArgAction applies only with 'return: true': ignored here, as in Tetragon");
        if (k.ReturnArgAction is { Value: not ("TrackSock" or "UntrackSock") } bad)
            d.Error(bad.Pos, bad.Path, $"returnArgAction '{PolicyValues.Shorten(bad.Value)}' is not TrackSock or UntrackSock (the only return-value actions Tetragon defines)");
        else if (returns && k.ReturnArgAction is { } track && k.Syscall)
            d.Error(track.Pos, track.Path, $"returnArgAction {track.Value} takes the struct sock * a kernel function returns (a kretprobe on e.g. sk_alloc); a syscall returns an integer");
        if (returns && k.ReturnArg is null)
            d.Error(k.Return!.Pos, k.Return.Path, "return: true needs a returnArg (its type says how the return value is read), as in Tetragon");
        if (!k.Syscall && Overrides(k) && call.StartsWith("security_", StringComparison.Ordinal))
            return SecurityOverride(k, call, returns, d);
        if (!k.Syscall)
        {
            if (!features.Has(Mechanism.Kprobe))
            {
                d.Error(k.Call.Pos, k.Call.Path, features.Has(Mechanism.Fentry)
                    ? $"unsupported: '{call}' needs a kprobe; fentry-based hooks are not implemented yet"
                    : $"needs kprobes or fentry to hook '{call}', and this kernel has neither (kprobe: {Detail(Mechanism.Kprobe)}; fentry: {Detail(Mechanism.Fentry)}); only syscall kprobes fall back to tracepoints");
                return null;
            }
            if (Overrides(k))
            {
                if (returns)
                    d.EngineGap(k.Return!.Pos, k.Return.Path, $"a return probe on '{call}' with Override (bpf_override_return skips the function: its kretprobe would see the override's value)");
                if (!OverrideReturn(k, $"the kernel function '{call}'", d))
                    return null;
                return new Placement(HookKind.Kprobe, Mechanism.Kprobe, new KprobeTarget(KprobeKind.Override, call).ToString(), call,
                    $"kprobe with Override: bpf_override_return makes '{call}' return argError without running; the kernel must allow "
                    + $"error injection on '{call}' (listed in /sys/kernel/debug/error_injection/list on the node), or the attach is refused; arguments from the registers",
                    null, true, null, 0);
            }
            return new Placement(HookKind.Kprobe, Mechanism.Kprobe, call, call, "kprobe on the kernel function; arguments from the registers"
                + (returns ? "; a kretprobe on it reads the return value" : ""), null, true, null, 0)
            { ReturnTracepoint = returns ? $"a kretprobe on {call}" : null };
        }
        var name = SyscallName(call);
        if (Ia32(call))
        {
            // The syscall tracepoints see 64-bit calls only: a 32-bit syscall is its own function, hooked by a kprobe.
            if (!features.Has(Mechanism.Kprobe))
            {
                d.Error(k.Call.Pos, k.Call.Path, $"needs kprobes to hook the 32-bit syscall '{call}' (the syscall tracepoints see 64-bit calls only), and this kernel has none");
                return null;
            }
            d.EngineGap(k.Call.Pos, k.Call.Path, $"a kprobe on the 32-bit syscall '{call}' (its arguments in the 32-bit registers)");
            return new Placement(HookKind.Kprobe, Mechanism.Kprobe, call, call, "kprobe on the 32-bit syscall's function", null, true, null, 0);
        }
        if (Fanotify.FanotifyPolicies.Place(k, HookKind.Kprobe, call, features, "a syscall tracepoint cannot change the outcome of the call (bpf_override_return is not used)") is { } fan)
            return fan;
        if (Overrides(k) && features.Has(Mechanism.Kprobe))
        {
            // Only a kprobe can deny a syscall: bpf_override_return on the syscall function (error-injectable by definition).
            if (!OverrideReturn(k, $"syscall {name}", d))
                return null;
            if (returns)
                d.EngineGap(k.Return!.Pos, k.Return.Path, $"a return probe on syscall {name} with Override (its kprobe has no paired exit)");
            var tp = formats?.Invoke("syscalls", "sys_enter_" + name);
            if (formats is not null && tp is null)
            {
                d.Error(k.Call.Pos, k.Call.Path, $"unknown syscall '{call}': no tracepoint syscalls/sys_enter_{name} on this kernel");
                return null;
            }
            return new Placement(HookKind.Kprobe, Mechanism.Kprobe, new KprobeTarget(KprobeKind.SyscallOverride, "__x64_sys_" + name).ToString(), "__x64_sys_" + name,
                "syscall kprobe with Override: a kprobe on the syscall function, so bpf_override_return can deny the call; arguments are the syscall's, "
                + "read from the caller's registers (strings as the process passed them)",
                null, true, name, tp is null ? Events.Contract.MaxFnArgs : Math.Max(0, tp.Fields.Count - SyscallFirstField))
            { SyscallRegisters = true };
        }
        var why = (features.Has(Mechanism.Kprobe) || features.Has(Mechanism.Fentry)
            ? "syscall kprobe: runs on the syscall's entry tracepoint (same arguments, no kprobe needed)"
            : "syscall kprobe: this kernel has no kprobes or fentry, so it runs on the syscall's entry tracepoint with the same arguments")
            + (returns ? $"; the return value from syscalls/sys_exit_{name}" : "");
        if (formats is null)
            return new Placement(HookKind.Kprobe, Mechanism.Tracepoint, $"syscalls/sys_enter_{name}", "__x64_sys_" + name, why, null, false, name, 0)
            { ReturnTracepoint = returns ? $"syscalls/sys_exit_{name}" : null };
        var format = formats("syscalls", "sys_enter_" + name);
        if (format is null)
        {
            d.Error(k.Call.Pos, k.Call.Path, $"unknown syscall '{call}': no tracepoint syscalls/sys_enter_{name} on this kernel");
            return null;
        }
        if (returns && formats("syscalls", "sys_exit_" + name) is null)
        {
            d.Error(k.Return!.Pos, k.Return.Path, $"return: true on syscall {name} needs the tracepoint syscalls/sys_exit_{name}, which this kernel does not have");
            return null;
        }
        // A syscall kprobe's argument i is the syscall's argument i: format field 5 + i, same meaning.
        return new Placement(HookKind.Kprobe, Mechanism.Tracepoint, $"syscalls/sys_enter_{name}", "__x64_sys_" + name, why,
            i => SyscallFirstField + i < format.Fields.Count ? format.Fields[SyscallFirstField + i] : null, true, name, Math.Max(0, format.Fields.Count - SyscallFirstField))
        { ReturnTracepoint = returns ? $"syscalls/sys_exit_{name}" : null };
    }

    /// <summary>Override on a security_ function, as Tetragon runs it: fmod_ret (the kernel does not list security_
    /// functions for error injection, so bpf_override_return cannot override them).</summary>
    private Placement? SecurityOverride(KprobeSpec k, string call, bool returns, DiagnosticBag d)
    {
        if (!features.FmodRet.Available)
        {
            var at = k.Selectors.SelectMany(s => s.MatchActions).First(a => a.Action.Value == "Override").Action;
            d.Error(at.Pos, at.Path, $"needs fmod_ret to Override the security_ function '{call}' (BPF trampolines with BTF, Linux 5.7; "
                + $"bpf_override_return cannot: security_ functions are not error-injectable), and this kernel's probe says: {features.FmodRet.Detail}; "
                + "deny with an lsmhook or kill with Sigkill");
            return null;
        }
        if (returns && !features.Fexit.Available)
        {
            d.Error(k.Return!.Pos, k.Return.Path, $"return: true on '{call}' with Override needs an fexit program beside its fmod_ret one (bpf_get_func_ret, "
                + $"Linux 5.17), and this kernel's probe says: {features.Fexit.Detail}");
            return null;
        }
        return new Placement(HookKind.Kprobe, Mechanism.Fentry, call, call,
            $"kprobe with Override on a security_ function: an fmod_ret program on '{call}' (loaded for it; the attach point's id as cookie, Linux 6.0) "
            + "runs the selectors and returns argError instead of the function; arguments from the function's BTF arguments"
            + (returns ? $"; an fexit program on '{call}' reads the return value the caller sees (argError when overridden, the function's own result otherwise)" : ""),
            null, true, null, 0)
        { ReturnTracepoint = returns ? $"an fexit program on {call}" : null };
    }

    /// <summary>Override on a kprobe needs bpf_override_return; false (with the error) when this kernel lacks it.</summary>
    private bool OverrideReturn(KprobeSpec k, string what, DiagnosticBag d)
    {
        if (features.OverrideReturn.Available)
            return true;
        var at = k.Selectors.SelectMany(s => s.MatchActions).First(a => a.Action.Value == "Override").Action;
        d.Error(at.Pos, at.Path, $"needs bpf_override_return to Override {what} (a kernel with CONFIG_BPF_KPROBE_OVERRIDE and "
            + $"CONFIG_FUNCTION_ERROR_INJECTION), and this kernel's probe says: {features.OverrideReturn.Detail}"
            + (features.FmodRet.Available ? " (fmod_ret is available, and this build does not use it for Override yet)" : "")
            + "; deny with an lsmhook or kill with Sigkill");
        return false;
    }

    private Placement? Uprobe(UprobeSpec u, DiagnosticBag d)
    {
        if (!UserBinary(u.Binary, "uprobes", d)) return null;
        if (u.Symbols.Count + u.Offsets.Count + u.Addrs.Count == 0)
        {
            d.Error(u.Pos, u.Path, "a uprobe needs symbols, offsets or addrs (where in the binary to attach)");
            return null;
        }
        // As Tetragon: one semaphore offset per symbol (or per offset, when the uprobe has no symbols).
        int sitesListed = u.Symbols.Count > 0 ? u.Symbols.Count : u.Offsets.Count;
        if (u.RefCtrOffsets.Count > 0 && u.RefCtrOffsets.Count != sitesListed)
        {
            d.Error(u.RefCtrOffsets[0].Pos, u.RefCtrOffsets[0].Path,
                $"refCtrOffsets has {u.RefCtrOffsets.Count} entries and {(u.Symbols.Count > 0 ? "symbols" : "offsets")} {sitesListed}: one semaphore offset per site");
            return null;
        }
        if (u.BtfPath is { } btf)
            d.EngineGap(btf.Pos, btf.Path, "btfPath (the binary's own BTF for typed arguments)");
        if (u.Addrs.Count > 0)
            d.EngineGap(u.Addrs[0].Pos, u.Addrs[0].Path, "addrs (virtual addresses of the binary, turned into file offsets); use symbols or offsets");
        if (u.Return?.Value == true)
            d.EngineGap(u.Return.Pos, u.Return.Path, "a uretprobe (return: true; the function's return value)");
        ulong RefCtr(int i, bool symbols) => u.RefCtrOffsets.Count > 0 && (symbols || u.Symbols.Count == 0) ? (ulong)(uint)u.RefCtrOffsets[i].Value : 0;
        var sites = u.Symbols.Select((s, i) => new UserProbeSite(u.Binary.Value, s.Value, 0, RefCtrOffset: RefCtr(i, true)))
            .Concat(u.Offsets.Select((o, i) => new UserProbeSite(u.Binary.Value, null, (ulong)(uint)o.Value, RefCtrOffset: RefCtr(i, false)))).ToList();
        var where = string.Join(", ", sites.Select(s => s.Symbol ?? $"+0x{s.Offset:x}"));
        return new Placement(HookKind.Uprobe, Mechanism.Uprobe, $"{u.Binary.Value}:{where}", $"{u.Binary.Value}:{where}",
            "uprobe on the binary's functions (one attachment per symbol or offset, in every process that maps it); arguments from the registers of the x86-64 calling convention", null, true, null, 0)
        { Sites = sites };
    }

    private Placement? Usdt(UsdtSpec u, DiagnosticBag d)
    {
        if (!UserBinary(u.Binary, "usdts", d)) return null;
        if (u.BtfPath is { } btf)
            d.EngineGap(btf.Pos, btf.Path, "btfPath (the binary's own BTF for typed arguments)");
        var name = $"{u.Binary.Value}:{u.Provider.Value}:{u.Name.Value}";
        return new Placement(HookKind.Usdt, Mechanism.Uprobe, name, name,
            "usdt: a uprobe at the probe's address from the binary's .note.stapsdt (libbpf), arguments from the note's argument specs", null, true, null, 0)
        { Sites = [new UserProbeSite(u.Binary.Value, null, 0, u.Provider.Value, u.Name.Value)] };
    }

    private bool UserBinary(Located<string> binary, string what, DiagnosticBag d)
    {
        if (!binary.Value.StartsWith('/'))
        {
            d.Error(binary.Pos, binary.Path, $"'{PolicyValues.Shorten(binary.Value)}' is not an absolute path (the binary {what} attach to)");
            return false;
        }
        if (features.Has(Mechanism.Uprobe)) return true;
        d.Error(binary.Pos, binary.Path, $"needs the uprobe PMU to run {what} ({Detail(Mechanism.Uprobe)})");
        return false;
    }

    private Placement? LsmHook(LsmHookSpec l, DiagnosticBag d)
    {
        var hook = l.Hook.Value;
        if (hook == "socket_connect" && !features.Has(Mechanism.Lsm) && features.Has(Mechanism.CgroupSockAddr))
            return new Placement(HookKind.LsmHook, Mechanism.CgroupSockAddr, features.Cgroup2Path ?? "/sys/fs/cgroup", hook,
                "lsmhooks socket_connect: this kernel has no BPF LSM, so it runs on cgroup connect4/connect6 hooks at the cgroup v2 root, which deny in the kernel",
                i => i == 1 ? new TracepointField("address", "struct sockaddr *", 0, Events.Contract.SockaddrSize, false) : null, true, null, 2);
        if (!features.Has(Mechanism.Lsm) && Fanotify.FanotifyPolicies.Place(l, HookKind.LsmHook, hook, features, $"this kernel has no BPF LSM ({Detail(Mechanism.Lsm)})") is { } fan)
            return fan;
        if (!features.Has(Mechanism.Lsm))
        {
            d.Error(l.Hook.Pos, l.Hook.Path, $"needs BPF LSM to run 'lsmhooks: {hook}' ({Detail(Mechanism.Lsm)}); boot a kernel with CONFIG_BPF_LSM and lsm=...,bpf");
            return null;
        }
        if (!Sensors.PolicySensor.LsmHooks.Contains(hook))
            d.EngineGap(l.Hook.Pos, l.Hook.Path, $"lsmhooks '{hook}' (the engine has programs for {string.Join(", ", Sensors.PolicySensor.LsmHooks)})");
        return new Placement(HookKind.LsmHook, Mechanism.Lsm, hook, hook, "BPF LSM hook: returning the policy's errno denies the operation in the kernel", null, true, null, 0);
    }

    private string Detail(Mechanism m) => features.Mechanisms.TryGetValue(m, out var a) ? a.Detail : "unknown";

    /// <summary>A 32-bit (ia32) syscall's function: "__ia32_sys_dup", "__ia32_compat_sys_ioctl".</summary>
    public static bool Ia32(string call) => call.StartsWith("__ia32_");

    /// <summary>"__ia32_sys_dup" and "__ia32_compat_sys_dup": "dup".</summary>
    public static string Ia32SyscallName(string call) =>
        call.StartsWith("__ia32_compat_sys_") ? call["__ia32_compat_sys_".Length..] : call.StartsWith("__ia32_sys_") ? call["__ia32_sys_".Length..] : call;

    /// <summary>"sys_openat", "__x64_sys_openat" or "openat" → "openat".</summary>
    public static string SyscallName(string call)
    {
        foreach (var prefix in new[] { "__x64_sys_", "__arm64_sys_", "sys_" })
            if (call.StartsWith(prefix)) return call[prefix.Length..];
        return call;
    }
}
