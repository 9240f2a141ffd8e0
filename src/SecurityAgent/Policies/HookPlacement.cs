using SecurityAgent.Kernel;

namespace SecurityAgent.Policies;

/// <summary>What a mechanism can do from its hook: every rule that depends on where a hook runs reads this.</summary>
internal sealed record MechanismTraits(bool CanSignal, bool CanOverride, bool HasTask)
{
    public static MechanismTraits Of(Mechanism m) => m switch
    {
        Mechanism.Lsm => new(true, true, true),
        Mechanism.CgroupSockAddr => new(false, true, false), // cgroup programs: no signal helper, no task
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
    public MechanismTraits Traits => MechanismTraits.Of(Mechanism);

    /// <summary>String arguments are the raw user-space string a process passed to a syscall.</summary>
    public bool RawSyscallStrings => Syscall is not null && Mechanism == Mechanism.Tracepoint;

    public string Describe => Kind switch
    {
        HookKind.Tracepoint => $"tracepoint {Name}",
        HookKind.Kprobe when Mechanism == Mechanism.Tracepoint => $"kprobe {Name} (on the tracepoint {Target} here)",
        HookKind.Kprobe => $"kprobe {Name}",
        _ => $"lsmhook {Name}" + (Mechanism == Mechanism.CgroupSockAddr ? " (on cgroup connect hooks here)" : ""),
    };
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
        _ => null,
    };

    private Placement? Tracepoint(TracepointSpec t, DiagnosticBag d)
    {
        var (sub, ev) = (t.Subsystem.Value, t.Event.Value);
        if (t.Raw?.Value == true)
            d.Error(t.Raw.Pos, t.Raw.Path, "unsupported: raw tracepoints in policies are not implemented yet");
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
        if (k.ReturnArg is { } ra)
            d.Error(ra.Pos, PolicySchema.Child(k.Path, "returnArg"), "unsupported: return probes are not implemented yet");
        else if (k.Return?.Value == true)
            d.Error(k.Return.Pos, k.Return.Path, "unsupported: return probes are not implemented yet");
        if (call.StartsWith("list:"))
        {
            d.Error(k.Call.Pos, k.Call.Path, $"unsupported: hooking the functions of {call} is not implemented yet");
            return null;
        }
        if (!k.Syscall)
        {
            if (!features.Has(Mechanism.Kprobe))
            {
                d.Error(k.Call.Pos, k.Call.Path, features.Has(Mechanism.Fentry)
                    ? $"unsupported: '{call}' needs a kprobe; fentry-based hooks are not implemented yet"
                    : $"needs kprobes or fentry to hook '{call}', and this kernel has neither (kprobe: {Detail(Mechanism.Kprobe)}; fentry: {Detail(Mechanism.Fentry)}); only syscall kprobes fall back to tracepoints");
                return null;
            }
            return new Placement(HookKind.Kprobe, Mechanism.Kprobe, call, call, "kprobe on the kernel function; arguments from the registers", null, true, null, 0);
        }
        var name = SyscallName(call);
        var why = features.Has(Mechanism.Kprobe) || features.Has(Mechanism.Fentry)
            ? "syscall kprobe: runs on the syscall's entry tracepoint (same arguments, no kprobe needed)"
            : "syscall kprobe: this kernel has no kprobes or fentry, so it runs on the syscall's entry tracepoint with the same arguments";
        if (formats is null)
            return new Placement(HookKind.Kprobe, Mechanism.Tracepoint, $"syscalls/sys_enter_{name}", "__x64_sys_" + name, why, null, false, name, 0);
        var format = formats("syscalls", "sys_enter_" + name);
        if (format is null)
        {
            d.Error(k.Call.Pos, k.Call.Path, $"unknown syscall '{call}': no tracepoint syscalls/sys_enter_{name} on this kernel");
            return null;
        }
        // A syscall kprobe's argument i is the syscall's argument i: format field 5 + i, same meaning.
        return new Placement(HookKind.Kprobe, Mechanism.Tracepoint, $"syscalls/sys_enter_{name}", "__x64_sys_" + name, why,
            i => SyscallFirstField + i < format.Fields.Count ? format.Fields[SyscallFirstField + i] : null, true, name, Math.Max(0, format.Fields.Count - SyscallFirstField));
    }

    private Placement? LsmHook(LsmHookSpec l, DiagnosticBag d)
    {
        var hook = l.Hook.Value;
        if (hook == "socket_connect" && !features.Has(Mechanism.Lsm) && features.Has(Mechanism.CgroupSockAddr))
            return new Placement(HookKind.LsmHook, Mechanism.CgroupSockAddr, features.Cgroup2Path ?? "/sys/fs/cgroup", hook,
                "lsmhooks socket_connect: this kernel has no BPF LSM, so it runs on cgroup connect4/connect6 hooks at the cgroup v2 root, which deny in the kernel",
                i => i == 1 ? new TracepointField("address", "struct sockaddr *", 0, Events.Contract.SockaddrSize, false) : null, true, null, 2);
        if (!features.Has(Mechanism.Lsm))
        {
            d.Error(l.Hook.Pos, l.Hook.Path, $"needs BPF LSM to run 'lsmhooks: {hook}' ({Detail(Mechanism.Lsm)}); boot a kernel with CONFIG_BPF_LSM and lsm=...,bpf");
            return null;
        }
        if (!Sensors.PolicySensor.LsmHooks.Contains(hook))
        {
            d.Error(l.Hook.Pos, l.Hook.Path, $"unsupported: lsmhooks '{hook}' (supported: {string.Join(", ", Sensors.PolicySensor.LsmHooks)})");
            return null;
        }
        return new Placement(HookKind.LsmHook, Mechanism.Lsm, hook, hook, "BPF LSM hook: returning the policy's errno denies the operation in the kernel", null, true, null, 0);
    }

    private string Detail(Mechanism m) => features.Mechanisms.TryGetValue(m, out var a) ? a.Detail : "unknown";

    /// <summary>"sys_openat", "__x64_sys_openat" or "openat" → "openat".</summary>
    public static string SyscallName(string call)
    {
        foreach (var prefix in new[] { "__x64_sys_", "__ia32_sys_", "__arm64_sys_", "sys_" })
            if (call.StartsWith(prefix)) return call[prefix.Length..];
        return call;
    }
}
