using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using SecurityAgent.Sensors;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Tetragon's tracepoint and syscall policies, compiled for this kernel and loaded into it
/// (in monitor mode: loading them must not change what runs on the machine).</summary>
[Collection("kernel")]
public class PeerPolicyLoadTests
{
    [SharedCorpusFact]
    public void Tetragons_tracepoint_and_syscall_examples_load_into_this_kernel_and_unload_cleanly()
    {
        var features = FeatureProbe.Run();
        var validator = new PolicyValidator(features);
        var compiler = new PolicyCompiler(features, PolicyCompiler.TraceFsFormats());
        var loaded = new List<string>();
        using (var sensor = ProcessSensor.Load(features, 1 << 20))
        using (var engine = new PolicyEngine(sensor, Environment.ProcessId))
        {
            foreach (var file in Directory.GetFiles(SharedCorpus.TetragonPolicies, "*.yaml").Order())
            {
                foreach (var v in validator.ValidateFile(file).Where(v => v.Ok && !v.Policy!.Spec.Hooks.Any(h => h is LsmHookSpec)))
                {
                    PolicyPlan plan;
                    try { plan = compiler.Compile(v); }
                    catch (PolicyCompileException e)
                    {
                        Assert.All(e.Diagnostics, d => Assert.True(d.Message.StartsWith("unsupported:") || d.Message.StartsWith("needs "), d.ToString()));
                        continue;
                    }
                    var p = engine.Load(plan with { Enforce = false });
                    Assert.All(p.HookIds, id => Assert.True(engine.Hooks.ContainsKey(id)));
                    loaded.Add(Path.GetFileName(file));
                    engine.Unload(p);
                    Assert.Empty(p.HookIds);
                }
            }
            Assert.Empty(engine.Hooks);
        }
        // The tracepoint ones, and the syscall kprobes that run on tracepoints here (sys_clock_settime with matchPIDs
        // isNamespacePID + followForks, the ancestry walk in the kernel).
        Assert.Superset(new HashSet<string> { "sys_mount.yaml", "sys_ptrace.yaml", "sys_setuid.yaml",
            "tracepoint-lseek-pid.yaml", "list-syscalls-tracepoint.yaml", "sys_clock_settime.yaml" }, loaded.ToHashSet());
    }
}
