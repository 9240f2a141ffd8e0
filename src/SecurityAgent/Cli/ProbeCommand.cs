using System.CommandLine;
using SecurityAgent.Kernel;

namespace SecurityAgent.Cli;

/// <summary>`secagent probe [--json]`: what this kernel supports, from <see cref="FeatureProbe"/>.</summary>
public static class ProbeCommand
{
    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "JSON instead of a table" };
        var c = new Command("probe", "Show what this kernel supports: program types, helpers, BTF, LSMs, cgroup v2") { json };
        c.SetAction(pr => Run(pr.GetValue(json)));
        return c;
    }

    private static int Run(bool json)
    {
        var f = FeatureProbe.Run();
        if (json)
        {
            Console.WriteLine(KernelFeaturesJson.ToJson(f));
            return 0;
        }
        Console.WriteLine($"kernel {f.KernelRelease}");
        var rows = f.Mechanisms.Select(m => Row("prog:" + KernelFeatures.MechanismName(m.Key), m.Value.Available, m.Value.Detail)).ToList();
        rows.Add(Row("helper:send_signal", f.SendSignal.Available, f.SendSignal.Detail));
        rows.Add(Row("helper:override_return", f.OverrideReturn.Available, f.OverrideReturn.Detail));
        rows.Add(Row("prog:fmod_ret", f.FmodRet.Available, f.FmodRet.Detail));
        rows.Add(Row("prog:fexit", f.Fexit.Available, f.Fexit.Detail));
        rows.Add(Row("helper:probe_write_user", f.ProbeWriteUser.Available, f.ProbeWriteUser.Detail));
        rows.Add(Row("helper:ima_file_hash", f.ImaFileHash.Available, f.ImaFileHash.Detail));
        rows.Add(Row("map:ringbuf", f.RingBuffer.Available, f.RingBuffer.Detail));
        rows.Add(Row("btf", f.Btf, f.Btf ? "/sys/kernel/btf/vmlinux" : "missing: CO-RE objects cannot load"));
        rows.Add(Row("lsm:bpf", f.BpfLsmActive, "active LSMs: " + string.Join(',', f.ActiveLsms)));
        rows.Add(Row("cgroup2", f.Cgroup2Path is not null, f.Cgroup2Path ?? "no cgroup2 mount"));
        Console.Write(Table.Render(["FEATURE", "AVAILABLE", "DETAIL"], rows));
        return 0;
    }

    private static string[] Row(string name, bool ok, string detail) => [name, ok ? "yes" : "no", detail];
}
