using System.Buffers.Binary;
using SecurityAgent.Bpf;
using SecurityAgent.Events;
using SecurityAgent.Interop;
using SecurityAgent.Kernel;

namespace SecurityAgent.Sensors;

/// <summary>The process lifecycle hooks (bpf/process.bpf.c): exec, fork, exit. Owns the shared maps' object
/// (shared.bpf.o: the event ring buffer, the loss counters, the settings, the pid tables and the policy engine's
/// maps), on which the process programs and the policy objects are loaded.</summary>
public sealed class ProcessSensor : IDisposable
{
    private readonly BpfObject _maps;
    private readonly BpfObject _obj;
    private readonly List<BpfLink> _links = [];
    private readonly byte[] _settings = new byte[Wire.Settings.Length];

    /// <summary>The object of the shared maps (<see cref="ObjectSpecs.Shared"/>), the owner every other object's spec names.</summary>
    public BpfObject Maps => _maps;
    public BpfObject Object => _obj;
    public BpfMap Events => _maps.Map(BpfNames.Maps.Events);
    public BpfMap Lost => _maps.Map(BpfNames.Maps.Lost);
    /// <summary>sa_reader: whether the event reader sleeps until the kernel wakes it (<see cref="Pipeline.KernelEventReader"/>).</summary>
    public BpfMap ReaderState => _maps.Map(BpfNames.Maps.Reader);
    /// <summary>pid → current binary, read by policy hooks for matchBinaries.</summary>
    public BpfMap Binaries => _maps.Map(BpfNames.Maps.ExecBinary);

    /// <summary>tgid → bit mask of followed pid sets (matchPIDs followForks), inherited at fork.</summary>
    public BpfMap Follow => _maps.Map(BpfNames.Maps.Follow);

    /// <summary>For processes found in /proc (the exec hook fills it for the others).</summary>
    public void RememberBinary(int pid, string path) =>
        Binaries.Update(BitConverter.GetBytes((uint)pid), Policies.PolicyEncoding.Binary(path));
    public IReadOnlyList<BpfLink> Links => _links;

    /// <summary>sa_proc: what the kernel keeps per process from its fork and exec (ppid, pid in its namespace,
    /// in_init_tree, the namespaces and capabilities later changes are compared with).</summary>
    public BpfMap Proc => _maps.Map(BpfNames.Maps.Proc);

    /// <summary>Writes sa_proc for processes found in /proc at start-up, so that matchNamespaceChanges,
    /// matchCapabilityChanges and matchPIDs isNamespacePID+followForks treat them as processes the kernel saw exec
    /// (as Tetragon's /proc reader fills its execve_map). A record the kernel wrote since attaching is newer and is
    /// kept. Returns how many were written.</summary>
    public int SeedProcesses(IEnumerable<Processes.ProcessInfo> found)
    {
        int written = 0;
        Span<byte> key = stackalloc byte[4];
        Span<byte> v = stackalloc byte[Wire.Proc.Length];
        foreach (var p in found)
        {
            v.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(key, (uint)p.Pid);
            BinaryPrimitives.WriteUInt32LittleEndian(v[Wire.Proc.Ppid..], (uint)p.Ppid);
            BinaryPrimitives.WriteUInt32LittleEndian(v[Wire.Proc.Nspid..], p.Nspid);
            BinaryPrimitives.WriteUInt32LittleEndian(v[Wire.Proc.Flags..], p.InInitTree ? (uint)Wire.ProcFlags.InInitTree : 0);
            if (p.Caps is { } caps)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(v[Wire.Proc.Caps..], caps.Effective);
                BinaryPrimitives.WriteUInt64LittleEndian(v[(Wire.Proc.Caps + 8)..], caps.Permitted);
                BinaryPrimitives.WriteUInt64LittleEndian(v[(Wire.Proc.Caps + 16)..], caps.Inheritable);
            }
            var ns = p.Namespaces;
            for (int i = 0; i < (int)Wire.Namespace.Count; i++)
                BinaryPrimitives.WriteUInt32LittleEndian(v[(Wire.Proc.Ns + 4 * i)..], ns[i]);
            if (Proc.TryAdd(key, v)) written++;
        }
        return written;
    }

    private ProcessSensor(BpfObject maps, BpfObject obj) => (_maps, _obj) = (maps, obj);

    /// <summary>Creates the shared maps (no verifier, no kernel BTF: start-up then loads the objects with programs on
    /// them side by side). The per-process maps are sized by the kernel's pid_max.</summary>
    public static BpfObject CreateMaps(uint ringBufferBytes) => BpfObject.Load(ObjectSpecs.Shared(ringBufferBytes, PidMax()));

    private static uint PidMax() =>
        uint.TryParse(File.ReadAllText("/proc/sys/kernel/pid_max").Trim(), out var n) && n > 0 ? n : uint.MaxValue;

    /// <summary>Loads the sensor. Records are submitted without waking the reader until 1/16 of the ring (at
    /// most 256 KiB) is pending, so the reader must also consume on a timer (see RingBuffer.Consume). With
    /// <paramref name="environment"/>, exec records carry the environment.</summary>
    public static ProcessSensor Load(KernelFeatures features, uint ringBufferBytes, bool environment = false)
    {
        if (!features.Has(Mechanism.BtfTracepoint))
            throw NoBtfTracepoints(features);
        var maps = CreateMaps(ringBufferBytes);
        try
        {
            return Load(maps, environment, () => features);
        }
        catch
        {
            maps.Dispose();
            throw;
        }
    }

    /// <summary>Loads the process programs on <paramref name="maps"/> (<see cref="CreateMaps"/>), which the sensor then
    /// owns (on failure they stay the caller's: other objects may be loading on them), without waiting for the feature
    /// probe (start-up runs both at once): <paramref name="features"/> is asked only when the load fails, to say why.</summary>
    public static ProcessSensor Load(BpfObject maps, bool environment, Func<KernelFeatures> features)
    {
        BpfObject obj;
        try
        {
            obj = BpfObject.Load(ObjectSpecs.Process, maps);
        }
        catch (LibbpfException e) when (!features().Has(Mechanism.BtfTracepoint))
        {
            throw NoBtfTracepoints(features(), e);
        }
        var sensor = new ProcessSensor(maps, obj);
        uint ringBufferBytes = sensor.Events.MaxEntries;
        try
        {
            BinaryPrimitives.WriteUInt32LittleEndian(sensor._settings.AsSpan(Wire.Settings.WakeupBytes), Math.Min(ringBufferBytes / 16, 256u * 1024));
            BinaryPrimitives.WriteUInt32LittleEndian(sensor._settings.AsSpan(Wire.Settings.EnvVars), environment ? 1u : 0u);
            // File paths as the host sees them, for processes under another root (0: unknown, no host paths).
            BinaryPrimitives.WriteUInt32LittleEndian(sensor._settings.AsSpan(Wire.Settings.HostMntNs),
                Processes.ProcFsScanner.ReadHostNamespaces()[(int)Wire.Namespace.Mnt]);
            sensor.WriteSettings();
            return sensor;
        }
        catch
        {
            obj.Dispose(); // nothing attached yet; the maps stay the caller's
            throw;
        }
    }

    private static NotSupportedException NoBtfTracepoints(KernelFeatures features, Exception? inner = null) =>
        new("the process sensor needs tp_btf programs (BTF-enabled tracepoints): " + features.Mechanisms[Mechanism.BtfTracepoint].Detail, inner);

    /// <summary>The agent's own process: never subject to policies, never signalled by them.</summary>
    public void ExcludeFromPolicies(int agentTgid)
    {
        lock (_settings)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(_settings.AsSpan(Wire.Settings.AgentTgid), (uint)agentTgid);
            WriteSettings();
        }
    }

    private void WriteSettings() => _maps.Map(BpfNames.Maps.Settings).Update(new byte[4], _settings);

    public void Attach()
    {
        foreach (var name in new[] { BpfNames.Programs.Exit, BpfNames.Programs.Fork, BpfNames.Programs.Exec })
            _links.Add(_obj.Program(name).Attach());
    }

    public long KernelLost() => (long)(Lost.SumPerCpu((uint)Wire.LostReason.RingbufFull) + Lost.SumPerCpu((uint)Wire.LostReason.RetEvent));

    public void Dispose()
    {
        foreach (var l in _links) l.Dispose();
        _links.Clear();
        _obj.Dispose();
        _maps.Dispose();
    }
}
