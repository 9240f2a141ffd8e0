using System.Text.Json;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using SecurityAgent.Sensors;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>Uprobes, USDT probes and raw tracepoints on this kernel, against a small C program compiled into the
/// test's temp dir (nothing else on the machine maps it, so nothing else can match).</summary>
[Collection("kernel")]
public class UserProbeTests
{
    /// <summary>Calls sa_test_check(i, name) and fires the USDT probe satest:tick(i, 1000 + i) for i in 0..n-1, printing
    /// "line i" after each; name is "secret" for i == 1, else "plain". The note is written as &lt;sys/sdt.h&gt; does.
    /// The name is built on the stack: a uprobe cannot fault in a page the process has not touched yet (a string
    /// constant's first use reads as empty).</summary>
    private static readonly string Source = $$"""
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>

        {{CProgram.Usdt2Macro("-4@%[x] -8@%[y]", "r", "r")}}

        __attribute__((noinline)) int sa_test_check(int value, const char *name)
        {
            __asm__ __volatile__("" ::: "memory");
            return value + (int)strlen(name);
        }

        int main(int argc, char **argv)
        {
            int n = argc > 1 ? atoi(argv[1]) : 3;
            for (int i = 0; i < n; i++) {
                long big = 1000 + i;
                SA_USDT2(satest, tick, i, big);
                char name[16];
                strcpy(name, i == 1 ? "secret" : "plain");
                sa_test_check(i, name);
                printf("line %d\n", i);
                fflush(stdout);
            }
            return 0;
        }
        """;

    private static string Build(TempDir dir, string name) => CProgram.Build(dir, name, Source, "-O2", "-g");

    private const string PostAll = """
            - matchActions:
              - action: Post
        """;

    /// <param name="selectors">The selectors' YAML, indented for the list under `selectors:` (4 spaces before "-").</param>
    private static string Uprobe(string name, string binary, string selectors = PostAll) => $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: {name}
        spec:
          uprobes:
          - path: "{binary}"
            symbols:
            - "sa_test_check"
            message: "checked"
            tags: ["test"]
            args:
            - index: 0
              type: int
            - index: 1
              type: string
            selectors:
        {selectors}
        """;

    private static List<JsonElement> Bodies(AgentProcess agent, string type, string policy) =>
        agent.Events.Where(e => e.TryGetProperty(type, out var b) && b.GetProperty("policy_name").GetString() == policy)
            .Select(e => e.GetProperty(type)).ToList();

    private static void WaitForExit(AgentProcess agent, string binary) =>
        agent.Events.WaitFor(e => e.TryGetProperty("process_exit", out var x) && x.GetProperty("process").GetProperty("binary").GetString() == binary, "exit of " + binary);

    [Fact]
    public void Uprobe_and_usdt_events_carry_the_site_and_the_arguments_and_a_non_matching_argument_posts_nothing()
    {
        using var dir = new TempDir();
        var bin = Build(dir, "uprobe-target");
        var usdt = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: usdt-tick
            spec:
              usdts:
              - path: "{bin}"
                provider: satest
                name: tick
                args:
                - index: 0
                  type: int32
                - index: 1
                  type: int64
            """;
        var nomatch = Uprobe("uprobe-nomatch", bin, """
                - matchArgs:
                  - index: 1
                    operator: Equal
                    values: ["nothing-is-called-this"]
            """);
        // Every opt-in field on: the strict parse below covers process_uprobe and process_usdt with all of them.
        using var agent = new AgentProcess(new Dictionary<string, string> { ["u.yaml"] = Uprobe("uprobe-check", bin), ["d.yaml"] = usdt, ["n.yaml"] = nomatch },
            "--enable-process-environment-variables", "--enable-process-cred", "--enable-process-ns", "--enable-ancestors", "base,uprobe,usdt");
        Assert.Contains("Policy uprobe-check loaded", agent.Stderr);

        var r = Run.Wait(bin, ["3"]);
        Assert.Equal((0, "line 0\nline 1\nline 2\n"), (r.Code, r.Stdout));
        WaitForExit(agent, bin);
        Thread.Sleep(300);

        var calls = Bodies(agent, "process_uprobe", "uprobe-check");
        Assert.Equal(3, calls.Count);
        Assert.All(calls, c =>
        {
            Assert.Equal(bin, c.GetProperty("path").GetString());
            Assert.Equal("sa_test_check", c.GetProperty("symbol").GetString());
            Assert.Equal("checked", c.GetProperty("message").GetString());
            Assert.Equal("test", c.GetProperty("tags")[0].GetString());
            Assert.Equal(bin, c.GetProperty("process").GetProperty("binary").GetString());
        });
        Assert.Equal([(0, "plain"), (1, "secret"), (2, "plain")],
            calls.Select(c => (c.GetProperty("args")[0].GetProperty("int_arg").GetInt32(), c.GetProperty("args")[1].GetProperty("string_arg").GetString()!)).Order());

        var ticks = Bodies(agent, "process_usdt", "usdt-tick");
        Assert.Equal(3, ticks.Count);
        Assert.All(ticks, t => Assert.Equal((bin, "satest", "tick"), (t.GetProperty("path").GetString(), t.GetProperty("provider").GetString(), t.GetProperty("name").GetString())));
        Assert.Equal([(0, 1000L), (1, 1001L), (2, 1002L)],
            ticks.Select(t => (t.GetProperty("args")[0].GetProperty("int_arg").GetInt32(), long.Parse(t.GetProperty("args")[1].GetProperty("long_arg").GetString()!))).Order());

        Assert.All(ticks, t => Assert.NotEmpty(t.GetProperty("ancestors").EnumerateArray()));
        Assert.All(calls, c => Assert.True(c.GetProperty("process").TryGetProperty("process_credentials", out _)));
        Assert.Empty(Bodies(agent, "process_uprobe", "uprobe-nomatch"));
        foreach (var line in agent.Events.RawLines)
        {
            Unit.JsonFormatTests.AssertValid(line);
            if (TetragonProtos.SkipReason is null)
                TetragonProtos.AssertTetragonLine(line); // strict parse with Tetragon's .proto files, fields as protojson orders them
        }
    }

    [Fact]
    public void A_sigkill_uprobe_on_an_argument_match_kills_the_program_before_its_next_line()
    {
        using var dir = new TempDir();
        var bin = Build(dir, "uprobe-victim");
        var policy = Uprobe("uprobe-kill", bin, """
                - matchArgs:
                  - index: 1
                    operator: Equal
                    values: ["secret"]
                  matchActions:
                  - action: Sigkill
            """);
        using var agent = new AgentProcess(new Dictionary<string, string> { ["k.yaml"] = policy }, "--export-extensions");

        var r = Run.Wait(bin, ["3"]);
        Assert.Equal((137, "line 0\n"), (r.Code, r.Stdout)); // killed in sa_test_check(1, "secret"), before "line 1"
        var ev = agent.Events.WaitFor(e => e.TryGetProperty("process_uprobe", out _), "uprobe event").GetProperty("process_uprobe");
        Assert.Equal("KPROBE_ACTION_SIGKILL", ev.GetProperty("action").GetString());
        Assert.Equal("secret", ev.GetProperty("args")[1].GetProperty("string_arg").GetString());
        Assert.True(ev.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
    }

    [Fact]
    public void A_raw_tracepoint_on_sched_process_exec_reports_the_executed_binary_from_the_linux_binprm_argument()
    {
        using var dir = new TempDir();
        var bin = Build(dir, "rawtp-target");
        var policy = $"""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: rawtp-exec
            spec:
              tracepoints:
              - subsystem: sched
                event: sched_process_exec
                raw: true
                args:
                - index: 2
                  type: linux_binprm
                selectors:
                - matchArgs:
                  - index: 2
                    operator: Equal
                    values: ["{bin}"]
            """;
        using var agent = new AgentProcess(new Dictionary<string, string> { ["r.yaml"] = policy });
        Assert.Equal(0, Run.Wait(bin, ["1"]).Code);
        Assert.Equal(0, Run.Wait("/usr/bin/true", []).Code);
        WaitForExit(agent, bin);
        Thread.Sleep(300);
        var ev = Assert.Single(Bodies(agent, "process_tracepoint", "rawtp-exec"));
        Assert.Equal(("sched", "sched_process_exec"), (ev.GetProperty("subsys").GetString(), ev.GetProperty("event").GetString()));
        Assert.Equal(bin, ev.GetProperty("args")[0].GetProperty("linux_binprm_arg").GetProperty("path").GetString());
        Assert.Equal(bin, ev.GetProperty("process").GetProperty("binary").GetString());
    }

    [Fact]
    public void Removing_a_uprobe_or_raw_tracepoint_policy_detaches_its_probes_and_leaves_no_attach_point()
    {
        using var dir = new TempDir();
        var bin = Build(dir, "uprobe-detach");
        var features = FeatureProbe.Run();
        PolicyPlan Compile(string yaml)
        {
            var v = Assert.Single(new PolicyValidator(features).ValidateText("p.yaml", yaml));
            Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
            return new PolicyCompiler(features, PolicyCompiler.TraceFsFormats()).Compile(v);
        }
        var plan = Compile(Uprobe("uprobe-detach", bin));
        var raw = Compile("""
            apiVersion: cilium.io/v1alpha1
            kind: TracingPolicy
            metadata:
              name: rawtp-detach
            spec:
              tracepoints:
              - subsystem: sched
                event: sched_process_exec
                raw: true
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["/nonexistent/binary"]
            """);
        string Probes() => Run.Bpftool("perf", "list");
        string Links() => Run.Bpftool("link", "list");
        using var sensor = ProcessSensor.Load(features, 1 << 20);
        using var engine = new PolicyEngine(sensor, Environment.ProcessId);
        var loaded = engine.Load(plan);
        var loadedRaw = engine.Load(raw);
        Assert.Contains(bin, Probes());
        Assert.Contains("sched_process_exec", Links());
        Assert.Equal(2, engine.AttachPoints.Count);
        engine.Unload(loaded);
        engine.Unload(loadedRaw);
        Assert.DoesNotContain(bin, Probes());
        Assert.DoesNotContain("sched_process_exec", Links());
        Assert.Empty(engine.AttachPoints);
        Assert.Empty(engine.Hooks);
    }
}
