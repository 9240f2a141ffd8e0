using SecurityAgent.Bpf;
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
    public void Policies_without_return_probes_load_no_return_program_and_the_first_policy_with_one_loads_it_on_the_enter_programs_maps()
    {
        using var dir = new TempDir();
        var cat = dir.CopyBinary("/usr/bin/cat", "objects-cat");
        using var sensor = ProcessSensor.Load(Features.Value, 1 << 20);
        sensor.Attach();
        using var engine = new PolicyEngine(sensor, Environment.ProcessId);

        engine.Prepare(Bpf.ParallelLoad.Start(() => PolicySensor.Load(PolicySensor.CreateMaps(sensor.Maps))));
        engine.AwaitPrograms();
        engine.AwaitExitOnly();
        // io_uring's with them: the first openat policy only attaches it; so is the exit-only program, in an object of its own
        Assert.Equal(["tracepoint", "tpexit", "tpxonly", "iouring"], engine.PolicyObjects);
        Assert.Equal("loaded", engine.ExitOnlyState);
        // Its quick answer reads by typed loads where the kernel has bpf_rdonly_cast (6.2 on), through helpers before.
        Assert.Equal(KernelBtf.Vmlinux!.HasFunction("bpf_rdonly_cast") ? BpfNames.Programs.PolicyXcast : BpfNames.Programs.PolicyXonly,
            engine.ExitOnlyProgram);
        engine.Load(Compile(Lseek(cat)));
        Assert.Equal(["tracepoint", "tpexit", "tpxonly", "iouring"], engine.PolicyObjects);

        // An open whose hook only posts is matched at its exit alone: one program, at sys_exit_openat.
        var open = engine.Load(Compile(TestPolicies.OpenatKill("objects-open", cat, dir.File("secret"), mode: "monitor", action: "Post")));
        Assert.Equal(["tracepoint", "tpexit", "tpxonly", "iouring"], engine.PolicyObjects);
        Assert.Equal(1, engine.AttachPoints.Single(p => p.Point.EndsWith("sys_enter_openat")).Links);

        // return: true on a syscall: the return program's object, attached at sys_exit_openat; a return probe needs the
        // enter, so the point is matched at enter and exit again.
        var ret = engine.Load(Compile(OpenReturn(cat, dir.Path)));
        Assert.Equal(["tracepoint", "tpexit", "tpxonly", "tpret", "iouring"], engine.PolicyObjects);
        Assert.Equal(3, engine.AttachPoints.Single(p => p.Point.EndsWith("sys_enter_openat")).Links);

        // The exit check matches the open through a symlink (on the file it opened), and the return program, in its own
        // object, posts the return hook's event the enter kept in the shared maps.
        File.WriteAllText(dir.File("secret"), "x");
        File.CreateSymbolicLink(dir.File("alias"), dir.File("secret"));
        Assert.Equal(0, Run.Wait(cat, [dir.File("alias")]).Code);
        Assert.Equal(1UL, engine.Stats(Assert.Single(open.HookIds)).Matched);
        Assert.Equal(1UL, engine.Stats(Assert.Single(ret.HookIds)).Posted);
    }

    private static string MapId(int fd) =>
        File.ReadLines($"/proc/self/fdinfo/{fd}").Single(l => l.StartsWith("map_id:"));

    [Fact]
    public void The_process_sensor_loads_without_the_policy_maps_and_the_policy_maps_made_later_share_the_process_sensors()
    {
        using var sensor = ProcessSensor.Load(Features.Value, 1 << 20);
        // What "ready" waits for creates the process sensor's maps only, not the policy engine's.
        Assert.True(sensor.Maps.Map(BpfNames.Maps.Points).Fd < 0, "sa_points was created with the process sensor's maps");
        Assert.True(sensor.Maps.Map(BpfNames.Maps.Selectors).Fd < 0, "sa_selectors was created with the process sensor's maps");

        using var policyMaps = PolicySensor.CreateMaps(sensor.Maps);
        Assert.True(policyMaps.Map(BpfNames.Maps.Points).Fd >= 0);
        foreach (var name in ObjectSpecs.ProcessShared)
            Assert.Equal(MapId(sensor.Maps.Map(name).Fd), MapId(policyMaps.Map(name).Fd));
    }

    [Fact]
    public void The_per_process_maps_hold_one_entry_per_possible_pid_and_no_more_than_their_ceiling()
    {
        uint pidMax = uint.Parse(File.ReadAllText("/proc/sys/kernel/pid_max").Trim());
        using var sensor = ProcessSensor.Load(Features.Value, 1 << 20);
        Assert.Equal(Math.Min(pidMax, 131072u), sensor.Binaries.MaxEntries);
        Assert.Equal(Math.Min(pidMax, 65536u), sensor.Proc.MaxEntries);
        Assert.Equal(Math.Min(pidMax, 65536u), sensor.Follow.MaxEntries);
        Assert.Equal(1u << 20, sensor.Events.MaxEntries);
    }

    private static int ConnectPrograms() =>
        Run.Bpftool("prog", "show", "name", BpfNames.Programs.Connect4).Split('\n').Count(l => l.Length > 0 && char.IsAsciiDigit(l[0]));

    [Fact]
    public async Task The_connect_object_preloaded_for_start_up_policies_is_the_one_their_policy_attaches_and_is_freed_with_the_programs()
    {
        using var dir = new TempDir();
        var nc = dir.CopyBinary("/usr/bin/cat", "objects-connect");
        int before = ConnectPrograms();
        using var sensor = ProcessSensor.Load(Features.Value, 1 << 20);
        var engine = new PolicyEngine(sensor, Environment.ProcessId);
        try
        {
            var programs = Bpf.ParallelLoad.Start(() => PolicySensor.Load(PolicySensor.CreateMaps(sensor.Maps)));
            engine.Prepare(programs);
            engine.AwaitPrograms();
            (await programs).Preload([Mechanism.Tracepoint, Mechanism.CgroupSockAddr]);
            Assert.True(SpinWait.SpinUntil(() => ConnectPrograms() == before + 1, TimeSpan.FromSeconds(60)), "the preload did not load the connect object");
            Assert.DoesNotContain("sock", engine.PolicyObjects); // loaded, not yet the sensor's

            engine.Load(Compile(ConnectPolicies.Deny("objects-connect", nc, 9, -1)));
            Assert.Contains("sock", engine.PolicyObjects);
            Assert.Equal(before + 1, ConnectPrograms()); // the preloaded object, not a second load
        }
        finally
        {
            engine.Dispose();
        }
        Assert.Equal(before, ConnectPrograms());
    }
}
