using System.Buffers.Binary;
using SecurityAgent.Bpf;
using SecurityAgent.Events;
using SecurityAgent.Kernel;

namespace SecurityAgent.Sensors;

/// <summary>The process lifecycle hooks (bpf/process.bpf.c): exec, fork, exit. Owns the event ring
/// buffer, the loss counters, the settings and the pid tables that the policy objects share.</summary>
public sealed class ProcessSensor : IDisposable
{
    private readonly BpfObject _obj;
    private readonly List<BpfLink> _links = [];
    private readonly byte[] _settings = new byte[Wire.Settings.Length];

    public BpfObject Object => _obj;
    public BpfMap Events => _obj.Map(BpfNames.Maps.Events);
    public BpfMap Lost => _obj.Map(BpfNames.Maps.Lost);
    /// <summary>pid → current binary, read by policy hooks for matchBinaries.</summary>
    public BpfMap Binaries => _obj.Map(BpfNames.Maps.ExecBinary);

    /// <summary>tgid → bit mask of followed pid sets (matchPIDs followForks), inherited at fork.</summary>
    public BpfMap Follow => _obj.Map(BpfNames.Maps.Follow);

    /// <summary>For processes found in /proc (the exec hook fills it for the others).</summary>
    public void RememberBinary(int pid, string path) =>
        Binaries.Update(BitConverter.GetBytes((uint)pid), Policies.PolicyEncoding.Binary(path));
    public IReadOnlyList<BpfLink> Links => _links;

    private ProcessSensor(BpfObject obj) => _obj = obj;

    /// <summary>Loads the sensor. Records are submitted without waking the reader until 1/16 of the ring (at
    /// most 256 KiB) is pending, so the reader must also consume on a timer (see RingBuffer.Consume). With
    /// <paramref name="environment"/>, exec records carry the environment.</summary>
    public static ProcessSensor Load(KernelFeatures features, uint ringBufferBytes, bool environment = false)
    {
        if (!features.Has(Mechanism.BtfTracepoint))
            throw new NotSupportedException("the process sensor needs tp_btf programs (BTF-enabled tracepoints): " + features.Mechanisms[Mechanism.BtfTracepoint].Detail);
        var obj = BpfObject.Load(ObjectSpecs.Process(ringBufferBytes));
        var sensor = new ProcessSensor(obj);
        try
        {
            BinaryPrimitives.WriteUInt32LittleEndian(sensor._settings.AsSpan(Wire.Settings.WakeupBytes), Math.Min(ringBufferBytes / 16, 256u * 1024));
            BinaryPrimitives.WriteUInt32LittleEndian(sensor._settings.AsSpan(Wire.Settings.EnvVars), environment ? 1u : 0u);
            sensor.WriteSettings();
            return sensor;
        }
        catch
        {
            sensor.Dispose();
            throw;
        }
    }

    /// <summary>The agent's own process: never subject to policies, never signalled by them.</summary>
    public void ExcludeFromPolicies(int agentTgid)
    {
        lock (_settings)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(_settings.AsSpan(Wire.Settings.AgentTgid), (uint)agentTgid);
            WriteSettings();
        }
    }

    private void WriteSettings() => _obj.Map(BpfNames.Maps.Settings).Update(new byte[4], _settings);

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
    }
}
