using System.Text.Json;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Integration;

/// <summary>usdt Set: the agent writes argValue into the probed program's variable that the USDT note places in memory,
/// against a small C program built in the test's temp dir (the policy attaches to that binary only).</summary>
[Collection("kernel")]
public class UsdtSetTests
{
    /// <summary>For i in 0..n-1: fires satest:check(ret, i) with `ret` a volatile int in memory ("-4@N(%rsp)") and i in
    /// a register ("-4@%eax"), then prints "ret R" with the value ret holds after the probe. Without a probe R is 0.
    /// The note is written as &lt;sys/sdt.h&gt; writes it.</summary>
    private static readonly string Source = $$"""
        #include <stdio.h>
        #include <stdlib.h>

        {{CProgram.Usdt2Macro("-4@%[x] -4@%[y]", "m", "r")}}

        int main(int argc, char **argv)
        {
            int n = argc > 1 ? atoi(argv[1]) : 3;
            for (int i = 0; i < n; i++) {
                volatile int ret = 0;
                SA_USDT2(satest, check, ret, i);
                printf("ret %d\n", ret);
                fflush(stdout);
            }
            return 0;
        }
        """;

    /// <param name="argIndex">The entry of args Set writes: 0 is note argument 0 (ret, in memory), 1 is note argument 1 (i, a register).</param>
    private static string Policy(string name, string binary, string mode = "enforce", int argIndex = 0) => $"""
        apiVersion: cilium.io/v1alpha1
        kind: TracingPolicy
        metadata:
          name: {name}
        spec:
          options:
          - name: policy-mode
            value: {mode}
          usdts:
          - path: "{binary}"
            provider: satest
            name: check
            args:
            - index: 0
              type: int32
            - index: 1
              type: int32
            selectors:
            - matchArgs:
              - index: 1
                operator: Equal
                values: ["1"]
              matchActions:
              - action: Set
                argIndex: {argIndex}
                argValue: 32
        """;

    private static List<JsonElement> Events(AgentProcess agent, string policy) =>
        agent.Events.Where(e => e.TryGetProperty("process_usdt", out var b) && b.GetProperty("policy_name").GetString() == policy)
            .Select(e => e.GetProperty("process_usdt")).ToList();

    private static void WaitForExit(AgentProcess agent, string binary) =>
        agent.Events.WaitFor(e => e.TryGetProperty("process_exit", out var x) && x.GetProperty("process").GetProperty("binary").GetString() == binary, "exit of " + binary);

    [RequiresKernel(Mechanism.Uprobe, ProbeWriteUser = true)]
    public void Set_writes_arg_value_into_the_programs_variable_on_the_matching_call_only_and_the_event_says_so()
    {
        using var dir = new TempDir();
        var bin = CProgram.Build(dir, "usdt-set-target", Source, "-O2");
        var before = Run.Wait(bin, ["3"]);
        Assert.Equal((0, "ret 0\nret 0\nret 0\n"), (before.Code, before.Stdout)); // nothing attached: ret stays 0

        using var agent = new AgentProcess(new Dictionary<string, string> { ["s.yaml"] = Policy("usdt-set", bin) }, "--export-extensions");
        Assert.Contains("Policy usdt-set loaded", agent.Stderr);
        var r = Run.Wait(bin, ["3"]);
        Assert.Equal((0, "ret 0\nret 32\nret 0\n"), (r.Code, r.Stdout)); // the probe with i == 1 matched: the program read 32
        WaitForExit(agent, bin);
        Thread.Sleep(300);

        var ev = Assert.Single(Events(agent, "usdt-set"));
        Assert.Equal("KPROBE_ACTION_SET", ev.GetProperty("action").GetString());
        Assert.Equal((0, 1), (ev.GetProperty("args")[0].GetProperty("int_arg").GetInt32(), ev.GetProperty("args")[1].GetProperty("int_arg").GetInt32())); // as the probe saw them
        Assert.True(ev.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
        foreach (var line in agent.Events.RawLines)
            Unit.JsonFormatTests.AssertValid(line);
    }

    [RequiresKernel(Mechanism.Uprobe, ProbeWriteUser = true)]
    public void Set_in_monitor_mode_writes_nothing_and_the_event_says_it_would_have()
    {
        using var dir = new TempDir();
        var bin = CProgram.Build(dir, "usdt-set-monitor", Source, "-O2");
        using var agent = new AgentProcess(new Dictionary<string, string> { ["s.yaml"] = Policy("usdt-set-monitor", bin, "monitor") }, "--export-extensions");
        var r = Run.Wait(bin, ["3"]);
        Assert.Equal((0, "ret 0\nret 0\nret 0\n"), (r.Code, r.Stdout));
        WaitForExit(agent, bin);
        Thread.Sleep(300);
        var ev = Assert.Single(Events(agent, "usdt-set-monitor"));
        Assert.Equal("KPROBE_ACTION_SET", ev.GetProperty("action").GetString());
        Assert.False(ev.GetProperty("securityagent").GetProperty("enforced").GetBoolean());
    }

    [Fact]
    public void Set_on_an_argument_the_note_passes_in_a_register_is_refused_at_its_arg_index_naming_the_operand()
    {
        using var dir = new TempDir();
        var bin = CProgram.Build(dir, "usdt-set-register", Source, "-O2");
        var v = Assert.Single(new PolicyValidator(Unit.PolicyValidatorTests.OurKernel, tracefs: null).ValidateText("s.yaml", Policy("usdt-set-register", bin, argIndex: 1)));
        var d = Assert.Single(v.Diagnostics, d => d.Field == "spec.usdts[0].selectors[0].matchActions[0].argIndex");
        Assert.Contains("gives argument 1 as '-4@%", d.Message);
        Assert.Contains("a register, which Set cannot change", d.Message);
        Assert.False(v.Ok);

        var ok = Assert.Single(new PolicyValidator(Unit.PolicyValidatorTests.OurKernel, tracefs: null).ValidateText("s.yaml", Policy("usdt-set-memory", bin)));
        Assert.True(ok.Ok, string.Join("\n", ok.Diagnostics));
        Assert.Equal(new UsdtSetPlan(0, 4, 32), ok.Plan!.Hooks[0].Selectors[0].Set); // note argument 0, 4 bytes as the note says
    }
}
