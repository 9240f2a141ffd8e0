namespace SecurityAgent.Bpf;

/// <summary>A map an object does not create but takes from another, already loaded object.</summary>
/// <param name="Map">The map's name (the same definition in both objects).</param>
/// <param name="Owner">The <see cref="BpfObjectSpec.Name"/> of the object that created it.</param>
public sealed record SharedMap(string Map, string Owner);

/// <summary>Plain data: what to load, before anything touches the kernel (cilium/ebpf's CollectionSpec). The ELF
/// comes from the agent's embedded objects; maps are resized here; the maps it shares with other objects are
/// listed here, never inferred from equal names. <see cref="BpfObject.Load"/> turns it into a live object.</summary>
public sealed record BpfObjectSpec(string Name, string File)
{
    /// <summary>Map name → max_entries, overriding the object's definition.</summary>
    public IReadOnlyDictionary<string, uint> MaxEntries { get; init; } = new Dictionary<string, uint>();

    public IReadOnlyList<SharedMap> Shares { get; init; } = [];

    /// <summary>The maps this object creates; null: every map it does not share. An object of maps only creates some of
    /// them: the others are created where they are first needed (<see cref="ObjectSpecs.PolicyMaps"/>).</summary>
    public IReadOnlyList<string>? Creates { get; init; }

    /// <summary>The programs to load; null: all of them.</summary>
    public IReadOnlyList<string>? Programs { get; init; }

    /// <summary>Program → the kernel function it is loaded for (fentry, fexit, fmod_ret: verified per function).</summary>
    public IReadOnlyDictionary<string, string> AttachTargets { get; init; } = new Dictionary<string, string>();

    public static IEnumerable<SharedMap> From(string owner, IEnumerable<string> maps) => maps.Select(m => new SharedMap(m, owner));
}

/// <summary>The objects the agent loads and what they share. shared.bpf.o has no programs: loaded twice, it creates the
/// maps the process sensor and the policy objects share, so that the objects with programs, each checked by the verifier
/// on the loading thread, can be loaded side by side on the machine's cores. Once as "shared", the process sensor's maps
/// (the ring buffer, the loss counters, the settings, the pid tables), all that "ready" waits for; once as "policymaps",
/// on those, the policy engine's maps (~30 MB of kernel memory, ~50 ms of CPU to create: measured), created beside the
/// process sensor's load, at the lowest priority when the agent starts without policies.</summary>
public static class ObjectSpecs
{
    public const string SharedName = "shared";
    public const string PolicyMapsName = "policymaps";

    public static readonly IReadOnlyList<string> ProcessShared =
        [BpfNames.Maps.Events, BpfNames.Maps.Lost, BpfNames.Maps.Settings, BpfNames.Maps.Reader, BpfNames.Maps.ExecBinary, BpfNames.Maps.Follow, BpfNames.Maps.Proc];

    /// <summary>The maps keyed by a process's tgid, with their ceilings (the sizes compiled in bpf/include/helpers.h):
    /// sized by the kernel's pid_max (every tgid fits), at most the ceiling. sa_exec_binary's 131072 preallocated LRU
    /// entries of 260 bytes took ~100 ms to create, and ~40 MB of kernel memory, where pid_max is 32768.</summary>
    private static readonly IReadOnlyDictionary<string, uint> PerProcess = new Dictionary<string, uint>
    {
        [BpfNames.Maps.ExecBinary] = 131072, [BpfNames.Maps.Follow] = 65536, [BpfNames.Maps.Proc] = 65536,
    };

    public static readonly IReadOnlyList<string> PolicyShared =
    [
        BpfNames.Maps.Active, BpfNames.Maps.Points, BpfNames.Maps.Selectors, BpfNames.Maps.StrSet, BpfNames.Maps.StrPrefix,
        BpfNames.Maps.IntSet, BpfNames.Maps.AddrLpm, BpfNames.Maps.HookStats, BpfNames.Maps.PointStats, BpfNames.Maps.Deny,
        BpfNames.Maps.Scope, BpfNames.Maps.Rate, BpfNames.Maps.RetPending, BpfNames.Maps.RetEvents, BpfNames.Maps.Socktrack, BpfNames.Maps.SocktrackStats,
        BpfNames.Maps.EnfNotify, BpfNames.Maps.Resolve,
    ];

    /// <summary>Every map the syscall tracepoint programs share, beyond the process sensor's: the policy maps, the
    /// enter's saved state the exit reads (sa_pending, sa_ret_pending), the per-CPU scratch and the after-call notes.</summary>
    public static readonly IReadOnlyList<string> TracepointShared =
    [
        .. PolicyShared, BpfNames.Maps.InodeSet, BpfNames.Maps.Pending, BpfNames.Maps.Call, BpfNames.Maps.PathScratch,
        BpfNames.Maps.AfterNotes, BpfNames.Maps.AfterSeq, BpfNames.Maps.IoWorkers,
    ];

    /// <summary>The shared maps (no programs): the ring buffer sized as configured, the per-process maps by
    /// <paramref name="pidMax"/>.</summary>
    public static BpfObjectSpec Shared(uint ringBufferBytes, uint pidMax) => new(SharedName, BpfNames.Shared.File)
    {
        Creates = ProcessShared,
        MaxEntries = new Dictionary<string, uint>(PerProcess.Select(m => KeyValuePair.Create(m.Key, Math.Min(m.Value, pidMax))))
        {
            [BpfNames.Maps.Events] = ringBufferBytes,
        },
    };

    /// <summary>The policy engine's maps and the tracepoint programs' shared state: every map of shared.bpf.o that
    /// <see cref="Shared"/> did not create, on the process sensor's maps. The owner every policy object's spec names.</summary>
    public static BpfObjectSpec PolicyMaps { get; } = new(PolicyMapsName, BpfNames.Shared.File)
    {
        Shares = BpfObjectSpec.From(SharedName, ProcessShared).ToList(),
    };

    public static BpfObjectSpec Process { get; } = new("process", BpfNames.Process.File)
    {
        Shares = BpfObjectSpec.From(SharedName, ProcessShared).ToList(),
    };

    /// <summary>The syscall enter program, on every syscall tracepoint a policy uses.</summary>
    public static BpfObjectSpec PolicyTracepoint { get; } = TracepointProgram("tracepoint", BpfNames.Programs.PolicyTp);

    /// <summary>The exit check of opens and execs (most policies need it, and verifying it on first use put ~300 ms into
    /// the first such policy's load: measured): loaded with the enter program, beside it.</summary>
    public static BpfObjectSpec PolicyTracepointExit { get; } = TracepointProgram("tpexit", BpfNames.Programs.PolicyExitTp);

    /// <summary>The exit of opens matched there alone (every hook only posts: no enter program), in an object of its own:
    /// a kernel whose verifier refuses it keeps the enter and exit programs (its opens are then matched at both).</summary>
    public static BpfObjectSpec PolicyTracepointExitOnly { get; } = TracepointProgram("tpxonly", BpfNames.Programs.PolicyXonly);

    /// <summary>The same program with its quick answer's kernel reads as typed loads (sa_policy_xcast: bpf_rdonly_cast,
    /// Linux 6.2 on), tried first; the same name, so status and tests see one exit-only object.</summary>
    public static BpfObjectSpec PolicyTracepointExitOnlyTyped { get; } = TracepointProgram("tpxonly", BpfNames.Programs.PolicyXcast);

    /// <summary>The return probes' program on syscall exits (return: true), loaded on first use.</summary>
    public static BpfObjectSpec PolicyTracepointReturn { get; } = TracepointProgram("tpret", BpfNames.Programs.PolicyRetTp);

    /// <summary>io_uring requests on the hooks of the syscalls they stand for (bpf/iouring.bpf.c): at submission, an
    /// open's re-check on the object opened at its completion, and the process of each io_uring worker thread.</summary>
    public static BpfObjectSpec PolicyIoUring { get; } = TracepointProgram("iouring", BpfNames.Programs.UringSubmit) with
    {
        File = BpfNames.Iouring.File,
        Programs = [BpfNames.Programs.UringSubmit, BpfNames.Programs.UringComplete, BpfNames.Programs.UringWorker],
    };

    private static BpfObjectSpec TracepointProgram(string name, string program) => new(name, BpfNames.Tracepoint.File)
    {
        Shares = BpfObjectSpec.From(PolicyMapsName, [.. ProcessShared, .. TracepointShared]).ToList(),
        Programs = [program],
    };

    public static BpfObjectSpec PolicyLsm { get; } = Family("lsm", BpfNames.Lsm.File);
    public static BpfObjectSpec PolicyKprobe { get; } = Family("kprobe", BpfNames.Kprobe.File);
    /// <summary>Override through bpf_override_return (kernel functions; syscall functions): loaded only when a hook
    /// overrides, since a kernel without CONFIG_BPF_KPROBE_OVERRIDE refuses these objects.</summary>
    public static BpfObjectSpec PolicyKprobeOverride { get; } = Family("kover", BpfNames.Kover.File);
    public static BpfObjectSpec PolicySyscallOverride { get; } = Family("ksys", BpfNames.Ksys.File);
    /// <summary>Override of a security_ function through fmod_ret: one object per function (with its program only).</summary>
    public static BpfObjectSpec PolicyFmodRet(string function) => Family("fmodret", BpfNames.Fmodret.File) with
    {
        Programs = [BpfNames.Programs.PolicyFmodRet],
        AttachTargets = new Dictionary<string, string> { [BpfNames.Programs.PolicyFmodRet] = function },
    };
    /// <summary>The return side of such a function (return: true): its fexit program, in an object of its own, loaded
    /// only for hooks with return probes.</summary>
    public static BpfObjectSpec PolicyFexit(string function) => Family("fexit", BpfNames.Fmodret.File) with
    {
        Programs = [BpfNames.Programs.PolicyFexit],
        AttachTargets = new Dictionary<string, string> { [BpfNames.Programs.PolicyFexit] = function },
    };
    public static BpfObjectSpec PolicySock { get; } = Family("sock", BpfNames.Sock.File);
    public static BpfObjectSpec PolicyUprobe { get; } = Family("uprobe", BpfNames.Uprobe.File);
    public static BpfObjectSpec PolicyUsdtSet { get; } = Family("usdtset", BpfNames.Usdtset.File);
    public static BpfObjectSpec PolicyRawTp { get; } = Family("rawtp", BpfNames.Rawtp.File);

    /// <summary>spec.loader's sensor: the process sensor's maps and the pod scopes' cgroup sets.</summary>
    public static BpfObjectSpec Loader { get; } = new("loader", BpfNames.Loader.File)
    {
        Shares = BpfObjectSpec.From(PolicyMapsName, [.. ProcessShared, BpfNames.Maps.Scope]).ToList(),
    };

    /// <summary>spec.enforcers' enforcer program (at raw_syscalls/sys_enter) and its cleanup at thread exit: the process
    /// sensor's maps, the hook counters and the pending notifications the policy programs write.</summary>
    public static BpfObjectSpec Enforcer { get; } = new("enforcer", BpfNames.Enforcer.File)
    {
        Shares = BpfObjectSpec.From(PolicyMapsName, [.. ProcessShared, BpfNames.Maps.HookStats, BpfNames.Maps.EnfNotify]).ToList(),
    };

    private static BpfObjectSpec Family(string name, string file) => new(name, file)
    {
        Shares = BpfObjectSpec.From(PolicyMapsName, [.. ProcessShared, .. PolicyShared]).ToList(),
    };

    /// <summary>The feature probe's object with one program loaded.</summary>
    public static BpfObjectSpec Probe(string program) => new("probe", BpfNames.Probe.File) { Programs = [program] };
}
