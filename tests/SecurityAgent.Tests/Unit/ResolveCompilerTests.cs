using System.Buffers.Binary;
using SecurityAgent.Events;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;

namespace SecurityAgent.Tests.Unit;

/// <summary>Tetragon's resolve: (a field path followed from a kernel function's argument in this kernel's BTF) and the
/// CapabilitiesGained operator: what the compiler makes of them, and the refusals naming the field at file:line:column.</summary>
public sealed class ResolveCompilerTests
{
    private static ValidatedPolicy Check(string spec, bool otherKernel = false) =>
        Assert.Single(new PolicyValidator(KernelFeatures.Everything, Formats) { ForOtherKernel = otherKernel }
            .ValidateText("p.yaml", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n" + spec));

    /// <summary>The test formats, and sched_process_exec (the raw tracepoint only needs it to exist).</summary>
    private static TracepointFormat? Formats(string subsys, string ev) => (subsys, ev) == ("sched", "sched_process_exec")
        ? new TracepointFormat(subsys, ev, 1, [new("common_type", "unsigned short", 0, 2, false)]) : PolicyCompilerTests.Formats(subsys, ev);

    private static PolicyPlan Plan(string spec, bool otherKernel = false)
    {
        var v = Check(spec, otherKernel);
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        return v.Plan!;
    }

    private const string Grandparent = """
          lsmhooks:
          - hook: "bprm_check_security"
            args:
            - index: 0
              type: "string"
              resolve: "mm.owner.real_parent.real_parent.comm"
            selectors:
            - matchActions:
              - action: Post
        """;

    private static string Capset(string firstType = "cap_effective", string args = "[0, 1]", string resolve = "\n      resolve: \"cap_effective\"") => $"""
          kprobes:
          - call: "security_capset"
            syscall: false
            args:
            - index: 1
              type: "{firstType}"{resolve}
            - index: 2
              type: "cap_effective"
            selectors:
            - matchArgs:
              - args: {args}
                operator: "CapabilitiesGained"
        """;

    [Fact]
    public void A_resolve_path_on_an_lsm_hook_becomes_the_offsets_and_pointer_reads_of_this_kernels_BTF()
    {
        var arg = Assert.Single(Assert.Single(Plan(Grandparent).Hooks).Args);
        Assert.Equal(ArgType.KString, arg.KernelType);
        var r = arg.Resolve!;
        Assert.Equal("struct linux_binprm *", r.From);
        Assert.Equal("char[16]", r.Leaf);
        // mm, owner, real_parent, real_parent are pointers (read); comm is an array inside the task (its address).
        Assert.Equal([true, true, true, true, false], r.Steps!.Select(s => s.Deref));
        Assert.Equal(24u, r.Steps![0].Offset); // linux_binprm: vma, vma_pages, argmin, then mm
        Assert.Equal(r.Steps[2].Offset, r.Steps[3].Offset);
    }

    [Fact]
    public void A_field_the_struct_does_not_have_is_refused_at_the_resolve_with_the_struct_named()
    {
        var v = Check(Grandparent.Replace("mm.owner.real_parent.real_parent.comm", "mm.owner.no_such_field.comm"));
        var e = Assert.Single(v.Diagnostics);
        Assert.Equal(("spec.lsmhooks[0].args[0].resolve", 11, 16), (e.Field, e.Line, e.Column));
        Assert.Contains("struct task_struct has no field 'no_such_field'", e.Message);
    }

    [Fact]
    public void A_raw_tracepoint_argument_is_followed_from_the_tracepoint_functions_prototype()
    {
        var hook = Assert.Single(Plan("""
              tracepoints:
              - subsystem: sched
                event: sched_process_exec
                raw: true
                args:
                - index: 2
                  type: path
                  resolve: "file.f_path"
                - index: 0
                  type: int
                  resolve: "real_parent.tgid"
            """).Hooks);
        var path = hook.Args[0].Resolve!;
        Assert.Equal("struct linux_binprm *", path.From);
        Assert.Equal([true, false], path.Steps!.Select(s => s.Deref)); // the file pointer read, f_path's address
        var tgid = hook.Args[1].Resolve!;
        Assert.Equal("struct task_struct *", tgid.From);
        Assert.Equal([true, true], tgid.Steps!.Select(s => s.Deref)); // real_parent read, then the integer
        Assert.Equal((ArgType.Int, 4), (hook.Args[1].KernelType, hook.Args[1].Size));
    }

    [Fact]
    public void Arrays_are_indexed_and_an_index_past_their_end_is_refused()
    {
        var ok = Plan(Grandparent.Replace("mm.owner.real_parent.real_parent.comm", "mm.owner.comm[3]").Replace("\"string\"", "uint8"));
        var step = Assert.Single(ok.Hooks).Args[0].Resolve!.Steps![^1];
        Assert.True(step.Deref); // a char is an integer leaf: its value is read
        var v = Check(Grandparent.Replace("mm.owner.real_parent.real_parent.comm", "mm.owner.comm[16]"));
        Assert.Contains("index 16 is out of bounds: 'comm' is a char[16]", Assert.Single(v.Diagnostics).Message);
    }

    [Fact]
    public void An_integer_type_on_a_struct_field_is_refused_naming_the_fields_type()
    {
        var v = Check(Grandparent.Replace("mm.owner.real_parent.real_parent.comm", "file.f_path").Replace("\"string\"", "int"));
        var e = Assert.Single(v.Diagnostics);
        Assert.Equal("spec.lsmhooks[0].args[0].type", e.Field);
        Assert.Contains("ends at a const struct path: an integer type reads a number", e.Message);
    }

    [Fact]
    public void Resolve_on_a_syscall_tracepoint_is_refused_as_it_passes_no_kernel_pointer()
    {
        var v = Check("""
              tracepoints:
              - subsystem: syscalls
                event: sys_enter_openat
                args:
                - index: 6
                  type: int
                  resolve: "f_path"
            """);
        Assert.Contains(v.Diagnostics, e => e.Field == "spec.tracepoints[0].args[0].resolve" && e.Message.Contains("does not pass"));
    }

    [Fact]
    public void For_another_kernel_the_path_is_accepted_and_explain_says_it_is_followed_in_the_nodes_BTF()
    {
        var plan = Plan(Grandparent, otherKernel: true);
        Assert.Null(Assert.Single(Assert.Single(plan.Hooks).Args).Resolve!.Steps);
        Assert.Contains("resolve 'mm.owner.real_parent.real_parent.comm': followed in the node's BTF when the policy loads there", PlanExplainer.Explain(plan));
        Assert.Contains("resolve 'mm.owner.real_parent.real_parent.comm' from struct linux_binprm * to a char[16]", PlanExplainer.Explain(Plan(Grandparent)));
    }

    [Fact]
    public void An_empty_resolve_as_Tetragon_generates_it_reads_the_argument_itself()
    {
        var arg = Assert.Single(Assert.Single(Plan(Grandparent.Replace("mm.owner.real_parent.real_parent.comm", "").Replace("\"string\"", "linux_binprm")).Hooks).Args);
        Assert.Null(arg.Resolve);
        Assert.Equal(ArgType.Bprm, arg.KernelType);
    }

    [Fact]
    public void Resolved_reads_are_encoded_as_their_sa_resolve_entry_and_equal_reads_share_a_slot()
    {
        var hook = Assert.Single(Plan(Grandparent).Hooks);
        var placed = new PlacedHook(1, 1, Plan(Grandparent), hook, Enforce: false, ScopeId: 0, FollowBits: []);
        var layout = PolicyEncoding.Layout([placed, placed with { HookId = 2 }], hook.Target);
        var read = Assert.Single(layout.Args);
        Assert.Equal((ArgType.Resolved, 0), (read.Type, read.Offset));
        var key = PolicyEncoding.ResolveKey(hook.Args[0]);
        var config = PolicyEncoding.Generation(1, 1, layout, [placed], null, new Dictionary<string, byte> { [key] = 7 }).Config.Value;
        Assert.Equal(7, config[PolicyWire.Point.Args + PolicyWire.PointArg.Size]);
        Assert.Equal((byte)ArgType.Resolved, config[PolicyWire.Point.Args + PolicyWire.PointArg.Type]);
        var e = PolicyEncoding.ResolveEntry(hook.Args[0]);
        Assert.Equal(((byte)ArgType.KString, 5), (e[PolicyWire.Resolve.Leaf + PolicyWire.PointArg.Type], (int)e[PolicyWire.Resolve.Nsteps]));
        Assert.Equal(0b01111u, BinaryPrimitives.ReadUInt32LittleEndian(e.AsSpan(PolicyWire.Resolve.Deref)));
        Assert.Equal(24u, BinaryPrimitives.ReadUInt32LittleEndian(e.AsSpan(PolicyWire.Resolve.Off)));
    }

    [Fact]
    public void CapabilitiesGained_compares_the_old_set_in_its_first_arg_with_the_new_set_in_its_second()
    {
        var plan = Plan(Capset());
        var hook = Assert.Single(plan.Hooks);
        Assert.Equal(["cap_effective", "cap_effective"], hook.Args.Select(a => a.Type));
        Assert.NotNull(hook.Args[0].Resolve);
        var f = Assert.Single(Assert.Single(hook.Selectors).Args);
        Assert.Equal((0, Cmp.CapsGained, (int?)null, 1ul), (f.Slot, f.Cmp, f.ValueSet, f.Value));
        var placed = new PlacedHook(1, 1, plan, hook, Enforce: false, ScopeId: 0, FollowBits: []);
        var layout = PolicyEncoding.Layout([placed], hook.Target);
        var b = PolicyEncoding.Selector(placed, 0, 1, layout.HookSlots[0]);
        Assert.Equal(1, b[PolicyWire.Selector.Ncmps]);
        Assert.Equal((byte)Cmp.CapsGained, b[PolicyWire.Selector.Cmps + PolicyWire.IntCmp.Cmp]);
        Assert.Equal((ulong)layout.HookSlots[0][1], BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(PolicyWire.Selector.Cmps + PolicyWire.IntCmp.Value)));
        Assert.Contains("CapabilitiesGained arg slot 1: the set in slot 1 (new) holds a capability the set in slot 0 (old) lacks", PlanExplainer.Explain(plan));
    }

    [Fact]
    public void CapabilitiesGained_on_a_cred_is_refused_pointing_to_the_cap_effective_resolve()
    {
        var v = Check(Capset(firstType: "cred", resolve: ""));
        var e = Assert.Single(v.Diagnostics);
        Assert.Equal("spec.kprobes[0].selectors[0].matchArgs[0].args[0]", e.Field);
        Assert.Contains("args[0] is of type 'cred' (read a cred's set with type cap_effective and resolve: cap_effective", e.Message);
    }

    [Fact]
    public void CapabilitiesGained_with_one_arg_is_refused_as_it_compares_two()
    {
        var v = Check(Capset(args: "[0]"));
        Assert.Contains("compares two capability sets: args: [old, new]", Assert.Single(v.Diagnostics).Message);
    }
}
