using System.Buffers.Binary;
using SecurityAgent.Events;
using SecurityAgent.Policies;

namespace SecurityAgent.Tests.Unit;

/// <summary>Return probes on syscalls (Tetragon's `return: true`, returnArg, matchReturnArgs, matchReturnActions,
/// returnArgAction): what compiles to the syscall's exit tracepoint, what is refused by name, and the bytes the
/// engine writes for them.</summary>
public class ReturnProbeCompilerTests
{
    private static TracepointFormat? Formats(string subsys, string ev) => PolicyCompilerTests.Formats(subsys, ev)
        ?? (subsys == "syscalls" && ev is "sys_exit_openat" ? new TracepointFormat(subsys, ev, 2, [new("ret", "long", 16, 8, true)]) : null);

    private static Validated Check(string kprobe)
    {
        var v = Assert.Single(new PolicyValidator(PolicyValidatorTests.OurKernel, Formats)
            .ValidateText("p.yaml", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n  kprobes:\n" + kprobe));
        return new Validated(v.Ok, v.Plan, v.Diagnostics);
    }

    private sealed record Validated(bool Ok, PolicyPlan? Plan, IReadOnlyList<PolicyDiagnostic> Diagnostics);

    private const string OpenAt = """
          - call: sys_openat
            syscall: true
            return: true
            args:
            - index: 1
              type: string
            returnArg:
              index: 0
              type: int
        """;

    private static string WithSelector(string selector) => OpenAt + "\n    selectors:\n" + selector;

    [Fact]
    public void A_syscall_return_probe_reads_the_return_value_at_the_syscalls_exit_tracepoint_with_its_filters_and_actions()
    {
        var v = Check(WithSelector("""
                - matchReturnArgs:
                  - index: 0
                    operator: LessThan
                    values: ["0"]
                  - index: 0
                    operator: NotEqual
                    values: ["-13", "-1"]
                  matchReturnActions:
                  - action: Sigkill
            """));
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        var hook = Assert.Single(v.Plan!.Hooks);
        Assert.Equal("syscalls/sys_enter_openat", hook.Target);
        Assert.Equal(new ReturnPlan("int", ArgType.Int, 4, null, "syscalls/sys_exit_openat"), hook.Return);
        var sel = Assert.Single(hook.Selectors);
        Assert.Equal(Actions.Post, sel.Actions);
        Assert.Equal(Actions.Sigkill | Actions.Post, sel.ReturnActions);
        Assert.Equal(Cmp.LessThan, sel.ReturnArgs[0].Cmp);
        Assert.Equal(0UL, sel.ReturnArgs[0].Values[0]);
        Assert.Equal(Cmp.NotIn, sel.ReturnArgs[1].Cmp);
        Assert.Equal([unchecked((ulong)-13L), ulong.MaxValue], sel.ReturnArgs[1].Values);

        var explained = PlanExplainer.Explain(v.Plan);
        Assert.Contains("return probe: syscalls/sys_exit_openat reads the return value as returnArg int", explained);
        Assert.Contains("at return: return < 0 and return not in [-13, -1] -> actions Post, Sigkill", explained);
    }

    [Fact]
    public void The_engine_marks_the_point_and_writes_the_return_filters_into_the_selector_record()
    {
        var v = Check(WithSelector("""
                - matchReturnArgs:
                  - index: 0
                    operator: Equal
                    values: ["4294967294"]
            """));
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        var plan = v.Plan!;
        var placed = new PlacedHook(1, 1, plan, plan.Hooks[0], plan.Enforce, 0, []);
        var layout = PolicyEncoding.Layout([placed], "openat");
        Assert.True(layout.Flags.HasFlag(PolicyWire.PointFlags.Return));
        var rec = PolicyEncoding.Selector(placed, 0, 1, [0]);
        Assert.Equal(1, rec[PolicyWire.Selector.RetHook]);
        Assert.Equal(1, rec[PolicyWire.Selector.RetNcmps]);
        Assert.Equal((uint)Actions.Post, BinaryPrimitives.ReadUInt32LittleEndian(rec.AsSpan(PolicyWire.Selector.RetActions)));
        int o = PolicyWire.Selector.RetCmps;
        Assert.Equal((byte)Cmp.In, rec[o + PolicyWire.RetCmp.Cmp]);
        Assert.Equal(1, rec[o + PolicyWire.RetCmp.IsSigned]);
        // An int returnArg's value is its 32-bit pattern: 4294967294 is -2, compared with the 64-bit return value.
        Assert.Equal(-2L, BinaryPrimitives.ReadInt64LittleEndian(rec.AsSpan(o + PolicyWire.RetCmp.Values)));
    }

    [Fact]
    public void A_policy_without_return_probes_leaves_the_point_without_the_return_program()
    {
        var v = Check("""
              - call: sys_openat
                syscall: true
                args:
                - index: 1
                  type: string
            """);
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        var placed = new PlacedHook(1, 1, v.Plan!, v.Plan!.Hooks[0], true, 0, []);
        Assert.False(PolicyEncoding.Layout([placed], "openat").Flags.HasFlag(PolicyWire.PointFlags.Return));
        Assert.Null(v.Plan.Hooks[0].Return);
    }

    [Theory]
    [InlineData("return: true\n    args:", "spec.kprobes[0].return", "needs a returnArg")]
    [InlineData("return: true\n    returnArg:\n      index: 0\n      type: string\n    args:", "spec.kprobes[0].returnArg.type", "returns an integer")]
    [InlineData("return: true\n    returnArgAction: TrackSock\n    returnArg:\n      index: 0\n      type: int\n    args:", "spec.kprobes[0].returnArgAction", "struct sock *")]
    [InlineData("return: true\n    returnArgAction: Post\n    returnArg:\n      index: 0\n      type: int\n    args:", "spec.kprobes[0].returnArgAction", "not TrackSock or UntrackSock")]
    public void What_a_syscall_return_probe_cannot_carry_is_refused_by_name(string returnPart, string field, string message)
    {
        var v = Check($"""
              - call: sys_openat
                syscall: true
                {returnPart}
                - index: 1
                  type: string
            """);
        Assert.False(v.Ok);
        var d = Assert.Single(v.Diagnostics, d => d.Field == field);
        Assert.Contains(message, d.Message);
    }

    [Fact]
    public void A_string_operator_on_a_syscalls_return_value_is_refused()
    {
        var v = Check(WithSelector("""
                - matchReturnArgs:
                  - index: 0
                    operator: Prefix
                    values: ["/etc"]
            """));
        Assert.False(v.Ok);
        Assert.Contains(v.Diagnostics, d => d.Field.EndsWith("matchReturnArgs[0].operator") && d.Message.Contains("does not apply to a syscall's return value"));
    }

    [Fact]
    public void Override_at_return_of_a_syscall_is_refused_naming_the_missing_kprobe()
    {
        var v = Check(WithSelector("""
                - matchReturnActions:
                  - action: Override
                    argError: -1
            """));
        Assert.False(v.Ok);
        Assert.Contains(v.Diagnostics, d => d.Field.EndsWith("matchReturnActions[0].action") && d.Message.Contains("no kprobes"));
    }
}

/// <summary>The `return` and `return_action` fields of a return probe's process_kprobe, in protojson names and
/// encodings (int_arg a number, size_arg a 64-bit string), valid against the event schema.</summary>
public class ReturnProbeEventTests
{
    [Theory]
    [InlineData("int", -2L, "{\"int_arg\":-2}")]
    [InlineData("size_t", 4096L, "{\"size_arg\":\"4096\"}")]
    [InlineData("long", -9L, "{\"long_arg\":\"-9\"}")]
    public void A_return_probes_event_carries_return_typed_by_returnArg_and_return_action(string type, long value, string json)
    {
        var (kt, size) = ArgumentLayout.KernelType(type, new TracepointField("ret", "long", 0, 8, true));
        var ret = new ReturnPlan(type, kt, size, null, "syscalls/sys_exit_openat");
        var hook = new HookPlan(HookKind.Kprobe, SecurityAgent.Kernel.Mechanism.Tracepoint, "syscalls/sys_enter_openat", "__x64_sys_openat", "", [], [], null, []) { Return = ret };
        var p = new SecurityAgent.Processes.ProcessInfo
        {
            ExecId = SecurityAgent.Processes.ExecId.Make("n1", 1000, 20), Pid = 20, Tid = 20, StartTime = 1, Ktime = 1, Binary = "/usr/bin/cat", Args = ["cat"],
            Cwd = "/", Creds = new Credentials(0, 0, 0, 0), Caps = new Capabilities(0, 0, 0),
            Origin = SecurityAgent.Processes.ProcessOrigin.Exec,
        };
        var e = new SecurityAgent.Export.PolicyMatchEvent(2, p, null, "p1", hook, "KPROBE_ACTION_POST", true, true, false, "kernel", [])
        {
            Return = SecurityAgent.Export.PolicyArgs.RenderReturn(ret, value), ReturnAction = "KPROBE_ACTION_SIGKILL",
        };
        var line = System.Text.Encoding.UTF8.GetString(new SecurityAgent.Export.JsonEventFormatter("n1", new SecurityAgent.Export.BootClock(1), new SecurityAgent.Export.EventFormat()).Render(e));
        JsonFormatTests.AssertValid(line);
        var k = System.Text.Json.JsonDocument.Parse(line).RootElement.GetProperty("process_kprobe");
        Assert.Equal(json, k.GetProperty("return").GetRawText());
        Assert.Equal("KPROBE_ACTION_SIGKILL", k.GetProperty("return_action").GetString());
    }
}
