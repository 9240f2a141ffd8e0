using System.Text.Json;
using SecurityAgent.Kernel;

namespace SecurityAgent.Cli;

/// <summary>`secagent probe [--json]`: what this kernel supports, from <see cref="FeatureProbe"/>.</summary>
public static class ProbeCommand
{
    public static int Run(string[] args)
    {
        var f = FeatureProbe.Run();
        if (args.Contains("--json"))
        {
            Console.WriteLine(ToJson(f));
            return 0;
        }
        Console.WriteLine($"kernel {f.KernelRelease}");
        Console.WriteLine($"{"FEATURE",-24} {"AVAILABLE",-10} DETAIL");
        foreach (var (m, a) in f.Mechanisms)
            Row("prog:" + KernelFeatures.MechanismName(m), a.Available, a.Detail);
        Row("helper:send_signal", f.SendSignal.Available, f.SendSignal.Detail);
        Row("map:ringbuf", f.RingBuffer.Available, f.RingBuffer.Detail);
        Row("btf", f.Btf, f.Btf ? "/sys/kernel/btf/vmlinux" : "missing: CO-RE objects cannot load");
        Row("lsm:bpf", f.BpfLsmActive, "active LSMs: " + string.Join(',', f.ActiveLsms));
        Row("cgroup2", f.Cgroup2Path is not null, f.Cgroup2Path ?? "no cgroup2 mount");
        return 0;
    }

    private static void Row(string name, bool ok, string detail) =>
        Console.WriteLine($"{name,-24} {(ok ? "yes" : "no"),-10} {detail}");

    public static string ToJson(KernelFeatures f) => JsonSerializer.Serialize(new
    {
        kernel = f.KernelRelease,
        mechanisms = f.Mechanisms.ToDictionary(m => KernelFeatures.MechanismName(m.Key), m => new { available = m.Value.Available, detail = m.Value.Detail }),
        helpers = new { send_signal = f.SendSignal.Available },
        maps = new { ringbuf = f.RingBuffer.Available },
        btf = f.Btf,
        active_lsms = f.ActiveLsms,
        bpf_lsm = f.BpfLsmActive,
        cgroup2 = f.Cgroup2Path,
    }, new JsonSerializerOptions { WriteIndented = true });
}
