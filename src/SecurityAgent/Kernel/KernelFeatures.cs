namespace SecurityAgent.Kernel;

/// <summary>Hook mechanisms the agent can use. Names match `secagent probe` output and the policy plan.</summary>
public enum Mechanism
{
    Tracepoint,
    RawTracepoint,
    BtfTracepoint,
    Lsm,
    Fentry,
    Kprobe,
    Uprobe,
    CgroupSockAddr,
    /// <summary>fanotify permission events: open, read and exec deny without BPF LSM (<see cref="Fanotify.FanotifyEnforcer"/>).</summary>
    FanotifyPerm,
}

public sealed record Availability(bool Available, string Detail)
{
    public static Availability Yes(string detail = "loads and attaches") => new(true, detail);
    public static Availability No(string detail) => new(false, detail);
}

/// <summary>What this kernel supports, found once by <see cref="FeatureProbe"/>. Plain data: later
/// stages (sensors, the policy compiler) choose hooks from it and never probe on their own.</summary>
public sealed record KernelFeatures(
    string KernelRelease,
    IReadOnlyDictionary<Mechanism, Availability> Mechanisms,
    Availability SendSignal,
    Availability RingBuffer,
    bool Btf,
    IReadOnlyList<string> ActiveLsms,
    string? Cgroup2Path)
{
    /// <summary>bpf_ringbuf_query: the hooks wake the event reader only once enough bytes are pending.</summary>
    public Availability RingBufferQuery { get; init; } = Availability.No("not probed");
    /// <summary>bpf_override_return from kprobes (CONFIG_BPF_KPROBE_OVERRIDE).</summary>
    public Availability OverrideReturn { get; init; } = Availability.No("not probed");
    /// <summary>fmod_ret programs (BPF trampolines that may change a function's return value) on security_ functions,
    /// with cookies.</summary>
    public Availability FmodRet { get; init; } = Availability.No("not probed");
    /// <summary>fexit programs reading a function's return value (bpf_get_func_ret, Linux 5.17), with cookies.</summary>
    public Availability Fexit { get; init; } = Availability.No("not probed");
    /// <summary>bpf_probe_write_user from uprobes (usdt Set); kernel lockdown refuses it.</summary>
    public Availability ProbeWriteUser { get; init; } = Availability.No("not probed");
    /// <summary>imaHash: a sleepable LSM program on bprm_check_security calling bpf_ima_file_hash (Linux 5.18, BPF LSM).</summary>
    public Availability ImaFileHash { get; init; } = Availability.No("not probed");

    public bool Has(Mechanism m) => Mechanisms.TryGetValue(m, out var a) && a.Available;
    public bool BpfLsmActive => ActiveLsms.Contains("bpf");

    public static string MechanismName(Mechanism m) => m switch
    {
        Mechanism.Tracepoint => "tracepoint",
        Mechanism.RawTracepoint => "raw_tp",
        Mechanism.BtfTracepoint => "tp_btf",
        Mechanism.Lsm => "lsm",
        Mechanism.Fentry => "fentry",
        Mechanism.Kprobe => "kprobe",
        Mechanism.Uprobe => "uprobe",
        Mechanism.CgroupSockAddr => "cgroup_sock_addr",
        Mechanism.FanotifyPerm => "fanotify",
        _ => m.ToString(),
    };

    /// <summary>A kernel that has everything; for compiling plans without probing (tests, --kernel all).</summary>
    public static KernelFeatures Everything { get; } = new(
        "any",
        Enum.GetValues<Mechanism>().ToDictionary(m => m, _ => Availability.Yes("assumed")),
        Availability.Yes("assumed"), Availability.Yes("assumed"), true, ["capability", "bpf"], "/sys/fs/cgroup")
    {
        RingBufferQuery = Availability.Yes("assumed"),
        OverrideReturn = Availability.Yes("assumed"),
        FmodRet = Availability.Yes("assumed"),
        Fexit = Availability.Yes("assumed"),
        ProbeWriteUser = Availability.Yes("assumed"),
        ImaFileHash = Availability.Yes("assumed"),
    };
}
