using SecurityAgent.Kernel;

namespace SecurityAgent.Tests.Support;

/// <summary>A test that needs a kernel feature this project's machines lack (BPF LSM, kprobes, fentry). Where
/// the kernel lacks it, xunit reports the test as skipped with the reason; `make vmtest` runs it in a kernel
/// that has it (tests/vm), through <see cref="VmLane"/>, where a missing feature is a failure.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class RequiresKernelAttribute : FactAttribute
{
    public Mechanism[] Needs { get; }

    /// <summary>The test also needs bpf_probe_write_user (usdt Set), which kernel lockdown refuses.</summary>
    public bool ProbeWriteUser
    {
        get;
        init
        {
            field = value;
            if (value && Skip is null && Features.Value?.ProbeWriteUser.Available != true)
                Skip = $"needs bpf_probe_write_user, which this kernel refuses ({Features.Value?.ProbeWriteUser.Detail}); runs in the VM lane (make vmtest)";
        }
    }

    public RequiresKernelAttribute(params Mechanism[] needs)
    {
        Needs = needs;
        var missing = Missing(needs);
        if (missing.Count > 0)
            Skip = $"needs {string.Join(" and ", missing.Select(KernelFeatures.MechanismName))}, which this kernel lacks; runs in the VM lane (make vmtest)";
    }

    private static readonly Lazy<KernelFeatures?> Features = new(() =>
    {
        try { return FeatureProbe.Run(); }
        catch (Exception) { return null; }
    });

    /// <summary>The test makes 32-bit syscalls (int 0x80), which fault on this project's machines (their hypervisor):
    /// it runs in the VM lane only.</summary>
    public bool Int80
    {
        get;
        init
        {
            field = value;
            if (value && Skip is null && Environment.GetEnvironmentVariable("SECAGENT_IN_VM") != "1")
                Skip = "makes 32-bit syscalls through int 0x80, which fault on this machine's hypervisor; runs in the VM lane (make vmtest)";
        }
    }

    public static List<Mechanism> Missing(IEnumerable<Mechanism> needs) =>
        needs.Where(n => Features.Value?.Has(n) != true).ToList();

    /// <summary>What the VM lane's kernel lacks of what the test needs.</summary>
    public List<string> MissingHere() =>
        [.. Missing(Needs).Select(KernelFeatures.MechanismName), .. ProbeWriteUser && Features.Value?.ProbeWriteUser.Available != true ? ["bpf_probe_write_user"] : Array.Empty<string>()];
}
