using SecurityAgent.Bpf;
using SecurityAgent.Interop;

namespace SecurityAgent.Kernel;

/// <summary>The one place that finds out what this kernel supports: each mechanism is tried for real
/// (a trivial program loaded, and attached where loading alone proves nothing).</summary>
public static unsafe class FeatureProbe
{
    public static KernelFeatures Run()
    {
        LibbpfLog.EnsureInstalled();
        var elf = EmbeddedObjects.Read(BpfNames.Probe.File);
        // The probes of BTF-typed programs cost ~65 ms of CPU each (libbpf parses the kernel's BTF per object): those that
        // need a mechanism the kernel refused outright are not tried.
        var fentry = TryLoadAndAttach(elf, "probe_fentry", null, out int fentryErrno);
        var lsm = Lsm(elf);
        var mechanisms = new Dictionary<Mechanism, Availability>
        {
            [Mechanism.Tracepoint] = TryLoad(elf, "probe_tracepoint"),
            [Mechanism.RawTracepoint] = TryLoad(elf, "probe_raw_tp"),
            [Mechanism.BtfTracepoint] = TryLoad(elf, "probe_tp_btf"),
            [Mechanism.Lsm] = lsm,
            [Mechanism.Fentry] = fentry,
            [Mechanism.Kprobe] = Kprobe(elf),
            [Mechanism.Uprobe] = Pmu("uprobe", TryLoad(elf, "probe_uprobe")),
            [Mechanism.CgroupSockAddr] = TryLoad(elf, "probe_cgroup_connect4"),
            [Mechanism.FanotifyPerm] = FanotifyPerm(),
        };
        return new KernelFeatures(
            File.ReadAllText("/proc/sys/kernel/osrelease").Trim(),
            mechanisms,
            TryLoad(elf, "probe_send_signal") is { Available: true } ? Availability.Yes("bpf_send_signal from tracepoints") : Availability.No("helper rejected"),
            Libbpf.libbpf_probe_bpf_map_type(Libbpf.BPF_MAP_TYPE_RINGBUF, null) == 1 ? Availability.Yes("BPF_MAP_TYPE_RINGBUF") : Availability.No("no ring buffer map"),
            File.Exists("/sys/kernel/btf/vmlinux"),
            ActiveLsms(),
            KernelMounts.Cgroup2Mount())
        {
            RingBufferQuery = TryLoad(elf, "probe_ringbuf_query") is { Available: true } ? Availability.Yes("bpf_ringbuf_query (BPF_RB_AVAIL_DATA)") : Availability.No("helper rejected"),
            OverrideReturn = OverrideReturn(elf),
            FmodRet = Refused(fentryErrno) ? Availability.No($"BPF trampolines refused (fentry: {fentry.Detail})") : TryLoadAndAttach(elf, "probe_fmod_ret", p => p.Attach()),
            Fexit = Refused(fentryErrno) ? Availability.No($"BPF trampolines refused (fentry: {fentry.Detail})") : TryLoadAndAttach(elf, "probe_fexit", p => p.Attach()),
            ProbeWriteUser = ProbeWriteUser(elf),
            ImaFileHash = !lsm.Available ? Availability.No($"no BPF LSM programs ({lsm.Detail})")
                : TryLoad(EmbeddedObjects.Read(BpfNames.Probeima.File), BpfNames.Programs.ProbeImaFileHash) is { Available: true } ? Availability.Yes("bpf_ima_file_hash from a sleepable LSM program")
                : Availability.No("sleepable LSM program with bpf_ima_file_hash rejected (needs Linux 5.18 and CONFIG_IMA)"),
        };
    }

    /// <summary>bpf_probe_write_user (usdt Set): the kernel refuses it in lockdown (integrity and above).</summary>
    private static Availability ProbeWriteUser(byte[] elf)
    {
        if (TryLoad(elf, "probe_write_user") is { Available: true })
            return Availability.Yes("bpf_probe_write_user from uprobes");
        string? lockdown = null;
        try
        {
            KernelMounts.EnsureSecurityFs();
            lockdown = File.ReadAllText(Path.Combine(KernelMounts.SecurityFs, "lockdown")).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return lockdown is not null && !lockdown.Contains("[none]", StringComparison.Ordinal)
            ? Availability.No($"kernel lockdown forbids it (/sys/kernel/security/lockdown: {lockdown})")
            : Availability.No("helper rejected");
    }

    /// <summary>bpf_override_return needs kprobes and CONFIG_BPF_KPROBE_OVERRIDE; the attach (to a syscall on the
    /// error-injection list) is what checks the function may be overridden.</summary>
    private static Availability OverrideReturn(byte[] elf) =>
        !Directory.Exists("/sys/bus/event_source/devices/kprobe") ? Availability.No("kernel built without kprobes (no kprobe PMU)")
        : TryLoadAndAttach(elf, "probe_override_return", p => p.AttachKprobe("__x64_sys_getppid"));

    private static IReadOnlyList<string> ActiveLsms()
    {
        try
        {
            KernelMounts.EnsureSecurityFs();
            return File.ReadAllText(Path.Combine(KernelMounts.SecurityFs, "lsm")).Trim().Split(',', StringSplitOptions.RemoveEmptyEntries);
        }
        catch (Exception)
        {
            return [];
        }
    }

    private static Availability Lsm(byte[] elf)
    {
        var load = TryLoad(elf, "probe_lsm");
        if (!load.Available) return load;
        return ActiveLsms().Contains("bpf") ? load : Availability.No("programs load, but 'bpf' is not in the active LSM list (boot with lsm=...,bpf)");
    }

    private static Availability Kprobe(byte[] elf)
    {
        if (!Directory.Exists("/sys/bus/event_source/devices/kprobe"))
            return Availability.No("kernel built without kprobes (no kprobe PMU)");
        return TryLoadAndAttach(elf, "probe_kprobe", p => p.AttachKprobe("security_file_open"));
    }

    /// <summary>A fanotify group of the content class with the three permission events, marked on a file of our own
    /// (no other process opens it, so nothing ever waits for an answer).</summary>
    private static Availability FanotifyPerm()
    {
        var file = Path.GetTempFileName();
        try
        {
            using var group = Libc.FanotifyInit(Libc.FAN_CLASS_CONTENT | Libc.FAN_CLOEXEC | Libc.FAN_NONBLOCK);
            int errno = Libc.FanotifyMark(group, Libc.FAN_MARK_ADD, Libc.FAN_OPEN_PERM | Libc.FAN_ACCESS_PERM | Libc.FAN_OPEN_EXEC_PERM, file);
            return errno == 0 ? Availability.Yes("FAN_OPEN_PERM, FAN_ACCESS_PERM, FAN_OPEN_EXEC_PERM")
                : Availability.No($"fanotify_mark: {Errno.Name(errno)}" + (errno == Errno.EINVAL ? " (needs CONFIG_FANOTIFY_ACCESS_PERMISSIONS and Linux 5.0)" : ""));
        }
        catch (SyscallException e)
        {
            return Availability.No($"{e.Call}: {Errno.Name(e.Errno)}");
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static Availability Pmu(string name, Availability load) =>
        !load.Available ? load
        : Directory.Exists($"/sys/bus/event_source/devices/{name}") ? load
        : Availability.No($"no {name} PMU");

    /// <summary>The kernel refused the program type itself (not this program or its target).</summary>
    private static bool Refused(int errno) => errno is Errno.EPERM or Errno.EOPNOTSUPP;

    private static Availability TryLoad(byte[] elf, string program) => TryLoadAndAttach(elf, program, null);

    private static Availability TryLoadAndAttach(byte[] elf, string program, Func<BpfProgram, BpfLink>? attach) => TryLoadAndAttach(elf, program, attach, out _);

    private static Availability TryLoadAndAttach(byte[] elf, string program, Func<BpfProgram, BpfLink>? attach, out int errno)
    {
        errno = 0;
        using var quiet = LibbpfLog.BeginCapture(quiet: true);
        try
        {
            using var obj = BpfObject.Load(ObjectSpecs.Probe(program), elf);
            if (attach is null)
                return Availability.Yes("loads");
            using var link = attach(obj.Program(program));
            return Availability.Yes("loads and attaches");
        }
        catch (LibbpfException e)
        {
            errno = e.Errno;
            return Availability.No($"{e.Call}: {Errno.Name(e.Errno)}");
        }
    }
}
