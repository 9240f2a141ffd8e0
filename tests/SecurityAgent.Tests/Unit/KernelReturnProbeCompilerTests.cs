using System.Buffers.Binary;
using SecurityAgent.Events;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;

namespace SecurityAgent.Tests.Unit;

/// <summary>Return probes on kernel functions (a kretprobe beside the kprobe) and socket tracking (TrackSock /
/// UntrackSock, as matchActions with argSock and as returnArgAction on a returned sock): what compiles for a kernel with
/// kprobes, the bytes the engine writes for it, the returned sock as the event carries it, and what is refused by name.</summary>
public class KernelReturnProbeCompilerTests
{
    private static ValidatedPolicy Check(string kprobes, KernelFeatures? kernel = null) =>
        Assert.Single(new PolicyValidator(kernel ?? KernelFeatures.Everything, PolicyCompilerTests.Formats) { ForOtherKernel = kernel is null }
            .ValidateText("p.yaml", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n  kprobes:\n" + kprobes));

    private static PolicyPlan Plan(string kprobes)
    {
        var v = Check(kprobes);
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        Assert.Empty(v.Notes);
        return v.Plan!;
    }

    private static byte[] Selector(PolicyPlan plan, int hook = 0, int selector = 0) =>
        PolicyEncoding.Selector(new PlacedHook(1, 1, plan, plan.Hooks[hook], Enforce: true, ScopeId: 0, FollowBits: []), selector, 1, [0, 1, 2, 3]);

    private const string SetUid = """
          - call: __sys_setuid
            syscall: false
            return: true
            args:
            - index: 0
              type: int
            returnArg:
              index: 0
              type: int
            selectors:
            - matchReturnArgs:
              - index: 0
                operator: NotEqual
                values: ["0"]
              matchReturnActions:
              - action: Sigkill
        """;

    private const string SkAlloc = """
          - call: sk_alloc
            syscall: false
            return: true
            args:
            - index: 1
              type: int
            returnArg:
              index: 0
              type: sock
            returnArgAction: TrackSock
          - call: tcp_close
            syscall: false
            args:
            - index: 1
              type: int
            - index: 0
              type: sock
            selectors:
            - matchActions:
              - action: UntrackSock
                argSock: 0
        """;

    [Fact]
    public void A_kernel_function_return_probe_compiles_to_a_kretprobe_with_its_return_filters_and_actions()
    {
        var plan = Plan(SetUid);
        var hook = Assert.Single(plan.Hooks);
        Assert.Equal((Mechanism.Kprobe, "__sys_setuid"), (hook.Mechanism, hook.Target));
        Assert.Equal(new ReturnPlan("int", ArgType.Int, 4, null, "a kretprobe on __sys_setuid"), hook.Return);
        var sel = Assert.Single(hook.Selectors);
        Assert.Equal(Actions.Sigkill | Actions.Post, sel.ReturnActions);
        Assert.Equal([new ReturnFilterPlan(Cmp.NotIn, [0UL])], sel.ReturnArgs.Select(r => r with { Values = [.. r.Values] }).ToList(),
            new ReturnFilterComparer());
        var placed = new PlacedHook(1, 1, plan, hook, true, 0, []);
        Assert.True(PolicyEncoding.Layout([placed], "__sys_setuid").Flags.HasFlag(PolicyWire.PointFlags.Return));
        var b = Selector(plan);
        Assert.Equal(1, b[PolicyWire.Selector.RetHook]);
        Assert.Equal(0, b[PolicyWire.Selector.RetSock]);
        Assert.Contains("return probe: a kretprobe on __sys_setuid reads the return value as returnArg int", PlanExplainer.Explain(plan));
    }

    private sealed class ReturnFilterComparer : IEqualityComparer<ReturnFilterPlan>
    {
        public bool Equals(ReturnFilterPlan? x, ReturnFilterPlan? y) => x!.Cmp == y!.Cmp && x.Values.SequenceEqual(y.Values);
        public int GetHashCode(ReturnFilterPlan obj) => (int)obj.Cmp;
    }

    private const string ModuleRequest = """
          - call: security_kernel_module_request
            syscall: false
            return: true
            args:
            - index: 0
              type: string
            returnArg:
              index: 0
              type: int
            selectors:
            - matchArgs:
              - index: 0
                operator: Equal
                values: ["sa-test-module"]
              matchActions:
              - action: Override
                argError: -1
              matchReturnArgs:
              - index: 0
                operator: Equal
                values: ["-1"]
        """;

    [Fact]
    public void A_return_probe_on_an_overridden_security_function_reads_the_value_the_caller_sees_from_an_fexit_program()
    {
        var plan = Plan(ModuleRequest);
        var hook = Assert.Single(plan.Hooks);
        Assert.Equal((Mechanism.Fentry, "security_kernel_module_request"), (hook.Mechanism, hook.Target));
        Assert.Equal(new ReturnPlan("int", ArgType.Int, 4, null, "an fexit program on security_kernel_module_request"), hook.Return);
        var sel = Assert.Single(hook.Selectors);
        Assert.Equal(-1, sel.Error);
        Assert.Equal([new ReturnFilterPlan(Cmp.In, [ulong.MaxValue])], sel.ReturnArgs.Select(r => r with { Values = [.. r.Values] }).ToList(),
            new ReturnFilterComparer());
        var placed = new PlacedHook(1, 1, plan, hook, true, 0, []);
        Assert.True(PolicyEncoding.Layout([placed], hook.Target).Flags.HasFlag(PolicyWire.PointFlags.Return));
        Assert.Equal(1, Selector(plan)[PolicyWire.Selector.RetHook]);
        var explain = PlanExplainer.Explain(plan);
        Assert.Contains("an fexit program on 'security_kernel_module_request' reads the return value the caller sees (argError when overridden", explain);
        Assert.Contains("return probe: an fexit program on security_kernel_module_request reads the return value as returnArg int", explain);
    }

    [Fact]
    public void Where_the_kernel_lacks_fexit_a_return_probe_on_an_overridden_security_function_is_an_error_at_return()
    {
        var v = Check(ModuleRequest, KernelFeatures.Everything with { Fexit = Availability.No("verifier: unknown func bpf_get_func_ret#184") });
        Assert.False(v.Ok);
        var e = Assert.Single(v.Diagnostics, d => d.Field == "spec.kprobes[0].return");
        Assert.Contains("return: true on 'security_kernel_module_request' with Override needs an fexit program", e.Message);
        Assert.Contains("unknown func bpf_get_func_ret", e.Message);
        // Without return: true the same kernel overrides the function with fmod_ret alone.
        var plain = Check("  - call: security_kernel_module_request\n    syscall: false\n    selectors:\n    - matchActions:\n      - action: Override\n        argError: -1\n",
            KernelFeatures.Everything with { Fexit = Availability.No("no") });
        Assert.True(plain.Ok, string.Join("\n", plain.Diagnostics));
        Assert.Equal(Mechanism.Fentry, Assert.Single(plain.Plan!.Hooks).Mechanism);
    }

    [Fact]
    public void A_returned_sock_with_TrackSock_is_read_at_return_and_tracked_there_whatever_the_return_filters()
    {
        var plan = Plan(SkAlloc);
        var ret = plan.Hooks[0].Return!;
        Assert.Equal((ArgType.Sock, Actions.TrackSock), (ret.KernelType, ret.ArgAction));
        var b = Selector(plan);
        Assert.Equal(1, b[PolicyWire.Selector.RetSock]);
        Assert.Equal((uint)(Actions.Post | Actions.TrackSock), BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(PolicyWire.Selector.RetActions)));
        Assert.Contains("returnArgAction TrackSock: the returned sock becomes the calling process's", PlanExplainer.Explain(plan));
    }

    [Fact]
    public void UntrackSock_with_argSock_names_the_point_slot_of_that_sock_argument()
    {
        var plan = Plan(SkAlloc);
        var close = plan.Hooks[1];
        var sel = Assert.Single(close.Selectors);
        Assert.Equal(0, sel.SockArg);
        Assert.Equal(Actions.UntrackSock | Actions.Post, sel.Actions);
        // The sock is the hook's second argument (slot 1): the kernel reads its sa_sock_info there.
        var b = PolicyEncoding.Selector(new PlacedHook(1, 1, plan, close, Enforce: true, ScopeId: 0, FollowBits: []), 0, 1, [2, 3]);
        Assert.Equal(3, b[PolicyWire.Selector.SockSlot]);
        Assert.Equal((uint)(Actions.UntrackSock | Actions.Post), BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(PolicyWire.Selector.Actions)));
    }

    [Theory]
    [InlineData("returnArg:\n      index: 0\n      type: string", "spec.kprobes[0].returnArg.type", "a kernel function's return value is read here as an integer")]
    [InlineData("returnArgAction: UntrackSock\n    returnArg:\n      index: 0\n      type: int", "spec.kprobes[0].returnArgAction", "needs returnArg type sock")]
    public void What_a_kretprobe_cannot_read_is_refused_by_name(string returnPart, string field, string message)
    {
        var v = Check($"""
              - call: sk_alloc
                syscall: false
                return: true
                {returnPart}
            """);
        Assert.False(v.Ok);
        Assert.Contains(message, Assert.Single(v.Diagnostics, d => d.Field == field).Message);
    }

    [Fact]
    public void TrackSock_on_an_argument_that_is_not_a_sock_is_an_error_and_matchReturnArgs_on_a_returned_sock_is_a_named_gap()
    {
        var bad = Check(SkAlloc.Replace("argSock: 0", "argSock: 1"));
        Assert.Contains(bad.Diagnostics, d => d.Message.Contains("TrackSock") is false && d.Message.Contains("UntrackSock takes the sock of argument 1"));

        var gap = Check(SkAlloc.Replace("    returnArgAction: TrackSock\n", "    returnArgAction: TrackSock\n    selectors:\n    - matchReturnArgs:\n      - index: 0\n        operator: Equal\n        values: [\"0\"]\n"));
        Assert.Contains(gap.Notes, n => n.Message.Contains("matchReturnArgs on a returned sock"));
    }

    [Fact]
    public void Here_without_kprobes_a_kernel_function_return_probe_is_refused_at_its_hook()
    {
        var v = Check(SkAlloc, PolicyValidatorTests.OurKernel);
        Assert.False(v.Ok);
        var d = Assert.Single(v.Diagnostics, d => d.Field == "spec.kprobes[0].call");
        Assert.StartsWith("needs kprobes or fentry to hook 'sk_alloc'", d.Message);
    }

    [Fact]
    public void A_return_record_carries_the_returned_sock_after_the_data_and_renders_it_as_sock_arg()
    {
        var raw = new byte[PolicyWire.Event.Data + PolicyWire.SockInfo.Length];
        raw[Wire.Header.Op] = (byte)Op.Kprobe;
        raw[PolicyWire.Event.Flags] = (byte)PolicyWire.EventFlags.Return;
        BinaryPrimitives.WriteUInt64LittleEndian(raw.AsSpan(PolicyWire.Event.Ret), 0xffff888012345678);
        var sock = raw.AsSpan(PolicyWire.Event.Data);
        BinaryPrimitives.WriteUInt16LittleEndian(sock[PolicyWire.SockInfo.Local..], 2); // AF_INET
        BinaryPrimitives.WriteUInt16LittleEndian(sock[PolicyWire.SockInfo.Peer..], 2);
        BinaryPrimitives.WriteUInt64LittleEndian(sock[PolicyWire.SockInfo.Cookie..], 0xffff888012345678);
        var e = EventDecoder.Decode(raw).Policy;
        Assert.Equal(PolicyWire.SockInfo.Length, e.ReturnData!.Length);
        var arg = Export.PolicyArgs.RenderReturn(new ReturnPlan("sock", ArgType.Sock, 8, null, "a kretprobe on sk_alloc"), e.Return, e.ReturnData);
        Assert.Equal("sock_arg", arg.Kind);
        Assert.Contains("AF_INET", System.Text.Json.JsonSerializer.Serialize(arg.Value));
    }
}
