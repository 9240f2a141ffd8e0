using SecurityAgent.Bpf;
using SecurityAgent.Kernel;

namespace SecurityAgent.Sensors;

/// <summary>The process lifecycle hooks (bpf/process.bpf.c): exec, fork, exit. Owns the event ring
/// buffer and loss counters that other sensors share.</summary>
public sealed class ProcessSensor : IDisposable
{
    private readonly BpfObject _obj;
    private readonly List<BpfLink> _links = [];

    public BpfMap Events => _obj.Map("sa_events");
    public BpfMap Lost => _obj.Map("sa_lost");
    /// <summary>pid → current binary, read by policy hooks for matchBinaries.</summary>
    public BpfMap Binaries => _obj.Map("sa_exec_binary");

    /// <summary>tgid → bit mask of followed pid sets (matchPIDs followForks), inherited at fork.</summary>
    public BpfMap Follow => _obj.Map("sa_follow");

    /// <summary>For processes found in /proc (the exec hook fills it for the others).</summary>
    public void RememberBinary(int pid, string path) =>
        Binaries.Update(BitConverter.GetBytes((uint)pid), Policies.PolicyEncoding.Binary(path));
    public IReadOnlyList<BpfLink> Links => _links;

    private ProcessSensor(BpfObject obj) => _obj = obj;

    public static ProcessSensor Load(KernelFeatures features, uint ringBufferBytes)
    {
        if (!features.Has(Mechanism.BtfTracepoint))
            throw new NotSupportedException("the process sensor needs tp_btf programs (BTF-enabled tracepoints): " + features.Mechanisms[Mechanism.BtfTracepoint].Detail);
        var obj = EmbeddedObjects.Open(EmbeddedObjects.Process);
        try
        {
            obj.Map("sa_events").SetMaxEntries(ringBufferBytes);
            obj.Load();
            return new ProcessSensor(obj);
        }
        catch
        {
            obj.Dispose();
            throw;
        }
    }

    public void Attach()
    {
        foreach (var name in new[] { "sa_exit", "sa_fork", "sa_exec" })
            _links.Add(_obj.Program(name).Attach());
    }

    public long KernelLost() => (long)Lost.SumPerCpu(0);

    public void Dispose()
    {
        foreach (var l in _links) l.Dispose();
        _links.Clear();
        _obj.Dispose();
    }
}
