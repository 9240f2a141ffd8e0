using System.Diagnostics;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using SecurityAgent.Sensors;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Many policies on one attach point, limits, and changes while processes run: the policy engine on this
/// kernel, in-process (the test process is the "agent", excluded from policies), against binaries copied into the
/// test's temp dir.</summary>
[Collection("kernel")]
public class PolicyScaleTests
{
    private static readonly Lazy<KernelFeatures> Features = new(FeatureProbe.Run);

    private static PolicyPlan Compile(string yaml)
    {
        var v = Assert.Single(new PolicyValidator(Features.Value).ValidateText("p.yaml", yaml));
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        return new PolicyCompiler(Features.Value, PolicyCompiler.TraceFsFormats()).Compile(v);
    }

    /// <summary>The process sensor (for matchBinaries) and the policy engine, as the agent has them.</summary>
    private sealed class Kernel : IDisposable
    {
        public ProcessSensor Sensor { get; } = ProcessSensor.Load(Features.Value, 1 << 20);
        public PolicyEngine Engine { get; }

        public Kernel()
        {
            Sensor.Attach();
            Engine = new PolicyEngine(Sensor, Environment.ProcessId);
        }

        public void Dispose()
        {
            Engine.Dispose();
            Sensor.Dispose();
        }
    }

    private static int Open(string binary, string path) => Run.Wait(binary, [path]).Code;

    [Fact]
    public void Sixty_four_policies_on_openat_share_one_attachment_and_each_kills_only_its_own_binary_opening_its_own_path_while_another_watches_them_all()
    {
        using var dir = new TempDir();
        const int n = 64;
        var cats = Enumerable.Range(0, n).Select(i => dir.CopyBinary("/usr/bin/cat", $"cat-{i}")).ToList();
        var secrets = Enumerable.Range(0, n).Select(i => dir.File($"secret-{i}")).ToList();
        foreach (var s in secrets) File.WriteAllText(s, "x");
        using var k = new Kernel();
        var loaded = Enumerable.Range(0, n).Select(i => k.Engine.Load(Compile(TestPolicies.OpenatKill($"scale-{i}", cats[i], secrets[i])))).ToList();
        // One more policy matches every one of those calls (in monitor mode): each policy gets its own action.
        var watcher = k.Engine.Load(Compile(TestPolicies.OpenatKill("watch-all", dir.File("cat-"), dir.File("secret-"), mode: "monitor").Replace("- operator: In", "- operator: Prefix")));

        var point = Assert.Single(k.Engine.AttachPoints);
        // Two links: the enter program, and the exit program that looks the opened file up again.
        Assert.Equal(("tracepoint syscalls/sys_enter_openat", n + 1, 2), (point.Point, point.Hooks, point.Links));
        for (int i = 0; i < n; i++)
        {
            Assert.True(Open(cats[i], secrets[i]) == 137, $"cat-{i} opening secret-{i} was not killed");
            Assert.True(Open(cats[i], secrets[(i + 1) % n]) == 0, $"cat-{i} opening secret-{i + 1} was killed");
            Assert.True(Open(cats[(i + 1) % n], secrets[i]) == 0, $"cat-{i + 1} opening secret-{i} was killed");
        }
        Assert.All(loaded, p => Assert.Equal(1UL, k.Engine.Stats(p.HookIds[0]).Enforced));
        var watched = k.Engine.Stats(watcher.HookIds[0]);
        Assert.Equal((3UL * n, 0UL), (watched.Matched, watched.Enforced));

        foreach (var p in loaded.Append(watcher)) k.Engine.Unload(p);
        Assert.Empty(k.Engine.AttachPoints);
        Assert.Equal(0, Open(cats[0], secrets[0]));
    }

    [Fact]
    public void Five_hundred_and_twelve_policies_over_eight_syscalls_load_together_and_one_of_them_still_kills_its_own_binary()
    {
        string[] events = ["openat", "openat2", "unlinkat", "mkdirat", "fchmodat", "faccessat", "newfstatat", "fchownat"];
        using var dir = new TempDir();
        var victim = dir.CopyBinary("/usr/bin/cat", "victim");
        var secret = dir.File("secret");
        File.WriteAllText(secret, "x");
        using var k = new Kernel();
        // 511 policies that match nothing (a binary that never runs), 64 on each of the eight syscalls but one ...
        var loaded = Enumerable.Range(1, 511).Select(i => k.Engine.Load(Compile(
            TestPolicies.OpenatKill($"many-{i}", dir.File($"never-{i}"), dir.File($"path-{i}/"), mode: "monitor")
                .Replace("sys_enter_openat", $"sys_enter_{events[i % events.Length]}")))).ToList();
        // ... and one that kills the victim opening the secret.
        loaded.Add(k.Engine.Load(Compile(TestPolicies.OpenatKill("the-one", victim, secret))));

        Assert.Equal(512, loaded.Count);
        Assert.Equal(events.Select(e => ($"tracepoint syscalls/sys_enter_{e}", 64, 1)).Order(),
            k.Engine.AttachPoints.Select(p => (p.Point, p.Hooks, p.Links)).Order());
        Assert.Equal(137, Open(victim, secret));

        foreach (var p in loaded) k.Engine.Unload(p);
        Assert.Empty(k.Engine.AttachPoints);
        Assert.Equal(0, Open(victim, secret));
    }

    [Fact]
    public void A_policy_with_more_values_than_one_policy_may_hold_is_refused_by_name_and_limit_while_the_loaded_one_keeps_enforcing()
    {
        using var dir = new TempDir();
        var victim = dir.CopyBinary("/usr/bin/cat", "victim");
        var secret = dir.File("secret");
        File.WriteAllText(secret, "x");
        using var k = new Kernel();
        k.Engine.Load(Compile(TestPolicies.OpenatKill("good", victim, secret)));

        var values = string.Join(", ", Enumerable.Range(0, PolicyEngine.MaxValuesPerPolicy + 1).Select(i => $"\"{dir.Path}/nothing-{i}/\""));
        var big = TestPolicies.OpenatKill("too-big", victim, secret).Replace($"values: [\"{secret}\"]", $"values: [{values}]");
        var e = Assert.Throws<PolicyLimitException>(() => k.Engine.Load(Compile(big)));
        Assert.Contains("policy too-big", e.Message);
        Assert.Contains("sa_str_prefix", e.Message);
        Assert.Contains($"at most {PolicyEngine.MaxValuesPerPolicy} per policy", e.Message);

        Assert.Equal(137, Open(victim, secret));
        var point = Assert.Single(k.Engine.AttachPoints);
        Assert.Equal(1, point.Hooks);
    }

    [Fact]
    public async Task Changing_a_policy_never_leaves_a_moment_where_neither_version_enforces()
    {
        using var dir = new TempDir();
        var victim = dir.CopyBinary("/usr/bin/cat", "victim");
        var other = dir.CopyBinary("/usr/bin/cat", "other");
        var secret = dir.File("secret");
        var stop = dir.File("stop");
        File.WriteAllText(secret, "x");
        using var k = new Kernel();
        var current = k.Engine.Load(Compile(TestPolicies.OpenatKill("swap", victim, secret)));

        // A shell runs the victim over and over while the policy is changed back and forth; every run must die.
        using var loop = Run.Start("/bin/sh", ["-c", $"while [ ! -e {stop} ]; do {victim} {secret} >/dev/null 2>&1; echo $?; done"]);
        var codes = loop.StandardOutput.ReadToEndAsync();
        var timings = new List<double>();
        for (int i = 0; i < 40; i++)
        {
            // As the policy directory does: the new version is loaded before the old one goes. The versions differ
            // (prefix vs exact path), and an unrelated policy comes and goes at the same attach point.
            var yaml = i % 2 == 0 ? TestPolicies.OpenatKill("swap", victim, dir.Path + "/sec")
                : TestPolicies.OpenatKill("swap", victim, secret).Replace("operator: Prefix", "operator: Equal");
            var sw = Stopwatch.StartNew();
            var next = k.Engine.Load(Compile(yaml));
            timings.Add(sw.Elapsed.TotalMilliseconds);
            k.Engine.Unload(current);
            current = next;
            var unrelated = k.Engine.Load(Compile(TestPolicies.OpenatKill($"unrelated-{i}", other, secret)));
            Thread.Sleep(5);
            k.Engine.Unload(unrelated);
        }
        File.WriteAllText(stop, "");
        Assert.True(loop.WaitForExit(10_000));
        var runs = (await codes).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(runs.Length >= 20, $"only {runs.Length} runs of the victim during the changes");
        Assert.All(runs, code => Assert.Equal("137", code));
        // Loading is map writes and one flip: it enforces when Load returns.
        Assert.True(timings.Order().ElementAt(timings.Count / 2) < 100, $"median Load took {timings.Order().ElementAt(timings.Count / 2):F1} ms");
    }
}
