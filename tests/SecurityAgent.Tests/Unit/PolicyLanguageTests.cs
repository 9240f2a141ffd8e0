using SecurityAgent.Kernel;
using SecurityAgent.Policies;
using SecurityAgent.Tests.Support;

namespace SecurityAgent.Tests.Unit;

/// <summary>Tetragon's policy language with Tetragon's meaning: each feature either compiles to a plan that means
/// what it means in Tetragon, or is refused naming the feature and its position; and `--for-kernel` judges a policy
/// for another kernel's mechanisms.</summary>
public class PolicyLanguageTests
{
    private static TracepointFormat? Formats(string subsys, string ev) => PolicyCompilerTests.Formats(subsys, ev) ?? (subsys, ev) switch
    {
        ("syscalls", "sys_enter_clock_settime") => Syscall(ev, ("const clockid_t", "which_clock"), ("const struct __kernel_timespec *", "tp")),
        ("syscalls", "sys_enter_dup") => Syscall(ev, ("unsigned int", "fildes")),
        ("syscalls", "sys_enter_symlinkat") => Syscall(ev, ("const char *", "oldname"), ("int", "newdfd"), ("const char *", "newname")),
        ("syscalls", "sys_enter_dup2") => Syscall(ev, ("unsigned int", "oldfd"), ("unsigned int", "newfd")),
        ("syscalls", "sys_enter_write") => Syscall(ev, ("unsigned int", "fd"), ("const char *", "buf"), ("size_t", "count")),
        ("raw_syscalls", "sys_enter") => new TracepointFormat(subsys, ev, 2, [.. Common(), new("id", "long", 8, 8, true), new("args", "unsigned long[6]", 16, 48, false)]),
        ("sched", "sched_process_exec") => new TracepointFormat(subsys, ev, 3, [.. Common(), new("filename", "__data_loc char[]", 8, 4, false), new("pid", "pid_t", 12, 4, true), new("old_pid", "pid_t", 16, 4, true)]),
        _ => null,
    };

    private static List<TracepointField> Common() =>
    [
        new("common_type", "unsigned short", 0, 2, false), new("common_flags", "unsigned char", 2, 1, false),
        new("common_preempt_count", "unsigned char", 3, 1, false), new("common_pid", "int", 4, 4, true),
    ];

    private static TracepointFormat Syscall(string ev, params (string CType, string Name)[] args) =>
        new("syscalls", ev, 1, [.. Common(), new("__syscall_nr", "int", 8, 4, true), .. args.Select((a, i) => new TracepointField(a.Name, a.CType, 16 + 8 * i, 8, false))]);

    private static ValidatedPolicy Check(string spec, KernelFeatures? kernel = null, bool forOtherKernel = false) =>
        Assert.Single(new PolicyValidator(kernel ?? PolicyValidatorTests.OurKernel, Formats) { ForOtherKernel = forOtherKernel }
            .ValidateText("p.yaml", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n" + spec));

    private static PolicyPlan Plan(string spec, KernelFeatures? kernel = null)
    {
        var v = Check(spec, kernel);
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        return v.Plan!;
    }

    private static PolicyDiagnostic Refusal(string spec, string field, KernelFeatures? kernel = null)
    {
        var v = Check(spec, kernel);
        Assert.False(v.Ok);
        return Assert.Single(v.Diagnostics, d => d.Field == field);
    }

    private const string ClockSettime = """
          kprobes:
          - call: sys_clock_settime
            syscall: true
            args:
            - index: 0
              type: int
            selectors:
            - matchPIDs:
              - operator: NotIn
                followForks: true
                isNamespacePID: true
                values: [1]

        """;

    [Fact]
    public void MatchPIDs_NotIn_with_isNamespacePID_and_followForks_loads_here_with_tetragons_ancestry_meaning_in_the_explanation()
    {
        var plan = Plan(ClockSettime);
        var sel = Assert.Single(Assert.Single(plan.Hooks).Selectors);
        Assert.True(sel.PidTree);
        var text = PlanExplainer.Explain(plan);
        Assert.Contains("matchPIDs NotIn [1] isNamespacePID=true followForks=true", text);
        Assert.Contains("or of one of its 8 nearest ancestors", text);
    }

    [Fact]
    public void MatchPIDs_with_isNamespacePID_alone_loads_and_the_explanation_says_followForks_is_false()
    {
        var plan = Plan(ClockSettime.Replace("        followForks: true\n", ""));
        var sel = Assert.Single(Assert.Single(plan.Hooks).Selectors);
        Assert.Equal((Cmp.NotIn, true, false), (sel.PidCmp, sel.NamespacePids, sel.FollowForks));
        Assert.Contains("isNamespacePID=true followForks=false -> pid NotIn [1] of the process's pid in its own pid namespace", PlanExplainer.Explain(plan));
    }

    private const string Write = """
          kprobes:
          - call: sys_write
            syscall: true
            args:
            - index: 0
              type: int
            - index: 1
              type: char_buf
              sizeArgIndex: 3
            - index: 2
              type: size_t

        """;

    [Fact]
    public void SizeArgIndex_reads_exactly_the_byte_count_of_the_argument_it_names_instead_of_a_string()
    {
        var buf = Plan(Write).Hooks[0].Args[1];
        Assert.Equal(ArgType.Buf, buf.KernelType);
        Assert.Equal(16 + 8 * 2, buf.Size); // the count: argument 2, as sizeArgIndex 3 names it (1-based, as Tetragon counts)
    }

    [Fact]
    public void MaxData_on_a_syscall_buffer_with_sizeArgIndex_reads_it_whole_and_its_post_sends_the_data_records_first()
    {
        var plan = Plan(Write.Replace("sizeArgIndex: 3", "sizeArgIndex: 3\n      maxData: true"));
        Assert.Equal(ArgType.BufMax, plan.Hooks[0].Args[1].KernelType);
        Assert.Contains("maxData: up to 255 bytes in the event, a longer buffer also sent whole up to 327360 bytes", PlanExplainer.Explain(plan));
        Assert.Equal(ArgType.Buf, Plan(Write).Hooks[0].Args[1].KernelType);
    }

    [Fact]
    public void SizeArgIndex_out_of_tetragons_range_or_on_a_non_buffer_is_an_error()
    {
        Assert.Contains("out of range", Refusal(Write.Replace("sizeArgIndex: 3", "sizeArgIndex: 16"), "spec.kprobes[0].args[1].sizeArgIndex").Message);
        Assert.Contains("applies to char_buf", Refusal(Write.Replace("type: char_buf", "type: string"), "spec.kprobes[0].args[1].sizeArgIndex").Message);
    }

    [Fact]
    public void A_nop_argument_is_neither_read_nor_reported_and_the_next_argument_keeps_its_index()
    {
        var plan = Plan(Write.Replace("type: char_buf\n      sizeArgIndex: 3", "type: nop"));
        var args = Assert.Single(plan.Hooks).Args;
        Assert.Equal([(0, 0, "int"), (1, 2, "size_t")], args.Select(a => (a.Slot, a.Index, a.Type)));
    }

    [Fact]
    public void A_syscall64_argument_is_carried_as_the_64_bit_syscall_id_tetragon_reports_as_syscall_id()
    {
        var plan = Plan("""
              tracepoints:
              - subsystem: raw_syscalls
                event: sys_enter
                args:
                - index: 4
                  type: syscall64

            """);
        var arg = Assert.Single(Assert.Single(plan.Hooks).Args);
        Assert.Equal(("syscall64", ArgType.Syscall64, 8, 8), (arg.Type, arg.KernelType, arg.Size, arg.Offset));
    }

    private const string Dups = """
          lists:
          - name: dups
            type: syscalls
            values: [sys_dup, __ia32_sys_dup, __ia32_compat_sys_ioctl]
          tracepoints:
          - subsystem: raw_syscalls
            event: sys_enter
            args:
            - index: 4
              type: syscall64
            selectors:
            - matchArgs:
              - index: 0
                operator: InMap
                values: ["list:dups"]

        """;

    [Fact]
    public void A_32_bit_syscall_in_a_list_is_its_i386_number_with_the_compat_bit_and_syscall64_reads_that_bit()
    {
        var plan = Plan(Dups);
        var f = Assert.Single(plan.Hooks[0].Selectors[0].Args);
        // dup is 32 on x86-64; dup is 41 and ioctl 54 on i386, marked 0x80000000 as Tetragon's syscall64 values are.
        Assert.Equal([32UL, 0x80000000UL | 41, 0x80000000UL | 54], plan.ValueSets[f.ValueSet!.Value].Integers.Order());
        Assert.Equal(ArgType.Syscall64, plan.Hooks[0].Args[0].KernelType);
        var bad = Refusal(Dups.Replace("__ia32_compat_sys_ioctl", "__ia32_sys_no_such_call"), "spec.lists[0].values[2]");
        Assert.Contains("unknown 32-bit (i386) syscall '__ia32_sys_no_such_call'", bad.Message);
    }

    [Fact]
    public void Lsmhook_socket_connect_declared_as_tetragon_declares_it_loads_on_cgroup_connect_hooks_with_the_destination()
    {
        var v = Check("""
              lsmhooks:
              - hook: socket_connect
                args:
                - index: 0
                  type: socket
                - index: 1
                  type: sockaddr
                selectors:
                - matchArgs:
                  - index: 1
                    operator: DAddr
                    values: ["10.0.0.0/8"]
                  matchActions:
                  - action: Override
                    argError: -1

            """);
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        var hook = Assert.Single(v.Plan!.Hooks);
        Assert.Equal(Mechanism.CgroupSockAddr, hook.Mechanism);
        Assert.Equal(1, Assert.Single(hook.Args).Index);
        Assert.Equal(Cmp.DAddr, Assert.Single(Assert.Single(hook.Selectors).Args).Cmp);
        Assert.Contains(v.Warnings, w => w.Field == "spec.lsmhooks[0].args[0].type" && w.Message.Contains("not read"));
    }

    [Fact]
    public void Lsmhook_socket_connect_with_bpf_lsm_reads_the_destination_from_the_hook_argument()
    {
        var plan = Plan("""
              lsmhooks:
              - hook: socket_connect
                args:
                - index: 0
                  type: socket
                - index: 1
                  type: sockaddr

            """, KernelFeatures.Everything);
        var hook = Assert.Single(plan.Hooks);
        Assert.Equal(Mechanism.Lsm, hook.Mechanism);
        Assert.Equal([(0, ArgType.Socket), (1, ArgType.KSockAddr)], hook.Args.Select(a => (a.Index, a.KernelType)));
    }

    [Fact]
    public void Another_type_at_index_0_of_socket_connect_on_cgroup_hooks_is_refused_naming_what_the_hook_has()
    {
        var d = Refusal("  lsmhooks:\n  - hook: socket_connect\n    args:\n    - index: 0\n      type: int\n", "spec.lsmhooks[0].args[0].index");
        Assert.Contains("index 0 is the socket", d.Message);
    }

    [Fact]
    public void A_kprobe_on_a_syscalls_list_is_one_syscall_hook_per_entry_on_its_tracepoint_here()
    {
        var plan = Plan("""
              lists:
              - name: syscalls
                type: syscalls
                values: [sys_dup, sys_dup2]
              kprobes:
              - call: "list:syscalls"

            """);
        Assert.Equal(["syscalls/sys_enter_dup", "syscalls/sys_enter_dup2"], plan.Hooks.Select(h => h.Target));
        Assert.All(plan.Hooks, h => Assert.Equal((HookKind.Kprobe, Mechanism.Tracepoint), (h.Kind, h.Mechanism)));
    }

    [Fact]
    public void A_32_bit_syscall_in_a_kprobe_list_needs_its_own_kprobe_never_the_64_bit_tracepoint_of_that_name()
    {
        var spec = "  lists:\n  - name: dups\n    type: syscalls\n    values: [sys_dup, __ia32_sys_dup]\n  kprobes:\n  - call: \"list:dups\"\n";
        Assert.Contains("needs kprobes to hook the 32-bit syscall '__ia32_sys_dup'", Refusal(spec, "spec.kprobes[0].call").Message);
        var v = Check(spec, KernelFeatures.Everything, forOtherKernel: true);
        Assert.Equal([(Mechanism.Tracepoint, "syscalls/sys_enter_dup"), (Mechanism.Kprobe, "__ia32_sys_dup")], v.Plan!.Hooks.Select(h => (h.Mechanism, h.Target)));
    }

    [Fact]
    public void A_generated_syscalls_list_hooks_every_syscall_the_kernel_has_a_tracepoint_for()
    {
        var plan = Plan("""
              lists:
              - name: all
                type: generated_syscalls
              kprobes:
              - call: "list:all"
                selectors:
                - matchBinaries:
                  - operator: In
                    values: ["/tmp/secagent-test/kill"]

            """);
        Assert.Equal(["clock_settime", "connect", "dup", "dup2", "openat", "setuid", "symlinkat", "write"], plan.Hooks.Select(h => h.Target["syscalls/sys_enter_".Length..]).Order());
    }

    [Fact]
    public void A_generated_ftrace_list_needs_kprobes_and_says_so_at_the_call()
    {
        var d = Refusal("""
              lists:
              - name: ksys
                type: generated_ftrace
                pattern: "^ksys_*"
              kprobes:
              - call: "list:ksys"

            """, "spec.kprobes[0].call");
        Assert.StartsWith("needs kprobes to hook the kernel functions of list:ksys", d.Message);
    }

    [Theory]
    [InlineData("disable-kprobe-multi", "true")]
    [InlineData("disable-uprobe-multi", "1")]
    [InlineData("override-method", "fmod-ret")]
    [InlineData("sleepable-preload-size", "8")]
    public void Tetragons_attach_options_are_accepted_with_a_note_that_they_change_nothing_here(string name, string value)
    {
        var v = Check($"  options:\n  - name: {name}\n    value: \"{value}\"\n" + ClockSettime.Replace("        followForks: true\n", ""));
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        Assert.Contains(v.Notes, n => n.Field == "spec.options[0].name" && n.Message.Contains("no effect here"));
    }

    [Fact]
    public void A_bad_option_value_or_an_unknown_option_is_an_error()
    {
        Assert.Contains("true or false", Refusal("  options:\n  - name: disable-kprobe-multi\n    value: maybe\n" + ClockSettime, "spec.options[0].value").Message);
        Assert.Contains("unsupported option 'policy-mod'", Refusal("  options:\n  - name: policy-mod\n    value: monitor\n" + ClockSettime, "spec.options[0].name").Message);
    }

    private const string TcpConnect = """
          kprobes:
          - call: tcp_connect
            syscall: false
            args:
            - index: 0
              type: sock
            selectors:
            - matchArgs:
              - index: 0
                operator: NotDAddr
                values: ["127.0.0.1", "10.0.0.0/8"]
              - index: 0
                operator: SPort
                values: ["0"]
              matchNamespaces:
              - namespace: Net
                operator: NotIn
                values: [host_ns]
              matchActions:
              - action: TrackSock
          - call: tcp_close
            syscall: false
            return: true
            args:
            - index: 0
              type: sock
            returnArg:
              index: 0
              type: int
            selectors:
            - matchReturnArgs:
              - index: 0
                operator: Equal
                values: ["0"]
              matchActions:
              - action: UntrackSock
                argSock: 0

        """;

    [Fact]
    public void For_a_kernel_with_every_mechanism_return_probes_namespaces_and_socket_tracking_compile_without_notes()
    {
        var v = Check(TcpConnect, KernelFeatures.Everything, forOtherKernel: true);
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        Assert.Equal(["tcp_connect", "tcp_close"], v.Plan!.Hooks.Select(h => h.Name));
        Assert.Empty(v.Notes);
        Assert.Equal(Actions.TrackSock | Actions.Post, v.Plan.Hooks[0].Selectors[0].Actions);
        Assert.Equal("a kretprobe on tcp_close", v.Plan.Hooks[1].Return!.Tracepoint);
    }

    [Fact]
    public void The_same_policy_loading_here_is_refused_at_the_first_hook_this_kernel_lacks()
    {
        var d = Refusal(TcpConnect, "spec.kprobes[0].call");
        Assert.StartsWith("needs kprobes or fentry to hook 'tcp_connect'", d.Message);
    }

    [Fact]
    public void Language_errors_stay_errors_for_another_kernel_socket_values_namespace_values_and_argSock()
    {
        var bad = TcpConnect.Replace("values: [\"0\"]\n      matchNamespaces", "values: [\"70000\"]\n      matchNamespaces").Replace("values: [host_ns]", "values: [hostns]")
            .Replace("argSock: 0", "argSock: 3");
        var v = Check(bad, KernelFeatures.Everything, forOtherKernel: true);
        Assert.Contains(v.Diagnostics, d => d.Message.Contains("'70000' is not a port"));
        Assert.Contains(v.Diagnostics, d => d.Message.Contains("'hostns' is neither a namespace inode number nor host_ns"));
        Assert.Contains(v.Diagnostics, d => d.Message.Contains("no argument 3 of type sock"));
    }

    [Fact]
    public void A_syscall_kprobe_with_override_goes_to_a_kprobe_where_the_kernel_has_kprobes_and_fanotify_cannot_stand_in()
    {
        var v = Check("""
              kprobes:
              - call: sys_setuid
                syscall: true
                args:
                - index: 0
                  type: int
                selectors:
                - matchArgs:
                  - index: 0
                    operator: Equal
                    values: ["0"]
                  matchBinaries:
                  - operator: In
                    values: ["/tmp/secagent-test/victim"]
                  matchActions:
                  - action: Override
                    argError: -1

            """, KernelFeatures.Everything, forOtherKernel: true);
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        Assert.Empty(v.Notes);
        var hook = Assert.Single(v.Plan!.Hooks);
        // Its own attach point and program (bpf_override_return on the syscall function), arguments from the caller's registers.
        Assert.Equal((Mechanism.Kprobe, "override-syscall:__x64_sys_setuid"), (hook.Mechanism, hook.Target));
        Assert.Equal(new KprobeTarget(KprobeKind.SyscallOverride, "__x64_sys_setuid"), KprobeTarget.Parse(hook.Target));
        var arg = Assert.Single(hook.Args);
        Assert.Equal((ArgType.Int, 0), (arg.KernelType, arg.Offset));
        var sel = Assert.Single(hook.Selectors);
        Assert.True(sel.Actions.HasFlag(Actions.Override));
        Assert.Equal(-1, sel.Error);
    }

    private const string SymlinkOverride = """
          kprobes:
          - call: sys_symlinkat
            syscall: true
            args:
            - index: 0
              type: string
            - index: 1
              type: int
            - index: 2
              type: string
            selectors:
            - matchArgs:
              - index: 0
                operator: Equal
                values: ["/etc/passwd"]
              matchActions:
              - action: Override
                argError: -2

        """;

    [Fact]
    public void Override_on_a_syscall_kprobe_reads_its_strings_as_the_process_passed_them_from_the_callers_registers()
    {
        var v = Check(SymlinkOverride, KernelFeatures.Everything, forOtherKernel: true);
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        var hook = Assert.Single(v.Plan!.Hooks);
        Assert.Equal("override-syscall:__x64_sys_symlinkat", hook.Target);
        Assert.Equal([(ArgType.String, 0), (ArgType.Int, 1), (ArgType.String, 2)], hook.Args.Select(a => (a.KernelType, a.Offset)));
        Assert.Equal(-2, Assert.Single(hook.Selectors).Error);
    }

    [Fact]
    public void Override_on_a_syscall_where_the_kernel_has_kprobes_but_no_bpf_override_return_names_the_kernel_options()
    {
        var vmLike = KernelFeatures.Everything with { OverrideReturn = Availability.No("bpf_program__attach_kprobe: EINVAL") };
        var v = Check(SymlinkOverride, vmLike, forOtherKernel: true);
        Assert.False(v.Ok);
        var e = Assert.Single(v.Diagnostics, d => d.Field == "spec.kprobes[0].selectors[0].matchActions[0].action");
        Assert.Contains("needs bpf_override_return to Override syscall symlinkat", e.Message);
        Assert.Contains("CONFIG_BPF_KPROBE_OVERRIDE", e.Message);
        Assert.Contains("EINVAL", e.Message);
    }

    [Fact]
    public void Override_on_a_syscall_kprobe_refuses_an_argument_the_syscall_does_not_have()
    {
        var v = Check(SymlinkOverride.Replace("- index: 2\n      type: string", "- index: 3\n      type: string"), KernelFeatures.Everything, forOtherKernel: true);
        Assert.Contains(v.Diagnostics, d => d.Field == "spec.kprobes[0].args[2].index" && d.Message.Contains("syscall symlinkat has 3 arguments"));
    }

    [Fact]
    public void Uprobes_and_usdts_are_placed_on_the_uprobe_pmu_and_an_action_only_usdts_have_is_refused_elsewhere()
    {
        var v = Check("""
              uprobes:
              - path: /tmp/secagent-test/bash
                symbols: [readline]
                selectors:
                - matchActions:
                  - action: Set
                    argIndex: 0
                    argValue: 1
              usdts:
              - path: /tmp/secagent-test/app
                provider: test
                name: probe

            """, KernelFeatures.Everything, forOtherKernel: true);
        Assert.Contains(v.Diagnostics, d => d.Field == "spec.uprobes[0].selectors[0].matchActions[0].action" && d.Message.Contains("usdts only"));
        var ok = Check("  usdts:\n  - path: /tmp/secagent-test/app\n    provider: test\n    name: probe\n", KernelFeatures.Everything, forOtherKernel: true);
        Assert.Equal((HookKind.Usdt, Mechanism.Uprobe), (Assert.Single(ok.Plan!.Hooks).Kind, ok.Plan.Hooks[0].Mechanism));
    }

    [Theory]
    [InlineData("-4@-20(%rbp)", 4, true, UsdtOperand.Memory)]
    [InlineData("8@(%rax)", 8, false, UsdtOperand.Memory)]
    [InlineData("-4@%eax", 4, true, UsdtOperand.Register)]
    [InlineData("4@$5", 4, false, UsdtOperand.Constant)]
    [InlineData("-1@-96(%rbp,%rax,8)", 1, true, UsdtOperand.Indexed)]
    [InlineData("8@counter(%rip)", 8, false, UsdtOperand.Other)]
    [InlineData("garbage", 0, false, UsdtOperand.Other)]
    public void A_usdt_argument_spec_gives_its_size_signedness_and_operand_kind(string spec, int size, bool signed, UsdtOperand operand) =>
        Assert.Equal(new UsdtArg(size, signed, operand, spec), UsdtArg.Parse(spec));

    private const string UsdtSet = """
          usdts:
          - path: /tmp/secagent-test/no-such-app
            provider: test
            name: probe
            args:
            - index: 2
              type: int32
            selectors:
            - matchActions:
              - action: Set
                argIndex: 0
                argValue: 32

        """;

    [Fact]
    public void A_usdt_set_whose_binary_is_not_here_compiles_with_a_warning_and_its_size_is_read_at_load()
    {
        var v = Check(UsdtSet, KernelFeatures.Everything, forOtherKernel: true);
        Assert.True(v.Ok, string.Join("\n", v.Diagnostics));
        Assert.Contains(v.Warnings, d => d.Field == "spec.usdts[0].selectors[0].matchActions[0].action" && d.Message.Contains("checked when the policy loads"));
        var sel = v.Plan!.Hooks[0].Selectors[0];
        Assert.Equal((Actions.Post | Actions.Set, new UsdtSetPlan(2, 0, 32)), (sel.Actions, sel.Set)); // args[0] is note argument 2
        var e = Assert.Throws<PolicyLimitException>(() => UsdtNotes.ResolveSets(v.Plan));
        Assert.Contains("cannot read the USDT note of '/tmp/secagent-test/no-such-app'", e.Message);
    }

    [Fact]
    public void A_usdt_set_on_a_kernel_whose_lockdown_refuses_bpf_probe_write_user_is_refused_naming_the_helper_and_the_reason()
    {
        var locked = KernelFeatures.Everything with { ProbeWriteUser = Availability.No("kernel lockdown forbids it (/sys/kernel/security/lockdown: none [integrity] confidentiality)") };
        var d = Assert.Single(Check(UsdtSet, locked, forOtherKernel: true).Diagnostics);
        Assert.Equal("spec.usdts[0].selectors[0].matchActions[0].action", d.Field);
        Assert.Contains("needs bpf_probe_write_user to write the usdt argument (as Tetragon does), and this kernel's probe says: kernel lockdown forbids it", d.Message);
    }

    [Fact]
    public void A_usdt_set_is_encoded_as_the_note_argument_its_size_and_the_value()
    {
        var v = Check(UsdtSet, KernelFeatures.Everything, forOtherKernel: true);
        var hook = v.Plan!.Hooks[0];
        var sized = hook with { Selectors = [hook.Selectors[0] with { Set = new UsdtSetPlan(2, 4, -7) }] };
        var b = PolicyEncoding.Selector(new PlacedHook(1, 1, v.Plan, sized, true, 0, [-1]), 0, 1, new int[Events.Contract.PointArgs]);
        Assert.Equal((3, 4, -7L), (b[Events.PolicyWire.Selector.SetArg], b[Events.PolicyWire.Selector.SetSize], BitConverter.ToInt64(b, Events.PolicyWire.Selector.SetValue)));
        Assert.Equal(Actions.Post | Actions.Set, (Actions)BitConverter.ToUInt32(b, Events.PolicyWire.Selector.Actions));
    }

    [Fact]
    public void A_usdt_set_naming_no_entry_of_args_or_in_return_actions_or_with_parent_binaries_is_refused()
    {
        Assert.Contains(Check(UsdtSet.Replace("argIndex: 0", "argIndex: 1"), KernelFeatures.Everything, forOtherKernel: true).Diagnostics,
            d => d.Field == "spec.usdts[0].selectors[0].matchActions[0].argIndex" && d.Message.Contains("has 1 (0..0)"));
        Assert.Contains(Check(UsdtSet.Replace("    - matchActions:", "    - matchParentBinaries:\n      - operator: In\n        values: [/bin/sh]\n      matchActions:"), KernelFeatures.Everything, forOtherKernel: true).Diagnostics,
            d => d.Message.Contains("Set with matchParentBinaries"));
    }

    [Fact]
    public void A_uprobe_with_two_symbols_and_an_offset_becomes_one_hook_per_site_with_user_space_arguments()
    {
        var plan = Plan("""
              uprobes:
              - path: /tmp/secagent-test/app
                symbols: [check, "malloc@GLIBC_2.2.5"]
                offsets: [4096]
                args:
                - index: 0
                  type: int32
                - index: 1
                  type: string
                - index: 2
                  type: sockaddr
                selectors:
                - matchArgs:
                  - index: 1
                    operator: Prefix
                    values: [sec]
                  matchActions:
                  - action: Sigkill
            """);
        Assert.Equal(["check", "malloc@GLIBC_2.2.5", "+0x1000"], plan.Hooks.Select(h => h.Name));
        Assert.All(plan.Hooks, h => Assert.Equal((HookKind.Uprobe, Mechanism.Uprobe), (h.Kind, h.Mechanism)));
        Assert.Equal(3, plan.Hooks.Select(h => h.Target).Distinct().Count());
        Assert.Equal(new UserProbeSite("/tmp/secagent-test/app", "malloc@GLIBC_2.2.5", 0), UserProbeSite.Parse(plan.Hooks[1].Target));
        Assert.Equal(new UserProbeSite("/tmp/secagent-test/app", null, 4096), UserProbeSite.Parse(plan.Hooks[2].Target));
        Assert.Equal([ArgType.Int, ArgType.String, ArgType.SockAddr], plan.Hooks[0].Args.Select(a => a.KernelType));
        Assert.Equal([0, 1, 2], plan.Hooks[0].Args.Select(a => a.Offset)); // the register of the calling convention
        Assert.All(plan.Hooks, h => Assert.True(h.Selectors[0].Actions.HasFlag(Actions.Sigkill)));
    }

    [Fact]
    public void A_usdt_is_one_site_read_by_provider_and_name_and_its_target_round_trips()
    {
        var hook = Assert.Single(Plan("""
              usdts:
              - path: /tmp/secagent-test/my|app
                provider: test
                name: usdt3
                args:
                - index: 0
                  type: int32
                - index: 1
                  type: int64
            """).Hooks);
        Assert.Equal((HookKind.Usdt, Mechanism.Uprobe), (hook.Kind, hook.Mechanism));
        Assert.Equal(new UserProbeSite("/tmp/secagent-test/my|app", null, 0, "test", "usdt3"), hook.Site);
        Assert.Equal(hook.Site, UserProbeSite.Parse(hook.Target));
        Assert.Equal([(ArgType.Int, 4), (ArgType.Int, 8)], hook.Args.Select(a => (a.KernelType, a.Size)));
    }

    [Fact]
    public void Each_symbol_of_a_uprobe_takes_its_semaphore_offset_from_refCtrOffsets_and_its_target_round_trips()
    {
        var plan = Plan("""
              uprobes:
              - path: /tmp/secagent-test/my|app
                symbols: [check, other]
                refCtrOffsets: [4096, 8200]
            """);
        Assert.Equal([4096UL, 8200UL], plan.Hooks.Select(h => h.Site!.RefCtrOffset));
        Assert.All(plan.Hooks, h => Assert.Equal(h.Site, UserProbeSite.Parse(h.Target)));
        Assert.Equal(new UserProbeSite("/tmp/secagent-test/app", null, 16, RefCtrOffset: 32), UserProbeSite.Parse(new UserProbeSite("/tmp/secagent-test/app", null, 16, RefCtrOffset: 32).Target));
    }

    [Theory]
    [InlineData("    refCtrOffsets: [1, 2]\n", "spec.uprobes[0].refCtrOffsets[0]", "refCtrOffsets has 2 entries and symbols 1")]
    [InlineData("    addrs: [4096]\n", "spec.uprobes[0].addrs[0]", "unsupported: addrs")]
    [InlineData("    return: true\n", "spec.uprobes[0].return", "unsupported: a uretprobe")]
    [InlineData("    args:\n    - index: 0\n      type: file\n", "spec.uprobes[0].args[0].type", "unsupported: type 'file' for a user-space argument")]
    [InlineData("    args:\n    - index: 5\n      type: int\n", "spec.uprobes[0].args[0].index", "only the first 5 arguments of a uprobe")]
    [InlineData("    selectors:\n    - matchActions:\n      - action: Override\n        argError: -1\n", "spec.uprobes[0].selectors[0].matchActions[0].action", "unsupported: Override on uprobe")]
    public void What_a_uprobe_cannot_carry_is_refused_at_its_field(string extra, string field, string message)
    {
        var d = Refusal("  uprobes:\n  - path: /tmp/secagent-test/app\n    symbols: [check]\n" + extra, field);
        Assert.StartsWith(message, d.Message);
    }

    [Fact]
    public void A_raw_tracepoint_reads_the_tracepoint_functions_arguments_like_a_kernel_function()
    {
        var hook = Assert.Single(Plan("""
              tracepoints:
              - subsystem: sched
                event: sched_process_exec
                raw: true
                args:
                - index: 2
                  type: linux_binprm
            """).Hooks);
        Assert.Equal((HookKind.Tracepoint, Mechanism.RawTracepoint, "sched_process_exec", "sched/sched_process_exec"), (hook.Kind, hook.Mechanism, hook.Target, hook.Name));
        Assert.Equal((ArgType.Bprm, 2), (hook.Args[0].KernelType, hook.Args[0].Offset));
        var d = Refusal("  tracepoints:\n  - subsystem: sched\n    event: no_such_event\n    raw: true\n", "spec.tracepoints[0].event");
        Assert.Contains("unknown tracepoint 'sched/no_such_event'", d.Message);
    }

    [Fact]
    public void Spec_loader_alone_compiles_to_a_plan_with_the_loader_sensor_and_no_hooks()
    {
        var plan = Plan("  loader: true\n", KernelFeatures.Everything);
        Assert.True(plan.Loader);
        Assert.Empty(plan.Hooks);
        Assert.False(Plan("  loader: false\n  tracepoints:\n  - subsystem: syscalls\n    event: sys_enter_clock_settime\n", KernelFeatures.Everything).Loader);
    }

    [Theory]
    [InlineData("InRange", "[\"1:3\", \"7:7\"]", "In", "1,2,3,7")]
    [InlineData("NotInRange", "[\"-2:1\"]", "NotIn", "-2,-1,0,1")]
    [InlineData("InMap", "[\"1:3\", \"9\"]", "In", "1,2,3,9")]
    public void Ranges_include_both_bounds_and_are_carried_as_the_set_of_their_values(string op, string values, string cmp, string expected)
    {
        var plan = Plan($"""
              kprobes:
              - call: sys_setuid
                syscall: true
                args:
                - index: 0
                  type: int
                selectors:
                - matchArgs:
                  - index: 0
                    operator: {op}
                    values: {values}

            """);
        var f = Assert.Single(Assert.Single(Assert.Single(plan.Hooks).Selectors).Args);
        Assert.Equal(cmp, f.Cmp.ToString());
        Assert.Equal(expected, string.Join(",", plan.ValueSets[f.ValueSet!.Value].Values));
    }

    [Fact]
    public void A_range_larger_than_a_set_holds_or_upside_down_is_refused_at_the_value()
    {
        var spec = "  kprobes:\n  - call: sys_setuid\n    syscall: true\n    args:\n    - index: 0\n      type: int\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: InRange\n        values: [\"RANGE\"]\n";
        Assert.Contains("more than the 4096 values", Refusal(spec.Replace("RANGE", "0:100000"), "spec.kprobes[0].selectors[0].matchArgs[0].values[0]").Message);
        Assert.Contains("min at most max", Refusal(spec.Replace("RANGE", "5:1"), "spec.kprobes[0].selectors[0].matchArgs[0].values[0]").Message);
    }

    private const string WithMacro = """
          selectorsMacros:
            test-binary:
              matchBinaries:
              - operator: In
                values: ["/tmp/secagent-test/victim"]
          kprobes:
          - call: sys_setuid
            syscall: true
            args:
            - index: 0
              type: int
            selectors:
            - macros: [test-binary]
              matchArgs:
              - index: 0
                operator: Equal
                values: ["0"]

        """;

    [Fact]
    public void A_selector_takes_the_fields_of_the_macros_it_names()
    {
        var plan = Plan(WithMacro);
        var sel = Assert.Single(Assert.Single(plan.Hooks).Selectors);
        Assert.Equal(Cmp.In, sel.BinaryCmp);
        Assert.Equal(["/tmp/secagent-test/victim"], plan.ValueSets[sel.BinaryValueSet!.Value].Values);
        Assert.Equal(Cmp.In, Assert.Single(sel.Args).Cmp);
    }

    [Fact]
    public void A_field_from_two_places_an_undefined_macro_and_a_macro_using_a_macro_are_errors_at_the_name()
    {
        var twice = WithMacro.Replace("    - macros: [test-binary]\n", "    - macros: [test-binary]\n      matchBinaries:\n      - operator: In\n        values: [\"/x\"]\n");
        Assert.Contains("matchBinaries comes both from this selector", Refusal(twice, "spec.kprobes[0].selectors[0].macros[0]").Message);
        Assert.Contains("undefined macro 'nope'", Refusal(WithMacro.Replace("macros: [test-binary]", "macros: [nope]"), "spec.kprobes[0].selectors[0].macros[0]").Message);
        var nested = WithMacro.Replace("    test-binary:\n", "    test-binary:\n      macros: [other]\n");
        Assert.Contains("cannot", Refusal(nested, "spec.selectorsMacros.test-binary.macros[0]").Message);
    }

    [Theory]
    [InlineData("  nodeSelector:\n    matchLabels: {gpu: \"true\"}\n", "spec.nodeSelector", "nodeSelector (loading only on nodes with these labels")]
    [InlineData("  hostSelector: {}\n", "spec.hostSelector", "hostSelector")]
    [InlineData("  fentries:\n  - call: fd_install\n", "spec.fentries", "fentries (kprobe-style hooks attached through fentry")]
    public void Tetragon_fields_without_an_implementation_are_refused_by_what_they_are_never_as_unknown(string extra, string field, string what)
    {
        var d = Refusal(extra + WithMacro, field, KernelFeatures.Everything);
        Assert.StartsWith($"unsupported: {what}", d.Message);
        Assert.DoesNotContain("unknown field", d.Message);
    }

    private const string GetUrl = """
          kprobes:
          - call: sys_setuid
            syscall: true
            selectors:
            - matchBinaries:
              - operator: In
                values: ["/tmp/secagent-test/victim"]
              matchActions:
              - action: GetUrl
                argUrl: "http://127.0.0.1:8080/canary"
              - action: DnsLookup
                argFqdn: canary.example.invalid

        """;

    [Fact]
    public void GetUrl_and_DnsLookup_compile_to_notifications_the_agent_carries_out()
    {
        var sel = Assert.Single(Assert.Single(Plan(GetUrl).Hooks).Selectors);
        Assert.Equal([new Notification(NotificationKind.GetUrl, "http://127.0.0.1:8080/canary"), new Notification(NotificationKind.DnsLookup, "canary.example.invalid")], sel.Notify);
        Assert.True(sel.Actions.HasFlag(Actions.Post));
    }

    [Fact]
    public void GetUrl_without_an_http_url_DnsLookup_without_a_name_and_either_with_NoPost_are_errors()
    {
        Assert.Contains("http or https URL", Refusal(GetUrl.Replace("http://127.0.0.1:8080/canary", "file:///etc/passwd"), "spec.kprobes[0].selectors[0].matchActions[0].argUrl").Message);
        Assert.Contains("a DNS name", Refusal(GetUrl.Replace("canary.example.invalid", "not a name"), "spec.kprobes[0].selectors[0].matchActions[1].argFqdn").Message);
        Assert.Contains("drop NoPost", Refusal(GetUrl.Replace("      - action: DnsLookup", "      - action: NoPost\n      - action: DnsLookup"), "spec.kprobes[0].selectors[0].matchActions[0]").Message);
    }

    [Fact]
    public async Task The_notifier_gets_the_url_off_the_caller_thread_and_at_most_once_a_second_per_target()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        var time = new ManualClock();
        await using var notifier = new PolicyNotifier(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, time);
        var n = new Notification(NotificationKind.GetUrl, $"http://127.0.0.1:{port}/canary");
        notifier.Enqueue([n]);
        notifier.Enqueue([n]); // within the interval: dropped, not queued
        using var client = await listener.AcceptTcpClientAsync().WaitAsync(TimeSpan.FromSeconds(10));
        var buffer = new byte[1024];
        int read = await client.GetStream().ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.StartsWith("GET /canary HTTP/1.1", System.Text.Encoding.ASCII.GetString(buffer, 0, read));
        Assert.Equal(1, notifier.Counters.Dropped);
        time.Advance(PolicyNotifier.Interval);
        notifier.Enqueue([n]); // a second later: due again
        Assert.Equal(1, notifier.Counters.Dropped);
    }

    [Fact]
    public void Probe_json_round_trips_and_a_file_that_is_not_one_is_refused_with_the_reason()
    {
        var json = KernelFeaturesJson.ToJson(PolicyValidatorTests.OurKernel);
        var back = KernelFeaturesJson.FromJson(json);
        Assert.All(Enum.GetValues<Mechanism>(), m => Assert.Equal(PolicyValidatorTests.OurKernel.Has(m), back.Has(m)));
        Assert.Equal(PolicyValidatorTests.OurKernel.Cgroup2Path, back.Cgroup2Path);
        Assert.Contains("no \"mechanisms\"", Assert.Throws<FormatException>(() => KernelFeaturesJson.FromJson("{\"kernel\": \"6.1\"}")).Message);
        Assert.Throws<FormatException>(() => KernelFeaturesJson.FromJson("{\"mechanisms\": {\"kprobe\": {\"available\": \"yes\"}}}"));
        Assert.False(KernelFeaturesJson.FromJson("{\"mechanisms\": {}}").Has(Mechanism.Tracepoint)); // not in the probe: not there
    }

    [Fact]
    public void Probe_json_carries_the_override_and_return_helpers_so_a_node_with_fmod_ret_and_fexit_is_judged_as_having_them()
    {
        var node = KernelFeatures.Everything with { OverrideReturn = Availability.No("no CONFIG_BPF_KPROBE_OVERRIDE"), Fexit = Availability.No("old kernel") };
        var back = KernelFeaturesJson.FromJson(KernelFeaturesJson.ToJson(node));
        Assert.Equal((false, true, false, true), (back.OverrideReturn.Available, back.FmodRet.Available, back.Fexit.Available, back.RingBufferQuery.Available));
        Assert.Contains("not in the probe", KernelFeaturesJson.FromJson("{\"mechanisms\": {}}").FmodRet.Detail);
    }

    /// <summary>How many of the shared corpus's Tetragon policies validate here and for a kernel with every mechanism:
    /// the counts may grow, never shrink.</summary>
    [SharedCorpusFact]
    public void The_peer_corpus_validates_at_least_as_much_as_before_here_and_for_every_mechanism()
    {
        var files = Directory.GetFiles(SharedCorpus.TetragonPolicies, "*.yaml");
        int Count(KernelFeatures k, bool other) => files.Count(f =>
            new PolicyValidator(k, tracefs: null) { ForOtherKernel = other }.ValidateFile(f).All(r => r.Ok));
        int here = Count(PolicyValidatorTests.OurKernel, false), all = Count(KernelFeatures.Everything, true);
        Assert.True(here >= 5, $"{here} of {files.Length} validate on a kernel like ours (5: sys_clock_settime and write are refused for their followForks namespace pids)");
        Assert.True(all >= 19, $"{all} of {files.Length} validate for a kernel with every mechanism (was 19)");
    }
}
