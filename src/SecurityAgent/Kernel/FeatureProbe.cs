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
        var elf = EmbeddedObjects.Read(EmbeddedObjects.Probe);
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
            [Mechanism.FanotifyPerm] = FanotifyPerm(),
        };
        return new KernelFeatures(
            File.ReadAllText("/proc/sys/kernel/osrelease").Trim(),
            mechanisms,
            TryLoad(elf, "probe_send_signal") is { Available: true } ? Availability.Yes("bpf_send_signal from tracepoints") : Availability.No("helper rejected"),
            Libbpf.libbpf_probe_bpf_map_type(Libbpf.BPF_MAP_TYPE_RINGBUF, null) == 1 ? Availability.Yes("BPF_MAP_TYPE_RINGBUF") : Availability.No("no ring buffer map"),
            File.Exists("/sys/kernel/btf/vmlinux"),
            ActiveLsms(),
            KernelMounts.Cgroup2Mount());
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

    /// <summary>A fanotify group of the content class and a permission mark: on the root directory, without
    /// FAN_ONDIR or FAN_EVENT_ON_CHILD, so it is refused or accepted like any mark yet never fires.</summary>
    private static Availability FanotifyPerm()
    {
        try
        {
            using var group = Libc.FanotifyInit(Libc.FAN_CLASS_CONTENT | Libc.FAN_CLOEXEC | Libc.FAN_NONBLOCK);
            int errno = Libc.FanotifyMark(group, Libc.FAN_MARK_ADD, Libc.FAN_OPEN_PERM | Libc.FAN_ACCESS_PERM | Libc.FAN_OPEN_EXEC_PERM, "/");
            return errno == 0 ? Availability.Yes("FAN_OPEN_PERM, FAN_ACCESS_PERM, FAN_OPEN_EXEC_PERM")
                : Availability.No($"fanotify_mark: {Errno.Name(errno)}" + (errno == Errno.EINVAL ? " (needs CONFIG_FANOTIFY_ACCESS_PERMISSIONS and Linux 5.0)" : ""));
        }
        catch (SyscallException e)
        {
            return Availability.No($"{e.Call}: {Errno.Name(e.Errno)}");
        }
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
            using var obj = BpfObject.Open("probe", elf);
            foreach (var p in obj.Programs)
                p.AutoLoad = p.Name == program;
            obj.Load();
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
