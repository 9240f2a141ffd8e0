using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using SecurityAgent.Sensors;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Which policy programs the verifier has to check (most of start-up is its time on them): the policy
/// engine loads a program only when a plan needs it. In-process on the real kernel, policies in monitor mode and
/// scoped to a binary copied into the test's temp dir.</summary>
[Collection("kernel")]
public class PolicyObjectLoadingTests
{
    private static readonly Lazy<KernelFeatures> Features = new(FeatureProbe.Run);

    private static PolicyPlan Compile(string yaml)
    {
        var v = Assert.Single(new PolicyValidator(Features.Value).ValidateText("p.yaml", yaml));
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        return new PolicyCompiler(Features.Value, PolicyCompiler.TraceFsFormats()).Compile(v);
    }

    private static string Lseek(string binary) => $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: objects-lseek
        spec:
          tracepoints:
          - subsystem: syscalls
            event: sys_enter_lseek
            args:
            - index: 7
              type: int32
            selectors:
            - matchBinaries:
              - operator: In
                values: ["{binary}"]
        """;

    private static string OpenReturn(string binary, string dir) => $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: objects-return
        spec:
          kprobes:
          - call: sys_openat
            syscall: true
            return: true
            args:
            - index: 1
              type: string
            returnArg:
              index: 0
              type: int
            selectors:
            - matchBinaries:
              - operator: In
                values: ["{binary}"]
              matchArgs:
              - index: 1
                operator: Prefix
                values: ["{dir}/"]
        """;

    [Fact]
    public void A_policy_without_open_exec_or_return_hooks_loads_only_the_enter_program_and_the_exit_and_return_programs_load_with_the_first_policy_that_needs_them()
    {
        using var dir = new TempDir();
        var cat = dir.CopyBinary("/usr/bin/cat", "objects-cat");
        using var sensor = ProcessSensor.Load(Features.Value, 1 << 20);
        sensor.Attach();
        using var engine = new PolicyEngine(sensor, Environment.ProcessId);

        engine.Prepare();
        Assert.Equal(["tracepoint"], engine.PolicyObjects);
        engine.Load(Compile(Lseek(cat)));
        Assert.Equal(["tracepoint"], engine.PolicyObjects);

        // An open is looked up again at its exit: the exit program's object comes with the first such policy.
        var open = engine.Load(Compile(TestPolicies.OpenatKill("objects-open", cat, dir.File("secret"), mode: "monitor")));
        Assert.Equal(["tracepoint", "tpexit"], engine.PolicyObjects);
        Assert.Equal(2, engine.AttachPoints.Single(p => p.Point.EndsWith("sys_enter_openat")).Links);

        // return: true on a syscall: the return program's object, attached at sys_exit_openat.
        var ret = engine.Load(Compile(OpenReturn(cat, dir.Path)));
        Assert.Equal(["tracepoint", "tpexit", "tpret"], engine.PolicyObjects);

        // Both run on the enter's maps: the open through a symlink matches only at its exit (on the file it opened),
        // and the return hook's kept event is posted at the return.
        File.WriteAllText(dir.File("secret"), "x");
        File.CreateSymbolicLink(dir.File("alias"), dir.File("secret"));
        Assert.Equal(0, Run.Wait(cat, [dir.File("alias")]).Code);
        Assert.Equal(1UL, engine.Stats(Assert.Single(open.HookIds)).Matched);
        Assert.Equal(1UL, engine.Stats(Assert.Single(ret.HookIds)).Posted);
    }
}
