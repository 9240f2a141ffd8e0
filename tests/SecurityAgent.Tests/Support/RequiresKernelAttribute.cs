using SecurityAgent.Kernel;

namespace SecurityAgent.Tests.Support;

/// <summary>A test that needs a kernel feature this project's machines lack (BPF LSM, kprobes, fentry). Where
/// the kernel lacks it, xunit reports the test as skipped with the reason; `make vmtest` runs it in a kernel
/// that has it (tests/vm), through <see cref="VmLane"/>, where a missing feature is a failure.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class RequiresKernelAttribute : FactAttribute
{
    public Mechanism[] Needs { get; }

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

    public static List<Mechanism> Missing(IEnumerable<Mechanism> needs) =>
        needs.Where(n => Features.Value?.Has(n) != true).ToList();
}
