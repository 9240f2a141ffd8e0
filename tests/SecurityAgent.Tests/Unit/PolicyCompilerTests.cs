using System.Buffers.Binary;
using SecurityAgent.Events;
using SecurityAgent.Kernel;
using SecurityAgent.Policies;

namespace SecurityAgent.Tests.Unit;

public class PolicyCompilerTests
{
    /// <summary>sys_enter_openat and sys_enter_connect as this kernel's tracefs describes them.</summary>
    internal static TracepointFormat? Formats(string subsys, string ev) => (subsys, ev) switch
    {
        ("syscalls", "sys_enter_openat") => Syscall(ev, ("int", "dfd"), ("const char *", "filename"), ("int", "flags"), ("umode_t", "mode")),
        ("syscalls", "sys_enter_connect") => Syscall(ev, ("int", "fd"), ("struct sockaddr *", "uservaddr"), ("int", "addrlen")),
        ("syscalls", "sys_enter_setuid") => Syscall(ev, ("uid_t", "uid")),
        _ => null,
    };

    internal static TracepointFormat Syscall(string ev, params (string CType, string Name)[] args)
    {
        var fields = new List<TracepointField>
        {
            new("common_type", "unsigned short", 0, 2, false), new("common_flags", "unsigned char", 2, 1, false),
            new("common_preempt_count", "unsigned char", 3, 1, false), new("common_pid", "int", 4, 4, true),
            new("__syscall_nr", "int", 8, 4, true),
        };
        for (int i = 0; i < args.Length; i++)
            fields.Add(new(args[i].Name, args[i].CType, 16 + 8 * i, 8, false));
        return new TracepointFormat("syscalls", ev, 1, fields);
    }

    private static PolicyPlan Compile(string yaml, KernelFeatures? f = null)
    {
        var v = Assert.Single(new PolicyValidator(f ?? PolicyValidatorTests.OurKernel, tracefs: null).ValidateText("p.yaml", yaml));
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        return new PolicyCompiler(f ?? PolicyValidatorTests.OurKernel, Formats).Compile(v);
    }

    [Fact]
    public void A_tracepoint_argument_is_read_at_its_format_offset_and_its_selector_becomes_value_sets()
    {
        var plan = Compile(Support.TestPolicies.OpenatKill("p", "/tmp/x/cat", "/etc/shadow"));
        var hook = Assert.Single(plan.Hooks);
        Assert.Equal((Mechanism.Tracepoint, "syscalls/sys_enter_openat"), (hook.Mechanism, hook.Target));
        var arg = Assert.Single(hook.Args);
        Assert.Equal((6, 24, ArgType.String), (arg.Index, arg.Offset, arg.KernelType));
        var sel = Assert.Single(hook.Selectors);
        Assert.Equal(Actions.Post | Actions.Sigkill, sel.Actions);
        Assert.Equal(Cmp.In, sel.BinaryCmp);
        Assert.Equal(new ValueSet(ValueSetKind.StringExact, ["/tmp/x/cat"]).Values, plan.ValueSets[sel.BinaryValueSet!.Value].Values);
        var f = Assert.Single(sel.Args);
        Assert.Equal(Cmp.Prefix, f.Cmp);
        Assert.Equal(ValueSetKind.StringPrefix, plan.ValueSets[f.ValueSet!.Value].Kind);
        Assert.True(plan.Enforce);
    }

    [Fact]
    public void A_syscall_kprobe_runs_on_the_syscall_tracepoint_with_the_same_argument_meaning()
    {
        var plan = Compile(Support.TestPolicies.SyscallKprobeKill("p", "/tmp/x/cat", "/etc/shadow"));
        var hook = Assert.Single(plan.Hooks);
        Assert.Equal(HookKind.Kprobe, hook.Kind);
        Assert.Equal("syscalls/sys_enter_openat", hook.Target);
        Assert.Equal("__x64_sys_openat", hook.Name);
        Assert.Equal(24, hook.Args[0].Offset); // function argument 1 (filename) = format field 6
        Assert.Contains("no kprobes", hook.Why);
    }

    [Fact]
    public void Monitor_mode_is_carried_into_the_plan()
    {
        Assert.False(Compile(Support.TestPolicies.OpenatKill("p", "/b", "/x", mode: "monitor")).Enforce);
    }

    [Fact]
    public void A_non_syscall_kprobe_on_a_kernel_without_kprobes_fails_with_the_reason_and_position()
    {
        var yaml = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n  kprobes:\n  - call: fd_install\n    syscall: false\n";
        var v = Assert.Single(new PolicyValidator(KernelFeatures.Everything, tracefs: null).ValidateText("p.yaml", yaml));
        var e = Assert.Throws<PolicyCompileException>(() => new PolicyCompiler(PolicyValidatorTests.OurKernel, Formats).Compile(v));
        var d = Assert.Single(e.Diagnostics);
        Assert.Equal(("spec.kprobes[0].call", 7), (d.Field, d.Line));
        Assert.StartsWith("needs kprobes or fentry", d.Message);
    }

    [Fact]
    public void An_lsm_file_open_policy_is_refused_on_a_kernel_without_bpf_lsm_with_the_reason()
    {
        var yaml = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n  lsmhooks:\n  - hook: file_open\n    args:\n    - index: 0\n      type: file\n";
        var v = Assert.Single(new PolicyValidator(PolicyValidatorTests.OurKernel, tracefs: null).ValidateText("p.yaml", yaml));
        var d = Assert.Single(v.Diagnostics);
        Assert.Equal(("spec.lsmhooks[0].hook", 7), (d.Field, d.Line));
        Assert.StartsWith("needs BPF LSM", d.Message);
        // ... and compiles to a BPF LSM hook where the kernel has one.
        var v2 = Assert.Single(new PolicyValidator(KernelFeatures.Everything, tracefs: null).ValidateText("p.yaml", yaml));
        var hook = Assert.Single(new PolicyCompiler(KernelFeatures.Everything, Formats).Compile(v2).Hooks);
        Assert.Equal((Mechanism.Lsm, ArgType.File), (hook.Mechanism, hook.Args[0].KernelType));
    }

    [Fact]
    public void Parent_binary_rules_leave_the_decision_to_user_space_and_the_kernel_only_posts()
    {
        var yaml = Support.TestPolicies.OpenatKill("p", "/b", "/x").Replace("      matchActions:", "      matchParentBinaries:\n      - operator: In\n        values: [\"/usr/bin/bash\"]\n      matchActions:");
        var plan = Compile(yaml);
        var sel = plan.Hooks[0].Selectors[0];
        Assert.False(sel.KernelOnly);
        var bytes = PolicyEncoding.Selector(new PlacedHook(1, 1, plan, plan.Hooks[0], Enforce: true, ScopeId: 0, FollowBits: []), 0, 1, [0]);
        Assert.Equal((uint)Actions.Post, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(PolicyWire.Selector.Actions)));
    }

    [Fact]
    public void The_explanation_names_the_mechanism_the_reason_and_every_map_entry()
    {
        var text = PlanExplainer.Explain(Compile(Support.TestPolicies.SyscallKprobeKill("shadow", "/tmp/x/cat", "/etc/shadow")));
        Assert.Contains("mechanism: tracepoint syscalls/sys_enter_openat", text);
        Assert.Contains("why: syscall kprobe", text);
        Assert.Contains("sa_str_set (hash): \"/tmp/x/cat\"", text);
        Assert.Contains("sa_str_prefix (LPM trie): \"/etc/shadow\"", text);
    }

    [Fact]
    public void The_explanation_says_whether_a_string_filter_matches_the_resolved_path_or_the_string_passed()
    {
        var plan = Compile(Support.TestPolicies.SyscallKprobeKill("shadow", "/tmp/x/cat", "/etc/shadow"));
        var open = PlanExplainer.Explain(plan);
        Assert.Contains("matches the resolved path (relative names joined to the dirfd's directory or the cwd", open);
        Assert.Contains("again at sys_exit the path of the file the kernel opened", open);

        // The same string read at a syscall whose argument is not a file name is compared as passed.
        var other = PlanExplainer.Explain(plan with { Hooks = [plan.Hooks[0] with { Target = "syscalls/sys_enter_write" }] });
        Assert.Contains("matches the string as the process passed it", other);
    }

    [Fact]
    public void A_rate_limit_is_converted_to_nanoseconds()
    {
        Assert.Equal((true, 2_000_000_000UL), (PolicyValues.TryParseRateLimit("2", out var two), two));
        Assert.Equal((true, 60_000_000_000UL), (PolicyValues.TryParseRateLimit("1m", out var minute), minute));
    }
}
