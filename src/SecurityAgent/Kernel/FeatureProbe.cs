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
        var mechanisms = new Dictionary<Mechanism, Availability>
        {
            [Mechanism.Tracepoint] = TryLoad(elf, "probe_tracepoint"),
            [Mechanism.RawTracepoint] = TryLoad(elf, "probe_raw_tp"),
            [Mechanism.BtfTracepoint] = TryLoad(elf, "probe_tp_btf"),
            [Mechanism.Lsm] = Lsm(elf),
            [Mechanism.Fentry] = TryLoad(elf, "probe_fentry"),
            [Mechanism.Kprobe] = Kprobe(elf),
            [Mechanism.Uprobe] = Pmu("uprobe", TryLoad(elf, "probe_uprobe")),
            [Mechanism.CgroupSockAddr] = TryLoad(elf, "probe_cgroup_connect4"),
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
            FmodRet = TryLoadAndAttach(elf, "probe_fmod_ret", p => p.Attach()),
            FanotifyPermissions = FanotifyPermissions(),
        };
    }

    /// <summary>bpf_override_return needs kprobes and CONFIG_BPF_KPROBE_OVERRIDE; the attach (to a syscall on the
    /// error-injection list) is what checks the function may be overridden.</summary>
    private static Availability OverrideReturn(byte[] elf) =>
        !Directory.Exists("/sys/bus/event_source/devices/kprobe") ? Availability.No("kernel built without kprobes (no kprobe PMU)")
        : TryLoadAndAttach(elf, "probe_override_return", p => p.AttachKprobe("__x64_sys_getppid"));

    /// <summary>fanotify in the content class with an open permission event, marked on a file of our own (no other
    /// process opens it, so nothing ever waits for an answer).</summary>
    private static Availability FanotifyPermissions()
    {
        int fd = Libc.fanotify_init(Libc.FAN_CLASS_CONTENT | Libc.FAN_CLOEXEC, Libc.O_RDONLY);
        if (fd < 0)
            return Availability.No($"fanotify_init(FAN_CLASS_CONTENT): {Errno.Name(System.Runtime.InteropServices.Marshal.GetLastPInvokeError())}");
        var file = Path.GetTempFileName();
        try
        {
            return Libc.fanotify_mark(fd, Libc.FAN_MARK_ADD, Libc.FAN_OPEN_PERM, Libc.AT_FDCWD, file) == 0
                ? Availability.Yes("FAN_CLASS_CONTENT with FAN_OPEN_PERM")
                : Availability.No($"fanotify_mark(FAN_OPEN_PERM): {Errno.Name(System.Runtime.InteropServices.Marshal.GetLastPInvokeError())}");
        }
        finally
        {
            Libc.close(fd);
            File.Delete(file);
        }
    }

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

    private static Availability Pmu(string name, Availability load) =>
        !load.Available ? load
        : Directory.Exists($"/sys/bus/event_source/devices/{name}") ? load
        : Availability.No($"no {name} PMU");

    private static Availability TryLoad(byte[] elf, string program) => TryLoadAndAttach(elf, program, null);

    private static Availability TryLoadAndAttach(byte[] elf, string program, Func<BpfProgram, BpfLink>? attach)
    {
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
            return Availability.No($"{e.Call}: {Errno.Name(e.Errno)}");
        }
    }
}
